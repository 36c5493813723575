//! NodeActor: the root of the node, the seed-000 "Codex component".
//!
//! Owns the StoreActor and MaintenanceActor (creates them with their configs) and answers the data interface
//! of seed 000 by delegating to them: [`BeginStore`] (store), [`Retrieve`] (retrieve), [`FetchManifest`],
//! [`IterateManifests`], [`Delete`], [`StopNode`], plus [`HasBlock`]-style queries and [`GetSpace`]/[`GetNodeInfo`] for the
//! REST API. REST handlers hold its `Addr` and nothing else. Runs on the system arbiter; it never blocks, all
//! storage work happens on the StoreActor's thread or an upload's own threads.

use crate::maintenance::{MaintenanceActor, MaintenanceConfig};
use crate::store::{
    CloseStore, DeleteData, DeleteOutcome, GetManifest, ListDatasets, OpenDataset, OpenedDataset, QuotaGate, Space,
    StoreActor, StoreConfig, StoreError, StoredDataset,
};
use crate::upload::UploadSession;
use actix::prelude::*;
use codex_protocol::cid::format_cid;
use codex_protocol::{Cid, DEFAULT_BLOCK_SIZE, Manifest};
use libp2p_identity::PeerId;
use std::path::PathBuf;
use thiserror::Error;

/// Everything the node needs to start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub data_dir: PathBuf,
    pub peer_id: PeerId,
    pub store: StoreConfig,
    pub maintenance: MaintenanceConfig,
}

/// Node errors, mapped to HTTP statuses in one place by the REST layer.
#[derive(Debug, Error)]
pub enum NodeError {
    #[error("the requested CID could not be retrieved ({}): not found locally", format_cid(.cid))]
    NotFound { cid: Cid },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<MailboxError> for NodeError {
    fn from(_: MailboxError) -> Self {
        NodeError::Store(StoreError::Unavailable)
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
}

impl NodeActor {
    /// Opens the repository and starts the child actors. Must run inside an actix `System`.
    pub fn start(config: NodeConfig) -> Result<Addr<Self>, NodeError> {
        let store = StoreActor::open(config.store.clone())?;
        let quota = store.quota();
        let store = store.start();
        let maintenance = MaintenanceActor::new(store.clone(), config.maintenance.clone()).start();
        tracing::info!(data_dir = %config.data_dir.display(), peer_id = %config.peer_id, "node started");
        Ok(Self { config, store, quota, _maintenance: maintenance }.start())
    }

    /// The store's address (for tests and future subsystems).
    pub fn store(&self) -> Addr<StoreActor> {
        self.store.clone()
    }
}

impl Actor for NodeActor {
    type Context = Context<Self>;

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

impl Handler<StopNode> for NodeActor {
    type Result = ResponseActFuture<Self, ()>;
    fn handle(&mut self, _: StopNode, _: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        Box::pin(async move { store.send(CloseStore).await.unwrap_or(()) }.into_actor(self).map(|_, _, ctx| ctx.stop()))
    }
}
