//! NodeActor: the root of the node, the seed-000 "Codex component".
//!
//! Owns the StoreActor, MaintenanceActor and, when networking is configured, the BlockExchangeActor,
//! NetworkActor and DiscoveryActor (creates them with their configs), and answers the data interface of seed
//! 000 by delegating to them: [`BeginStore`] (store), [`Retrieve`] (retrieve), [`FetchManifest`],
//! [`IterateManifests`], [`Delete`], [`FetchDataset`] (fetchDatasetAsync), [`FetchNetworkManifest`],
//! [`Connect`], [`StopNode`], plus [`HasLocalBlock`], [`GetSpace`], [`GetNodeInfo`], [`GetNetworkInfo`] for the
//! REST API and [`DatasetStored`] after an upload. REST handlers hold its `Addr` and nothing else. Runs on the
//! system arbiter; it never blocks: storage work happens on the StoreActor's thread or an upload's own threads,
//! networking on the network thread. Downloads left unfinished by a stop are resumed when the node starts.
//! The network fetch flow itself (manifest fetching and validation, starting downloads) is in `fetch.rs`; this
//! file only wires the actors and routes messages. With persistence, `market.rs` adds the marketplace: it
//! starts the ChainActor and PurchasingActor ([`EnableMarketplace`]), routes the storage endpoints to them and
//! the chain's events to their consumers.

mod market;
mod sales;

pub use market::{
    EnableMarketplace, GetPurchase, GetSalesMetrics, GetValidatorMetrics, ListPurchases, MarketInfo, RequestPurchase,
    WithdrawPurchaseFunds,
};
pub use sales::SalesCall;

use crate::blockexc::{Attach, BlockExchangeActor, BlockExchangeConfig, ExchangeError};
use crate::discovery::{Announce, DiscoveryActor};
use crate::erasure::ErasureActor;
use crate::error::ErrorKind;
use crate::fetch;
use crate::maintenance::{MaintenanceActor, MaintenanceConfig};
use crate::network::{Dial, GetNetInfo, NetInfo, NetworkActor, NetworkConfig, NetworkError, StopNetwork};
use crate::protect::{ProtectActors, ProtectError, protect_dataset};
use crate::prover::{Prover, ProverConfig, ProverInfo};
use crate::slot_host::{HostedSlot, RepairActors, SlotHostError, host_slot, repair_slot};
use crate::slots::SlotBuilderActor;
use crate::store::{
    CloseStore, DeleteData, DeleteOutcome, GetManifest, ListDatasets, OpenDataset, OpenDownload, OpenedDataset,
    OpenedDownload, Progress, QuotaGate, Space, StoreActor, StoreConfig, StoreError, StoredDataset,
};
use crate::upload::UploadSession;
use actix::prelude::*;
use codex_protocol::cid::format_cid;
use codex_protocol::{Cid, DEFAULT_BLOCK_SIZE, Manifest, ManifestError};
use libp2p::Multiaddr;
use libp2p_identity::PeerId;
use std::path::PathBuf;
use std::sync::Arc;
use thiserror::Error;

/// Everything the node needs to start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub data_dir: PathBuf,
    pub peer_id: PeerId,
    pub store: StoreConfig,
    pub maintenance: MaintenanceConfig,
    /// `None` runs the node without networking (tests of the local store).
    pub network: Option<NetworkConfig>,
    pub exchange: BlockExchangeConfig,
    /// Threads for erasure coding and for Poseidon2 slot hashing (each runs its own, at lower priority).
    pub coding_threads: usize,
    /// The storage prover; started only when its circuit directory holds keys.
    pub prover: Option<ProverConfig>,
}

/// Node errors, mapped to HTTP statuses in one place by the REST layer.
#[derive(Debug, Error)]
pub enum NodeError {
    #[error("the requested CID could not be retrieved ({}): not found locally", format_cid(.cid))]
    NotFound { cid: Cid },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{} is not a manifest CID: only datasets can be fetched from the network", format_cid(.cid))]
    NotAManifest { cid: Cid },
    /// The manifest could not be fetched, or a peer sent one that is invalid (the source says which).
    #[error("the manifest {} could not be fetched: {source}", format_cid(.cid))]
    ManifestUnavailable { cid: Cid, source: Box<ManifestFailure> },
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error("networking is disabled on this node")]
    NoNetwork,
    #[error(transparent)]
    Protect(#[from] ProtectError),
    #[error(transparent)]
    Slot(#[from] Box<SlotHostError>),
    #[error("the marketplace is not enabled on this node: start it with `codex persistence …`")]
    NoPersistence,
    #[error(transparent)]
    Purchase(#[from] crate::purchasing::PurchaseError),
    #[error(transparent)]
    Chain(#[from] crate::chain::actor::ChainError),
    #[error(transparent)]
    Sales(#[from] crate::sales::SalesError),
}

/// Why a manifest could not be had from the network.
#[derive(Debug, Error)]
pub enum ManifestFailure {
    /// No peer delivered it.
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
    /// A peer sent bytes that are not a valid manifest.
    #[error("invalid manifest: {0}")]
    Invalid(#[from] ManifestError),
    /// The store refused it (its CID, or its size against an already stored tree).
    #[error(transparent)]
    Refused(StoreError),
}

impl NodeError {
    /// The manifest `cid` could not be had, for `failure`.
    pub fn manifest_unavailable(cid: Cid, failure: impl Into<ManifestFailure>) -> Self {
        NodeError::ManifestUnavailable { cid, source: Box::new(failure.into()) }
    }

    /// What kind of failure this is (delegates to the source where there is one).
    pub fn kind(&self) -> ErrorKind {
        match self {
            NodeError::NotFound { .. } | NodeError::ManifestUnavailable { .. } => ErrorKind::NotFound,
            NodeError::Store(err) => err.kind(),
            NodeError::NotAManifest { .. } => ErrorKind::BadRequest,
            NodeError::Network(err) => err.kind(),
            NodeError::NoNetwork => ErrorKind::Unavailable,
            NodeError::Protect(err) => err.kind(),
            NodeError::Slot(err) => err.kind(),
            NodeError::NoPersistence => ErrorKind::Unavailable,
            NodeError::Purchase(err) => err.kind(),
            NodeError::Chain(_) => ErrorKind::Unavailable,
            NodeError::Sales(err) => err.kind(),
        }
    }
}

impl From<MailboxError> for NodeError {
    fn from(_: MailboxError) -> Self {
        NodeError::Store(StoreError::Unavailable)
    }
}

impl From<crate::network::NetworkError> for StoreError {
    fn from(_: crate::network::NetworkError) -> Self {
        StoreError::Unavailable
    }
}

/// Node identity and layout, for `/peerid` and `/debug/info`.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub peer_id: PeerId,
    pub data_dir: PathBuf,
}

/// Command: start storing a dataset; the caller streams it into the returned session.
#[derive(Message)]
#[rtype(result = "Result<UploadSession, NodeError>")]
pub struct BeginStore {
    pub filename: Option<String>,
    pub mimetype: Option<String>,
}

/// Query: open a local dataset for reading.
#[derive(Message)]
#[rtype(result = "Result<OpenedDataset, NodeError>")]
pub struct Retrieve {
    pub cid: Cid,
}

/// Query: the manifest of a local dataset.
#[derive(Message)]
#[rtype(result = "Result<Manifest, NodeError>")]
pub struct FetchManifest {
    pub cid: Cid,
}

/// Query: every local dataset.
#[derive(Message)]
#[rtype(result = "Result<Vec<StoredDataset>, NodeError>")]
pub struct IterateManifests;

/// Command: delete a dataset or a standalone block.
#[derive(Message)]
#[rtype(result = "Result<DeleteOutcome, NodeError>")]
pub struct Delete {
    pub cid: Cid,
}

/// Query: is a block stored locally?
#[derive(Message)]
#[rtype(result = "Result<bool, NodeError>")]
pub struct HasLocalBlock {
    pub cid: Cid,
}

/// Query: the repository's space summary.
#[derive(Message)]
#[rtype(result = "Space")]
pub struct GetSpace;

/// Query: node identity and layout.
#[derive(Message)]
#[rtype(result = "NodeInfo")]
pub struct GetNodeInfo;

/// How a fetched dataset can be read.
#[derive(Debug, Clone)]
pub enum FetchState {
    /// Stored locally.
    Local,
    /// Arriving: leaves become readable as `progress` marks them.
    Downloading(Arc<Progress>),
}

/// A dataset being fetched.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub manifest: Manifest,
    pub state: FetchState,
}

/// Command: make dataset `cid` local, fetching it from the network in the background if needed (resuming a
/// download in progress). Answers once the manifest is known.
#[derive(Message)]
#[rtype(result = "Result<Fetched, NodeError>")]
pub struct FetchDataset {
    pub cid: Cid,
    /// A stream reads the dataset in order: a protected dataset's data leaves are fetched in order (see
    /// [`crate::blockexc::LeafSet::Groups`]). A download already running keeps its order.
    pub in_order: bool,
}

/// Query: the manifest of dataset `cid`, from the store or else from the network (then stored).
#[derive(Message)]
#[rtype(result = "Result<Manifest, NodeError>")]
pub struct FetchNetworkManifest {
    pub cid: Cid,
}

/// Query: open a download in progress for streaming.
#[derive(Message)]
#[rtype(result = "Result<Option<OpenedDownload>, NodeError>")]
pub struct StreamDownload {
    pub cid: Cid,
}

/// Command: connect to a peer (at `addrs`, or where the DHT says).
#[derive(Message)]
#[rtype(result = "Result<(), NodeError>")]
pub struct Connect {
    pub peer: PeerId,
    pub addrs: Vec<Multiaddr>,
}

/// Query: addresses, SPR, peers and DHT table.
#[derive(Message)]
#[rtype(result = "Result<NetInfo, NodeError>")]
pub struct GetNetworkInfo;

/// Event: a dataset was stored locally (an upload finished); it is announced in the DHT.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DatasetStored {
    pub cid: Cid,
    pub tree: Cid,
}

/// Command: erasure-code stored dataset `cid` into `nodes` slots tolerating the loss of `tolerance` of them,
/// build its slots, and store the verifiable manifest (see `protect.rs`). Answers the new dataset, which is
/// announced like an upload.
#[derive(Message)]
#[rtype(result = "Result<StoredDataset, NodeError>")]
pub struct Protect {
    pub cid: Cid,
    pub nodes: u64,
    pub tolerance: u64,
}

/// Command: fetch slot `index` of verifiable dataset `cid` and keep it once it matches its slot root (see
/// `slot_host.rs`). Answers when the slot is stored.
#[derive(Message)]
#[rtype(result = "Result<HostedSlot, NodeError>")]
pub struct HostSlot {
    pub cid: Cid,
    pub index: u64,
}

/// Command: rebuild slot `index` of verifiable dataset `cid` from the other slots (its host is gone) and keep it
/// once it matches its slot root (see `slot_host::repair_slot`). Answers when the slot is stored.
#[derive(Message)]
#[rtype(result = "Result<HostedSlot, NodeError>")]
pub struct RepairSlot {
    pub cid: Cid,
    pub index: u64,
}

/// Query: the storage prover's keys (`None` when the prover is off).
#[derive(Message)]
#[rtype(result = "Option<ProverInfo>")]
pub struct GetProverInfo;

/// Command: stop the node: close the repository (flushing it) and stop the children.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopNode;

/// The root actor.
pub struct NodeActor {
    config: NodeConfig,
    store: Addr<StoreActor>,
    quota: QuotaGate,
    _maintenance: Addr<MaintenanceActor>,
    net: Option<Net>,
    protect: ProtectActors,
    /// Present when proving keys were found (the sales issue proves with it).
    prover: Option<Prover>,
    /// Present with persistence (after [`EnableMarketplace`]).
    market: Option<market::MarketActors>,
}

/// The networking actors.
#[derive(Clone)]
struct Net {
    network: Addr<NetworkActor>,
    exchange: Addr<BlockExchangeActor>,
    discovery: Addr<DiscoveryActor>,
}

impl NodeActor {
    /// Opens the repository and starts the child actors. Must run inside an actix `System`.
    pub fn start(config: NodeConfig) -> Result<Addr<Self>, NodeError> {
        let store = StoreActor::open(config.store.clone())?;
        let quota = store.quota();
        let store = store.start();
        let maintenance = MaintenanceActor::new(store.clone(), config.maintenance.clone()).start();
        let net = match config.network.clone() {
            Some(network_config) => {
                let exchange = BlockExchangeActor::new(config.exchange.clone(), store.clone()).start();
                let network = NetworkActor::start(network_config, exchange.clone().recipient())?;
                let discovery = DiscoveryActor::new(network.clone(), store.clone()).start();
                exchange.do_send(Attach { network: network.clone(), discovery: discovery.clone() });
                Some(Net { network, exchange, discovery })
            }
            None => None,
        };
        let protect = ProtectActors {
            store: store.clone(),
            erasure: ErasureActor::start(config.coding_threads),
            slots: SlotBuilderActor::start(config.coding_threads),
        };
        let prover = config.prover.clone().and_then(|prover| {
            if prover.circuit_dir.join("keys.sha256").exists() {
                Some(Prover::start(prover))
            } else {
                tracing::info!(dir = %prover.circuit_dir.display(), "no storage-proof keys: the prover is off");
                None
            }
        });
        tracing::info!(data_dir = %config.data_dir.display(), peer_id = %config.peer_id, "node started");
        Ok(Self { config, store, quota, _maintenance: maintenance, net, protect, prover, market: None }.start())
    }

    /// The store's address (for tests and future subsystems).
    pub fn store(&self) -> Addr<StoreActor> {
        self.store.clone()
    }

    fn net(&self) -> Result<Net, NodeError> {
        self.net.clone().ok_or(NodeError::NoNetwork)
    }

    fn exchange(&self) -> Option<Addr<BlockExchangeActor>> {
        self.net.as_ref().map(|net| net.exchange.clone())
    }
}

impl Actor for NodeActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.net.is_none() {
            return;
        }
        let (store, exchange, erasure) = (self.store.clone(), self.exchange(), self.protect.erasure.clone());
        ctx.spawn(fetch::resume_downloads(store, exchange, erasure).into_actor(self));
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        tracing::info!("node stopped");
    }
}

impl Handler<BeginStore> for NodeActor {
    type Result = ResponseFuture<Result<UploadSession, NodeError>>;
    fn handle(&mut self, msg: BeginStore, _: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        Box::pin(async move { Ok(UploadSession::begin(store, DEFAULT_BLOCK_SIZE, msg.filename, msg.mimetype).await?) })
    }
}

impl Handler<Retrieve> for NodeActor {
    type Result = ResponseFuture<Result<OpenedDataset, NodeError>>;
    fn handle(&mut self, msg: Retrieve, _: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        Box::pin(
            async move { store.send(OpenDataset { cid: msg.cid }).await??.ok_or(NodeError::NotFound { cid: msg.cid }) },
        )
    }
}

impl Handler<FetchManifest> for NodeActor {
    type Result = ResponseFuture<Result<Manifest, NodeError>>;
    fn handle(&mut self, msg: FetchManifest, _: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        Box::pin(
            async move { store.send(GetManifest { cid: msg.cid }).await??.ok_or(NodeError::NotFound { cid: msg.cid }) },
        )
    }
}

impl Handler<IterateManifests> for NodeActor {
    type Result = ResponseFuture<Result<Vec<StoredDataset>, NodeError>>;
    fn handle(&mut self, _: IterateManifests, _: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        Box::pin(async move { Ok(store.send(ListDatasets).await??) })
    }
}

impl Handler<Delete> for NodeActor {
    type Result = ResponseFuture<Result<DeleteOutcome, NodeError>>;
    fn handle(&mut self, msg: Delete, _: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        Box::pin(async move { Ok(store.send(DeleteData { cid: msg.cid }).await??) })
    }
}

impl Handler<HasLocalBlock> for NodeActor {
    type Result = ResponseFuture<Result<bool, NodeError>>;
    fn handle(&mut self, msg: HasLocalBlock, _: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        Box::pin(async move { Ok(store.send(crate::store::HasBlock { cid: msg.cid }).await??) })
    }
}

impl Handler<GetSpace> for NodeActor {
    type Result = MessageResult<GetSpace>;
    fn handle(&mut self, _: GetSpace, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.quota.space())
    }
}

impl Handler<GetNodeInfo> for NodeActor {
    type Result = MessageResult<GetNodeInfo>;
    fn handle(&mut self, _: GetNodeInfo, _: &mut Self::Context) -> Self::Result {
        MessageResult(NodeInfo { peer_id: self.config.peer_id, data_dir: self.config.data_dir.clone() })
    }
}

impl Handler<FetchDataset> for NodeActor {
    type Result = ResponseFuture<Result<Fetched, NodeError>>;
    fn handle(&mut self, msg: FetchDataset, _: &mut Self::Context) -> Self::Result {
        Box::pin(fetch::fetch_dataset(
            self.store.clone(),
            self.exchange(),
            self.protect.erasure.clone(),
            msg.cid,
            msg.in_order,
        ))
    }
}

impl Handler<FetchNetworkManifest> for NodeActor {
    type Result = ResponseFuture<Result<Manifest, NodeError>>;
    fn handle(&mut self, msg: FetchNetworkManifest, _: &mut Self::Context) -> Self::Result {
        let (store, exchange) = (self.store.clone(), self.exchange());
        Box::pin(async move { fetch::manifest_of(&store, exchange.as_ref(), msg.cid).await })
    }
}

impl Handler<StreamDownload> for NodeActor {
    type Result = ResponseFuture<Result<Option<OpenedDownload>, NodeError>>;
    fn handle(&mut self, msg: StreamDownload, _: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        Box::pin(async move { Ok(store.send(OpenDownload { cid: msg.cid }).await??) })
    }
}

impl Handler<Connect> for NodeActor {
    type Result = ResponseFuture<Result<(), NodeError>>;
    fn handle(&mut self, msg: Connect, _: &mut Self::Context) -> Self::Result {
        let net = self.net();
        Box::pin(async move { Ok(net?.network.send(Dial { peer: msg.peer, addrs: msg.addrs }).await??) })
    }
}

impl Handler<GetNetworkInfo> for NodeActor {
    type Result = ResponseFuture<Result<NetInfo, NodeError>>;
    fn handle(&mut self, _: GetNetworkInfo, _: &mut Self::Context) -> Self::Result {
        let net = self.net.clone();
        Box::pin(async move {
            match net {
                Some(net) => Ok(net.network.send(GetNetInfo).await??),
                None => Ok(NetInfo::default()),
            }
        })
    }
}

impl Handler<DatasetStored> for NodeActor {
    type Result = ();
    fn handle(&mut self, msg: DatasetStored, _: &mut Self::Context) {
        if let Some(net) = &self.net {
            net.discovery.do_send(Announce { cids: vec![msg.cid, msg.tree] });
        }
    }
}

impl Handler<Protect> for NodeActor {
    type Result = ResponseFuture<Result<StoredDataset, NodeError>>;
    fn handle(&mut self, msg: Protect, ctx: &mut Self::Context) -> Self::Result {
        let (actors, me) = (self.protect.clone(), ctx.address());
        Box::pin(async move {
            let stored = protect_dataset(actors, msg.cid, msg.nodes, msg.tolerance).await?;
            me.do_send(DatasetStored { cid: stored.cid, tree: stored.manifest.tree_cid });
            Ok(stored)
        })
    }
}

impl Handler<HostSlot> for NodeActor {
    type Result = ResponseFuture<Result<HostedSlot, NodeError>>;
    fn handle(&mut self, msg: HostSlot, ctx: &mut Self::Context) -> Self::Result {
        let (store, exchange, slots) = (self.store.clone(), self.exchange(), self.protect.slots.clone());
        let me = ctx.address();
        Box::pin(async move {
            let hosted = host_slot(store, exchange, slots, msg.cid, msg.index).await?;
            // Announced like a dataset: readers of the protected dataset find the slot's holders in the DHT.
            me.do_send(DatasetStored { cid: hosted.manifest_cid, tree: hosted.tree });
            Ok(hosted)
        })
    }
}

impl Handler<RepairSlot> for NodeActor {
    type Result = ResponseFuture<Result<HostedSlot, NodeError>>;
    fn handle(&mut self, msg: RepairSlot, ctx: &mut Self::Context) -> Self::Result {
        let actors = RepairActors {
            store: self.store.clone(),
            exchange: self.exchange(),
            erasure: self.protect.erasure.clone(),
            slots: self.protect.slots.clone(),
        };
        let me = ctx.address();
        Box::pin(async move {
            let hosted = repair_slot(actors, msg.cid, msg.index).await?;
            me.do_send(DatasetStored { cid: hosted.manifest_cid, tree: hosted.tree });
            Ok(hosted)
        })
    }
}

impl Handler<GetProverInfo> for NodeActor {
    type Result = ResponseFuture<Option<ProverInfo>>;
    fn handle(&mut self, _: GetProverInfo, _: &mut Self::Context) -> Self::Result {
        let prover = self.prover.clone();
        Box::pin(async move { prover?.info().await.ok() })
    }
}

impl Handler<StopNode> for NodeActor {
    type Result = ResponseActFuture<Self, ()>;
    fn handle(&mut self, _: StopNode, _: &mut Self::Context) -> Self::Result {
        if let Some(net) = &self.net {
            net.network.do_send(StopNetwork);
        }
        if let Some(market) = &self.market {
            market.stop();
        }
        let store = self.store.clone();
        Box::pin(async move { store.send(CloseStore).await.unwrap_or(()) }.into_actor(self).map(|_, _, ctx| ctx.stop()))
    }
}
