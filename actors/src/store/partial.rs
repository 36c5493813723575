//! A network download in progress: a dataset whose leaves arrive one by one, in any order, from peers.
//!
//! Leaf `i` is written to the segment file at `i × blockSize` as soon as it is verified, exactly where a complete
//! dataset keeps it, so completion needs no copy. Each verified proof also reveals the tree nodes on the
//! leaf's path and their siblings; they are kept in memory (two digests per leaf at most) so the node can serve
//! every leaf it holds, with its proof, while the download is still running (seed 003: no delay in
//! availability). A checkpoint syncs the data file, writes the known nodes to the tree file and then records
//! the set of held leaves in redb, so after a crash or a restart the download resumes from the last checkpoint.

use super::StoreError;
use super::repo::DownloadRecord;
use bytes::Bytes;
use codex_protocol::blockexc::{BlockAddress, BlockDelivery, DeliveryError};
use codex_protocol::cid::{BLOCK_CODEC, cid_from_sha256, sha256_digest};
use codex_protocol::tree::{layer_sizes, proof_from_nodes};
use codex_protocol::{Cid, CodexProof, CodexTree, Digest, Manifest};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(2);
const CHECKPOINT_BYTES: u64 = 256 << 20;

/// Where a download stands, as watched by streams and the fetch driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownloadStatus {
    Running,
    Complete,
    Failed(String),
}

/// Which leaves of a download are held, shared (read-only) with readers that stream it while it arrives.
#[derive(Debug)]
pub struct Progress {
    leaves: u64,
    bits: Vec<AtomicU64>,
    received: AtomicU64,
    status: watch::Sender<DownloadStatus>,
    /// Bumped whenever leaves arrive, so waiting readers wake up.
    arrivals: watch::Sender<u64>,
}

impl Progress {
    fn new(leaves: u64, have: &[u64]) -> Self {
        let words = leaves.div_ceil(64) as usize;
        let bits: Vec<AtomicU64> = (0..words).map(|i| AtomicU64::new(have.get(i).copied().unwrap_or(0))).collect();
        // Clear bits past the end, in case a record carries garbage there.
        if !leaves.is_multiple_of(64)
            && let Some(last) = bits.last()
        {
            last.fetch_and((1u64 << (leaves % 64)) - 1, Ordering::Relaxed);
        }
        let received = bits.iter().map(|w| u64::from(w.load(Ordering::Relaxed).count_ones())).sum();
        Self {
            leaves,
            bits,
            received: AtomicU64::new(received),
            status: watch::channel(DownloadStatus::Running).0,
            arrivals: watch::channel(0).0,
        }
    }

    /// The number of leaves in the dataset.
    pub fn leaves(&self) -> u64 {
        self.leaves
    }

    /// True when leaf `index` is held (readable from the segment file).
    pub fn has(&self, index: u64) -> bool {
        index < self.leaves && self.bits[(index / 64) as usize].load(Ordering::Acquire) & (1u64 << (index % 64)) != 0
    }

    /// Leaves held so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// The leaves not held yet, in order.
    pub fn missing(&self) -> Vec<u64> {
        (0..self.leaves).filter(|i| !self.has(*i)).collect()
    }

    /// Current status.
    pub fn status(&self) -> DownloadStatus {
        self.status.borrow().clone()
    }

    /// Watches the status.
    pub fn watch_status(&self) -> watch::Receiver<DownloadStatus> {
        self.status.subscribe()
    }

    /// Watches arrivals (the value is a counter; wake up and re-check [`Progress::has`]).
    pub fn watch_arrivals(&self) -> watch::Receiver<u64> {
        self.arrivals.subscribe()
    }

    /// Marks the download failed (readers give up); a later fetch may resume it.
    pub fn fail(&self, reason: String) {
        self.status.send_if_modified(|status| {
            if *status == DownloadStatus::Running {
                *status = DownloadStatus::Failed(reason);
                true
            } else {
                false
            }
        });
    }

    /// Reopens a failed download for a new attempt.
    pub fn restart(&self) {
        self.status.send_if_modified(|status| {
            if matches!(status, DownloadStatus::Failed(_)) {
                *status = DownloadStatus::Running;
                true
            } else {
                false
            }
        });
    }

    fn set(&self, index: u64) {
        self.bits[(index / 64) as usize].fetch_or(1u64 << (index % 64), Ordering::Release);
        self.received.fetch_add(1, Ordering::Relaxed);
    }

    fn announce_arrivals(&self) {
        self.arrivals.send_modify(|n| *n += 1);
    }

    fn complete(&self) {
        self.status.send_replace(DownloadStatus::Complete);
        self.announce_arrivals();
    }

    fn words(&self) -> Vec<u64> {
        self.bits.iter().map(|w| w.load(Ordering::Acquire)).collect()
    }
}

/// What became of one delivered leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeafOutcome {
    /// Verified and written.
    Stored,
    /// Already held: nothing written.
    Duplicate,
    /// Failed verification: nothing written; the sender lied.
    Rejected(DeliveryError),
}

/// A download in progress. Owned by the StoreActor.
pub struct Partial {
    pub manifest_cid: Cid,
    pub manifest: Manifest,
    pub segment: u64,
    pub tree: Cid,
    root: Digest,
    block_size: u64,
    sizes: Vec<u64>,
    starts: Vec<u64>,
    nodes: Vec<Digest>,
    data: File,
    data_path: PathBuf,
    tree_path: PathBuf,
    pub progress: Arc<Progress>,
    /// Leaves stored since the last checkpoint, and when it was.
    unsynced: u64,
    last_checkpoint: Instant,
    /// Quota bytes claimed for this download (released at commit or abort).
    pub claimed: u64,
}

impl Partial {
    /// Opens a new or resumed download. `record.have` says which leaves the segment already holds.
    pub fn open(
        manifest_cid: Cid,
        manifest: Manifest,
        record: &DownloadRecord,
        data_path: PathBuf,
        tree_path: PathBuf,
        claimed: u64,
    ) -> Result<Self, StoreError> {
        let tree = manifest.tree_cid;
        let root = sha256_digest(&tree)
            .map_err(|e| StoreError::Corrupt { what: "manifest", reason: format!("tree CID: {e}") })?;
        let leaves = manifest.blocks_count();
        if leaves == 0 || manifest.block_size == 0 {
            return Err(StoreError::Corrupt { what: "manifest", reason: "a dataset without blocks".into() });
        }
        let sizes = layer_sizes(leaves);
        let starts: Vec<u64> = sizes.iter().scan(0, |acc, size| Some(std::mem::replace(acc, *acc + size))).collect();
        let total_nodes: u64 = sizes.iter().sum();
        let mut nodes = vec![[0u8; 32]; total_nodes as usize];
        let mut have = record.have.clone();
        // Known nodes come from the tree file of the last checkpoint; without it, no leaf can be served.
        match std::fs::read(&tree_path) {
            Ok(bytes) if bytes.len() as u64 == total_nodes * 32 => {
                for (node, chunk) in nodes.iter_mut().zip(bytes.chunks_exact(32)) {
                    node.copy_from_slice(chunk);
                }
            }
            _ => have.clear(),
        }
        let data = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&data_path)
            .map_err(StoreError::io("opening a download's segment"))?;
        let progress = Arc::new(Progress::new(leaves, &have));
        Ok(Self {
            manifest_cid,
            block_size: manifest.block_size,
            manifest,
            segment: record.segment,
            tree,
            root,
            sizes,
            starts,
            nodes,
            data,
            data_path,
            tree_path,
            progress,
            unsynced: 0,
            last_checkpoint: Instant::now(),
            claimed,
        })
    }

    /// The download's record for redb.
    pub fn record(&self) -> DownloadRecord {
        DownloadRecord { segment: self.segment, manifest: self.manifest.encode(), have: self.progress.words() }
    }

    /// Dataset bytes this download will occupy.
    pub fn bytes(&self) -> u64 {
        self.progress.leaves * self.block_size
    }

    /// Verifies a delivered leaf against the dataset's root and writes it.
    pub fn store(&mut self, delivery: &BlockDelivery) -> Result<LeafOutcome, StoreError> {
        let BlockAddress::Leaf { tree, index } = delivery.address else {
            return Ok(LeafOutcome::Rejected(DeliveryError::WrongCid));
        };
        if tree != self.tree || index >= self.progress.leaves {
            return Ok(LeafOutcome::Rejected(DeliveryError::BadProof));
        }
        if self.progress.has(index) {
            return Ok(LeafOutcome::Duplicate);
        }
        if delivery.data.len() as u64 != self.block_size || delivery.cid.codec() != BLOCK_CODEC {
            return Ok(LeafOutcome::Rejected(DeliveryError::CidMismatch));
        }
        let Some(proof) = &delivery.proof else { return Ok(LeafOutcome::Rejected(DeliveryError::MissingProof)) };
        if proof.leaves != self.progress.leaves {
            return Ok(LeafOutcome::Rejected(DeliveryError::BadProof));
        }
        if let Err(err) = delivery.verify() {
            return Ok(LeafOutcome::Rejected(err));
        }
        let digest = sha256_digest(&delivery.cid).map_err(|_| StoreError::CidMismatch { cid: delivery.cid })?;
        debug_assert!(proof.verify(&digest, &self.root));
        self.data.write_all_at(&delivery.data, index * self.block_size).map_err(StoreError::io("writing a leaf"))?;
        for (layer, position, node) in proof.revealed_nodes(&digest) {
            self.nodes[(self.starts[layer] + position) as usize] = node;
        }
        self.progress.set(index);
        self.unsynced += 1;
        Ok(LeafOutcome::Stored)
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

    /// True when every leaf is held.
    pub fn is_complete(&self) -> bool {
        self.progress.received() == self.progress.leaves
    }

    /// Leaf `index` with its proof, if held.
    pub fn read(&self, index: u64) -> Result<Option<(Cid, Bytes, CodexProof)>, StoreError> {
        if !self.progress.has(index) {
            return Ok(None);
        }
        let mut data = vec![0; self.block_size as usize];
        self.data.read_exact_at(&mut data, index * self.block_size).map_err(StoreError::io("reading a leaf"))?;
        let leaf = self.nodes[index as usize];
        let proof = proof_from_nodes::<StoreError>(self.progress.leaves, index, |layer, position| {
            Ok((position < self.sizes[layer]).then(|| self.nodes[(self.starts[layer] + position) as usize]))
        })?;
        Ok(Some((cid_from_sha256(BLOCK_CODEC, &leaf), Bytes::from(data), proof)))
    }

    /// Makes the leaves stored so far durable: syncs the data, writes the known tree nodes, then returns the
    /// record to save in redb (the caller commits it, which is the point where they count after a crash).
    pub fn checkpoint(&mut self) -> Result<DownloadRecord, StoreError> {
        self.data.sync_data().map_err(StoreError::io("syncing a download's segment"))?;
        write_synced(&self.tree_path, self.nodes.as_flattened())?;
        self.unsynced = 0;
        self.last_checkpoint = Instant::now();
        Ok(self.record())
    }

    /// Finishes a complete download: rebuilds the tree from the leaves, checks its root, writes the tree file
    /// and syncs everything. Returns the leaf digests for the commit.
    pub fn finish(&mut self) -> Result<Vec<Digest>, StoreError> {
        let leaves = self.nodes[..self.progress.leaves as usize].to_vec();
        let tree = CodexTree::new(leaves)?;
        if tree.root() != self.root {
            return Err(StoreError::Corrupt { what: "download", reason: "the leaves do not lead to the root".into() });
        }
        self.data.set_len(self.bytes()).map_err(StoreError::io("sizing a download's segment"))?;
        self.data.sync_data().map_err(StoreError::io("syncing a download's segment"))?;
        let bytes: Vec<u8> = tree.layers().iter().flat_map(|layer| layer.iter().flatten().copied()).collect();
        write_synced(&self.tree_path, &bytes)?;
        Ok(tree.into_leaves())
    }

    /// Marks the download complete for readers.
    pub fn mark_complete(&self) {
        self.progress.complete();
    }

    /// The segment's files.
    pub fn paths(&self) -> (PathBuf, PathBuf) {
        (self.data_path.clone(), self.tree_path.clone())
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut file = File::create(path).map_err(StoreError::io("creating a tree file"))?;
    file.write_all(bytes).map_err(StoreError::io("writing a tree file"))?;
    file.sync_data().map_err(StoreError::io("syncing a tree file"))
}
