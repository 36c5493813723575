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
/// end read as zeros); parity block `index` is written to `parity_out` at `index × block_size`. `parity_out`
/// may be `source` itself (parity lands past the data) or a new file (its first `rounded × block_size` bytes
/// are then a hole); it is sized to the encoded dataset, never truncated below that.
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

    /// Starts the actor on its own thread; one encode or decode codes on `workers` threads.
    pub fn start(workers: usize) -> actix::Addr<Self> {
        let config = ErasureConfig { workers_per_job: workers.max(1), ..ErasureConfig::default() };
        actix::SyncArbiter::start(1, move || ErasureActor::new(config.clone()))
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
    // Not truncated: `parity_out` may be `source` itself (parity is written past the data, which stays).
    let parity = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
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
    let job =
        EncodeJob { codec, layout, block_size: msg.block_size, source: &source, msg, parity: &parity, done: &done };
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
                start_writeback(self.parity, first * bs as u64, part.len() as u64);
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

/// Asks the kernel to start writing a range back now (no wait), so the final sync of a large encode has
/// little left to do and the disk works while the CPU codes. A hint only: errors surface at the sync.
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: sync_file_range only reads the descriptor and integer arguments; the fd is open for the call.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset as i64, len as i64, libc::SYNC_FILE_RANGE_WRITE);
    }
}

/// [`DecodeSegment`]'s work, callable from any blocking thread.
pub fn decode_segment(
    codec: &ErasureCodec,
    msg: &DecodeSegment,
    config: &ErasureConfig,
) -> Result<Decoded, ErasureError> {
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
    let wanted: Vec<bool> =
        present.iter().enumerate().map(|(position, &p)| !p && (msg.want == Want::All || position < k)).collect();
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
            file.write_all_at(shard, index * bs as u64)
                .map_err(ErasureError::io("writing recovered blocks to", &msg.file))?;
            recovered.push((index, sha256(shard)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix::SyncArbiter;

    const BS: usize = 64 * 1024;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn bytes(&mut self, len: usize) -> Vec<u8> {
            (0..len.div_ceil(8)).flat_map(|_| self.next().to_le_bytes()).take(len).collect()
        }
    }

    /// A source segment of `blocks` random blocks whose last block is cut short by `short` bytes (read as zeros).
    fn source(dir: &Path, blocks: u64, short: usize, rng: &mut Rng) -> PathBuf {
        let path = dir.join("source");
        std::fs::write(&path, rng.bytes(blocks as usize * BS - short)).unwrap();
        path
    }

    fn encode(dir: &Path, params: ErasureParams, blocks: u64, src: &Path) -> (ErasureLayout, EncodedParity, PathBuf) {
        let codec = ErasureCodec::new(params).unwrap();
        let parity_out = dir.join("parity");
        let msg = EncodeSegment { params, original_blocks: blocks, block_size: BS, source: src.into(), parity_out };
        let encoded = encode_segment(&codec, &msg, &ErasureConfig { groups_per_batch: 4, workers_per_job: 2 }).unwrap();
        (ErasureLayout::new(params, blocks).unwrap(), encoded, msg.parity_out)
    }

    /// The full encoded segment: the source's blocks (zero-padded), padding zeros, then the parity blocks.
    fn full_segment(layout: &ErasureLayout, src: &Path, parity: &Path) -> Vec<u8> {
        let mut full = std::fs::read(src).unwrap();
        full.resize(layout.encoded_blocks() as usize * BS, 0);
        let parity = std::fs::read(parity).unwrap();
        let start = layout.rounded() as usize * BS;
        full[start..].copy_from_slice(&parity[start..]);
        full
    }

    fn block(bytes: &[u8], index: u64) -> &[u8] {
        &bytes[index as usize * BS..(index as usize + 1) * BS]
    }

    #[test]
    fn encode_then_decode_two_losses_per_group_restores_every_block() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = Rng(0x5eed);
        let params = ErasureParams::new(3, 2).unwrap();
        let src = source(dir.path(), 50, 1000, &mut rng);
        let (layout, encoded, parity_path) = encode(dir.path(), params, 50, &src);
        assert_eq!((layout.rounded(), layout.steps(), layout.encoded_blocks()), (51, 17, 85));

        // The parity file: a hole before `rounded`, parity digests equal to what is in the file.
        let parity = std::fs::read(&parity_path).unwrap();
        assert_eq!(parity.len(), 85 * BS);
        assert!(parity[..51 * BS].iter().all(|&b| b == 0));
        let indices: Vec<u64> = encoded.parity.iter().map(|(index, _)| *index).collect();
        assert_eq!(indices, (51..85).collect::<Vec<_>>());
        for (index, digest) in &encoded.parity {
            assert_eq!(*digest, sha256(block(&parity, *index)), "parity {index}");
        }

        // Each group's parity is the codec's parity of its data (one group checked independently).
        let full = full_segment(&layout, &src, &parity_path);
        let codec = ErasureCodec::new(params).unwrap();
        let mut shards: Vec<Vec<u8>> = layout.group_members(16).map(|i| block(&full, i).to_vec()).collect();
        let expected = shards.clone();
        shards[3].fill(0);
        shards[4].fill(0);
        let mut refs: Vec<&mut [u8]> = shards.iter_mut().map(|s| s.as_mut_slice()).collect();
        codec.encode_group(&mut refs).unwrap();
        assert_eq!(shards, expected);

        // Lose two shards of every group (never padding), in a copy.
        let damaged = dir.path().join("damaged");
        let mut bytes = full.clone();
        let mut present = vec![true; 85];
        for group in 0..layout.groups() {
            let members: Vec<u64> = layout.group_members(group).filter(|&i| !layout.is_padding(i)).collect();
            let first = (rng.next() % members.len() as u64) as usize;
            let second = (first + 1 + (rng.next() % (members.len() as u64 - 1)) as usize) % members.len();
            for index in [members[first], members[second]] {
                present[index as usize] = false;
                bytes[index as usize * BS..(index as usize + 1) * BS].fill(0);
            }
        }
        std::fs::write(&damaged, &bytes).unwrap();
        let lost: Vec<u64> = (0..85).filter(|&i| !present[i as usize]).collect();
        assert_eq!(lost.len(), 34);

        let msg = DecodeSegment {
            params,
            original_blocks: 50,
            block_size: BS,
            file: damaged.clone(),
            present,
            groups: (0..layout.groups()).collect(),
            want: Want::All,
        };
        let decoded = decode_segment(&codec, &msg, &ErasureConfig::default()).unwrap();
        let repaired = std::fs::read(&damaged).unwrap();
        assert!(repaired == full, "the repaired segment differs from the encoded one");
        let mut recovered: Vec<u64> = decoded.recovered.iter().map(|(index, _)| *index).collect();
        recovered.sort_unstable();
        assert_eq!(recovered, lost);
        for (index, digest) in &decoded.recovered {
            assert_eq!(*digest, sha256(block(&full, *index)));
        }
    }

    #[test]
    fn data_only_writes_only_missing_data_and_too_many_losses_fail() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = Rng(42);
        let params = ErasureParams::new(3, 2).unwrap();
        let src = source(dir.path(), 8, 0, &mut rng);
        let (layout, _, parity_path) = encode(dir.path(), params, 8, &src);
        assert_eq!(layout.encoded_blocks(), 15);
        let full = full_segment(&layout, &src, &parity_path);
        let file = dir.path().join("segment");
        let mut bytes = full.clone();
        let mut present = vec![true; 15];
        // Group 1 = [1, 4, 7, 10, 13]: lose data 4 and parity 13. Group 2 = [2, 5, 8 (padding), 11, 14]: lose 2.
        for index in [4usize, 13, 2] {
            present[index] = false;
            bytes[index * BS..(index + 1) * BS].fill(0);
        }
        std::fs::write(&file, &bytes).unwrap();
        let codec = ErasureCodec::new(params).unwrap();
        let mut msg = DecodeSegment {
            params,
            original_blocks: 8,
            block_size: BS,
            file: file.clone(),
            present: present.clone(),
            groups: vec![0, 1, 2],
            want: Want::DataOnly,
        };
        let decoded = decode_segment(&codec, &msg, &ErasureConfig::default()).unwrap();
        assert_eq!(decoded.recovered.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [4, 2]);
        let after = std::fs::read(&file).unwrap();
        assert_eq!(block(&after, 4), block(&full, 4));
        assert_eq!(block(&after, 2), block(&full, 2));
        assert!(block(&after, 13).iter().all(|&b| b == 0), "DataOnly wrote parity");

        // Three of group 1's five shards missing: it cannot be decoded.
        msg.present = present;
        msg.present[1] = false;
        msg.groups = vec![1];
        match decode_segment(&codec, &msg, &ErasureConfig::default()) {
            Err(ErasureError::TooFewShards { group: 1, have: 2, need: 3 }) => {}
            other => panic!("expected TooFewShards, got {other:?}"),
        }
        msg.groups = vec![3];
        assert!(matches!(
            decode_segment(&codec, &msg, &ErasureConfig::default()),
            Err(ErasureError::GroupOutOfRange { group: 3, groups: 3 })
        ));
        msg.present.pop();
        assert!(matches!(
            decode_segment(&codec, &msg, &ErasureConfig::default()),
            Err(ErasureError::PresenceLength { got: 14, expected: 15 })
        ));
    }

    #[actix_rt::test]
    async fn through_the_sync_arbiter() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = Rng(7);
        let params = ErasureParams::new(2, 1).unwrap();
        let src = source(dir.path(), 5, BS - 1, &mut rng);
        let addr = SyncArbiter::start(1, || ErasureActor::new(ErasureConfig::default()));
        let parity_out = dir.path().join("parity");
        let encoded = addr
            .send(EncodeSegment { params, original_blocks: 5, block_size: BS, source: src.clone(), parity_out })
            .await
            .unwrap()
            .unwrap();
        // 5 blocks, K = 2: rounded 6, steps 3, parity at 6, 7, 8.
        assert_eq!(encoded.parity.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [6, 7, 8]);
        let missing = dir.path().join("missing");
        let too_few = addr
            .send(EncodeSegment {
                params,
                original_blocks: 1,
                block_size: BS,
                source: src,
                parity_out: missing.clone(),
            })
            .await
            .unwrap();
        assert!(matches!(
            too_few,
            Err(ErasureError::Coding(codex_protocol::erasure::ErasureError::TooFewBlocks { blocks: 1, needed: 2 }))
        ));
        let err = addr
            .send(EncodeSegment {
                params,
                original_blocks: 5,
                block_size: BS,
                source: dir.path().join("nope"),
                parity_out: missing,
            })
            .await
            .unwrap()
            .unwrap_err();
        assert!(err.to_string().contains("opening the source segment"), "{err}");
    }
}
