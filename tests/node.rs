//! The `codex` binary as operators run it: restart, kill -9 mid-upload, SIGTERM with an upload in flight,
//! startup refusals, metrics, and the CLI client's exit codes. Real processes on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly on purpose")]

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_codex");
const WAIT: Duration = Duration::from_secs(60);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

struct Node {
    child: Child,
    url: String,
}

impl Node {
    fn start(dir: &Path, extra: &[&str]) -> Node {
        Self::start_env(dir, extra, &[])
    }

    fn start_env(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Node {
        Self::start_full(dir, extra, env, None)
    }

    /// A node whose log (stderr) goes to `log`.
    fn start_logged(dir: &Path, extra: &[&str], log: &Path) -> Node {
        std::fs::File::create(log).expect("log file");
        Self::start_full(dir, extra, &[], Some(log))
    }

    /// Starts the node on a free port. The port is free when picked, but a node of a test running in parallel may
    /// take it first (its network listens on any free port): a node that exits before answering because the port
    /// is taken is started again on another port, a few times. Any other early exit fails the test.
    fn start_full(dir: &Path, extra: &[&str], env: &[(&str, &str)], log: Option<&Path>) -> Node {
        let deadline = Instant::now() + WAIT;
        for _attempt in 0..5 {
            let port = free_port();
            let child = Command::new(BIN)
                .envs(env.iter().copied())
                .args(["--data-dir", dir.to_str().expect("utf-8 path"), "--api-port", &port.to_string()])
                .args(["--storage-quota", "2GiB", "--log-format", "nocolors"])
                .args(extra)
                .stdout(Stdio::null())
                .stderr(log.map_or_else(Stdio::inherit, |log| {
                    Stdio::from(std::fs::OpenOptions::new().append(true).open(log).expect("log file"))
                }))
                .spawn()
                .expect("codex starts");
            let mut node = Node { child, url: format!("http://127.0.0.1:{port}/api/codex/v1") };
            // Each poll has its own timeout: a node that accepts but does not answer cannot stall the deadline.
            let poll: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(2)))
                .build()
                .into();
            loop {
                if poll.get(format!("{}/space", node.url)).call().is_ok() {
                    return node;
                }
                if let Some(status) = node.child.try_wait().expect("child status") {
                    let taken = std::net::TcpListener::bind(("127.0.0.1", port)).is_err();
                    assert!(taken, "the node exited before answering ({status}), and not for its port");
                    break;
                }
                assert!(Instant::now() < deadline, "node did not answer within {WAIT:?}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("the node exited before answering, five times");
    }

    fn get_text(&self, path: &str) -> (u16, String) {
        let mut response = agent().get(format!("{}{path}", self.url)).call().expect("request");
        let status = response.status().as_u16();
        (status, response.body_mut().read_to_string().expect("body"))
    }

    fn get_bytes(&self, path: &str) -> Vec<u8> {
        let mut response = agent().get(format!("{}{path}", self.url)).call().expect("request");
        assert_eq!(response.status().as_u16(), 200, "GET {path}");
        response.body_mut().with_config().limit(u64::MAX).read_to_vec().expect("body")
    }

    fn upload(&self, bytes: Vec<u8>) -> String {
        let mut response = agent().post(format!("{}/data", self.url)).send(&bytes[..]).expect("upload");
        assert_eq!(response.status().as_u16(), 200);
        response.body_mut().read_to_string().expect("cid")
    }

    fn space(&self) -> serde_json::Value {
        serde_json::from_str(&self.get_text("/space").1).expect("json")
    }

    fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).expect("signal");
    }

    fn wait(mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "node did not exit within {WAIT:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed) ^ (i >> 10) as u8).collect()
}

/// `.blk` files in the repository and their total size.
fn segments(dir: &Path) -> (usize, u64) {
    let entries: Vec<PathBuf> = std::fs::read_dir(dir.join("repo/segments"))
        .expect("segments dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "blk"))
        .collect();
    let bytes = entries.iter().map(|p| std::fs::metadata(p).map_or(0, |m| m.len())).sum();
    (entries.len(), bytes)
}

#[test]
fn restart_keeps_data_and_space_is_exact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let files = [data(1, 1), data(70_000, 2), data(1 << 20, 3)];
    let cids: Vec<String> = files.iter().map(|f| node.upload(f.clone())).collect();
    let space = node.space();
    let padded: u64 = files.iter().map(|f| (f.len() as u64).div_ceil(65536) * 65536).sum();
    assert_eq!(space["totalBlocks"], 1 + 2 + 16 + 3);
    let used = space["quotaUsedBytes"].as_u64().expect("used");
    assert!(used > padded && used < padded + 3 * 200, "padded data plus three small manifests: {used}");
    node.signal(Signal::SIGTERM);
    assert!(node.wait().success(), "SIGTERM exits 0");

    let node = Node::start(dir.path(), &[]);
    assert_eq!(node.space(), space, "space is exactly the same after a restart");
    for (cid, file) in cids.iter().zip(&files) {
        assert_eq!(&node.get_bytes(&format!("/data/{cid}")), file);
    }
    node.signal(Signal::SIGINT);
    assert!(node.wait().success(), "SIGINT exits 0");
}

/// A request body that sends `first` bytes, then waits for a signal before sending `rest` bytes.
struct GatedBody {
    first: usize,
    rest: usize,
    sent: usize,
    gate: Option<mpsc::Receiver<()>>,
    started: Option<mpsc::Sender<()>>,
}

impl Read for GatedBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.sent == self.first {
            if let Some(started) = self.started.take() {
                let _ = started.send(());
            }
            if let Some(gate) = self.gate.take() {
                let _ = gate.recv();
            }
        }
        let limit = if self.sent < self.first { self.first } else { self.first + self.rest };
        let n = buf.len().min(limit - self.sent);
        buf[..n].iter_mut().enumerate().for_each(|(i, b)| *b = ((self.sent + i) % 251) as u8);
        self.sent += n;
        Ok(n)
    }
}

/// (body started, release the rest, the upload's (status, body)).
type GatedUpload = (mpsc::Receiver<()>, mpsc::Sender<()>, std::thread::JoinHandle<Option<(u16, String)>>);

fn gated_upload(url: String, first: usize, rest: usize) -> GatedUpload {
    let (started_tx, started_rx) = mpsc::channel();
    let (gate_tx, gate_rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let body = GatedBody { first, rest, sent: 0, gate: Some(gate_rx), started: Some(started_tx) };
        let mut reader = body;
        let response = agent().post(format!("{url}/data")).send(ureq::SendBody::from_reader(&mut reader));
        response.ok().map(|mut r| (r.status().as_u16(), r.body_mut().read_to_string().unwrap_or_default()))
    });
    (started_rx, gate_tx, handle)
}

#[test]
fn kill_9_mid_upload_leaves_nothing_partial() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let kept = node.upload(data(100_000, 7));
    let before = node.space();
    let (started, _gate, _upload) = gated_upload(node.url.clone(), 20 << 20, 20 << 20);
    started.recv_timeout(WAIT).expect("upload under way");
    // Wait until the node has written part of the new dataset.
    let deadline = Instant::now() + WAIT;
    while segments(dir.path()).1 < 200_000 + (1 << 20) {
        assert!(Instant::now() < deadline, "the upload did not reach the disk");
        std::thread::sleep(Duration::from_millis(20));
    }
    node.signal(Signal::SIGKILL);
    assert!(!node.wait().success());

    let node = Node::start(dir.path(), &[]);
    assert_eq!(node.space(), before, "used quota is what it was before the interrupted upload");
    let (_, list) = node.get_text("/data");
    let list: serde_json::Value = serde_json::from_str(&list).expect("json");
    assert_eq!(list["content"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["content"][0]["cid"], kept.as_str());
    assert_eq!(segments(dir.path()), (1, 2 * 65536), "only the kept dataset's blocks are on disk");
}

#[test]
fn sigterm_lets_an_upload_in_flight_finish() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let (started, gate, upload) = gated_upload(node.url.clone(), 3 << 20, 3 << 20);
    started.recv_timeout(WAIT).expect("upload under way");
    node.signal(Signal::SIGTERM);
    std::thread::sleep(Duration::from_millis(200));
    gate.send(()).expect("release the rest of the body");
    let (status, cid) = upload.join().expect("upload thread").expect("response");
    assert_eq!(status, 200, "the in-flight upload completes: {cid}");
    assert!(node.wait().success(), "exit 0 after the upload");

    let node = Node::start(dir.path(), &[]);
    let bytes = node.get_bytes(&format!("/data/{cid}"));
    assert_eq!(bytes.len(), 6 << 20);
    assert!(bytes.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("codex runs")
}

#[test]
fn startup_refuses_unfit_quota_and_readable_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().to_str().expect("utf-8");
    let output = run(&["--data-dir", data_dir, "--storage-quota", "1000000TiB", "--log-format", "none"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("does not fit") && stderr.contains("--storage-quota="), "{stderr}");

    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path().join("key"), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let output = run(&["--data-dir", data_dir, "--storage-quota", "1MiB", "--log-format", "none"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("chmod 600"));

    let output = run(&["--data-dir", data_dir, "--storage-quota", "lots"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a size"));
}

#[test]
fn a_port_in_use_stops_the_node_before_it_starts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().to_str().expect("utf-8");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let base = ["--data-dir", data_dir, "--storage-quota", "1MiB", "--log-format", "none"];
    let output = run(&[&base[..], &["--api-port", &port]].concat());
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("cannot listen for the REST API on 127.0.0.1:{port}")), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!dir.path().join("repo").exists(), "the repository was not opened");

    let output = run(&[&base[..], &["--api-port", "0", "--metrics", "--metrics-port", &port]].concat());
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("cannot listen for metrics on 127.0.0.1:{port}")), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn metrics_and_cli_client() {
    let dir = tempfile::tempdir().expect("tempdir");
    let metrics_port = free_port().to_string();
    let node = Node::start(dir.path(), &["--metrics", "--metrics-port", &metrics_port]);
    let api_url = node.url.trim_end_matches("/api/codex/v1").to_owned();

    let input = dir.path().join("input.bin");
    let content = data(300_000, 9);
    std::fs::write(&input, &content).expect("write input");
    let output = run(&["--api-url", &api_url, "upload", input.to_str().expect("utf-8"), "--quiet"]);
    assert!(output.status.success(), "upload: {}", String::from_utf8_lossy(&output.stderr));
    let cid = String::from_utf8(output.stdout).expect("utf-8").trim().to_owned();
    assert!(cid.starts_with("zDvZRwzm"), "{cid}");

    let out = dir.path().join("out.bin");
    let output = run(&["--api-url", &api_url, "download", &cid, "-o", out.to_str().expect("utf-8"), "--quiet"]);
    assert!(output.status.success(), "download: {}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(std::fs::read(&out).expect("read"), content);

    let output = run(&["--api-url", &api_url, "list"]);
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("input.bin"));
    let output = run(&["--api-url", &api_url, "space", "--json"]);
    assert!(output.status.success());
    let space: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(space["totalBlocks"], 6);

    let missing = "zDvZRwzmC3Q7e7NLkfsPmtgSCfectUc1ssn5xK2rzC9yRz1yeZuK";
    let output = run(&["--api-url", &api_url, "download", missing, "-o", out.to_str().expect("utf-8"), "--quiet"]);
    assert_eq!(output.status.code(), Some(4), "not found");
    let output = run(&["--api-url", &api_url, "download", "notacid", "--quiet"]);
    assert_eq!(output.status.code(), Some(5), "rejected");
    // A port bound but not listening refuses connections, and no other test can take it meanwhile.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into()).expect("bind");
    let port = socket.local_addr().ok().and_then(|a| a.as_socket()).map(|a| a.port()).expect("port");
    let dead = format!("http://127.0.0.1:{port}");
    let output = run(&["--api-url", &dead, "space"]);
    assert_eq!(output.status.code(), Some(3), "unreachable");

    let body = agent()
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .call()
        .expect("metrics")
        .body_mut()
        .read_to_string()
        .expect("text");
    for line in
        ["codex_api_uploads 1", "codex_api_downloads 1", "codex_repostore_blocks 6", "codex_repostore_bytes_reserved 0"]
    {
        assert!(body.contains(line), "{line} in\n{body}");
    }
    assert!(body.contains("codex_repostore_bytes_used "));
}

/// The status code of a raw HTTP/1.1 GET of `path` on `port` with this `Host` header.
fn status_with_host(port: u16, path: &str, host: &str) -> u16 {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").expect("request");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or_else(|| panic!("no status in {answer:?}"))
}

#[test]
fn allowed_hosts_and_unknown_codex_variables() {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("tempdir");
    // deploy/testnet.sh documents CODEX_BIN: such variables are ignored (with a warning), not fatal.
    let env = [("CODEX_BIN", "/opt/codex"), ("CODEX_API_ALLOWED_HOSTS", "codex.test,node1:18080")];
    let node = Node::start_env(dir.path(), &["--api-allowed-hosts", "codex.lan,other.lan:7"], &env);
    let port: u16 =
        node.url.split(':').nth(2).and_then(|p| p.split('/').next()).and_then(|p| p.parse().ok()).expect("port");
    let path = "/api/codex/v1/space";
    // An HTTP/1.0 client may send no Host at all: served.
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    stream.write_all(b"GET /api/codex/v1/space HTTP/1.0\r\n\r\n").expect("request");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"), "{answer}");
    for (host, status) in [
        (format!("127.0.0.1:{port}"), 200),
        (format!("localhost:{port}"), 200),
        ("codex.lan".to_owned(), 200),
        ("other.lan:7".to_owned(), 200),
        ("other.lan:8".to_owned(), 403),
        // The flag wins over the environment, as for every option.
        ("codex.test".to_owned(), 403),
        ("evil.example".to_owned(), 403),
    ] {
        assert_eq!(status_with_host(port, path, &host), status, "Host: {host}");
    }
    drop(node);

    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start_env(dir.path(), &[], &env);
    let port: u16 =
        node.url.split(':').nth(2).and_then(|p| p.split('/').next()).and_then(|p| p.parse().ok()).expect("port");
    assert_eq!(status_with_host(port, path, "codex.test"), 200, "from CODEX_API_ALLOWED_HOSTS");
    assert_eq!(status_with_host(port, path, "node1:18080"), 200);
    assert_eq!(status_with_host(port, path, "node1:18081"), 403);
}

#[test]
fn unknown_codex_variables_are_named_in_a_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().to_str().expect("utf-8");
    // The quota check stops this node right after logging starts: enough to see the warning.
    let output = Command::new(BIN)
        .args(["--data-dir", data_dir, "--storage-quota", "1000000TiB", "--log-format", "nocolors"])
        .env("CODEX_BIN", "/opt/codex")
        .env("CODEX_FLAGS", "--metrics")
        .output()
        .expect("codex runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("does not fit"), "the node got past the configuration: {stderr}");
    assert!(!stderr.contains("unknown field"), "{stderr}");
    assert!(stderr.contains("CODEX_BIN") && stderr.contains("CODEX_FLAGS"), "a warning names them: {stderr}");
}

#[test]
fn bad_addresses_and_foreign_data_dirs_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().to_str().expect("utf-8");
    for (option, value) in [("--listen-addrs", "/foo"), ("--bootstrap-node", "nonsense"), ("--nat", "extip:nowhere")] {
        let output = run(&["--data-dir", data_dir, option, value, "--storage-quota", "1MiB"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{option} {value}: {stderr}");
        assert!(stderr.contains(option.trim_start_matches('-')) && stderr.contains(value), "{stderr}");
    }

    // A listen address that is not on this machine: the error names it and the option to change.
    let unreachable = "/ip4/10.254.254.254/tcp/4000";
    let output = run(&[
        "--data-dir",
        data_dir,
        "--listen-addrs",
        unreachable,
        "--nat",
        "none",
        "--storage-quota",
        "1MiB",
        "--log-format",
        "none",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(unreachable) && stderr.contains("--listen-addrs"), "{stderr}");
    assert!(!stderr.contains("cannot open the repository"), "not a repository problem: {stderr}");
    assert!(!stderr.contains("panicked"), "a clean refusal: {stderr}");

    // A directory of someone else's files is neither used nor chmodded.
    use std::os::unix::fs::PermissionsExt;
    let home = dir.path().join("home");
    std::fs::create_dir(&home).expect("mkdir");
    std::fs::write(home.join("thesis.tex"), b"\\documentclass").expect("write");
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let output = run(&["--data-dir", home.to_str().expect("utf-8"), "--storage-quota", "1MiB", "--log-format", "none"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("thesis.tex") && stderr.contains("--data-dir"), "{stderr}");
    assert_eq!(std::fs::metadata(&home).expect("meta").permissions().mode() & 0o777, 0o755);
    assert!(!home.join("key").exists() && !home.join("repo").exists(), "nothing was created in it");
}

#[test]
fn a_stalled_network_stream_is_released_when_its_client_goes_away() {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("tempdir");
    // Port 0: the network takes any free port, and the SPR names it.
    let a_listen = "/ip4/127.0.0.1/tcp/0".to_owned();
    let a = Node::start(&dir.path().join("a"), &["--listen-addrs", &a_listen, "--nat", "none"]);
    let cid = a.upload(data(3 << 20, 11));
    let mut response = agent().get(format!("{}/spr", a.url)).header("accept", "text/plain").call().expect("spr");
    let spr = response.body_mut().read_to_string().expect("spr text");
    let b_listen = a_listen.clone();
    let b_log = dir.path().join("b.log");
    let b_args = ["--listen-addrs", b_listen.as_str(), "--nat", "none", "--bootstrap-node", spr.as_str()];
    let b = Node::start_logged(&dir.path().join("b"), &b_args, &b_log);
    // B learns the manifest from A, then A freezes: B's download of the data gets no block.
    let deadline = Instant::now() + WAIT;
    while b.get_text(&format!("/data/{cid}/network/manifest")).0 != 200 {
        assert!(Instant::now() < deadline, "B did not get the manifest from A");
        std::thread::sleep(Duration::from_millis(200));
    }
    a.signal(Signal::SIGSTOP);

    let port = b.url.split(':').nth(2).and_then(|p| p.split('/').next()).expect("port");
    let mut client = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).expect("connect");
    client.set_read_timeout(Some(WAIT)).expect("timeout");
    write!(client, "GET /api/codex/v1/data/{cid}/network/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").expect("request");
    // Read the whole response head, so that closing sends a plain FIN (unread data would make it a reset).
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        client.read_exact(&mut byte).expect("response head");
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200"), "the stream starts: {}", String::from_utf8_lossy(&head));
    let released = "network stream: the client went away";
    std::thread::sleep(Duration::from_millis(1500));
    let log = std::fs::read_to_string(&b_log).expect("log");
    assert!(!log.contains(released), "the stream waits for blocks while its client is there");
    drop(client);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !std::fs::read_to_string(&b_log).expect("log").contains(released) {
        assert!(Instant::now() < deadline, "the stream still waits after its client went away");
        std::thread::sleep(Duration::from_millis(100));
    }
    a.signal(Signal::SIGCONT);
}

#[test]
fn upload_limits_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &["--api-max-uploads", "1", "--api-upload-timeout", "3"]);
    let before = node.space();
    // One upload sends 1 MiB, then stalls with the connection open.
    let (started, gate, upload) = gated_upload(node.url.clone(), 1 << 20, 1 << 20);
    started.recv_timeout(WAIT).expect("upload under way");
    std::thread::sleep(Duration::from_millis(200));
    let response = agent().post(format!("{}/data", node.url)).send(&b"x"[..]).expect("post");
    assert_eq!(response.status().as_u16(), 503, "the only upload slot is taken");
    assert!(response.headers().get("retry-after").is_some());
    // After three seconds without data the stalled upload is dropped: its slot is free again and nothing is kept.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut response = agent().post(format!("{}/data", node.url)).send(&b"x"[..]).expect("post");
        if response.status().as_u16() == 200 {
            assert!(response.body_mut().read_to_string().expect("cid").starts_with("zDvZRwzm"));
            break;
        }
        assert!(Instant::now() < deadline, "the stalled upload still holds its slot");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(gate);
    let _ = upload.join();
    let (_, list) = node.get_text("/data");
    let list: serde_json::Value = serde_json::from_str(&list).expect("json");
    assert_eq!(list["content"].as_array().map(Vec::len), Some(1), "only the one-byte upload is stored");
    let after = node.space();
    assert_eq!(after["totalBlocks"].as_u64(), before["totalBlocks"].as_u64().map(|b| b + 2));
    assert_eq!(after["quotaReservedBytes"], 0);
}

/// `codex prover setup` writes development keys (saying loudly that they are insecure); a node given that
/// circuit directory loads them after it starts, and `/debug/info` shows the prover; without keys it is off.
#[test]
fn the_prover_loads_keys_from_the_circuit_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let circuits = dir.path().join("circuits");
    let circuits_arg = circuits.to_str().expect("utf-8 path");
    let setup = run(&["prover", "setup", "--circuit-dir", circuits_arg, "--proof-samples", "1"]);
    assert!(setup.status.success(), "{}", String::from_utf8_lossy(&setup.stderr));
    assert!(String::from_utf8_lossy(&setup.stderr).contains("DEVELOPMENT keys"));
    let hash = String::from_utf8(setup.stdout).expect("utf-8").trim().to_owned();
    assert_eq!(hash.len(), 64, "{hash}");
    assert_eq!(run(&["prover", "setup", "--circuit-dir", circuits_arg, "--proof-samples", "0"]).status.code(), Some(2));

    let node =
        Node::start(&dir.path().join("data"), &["--circuit-dir", circuits_arg, "--simulate-proof-failures", "3"]);
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = node.get_text("/debug/info");
        assert_eq!(status, 200);
        let info: serde_json::Value = serde_json::from_str(&body).expect("json");
        if info["prover"]["loaded"] == true {
            assert_eq!(info["prover"]["keyHash"], hash.as_str());
            assert_eq!(info["prover"]["samples"], 1);
            break;
        }
        assert!(Instant::now() < deadline, "the prover did not load its keys: {info}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let without = Node::start(&dir.path().join("data2"), &[]);
    let (_, body) = without.get_text("/debug/info");
    let info: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(info["prover"], serde_json::Value::Null, "no keys: the prover is off");
}

/// `codex contracts deploy` on anvil: token, verifier (with the circuit directory's key) and marketplace are
/// deployed, the configuration carries the key hash and the given period, `--fund` addresses get test tokens,
/// and the addresses come out as one JSON object. A key file others can read is refused.
#[test]
fn contracts_deploy_prints_addresses_and_funds_accounts() {
    use alloy::primitives::U256;
    use codex_actors::chain::anvil::LocalChain;
    use codex_actors::chain::bindings::{Marketplace, TestToken};
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().expect("tempdir");
    let circuits = dir.path().join("circuits");
    let circuits_arg = circuits.to_str().expect("utf-8 path");
    let setup = run(&["prover", "setup", "--circuit-dir", circuits_arg, "--proof-samples", "1"]);
    assert!(setup.status.success(), "{}", String::from_utf8_lossy(&setup.stderr));
    let hash = String::from_utf8(setup.stdout).expect("utf-8").trim().to_owned();

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let chain = runtime.block_on(LocalChain::start()).expect("anvil");
    let key = dir.path().join("deployer.key");
    std::fs::write(&key, format!("0x{}\n", alloy::hex::encode(chain.signer(0).to_bytes()))).expect("key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let funded = chain.address(3);
    let funded_arg = funded.to_string();
    let endpoint = chain.ws_endpoint();
    let key_arg = key.to_str().expect("utf-8 path");
    let args = [
        "contracts",
        "deploy",
        "--eth-provider",
        &endpoint,
        "--eth-private-key",
        key_arg,
        "--circuit-dir",
        circuits_arg,
        "--period",
        "12",
        "--fund",
        &funded_arg,
        "--fund-amount",
        "5000",
    ];
    let out = run(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object on stdout");
    assert_eq!(json["chainId"], chain.chain_id());
    let address = |field: &str| json[field].as_str().expect(field).parse::<alloy::primitives::Address>().expect(field);

    let provider = chain.provider(0);
    let market = Marketplace::new(address("marketplace"), provider.clone());
    let config = runtime.block_on(async { market.configuration().call().await }).expect("configuration");
    assert_eq!(config.proofs.zkeyHash, hash);
    assert_eq!(config.proofs.period, 12);
    assert_eq!(runtime.block_on(async { market.token().call().await }).expect("token"), address("token"));
    let token = TestToken::new(address("token"), provider);
    assert_eq!(runtime.block_on(async { token.balanceOf(funded).call().await }).expect("balance"), U256::from(5000u64));

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let refused = run(&args);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("chmod 600"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

/// `codex persistence` without a key file or a marketplace address stops at once (exit 2) naming the option; a
/// key file others can read is refused.
#[test]
fn persistence_refuses_missing_or_unsafe_options() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data_arg = data.to_str().expect("utf-8 path");
    let out = run(&["--data-dir", data_arg, "persistence", "--marketplace-address", &format!("0x{}", "11".repeat(20))]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("eth-private-key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = dir.path().join("node.key");
    std::fs::write(&key, format!("0x{}\n", "22".repeat(32))).expect("key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let key_arg = key.to_str().expect("utf-8 path");
    let out = run(&["--data-dir", data_arg, "persistence", "--eth-private-key", key_arg]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("marketplace-address"));
    let args = [
        "--data-dir",
        data_arg,
        "--api-port",
        "0",
        "persistence",
        "--eth-private-key",
        key_arg,
        "--marketplace-address",
        "0x1111111111111111111111111111111111111111",
        "--eth-provider",
        "http://127.0.0.1:1",
    ];
    let out = run(&args);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 600"), "{}", String::from_utf8_lossy(&out.stderr));
}
