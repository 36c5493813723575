//! The peer ledger: who is connected (each connection a new session), strikes and bans, the rate of messages
//! a peer sends, and whether a peer reads what it is sent. A plain state machine: methods take `now` and say
//! what to do; the actor does it.

use libp2p::PeerId;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Strikes that disconnect and ban a peer.
pub const BAN_STRIKES: u32 = 20;
/// How long a ban lasts.
pub const BAN_TIME: Duration = Duration::from_secs(600);
/// A peer whose send queue stays full this long does not read: it is disconnected.
pub const SEND_STALL: Duration = Duration::from_secs(30);
/// Messages a peer may send per second on average (bursts up to the same number). The original sends at most
/// a few hundred per second at full speed.
pub const MESSAGE_RATE: f64 = 2000.0;

/// What the ledger knows of one connected peer.
#[derive(Debug)]
struct PeerState {
    session: u64,
    strikes: u32,
    last_activity: Instant,
    /// Token bucket of the message rate limit.
    tokens: f64,
    refilled: Instant,
    /// True once this second's rate-limit strike was given.
    limited_since: Option<Instant>,
}

/// What a strike led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The peer stays.
    Keep,
    /// The peer reached [`BAN_STRIKES`]: disconnect it; it is banned for [`BAN_TIME`].
    Ban,
}

/// What to do with a message from a peer, by the rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Handle it.
    Accept,
    /// Drop it; strike the peer once for this burst.
    DropAndStrike,
    /// Drop it (already struck for this burst).
    Drop,
}

/// The ledger.
#[derive(Debug, Default)]
pub struct Ledger {
    peers: HashMap<PeerId, PeerState>,
    banned: HashMap<PeerId, Instant>,
    next_session: u64,
}

impl Ledger {
    /// A peer connected: its new session, or `None` while it is banned.
    pub fn connect(&mut self, peer: PeerId, now: Instant) -> Option<u64> {
        if self.banned.get(&peer).is_some_and(|until| *until > now) {
            return None;
        }
        self.next_session += 1;
        let state = PeerState {
            session: self.next_session,
            strikes: 0,
            last_activity: now,
            tokens: MESSAGE_RATE,
            refilled: now,
            limited_since: None,
        };
        self.peers.insert(peer, state);
        Some(self.next_session)
    }

    /// A peer left; true if it was connected.
    pub fn disconnect(&mut self, peer: &PeerId) -> bool {
        self.peers.remove(peer).is_some()
    }

    pub fn is_connected(&self, peer: &PeerId) -> bool {
        self.peers.contains_key(peer)
    }

    /// The peer's current session.
    pub fn session(&self, peer: &PeerId) -> Option<u64> {
        self.peers.get(peer).map(|p| p.session)
    }

    pub fn peers(&self) -> impl Iterator<Item = &PeerId> {
        self.peers.keys()
    }

    pub fn len(&self) -> usize {
        self.peers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    pub fn strikes(&self, peer: &PeerId) -> u32 {
        self.peers.get(peer).map_or(0, |p| p.strikes)
    }

    /// Adds strikes; at [`BAN_STRIKES`] the peer is banned (and forgotten: the caller disconnects it).
    pub fn strike(&mut self, peer: &PeerId, weight: u32, now: Instant) -> Verdict {
        let Some(state) = self.peers.get_mut(peer) else { return Verdict::Keep };
        state.strikes = state.strikes.saturating_add(weight);
        if state.strikes < BAN_STRIKES {
            return Verdict::Keep;
        }
        self.peers.remove(peer);
        self.banned.insert(*peer, now + BAN_TIME);
        Verdict::Ban
    }

    pub fn is_banned(&self, peer: &PeerId, now: Instant) -> bool {
        self.banned.get(peer).is_some_and(|until| *until > now)
    }

    /// A message arrived from `peer`: the rate limit decides whether it is handled.
    pub fn admit(&mut self, peer: &PeerId, now: Instant) -> Admit {
        let Some(state) = self.peers.get_mut(peer) else { return Admit::Drop };
        state.last_activity = now;
        let elapsed = now.duration_since(state.refilled).as_secs_f64();
        state.tokens = (state.tokens + elapsed * MESSAGE_RATE).min(MESSAGE_RATE);
        state.refilled = now;
        if state.tokens >= 1.0 {
            state.tokens -= 1.0;
            return Admit::Accept;
        }
        match state.limited_since {
            Some(since) if now.duration_since(since) < Duration::from_secs(1) => Admit::Drop,
            _ => {
                state.limited_since = Some(now);
                Admit::DropAndStrike
            }
        }
    }

    /// Marks activity with `peer` (something was sent or served).
    pub fn touch(&mut self, peer: &PeerId, now: Instant) {
        if let Some(state) = self.peers.get_mut(peer) {
            state.last_activity = now;
        }
    }

    /// Peers with no activity since `idle` ago.
    pub fn idle(&self, now: Instant, idle: Duration) -> Vec<PeerId> {
        self.peers.iter().filter(|(_, s)| now.duration_since(s.last_activity) > idle).map(|(p, _)| *p).collect()
    }

    /// Forgets bans that ended.
    pub fn expire_bans(&mut self, now: Instant) {
        self.banned.retain(|_, until| *until > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strikes_ban_and_bans_expire() {
        let mut ledger = Ledger::default();
        let (peer, now) = (PeerId::random(), Instant::now());
        let first = ledger.connect(peer, now).expect("connects");
        assert_eq!(ledger.strike(&peer, 10, now), Verdict::Keep);
        assert_eq!(ledger.strike(&peer, 9, now), Verdict::Keep);
        assert_eq!(ledger.strike(&peer, 1, now), Verdict::Ban);
        assert!(!ledger.is_connected(&peer));
        assert_eq!(ledger.connect(peer, now + Duration::from_secs(1)), None, "banned peers are refused");
        ledger.expire_bans(now + BAN_TIME + Duration::from_secs(1));
        let second = ledger.connect(peer, now + BAN_TIME + Duration::from_secs(1)).expect("ban over");
        assert_ne!(first, second, "every connection is a new session");
        assert_eq!(ledger.strikes(&peer), 0);
    }

    #[test]
    fn message_rate_is_limited_with_one_strike_per_burst() {
        let mut ledger = Ledger::default();
        let (peer, now) = (PeerId::random(), Instant::now());
        ledger.connect(peer, now);
        let accepted = (0..3 * MESSAGE_RATE as usize).filter(|_| ledger.admit(&peer, now) == Admit::Accept).count();
        assert_eq!(accepted, MESSAGE_RATE as usize);
        assert_eq!(ledger.admit(&peer, now), Admit::Drop, "struck once per burst");
        let later = now + Duration::from_secs(2);
        assert_eq!(ledger.admit(&peer, later), Admit::Accept, "tokens refill");
    }

    #[test]
    fn idle_peers_are_found() {
        let mut ledger = Ledger::default();
        let (a, b, now) = (PeerId::random(), PeerId::random(), Instant::now());
        ledger.connect(a, now);
        ledger.connect(b, now);
        ledger.touch(&b, now + Duration::from_secs(100));
        assert_eq!(ledger.idle(now + Duration::from_secs(150), Duration::from_secs(120)), vec![a]);
    }
}
