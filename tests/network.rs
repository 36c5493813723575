//! Several nodes in one process over loopback TCP (the in-process harness of `tests/harness`): discovery
//! through the DHT, block exchange with two providers and one crashing mid-download, a lying peer, and the
//! Status community-history flow. The lying peer is a raw libp2p host written here that speaks blockexc and
//! sends corrupted, mis-proven and unrequested blocks. Assertions are on REST state (`/data`, `/debug/info`)
//! and on what the peers observe; every wait is bounded. Tests that need a real process boundary (a restart on
//! the same data dir, a plain transfer between two binaries) run `codex` processes, in [`binaries`].
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly on purpose")]

mod harness;

use codex_actors::blockexc::BlockExchangeConfig;
use codex_protocol::blockexc::{BlockAddress, BlockDelivery, BlockPresence, Message, PresenceType, WantType};
use codex_protocol::cid::{block_cid, parse_cid};
use codex_protocol::{CodexTree, DEFAULT_BLOCK_SIZE};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use harness::peer::{BLOCKEXC, PeerStats, RawPeer, frame, frames};
use harness::{NodeOptions, TestNode, WAIT, agent, data, wait_for, wait_until};
use libp2p::{Multiaddr, PeerId};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[test]
fn download_through_the_dht_from_a_node_never_met() {
    let a = TestNode::start_default();
    let b = TestNode::start(NodeOptions::bootstrapped_from(&a));
    let c = TestNode::start(NodeOptions::bootstrapped_from(&b));
    let file = data(3_000_000, 1);
    let cid = a.upload(&file);

    // C knows only B; the DHT tells it A provides the dataset.
    let (status, manifest) = c.get(&format!("/data/{cid}/network/manifest"));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&manifest));
    let manifest: serde_json::Value = serde_json::from_slice(&manifest).expect("json");
    assert_eq!(manifest["manifest"]["datasetSize"], 3_000_000);
    assert!(c.stream(&cid) == file, "streamed bytes differ");
    c.wait_local(&cid, WAIT);
    assert!(!b.is_local(&cid), "B only relayed discovery");
    assert!(c.is_connected_to(&a.peer_id), "C found and dialed A");

    // Ranges on the network stream, and clear errors.
    let mut response = agent()
        .get(format!("{}/data/{cid}/network/stream", c.url))
        .header("Range", "bytes=100000-100099")
        .call()
        .expect("range");
    assert_eq!(response.status().as_u16(), 206);
    assert_eq!(response.body_mut().read_to_vec().expect("body"), file[100_000..100_100]);
    assert_eq!(c.get("/data/not-a-cid/network/stream").0, 400);
    let block = codex_protocol::cid::format_cid(&block_cid(b"x"));
    assert_eq!(c.post(&format!("/data/{block}/network"), b"").0, 400, "a block CID is not a dataset");

    // /connect by peer id resolves A's address through the DHT; /debug/info lists peers.
    let (status, body) = c.get_text(&format!("/connect/{}", a.peer_id));
    assert_eq!(status, 200, "{body}");
    b.connect(c.peer_id, &c.p2p_addr);
    let info = c.info();
    assert!(info["spr"].as_str().is_some_and(|s| s.starts_with("spr:")));
    assert!(c.known_peers().contains(&a.peer_id), "{info}");
    // The NAT extension: `--nat none` announces the listen addresses whatever is learned; the relay serves within
    // its limits; connected peers are reached directly.
    assert_eq!(info["nat"]["mode"], "none", "{info}");
    assert!(info["nat"]["relay"]["circuitsDenied"].is_u64(), "{info}");
    assert!(info["nat"]["announced"].as_array().is_some_and(|a| !a.is_empty()), "{info}");
    let nodes = info["table"]["nodes"].as_array().expect("nodes");
    assert!(nodes.iter().filter(|n| n["seen"] == true).all(|n| n["connection"] == "direct"), "{info}");
    assert!(nodes.iter().any(|n| n["connection"] == "direct"), "{info}");
    assert_eq!(c.get("/connect/nonsense").0, 400);
}

/// The harness itself: a node stopped cleanly restarts on its data dir with its data, and serves it to a peer.
#[test]
fn in_process_node_restarts_on_its_data_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = NodeOptions { dir: Some(dir.path().to_owned()), ..NodeOptions::default() };
    let a = TestNode::start(options.clone());
    let file = data(300_000, 5);
    let cid = a.upload(&file);
    a.stop();
    let a = TestNode::start(options);
    assert!(a.is_local(&cid), "the dataset survived the restart");
    assert!(a.download(&cid) == file);
    let b = TestNode::start(NodeOptions::bootstrapped_from(&a));
    assert!(b.stream(&cid) == file, "the restarted node serves the dataset");
}

#[test]
fn two_providers_and_one_crashes_mid_download() {
    let a = TestNode::start_default();
    let b = TestNode::start(NodeOptions::bootstrapped_from(&a));
    let file = data(64 << 20, 2);
    let cid = a.upload(&file);
    b.fetch(&cid);
    b.wait_local(&cid, WAIT);

    let c = TestNode::start(NodeOptions::bootstrapped_from(&a));
    c.connect(b.peer_id, &b.p2p_addr);
    let (reader, read) = c.stream_in_background(&cid);
    wait_until("8 MiB of the stream", WAIT, || read.load(Ordering::Relaxed) >= 8 << 20);
    let a_id = a.peer_id;
    a.crash();
    wait_until("C to see A gone", WAIT, || !c.is_connected_to(&a_id));
    let body = reader.join().expect("reader");
    assert!(body == file, "the download completed from the remaining provider");
    c.wait_local(&cid, WAIT);
    assert_eq!(b.space()["totalBlocks"], c.space()["totalBlocks"], "C holds what B holds");
}

/// A download deleted while it runs stops in the block exchange, and fetching the same dataset again starts a new
/// download that completes: it is not mistaken for the old one, whose leaves went with the deleted segment.
#[test]
fn a_download_deleted_mid_way_can_be_fetched_again() {
    let a = TestNode::start_default();
    // One request at a time, so the download is still running when it is deleted.
    let slow = BlockExchangeConfig { window: 1, peer_in_flight: 1, ..BlockExchangeConfig::default() };
    let b = TestNode::start(NodeOptions { exchange: slow, ..NodeOptions::bootstrapped_from(&a) });
    let file = data(32 << 20, 21);
    let cid = a.upload(&file);
    wait_until("b to connect to a", WAIT, || b.is_connected_to(&a.peer_id));
    b.fetch(&cid);
    wait_until("the download to run", WAIT, || b.space()["quotaReservedBytes"].as_u64().unwrap_or(0) > 0);
    assert_eq!(b.delete(&format!("/data/{cid}")), 204);
    assert!(!b.is_local(&cid), "deleted mid-way");
    b.fetch(&cid);
    b.wait_local(&cid, WAIT);
    assert!(b.download(&cid) == file, "the new download holds the whole dataset");
}

#[test]
fn community_history_flow() {
    let control = TestNode::start_default();
    let archives: Vec<Vec<u8>> = (0..3).map(|i| data(200_000 + i * 77_777, 10 + i as u64)).collect();
    let cids: Vec<String> = archives.iter().map(|a| control.upload(a)).collect();
    let index = serde_json::json!({ "archives": cids }).to_string();
    let index_cid = control.upload(index.as_bytes());

    // A member knows the index CID and one bootstrap node (not the control node's data).
    let bootstrap = TestNode::start(NodeOptions::bootstrapped_from(&control));
    let member = TestNode::start(NodeOptions::bootstrapped_from(&bootstrap));
    let listed: serde_json::Value = serde_json::from_slice(&member.stream(&index_cid)).expect("index json");
    let wanted = [0usize, 2];
    for i in wanted {
        let cid = listed["archives"][i].as_str().expect("cid");
        member.fetch(cid);
        member.wait_local(cid, WAIT);
    }
    // The control node leaves; the member serves what it fetched at once to a third member.
    control.crash();
    let third = TestNode::start(NodeOptions::bootstrapped_from(&member));
    for i in wanted {
        assert!(third.stream(&cids[i]) == archives[i], "archive {i} from the member");
    }
    assert!(!member.is_local(&cids[1]), "the member fetched only what it wanted");
    assert!(!bootstrap.is_local(&cids[0]), "the bootstrap node holds no archive");
}

/// What the lying peer sends in answer to the n-th wanted block.
fn lie(n: usize, tree: &CodexTree, tree_cid: codex_protocol::Cid, file: &[u8], index: u64) -> BlockDelivery {
    let block = |i: u64| {
        let start = (i as usize) * DEFAULT_BLOCK_SIZE;
        let mut b = file[start..(start + DEFAULT_BLOCK_SIZE).min(file.len())].to_vec();
        b.resize(DEFAULT_BLOCK_SIZE, 0);
        b
    };
    let leaves = tree.leaf_count();
    match n % 3 {
        0 => {
            // Corrupted data under the right CID and proof.
            let mut data = block(index);
            data[17] ^= 0xff;
            BlockDelivery {
                cid: block_cid(&block(index)),
                data: data.into(),
                address: BlockAddress::Leaf { tree: tree_cid, index },
                proof: Some(tree.proof(index).expect("proof")),
            }
        }
        1 => {
            // A genuine block of another leaf, with that leaf's proof, delivered as the wanted one.
            let other = (index + 1) % leaves;
            BlockDelivery {
                cid: block_cid(&block(other)),
                data: block(other).into(),
                address: BlockAddress::Leaf { tree: tree_cid, index },
                proof: Some(tree.proof(other).expect("proof")),
            }
        }
        _ => {
            // A genuine block nobody asked for.
            let other = leaves - 1 - (index % 7);
            BlockDelivery {
                cid: block_cid(&block(other)),
                data: block(other).into(),
                address: BlockAddress::Leaf { tree: tree_cid, index: other },
                proof: Some(tree.proof(other).expect("proof")),
            }
        }
    }
}

/// A libp2p host that claims to have every block and answers each request with a lie. Hands its handle back
/// through `started`, then runs until `stop`.
fn run_liar(
    victim: PeerId,
    victim_addr: Multiaddr,
    file: Vec<u8>,
    tree_cid: String,
    stop: Arc<AtomicBool>,
    started: std::sync::mpsc::Sender<RawPeer>,
) {
    let tree_cid = parse_cid(&tree_cid).expect("tree cid");
    let leaves: Vec<_> = file
        .chunks(DEFAULT_BLOCK_SIZE)
        .map(|c| {
            let mut b = c.to_vec();
            b.resize(DEFAULT_BLOCK_SIZE, 0);
            codex_protocol::cid::sha256(&b)
        })
        .collect();
    let tree = CodexTree::new(leaves).expect("tree");
    assert_eq!(tree.root_cid(), tree_cid);
    let mut lies = 0usize;
    serve_raw(victim, victim_addr, stop, started, move |message| {
        let mut reply = Message::default();
        for entry in message.wantlist.entries.iter().filter(|e| !e.cancel) {
            let BlockAddress::Leaf { index, .. } = entry.address else { continue };
            match entry.want_type {
                WantType::WantHave => reply.presences.push(BlockPresence {
                    address: entry.address.clone(),
                    kind: PresenceType::Have,
                    price: vec![0; 32],
                }),
                WantType::WantBlock => {
                    reply.payload.push(lie(lies, &tree, tree_cid, &file, index));
                    lies += 1;
                }
            }
        }
        reply
    });
}

/// A raw libp2p host that dials `victim`, opens a blockexc stream both ways, and answers every message the
/// victim sends with what `respond` makes of it, until `stop`.
fn serve_raw(
    victim: PeerId,
    victim_addr: Multiaddr,
    stop: Arc<AtomicBool>,
    started: std::sync::mpsc::Sender<RawPeer>,
    mut respond: impl FnMut(&Message) -> Message,
) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async move {
        let peer = RawPeer::spawn(&[victim], &[]);
        let mut control = peer.control.clone();
        let mut incoming = control.accept(BLOCKEXC).expect("accept");
        peer.dial(victim, victim_addr);
        let _ = started.send(peer.clone());
        let connected = async {
            while PeerStats::get(&peer.stats.established) == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(WAIT, connected).await.expect("the raw peer connected");
        let stream = control.open_stream(victim, BLOCKEXC).await.expect("outbound stream");
        let (_, mut out) = stream.split();
        let (_, inbound) = incoming.next().await.expect("victim opens its stream");
        let mut inbound = frames(inbound);
        while !stop.load(Ordering::Relaxed) {
            let bytes = match tokio::time::timeout(Duration::from_millis(200), inbound.recv()).await {
                Ok(Some(bytes)) => bytes,
                Err(_) => continue,
                Ok(None) => {
                    // The victim closed the stream: idle (letting the swarm run) until told to stop.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(message) = Message::decode(&bytes) else { continue };
            let mut reply = respond(&message);
            // Like the original, at most 20 blocks per message (the node refuses messages of more than 64).
            let mut messages = vec![Message { presences: std::mem::take(&mut reply.presences), ..Message::default() }];
            messages.extend(
                reply.payload.chunks(20).map(|chunk| Message { payload: chunk.to_vec(), ..Message::default() }),
            );
            for message in messages.into_iter().filter(|m| !m.presences.is_empty() || !m.payload.is_empty()) {
                if out.write_all(&frame(&message.encode())).await.is_err() {
                    // The victim closed the stream (or the connection); keep the host up for the redial below.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    break;
                }
            }
        }
    });
}

#[test]
fn lying_peer_is_banned_and_the_download_completes_from_an_honest_one() {
    let honest = TestNode::start_default();
    // Twice the blocks one peer may owe at once (256), so the liar is sure to be asked for some.
    let file = data(32 << 20, 4);
    let cid = honest.upload(&file);
    let manifest = honest.json(&format!("/data/{cid}/network/manifest"));
    let tree_cid = manifest["manifest"]["treeCid"].as_str().expect("tree").to_owned();

    let victim = TestNode::start(NodeOptions::bootstrapped_from(&honest));
    let stop = Arc::new(AtomicBool::new(false));
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let liar_thread = {
        let (id, addr, file, stop) = (victim.peer_id, victim.p2p_addr.clone(), file.clone(), stop.clone());
        std::thread::spawn(move || run_liar(id, addr, file, tree_cid, stop, started_tx))
    };
    let liar = started_rx.recv_timeout(WAIT).expect("the liar started");
    wait_until("the victim to see the liar", WAIT, || victim.is_connected_to(&liar.peer_id));
    wait_until("the victim to see the honest node", WAIT, || victim.is_connected_to(&honest.peer_id));

    let body = victim.stream(&cid);
    assert!(body == file, "only verified blocks were stored");
    victim.wait_local(&cid, WAIT);

    // The liar's lies cost it its connection, and the victim refuses it when it comes back.
    wait_until("the victim to disconnect the liar", WAIT, || !victim.is_connected_to(&liar.peer_id));
    assert!(PeerStats::get(&liar.stats.closed) >= 1, "the liar saw its connection closed");
    let established = PeerStats::get(&liar.stats.established);
    let closed = PeerStats::get(&liar.stats.closed);
    liar.dial(victim.peer_id, victim.p2p_addr.clone());
    wait_until("the liar's redial to be refused", WAIT, || {
        let refused = PeerStats::get(&liar.stats.dial_failures) > 0;
        let closed_again =
            PeerStats::get(&liar.stats.established) > established && PeerStats::get(&liar.stats.closed) > closed;
        refused || closed_again
    });
    assert!(!victim.is_connected_to(&liar.peer_id), "a banned peer stays disconnected");
    stop.store(true, Ordering::Relaxed);
    liar_thread.join().expect("liar thread");
    assert_eq!(victim.get("/space").0, 200, "the victim is still serving");
}

/// Asking the network for a CID nobody has answers 404 as soon as the provider lookup has finished and every
/// connected peer said DontHave, naming that reason; without the quick path it would only come after the 60 s
/// fetch limit, saying no peer delivered the block.
#[test]
fn a_cid_nobody_has_is_not_found_without_waiting_for_the_fetch_limit() {
    const MISSING: &str = "zDvZRwzmC3Q7e7NLkfsPmtgSCfectUc1ssn5xK2rzC9yRz1yeZuK";
    let a = TestNode::start_default();
    let b = TestNode::start(NodeOptions::bootstrapped_from(&a));
    wait_until("b to connect to a", WAIT, || b.is_connected_to(&a.peer_id()));
    for node in [&b, &a] {
        let (status, body) = node.post(&format!("/data/{MISSING}/network"), b"");
        assert_eq!(status, 404, "{body}");
        assert!(body.contains("every connected peer said it does not have it"), "not the quick answer: {body}");
    }
}

/// Tests that need real `codex` processes: a plain transfer between two binaries (the binary's own wiring of
/// flags, key, listeners and bootstrap), and a fetch interrupted by stopping the process and resumed after a
/// restart on the same data dir. Assertions are on REST state and on the repository's files, not logs.
mod binaries {
    use super::harness::binary::BinaryNode;
    use super::harness::{WAIT, data, wait_until};
    use libp2p::multiaddr::Protocol;
    use std::path::Path;
    use std::time::Duration;

    /// True when this machine has an established TCP connection to or from loopback port `port`.
    fn tcp_established_on(port: u16) -> bool {
        let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
        let port = format!(":{port:04X}");
        table.lines().skip(1).any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, remote, state) = (fields.get(1), fields.get(2), fields.get(3));
            state == Some(&"01") && [local, remote].into_iter().flatten().any(|addr| addr.ends_with(&port))
        })
    }

    /// Nodes that offer QUIC and TCP: B reaches A over QUIC only; it learns A's TCP address from identify, moves
    /// to TCP (the cheaper path here) and the block exchange works over it.
    #[test]
    fn a_peer_reached_over_quic_moves_to_tcp_and_data_flows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let quic = ["--listen-addrs", "/ip4/127.0.0.1/udp/0/quic-v1"];
        let a = BinaryNode::start_fresh(&dir.path().join("a"), None, &quic);
        let b = BinaryNode::start_fresh(&dir.path().join("b"), None, &quic);
        let file = data(6 << 20, 8);
        let cid = a.upload(&file);
        let a_quic = a.listen_addr("A's QUIC address", |a| {
            a.iter().any(|p| matches!(p, Protocol::QuicV1)) && !a.iter().any(|p| matches!(p, Protocol::Udp(0)))
        });
        b.connect(a.peer_id(), &a_quic);
        b.fetch(&cid);
        b.wait_local(&cid, WAIT);
        assert!(b.download(&cid) == file, "stored bytes differ");
        wait_until("a TCP connection between B and A", WAIT, || tcp_established_on(a.p2p_port));
        assert!(b.is_connected_to(&a.peer_id()), "{}", b.log_text());
    }

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
        let a = BinaryNode::start(&dir.path().join("a"), None);
        let (a_api, a_p2p) = (a.api_port, a.p2p_port);
        let file = data(128 << 20, 3);
        let cid = a.upload(&file);
        let spr = a.spr();
        let c = BinaryNode::start(&dir.path().join("c"), Some(&spr));
        let (api, p2p) = (c.api_port, c.p2p_port);
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
}

/// Slot hosting: nodes fetch single slots of a verifiable dataset (only that slot's blocks), check them
/// against their slot roots, and serve them at once: a fourth node gets slot 1 from its first host after the
/// uploader stopped.
#[test]
fn slots_of_a_protected_dataset_are_hosted_and_served_by_other_nodes() {
    let a = TestNode::start_default();
    // 11 blocks, 3 + 2: rounded 12, steps 4; slot 2 = blocks 8, 9, 10 and the padding block 11.
    let file = data(11 * DEFAULT_BLOCK_SIZE - 1000, 7);
    let (cid, protected) = upload_and_protect(&a, &file, 5, 2);

    let b = TestNode::start(NodeOptions::bootstrapped_from(&a));
    let (status, body) = b.post(&format!("/data/{protected}/slots/1/network"), b"");
    assert_eq!(status, 200, "{body}");
    let slot: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!((slot["slotIndex"].as_u64(), slot["blocks"].as_u64()), (Some(1), Some(4)), "{slot}");
    assert!(slot["slotRoot"].as_str().is_some_and(|root| root.starts_with('z')), "{slot}");
    let (status, again) = b.post(&format!("/data/{protected}/slots/1/network"), b"");
    assert_eq!((status, again), (200, body), "hosting the same slot again is a no-op");
    let space = b.space();
    assert_eq!(space["quotaReservedBytes"].as_u64().map(|r| r >= 4 * DEFAULT_BLOCK_SIZE as u64), Some(true));

    // Clear errors: no slot 5, a dataset without slots, a second slot of the same dataset on one node.
    assert_eq!(b.post(&format!("/data/{protected}/slots/5/network"), b"").0, 404);
    assert_eq!(b.post(&format!("/data/{protected}/slots/x/network"), b"").0, 400);
    assert_eq!(b.post(&format!("/data/{cid}/slots/0/network"), b"").0, 422, "an unprotected dataset");
    assert_eq!(b.post(&format!("/data/{protected}/slots/0/network"), b"").0, 422, "one slot per node");

    let c = TestNode::start(NodeOptions::bootstrapped_from(&a));
    let (status, body) = c.post(&format!("/data/{protected}/slots/2/network"), b"");
    assert_eq!(status, 200, "{body}");
    let slot: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(slot["blocks"].as_u64(), Some(3), "the padding block is neither fetched nor stored");

    // A hosted slot is stored like any dataset: it expires (with its manifest), freeing its quota and files.
    // The TTL leaves time to fetch and commit the slot before it runs out (expiry is in whole seconds).
    let short = NodeOptions {
        block_ttl: Duration::from_secs(5),
        maintenance_interval: Duration::from_secs(1),
        ..NodeOptions::bootstrapped_from(&a)
    };
    let e = TestNode::start(short);
    let (status, body) = e.post(&format!("/data/{protected}/slots/3/network"), b"");
    assert_eq!(status, 200, "{body}");
    assert!(e.space()["quotaReservedBytes"].as_u64().is_some_and(|r| r > 0));
    wait_until("the slot to expire", WAIT, || {
        let space = e.space();
        space["quotaReservedBytes"].as_u64() == Some(0) && space["quotaUsedBytes"].as_u64() == Some(0)
    });
    wait_until("the slot's files to go", WAIT, || {
        std::fs::read_dir(e.dir.join("repo/segments")).map_or(0, |entries| entries.count()) == 0
    });

    // B serves its slot as soon as it holds it: with the uploader gone, D gets slot 1 from B.
    a.stop();
    let d = TestNode::start(NodeOptions::bootstrapped_from(&b));
    let (status, body) = d.post(&format!("/data/{protected}/slots/1/network"), b"");
    assert_eq!(status, 200, "{body}");
    let (status, _) = d.post(&format!("/data/{protected}/slots/1/network"), b"");
    assert_eq!(status, 200);
}

/// The durability promise of a 3 + 2 dataset: five nodes each hold one slot; the uploader and two slot holders
/// (two data slots, so every group must be decoded) stop; a sixth node, knowing only one holder, streams the
/// original bytes intact (missing blocks decoded, checked against the original tree) and keeps the original.
#[test]
fn a_protected_dataset_survives_its_uploader_and_two_slot_holders() {
    let a = TestNode::start_default();
    // 21 blocks, 3 + 2: steps 7, 35 encoded blocks, 5 slots of 7; group g = blocks g, g+7, g+14, 21+g, 28+g.
    let file = data(20 * DEFAULT_BLOCK_SIZE + 12_345, 11);
    let (cid, protected) = upload_and_protect(&a, &file, 5, 2);
    let holders: Vec<TestNode> = (0..5)
        .map(|index| {
            let node = TestNode::start(NodeOptions::bootstrapped_from(&a));
            let (status, body) = node.post(&format!("/data/{protected}/slots/{index}/network"), b"");
            assert_eq!(status, 200, "slot {index}: {body}");
            node
        })
        .collect();
    // With every holder up, a stream fetches the data leaves in order, from the data slots' holders.
    let whole = TestNode::start(NodeOptions::bootstrapped_from(&holders[3]));
    assert!(whole.stream(&protected) == file, "the streamed bytes differ from the original (no slot missing)");
    whole.stop();
    let mut holders = holders.into_iter().map(Some).collect::<Vec<_>>();
    a.stop();
    holders[0].take().expect("holder 0").stop();
    holders[2].take().expect("holder 2").stop();
    let survivor = holders[1].as_ref().expect("holder 1");

    let reader = TestNode::start(NodeOptions::bootstrapped_from(survivor));
    assert!(reader.stream(&protected) == file, "the streamed bytes differ from the original");
    // The decoded original is kept: the protected CID and the original CID both read locally.
    let original = wait_for("the decoded original stored", WAIT, || {
        let (status, bytes) = reader.get(&format!("/data/{cid}"));
        (status == 200).then_some(bytes)
    });
    assert!(original == file, "the stored original differs");
    let (status, bytes) = reader.get(&format!("/data/{protected}"));
    assert_eq!(status, 200);
    assert!(bytes == file, "reading the protected CID locally gives the original bytes");

    // Repair: a new node rebuilds the lost slot 0 from slots 1, 3 and 4 (decoding data and parity, checking
    // the whole encoded tree and the slot root); another node then hosts slot 0 from the repairer alone.
    let repairer = TestNode::start(NodeOptions::bootstrapped_from(survivor));
    let (status, body) = repairer.post(&format!("/data/{protected}/slots/0/repair"), b"");
    assert_eq!(status, 200, "{body}");
    let repaired: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(repaired["blocks"].as_u64(), Some(7), "{repaired}");
    let space = repairer.space();
    assert_eq!(space["quotaReservedBytes"].as_u64(), Some(7 * DEFAULT_BLOCK_SIZE as u64), "only slot 0 is kept");
    for holder in holders.iter_mut().filter_map(Option::take) {
        holder.stop();
    }
    let host = TestNode::start(NodeOptions::bootstrapped_from(&repairer));
    let (status, body) = host.post(&format!("/data/{protected}/slots/0/network"), b"");
    assert_eq!(status, 200, "{body}");
    let hosted: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(hosted["slotRoot"], repaired["slotRoot"], "the repaired slot has the slot root of the manifest");
}

/// A slot holder whose blocks are corrupted on disk cannot pass them on: every block fails its proof, the
/// fetching node stores nothing of it and answers 404 once no honest holder is left.
#[test]
fn corrupted_blocks_from_a_slot_holder_are_rejected() {
    let a = TestNode::start_default();
    let file = data(6 * DEFAULT_BLOCK_SIZE, 12);
    let (_, protected) = upload_and_protect(&a, &file, 3, 1);
    let b = TestNode::start(NodeOptions::bootstrapped_from(&a));
    let (status, body) = b.post(&format!("/data/{protected}/slots/1/network"), b"");
    assert_eq!(status, 200, "{body}");
    a.stop();
    for entry in std::fs::read_dir(b.dir.join("repo/segments")).expect("segments").flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|ext| ext == "blk") {
            let mut bytes = std::fs::read(&path).expect("read");
            bytes.iter_mut().for_each(|byte| *byte ^= 0x5a);
            std::fs::write(&path, bytes).expect("corrupt");
        }
    }
    let exchange = BlockExchangeConfig { stall_timeout: Duration::from_secs(3), ..BlockExchangeConfig::default() };
    let d = TestNode::start(NodeOptions { exchange, ..NodeOptions::bootstrapped_from(&b) });
    let (status, body) = d.post(&format!("/data/{protected}/slots/1/network"), b"");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("could not be fetched") && body.contains("no block arrived"), "{body}");
    let used = d.space()["quotaUsedBytes"].as_u64().expect("used");
    assert!(used < 1024, "only the manifest is stored, no block: {used} bytes used");
}

/// A slot is kept only if it hashes to its slot root. A peer hands out a verifiable manifest of a real
/// dataset whose slot roots are swapped (slot 1 claims slot 2's root): every block verifies against the tree,
/// but the slot does not match the root the manifest claims, so it is dropped with a 422.
#[test]
fn a_slot_that_does_not_match_its_slot_root_is_dropped() {
    let a = TestNode::start_default();
    let file = data(6 * DEFAULT_BLOCK_SIZE + 99, 13);
    let (_, protected) = upload_and_protect(&a, &file, 3, 1);
    // The node's manifest, rebuilt independently from the bytes (pure protocol code), then two slot roots
    // swapped.
    let manifest = expected_verifiable_manifest(&file, 2, 1);
    let genuine = codex_protocol::Manifest::cid_of(&manifest.encode());
    assert_eq!(codex_protocol::cid::format_cid(&genuine), protected, "protect matches the pure pipeline");
    let mut fake = manifest.clone();
    let verification = fake.erasure.as_mut().and_then(|e| e.verification.as_mut()).expect("verifiable");
    verification.slot_roots.swap(1, 2);
    let fake_bytes = fake.encode();
    let fake_cid = codex_protocol::Manifest::cid_of(&fake_bytes);

    let victim = TestNode::start(NodeOptions::bootstrapped_from(&a));
    let stop = Arc::new(AtomicBool::new(false));
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let server = {
        let (id, addr, stop) = (victim.peer_id, victim.p2p_addr.clone(), stop.clone());
        std::thread::spawn(move || {
            serve_raw(id, addr, stop, started_tx, move |message| {
                let mut reply = Message::default();
                for entry in message.wantlist.entries.iter().filter(|e| !e.cancel) {
                    if entry.address != BlockAddress::Cid(fake_cid) {
                        continue;
                    }
                    match entry.want_type {
                        WantType::WantHave => reply.presences.push(BlockPresence {
                            address: entry.address.clone(),
                            kind: PresenceType::Have,
                            price: vec![0; 32],
                        }),
                        WantType::WantBlock => reply.payload.push(BlockDelivery {
                            cid: fake_cid,
                            data: fake_bytes.clone().into(),
                            address: entry.address.clone(),
                            proof: None,
                        }),
                    }
                }
                reply
            })
        })
    };
    let peer = started_rx.recv_timeout(WAIT).expect("the manifest server started");
    wait_until("the victim to see the manifest server", WAIT, || victim.is_connected_to(&peer.peer_id));
    let fake_text = codex_protocol::cid::format_cid(&fake_cid);
    let (status, body) = victim.post(&format!("/data/{fake_text}/slots/1/network"), b"");
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("does not match its slot root"), "{body}");
    let space = victim.space();
    assert_eq!(space["quotaReservedBytes"].as_u64(), Some(0), "the slot's claim is returned: {space}");
    // The genuine manifest's slot 1 is fine.
    let (status, body) = victim.post(&format!("/data/{protected}/slots/1/network"), b"");
    assert_eq!(status, 200, "{body}");
    stop.store(true, Ordering::Relaxed);
    server.join().expect("server thread");
}

/// The verifiable manifest of `file` protected with K = `k`, M = `m`, computed with the protocol crate alone
/// (erasure layout and codec, CodexTree, Poseidon2 slot trees): what `POST /data/{cid}/protect` must produce.
fn expected_verifiable_manifest(file: &[u8], k: u64, m: u64) -> codex_protocol::Manifest {
    use codex_protocol::erasure::{EMPTY_DIGEST, ErasureCodec, ErasureLayout, ErasureParams};
    use codex_protocol::manifest::ErasureInfo;
    use codex_protocol::slots::{DEFAULT_CELL_SIZE, SlotLayout, SlotTree, slot_block_digest, verifiable_manifest};
    let bs = DEFAULT_BLOCK_SIZE;
    let params = ErasureParams::new(k, m).expect("params");
    let layout = ErasureLayout::new(params, file.len().div_ceil(bs) as u64).expect("layout");
    let mut blocks = vec![vec![0u8; bs]; layout.encoded_blocks() as usize];
    for (block, chunk) in blocks.iter_mut().zip(file.chunks(bs)) {
        block[..chunk.len()].copy_from_slice(chunk);
    }
    let codec = ErasureCodec::new(params).expect("codec");
    for group in 0..layout.groups() {
        let members: Vec<usize> = layout.group_members(group).map(|i| i as usize).collect();
        let mut shards: Vec<Vec<u8>> = members.iter().map(|i| blocks[*i].clone()).collect();
        let mut refs: Vec<&mut [u8]> = shards.iter_mut().map(Vec::as_mut_slice).collect();
        codec.encode_group(&mut refs).expect("encode");
        for (shard, index) in shards.into_iter().zip(&members).skip(k as usize) {
            blocks[*index] = shard;
        }
    }
    let leaves: Vec<_> = (0..layout.encoded_blocks())
        .map(|i| if layout.is_padding(i) { EMPTY_DIGEST } else { codex_protocol::cid::sha256(&blocks[i as usize]) })
        .collect();
    let original_tree = CodexTree::new(leaves[..layout.original_blocks() as usize].to_vec()).expect("tree");
    let original =
        codex_protocol::Manifest::new_unprotected(original_tree.root_cid(), bs as u64, file.len() as u64, None, None);
    let protected = codex_protocol::Manifest {
        tree_cid: CodexTree::new(leaves).expect("tree").root_cid(),
        dataset_size: layout.encoded_blocks() * bs as u64,
        erasure: Some(ErasureInfo {
            ec_k: k,
            ec_m: m,
            original_tree_cid: original.tree_cid,
            original_dataset_size: original.dataset_size,
            protected_strategy: 1,
            verification: None,
        }),
        ..original
    };
    let slots = SlotLayout::from_manifest(&protected, DEFAULT_CELL_SIZE).expect("slot layout");
    let digests: Vec<_> = (0..layout.encoded_blocks())
        .map(|i| {
            let block: &[u8] = if slots.is_empty_block(i) { &[] } else { &blocks[i as usize] };
            slot_block_digest(&slots, i, block).expect("digest")
        })
        .collect();
    let roots: Vec<_> = (0..slots.num_slots())
        .map(|s| {
            let range = slots.slot_blocks(s).expect("slot");
            SlotTree::new(&slots, &digests[range.start as usize..range.end as usize]).expect("slot tree").root()
        })
        .collect();
    let verify = codex_protocol::slots::verify_root(&roots).expect("verify root");
    verifiable_manifest(&protected, DEFAULT_CELL_SIZE, &roots, verify).expect("verifiable")
}

/// Uploads `file` to `node` and protects it into `nodes` slots tolerating `tolerance` lost; (original CID,
/// protected CID).
fn upload_and_protect(node: &TestNode, file: &[u8], nodes: u64, tolerance: u64) -> (String, String) {
    let cid = node.upload(file);
    let body = format!(r#"{{"nodes": {nodes}, "tolerance": {tolerance}}}"#);
    let (status, answer) = node.post(&format!("/data/{cid}/protect"), body.as_bytes());
    assert_eq!(status, 200, "{answer}");
    let item: serde_json::Value = serde_json::from_str(&answer).expect("json");
    (cid, item["cid"].as_str().expect("cid").to_owned())
}
