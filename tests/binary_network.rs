//! Network tests that need real `codex` processes: a plain transfer between two binaries (the binary's own
//! wiring of flags, key, listeners and bootstrap), and a fetch interrupted by stopping the process and resumed
//! after a restart on the same data dir. Assertions are on REST state and on the repository's files, not logs.

mod harness;

use harness::binary::BinaryNode;
use harness::{WAIT, data, free_port, wait_until};
use std::path::Path;
use std::time::Duration;

#[test]
fn two_binaries_transfer_a_dataset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = BinaryNode::start(&dir.path().join("a"), None);
    let b = BinaryNode::start(&dir.path().join("b"), Some(&a.spr()));
    let file = data(5_000_000, 7);
    let cid = a.upload(&file);
    assert!(b.stream(&cid) == file, "streamed bytes differ");
    b.wait_local(&cid, WAIT);
    assert!(b.download(&cid) == file, "stored bytes differ");
    assert!(b.is_connected_to(&a.peer_id()), "{}", b.log_text());
}

/// Bytes allocated to the repository's segment files.
fn segment_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(dir.join("repo/segments"))
        .map(|entries| entries.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.blocks() * 512).sum())
        .unwrap_or(0)
}

#[test]
fn restart_in_the_middle_of_a_fetch_resumes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a_api, a_p2p) = (free_port(), free_port());
    let a = BinaryNode::start_on(&dir.path().join("a"), a_api, a_p2p, None, &[]);
    let file = data(128 << 20, 3);
    let cid = a.upload(&file);
    let spr = a.spr();
    let (api, p2p) = (free_port(), free_port());
    let c = BinaryNode::start_on(&dir.path().join("c"), api, p2p, Some(&spr), &[]);
    c.fetch(&cid);
    // Stop as soon as some blocks are on disk (the segment grows as they arrive).
    wait_until("the download to start", WAIT, || segment_bytes(&dir.path().join("c")) >= 4 << 20);
    c.stop();

    // With the provider gone, what C serves after its restart is what survived on its disk.
    a.stop();
    let c = BinaryNode::start_on(&dir.path().join("c"), api, p2p, Some(&spr), &[]);
    assert!(!c.is_local(&cid), "the download was interrupted, not finished");
    let first = 64 * 65_536;
    let held = agent_with_timeout(Duration::from_secs(10))
        .get(format!("{}/data/{cid}/network/stream", c.url))
        .header("Range", format!("bytes=0-{}", first - 1))
        .call();
    let mut held = held.expect("the first 64 blocks are served at once: they survived the restart");
    assert_eq!(held.status().as_u16(), 206);
    let body = held.body_mut().with_config().limit(u64::MAX).read_to_vec().expect("range body");
    assert!(body == file[..first], "the surviving blocks are intact");

    // The provider comes back; the resumed download completes.
    let a = BinaryNode::start_on(&dir.path().join("a"), a_api, a_p2p, None, &[]);
    c.connect(a.peer_id(), &a.p2p_addr());
    c.fetch(&cid);
    c.wait_local(&cid, WAIT);
    assert!(c.download(&cid) == file, "resumed download is intact");
}

fn agent_with_timeout(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(timeout)).build().into()
}
