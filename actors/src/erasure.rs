//! ErasureActor: Reed–Solomon encoding and decoding of dataset segment files, on a `SyncArbiter` (the caller
//! starts it with `SyncArbiter::start(threads, …)`), so coding never runs on network or HTTP threads.
//!
//! Owns nothing durable: a cache of codecs per (K, M). It works on segment FILES given by path (leaf `i`'s block
//! at byte `i × blockSize`) and knows nothing about redb: the StoreActor owns the metadata and commits what this
//! actor returns. Messages:
//! - [`EncodeSegment`]: reads the original blocks group by group (a batch of groups at a time: data position `i`
//!   of consecutive groups is one contiguous range, so one `pread` per position and batch), writes the parity
//!   blocks into a new sparse parity file at `index × blockSize`, returns their SHA-256 digests. Both halves of
//!   the groups are coded in parallel on scoped threads; memory is bounded by the batch.
//! - [`DecodeSegment`]: for the given groups of a partially present encoded segment, reads the present shards
//!   (padding positions are zeros), reconstructs, writes the wanted missing blocks in place, returns their
//!   digests.
//!
//! Emits nothing; answers its caller. The layout and the codec are `codex_protocol::erasure`.

use actix::{Actor, Handler, Message, SyncContext};
use codex_protocol::Digest;
use codex_protocol::cid::sha256;
use codex_protocol::erasure::{self, ErasureCodec, ErasureLayout, ErasureParams};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use thiserror::Error;
use tracing::{debug, info};

pub use codex_protocol::erasure::Want;

/// Configuration of the ErasureActor.
#[derive(Debug, Clone)]
pub struct ErasureConfig {
    /// Groups coded at a time by one worker (memory: batch × (K + M) × blockSize, capped at [`MAX_BATCH_BYTES`]).
    pub groups_per_batch: usize,
    /// Threads one encode or decode uses (scoped threads, each with its own batch buffer).
    pub workers_per_job: usize,
}

impl Default for ErasureConfig {
    fn default() -> Self {
        Self { groups_per_batch: 16, workers_per_job: 2 }
    }
}

/// The most one worker's batch buffer may hold, whatever K + M is.
pub const MAX_BATCH_BYTES: usize = 32 << 20;

/// Errors of the ErasureActor.
#[derive(Debug, Error)]
pub enum ErasureError {
    #[error(transparent)]
    Coding(#[from] erasure::ErasureError),
    #[error("group {group} cannot be decoded: {have} of its shards are present, {need} (K) are needed")]
    TooFewShards { group: u64, have: usize, need: usize },
    #[error("group {group} is out of range: the encoded dataset has {groups} groups")]
    GroupOutOfRange { group: u64, groups: u64 },
    #[error("the presence map covers {got} blocks, the encoded dataset has {expected}")]
    PresenceLength { got: u64, expected: u64 },
    #[error("block size must be positive")]
    ZeroBlockSize,
    #[error("{what} {}: {source}", path.display())]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("an erasure worker thread panicked")]
    WorkerPanicked,
}

impl ErasureError {
    fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| Self::Io { what, path, source }
    }
}

/// Encodes a segment's parity. `source` holds the original data (leaf `i` at `i × block_size`; bytes past its
/// end read as zeros); `parity_out` is created (replaced if it exists) with parity block `index` at
/// `index × block_size`, so its first `rounded × block_size` bytes are a hole.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<EncodedParity, ErasureError>")]
pub struct EncodeSegment {
    pub params: ErasureParams,
    pub original_blocks: u64,
    pub block_size: usize,
    pub source: PathBuf,
    pub parity_out: PathBuf,
}

/// The parity blocks written: (encoded index, SHA-256 of the block), by index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedParity {
    pub parity: Vec<(u64, Digest)>,
}

/// Repairs `groups` of an encoded segment `file` in which the blocks flagged in `present` (one flag per encoded
/// index) are held. Padding positions count as present zeros whatever their flag.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Decoded, ErasureError>")]
pub struct DecodeSegment {
    pub params: ErasureParams,
    pub original_blocks: u64,
    pub block_size: usize,
    pub file: PathBuf,
    pub present: Vec<bool>,
    pub groups: Vec<u64>,
    pub want: Want,
}

/// The blocks written: (encoded index, SHA-256 of the block), by group then position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub recovered: Vec<(u64, Digest)>,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct ErasureActor {
    config: ErasureConfig,
    codecs: HashMap<ErasureParams, Arc<ErasureCodec>>,
}

impl ErasureActor {
    pub fn new(config: ErasureConfig) -> Self {
        Self { config, codecs: HashMap::new() }
    }

    fn codec(&mut self, params: ErasureParams) -> Result<Arc<ErasureCodec>, ErasureError> {
        if let Some(codec) = self.codecs.get(&params) {
            return Ok(codec.clone());
        }
        let codec = Arc::new(ErasureCodec::new(params)?);
        self.codecs.insert(params, codec.clone());
        Ok(codec)
    }
}

impl Actor for ErasureActor {
    type Context = SyncContext<Self>;
}

impl Handler<EncodeSegment> for ErasureActor {
    type Result = Result<EncodedParity, ErasureError>;

    fn handle(&mut self, msg: EncodeSegment, _: &mut Self::Context) -> Self::Result {
        let codec = self.codec(msg.params)?;
        encode_segment(&codec, &msg, &self.config)
    }
}

impl Handler<DecodeSegment> for ErasureActor {
    type Result = Result<Decoded, ErasureError>;

    fn handle(&mut self, msg: DecodeSegment, _: &mut Self::Context) -> Self::Result {
        let codec = self.codec(msg.params)?;
        decode_segment(&codec, &msg, &self.config)
    }
}

/// Runs `work` over contiguous parts of `items` on up to `workers` scoped threads; results in item order.
fn in_parallel<I: Sync, T: Send>(
    items: &[I],
    workers: usize,
    work: impl Fn(&[I]) -> Result<Vec<T>, ErasureError> + Sync,
) -> Result<Vec<T>, ErasureError> {
    let part = items.len().div_ceil(workers.max(1)).max(1);
    let work = &work;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items.chunks(part).map(|chunk| scope.spawn(move || work(chunk))).collect();
        let mut out = Vec::new();
        for handle in handles {
            out.extend(handle.join().map_err(|_| ErasureError::WorkerPanicked)??);
        }
        Ok(out)
    })
}

/// Reads `buf.len()` bytes at `offset`, zero-filling what lies past the end of the file.
fn read_full_at(file: &File, path: &Path, mut buf: &mut [u8], mut offset: u64) -> Result<(), ErasureError> {
    while !buf.is_empty() {
        match file.read_at(buf, offset) {
            Ok(0) => {
                buf.fill(0);
                return Ok(());
            }
            Ok(n) => {
                buf = buf.get_mut(n..).unwrap_or_default();
                offset += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ErasureError::io("reading", path)(e)),
        }
    }
    Ok(())
}

/// Groups one worker codes at a time for this (K + M) and block size.
fn batch_groups(config: &ErasureConfig, params: ErasureParams, block_size: usize) -> u64 {
    let group_bytes = params.total().saturating_mul(block_size).max(1);
    config.groups_per_batch.min(MAX_BATCH_BYTES / group_bytes).max(1) as u64
}

/// [`EncodeSegment`]'s work, callable from any blocking thread.
pub fn encode_segment(
    codec: &ErasureCodec,
    msg: &EncodeSegment,
    config: &ErasureConfig,
) -> Result<EncodedParity, ErasureError> {
    if msg.block_size == 0 {
        return Err(ErasureError::ZeroBlockSize);
    }
    let layout = ErasureLayout::new(msg.params, msg.original_blocks)?;
    let bs = msg.block_size as u64;
    let source = File::open(&msg.source).map_err(ErasureError::io("opening the source segment", &msg.source))?;
    let parity = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&msg.parity_out)
        .map_err(ErasureError::io("creating the parity file", &msg.parity_out))?;
    parity
        .set_len(layout.encoded_blocks() * bs)
        .map_err(ErasureError::io("sizing the parity file", &msg.parity_out))?;

    let batch = batch_groups(config, msg.params, msg.block_size);
    let batches: Vec<Range<u64>> =
        (0..layout.groups()).step_by(batch as usize).map(|s| s..(s + batch).min(layout.groups())).collect();
    let done = AtomicU64::new(0);
    info!(groups = layout.groups(), k = msg.params.k(), m = msg.params.m(), source = %msg.source.display(), "erasure encoding started");
    let job = EncodeJob { codec, layout, block_size: msg.block_size, source: &source, msg, parity: &parity, done: &done };
    let parity_digests = in_parallel(&batches, config.workers_per_job, |part| job.encode_batches(part, batch))?;
    parity.sync_all().map_err(ErasureError::io("syncing the parity file", &msg.parity_out))?;
    let mut parity_digests = parity_digests;
    parity_digests.sort_unstable_by_key(|(index, _)| *index);
    info!(parity_blocks = parity_digests.len(), "erasure encoding done");
    Ok(EncodedParity { parity: parity_digests })
}

struct EncodeJob<'a> {
    codec: &'a ErasureCodec,
    layout: ErasureLayout,
    block_size: usize,
    source: &'a File,
    parity: &'a File,
    msg: &'a EncodeSegment,
    done: &'a AtomicU64,
}

impl EncodeJob<'_> {
    fn encode_batches(&self, batches: &[Range<u64>], batch: u64) -> Result<Vec<(u64, Digest)>, ErasureError> {
        let (k, total) = (self.layout.params().k(), self.layout.params().total());
        let bs = self.block_size;
        let mut buf = vec![0u8; total * batch as usize * bs];
        let mut digests = Vec::new();
        for groups in batches {
            let count = (groups.end - groups.start) as usize;
            let region = count * bs;
            let buf = buf.get_mut(..total * region).unwrap_or_default();
            // Data position i of groups s..s+count is the contiguous range s + i·steps ..: one read each, padding
            // blocks (past the original blocks) zeroed, never read.
            for (position, part) in buf.chunks_exact_mut(region).take(k).enumerate() {
                let first = groups.start + position as u64 * self.layout.steps();
                let real = self.layout.original_blocks().saturating_sub(first).min(count as u64) as usize;
                let (data, padding) = part.split_at_mut(real * bs);
                read_full_at(self.source, &self.msg.source, data, first * bs as u64)?;
                padding.fill(0);
            }
            let mut shards: Vec<Vec<&mut [u8]>> = (0..count).map(|_| Vec::with_capacity(total)).collect();
            for part in buf.chunks_exact_mut(region) {
                for (group, shard) in shards.iter_mut().zip(part.chunks_exact_mut(bs)) {
                    group.push(shard);
                }
            }
            for group in &mut shards {
                self.codec.encode_group(group)?;
            }
            drop(shards);
            // Parity j of groups s..s+count is the contiguous range rounded + s + j·steps ..: one write each.
            for (j, part) in buf.chunks_exact(region).skip(k).enumerate() {
                let first = self.layout.rounded() + groups.start + j as u64 * self.layout.steps();
                self.parity
                    .write_all_at(part, first * bs as u64)
                    .map_err(ErasureError::io("writing parity to", &self.msg.parity_out))?;
                digests.extend(part.chunks_exact(bs).zip(first..).map(|(block, index)| (index, sha256(block))));
            }
            let before = self.done.fetch_add(count as u64, Ordering::Relaxed);
            let groups_total = self.layout.groups();
            if (before + count as u64) * 10 / groups_total > before * 10 / groups_total {
                info!(percent = (before + count as u64) * 100 / groups_total, "erasure encoding");
            }
        }
        Ok(digests)
    }
}

/// [`DecodeSegment`]'s work, callable from any blocking thread.
pub fn decode_segment(codec: &ErasureCodec, msg: &DecodeSegment, config: &ErasureConfig) -> Result<Decoded, ErasureError> {
    if msg.block_size == 0 {
        return Err(ErasureError::ZeroBlockSize);
    }
    let layout = ErasureLayout::new(msg.params, msg.original_blocks)?;
    if msg.present.len() as u64 != layout.encoded_blocks() {
        return Err(ErasureError::PresenceLength { got: msg.present.len() as u64, expected: layout.encoded_blocks() });
    }
    if let Some(&group) = msg.groups.iter().find(|&&group| group >= layout.groups()) {
        return Err(ErasureError::GroupOutOfRange { group, groups: layout.groups() });
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&msg.file)
        .map_err(ErasureError::io("opening the segment", &msg.file))?;
    let recovered = in_parallel(&msg.groups, config.workers_per_job, |groups| {
        let mut buf = vec![0u8; msg.params.total() * msg.block_size];
        let mut recovered = Vec::new();
        for &group in groups {
            decode_group(codec, &layout, msg, &file, group, &mut buf, &mut recovered)?;
        }
        Ok(recovered)
    })?;
    file.sync_all().map_err(ErasureError::io("syncing the segment", &msg.file))?;
    debug!(groups = msg.groups.len(), recovered = recovered.len(), file = %msg.file.display(), "erasure decoding done");
    Ok(Decoded { recovered })
}

fn decode_group(
    codec: &ErasureCodec,
    layout: &ErasureLayout,
    msg: &DecodeSegment,
    file: &File,
    group: u64,
    buf: &mut [u8],
    recovered: &mut Vec<(u64, Digest)>,
) -> Result<(), ErasureError> {
    let k = layout.params().k();
    let bs = msg.block_size;
    let members: Vec<u64> = layout.group_members(group).collect();
    let present: Vec<bool> = members
        .iter()
        .map(|&index| layout.is_padding(index) || msg.present.get(index as usize).copied().unwrap_or(false))
        .collect();
    let have = present.iter().filter(|&&p| p).count();
    let wanted: Vec<bool> = present
        .iter()
        .enumerate()
        .map(|(position, &p)| !p && (msg.want == Want::All || position < k))
        .collect();
    if !wanted.contains(&true) {
        return Ok(());
    }
    if have < k {
        return Err(ErasureError::TooFewShards { group, have, need: k });
    }
    let mut shards: Vec<&mut [u8]> = buf.chunks_exact_mut(bs).collect();
    for ((shard, &index), &p) in shards.iter_mut().zip(&members).zip(&present) {
        if layout.is_padding(index) {
            shard.fill(0);
        } else if p {
            read_full_at(file, &msg.file, shard, index * bs as u64)?;
        }
    }
    codec.reconstruct_group(&mut shards, &present, msg.want)?;
    for ((shard, &index), &w) in shards.iter().zip(&members).zip(&wanted) {
        if w {
            file.write_all_at(shard, index * bs as u64).map_err(ErasureError::io("writing recovered blocks to", &msg.file))?;
            recovered.push((index, sha256(shard)));
        }
    }
    Ok(())
}
