//! SlotBuilderActor: the Poseidon2 half of making a dataset verifiable (seed 000, "Slot hosting"; codex-facts
//! §4.4). Runs on its own `SyncArbiter` thread and hashes on `threads` helper threads of its own, started at a
//! lower CPU priority (nice 10), so a GiB of Poseidon2 (minutes of CPU) never delays the network, HTTP or store
//! threads.
//!
//! [`BuildSlots`] reads an encoded segment block by block (`pread`, one 64 KiB buffer per thread: memory does
//! not grow with the dataset), computes every block digest (a Poseidon2 Merkle root over the block's 2 KiB cell
//! hashes), writes them to the segment's `.slots` file (the leaves of every slot tree, see `store/repo.rs`), and
//! answers the slot roots and the verify root. Padding blocks of the erasure layout are never read: they take
//! the all-zero block's digest, as do the blocks that pad each slot to a power of two. Progress is logged every
//! 5 %.
//!
//! [`BuildSlotTree`] hashes one slot's blocks (a host's check); [`read_slot_digests`] reads stored digests back
//! (the prover rebuilds a slot tree from them).

use actix::prelude::*;
use codex_protocol::poseidon2::{self, F};
use codex_protocol::slots::{SlotLayout, SlotTree, slot_block_digest, verify_root};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use thiserror::Error;

/// Blocks a hashing thread takes at a time.
const CHUNK_BLOCKS: u64 = 64;

/// Slot building errors.
#[derive(Debug, Error)]
pub enum SlotError {
    #[error("{context}: {source}")]
    Io { context: &'static str, source: std::io::Error },
    #[error("invalid slot layout: {0}")]
    Layout(#[from] codex_protocol::slots::SlotError),
    #[error("a stored block digest is not a field element")]
    CorruptDigest,
    #[error("slot {index} does not exist: the dataset has {slots} slots")]
    NoSuchSlot { index: u64, slots: u64 },
    #[error("the slot builder stopped")]
    Stopped,
}

impl SlotError {
    fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> SlotError {
        move |source| SlotError::Io { context, source }
    }

    /// What kind of failure this is, for the REST layer.
    pub fn kind(&self) -> crate::error::ErrorKind {
        match self {
            SlotError::NoSuchSlot { .. } => crate::error::ErrorKind::NotFound,
            SlotError::Stopped => crate::error::ErrorKind::Unavailable,
            SlotError::Io { .. } | SlotError::Layout(_) | SlotError::CorruptDigest => crate::error::ErrorKind::Internal,
        }
    }
}

impl From<MailboxError> for SlotError {
    fn from(_: MailboxError) -> Self {
        SlotError::Stopped
    }
}

/// The roots of a dataset's slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotRoots {
    pub slot_roots: Vec<F>,
    pub verify_root: F,
}

/// Command: hash every block of the encoded segment at `data_path` and answer the slot and verify roots; the
/// block digests go to `digests_out` (created, synced). The layout (from the protected manifest) says which
/// blocks are erasure padding: those are not read.
#[derive(Message)]
#[rtype(result = "Result<SlotRoots, SlotError>")]
pub struct BuildSlots {
    pub data_path: PathBuf,
    pub digests_out: PathBuf,
    pub layout: SlotLayout,
}

/// Command: hash the blocks of slot `index` held in the segment at `data_path` (a host's slot download: the
/// slot's blocks at their dataset positions), write their digests to `digests_out` and answer the slot root.
#[derive(Message)]
#[rtype(result = "Result<F, SlotError>")]
pub struct BuildSlotTree {
    pub data_path: PathBuf,
    pub digests_out: PathBuf,
    pub layout: SlotLayout,
    pub index: u64,
}

/// The slot builder.
pub struct SlotBuilderActor {
    threads: usize,
}

impl SlotBuilderActor {
    /// Starts the actor on its own thread; it hashes on `threads` threads.
    pub fn start(threads: usize) -> Addr<Self> {
        let threads = threads.max(1);
        SyncArbiter::start(1, move || SlotBuilderActor { threads })
    }
}

impl Actor for SlotBuilderActor {
    type Context = SyncContext<Self>;
}

impl Handler<BuildSlots> for SlotBuilderActor {
    type Result = Result<SlotRoots, SlotError>;
    fn handle(&mut self, msg: BuildSlots, _: &mut Self::Context) -> Self::Result {
        let started = std::time::Instant::now();
        let digests = hash_blocks(&msg.data_path, &msg.layout, 0..msg.layout.blocks_count(), self.threads)?;
        write_digests(&msg.digests_out, 0, &digests)?;
        let roots = roots_of(&msg.layout, &digests)?;
        let blocks = msg.layout.blocks_count();
        let secs = started.elapsed().as_secs_f64();
        tracing::info!(
            blocks,
            slots = msg.layout.num_slots(),
            secs = format!("{secs:.1}"),
            mb_per_s = format!("{:.1}", (blocks * msg.layout.block_size()) as f64 / 1e6 / secs.max(1e-9)),
            "slots built"
        );
        Ok(roots)
    }
}

impl Handler<BuildSlotTree> for SlotBuilderActor {
    type Result = Result<F, SlotError>;
    fn handle(&mut self, msg: BuildSlotTree, _: &mut Self::Context) -> Self::Result {
        let layout = &msg.layout;
        let range = layout
            .slot_blocks(msg.index)
            .ok_or(SlotError::NoSuchSlot { index: msg.index, slots: layout.num_slots() })?;
        let digests = hash_blocks(&msg.data_path, layout, range.clone(), self.threads)?;
        write_digests(&msg.digests_out, range.start, &digests)?;
        Ok(SlotTree::new(layout, &digests)?.root())
    }
}

/// Every block digest of the dataset, in block order, hashed on `threads` threads.
fn hash_blocks(
    data_path: &std::path::Path,
    layout: &SlotLayout,
    range: std::ops::Range<u64>,
    threads: usize,
) -> Result<Vec<F>, SlotError> {
    let (first, blocks) = (range.start, range.end.saturating_sub(range.start));
    let block_size = layout.block_size();
    let file = File::open(data_path).map_err(SlotError::io("opening the encoded dataset"))?;
    let next = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let out = Mutex::new(vec![F::from(0u64); blocks as usize]);
    let worker = || -> Result<(), SlotError> {
        lower_priority();
        let mut buf = vec![0u8; block_size as usize];
        loop {
            let start = next.fetch_add(CHUNK_BLOCKS, Ordering::Relaxed);
            if start >= blocks {
                return Ok(());
            }
            let end = (start + CHUNK_BLOCKS).min(blocks);
            let mut chunk = Vec::with_capacity((end - start) as usize);
            for index in first + start..first + end {
                if layout.is_empty_block(index) {
                    chunk.push(slot_block_digest(layout, index, &[])?);
                    continue;
                }
                file.read_exact_at(&mut buf, index * block_size).map_err(SlotError::io("reading an encoded block"))?;
                chunk.push(slot_block_digest(layout, index, &buf)?);
            }
            {
                let mut out = out.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                if let Some(slice) = out.get_mut(start as usize..end as usize) {
                    slice.copy_from_slice(&chunk);
                }
            }
            report_progress(&done, end - start, blocks);
        }
    };
    let results: Vec<Result<(), SlotError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|i| std::thread::Builder::new().name(format!("slot-hash-{i}")).spawn_scoped(scope, worker))
            .collect();
        handles
            .into_iter()
            .map(|handle| match handle {
                Ok(handle) => handle.join().unwrap_or(Err(SlotError::Stopped)),
                Err(err) => Err(SlotError::Io { context: "starting a hashing thread", source: err }),
            })
            .collect()
    });
    for result in results {
        result?;
    }
    Ok(out.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner()))
}

/// Logs progress each time another 5 % of the blocks are hashed.
fn report_progress(done: &AtomicU64, added: u64, total: u64) {
    let before = done.fetch_add(added, Ordering::Relaxed);
    let after = before + added;
    let step = |n: u64| n * 20 / total.max(1);
    if step(after) > step(before) {
        tracing::info!(percent = step(after) * 5, blocks = after, total, "building slots");
    }
}

/// Hashing threads run at nice 10: the node's own threads come first when the cores are busy.
fn lower_priority() {
    // SAFETY: plain syscalls on the calling thread's id; no memory is shared with the kernel.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
}

/// Writes block digests `first..` into a `.slots` file (created if needed, never truncated: a host's file is
/// sparse, holding its own slot's range only) and syncs it.
fn write_digests(path: &std::path::Path, first: u64, digests: &[F]) -> Result<(), SlotError> {
    let mut bytes = Vec::with_capacity(digests.len() * 32);
    for digest in digests {
        bytes.extend_from_slice(&poseidon2::to_le_bytes(digest));
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(SlotError::io("creating the slot digests file"))?;
    file.write_all_at(&bytes, first * 32).map_err(SlotError::io("writing the slot digests"))?;
    file.sync_data().map_err(SlotError::io("syncing the slot digests"))
}

/// The slot roots and the verify root over them.
fn roots_of(layout: &SlotLayout, digests: &[F]) -> Result<SlotRoots, SlotError> {
    let mut slot_roots = Vec::new();
    for index in 0..layout.num_slots() {
        let blocks = layout.slot_blocks(index).ok_or(SlotError::NoSuchSlot { index, slots: layout.num_slots() })?;
        let own = digests.get(blocks.start as usize..blocks.end as usize).ok_or(
            codex_protocol::slots::SlotError::DigestCount { count: digests.len(), expected: layout.blocks_count() },
        )?;
        slot_roots.push(SlotTree::new(layout, own)?.root());
    }
    let verify_root = verify_root(&slot_roots)
        .ok_or(codex_protocol::slots::SlotError::SlotRootCount { count: 0, expected: layout.num_slots() })?;
    Ok(SlotRoots { slot_roots, verify_root })
}

/// The block digests `blocks` (encoded block indices) stored in a `.slots` file.
pub fn read_slot_digests(path: &std::path::Path, blocks: std::ops::Range<u64>) -> Result<Vec<F>, SlotError> {
    let file = File::open(path).map_err(SlotError::io("opening the slot digests"))?;
    let mut bytes = vec![0u8; blocks.end.saturating_sub(blocks.start) as usize * 32];
    file.read_exact_at(&mut bytes, blocks.start * 32).map_err(SlotError::io("reading the slot digests"))?;
    let mut digests = Vec::with_capacity(bytes.len() / 32);
    for chunk in bytes.chunks_exact(32) {
        let mut raw = [0u8; 32];
        raw.copy_from_slice(chunk);
        digests.push(poseidon2::from_le_bytes(&raw).ok_or(SlotError::CorruptDigest)?);
    }
    Ok(digests)
}
