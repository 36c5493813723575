//! Buying storage through the REST API on a real chain (anvil with 1-second blocks, the real contracts): the
//! storage and host (`/sales/…`) endpoints answer 503 without persistence (after a 400 or 422 for a malformed
//! request); parameters are checked (422 with a message per rule); a request is submitted and is on chain with
//! the right ask and content; the purchase survives a node restart; nobody fills it, so at expiry it ends
//! cancelled and the client's tokens are back where they started (only gas, paid in ETH, is spent). A node
//! stopped after its `requestStorage` went through but before it heard so finds the request on chain after its
//! restart: the purchase is submitted once, paid once.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly on purpose")]

use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use alloy::primitives::{B256, U256};
use alloy::providers::Provider;
use codex::metrics::Metrics;
use codex::rest::{ApiState, CorsOrigin, app};
use codex::telemetry::LogControl;
use codex_actors::chain::actor::ChainConfig;
use codex_actors::chain::anvil::LocalChain;
use codex_actors::chain::bindings::{Marketplace, TestToken};
use codex_actors::chain::deploy::{Deployment, deploy, mint, testnet_config};
use codex_actors::chain::market::RetryPolicy;
use codex_actors::maintenance::MaintenanceConfig;
use codex_actors::node::{EnableMarketplace, NodeActor, NodeConfig, StopNode};
use codex_actors::purchasing::PurchasingConfig;
use codex_actors::store::StoreConfig;
use codex_protocol::proofs::ProofParams;
use codex_protocol::proofs::groth16::{self, AbiVerifyingKey};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

const API: &str = "/api/codex/v1";
/// The client's dev account.
const CLIENT: usize = 1;

fn node(dir: &Path) -> actix::Addr<NodeActor> {
    let key = libp2p_identity::Keypair::generate_secp256k1();
    let config = NodeConfig {
        data_dir: dir.to_owned(),
        peer_id: key.public().to_peer_id(),
        store: StoreConfig { repo_dir: dir.join("repo"), quota_max: 1 << 30, block_ttl: None, sweep_batch: 1000 },
        maintenance: MaintenanceConfig { interval: Duration::from_secs(600) },
        network: None,
        exchange: Default::default(),
        coding_threads: 2,
        prover: None,
    };
    NodeActor::start(config).expect("node starts")
}

macro_rules! service {
    ($node:expr) => {
        test::init_service(app(ApiState::new($node, Metrics::new(), LogControl::detached()), CorsOrigin(None))).await
    };
}

/// Token, verifier (a tiny circuit's key: nothing is proven here) and marketplace on `chain`.
async fn contracts(chain: &LocalChain) -> Deployment {
    let params = ProofParams { samples: 1, max_slot_depth: 2, max_dataset_depth: 2, block_depth: 1, cell_elements: 2 };
    let (_, vk) = groth16::setup(params, [1; 32]).unwrap();
    deploy(&chain.provider(0), testnet_config("test".into()), &AbiVerifyingKey::from(&vk)).await.expect("deploy")
}

async fn enable(node: &actix::Addr<NodeActor>, chain: &LocalChain, deployment: &Deployment) {
    enable_at(node, chain.ws_endpoint(), chain, deployment).await;
}

/// [`enable`] with the chain at `endpoint` (a fault proxy's).
async fn enable_at(node: &actix::Addr<NodeActor>, endpoint: String, chain: &LocalChain, deployment: &Deployment) {
    let chain_config = ChainConfig {
        eth_provider: endpoint,
        signer: chain.signer(CLIENT),
        marketplace: deployment.marketplace,
        retry: RetryPolicy { attempts: 3, base: Duration::from_millis(100), max: Duration::from_secs(1) },
        tx: Default::default(),
        poll_interval: Duration::from_millis(200),
        confirmations: None,
    };
    let purchasing = PurchasingConfig { check_interval: Duration::from_millis(300) };
    node.send(EnableMarketplace {
        chain: chain_config,
        purchasing,
        sales: Default::default(),
        validator: None,
        development_keys: false,
    })
    .await
    .unwrap()
    .expect("marketplace enabled");
}

fn body(duration: u64, expiry: u64) -> String {
    format!(
        r#"{{"duration": {duration}, "pricePerBytePerSecond": "3", "proofProbability": "2", "nodes": 3, "tolerance": 1,
            "collateralPerByte": "1", "expiry": {expiry}}}"#
    )
}

#[actix_web::test]
async fn marketplace_endpoints_answer_503_without_persistence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = service!(node(dir.path()));
    let cid = "zDvZRwzmC3Q7e7NLkfsPmtgSCfectUc1ssn5xK2rzC9yRz1yeZuK";
    let id = "ab".repeat(32);
    for request in [
        TestRequest::post().uri(&format!("{API}/storage/request/{cid}")).set_payload(body(600, 60)),
        TestRequest::get().uri(&format!("{API}/storage/purchases")),
        TestRequest::get().uri(&format!("{API}/storage/purchases/0x{}", "ab".repeat(32))),
        TestRequest::get().uri(&format!("{API}/sales/availability")),
        TestRequest::post().uri(&format!("{API}/sales/availability")).set_payload(
            r#"{"totalSize": 1000, "duration": 60, "minPricePerBytePerSecond": "1", "totalCollateral": "10"}"#,
        ),
        TestRequest::patch().uri(&format!("{API}/sales/availability/0x{id}")).set_payload(r#"{"enabled": false}"#),
        TestRequest::get().uri(&format!("{API}/sales/availability/{id}/reservations")),
        TestRequest::get().uri(&format!("{API}/sales/slots")),
        TestRequest::get().uri(&format!("{API}/sales/slots/{id}")),
    ] {
        let request = request.to_request();
        let uri = format!("{} {}", request.method(), request.uri());
        let response = test::call_service(&app, request).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{uri}");
        let text = String::from_utf8(test::read_body(response).await.to_vec()).unwrap();
        assert!(text.contains("marketplace is not enabled"), "{uri}: {text}");
    }
    // What is wrong with the request itself is said first, persistence or not.
    for (request, status) in [
        (TestRequest::get().uri(&format!("{API}/sales/slots/0x12")), StatusCode::BAD_REQUEST),
        (TestRequest::get().uri(&format!("{API}/sales/availability/xyz/reservations")), StatusCode::BAD_REQUEST),
        (TestRequest::post().uri(&format!("{API}/sales/availability")).set_payload("{}"), StatusCode::BAD_REQUEST),
        (
            TestRequest::patch().uri(&format!("{API}/sales/availability/{id}")).set_payload(r#"{"freeSize": 1}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let request = request.to_request();
        let uri = format!("{} {}", request.method(), request.uri());
        let response = test::call_service(&app, request).await;
        assert_eq!(response.status(), status, "{uri}");
    }
}

#[actix_web::test]
async fn an_unfilled_purchase_is_cancelled_at_expiry_and_the_client_refunded_across_a_restart() {
    let chain = LocalChain::start_with(&["--block-time", "1"]).await.expect("anvil");
    let deployment = contracts(&chain).await;
    let client = chain.address(CLIENT);
    let provider = chain.provider(CLIENT);
    mint(&chain.provider(0), deployment.token, client, U256::from(10u64).pow(U256::from(24u64))).await.unwrap();
    let token = TestToken::new(deployment.token, provider.clone());
    let tokens_before = token.balanceOf(client).call().await.unwrap();
    let eth_before = provider.get_balance(client).await.unwrap();

    let dir = tempfile::tempdir().expect("tempdir");
    let first = node(dir.path());
    enable(&first, &chain, &deployment).await;
    let app = service!(first.clone());
    let request = TestRequest::post().uri(&format!("{API}/data")).set_payload(vec![7u8; 3 * 65536 - 100]);
    let cid = String::from_utf8(test::call_and_read_body(&app, request.to_request()).await.to_vec()).unwrap();

    // Each rule answers 422 with its message; nothing is submitted.
    let limit = 30 * 24 * 3600;
    let bad = [
        (body(600, 60).replace(r#""tolerance": 1"#, r#""tolerance": 0"#), "tolerance must be at least 1"),
        (body(600, 60).replace(r#""nodes": 3"#, r#""nodes": 2"#), "nodes must be at least 3"),
        (body(600, 60).replace(r#""nodes": 3, "tolerance": 1"#, r#""nodes": 5, "tolerance": 3"#), "too large"),
        (body(600, 600), "expiry must be greater than zero and less than"),
        (body(600, 0), "expiry must be greater than zero"),
        (body(limit + 1, 60), "exceeds the marketplace's limit"),
        (body(600, 60).replace(r#""3""#, r#""0""#), "pricePerBytePerSecond must be greater than zero"),
        (body(600, 60).replace(r#""collateralPerByte": "1""#, r#""collateralPerByte": "0""#), "collateralPerByte"),
    ];
    for (json, message) in bad {
        let request = TestRequest::post().uri(&format!("{API}/storage/request/{cid}")).set_payload(json.clone());
        let response = test::call_service(&app, request.to_request()).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{json}");
        let text = String::from_utf8(test::read_body(response).await.to_vec()).unwrap();
        assert!(text.contains(message), "{json}: {text}");
    }
    let request = TestRequest::post().uri(&format!("{API}/storage/request/{cid}")).set_payload("{not json");
    assert_eq!(test::call_service(&app, request.to_request()).await.status(), StatusCode::BAD_REQUEST);
    let unknown = "zDvZRwzmC3Q7e7NLkfsPmtgSCfectUc1ssn5xK2rzC9yRz1yeZuK";
    let request = TestRequest::post().uri(&format!("{API}/storage/request/{unknown}")).set_payload(body(600, 60));
    assert_eq!(test::call_service(&app, request.to_request()).await.status(), StatusCode::NOT_FOUND);
    let listed: Value =
        test::call_and_read_body_json(&app, TestRequest::get().uri(&format!("{API}/storage/purchases")).to_request())
            .await;
    assert_eq!(listed, serde_json::json!([]), "refused requests leave no purchase");

    // A good request: submitted, on chain with the right ask and content, paid for in full.
    let expiry = 12;
    let request = TestRequest::post().uri(&format!("{API}/storage/request/{cid}")).set_payload(body(600, expiry));
    let response = test::call_service(&app, request.to_request()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let id_text = String::from_utf8(test::read_body(response).await.to_vec()).unwrap();
    let id: B256 = id_text.parse().expect("a 32-byte hex id");
    let purchase: Value = test::call_and_read_body_json(
        &app,
        TestRequest::get().uri(&format!("{API}/storage/purchases/{id_text}")).to_request(),
    )
    .await;
    assert_eq!(purchase["state"], "submitted", "{purchase}");
    assert_eq!(purchase["requestId"], id_text.as_str());
    let market = Marketplace::new(deployment.marketplace, provider.clone());
    let on_chain = market.getRequest(id).call().await.expect("the request is on chain");
    assert_eq!(on_chain.client, client);
    assert_eq!((on_chain.ask.slots, on_chain.ask.maxSlotLoss, on_chain.ask.duration), (3, 1, 600));
    assert_eq!(on_chain.ask.pricePerBytePerSecond, U256::from(3u64));
    assert_eq!(on_chain.ask.proofProbability, U256::from(2u64));
    assert_eq!(on_chain.expiry, expiry);
    assert_eq!(purchase["request"]["ask"]["slotSize"], on_chain.ask.slotSize);
    assert_eq!(on_chain.ask.slotSize, 2 * 65536, "3 blocks, K = 2: 2 blocks per slot");
    // The content is the verifiable manifest stored here, and the merkle root its verify root.
    let content_cid = purchase["request"]["content"]["cid"].as_str().expect("content cid").to_owned();
    let request = TestRequest::get().uri(&format!("{API}/data/{content_cid}")).to_request();
    assert_eq!(test::call_service(&app, request).await.status(), StatusCode::OK, "the verifiable dataset is stored");
    assert_ne!(on_chain.content.merkleRoot, B256::ZERO);
    let max_price = U256::from(3u64 * 600 * 3 * 2 * 65536);
    assert_eq!(token.balanceOf(client).call().await.unwrap(), tokens_before - max_price);

    // The node stops and starts again over the same repository: the purchase is still there, and followed.
    first.send(StopNode).await.unwrap();
    drop(app);
    let second = node(dir.path());
    enable(&second, &chain, &deployment).await;
    let app = service!(second.clone());
    let listed: Value =
        test::call_and_read_body_json(&app, TestRequest::get().uri(&format!("{API}/storage/purchases")).to_request())
            .await;
    assert_eq!(listed, serde_json::json!([id_text]));

    // Nobody fills it: past expiry it is cancelled and the client's tokens come back.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let request = TestRequest::get().uri(&format!("{API}/storage/purchases/{id_text}")).to_request();
        let purchase: Value = test::call_and_read_body_json(&app, request).await;
        if purchase["state"] == "cancelled" && token.balanceOf(client).call().await.unwrap() == tokens_before {
            break;
        }
        assert!(Instant::now() < deadline, "not cancelled and refunded in time: {purchase}");
        actix_rt::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(market.requestState(id).call().await.unwrap(), 2, "Cancelled on chain");
    assert!(provider.get_balance(client).await.unwrap() < eth_before, "gas is paid in ETH");
    second.send(StopNode).await.unwrap();
}

/// The client's node is stopped between its `requestStorage` going through and its hearing of it (the answer is
/// lost and the endpoint cut at that moment): after the restart the purchase, left pending, is found on chain
/// (not sent again, not errored), and the client paid for it once.
#[actix_web::test]
async fn a_request_that_went_through_unheard_before_a_restart_is_found_and_paid_once() {
    use alloy::sol_types::SolCall;
    use codex_actors::chain::faults::FaultProxy;
    let chain = LocalChain::start_with(&["--block-time", "1"]).await.expect("anvil");
    let deployment = contracts(&chain).await;
    let client = chain.address(CLIENT);
    mint(&chain.provider(0), deployment.token, client, U256::from(10u64).pow(U256::from(24u64))).await.unwrap();
    let token = TestToken::new(deployment.token, chain.provider(CLIENT));
    let tokens_before = token.balanceOf(client).call().await.unwrap();
    let proxy = FaultProxy::start(chain.addr()).expect("proxy");
    let endpoint = format!("http://{}", proxy.addr());

    let dir = tempfile::tempdir().expect("tempdir");
    let first = node(dir.path());
    enable_at(&first, endpoint.clone(), &chain, &deployment).await;
    let app = service!(first.clone());
    let request = TestRequest::post().uri(&format!("{API}/data")).set_payload(vec![9u8; 3 * 65536 - 100]);
    let cid = String::from_utf8(test::call_and_read_body(&app, request.to_request()).await.to_vec()).unwrap();

    let selector = alloy::hex::encode(Marketplace::requestStorageCall::SELECTOR);
    proxy.lose_next_answer_containing_then_cut(selector.as_bytes());
    let uri = format!("{API}/storage/request/{cid}");
    let submission = actix_rt::spawn(async move {
        let request = TestRequest::post().uri(&uri).set_payload(body(600, 120));
        test::call_service(&app, request.to_request()).await.status()
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while proxy.lost_answers() == 0 {
        assert!(Instant::now() < deadline, "no requestStorage was sent");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    // The request is on chain; the node never heard of it. It stops (as if killed) and the endpoint comes back.
    first.send(StopNode).await.unwrap();
    submission.abort();
    let market = Marketplace::new(deployment.marketplace, chain.provider(CLIENT));
    // (Mined with the next 1-second block.)
    let deadline = Instant::now() + Duration::from_secs(20);
    let id = loop {
        if let [id] = market.myRequests().from(client).call().await.unwrap()[..] {
            break id;
        }
        assert!(Instant::now() < deadline, "the request did not go through");
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    };
    let max_price = token.balanceOf(deployment.marketplace).call().await.unwrap();
    assert_eq!(tokens_before - token.balanceOf(client).call().await.unwrap(), max_price);
    proxy.reopen();

    let second = node(dir.path());
    enable_at(&second, endpoint, &chain, &deployment).await;
    let app = service!(second.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let request = TestRequest::get().uri(&format!("{API}/storage/purchases/{id}")).to_request();
        let response = test::call_service(&app, request).await;
        if response.status() == StatusCode::OK {
            let purchase: Value = test::read_body_json(response).await;
            if purchase["state"] == "submitted" {
                break;
            }
            assert_ne!(purchase["state"], "errored", "{purchase}");
        }
        assert!(Instant::now() < deadline, "the purchase was not found submitted");
        actix_rt::time::sleep(Duration::from_millis(300)).await;
    }
    let listed: Value =
        test::call_and_read_body_json(&app, TestRequest::get().uri(&format!("{API}/storage/purchases")).to_request())
            .await;
    assert_eq!(listed, serde_json::json!([id.to_string()]), "one purchase");
    assert_eq!(market.myRequests().from(client).call().await.unwrap(), vec![id], "one request on chain");
    assert_eq!(tokens_before - token.balanceOf(client).call().await.unwrap(), max_price, "paid once");
    second.send(StopNode).await.unwrap();
}
