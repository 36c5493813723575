//! Several real `codex` processes over loopback TCP: discovery through the DHT, block exchange with two
//! providers, a provider killed mid-download, a lying peer, a restart in the middle of a fetch, and the Status
//! community-history flow. The lying peer is a real libp2p host written here that speaks blockexc and sends
//! corrupted, mis-proven and unrequested blocks.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly on purpose")]

use codex_actors::network::{put_varint, read_frame};
use codex_protocol::blockexc::{
    BlockAddress, BlockDelivery, BlockPresence, Message, PROTOCOL_ID, PresenceType, WantType,
};
use codex_protocol::cid::{block_cid, parse_cid};
use codex_protocol::{CodexTree, DEFAULT_BLOCK_SIZE};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_codex");
const WAIT: Duration = Duration::from_secs(120);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

struct Node {
    child: Option<Child>,
    url: String,
    p2p_port: u16,
    log: PathBuf,
}

impl Node {
    /// Starts a node with its own API and libp2p ports, bootstrapped from `bootstrap` (an `spr:`).
    fn start(dir: &Path, bootstrap: Option<&str>) -> Node {
        Self::start_on(dir, free_port(), free_port(), bootstrap)
    }

    fn start_on(dir: &Path, api_port: u16, p2p_port: u16, bootstrap: Option<&str>) -> Node {
        std::fs::create_dir_all(dir).expect("node dir");
        static STARTS: AtomicUsize = AtomicUsize::new(0);
        let log = dir.with_extension(format!("{}.log", STARTS.fetch_add(1, Ordering::Relaxed)));
        let listen = format!("/ip4/127.0.0.1/tcp/{p2p_port}");
        let mut command = Command::new(BIN);
        command
            .args(["--data-dir", dir.to_str().expect("utf-8"), "--api-port", &api_port.to_string()])
            .args(["--listen-addrs", &listen, "--nat", "none", "--storage-quota", "2GiB"])
            .args(["--log-format", "nocolors", "--log-level", "info"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"));
        if let Some(spr) = bootstrap {
            command.args(["--bootstrap-node", spr]);
        }
        let child = command.spawn().expect("codex starts");
        let node = Node { child: Some(child), url: format!("http://127.0.0.1:{api_port}/api/codex/v1"), p2p_port, log };
        let deadline = Instant::now() + WAIT;
        while agent().get(format!("{}/space", node.url)).call().is_err() {
            assert!(Instant::now() < deadline, "node did not answer within {WAIT:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
        node
    }

    fn get(&self, path: &str) -> (u16, Vec<u8>) {
        let mut response = agent().get(format!("{}{path}", self.url)).call().expect("request");
        let status = response.status().as_u16();
        (status, response.body_mut().with_config().limit(u64::MAX).read_to_vec().expect("body"))
    }

    fn post(&self, path: &str, body: &[u8]) -> (u16, String) {
        let mut response = agent().post(format!("{}{path}", self.url)).send(body).expect("request");
        let status = response.status().as_u16();
        (status, response.body_mut().read_to_string().expect("body"))
    }

    fn upload(&self, bytes: &[u8]) -> String {
        let (status, cid) = self.post("/data", bytes);
        assert_eq!(status, 200, "upload: {cid}");
        cid
    }

    fn spr(&self) -> String {
        let mut response = agent().get(format!("{}/spr", self.url)).header("Accept", "text/plain").call().expect("spr");
        assert_eq!(response.status().as_u16(), 200);
        response.body_mut().read_to_string().expect("spr body")
    }

    fn peer_id(&self) -> PeerId {
        let mut response =
            agent().get(format!("{}/peerid", self.url)).header("Accept", "text/plain").call().expect("peerid");
        response.body_mut().read_to_string().expect("id").parse().expect("peer id")
    }

    fn p2p_addr(&self) -> Multiaddr {
        format!("/ip4/127.0.0.1/tcp/{}", self.p2p_port).parse().expect("multiaddr")
    }

    fn is_local(&self, cid: &str) -> bool {
        let (_, body) = self.get("/data");
        String::from_utf8_lossy(&body).contains(cid)
    }

    fn wait_local(&self, cid: &str) {
        let deadline = Instant::now() + WAIT;
        while !self.is_local(cid) {
            assert!(Instant::now() < deadline, "dataset did not arrive within {WAIT:?}; log: {}", self.log_text());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, signal: Signal) {
        if let Some(child) = &self.child {
            kill(Pid::from_raw(child.id() as i32), signal).expect("signal");
        }
    }

    /// SIGTERM and wait for a clean exit.
    fn stop(mut self) {
        self.signal(Signal::SIGTERM);
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                assert!(status.success(), "clean exit: {status}");
                return;
            }
            assert!(Instant::now() < deadline, "node did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn download_through_the_dht_from_a_node_never_met() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Node::start(&dir.path().join("a"), None);
    let b = Node::start(&dir.path().join("b"), Some(&a.spr()));
    let c = Node::start(&dir.path().join("c"), Some(&b.spr()));
    let file = data(3_000_000, 1);
    let cid = a.upload(&file);

    // C knows only B; the DHT tells it A provides the dataset.
    let (status, manifest) = c.get(&format!("/data/{cid}/network/manifest"));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&manifest));
    let manifest: serde_json::Value = serde_json::from_slice(&manifest).expect("json");
    assert_eq!(manifest["manifest"]["datasetSize"], 3_000_000);
    let (status, body) = c.get(&format!("/data/{cid}/network/stream"));
    assert_eq!(status, 200);
    assert!(body == file, "streamed bytes differ");
    c.wait_local(&cid);
    assert!(!b.is_local(&cid), "B only relayed discovery");

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
    let (status, body) = c.get(&format!("/connect/{}", a.peer_id()));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (status, body) = b.get(&format!("/connect/{}?addrs={}", c.peer_id(), c.p2p_addr()));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let info: serde_json::Value = serde_json::from_slice(&c.get("/debug/info").1).expect("json");
    assert!(info["spr"].as_str().is_some_and(|s| s.starts_with("spr:")));
    let nodes = info["table"]["nodes"].as_array().expect("nodes");
    assert!(nodes.iter().any(|n| n["peerId"] == a.peer_id().to_string()), "{info}");
    assert_eq!(c.get("/connect/nonsense").0, 400);
}

/// Reads a network stream in a thread; returns the bytes read so far through a shared counter.
fn stream_in_background(url: String) -> (std::thread::JoinHandle<Vec<u8>>, Arc<std::sync::atomic::AtomicU64>) {
    let read = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = read.clone();
    let handle = std::thread::spawn(move || {
        let mut response = agent().get(url).call().expect("stream");
        assert_eq!(response.status().as_u16(), 200);
        let mut reader = response.body_mut().with_config().limit(u64::MAX).reader();
        let mut out = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = reader.read(&mut buf).expect("stream read");
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
            counter.store(out.len() as u64, Ordering::Relaxed);
        }
    });
    (handle, read)
}

#[test]
fn two_providers_and_one_is_killed_mid_download() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Node::start(&dir.path().join("a"), None);
    let b = Node::start(&dir.path().join("b"), Some(&a.spr()));
    let file = data(96 << 20, 2);
    let cid = a.upload(&file);
    assert_eq!(b.post(&format!("/data/{cid}/network"), b"").0, 200);
    b.wait_local(&cid);

    let c = Node::start(&dir.path().join("c"), Some(&a.spr()));
    assert_eq!(c.get(&format!("/connect/{}?addrs={}", b.peer_id(), b.p2p_addr())).0, 200);
    let (reader, read) = stream_in_background(format!("{}/data/{cid}/network/stream", c.url));
    let deadline = Instant::now() + WAIT;
    while read.load(Ordering::Relaxed) < (8 << 20) {
        assert!(Instant::now() < deadline, "download did not start");
        std::thread::sleep(Duration::from_millis(5));
    }
    let a_log = a.log.clone();
    drop(a); // kill -9 one provider
    let body = reader.join().expect("reader");
    assert!(body == file, "the download completed from the remaining provider");
    c.wait_local(&cid);
    let served_by_a = std::fs::read_to_string(a_log).unwrap_or_default();
    assert!(!served_by_a.contains("panicked"));
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
    let a = Node::start(&dir.path().join("a"), None);
    let file = data(128 << 20, 3);
    let cid = a.upload(&file);
    let (api, p2p) = (free_port(), free_port());
    let c = Node::start_on(&dir.path().join("c"), api, p2p, Some(&a.spr()));
    assert_eq!(c.post(&format!("/data/{cid}/network"), b"").0, 200);
    // Stop as soon as some blocks are on disk (the segment grows as they arrive).
    let deadline = Instant::now() + WAIT;
    while segment_bytes(&dir.path().join("c")) < (4 << 20) {
        assert!(Instant::now() < deadline, "download did not start");
        std::thread::sleep(Duration::from_millis(1));
    }
    c.stop();

    let c = Node::start_on(&dir.path().join("c"), api, p2p, Some(&a.spr()));
    c.wait_local(&cid);
    let log = c.log_text();
    let found = log.lines().find(|l| l.contains("download in progress found")).expect("the download was found");
    let received: u64 = found
        .split("received=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("received count");
    assert!(received >= 64, "at least the streamed blocks survived the restart: {found}");
    assert!(received < 2048, "the download was interrupted, not finished: {found}");
    let (status, body) = c.get(&format!("/data/{cid}"));
    assert_eq!(status, 200);
    assert!(body == file, "resumed download is intact");
}

#[test]
fn community_history_flow() {
    let dir = tempfile::tempdir().expect("tempdir");
    let control = Node::start(&dir.path().join("control"), None);
    let archives: Vec<Vec<u8>> = (0..3).map(|i| data(200_000 + i * 77_777, 10 + i as u64)).collect();
    let cids: Vec<String> = archives.iter().map(|a| control.upload(a)).collect();
    let index = serde_json::json!({ "archives": cids }).to_string();
    let index_cid = control.upload(index.as_bytes());

    // A member knows the index CID and one bootstrap node (not the control node's data).
    let bootstrap = Node::start(&dir.path().join("bootstrap"), Some(&control.spr()));
    let member = Node::start(&dir.path().join("member"), Some(&bootstrap.spr()));
    let (status, body) = member.get(&format!("/data/{index_cid}/network/stream"));
    assert_eq!(status, 200);
    let listed: serde_json::Value = serde_json::from_slice(&body).expect("index json");
    let wanted = [0usize, 2];
    for i in wanted {
        let cid = listed["archives"][i].as_str().expect("cid");
        assert_eq!(member.post(&format!("/data/{cid}/network"), b"").0, 200);
        member.wait_local(cid);
    }
    // The control node leaves; the member serves what it fetched at once to a third member.
    drop(control);
    let third = Node::start(&dir.path().join("third"), Some(&member.spr()));
    for i in wanted {
        let (status, body) = third.get(&format!("/data/{}/network/stream", cids[i]));
        assert_eq!(status, 200);
        assert!(body == archives[i], "archive {i} from the member");
    }
    assert!(!member.is_local(&cids[1]), "the member fetched only what it wanted");
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

/// A libp2p host that claims to have every block and answers each request with a lie.
fn run_liar(victim: PeerId, victim_addr: Multiaddr, file: Vec<u8>, tree_cid: String, stop: Arc<AtomicBool>) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async move {
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
        let protocol = StreamProtocol::new(PROTOCOL_ID);
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(libp2p::identity::Keypair::generate_secp256k1())
            .with_tokio()
            .with_tcp(Default::default(), libp2p::noise::Config::new, libp2p::yamux::Config::default)
            .expect("tcp")
            .with_behaviour(|_| libp2p_stream::Behaviour::new())
            .expect("behaviour")
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build();
        let mut control = swarm.behaviour().new_control();
        let mut incoming = control.accept(protocol.clone()).expect("accept");
        swarm.dial(victim_addr.with(libp2p::multiaddr::Protocol::P2p(victim))).expect("dial");
        tokio::spawn(async move { while swarm.next().await.is_some() {} });
        let stream = control.open_stream(victim, protocol).await.expect("outbound stream");
        let (_, mut out) = stream.split();
        let (_, inbound) = incoming.next().await.expect("victim opens its stream");
        let mut inbound = futures::io::BufReader::new(inbound);
        let mut lies = 0usize;
        while !stop.load(Ordering::Relaxed) {
            let Ok(Ok(Some(frame))) = tokio::time::timeout(Duration::from_millis(200), read_frame(&mut inbound)).await
            else {
                continue;
            };
            let Ok(message) = Message::decode(&frame) else { continue };
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
            // Like the original, at most 20 blocks per message (the node refuses messages of more than 64).
            let mut messages = vec![Message { presences: std::mem::take(&mut reply.presences), ..Message::default() }];
            messages.extend(
                reply.payload.chunks(20).map(|chunk| Message { payload: chunk.to_vec(), ..Message::default() }),
            );
            for message in messages.into_iter().filter(|m| !m.presences.is_empty() || !m.payload.is_empty()) {
                let body = message.encode();
                let mut frame = Vec::new();
                put_varint(&mut frame, body.len() as u64);
                frame.extend_from_slice(&body);
                if out.write_all(&frame).await.is_err() {
                    return;
                }
            }
        }
    });
}

#[test]
fn lying_peer_is_rejected_and_the_download_completes_from_an_honest_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let honest = Node::start(&dir.path().join("honest"), None);
    // More blocks than one peer may owe at once (256), so the liar is sure to be asked for some.
    let file = data(64 << 20, 4);
    let cid = honest.upload(&file);
    let (_, manifest) = honest.get(&format!("/data/{cid}/network/manifest"));
    let manifest: serde_json::Value = serde_json::from_slice(&manifest).expect("json");
    let tree_cid = manifest["manifest"]["treeCid"].as_str().expect("tree").to_owned();

    let victim = Node::start(&dir.path().join("victim"), Some(&honest.spr()));
    let stop = Arc::new(AtomicBool::new(false));
    let liar = {
        let (id, addr, file, stop) = (victim.peer_id(), victim.p2p_addr(), file.clone(), stop.clone());
        std::thread::spawn(move || run_liar(id, addr, file, tree_cid, stop))
    };
    let deadline = Instant::now() + WAIT;
    loop {
        let info: serde_json::Value = serde_json::from_slice(&victim.get("/debug/info").1).expect("json");
        if info["table"]["nodes"].as_array().is_some_and(|n| n.len() >= 2) {
            break;
        }
        assert!(Instant::now() < deadline, "the liar did not connect");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, body) = victim.get(&format!("/data/{cid}/network/stream"));
    stop.store(true, Ordering::Relaxed);
    assert_eq!(status, 200);
    assert!(body == file, "only verified blocks were stored");
    let _ = liar.join();
    let log = victim.log_text();
    assert!(log.contains("rejected a delivered block"), "bad blocks were seen and rejected");
    assert!(log.contains("banning a misbehaving peer"), "the liar was disconnected");
    assert!(!log.contains("panicked"));
    assert_eq!(victim.get("/space").0, 200, "the victim is still serving");
}
