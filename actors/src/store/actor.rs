//! The StoreActor: opening the repository, committing datasets, standalone blocks and manifests, deletes,
//! expiry. Network downloads are in `downloads.rs`, the message handlers in `handlers.rs`.

use super::StoreError;
use super::messages::{CommitUpload, OpenedDataset, PutBlock, PutManifest, StoredDataset};
use super::partial::Partial;
use super::quota::{QuotaClaim, QuotaGate};
use super::repo::{DeleteOutcome, Repo};
use super::{StoreConfig, unix_now};
use actix::prelude::*;
use codex_protocol::cid::{cid_from_sha256, format_cid, sha256};
use codex_protocol::{Cid, Digest, Manifest};
use std::collections::HashMap;
use std::fs::File;
use std::sync::Mutex;

/// The store actor.
pub struct StoreActor {
    /// `None` once closed.
    pub(super) repo: Option<Repo>,
    pub(super) config: StoreConfig,
    pub(super) quota: QuotaGate,
    pub(super) sweep_cursor: Option<Vec<u8>>,
    /// Downloads in progress by tree CID.
    pub(super) partials: HashMap<Cid, Partial>,
}

/// The arguments of a commit; `download` names the download record the commit ends. `claim` covers the
/// dataset's blocks (empty when the tree is already stored); the manifest's bytes are claimed here.
pub(super) struct Commit<'a> {
    pub segment: u64,
    pub leaves: &'a [Digest],
    pub manifest: &'a Manifest,
    pub claim: QuotaClaim,
    pub download: Option<&'a Cid>,
}

impl StoreActor {
    /// Opens the repository (removing the leftovers of interrupted uploads) and resumes saved downloads,
    /// dropping those whose manifest is invalid.
    pub fn open(config: StoreConfig) -> Result<Self, StoreError> {
        let (mut repo, counters) = Repo::open(&config.repo_dir)?;
        if counters.used + counters.reserved > config.quota_max {
            tracing::warn!(
                used = counters.used,
                quota = config.quota_max,
                "the repository holds more than the storage quota; new data is refused until space is freed"
            );
        }
        let quota = QuotaGate::new(config.quota_max, counters);
        let partials = Self::resume_downloads(&mut repo, &quota)?;
        Ok(Self { repo: Some(repo), config, quota, sweep_cursor: None, partials })
    }

    /// The quota shared with uploads; answers space queries without going through the mailbox.
    pub fn quota(&self) -> QuotaGate {
        self.quota.clone()
    }

    /// Starts the actor on its own thread.
    #[allow(clippy::expect_used, reason = "the arbiter has one thread and never restarts it, so the factory runs once")]
    pub fn start(self) -> Addr<Self> {
        let cell = Mutex::new(Some(self));
        SyncArbiter::start(1, move || {
            cell.lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take()
                .expect("invariant: the store arbiter has one thread and never restarts it")
        })
    }

    pub(super) fn repo(&mut self) -> Result<&mut Repo, StoreError> {
        self.repo.as_mut().ok_or(StoreError::Unavailable)
    }

    fn expiry(&self) -> u64 {
        match self.config.block_ttl {
            Some(ttl) => unix_now().saturating_add(ttl.as_secs()),
            None => u64::MAX,
        }
    }

    pub(super) fn commit_upload(&mut self, msg: CommitUpload) -> Result<StoredDataset, StoreError> {
        // The upload claimed its blocks through the gate; from here the claim follows this commit.
        let claim = self.quota.adopt(msg.claimed);
        self.commit(Commit {
            segment: msg.segment,
            leaves: &msg.leaves,
            manifest: &msg.manifest,
            claim,
            download: None,
        })
    }

    /// Makes a dataset visible. Whatever happens, the commit owns the segment's files (removed unless they
    /// became the tree's) and the claim (settled into `used`, or released).
    pub(super) fn commit(&mut self, msg: Commit<'_>) -> Result<StoredDataset, StoreError> {
        let mut claim = msg.claim;
        let manifest_len = msg.manifest.encode().len() as u64;
        // The manifest is the only byte not claimed before. A finished download's data is already on disk and
        // claimed: a few hundred bytes of manifest must not throw it away when the quota is nearly full.
        let extra = if msg.download.is_some() {
            Ok(self.quota.claim_forced(manifest_len))
        } else {
            self.quota.claim_guarded(manifest_len)
        };
        match extra {
            Ok(extra) => claim.absorb(extra),
            Err(err) => {
                self.repo()?.unlink_segments(&[msg.segment]);
                return Err(err);
            }
        }
        let mut counters = self.quota.counters();
        let expiry = self.expiry();
        let started = std::time::Instant::now();
        let repo = self.repo()?;
        let result = repo.commit_dataset(msg.segment, msg.leaves, msg.manifest, expiry, &mut counters, msg.download);
        tracing::debug!(leaves = msg.leaves.len(), elapsed_ms = started.elapsed().as_millis() as u64, "commit");
        match result {
            Ok(outcome) => {
                claim.settle(counters);
                if !outcome.new_tree {
                    repo.unlink_segments(&[msg.segment]);
                }
                let cid = Manifest::cid_of(&msg.manifest.encode());
                tracing::info!(cid = %format_cid(&cid), bytes = msg.manifest.dataset_size, new = outcome.new_manifest, "dataset stored");
                Ok(StoredDataset { cid, manifest: msg.manifest.clone() })
            }
            Err(err) => {
                repo.unlink_segments(&[msg.segment]);
                Err(err)
            }
        }
    }

    pub(super) fn put_block(&mut self, msg: PutBlock) -> Result<(), StoreError> {
        let expected = cid_from_sha256(msg.cid.codec(), &sha256(&msg.data));
        if expected != msg.cid {
            return Err(StoreError::CidMismatch { cid: msg.cid });
        }
        if self.repo()?.has_block(&msg.cid)? {
            return Ok(());
        }
        let claim = self.quota.claim_guarded(msg.data.len() as u64)?;
        let mut counters = self.quota.counters();
        let expiry = self.expiry();
        self.repo()?.put_block(&msg.cid, &msg.data, expiry, &mut counters)?;
        claim.settle(counters);
        Ok(())
    }

    /// Checks a manifest from the network (CID, decoding, [`Manifest::validate`], the size of its tree when
    /// that tree is stored or downloading) before storing it.
    pub(super) fn put_manifest(&mut self, msg: PutManifest) -> Result<Manifest, StoreError> {
        let cid = msg.cid;
        // Decoded and checked before anything is stored; `put_block` checks the bytes against the CID.
        let manifest = Manifest::decode(&msg.data)
            .map_err(|source| StoreError::InvalidManifest { cid, source: Box::new(source) })?;
        manifest.validate().map_err(|source| StoreError::InvalidManifest { cid, source: Box::new(source) })?;
        self.check_tree_size(&manifest)?;
        self.put_block(PutBlock { cid, data: msg.data })?;
        Ok(manifest)
    }

    /// A manifest naming a tree that is stored (or downloading) must describe that tree's size.
    pub(super) fn check_tree_size(&mut self, manifest: &Manifest) -> Result<(), StoreError> {
        let tree = manifest.tree_cid;
        let stored = match self.partials.get(&tree) {
            Some(partial) => Some((partial.progress.leaves(), partial.manifest.block_size)),
            None => self.repo()?.tree(&tree)?.map(|location| (location.record.leaves, location.record.block_size)),
        };
        let Some((leaves, block_size)) = stored else { return Ok(()) };
        if leaves != manifest.blocks_count() || block_size != manifest.block_size {
            return Err(StoreError::TreeSizeMismatch {
                tree,
                manifest_bytes: manifest.blocks_count().saturating_mul(manifest.block_size),
                stored_bytes: leaves.saturating_mul(block_size),
            });
        }
        Ok(())
    }

    pub(super) fn list_datasets(&mut self) -> Result<Vec<StoredDataset>, StoreError> {
        let datasets = self.repo()?.list_datasets()?;
        Ok(datasets.into_iter().map(|(cid, manifest)| StoredDataset { cid, manifest }).collect())
    }

    pub(super) fn delete(&mut self, cid: &Cid) -> Result<DeleteOutcome, StoreError> {
        if let Some(tree) = self.partials.iter().find(|(_, p)| p.manifest_cid == *cid).map(|(tree, _)| *tree)
            && let Some(partial) = self.partials.remove(&tree)
        {
            self.abort_download(partial, "the dataset was deleted")?;
        }
        let mut counters = self.quota.counters();
        let started = std::time::Instant::now();
        let repo = self.repo()?;
        let outcome = repo.delete(cid, &mut counters)?;
        repo.unlink_segments(&outcome.segments_to_unlink);
        tracing::debug!(blocks = outcome.removed_blocks, elapsed_ms = started.elapsed().as_millis() as u64, "delete");
        self.quota.set_counters(counters);
        Ok(outcome)
    }

    /// Opens dataset `cid`; a protected manifest stored as a block (fetched from the network) opens the
    /// original dataset it was decoded to, if that is stored: its bytes are the protected dataset's content.
    pub(super) fn open_dataset(&mut self, cid: &Cid) -> Result<Option<OpenedDataset>, StoreError> {
        match self.open_dataset_stored(cid)? {
            Some(opened) => Ok(Some(opened)),
            None => self.open_decoded(cid),
        }
    }

    fn open_decoded(&mut self, cid: &Cid) -> Result<Option<OpenedDataset>, StoreError> {
        let Some(bytes) = self.repo()?.block(cid)? else { return Ok(None) };
        let Ok(protected) = Manifest::decode(&bytes) else { return Ok(None) };
        let Some(view) = protected.unprotected_view() else { return Ok(None) };
        let Some(opened) = self.open_dataset_stored(&Manifest::cid_of(&view.encode()))? else { return Ok(None) };
        Ok(Some(OpenedDataset { manifest: protected, file: opened.file }))
    }

    fn open_dataset_stored(&mut self, cid: &Cid) -> Result<Option<OpenedDataset>, StoreError> {
        let Some(manifest) = self.repo()?.manifest(cid)? else { return Ok(None) };
        let Some(location) = self.repo()?.tree(&manifest.tree_cid)? else {
            return Err(StoreError::Corrupt { what: "dataset", reason: "manifest without its tree".into() });
        };
        let file = File::open(&location.data_path).map_err(StoreError::io("opening a dataset"))?;
        Ok(Some(OpenedDataset { manifest, file }))
    }

    pub(super) fn sweep(&mut self, now: u64) -> Result<DeleteOutcome, StoreError> {
        let mut counters = self.quota.counters();
        let cursor = self.sweep_cursor.take();
        let batch = self.config.sweep_batch;
        let result = self.repo()?.sweep_expired(now, batch, cursor, &mut counters);
        self.quota.set_counters(counters);
        let (cursor, mut outcome) = result?;
        self.sweep_cursor = cursor;
        self.repo()?.unlink_segments(&outcome.segments_to_unlink);
        // A hosted slot expires with its manifest block: the sweep just removed that, so drop the slot too.
        let expired: Vec<Cid> = self
            .partials
            .iter()
            .filter(|(_, partial)| partial.slot.as_ref().is_some_and(|slot| slot.hosted))
            .map(|(tree, partial)| (*tree, partial.manifest_cid))
            .collect::<Vec<_>>()
            .into_iter()
            .filter_map(|(tree, manifest)| match self.repo().and_then(|repo| repo.has_block(&manifest)) {
                Ok(false) => Some(tree),
                _ => None,
            })
            .collect();
        for tree in expired {
            if let Some(partial) = self.partials.remove(&tree) {
                outcome.freed_bytes += partial.claim.bytes();
                tracing::info!(cid = %format_cid(&partial.manifest_cid), "hosted slot expired");
                self.abort_download(partial, "the slot expired")?;
            }
        }
        Ok(outcome)
    }

    /// Checkpoints running downloads and closes the database; later messages get `Unavailable`.
    pub(super) fn close(&mut self) {
        self.checkpoint_all();
        for partial in self.partials.values() {
            partial.progress.fail("the node is stopping".into());
        }
        if self.repo.take().is_some() {
            tracing::info!("repository closed");
        }
    }
}

impl Actor for StoreActor {
    type Context = SyncContext<Self>;
}
