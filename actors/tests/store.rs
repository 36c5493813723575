//! StoreActor and UploadSession through their mailboxes, on a temporary repository.

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
