//! A network download in progress: a dataset whose leaves arrive one by one, in any order, from peers.
//!
//! Leaf `i` is written to the segment's data file at `i × blockSize` as soon as it is verified, exactly where a
//! complete dataset keeps it, so completion needs no copy. Each verified proof also reveals the tree nodes on the
//! leaf's path and their siblings; they are written in place (`pwrite`) into the segment's tree file, which is
//! created at its full size, so the node can serve every leaf it holds, with its proof read back (`pread`) from
//! that file, while the download is still running (seed 003: no delay in availability). Memory per download is
//! the held-leaf bitmap ([`Progress`]) and nothing else that grows with the dataset.
//!
//! Why writing nodes in place is crash-safe: every node written comes from a proof that was verified against
//! the dataset's root, and a tree position has exactly one correct value, so a position is only ever written
//! with that value; a torn or lost write leaves either that value or the file's initial zeros, never another
//! digest. The bitmap in redb is what says which nodes count: a checkpoint syncs the data file, then the tree
//! file, and only then commits the bitmap, so every leaf the committed bitmap names has its data and its proof
//! nodes on disk. When the last leaf arrives, the layers above the leaves are recomputed in place from the
//! (verified) leaf layer, slice by slice, and the root is checked before the commit; those writes too only put
//! each position's one correct value (a mismatching root, possible only with a corrupted file, drops the
//! download and its files).
//!
//! Files: both are created (never overwritten) when the download starts, and the `segments/` directory is
//! synced so their entries survive a crash. On resume nothing is created implicitly: a missing data file, or a
//! tree file that is missing or not of its full length, voids the saved bitmap, and the download restarts from
//! zero with two fresh files (the caller saves the cleared record before anything arrives). A data file
//! shorter than the bitmap claims (truncated by a crash or by hand) keeps only the leaves that lie entirely
//! within it.

use super::StoreError;
use super::progress::{LeafOutcome, Progress};
use super::quota::QuotaClaim;
use super::repo::{DownloadRecord, LeafMode, SlotRecord};
use super::treefile::{TreeFile, sync_dir};
use bytes::Bytes;
use codex_protocol::blockexc::{BlockAddress, BlockDelivery, DeliveryError};
use codex_protocol::cid::{BLOCK_CODEC, cid_from_sha256, sha256_digest};
use codex_protocol::erasure::ErasureLayout;
use codex_protocol::{Cid, CodexProof, Digest, Manifest};
use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(2);
const CHECKPOINT_BYTES: u64 = 256 << 20;

/// A download's two files.
#[derive(Debug, Clone)]
pub struct SegmentPaths {
    pub data: PathBuf,
    pub tree: PathBuf,
}

/// How [`Partial::resume`] found the download's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resumed {
    /// Files present: the saved bitmap holds (minus leaves past the data file's end).
    Continued,
    /// A file was missing or of the wrong length: the download starts again from zero.
    Restarted { reason: &'static str },
}

/// A download in progress. Owned by the StoreActor.
pub struct Partial {
    pub manifest_cid: Cid,
    pub manifest: Manifest,
    pub segment: u64,
    pub tree: Cid,
    root: Digest,
    block_size: u64,
    data: File,
    tree_file: TreeFile,
    paths: SegmentPaths,
    pub progress: Arc<Progress>,
    /// Leaves stored since the last checkpoint, and when it was.
    unsynced: u64,
    last_checkpoint: Instant,
    /// The quota claimed for the whole dataset (or slot): settled by the commit, released when the download is
    /// dropped.
    pub claim: QuotaClaim,
    /// Set for a download of part of the leaves (a slot, or decoding: see `SlotRecord`); attach with
    /// [`Partial::set_mode`].
    pub slot: Option<SlotRecord>,
    /// For a decoding download: members held per erasure group.
    groups: Option<GroupCounter>,
    /// Leaves of groups that became decodable since the last call of [`Partial::take_unneeded`].
    unneeded: Vec<u64>,
    /// A decoding download has a driver task waiting on it (see `fetch.rs`).
    pub driven: bool,
}

/// Members held per erasure group of a decoding download (padding counts as held).
struct GroupCounter {
    layout: ErasureLayout,
    held: Vec<u16>,
    satisfied: u64,
}

impl Partial {
    /// Starts a new download in `segment`: creates both files (an error if either exists) and syncs their
    /// directory. `manifest` must have passed [`Manifest::validate`].
    pub fn create(
        manifest_cid: Cid,
        manifest: Manifest,
        segment: u64,
        paths: SegmentPaths,
        claim: QuotaClaim,
    ) -> Result<Self, StoreError> {
        let (data, tree_file) = create_files(&paths, manifest.blocks_count())?;
        Self::assemble(manifest_cid, manifest, segment, paths, data, tree_file, &[], claim)
    }

    /// Resumes a saved download from its files (see the module doc for what a missing file means).
    pub fn resume(
        manifest_cid: Cid,
        manifest: Manifest,
        record: &DownloadRecord,
        paths: SegmentPaths,
        claim: QuotaClaim,
    ) -> Result<(Self, Resumed), StoreError> {
        let leaves = manifest.blocks_count();
        let data = match OpenOptions::new().read(true).write(true).open(&paths.data) {
            Ok(file) => Some(file),
            Err(err) if err.kind() == ErrorKind::NotFound => None,
            Err(err) => return Err(StoreError::Io { context: "opening a download's data file", source: err }),
        };
        let tree_file = TreeFile::open_existing(&paths.tree, leaves)?;
        let (data, tree_file, have, resumed) = match (data, tree_file) {
            (Some(data), Some(tree_file)) => {
                let len = data.metadata().map_err(StoreError::io("reading a data file's length"))?.len();
                let within = len / manifest.block_size;
                (data, tree_file, held_within(&record.have, within), Resumed::Continued)
            }
            (data, tree_file) => {
                let reason = if data.is_none() { "its data file is missing" } else { "its tree file is damaged" };
                drop((data, tree_file));
                for path in [&paths.data, &paths.tree] {
                    if let Err(err) = std::fs::remove_file(path)
                        && err.kind() != ErrorKind::NotFound
                    {
                        return Err(StoreError::Io { context: "removing a damaged download file", source: err });
                    }
                }
                let (data, tree_file) = create_files(&paths, leaves)?;
                (data, tree_file, Vec::new(), Resumed::Restarted { reason })
            }
        };
        let partial = Self::assemble(manifest_cid, manifest, record.segment, paths, data, tree_file, &have, claim)?;
        Ok((partial, resumed))
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        manifest_cid: Cid,
        manifest: Manifest,
        segment: u64,
        paths: SegmentPaths,
        data: File,
        tree_file: TreeFile,
        have: &[u64],
        claim: QuotaClaim,
    ) -> Result<Self, StoreError> {
        let tree = manifest.tree_cid;
        let root = sha256_digest(&tree)
            .map_err(|e| StoreError::Corrupt { what: "manifest", reason: format!("tree CID: {e}") })?;
        let leaves = manifest.blocks_count();
        if leaves == 0 {
            return Err(StoreError::Corrupt { what: "manifest", reason: "a dataset without blocks".into() });
        }
        Ok(Self {
            manifest_cid,
            block_size: manifest.block_size,
            manifest,
            segment,
            tree,
            root,
            data,
            tree_file,
            paths,
            progress: Arc::new(Progress::new(leaves, have)),
            unsynced: 0,
            last_checkpoint: Instant::now(),
            claim,
            slot: None,
            groups: None,
            unneeded: Vec::new(),
            driven: false,
        })
    }

    /// The download's record for redb.
    pub fn record(&self) -> DownloadRecord {
        DownloadRecord { segment: self.segment, manifest: self.manifest.encode(), have: self.progress.words() }
    }

    /// Dataset bytes this download will occupy.
    pub fn bytes(&self) -> u64 {
        self.progress.leaves() * self.block_size
    }

    /// Verifies a delivered leaf against the dataset's root and writes it and the nodes its proof reveals.
    pub fn store(&mut self, delivery: &BlockDelivery) -> Result<LeafOutcome, StoreError> {
        let BlockAddress::Leaf { tree, index } = delivery.address else {
            return Ok(LeafOutcome::Rejected(DeliveryError::WrongCid));
        };
        if tree != self.tree || index >= self.progress.leaves() {
            return Ok(LeafOutcome::Rejected(DeliveryError::BadProof));
        }
        if self.progress.has(index) || !self.wants(index) {
            return Ok(LeafOutcome::Duplicate);
        }
        if delivery.data.len() as u64 != self.block_size || delivery.cid.codec() != BLOCK_CODEC {
            return Ok(LeafOutcome::Rejected(DeliveryError::CidMismatch));
        }
        let Some(proof) = &delivery.proof else { return Ok(LeafOutcome::Rejected(DeliveryError::MissingProof)) };
        if proof.leaves != self.progress.leaves() {
            return Ok(LeafOutcome::Rejected(DeliveryError::BadProof));
        }
        if let Err(err) = delivery.verify() {
            return Ok(LeafOutcome::Rejected(err));
        }
        let digest = sha256_digest(&delivery.cid).map_err(|_| StoreError::CidMismatch { cid: delivery.cid })?;
        // `verify` checked the proof against the root named by the address, which is this download's tree.
        debug_assert!(proof.verify(&digest, &self.root));
        self.data.write_all_at(&delivery.data, index * self.block_size).map_err(StoreError::io("writing a leaf"))?;
        for (layer, position, node) in proof.revealed_nodes(&digest) {
            self.tree_file.write_node(layer, position, &node)?;
        }
        self.progress.set(index);
        self.unsynced += 1;
        self.count_group_member(index);
        Ok(LeafOutcome::Stored)
    }

    /// Makes this a download of part of the leaves. A decoding download needs the dataset's erasure `layout`;
    /// its group counts start from the leaves already held.
    pub fn set_mode(&mut self, slot: SlotRecord, layout: Option<ErasureLayout>) {
        let decoding = slot.mode == LeafMode::Decode;
        self.slot = Some(slot);
        let Some(layout) = layout.filter(|_| decoding) else { return };
        self.progress.decode_groups(layout);
        let k = layout.params().k() as u16;
        let mut counter = GroupCounter { layout, held: vec![0; layout.groups() as usize], satisfied: 0 };
        for group in 0..layout.groups() {
            let held = layout.group_members(group).filter(|i| layout.is_padding(*i) || self.progress.has(*i)).count();
            if let Some(count) = counter.held.get_mut(group as usize) {
                *count = held as u16;
            }
            if held as u16 >= k {
                counter.satisfied += 1;
                self.progress.set_group_done(group);
            }
        }
        self.groups = Some(counter);
    }

    fn count_group_member(&mut self, index: u64) {
        let Some(counter) = &mut self.groups else { return };
        let Some((group, _)) = counter.layout.group_of(index) else { return };
        let Some(held) = counter.held.get_mut(group as usize) else { return };
        *held += 1;
        if *held == counter.layout.params().k() as u16 {
            counter.satisfied += 1;
            self.progress.set_group_done(group);
            let progress = &self.progress;
            self.unneeded.extend(counter.layout.group_members(group).filter(|i| !progress.has(*i)));
        }
    }

    /// Leaves no longer needed because their group became decodable (to drop from the requester's window).
    pub fn take_unneeded(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.unneeded)
    }

    /// The digest of held leaf `index` (read from the tree file), `None` when it is not held.
    pub fn leaf_digest(&self, index: u64) -> Result<Option<Digest>, StoreError> {
        if !self.progress.has(index) {
            return Ok(None);
        }
        self.tree_file.read_node(0, index)
    }

    /// Repair: every non-padding leaf was decoded into the segment (`recovered` are the decoded ones, with
    /// their SHA-256): writes their digests (and the empty digest at padding) into the leaf layer, rebuilds the
    /// tree file and checks the dataset root, then turns this download into slot `slot`'s hosted download:
    /// only the slot's leaves stay held (the other blocks' space is given back to the file system), the quota
    /// claim shrinks to the slot, and its progress is complete.
    pub fn become_repaired_slot(&mut self, recovered: &[(u64, Digest)], slot: SlotRecord) -> Result<(), StoreError> {
        let layout = self
            .decode_layout()
            .ok_or(StoreError::Corrupt { what: "repair", reason: "not a decoding download".into() })?;
        for (index, digest) in recovered {
            self.tree_file.write_node(0, *index, digest)?;
        }
        for index in layout.original_blocks()..layout.rounded() {
            self.tree_file.write_node(0, index, &codex_protocol::erasure::EMPTY_DIGEST)?;
        }
        let decoded: std::collections::HashSet<u64> = recovered.iter().map(|(index, _)| *index).collect();
        for index in 0..self.progress.leaves() {
            let held = layout.is_padding(index) || self.progress.has(index) || decoded.contains(&index);
            if !held {
                return Err(StoreError::Corrupt { what: "repair", reason: format!("leaf {index} was not decoded") });
            }
        }
        if self.tree_file.rebuild()? != self.root {
            return Err(StoreError::Corrupt {
                what: "repair",
                reason: "the decoded blocks do not lead to the dataset root".into(),
            });
        }
        self.data.sync_data().map_err(StoreError::io("syncing a repaired segment"))?;
        self.tree_file.sync()?;
        let wanted = slot.wanted_start..slot.wanted_end;
        let mut words = vec![0u64; self.progress.leaves().div_ceil(64) as usize];
        for index in wanted.clone() {
            if let Some(word) = words.get_mut((index / 64) as usize) {
                *word |= 1u64 << (index % 64);
            }
        }
        punch_outside(&self.data, self.block_size, self.progress.leaves(), &wanted);
        let fresh = Arc::new(Progress::new(self.progress.leaves(), &words));
        let old = std::mem::replace(&mut self.progress, fresh);
        old.complete();
        self.progress.complete();
        self.claim.shrink_to((wanted.end - wanted.start) * self.block_size);
        self.groups = None;
        self.unneeded.clear();
        self.slot = Some(slot);
        Ok(())
    }

    /// The erasure layout of a decoding download.
    pub fn decode_layout(&self) -> Option<ErasureLayout> {
        self.groups.as_ref().map(|g| g.layout)
    }

    /// Marks leaves written by erasure decoding as held (their data is in the segment, synced by the decoder).
    pub fn set_decoded(&mut self, indexes: &[u64]) {
        for index in indexes {
            if !self.progress.has(*index) {
                self.progress.set(*index);
            }
        }
    }

    /// Tells readers that leaves arrived (after a batch of [`Partial::store`]).
    pub fn announce(&self) {
        self.progress.announce_arrivals();
    }

    /// Leaves stored since the last checkpoint.
    pub fn unsynced(&self) -> u64 {
        self.unsynced
    }

    /// True when enough has arrived since the last checkpoint to make another (every 2 s or 256 MiB).
    pub fn checkpoint_due(&self) -> bool {
        self.unsynced > 0
            && (self.last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL
                || self.unsynced * self.block_size >= CHECKPOINT_BYTES)
    }

    /// True when leaf `index` is one this download fetches.
    pub fn wants(&self, index: u64) -> bool {
        match (&self.slot, &self.groups) {
            (_, Some(counter)) => !counter.layout.is_padding(index),
            (Some(slot), None) => (slot.wanted_start..slot.wanted_end).contains(&index),
            (None, None) => true,
        }
    }

    /// True when every wanted leaf is held (every leaf, unless this is a slot); for a decoding download, when
    /// every erasure group holds K members.
    pub fn is_complete(&self) -> bool {
        if let Some(counter) = &self.groups {
            return counter.satisfied == counter.layout.groups();
        }
        let wanted = self.slot.as_ref().map_or(self.progress.leaves(), |slot| slot.wanted_end - slot.wanted_start);
        self.progress.received() == wanted
    }

    /// Leaf `index` with its proof (read from the tree file), if held.
    pub fn read(&self, index: u64) -> Result<Option<(Cid, Bytes, CodexProof)>, StoreError> {
        if !self.progress.has(index) {
            return Ok(None);
        }
        let mut data = vec![0; self.block_size as usize];
        self.data.read_exact_at(&mut data, index * self.block_size).map_err(StoreError::io("reading a leaf"))?;
        let Some(leaf) = self.tree_file.read_node(0, index)? else { return Ok(None) };
        let proof = self.tree_file.proof(index)?;
        Ok(Some((cid_from_sha256(BLOCK_CODEC, &leaf), Bytes::from(data), proof)))
    }

    /// Makes the leaves stored so far durable: syncs the data file, then the tree file, and returns the record
    /// to save in redb (the caller commits it, which is the point where they count after a crash).
    pub fn checkpoint(&mut self) -> Result<DownloadRecord, StoreError> {
        self.data.sync_data().map_err(StoreError::io("syncing a download's data file"))?;
        self.tree_file.sync()?;
        self.unsynced = 0;
        self.last_checkpoint = Instant::now();
        Ok(self.record())
    }

    /// Finishes a complete download: recomputes every layer above the leaves in the tree file (in place, with
    /// bounded memory), checks the root, and syncs both files. Returns the leaf digests for the commit. If the
    /// root does not match (only possible with a corrupted file, since every leaf was verified), the caller
    /// drops the download and its files.
    pub fn finish(&mut self) -> Result<Vec<Digest>, StoreError> {
        if self.tree_file.rebuild()? != self.root {
            return Err(StoreError::Corrupt { what: "download", reason: "the leaves do not lead to the root".into() });
        }
        self.data.set_len(self.bytes()).map_err(StoreError::io("sizing a download's data file"))?;
        self.data.sync_data().map_err(StoreError::io("syncing a download's data file"))?;
        self.tree_file.sync()?;
        self.tree_file.read_leaves()
    }

    /// The segment's files.
    pub fn paths(&self) -> &SegmentPaths {
        &self.paths
    }
}

/// Creates a download's data file and full-length tree file (never overwriting) and syncs their directory.
fn create_files(paths: &SegmentPaths, leaves: u64) -> Result<(File, TreeFile), StoreError> {
    let data = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&paths.data)
        .map_err(StoreError::io("creating a download's data file"))?;
    let tree_file = TreeFile::create(&paths.tree, leaves)?;
    if let Some(dir) = paths.data.parent() {
        sync_dir(dir)?;
    }
    Ok((data, tree_file))
}

/// Gives the space of every block outside `keep` back to the file system (a hole reads as zeros; the bitmap
/// no longer names those leaves). Best effort: a file system without hole punching keeps the bytes.
fn punch_outside(file: &File, block_size: u64, leaves: u64, keep: &std::ops::Range<u64>) {
    use std::os::fd::AsRawFd;
    let ranges = [(0, keep.start), (keep.end, leaves)];
    for (start, end) in ranges {
        if end <= start {
            continue;
        }
        // SAFETY: fallocate only reads the descriptor and integer arguments; the fd is open for the call.
        let result = unsafe {
            libc::fallocate(
                file.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                (start * block_size) as libc::off_t,
                ((end - start) * block_size) as libc::off_t,
            )
        };
        if result != 0 {
            tracing::debug!(err = %std::io::Error::last_os_error(), "could not punch a hole in a repaired segment");
        }
    }
}

/// `have` with every leaf at or past `limit` cleared (leaves that do not lie entirely within the data file).
fn held_within(have: &[u64], limit: u64) -> Vec<u64> {
    have.iter()
        .enumerate()
        .map(|(word, bits)| {
            let first = word as u64 * 64;
            if first + 64 <= limit {
                *bits
            } else if first >= limit {
                0
            } else {
                bits & ((1u64 << (limit - first)) - 1)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::held_within;

    #[test]
    fn held_within_clears_leaves_past_the_limit() {
        let all = vec![u64::MAX, u64::MAX];
        assert_eq!(held_within(&all, 128), all);
        assert_eq!(held_within(&all, 200), all);
        assert_eq!(held_within(&all, 0), vec![0, 0]);
        assert_eq!(held_within(&all, 3), vec![0b111, 0]);
        assert_eq!(held_within(&all, 64), vec![u64::MAX, 0]);
        assert_eq!(held_within(&all, 70), vec![u64::MAX, 0b11_1111]);
    }
}
