//! Asking the network for a CID nobody has answers 404 as soon as the provider lookup finished and every
//! connected peer said DontHave, not after the 60 s fetch limit. Real binaries over loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly on purpose")]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_codex");
/// A manifest CID no node has.
const MISSING: &str = "zDvZRwzmC3Q7e7NLkfsPmtgSCfectUc1ssn5xK2rzC9yRz1yeZuK";

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
    fn start(dir: &Path, bootstrap: Option<&str>) -> Node {
        let (api, p2p) = (free_port(), free_port());
        let mut command = Command::new(BIN);
        command
            .args(["--data-dir", dir.to_str().expect("utf-8"), "--api-port", &api.to_string()])
            .args(["--listen-addrs", &format!("/ip4/127.0.0.1/tcp/{p2p}"), "--nat", "none"])
            .args(["--storage-quota", "1GiB", "--log-level", "warn"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(spr) = bootstrap {
            command.args(["--bootstrap-node", spr]);
        }
        let node =
            Node { child: command.spawn().expect("codex starts"), url: format!("http://127.0.0.1:{api}/api/codex/v1") };
        let deadline = Instant::now() + Duration::from_secs(60);
        while agent().get(format!("{}/spr", node.url)).call().map(|r| r.status().as_u16()).ok() != Some(200) {
            assert!(Instant::now() < deadline, "node did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        node
    }

    fn spr(&self) -> String {
        let mut response = agent().get(format!("{}/spr", self.url)).header("Accept", "text/plain").call().expect("spr");
        response.body_mut().read_to_string().expect("spr")
    }

    fn fetch(&self, cid: &str) -> (u16, String) {
        let mut response = agent().post(format!("{}/data/{cid}/network", self.url)).send_empty().expect("request");
        let status = response.status().as_u16();
        (status, response.body_mut().read_to_string().unwrap_or_default())
    }

    fn peers(&self) -> usize {
        let mut response = agent().get(format!("{}/debug/info", self.url)).call().expect("info");
        let info: serde_json::Value =
            serde_json::from_slice(&response.body_mut().read_to_vec().expect("info body")).expect("json");
        info["table"]["nodes"].as_array().map_or(0, |nodes| nodes.iter().filter(|n| n["seen"] == true).count())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_cid_nobody_has_is_not_found_without_waiting_for_the_fetch_limit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let a = Node::start(&dir.path().join("a"), None);
    let b = Node::start(&dir.path().join("b"), Some(&a.spr()));
    let deadline = Instant::now() + Duration::from_secs(30);
    while b.peers() == 0 {
        assert!(Instant::now() < deadline, "b did not connect to a");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The answer names why: the lookup found nobody and every peer said DontHave. Without the quick path it
    // would only come after the 60 s fetch limit, saying no peer delivered the block.
    for node in [&b, &a] {
        let (status, body) = node.fetch(MISSING);
        assert_eq!(status, 404, "{body}");
        assert!(body.contains("every connected peer said it does not have it"), "not the quick answer: {body}");
    }
}
