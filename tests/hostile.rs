//! A hostile libp2p peer attacks a real `codex` process (the victim) while the victim downloads a 64 MiB
//! dataset from an honest node. The attacker is a raw libp2p host written here (TCP + Noise + Yamux,
//! secp256k1, blockexc streams through `libp2p-stream`, a Kademlia behaviour on `/codex/kad/1.0.0`) that:
//!
//! 1. sends amplification frames: 4 MiB blockexc frames made of hundreds of thousands of tiny want entries and
//!    tiny deliveries with 4-byte CIDs, encoded by hand (each costs the decoder ~10–25× its wire size);
//! 2. sends oversized want-lists (10 000 entries, more than the 4096 a peer may have queued);
//! 3. answers the victim's wantBlock for a manifest CID with a junk manifest (blockSize 1, datasetSize 1 GiB)
//!    that the victim is asked to fetch through REST;
//! 4. floods ADD_PROVIDER: Kademlia `start_providing` for 20 000 random keys, the victim its only route;
//! 5. opens streams, starts a 64 MiB frame on each and never finishes it, and never reads what the victim sends.
//!
//! Each attack is bounded in count and time, and all traffic stays on 127.0.0.1. The test asserts the defences
//! (the victim's peak RSS stays under 200 MiB, the junk manifest is refused quickly with a 4xx and reserves
//! nothing, the attacker is disconnected, the honest download completes with the right bytes, the victim is
//! still running) and reports every missing defence at once. It prints, without asserting, the honest
//! download speed without and with the attack and the victim's peak RSS.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly on purpose")]

mod harness;

use codex_protocol::blockexc::{BlockAddress, BlockDelivery, Message, WantType};
use codex_protocol::cid::{ROOT_CODEC, cid_from_sha256, format_cid, sha256};
use codex_protocol::{Cid, Manifest};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use harness::binary::BinaryNode;
use harness::peer::{BLOCKEXC, PeerStats, RawPeer, frame, frames, varint};
use harness::{NodeOptions, TestNode, WAIT, data, wait_until};
use libp2p::{Multiaddr, PeerId};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const DATASET: usize = 64 << 20;
const PEAK_RSS_LIMIT: u64 = 200 << 20;
/// A valid CIDv1 in 4 bytes: raw codec, identity multihash of length 0.
const TINY_CID: [u8; 4] = [0x01, 0x55, 0x00, 0x00];
const AMPLIFICATION_FRAMES: usize = 3;
const AMPLIFICATION_FRAME_BYTES: usize = 4 << 20;
const OVERSIZED_WANTLISTS: usize = 3;
const OVERSIZED_WANTLIST_ENTRIES: u64 = 10_000;
const PROVIDER_KEYS: usize = 20_000;
const SLOW_STREAMS: usize = 40;
/// Under the node's 8 MiB frame limit, so the per-peer frame gate, the global budget and the body deadline are
/// what stop these, not the length check.
const SLOW_STREAM_ANNOUNCED: u64 = 7 << 20;
const SLOW_STREAM_SENT: usize = 2 << 20;
/// No attack step runs longer than this.
const ATTACK_TIME: Duration = Duration::from_secs(20);

fn field_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    varint(out, (field << 3) | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn field_varint(out: &mut Vec<u8>, field: u64, value: u64) {
    varint(out, field << 3);
    varint(out, value);
}

/// A BlockAddress for a plain (tiny) CID: `{1: 0, 4: cid}`.
fn tiny_address() -> Vec<u8> {
    let mut address = Vec::new();
    field_varint(&mut address, 1, 0);
    field_bytes(&mut address, 4, &TINY_CID);
    address
}

/// An amplification frame body: about `size` bytes, half tiny wantBlock entries (address only, every other
/// field left to its default), half tiny deliveries (4-byte CID, 1 byte of data).
fn amplification_body(size: usize) -> (Vec<u8>, usize, usize) {
    let mut entry = Vec::new();
    field_bytes(&mut entry, 1, &tiny_address());
    let mut wantlist = Vec::with_capacity(size / 2 + 64);
    let mut wants = 0;
    while wantlist.len() < size / 2 {
        field_bytes(&mut wantlist, 1, &entry);
        wants += 1;
    }
    let mut body = Vec::with_capacity(size + 64);
    field_bytes(&mut body, 1, &wantlist);
    let mut delivery = Vec::new();
    field_bytes(&mut delivery, 1, &TINY_CID);
    field_bytes(&mut delivery, 2, &[0x42]);
    let mut deliveries = 0;
    while body.len() < size {
        field_bytes(&mut body, 3, &delivery);
        deliveries += 1;
    }
    (body, wants, deliveries)
}

/// A want-list of `entries` wantHave entries for leaves of a tree nobody has.
fn oversized_wantlist_body(entries: u64, seed: u8) -> Vec<u8> {
    let tree = cid_from_sha256(ROOT_CODEC, &sha256(&[seed; 8])).to_bytes();
    let mut wantlist = Vec::new();
    for index in 0..entries {
        let mut address = Vec::new();
        field_varint(&mut address, 1, 1);
        field_bytes(&mut address, 2, &tree);
        field_varint(&mut address, 3, index);
        let mut entry = Vec::new();
        field_bytes(&mut entry, 1, &address);
        field_varint(&mut entry, 4, 1); // wantHave
        field_varint(&mut entry, 5, 1); // sendDontHave: ask for an answer to every entry
        field_bytes(&mut wantlist, 1, &entry);
    }
    field_varint(&mut wantlist, 2, 1);
    let mut body = Vec::new();
    field_bytes(&mut body, 1, &wantlist);
    body
}

/// A manifest that announces 2^30 blocks of one byte.
fn junk_manifest() -> (Cid, Vec<u8>) {
    let tree = cid_from_sha256(ROOT_CODEC, &sha256(b"a tree nobody has"));
    let bytes = Manifest::new_unprotected(tree, 1, 1 << 30, None, None).encode();
    (Manifest::cid_of(&bytes), bytes)
}

/// What the main thread tells the attacker.
enum Order {
    /// Start attacks 1, 2, 4 and 5 (the junk manifest is served from the start).
    Attack,
    /// Close everything and end.
    Stop,
}

/// What the attacker tells the main thread.
enum Report {
    /// Connected, streams open, junk manifest ready to be served.
    Ready(RawPeer),
    /// The streams of attack 5 are open and the first frames are on their way.
    Launched,
    /// One line per attack: what was sent and what happened.
    Done(Vec<String>),
}

/// The attacker's thread: its own tokio runtime and libp2p host.
fn run_attacker(
    victim: PeerId,
    victim_addr: Multiaddr,
    reports: std::sync::mpsc::Sender<Report>,
) -> mpsc::UnboundedSender<Order> {
    let (orders_tx, orders) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(attacker(victim, victim_addr, reports, orders));
    });
    orders_tx
}

async fn attacker(
    victim: PeerId,
    victim_addr: Multiaddr,
    reports: std::sync::mpsc::Sender<Report>,
    mut orders: mpsc::UnboundedReceiver<Order>,
) {
    let host = RawPeer::spawn(&[victim], &[(victim, victim_addr.clone())]);
    let mut control = host.control.clone();
    let mut incoming = control.accept(BLOCKEXC).expect("accept");
    host.dial(victim, victim_addr.clone());
    let connected = async {
        while PeerStats::get(&host.stats.established) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(WAIT, connected).await.expect("the attacker connected to the victim");
    let (_, mut out) = control.open_stream(victim, BLOCKEXC).await.expect("outbound stream").split();
    let (_, victim_stream) = incoming.next().await.expect("the victim opens its stream");

    // Attack 3: serve the junk manifest to whoever wants it, until the other attacks start; from then on the
    // victim's stream is never read again (attack 5).
    let (junk_cid, junk_bytes) = junk_manifest();
    let stop_reading = Arc::new(AtomicBool::new(false));
    let junk_served = Arc::new(AtomicU64::new(0));
    let (unread_tx, unread_rx) = tokio::sync::oneshot::channel();
    {
        let (stop_reading, junk_served) = (stop_reading.clone(), junk_served.clone());
        tokio::spawn(async move {
            let mut reader = frames(victim_stream);
            while !stop_reading.load(Ordering::Relaxed) {
                let bytes = match tokio::time::timeout(Duration::from_millis(100), reader.recv()).await {
                    Ok(Some(bytes)) => bytes,
                    Err(_) => continue,
                    Ok(None) => break,
                };
                let Ok(message) = Message::decode(&bytes) else { continue };
                let wanted = message.wantlist.entries.iter().any(|e| {
                    !e.cancel && e.want_type == WantType::WantBlock && e.address == BlockAddress::Cid(junk_cid)
                });
                if wanted {
                    let reply = Message {
                        payload: vec![BlockDelivery {
                            cid: junk_cid,
                            data: junk_bytes.clone().into(),
                            address: BlockAddress::Cid(junk_cid),
                            proof: None,
                        }],
                        ..Message::default()
                    };
                    if out.write_all(&frame(&reply.encode())).await.is_ok() {
                        junk_served.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            // Hold the victim's stream, unread, until the attack ends.
            let _ = unread_tx.send((reader, out));
        });
    }
    let _ = reports.send(Report::Ready(host.clone()));

    match orders.recv().await {
        Some(Order::Attack) => {}
        _ => {
            let served = junk_served.load(Ordering::Relaxed);
            let _ = reports.send(Report::Done(vec![format!("junk manifest: served {served} time(s)")]));
            return;
        }
    }
    stop_reading.store(true, Ordering::Relaxed);
    let mut lines = Vec::new();

    // Attack 5 first: its streams stay open (and half-written) for the whole attack. The other attacks each
    // come from a fresh identity, so a ban earned by one does not keep the next from being tried.
    let slow = slow_streams(&control, victim).await;
    let _ = reports.send(Report::Launched);
    let (wantlist_host, amplification_host, flood_host) = futures::join!(
        fresh_attacker(victim, victim_addr.clone()),
        fresh_attacker(victim, victim_addr.clone()),
        fresh_attacker(victim, victim_addr.clone()),
    );
    let (wantlists, amplification, providers) = futures::join!(
        oversized_wantlists(&wantlist_host.control, victim),
        amplification(&amplification_host.control, victim),
        provider_flood(&flood_host),
    );
    lines.push(slow.1);
    lines.extend([wantlists, amplification, providers]);
    lines.push(format!(
        "connections: {} established, {} closed",
        PeerStats::get(&host.stats.established),
        PeerStats::get(&host.stats.closed)
    ));
    let _ = reports.send(Report::Done(lines));
    let _ = orders.recv().await;
    drop(slow.0);
    drop(unread_rx);
}

/// Another attacking host with its own identity, connected to the victim.
async fn fresh_attacker(victim: PeerId, victim_addr: Multiaddr) -> RawPeer {
    let host = RawPeer::spawn(&[victim], &[(victim, victim_addr.clone())]);
    host.dial(victim, victim_addr);
    let connected = async {
        while PeerStats::get(&host.stats.established) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), connected).await;
    host
}

/// Attack 5: streams that announce a 64 MiB frame, send 2 MiB of it and stop; the handles keep them open.
async fn slow_streams(control: &libp2p_stream::Control, victim: PeerId) -> (Vec<libp2p::Stream>, String) {
    let mut streams = Vec::new();
    let (mut opened, mut bytes, mut stalled) = (0, 0usize, 0);
    let chunk = vec![0x0au8; 64 << 10];
    let deadline = Instant::now() + ATTACK_TIME / 2;
    for _ in 0..SLOW_STREAMS {
        if Instant::now() > deadline {
            break;
        }
        let Ok(Ok(mut stream)) =
            tokio::time::timeout(Duration::from_secs(2), control.clone().open_stream(victim, BLOCKEXC)).await
        else {
            break;
        };
        opened += 1;
        let mut header = Vec::new();
        varint(&mut header, SLOW_STREAM_ANNOUNCED);
        header.push(0x0a); // field 1 (wantlist), length-delimited, whose length never ends…
        let mut sent = 0;
        let write = async {
            stream.write_all(&header).await?;
            while sent < SLOW_STREAM_SENT {
                stream.write_all(&chunk).await?;
                stream.flush().await?;
                sent += chunk.len();
            }
            std::io::Result::Ok(())
        };
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(200));
        match tokio::time::timeout(left.min(Duration::from_secs(2)), write).await {
            Ok(Ok(())) => {}
            _ => stalled += 1,
        }
        bytes += sent;
        streams.push(stream);
    }
    let line = format!(
        "slow streams: {opened} opened, each announcing a {} MiB frame and sending at most {} MiB of it ({} MiB in \
         all), {stalled} stalled or reset",
        SLOW_STREAM_ANNOUNCED >> 20,
        SLOW_STREAM_SENT >> 20,
        bytes >> 20
    );
    (streams, line)
}

/// Attack 2: want-lists longer than a peer may queue.
async fn oversized_wantlists(control: &libp2p_stream::Control, victim: PeerId) -> String {
    let mut sent = 0;
    let result = tokio::time::timeout(ATTACK_TIME, async {
        let mut stream = control.clone().open_stream(victim, BLOCKEXC).await.map_err(std::io::Error::other)?;
        for i in 0..OVERSIZED_WANTLISTS {
            stream.write_all(&frame(&oversized_wantlist_body(OVERSIZED_WANTLIST_ENTRIES, i as u8))).await?;
            stream.flush().await?;
            sent += 1;
        }
        std::io::Result::Ok(stream)
    })
    .await;
    let outcome = match &result {
        Ok(Ok(_)) => "all written".to_owned(),
        Ok(Err(err)) => format!("stream failed: {err}"),
        Err(_) => "timed out".to_owned(),
    };
    format!(
        "oversized want-lists: {sent} of {OVERSIZED_WANTLISTS} frames of {OVERSIZED_WANTLIST_ENTRIES} entries ({outcome})"
    )
}

/// Attack 1: amplification frames, one per stream, all at once.
async fn amplification(control: &libp2p_stream::Control, victim: PeerId) -> String {
    let (body, wants, deliveries) = amplification_body(AMPLIFICATION_FRAME_BYTES);
    let framed = frame(&body);
    let sends = (0..AMPLIFICATION_FRAMES).map(|_| {
        let mut control = control.clone();
        let framed = &framed;
        async move {
            tokio::time::timeout(ATTACK_TIME, async {
                let mut stream = control.open_stream(victim, BLOCKEXC).await.map_err(std::io::Error::other)?;
                stream.write_all(framed).await?;
                stream.flush().await?;
                std::io::Result::Ok(stream)
            })
            .await
        }
    });
    let results = futures::future::join_all(sends).await;
    let written = results.iter().filter(|r| matches!(r, Ok(Ok(_)))).count();
    format!(
        "amplification: {written} of {AMPLIFICATION_FRAMES} frames of {} MiB written, each {wants} want entries and {deliveries} deliveries with 4-byte CIDs",
        framed.len() >> 20
    )
}

/// Attack 4: ADD_PROVIDER for random keys, at most 2000 provider queries outstanding.
async fn provider_flood(host: &RawPeer) -> String {
    let deadline = Instant::now() + ATTACK_TIME;
    let mut submitted = 0usize;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    while Instant::now() < deadline {
        let done = PeerStats::get(&host.stats.provide_ok)
            + PeerStats::get(&host.stats.provide_failed)
            + PeerStats::get(&host.stats.provide_refused);
        if submitted >= PROVIDER_KEYS && done >= submitted {
            break;
        }
        if submitted < PROVIDER_KEYS && submitted - done.min(submitted) < 2000 {
            let keys: Vec<Vec<u8>> = (0..500)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    // Codex CIDs, which the victim's provider store would accept if it were not bounded.
                    cid_from_sha256(ROOT_CODEC, &sha256(&state.to_le_bytes())).to_bytes()
                })
                .collect();
            submitted += keys.len();
            host.provide(keys);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    format!(
        "provider flood: {submitted} keys submitted, {} ADD_PROVIDER rounds completed, {} failed, {} refused locally",
        PeerStats::get(&host.stats.provide_ok),
        PeerStats::get(&host.stats.provide_failed),
        PeerStats::get(&host.stats.provide_refused)
    )
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

/// Times a download of `cid` through the victim's network stream; the bytes and the MiB/s.
fn timed_download(victim: &BinaryNode, cid: &str, timeout: Duration) -> Result<(Vec<u8>, f64), String> {
    let api = harness::Api::clone(victim);
    let cid = cid.to_owned();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let start = Instant::now();
    std::thread::spawn(move || {
        let (status, body) = api.get(&format!("/data/{cid}/network/stream"));
        let _ = done_tx.send((status, body));
    });
    match done_rx.recv_timeout(timeout) {
        Ok((200, body)) => {
            let speed = mib(body.len() as u64) / start.elapsed().as_secs_f64();
            Ok((body, speed))
        }
        Ok((status, body)) => Err(format!("status {status}: {}", String::from_utf8_lossy(&body))),
        Err(_) => Err(format!("no complete answer within {timeout:?}")),
    }
}

#[test]
fn hostile_peer_cannot_exhaust_the_victim_or_stop_an_honest_download() {
    let started = Instant::now();
    let honest = TestNode::start(NodeOptions::default());
    let file = data(DATASET, 42);
    let cid = honest.upload(&file);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut victim = BinaryNode::start(&dir.path().join("victim"), Some(&honest.spr()));
    let victim_id = victim.peer_id();
    let victim_addr = victim.p2p_addr();
    wait_until("the victim to connect to the honest node", WAIT, || victim.is_connected_to(&honest.peer_id));
    let mut missing: Vec<String> = Vec::new();

    // Without the attacker.
    let (body, baseline_speed) = timed_download(&victim, &cid, WAIT).expect("the download without attack");
    assert!(body == file, "the download without attack has the right bytes");
    drop(body);
    victim.wait_local(&cid, WAIT);
    assert_eq!(victim.delete(&format!("/data/{cid}")), 204);
    wait_until("the deleted dataset to be gone", WAIT, || !victim.is_local(&cid));
    let (hwm_before, rss_before) = victim.memory();

    // The attacker connects.
    let (reports_tx, reports) = std::sync::mpsc::channel();
    let orders = run_attacker(victim_id, victim_addr.clone(), reports_tx);
    let attacker = match reports.recv_timeout(WAIT) {
        Ok(Report::Ready(host)) => host,
        _ => panic!("the attacker did not connect to the victim"),
    };
    wait_until("the victim to see the attacker", WAIT, || victim.is_connected_to(&attacker.peer_id));

    // Attacks 1, 2, 4 and 5 while the honest download runs; the victim's memory is sampled meanwhile.
    let sampling = Arc::new(AtomicBool::new(true));
    let peak_sampled = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (sampling, peak, pid) = (sampling.clone(), peak_sampled.clone(), victim.pid());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                let rss = status
                    .lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                    .unwrap_or(0);
                peak.fetch_max(rss * 1024, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    orders.send(Order::Attack).expect("the attacker runs");
    match reports.recv_timeout(WAIT) {
        Ok(Report::Launched) => {}
        _ => panic!("the attack did not start"),
    }
    let (_, rss_slow_streams) = victim.memory();
    let attacked = timed_download(&victim, &cid, Duration::from_secs(60));
    let lines = match reports.recv_timeout(ATTACK_TIME * 3) {
        Ok(Report::Done(lines)) => lines,
        _ => vec!["the attacker did not report (its attacks outlived their bounds)".to_owned()],
    };
    // The slow streams' first frame misses the victim's 30 s body deadline, which bans its sender: wait for it.
    let disconnected = {
        let deadline = Instant::now() + Duration::from_secs(45);
        loop {
            let listed = victim.try_info().map(|info| {
                let nodes = info["table"]["nodes"].as_array().cloned().unwrap_or_default();
                nodes.iter().any(|n| n["seen"] == true && n["peerId"] == attacker.peer_id.to_string())
            });
            if listed != Some(true) {
                break listed.is_some();
            }
            if Instant::now() > deadline {
                break false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let attacker_closed = PeerStats::get(&attacker.stats.closed);
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.join();
    let (hwm, rss) = victim.memory();

    let attacked_speed = match attacked {
        Ok((body, speed)) => {
            if body != file {
                missing.push("integrity: the download under attack returned wrong bytes".to_owned());
            }
            Some(speed)
        }
        Err(err) => {
            missing.push(format!("liveness: the honest download did not complete under attack: {err}"));
            None
        }
    };
    if hwm > PEAK_RSS_LIMIT {
        missing.push(format!(
            "bounded memory: the victim's peak RSS (VmHWM) reached {:.0} MiB, over the {} MiB limit \
             (bounded decoders, one frame in flight per peer, bounded provider store)",
            mib(hwm),
            PEAK_RSS_LIMIT >> 20
        ));
    }
    if !disconnected || attacker_closed == 0 {
        missing.push(format!(
            "peer scoring: the victim did not disconnect the attacker (still listed as connected: {}, \
             connections closed seen by the attacker: {attacker_closed})",
            !disconnected
        ));
    }

    // Is the attacker banned? (Reported, not asserted: disconnecting it is the defence asked for.)
    let (established, closed) = (PeerStats::get(&attacker.stats.established), PeerStats::get(&attacker.stats.closed));
    let failures = PeerStats::get(&attacker.stats.dial_failures);
    attacker.dial(victim_id, victim_addr.clone());
    let redial = {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let now_established = PeerStats::get(&attacker.stats.established) > established;
            let now_closed = PeerStats::get(&attacker.stats.closed) > closed;
            if PeerStats::get(&attacker.stats.dial_failures) > failures {
                break "refused";
            }
            if now_established && now_closed {
                break "accepted, then closed (banned)";
            }
            if Instant::now() > deadline {
                break if now_established { "accepted and kept (not banned)" } else { "no answer" };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let _ = orders.send(Order::Stop);

    // Attack 3, last (today it can take the victim down), from a fresh peer that has not misbehaved yet: the
    // junk manifest must be refused quickly, without reserving its 1 GiB or allocating for its 2^30 blocks.
    let (junk_cid, _) = junk_manifest();
    let junk_cid = format_cid(&junk_cid);
    let (junk_reports_tx, junk_reports) = std::sync::mpsc::channel();
    let junk_orders = run_attacker(victim_id, victim_addr.clone(), junk_reports_tx);
    let junk_peer = match junk_reports.recv_timeout(WAIT) {
        Ok(Report::Ready(host)) => host,
        _ => panic!("the second attacker did not connect to the victim"),
    };
    wait_until("the victim to see the second attacker", WAIT, || victim.is_connected_to(&junk_peer.peer_id));
    let client: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(15)))
        .build()
        .into();
    let asked = Instant::now();
    let junk = client.post(format!("{}/data/{junk_cid}/network", victim.url)).send(&b""[..]);
    let junk_time = asked.elapsed();
    let junk_status = junk.as_ref().map(|r| r.status().as_u16()).map_err(ToString::to_string);
    let reserved = space_reserved(&victim);
    let (hwm_junk, _) = if victim.is_running() { victim.memory() } else { (0, 0) };
    let _ = junk_orders.send(Order::Stop);
    let mut lines = lines;
    match junk_reports.recv_timeout(WAIT) {
        Ok(Report::Done(junk_lines)) => lines.extend(junk_lines),
        _ => lines.push("the second attacker did not report".to_owned()),
    }
    match &junk_status {
        Ok(status) if (400..500).contains(status) && junk_time < Duration::from_secs(10) => {}
        other => missing.push(format!(
            "manifest validation: POST /data/<junk manifest>/network (blockSize 1, datasetSize 1 GiB) answered \
             {other:?} after {junk_time:.1?}; expected a 4xx within 10 s"
        )),
    }
    if reserved >= 1 << 30 {
        missing.push(format!("manifest validation: the junk manifest reserved {} MiB of quota", reserved >> 20));
    }
    if hwm_junk > hwm.max(hwm_before) + (64 << 20) {
        missing.push(format!(
            "manifest validation: the junk manifest raised the victim's peak RSS from {:.0} to {:.0} MiB",
            mib(hwm.max(hwm_before)),
            mib(hwm_junk)
        ));
    }

    if !victim.is_running() {
        missing.push(format!("robustness: the victim process died; log tail:\n{}", log_tail(&victim)));
    } else if victim.try_info().is_none() {
        missing.push("robustness: the victim no longer answers /debug/info".to_owned());
    }

    println!("hostile peer report ({:.1?} in all)", started.elapsed());
    for line in &lines {
        println!("  attack: {line}");
    }
    println!(
        "  junk manifest: {junk_status:?} after {junk_time:.1?}, quota reserved after it: {} MiB, victim VmHWM \
         after it: {:.0} MiB",
        reserved >> 20,
        mib(hwm_junk)
    );
    println!("  honest download without attack: {baseline_speed:.1} MiB/s");
    match attacked_speed {
        Some(speed) => println!("  honest download under attack:   {speed:.1} MiB/s"),
        None => println!("  honest download under attack:   did not complete"),
    }
    println!(
        "  victim memory: VmHWM {:.0} MiB before the attack, {:.0} MiB after (limit {} MiB); VmRSS {:.0} MiB \
         before, peak sampled {:.0} MiB, {:.0} MiB after",
        mib(hwm_before),
        mib(hwm),
        PEAK_RSS_LIMIT >> 20,
        mib(rss_before),
        mib(peak_sampled.load(Ordering::Relaxed)),
        mib(rss)
    );
    println!("  victim VmRSS once the slow streams were open: {:.0} MiB", mib(rss_slow_streams));
    println!("  attacker: disconnected by the victim: {disconnected}; redial after the attack: {redial}");
    assert!(missing.is_empty(), "missing defences against a hostile peer:\n- {}", missing.join("\n- "));
}

/// Quota reserved on the victim, 0 when it does not answer.
fn space_reserved(victim: &BinaryNode) -> u64 {
    let response = harness::agent().get(format!("{}/space", victim.url)).call();
    let body = response.ok().and_then(|mut r| r.body_mut().read_to_vec().ok()).unwrap_or_default();
    let space: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    space["quotaReservedBytes"].as_u64().unwrap_or(0)
}

/// Where the victim's log says it died (a panic or an allocation failure), else its last lines.
fn log_tail(node: &BinaryNode) -> String {
    let log = node.log_text();
    let lines: Vec<&str> = log.lines().collect();
    let fatal = lines.iter().position(|l| l.contains("panicked") || l.contains("memory allocation of"));
    let from = fatal.unwrap_or(lines.len().saturating_sub(8));
    lines[from..(from + 8).min(lines.len())].join("\n")
}

/// Issue 27 probe (not in the default run): fresh identities connect, open a blockexc stream, send a want-list and
/// leave, as fast as they can, for `CHURN_SECS` (default 60) seconds; prints the victim's RSS as it goes. Run:
/// `CHURN_SECS=60 cargo test --release --test hostile -- --ignored churn_probe --nocapture`.
#[test]
#[ignore = "a probe for issue 27: prints the victim's RSS under identity churn"]
fn churn_probe() {
    let seconds: u64 = std::env::var("CHURN_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let dir = tempfile::tempdir().expect("tempdir");
    let victim = BinaryNode::start(&dir.path().join("victim"), None);
    let (victim_id, victim_addr) = (victim.peer_id(), victim.p2p_addr());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (_, rss_before) = victim.memory();
    println!("churn probe: victim pid {}, RSS before {:.1} MiB", victim.pid(), mib(rss_before));
    let started = Instant::now();
    let mut next_report = Duration::from_secs(10);
    let mut identities = 0u64;
    while started.elapsed() < Duration::from_secs(seconds) {
        runtime.block_on(async {
            let host = fresh_attacker(victim_id, victim_addr.clone()).await;
            if let Ok(Ok(mut stream)) =
                tokio::time::timeout(Duration::from_secs(2), host.control.clone().open_stream(victim_id, BLOCKEXC))
                    .await
            {
                let _ = stream.write_all(&frame(&oversized_wantlist_body(100, 7))).await;
                let _ = stream.flush().await;
            }
        });
        identities += 1;
        if started.elapsed() >= next_report {
            let (hwm, rss) = victim.memory();
            println!(
                "churn probe: {:>4} s, {identities} identities, RSS {:.1} MiB, peak {:.1} MiB, {} TCP connections open",
                started.elapsed().as_secs(),
                mib(rss),
                mib(hwm),
                established(&victim_addr)
            );
            next_report += Duration::from_secs(10);
        }
    }
    std::thread::sleep(Duration::from_secs(5));
    let (hwm, rss) = victim.memory();
    println!(
        "churn probe: after, {identities} identities, RSS {:.1} MiB, peak {:.1} MiB, {} TCP connections open",
        mib(rss),
        mib(hwm),
        established(&victim_addr)
    );
}

/// Established TCP connections to the port of `addr` (from `ss`).
fn established(addr: &Multiaddr) -> usize {
    let port = addr.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::Tcp(port) => Some(port),
        _ => None,
    });
    let Some(port) = port else { return 0 };
    let filter = format!("( sport = :{port} )");
    std::process::Command::new("ss")
        .args(["-Htn", "state", "established", &filter])
        .output()
        .map_or(0, |out| String::from_utf8_lossy(&out.stdout).lines().count())
}
