//! The provider: what each peer asked of this node, as a state machine without I/O.
//!
//! Per peer: wantHave entries wait for a store query (at most [`QUERIES_PER_PEER`] outstanding, each answering
//! up to [`QUERY_BATCH`] entries at once); wantBlock entries queue in order and are served in batches of at most
//! [`MAX_BLOCKS_PER_MESSAGE`] blocks of one tree, [`SERVES_PER_PEER`] batches in flight; wanted blocks this node
//! does not hold yet wait and are queued again the moment they arrive (seed 003: no delay in availability);
//! wantHave entries for leaves of a download in progress here wait too, and are answered Have the moment the
//! leaf is stored, so nodes fetching the same dataset serve each other (a swarm).
//! Every list is bounded by [`MAX_PEER_WANTS`]; entries past a bound are refused and counted, so the actor can
//! strike the peer. Completions carry the peer's session, so one from a previous connection changes nothing.

use codex_protocol::Cid;
use codex_protocol::blockexc::{BlockAddress, WantEntry, WantType};
use libp2p::PeerId;
use std::collections::{HashMap, HashSet, VecDeque};

/// Entries each per-peer list may hold.
pub const MAX_PEER_WANTS: usize = 4096;
/// Blocks per delivery message (as the original).
pub const MAX_BLOCKS_PER_MESSAGE: usize = 20;
/// Delivery batches being read or sent per peer at once.
pub const SERVES_PER_PEER: usize = 2;
/// Store queries answering wantHave entries outstanding per peer.
pub const QUERIES_PER_PEER: usize = 2;
/// wantHave entries one store query answers.
pub const QUERY_BATCH: usize = 1024;

/// A set of addresses a peer named. Looked up for every arriving leaf and every want-list entry: foldhash (seeded
/// per process; the sets are bounded by [`MAX_PEER_WANTS`]), not SipHash, whose cost over CIDs showed in profiles
/// of 8-node swarms.
type AddressSet = HashSet<BlockAddress, foldhash::fast::RandomState>;

/// A wanted address and whether the peer wants to hear DontHave.
pub type Want = (BlockAddress, bool);

#[derive(Default)]
struct PeerQueue {
    session: u64,
    /// wantHave entries in order; an entry whose address left `have_set` (cancelled) is skipped when taken.
    have_queue: VecDeque<Want>,
    have_set: AddressSet,
    queries: usize,
    /// wantBlock entries in order; an entry whose address left `queued` (cancelled) is skipped when taken.
    wants: VecDeque<Want>,
    queued: AddressSet,
    waiting: AddressSet,
    /// wantHave entries for leaves being downloaded here: answered Have when they arrive.
    have_waiting: AddressSet,
    serving: usize,
}

/// Peers to tell about leaves that arrived.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Arrivals {
    /// Peers that asked for some of the blocks: serve them.
    pub serve: Vec<PeerId>,
    /// Peers that asked whether this node has some of them: send them Have for these.
    pub have: Vec<(PeerId, Vec<BlockAddress>)>,
}

/// The provider.
#[derive(Default)]
pub struct Provider {
    peers: HashMap<PeerId, PeerQueue>,
}

impl Provider {
    pub fn connect(&mut self, peer: PeerId, session: u64) {
        self.peers.insert(peer, PeerQueue { session, ..PeerQueue::default() });
    }

    pub fn remove(&mut self, peer: &PeerId) {
        self.peers.remove(peer);
    }

    /// Takes a peer's want-list; returns how many entries were refused because a list was full.
    pub fn on_wantlist(&mut self, peer: &PeerId, entries: Vec<WantEntry>) -> usize {
        let Some(q) = self.peers.get_mut(peer) else { return 0 };
        let mut refused = 0;
        for entry in entries {
            if entry.cancel {
                // O(1): cancelled entries stay in the queues and are skipped when taken (no scan per cancel).
                q.queued.remove(&entry.address);
                q.have_set.remove(&entry.address);
                q.waiting.remove(&entry.address);
                q.have_waiting.remove(&entry.address);
                continue;
            }
            match entry.want_type {
                WantType::WantHave if q.have_set.contains(&entry.address) => {}
                WantType::WantHave if q.have_set.len() < MAX_PEER_WANTS => {
                    compact(&mut q.have_queue, &q.have_set);
                    q.have_set.insert(entry.address.clone());
                    q.have_queue.push_back((entry.address, entry.send_dont_have));
                }
                WantType::WantBlock if q.queued.contains(&entry.address) => {}
                WantType::WantBlock if q.queued.len() < MAX_PEER_WANTS => {
                    compact(&mut q.wants, &q.queued);
                    q.queued.insert(entry.address.clone());
                    q.wants.push_back((entry.address, entry.send_dont_have));
                }
                _ => refused += 1,
            }
        }
        refused
    }

    /// The next wantHave entries to look up in the store, if the peer has a query slot free.
    pub fn next_query(&mut self, peer: &PeerId) -> Option<(u64, Vec<Want>)> {
        let q = self.peers.get_mut(peer)?;
        if q.queries >= QUERIES_PER_PEER || q.have_set.is_empty() {
            return None;
        }
        let mut batch = Vec::new();
        while batch.len() < QUERY_BATCH {
            let Some(want) = q.have_queue.pop_front() else { break };
            if q.have_set.remove(&want.0) {
                batch.push(want);
            }
        }
        if batch.is_empty() {
            return None;
        }
        q.queries += 1;
        Some((q.session, batch))
    }

    /// A store query of `session` finished.
    pub fn query_done(&mut self, peer: &PeerId, session: u64) {
        if let Some(q) = self.peers.get_mut(peer).filter(|q| q.session == session) {
            q.queries = q.queries.saturating_sub(1);
        }
    }

    /// The next batch of blocks to send, if a serve slot is free: up to [`MAX_BLOCKS_PER_MESSAGE`] addresses,
    /// all leaves of one tree or all plain CIDs.
    pub fn next_batch(&mut self, peer: &PeerId) -> Option<(u64, Vec<Want>)> {
        let q = self.peers.get_mut(peer)?;
        if q.serving >= SERVES_PER_PEER || q.queued.is_empty() {
            return None;
        }
        // Drop cancelled entries from the front, so the batch starts with a live one.
        while q.wants.front().is_some_and(|(address, _)| !q.queued.contains(address)) {
            q.wants.pop_front();
        }
        let mut batch: Vec<Want> = Vec::new();
        while batch.len() < MAX_BLOCKS_PER_MESSAGE {
            let Some((next, _)) = q.wants.front() else { break };
            let same_group = match (batch.first().map(|(a, _)| a), next) {
                (None, _) => true,
                (Some(BlockAddress::Leaf { tree: a, .. }), BlockAddress::Leaf { tree: b, .. }) => a == b,
                (Some(BlockAddress::Cid(_)), BlockAddress::Cid(_)) => true,
                _ => false,
            };
            if !same_group {
                break;
            }
            let Some(want) = q.wants.pop_front() else { break };
            if q.queued.remove(&want.0) {
                batch.push(want);
            }
        }
        q.serving += 1;
        Some((q.session, batch))
    }

    /// A batch of `session` was sent; `missing` were not held and wait for their arrival.
    pub fn served(&mut self, peer: &PeerId, session: u64, missing: Vec<BlockAddress>) {
        let Some(q) = self.peers.get_mut(peer).filter(|q| q.session == session) else { return };
        q.serving = q.serving.saturating_sub(1);
        for address in missing {
            if q.waiting.len() >= MAX_PEER_WANTS {
                break;
            }
            q.waiting.insert(address);
        }
    }

    /// A store query of `session` found these wantHave addresses not held, and they are leaves of a download in
    /// progress here: each is answered Have when it arrives (see [`Provider::arrived`]).
    pub fn have_later(&mut self, peer: &PeerId, session: u64, addresses: impl IntoIterator<Item = BlockAddress>) {
        let Some(q) = self.peers.get_mut(peer).filter(|q| q.session == session) else { return };
        for address in addresses {
            if q.have_waiting.len() >= MAX_PEER_WANTS {
                break;
            }
            q.have_waiting.insert(address);
        }
    }

    /// Leaves of `tree` arrived: peers waiting for the blocks get them queued, peers waiting to hear whether
    /// this node has them are named with the addresses to answer Have.
    pub fn arrived(&mut self, tree: Cid, indexes: &[u64]) -> Arrivals {
        let mut arrivals = Arrivals::default();
        for (peer, q) in &mut self.peers {
            if q.waiting.is_empty() && q.have_waiting.is_empty() {
                continue;
            }
            let mut serve = false;
            let mut have = Vec::new();
            for index in indexes {
                let address = BlockAddress::Leaf { tree, index: *index };
                if q.waiting.remove(&address) && q.queued.insert(address.clone()) {
                    q.wants.push_back((address.clone(), false));
                    serve = true;
                }
                if q.have_waiting.remove(&address) {
                    have.push(address);
                }
            }
            if serve {
                arrivals.serve.push(*peer);
            }
            if !have.is_empty() {
                arrivals.have.push((*peer, have));
            }
        }
        arrivals
    }

    /// The download of `tree` ended here: questions about its leaves will not be answered.
    pub fn forget_tree(&mut self, tree: &Cid) {
        for q in self.peers.values_mut() {
            q.have_waiting.retain(|address| !matches!(address, BlockAddress::Leaf { tree: t, .. } if t == tree));
        }
    }

    /// Live entries held for `peer` (for tests and diagnostics).
    pub fn held(&self, peer: &PeerId) -> usize {
        self.peers.get(peer).map_or(0, |q| q.have_set.len() + q.queued.len() + q.waiting.len() + q.have_waiting.len())
    }
}

/// Drops cancelled entries once a queue holds twice the live ones, so stale entries never outgrow the bound.
fn compact(queue: &mut VecDeque<Want>, live: &AddressSet) {
    if queue.len() >= 2 * MAX_PEER_WANTS.max(live.len()) {
        queue.retain(|(address, _)| live.contains(address));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use codex_protocol::cid::{ROOT_CODEC, block_cid, cid_from_sha256};

    fn tree() -> Cid {
        cid_from_sha256(ROOT_CODEC, &[1; 32])
    }

    fn entry(address: BlockAddress, want_type: WantType, cancel: bool) -> WantEntry {
        WantEntry { address, priority: 0, cancel, want_type, send_dont_have: true }
    }

    fn leaf(index: u64) -> BlockAddress {
        BlockAddress::Leaf { tree: tree(), index }
    }

    #[test]
    fn lists_are_bounded_and_overflow_is_counted() {
        let mut provider = Provider::default();
        let peer = PeerId::random();
        provider.connect(peer, 1);
        let wants: Vec<WantEntry> = (0..5000).map(|i| entry(leaf(i), WantType::WantBlock, false)).collect();
        assert_eq!(provider.on_wantlist(&peer, wants), 5000 - MAX_PEER_WANTS);
        let haves: Vec<WantEntry> = (0..5000).map(|i| entry(leaf(i), WantType::WantHave, false)).collect();
        assert_eq!(provider.on_wantlist(&peer, haves), 5000 - MAX_PEER_WANTS);
        assert_eq!(provider.held(&peer), 2 * MAX_PEER_WANTS);
        // Re-sending a queued want is not an overflow.
        assert_eq!(provider.on_wantlist(&peer, vec![entry(leaf(0), WantType::WantBlock, false)]), 0);
    }

    #[test]
    fn queries_and_serves_have_a_budget_per_peer() {
        let mut provider = Provider::default();
        let peer = PeerId::random();
        provider.connect(peer, 7);
        let haves: Vec<WantEntry> = (0..3000).map(|i| entry(leaf(i), WantType::WantHave, false)).collect();
        provider.on_wantlist(&peer, haves);
        let (session, first) = provider.next_query(&peer).expect("first query");
        assert_eq!((session, first.len()), (7, QUERY_BATCH));
        assert_eq!(provider.next_query(&peer).expect("second").1.len(), QUERY_BATCH);
        assert!(provider.next_query(&peer).is_none(), "two queries outstanding at most");
        provider.query_done(&peer, 7);
        assert_eq!(provider.next_query(&peer).expect("third").1.len(), 3000 - 2 * QUERY_BATCH);

        let mut wants: Vec<WantEntry> = (0..25).map(|i| entry(leaf(i), WantType::WantBlock, false)).collect();
        wants.push(entry(BlockAddress::Cid(block_cid(b"m")), WantType::WantBlock, false));
        provider.on_wantlist(&peer, wants);
        assert_eq!(provider.next_batch(&peer).expect("batch").1.len(), MAX_BLOCKS_PER_MESSAGE);
        let (_, second) = provider.next_batch(&peer).expect("batch");
        assert_eq!(second.len(), 5, "a batch holds one tree's leaves only");
        assert!(provider.next_batch(&peer).is_none(), "two batches in flight at most");
        provider.served(&peer, 7, vec![]);
        assert_eq!(provider.next_batch(&peer).expect("cid batch").1.len(), 1);
    }

    #[test]
    fn a_completion_from_an_old_session_changes_nothing() {
        let mut provider = Provider::default();
        let peer = PeerId::random();
        provider.connect(peer, 1);
        provider.on_wantlist(&peer, (0..60).map(|i| entry(leaf(i), WantType::WantBlock, false)).collect());
        provider.next_batch(&peer).expect("batch");
        // The peer reconnects: a new session with empty counters.
        provider.connect(peer, 2);
        provider.on_wantlist(&peer, (0..60).map(|i| entry(leaf(i), WantType::WantBlock, false)).collect());
        provider.next_batch(&peer).expect("batch");
        provider.next_batch(&peer).expect("batch");
        provider.served(&peer, 1, vec![]);
        assert!(provider.next_batch(&peer).is_none(), "the old session's completion freed no slot");
        provider.served(&peer, 2, vec![]);
        assert!(provider.next_batch(&peer).is_some());
    }

    #[test]
    fn cancels_are_cheap_and_stale_entries_stay_bounded() {
        let mut provider = Provider::default();
        let peer = PeerId::random();
        provider.connect(peer, 1);
        for round in 0..10u64 {
            let wants = (0..MAX_PEER_WANTS as u64).map(|i| entry(leaf(round * 10_000 + i), WantType::WantBlock, false));
            let haves = (0..MAX_PEER_WANTS as u64).map(|i| entry(leaf(round * 10_000 + i), WantType::WantHave, false));
            assert_eq!(provider.on_wantlist(&peer, wants.chain(haves).collect()), 0);
            let cancels =
                (0..MAX_PEER_WANTS as u64).map(|i| entry(leaf(round * 10_000 + i), WantType::WantBlock, true));
            assert_eq!(provider.on_wantlist(&peer, cancels.collect()), 0);
            assert_eq!(provider.held(&peer), 0);
        }
        let q = &provider.peers[&peer];
        assert!(q.wants.len() <= 2 * MAX_PEER_WANTS + 1 && q.have_queue.len() <= 2 * MAX_PEER_WANTS + 1);
        assert!(provider.next_batch(&peer).is_none() && provider.next_query(&peer).is_none(), "all cancelled");
        // Wanted, cancelled, wanted again: served once.
        provider.on_wantlist(&peer, vec![entry(leaf(1), WantType::WantBlock, false)]);
        provider.on_wantlist(&peer, vec![entry(leaf(1), WantType::WantBlock, true)]);
        provider.on_wantlist(&peer, vec![entry(leaf(1), WantType::WantBlock, false)]);
        assert_eq!(provider.next_batch(&peer).expect("batch").1, vec![(leaf(1), true)]);
        assert!(provider.next_batch(&peer).is_none());
    }

    #[test]
    fn missing_blocks_wait_for_their_arrival_and_cancels_remove_them() {
        let mut provider = Provider::default();
        let (a, b) = (PeerId::random(), PeerId::random());
        provider.connect(a, 1);
        provider.connect(b, 2);
        provider.on_wantlist(&a, vec![entry(leaf(5), WantType::WantBlock, false)]);
        provider.on_wantlist(&b, vec![entry(leaf(5), WantType::WantBlock, false)]);
        for (peer, session) in [(a, 1), (b, 2)] {
            let (_, batch) = provider.next_batch(&peer).expect("batch");
            provider.served(&peer, session, batch.into_iter().map(|(address, _)| address).collect());
        }
        provider.on_wantlist(&b, vec![entry(leaf(5), WantType::WantBlock, true)]);
        assert_eq!(provider.arrived(tree(), &[5]).serve, vec![a]);
        assert_eq!(provider.next_batch(&a).expect("woken").1, vec![(leaf(5), false)]);
    }

    #[test]
    fn have_questions_about_leaves_being_fetched_are_answered_on_arrival() {
        let mut provider = Provider::default();
        let (a, b) = (PeerId::random(), PeerId::random());
        provider.connect(a, 1);
        provider.connect(b, 2);
        provider.have_later(&a, 1, [leaf(3), leaf(4)]);
        provider.have_later(&b, 2, [leaf(4)]);
        // A completion from an old session is ignored; a cancel withdraws the question.
        provider.have_later(&b, 1, [leaf(3)]);
        provider.on_wantlist(&b, vec![entry(leaf(4), WantType::WantHave, true)]);
        let arrivals = provider.arrived(tree(), &[3, 4]);
        assert!(arrivals.serve.is_empty());
        assert_eq!(arrivals.have, vec![(a, vec![leaf(3), leaf(4)])]);
        // Each question is answered once.
        assert_eq!(provider.arrived(tree(), &[3, 4]), Arrivals::default());
        // A download that ended takes its questions with it.
        provider.have_later(&a, 1, [leaf(7)]);
        provider.forget_tree(&tree());
        assert_eq!(provider.held(&a), 0);
        // The list is bounded.
        provider.have_later(&a, 1, (0..MAX_PEER_WANTS as u64 + 10).map(leaf));
        assert_eq!(provider.held(&a), MAX_PEER_WANTS);
    }
}
