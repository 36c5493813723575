//! The StoreActor's messages and the values they carry. See `store/mod.rs` for who sends what.

use super::StoreError;
use super::progress::{LeafOutcome, Progress};
use super::quota::{QuotaGate, Space};
use super::repo::DeleteOutcome;
use actix::prelude::*;
use bytes::Bytes;
use codex_protocol::blockexc::{BlockAddress, BlockDelivery};
use codex_protocol::{Cid, CodexProof, Digest, Manifest};
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

/// Where a new upload (or a protected copy of a dataset) writes its blocks, tree and slot digests.
#[derive(Debug, Clone)]
pub struct UploadTarget {
    pub segment: u64,
    pub data_path: PathBuf,
    pub tree_path: PathBuf,
    /// Written only for verifiable datasets (see `store/repo.rs`).
    pub slots_path: PathBuf,
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

/// A stored dataset's files, for work that reads them off the store thread (erasure coding, slot building).
/// The paths stay valid while the dataset is stored; a reader that must survive a delete opens them first.
#[derive(Debug, Clone)]
pub struct DatasetFiles {
    pub manifest: Manifest,
    pub data_path: PathBuf,
    /// Poseidon2 block digests (verifiable datasets only, see `store/repo.rs`).
    pub slots_path: PathBuf,
    /// The SHA-256 leaf digests of its tree, in order.
    pub leaves: Vec<Digest>,
}

/// Query: the files and leaves of stored dataset `cid` (`None` when it is not stored complete here).
#[derive(Message)]
#[rtype(result = "Result<Option<DatasetFiles>, StoreError>")]
pub struct LocateDataset {
    pub cid: Cid,
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

/// Command: store one standalone block (checked against its CID).
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct PutBlock {
    pub cid: Cid,
    pub data: Bytes,
}

/// Command: store a manifest that came from the network, as a standalone block. The store checks it against
/// its CID, decodes it, runs [`Manifest::validate`] and, when its tree is already stored, checks that the
/// manifest describes that tree's size; only then is it written. Returns the decoded manifest.
#[derive(Message)]
#[rtype(result = "Result<Manifest, StoreError>")]
pub struct PutManifest {
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

/// Command: prepare to download dataset `manifest_cid` (its manifest is already verified against the CID; the
/// store validates it again): allocate a segment and claim quota for the whole dataset, or find the download
/// already in progress or finished. A manifest whose tree is already stored must match that tree's size.
#[derive(Message)]
#[rtype(result = "Result<DownloadState, StoreError>")]
pub struct BeginDownload {
    pub manifest_cid: Cid,
    pub manifest: Manifest,
}

/// What [`BeginSlotDownload`] found or started.
#[derive(Debug, Clone)]
pub struct SlotDownload {
    /// Completes when every wanted leaf is held (at once when the slot is hosted already).
    pub progress: Arc<Progress>,
    /// The slot was fetched and its root checked before.
    pub hosted: bool,
    pub data_path: PathBuf,
    /// Where the slot's Poseidon2 block digests go (sparse: only this slot's range is written).
    pub slots_path: PathBuf,
}

/// Command: prepare to fetch leaves `wanted` (slot `index`'s stored blocks) of verifiable dataset
/// `manifest_cid`: a download that claims quota for those leaves only and completes when they are held, or the
/// same slot's download in progress or hosted.
#[derive(Message)]
#[rtype(result = "Result<SlotDownload, StoreError>")]
pub struct BeginSlotDownload {
    pub manifest_cid: Cid,
    pub manifest: Manifest,
    pub index: u64,
    pub wanted: std::ops::Range<u64>,
}

/// A decoding download (see [`BeginDecodeDownload`]).
#[derive(Debug, Clone)]
pub struct DecodeDownload {
    /// `decodable()` once every erasure group holds K members; complete once the original is stored.
    pub progress: Arc<Progress>,
    pub data_path: PathBuf,
    pub layout: codex_protocol::erasure::ErasureLayout,
    /// True when the caller must drive the decode (a new download, one resumed at open, or a failed one
    /// restarted); false when a driver is already waiting on it.
    pub drive: bool,
}

/// Command: prepare to read protected dataset `manifest_cid` from the network by fetching any K members of
/// each erasure group of its encoded tree (or find that download running).
#[derive(Message)]
#[rtype(result = "Result<DecodeDownload, StoreError>")]
pub struct BeginDecodeDownload {
    pub manifest_cid: Cid,
    pub manifest: Manifest,
}

/// Command: the missing data blocks of decoding download `tree` were decoded into its segment (`recovered`:
/// index and SHA-256): check them against the original tree and store the original dataset.
#[derive(Message)]
#[rtype(result = "Result<StoredDataset, StoreError>")]
pub struct FinishDecode {
    pub tree: Cid,
    pub recovered: Vec<(u64, Digest)>,
}

/// Command: repair. Every missing leaf of decoding download `tree` was decoded into its segment (`recovered`:
/// index and SHA-256): check the whole encoded tree against its root, keep slot `index`'s leaves `wanted`
/// (its blocks, not its padding) and drop the rest; the download becomes that slot's, complete and not yet
/// hosted (its slot root is checked next, then `CommitSlot` or `DropSlot`).
#[derive(Message)]
#[rtype(result = "Result<SlotDownload, StoreError>")]
pub struct FinishRepair {
    pub tree: Cid,
    pub index: u64,
    pub wanted: std::ops::Range<u64>,
    pub recovered: Vec<(u64, Digest)>,
}

/// Command: the slot downloaded into `tree` passed its slot-root check: keep it, hosted, for good.
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct CommitSlot {
    pub tree: Cid,
}

/// Command: drop the slot download of `tree` (its root did not match): record, files and claim.
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct DropSlot {
    pub tree: Cid,
    pub reason: String,
}

/// The result of [`StoreLeaves`].
#[derive(Debug)]
pub struct StoredLeaves {
    /// One outcome per delivery, in order.
    pub outcomes: Vec<LeafOutcome>,
    /// Set when these leaves completed the dataset, which is now committed and visible.
    pub completed: Option<StoredDataset>,
    /// Leaves a decoding download no longer needs (their erasure group holds K members).
    pub unneeded: Vec<u64>,
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

/// Query: which of these addresses (leaves of any tree, or standalone blocks) are held, answered in one
/// message: the block exchange answers a peer's want-list with it.
#[derive(Message)]
#[rtype(result = "Result<Vec<bool>, StoreError>")]
pub struct HasAddresses {
    pub addresses: Vec<BlockAddress>,
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

/// Command: mark the download of `tree` failed (it stays on disk, keeps its quota claim and resumes on the next
/// request).
#[derive(Message)]
#[rtype(result = "()")]
pub struct FailDownload {
    pub tree: Cid,
    pub reason: String,
}
