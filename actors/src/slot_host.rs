//! Slot hosting (seed 000 "onStore", without the chain): fetch exactly the blocks of slot `index` of a
//! verifiable dataset through the block exchange, rebuild the slot's Poseidon2 tree, and keep the slot only if
//! its root equals the manifest's `slotRoots[index]`. The NodeActor runs [`host_slot`] for
//! [`crate::node::HostSlot`].
//!
//! 1. The verifiable manifest: stored, or fetched and validated (`fetch::manifest_of`).
//! 2. The slot's blocks are `SlotLayout::slot_blocks(index)` minus erasure padding (never stored, never
//!    fetched). `BeginSlotDownload` creates (or finds) a download of just those leaves of the encoded tree,
//!    claiming quota for them only. Every block is verified against the dataset root by the block exchange as
//!    it arrives (a corrupted block costs its sender and is fetched elsewhere), and served to peers at once.
//! 3. When all are held: SlotBuilderActor `BuildSlotTree` (on its own threads) hashes them and answers the slot
//!    root. A match commits the slot (`CommitSlot`: hosted, durable); a mismatch drops it (`DropSlot`: files and
//!    claim) and answers [`SlotHostError::SlotRootMismatch`].

use crate::blockexc::{BlockExchangeActor, StartDownload};
use crate::erasure::{DecodeSegment, ErasureActor, Want};
use crate::fetch;
use crate::node::NodeError;
use crate::slots::{BuildSlotTree, SlotBuilderActor, SlotError};
use crate::store::{
    BeginDecodeDownload, BeginSlotDownload, CommitSlot, DownloadStatus, DropSlot, FinishRepair, StoreActor, StoreError,
};
use actix::Addr;
use codex_protocol::cid::format_cid;
use codex_protocol::poseidon2::F;
use codex_protocol::slots::{SlotLayout, root_from_cid};
use codex_protocol::{Cid, Manifest};
use thiserror::Error;

/// Why a slot could not be hosted.
#[derive(Debug, Error)]
pub enum SlotHostError {
    #[error("{} is not a verifiable dataset: it has no slots (protect it first)", format_cid(.cid))]
    NotVerifiable { cid: Cid },
    #[error("the slots of {} are invalid: {reason}", format_cid(.cid))]
    InvalidSlots { cid: Cid, reason: String },
    #[error("dataset {} has no slot {index}: it has {slots} slots", format_cid(.cid))]
    NoSuchSlot { cid: Cid, index: u64, slots: u64 },
    #[error("slot {index} of {} could not be fetched: {reason}", format_cid(.cid))]
    SlotUnavailable { cid: Cid, index: u64, reason: String },
    #[error("slot {index} of {} does not match its slot root: the data was dropped", format_cid(.cid))]
    SlotRootMismatch { cid: Cid, index: u64 },
    #[error(transparent)]
    Slots(#[from] SlotError),
}

impl SlotHostError {
    /// What kind of failure this is, for the REST layer.
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            SlotHostError::NotVerifiable { .. }
            | SlotHostError::InvalidSlots { .. }
            | SlotHostError::SlotRootMismatch { .. } => ErrorKind::Refused,
            SlotHostError::NoSuchSlot { .. } | SlotHostError::SlotUnavailable { .. } => ErrorKind::NotFound,
            SlotHostError::Slots(err) => err.kind(),
        }
    }
}

impl From<SlotHostError> for NodeError {
    fn from(err: SlotHostError) -> Self {
        NodeError::Slot(Box::new(err))
    }
}

/// A slot this node holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostedSlot {
    pub manifest_cid: Cid,
    pub index: u64,
    pub slot_root: Cid,
    /// The encoded dataset's tree (whose leaves the slot is).
    pub tree: Cid,
    /// Blocks of the slot stored here (its erasure padding is not stored).
    pub blocks: u64,
    /// The segment holding the slot's blocks, and its `.slots` file (block digests): what proofs read.
    pub data_path: std::path::PathBuf,
    pub slots_path: std::path::PathBuf,
}

/// Fetches and checks slot `index` of verifiable dataset `cid` (see the module documentation).
pub async fn host_slot(
    store: Addr<StoreActor>,
    exchange: Option<Addr<BlockExchangeActor>>,
    slots: Addr<SlotBuilderActor>,
    cid: Cid,
    index: u64,
) -> Result<HostedSlot, NodeError> {
    let manifest = fetch::manifest_of(&store, exchange.as_ref(), cid).await?;
    let target = slot_target(cid, &manifest, index)?;
    let wanted = target.wanted.clone();
    let blocks = wanted.end - wanted.start;

    let begun = store
        .send(BeginSlotDownload { manifest_cid: cid, manifest: manifest.clone(), index, wanted: wanted.clone() })
        .await??;
    let hosted = HostedSlot {
        manifest_cid: cid,
        index,
        slot_root: target.slot_root,
        tree: manifest.tree_cid,
        blocks,
        data_path: begun.data_path.clone(),
        slots_path: begun.slots_path.clone(),
    };
    if begun.hosted {
        return Ok(hosted);
    }
    let mut status = begun.progress.watch_status();
    if *status.borrow() == DownloadStatus::Running {
        let exchange = exchange.ok_or(NodeError::NoNetwork)?;
        tracing::info!(cid = %format_cid(&cid), slot = index, blocks, "fetching a slot");
        exchange.do_send(StartDownload {
            manifest_cid: cid,
            manifest: manifest.clone(),
            progress: begun.progress.clone(),
            leaves: crate::blockexc::LeafSet::Range(wanted),
        });
    }
    loop {
        let current = status.borrow_and_update().clone();
        match current {
            DownloadStatus::Complete => break,
            DownloadStatus::Failed(reason) => return Err(SlotHostError::SlotUnavailable { cid, index, reason }.into()),
            DownloadStatus::Running => {
                if status.changed().await.is_err() {
                    let reason = "the download was dropped".into();
                    return Err(SlotHostError::SlotUnavailable { cid, index, reason }.into());
                }
            }
        }
    }
    check_and_keep(&store, &slots, target, begun.data_path, begun.slots_path).await?;
    tracing::info!(cid = %format_cid(&cid), slot = index, blocks, "slot stored");
    Ok(hosted)
}

/// Hashes slot `target.index`'s blocks (SlotBuilderActor), and keeps the slot (`CommitSlot`) if its root is the
/// expected one, else drops it (`DropSlot`) with [`SlotHostError::SlotRootMismatch`].
async fn check_and_keep(
    store: &Addr<StoreActor>,
    slots: &Addr<SlotBuilderActor>,
    target: SlotTarget,
    data_path: std::path::PathBuf,
    slots_path: std::path::PathBuf,
) -> Result<(), NodeError> {
    let SlotTarget { cid, tree, index, layout, expected, .. } = target;
    let built = slots.send(BuildSlotTree { data_path, digests_out: slots_path, layout, index }).await?;
    let root = match built {
        Ok(root) => root,
        Err(err) => {
            store.send(DropSlot { tree, reason: err.to_string() }).await??;
            return Err(SlotHostError::from(err).into());
        }
    };
    if root != expected {
        let reason = format!("slot {index} of {} does not hash to its slot root", format_cid(&cid));
        tracing::warn!(%reason, "slot dropped");
        store.send(DropSlot { tree, reason }).await??;
        return Err(SlotHostError::SlotRootMismatch { cid, index }.into());
    }
    store.send(CommitSlot { tree }).await??;
    Ok(())
}

/// What hosting or repairing slot `index` of `manifest` needs: the slot's blocks to hold (its erasure padding
/// excluded), its expected root and root CID.
struct SlotTarget {
    cid: Cid,
    tree: Cid,
    index: u64,
    layout: SlotLayout,
    wanted: std::ops::Range<u64>,
    expected: F,
    slot_root: Cid,
}

fn slot_target(cid: Cid, manifest: &Manifest, index: u64) -> Result<SlotTarget, NodeError> {
    let verification = manifest
        .erasure
        .as_ref()
        .and_then(|erasure| erasure.verification.as_ref())
        .ok_or(SlotHostError::NotVerifiable { cid })
        .map_err(NodeError::from)?;
    let layout = SlotLayout::from_manifest(manifest, verification.cell_size)
        .map_err(|err| NodeError::from(SlotHostError::InvalidSlots { cid, reason: err.to_string() }))?;
    let no_such_slot = || NodeError::from(SlotHostError::NoSuchSlot { cid, index, slots: layout.num_slots() });
    let range = layout.slot_blocks(index).ok_or_else(no_such_slot)?;
    let slot_root = *verification.slot_roots.get(index as usize).ok_or_else(no_such_slot)?;
    let expected = root_from_cid(&slot_root).ok_or_else(|| {
        NodeError::from(SlotHostError::InvalidSlots { cid, reason: "a slot root CID is not a field element".into() })
    })?;
    // Erasure padding sits at the end of the last data slot: the stored blocks are a prefix of the range.
    let end = (range.start..range.end).find(|i| layout.is_empty_block(*i)).unwrap_or(range.end);
    Ok(SlotTarget { cid, tree: manifest.tree_cid, index, layout, wanted: range.start..end, expected, slot_root })
}

/// Repair (seed 001, a freed slot taken over): rebuilds slot `index` of verifiable dataset `cid` from the other
/// slots when its host is gone. A decoding download fetches any K members of each erasure group from the
/// holders of the other slots; the ErasureActor decodes every missing block (data and parity); the whole
/// encoded tree is rebuilt from the leaves and must equal the dataset's root (the original's re-encode check);
/// only slot `index`'s blocks are kept, and the slot is kept only if it hashes to `slotRoots[index]`.
pub async fn repair_slot(actors: RepairActors, cid: Cid, index: u64) -> Result<HostedSlot, NodeError> {
    let RepairActors { store, exchange, erasure, slots } = actors;
    let manifest = fetch::manifest_of(&store, exchange.as_ref(), cid).await?;
    let target = slot_target(cid, &manifest, index)?;
    let blocks = target.wanted.end - target.wanted.start;
    let begun = store.send(BeginDecodeDownload { manifest_cid: cid, manifest: manifest.clone() }).await??;
    if !begun.drive {
        return Err(StoreError::SlotConflict { tree: manifest.tree_cid }.into());
    }
    let exchange = exchange.ok_or(NodeError::NoNetwork)?;
    tracing::info!(cid = %format_cid(&cid), slot = index, "repairing a slot");
    exchange.do_send(StartDownload {
        manifest_cid: cid,
        manifest: manifest.clone(),
        progress: begun.progress.clone(),
        leaves: crate::blockexc::LeafSet::Groups { layout: begun.layout, in_order: false },
    });
    let progress = begun.progress.clone();
    if let Err(reason) = progress.until_decodable().await {
        return Err(SlotHostError::SlotUnavailable { cid, index, reason }.into());
    }
    let layout = begun.layout;
    let tree = manifest.tree_cid;
    let present: Vec<bool> = (0..progress.leaves()).map(|i| progress.has(i)).collect();
    let groups: Vec<u64> = (0..layout.groups())
        .filter(|group| layout.group_members(*group).any(|i| !layout.is_padding(i) && !progress.has(i)))
        .collect();
    let decode = DecodeSegment {
        params: layout.params(),
        original_blocks: layout.original_blocks(),
        block_size: manifest.block_size as usize,
        file: begun.data_path,
        present,
        groups,
        want: Want::All,
    };
    let recovered = match erasure.send(decode).await? {
        Ok(decoded) => decoded.recovered,
        Err(err) => {
            store.send(DropSlot { tree, reason: err.to_string() }).await??;
            return Err(SlotHostError::SlotUnavailable { cid, index, reason: err.to_string() }.into());
        }
    };
    let repaired = store.send(FinishRepair { tree, index, wanted: target.wanted.clone(), recovered }).await??;
    let hosted = HostedSlot {
        manifest_cid: cid,
        index,
        slot_root: target.slot_root,
        tree: manifest.tree_cid,
        blocks,
        data_path: repaired.data_path.clone(),
        slots_path: repaired.slots_path.clone(),
    };
    check_and_keep(&store, &slots, target, repaired.data_path, repaired.slots_path).await?;
    tracing::info!(cid = %format_cid(&cid), slot = index, blocks, "slot repaired and stored");
    Ok(hosted)
}

/// The actors a repair uses.
#[derive(Clone)]
pub struct RepairActors {
    pub store: Addr<StoreActor>,
    pub exchange: Option<Addr<BlockExchangeActor>>,
    pub erasure: Addr<ErasureActor>,
    pub slots: Addr<SlotBuilderActor>,
}
