//! Messages that arrive before their peer is handed to the block exchange.
//!
//! The network tells the block exchange about a peer only once its path is settled: a node that dialed over
//! QUIC waits up to 2 s for a TCP connection beside it, and a peer reached through a relay waits up to 8 s for
//! hole punching. The other side may already count the peer as connected and send its want list and
//! presences. They are held here, in order, and replayed when the peer is handed over, instead of being lost
//! until the other side asks again.
//!
//! Bounded: blocks are never held (none were asked of a peer that is not connected yet), at most
//! [`MAX_ENTRIES_PER_PEER`] want and presence entries per peer and [`MAX_PEERS`] peers, each for at most
//! [`KEEP`]. A peer that sends more loses everything held for it (a replay with a gap could restore wants it
//! had cancelled) and nothing more is held for it until it is handed over or [`KEEP`] runs out.

use codex_protocol::blockexc::Message as WireMessage;
use libp2p::PeerId;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Want and presence entries held per peer.
pub const MAX_ENTRIES_PER_PEER: usize = 1024;
/// Peers whose messages are held at once.
pub const MAX_PEERS: usize = 32;
/// How long a peer's messages are held after the first of them arrived: longer than the longest wait before a
/// peer is handed over (hole punching's 8 s).
pub const KEEP: Duration = Duration::from_secs(12);

struct Held {
    since: Instant,
    entries: usize,
    messages: Vec<WireMessage>,
    /// The peer sent more than fits: nothing is held for it.
    overflowed: bool,
}

/// The held messages of peers not yet handed to the block exchange.
#[derive(Default)]
pub struct Early {
    peers: HashMap<PeerId, Held>,
}

impl Early {
    /// Holds `message` from `peer` without its blocks; false when it does not fit and is dropped.
    pub fn hold(&mut self, peer: PeerId, message: WireMessage, now: Instant) -> bool {
        // Only the want list and presences, without the capacity of the deliveries' vector.
        let message = WireMessage { payload: Vec::new(), ..message };
        let entries = message.wantlist.entries.len() + message.presences.len();
        if entries == 0 {
            return false;
        }
        if !self.peers.contains_key(&peer) && self.peers.len() >= MAX_PEERS {
            return false;
        }
        let held = self.peers.entry(peer).or_insert_with(|| Held {
            since: now,
            entries: 0,
            messages: Vec::new(),
            overflowed: false,
        });
        if held.overflowed || held.entries + entries > MAX_ENTRIES_PER_PEER {
            held.overflowed = true;
            held.entries = 0;
            held.messages = Vec::new();
            return false;
        }
        held.entries += entries;
        held.messages.push(message);
        true
    }

    /// The held messages of `peer`, in the order they arrived; none are held for it afterwards.
    pub fn take(&mut self, peer: &PeerId) -> Vec<WireMessage> {
        self.peers.remove(peer).map(|held| held.messages).unwrap_or_default()
    }

    /// Drops what has been held for [`KEEP`].
    pub fn expire(&mut self, now: Instant) {
        self.peers.retain(|_, held| now.saturating_duration_since(held.since) < KEEP);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use codex_protocol::blockexc::{BlockAddress, BlockDelivery, BlockPresence, PresenceType, WantEntry, WantType};
    use codex_protocol::cid::{BLOCK_CODEC, ROOT_CODEC, cid_from_sha256};

    fn address(n: u64) -> BlockAddress {
        BlockAddress::Leaf { tree: cid_from_sha256(ROOT_CODEC, &[1; 32]), index: n }
    }

    fn wants(n: usize) -> WireMessage {
        let mut message = WireMessage::default();
        message.wantlist.entries = (0..n as u64)
            .map(|i| WantEntry {
                address: address(i),
                priority: 0,
                cancel: false,
                want_type: WantType::WantHave,
                send_dont_have: false,
            })
            .collect();
        message
    }

    #[test]
    fn messages_are_replayed_in_order_without_blocks() {
        let (mut early, peer, now) = (Early::default(), PeerId::random(), Instant::now());
        let mut first = wants(2);
        first.payload.push(BlockDelivery {
            cid: cid_from_sha256(BLOCK_CODEC, &[2; 32]),
            data: vec![7; 100].into(),
            address: address(0),
            proof: None,
        });
        let mut second = WireMessage::default();
        second.presences.push(BlockPresence { address: address(5), kind: PresenceType::Have, price: vec![0; 32] });
        assert!(early.hold(peer, first, now));
        assert!(early.hold(peer, second.clone(), now));
        assert!(!early.hold(peer, WireMessage::default(), now), "nothing to replay in an empty message");
        let replayed = early.take(&peer);
        assert_eq!(replayed.len(), 2);
        assert_eq!(replayed[0].wantlist.entries.len(), 2);
        assert!(replayed[0].payload.is_empty(), "blocks are not held");
        assert_eq!(replayed[1], second);
        assert!(early.take(&peer).is_empty(), "taken once");
    }

    #[test]
    fn holding_is_bounded_per_peer_in_peers_and_in_time() {
        let (mut early, now) = (Early::default(), Instant::now());
        let peer = PeerId::random();
        assert!(early.hold(peer, wants(MAX_ENTRIES_PER_PEER - 1), now));
        assert!(early.hold(peer, wants(1), now), "up to the bound");
        let greedy = PeerId::random();
        assert!(early.hold(greedy, wants(MAX_ENTRIES_PER_PEER), now));
        assert!(!early.hold(greedy, wants(1), now), "over the per-peer bound");
        assert!(!early.hold(greedy, wants(1), now), "nothing more once over");
        assert!(early.take(&greedy).is_empty(), "an overflowing peer loses what was held: no replay with a gap");
        for _ in 1..MAX_PEERS {
            assert!(early.hold(PeerId::random(), wants(1), now));
        }
        let one_more = PeerId::random();
        assert!(!early.hold(one_more, wants(1), now), "over the peer bound");
        early.expire(now + KEEP - Duration::from_millis(1));
        assert_eq!(early.take(&peer).len(), 2, "still held just before KEEP");
        early.expire(now + KEEP);
        assert!(early.hold(one_more, wants(1), now + KEEP), "expired peers make room");
    }
}
