//! StoreActor: owns the repository (redb metadata + dataset segment files), the quota and block expiry.
//!
//! Handles: [`BeginUpload`], [`CommitUpload`], [`PutBlock`], [`PutManifest`], [`GetManifest`], [`ListDatasets`],
//! [`HasBlock`],
//! [`GetBlock`], [`GetLeaf`], [`OpenDataset`], [`DeleteData`], [`GetSpace`], [`SweepExpired`], [`CloseStore`],
//! and for network downloads [`BeginDownload`], [`StoreLeaves`], [`ReadLeaves`], [`HasLeaves`], [`HasAddresses`],
//! [`ListDownloads`], [`OpenDownload`]; for the marketplace [`GetChainCursor`], [`SaveChainCursor`], [`PutPurchase`],
//! [`ListPurchases`] (`market.rs`).
//! Delivered leaves are verified (SHA-256 and Merkle proof) here, on the
//! store's thread, before they are written.
//! Emits nothing; callers await the typed results. Runs on a one-thread `SyncArbiter`: every handler does
//! blocking redb/file I/O, so it never shares a thread with HTTP or networking. Bulk block bytes do not pass
//! through this mailbox: an [`crate::upload::UploadSession`] writes them to the segment on its own threads
//! and only the commit comes here; downloads get an open file from [`OpenDataset`] and read it elsewhere.
//!
//! Layout: `messages.rs` (the messages), `quota.rs` ([`QuotaGate`], [`QuotaClaim`]), `actor.rs` (the actor,
//! uploads, blocks, deletes, expiry), `downloads.rs` (network downloads: begin, resume, store, finish),
//! `handlers.rs` (one short `Handler` per message), `partial.rs` and `progress.rs` (one download in progress),
//! `repo.rs` (redb + segment files), `tables.rs` (the versioned tables and their opener), `treefile.rs` (tree
//! files, read and written node by node).

mod actor;
mod downloads;
mod handlers;
mod market;
mod messages;
mod partial;
mod progress;
mod quota;
mod repo;
mod sales;
mod tables;
mod treefile;

pub use actor::StoreActor;
pub use market::{ChainCursor, GetChainCursor, ListPurchases, PutPurchase, SaveChainCursor};
pub use messages::*;
pub use progress::{DownloadStatus, LeafOutcome, Progress};
pub use quota::{QuotaClaim, QuotaGate, Space};
pub use repo::{CommitOutcome, Counters, DeleteOutcome, DownloadRecord, TreeRecord, remove_in_background};
pub use sales::{CommitSales, LoadSales, SalesRecords, SetBlockExpiry};
pub use tables::SCHEMA_VERSION;

use actix::prelude::*;
use codex_protocol::cid::format_cid;
use codex_protocol::{Cid, ManifestError, TreeError};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use thiserror::Error;

/// Store configuration.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The repository directory (`<data-dir>/repo`).
    pub repo_dir: PathBuf,
    /// Maximum bytes of blocks stored (`used + reserved` never exceeds it).
    pub quota_max: u64,
    /// Time to live of newly stored blocks; `None` keeps them forever.
    pub block_ttl: Option<Duration>,
    /// Records visited per expiry sweep.
    pub sweep_batch: usize,
}

/// Store errors, with enough context to tell the user what to do.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("not enough storage quota: {needed} more bytes needed, {free} bytes free of {max}")]
    QuotaExceeded { needed: u64, free: u64, max: u64 },
    #[error("the upload is empty: a dataset needs at least one byte")]
    EmptyDataset,
    #[error("block {} is part of a dataset; delete the dataset's manifest CID instead", format_cid(.cid))]
    PartOfDataset { cid: Cid },
    #[error("block data does not match CID {}", format_cid(.cid))]
    CidMismatch { cid: Cid },
    #[error("{context}: {source}")]
    Io { context: &'static str, source: std::io::Error },
    #[error("metadata database: {0}")]
    Db(#[from] redb::Error),
    #[error("corrupt {what} in the repository: {reason}")]
    Corrupt { what: &'static str, reason: String },
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error("the upload was interrupted")]
    Interrupted,
    #[error("the store is not running")]
    Unavailable,
    #[error("invalid manifest {}: {source}", format_cid(.cid))]
    InvalidManifest { cid: Cid, source: Box<ManifestError> },
    #[error(
        "the manifest describes {manifest_bytes} bytes of tree {}, which is stored with {stored_bytes} bytes",
        format_cid(.tree)
    )]
    TreeSizeMismatch { tree: Cid, manifest_bytes: u64, stored_bytes: u64 },
    #[error(
        "the repository uses schema version {found}, newer than this node's {supported}: run a newer node or \
         move the repository away"
    )]
    SchemaTooNew { found: u64, supported: u64 },
    #[error(
        "the repository was written by an older node without a schema version; move it away (or delete it) and \
         start again"
    )]
    UnversionedRepository,
    #[error(
        "dataset tree {} is already being fetched here in another way (whole, or another slot); one node holds \
         one slot of a dataset",
        format_cid(.tree)
    )]
    SlotConflict { tree: Cid },
}

impl StoreError {
    /// What kind of failure this is.
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            StoreError::QuotaExceeded { .. }
            | StoreError::EmptyDataset
            | StoreError::CidMismatch { .. }
            | StoreError::InvalidManifest { .. }
            | StoreError::TreeSizeMismatch { .. }
            | StoreError::SlotConflict { .. } => ErrorKind::Refused,
            StoreError::PartOfDataset { .. } => ErrorKind::BadRequest,
            StoreError::Unavailable => ErrorKind::Unavailable,
            _ => ErrorKind::Internal,
        }
    }

    pub(crate) fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> StoreError {
        move |source| StoreError::Io { context, source }
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(err: $t) -> Self {
                StoreError::Db(redb::Error::from(err))
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

impl From<MailboxError> for StoreError {
    fn from(_: MailboxError) -> Self {
        StoreError::Unavailable
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
