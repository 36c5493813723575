//! The ProverActor on a real protected dataset: a stored upload is protected (erasure coding and slots through
//! their actors), keys are set up in a circuit directory, and slots are proven through the `Prover` handle.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly on purpose")]

use bytes::Bytes;
use codex_actors::erasure::ErasureActor;
use codex_actors::protect::{ProtectActors, protect_dataset};
use codex_actors::prover::{Prover, ProverConfig, ProverError, SlotFiles, load_keys, write_keys};
use codex_actors::slots::SlotBuilderActor;
use codex_actors::store::{GetSpace, LocateDataset, StoreActor, StoreConfig};
use codex_actors::upload::UploadSession;
use codex_protocol::DEFAULT_BLOCK_SIZE;
use codex_protocol::proofs::{ProofError, ProofParams};
use std::path::Path;
use std::time::{Duration, Instant};

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31) ^ (i >> 11) as u8).collect()
}

/// Stores and protects (3 + 1) a 7-block dataset; the files of the verifiable dataset.
async fn protected_dataset(dir: &Path) -> (actix::Addr<StoreActor>, codex_actors::store::DatasetFiles) {
    let config = StoreConfig { repo_dir: dir.join("repo"), quota_max: 1 << 30, block_ttl: None, sweep_batch: 1000 };
    let store = StoreActor::open(config).expect("repo").start();
    let mut upload = UploadSession::begin(store.clone(), DEFAULT_BLOCK_SIZE, None, None).await.expect("begin");
    upload.push(Bytes::from(payload(7 * DEFAULT_BLOCK_SIZE - 500))).await.expect("push");
    let original = upload.finish().await.expect("upload");
    let actors =
        ProtectActors { store: store.clone(), erasure: ErasureActor::start(2), slots: SlotBuilderActor::start(2) };
    let protected = protect_dataset(actors, original.cid, 4, 1).await.expect("protect");
    let files = store.send(LocateDataset { cid: protected.cid }).await.unwrap().unwrap().expect("stored");
    (store, files)
}

fn slot(files: &codex_actors::store::DatasetFiles, slot_index: u64) -> SlotFiles {
    SlotFiles {
        manifest: files.manifest.clone(),
        slot_index,
        data_path: files.data_path.clone(),
        slots_path: files.slots_path.clone(),
    }
}

#[actix_rt::test]
async fn proofs_verify_fail_when_wrong_and_never_block_other_actors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, files) = protected_dataset(dir.path()).await;
    let circuits = dir.path().join("circuits");
    let hash = write_keys(&circuits, ProofParams::with_samples(1), [7; 32]).expect("setup");
    assert_eq!(load_keys(&circuits).expect("keys load").hash, hash);

    let prover = Prover::start(ProverConfig { circuit_dir: circuits.clone(), simulate_failures: 0, queue: 4 });
    // Two proofs at once, while another actor keeps answering.
    let pings = async {
        let mut worst = Duration::ZERO;
        for _ in 0..40 {
            let sent = Instant::now();
            store.send(GetSpace).await.expect("store answers");
            worst = worst.max(sent.elapsed());
            actix_rt::time::sleep(Duration::from_millis(25)).await;
        }
        worst
    };
    let (first, second, worst) =
        futures::join!(prover.prove(slot(&files, 0), [1; 32]), prover.prove(slot(&files, 3), [2; 32]), pings);
    assert!(worst < Duration::from_millis(500), "a ping waited {worst:?} while proving");
    let (first, second) = (first.expect("proof of slot 0"), second.expect("proof of slot 3"));
    assert!(prover.verify(first.public_fields, first.raw.clone()).await.expect("verify"));
    assert!(prover.verify(second.public_fields, second.raw.clone()).await.expect("verify"));
    // The proof is bound to its public inputs: another slot index, or the other proof's entropy, fails.
    let mut wrong = first.public_fields;
    wrong[2] = second.public_fields[2];
    assert!(!prover.verify(wrong, first.raw.clone()).await.expect("verify"));
    let mut wrong = first.public_fields;
    wrong[0] = second.public_fields[0];
    assert!(!prover.verify(wrong, first.raw).await.expect("verify"));
    let info = prover.info().await.expect("info");
    assert_eq!((info.loaded, info.key_hash, info.samples), (true, Some(hash), Some(1)));

    // A full queue refuses at once.
    let busy = Prover::start(ProverConfig { circuit_dir: circuits.clone(), simulate_failures: 0, queue: 1 });
    let (a, b) = futures::join!(busy.prove(slot(&files, 1), [3; 32]), busy.prove(slot(&files, 2), [4; 32]));
    assert!(a.is_ok(), "{a:?}");
    assert!(matches!(b, Err(ProverError::Busy { .. })), "{b:?}");

    // --simulate-proof-failures 2: every second proof is invalid on purpose.
    let failing = Prover::start(ProverConfig { circuit_dir: circuits.clone(), simulate_failures: 2, queue: 4 });
    let good = failing.prove(slot(&files, 0), [5; 32]).await.expect("proof");
    let bad = failing.prove(slot(&files, 0), [5; 32]).await.expect("proof");
    assert!(failing.verify(good.public_fields, good.raw).await.expect("verify"));
    assert!(!failing.verify(bad.public_fields, bad.raw).await.expect("verify"));

    // A damaged slot is reported before any proving.
    let data = std::fs::OpenOptions::new().write(true).open(&files.data_path).expect("data");
    std::os::unix::fs::FileExt::write_all_at(&data, &vec![0xa5; 2 * DEFAULT_BLOCK_SIZE], 0).expect("damage slot 0");
    match prover.prove(slot(&files, 0), [6; 32]).await {
        Err(ProverError::Proof(ProofError::DamagedBlock { .. })) => {}
        other => panic!("expected DamagedBlock, got {other:?}"),
    }

    // Keys that changed on disk are refused.
    std::fs::write(circuits.join("params.json"), b"{}").expect("tamper");
    assert!(matches!(load_keys(&circuits), Err(ProverError::BadKeys { .. })));
    std::fs::remove_dir_all(&circuits).expect("remove");
    assert!(matches!(load_keys(&circuits), Err(ProverError::NoKeys { .. })));
}
