//! The requester: downloads of leaves of dataset trees from peers, as a state machine without I/O.
//!
//! A download fetches any set of leaves of one tree, given as an index iterator (a whole dataset is `0..n`
//! without the leaves already held; a slot is its own set). It keeps a window of wanted leaves: new window
//! entries are announced to every peer as wantHave; peers that answer Have get wantBlock requests, spread by how
//! many requests each has in flight (at most `peer_in_flight` each), and the delivered leaves go to the store.
//! Requests unanswered for `request_timeout` go back to wanted (the peer is struck); leaves nobody has are
//! re-announced every [`REASK_INTERVAL`] and their providers looked up. Scheduling runs only when something it
//! depends on changed (a Have, a freed request slot, a new window entry, a peer gone).
//!
//! Per-peer state is bounded by the window: a peer's Have set only holds indexes in a download's window.

use super::recent::Recent;
use codex_protocol::Cid;
use codex_protocol::blockexc::BlockAddress;
use libp2p::PeerId;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

/// A set of leaf indexes (a peer's Have or DontHave answers for one tree). Looked up for every wanted leaf at each scheduling: foldhash (seeded per process), not
/// SipHash, whose cost showed in profiles of 8-node swarms.
type LeafIndexes = HashSet<u64, foldhash::fast::RandomState>;

/// Leaves nobody has are re-announced (and looked up) this often.
pub const REASK_INTERVAL: Duration = Duration::from_secs(2);
/// A decoding download's data leaf is taken as lost, and the fallback (parity) leaves of its group requested,
/// when every connected peer said DontHave, or when none said Have this long after it entered the window.
pub const FALLBACK_AFTER: Duration = Duration::from_secs(2);
/// Fallback leaves are requested after this long in the window whatever their group's data looks like.
pub const FALLBACK_MAX: Duration = Duration::from_secs(5);
/// A running download looks its providers up again this often, so members of a swarm that started at the same
/// moment (each lookup finding nobody else yet) find each other.
pub const LOCATE_INTERVAL: Duration = Duration::from_secs(10);
/// Requests a peer starts with before its delivery rate is known.
pub const INITIAL_IN_FLIGHT: usize = 16;
/// Requests a peer may always have, however slow it is.
pub const MIN_IN_FLIGHT: usize = 4;
/// How long a request should wait in a peer's queue: a peer gets as many requests as it delivers in this time
/// (Little's law), within [`MIN_IN_FLIGHT`] and the configured maximum. A deep queue at a seeder on a slow
/// uplink would commit every leaf to it long before other members could offer it.
pub const QUEUE_TARGET: Duration = Duration::from_millis(250);
/// The window of a download nobody else is known to fetch: its leaves' order only matters to a swarm, and a
/// larger one held more memory at the receiver of a 10 GiB download (peak 198 MiB against 126 MiB).
pub const UNSHARED_WINDOW: usize = 512;
/// Leaves from the one a stream reader waits for that are asked for before any other.
pub const URGENT_RUN: u64 = 8;
/// In the end game (nothing left to take into the window), a request older than this is also sent to another
/// peer that has the leaf; the first delivery wins and the other request is cancelled.
pub const ENDGAME_AFTER: Duration = Duration::from_secs(2);
/// Ended downloads remembered (for late answers) at most.
const MAX_ENDED_DOWNLOADS: usize = 64;

/// Which leaves of a download are fallbacks (an erasure-coded dataset's parity): asked for only when a data
/// leaf of their group looks lost (every connected peer said DontHave, or none said Have [`FALLBACK_AFTER`]
/// after it entered the window), or after [`FALLBACK_MAX`]. When nothing is lost, the groups fill from data
/// alone and no parity is transferred.
pub struct Fallback {
    /// The data leaves of a fallback leaf's group, or `None` when `index` is not a fallback leaf.
    pub group_data: Box<dyn Fn(u64) -> Option<Vec<u64>> + Send>,
    /// For a download that takes data leaves only, in order (a stream reads them): the leaves to take instead,
    /// group by group with their fallbacks, once a data leaf of the window looks lost. The window's leaves not
    /// yet asked for then leave it (the new order brings them back with their groups).
    pub on_loss: Option<Box<dyn Iterator<Item = u64> + Send>>,
}

/// Where a leaf of the window stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafState {
    /// Nobody was asked yet, or the last request failed.
    Wanted,
    /// Asked of `peer` at `at`; in the end game also of `dup`.
    Requested { peer: PeerId, at: Instant, dup: Option<PeerId> },
    /// Delivered, being verified and written.
    Storing,
}

impl LeafState {
    /// The state once `peer` no longer answers this leaf's request (it left, or said DontHave): the other copy
    /// of an end-game request, or wanted again. `None` when `peer` was not asked.
    fn without(&self, peer: &PeerId) -> Option<LeafState> {
        let LeafState::Requested { peer: asked, at, dup } = *self else { return None };
        if asked == *peer {
            Some(dup.map_or(LeafState::Wanted, |other| LeafState::Requested { peer: other, at, dup: None }))
        } else if dup == Some(*peer) {
            Some(LeafState::Requested { peer: asked, at, dup: None })
        } else {
            None
        }
    }
}

/// Tuning of the requester.
#[derive(Debug, Clone)]
pub struct RequesterConfig {
    pub window: usize,
    pub peer_in_flight: usize,
    pub request_timeout: Duration,
    pub peer_idle_timeout: Duration,
    pub stall_timeout: Duration,
}

struct Download {
    manifest_cid: Cid,
    /// Indexes not yet taken into the window.
    pending: Box<dyn Iterator<Item = u64> + Send>,
    window: BTreeMap<u64, LeafState>,
    fallback: Option<Fallback>,
    /// When each window leaf entered the window (downloads with fallbacks only).
    entered: HashMap<u64, Instant>,
    started: Instant,
    last_progress: Instant,
    last_reask: Instant,
    last_locate: Instant,
    duplicates: u64,
    endgame: u64,
    /// Requests for leaves one peer alone had, and for leaves several had that went to a peer that alone had
    /// others (a seeder's upload spent on what members could give).
    sole_asked: u64,
    common_of_sole: u64,
    /// The leaf a stream reader waits for: it and the [`URGENT_RUN`] - 1 after it go first, unless the download
    /// is `shared`.
    urgent: Option<u64>,
    /// Other peers fetch this tree too (they asked this node for leaves it does not hold yet). Every member of
    /// a swarm streams from the lowest leaf it lacks, so reader-first would have them all ask the seeder for the
    /// same few leaves at once: a shared download takes the rarest leaves only.
    shared: bool,
    /// Breaks ties between equally rare leaves of a shared download in an order of its own, so members of a
    /// swarm ask for different leaves and have something to trade (an unshared download goes in index order).
    order: foldhash::fast::RandomState,
}

struct PeerWants {
    /// Window leaves the peer said it has, per tree.
    have: HashMap<Cid, LeafIndexes>,
    /// Window leaves of downloads with fallbacks the peer said it does not have, per tree.
    dont: HashMap<Cid, LeafIndexes>,
    /// Running downloads the peer fetches too, whose wanted leaves it was told of since (see
    /// [`Requester::peer_fetches`]).
    told: HashSet<Cid>,
    in_flight: usize,
    last_delivery: Instant,
    /// Requests this peer may have outstanding: its delivery rate × [`QUEUE_TARGET`].
    cap: usize,
    /// Delivered leaves per second (moving average), 0 until measured.
    rate: f64,
    /// Leaves delivered since `sampled`, and whether the peer reached its cap meanwhile.
    delivered: u32,
    limited: bool,
    sampled: Instant,
}

/// What to do with a delivered leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Verify and store it.
    Store,
    /// Drop it: held already, being stored, or outside the window.
    Ignored,
    /// Drop it and blame the sender: no download wants this tree.
    Unsolicited,
}

/// What the store said of one delivered leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Written (or already held).
    Kept,
    /// Failed verification.
    Rejected,
}

/// What the periodic check found.
#[derive(Debug, Default)]
pub struct Tick {
    /// One entry per request that timed out, naming the peer that did not answer.
    pub timed_out: Vec<PeerId>,
    /// Leaves to announce again as wantHave, per tree.
    pub reask: Vec<(Cid, Vec<u64>)>,
    /// CIDs whose providers to look up.
    pub locate: Vec<Cid>,
    /// Downloads with no block for `stall_timeout`: (tree, manifest CID). They are dropped.
    pub stalled: Vec<(Cid, Cid)>,
    /// Peers owing blocks that delivered nothing for `peer_idle_timeout`.
    pub idle: Vec<PeerId>,
}

/// A download that ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    pub manifest_cid: Cid,
    pub elapsed: Duration,
    /// Leaves delivered that were already held or being stored (end-game losers, late answers).
    pub duplicates: u64,
    /// End-game requests sent to a second peer.
    pub endgame: u64,
    /// Requests for leaves one peer alone had.
    pub sole_asked: u64,
    /// Requests for leaves several peers had, sent to a peer that alone had others.
    pub common_of_sole: u64,
}

/// The requester.
pub struct Requester {
    config: RequesterConfig,
    downloads: HashMap<Cid, Download>,
    peers: HashMap<PeerId, PeerWants>,
    dirty: bool,
    /// Requests to cancel (the other copy of an end-game request that was answered).
    cancels: Vec<(PeerId, BlockAddress)>,
    /// Trees whose download ended lately: leaves of theirs still arriving answer requests sent before the end
    /// (end-game copies, cancels still on their way).
    ended: Recent<Cid>,
}

fn leaf(tree: Cid, index: u64) -> BlockAddress {
    BlockAddress::Leaf { tree, index }
}

impl Requester {
    pub fn new(config: RequesterConfig) -> Self {
        Self {
            config,
            downloads: HashMap::new(),
            peers: HashMap::new(),
            dirty: false,
            cancels: Vec::new(),
            ended: Recent::new(super::fetch::LATE_ANSWERS, MAX_ENDED_DOWNLOADS),
        }
    }

    pub fn is_running(&self, tree: &Cid) -> bool {
        self.downloads.contains_key(tree)
    }

    /// The trees being downloaded.
    pub fn trees(&self) -> impl Iterator<Item = (&Cid, &Cid)> {
        self.downloads.iter().map(|(tree, d)| (tree, &d.manifest_cid))
    }

    /// Leaves of `tree` in the window and their state (for tests and diagnostics).
    pub fn window(&self, tree: &Cid) -> Vec<(u64, LeafState)> {
        self.downloads.get(tree).map(|d| d.window.iter().map(|(i, s)| (*i, *s)).collect()).unwrap_or_default()
    }

    /// Starts fetching `indexes` of `tree`. Returns the leaves to announce, or `None` if it already runs.
    pub fn start(
        &mut self,
        tree: Cid,
        manifest_cid: Cid,
        indexes: Box<dyn Iterator<Item = u64> + Send>,
        now: Instant,
    ) -> Option<Vec<u64>> {
        self.start_with_fallback(tree, manifest_cid, indexes, None, now)
    }

    /// [`Requester::start`], with `fallback` leaves held back until they look needed (see [`Fallback`]).
    pub fn start_with_fallback(
        &mut self,
        tree: Cid,
        manifest_cid: Cid,
        indexes: Box<dyn Iterator<Item = u64> + Send>,
        fallback: Option<Fallback>,
        now: Instant,
    ) -> Option<Vec<u64>> {
        if self.downloads.contains_key(&tree) {
            return None;
        }
        let mut download = Download {
            manifest_cid,
            pending: indexes,
            window: BTreeMap::new(),
            fallback,
            entered: HashMap::new(),
            started: now,
            last_progress: now,
            last_reask: now,
            last_locate: now,
            duplicates: 0,
            endgame: 0,
            sole_asked: 0,
            common_of_sole: 0,
            urgent: None,
            shared: false,
            order: foldhash::fast::RandomState::default(),
        };
        let added = refill(self.config.window, &mut download, now);
        self.downloads.insert(tree, download);
        self.dirty = true;
        Some(added)
    }

    /// True when the download of `tree` has nothing left to fetch (every leaf delivered and stored).
    pub fn is_done(&self, tree: &Cid) -> bool {
        self.downloads.get(tree).is_some_and(|d| d.window.is_empty())
    }

    /// Drops `indexes` of `tree` from the window (no longer needed); requests out for them stop counting against
    /// their peers. Returns the leaves newly in the window (to announce).
    pub fn forget(&mut self, tree: &Cid, indexes: &[u64], now: Instant) -> Vec<u64> {
        let Some(download) = self.downloads.get_mut(tree) else { return Vec::new() };
        for index in indexes {
            match download.window.get(index) {
                Some(LeafState::Storing) | None => {}
                Some(LeafState::Wanted) => {
                    download.window.remove(index);
                }
                Some(LeafState::Requested { peer, dup, .. }) => {
                    release(&mut self.peers, peer, dup.as_ref());
                    download.window.remove(index);
                }
            }
        }
        for index in indexes {
            download.entered.remove(index);
        }
        for p in self.peers.values_mut() {
            for sets in [&mut p.have, &mut p.dont] {
                if let Some(set) = sets.get_mut(tree) {
                    for index in indexes {
                        set.remove(index);
                    }
                }
            }
        }
        download.last_progress = now;
        let added = refill(self.config.window, download, now);
        self.dirty = true;
        added
    }

    /// True when the download of `tree` has fallback leaves (it wants to hear DontHave).
    pub fn has_fallbacks(&self, tree: &Cid) -> bool {
        self.downloads.get(tree).is_some_and(|d| d.fallback.is_some())
    }

    /// Ends the download of `tree` (complete, failed or abandoned).
    pub fn end(&mut self, tree: &Cid, now: Instant) -> Option<Ended> {
        let download = self.downloads.remove(tree)?;
        self.ended.note(*tree, now);
        for peer in self.peers.values_mut() {
            peer.have.remove(tree);
            peer.dont.remove(tree);
            peer.told.remove(tree);
        }
        // Requests still out for this tree no longer count against their peers.
        for state in download.window.values() {
            if let LeafState::Requested { peer, dup, .. } = state {
                release(&mut self.peers, peer, dup.as_ref());
            }
        }
        Some(Ended {
            manifest_cid: download.manifest_cid,
            elapsed: now.duration_since(download.started),
            duplicates: download.duplicates,
            endgame: download.endgame,
            sole_asked: download.sole_asked,
            common_of_sole: download.common_of_sole,
        })
    }

    pub fn peer_connected(&mut self, peer: PeerId, now: Instant) {
        self.peers.insert(
            peer,
            PeerWants {
                have: HashMap::new(),
                dont: HashMap::new(),
                told: HashSet::new(),
                in_flight: 0,
                last_delivery: now,
                cap: INITIAL_IN_FLIGHT.min(self.config.peer_in_flight),
                rate: 0.0,
                delivered: 0,
                limited: false,
                sampled: now,
            },
        );
    }

    /// A peer left: its requests go back to wanted.
    pub fn peer_left(&mut self, peer: &PeerId) {
        if self.peers.remove(peer).is_none() {
            return;
        }
        for download in self.downloads.values_mut() {
            for state in download.window.values_mut() {
                if let Some(left) = state.without(peer) {
                    *state = left;
                }
            }
        }
        self.dirty = true;
    }

    /// Everything wanted, for a peer that just connected.
    pub fn wanted(&self) -> Vec<BlockAddress> {
        let mut out = Vec::new();
        for (tree, download) in &self.downloads {
            for (index, state) in &download.window {
                if *state != LeafState::Storing {
                    out.push(leaf(*tree, *index));
                }
            }
        }
        out
    }

    /// `peer` asked about leaves of `tree`, which this node fetches too. The first time, returns the wanted
    /// leaves of the window to announce to it: the wantHave entries it was sent when it connected were dropped
    /// if it did not fetch the tree yet (a member joining a swarm), and without them it would never say which
    /// leaves it gets, so this node would keep fetching them from the seeder.
    pub fn peer_fetches(&mut self, peer: &PeerId, tree: &Cid) -> Vec<u64> {
        let Some(download) = self.downloads.get(tree) else { return Vec::new() };
        let Some(p) = self.peers.get_mut(peer) else { return Vec::new() };
        if !p.told.insert(*tree) {
            return Vec::new();
        }
        download.window.iter().filter(|(_, state)| **state != LeafState::Storing).map(|(index, _)| *index).collect()
    }

    /// A peer said whether it has a leaf.
    pub fn on_presence(&mut self, peer: &PeerId, tree: Cid, index: u64, have: bool) {
        let Some(download) = self.downloads.get_mut(&tree) else { return };
        let Some(state) = download.window.get_mut(&index) else { return };
        let Some(p) = self.peers.get_mut(peer) else { return };
        if have {
            p.have.entry(tree).or_default().insert(index);
            self.dirty |= *state == LeafState::Wanted;
            return;
        }
        if let Some(set) = p.have.get_mut(&tree) {
            set.remove(&index);
        }
        if download.fallback.is_some() {
            p.dont.entry(tree).or_default().insert(index);
            self.dirty = true;
        }
        if let Some(left) = state.without(peer) {
            *state = left;
            p.in_flight = p.in_flight.saturating_sub(1);
            self.dirty = true;
        }
    }

    /// A peer delivered a leaf. A leaf of the window not being stored goes to the store whoever sent it (the
    /// store verifies it): a late answer to a request that timed out, or an answer racing another peer's, is
    /// still data. A leaf of a running download that is not (or no longer) needed is ignored without blame, and
    /// so is one of a download that ended lately. Only a leaf of no such download is unsolicited.
    pub fn on_delivery(&mut self, from: &PeerId, tree: Cid, index: u64, now: Instant) -> Delivery {
        let Some(download) = self.downloads.get_mut(&tree) else {
            return if self.ended.contains(&tree, now) { Delivery::Ignored } else { Delivery::Unsolicited };
        };
        // Whatever becomes of it, the leaf came over the peer's link: it counts for the peer's rate.
        if let Some(p) = self.peers.get_mut(from) {
            p.delivered = p.delivered.saturating_add(1);
        }
        let Some(state) = download.window.get_mut(&index) else {
            download.duplicates += 1;
            return Delivery::Ignored;
        };
        let asked = match *state {
            LeafState::Storing => {
                download.duplicates += 1;
                return Delivery::Ignored;
            }
            LeafState::Requested { peer: asked, dup, .. } => Some((asked, dup)),
            LeafState::Wanted => None,
        };
        *state = LeafState::Storing;
        if let Some((asked, dup)) = asked {
            release(&mut self.peers, &asked, dup.as_ref());
            if let Some(dup) = dup {
                // An end-game request was answered: the other copy is no longer needed.
                let other = if *from == asked { dup } else { asked };
                self.cancels.push((other, leaf(tree, index)));
            }
        }
        self.dirty = true;
        Delivery::Store
    }

    /// A stream reader of `tree` waits for leaf `index` (or none): the leaves from it go first.
    pub fn set_urgent(&mut self, tree: &Cid, index: Option<u64>) {
        if let Some(download) = self.downloads.get_mut(tree)
            && download.urgent != index
        {
            download.urgent = index;
            self.dirty = true;
        }
    }

    /// Other peers were found fetching `tree` too (see `Download::shared`): its window grows to the configured
    /// size. Returns the leaves newly in the window (to announce).
    pub fn mark_shared(&mut self, tree: &Cid, now: Instant) -> Vec<u64> {
        let Some(download) = self.downloads.get_mut(tree).filter(|d| !d.shared) else { return Vec::new() };
        download.shared = true;
        let added = refill(self.config.window, download, now);
        self.dirty |= !added.is_empty();
        added
    }

    /// Requests to cancel: the unanswered copies of end-game requests.
    pub fn take_cancels(&mut self) -> Vec<(PeerId, BlockAddress)> {
        std::mem::take(&mut self.cancels)
    }

    /// The store verified leaves delivered by `peer`. Returns how many were rejected and the leaves newly in
    /// the window (to announce).
    pub fn on_stored(&mut self, peer: &PeerId, tree: Cid, outcomes: &[(u64, Stored)], now: Instant) -> (u32, Vec<u64>) {
        let Some(download) = self.downloads.get_mut(&tree) else { return (0, Vec::new()) };
        let mut rejected = 0;
        let mut kept = Vec::new();
        for (index, outcome) in outcomes {
            match outcome {
                Stored::Kept => {
                    download.window.remove(index);
                    download.entered.remove(index);
                    download.last_progress = now;
                    kept.push(*index);
                }
                Stored::Rejected => {
                    download.window.insert(*index, LeafState::Wanted);
                    if let Some(set) = self.peers.get_mut(peer).and_then(|p| p.have.get_mut(&tree)) {
                        set.remove(index);
                    }
                    rejected += 1;
                }
            }
        }
        if let Some(p) = self.peers.get_mut(peer)
            && !kept.is_empty()
        {
            p.last_delivery = now;
        }
        for p in self.peers.values_mut() {
            for sets in [&mut p.have, &mut p.dont] {
                if let Some(set) = sets.get_mut(&tree) {
                    for index in &kept {
                        set.remove(index);
                    }
                }
            }
        }
        let added = refill(self.config.window, download, now);
        self.dirty |= rejected > 0 || !added.is_empty();
        (rejected, added)
    }

    /// Assigns wanted leaves to peers that have them: rarest leaf first (fewest peers said Have; ties in the
    /// download's own random order), each to the peer with the most room among those that have it; in the end
    /// game, late requests also go to a second peer. Returns the wantBlock requests to send. Does nothing unless
    /// something changed since the last call.
    pub fn schedule(&mut self, now: Instant) -> Vec<(PeerId, Vec<BlockAddress>)> {
        if !std::mem::take(&mut self.dirty) {
            return Vec::new();
        }
        let window_size = self.config.window;
        let mut batches: HashMap<PeerId, Vec<BlockAddress>> = HashMap::new();
        for (tree, download) in &mut self.downloads {
            // The peers that can take a request and said Have for some leaf of this tree, with their load and
            // cap: only they are asked.
            let mut candidates: Vec<Candidate<'_>> = self
                .peers
                .iter()
                .filter(|(_, p)| p.in_flight < p.cap)
                .filter_map(|(id, p)| {
                    let have = p.have.get(tree).filter(|h| !h.is_empty())?;
                    Some(Candidate { peer: *id, have, load: p.in_flight, cap: p.cap, sole: 0 })
                })
                .collect();
            if candidates.is_empty() {
                continue;
            }
            let sets = TreeSets::of(&self.peers, tree);
            let held_back = held_back_fallbacks(download, &sets, now);
            // Rarest first: what only one peer has (a seeder, early in a swarm) takes that peer's room before
            // what several have, so a seeder's upload goes to leaves nobody else has yet and a leaf a member
            // already holds is fetched from it. Before all that, the few leaves a stream reader waits for.
            let urgent = download.urgent.filter(|_| !download.shared).map(|from| from..from.saturating_add(URGENT_RUN));
            let mut wanted: Vec<(bool, usize, u64, u64)> = download
                .window
                .iter()
                .filter(|(index, state)| **state == LeafState::Wanted && !held_back.contains(*index))
                .filter_map(|(index, _)| {
                    let mut holders = sets.have.iter().filter(|(_, have)| have.contains(index));
                    let first = holders.next()?;
                    let count = 1 + holders.count();
                    if count == 1
                        && let Some(sole) = candidates.iter_mut().find(|c| c.peer == first.0)
                    {
                        sole.sole += 1;
                    }
                    if urgent.as_ref().is_some_and(|run| run.contains(index)) {
                        return Some((false, 0, *index, *index));
                    }
                    // Alone, a download goes in order (what it holds after an interruption is a prefix, and a
                    // reader is served as it goes); shared, in its own random order.
                    let order = if download.shared { download.order.hash_one(index) } else { *index };
                    Some((true, count, order, *index))
                })
                .collect();
            wanted.sort_unstable();
            let mut open = candidates.len();
            for (_, count, _, index) in wanted {
                if open == 0 {
                    break;
                }
                let Some(best) = roomiest(&mut candidates, index, None) else { continue };
                if count == 1 {
                    download.sole_asked += 1;
                } else if best.sole > 0 {
                    download.common_of_sole += 1;
                }
                best.load += 1;
                if best.load >= best.cap {
                    open -= 1;
                }
                download.window.insert(index, LeafState::Requested { peer: best.peer, at: now, dup: None });
                batches.entry(best.peer).or_default().push(leaf(*tree, index));
            }
            // The end game: nothing is left to take into the window, so a late request costs the download its
            // end. Ask a second peer that has the leaf and room; the first delivery cancels the other request.
            if download.window.len() < window_of(window_size, download) && open > 0 {
                for (index, state) in download.window.iter_mut() {
                    let LeafState::Requested { peer, at, dup: None } = *state else { continue };
                    if now.duration_since(at) < ENDGAME_AFTER {
                        continue;
                    }
                    let Some(other) = roomiest(&mut candidates, *index, Some(peer)) else { continue };
                    other.load += 1;
                    download.endgame += 1;
                    *state = LeafState::Requested { peer, at, dup: Some(other.peer) };
                    batches.entry(other.peer).or_default().push(leaf(*tree, *index));
                }
            }
            let loads: Vec<(PeerId, usize)> = candidates.into_iter().map(|c| (c.peer, c.load)).collect();
            for (peer, load) in loads {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.in_flight = load;
                    p.limited |= load >= p.cap;
                }
            }
        }
        batches.into_iter().collect()
    }

    /// Periodic work: request timeouts, re-asking, stalled downloads, idle peers.
    pub fn tick(&mut self, now: Instant) -> Tick {
        let mut tick = Tick::default();
        self.ended.expire(now);
        let window_size = self.config.window;
        for (tree, download) in &mut self.downloads {
            let end_game = download.window.len() < window_of(window_size, download);
            for state in download.window.values_mut() {
                if let LeafState::Requested { peer, at, dup } = *state {
                    let waited = now.duration_since(at);
                    if waited > self.config.request_timeout {
                        *state = LeafState::Wanted;
                        tick.timed_out.extend(std::iter::once(peer).chain(dup));
                        self.dirty = true;
                    } else if end_game && dup.is_none() && waited >= ENDGAME_AFTER {
                        // A late request in the end game: look for a second peer.
                        self.dirty = true;
                    }
                }
            }
            if now.duration_since(download.last_locate) >= LOCATE_INTERVAL {
                download.last_locate = now;
                tick.locate.extend([*tree, download.manifest_cid]);
            }
            let sets = TreeSets::of(&self.peers, tree);
            if now.duration_since(download.last_reask) >= REASK_INTERVAL {
                let unheld: Vec<u64> = download
                    .window
                    .iter()
                    .filter(|(index, state)| **state == LeafState::Wanted && !sets.someone_has(index))
                    .map(|(index, _)| *index)
                    .collect();
                if !unheld.is_empty() {
                    download.last_reask = now;
                    tick.reask.push((*tree, unheld));
                    if !tick.locate.contains(tree) {
                        tick.locate.extend([*tree, download.manifest_cid]);
                    }
                }
            }
            if download.fallback.as_ref().is_some_and(|f| f.on_loss.is_some())
                && download.window.keys().any(|index| looks_lost(download, &sets, index, now))
                && let Some(order) = download.fallback.as_mut().and_then(|f| f.on_loss.take())
            {
                // A data leaf is lost: its group's other members are needed, so the download goes group by group.
                tracing::info!(tree = %codex_protocol::cid::format_cid(tree), "a data leaf looks lost; fetching group by group");
                download.pending = order;
                download.window.retain(|_, state| *state != LeafState::Wanted);
                let window = &download.window;
                download.entered.retain(|index, _| window.contains_key(index));
                refill(window_size, download, now);
                self.dirty = true;
            }
            if download.fallback.is_some() && download.window.values().any(|state| *state == LeafState::Wanted) {
                // Fallback leaves become eligible with time: look again.
                self.dirty = true;
            }
            if now.duration_since(download.last_progress) > self.config.stall_timeout {
                tick.stalled.push((*tree, download.manifest_cid));
            }
        }
        for peer in &tick.timed_out {
            if let Some(p) = self.peers.get_mut(peer) {
                p.in_flight = p.in_flight.saturating_sub(1);
            }
        }
        for (tree, _) in &tick.stalled {
            self.end(tree, now);
        }
        let max = self.config.peer_in_flight;
        for p in self.peers.values_mut() {
            self.dirty |= p.sample_rate(now, max);
        }
        tick.idle = self
            .peers
            .iter()
            .filter(|(_, p)| p.in_flight > 0 && now.duration_since(p.last_delivery) > self.config.peer_idle_timeout)
            .map(|(peer, _)| *peer)
            .collect();
        tick
    }

    /// Requests outstanding with `peer`.
    pub fn in_flight(&self, peer: &PeerId) -> usize {
        self.peers.get(peer).map_or(0, |p| p.in_flight)
    }
}

/// A peer that can take requests, as [`Requester::schedule`] fills it.
struct Candidate<'a> {
    peer: PeerId,
    have: &'a LeafIndexes,
    load: usize,
    cap: usize,
    /// Wanted leaves of the window only this peer has.
    sole: usize,
}

/// The candidate for leaf `index` (other than `not`) with room: the one with the fewest leaves nobody else has
/// (a seeder's upload is kept for those), then the one with the most room (lowest share of its cap in use).
fn roomiest<'c, 'a>(
    candidates: &'c mut [Candidate<'a>],
    index: u64,
    not: Option<PeerId>,
) -> Option<&'c mut Candidate<'a>> {
    candidates
        .iter_mut()
        .filter(|c| c.load < c.cap && Some(c.peer) != not && c.have.contains(&index))
        .min_by_key(|c| (c.sole, c.load * 1024 / c.cap.max(1), c.load))
}

/// Takes requests `peer` and `dup` made back from their peers' counts.
fn release(peers: &mut HashMap<PeerId, PeerWants>, peer: &PeerId, dup: Option<&PeerId>) {
    for asked in std::iter::once(peer).chain(dup) {
        if let Some(p) = peers.get_mut(asked) {
            p.in_flight = p.in_flight.saturating_sub(1);
        }
    }
}

impl PeerWants {
    /// Measures the delivery rate since the last sample and sets the cap to what the peer delivers in
    /// [`QUEUE_TARGET`] (at most 4× the cap before, at least half of it). A sample after which the peer owed
    /// nothing (and never reached its cap) says how much was asked, not how fast it can go: it only raises the
    /// rate.
    /// Returns true when the cap grew (more can be asked).
    fn sample_rate(&mut self, now: Instant, max: usize) -> bool {
        let elapsed = now.duration_since(self.sampled).as_secs_f64();
        if elapsed < 0.25 {
            return false;
        }
        let sample = f64::from(self.delivered) / elapsed;
        // Requests still owed at the end (or the cap reached meanwhile): the peer delivered what it could.
        let limited = self.limited || self.in_flight > 0;
        if self.delivered > 0 || limited {
            self.rate = if self.rate == 0.0 {
                sample
            } else if limited {
                0.3 * self.rate + 0.7 * sample
            } else {
                self.rate.max(sample)
            };
        }
        self.delivered = 0;
        self.limited = false;
        self.sampled = now;
        if self.rate == 0.0 {
            return false;
        }
        let floor = MIN_IN_FLIGHT.min(max);
        let target = (self.rate * QUEUE_TARGET.as_secs_f64()).ceil() as usize;
        let cap = target.clamp((self.cap / 2).max(floor), (self.cap * 4).max(floor)).clamp(floor, max);
        let grew = cap > self.cap;
        self.cap = cap;
        grew
    }
}

/// The window of `download`: the configured one when other peers fetch the same tree, else at most
/// [`UNSHARED_WINDOW`].
fn window_of(window: usize, download: &Download) -> usize {
    if download.shared { window } else { window.min(UNSHARED_WINDOW) }
}

/// Takes indexes into the window until it is full; returns the new ones.
fn refill(window: usize, download: &mut Download, now: Instant) -> Vec<u64> {
    let window = window_of(window, download);
    let mut added = Vec::new();
    while download.window.len() < window {
        let Some(index) = download.pending.next() else { break };
        // A leaf already in the window keeps its state (a new order may name it again).
        if let std::collections::btree_map::Entry::Vacant(entry) = download.window.entry(index) {
            entry.insert(LeafState::Wanted);
            added.push(index);
            if download.fallback.is_some() {
                download.entered.insert(index, now);
            }
        }
    }
    added
}

/// True when leaf `index` of `download` looks lost: wanted, nobody said Have, and every connected peer said
/// DontHave or it has been in the window [`FALLBACK_AFTER`].
fn looks_lost(download: &Download, sets: &TreeSets<'_>, index: &u64, now: Instant) -> bool {
    let waited = || download.entered.get(index).is_some_and(|entered| now.duration_since(*entered) >= FALLBACK_AFTER);
    download.window.get(index) == Some(&LeafState::Wanted)
        && !sets.someone_has(index)
        && (sets.nobody_has(index) || waited())
}

/// Every connected peer's Have and DontHave sets of one tree, looked up once per pass instead of once per leaf
/// and peer (the map of trees hashes a CID per lookup).
struct TreeSets<'a> {
    /// Peers with a non-empty Have set.
    have: Vec<(PeerId, &'a LeafIndexes)>,
    /// One entry per connected peer: its DontHave set, if any.
    dont: Vec<Option<&'a LeafIndexes>>,
}

impl<'a> TreeSets<'a> {
    fn of(peers: &'a HashMap<PeerId, PeerWants>, tree: &Cid) -> Self {
        let have =
            peers.iter().filter_map(|(id, p)| p.have.get(tree).filter(|h| !h.is_empty()).map(|h| (*id, h))).collect();
        let dont = peers.values().map(|p| p.dont.get(tree)).collect();
        Self { have, dont }
    }

    fn someone_has(&self, index: &u64) -> bool {
        self.have.iter().any(|(_, have)| have.contains(index))
    }

    /// Every connected peer said DontHave (and there is one).
    fn nobody_has(&self, index: &u64) -> bool {
        !self.dont.is_empty() && self.dont.iter().all(|d| d.is_some_and(|d| d.contains(index)))
    }
}

/// The fallback leaves of `download` not to request yet: those whose group's data leaves are all held or
/// still obtainable (in the window for less than [`FALLBACK_AFTER`], or held by a connected peer), unless they
/// waited [`FALLBACK_MAX`].
fn held_back_fallbacks(download: &Download, sets: &TreeSets<'_>, now: Instant) -> LeafIndexes {
    let Some(fallback) = &download.fallback else { return LeafIndexes::default() };
    let waited = |index: &u64, at_least: Duration| {
        download.entered.get(index).is_some_and(|entered| now.duration_since(*entered) >= at_least)
    };
    let lost = |index: &u64| looks_lost(download, sets, index, now);
    download
        .window
        .iter()
        .filter(|(_, state)| **state == LeafState::Wanted)
        .filter_map(|(index, _)| Some((*index, (fallback.group_data)(*index)?)))
        .filter(|(index, data)| !waited(index, FALLBACK_MAX) && !data.iter().any(lost))
        .map(|(index, _)| index)
        .collect()
}

#[cfg(test)]
mod tests;
