//! The protect flow: a stored dataset becomes a *verifiable* one (erasure-coded into K + M slots, slot trees
//! built), the data half of seed 000's `requestStorage` without the chain. The NodeActor runs
//! [`protect_dataset`] for [`crate::node::Protect`]; it only awaits other actors and blocking-pool tasks.
//!
//! 1. `LocateDataset`: the original's files and SHA-256 leaves; it must be stored here complete and not be
//!    protected already; K = nodes − tolerance, M = tolerance are checked and the stepped layout computed
//!    (codex-facts §7).
//! 2. `BeginUpload`: a new segment; quota for the whole encoded tree is claimed now.
//! 3. The new segment's data file starts as the original's: a hard link when nothing else shares the
//!    original's file (no copy, no extra disk: the encoded dataset's first leaves *are* the original blocks, and
//!    parity is written past them), otherwise a copy. Deleting either dataset later unlinks only its own name.
//! 4. ErasureActor `EncodeSegment`: parity, group by group, on its own threads.
//! 5. The encoded CodexTree (original leaves, the empty digest at padding positions, parity digests) is written
//!    to the segment's tree file.
//! 6. SlotBuilderActor `BuildSlots`: block digests, slot roots, verify root.
//! 7. `CommitUpload` with the verifiable manifest: the dataset is visible once that transaction is durable.
//!
//! Any failure before the commit removes the new files and returns the claim (the drop of `Pending`).

use crate::erasure::{EncodeSegment, ErasureActor, ErasureError as CodingError};
use crate::slots::{BuildSlots, SlotBuilderActor, SlotError};
use crate::store::{
    BeginUpload, CommitUpload, DatasetFiles, LocateDataset, StoreActor, StoreError, StoredDataset, UploadTarget,
    remove_in_background,
};
use crate::upload::write_tree_file;
use actix::Addr;
use codex_protocol::cid::format_cid;
use codex_protocol::erasure::{EMPTY_DIGEST, ErasureError, ErasureLayout, ErasureParams};
use codex_protocol::slots::{DEFAULT_CELL_SIZE, SlotLayout, verifiable_manifest};
use codex_protocol::{Cid, CodexTree, Digest, Manifest};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use thiserror::Error;

/// Why a dataset could not be protected.
#[derive(Debug, Error)]
pub enum ProtectError {
    #[error("nodes ({nodes}) must be greater than tolerance ({tolerance})")]
    NodesNotAboveTolerance { nodes: u64, tolerance: u64 },
    #[error(transparent)]
    Params(ErasureError),
    #[error("dataset {} is already protected; protect its original dataset instead", format_cid(.cid))]
    AlreadyProtected { cid: Cid },
    #[error("the dataset {} is not stored on this node", format_cid(.cid))]
    NotFound { cid: Cid },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("erasure coding failed: {0}")]
    Erasure(#[from] CodingError),
    #[error("building the slots failed: {0}")]
    Slots(#[from] SlotError),
    #[error("the erasure coder returned parity block {index}, outside the parity range")]
    ParityOutOfRange { index: u64 },
    #[error("a worker thread stopped")]
    Interrupted,
}

impl ProtectError {
    /// What kind of failure this is, for the REST layer.
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            ProtectError::NodesNotAboveTolerance { .. } => ErrorKind::BadRequest,
            ProtectError::Params(ErasureError::TooFewBlocks { .. }) => ErrorKind::Refused,
            ProtectError::Params(_) => ErrorKind::BadRequest,
            ProtectError::AlreadyProtected { .. } => ErrorKind::Refused,
            ProtectError::NotFound { .. } => ErrorKind::NotFound,
            ProtectError::Store(err) => err.kind(),
            ProtectError::Slots(err) => err.kind(),
            ProtectError::Erasure(_) | ProtectError::ParityOutOfRange { .. } | ProtectError::Interrupted => {
                ErrorKind::Internal
            }
        }
    }
}

impl From<actix::MailboxError> for ProtectError {
    fn from(_: actix::MailboxError) -> Self {
        ProtectError::Interrupted
    }
}

/// The actors the flow uses.
#[derive(Clone)]
pub struct ProtectActors {
    pub store: Addr<StoreActor>,
    pub erasure: Addr<ErasureActor>,
    pub slots: Addr<SlotBuilderActor>,
}

/// Erasure-codes stored dataset `cid` into `nodes` slots of which any `nodes − tolerance` rebuild it, builds
/// its slots, and stores the verifiable manifest. Answers the new dataset.
pub async fn protect_dataset(
    actors: ProtectActors,
    cid: Cid,
    nodes: u64,
    tolerance: u64,
) -> Result<StoredDataset, ProtectError> {
    if nodes <= tolerance {
        return Err(ProtectError::NodesNotAboveTolerance { nodes, tolerance });
    }
    let params = ErasureParams::new(nodes - tolerance, tolerance).map_err(ProtectError::Params)?;
    let original = actors.store.send(LocateDataset { cid }).await??.ok_or(ProtectError::NotFound { cid })?;
    if original.manifest.is_protected() {
        return Err(ProtectError::AlreadyProtected { cid });
    }
    let manifest = &original.manifest;
    let layout = ErasureLayout::new(params, manifest.blocks_count()).map_err(ProtectError::Params)?;
    let target = actors.store.send(BeginUpload).await??;
    let claim = layout.encoded_blocks() * manifest.block_size;
    target.quota.claim(claim)?;
    let mut pending = Pending { target, claimed: claim, committed: false };
    tracing::info!(
        cid = %format_cid(&cid),
        k = params.k(),
        m = params.m(),
        blocks = manifest.blocks_count(),
        encoded = layout.encoded_blocks(),
        "protecting a dataset"
    );

    let started = std::time::Instant::now();
    let (source, dest) = (original.data_path.clone(), pending.target.data_path.clone());
    blocking(move || link_or_copy(&source, &dest)).await??;
    let linked = std::time::Instant::now();
    let parity = actors
        .erasure
        .send(EncodeSegment {
            params,
            original_blocks: manifest.blocks_count(),
            block_size: manifest.block_size as usize,
            source: pending.target.data_path.clone(),
            parity_out: pending.target.data_path.clone(),
        })
        .await??;
    let encoded = std::time::Instant::now();
    let leaves = encoded_leaves(&original, &layout, parity.parity)?;
    let tree_path = pending.target.tree_path.clone();
    let tree = blocking(move || -> Result<CodexTree, StoreError> {
        let tree = CodexTree::new(leaves)?;
        write_tree_file(&tree_path, &tree)?;
        Ok(tree)
    })
    .await??;

    let treed = std::time::Instant::now();
    let protected = protected_manifest(manifest, &tree, &layout, params);
    let slot_layout = SlotLayout::from_manifest(&protected, DEFAULT_CELL_SIZE).map_err(SlotError::from)?;
    let roots = actors
        .slots
        .send(BuildSlots {
            data_path: pending.target.data_path.clone(),
            digests_out: pending.target.slots_path.clone(),
            layout: slot_layout,
        })
        .await??;
    let slotted = std::time::Instant::now();
    let verifiable = verifiable_manifest(&protected, DEFAULT_CELL_SIZE, &roots.slot_roots, roots.verify_root)
        .map_err(SlotError::from)?;
    let commit = CommitUpload {
        segment: pending.target.segment,
        leaves: tree.into_leaves(),
        manifest: verifiable,
        claimed: pending.claimed,
    };
    // From here the StoreActor owns the files and the claim, whatever the outcome.
    pending.committed = true;
    let stored = actors.store.send(commit).await??;
    let ms = |from: std::time::Instant, to: std::time::Instant| to.duration_since(from).as_millis() as u64;
    tracing::info!(
        original = %format_cid(&cid),
        cid = %format_cid(&stored.cid),
        link_ms = ms(started, linked),
        encode_ms = ms(linked, encoded),
        tree_ms = ms(encoded, treed),
        slots_ms = ms(treed, slotted),
        total_ms = ms(started, std::time::Instant::now()),
        "dataset protected"
    );
    Ok(stored)
}

/// The protected manifest of `original` encoded as `layout` (codex-facts §3.3): the encoded tree, its size,
/// the original's tree and size, the stepped strategy.
fn protected_manifest(
    original: &Manifest,
    tree: &CodexTree,
    layout: &ErasureLayout,
    params: ErasureParams,
) -> Manifest {
    Manifest {
        tree_cid: tree.root_cid(),
        dataset_size: layout.encoded_blocks() * original.block_size,
        erasure: Some(codex_protocol::manifest::ErasureInfo {
            ec_k: params.k() as u64,
            ec_m: params.m() as u64,
            original_tree_cid: original.tree_cid,
            original_dataset_size: original.dataset_size,
            protected_strategy: 1,
            verification: None,
        }),
        ..original.clone()
    }
}

/// The encoded tree's leaves: the original's, the empty digest at padding positions, then parity.
fn encoded_leaves(
    original: &DatasetFiles,
    layout: &ErasureLayout,
    parity: Vec<(u64, Digest)>,
) -> Result<Vec<Digest>, ProtectError> {
    let mut leaves = original.leaves.clone();
    leaves.resize(layout.encoded_blocks() as usize, EMPTY_DIGEST);
    for (index, digest) in parity {
        let slot = leaves
            .get_mut(index as usize)
            .filter(|_| index >= layout.rounded())
            .ok_or(ProtectError::ParityOutOfRange { index })?;
        *slot = digest;
    }
    Ok(leaves)
}

/// Gives `dest` the contents of `source`: a hard link when `source` has no other name (so no other dataset
/// writes past its end), else a copy.
fn link_or_copy(source: &Path, dest: &Path) -> Result<(), StoreError> {
    let links = std::fs::metadata(source).map_err(StoreError::io("reading the original dataset"))?.nlink();
    if links == 1 && std::fs::hard_link(source, dest).is_ok() {
        return Ok(());
    }
    std::fs::copy(source, dest).map_err(StoreError::io("copying the original dataset"))?;
    Ok(())
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, ProtectError> {
    tokio::task::spawn_blocking(work).await.map_err(|_| ProtectError::Interrupted)
}

/// A protect in progress: until it is committed, dropping it removes its files and returns its claim.
struct Pending {
    target: UploadTarget,
    claimed: u64,
    committed: bool,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        self.target.quota.release(self.claimed);
        remove_in_background(vec![
            self.target.data_path.clone(),
            self.target.tree_path.clone(),
            self.target.slots_path.clone(),
        ]);
        tracing::info!(segment = self.target.segment, "protect abandoned, its files removed");
    }
}
