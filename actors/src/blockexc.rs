//! BlockExchangeActor: the blockexc engine, requester and provider sides.
//!
//! Requester: a dataset download keeps a sliding window of wanted leaves (1024 by default). New window entries
//! are announced to every peer as wantHave; peers that answer Have get wantBlock requests, spread by how many
//! requests each already has in flight (at most 256 per peer). Deliveries go to the StoreActor, which verifies
//! each block against the dataset's root before writing it; a rejected, unrequested or malformed delivery
//! costs the sender strikes, and 20 strikes disconnect and ban it for ten minutes. Requests time out and are
//! re-sent elsewhere; a peer that delivers nothing for a minute while owing blocks is dropped. When nobody
//! has a wanted leaf the DiscoveryActor looks for providers and the wantHave is repeated every 2 s.
//!
//! Provider: wantHave entries are answered with presences from the store; wantBlock entries queue per peer
//! (at most 4096) and are served in messages of at most 20 blocks with their proofs, two reads in flight per
//! peer, each send waiting for room on the peer's stream. Wanted leaves this node does not hold yet wait (at
//! most 4096 per peer) and are sent the moment a download stores them (seed 003: no delay in availability).
//!
//! Handles: [`StartDownload`], [`FetchBlock`], [`Attach`], [`crate::network::NetEvent`].

use crate::discovery::{Announce, DiscoveryActor, Locate};
use crate::network::{Disconnect, NetEvent, NetworkActor};
use crate::store::{
    FailDownload, GetBlock, HasBlock, HasLeaves, LeafOutcome, Progress, ReadLeaves, StoreActor, StoreError,
    StoreLeaves, StoredLeaves,
};
use actix::prelude::*;
use bytes::Bytes;
use codex_protocol::blockexc::{
    BlockAddress, BlockDelivery, BlockPresence, Message as WireMessage, PresenceType, WantEntry, WantList, WantType,
};
use codex_protocol::cid::format_cid;
use codex_protocol::{Cid, Manifest};
use libp2p::PeerId;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

/// Block exchange tuning.
#[derive(Debug, Clone)]
pub struct BlockExchangeConfig {
    /// Leaves wanted at once per download.
    pub window: usize,
    /// wantBlock requests outstanding per peer.
    pub peer_in_flight: usize,
    /// A request unanswered this long is sent elsewhere.
    pub request_timeout: Duration,
    /// A peer owing blocks that delivers nothing this long is disconnected.
    pub peer_idle_timeout: Duration,
    /// A download that gets no block this long fails (it resumes on the next request).
    pub stall_timeout: Duration,
    /// How long a single block (a manifest) is looked for.
    pub block_timeout: Duration,
}

impl Default for BlockExchangeConfig {
    fn default() -> Self {
        Self {
            window: 1024,
            peer_in_flight: 256,
            request_timeout: Duration::from_secs(15),
            peer_idle_timeout: Duration::from_secs(60),
            stall_timeout: Duration::from_secs(3000 * 2),
            block_timeout: Duration::from_secs(60),
        }
    }
}

/// Block exchange errors.
#[derive(Debug, Clone, Error)]
pub enum ExchangeError {
    #[error("no peer delivered block {} within {:?}", format_cid(.cid), .waited)]
    NotFound { cid: Cid, waited: Duration },
    #[error("the block exchange is not running")]
    Stopped,
}

const MAX_BLOCKS_PER_MESSAGE: usize = 20;
const MAX_ENTRIES_PER_MESSAGE: usize = 1024;
const MAX_PEER_WANTS: usize = 4096;
const SERVES_PER_PEER: usize = 2;
const BAN_STRIKES: u32 = 20;
const BAN_TIME: Duration = Duration::from_secs(600);
const REASK_INTERVAL: Duration = Duration::from_secs(2);
const ZERO_PRICE: [u8; 32] = [0; 32];

/// Command: download dataset `manifest_cid` into the store's download `progress`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StartDownload {
    pub manifest_cid: Cid,
    pub manifest: Manifest,
    pub progress: Arc<Progress>,
}

/// Query: fetch one block by CID (a manifest) from the network, verified against its CID.
#[derive(Message)]
#[rtype(result = "Result<Bytes, ExchangeError>")]
pub struct FetchBlock {
    pub cid: Cid,
}

/// Command: the actors the block exchange talks to, created after it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Attach {
    pub network: Addr<NetworkActor>,
    pub discovery: Addr<DiscoveryActor>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Wanted,
    Requested {
        peer: PeerId,
        at: Instant,
    },
    /// Delivered, being verified and written.
    Storing,
}

struct Download {
    manifest_cid: Cid,
    leaves: u64,
    progress: Arc<Progress>,
    /// The next leaf index to consider for the window.
    next: u64,
    window: BTreeMap<u64, Slot>,
    started: Instant,
    last_progress: Instant,
    last_reask: Instant,
    last_report: Instant,
}

/// Interval of the progress lines a running download logs.
const REPORT_INTERVAL: Duration = Duration::from_secs(5);

struct BlockWant {
    waiters: Vec<oneshot::Sender<Bytes>>,
    started: Instant,
    last_reask: Instant,
}

struct PeerCtx {
    sender: mpsc::Sender<Vec<u8>>,
    /// Window leaves the peer said it has, per tree.
    have: HashMap<Cid, HashSet<u64>>,
    in_flight: usize,
    /// wantBlock entries to serve, in order, and the same set for lookups.
    wants: VecDeque<(BlockAddress, bool)>,
    queued: HashSet<BlockAddress>,
    /// Wanted blocks not held yet: sent when they arrive.
    waiting: HashSet<BlockAddress>,
    serving: usize,
    strikes: u32,
    last_delivery: Instant,
}

/// The block exchange actor.
pub struct BlockExchangeActor {
    config: BlockExchangeConfig,
    store: Addr<StoreActor>,
    network: Option<Addr<NetworkActor>>,
    discovery: Option<Addr<DiscoveryActor>>,
    peers: HashMap<PeerId, PeerCtx>,
    downloads: HashMap<Cid, Download>,
    block_wants: HashMap<Cid, BlockWant>,
    banned: HashMap<PeerId, Instant>,
}

fn want(address: BlockAddress, want_type: WantType, send_dont_have: bool) -> WantEntry {
    WantEntry { address, priority: 0, cancel: false, want_type, send_dont_have }
}

fn wants_message(entries: Vec<WantEntry>, full: bool) -> WireMessage {
    WireMessage { wantlist: WantList { entries, full }, ..WireMessage::default() }
}

impl BlockExchangeActor {
    pub fn new(config: BlockExchangeConfig, store: Addr<StoreActor>) -> Self {
        Self {
            config,
            store,
            network: None,
            discovery: None,
            peers: HashMap::new(),
            downloads: HashMap::new(),
            block_wants: HashMap::new(),
            banned: HashMap::new(),
        }
    }

    /// Queues a message to a peer without waiting; dropped (and logged) if the peer's queue stays full.
    fn send(&self, peer: PeerId, message: WireMessage) {
        let Some(ctx) = self.peers.get(&peer) else { return };
        let sender = ctx.sender.clone();
        let frame = message.encode();
        actix::spawn(async move {
            if sender.send(frame).await.is_err() {
                tracing::debug!(%peer, "peer stream closed; message dropped");
            }
        });
    }

    fn send_entries(&self, peer: PeerId, entries: Vec<WantEntry>, full: bool) {
        for (i, chunk) in entries.chunks(MAX_ENTRIES_PER_MESSAGE).enumerate() {
            self.send(peer, wants_message(chunk.to_vec(), full && i == 0));
        }
    }

    fn strike(&mut self, peer: PeerId, weight: u32, reason: &str) {
        let Some(ctx) = self.peers.get_mut(&peer) else { return };
        ctx.strikes += weight;
        tracing::warn!(%peer, reason, strikes = ctx.strikes, "peer misbehaved");
        if ctx.strikes >= BAN_STRIKES {
            tracing::warn!(%peer, "disconnecting and banning a misbehaving peer");
            self.banned.insert(peer, Instant::now() + BAN_TIME);
            self.drop_peer(peer);
        }
    }

    fn drop_peer(&mut self, peer: PeerId) {
        self.forget_peer(peer);
        if let Some(network) = &self.network {
            network.do_send(Disconnect { peer });
        }
    }

    fn forget_peer(&mut self, peer: PeerId) {
        if self.peers.remove(&peer).is_none() {
            return;
        }
        for download in self.downloads.values_mut() {
            for slot in download.window.values_mut() {
                if matches!(slot, Slot::Requested { peer: p, .. } if *p == peer) {
                    *slot = Slot::Wanted;
                }
            }
        }
    }

    /// Everything we want, for a peer that just connected.
    fn full_wantlist(&self) -> Vec<WantEntry> {
        let mut entries = Vec::new();
        for (tree, download) in &self.downloads {
            for (index, slot) in &download.window {
                if *slot != Slot::Storing {
                    entries.push(want(BlockAddress::Leaf { tree: *tree, index: *index }, WantType::WantHave, false));
                }
            }
        }
        for cid in self.block_wants.keys() {
            entries.push(want(BlockAddress::Cid(*cid), WantType::WantBlock, true));
        }
        entries
    }

    /// Adds leaves to a download's window; returns the new ones.
    fn refill(config: &BlockExchangeConfig, download: &mut Download) -> Vec<u64> {
        let mut added = Vec::new();
        while download.window.len() < config.window && download.next < download.leaves {
            let index = download.next;
            download.next += 1;
            if !download.progress.has(index) {
                download.window.insert(index, Slot::Wanted);
                added.push(index);
            }
        }
        added
    }

    fn announce_wants(&self, tree: Cid, indexes: &[u64]) {
        if indexes.is_empty() {
            return;
        }
        let entries: Vec<WantEntry> = indexes
            .iter()
            .map(|index| want(BlockAddress::Leaf { tree, index: *index }, WantType::WantHave, false))
            .collect();
        for peer in self.peers.keys() {
            self.send_entries(*peer, entries.clone(), false);
        }
    }

    /// Assigns wanted leaves to peers that have them and sends the wantBlock requests.
    fn schedule(&mut self) {
        let now = Instant::now();
        let cap = self.config.peer_in_flight;
        let mut batches: HashMap<PeerId, Vec<WantEntry>> = HashMap::new();
        for (tree, download) in &mut self.downloads {
            for (index, slot) in download.window.iter_mut() {
                if *slot != Slot::Wanted {
                    continue;
                }
                let best = self
                    .peers
                    .iter_mut()
                    .filter(|(_, p)| p.in_flight < cap && p.have.get(tree).is_some_and(|h| h.contains(index)))
                    .min_by_key(|(_, p)| (p.in_flight, p.strikes));
                let Some((peer, ctx)) = best else { continue };
                ctx.in_flight += 1;
                *slot = Slot::Requested { peer: *peer, at: now };
                let address = BlockAddress::Leaf { tree: *tree, index: *index };
                batches.entry(*peer).or_default().push(want(address, WantType::WantBlock, true));
            }
        }
        for (peer, entries) in batches {
            self.send_entries(peer, entries, false);
        }
    }

    fn on_connected(&mut self, peer: PeerId, sender: mpsc::Sender<Vec<u8>>) {
        if self.banned.get(&peer).is_some_and(|until| *until > Instant::now()) {
            tracing::info!(%peer, "refusing a banned peer");
            if let Some(network) = &self.network {
                network.do_send(Disconnect { peer });
            }
            return;
        }
        self.peers.insert(
            peer,
            PeerCtx {
                sender,
                have: HashMap::new(),
                in_flight: 0,
                wants: VecDeque::new(),
                queued: HashSet::new(),
                waiting: HashSet::new(),
                serving: 0,
                strikes: 0,
                last_delivery: Instant::now(),
            },
        );
        let entries = self.full_wantlist();
        if !entries.is_empty() {
            self.send_entries(peer, entries, true);
        }
    }

    fn on_message(&mut self, peer: PeerId, message: WireMessage, ctx: &mut Context<Self>) {
        if !self.peers.contains_key(&peer) {
            return;
        }
        self.on_wantlist(peer, message.wantlist, ctx);
        self.on_presences(peer, message.presences);
        self.on_deliveries(peer, message.payload, ctx);
        self.schedule();
    }

    fn on_wantlist(&mut self, peer: PeerId, wantlist: WantList, ctx: &mut Context<Self>) {
        let Some(p) = self.peers.get_mut(&peer) else { return };
        let mut leaf_queries: HashMap<Cid, Vec<(u64, bool)>> = HashMap::new();
        let mut cid_queries = Vec::new();
        for entry in wantlist.entries.into_iter().take(MAX_PEER_WANTS) {
            if entry.cancel {
                if p.queued.remove(&entry.address) {
                    p.wants.retain(|(a, _)| *a != entry.address);
                }
                p.waiting.remove(&entry.address);
                continue;
            }
            match (entry.want_type, entry.address) {
                (WantType::WantHave, BlockAddress::Leaf { tree, index }) => {
                    leaf_queries.entry(tree).or_default().push((index, entry.send_dont_have))
                }
                (WantType::WantHave, BlockAddress::Cid(cid)) => cid_queries.push((cid, entry.send_dont_have)),
                (WantType::WantBlock, address) => {
                    if p.queued.len() < MAX_PEER_WANTS && p.queued.insert(address.clone()) {
                        p.wants.push_back((address, entry.send_dont_have));
                    }
                }
            }
        }
        for (tree, items) in leaf_queries {
            let indexes = items.iter().map(|(i, _)| *i).collect();
            self.store
                .send(HasLeaves { tree, indexes })
                .into_actor(self)
                .map(move |result, act, _| {
                    let Ok(Ok(held)) = result else { return };
                    let presences = items
                        .iter()
                        .zip(held)
                        .filter(|((_, dont_have), held)| *held || *dont_have)
                        .map(|((index, _), held)| BlockPresence {
                            address: BlockAddress::Leaf { tree, index: *index },
                            kind: if held { PresenceType::Have } else { PresenceType::DontHave },
                            price: ZERO_PRICE.to_vec(),
                        })
                        .collect::<Vec<_>>();
                    for chunk in presences.chunks(MAX_ENTRIES_PER_MESSAGE) {
                        act.send(peer, WireMessage { presences: chunk.to_vec(), ..WireMessage::default() });
                    }
                })
                .spawn(ctx);
        }
        for (cid, dont_have) in cid_queries {
            self.store
                .send(HasBlock { cid })
                .into_actor(self)
                .map(move |result, act, _| {
                    let held = matches!(result, Ok(Ok(true)));
                    if held || dont_have {
                        let kind = if held { PresenceType::Have } else { PresenceType::DontHave };
                        let presence =
                            BlockPresence { address: BlockAddress::Cid(cid), kind, price: ZERO_PRICE.to_vec() };
                        act.send(peer, WireMessage { presences: vec![presence], ..WireMessage::default() });
                    }
                })
                .spawn(ctx);
        }
        self.serve(peer, ctx);
    }

    fn on_presences(&mut self, peer: PeerId, presences: Vec<BlockPresence>) {
        for presence in presences {
            match presence.address {
                BlockAddress::Leaf { tree, index } => {
                    let Some(download) = self.downloads.get_mut(&tree) else { continue };
                    let Some(slot) = download.window.get_mut(&index) else { continue };
                    let Some(p) = self.peers.get_mut(&peer) else { return };
                    match presence.kind {
                        PresenceType::Have => {
                            p.have.entry(tree).or_default().insert(index);
                        }
                        PresenceType::DontHave => {
                            if let Some(set) = p.have.get_mut(&tree) {
                                set.remove(&index);
                            }
                            if matches!(slot, Slot::Requested { peer: q, .. } if *q == peer) {
                                *slot = Slot::Wanted;
                                p.in_flight = p.in_flight.saturating_sub(1);
                            }
                        }
                    }
                }
                BlockAddress::Cid(cid) => {
                    if presence.kind == PresenceType::Have && self.block_wants.contains_key(&cid) {
                        self.send(
                            peer,
                            wants_message(vec![want(BlockAddress::Cid(cid), WantType::WantBlock, true)], false),
                        );
                    }
                }
            }
        }
    }

    fn on_deliveries(&mut self, peer: PeerId, payload: Vec<BlockDelivery>, ctx: &mut Context<Self>) {
        let mut by_tree: HashMap<Cid, Vec<BlockDelivery>> = HashMap::new();
        let mut strikes = Vec::new();
        for delivery in payload {
            match delivery.address {
                BlockAddress::Leaf { tree, index } => {
                    let slot = self.downloads.get_mut(&tree).and_then(|d| d.window.get_mut(&index));
                    match slot {
                        Some(slot) if matches!(*slot, Slot::Requested { peer: q, .. } if q == peer) => {
                            *slot = Slot::Storing;
                            if let Some(p) = self.peers.get_mut(&peer) {
                                p.in_flight = p.in_flight.saturating_sub(1);
                            }
                            by_tree.entry(tree).or_default().push(delivery);
                        }
                        _ => strikes.push((1, "unrequested block")),
                    }
                }
                BlockAddress::Cid(cid) => {
                    if !self.block_wants.contains_key(&cid) {
                        strikes.push((1, "unrequested block"));
                    } else if delivery.verify().is_err() {
                        strikes.push((10, "block does not match its CID"));
                    } else {
                        self.resolve_block(cid, delivery.data);
                    }
                }
            }
        }
        for (weight, reason) in strikes {
            self.strike(peer, weight, reason);
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

    fn resolve_block(&mut self, cid: Cid, data: Bytes) {
        let Some(want) = self.block_wants.remove(&cid) else { return };
        for waiter in want.waiters {
            let _ = waiter.send(data.clone());
        }
        let cancel = WantEntry { cancel: true, ..want_block_entry(cid) };
        for peer in self.peers.keys() {
            self.send(*peer, wants_message(vec![cancel.clone()], false));
        }
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
                if let Some(download) = self.downloads.remove(&tree) {
                    download.progress.fail(err.to_string());
                }
                return;
            }
        };
        let now = Instant::now();
        let mut arrived = Vec::new();
        let mut rejected = 0;
        if let Some(download) = self.downloads.get_mut(&tree) {
            for (index, outcome) in indexes.iter().zip(&stored.outcomes) {
                match outcome {
                    LeafOutcome::Stored | LeafOutcome::Duplicate => {
                        download.window.remove(index);
                        download.last_progress = now;
                        arrived.push(*index);
                    }
                    LeafOutcome::Rejected(err) => {
                        tracing::warn!(%peer, index, %err, "rejected a delivered block");
                        download.window.insert(*index, Slot::Wanted);
                        if let Some(set) = self.peers.get_mut(&peer).and_then(|p| p.have.get_mut(&tree)) {
                            set.remove(index);
                        }
                        rejected += 1;
                    }
                }
            }
        }
        if let Some(p) = self.peers.get_mut(&peer) {
            if !arrived.is_empty() {
                p.last_delivery = now;
            }
            if let Some(set) = p.have.get_mut(&tree) {
                for index in &arrived {
                    set.remove(index);
                }
            }
        }
        if rejected > 0 {
            self.strike(peer, 10 * rejected, "delivered blocks that failed verification");
        }
        self.wake_waiting(tree, &arrived, ctx);
        if let Some(completed) = stored.completed {
            if let Some(download) = self.downloads.remove(&tree) {
                let elapsed = download.started.elapsed();
                let bytes = completed.manifest.dataset_size;
                tracing::info!(
                    cid = %format_cid(&download.manifest_cid),
                    bytes,
                    elapsed_ms = elapsed.as_millis() as u64,
                    mib_per_s = (bytes as f64 / (1 << 20) as f64 / elapsed.as_secs_f64().max(1e-6)) as u64,
                    "download complete"
                );
            }
            for p in self.peers.values_mut() {
                p.have.remove(&tree);
            }
            if let Some(discovery) = &self.discovery {
                discovery.do_send(Announce { cids: vec![completed.cid, completed.manifest.tree_cid] });
            }
            return;
        }
        if let Some(download) = self.downloads.get_mut(&tree) {
            let added = Self::refill(&self.config, download);
            self.announce_wants(tree, &added);
        }
        self.schedule();
    }

    /// Serves peers that wanted leaves which just arrived.
    fn wake_waiting(&mut self, tree: Cid, arrived: &[u64], ctx: &mut Context<Self>) {
        let mut woken = Vec::new();
        for (peer, p) in &mut self.peers {
            if p.waiting.is_empty() {
                continue;
            }
            for index in arrived {
                let address = BlockAddress::Leaf { tree, index: *index };
                if p.waiting.remove(&address) && p.queued.insert(address.clone()) {
                    p.wants.push_back((address, false));
                    woken.push(*peer);
                }
            }
        }
        woken.dedup();
        for peer in woken {
            self.serve(peer, ctx);
        }
    }

    /// Sends the next batch of blocks a peer wants, if a serve slot is free.
    fn serve(&mut self, peer: PeerId, ctx: &mut Context<Self>) {
        let Some(p) = self.peers.get_mut(&peer) else { return };
        if p.serving >= SERVES_PER_PEER || p.wants.is_empty() {
            return;
        }
        let mut batch: Vec<(BlockAddress, bool)> = Vec::new();
        while batch.len() < MAX_BLOCKS_PER_MESSAGE {
            let Some((next, _)) = p.wants.front() else { break };
            let same_group = match (batch.first().map(|(a, _)| a), next) {
                (None, _) => true,
                (Some(BlockAddress::Leaf { tree: a, .. }), BlockAddress::Leaf { tree: b, .. }) => a == b,
                _ => false,
            };
            if !same_group {
                break;
            }
            let (address, dont_have) = p.wants.pop_front().expect("invariant: front exists");
            p.queued.remove(&address);
            batch.push((address, dont_have));
        }
        p.serving += 1;
        let sender = p.sender.clone();
        let store = self.store.clone();
        let read = async move {
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
            let missing: Vec<(BlockAddress, bool)> = batch.into_iter().filter(|(a, _)| !sent.contains(a)).collect();
            let presences: Vec<BlockPresence> = missing
                .iter()
                .filter(|(_, dont_have)| *dont_have)
                .map(|(address, _)| BlockPresence {
                    address: address.clone(),
                    kind: PresenceType::DontHave,
                    price: ZERO_PRICE.to_vec(),
                })
                .collect();
            if !deliveries.is_empty() || !presences.is_empty() {
                let frame = WireMessage { payload: deliveries, presences, ..WireMessage::default() }.encode();
                let _ = sender.send(frame).await;
            }
            missing
        };
        read.into_actor(self)
            .map(move |missing, act, ctx| {
                if let Some(p) = act.peers.get_mut(&peer) {
                    p.serving -= 1;
                    for (address, _) in missing {
                        if p.waiting.len() < MAX_PEER_WANTS {
                            p.waiting.insert(address);
                        }
                    }
                }
                act.serve(peer, ctx);
            })
            .spawn(ctx);
    }

    /// Periodic work: timeouts, re-asking, discovery, stalled downloads.
    fn tick(&mut self) {
        let now = Instant::now();
        let mut timed_out: Vec<PeerId> = Vec::new();
        let mut locate = Vec::new();
        let mut reask: Vec<(Cid, Vec<u64>)> = Vec::new();
        let mut stalled = Vec::new();
        for (tree, download) in &mut self.downloads {
            for slot in download.window.values_mut() {
                if let Slot::Requested { peer, at } = *slot
                    && now.duration_since(at) > self.config.request_timeout
                {
                    *slot = Slot::Wanted;
                    timed_out.push(peer);
                }
            }
            let unheld: Vec<u64> = download
                .window
                .iter()
                .filter(|(index, slot)| {
                    **slot == Slot::Wanted
                        && !self.peers.values().any(|p| p.have.get(tree).is_some_and(|h| h.contains(index)))
                })
                .map(|(index, _)| *index)
                .collect();
            if !unheld.is_empty() && now.duration_since(download.last_reask) >= REASK_INTERVAL {
                download.last_reask = now;
                reask.push((*tree, unheld));
                locate.push(*tree);
                locate.push(download.manifest_cid);
            }
            if now.duration_since(download.last_report) >= REPORT_INTERVAL {
                download.last_report = now;
                tracing::info!(
                    cid = %format_cid(&download.manifest_cid),
                    received = download.progress.received(),
                    leaves = download.leaves,
                    "download progress"
                );
            }
            if now.duration_since(download.last_progress) > self.config.stall_timeout {
                stalled.push(*tree);
            }
        }
        for peer in timed_out {
            if let Some(p) = self.peers.get_mut(&peer) {
                p.in_flight = p.in_flight.saturating_sub(1);
            }
            self.strike(peer, 1, "request timed out");
        }
        for (tree, indexes) in reask {
            self.announce_wants(tree, &indexes);
        }
        for tree in stalled {
            if let Some(download) = self.downloads.remove(&tree) {
                let reason = format!("no block arrived for {:?}", self.config.stall_timeout);
                tracing::warn!(cid = %format_cid(&download.manifest_cid), %reason, "download failed");
                self.store.do_send(FailDownload { tree, reason });
            }
        }
        let idle: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.in_flight > 0 && now.duration_since(p.last_delivery) > self.config.peer_idle_timeout)
            .map(|(peer, _)| *peer)
            .collect();
        for peer in idle {
            tracing::warn!(%peer, "peer owes blocks and delivered nothing for a minute; disconnecting");
            self.drop_peer(peer);
        }
        let expired: Vec<Cid> = self
            .block_wants
            .iter()
            .filter(|(_, w)| now.duration_since(w.started) > self.config.block_timeout)
            .map(|(cid, _)| *cid)
            .collect();
        for cid in expired {
            self.block_wants.remove(&cid);
        }
        let mut reask_blocks = Vec::new();
        for (cid, want) in &mut self.block_wants {
            if now.duration_since(want.last_reask) >= REASK_INTERVAL {
                want.last_reask = now;
                reask_blocks.push(*cid);
            }
        }
        for cid in reask_blocks {
            for peer in self.peers.keys() {
                self.send(*peer, wants_message(vec![want_block_entry(cid)], false));
            }
            locate.push(cid);
        }
        if let Some(discovery) = &self.discovery {
            for cid in locate {
                discovery.do_send(Locate { cid });
            }
        }
        self.banned.retain(|_, until| *until > now);
        self.schedule();
    }
}

fn want_block_entry(cid: Cid) -> WantEntry {
    want(BlockAddress::Cid(cid), WantType::WantBlock, true)
}

impl Actor for BlockExchangeActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(256);
        ctx.run_interval(Duration::from_secs(1), |act, _| act.tick());
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
            NetEvent::Connected { peer, sender } => self.on_connected(peer, sender),
            NetEvent::Disconnected { peer } => self.forget_peer(peer),
            NetEvent::Message { peer, message } => self.on_message(peer, message, ctx),
            NetEvent::Malformed { peer, reason } => self.strike(peer, 10, &format!("malformed message: {reason}")),
        }
    }
}

impl Handler<StartDownload> for BlockExchangeActor {
    type Result = ();
    fn handle(&mut self, msg: StartDownload, _: &mut Self::Context) {
        let tree = msg.manifest.tree_cid;
        if self.downloads.contains_key(&tree) {
            return;
        }
        let now = Instant::now();
        let mut download = Download {
            manifest_cid: msg.manifest_cid,
            leaves: msg.progress.leaves(),
            progress: msg.progress,
            next: 0,
            window: BTreeMap::new(),
            started: now,
            last_progress: now,
            last_reask: now,
            last_report: now,
        };
        let added = Self::refill(&self.config, &mut download);
        tracing::info!(
            cid = %format_cid(&msg.manifest_cid),
            leaves = download.leaves,
            held = download.progress.received(),
            peers = self.peers.len(),
            "fetching a dataset"
        );
        self.downloads.insert(tree, download);
        self.announce_wants(tree, &added);
        if let Some(discovery) = &self.discovery {
            discovery.do_send(Locate { cid: tree });
            discovery.do_send(Locate { cid: msg.manifest_cid });
        }
    }
}

impl Handler<FetchBlock> for BlockExchangeActor {
    type Result = ResponseFuture<Result<Bytes, ExchangeError>>;
    fn handle(&mut self, msg: FetchBlock, _: &mut Self::Context) -> Self::Result {
        let (reply, answer) = oneshot::channel();
        let cid = msg.cid;
        let now = Instant::now();
        let first = !self.block_wants.contains_key(&cid);
        self.block_wants
            .entry(cid)
            .or_insert_with(|| BlockWant { waiters: Vec::new(), started: now, last_reask: now })
            .waiters
            .push(reply);
        if first {
            for peer in self.peers.keys() {
                self.send(*peer, wants_message(vec![want_block_entry(cid)], false));
            }
            if let Some(discovery) = &self.discovery {
                discovery.do_send(Locate { cid });
            }
        }
        let waited = self.config.block_timeout;
        Box::pin(async move {
            match tokio::time::timeout(waited, answer).await {
                Ok(Ok(data)) => Ok(data),
                Ok(Err(_)) | Err(_) => Err(ExchangeError::NotFound { cid, waited }),
            }
        })
    }
}
