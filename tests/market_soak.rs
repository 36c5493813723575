//! The marketplace soak (issue 22; `tests/bench/market_soak.sh` runs it): a client, a validator and `HOSTS`
//! hosts (default 4) on a real chain; the hosts reach the chain through a fault proxy. For `SOAK_MINUTES`
//! (default 60) the client buys storage for a fresh file every `REQUEST_EVERY` seconds (default 40), and every
//! `FAULT_EVERY` seconds (default 60) one fault is injected at random: a host killed (SIGKILL) and restarted on
//! its data, a host stopped (SIGTERM) and restarted, or the hosts' chain endpoint cut for 15–`MAX_CUT` s (default
//! 40, longer than the market's retry budget of ~32 s). Proof periods last `SOAK_PERIOD` seconds (default 90): a
//! period outlasts the longest cut with room to prove, so an honest host has no excuse to miss a proof (with
//! `SOAK_PERIOD` below `MAX_CUT` the hosts miss proofs they cannot send, and lose slots to the slashes). Requests
//! run 6–8 periods and expire after `SOAK_EXPIRY` seconds (default 90) if not filled. Then every request is left to end, and the figures are printed: requests, fills, proofs
//! submitted, proofs marked missing (every host is honest: goal 0), slots lost by hosts (forced frees: goal 0),
//! token drift (the token's supply against every account's balance plus the marketplace's: goal 0), and the peak
//! resident memory of each node.
//!
//!     SOAK_MINUTES=10 cargo test --test market_soak -- --ignored --nocapture
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly on purpose")]

mod harness;

use alloy::primitives::B256;
use alloy::providers::Provider;
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;
use codex_actors::chain::bindings::{Marketplace, TestToken};
use harness::binary::BinaryNode;
use harness::market::*;
use harness::{data, wait_for};
use std::time::{Duration, Instant};

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A small deterministic generator for the fault schedule (seeded by `SOAK_SEED`).
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below.max(1)
    }
}

/// How many logs of event `E` the marketplace emitted.
fn count<E: SolEvent>(net: &Testnet) -> usize {
    let filter = Filter::new().address(net.deployment.marketplace).event_signature(E::SIGNATURE_HASH).from_block(0);
    let provider = net.chain.provider(0);
    net.runtime.block_on(async { provider.get_logs(&filter).await.unwrap().len() })
}

/// The token's supply minus every dev account's and the marketplace's balance: 0 when no token went astray.
fn token_drift(net: &Testnet) -> i128 {
    let token = TestToken::new(net.deployment.token, net.chain.provider(0));
    net.runtime.block_on(async {
        let supply = token.totalSupply().call().await.unwrap();
        let mut held = token.balanceOf(net.deployment.marketplace).call().await.unwrap();
        for account in 0..10 {
            held += token.balanceOf(net.chain.address(account)).call().await.unwrap();
        }
        i128::try_from(supply).unwrap() - i128::try_from(held).unwrap()
    })
}

#[test]
#[ignore = "an hour-long soak: tests/bench/market_soak.sh"]
fn market_soak() {
    let minutes = setting("SOAK_MINUTES", 60);
    let hosts_wanted = setting("HOSTS", 4) as usize;
    let request_every = Duration::from_secs(setting("REQUEST_EVERY", 40));
    let fault_every = Duration::from_secs(setting("FAULT_EVERY", 60));
    let period = setting("SOAK_PERIOD", 90);
    let max_cut = setting("MAX_CUT", 40).max(15);
    let expiry = setting("SOAK_EXPIRY", 90);
    let mut rng = Rng(setting("SOAK_SEED", 0x9e37_79b9_7f4a_7c15) | 1);

    let net = Testnet::start_with_period(period);
    let client = net.node("client", CLIENT, None, None);
    let spr = client.spr();
    let validator = net.node_with("validator", 9, Some(&spr), None, &["--validator"]);
    let mut hosts: Vec<(BinaryNode, usize)> = (2..2 + hosts_wanted)
        .map(|account| (net.node_via_proxy(&format!("host{account}"), account, Some(&spr), None), account))
        .collect();
    for (host, _) in &hosts {
        offer(host);
    }
    let mut peak: Vec<u64> = vec![0; hosts.len()];
    let started = Instant::now();
    let deadline = started + Duration::from_secs(minutes * 60);
    let (mut next_request, mut next_fault) = (started, started + fault_every);
    let mut requests: Vec<B256> = Vec::new();
    let mut faults: Vec<String> = Vec::new();
    while Instant::now() < deadline {
        let now = Instant::now();
        if now >= next_request {
            let cid = client.upload(&data((1 + rng.next(4) as usize) << 20, requests.len() as u64));
            let duration = 6 * period + rng.next(2 * period);
            let (status, body) = client.post(
                &format!("/storage/request/{cid}"),
                format!(
                    r#"{{"duration": {duration}, "pricePerBytePerSecond": "1", "proofProbability": "1", "nodes": 3,
                        "tolerance": 1, "collateralPerByte": "1", "expiry": {expiry}}}"#
                )
                .as_bytes(),
            );
            match status {
                200 => requests.push(body.trim().trim_matches('"').parse().unwrap()),
                _ => println!("request refused: {status} {body}"),
            }
            next_request = now + request_every;
        }
        if now >= next_fault {
            let pick = rng.next(3);
            let index = rng.next(hosts.len() as u64) as usize;
            match pick {
                0 | 1 => {
                    let (host, account) = hosts.remove(index);
                    let ports = (host.api_port, host.p2p_port);
                    peak[index] = peak[index].max(host.memory().0);
                    let how = if pick == 0 { "killed" } else { "stopped" };
                    if pick == 0 {
                        host.kill()
                    } else {
                        host.stop()
                    }
                    let restarted = net.node_via_proxy(&format!("host{account}"), account, Some(&spr), Some(ports));
                    hosts.insert(index, (restarted, account));
                    faults.push(format!("host{account} {how}"));
                }
                _ => {
                    let cut = Duration::from_secs(15 + rng.next(max_cut - 14));
                    net.proxy.cut();
                    std::thread::sleep(cut);
                    net.proxy.reopen();
                    faults.push(format!("endpoint cut {}s", cut.as_secs()));
                }
            }
            println!("[{:>5}s] {}", started.elapsed().as_secs(), faults.last().unwrap());
            next_fault = Instant::now() + fault_every;
        }
        for (i, (host, _)) in hosts.iter().enumerate() {
            peak[i] = peak[i].max(host.memory().0);
        }
        std::thread::sleep(Duration::from_millis(500));
    }

    // Every request ends (started ones run their duration; the rest expire), then the figures.
    let market = net.market();
    let ends: Vec<u64> = requests
        .iter()
        .map(|id| net.runtime.block_on(async { market.requestEnd(*id).call().await }).unwrap_or(0))
        .collect();
    let last = ends.iter().copied().max().unwrap_or(0);
    wait_for("every request to end", Duration::from_secs(last.saturating_sub(net.chain_time()) + 120), || {
        (net.chain_time() > last + 20).then_some(())
    });
    let states: Vec<u8> = requests
        .iter()
        .map(|id| net.runtime.block_on(async { market.requestState(*id).call().await }).unwrap_or(255))
        .collect();
    let started_requests = count::<Marketplace::RequestFulfilled>(&net);
    let mut marked = 0u64;
    let filter = Filter::new()
        .address(net.deployment.marketplace)
        .event_signature(Marketplace::SlotFilled::SIGNATURE_HASH)
        .from_block(0);
    let provider = net.chain.provider(0);
    let fills = net.runtime.block_on(async { provider.get_logs(&filter).await.unwrap() });
    for log in &fills {
        let event = Marketplace::SlotFilled::decode_log(&log.inner).unwrap();
        let slot = codex_actors::chain::market::slot_id(event.requestId, event.slotIndex);
        marked += net.runtime.block_on(async { market.missingProofs(slot).call().await }).unwrap_or_default();
    }
    for (i, (host, _)) in hosts.iter().enumerate() {
        peak[i] = peak[i].max(host.memory().0);
    }
    println!("--- market soak: {minutes} min, {} hosts, {period} s periods, {} faults", hosts.len(), faults.len());
    println!("requests:               {} ({} started)", requests.len(), started_requests);
    println!("request states:         {states:?} (1 started, 2 cancelled, 3 finished, 4 failed)");
    println!("slots filled:           {}", fills.len());
    println!("proofs submitted:       {}", count::<Marketplace::ProofSubmitted>(&net));
    println!("proofs marked missing:  {marked} (every host is honest)");
    println!("slots lost by hosts:    {} (forced frees)", count::<Marketplace::SlotFreed>(&net));
    println!("requests failed:        {}", count::<Marketplace::RequestFailed>(&net));
    println!("token drift:            {}", token_drift(&net));
    for ((_, account), peak) in hosts.iter().zip(&peak) {
        println!("peak RSS host{account}:       {} MiB", peak >> 20);
    }
    println!("peak RSS client:        {} MiB", client.memory().0 >> 20);
    println!("peak RSS validator:     {} MiB", validator.memory().0 >> 20);
    println!("faults: {faults:?}");
    assert_eq!(token_drift(&net), 0, "tokens went astray");
}
