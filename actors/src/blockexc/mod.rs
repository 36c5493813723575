//! The block exchange ("blockexc"): requester and provider sides of the original's protocol.
//!
//! The logic lives in plain state machines that take `now` and return what to do, each with its own tests:
//! [`requester`] (downloads of any set of a tree's leaves through a sliding window), [`provider`] (what each
//! peer asked of this node: store queries, delivery batches, blocks waited for), [`fetch`] (single blocks by
//! CID, such as manifests, with a quick "nobody has it"), [`early`] (messages of peers not yet handed over by the
//! network, held until they are), [`outbox`] (control messages merged while a peer's send queue is full) and
//! [`ledger`] (sessions, strikes and bans, message rate, peers that do not read). [`BlockExchangeActor`] (in `actor.rs`) only executes their actions: it sends
//! frames, asks the store and the discovery actor, and answers callers.
//!
//! Handles: [`StartDownload`], [`FetchBlock`], [`Attach`], [`crate::network::NetEvent`].

// Bytes from peers pass through here: no indexing that could panic on them.
#![deny(clippy::indexing_slicing)]

mod actor;
pub mod early;
pub mod fetch;
pub mod ledger;
pub mod outbox;
pub mod provider;
pub mod recent;
pub mod requester;

pub use actor::BlockExchangeActor;

use crate::discovery::DiscoveryActor;
use crate::network::NetworkActor;
use crate::store::Progress;
use actix::prelude::*;
use bytes::Bytes;
use codex_protocol::cid::format_cid;
use codex_protocol::{Cid, Manifest};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

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
    /// How long a single block (a manifest) is looked for at most.
    pub block_timeout: Duration,
}

impl Default for BlockExchangeConfig {
    fn default() -> Self {
        Self {
            window: 2048,
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
    #[error("no peer has block {}: the provider lookup found nobody else and every connected peer said it does not have it ({:?})", format_cid(.cid), .waited)]
    NobodyHasIt { cid: Cid, waited: Duration },
    #[error("the block exchange is not running")]
    Stopped,
}

impl ExchangeError {
    /// What kind of failure this is.
    pub fn kind(&self) -> crate::error::ErrorKind {
        match self {
            ExchangeError::NotFound { .. } | ExchangeError::NobodyHasIt { .. } => crate::error::ErrorKind::NotFound,
            ExchangeError::Stopped => crate::error::ErrorKind::Unavailable,
        }
    }
}

/// Command: download dataset `manifest_cid` into the store's download `progress`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StartDownload {
    pub manifest_cid: Cid,
    pub manifest: Manifest,
    pub progress: Arc<Progress>,
    /// Which leaves to fetch.
    pub leaves: LeafSet,
}

/// The leaves a download fetches (those the download's `Progress` still calls `needed`).
#[derive(Debug, Clone)]
pub enum LeafSet {
    /// Every leaf, in order.
    All,
    /// A range (one slot).
    Range(std::ops::Range<u64>),
    /// The members of erasure groups (decoding): the requester stops asking for a group's leaves once it holds
    /// K, and asks for parity only when data looks lost. `in_order`: data leaves in index order, each followed
    /// by its group's parity, for a stream that reads in order (one data slot's holder serves at a time, as the
    /// one holder of a plain dataset does); else group by group, so every data slot's holder serves at once.
    Groups { layout: codex_protocol::erasure::ErasureLayout, in_order: bool },
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
