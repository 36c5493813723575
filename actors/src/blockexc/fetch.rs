//! Single-block fetches (manifests, by CID), as a state machine without I/O.
//!
//! A wanted block is asked of every peer as wantBlock with sendDontHave, re-asked every
//! [`super::requester::REASK_INTERVAL`], and its providers are looked up in the DHT. It is given up as not found
//! as soon as the provider lookup has finished and every connected peer and every provider it found has said
//! DontHave (on a small network, a few seconds), and in any case after the fetch timeout. With nobody to ask at
//! all (no provider found, no peer connected: a connection being replaced, a peer still dialling) it waits
//! [`NOBODY_TO_ASK_GRACE`] for one to appear before it gives up.

use super::recent::Recent;
use super::requester::REASK_INTERVAL;
use codex_protocol::Cid;
use libp2p::PeerId;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// How long a fetch with nobody to ask (no provider, no connected peer) waits for a peer before it gives up.
pub const NOBODY_TO_ASK_GRACE: Duration = Duration::from_secs(5);
/// Every peer is asked for the block at once, so the answers after the first (sent before the cancel reached
/// them) are expected: a block that arrives this long after its fetch ended is not held against its sender.
pub const LATE_ANSWERS: Duration = Duration::from_secs(30);
/// Ended fetches remembered for [`LATE_ANSWERS`] at most.
const MAX_ENDED: usize = 256;

struct BlockFetch {
    started: Instant,
    last_reask: Instant,
    dont_have: HashSet<PeerId>,
    /// The providers the DHT lookup found, once it finished.
    lookup: Option<Vec<PeerId>>,
}

/// Why a fetch was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    /// The lookup finished and every peer that could have it said it does not.
    NobodyHasIt,
    /// The fetch timeout passed.
    TimedOut,
}

/// What the periodic check found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FetchTick {
    /// Blocks to ask for again (and look up).
    pub reask: Vec<Cid>,
    /// Blocks given up, with why and after how long.
    pub given_up: Vec<(Cid, GiveUp, Duration)>,
}

/// The single-block fetches.
pub struct Fetches {
    timeout: Duration,
    wants: HashMap<Cid, BlockFetch>,
    /// Fetches that ended lately (see [`LATE_ANSWERS`]).
    ended: Recent<Cid>,
}

impl Fetches {
    pub fn new(timeout: Duration) -> Self {
        Self { timeout, wants: HashMap::new(), ended: Recent::new(LATE_ANSWERS, MAX_ENDED) }
    }

    /// Starts fetching `cid`; true if it was not wanted yet (then ask every peer and look it up).
    pub fn want(&mut self, cid: Cid, now: Instant) -> bool {
        if self.wants.contains_key(&cid) {
            return false;
        }
        self.wants.insert(cid, BlockFetch { started: now, last_reask: now, dont_have: HashSet::new(), lookup: None });
        true
    }

    pub fn is_wanted(&self, cid: &Cid) -> bool {
        self.wants.contains_key(cid)
    }

    pub fn wanted(&self) -> impl Iterator<Item = &Cid> {
        self.wants.keys()
    }

    /// `peer` said it does not have `cid`.
    pub fn on_dont_have(&mut self, peer: PeerId, cid: &Cid) {
        if let Some(fetch) = self.wants.get_mut(cid) {
            fetch.dont_have.insert(peer);
        }
    }

    /// `peer` has `cid` after all (it may have stored it since).
    pub fn on_have(&mut self, peer: &PeerId, cid: &Cid) {
        if let Some(fetch) = self.wants.get_mut(cid) {
            fetch.dont_have.remove(peer);
        }
    }

    /// `peer` (re)connected: what it said before no longer counts.
    pub fn forget_answers(&mut self, peer: &PeerId) {
        for fetch in self.wants.values_mut() {
            fetch.dont_have.remove(peer);
        }
    }

    /// The DHT lookup for `cid` finished with `providers`.
    pub fn on_lookup(&mut self, cid: &Cid, providers: Vec<PeerId>) {
        if let Some(fetch) = self.wants.get_mut(cid) {
            // Merged: a later, emptier lookup does not forget a provider an earlier one found.
            let known = fetch.lookup.get_or_insert_with(Vec::new);
            for provider in providers {
                if !known.contains(&provider) {
                    known.push(provider);
                }
            }
        }
    }

    /// The block arrived: the fetch ends. True if it was wanted.
    pub fn resolve(&mut self, cid: &Cid, now: Instant) -> bool {
        let wanted = self.wants.remove(cid).is_some();
        if wanted {
            self.ended.note(*cid, now);
        }
        wanted
    }

    /// True when the fetch of `cid` ended less than [`LATE_ANSWERS`] ago: a copy arriving now is a late answer.
    pub fn ended_lately(&self, cid: &Cid, now: Instant) -> bool {
        self.ended.contains(cid, now)
    }

    /// Fetches nobody can answer: the lookup finished and every connected peer and every provider found said
    /// DontHave. They are ended.
    pub fn nobody_has(&mut self, now: Instant, connected: &[PeerId]) -> Vec<(Cid, GiveUp, Duration)> {
        let hopeless: Vec<Cid> = self
            .wants
            .iter()
            .filter(|(_, f)| {
                f.lookup.as_ref().is_some_and(|providers| {
                    let mut asked = providers.iter().chain(connected).peekable();
                    let nobody = asked.peek().is_none();
                    asked.all(|peer| f.dont_have.contains(peer))
                        && (!nobody || now.duration_since(f.started) >= NOBODY_TO_ASK_GRACE)
                })
            })
            .map(|(cid, _)| *cid)
            .collect();
        let given_up: Vec<(Cid, GiveUp, Duration)> = hopeless
            .into_iter()
            .filter_map(|cid| {
                self.wants.remove(&cid).map(|f| (cid, GiveUp::NobodyHasIt, now.duration_since(f.started)))
            })
            .collect();
        for (cid, _, _) in &given_up {
            self.ended.note(*cid, now);
        }
        given_up
    }

    /// Periodic work: re-asking and the timeout.
    pub fn tick(&mut self, now: Instant, connected: &[PeerId]) -> FetchTick {
        let mut tick = FetchTick::default();
        let timeout = self.timeout;
        self.wants.retain(|cid, f| {
            let waited = now.duration_since(f.started);
            if waited > timeout {
                tick.given_up.push((*cid, GiveUp::TimedOut, waited));
                return false;
            }
            if now.duration_since(f.last_reask) >= REASK_INTERVAL {
                f.last_reask = now;
                // Every round asks afresh: a peer that did not have the block may have it now.
                f.dont_have.clear();
                tick.reask.push(*cid);
            }
            true
        });
        for (cid, _, _) in &tick.given_up {
            self.ended.note(*cid, now);
        }
        self.ended.expire(now);
        tick.given_up.extend(self.nobody_has(now, connected));
        tick
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use codex_protocol::cid::block_cid;

    #[test]
    fn nobody_has_it_once_the_lookup_is_empty_and_every_peer_said_so() {
        let mut fetches = Fetches::new(Duration::from_secs(60));
        let (cid, now) = (block_cid(b"manifest"), Instant::now());
        let (a, b) = (PeerId::random(), PeerId::random());
        assert!(fetches.want(cid, now));
        assert!(!fetches.want(cid, now));
        fetches.on_dont_have(a, &cid);
        assert!(fetches.nobody_has(now, &[a, b]).is_empty(), "the lookup has not finished");
        fetches.on_lookup(&cid, vec![]);
        assert!(fetches.nobody_has(now, &[a, b]).is_empty(), "b has not answered");
        fetches.on_dont_have(b, &cid);
        let later = now + Duration::from_secs(3);
        assert_eq!(fetches.nobody_has(later, &[a, b]), vec![(cid, GiveUp::NobodyHasIt, Duration::from_secs(3))]);
        assert!(!fetches.is_wanted(&cid));
    }

    #[test]
    fn with_nobody_to_ask_a_fetch_waits_for_a_peer_before_giving_up() {
        let mut fetches = Fetches::new(Duration::from_secs(60));
        let (cid, now) = (block_cid(b"manifest"), Instant::now());
        assert!(fetches.want(cid, now));
        fetches.on_lookup(&cid, vec![]);
        assert!(fetches.nobody_has(now, &[]).is_empty(), "no provider, no peer: not yet");
        let almost = now + NOBODY_TO_ASK_GRACE - Duration::from_millis(1);
        assert!(fetches.nobody_has(almost, &[]).is_empty());
        let later = now + NOBODY_TO_ASK_GRACE;
        assert_eq!(fetches.nobody_has(later, &[]), vec![(cid, GiveUp::NobodyHasIt, NOBODY_TO_ASK_GRACE)]);
    }

    #[test]
    fn a_provider_found_by_the_lookup_must_answer_too() {
        let mut fetches = Fetches::new(Duration::from_secs(60));
        let (cid, now, provider) = (block_cid(b"m2"), Instant::now(), PeerId::random());
        fetches.want(cid, now);
        fetches.on_lookup(&cid, vec![provider]);
        assert!(fetches.nobody_has(now, &[]).is_empty(), "the provider was not asked yet");
        fetches.on_dont_have(provider, &cid);
        fetches.on_have(&provider, &cid);
        assert!(fetches.nobody_has(now, &[provider]).is_empty(), "it has it after all");
    }

    #[test]
    fn answers_count_for_one_round_and_lookups_merge() {
        let mut fetches = Fetches::new(Duration::from_secs(60));
        let (cid, now) = (block_cid(b"m4"), Instant::now());
        let (a, provider) = (PeerId::random(), PeerId::random());
        fetches.want(cid, now);
        fetches.on_lookup(&cid, vec![provider]);
        fetches.on_lookup(&cid, vec![]);
        fetches.on_dont_have(a, &cid);
        assert!(fetches.nobody_has(now, &[a]).is_empty(), "the provider found first is still expected to answer");
        fetches.on_dont_have(provider, &cid);
        // A new round: the earlier DontHaves no longer count.
        assert!(fetches.tick(now + REASK_INTERVAL, &[a]).given_up.is_empty());
        fetches.on_dont_have(a, &cid);
        fetches.forget_answers(&a);
        assert!(fetches.nobody_has(now, &[a]).is_empty(), "a reconnected: its answer is forgotten");
        fetches.on_dont_have(a, &cid);
        fetches.on_dont_have(provider, &cid);
        assert_eq!(fetches.nobody_has(now, &[a]).len(), 1);
    }

    #[test]
    fn fetches_are_reasked_and_time_out() {
        let mut fetches = Fetches::new(Duration::from_secs(10));
        let (cid, now) = (block_cid(b"m3"), Instant::now());
        fetches.want(cid, now);
        assert_eq!(fetches.tick(now + REASK_INTERVAL, &[]).reask, vec![cid]);
        let tick = fetches.tick(now + Duration::from_secs(11), &[]);
        assert_eq!(tick.given_up, vec![(cid, GiveUp::TimedOut, Duration::from_secs(11))]);
        assert!(!fetches.resolve(&cid, now), "a fetch that timed out is over");
    }

    #[test]
    fn late_answers_are_expected_for_a_while() {
        let mut fetches = Fetches::new(Duration::from_secs(10));
        let (cid, other, now) = (block_cid(b"m5"), block_cid(b"m6"), Instant::now());
        assert!(!fetches.ended_lately(&cid, now), "never wanted");
        fetches.want(cid, now);
        assert!(fetches.resolve(&cid, now));
        assert!(fetches.ended_lately(&cid, now + Duration::from_secs(1)));
        assert!(!fetches.ended_lately(&other, now));
        assert!(!fetches.ended_lately(&cid, now + LATE_ANSWERS), "not after LATE_ANSWERS");
        fetches.tick(now + LATE_ANSWERS, &[]);
        assert!(fetches.ended.is_empty(), "expired");
        for n in 0..(MAX_ENDED as u32 + 10) {
            let cid = block_cid(&n.to_le_bytes());
            fetches.want(cid, now);
            fetches.resolve(&cid, now);
        }
        assert!(fetches.ended.len() <= MAX_ENDED, "bounded");
    }
}
