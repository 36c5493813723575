//! StoreActor and UploadSession through their mailboxes, on a temporary repository.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly on purpose")]

use actix::Addr;
use bytes::Bytes;
use codex_actors::store::{
    CloseStore, DeleteData, GetBlock, GetLeaf, GetManifest, GetSpace, HasBlock, ListDatasets, OpenDataset, PutBlock,
    StoreActor, StoreConfig, StoreError, StoredDataset, SweepExpired,
};
use codex_actors::upload::UploadSession;
use codex_protocol::cid::{block_cid, format_cid, sha256};
use codex_protocol::{DEFAULT_BLOCK_SIZE, Manifest};
use std::io::Read;
use std::path::Path;
use std::time::Duration;

const BS: u64 = DEFAULT_BLOCK_SIZE as u64;

fn config(dir: &Path, quota: u64) -> StoreConfig {
    StoreConfig {
        repo_dir: dir.join("repo"),
        quota_max: quota,
        block_ttl: Some(Duration::from_secs(3600)),
        sweep_batch: 1000,
    }
}

fn start(dir: &Path, quota: u64) -> Addr<StoreActor> {
    StoreActor::open(config(dir, quota)).expect("repo opens").start()
}

/// Deterministic test data.
fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8).collect()
}

/// Uploads `bytes` in uneven chunks.
async fn upload(store: &Addr<StoreActor>, bytes: &[u8], filename: Option<&str>) -> Result<StoredDataset, StoreError> {
    let mut session = UploadSession::begin(store.clone(), DEFAULT_BLOCK_SIZE, filename.map(String::from), None).await?;
    for chunk in bytes.chunks(10_007) {
        session.push(Bytes::copy_from_slice(chunk)).await?;
    }
    session.finish().await
}

async fn read_back(store: &Addr<StoreActor>, stored: &StoredDataset) -> Vec<u8> {
    let opened = store.send(OpenDataset { cid: stored.cid }).await.expect("mailbox").expect("open").expect("present");
    let mut out = Vec::new();
    opened.file.take(opened.manifest.content_size()).read_to_end(&mut out).expect("read");
    out
}

fn segment_files(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("repo/segments")).map_or(0, |d| d.count())
}

/// Deleted segments are unlinked in the background: waits (at most 10 s) until `expected` files remain.
fn wait_for_segment_files(dir: &Path, expected: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while segment_files(dir) != expected {
        assert!(std::time::Instant::now() < deadline, "{} segment files, expected {expected}", segment_files(dir));
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[actix_rt::test]
async fn boundary_sizes_round_trip_with_proofs_and_exact_space() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = start(dir.path(), 1 << 30);
    let mut expected_used = 0;
    let mut expected_blocks = 0;
    for (i, len) in [1usize, 65535, 65536, 65537, 3 * 1024 * 1024 + 17].into_iter().enumerate() {
        let bytes = data(len, i as u8);
        let stored = upload(&store, &bytes, Some("f.bin")).await.expect("stored");
        assert_eq!(stored.manifest.dataset_size, len as u64);
        assert_eq!(read_back(&store, &stored).await, bytes, "len {len}");
        let leaves = (len as u64).div_ceil(BS);
        expected_used += leaves * BS + stored.manifest.encode().len() as u64;
        expected_blocks += leaves + 1;
        let root = codex_protocol::cid::sha256_digest(&stored.manifest.tree_cid).expect("sha256 root");
        for index in 0..leaves {
            let (cid, proof) = store
                .send(GetLeaf { tree: stored.manifest.tree_cid, index })
                .await
                .expect("mailbox")
                .expect("leaf")
                .expect("present");
            let start = (index * BS) as usize;
            let mut block = bytes[start..bytes.len().min(start + DEFAULT_BLOCK_SIZE)].to_vec();
            block.resize(DEFAULT_BLOCK_SIZE, 0);
            assert_eq!(cid, block_cid(&block));
            assert!(proof.verify(&sha256(&block), &root), "proof of leaf {index} of {len} bytes");
            assert!(store.send(HasBlock { cid }).await.expect("mailbox").expect("has"));
            let fetched = store.send(GetBlock { cid }).await.expect("mailbox").expect("get").expect("present");
            assert_eq!(fetched.as_ref(), block.as_slice());
        }
        let none = store.send(GetLeaf { tree: stored.manifest.tree_cid, index: leaves }).await.expect("mailbox");
        assert!(none.expect("ok").is_none());
        let space = store.send(GetSpace).await.expect("mailbox");
        assert_eq!(space.quota_used_bytes, expected_used);
        assert_eq!(space.total_blocks, expected_blocks);
        assert_eq!(space.pending_bytes, 0);
    }
    let listed = store.send(ListDatasets).await.expect("mailbox").expect("list");
    assert_eq!(listed.len(), 5);
}

#[actix_rt::test]
async fn appendix_a_vector_through_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = start(dir.path(), 1 << 30);
    let stored = upload(&store, b"some file contents", None).await.expect("stored");
    assert_eq!(format_cid(&stored.cid), "zDvZRwzmC3Q7e7NLkfsPmtgSCfectUc1ssn5xK2rzC9yRz1yeZuK");
    assert_eq!(format_cid(&stored.manifest.tree_cid), "zDzSvJTezk7bJNQqFq8k1iHXY84psNuUfZVusA5bBQQUSuyzDSVL");
    let space = store.send(GetSpace).await.expect("mailbox");
    assert_eq!((space.total_blocks, space.quota_used_bytes), (2, 65592));
    let manifest = store.send(GetManifest { cid: stored.cid }).await.expect("mailbox").expect("ok").expect("present");
    assert_eq!(manifest, stored.manifest);
}

#[actix_rt::test]
async fn empty_upload_is_refused_and_leaves_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = start(dir.path(), 1 << 30);
    assert!(matches!(upload(&store, b"", None).await, Err(StoreError::EmptyDataset)));
    wait_for_segment_files(dir.path(), 0);
    assert_eq!(store.send(GetSpace).await.expect("mailbox").quota_used_bytes, 0);
}

#[actix_rt::test]
async fn quota_is_enforced_and_a_refused_upload_leaves_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = start(dir.path(), 4 * BS);
    upload(&store, &data(2 * DEFAULT_BLOCK_SIZE, 1), None).await.expect("fits");
    let used = store.send(GetSpace).await.expect("mailbox").quota_used_bytes;
    match upload(&store, &data(3 * DEFAULT_BLOCK_SIZE, 2), None).await {
        Err(StoreError::QuotaExceeded { needed, free, max }) => {
            assert_eq!(max, 4 * BS);
            assert!(needed > free, "{needed} > {free}");
        }
        other => panic!("expected QuotaExceeded, got {other:?}"),
    }
    let space = store.send(GetSpace).await.expect("mailbox");
    assert_eq!((space.quota_used_bytes, space.pending_bytes), (used, 0));
    wait_for_segment_files(dir.path(), 2); // only the first dataset's .blk and .tree remain
    assert_eq!(store.send(ListDatasets).await.expect("mailbox").expect("list").len(), 1);
}

#[actix_rt::test]
async fn abandoned_upload_is_invisible_and_frees_its_claim() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = start(dir.path(), 1 << 30);
    let mut session = UploadSession::begin(store.clone(), DEFAULT_BLOCK_SIZE, None, None).await.expect("begin");
    session.push(Bytes::from(data(5 * DEFAULT_BLOCK_SIZE, 3))).await.expect("push");
    assert!(store.send(GetSpace).await.expect("mailbox").pending_bytes > 0);
    drop(session);
    let space = store.send(GetSpace).await.expect("mailbox");
    assert_eq!((space.quota_used_bytes, space.pending_bytes, space.total_blocks), (0, 0, 0));
    assert!(store.send(ListDatasets).await.expect("mailbox").expect("list").is_empty());
    wait_for_segment_files(dir.path(), 0);
}

#[actix_rt::test]
async fn shared_trees_delete_and_blocks_of_datasets_are_protected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = start(dir.path(), 1 << 30);
    let bytes = data(3 * DEFAULT_BLOCK_SIZE + 5, 9);
    let a = upload(&store, &bytes, Some("a.bin")).await.expect("a");
    let b = upload(&store, &bytes, Some("b.bin")).await.expect("b");
    assert_ne!(a.cid, b.cid);
    assert_eq!(a.manifest.tree_cid, b.manifest.tree_cid);
    let space = store.send(GetSpace).await.expect("mailbox");
    let manifests = (a.manifest.encode().len() + b.manifest.encode().len()) as u64;
    assert_eq!(space.quota_used_bytes, 4 * BS + manifests, "the shared tree is stored once");
    wait_for_segment_files(dir.path(), 2); // the duplicate segment was discarded

    let leaf = block_cid(&bytes[..DEFAULT_BLOCK_SIZE]);
    let refused = store.send(DeleteData { cid: leaf }).await.expect("mailbox");
    assert!(matches!(refused, Err(StoreError::PartOfDataset { .. })));

    store.send(DeleteData { cid: a.cid }).await.expect("mailbox").expect("delete a");
    assert_eq!(read_back(&store, &b).await, bytes, "b still reads after a is deleted");
    store.send(DeleteData { cid: b.cid }).await.expect("mailbox").expect("delete b");
    let space = store.send(GetSpace).await.expect("mailbox");
    assert_eq!((space.quota_used_bytes, space.total_blocks), (0, 0));
    wait_for_segment_files(dir.path(), 0);
    assert!(!store.send(HasBlock { cid: leaf }).await.expect("mailbox").expect("has"));
    // Deleting what is not there is fine.
    store.send(DeleteData { cid: b.cid }).await.expect("mailbox").expect("absent is ok");
}

#[actix_rt::test]
async fn standalone_blocks_are_checked_against_their_cid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = start(dir.path(), 1 << 30);
    let block = Bytes::from_static(b"a standalone block");
    let cid = block_cid(&block);
    store.send(PutBlock { cid, data: block.clone() }).await.expect("mailbox").expect("put");
    assert_eq!(store.send(GetBlock { cid }).await.expect("mailbox").expect("get"), Some(block.clone()));
    let wrong = store.send(PutBlock { cid, data: Bytes::from_static(b"other bytes") }).await.expect("mailbox");
    assert!(matches!(wrong, Err(StoreError::CidMismatch { .. })));
    assert_eq!(store.send(GetSpace).await.expect("mailbox").quota_used_bytes, block.len() as u64);
    store.send(DeleteData { cid }).await.expect("mailbox").expect("delete");
    assert_eq!(store.send(GetSpace).await.expect("mailbox").quota_used_bytes, 0);
}

#[actix_rt::test]
async fn expiry_sweep_removes_expired_datasets_in_batches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path(), 1 << 30);
    cfg.sweep_batch = 2;
    let store = StoreActor::open(cfg).expect("open").start();
    for seed in 0..5 {
        upload(&store, &data(1000, seed), None).await.expect("stored");
    }
    // Not yet expired: nothing goes.
    let outcome = store.send(SweepExpired { now: 0 }).await.expect("mailbox").expect("sweep");
    assert_eq!(outcome.removed_blocks, 0);
    let far_future = codex_actors::store::unix_now() + 10 * 3600;
    let mut rounds = 0;
    while !store.send(ListDatasets).await.expect("mailbox").expect("list").is_empty() {
        let outcome = store.send(SweepExpired { now: far_future }).await.expect("mailbox").expect("sweep");
        assert!(outcome.removed_blocks <= 2 * 2, "a sweep visits at most its batch");
        rounds += 1;
        assert!(rounds < 10, "sweeps make progress");
    }
    assert!(rounds >= 3, "5 datasets with batches of 2 records take several sweeps");
    let space = store.send(GetSpace).await.expect("mailbox");
    assert_eq!((space.quota_used_bytes, space.total_blocks), (0, 0));
    wait_for_segment_files(dir.path(), 0);
}

#[actix_rt::test]
async fn reopening_keeps_data_and_counters_and_drops_orphans() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = data(2 * DEFAULT_BLOCK_SIZE + 1, 4);
    let (stored, space) = {
        let store = start(dir.path(), 1 << 30);
        let stored = upload(&store, &bytes, Some("keep.bin")).await.expect("stored");
        let space = store.send(GetSpace).await.expect("mailbox");
        store.send(CloseStore).await.expect("closed");
        (stored, space)
    };
    // A crashed upload leaves a segment behind.
    std::fs::write(dir.path().join("repo/segments/999.blk"), b"partial").expect("orphan");
    let store = StoreActor::open(config(dir.path(), 1 << 30)).expect("reopen");
    assert_eq!(store.quota().space(), space);
    assert!(!dir.path().join("repo/segments/999.blk").exists());
    let store = store.start();
    assert_eq!(read_back(&store, &stored).await, bytes);
    let manifest: Manifest =
        store.send(GetManifest { cid: stored.cid }).await.expect("mailbox").expect("ok").expect("present");
    assert_eq!(manifest.filename.as_deref(), Some("keep.bin"));
}

// ---- network downloads -------------------------------------------------------------------------------------

use codex_actors::store::{
    BeginDownload, DownloadState, HasLeaves, LeafOutcome, OpenDownload, PutManifest, ReadLeaves, StoreLeaves,
};
use codex_protocol::blockexc::{BlockAddress, BlockDelivery};
use codex_protocol::{Cid, CodexTree};

/// A dataset as a peer would serve it: padded blocks, its tree and manifest.
struct Remote {
    blocks: Vec<Vec<u8>>,
    tree: CodexTree,
    manifest: Manifest,
    cid: Cid,
}

impl Remote {
    fn new(len: usize, seed: u8) -> Self {
        let bytes = data(len, seed);
        let blocks: Vec<Vec<u8>> = bytes
            .chunks(DEFAULT_BLOCK_SIZE)
            .map(|chunk| {
                let mut block = chunk.to_vec();
                block.resize(DEFAULT_BLOCK_SIZE, 0);
                block
            })
            .collect();
        let tree = CodexTree::new(blocks.iter().map(|b| sha256(b)).collect()).expect("tree");
        let manifest = Manifest::new_unprotected(tree.root_cid(), BS, len as u64, Some("r.bin".into()), None);
        let cid = Manifest::cid_of(&manifest.encode());
        Self { blocks, tree, manifest, cid }
    }

    fn delivery(&self, index: u64) -> BlockDelivery {
        let block = &self.blocks[index as usize];
        BlockDelivery {
            cid: block_cid(block),
            data: Bytes::copy_from_slice(block),
            address: BlockAddress::Leaf { tree: self.tree.root_cid(), index },
            proof: Some(self.tree.proof(index).expect("proof")),
        }
    }

    async fn begin(&self, store: &Addr<StoreActor>) -> Result<DownloadState, StoreError> {
        store.send(BeginDownload { manifest_cid: self.cid, manifest: self.manifest.clone() }).await.expect("mailbox")
    }

    async fn deliver(&self, store: &Addr<StoreActor>, indexes: &[u64]) -> codex_actors::store::StoredLeaves {
        let deliveries = indexes.iter().map(|i| self.delivery(*i)).collect();
        let msg = StoreLeaves { tree: self.tree.root_cid(), deliveries };
        store.send(msg).await.expect("mailbox").expect("stored")
    }

    async fn held(&self, store: &Addr<StoreActor>) -> Vec<bool> {
        let indexes = (0..self.blocks.len() as u64).collect();
        store.send(HasLeaves { tree: self.tree.root_cid(), indexes }).await.expect("mailbox").expect("has")
    }
}

fn segment_file(dir: &Path, ext: &str) -> std::path::PathBuf {
    let entries = std::fs::read_dir(dir.join("repo/segments")).expect("segments");
    let mut found: Vec<_> =
        entries.map(|e| e.expect("entry").path()).filter(|p| p.extension().is_some_and(|e| e == ext)).collect();
    assert_eq!(found.len(), 1, "one .{ext} file");
    found.remove(0)
}

#[actix_rt::test]
async fn a_download_verifies_leaves_serves_them_with_proofs_and_completes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = start(dir.path(), 1 << 30);
    let remote = Remote::new(5 * DEFAULT_BLOCK_SIZE - 100, 7);
    assert!(matches!(remote.begin(&store).await.expect("begin"), DownloadState::Partial(_)));
    let stored = remote.deliver(&store, &[0, 3]).await;
    assert_eq!(stored.outcomes, vec![LeafOutcome::Stored, LeafOutcome::Stored]);
    let mut forged = remote.delivery(1);
    forged.proof = Some(remote.tree.proof(2).expect("proof"));
    let rejected = store.send(StoreLeaves { tree: remote.tree.root_cid(), deliveries: vec![forged] }).await;
    assert!(matches!(rejected.expect("mailbox").expect("ok").outcomes[0], LeafOutcome::Rejected(_)));
    assert_eq!(remote.held(&store).await, vec![true, false, false, true, false]);
    let root = codex_protocol::cid::sha256_digest(&remote.tree.root_cid()).expect("root");
    let read = store.send(ReadLeaves { tree: remote.tree.root_cid(), indexes: vec![0, 1, 3] }).await;
    let read = read.expect("mailbox").expect("read");
    assert_eq!(read.iter().map(|l| l.index).collect::<Vec<_>>(), vec![0, 3]);
    for leaf in &read {
        assert_eq!(leaf.data.as_ref(), remote.blocks[leaf.index as usize].as_slice());
        assert!(leaf.proof.verify(&sha256(&leaf.data), &root), "proof of leaf {} from the tree file", leaf.index);
    }
    let done = remote.deliver(&store, &[1, 2, 4]).await;
    assert_eq!(done.completed.expect("complete").cid, remote.cid);
    let space = store.send(GetSpace).await.expect("mailbox");
    assert_eq!(space.quota_used_bytes, 5 * BS + remote.manifest.encode().len() as u64);
    assert_eq!((space.quota_reserved_bytes, space.pending_bytes), (0, 0));
    let opened = store.send(OpenDataset { cid: remote.cid }).await.expect("mailbox").expect("open").expect("present");
    let mut out = Vec::new();
    opened.file.take(opened.manifest.content_size()).read_to_end(&mut out).expect("read");
    assert_eq!(out, data(5 * DEFAULT_BLOCK_SIZE - 100, 7));
    for index in 0..5 {
        let (cid, proof) = store
            .send(GetLeaf { tree: remote.tree.root_cid(), index })
            .await
            .expect("mailbox")
            .expect("ok")
            .expect("leaf");
        assert_eq!(cid, block_cid(&remote.blocks[index as usize]));
        assert_eq!(proof, remote.tree.proof(index).expect("proof"), "the finished tree file is complete");
    }
}

#[actix_rt::test]
async fn running_downloads_show_as_reserved_and_deleting_one_releases_its_claim() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = start(dir.path(), 1 << 30);
    let remote = Remote::new(4 * DEFAULT_BLOCK_SIZE, 1);
    remote.begin(&store).await.expect("begin");
    let space = store.send(GetSpace).await.expect("mailbox");
    assert_eq!((space.quota_reserved_bytes, space.quota_used_bytes), (4 * BS, 0));
    remote.deliver(&store, &[0]).await;
    store.send(DeleteData { cid: remote.cid }).await.expect("mailbox").expect("delete");
    let space = store.send(GetSpace).await.expect("mailbox");
    assert_eq!((space.quota_reserved_bytes, space.pending_bytes, space.quota_used_bytes), (0, 0, 0));
    wait_for_segment_files(dir.path(), 0);
    // A download larger than the free quota is refused and claims nothing.
    let small_dir = tempfile::tempdir().expect("tempdir");
    let small = start(small_dir.path(), 2 * BS);
    assert!(matches!(remote.begin(&small).await, Err(StoreError::QuotaExceeded { .. })));
    assert_eq!(small.send(GetSpace).await.expect("mailbox").quota_reserved_bytes, 0);
}

#[actix_rt::test]
async fn invalid_network_manifests_are_refused_before_anything_is_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = start(dir.path(), 1 << 40);
    let remote = Remote::new(3 * DEFAULT_BLOCK_SIZE, 2);
    let tiny = Manifest { block_size: 1, dataset_size: 1 << 30, ..remote.manifest.clone() };
    let tiny_cid = Manifest::cid_of(&tiny.encode());
    let begun = store.send(BeginDownload { manifest_cid: tiny_cid, manifest: tiny.clone() }).await.expect("mailbox");
    assert!(matches!(begun, Err(StoreError::InvalidManifest { .. })), "{begun:?}");
    let put = store.send(PutManifest { cid: tiny_cid, data: Bytes::from(tiny.encode()) }).await.expect("mailbox");
    assert!(matches!(put, Err(StoreError::InvalidManifest { .. })), "{put:?}");
    let put = store.send(PutManifest { cid: tiny_cid, data: Bytes::from(remote.manifest.encode()) }).await;
    assert!(matches!(put.expect("mailbox"), Err(StoreError::CidMismatch { .. })));
    assert!(!store.send(HasBlock { cid: tiny_cid }).await.expect("mailbox").expect("has"));
    let space = store.send(GetSpace).await.expect("mailbox");
    assert_eq!((space.quota_used_bytes, space.quota_reserved_bytes, space.total_blocks), (0, 0, 0));
    assert_eq!(segment_files(dir.path()), 0);
    let good = store.send(PutManifest { cid: remote.cid, data: Bytes::from(remote.manifest.encode()) }).await;
    assert_eq!(good.expect("mailbox").expect("valid"), remote.manifest);
}

#[actix_rt::test]
async fn a_manifest_naming_a_stored_tree_must_match_its_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = start(dir.path(), 1 << 30);
    let bytes = data(3 * DEFAULT_BLOCK_SIZE, 5);
    let stored = upload(&store, &bytes, Some("a.bin")).await.expect("stored");
    let before = store.send(GetSpace).await.expect("mailbox");
    let liar = Manifest { dataset_size: 10 * BS, filename: Some("big.bin".into()), ..stored.manifest.clone() };
    let liar_cid = Manifest::cid_of(&liar.encode());
    let put = store.send(PutManifest { cid: liar_cid, data: Bytes::from(liar.encode()) }).await.expect("mailbox");
    assert!(matches!(put, Err(StoreError::TreeSizeMismatch { manifest_bytes, stored_bytes, .. })
        if manifest_bytes == 10 * BS && stored_bytes == 3 * BS));
    let begun = store.send(BeginDownload { manifest_cid: liar_cid, manifest: liar }).await.expect("mailbox");
    assert!(matches!(begun, Err(StoreError::TreeSizeMismatch { .. })));
    assert!(!store.send(HasBlock { cid: liar_cid }).await.expect("mailbox").expect("has"));
    assert_eq!(store.send(GetSpace).await.expect("mailbox"), before, "nothing stored");
    // Same tree, same size, another name: only the manifest is new.
    let other = Manifest { filename: Some("b.bin".into()), ..stored.manifest.clone() };
    let other_cid = Manifest::cid_of(&other.encode());
    let begun = store.send(BeginDownload { manifest_cid: other_cid, manifest: other }).await.expect("mailbox");
    assert!(matches!(begun, Ok(DownloadState::Stored)));
    assert_eq!(store.send(ListDatasets).await.expect("mailbox").expect("list").len(), 2);
}

/// Starts `remote`'s download, stores `indexes`, then closes the store (which checkpoints).
async fn interrupted_download(dir: &Path, remote: &Remote, indexes: &[u64]) {
    let store = start(dir, 1 << 30);
    remote.begin(&store).await.expect("begin");
    remote.deliver(&store, indexes).await;
    store.send(CloseStore).await.expect("closed");
}

async fn reopen_held(dir: &Path, remote: &Remote) -> (Addr<StoreActor>, Vec<bool>) {
    let store = start(dir, 1 << 30);
    let opened = store.send(OpenDownload { cid: remote.cid }).await.expect("mailbox").expect("ok");
    assert!(opened.is_some(), "the download is still there");
    let held = remote.held(&store).await;
    (store, held)
}

#[actix_rt::test]
async fn a_resumed_download_keeps_its_checkpointed_leaves_and_finishes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let remote = Remote::new(6 * DEFAULT_BLOCK_SIZE, 3);
    interrupted_download(dir.path(), &remote, &[0, 1, 4]).await;
    let (store, held) = reopen_held(dir.path(), &remote).await;
    assert_eq!(held, vec![true, true, false, false, true, false]);
    assert_eq!(store.send(GetSpace).await.expect("mailbox").quota_reserved_bytes, 6 * BS, "claimed again");
    let read = store.send(ReadLeaves { tree: remote.tree.root_cid(), indexes: vec![4] }).await;
    assert_eq!(read.expect("mailbox").expect("read")[0].proof, remote.tree.proof(4).expect("proof"));
    let done = remote.deliver(&store, &[2, 3, 5]).await;
    assert!(done.completed.is_some());
}

#[actix_rt::test]
async fn a_deleted_data_file_restarts_the_download_from_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let remote = Remote::new(4 * DEFAULT_BLOCK_SIZE, 4);
    interrupted_download(dir.path(), &remote, &[0, 1, 2]).await;
    std::fs::remove_file(segment_file(dir.path(), "blk")).expect("remove");
    let (store, held) = reopen_held(dir.path(), &remote).await;
    assert_eq!(held, vec![false; 4], "the saved bitmap is void");
    assert!(segment_file(dir.path(), "blk").exists(), "fresh files");
    let done = remote.deliver(&store, &[0, 1, 2, 3]).await;
    let stored = done.completed.expect("complete");
    assert_eq!(read_back(&store, &stored).await, data(4 * DEFAULT_BLOCK_SIZE, 4));
    store.send(CloseStore).await.expect("closed");
    // The restart was saved: a second reopen does not bring back the void bitmap either.
    let store = start(dir.path(), 1 << 30);
    assert_eq!(read_back(&store, &stored).await, data(4 * DEFAULT_BLOCK_SIZE, 4));
}

#[actix_rt::test]
async fn a_truncated_data_file_keeps_only_the_leaves_within_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let remote = Remote::new(4 * DEFAULT_BLOCK_SIZE, 5);
    interrupted_download(dir.path(), &remote, &[0, 1, 2]).await;
    let file = std::fs::OpenOptions::new().write(true).open(segment_file(dir.path(), "blk")).expect("open");
    file.set_len(BS + BS / 2).expect("truncate");
    let (store, held) = reopen_held(dir.path(), &remote).await;
    assert_eq!(held, vec![true, false, false, false]);
    let done = remote.deliver(&store, &[1, 2, 3]).await;
    let stored = done.completed.expect("complete");
    assert_eq!(read_back(&store, &stored).await, data(4 * DEFAULT_BLOCK_SIZE, 5));
}

#[actix_rt::test]
async fn a_truncated_tree_file_restarts_the_download_from_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let remote = Remote::new(3 * DEFAULT_BLOCK_SIZE, 6);
    interrupted_download(dir.path(), &remote, &[0, 2]).await;
    let file = std::fs::OpenOptions::new().write(true).open(segment_file(dir.path(), "tree")).expect("open");
    file.set_len(32).expect("truncate");
    let (store, held) = reopen_held(dir.path(), &remote).await;
    assert_eq!(held, vec![false; 3]);
    let done = remote.deliver(&store, &[0, 1, 2]).await;
    assert!(done.completed.is_some());
}

#[actix_rt::test]
async fn a_download_whose_tree_file_is_corrupted_is_dropped_with_its_claim() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = start(dir.path(), 1 << 30);
    let remote = Remote::new(3 * DEFAULT_BLOCK_SIZE, 8);
    remote.begin(&store).await.expect("begin");
    remote.deliver(&store, &[0, 1]).await;
    let tree = std::fs::OpenOptions::new().write(true).open(segment_file(dir.path(), "tree")).expect("open");
    std::os::unix::fs::FileExt::write_all_at(&tree, &[0xAB; 32], 0).expect("corrupt leaf 0");
    let last = StoreLeaves { tree: remote.tree.root_cid(), deliveries: vec![remote.delivery(2)] };
    let finished = store.send(last).await.expect("mailbox");
    assert!(matches!(finished, Err(StoreError::Corrupt { .. })), "{finished:?}");
    let space = store.send(GetSpace).await.expect("mailbox");
    assert_eq!((space.quota_reserved_bytes, space.quota_used_bytes), (0, 0), "the claim is released");
    assert!(store.send(OpenDownload { cid: remote.cid }).await.expect("mailbox").expect("ok").is_none());
    wait_for_segment_files(dir.path(), 0);
}

#[actix_rt::test]
async fn one_query_answers_a_mixed_want_list() {
    use codex_actors::store::HasAddresses;
    use codex_protocol::blockexc::BlockAddress;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = start(dir.path(), 1 << 30);
    let stored = upload(&store, &data(3 * 65536 + 1, 9), None).await.expect("stored");
    let tree = stored.manifest.tree_cid;
    let other_tree = codex_protocol::cid::cid_from_sha256(codex_protocol::cid::ROOT_CODEC, &[5; 32]);
    let addresses = vec![
        BlockAddress::Leaf { tree, index: 0 },
        BlockAddress::Cid(stored.cid),
        BlockAddress::Leaf { tree, index: 4 },
        BlockAddress::Leaf { tree: other_tree, index: 0 },
        BlockAddress::Cid(block_cid(b"absent")),
        BlockAddress::Leaf { tree, index: 3 },
    ];
    let held = store.send(HasAddresses { addresses }).await.expect("mailbox").expect("has");
    assert_eq!(held, vec![true, true, false, false, false, true]);
}

#[actix_rt::test]
async fn a_finished_download_is_kept_when_only_its_manifest_no_longer_fits() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The quota holds the dataset's blocks and not one byte more.
    let store = start(dir.path(), 3 * BS);
    let remote = Remote::new(3 * DEFAULT_BLOCK_SIZE - 100, 11);
    assert!(matches!(remote.begin(&store).await.expect("begin"), DownloadState::Partial(_)));
    let stored = remote.deliver(&store, &[0, 1, 2]).await;
    assert!(stored.completed.is_some(), "the download completes instead of being thrown away");
    let listed = store.send(ListDatasets).await.expect("mailbox").expect("list");
    assert_eq!(listed.len(), 1);
    let space = store.send(GetSpace).await.expect("mailbox");
    assert_eq!(space.quota_used_bytes, 3 * BS + remote.manifest.encode().len() as u64);
}
