//! BlockExchangeActor: executes what the block exchange's state machines decide.
//!
//! Owns the [`Requester`], [`Provider`], [`Fetches`] and [`Ledger`], the send queue of every connected peer and
//! the callers waiting for single blocks. Runs on the system arbiter and never blocks: the store verifies and
//! writes delivered leaves on its own thread, a manifest's hash is checked on the blocking pool, and frames go
//! to the network thread through each peer's bounded queue. While a peer's queue is full, control messages
//! (want-lists, presences) wait in the [`Outbox`], merged, and nothing is dropped; a queue that stays full for
//! [`ledger::SEND_STALL`] disconnects the peer, which does not read.

mod sending;

use super::early::Early;
use super::fetch::{Fetches, GiveUp};
use super::ledger::{self, Admit, Ledger, Verdict};
use super::outbox::Outbox;
use super::provider::{Provider, Want};
use super::recent::Recent;
use super::requester::{Delivery, Ended, Fallback, Requester, RequesterConfig, Stored};
use super::{Attach, BlockExchangeConfig, ExchangeError, FetchBlock, LeafSet, StartDownload};
use crate::discovery::{Announce, DiscoveryActor, Locate};
use crate::network::{Disconnect, Frame, NetEvent, NetworkActor};
use crate::store::{
    DownloadStatus, FailDownload, GetBlock, HasAddresses, LeafOutcome, Progress, ReadLeaves, StoreActor, StoreError,
    StoreLeaves, StoredLeaves,
};
use actix::prelude::*;
use bytes::Bytes;
use codex_protocol::Cid;
use codex_protocol::blockexc::{
    BlockAddress, BlockDelivery, BlockPresence, Message as WireMessage, PresenceType, WantEntry, WantType,
};
use codex_protocol::cid::format_cid;
use codex_protocol::erasure::ErasureLayout;
use libp2p::PeerId;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc, oneshot};

const ZERO_PRICE: [u8; 32] = [0; 32];
/// Interval of the progress lines a running download logs.
const REPORT_INTERVAL: Duration = Duration::from_secs(5);
/// Peers with no block exchange activity this long are disconnected while more than [`EVICT_ABOVE`] are
/// connected, to make room.
const IDLE_EVICT: Duration = Duration::from_secs(600);
const EVICT_ABOVE: usize = 64;
/// Bytes of frames queued to all peers together and not yet written. A peer that does not read holds its share
/// for at most [`ledger::SEND_STALL`] before it is banned.
pub const OUTBOUND_BUDGET: usize = 96 << 20;
const ASKED_RECENTLY: Duration = Duration::from_secs(60);
const ASKED_TREES: usize = 64;

type Waiter = oneshot::Sender<Result<Bytes, ExchangeError>>;

/// The block exchange actor.
pub struct BlockExchangeActor {
    config: BlockExchangeConfig,
    store: Addr<StoreActor>,
    network: Option<Addr<NetworkActor>>,
    discovery: Option<Addr<DiscoveryActor>>,
    senders: HashMap<PeerId, mpsc::Sender<Frame>>,
    /// Control messages waiting for room in peers' queues.
    outbox: Outbox,
    /// Bytes of frames queued to all peers and not yet written ([`OUTBOUND_BUDGET`]).
    outbound: Arc<Semaphore>,
    ledger: Ledger,
    requester: Requester,
    provider: Provider,
    /// Messages of peers the network has not handed over yet, replayed when it does.
    early: Early,
    fetches: Fetches,
    waiters: HashMap<Cid, Vec<Waiter>>,
    /// Running downloads' progress (tree → progress, last report).
    progress: HashMap<Cid, (Arc<Progress>, Instant)>,
    /// Trees peers asked this node about (leaves it did not hold), when last: a download of one of them that
    /// starts within [`ASKED_RECENTLY`] starts shared (members of a swarm started at once hear from each other
    /// before their own download runs). At most [`ASKED_TREES`] entries.
    asked: Recent<Cid>,
}

fn want(address: BlockAddress, want_type: WantType, send_dont_have: bool) -> WantEntry {
    WantEntry { address, priority: 0, cancel: false, want_type, send_dont_have }
}

fn presence(address: BlockAddress, held: bool) -> BlockPresence {
    let kind = if held { PresenceType::Have } else { PresenceType::DontHave };
    BlockPresence { address, kind, price: ZERO_PRICE.to_vec() }
}

impl BlockExchangeActor {
    pub fn new(config: BlockExchangeConfig, store: Addr<StoreActor>) -> Self {
        let requester = Requester::new(RequesterConfig {
            window: config.window,
            peer_in_flight: config.peer_in_flight,
            request_timeout: config.request_timeout,
            peer_idle_timeout: config.peer_idle_timeout,
            stall_timeout: config.stall_timeout,
        });
        Self {
            fetches: Fetches::new(config.block_timeout),
            config,
            store,
            network: None,
            discovery: None,
            senders: HashMap::new(),
            outbox: Outbox::default(),
            outbound: Arc::new(Semaphore::new(OUTBOUND_BUDGET)),
            ledger: Ledger::default(),
            requester,
            provider: Provider::default(),
            early: Early::default(),
            waiters: HashMap::new(),
            progress: HashMap::new(),
            asked: Recent::new(ASKED_RECENTLY, ASKED_TREES),
        }
    }

    fn strike(&mut self, peer: PeerId, weight: u32, reason: &str) {
        if !self.ledger.is_connected(&peer) {
            return;
        }
        let verdict = self.ledger.strike(&peer, weight, Instant::now());
        tracing::warn!(%peer, reason, strikes = self.ledger.strikes(&peer), "peer misbehaved");
        if verdict == Verdict::Ban {
            tracing::warn!(%peer, "disconnecting and banning a misbehaving peer");
            self.drop_peer(peer);
        }
    }

    fn drop_peer(&mut self, peer: PeerId) {
        self.forget_peer(&peer);
        if let Some(network) = &self.network {
            network.do_send(Disconnect { peer });
        }
    }

    fn forget_peer(&mut self, peer: &PeerId) {
        self.ledger.disconnect(peer);
        self.senders.remove(peer);
        self.outbox.remove(peer);
        self.requester.peer_left(peer);
        self.provider.remove(peer);
    }

    /// Ends the requester's download of `tree`; peers' questions about its leaves are dropped with it.
    fn end_download(&mut self, tree: &Cid, now: Instant) -> Option<Ended> {
        self.provider.forget_tree(tree);
        self.requester.end(tree, now)
    }

    fn locate(&self, cid: Cid) {
        if let Some(discovery) = &self.discovery {
            discovery.do_send(Locate { cid });
        }
    }

    /// Looks `cid` up for a single-block fetch, and tells the fetch what the lookup found.
    fn locate_block(&self, cid: Cid, ctx: &mut Context<Self>) {
        let Some(discovery) = &self.discovery else { return };
        discovery
            .send(Locate { cid })
            .into_actor(self)
            .map(move |result, act, _| {
                if let Ok(Some(providers)) = result {
                    act.fetches.on_lookup(&cid, providers);
                    act.give_up_hopeless();
                }
            })
            .spawn(ctx);
    }

    fn connected(&self) -> Vec<PeerId> {
        self.senders.keys().copied().collect()
    }

    fn give_up(&mut self, given_up: Vec<(Cid, GiveUp, Duration)>) {
        for (cid, why, waited) in given_up {
            let err = match why {
                GiveUp::NobodyHasIt => ExchangeError::NobodyHasIt { cid, waited },
                GiveUp::TimedOut => ExchangeError::NotFound { cid, waited },
            };
            tracing::info!(cid = %format_cid(&cid), %err, "block not found");
            for waiter in self.waiters.remove(&cid).unwrap_or_default() {
                let _ = waiter.send(Err(err.clone()));
            }
        }
    }

    fn give_up_hopeless(&mut self) {
        let connected = self.connected();
        let hopeless = self.fetches.nobody_has(Instant::now(), &connected);
        self.give_up(hopeless);
    }

    fn schedule(&mut self, ctx: &mut Context<Self>) {
        let mut cancels: HashMap<PeerId, Vec<WantEntry>> = HashMap::new();
        for (peer, address) in self.requester.take_cancels() {
            cancels
                .entry(peer)
                .or_default()
                .push(WantEntry { cancel: true, ..want(address, WantType::WantBlock, false) });
        }
        for (peer, entries) in cancels {
            self.send_entries(peer, entries, false, ctx);
        }
        for (tree, (progress, _)) in &self.progress {
            self.requester.set_urgent(tree, progress.reader_waiting());
        }
        for (peer, addresses) in self.requester.schedule(Instant::now()) {
            let entries = addresses.into_iter().map(|a| want(a, WantType::WantBlock, true)).collect();
            self.send_entries(peer, entries, false, ctx);
        }
    }

    fn on_connected(&mut self, peer: PeerId, sender: mpsc::Sender<Frame>, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let Some(session) = self.ledger.connect(peer, now) else {
            tracing::info!(%peer, "refusing a banned peer");
            if let Some(network) = &self.network {
                network.do_send(Disconnect { peer });
            }
            return;
        };
        self.senders.insert(peer, sender);
        self.fetches.forget_answers(&peer);
        self.requester.peer_connected(peer, now);
        self.provider.connect(peer, session);
        let mut entries: Vec<WantEntry> = self.requester.wanted().into_iter().map(|a| self.want_have(a)).collect();
        entries.extend(self.fetches.wanted().map(|cid| want(BlockAddress::Cid(*cid), WantType::WantBlock, true)));
        if !entries.is_empty() {
            self.send_entries(peer, entries, true, ctx);
        }
    }

    /// A wantHave entry; a decoding download asks to hear DontHave too (a data leaf nobody has is lost, and
    /// its group's parity is then asked for at once).
    fn want_have(&self, address: BlockAddress) -> WantEntry {
        let dont_have = match &address {
            BlockAddress::Leaf { tree, .. } => self.requester.has_fallbacks(tree),
            BlockAddress::Cid(_) => false,
        };
        want(address, WantType::WantHave, dont_have)
    }

    fn on_message(&mut self, peer: PeerId, message: WireMessage, ctx: &mut Context<Self>) {
        match self.ledger.admit(&peer, Instant::now()) {
            Admit::Accept => {}
            Admit::DropAndStrike => return self.strike(peer, 1, "sends messages faster than the rate limit"),
            Admit::Drop => return,
        }
        let refused = self.provider.on_wantlist(&peer, message.wantlist.entries);
        if refused > 0 {
            self.strike(peer, 5, "want-list over the per-peer limit");
        }
        self.run_queries(peer, ctx);
        self.serve(peer, ctx);
        self.on_presences(peer, message.presences, ctx);
        self.on_deliveries(peer, message.payload, ctx);
        self.schedule(ctx);
    }

    /// Answers the peer's wantHave entries from the store (one query per batch), within its query budget.
    fn run_queries(&mut self, peer: PeerId, ctx: &mut Context<Self>) {
        while let Some((session, wants)) = self.provider.next_query(&peer) {
            let store = self.store.clone();
            async move { (query_store(&store, &wants).await, wants) }
                .into_actor(self)
                .map(move |(held, wants), act, ctx| {
                    act.provider.query_done(&peer, session);
                    if act.ledger.session(&peer) != Some(session) {
                        return;
                    }
                    // A leaf stored while the query ran is held now; leaves this node is still fetching itself
                    // are answered Have when they arrive.
                    let mut later = Vec::new();
                    let mut presences = Vec::new();
                    // Trees asked about that run here (the download is shared) and that do not (yet): once each.
                    let (mut shared, mut asked) = (HashSet::new(), HashSet::new());
                    // Trees this node fetches that the peer asked about: it fetches them too.
                    let co_fetched: HashSet<Cid> = wants
                        .iter()
                        .filter_map(|(address, _)| match address {
                            BlockAddress::Leaf { tree, .. } if act.requester.is_running(tree) => Some(*tree),
                            _ => None,
                        })
                        .collect();
                    for ((address, dont_have), held) in wants.into_iter().zip(held) {
                        let (held, fetching) = match &address {
                            BlockAddress::Leaf { tree, index } if !held => (
                                act.progress.get(tree).is_some_and(|(progress, _)| progress.has(*index)),
                                act.requester.is_running(tree),
                            ),
                            _ => (held, false),
                        };
                        if let BlockAddress::Leaf { tree, .. } = &address
                            && !held
                        {
                            if fetching {
                                shared.insert(*tree)
                            } else {
                                asked.insert(*tree)
                            };
                        }
                        if !held && fetching {
                            later.push(address.clone());
                        }
                        if held || dont_have {
                            presences.push(presence(address, held));
                        }
                    }
                    act.provider.have_later(&peer, session, later);
                    act.send_presences(peer, presences, ctx);
                    for tree in co_fetched {
                        let wanted = act.requester.peer_fetches(&peer, &tree);
                        let entries = wanted.into_iter().map(|index| act.want_have(BlockAddress::Leaf { tree, index }));
                        act.send_entries(peer, entries.collect(), false, ctx);
                    }
                    for tree in asked {
                        // A peer asked about a leaf of `tree`, which this node neither holds nor fetches (yet).
                        act.asked.note(tree, Instant::now());
                    }
                    let mut grown = Vec::new();
                    for tree in shared {
                        let added = act.requester.mark_shared(&tree, Instant::now());
                        grown.extend(added.into_iter().map(|index| act.want_have(BlockAddress::Leaf { tree, index })));
                    }
                    if !grown.is_empty() {
                        // The download's window grew: announce the new leaves.
                        act.broadcast(grown, ctx);
                        act.schedule(ctx);
                    }
                    act.run_queries(peer, ctx);
                })
                .spawn(ctx);
        }
    }

    fn on_presences(&mut self, peer: PeerId, presences: Vec<BlockPresence>, ctx: &mut Context<Self>) {
        let mut dont_have = false;
        for p in presences {
            let have = p.kind == PresenceType::Have;
            match p.address {
                BlockAddress::Leaf { tree, index } => self.requester.on_presence(&peer, tree, index, have),
                BlockAddress::Cid(cid) if have && self.fetches.is_wanted(&cid) => {
                    self.fetches.on_have(&peer, &cid);
                    self.send_entries(peer, vec![want_block_entry(cid)], false, ctx);
                }
                BlockAddress::Cid(cid) if !have => {
                    self.fetches.on_dont_have(peer, &cid);
                    dont_have = true;
                }
                BlockAddress::Cid(_) => {}
            }
        }
        if dont_have {
            self.give_up_hopeless();
        }
    }

    fn on_deliveries(&mut self, peer: PeerId, payload: Vec<BlockDelivery>, ctx: &mut Context<Self>) {
        let mut by_tree: HashMap<Cid, Vec<BlockDelivery>> = HashMap::new();
        let mut unrequested = 0;
        for delivery in payload {
            match delivery.address {
                BlockAddress::Leaf { tree, index } => {
                    match self.requester.on_delivery(&peer, tree, index, Instant::now()) {
                        Delivery::Store => by_tree.entry(tree).or_default().push(delivery),
                        Delivery::Ignored => {}
                        Delivery::Unsolicited => unrequested += 1,
                    }
                }
                BlockAddress::Cid(cid) if self.fetches.is_wanted(&cid) => self.verify_block(peer, delivery, ctx),
                // Every peer was asked at once: the copies after the first are late answers, not abuse.
                BlockAddress::Cid(cid) if self.fetches.ended_lately(&cid, Instant::now()) => {}
                BlockAddress::Cid(_) => unrequested += 1,
            }
        }
        if unrequested > 0 {
            self.strike(peer, unrequested, "unrequested blocks");
        }
        for (tree, deliveries) in by_tree {
            let indexes: Vec<u64> = deliveries
                .iter()
                .filter_map(|d| match d.address {
                    BlockAddress::Leaf { index, .. } => Some(index),
                    BlockAddress::Cid(_) => None,
                })
                .collect();
            self.store
                .send(StoreLeaves { tree, deliveries })
                .into_actor(self)
                .map(move |result, act, ctx| {
                    let result = result.unwrap_or(Err(StoreError::Unavailable));
                    act.on_stored(peer, tree, indexes, result, ctx);
                })
                .spawn(ctx);
        }
    }

    /// Checks a block delivered by CID on the blocking pool, then hands it to the callers waiting for it.
    fn verify_block(&mut self, peer: PeerId, delivery: BlockDelivery, ctx: &mut Context<Self>) {
        let cid = delivery.cid;
        async move { tokio::task::spawn_blocking(move || delivery.verify().map(|()| delivery.data)).await }
            .into_actor(self)
            .map(move |result, act, ctx| match result {
                Ok(Ok(data)) => act.resolve_block(cid, data, ctx),
                Ok(Err(_)) => act.strike(peer, 10, "block does not match its CID"),
                Err(err) => tracing::error!(%err, "block verification task failed"),
            })
            .spawn(ctx);
    }

    fn resolve_block(&mut self, cid: Cid, data: Bytes, ctx: &mut Context<Self>) {
        if !self.fetches.resolve(&cid, Instant::now()) {
            return;
        }
        for waiter in self.waiters.remove(&cid).unwrap_or_default() {
            let _ = waiter.send(Ok(data.clone()));
        }
        self.broadcast(vec![WantEntry { cancel: true, ..want_block_entry(cid) }], ctx);
    }

    fn on_stored(
        &mut self,
        peer: PeerId,
        tree: Cid,
        indexes: Vec<u64>,
        result: Result<StoredLeaves, StoreError>,
        ctx: &mut Context<Self>,
    ) {
        let stored = match result {
            Ok(stored) => stored,
            Err(err) => {
                tracing::error!(%err, tree = %format_cid(&tree), "cannot store downloaded blocks; the download stops");
                self.end_download(&tree, Instant::now());
                if let Some((progress, _)) = self.progress.remove(&tree) {
                    progress.fail(err.to_string());
                }
                return;
            }
        };
        let outcomes: Vec<(u64, Stored)> = indexes
            .iter()
            .zip(&stored.outcomes)
            .map(|(index, outcome)| match outcome {
                LeafOutcome::Stored | LeafOutcome::Duplicate => (*index, Stored::Kept),
                LeafOutcome::Rejected(err) => {
                    tracing::warn!(%peer, index, %err, "rejected a delivered block");
                    (*index, Stored::Rejected)
                }
            })
            .collect();
        let now = Instant::now();
        let (rejected, added) = self.requester.on_stored(&peer, tree, &outcomes, now);
        if rejected > 0 {
            self.strike(peer, 10 * rejected, "delivered blocks that failed verification");
        }
        let arrived: Vec<u64> = outcomes.iter().filter(|(_, o)| *o == Stored::Kept).map(|(i, _)| *i).collect();
        let arrivals = self.provider.arrived(tree, &arrived);
        for woken in arrivals.serve {
            self.serve(woken, ctx);
        }
        for (asked, addresses) in arrivals.have {
            let presences = addresses.into_iter().map(|address| presence(address, true)).collect();
            self.send_presences(asked, presences, ctx);
        }
        if let Some(completed) = stored.completed {
            self.progress.remove(&tree);
            if let Some(ended) = self.end_download(&tree, now) {
                let bytes = completed.manifest.dataset_size;
                tracing::info!(
                    cid = %format_cid(&ended.manifest_cid),
                    bytes,
                    elapsed_ms = ended.elapsed.as_millis() as u64,
                    mib_per_s = (bytes as f64 / (1 << 20) as f64 / ended.elapsed.as_secs_f64().max(1e-6)) as u64,
                    duplicates = ended.duplicates,
                    endgame = ended.endgame,
                    sole_asked = ended.sole_asked,
                    common_of_sole = ended.common_of_sole,
                    "download complete"
                );
            }
            if let Some(discovery) = &self.discovery {
                discovery.do_send(Announce { cids: vec![completed.cid, completed.manifest.tree_cid] });
            }
            return;
        }
        let mut added = added;
        if !stored.unneeded.is_empty() {
            // A decoding download: these leaves' groups hold K members; stop asking for them.
            added.extend(self.requester.forget(&tree, &stored.unneeded, now));
        }
        if self.requester.is_done(&tree) {
            // Nothing left to fetch (a decoding download now decodes; a slot download checks its root).
            self.progress.remove(&tree);
            self.end_download(&tree, now);
            return;
        }
        let entries = added.into_iter().map(|index| self.want_have(BlockAddress::Leaf { tree, index }));
        self.broadcast(entries.collect(), ctx);
        self.schedule(ctx);
    }

    /// Sends the next batch of blocks a peer wants, if a serve slot is free.
    fn serve(&mut self, peer: PeerId, ctx: &mut Context<Self>) {
        let Some((session, batch)) = self.provider.next_batch(&peer) else { return };
        let Some(sender) = self.senders.get(&peer).cloned() else { return };
        self.ledger.touch(&peer, Instant::now());
        let (store, outbound) = (self.store.clone(), self.outbound.clone());
        async move {
            let (deliveries, missing) = read_batch(&store, batch).await;
            let presences: Vec<BlockPresence> = missing
                .iter()
                .filter(|(_, dont_have)| *dont_have)
                .map(|(address, _)| presence(address.clone(), false))
                .collect();
            let mut stalled = false;
            if !deliveries.is_empty() || !presences.is_empty() {
                let bytes = WireMessage { payload: deliveries, presences, ..WireMessage::default() }.encode();
                // Waits for budget: slow readers hold it at most SEND_STALL before they are banned. Not getting it
                // is not this peer's fault; its requests time out and are asked again.
                let charge =
                    tokio::time::timeout(ledger::SEND_STALL, outbound.acquire_many_owned(bytes.len().max(1) as u32))
                        .await;
                if let Ok(Ok(charge)) = charge {
                    let frame = Frame { bytes, charge: Some(charge) };
                    stalled = tokio::time::timeout(ledger::SEND_STALL, sender.send(frame)).await.is_err();
                }
            }
            (missing.into_iter().map(|(address, _)| address).collect::<Vec<_>>(), stalled)
        }
        .into_actor(self)
        .map(move |(missing, stalled), act, ctx| {
            act.provider.served(&peer, session, missing);
            if act.ledger.session(&peer) != Some(session) {
                return;
            }
            if stalled {
                act.strike(peer, ledger::BAN_STRIKES, "does not read the blocks it asked for");
                return;
            }
            act.serve(peer, ctx);
        })
        .spawn(ctx);
    }

    /// Periodic work: timeouts, re-asking, discovery, stalled downloads, idle peers.
    fn tick(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        self.early.expire(now);
        let tick = self.requester.tick(now);
        // A timeout is no strike: a slow honest peer must not be banned for it. Peers that owe blocks and
        // deliver nothing are dropped by the idle check below.
        for peer in tick.timed_out {
            tracing::debug!(%peer, "a block request timed out; asking elsewhere");
        }
        for (tree, indexes) in tick.reask {
            let entries = indexes.into_iter().map(|index| self.want_have(BlockAddress::Leaf { tree, index }));
            self.broadcast(entries.collect(), ctx);
        }
        for cid in tick.locate {
            self.locate(cid);
        }
        for (tree, manifest_cid) in tick.stalled {
            let reason = format!("no block arrived for {:?}", self.config.stall_timeout);
            tracing::warn!(cid = %format_cid(&manifest_cid), %reason, "download failed");
            self.progress.remove(&tree);
            self.store.do_send(FailDownload { tree, reason });
        }
        for peer in tick.idle {
            tracing::warn!(%peer, "peer owes blocks and delivered nothing for a minute; disconnecting");
            self.drop_peer(peer);
        }
        let connected = self.connected();
        let fetch_tick = self.fetches.tick(now, &connected);
        for cid in fetch_tick.reask {
            self.broadcast(vec![want_block_entry(cid)], ctx);
            self.locate_block(cid, ctx);
        }
        self.give_up(fetch_tick.given_up);
        // Downloads the store ended (deleted, aborted, failed) stop here too, instead of fetching into nothing.
        let ended: Vec<Cid> = self
            .progress
            .iter()
            .filter(|(_, (progress, _))| progress.status() != DownloadStatus::Running)
            .map(|(tree, _)| *tree)
            .collect();
        for tree in ended {
            self.progress.remove(&tree);
            self.end_download(&tree, now);
        }
        for (tree, (progress, last_report)) in &mut self.progress {
            if now.duration_since(*last_report) >= REPORT_INTERVAL {
                *last_report = now;
                tracing::info!(
                    tree = %format_cid(tree),
                    received = progress.received(),
                    leaves = progress.leaves(),
                    "download progress"
                );
            }
        }
        if self.ledger.len() > EVICT_ABOVE {
            for peer in self.ledger.idle(now, IDLE_EVICT) {
                if self.requester.in_flight(&peer) == 0 && self.provider.held(&peer) == 0 {
                    tracing::debug!(%peer, "evicting an idle peer");
                    self.drop_peer(peer);
                }
            }
        }
        self.ledger.expire_bans(now);
        self.schedule(ctx);
    }
}

/// Which of `wants` the store holds, in one store query.
async fn query_store(store: &Addr<StoreActor>, wants: &[Want]) -> Vec<bool> {
    let addresses = wants.iter().map(|(address, _)| address.clone()).collect();
    match store.send(HasAddresses { addresses }).await {
        Ok(Ok(held)) if held.len() == wants.len() => held,
        _ => vec![false; wants.len()],
    }
}

/// Reads a batch of wanted blocks: the deliveries, and the wants not held.
async fn read_batch(store: &Addr<StoreActor>, batch: Vec<Want>) -> (Vec<BlockDelivery>, Vec<Want>) {
    let mut deliveries = Vec::new();
    match batch.first().map(|(a, _)| a.clone()) {
        Some(BlockAddress::Leaf { tree, .. }) => {
            let indexes = batch
                .iter()
                .filter_map(|(a, _)| match a {
                    BlockAddress::Leaf { index, .. } => Some(*index),
                    BlockAddress::Cid(_) => None,
                })
                .collect();
            if let Ok(Ok(leaves)) = store.send(ReadLeaves { tree, indexes }).await {
                for leaf in leaves {
                    deliveries.push(BlockDelivery {
                        cid: leaf.cid,
                        data: leaf.data,
                        address: BlockAddress::Leaf { tree, index: leaf.index },
                        proof: Some(leaf.proof),
                    });
                }
            }
        }
        Some(BlockAddress::Cid(_)) => {
            for (address, _) in &batch {
                if let BlockAddress::Cid(cid) = address
                    && let Ok(Ok(Some(data))) = store.send(GetBlock { cid: *cid }).await
                {
                    deliveries.push(BlockDelivery { cid: *cid, data, address: address.clone(), proof: None });
                }
            }
        }
        None => {}
    }
    let sent: HashSet<BlockAddress> = deliveries.iter().map(|d| d.address.clone()).collect();
    let missing = batch.into_iter().filter(|(a, _)| !sent.contains(a)).collect();
    (deliveries, missing)
}

type Leaves = Box<dyn Iterator<Item = u64> + Send>;

/// The leaves of a decoding download group by group (members the download still needs), so the window never
/// fills with leaves of groups that are already decodable.
fn group_order(layout: ErasureLayout, progress: Arc<Progress>) -> Leaves {
    Box::new(
        (0..layout.groups()).flat_map(move |group| layout.group_members(group)).filter(move |i| progress.needed(*i)),
    )
}

fn want_block_entry(cid: Cid) -> WantEntry {
    want(BlockAddress::Cid(cid), WantType::WantBlock, true)
}

impl Actor for BlockExchangeActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(256);
        ctx.run_interval(Duration::from_secs(1), |act, ctx| act.tick(ctx));
    }
}

impl Handler<Attach> for BlockExchangeActor {
    type Result = ();
    fn handle(&mut self, msg: Attach, _: &mut Self::Context) {
        self.network = Some(msg.network);
        self.discovery = Some(msg.discovery);
    }
}

impl Handler<NetEvent> for BlockExchangeActor {
    type Result = ();
    fn handle(&mut self, msg: NetEvent, ctx: &mut Self::Context) {
        match msg {
            NetEvent::Connected { peer, sender } => {
                self.on_connected(peer, sender, ctx);
                let held = self.early.take(&peer);
                if self.ledger.is_connected(&peer) {
                    for message in held {
                        self.on_message(peer, message, ctx);
                    }
                }
            }
            NetEvent::Disconnected { peer } => {
                self.early.take(&peer);
                self.forget_peer(&peer);
            }
            NetEvent::Message { peer, message } => {
                if self.ledger.is_connected(&peer) {
                    self.on_message(peer, message, ctx);
                } else if self.ledger.is_banned(&peer, Instant::now()) {
                    tracing::trace!(%peer, "dropped a message of a banned peer");
                } else if !self.early.hold(peer, message, Instant::now()) {
                    tracing::trace!(%peer, "dropped a message of a peer not handed over yet");
                }
            }
            NetEvent::Malformed { peer, reason } => self.strike(peer, 10, &format!("malformed message: {reason}")),
            NetEvent::Stalled { peer, reason } => self.strike(peer, ledger::BAN_STRIKES, &reason),
        }
    }
}

impl Handler<StartDownload> for BlockExchangeActor {
    type Result = ();
    fn handle(&mut self, msg: StartDownload, ctx: &mut Self::Context) {
        let tree = msg.manifest.tree_cid;
        // A download of this tree that the store replaced (deleted, then fetched again) is stale: end it.
        if self.progress.get(&tree).is_some_and(|(running, _)| !Arc::ptr_eq(running, &msg.progress)) {
            self.progress.remove(&tree);
            self.end_download(&tree, Instant::now());
        }
        let progress = msg.progress.clone();
        let missing: Leaves = match msg.leaves.clone() {
            LeafSet::All => Box::new((0..progress.leaves()).filter(move |index| progress.needed(*index))),
            LeafSet::Range(range) => Box::new(range.filter(move |index| progress.needed(*index))),
            LeafSet::Groups { layout, in_order: false } => group_order(layout, progress),
            // Data leaves in order; group by group once one looks lost (`Fallback::on_loss`).
            LeafSet::Groups { layout, in_order: true } => {
                Box::new((0..layout.rounded()).filter(move |index| progress.needed(*index)))
            }
        };
        let fallback = match &msg.leaves {
            LeafSet::Groups { layout, in_order } => {
                let layout = *layout;
                let on_loss = in_order.then(|| group_order(layout, msg.progress.clone()));
                let group_data = move |index: u64| {
                    let (group, position) = layout.group_of(index)?;
                    (position >= layout.params().k()).then(|| {
                        layout
                            .group_members(group)
                            .take(layout.params().k())
                            .filter(|member| !layout.is_padding(*member))
                            .collect()
                    })
                };
                Some(Fallback { group_data: Box::new(group_data), on_loss })
            }
            LeafSet::All | LeafSet::Range(_) => None,
        };
        let now = Instant::now();
        let Some(mut added) = self.requester.start_with_fallback(tree, msg.manifest_cid, missing, fallback, now) else {
            return;
        };
        if self.asked.take(&tree, now) {
            added.extend(self.requester.mark_shared(&tree, now));
        }
        tracing::info!(
            cid = %format_cid(&msg.manifest_cid),
            leaves = msg.progress.leaves(),
            held = msg.progress.received(),
            peers = self.senders.len(),
            "fetching a dataset"
        );
        self.progress.insert(tree, (msg.progress, Instant::now()));
        let entries = added.into_iter().map(|index| self.want_have(BlockAddress::Leaf { tree, index }));
        self.broadcast(entries.collect(), ctx);
        self.locate(tree);
        self.locate(msg.manifest_cid);
        // Announced now, not when complete (as the original announces a stored manifest): nodes fetching the
        // same dataset find each other and trade the leaves each already holds.
        if let Some(discovery) = &self.discovery {
            discovery.do_send(Announce { cids: vec![msg.manifest_cid, tree] });
        }
    }
}

impl Handler<FetchBlock> for BlockExchangeActor {
    type Result = ResponseFuture<Result<Bytes, ExchangeError>>;
    fn handle(&mut self, msg: FetchBlock, ctx: &mut Self::Context) -> Self::Result {
        let (reply, answer) = oneshot::channel();
        let cid = msg.cid;
        self.waiters.entry(cid).or_default().push(reply);
        if self.fetches.want(cid, Instant::now()) {
            self.broadcast(vec![want_block_entry(cid)], ctx);
            self.locate_block(cid, ctx);
        }
        let waited = self.config.block_timeout;
        Box::pin(async move {
            // The fetch ends itself (found, nobody has it, or timed out); the margin covers a tick's delay.
            match tokio::time::timeout(waited + Duration::from_secs(5), answer).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) | Err(_) => Err(ExchangeError::NotFound { cid, waited }),
            }
        })
    }
}
