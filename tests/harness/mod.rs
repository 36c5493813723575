//! In-process multi-node test harness, shared by the network test files (`mod harness;`).
//!
//! [`TestNode::start`] builds a whole node inside the test process from the same public parts `main` uses:
//! a temporary data dir, a fresh secp256k1 key, a [`NodeConfig`] listening for libp2p on `127.0.0.1:0`, and
//! the REST app of [`codex::rest::app`] served by actix-web on `127.0.0.1:0`. Each node runs on its own thread
//! with its own actix `System`, so nodes share nothing but the process. A node stops cleanly
//! ([`TestNode::stop`]: HTTP server drained, then `StopNode`) or "crashes" ([`TestNode::crash`], also on drop:
//! the HTTP server and the actor system are torn down without `StopNode`, which closes its sockets at once).
//!
//! [`Api`] is a blocking REST client for one node (in-process or a `codex` process, see [`binary`]); every
//! wait goes through [`wait_for`], which polls state with a bounded timeout and names what it waited for.
//! [`market`] runs a marketplace testnet (anvil, contracts, proving keys) for `codex` processes.
//! [`peer`] builds raw libp2p hosts (lying or hostile peers) that speak the node's protocols.

#![allow(dead_code)] // each test file uses a different part of the harness

pub mod binary;
pub mod market;
pub mod peer;

use actix::Addr;
use actix_web::HttpServer;
use actix_web::dev::ServerHandle;
use codex::metrics::Metrics;
use codex::rest::{self, ApiState, CorsOrigin};
use codex::telemetry::LogControl;
use codex_actors::blockexc::BlockExchangeConfig;
use codex_actors::maintenance::MaintenanceConfig;
use codex_actors::network::{Nat, NetworkConfig, parse_bootstrap};
use codex_actors::node::{NodeActor, NodeConfig, StopNode};
use codex_actors::store::StoreConfig;
use libp2p::{Multiaddr, PeerId};
use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The longest any single wait in these tests may take.
pub const WAIT: Duration = Duration::from_secs(60);

/// A blocking HTTP client that reports error statuses as responses.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

/// A port free at the time of the call (for binaries, which take ports on the command line).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// `len` pseudo-random bytes, the same for the same `seed`.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = vec![0u8; len];
    for chunk in out.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
    out
}

/// Polls `probe` until it returns `Some`, at most `timeout`; panics naming `what` otherwise.
pub fn wait_for<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Polls `condition` until it holds, at most `timeout`; panics naming `what` otherwise.
pub fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    wait_for(what, timeout, || condition().then_some(()))
}

/// A blocking client of one node's REST API.
#[derive(Debug, Clone)]
pub struct Api {
    /// `http://127.0.0.1:<port>/api/codex/v1`
    pub url: String,
}

impl Api {
    pub fn get(&self, path: &str) -> (u16, Vec<u8>) {
        let mut response = agent().get(format!("{}{path}", self.url)).call().expect("request");
        let status = response.status().as_u16();
        (status, response.body_mut().with_config().limit(u64::MAX).read_to_vec().expect("body"))
    }

    pub fn get_text(&self, path: &str) -> (u16, String) {
        let (status, body) = self.get(path);
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    pub fn post(&self, path: &str, body: &[u8]) -> (u16, String) {
        let mut response = agent().post(format!("{}{path}", self.url)).send(body).expect("request");
        let status = response.status().as_u16();
        (status, response.body_mut().read_to_string().expect("body"))
    }

    pub fn delete(&self, path: &str) -> u16 {
        agent().delete(format!("{}{path}", self.url)).call().expect("request").status().as_u16()
    }

    /// Uploads `bytes`; the manifest CID.
    pub fn upload(&self, bytes: &[u8]) -> String {
        let (status, cid) = self.post("/data", bytes);
        assert_eq!(status, 200, "upload: {cid}");
        cid
    }

    /// A local dataset's bytes.
    pub fn download(&self, cid: &str) -> Vec<u8> {
        let (status, body) = self.get(&format!("/data/{cid}"));
        assert_eq!(status, 200, "GET /data/{cid}: {}", String::from_utf8_lossy(&body));
        body
    }

    /// A dataset's bytes through the network stream (fetched as needed).
    pub fn stream(&self, cid: &str) -> Vec<u8> {
        let (status, body) = self.get(&format!("/data/{cid}/network/stream"));
        assert_eq!(status, 200, "GET /data/{cid}/network/stream: {}", String::from_utf8_lossy(&body));
        body
    }

    /// Starts fetching a dataset in the background (`POST /data/{cid}/network`).
    pub fn fetch(&self, cid: &str) {
        let (status, body) = self.post(&format!("/data/{cid}/network"), b"");
        assert_eq!(status, 200, "POST /data/{cid}/network: {body}");
    }

    pub fn json(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).expect("json")
    }

    /// The node's signed peer record, once it has an address to announce.
    pub fn spr(&self) -> String {
        wait_for("the node's SPR", WAIT, || {
            let mut response = agent().get(format!("{}/spr", self.url)).header("Accept", "text/plain").call().ok()?;
            (response.status().as_u16() == 200).then(|| response.body_mut().read_to_string().expect("spr"))
        })
    }

    pub fn peer_id(&self) -> PeerId {
        let mut response =
            agent().get(format!("{}/peerid", self.url)).header("Accept", "text/plain").call().expect("peerid");
        response.body_mut().read_to_string().expect("id").parse().expect("peer id")
    }

    /// `GET /debug/info`.
    pub fn info(&self) -> serde_json::Value {
        self.json("/debug/info")
    }

    /// The libp2p listen address, from `/debug/info`.
    pub fn p2p_addr(&self) -> Multiaddr {
        self.listen_addr("a libp2p listen address", |a| {
            a.iter().any(|p| matches!(p, libp2p::multiaddr::Protocol::Tcp(port) if port != 0))
        })
    }

    /// The first listen address in `/debug/info` that `wanted` accepts, once there is one.
    pub fn listen_addr(&self, what: &str, wanted: impl Fn(&Multiaddr) -> bool) -> Multiaddr {
        wait_for(what, WAIT, || {
            let info = self.info();
            let addrs = info["addrs"].as_array()?.clone();
            addrs.iter().filter_map(|a| a.as_str()?.parse::<Multiaddr>().ok()).find(|a| wanted(a))
        })
    }

    /// `GET /debug/info`, or `None` when the node does not answer it.
    pub fn try_info(&self) -> Option<serde_json::Value> {
        let mut response = agent().get(format!("{}/debug/info", self.url)).call().ok()?;
        if response.status().as_u16() != 200 {
            return None;
        }
        serde_json::from_slice(&response.body_mut().read_to_vec().ok()?).ok()
    }

    /// Peers the node is connected to now (`seen` rows of `/debug/info`).
    pub fn connected_peers(&self) -> Vec<PeerId> {
        let info = self.info();
        info["table"]["nodes"]
            .as_array()
            .map(|nodes| {
                nodes.iter().filter(|n| n["seen"] == true).filter_map(|n| n["peerId"].as_str()?.parse().ok()).collect()
            })
            .unwrap_or_default()
    }

    /// Every peer `/debug/info` lists (routing table and connections).
    pub fn known_peers(&self) -> Vec<PeerId> {
        let info = self.info();
        info["table"]["nodes"]
            .as_array()
            .map(|nodes| nodes.iter().filter_map(|n| n["peerId"].as_str()?.parse().ok()).collect())
            .unwrap_or_default()
    }

    pub fn is_connected_to(&self, peer: &PeerId) -> bool {
        self.connected_peers().contains(peer)
    }

    /// `/connect/{peer}?addrs=…`, then waits until the node lists the peer as connected. (A connect that
    /// races a dial the node started itself, through the DHT, may be refused; the connection is what counts.)
    pub fn connect(&self, peer: PeerId, addr: &Multiaddr) {
        if self.is_connected_to(&peer) {
            return;
        }
        let (status, body) = self.get_text(&format!("/connect/{peer}?addrs={addr}"));
        wait_until(&format!("a connection to {peer} (connect answered {status}: {body})"), WAIT, || {
            self.is_connected_to(&peer)
        });
    }

    pub fn is_local(&self, cid: &str) -> bool {
        let (status, body) = self.get("/data");
        assert_eq!(status, 200);
        String::from_utf8_lossy(&body).contains(cid)
    }

    /// Waits until `cid` is a local dataset (listed by `/data`).
    pub fn wait_local(&self, cid: &str, timeout: Duration) {
        wait_until(&format!("dataset {cid} to be local"), timeout, || self.is_local(cid));
    }

    /// `GET /space`.
    pub fn space(&self) -> serde_json::Value {
        self.json("/space")
    }

    /// Waits until the node answers `/space`.
    pub fn wait_ready(&self, timeout: Duration) {
        wait_until(&format!("{} to answer", self.url), timeout, || self.is_ready());
    }

    /// True when the node answers `GET /space`.
    pub fn is_ready(&self) -> bool {
        self.is_ready_within(WAIT)
    }

    /// True when the node answers `GET /space` within `timeout` (a node that accepts but does not answer yet
    /// cannot hold the caller past its own deadline).
    pub fn is_ready_within(&self, timeout: Duration) -> bool {
        let agent: ureq::Agent =
            ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(timeout)).build().into();
        agent.get(format!("{}/space", self.url)).call().is_ok_and(|r| r.status().as_u16() == 200)
    }

    /// Reads the network stream of `cid` on a background thread; the bytes read so far are counted in the
    /// returned counter and the thread returns them all.
    pub fn stream_in_background(
        &self,
        cid: &str,
    ) -> (JoinHandle<Vec<u8>>, std::sync::Arc<std::sync::atomic::AtomicU64>) {
        use std::sync::atomic::Ordering;
        let url = format!("{}/data/{cid}/network/stream", self.url);
        let read = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
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
}

/// How to start a [`TestNode`].
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// SPRs (or `/p2p/` multiaddrs) of bootstrap nodes.
    pub bootstrap: Vec<String>,
    pub quota: u64,
    pub exchange: BlockExchangeConfig,
    /// The data dir; a fresh temporary one when `None`. The node key is fresh at every start either way.
    pub dir: Option<PathBuf>,
    /// How long stored data lives, and how often expired data is swept.
    pub block_ttl: Duration,
    pub maintenance_interval: Duration,
}

impl Default for NodeOptions {
    fn default() -> Self {
        Self {
            bootstrap: Vec::new(),
            quota: 2 << 30,
            exchange: BlockExchangeConfig::default(),
            dir: None,
            block_ttl: Duration::from_secs(30 * 86_400),
            maintenance_interval: Duration::from_secs(600),
        }
    }
}

impl NodeOptions {
    /// Default options, bootstrapped from `node`.
    pub fn bootstrapped_from(node: &Api) -> Self {
        Self { bootstrap: vec![node.spr()], ..Self::default() }
    }
}

/// What the node thread hands back once it serves.
struct Started {
    api_addr: SocketAddr,
    server: ServerHandle,
}

/// A whole node running inside the test process.
pub struct TestNode {
    api: Api,
    pub peer_id: PeerId,
    /// The libp2p address it listens on.
    pub p2p_addr: Multiaddr,
    pub dir: PathBuf,
    server: ServerHandle,
    /// Tells the node thread whether to send `StopNode` once the HTTP server returns.
    clean_stop: mpsc::Sender<bool>,
    thread: Option<JoinHandle<()>>,
    _tmp: Option<tempfile::TempDir>,
}

impl std::ops::Deref for TestNode {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl TestNode {
    /// A node with default options and no bootstrap node.
    pub fn start_default() -> TestNode {
        Self::start(NodeOptions::default())
    }

    /// Starts a node on its own thread and returns once its REST API, SPR and libp2p listener are up.
    pub fn start(options: NodeOptions) -> TestNode {
        let (tmp, dir) = match &options.dir {
            Some(dir) => (None, dir.clone()),
            None => {
                let tmp = tempfile::tempdir().expect("tempdir");
                let dir = tmp.path().to_owned();
                (Some(tmp), dir)
            }
        };
        let key = libp2p::identity::Keypair::generate_secp256k1();
        let peer_id = key.public().to_peer_id();
        let config = node_config(&dir, key, &options);
        let (started_tx, started_rx) = mpsc::channel();
        let (clean_tx, clean_rx) = mpsc::channel::<bool>();
        let thread = std::thread::Builder::new()
            .name(format!("test-node-{}", short_id(&peer_id)))
            .spawn(move || run_node(config, started_tx, clean_rx))
            .expect("node thread");
        let started = match started_rx.recv_timeout(WAIT) {
            Ok(Ok(started)) => started,
            Ok(Err(err)) => panic!("the node did not start: {err}"),
            Err(err) => panic!("the node did not start within {WAIT:?}: {err}"),
        };
        let api = Api { url: format!("http://{}/api/codex/v1", started.api_addr) };
        api.wait_ready(WAIT);
        let p2p_addr = api.p2p_addr();
        api.spr();
        TestNode {
            api,
            peer_id,
            p2p_addr,
            dir,
            server: started.server,
            clean_stop: clean_tx,
            thread: Some(thread),
            _tmp: tmp,
        }
    }

    pub fn api(&self) -> &Api {
        &self.api
    }

    /// Stops the node as SIGTERM does: requests in flight finish, then `StopNode` closes the repository.
    pub fn stop(mut self) {
        self.shut(true);
    }

    /// Stops the node abruptly: connections close, no `StopNode`, the repository is not closed cleanly.
    pub fn crash(mut self) {
        self.shut(false);
    }

    fn shut(&mut self, clean: bool) {
        let Some(thread) = self.thread.take() else { return };
        let _ = self.clean_stop.send(clean);
        drop(self.server.stop(clean));
        let (done_tx, done_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = done_tx.send(thread.join().is_ok());
        });
        match done_rx.recv_timeout(WAIT) {
            Ok(true) => {}
            Ok(false) => panic!("the node thread panicked"),
            Err(_) => panic!("the node did not stop within {WAIT:?}"),
        }
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Do not stack a second panic on the first one.
            if let Some(thread) = self.thread.take() {
                let _ = self.clean_stop.send(false);
                drop(self.server.stop(false));
                drop(thread);
            }
            return;
        }
        self.shut(false);
    }
}

/// The last characters of a peer id, for thread names.
fn short_id(peer: &PeerId) -> String {
    let text = peer.to_string();
    text.chars().rev().take(6).collect::<Vec<_>>().into_iter().rev().collect()
}

fn node_config(dir: &Path, key: libp2p::identity::Keypair, options: &NodeOptions) -> NodeConfig {
    let bootstrap = options.bootstrap.iter().map(|spr| parse_bootstrap(spr).expect("bootstrap record")).collect();
    NodeConfig {
        data_dir: dir.to_owned(),
        peer_id: key.public().to_peer_id(),
        store: StoreConfig {
            repo_dir: dir.join("repo"),
            quota_max: options.quota,
            block_ttl: Some(options.block_ttl),
            sweep_batch: 1000,
        },
        maintenance: MaintenanceConfig { interval: options.maintenance_interval },
        network: Some(NetworkConfig {
            keypair: key,
            listen_addrs: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("multiaddr")],
            nat: Nat::None,
            bootstrap,
            max_peers: 160,
            agent: "Codex test node".into(),
            relay: Some(Default::default()),
            nat_lan: true,
        }),
        exchange: options.exchange.clone(),
        coding_threads: 2,
        prover: None,
    }
}

/// The node thread: its own actix `System`, the node's actors and its HTTP server.
fn run_node(config: NodeConfig, started: mpsc::Sender<Result<Started, String>>, clean_stop: mpsc::Receiver<bool>) {
    let system = actix_web::rt::System::new();
    system.block_on(async move {
        let node: Addr<NodeActor> = match NodeActor::start(config) {
            Ok(node) => node,
            Err(err) => {
                let _ = started.send(Err(err.to_string()));
                return;
            }
        };
        let state = ApiState::new(node.clone(), Metrics::new(), LogControl::detached());
        let server = match HttpServer::new(move || rest::app(state.clone(), CorsOrigin(None)))
            .workers(2)
            .disable_signals()
            .shutdown_timeout(5)
            .bind(("127.0.0.1", 0))
        {
            Ok(server) => server,
            Err(err) => {
                let _ = started.send(Err(err.to_string()));
                return;
            }
        };
        let api_addr = server.addrs()[0];
        let server = server.run();
        let _ = started.send(Ok(Started { api_addr, server: server.handle() }));
        let _ = server.await;
        if clean_stop.try_recv().unwrap_or(false) {
            let _ = node.send(StopNode).await;
        }
    });
}
