//! StoreActor: owns the repository (redb metadata + dataset segment files), the quota and block expiry.
//!
//! Handles: [`BeginUpload`], [`CommitUpload`], [`PutBlock`], [`GetManifest`], [`ListDatasets`], [`HasBlock`],
//! [`GetBlock`], [`GetLeaf`], [`OpenDataset`], [`DeleteData`], [`GetSpace`], [`SweepExpired`], [`CloseStore`],
//! and for network downloads [`BeginDownload`], [`StoreLeaves`], [`ReadLeaves`], [`HasLeaves`],
//! [`ListDownloads`], [`OpenDownload`]. Delivered leaves are verified (SHA-256 and Merkle proof) here, on the
//! store's thread, before they are written.
//! Emits nothing; callers await the typed results. Runs on a one-thread `SyncArbiter`: every handler does
//! blocking redb/file I/O, so it never shares a thread with HTTP or networking. Bulk block bytes do not pass
//! through this mailbox: an [`crate::upload::UploadSession`] writes them to the segment on its own threads
//! and only the commit comes here; downloads get an open file from [`OpenDataset`] and read it elsewhere.

mod partial;
mod repo;

pub use partial::{DownloadStatus, LeafOutcome, Progress};
pub use repo::{CommitOutcome, Counters, DeleteOutcome, DownloadRecord, TreeRecord, remove_in_background};

use actix::prelude::*;
use bytes::Bytes;
use codex_protocol::blockexc::BlockDelivery;
use codex_protocol::cid::format_cid;
use codex_protocol::{Cid, CodexProof, Digest, Manifest, TreeError};
use partial::Partial;
use repo::Repo;
use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
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
}

impl StoreError {
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

/// Quota bookkeeping shared by the StoreActor and running uploads. Uploads claim bytes as they write; the
/// commit turns their claim into `used`, an abort releases it. Claims live only in memory, so a crash frees
/// them.
#[derive(Debug, Clone)]
pub struct QuotaGate {
    inner: Arc<Mutex<QuotaState>>,
}

#[derive(Debug, Clone, Copy)]
struct QuotaState {
    max: u64,
    counters: Counters,
    pending: u64,
}

impl QuotaGate {
    fn new(max: u64, counters: Counters) -> Self {
        Self { inner: Arc::new(Mutex::new(QuotaState { max, counters, pending: 0 })) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QuotaState> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Claims `bytes` for a running upload, or says how much is missing.
    pub fn claim(&self, bytes: u64) -> Result<(), StoreError> {
        let mut state = self.lock();
        let taken = state.counters.used + state.counters.reserved + state.pending;
        let free = state.max.saturating_sub(taken);
        if bytes > free {
            return Err(StoreError::QuotaExceeded { needed: bytes, free, max: state.max });
        }
        state.pending += bytes;
        Ok(())
    }

    /// Claims `bytes` even beyond the quota (a download resumed after the quota shrank: its data is on disk).
    fn force_claim(&self, bytes: u64) {
        self.lock().pending += bytes;
    }

    /// Returns an unused claim.
    pub fn release(&self, bytes: u64) {
        let mut state = self.lock();
        state.pending = state.pending.saturating_sub(bytes);
    }

    fn counters(&self) -> Counters {
        self.lock().counters
    }

    fn set_counters(&self, counters: Counters) {
        self.lock().counters = counters;
    }

    /// The current space summary.
    pub fn space(&self) -> Space {
        let state = self.lock();
        Space {
            total_blocks: state.counters.total_blocks,
            quota_max_bytes: state.max,
            quota_used_bytes: state.counters.used,
            quota_reserved_bytes: state.counters.reserved,
            pending_bytes: state.pending,
        }
    }
}

/// The repository's space summary (the REST `Space`, plus bytes claimed by running uploads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    pub total_blocks: u64,
    pub quota_max_bytes: u64,
    pub quota_used_bytes: u64,
    pub quota_reserved_bytes: u64,
    pub pending_bytes: u64,
}

/// Where a new upload writes its blocks and tree.
#[derive(Debug, Clone)]
pub struct UploadTarget {
    pub segment: u64,
    pub data_path: PathBuf,
    pub tree_path: PathBuf,
    pub quota: QuotaGate,
}

/// A dataset that is stored and visible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDataset {
    pub cid: Cid,
    pub manifest: Manifest,
}

/// An open dataset for reading: the file stays readable even if the dataset is deleted meanwhile.
#[derive(Debug)]
pub struct OpenedDataset {
    pub manifest: Manifest,
    pub file: File,
}

/// Command: allocate a segment for a new upload.
#[derive(Message)]
#[rtype(result = "Result<UploadTarget, StoreError>")]
pub struct BeginUpload;

/// Command: make an uploaded dataset visible. Its files are complete and synced; `claimed` bytes of quota
/// were claimed by the upload and are settled here.
#[derive(Message)]
#[rtype(result = "Result<StoredDataset, StoreError>")]
pub struct CommitUpload {
    pub segment: u64,
    pub leaves: Vec<Digest>,
    pub manifest: Manifest,
    pub claimed: u64,
}

/// The arguments of a commit; `download` names the download record the commit ends.
struct Commit<'a> {
    segment: u64,
    leaves: &'a [Digest],
    manifest: &'a Manifest,
    claimed: u64,
    download: Option<&'a Cid>,
}

/// Command: store one standalone block (checked against its CID).
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct PutBlock {
    pub cid: Cid,
    pub data: Bytes,
}

/// Query: the manifest of a locally stored dataset.
#[derive(Message)]
#[rtype(result = "Result<Option<Manifest>, StoreError>")]
pub struct GetManifest {
    pub cid: Cid,
}

/// Query: every locally stored dataset.
#[derive(Message)]
#[rtype(result = "Result<Vec<StoredDataset>, StoreError>")]
pub struct ListDatasets;

/// Query: is block `cid` stored here?
#[derive(Message)]
#[rtype(result = "Result<bool, StoreError>")]
pub struct HasBlock {
    pub cid: Cid,
}

/// Query: the bytes of block `cid`.
#[derive(Message)]
#[rtype(result = "Result<Option<Bytes>, StoreError>")]
pub struct GetBlock {
    pub cid: Cid,
}

/// Query: leaf `index` of tree `tree`: block CID and inclusion proof.
#[derive(Message)]
#[rtype(result = "Result<Option<(Cid, CodexProof)>, StoreError>")]
pub struct GetLeaf {
    pub tree: Cid,
    pub index: u64,
}

/// Query: open dataset `cid` for reading.
#[derive(Message)]
#[rtype(result = "Result<Option<OpenedDataset>, StoreError>")]
pub struct OpenDataset {
    pub cid: Cid,
}

/// Command: delete dataset or standalone block `cid` (absent data is not an error).
#[derive(Message)]
#[rtype(result = "Result<DeleteOutcome, StoreError>")]
pub struct DeleteData {
    pub cid: Cid,
}

/// Query: the space summary.
#[derive(Message)]
#[rtype(result = "Space")]
pub struct GetSpace;

/// Command: delete expired data, visiting at most `StoreConfig::sweep_batch` records from where the last sweep
/// stopped.
#[derive(Message)]
#[rtype(result = "Result<DeleteOutcome, StoreError>")]
pub struct SweepExpired {
    /// Unix seconds.
    pub now: u64,
}

/// Command: close the repository (flushes and releases the database). Later messages get
/// [`StoreError::Unavailable`].
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseStore;

/// What [`BeginDownload`] found.
#[derive(Debug, Clone)]
pub enum DownloadState {
    /// The dataset is already stored.
    Stored,
    /// The download is running (new or resumed); leaves arrive through [`StoreLeaves`].
    Partial(Arc<Progress>),
}

/// Command: prepare to download dataset `manifest_cid` (its manifest is already verified against the CID):
/// allocate a segment and claim quota, or find the download already in progress or finished.
#[derive(Message)]
#[rtype(result = "Result<DownloadState, StoreError>")]
pub struct BeginDownload {
    pub manifest_cid: Cid,
    pub manifest: Manifest,
}

/// The result of [`StoreLeaves`].
#[derive(Debug)]
pub struct StoredLeaves {
    /// One outcome per delivery, in order.
    pub outcomes: Vec<LeafOutcome>,
    /// Set when these leaves completed the dataset, which is now committed and visible.
    pub completed: Option<StoredDataset>,
}

/// Command: verify and store leaves delivered for the download of `tree`.
#[derive(Message)]
#[rtype(result = "Result<StoredLeaves, StoreError>")]
pub struct StoreLeaves {
    pub tree: Cid,
    pub deliveries: Vec<BlockDelivery>,
}

/// A leaf with its data and inclusion proof, ready to send.
#[derive(Debug, Clone)]
pub struct LeafBlock {
    pub index: u64,
    pub cid: Cid,
    pub data: Bytes,
    pub proof: CodexProof,
}

/// Query: leaves of `tree` (complete dataset or download in progress) with their proofs; absent ones are
/// left out.
#[derive(Message)]
#[rtype(result = "Result<Vec<LeafBlock>, StoreError>")]
pub struct ReadLeaves {
    pub tree: Cid,
    pub indexes: Vec<u64>,
}

/// Query: which of these leaves of `tree` are held.
#[derive(Message)]
#[rtype(result = "Result<Vec<bool>, StoreError>")]
pub struct HasLeaves {
    pub tree: Cid,
    pub indexes: Vec<u64>,
}

/// Query: the downloads in progress (manifest CID and manifest), to resume them.
#[derive(Message)]
#[rtype(result = "Result<Vec<(Cid, Manifest)>, StoreError>")]
pub struct ListDownloads;

/// A download in progress opened for streaming: read leaf `i` at `i × blockSize` once `progress.has(i)`.
#[derive(Debug)]
pub struct OpenedDownload {
    pub manifest: Manifest,
    pub file: File,
    pub progress: Arc<Progress>,
}

/// Query: open the download of dataset `cid` for streaming.
#[derive(Message)]
#[rtype(result = "Result<Option<OpenedDownload>, StoreError>")]
pub struct OpenDownload {
    pub cid: Cid,
}

/// Command: mark the download of `tree` failed (it stays on disk and resumes on the next request).
#[derive(Message)]
#[rtype(result = "()")]
pub struct FailDownload {
    pub tree: Cid,
    pub reason: String,
}

/// The store actor.
pub struct StoreActor {
    /// `None` once closed.
    repo: Option<Repo>,
    config: StoreConfig,
    quota: QuotaGate,
    sweep_cursor: Option<Vec<u8>>,
    /// Downloads in progress by tree CID.
    partials: HashMap<Cid, Partial>,
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl StoreActor {
    /// Opens the repository (removing the leftovers of interrupted uploads).
    pub fn open(config: StoreConfig) -> Result<Self, StoreError> {
        let (repo, counters) = Repo::open(&config.repo_dir)?;
        if counters.used + counters.reserved > config.quota_max {
            tracing::warn!(
                used = counters.used,
                quota = config.quota_max,
                "the repository holds more than the storage quota; new data is refused until space is freed"
            );
        }
        let quota = QuotaGate::new(config.quota_max, counters);
        let mut partials = HashMap::new();
        for (tree, record) in repo.list_downloads()? {
            let manifest = Manifest::decode(&record.manifest)
                .map_err(|e| StoreError::Corrupt { what: "download manifest", reason: e.to_string() })?;
            let manifest_cid = Manifest::cid_of(&record.manifest);
            let claimed = manifest.blocks_count() * manifest.block_size;
            quota.force_claim(claimed);
            let (data, tree_path) = (repo.data_path(record.segment), repo.tree_path(record.segment));
            let partial = Partial::open(manifest_cid, manifest, &record, data, tree_path, claimed)?;
            tracing::info!(
                cid = %format_cid(&manifest_cid),
                received = partial.progress.received(),
                leaves = partial.progress.leaves(),
                "download in progress found"
            );
            partials.insert(tree, partial);
        }
        Ok(Self { repo: Some(repo), config, quota, sweep_cursor: None, partials })
    }

    /// The quota shared with uploads; answers space queries without going through the mailbox.
    pub fn quota(&self) -> QuotaGate {
        self.quota.clone()
    }

    /// Starts the actor on its own thread.
    pub fn start(self) -> Addr<Self> {
        let cell = Mutex::new(Some(self));
        SyncArbiter::start(1, move || {
            cell.lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take()
                .expect("invariant: the store arbiter has one thread and never restarts it")
        })
    }

    fn repo(&mut self) -> Result<&mut Repo, StoreError> {
        self.repo.as_mut().ok_or(StoreError::Unavailable)
    }

    fn expiry(&self) -> u64 {
        match self.config.block_ttl {
            Some(ttl) => unix_now().saturating_add(ttl.as_secs()),
            None => u64::MAX,
        }
    }

    fn commit_upload(&mut self, msg: Commit<'_>) -> Result<StoredDataset, StoreError> {
        let mut counters = self.quota.counters();
        let manifest_len = msg.manifest.encode().len() as u64;
        // The manifest is the only byte not claimed while streaming.
        if let Err(err) = self.quota.claim(manifest_len) {
            self.quota.release(msg.claimed);
            self.repo()?.unlink_segments(&[msg.segment]);
            return Err(err);
        }
        let claimed = msg.claimed + manifest_len;
        let expiry = self.expiry();
        let started = std::time::Instant::now();
        let result =
            self.repo()?.commit_dataset(msg.segment, msg.leaves, msg.manifest, expiry, &mut counters, msg.download);
        tracing::debug!(leaves = msg.leaves.len(), elapsed_ms = started.elapsed().as_millis() as u64, "commit");
        self.quota.set_counters(counters);
        self.quota.release(claimed);
        match result {
            Ok(outcome) => {
                if !outcome.new_tree {
                    self.repo()?.unlink_segments(&[msg.segment]);
                }
                let cid = Manifest::cid_of(&msg.manifest.encode());
                tracing::info!(cid = %format_cid(&cid), bytes = msg.manifest.dataset_size, new = outcome.new_manifest, "dataset stored");
                Ok(StoredDataset { cid, manifest: msg.manifest.clone() })
            }
            Err(err) => {
                self.repo()?.unlink_segments(&[msg.segment]);
                Err(err)
            }
        }
    }

    fn put_block(&mut self, msg: PutBlock) -> Result<(), StoreError> {
        let expected = codex_protocol::cid::cid_from_sha256(msg.cid.codec(), &codex_protocol::cid::sha256(&msg.data));
        if expected != msg.cid {
            return Err(StoreError::CidMismatch { cid: msg.cid });
        }
        if self.repo()?.has_block(&msg.cid)? {
            return Ok(());
        }
        let len = msg.data.len() as u64;
        self.quota.claim(len)?;
        let mut counters = self.quota.counters();
        let expiry = self.expiry();
        let result = self.repo()?.put_block(&msg.cid, &msg.data, expiry, &mut counters);
        self.quota.set_counters(counters);
        self.quota.release(len);
        result.map(|_| ())
    }

    fn begin_download(&mut self, msg: BeginDownload) -> Result<DownloadState, StoreError> {
        if self.repo()?.manifest(&msg.manifest_cid)?.is_some() {
            return Ok(DownloadState::Stored);
        }
        let tree = msg.manifest.tree_cid;
        if let Some(partial) = self.partials.get(&tree) {
            partial.progress.restart();
            return Ok(DownloadState::Partial(partial.progress.clone()));
        }
        if self.repo()?.tree(&tree)?.is_some() {
            // The same data is stored under another manifest: only this manifest is new.
            let segment = self.repo()?.allocate_segment();
            let commit = Commit { segment, leaves: &[], manifest: &msg.manifest, claimed: 0, download: None };
            self.commit_upload(commit)?;
            return Ok(DownloadState::Stored);
        }
        let claimed = msg.manifest.blocks_count().saturating_mul(msg.manifest.block_size);
        self.quota.claim(claimed)?;
        let repo = self.repo()?;
        let segment = repo.allocate_segment();
        let record = DownloadRecord { segment, manifest: msg.manifest.encode(), have: Vec::new() };
        let (data, tree_path) = (repo.data_path(segment), repo.tree_path(segment));
        let opened = Partial::open(msg.manifest_cid, msg.manifest, &record, data, tree_path, claimed)
            .and_then(|partial| self.repo()?.save_download(&tree, &partial.record()).map(|_| partial));
        match opened {
            Ok(partial) => {
                let progress = partial.progress.clone();
                tracing::info!(cid = %format_cid(&msg.manifest_cid), leaves = progress.leaves(), "download started");
                self.partials.insert(tree, partial);
                Ok(DownloadState::Partial(progress))
            }
            Err(err) => {
                self.quota.release(claimed);
                self.repo()?.unlink_segments(&[segment]);
                Err(err)
            }
        }
    }

    fn store_leaves(&mut self, msg: StoreLeaves) -> Result<StoredLeaves, StoreError> {
        let Some(partial) = self.partials.get_mut(&msg.tree) else {
            // Not downloading (any more): the data is stored, or was never asked for. Nothing is written.
            return Ok(StoredLeaves { outcomes: vec![LeafOutcome::Duplicate; msg.deliveries.len()], completed: None });
        };
        let outcomes = msg.deliveries.iter().map(|d| partial.store(d)).collect::<Result<Vec<_>, _>>()?;
        partial.announce();
        if partial.is_complete() {
            let completed = self.complete_download(&msg.tree)?;
            return Ok(StoredLeaves { outcomes, completed: Some(completed) });
        }
        if partial.checkpoint_due() {
            let record = partial.checkpoint()?;
            self.repo()?.save_download(&msg.tree, &record)?;
        }
        Ok(StoredLeaves { outcomes, completed: None })
    }

    fn complete_download(&mut self, tree: &Cid) -> Result<StoredDataset, StoreError> {
        let mut partial = self.partials.remove(tree).expect("invariant: called for a download in progress");
        let leaves = match partial.finish() {
            Ok(leaves) => leaves,
            Err(err) => {
                self.abort_download(partial, &err.to_string())?;
                return Err(err);
            }
        };
        let commit = Commit {
            segment: partial.segment,
            leaves: &leaves,
            manifest: &partial.manifest,
            claimed: partial.claimed,
            download: Some(tree),
        };
        match self.commit_upload(commit) {
            Ok(stored) => {
                partial.mark_complete();
                Ok(stored)
            }
            Err(err) => {
                partial.progress.fail(err.to_string());
                let _ = self.repo()?.remove_download(tree);
                Err(err)
            }
        }
    }

    /// Drops a download and its data, releasing its quota claim.
    fn abort_download(&mut self, partial: Partial, reason: &str) -> Result<(), StoreError> {
        partial.progress.fail(reason.to_string());
        self.quota.release(partial.claimed);
        let repo = self.repo()?;
        repo.remove_download(&partial.tree)?;
        let (data, tree) = partial.paths();
        drop(partial);
        remove_in_background(vec![data, tree]);
        Ok(())
    }

    fn read_leaves(&mut self, msg: ReadLeaves) -> Result<Vec<LeafBlock>, StoreError> {
        let mut out = Vec::with_capacity(msg.indexes.len());
        if let Some(partial) = self.partials.get(&msg.tree) {
            for index in msg.indexes {
                if let Some((cid, data, proof)) = partial.read(index)? {
                    out.push(LeafBlock { index, cid, data, proof });
                }
            }
            return Ok(out);
        }
        let leaves = self.repo()?.read_leaves(&msg.tree, &msg.indexes)?;
        for (index, leaf) in msg.indexes.into_iter().zip(leaves) {
            if let Some((cid, data, proof)) = leaf {
                out.push(LeafBlock { index, cid, data: Bytes::from(data), proof });
            }
        }
        Ok(out)
    }

    fn has_leaves(&mut self, msg: HasLeaves) -> Result<Vec<bool>, StoreError> {
        if let Some(partial) = self.partials.get(&msg.tree) {
            return Ok(msg.indexes.iter().map(|i| partial.progress.has(*i)).collect());
        }
        let leaves = self.repo()?.tree(&msg.tree)?.map_or(0, |location| location.record.leaves);
        Ok(msg.indexes.iter().map(|i| *i < leaves).collect())
    }

    fn open_download(&mut self, cid: &Cid) -> Result<Option<OpenedDownload>, StoreError> {
        let Some(partial) = self.partials.values().find(|p| p.manifest_cid == *cid) else { return Ok(None) };
        let file = File::open(partial.paths().0).map_err(StoreError::io("opening a download"))?;
        Ok(Some(OpenedDownload { manifest: partial.manifest.clone(), file, progress: partial.progress.clone() }))
    }

    fn checkpoint_all(&mut self) {
        let trees: Vec<Cid> = self.partials.keys().copied().collect();
        for tree in trees {
            let Some(partial) = self.partials.get_mut(&tree) else { continue };
            if partial.unsynced() == 0 {
                continue;
            }
            let saved = partial.checkpoint().and_then(|record| self.repo()?.save_download(&tree, &record));
            if let Err(err) = saved {
                tracing::warn!(%err, "could not save a download's progress");
            }
        }
    }

    fn delete(&mut self, cid: &Cid) -> Result<DeleteOutcome, StoreError> {
        if let Some(tree) = self.partials.iter().find(|(_, p)| p.manifest_cid == *cid).map(|(tree, _)| *tree) {
            let partial = self.partials.remove(&tree).expect("invariant: just found");
            self.abort_download(partial, "the dataset was deleted")?;
        }
        let mut counters = self.quota.counters();
        let started = std::time::Instant::now();
        let repo = self.repo()?;
        let outcome = repo.delete(cid, &mut counters)?;
        repo.unlink_segments(&outcome.segments_to_unlink);
        tracing::debug!(blocks = outcome.removed_blocks, elapsed_ms = started.elapsed().as_millis() as u64, "delete");
        self.quota.set_counters(counters);
        Ok(outcome)
    }

    fn open_dataset(&mut self, cid: &Cid) -> Result<Option<OpenedDataset>, StoreError> {
        let Some(manifest) = self.repo()?.manifest(cid)? else { return Ok(None) };
        let Some(location) = self.repo()?.tree(&manifest.tree_cid)? else {
            return Err(StoreError::Corrupt { what: "dataset", reason: "manifest without its tree".into() });
        };
        let file = File::open(&location.data_path).map_err(StoreError::io("opening a dataset"))?;
        Ok(Some(OpenedDataset { manifest, file }))
    }

    fn sweep(&mut self, now: u64) -> Result<DeleteOutcome, StoreError> {
        let mut counters = self.quota.counters();
        let cursor = self.sweep_cursor.take();
        let batch = self.config.sweep_batch;
        let result = self.repo()?.sweep_expired(now, batch, cursor, &mut counters);
        self.quota.set_counters(counters);
        let (cursor, outcome) = result?;
        self.sweep_cursor = cursor;
        self.repo()?.unlink_segments(&outcome.segments_to_unlink);
        Ok(outcome)
    }
}

impl Actor for StoreActor {
    type Context = SyncContext<Self>;
}

impl Handler<BeginUpload> for StoreActor {
    type Result = Result<UploadTarget, StoreError>;
    fn handle(&mut self, _: BeginUpload, _: &mut Self::Context) -> Self::Result {
        let quota = self.quota.clone();
        let repo = self.repo()?;
        let segment = repo.allocate_segment();
        Ok(UploadTarget { segment, data_path: repo.data_path(segment), tree_path: repo.tree_path(segment), quota })
    }
}

impl Handler<CommitUpload> for StoreActor {
    type Result = Result<StoredDataset, StoreError>;
    fn handle(&mut self, msg: CommitUpload, _: &mut Self::Context) -> Self::Result {
        self.commit_upload(Commit {
            segment: msg.segment,
            leaves: &msg.leaves,
            manifest: &msg.manifest,
            claimed: msg.claimed,
            download: None,
        })
    }
}

impl Handler<PutBlock> for StoreActor {
    type Result = Result<(), StoreError>;
    fn handle(&mut self, msg: PutBlock, _: &mut Self::Context) -> Self::Result {
        self.put_block(msg)
    }
}

impl Handler<GetManifest> for StoreActor {
    type Result = Result<Option<Manifest>, StoreError>;
    fn handle(&mut self, msg: GetManifest, _: &mut Self::Context) -> Self::Result {
        self.repo()?.manifest(&msg.cid)
    }
}

impl Handler<ListDatasets> for StoreActor {
    type Result = Result<Vec<StoredDataset>, StoreError>;
    fn handle(&mut self, _: ListDatasets, _: &mut Self::Context) -> Self::Result {
        Ok(self.repo()?.list_datasets()?.into_iter().map(|(cid, manifest)| StoredDataset { cid, manifest }).collect())
    }
}

impl Handler<HasBlock> for StoreActor {
    type Result = Result<bool, StoreError>;
    fn handle(&mut self, msg: HasBlock, _: &mut Self::Context) -> Self::Result {
        self.repo()?.has_block(&msg.cid)
    }
}

impl Handler<GetBlock> for StoreActor {
    type Result = Result<Option<Bytes>, StoreError>;
    fn handle(&mut self, msg: GetBlock, _: &mut Self::Context) -> Self::Result {
        Ok(self.repo()?.block(&msg.cid)?.map(Bytes::from))
    }
}

impl Handler<GetLeaf> for StoreActor {
    type Result = Result<Option<(Cid, CodexProof)>, StoreError>;
    fn handle(&mut self, msg: GetLeaf, _: &mut Self::Context) -> Self::Result {
        self.repo()?.leaf(&msg.tree, msg.index)
    }
}

impl Handler<OpenDataset> for StoreActor {
    type Result = Result<Option<OpenedDataset>, StoreError>;
    fn handle(&mut self, msg: OpenDataset, _: &mut Self::Context) -> Self::Result {
        self.open_dataset(&msg.cid)
    }
}

impl Handler<DeleteData> for StoreActor {
    type Result = Result<DeleteOutcome, StoreError>;
    fn handle(&mut self, msg: DeleteData, _: &mut Self::Context) -> Self::Result {
        self.delete(&msg.cid)
    }
}

impl Handler<GetSpace> for StoreActor {
    type Result = MessageResult<GetSpace>;
    fn handle(&mut self, _: GetSpace, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.quota.space())
    }
}

impl Handler<CloseStore> for StoreActor {
    type Result = ();
    fn handle(&mut self, _: CloseStore, _: &mut Self::Context) {
        // Not `ctx.stop()`: a SyncArbiter restarts stopped actors. The thread ends when the last Addr goes.
        self.checkpoint_all();
        for partial in self.partials.values() {
            partial.progress.fail("the node is stopping".into());
        }
        if self.repo.take().is_some() {
            tracing::info!("repository closed");
        }
    }
}

impl Handler<SweepExpired> for StoreActor {
    type Result = Result<DeleteOutcome, StoreError>;
    fn handle(&mut self, msg: SweepExpired, _: &mut Self::Context) -> Self::Result {
        self.sweep(msg.now)
    }
}

impl Handler<BeginDownload> for StoreActor {
    type Result = Result<DownloadState, StoreError>;
    fn handle(&mut self, msg: BeginDownload, _: &mut Self::Context) -> Self::Result {
        self.begin_download(msg)
    }
}

impl Handler<StoreLeaves> for StoreActor {
    type Result = Result<StoredLeaves, StoreError>;
    fn handle(&mut self, msg: StoreLeaves, _: &mut Self::Context) -> Self::Result {
        self.store_leaves(msg)
    }
}

impl Handler<ReadLeaves> for StoreActor {
    type Result = Result<Vec<LeafBlock>, StoreError>;
    fn handle(&mut self, msg: ReadLeaves, _: &mut Self::Context) -> Self::Result {
        self.read_leaves(msg)
    }
}

impl Handler<HasLeaves> for StoreActor {
    type Result = Result<Vec<bool>, StoreError>;
    fn handle(&mut self, msg: HasLeaves, _: &mut Self::Context) -> Self::Result {
        self.has_leaves(msg)
    }
}

impl Handler<ListDownloads> for StoreActor {
    type Result = Result<Vec<(Cid, Manifest)>, StoreError>;
    fn handle(&mut self, _: ListDownloads, _: &mut Self::Context) -> Self::Result {
        Ok(self.partials.values().map(|p| (p.manifest_cid, p.manifest.clone())).collect())
    }
}

impl Handler<OpenDownload> for StoreActor {
    type Result = Result<Option<OpenedDownload>, StoreError>;
    fn handle(&mut self, msg: OpenDownload, _: &mut Self::Context) -> Self::Result {
        self.open_download(&msg.cid)
    }
}

impl Handler<FailDownload> for StoreActor {
    type Result = ();
    fn handle(&mut self, msg: FailDownload, _: &mut Self::Context) {
        if let Some(partial) = self.partials.get(&msg.tree) {
            partial.progress.fail(msg.reason);
        }
        self.checkpoint_all();
    }
}
