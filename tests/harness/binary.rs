//! The real `codex` binary as a test node, for what needs a process boundary: a real kill or SIGTERM, a
//! restart on the same data dir, or reading the node's memory use from `/proc/<pid>/status`.

use super::{Api, WAIT, free_port};
use libp2p::Multiaddr;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_codex");

/// A `codex` process. Killed (SIGKILL) when dropped.
pub struct BinaryNode {
    child: Option<Child>,
    api: Api,
    pub api_port: u16,
    pub p2p_port: u16,
    /// The node's stderr (its log), kept for failure messages.
    pub log: PathBuf,
}

impl std::ops::Deref for BinaryNode {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

/// The nodes' log level: `CODEX_TEST_LOG_LEVEL` (the `--log-level` syntax, e.g. `info;debug:codex_actors::sales`),
/// else `info`.
fn log_level() -> String {
    std::env::var("CODEX_TEST_LOG_LEVEL").unwrap_or_else(|_| "info".to_owned())
}

impl BinaryNode {
    /// Starts a node in `dir` on free ports, bootstrapped from `bootstrap` (an `spr:`).
    pub fn start(dir: &Path, bootstrap: Option<&str>) -> BinaryNode {
        Self::start_fresh(dir, bootstrap, &[])
    }

    /// Starts a node on free ports with extra command-line arguments. A port is free when picked, but another
    /// test's node may take it before this one binds it (networks listen on any free port): a node that exits
    /// before answering because a port is in use is started again on other ports, a few times. Any other early
    /// exit fails the test.
    pub fn start_fresh(dir: &Path, bootstrap: Option<&str>, extra: &[&str]) -> BinaryNode {
        let mut last_log = String::new();
        for _attempt in 0..5 {
            match Self::try_start_on(dir, free_port(), free_port(), bootstrap, extra) {
                Ok(node) => return node,
                Err(log) if log.contains("in use") => last_log = log,
                Err(log) => panic!("the node in {} exited before answering; its log:\n{log}", dir.display()),
            }
        }
        panic!("the node in {} found its ports taken five times; its last log:\n{last_log}", dir.display());
    }

    /// Starts a node on the given ports with extra command-line arguments; returns once it answers.
    pub fn start_on(dir: &Path, api_port: u16, p2p_port: u16, bootstrap: Option<&str>, extra: &[&str]) -> BinaryNode {
        Self::try_start_on(dir, api_port, p2p_port, bootstrap, extra)
            .unwrap_or_else(|log| panic!("the node in {} exited before answering; its log:\n{log}", dir.display()))
    }

    /// Starts a node and waits until it answers; the node's log if it exits first.
    fn try_start_on(
        dir: &Path,
        api_port: u16,
        p2p_port: u16,
        bootstrap: Option<&str>,
        extra: &[&str],
    ) -> Result<BinaryNode, String> {
        std::fs::create_dir_all(dir).expect("node dir");
        static STARTS: AtomicUsize = AtomicUsize::new(0);
        let log = dir.with_extension(format!("{}.log", STARTS.fetch_add(1, Ordering::Relaxed)));
        let listen = format!("/ip4/127.0.0.1/tcp/{p2p_port}");
        let mut command = Command::new(BIN);
        command
            .args(["--data-dir", dir.to_str().expect("utf-8"), "--api-port", &api_port.to_string()])
            .args(["--listen-addrs", &listen, "--nat", "none", "--storage-quota", "2GiB"])
            .args(["--log-format", "nocolors", "--log-level", &log_level()])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"));
        if let Some(spr) = bootstrap {
            command.args(["--bootstrap-node", spr]);
        }
        let child = command.spawn().expect("codex starts");
        let mut node = BinaryNode {
            child: Some(child),
            api: Api { url: format!("http://127.0.0.1:{api_port}/api/codex/v1") },
            api_port,
            p2p_port,
            log,
        };
        let deadline = std::time::Instant::now() + WAIT;
        while !node.api.is_ready_within(Duration::from_secs(2)) {
            if !node.is_running() {
                return Err(node.log_text());
            }
            assert!(std::time::Instant::now() < deadline, "{} did not answer within {WAIT:?}", node.api.url);
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Ok(node)
    }

    pub fn p2p_addr(&self) -> Multiaddr {
        format!("/ip4/127.0.0.1/tcp/{}", self.p2p_port).parse().expect("multiaddr")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|child| child.try_wait().ok().flatten().is_none())
    }

    /// The process's memory use from `/proc/<pid>/status`: (peak resident `VmHWM`, resident now `VmRSS`), bytes.
    pub fn memory(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("proc status");
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<u64>().ok())
                .map_or(0, |kib| kib * 1024)
        };
        (field("VmHWM:"), field("VmRSS:"))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, signal: Signal) {
        if let Some(child) = &self.child {
            kill(Pid::from_raw(child.id() as i32), signal).expect("signal");
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(mut self) {
        self.signal(Signal::SIGTERM);
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                assert!(status.success(), "clean exit: {status}");
                return;
            }
            assert!(Instant::now() < deadline, "node did not stop within {WAIT:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: the process dies at once.
    pub fn kill(self) {}
}

impl Drop for BinaryNode {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
