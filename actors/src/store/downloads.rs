//! Network downloads inside the StoreActor: begin (validate, claim, create the segment), resume at open,
//! store verified leaves, checkpoint, finish and commit, abort.
//!
//! Quota: a download claims its whole dataset (leaves × block size) when it begins, as a [`QuotaClaim`] held
//! by its [`Partial`]; the claim shows as reserved in the space summary, is settled into `used` by the commit,
//! and is released as soon as the download is dropped for good (deleted, aborted because its leaves do not
//! lead to the root, or its commit failed). A failed download (no peer, timeout) keeps its claim: it resumes on
//! the next request. Downloads found at open claim again, even beyond the quota, since their data is on disk.
//!
//! Saved downloads whose manifest does not decode, does not [`Manifest::validate`] or does not name the tree
//! of its record are dropped at open with a warning (record removed, files unlinked, nothing claimed) instead
//! of failing the open at every start.

use super::StoreError;
use super::actor::{Commit, StoreActor};
use super::messages::{
    BeginDecodeDownload, BeginDownload, BeginSlotDownload, DecodeDownload, DownloadState, FinishDecode, FinishRepair,
    LeafBlock, OpenedDownload, ReadLeaves, SlotDownload, StoreLeaves, StoredDataset, StoredLeaves,
};
use super::partial::{Partial, Resumed};
use super::progress::LeafOutcome;
use super::quota::QuotaGate;
use super::repo::{DownloadRecord, LeafMode, Repo, SlotRecord};
use bytes::Bytes;
use codex_protocol::cid::format_cid;
use codex_protocol::erasure::ErasureLayout;
use codex_protocol::{Cid, CodexTree, Digest, Manifest};
use std::collections::HashMap;
use std::fs::File;

impl StoreActor {
    /// Resumes every saved download; drops (with a warning) those whose manifest is invalid.
    pub(super) fn resume_downloads(repo: &mut Repo, quota: &QuotaGate) -> Result<HashMap<Cid, Partial>, StoreError> {
        let mut partials = HashMap::new();
        for (tree, record) in repo.list_downloads()? {
            let manifest_cid = Manifest::cid_of(&record.manifest);
            let manifest = match saved_manifest(&tree, &record) {
                Ok(manifest) => manifest,
                Err(reason) => {
                    tracing::warn!(cid = %format_cid(&manifest_cid), %reason, "dropping a saved download with an invalid manifest");
                    repo.remove_download(&tree)?;
                    repo.unlink_segments(&[record.segment]);
                    continue;
                }
            };
            let slot = repo.slot(&tree)?;
            let leaves = match &slot {
                Some(slot) if slot.mode == LeafMode::Slot => slot.wanted_end - slot.wanted_start,
                _ => manifest.blocks_count(),
            };
            let claim = quota.claim_forced(leaves * manifest.block_size);
            let paths = repo.segment_paths(record.segment);
            let layout = ErasureLayout::from_manifest(&manifest);
            let (mut partial, resumed) = Partial::resume(manifest_cid, manifest, &record, paths, claim)?;
            if let Some(slot) = slot {
                partial.set_mode(slot, layout);
            }
            if partial.slot.as_ref().is_some_and(|slot| slot.hosted) {
                partial.progress.complete();
            }
            if let Resumed::Restarted { reason } = resumed {
                tracing::warn!(cid = %format_cid(&manifest_cid), reason, "download restarts from zero");
                repo.save_download(&tree, &partial.record())?;
            }
            tracing::info!(
                cid = %format_cid(&manifest_cid),
                received = partial.progress.received(),
                leaves = partial.progress.leaves(),
                "download in progress found"
            );
            partials.insert(tree, partial);
        }
        Ok(partials)
    }

    pub(super) fn begin_download(&mut self, msg: BeginDownload) -> Result<DownloadState, StoreError> {
        let cid = msg.manifest_cid;
        if self.repo()?.manifest(&cid)?.is_some() {
            return Ok(DownloadState::Stored);
        }
        check_manifest(cid, &msg.manifest)?;
        self.check_tree_size(&msg.manifest)?;
        let tree = msg.manifest.tree_cid;
        if let Some(partial) = self.partials.get(&tree) {
            if partial.slot.is_some() {
                return Err(StoreError::SlotConflict { tree });
            }
            partial.progress.restart();
            return Ok(DownloadState::Partial(partial.progress.clone()));
        }
        if self.repo()?.tree(&tree)?.is_some() {
            // The same data is stored under another manifest (same size, checked above): only this manifest
            // is new.
            let segment = self.repo()?.allocate_segment();
            let claim = self.quota.adopt(0);
            self.commit(Commit { segment, leaves: &[], manifest: &msg.manifest, claim, download: None })?;
            return Ok(DownloadState::Stored);
        }
        let claim = self.quota.claim_guarded(msg.manifest.blocks_count() * msg.manifest.block_size)?;
        let repo = self.repo()?;
        let segment = repo.allocate_segment();
        let paths = repo.segment_paths(segment);
        let created = Partial::create(cid, msg.manifest, segment, paths, claim)
            .and_then(|partial| repo.save_download(&tree, &partial.record()).map(|_| partial));
        match created {
            Ok(partial) => {
                let progress = partial.progress.clone();
                tracing::info!(cid = %format_cid(&cid), leaves = progress.leaves(), "download started");
                self.partials.insert(tree, partial);
                Ok(DownloadState::Partial(progress))
            }
            Err(err) => {
                // The claim went with the failed Partial.
                repo.unlink_segments(&[segment]);
                Err(err)
            }
        }
    }

    pub(super) fn store_leaves(&mut self, msg: StoreLeaves) -> Result<StoredLeaves, StoreError> {
        let Some(partial) = self.partials.get_mut(&msg.tree) else {
            // Not downloading (any more): the data is stored, or was never asked for. Nothing is written.
            let outcomes = vec![LeafOutcome::Duplicate; msg.deliveries.len()];
            return Ok(StoredLeaves { outcomes, completed: None, unneeded: Vec::new() });
        };
        let outcomes = msg.deliveries.iter().map(|d| partial.store(d)).collect::<Result<Vec<_>, _>>()?;
        partial.announce();
        if partial.decode_layout().is_some() {
            // Decoding: never completes here; the fetch flow decodes once every group holds K members.
            let unneeded = partial.take_unneeded();
            if partial.is_complete() || partial.checkpoint_due() {
                let record = partial.checkpoint()?;
                self.repo()?.save_download(&msg.tree, &record)?;
            }
            return Ok(StoredLeaves { outcomes, completed: None, unneeded });
        }
        if partial.slot.is_some() {
            let complete = partial.is_complete();
            // The caller checks a complete slot's root (Poseidon2, off this thread), then commits or drops it.
            let progress = complete.then(|| partial.progress.clone());
            if complete || partial.checkpoint_due() {
                let record = partial.checkpoint()?;
                self.repo()?.save_download(&msg.tree, &record)?;
            }
            if let Some(progress) = progress {
                progress.complete();
            }
            return Ok(StoredLeaves { outcomes, completed: None, unneeded: Vec::new() });
        }
        if partial.is_complete() {
            let completed = self.complete_download(&msg.tree)?;
            return Ok(StoredLeaves { outcomes, completed: Some(completed), unneeded: Vec::new() });
        }
        if partial.checkpoint_due() {
            let record = partial.checkpoint()?;
            self.repo()?.save_download(&msg.tree, &record)?;
        }
        Ok(StoredLeaves { outcomes, completed: None, unneeded: Vec::new() })
    }

    fn complete_download(&mut self, tree: &Cid) -> Result<StoredDataset, StoreError> {
        let Some(mut partial) = self.partials.remove(tree) else {
            return Err(StoreError::Corrupt { what: "download", reason: "completed a download not running".into() });
        };
        let leaves = match partial.finish() {
            Ok(leaves) => leaves,
            Err(err) => {
                self.abort_download(partial, &err.to_string())?;
                return Err(err);
            }
        };
        let progress = partial.progress.clone();
        let Partial { claim, manifest, segment, .. } = partial;
        let commit = Commit { segment, leaves: &leaves, manifest: &manifest, claim, download: Some(tree) };
        match self.commit(commit) {
            Ok(stored) => {
                progress.complete();
                Ok(stored)
            }
            Err(err) => {
                progress.fail(err.to_string());
                let _ = self.repo()?.remove_download(tree);
                Err(err)
            }
        }
    }

    /// Drops a download for good: its record, its files and its quota claim.
    pub(super) fn abort_download(&mut self, partial: Partial, reason: &str) -> Result<(), StoreError> {
        partial.progress.fail(reason.to_string());
        let (tree, segment) = (partial.tree, partial.segment);
        drop(partial);
        let repo = self.repo()?;
        repo.remove_download(&tree)?;
        repo.unlink_segments(&[segment]);
        Ok(())
    }

    pub(super) fn read_leaves(&mut self, msg: ReadLeaves) -> Result<Vec<LeafBlock>, StoreError> {
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

    pub(super) fn has_leaves(&mut self, tree: &Cid, indexes: &[u64]) -> Result<Vec<bool>, StoreError> {
        if let Some(partial) = self.partials.get(tree) {
            return Ok(indexes.iter().map(|i| partial.progress.has(*i)).collect());
        }
        let leaves = self.repo()?.tree(tree)?.map_or(0, |location| location.record.leaves);
        Ok(indexes.iter().map(|i| *i < leaves).collect())
    }

    /// Downloads to resume: whole datasets and decoding ones (a slot download resumes when its slot is asked for
    /// again).
    pub(super) fn list_downloads(&self) -> Vec<(Cid, Manifest)> {
        self.partials
            .values()
            .filter(|p| p.slot.as_ref().is_none_or(|slot| slot.mode == LeafMode::Decode))
            .map(|p| (p.manifest_cid, p.manifest.clone()))
            .collect()
    }

    /// Starts (or finds) the decoding download of protected dataset `manifest_cid`: it fetches any K members of
    /// each erasure group of the encoded tree and claims quota for the encoded dataset (transient: the commit
    /// keeps the original's blocks only).
    pub(super) fn begin_decode_download(&mut self, msg: BeginDecodeDownload) -> Result<DecodeDownload, StoreError> {
        let cid = msg.manifest_cid;
        check_manifest(cid, &msg.manifest)?;
        let layout = ErasureLayout::from_manifest(&msg.manifest).ok_or_else(|| StoreError::Corrupt {
            what: "manifest",
            reason: "not a protected manifest with valid erasure parameters".into(),
        })?;
        let tree = msg.manifest.tree_cid;
        if self.repo()?.tree(&tree)?.is_some() {
            return Err(StoreError::SlotConflict { tree });
        }
        if let Some(partial) = self.partials.get_mut(&tree) {
            if partial.decode_layout().is_none() {
                return Err(StoreError::SlotConflict { tree });
            }
            let failed = matches!(partial.progress.status(), super::DownloadStatus::Failed(_));
            partial.progress.restart();
            let drive = failed || !partial.driven;
            partial.driven = true;
            let (progress, segment) = (partial.progress.clone(), partial.segment);
            let data_path = self.repo()?.data_path(segment);
            return Ok(DecodeDownload { progress, data_path, layout, drive });
        }
        let claim = self.quota.claim_guarded(msg.manifest.blocks_count() * msg.manifest.block_size)?;
        let slot = SlotRecord {
            mode: LeafMode::Decode,
            index: 0,
            wanted_start: 0,
            wanted_end: msg.manifest.blocks_count(),
            hosted: false,
        };
        let (progress, segment) = self.create_part_download(cid, msg.manifest, slot, Some(layout), claim)?;
        tracing::info!(cid = %format_cid(&cid), groups = layout.groups(), k = layout.params().k(), "decoding download started");
        let data_path = self.repo()?.data_path(segment);
        Ok(DecodeDownload { progress, data_path, layout, drive: true })
    }

    /// Creates a download of part of `manifest`'s leaves (`slot` says which), its files and its records, and
    /// registers it; on failure nothing is left (the claim goes with the failed download).
    fn create_part_download(
        &mut self,
        cid: Cid,
        manifest: Manifest,
        slot: SlotRecord,
        layout: Option<ErasureLayout>,
        claim: super::QuotaClaim,
    ) -> Result<(std::sync::Arc<super::Progress>, u64), StoreError> {
        let tree = manifest.tree_cid;
        let repo = self.repo()?;
        let segment = repo.allocate_segment();
        let paths = repo.segment_paths(segment);
        let created = Partial::create(cid, manifest, segment, paths, claim).and_then(|mut partial| {
            partial.set_mode(slot.clone(), layout);
            partial.driven = slot.mode == LeafMode::Decode;
            repo.save_download_with_slot(&tree, &partial.record(), &slot)?;
            Ok(partial)
        });
        match created {
            Ok(partial) => {
                let progress = partial.progress.clone();
                if partial.is_complete() && slot.mode == LeafMode::Slot {
                    progress.complete();
                }
                self.partials.insert(tree, partial);
                Ok((progress, segment))
            }
            Err(err) => {
                let _ = repo.remove_download(&tree);
                repo.unlink_segments(&[segment]);
                Err(err)
            }
        }
    }

    /// Ends a decoding download whose missing data blocks were decoded into its segment: checks the data leaves
    /// against the original tree, then stores the original dataset (the protected manifest's unprotected view)
    /// from the same data file and drops the download. A mismatch drops the download and its files.
    pub(super) fn finish_decode(&mut self, msg: FinishDecode) -> Result<StoredDataset, StoreError> {
        let Some(partial) = self.partials.get_mut(&msg.tree) else {
            return Err(StoreError::Corrupt {
                what: "download",
                reason: "finishing a decode that is not running".into(),
            });
        };
        let indexes: Vec<u64> = msg.recovered.iter().map(|(index, _)| *index).collect();
        partial.set_decoded(&indexes);
        let result = original_tree(partial, &msg.recovered);
        let (tree, view) = match result {
            Ok(found) => found,
            Err(err) => {
                if let Some(partial) = self.partials.remove(&msg.tree) {
                    self.abort_download(partial, &err.to_string())?;
                }
                return Err(err);
            }
        };
        let Some(partial) = self.partials.remove(&msg.tree) else {
            return Err(StoreError::Corrupt {
                what: "download",
                reason: "finishing a decode that is not running".into(),
            });
        };
        let progress = partial.progress.clone();
        let repo = self.repo()?;
        let segment = repo.allocate_segment();
        let (data, tree_path) = (repo.data_path(segment), repo.tree_path(segment));
        let old_data = partial.paths().data.clone();
        let old_segment = partial.segment;
        let stored = (|| -> Result<(), StoreError> {
            std::fs::hard_link(&old_data, &data).map_err(StoreError::io("linking decoded data"))?;
            crate::upload::write_tree_file(&tree_path, &tree)?;
            let file =
                std::fs::OpenOptions::new().write(true).open(&data).map_err(StoreError::io("opening decoded data"))?;
            file.set_len(view.blocks_count() * view.block_size).map_err(StoreError::io("sizing decoded data"))?;
            file.sync_all().map_err(StoreError::io("syncing decoded data"))?;
            if let Some(dir) = data.parent() {
                super::treefile::sync_dir(dir)?;
            }
            Ok(())
        })();
        let Partial { claim, .. } = partial;
        if let Err(err) = stored {
            progress.fail(err.to_string());
            let repo = self.repo()?;
            repo.remove_download(&msg.tree)?;
            repo.unlink_segments(&[old_segment, segment]);
            return Err(err);
        }
        // The commit ends the download record in the same transaction that makes the original visible.
        let leaves = tree.into_leaves();
        let commit = Commit { segment, leaves: &leaves, manifest: &view, claim, download: Some(&msg.tree) };
        let result = self.commit(commit);
        let repo = self.repo()?;
        repo.unlink_segments(&[old_segment]);
        match result {
            Ok(stored) => {
                progress.complete();
                Ok(stored)
            }
            Err(err) => {
                progress.fail(err.to_string());
                let _ = repo.remove_download(&msg.tree);
                Err(err)
            }
        }
    }

    pub(super) fn begin_slot_download(&mut self, msg: BeginSlotDownload) -> Result<SlotDownload, StoreError> {
        let cid = msg.manifest_cid;
        check_manifest(cid, &msg.manifest)?;
        let tree = msg.manifest.tree_cid;
        let wanted = msg.wanted.clone();
        if wanted.end > msg.manifest.blocks_count() || wanted.start > wanted.end {
            return Err(StoreError::Corrupt { what: "slot", reason: format!("leaves {wanted:?} outside the dataset") });
        }
        if self.repo()?.tree(&tree)?.is_some() {
            // The whole encoded dataset is stored here: nothing to fetch, but no slot of it to host either.
            return Err(StoreError::SlotConflict { tree });
        }
        let repo_paths = |repo: &Repo, segment| (repo.data_path(segment), repo.slots_path(segment));
        if let Some(partial) = self.partials.get_mut(&tree) {
            let same = partial.slot.as_ref().is_some_and(|s| s.index == msg.index && s.wanted_start == wanted.start);
            if !same {
                return Err(StoreError::SlotConflict { tree });
            }
            let hosted = partial.slot.as_ref().is_some_and(|s| s.hosted);
            if !hosted && !partial.is_complete() {
                partial.progress.restart();
            }
            let (progress, segment) = (partial.progress.clone(), partial.segment);
            let (data_path, slots_path) = repo_paths(self.repo()?, segment);
            return Ok(SlotDownload { progress, hosted, data_path, slots_path });
        }
        let claim = self.quota.claim_guarded((wanted.end - wanted.start) * msg.manifest.block_size)?;
        let slot = SlotRecord {
            mode: LeafMode::Slot,
            index: msg.index,
            wanted_start: wanted.start,
            wanted_end: wanted.end,
            hosted: false,
        };
        let leaves = wanted.end - wanted.start;
        let (progress, segment) = self.create_part_download(cid, msg.manifest, slot, None, claim)?;
        tracing::info!(cid = %format_cid(&cid), slot = msg.index, leaves, "slot download started");
        let (data_path, slots_path) = repo_paths(self.repo()?, segment);
        Ok(SlotDownload { progress, hosted: false, data_path, slots_path })
    }

    pub(super) fn finish_repair(&mut self, msg: FinishRepair) -> Result<SlotDownload, StoreError> {
        let Some(partial) = self.partials.get_mut(&msg.tree) else {
            return Err(StoreError::Corrupt {
                what: "repair",
                reason: "repairing a download that is not running".into(),
            });
        };
        let slot = SlotRecord {
            mode: LeafMode::Slot,
            index: msg.index,
            wanted_start: msg.wanted.start,
            wanted_end: msg.wanted.end,
            hosted: false,
        };
        if let Err(err) = partial.become_repaired_slot(&msg.recovered, slot.clone()) {
            if let Some(partial) = self.partials.remove(&msg.tree) {
                self.abort_download(partial, &err.to_string())?;
            }
            return Err(err);
        }
        let (record, progress, segment) = (partial.record(), partial.progress.clone(), partial.segment);
        let repo = self.repo()?;
        repo.save_download(&msg.tree, &record)?;
        repo.save_slot(&msg.tree, &slot)?;
        tracing::info!(tree = %format_cid(&msg.tree), slot = msg.index, "slot blocks repaired");
        Ok(SlotDownload {
            progress,
            hosted: false,
            data_path: repo.data_path(segment),
            slots_path: repo.slots_path(segment),
        })
    }

    /// Marks a complete slot download hosted, durably.
    pub(super) fn commit_slot(&mut self, tree: &Cid) -> Result<(), StoreError> {
        let Some(partial) = self.partials.get_mut(tree) else {
            return Err(StoreError::Corrupt {
                what: "slot",
                reason: "committing a slot that is not downloading".into(),
            });
        };
        let complete = partial.is_complete();
        let Some(slot) = partial.slot.as_mut().filter(|_| complete) else {
            return Err(StoreError::Corrupt { what: "slot", reason: "committing an incomplete slot".into() });
        };
        slot.hosted = true;
        let slot = slot.clone();
        self.repo()?.save_slot(tree, &slot)
    }

    pub(super) fn open_download(&mut self, cid: &Cid) -> Result<Option<OpenedDownload>, StoreError> {
        let Some(partial) = self.partials.values().find(|p| p.manifest_cid == *cid) else { return Ok(None) };
        let file = File::open(&partial.paths().data).map_err(StoreError::io("opening a download"))?;
        Ok(Some(OpenedDownload { manifest: partial.manifest.clone(), file, progress: partial.progress.clone() }))
    }

    /// Marks a download failed (it keeps its data and claim, and resumes on the next request).
    pub(super) fn fail_download(&mut self, tree: &Cid, reason: String) {
        if let Some(partial) = self.partials.get(tree) {
            partial.progress.fail(reason);
        }
        self.checkpoint_all();
    }

    pub(super) fn checkpoint_all(&mut self) {
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
}

/// A manifest about to be downloaded must be valid and be the one its CID names.
fn check_manifest(cid: Cid, manifest: &Manifest) -> Result<(), StoreError> {
    manifest.validate().map_err(|source| StoreError::InvalidManifest { cid, source: Box::new(source) })?;
    if Manifest::cid_of(&manifest.encode()) != cid {
        return Err(StoreError::CidMismatch { cid });
    }
    Ok(())
}

/// The original tree of a decoded download (its leaves: held ones from the tree file, decoded ones as given),
/// checked against `originalTreeCid`, and the unprotected view of its manifest.
fn original_tree(partial: &Partial, recovered: &[(u64, Digest)]) -> Result<(CodexTree, Manifest), StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt { what: "decode", reason };
    let view = partial.manifest.unprotected_view().ok_or_else(|| corrupt("not a protected manifest".into()))?;
    let decoded: HashMap<u64, Digest> = recovered.iter().copied().collect();
    let mut leaves = Vec::with_capacity(view.blocks_count() as usize);
    for index in 0..view.blocks_count() {
        let digest = match decoded.get(&index) {
            Some(digest) => Some(*digest),
            None => partial.leaf_digest(index)?,
        };
        leaves.push(digest.ok_or_else(|| corrupt(format!("data block {index} is neither held nor decoded")))?);
    }
    let tree = CodexTree::new(leaves)?;
    if tree.root_cid() != view.tree_cid {
        return Err(corrupt("the decoded data does not match the original tree".into()));
    }
    Ok((tree, view))
}

/// The manifest of a saved download, if it is still acceptable.
fn saved_manifest(tree: &Cid, record: &DownloadRecord) -> Result<Manifest, String> {
    let manifest = Manifest::decode(&record.manifest).map_err(|e| e.to_string())?;
    manifest.validate().map_err(|e| e.to_string())?;
    if manifest.tree_cid != *tree {
        return Err("the manifest names another tree than its record".into());
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreConfig;
    use codex_protocol::DEFAULT_BLOCK_SIZE;
    use codex_protocol::cid::{ROOT_CODEC, cid_from_sha256};
    use std::time::{Duration, Instant};

    fn config(dir: &std::path::Path) -> StoreConfig {
        StoreConfig { repo_dir: dir.join("repo"), quota_max: 1 << 50, block_ttl: None, sweep_batch: 100 }
    }

    /// A download saved by an older node with a manifest that `validate` refuses: 1-byte blocks over 1 TiB
    /// would have been a 64 TiB allocation of tree nodes at every start.
    #[test]
    fn a_saved_download_with_an_invalid_manifest_is_dropped_at_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tree = cid_from_sha256(ROOT_CODEC, &[9; 32]);
        let bad = Manifest::new_unprotected(tree, 1, 1 << 40, None, None);
        let good_tree = cid_from_sha256(ROOT_CODEC, &[8; 32]);
        let good = Manifest::new_unprotected(good_tree, DEFAULT_BLOCK_SIZE as u64, 3, None, None);
        {
            let (mut repo, _) = Repo::open(&config(dir.path()).repo_dir).expect("repo");
            let record = DownloadRecord { segment: 0, manifest: bad.encode(), have: vec![u64::MAX; 4] };
            repo.save_download(&tree, &record).expect("save");
            std::fs::write(repo.data_path(0), b"partial").expect("data file");
            let good_record = DownloadRecord { segment: 1, manifest: good.encode(), have: Vec::new() };
            repo.save_download(&good_tree, &good_record).expect("save");
        }
        let store = StoreActor::open(config(dir.path())).expect("opens instead of crashing");
        assert_eq!(store.partials.len(), 1, "only the valid download is resumed");
        assert!(store.partials.contains_key(&good_tree));
        assert_eq!(store.quota.space().quota_reserved_bytes, DEFAULT_BLOCK_SIZE as u64, "only the valid one claims");
        let saved = store.repo.as_ref().expect("open").list_downloads().expect("list");
        assert_eq!(saved.iter().map(|(tree, _)| *tree).collect::<Vec<_>>(), vec![good_tree], "record removed");
        let data = dir.path().join("repo/segments/0.blk");
        let deadline = Instant::now() + Duration::from_secs(10);
        while data.exists() {
            assert!(Instant::now() < deadline, "the invalid download's segment is unlinked");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
