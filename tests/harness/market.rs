//! A marketplace testnet for tests of real `codex` processes (sales, validator, repair): anvil with 1-second
//! blocks, the real contracts and verifier (short periods), 1-sample proving keys, funded dev accounts, and
//! nodes that run `persistence` as one of them. Views of the chain the tests check against (balances, fills,
//! proofs, slot state).

use super::binary::BinaryNode;
use alloy::primitives::{B256, U256};
use alloy::providers::Provider;
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;
use codex_actors::chain::anvil::LocalChain;
use codex_actors::chain::bindings::{Marketplace, TestToken};
use codex_actors::chain::deploy::{Deployment, deploy, mint, testnet_config};
use codex_actors::chain::faults::FaultProxy;
use codex_protocol::proofs::groth16::AbiVerifyingKey;
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

pub const BIN: &str = env!("CARGO_BIN_EXE_codex");
/// Seconds per proof period in these tests.
pub const PERIOD: u64 = 10;
pub const CLIENT: usize = 1;
/// Per host: 64 MiB for sale, collateral for a few slots.
pub const AVAILABILITY: &str =
    r#"{"totalSize": 67108864, "duration": 3600, "minPricePerBytePerSecond": "1", "totalCollateral": "100000000"}"#;

/// A chain with the contracts, keys for proofs, and a directory for the nodes.
pub struct Testnet {
    pub runtime: tokio::runtime::Runtime,
    pub chain: LocalChain,
    /// A fault-injecting proxy to the chain's endpoint, for nodes started with [`Testnet::node_via_proxy`].
    pub proxy: FaultProxy,
    pub deployment: Deployment,
    pub circuits: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Testnet {
    /// Starts the chain and deploys the contracts. With `CODEX_KEEP_TESTNET` set, the directory (nodes' data and
    /// logs) is kept after the test, and its path printed.
    pub fn start() -> Testnet {
        Testnet::start_with_period(PERIOD)
    }

    /// [`Testnet::start`] with proof periods of `period` seconds.
    pub fn start_with_period(period: u64) -> Testnet {
        let mut dir = tempfile::tempdir().expect("tempdir");
        if std::env::var_os("CODEX_KEEP_TESTNET").is_some() {
            dir.disable_cleanup(true);
            println!("testnet directory (kept): {}", dir.path().display());
        }
        let circuits = dir.path().join("circuits");
        let setup = Command::new(BIN)
            .args(["prover", "setup", "--circuit-dir", circuits.to_str().unwrap(), "--proof-samples", "1"])
            .output()
            .expect("codex runs");
        assert!(setup.status.success(), "{}", String::from_utf8_lossy(&setup.stderr));
        let hash = String::from_utf8(setup.stdout).unwrap().trim().to_owned();
        let keys = codex_actors::prover::load_keys(&circuits).expect("keys");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let chain = runtime.block_on(LocalChain::start_with(&["--block-time", "1"])).expect("anvil");
        let mut config = testnet_config(hash);
        config.proofs.period = period;
        config.proofs.timeout = 5;
        // A host waits for a period whose challenge cannot change while it proves (the pointer at least
        // `downtime` blocks from wrapping): with 1-second blocks the testnet's 64 would cost up to a minute.
        config.proofs.downtime = 16;
        let deployment = runtime
            .block_on(deploy(&chain.provider(0), config, &AbiVerifyingKey::from(&keys.verifying)))
            .expect("deploy");
        for account in 1..=6 {
            let amount = U256::from(10u64).pow(U256::from(24u64));
            runtime.block_on(mint(&chain.provider(0), deployment.token, chain.address(account), amount)).unwrap();
        }
        let proxy = FaultProxy::start(chain.addr()).expect("proxy");
        Testnet { runtime, chain, proxy, deployment, circuits, dir }
    }

    /// A node signing as dev account `account`, bootstrapped from `bootstrap`.
    pub fn node(&self, name: &str, account: usize, bootstrap: Option<&str>, ports: Option<(u16, u16)>) -> BinaryNode {
        self.node_with(name, account, bootstrap, ports, &[])
    }

    /// [`Testnet::node`] with more `persistence` options (`--validator`, `--simulate-proof-failures N`).
    pub fn node_with(
        &self,
        name: &str,
        account: usize,
        bootstrap: Option<&str>,
        ports: Option<(u16, u16)>,
        options: &[&str],
    ) -> BinaryNode {
        self.start_node(name, account, bootstrap, ports, &[], options, None)
    }

    /// [`Testnet::node`] reaching the chain over HTTP through [`Testnet::proxy`] (whose faults it then sees).
    pub fn node_via_proxy(
        &self,
        name: &str,
        account: usize,
        bootstrap: Option<&str>,
        ports: Option<(u16, u16)>,
    ) -> BinaryNode {
        self.start_node(name, account, bootstrap, ports, &[], &[], Some(&self.proxy))
    }

    /// [`Testnet::node_via_proxy`] through another proxy (one of [`Testnet::new_proxy`]).
    pub fn node_via(
        &self,
        proxy: &FaultProxy,
        name: &str,
        account: usize,
        bootstrap: Option<&str>,
        ports: Option<(u16, u16)>,
    ) -> BinaryNode {
        self.start_node(name, account, bootstrap, ports, &[], &[], Some(proxy))
    }

    /// Another fault proxy to the chain, for the faults of one node only.
    pub fn new_proxy(&self) -> FaultProxy {
        FaultProxy::start(self.chain.addr()).expect("proxy")
    }

    /// [`Testnet::node`] with more node options (before `persistence`) and `persistence` options.
    pub fn node_with_flags(
        &self,
        name: &str,
        account: usize,
        bootstrap: Option<&str>,
        flags: &[&str],
        options: &[&str],
    ) -> BinaryNode {
        self.start_node(name, account, bootstrap, None, flags, options, None)
    }

    #[allow(clippy::too_many_arguments, reason = "a private helper behind the public constructors")]
    fn start_node(
        &self,
        name: &str,
        account: usize,
        bootstrap: Option<&str>,
        ports: Option<(u16, u16)>,
        flags: &[&str],
        options: &[&str],
        via: Option<&FaultProxy>,
    ) -> BinaryNode {
        let key = self.dir.path().join(format!("{name}.key"));
        std::fs::write(&key, format!("0x{}\n", alloy::hex::encode(self.chain.signer(account).to_bytes()))).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let endpoint = match via {
            Some(proxy) => format!("http://{}", proxy.addr()),
            None => self.chain.ws_endpoint(),
        };
        let market = self.deployment.marketplace.to_string();
        let mut extra = vec!["--circuit-dir", self.circuits.to_str().unwrap(), "--block-retries", "10"];
        extra.extend(flags);
        if let Some(spr) = bootstrap {
            extra.extend(["--bootstrap-node", spr]);
        }
        let key = key.to_str().unwrap().to_owned();
        extra.extend(["persistence", "--eth-provider", &endpoint, "--eth-private-key", &key]);
        extra.extend(["--marketplace-address", &market]);
        extra.extend(options);
        let dir = self.dir.path().join(name);
        match ports {
            Some((api, p2p)) => BinaryNode::start_on(&dir, api, p2p, None, &extra),
            None => BinaryNode::start_fresh(&dir, None, &extra),
        }
    }

    /// The data dir of node `name`.
    pub fn node_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn balance(&self, account: usize) -> U256 {
        let token = TestToken::new(self.deployment.token, self.chain.provider(0));
        self.runtime.block_on(async { token.balanceOf(self.chain.address(account)).call().await }).unwrap()
    }

    pub fn market(&self) -> Marketplace::MarketplaceInstance<alloy::providers::DynProvider> {
        Marketplace::new(self.deployment.marketplace, self.chain.provider(0))
    }

    pub fn chain_time(&self) -> u64 {
        let provider = self.chain.provider(0);
        self.runtime.block_on(async {
            let block = provider.get_block_by_number(alloy::eips::BlockNumberOrTag::Latest).await.unwrap().unwrap();
            block.header.timestamp
        })
    }

    /// The timestamps at which slots of `id` were filled, by slot index.
    pub fn filled_at(&self, id: B256) -> Vec<(u64, u64)> {
        let provider = self.chain.provider(0);
        let filter = Filter::new()
            .address(self.deployment.marketplace)
            .event_signature(Marketplace::SlotFilled::SIGNATURE_HASH)
            .from_block(0);
        self.runtime.block_on(async {
            let mut out = Vec::new();
            for log in provider.get_logs(&filter).await.unwrap() {
                let event = Marketplace::SlotFilled::decode_log(&log.inner).unwrap();
                if event.requestId == id {
                    let block = provider.get_block_by_number(log.block_number.unwrap().into()).await.unwrap().unwrap();
                    out.push((event.slotIndex, block.header.timestamp));
                }
            }
            out
        })
    }

    /// Proofs submitted for `slot`.
    pub fn proofs_of(&self, slot: B256) -> usize {
        let provider = self.chain.provider(0);
        let filter = Filter::new()
            .address(self.deployment.marketplace)
            .event_signature(Marketplace::ProofSubmitted::SIGNATURE_HASH)
            .from_block(0);
        self.runtime.block_on(async {
            let logs = provider.get_logs(&filter).await.unwrap();
            logs.iter().filter(|log| Marketplace::ProofSubmitted::decode_log(&log.inner).unwrap().id == slot).count()
        })
    }
}

pub fn offer(host: &BinaryNode) -> Value {
    let (status, body) = host.post("/sales/availability", AVAILABILITY.as_bytes());
    assert_eq!(status, 201, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// The request id (0x…) of a purchase of `cid`.
pub fn buy(client: &BinaryNode, cid: &str, duration: u64, expiry: u64) -> B256 {
    let body = json!({
        "duration": duration, "pricePerBytePerSecond": "1", "proofProbability": "1", "nodes": 3, "tolerance": 1,
        "collateralPerByte": "1", "expiry": expiry
    });
    let (status, id) = client.post(&format!("/storage/request/{cid}"), body.to_string().as_bytes());
    assert_eq!(status, 200, "{id}");
    id.trim().trim_matches('"').parse().expect("a request id")
}

/// Every availability of `host` is whole again: nothing reserved, no collateral locked. A sale leaves `mySlots`
/// when its `freeSlot` is mined, and its reservation goes back once the host has seen that: waits up to 30 s for
/// the availabilities to be whole before asserting.
pub fn assert_whole(host: &BinaryNode, name: &str) {
    let whole = |availability: &Value| {
        availability["freeSize"] == availability["totalSize"]
            && availability["totalRemainingCollateral"] == availability["totalCollateral"]
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline
        && !host.json("/sales/availability").as_array().unwrap().iter().all(whole)
    {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let availabilities = host.json("/sales/availability");
    for availability in availabilities.as_array().unwrap() {
        assert_eq!(availability["freeSize"], availability["totalSize"], "{name}: {availability}");
        assert_eq!(availability["totalRemainingCollateral"], availability["totalCollateral"], "{name}: {availability}");
        let id = availability["id"].as_str().unwrap();
        assert_eq!(host.json(&format!("/sales/availability/{id}/reservations")), json!([]), "{name}");
    }
}

pub fn patch(host: &BinaryNode, path: &str, body: &str) -> (u16, String) {
    let mut response = super::agent().patch(format!("{}{path}", host.url)).send(body).expect("request");
    (response.status().as_u16(), response.body_mut().read_to_string().expect("body"))
}

pub fn state_of(host: &BinaryNode, slot: B256) -> Option<String> {
    let (status, body) = host.get_text(&format!("/sales/slots/{slot}"));
    (status == 200).then(|| serde_json::from_str::<Value>(&body).unwrap()["state"].as_str().unwrap().to_owned())
}

/// The node's log lines about sales (for failure messages and the test's output).
pub fn log_of(node: &BinaryNode) -> String {
    let text = node.log_text();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| ["sale", "proof", "prov", "challenge", "ERROR", "WARN", "panic"].iter().any(|w| l.contains(w)))
        .collect();
    lines[lines.len().saturating_sub(80)..].join("\n")
}
