//! The repository: redb metadata plus dataset segment files. Plain synchronous code, owned by the StoreActor.
//!
//! On disk under `<data-dir>/repo/`:
//! - `meta.redb`: the tables below.
//! - `segments/<id>.blk`: one dataset's blocks, leaf `i` at byte `i × blockSize`, so the dataset's bytes are
//!   the file's first `datasetSize` bytes.
//! - `segments/<id>.tree`: that dataset's CodexTree, every layer leaf-first, 32 bytes a node; proofs are read
//!   from it node by node.
//! - `segments/<id>.slots`: for a verifiable dataset, the Poseidon2 digest of every encoded block (32 bytes LE
//!   each, in block order; padding blocks hold the zero-block digest): the leaves of its slot trees, so a slot
//!   tree (and any cell's path) is rebuilt from `steps` digests and one block, never from the whole slot.
//!
//! Tables (opened together through [`Tables`], names versioned, see `store/tables.rs`): `meta` (counters and
//! the schema version), `trees-1` (tree CID → [`TreeRecord`]), `blocks-1` (CID → [`BlockRecord`], standalone
//! blocks such as manifests, data inline), `datasets-1` (manifest CID → tree CID), `leaf_index-1` (block CID →
//! (tree CID, leaf index)), `downloads-1` (tree CID → [`DownloadRecord`], a network download in progress). A
//! segment file with neither a `trees` nor a `downloads` row is an interrupted upload and is deleted at open.

use super::StoreError;
use super::partial::SegmentPaths;
use super::tables::{ReadTables, Tables, init_schema};
use super::treefile::TreeFile;
use codex_protocol::cid::{BLOCK_CODEC, cid_from_bytes, cid_from_sha256};
use codex_protocol::erasure::EMPTY_DIGEST;
use codex_protocol::{Cid, CodexProof, Digest, Manifest};
use redb::{Database, Durability, ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A dataset's leaf set: its blocks live in one segment file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeRecord {
    pub segment: u64,
    pub leaves: u64,
    pub block_size: u64,
    /// Unix seconds after which the blocks may be swept; `u64::MAX` = never.
    pub expiry: u64,
    /// Manifests referencing this tree.
    pub refs: u64,
}

/// A standalone block (a manifest, or a single block stored by CID), data inline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockRecord {
    pub data: Vec<u8>,
    pub expiry: u64,
    /// Datasets that hold this block as their manifest.
    pub refs: u64,
}

/// A network download in progress: its segment and which leaves are durably stored there (see
/// `store/partial.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadRecord {
    pub segment: u64,
    pub manifest: Vec<u8>,
    /// Bit `i` of word `i / 64` is set when leaf `i` is stored and synced.
    pub have: Vec<u64>,
}

/// What a download that fetches only some leaves is for (`slots-1`, keyed by tree CID).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeafMode {
    /// One slot: only leaves `wanted_start..wanted_end`; once all are held and the slot root checked, it is
    /// `hosted`: it stays a partial tree, served leaf by leaf, and is not fetched further.
    Slot,
    /// Decode on download: any K members of each erasure group, the missing data blocks are then decoded and
    /// the original dataset committed.
    Decode,
}

/// A download of part of an erasure-coded dataset's leaves (see [`LeafMode`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotRecord {
    pub mode: LeafMode,
    pub index: u64,
    pub wanted_start: u64,
    pub wanted_end: u64,
    pub hosted: bool,
}

/// Quota and block counters, mirrored in memory and persisted in `meta`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub used: u64,
    pub reserved: u64,
    pub total_blocks: u64,
}

/// What a dataset commit did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitOutcome {
    /// False when an identical tree was already stored and the new segment was discarded.
    pub new_tree: bool,
    pub new_manifest: bool,
    /// Bytes added to `used`.
    pub added_bytes: u64,
}

/// What a delete removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteOutcome {
    pub freed_bytes: u64,
    pub removed_blocks: u64,
    pub segments_to_unlink: Vec<u64>,
}

/// A stored leaf: block CID, data and inclusion proof.
pub type StoredLeaf = (Cid, Vec<u8>, CodexProof);

/// A tree's location, for reading its blocks.
#[derive(Debug, Clone)]
pub struct TreeLocation {
    pub record: TreeRecord,
    pub data_path: PathBuf,
    pub tree_path: PathBuf,
}

#[allow(clippy::expect_used, reason = "our records are plain structs that bincode always encodes")]
pub(super) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).expect("invariant: records always encode")
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &'static str) -> Result<T, StoreError> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map(|(value, _)| value)
        .map_err(|err| StoreError::Corrupt { what, reason: err.to_string() })
}

/// The repository. Not thread-safe by itself: the StoreActor owns it on one thread.
pub struct Repo {
    db: Database,
    segments_dir: PathBuf,
    next_segment: u64,
}

impl Repo {
    /// Opens (or creates) the repository under `repo_dir`, checks its schema version and deletes segments of
    /// interrupted uploads.
    pub fn open(repo_dir: &Path) -> Result<(Self, Counters), StoreError> {
        let segments_dir = repo_dir.join("segments");
        std::fs::create_dir_all(&segments_dir).map_err(StoreError::io("creating the segments directory"))?;
        let db = Database::create(repo_dir.join("meta.redb"))?;
        let txn = db.begin_write()?;
        // Creates every table, so readers never meet a missing one; refuses an unknown schema.
        init_schema(&txn)?;
        super::market::create_tables(&txn)?;
        super::sales::create_tables(&txn)?;
        txn.commit()?;
        let mut repo = Self { db, segments_dir, next_segment: 0 };
        let live = repo.live_segments()?;
        repo.next_segment = live.iter().max().map_or(0, |max| max + 1);
        repo.remove_orphan_segments(&live)?;
        let counters = repo.counters()?;
        Ok((repo, counters))
    }

    /// The database, for the marketplace tables (`market.rs`).
    pub(super) fn db(&self) -> &Database {
        &self.db
    }

    fn live_segments(&self) -> Result<HashSet<u64>, StoreError> {
        let tables = ReadTables::open(&self.db.begin_read()?)?;
        let mut live = HashSet::new();
        for entry in tables.trees.iter()? {
            let (_, value) = entry?;
            live.insert(decode::<TreeRecord>(value.value(), "tree record")?.segment);
        }
        for entry in tables.downloads.iter()? {
            let (_, value) = entry?;
            live.insert(decode::<DownloadRecord>(value.value(), "download record")?.segment);
        }
        Ok(live)
    }

    fn remove_orphan_segments(&mut self, live: &HashSet<u64>) -> Result<(), StoreError> {
        let entries = std::fs::read_dir(&self.segments_dir).map_err(StoreError::io("listing segments"))?;
        for entry in entries {
            let entry = entry.map_err(StoreError::io("listing segments"))?;
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.split('.').next()).and_then(|n| n.parse::<u64>().ok()) else {
                continue;
            };
            self.next_segment = self.next_segment.max(id + 1);
            if !live.contains(&id) {
                tracing::info!(segment = id, "removing the data of an interrupted upload");
                std::fs::remove_file(entry.path()).map_err(StoreError::io("removing an orphan segment"))?;
            }
        }
        Ok(())
    }

    /// Reads the persisted counters.
    pub fn counters(&self) -> Result<Counters, StoreError> {
        ReadTables::open(&self.db.begin_read()?)?.counters()
    }

    /// Allocates a new segment id for an upload or download.
    pub fn allocate_segment(&mut self) -> u64 {
        let id = self.next_segment;
        self.next_segment += 1;
        id
    }

    pub fn data_path(&self, segment: u64) -> PathBuf {
        self.segments_dir.join(format!("{segment}.blk"))
    }

    pub fn tree_path(&self, segment: u64) -> PathBuf {
        self.segments_dir.join(format!("{segment}.tree"))
    }

    /// The Poseidon2 block digests of a verifiable dataset's segment.
    pub fn slots_path(&self, segment: u64) -> PathBuf {
        self.segments_dir.join(format!("{segment}.slots"))
    }

    /// Both files of a segment.
    pub fn segment_paths(&self, segment: u64) -> SegmentPaths {
        SegmentPaths { data: self.data_path(segment), tree: self.tree_path(segment) }
    }

    /// Removes segments' files on a background thread (see [`remove_in_background`]).
    pub fn unlink_segments(&self, segments: &[u64]) {
        remove_in_background(
            segments
                .iter()
                .flat_map(|segment| [self.data_path(*segment), self.tree_path(*segment), self.slots_path(*segment)])
                .collect(),
        );
    }

    /// Makes an uploaded or downloaded dataset visible in one durable transaction: tree, leaf index, manifest,
    /// counters, and the end of its download record when `download` names one. `leaves` are the tree's leaf
    /// digests. The segment files must already be synced.
    pub fn commit_dataset(
        &mut self,
        segment: u64,
        leaves: &[Digest],
        manifest: &Manifest,
        expiry: u64,
        counters: &mut Counters,
        download: Option<&Cid>,
    ) -> Result<CommitOutcome, StoreError> {
        let manifest_bytes = manifest.encode();
        let manifest_cid = Manifest::cid_of(&manifest_bytes);
        let tree_key = manifest.tree_cid.to_bytes();
        let manifest_key = manifest_cid.to_bytes();
        let mut next = *counters;
        let txn = self.db.begin_write()?;
        let outcome;
        {
            let mut t = Tables::open(&txn)?;
            let existing_tree = match t.trees.get(tree_key.as_slice())? {
                Some(value) => Some(decode::<TreeRecord>(value.value(), "tree record")?),
                None => None,
            };
            let new_manifest = t.datasets.get(manifest_key.as_slice())?.is_none();
            let mut tree = match existing_tree.clone() {
                Some(mut tree) => {
                    tree.expiry = tree.expiry.max(expiry);
                    tree
                }
                None => {
                    for (i, leaf) in leaves.iter().enumerate() {
                        let key = cid_from_sha256(BLOCK_CODEC, leaf).to_bytes();
                        if t.leaf_index.get(key.as_slice())?.is_none() {
                            t.leaf_index.insert(key.as_slice(), (tree_key.as_slice(), i as u64))?;
                        }
                    }
                    next.used += leaves.len() as u64 * manifest.block_size;
                    next.total_blocks += leaves.len() as u64;
                    TreeRecord {
                        segment,
                        leaves: leaves.len() as u64,
                        block_size: manifest.block_size,
                        expiry,
                        refs: 0,
                    }
                }
            };
            let mut block = match t.blocks.get(manifest_key.as_slice())? {
                Some(value) => decode::<BlockRecord>(value.value(), "block record")?,
                None => {
                    next.used += manifest_bytes.len() as u64;
                    next.total_blocks += 1;
                    BlockRecord { data: manifest_bytes, expiry, refs: 0 }
                }
            };
            block.expiry = block.expiry.max(expiry);
            if new_manifest {
                block.refs += 1;
                tree.refs += 1;
                t.datasets.insert(manifest_key.as_slice(), tree_key.as_slice())?;
            }
            t.trees.insert(tree_key.as_slice(), encode(&tree).as_slice())?;
            t.blocks.insert(manifest_key.as_slice(), encode(&block).as_slice())?;
            if let Some(tree_cid) = download {
                t.downloads.remove(tree_cid.to_bytes().as_slice())?;
                t.slots.remove(tree_cid.to_bytes().as_slice())?;
            }
            t.write_counters(&next)?;
            outcome = CommitOutcome {
                new_tree: existing_tree.is_none(),
                new_manifest,
                added_bytes: next.used - counters.used,
            };
        }
        txn.commit()?;
        *counters = next;
        Ok(outcome)
    }

    /// Stores a standalone block (for example a manifest fetched alone). Returns the bytes added to `used`.
    pub fn put_block(
        &mut self,
        cid: &Cid,
        data: &[u8],
        expiry: u64,
        counters: &mut Counters,
    ) -> Result<u64, StoreError> {
        let key = cid.to_bytes();
        let mut next = *counters;
        let mut txn = self.db.begin_write()?;
        {
            let mut t = Tables::open(&txn)?;
            let record = match t.blocks.get(key.as_slice())? {
                Some(value) => {
                    let mut record = decode::<BlockRecord>(value.value(), "block record")?;
                    record.expiry = record.expiry.max(expiry);
                    record
                }
                None => {
                    next.used += data.len() as u64;
                    next.total_blocks += 1;
                    BlockRecord { data: data.to_vec(), expiry, refs: 0 }
                }
            };
            t.blocks.insert(key.as_slice(), encode(&record).as_slice())?;
            t.write_counters(&next)?;
        }
        txn.set_durability(Durability::Immediate)?;
        txn.commit()?;
        let added = next.used - counters.used;
        *counters = next;
        Ok(added)
    }

    /// Records (durably) a download's progress.
    pub fn save_download(&mut self, tree: &Cid, record: &DownloadRecord) -> Result<(), StoreError> {
        self.write_durably(|tables| {
            tables.downloads.insert(tree.to_bytes().as_slice(), encode(record).as_slice())?;
            Ok(())
        })
    }

    /// Records (durably) a new download of `tree` and its slot record in one transaction: a crash between two
    /// commits left a download without its slot record, which a restart resumed as something else.
    pub fn save_download_with_slot(
        &mut self,
        tree: &Cid,
        record: &DownloadRecord,
        slot: &SlotRecord,
    ) -> Result<(), StoreError> {
        self.write_durably(|tables| {
            tables.downloads.insert(tree.to_bytes().as_slice(), encode(record).as_slice())?;
            tables.slots.insert(tree.to_bytes().as_slice(), encode(slot).as_slice())?;
            Ok(())
        })
    }

    /// Records (durably) that the download of `tree` is a slot, and how far it is.
    pub fn save_slot(&mut self, tree: &Cid, record: &SlotRecord) -> Result<(), StoreError> {
        self.write_durably(|tables| {
            tables.slots.insert(tree.to_bytes().as_slice(), encode(record).as_slice())?;
            Ok(())
        })
    }

    /// One write transaction, committed durably, of what `write` puts in the tables.
    fn write_durably(
        &mut self,
        write: impl FnOnce(&mut Tables<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write()?;
        write(&mut Tables::open(&txn)?)?;
        txn.set_durability(Durability::Immediate)?;
        txn.commit()?;
        Ok(())
    }

    /// The slot record of the download of `tree`, if it is a slot.
    pub fn slot(&self, tree: &Cid) -> Result<Option<SlotRecord>, StoreError> {
        let tables = ReadTables::open(&self.db.begin_read()?)?;
        match tables.slots.get(tree.to_bytes().as_slice())? {
            Some(value) => Ok(Some(decode(value.value(), "slot record")?)),
            None => Ok(None),
        }
    }

    /// Forgets a download (and its slot record), durably (its segment files are the caller's to unlink
    /// afterwards).
    pub fn remove_download(&mut self, tree: &Cid) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write()?;
        let mut tables = Tables::open(&txn)?;
        tables.slots.remove(tree.to_bytes().as_slice())?;
        tables.downloads.remove(tree.to_bytes().as_slice())?;
        drop(tables);
        txn.set_durability(Durability::Immediate)?;
        txn.commit()?;
        Ok(())
    }

    /// Every download in progress, by tree CID.
    pub fn list_downloads(&self) -> Result<Vec<(Cid, DownloadRecord)>, StoreError> {
        let tables = ReadTables::open(&self.db.begin_read()?)?;
        let mut out = Vec::new();
        for entry in tables.downloads.iter()? {
            let (key, value) = entry?;
            let tree = cid_from_bytes(key.value())
                .map_err(|e| StoreError::Corrupt { what: "download key", reason: e.to_string() })?;
            out.push((tree, decode(value.value(), "download record")?));
        }
        Ok(out)
    }

    /// The manifest of dataset `cid`, if it is stored here.
    pub fn manifest(&self, cid: &Cid) -> Result<Option<Manifest>, StoreError> {
        let tables = ReadTables::open(&self.db.begin_read()?)?;
        if tables.datasets.get(cid.to_bytes().as_slice())?.is_none() {
            return Ok(None);
        }
        let Some(value) = tables.blocks.get(cid.to_bytes().as_slice())? else {
            return Err(StoreError::Corrupt { what: "dataset", reason: "manifest block missing".into() });
        };
        let record: BlockRecord = decode(value.value(), "block record")?;
        Manifest::decode(&record.data)
            .map(Some)
            .map_err(|err| StoreError::Corrupt { what: "manifest", reason: err.to_string() })
    }

    /// Every stored dataset with its manifest, in CID byte order.
    pub fn list_datasets(&self) -> Result<Vec<(Cid, Manifest)>, StoreError> {
        let tables = ReadTables::open(&self.db.begin_read()?)?;
        let mut out = Vec::new();
        for entry in tables.datasets.iter()? {
            let (key, _) = entry?;
            let cid = cid_from_bytes(key.value())
                .map_err(|e| StoreError::Corrupt { what: "dataset key", reason: e.to_string() })?;
            let Some(value) = tables.blocks.get(key.value())? else { continue };
            let record: BlockRecord = decode(value.value(), "block record")?;
            match Manifest::decode(&record.data) {
                Ok(manifest) => out.push((cid, manifest)),
                Err(err) => tracing::warn!(%err, "skipping an undecodable stored manifest"),
            }
        }
        Ok(out)
    }

    /// Where the blocks of tree `tree_cid` live, if it is stored.
    pub fn tree(&self, tree_cid: &Cid) -> Result<Option<TreeLocation>, StoreError> {
        let tables = ReadTables::open(&self.db.begin_read()?)?;
        let Some(value) = tables.trees.get(tree_cid.to_bytes().as_slice())? else { return Ok(None) };
        let record: TreeRecord = decode(value.value(), "tree record")?;
        Ok(Some(TreeLocation {
            data_path: self.data_path(record.segment),
            tree_path: self.tree_path(record.segment),
            record,
        }))
    }

    /// The files and leaf digests of stored dataset `cid`.
    pub fn dataset_files(&self, cid: &Cid) -> Result<Option<super::DatasetFiles>, StoreError> {
        let Some(manifest) = self.manifest(cid)? else { return Ok(None) };
        let Some(location) = self.tree(&manifest.tree_cid)? else {
            return Err(StoreError::Corrupt { what: "dataset", reason: "manifest without its tree".into() });
        };
        let leaves = TreeFile::open_read(&location.tree_path, location.record.leaves)?.read_leaves()?;
        Ok(Some(super::DatasetFiles {
            manifest,
            data_path: location.data_path,
            slots_path: self.slots_path(location.record.segment),
            leaves,
        }))
    }

    /// True when block `cid` is stored: standalone, or as a leaf of a stored tree.
    pub fn has_block(&self, cid: &Cid) -> Result<bool, StoreError> {
        Ok(self.locate_block(cid)?.is_some())
    }

    fn locate_block(&self, cid: &Cid) -> Result<Option<BlockLocation>, StoreError> {
        let key = cid.to_bytes();
        let tables = ReadTables::open(&self.db.begin_read()?)?;
        if let Some(value) = tables.blocks.get(key.as_slice())? {
            let record: BlockRecord = decode(value.value(), "block record")?;
            return Ok(Some(BlockLocation::Inline(record.data)));
        }
        let Some(value) = tables.leaf_index.get(key.as_slice())? else { return Ok(None) };
        let (tree_key, leaf) = value.value();
        let Some(tree) = tables.trees.get(tree_key)? else { return Ok(None) };
        let record: TreeRecord = decode(tree.value(), "tree record")?;
        Ok(Some(BlockLocation::Leaf { record, index: leaf }))
    }

    /// The bytes of block `cid`, if stored.
    pub fn block(&self, cid: &Cid) -> Result<Option<Vec<u8>>, StoreError> {
        match self.locate_block(cid)? {
            None => Ok(None),
            Some(BlockLocation::Inline(data)) => Ok(Some(data)),
            Some(BlockLocation::Leaf { record, index }) => self.read_leaf_data(&record, index).map(Some),
        }
    }

    fn read_leaf_data(&self, record: &TreeRecord, index: u64) -> Result<Vec<u8>, StoreError> {
        let file = File::open(self.data_path(record.segment)).map_err(StoreError::io("opening a segment"))?;
        let mut data = vec![0; record.block_size as usize];
        file.read_exact_at(&mut data, index * record.block_size).map_err(StoreError::io("reading a block"))?;
        Ok(data)
    }

    /// Leaf `index` of tree `tree_cid`: its block CID and inclusion proof, read from the stored tree.
    pub fn leaf(&self, tree_cid: &Cid, index: u64) -> Result<Option<(Cid, CodexProof)>, StoreError> {
        let Some(location) = self.tree(tree_cid)? else { return Ok(None) };
        let leaves = location.record.leaves;
        if index >= leaves {
            return Ok(None);
        }
        let file = TreeFile::open_read(&location.tree_path, leaves)?;
        let Some(leaf) = file.read_node(0, index)? else { return Ok(None) };
        Ok(Some((cid_from_sha256(BLOCK_CODEC, &leaf), file.proof(index)?)))
    }

    /// Leaves of stored tree `tree_cid` with their data and proofs; `None` for indexes out of range or an
    /// absent tree.
    pub fn read_leaves(&self, tree_cid: &Cid, indexes: &[u64]) -> Result<Vec<Option<StoredLeaf>>, StoreError> {
        let Some(location) = self.tree(tree_cid)? else { return Ok(vec![None; indexes.len()]) };
        let data = File::open(&location.data_path).map_err(StoreError::io("opening a segment"))?;
        let mut out = Vec::with_capacity(indexes.len());
        for &index in indexes {
            let Some((cid, proof)) = self.leaf(tree_cid, index)? else {
                out.push(None);
                continue;
            };
            if cid.hash().digest() == EMPTY_DIGEST.as_slice() {
                // Erasure padding: never stored, never served (its CID is that of the empty block).
                out.push(None);
                continue;
            }
            let mut bytes = vec![0; location.record.block_size as usize];
            data.read_exact_at(&mut bytes, index * location.record.block_size)
                .map_err(StoreError::io("reading a block"))?;
            out.push(Some((cid, bytes, proof)));
        }
        Ok(out)
    }

    /// Deletes dataset `cid` (manifest, and its tree when no other manifest uses it) or standalone block `cid`.
    /// Deleting something absent is not an error. Segment files are unlinked by the caller after the commit.
    pub fn delete(&mut self, cid: &Cid, counters: &mut Counters) -> Result<DeleteOutcome, StoreError> {
        let key = cid.to_bytes();
        let mut next = *counters;
        let mut outcome = DeleteOutcome::default();
        let txn = self.db.begin_write()?;
        {
            let mut t = Tables::open(&txn)?;
            let dataset_tree = t.datasets.remove(key.as_slice())?.map(|v| v.value().to_vec());
            if let Some(tree_key) = dataset_tree {
                self.release_tree(&mut t, &tree_key, &mut next, &mut outcome)?;
            } else if let Some(value) = t.blocks.get(key.as_slice())? {
                let record: BlockRecord = decode(value.value(), "block record")?;
                if record.refs > 0 {
                    return Err(StoreError::PartOfDataset { cid: *cid });
                }
            } else if let Some(value) = t.leaf_index.get(key.as_slice())?
                && t.trees.get(value.value().0)?.is_some()
            {
                return Err(StoreError::PartOfDataset { cid: *cid });
            }
            if let Some(value) = t.blocks.remove(key.as_slice())? {
                let record: BlockRecord = decode(value.value(), "block record")?;
                next.used = next.used.saturating_sub(record.data.len() as u64);
                next.total_blocks = next.total_blocks.saturating_sub(1);
                outcome.freed_bytes += record.data.len() as u64;
                outcome.removed_blocks += 1;
            }
            t.write_counters(&next)?;
        }
        txn.commit()?;
        *counters = next;
        Ok(outcome)
    }

    /// Drops one manifest reference from a tree; removes the tree and its leaf index when none is left.
    fn release_tree(
        &self,
        t: &mut Tables<'_>,
        tree_key: &[u8],
        next: &mut Counters,
        outcome: &mut DeleteOutcome,
    ) -> Result<(), StoreError> {
        let Some(value) = t.trees.get(tree_key)? else { return Ok(()) };
        let mut record: TreeRecord = decode(value.value(), "tree record")?;
        drop(value);
        record.refs = record.refs.saturating_sub(1);
        if record.refs > 0 {
            t.trees.insert(tree_key, encode(&record).as_slice())?;
            return Ok(());
        }
        t.trees.remove(tree_key)?;
        self.remove_leaf_index(t, tree_key, &record)?;
        let bytes = record.leaves * record.block_size;
        next.used = next.used.saturating_sub(bytes);
        next.total_blocks = next.total_blocks.saturating_sub(record.leaves);
        outcome.freed_bytes += bytes;
        outcome.removed_blocks += record.leaves;
        outcome.segments_to_unlink.push(record.segment);
        Ok(())
    }

    fn remove_leaf_index(&self, t: &mut Tables<'_>, tree_key: &[u8], record: &TreeRecord) -> Result<(), StoreError> {
        let leaves = TreeFile::open_read(&self.tree_path(record.segment), record.leaves)?.read_leaves()?;
        for digest in &leaves {
            let key = cid_from_sha256(BLOCK_CODEC, digest).to_bytes();
            let owned = t.leaf_index.get(key.as_slice())?.is_some_and(|v| v.value().0 == tree_key);
            if owned {
                t.leaf_index.remove(key.as_slice())?;
            }
        }
        Ok(())
    }

    /// Deletes what expired before `now`, visiting at most `limit` records starting after `cursor`.
    /// Returns the cursor to continue from (`None` when the scan wrapped around) and what was removed.
    pub fn sweep_expired(
        &mut self,
        now: u64,
        limit: usize,
        cursor: Option<Vec<u8>>,
        counters: &mut Counters,
    ) -> Result<(Option<Vec<u8>>, DeleteOutcome), StoreError> {
        let mut expired = Vec::new();
        let mut last = None;
        {
            let tables = ReadTables::open(&self.db.begin_read()?)?;
            let (datasets, blocks, trees) = (&tables.datasets, &tables.blocks, &tables.trees);
            let start = cursor.clone().unwrap_or_default();
            let mut visited = 0;
            for entry in blocks.range::<&[u8]>(start.as_slice()..)? {
                let (key, value) = entry?;
                if cursor.as_deref() == Some(key.value()) {
                    continue;
                }
                visited += 1;
                if visited > limit {
                    break;
                }
                last = Some(key.value().to_vec());
                let record: BlockRecord = decode(value.value(), "block record")?;
                let tree_expired = match datasets.get(key.value())? {
                    Some(tree_key) => match trees.get(tree_key.value())? {
                        Some(tree) => decode::<TreeRecord>(tree.value(), "tree record")?.expiry <= now,
                        None => true,
                    },
                    None => false,
                };
                if record.expiry <= now || tree_expired {
                    expired.push(
                        cid_from_bytes(key.value())
                            .map_err(|e| StoreError::Corrupt { what: "block key", reason: e.to_string() })?,
                    );
                }
            }
            if visited <= limit {
                last = None;
            }
        }
        let mut total = DeleteOutcome::default();
        for cid in expired {
            let outcome = self.delete(&cid, counters)?;
            total.freed_bytes += outcome.freed_bytes;
            total.removed_blocks += outcome.removed_blocks;
            total.segments_to_unlink.extend(outcome.segments_to_unlink);
        }
        Ok((last, total))
    }
}

enum BlockLocation {
    Inline(Vec<u8>),
    Leaf { record: TreeRecord, index: u64 },
}

/// Removes files on a background thread. Unlinking a large, recently written file makes the kernel drop its
/// cached pages (about half a second per GiB here), which must delay neither a delete's answer nor an HTTP or
/// store thread: the data is already invisible and its quota free. Missing files are fine; a crash before the
/// unlink leaves orphans that the next opening of the repository removes.
pub fn remove_in_background(paths: Vec<PathBuf>) {
    if paths.is_empty() {
        return;
    }
    let spawned = std::thread::Builder::new().name("segment-unlink".into()).spawn(move || {
        for path in paths {
            if let Err(err) = std::fs::remove_file(&path)
                && err.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), %err, "could not remove segment file");
            }
        }
    });
    if let Err(err) = spawned {
        tracing::warn!(%err, "could not start the unlink thread; the files are removed at the next start");
    }
}
