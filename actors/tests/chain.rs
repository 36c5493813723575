//! Chain-client tests on anvil (issue 12): the [`ChainActor`] hands every marketplace event over exactly once, in
//! chain order, across a dropped WebSocket (a TCP proxy between the actor and anvil cuts every connection and
//! refuses new ones for a while) and across a restart on the same repository, and its cursor in redb is the last
//! block it handed over; [`OnChainMarket`] decodes reverts into the contracts' error names, retries transport
//! errors within its budget and gives up after it, and sends concurrent transactions of one account (approvals
//! and the transfers that spend them among them) without a nonce or an allowance getting in another's way; the
//! actor's chain time is the latest block's timestamp.
//!
//! The contracts are deployed with a placeholder verifying key: no test here submits a proof.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly on purpose")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use alloy::eips::BlockNumberOrTag;
use alloy::primitives::{B256, Bytes, U256};
use alloy::providers::Provider;
use alloy::providers::ext::AnvilApi;
use codex_actors::chain::account::connect;
use codex_actors::chain::actor::{
    ChainActor, ChainConfig, ChainEvents, GetChainTime, NotHandled, StartWatching, StopChain,
};
use codex_actors::chain::anvil::LocalChain;
use codex_actors::chain::bindings::TestToken;
use codex_actors::chain::deploy::{Deployment, deploy, mint, testnet_config};
use codex_actors::chain::faults::FaultProxy;
use codex_actors::chain::market::{
    Ask, ChainEvent, Content, ContractError, Market, MarketError, MarketEvent, OnChainMarket, Request, RequestId,
    RequestState, RetryPolicy, request_id,
};
use codex_actors::chain::tx::TxPolicy;
use codex_actors::store::{GetChainCursor, StoreActor, StoreConfig};
use codex_protocol::proofs::groth16::{AbiVerifyingKey, Fp2Element, G1Point, G2Point};

/// Dev accounts and their roles: the client that creates requests, the node's account, one without tokens.
const CLIENT: usize = 1;
const NODE: usize = 2;
const BROKE: usize = 3;

/// How long any wait on the chain actor may take.
const WAIT: Duration = Duration::from_secs(30);

/// A verifying key of the right shape (4 IC points) whose points are all zero: the verifier deploys with it.
fn placeholder_key() -> AbiVerifyingKey {
    let g1 = G1Point { x: [0; 32], y: [0; 32] };
    let fp2 = Fp2Element { real: [0; 32], imag: [0; 32] };
    let g2 = G2Point { x: fp2, y: fp2 };
    AbiVerifyingKey { alpha1: g1, beta2: g2, gamma2: g2, delta2: g2, ic: vec![g1; 4] }
}

/// Anvil with the contracts deployed and tokens minted to [`CLIENT`] and [`NODE`].
struct Chain {
    local: LocalChain,
    deployment: Deployment,
}

impl Chain {
    async fn start() -> Self {
        let local = LocalChain::start().await.expect("anvil");
        let admin = local.provider(0);
        let deployment =
            deploy(&admin, testnet_config("placeholder".into()), &placeholder_key()).await.expect("deploy");
        for account in [CLIENT, NODE] {
            let amount = U256::from(10u64).pow(U256::from(15));
            mint(&admin, deployment.token, local.address(account), amount).await.expect("mint");
        }
        Self { local, deployment }
    }

    /// [`Chain::market`] that calls a transaction stuck after one second, polling every 100 ms.
    fn impatient_market(&self, account: usize) -> OnChainMarket {
        let policy = RetryPolicy { attempts: 5, base: Duration::from_millis(50), max: Duration::from_millis(200) };
        let tx =
            TxPolicy { poll: Duration::from_millis(100), stuck_after: Duration::from_secs(1), ..TxPolicy::default() };
        let (provider, signer) = (self.local.provider(account), self.local.signer(account));
        OnChainMarket::new(provider, self.deployment.marketplace, signer, policy, tx)
    }

    /// A market on anvil's HTTP endpoint that signs as dev account `account`.
    fn market(&self, account: usize) -> OnChainMarket {
        let provider = self.local.provider(account);
        let signer = self.local.signer(account);
        OnChainMarket::new(provider, self.deployment.marketplace, signer, RetryPolicy::default(), TxPolicy::default())
    }

    /// A valid request of `account` (3 slots of 1 KiB for an hour, expiring after 10 minutes).
    fn request(&self, account: usize, nonce: u8) -> Request {
        Request {
            client: self.local.address(account),
            ask: Ask {
                proofProbability: U256::from(3u64),
                pricePerBytePerSecond: U256::from(1u64),
                collateralPerByte: U256::from(100u64),
                slots: 3,
                slotSize: 1024,
                duration: 3600,
                maxSlotLoss: 1,
            },
            content: Content { cid: Bytes::from_static(b"zDvZRwzm-manifest"), merkleRoot: B256::repeat_byte(7) },
            expiry: 600,
            nonce: B256::repeat_byte(nonce),
        }
    }

    /// The chain actor's configuration for `url`, signing as [`NODE`], polling every 100 ms.
    fn config(&self, url: String) -> ChainConfig {
        ChainConfig {
            eth_provider: url,
            signer: self.local.signer(NODE),
            marketplace: self.deployment.marketplace,
            retry: RetryPolicy { attempts: 4, base: Duration::from_millis(100), max: Duration::from_secs(1) },
            tx: TxPolicy::default(),
            poll_interval: Duration::from_millis(100),
            confirmations: None,
        }
    }

    /// The key the chain actor saves its cursor under.
    fn cursor_key(&self) -> String {
        format!("{}:{:#x}", self.local.chain_id(), self.deployment.marketplace)
    }
}

fn open_store(dir: &std::path::Path) -> Addr<StoreActor> {
    let config = StoreConfig { repo_dir: dir.join("repo"), quota_max: 1 << 30, block_ttl: None, sweep_batch: 1000 };
    StoreActor::open(config).expect("repo opens").start()
}

/// What a [`Probe`] received, shared with the test, and how many deliveries with events it still refuses.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<ChainEvents>>>, Arc<AtomicUsize>);

impl Seen {
    fn batches(&self) -> Vec<ChainEvents> {
        self.0.lock().unwrap().clone()
    }

    fn events(&self) -> Vec<ChainEvent> {
        self.batches().into_iter().flat_map(|b| b.events).collect()
    }

    /// The ids of the StorageRequested events received, in order.
    fn requested(&self) -> Vec<RequestId> {
        self.events()
            .into_iter()
            .filter_map(|e| match e.event {
                MarketEvent::StorageRequested { id, .. } => Some(id),
                _ => None,
            })
            .collect()
    }

    /// Waits (at most [`WAIT`]) until the StorageRequested events received are `ids`.
    async fn wait_requested(&self, ids: &[RequestId]) {
        let deadline = Instant::now() + WAIT;
        while self.requested().len() < ids.len() {
            assert!(Instant::now() < deadline, "timed out waiting for {} requests: {:?}", ids.len(), self.requested());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(self.requested(), ids);
    }
}

/// Records every [`ChainEvents`] it gets, and takes [`Probe::SLOW`] to handle one that holds events (a recipient
/// with work to do): the chain actor is still waiting for it when the test already sees the events. While
/// `refuse` is above zero, a delivery with events is answered [`NotHandled`] (and counted down).
struct Probe(Seen);

impl Probe {
    const SLOW: Duration = Duration::from_millis(300);
}

impl Actor for Probe {
    type Context = Context<Self>;
}

impl Handler<ChainEvents> for Probe {
    type Result = ResponseFuture<Result<(), NotHandled>>;
    fn handle(&mut self, msg: ChainEvents, _: &mut Self::Context) -> Self::Result {
        let busy = if msg.events.is_empty() { Duration::ZERO } else { Self::SLOW };
        let refuse = !msg.events.is_empty()
            && self.0.1.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        self.0.0.lock().unwrap().push(msg);
        Box::pin(async move {
            tokio::time::sleep(busy).await;
            if refuse { Err(NotHandled("the probe refuses this delivery".into())) } else { Ok(()) }
        })
    }
}

#[actix_rt::test]
async fn events_arrive_once_across_a_dropped_websocket_and_a_restart() {
    let chain = Chain::start().await;
    let proxy = FaultProxy::start(chain.local.addr()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let seen = Seen::default();
    let probe = Probe(seen.clone()).start();
    let config = chain.config(format!("ws://{}", proxy.addr()));
    let actor = ChainActor::start(config.clone(), store.clone(), probe.clone().recipient()).await.expect("starts");
    actor.do_send(StartWatching);
    let client = chain.market(CLIENT);

    let a = client.request_storage(chain.request(CLIENT, 1)).await.unwrap();
    seen.wait_requested(&[a]).await;

    // The WebSocket drops; B and C are created while the proxy refuses connections.
    proxy.cut();
    let cut_at = Instant::now();
    let b = client.request_storage(chain.request(CLIENT, 2)).await.unwrap();
    let c = client.request_storage(chain.request(CLIENT, 3)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3).saturating_sub(cut_at.elapsed())).await;
    assert_eq!(seen.requested(), [a], "nothing gets through a cut connection");
    assert!(proxy.refused() > 0, "the actor tried to reconnect while the proxy refused");
    proxy.reopen();
    seen.wait_requested(&[a, b, c]).await;

    // The node stops; D is created while it is down; a new actor on the same repository picks up from the cursor.
    actor.send(StopChain).await.unwrap();
    let d = client.request_storage(chain.request(CLIENT, 4)).await.unwrap();
    let actor = ChainActor::start(config, store.clone(), probe.recipient()).await.expect("restarts");
    actor.do_send(StartWatching);
    seen.wait_requested(&[a, b, c, d]).await;
    actor.send(StopChain).await.unwrap();

    // Exactly once and in chain order: the ranges handed over follow one another, each event lies in its range.
    let batches = seen.batches();
    let mut previous: Option<u64> = None;
    for batch in &batches {
        if let Some(previous) = previous {
            assert!(
                batch.through_block > previous,
                "range through {} repeats blocks up to {previous}",
                batch.through_block
            );
        }
        for event in &batch.events {
            assert!(event.block <= batch.through_block, "{event:?} is past its range");
            assert!(previous.is_none_or(|p| event.block > p), "{event:?} was in an earlier range");
        }
        previous = Some(batch.through_block);
    }
    let events = seen.events();
    assert_eq!(events.len(), 4, "only the four requests: {events:?}");
    assert!(events.windows(2).all(|w| (w[0].block, w[0].log_index) < (w[1].block, w[1].log_index)), "{events:?}");
    let head = chain.local.provider(0).get_block_number().await.unwrap();
    assert_eq!(previous, Some(head), "everything up to the head was handed over");

    let cursor = store.send(GetChainCursor { key: chain.cursor_key() }).await.unwrap().unwrap();
    assert_eq!(cursor.map(|c| c.block), previous, "the saved cursor is the last block handed over");
    let hash = chain.local.provider(0).get_block_by_number(head.into()).await.unwrap().unwrap().header.hash;
    assert_eq!(cursor.and_then(|c| c.hash), Some(hash.0), "with its block's hash");
}

#[actix_rt::test]
async fn reverts_come_back_as_the_contracts_error_names() {
    let chain = Chain::start().await;
    let client = chain.market(CLIENT);

    let mut request = chain.request(CLIENT, 1);
    request.expiry = request.ask.duration;
    let err = client.request_storage(request).await.unwrap_err();
    assert_eq!(err.revert_name().as_deref(), Some("Marketplace_InvalidExpiry"), "{err}");

    let unknown = B256::repeat_byte(0xee);
    let err = client.reserve_slot(unknown, 0).await.unwrap_err();
    assert_eq!(err.revert_name().as_deref(), Some("SlotReservations_ReservationNotAllowed"), "{err}");
    assert!(client.get_request(unknown).await.unwrap().is_none());
    assert_eq!(client.request_state(unknown).await.unwrap(), None);

    // The marketplace pulls the price with transferFrom: the token's own error comes back.
    let err = chain.market(BROKE).request_storage(chain.request(BROKE, 2)).await.unwrap_err();
    match &err {
        MarketError::Reverted(e @ ContractError::Token(_)) => assert_eq!(e.name(), "ERC20InsufficientBalance"),
        other => panic!("not a token revert: {other:?}"),
    }
    assert_eq!(err.to_string(), "the contract reverted with ERC20InsufficientBalance");

    // A known request is found, and a request that exists cannot be created again.
    let request = chain.request(CLIENT, 3);
    let id = client.request_storage(request.clone()).await.unwrap();
    assert_eq!(client.get_request(id).await.unwrap().as_ref().map(request_id), Some(id));
    assert_eq!(client.request_state(id).await.unwrap(), Some(RequestState::New));
    let err = client.request_storage(request).await.unwrap_err();
    assert_eq!(err.revert_name().as_deref(), Some("Marketplace_RequestAlreadyExists"), "{err}");
}

#[actix_rt::test]
async fn transport_errors_are_retried_within_the_budget() {
    let chain = Chain::start().await;
    let proxy = FaultProxy::start(chain.local.addr()).unwrap();
    let marketplace = chain.deployment.marketplace;

    // Refused for 800 ms; the budget (50 + 100 + 200 + 8 × 400 ms of waits) is larger.
    proxy.cut();
    let provider = connect(&format!("http://{}", proxy.addr()), chain.local.signer(CLIENT)).await.unwrap();
    let policy = RetryPolicy { attempts: 12, base: Duration::from_millis(50), max: Duration::from_millis(400) };
    let market = OnChainMarket::new(provider, marketplace, chain.local.signer(CLIENT), policy, TxPolicy::default());
    let reopen = async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        proxy.reopen();
    };
    let (config, ()) = tokio::join!(market.configuration(), reopen);
    assert_eq!(config.expect("answers once the proxy reopens").proofs.period, 30);
    assert!(proxy.refused() >= 2, "retried while refused ({} refusals)", proxy.refused());

    // Nobody listens: three attempts, then a transport error (within the budget of 10 + 20 ms of waits).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let provider = connect(&format!("http://127.0.0.1:{port}"), chain.local.signer(CLIENT)).await.unwrap();
    let policy = RetryPolicy { attempts: 3, base: Duration::from_millis(10), max: Duration::from_millis(100) };
    let market = OnChainMarket::new(provider, marketplace, chain.local.signer(CLIENT), policy, TxPolicy::default());
    let started = Instant::now();
    let err = market.configuration().await.unwrap_err();
    assert!(matches!(err, MarketError::Transport { attempts: 3, .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "gave up after {:?}", started.elapsed());
}

/// Six requests of one account at once (each approves its price and then spends it), then, once they expired, six
/// withdrawals at once (transactions that only contend for the nonces): every one goes through.
#[actix_rt::test]
async fn concurrent_transactions_of_one_account_all_go_through() {
    let chain = Chain::start().await;
    let client = chain.market(CLIENT);
    let token = TestToken::new(chain.deployment.token, chain.local.provider(0));
    let funds = token.balanceOf(chain.local.address(CLIENT)).call().await.unwrap();
    let requests: Vec<Request> = (1..=6).map(|nonce| chain.request(CLIENT, nonce)).collect();

    let results = futures::future::join_all(requests.iter().map(|r| client.request_storage(r.clone()))).await;

    let ids: Vec<RequestId> = results.into_iter().map(|r| r.expect("every request goes through")).collect();
    assert_eq!(ids, requests.iter().map(request_id).collect::<Vec<_>>());
    for id in &ids {
        assert_eq!(client.request_state(*id).await.unwrap(), Some(RequestState::New), "{id}");
    }
    let mut mine = client.my_requests().await.unwrap();
    mine.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(mine, expected);
    assert!(token.balanceOf(chain.local.address(CLIENT)).call().await.unwrap() < funds);

    chain.local.advance(700).await.unwrap();
    let results = futures::future::join_all(ids.iter().map(|id| client.withdraw_funds(*id))).await;

    for result in results {
        result.expect("every withdrawal goes through");
    }
    for id in &ids {
        assert_eq!(client.request_state(*id).await.unwrap(), Some(RequestState::Cancelled), "{id}");
    }
    assert!(client.my_requests().await.unwrap().is_empty(), "withdrawn requests are no longer the client's");
    assert_eq!(token.balanceOf(chain.local.address(CLIENT)).call().await.unwrap(), funds, "all paid back");
    // Six approvals, six requests and six withdrawals, each mined under its own nonce.
    let sent = chain.local.provider(0).get_transaction_count(chain.local.address(CLIENT)).await.unwrap();
    assert_eq!(sent, 18);
}

/// A transaction whose first send never reaches the chain is sent again and mined, and the account's next
/// transactions still go through: the lost send left no gap in the nonces.
#[actix_rt::test]
async fn a_lost_send_is_retried_without_a_nonce_gap() {
    let chain = Chain::start().await;
    let proxy = FaultProxy::start(chain.local.addr()).unwrap();
    let provider = connect(&format!("http://{}", proxy.addr()), chain.local.signer(CLIENT)).await.unwrap();
    let policy = RetryPolicy { attempts: 5, base: Duration::from_millis(50), max: Duration::from_millis(200) };
    let market = OnChainMarket::new(
        provider,
        chain.deployment.marketplace,
        chain.local.signer(CLIENT),
        policy,
        TxPolicy::default(),
    );
    let bounded = |call| async move { tokio::time::timeout(WAIT, call).await.expect("mined, not stuck") };

    bounded(market.request_storage(chain.request(CLIENT, 1))).await.unwrap();
    proxy.lose_next_send();
    let id = bounded(market.request_storage(chain.request(CLIENT, 2))).await.expect("goes through on a retry");
    assert!(proxy.lost_a_send());
    bounded(market.request_storage(chain.request(CLIENT, 3))).await.unwrap();

    assert_eq!(market.request_state(id).await.unwrap(), Some(RequestState::New));
    assert_eq!(market.my_requests().await.unwrap().len(), 3);
    let sent = chain.local.provider(0).get_transaction_count(chain.local.address(CLIENT)).await.unwrap();
    assert_eq!(sent, 6, "an approval and a request each");
}

#[actix_rt::test]
async fn chain_time_is_the_latest_blocks_timestamp() {
    let chain = Chain::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let probe = Probe(Seen::default()).start();
    let actor = ChainActor::start(chain.config(chain.local.endpoint()), store, probe.recipient()).await.unwrap();

    chain.local.advance(100_000).await.unwrap();
    let clock = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let time = actor.send(GetChainTime {}).await.unwrap().unwrap();

    let latest = chain.local.provider(0).get_block_by_number(BlockNumberOrTag::Latest).await.unwrap().unwrap();
    assert_eq!(time, latest.header.timestamp);
    assert!(time >= clock + 99_000, "chain time {time}, local clock {clock}");
    actor.send(StopChain).await.unwrap();
}

/// Until [`StartWatching`] nothing is read (a restart's backlog waits for the recipients); a delivery the
/// recipient could not handle is handed over again, and the cursor moves only past handled ones.
#[actix_rt::test]
async fn events_wait_for_their_recipients_and_unhandled_ones_come_again() {
    let chain = Chain::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let seen = Seen::default();
    let probe = Probe(seen.clone()).start();
    let actor =
        ChainActor::start(chain.config(chain.local.endpoint()), store.clone(), probe.recipient()).await.unwrap();
    let client = chain.market(CLIENT);

    let a = client.request_storage(chain.request(CLIENT, 1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(seen.batches().is_empty(), "nothing is handed over before StartWatching");

    seen.1.store(2, Ordering::SeqCst);
    actor.do_send(StartWatching);
    let deadline = Instant::now() + WAIT;
    while seen.requested().len() < 3 {
        assert!(Instant::now() < deadline, "the refused deliveries never came again: {:?}", seen.requested());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen.requested(), [a, a, a], "refused twice, handed over again each time");
    let block = seen.events().last().unwrap().block;
    loop {
        let cursor = store.send(GetChainCursor { key: chain.cursor_key() }).await.unwrap().unwrap();
        if cursor.is_some_and(|c| c.block >= block) {
            break;
        }
        assert!(Instant::now() < deadline, "the cursor never moved past the handled delivery: {cursor:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    actor.send(StopChain).await.unwrap();
}

/// A transaction that reached the chain but whose answer was lost is found by its hash: it is neither sent a
/// second time (which would revert, the request existing) nor reported as failed.
#[actix_rt::test]
async fn a_lost_answer_is_found_by_hash_and_the_transaction_not_sent_twice() {
    let chain = Chain::start().await;
    let proxy = FaultProxy::start(chain.local.addr()).unwrap();
    let provider = connect(&format!("http://{}", proxy.addr()), chain.local.signer(CLIENT)).await.unwrap();
    let policy = RetryPolicy { attempts: 5, base: Duration::from_millis(50), max: Duration::from_millis(200) };
    let tx = TxPolicy { poll: Duration::from_millis(100), ..TxPolicy::default() };
    let market = OnChainMarket::new(provider, chain.deployment.marketplace, chain.local.signer(CLIENT), policy, tx);
    let bounded = |call| async move { tokio::time::timeout(WAIT, call).await.expect("mined, not stuck") };

    for (nonce, lose) in [(1, false), (2, true), (3, false)] {
        if lose {
            proxy.lose_next_answer();
        }
        let id = bounded(market.request_storage(chain.request(CLIENT, nonce))).await.expect("goes through");
        assert_eq!(market.request_state(id).await.unwrap(), Some(RequestState::New));
    }
    assert_eq!(proxy.lost_answers(), 1, "one answer was lost on the way");
    let sent = chain.local.provider(0).get_transaction_count(chain.local.address(CLIENT)).await.unwrap();
    assert_eq!(sent, 6, "an approval and a request each, none twice");
}

/// A transaction of the node's that the chain's fees outgrew while it waited in the mempool would hold every
/// later one for ever: it is replaced with higher fees, and the market's calls go through.
#[actix_rt::test]
async fn a_stuck_transaction_is_replaced_and_later_ones_go_through() {
    let chain = Chain::start().await;
    let admin = chain.local.provider(0);
    let market = chain.impatient_market(CLIENT);

    // The approval goes to the mempool at today's fees; the fees jump before it is mined.
    admin.anvil_set_auto_mine(false).await.unwrap();
    let call = tokio::spawn({
        let (market, request) = (market.clone(), chain.request(CLIENT, 1));
        async move { market.request_storage(request).await }
    });
    let deadline = Instant::now() + WAIT;
    loop {
        let status: serde_json::Value = admin.raw_request("txpool_status".into(), ()).await.unwrap();
        if status["pending"].as_str().is_some_and(|n| n != "0x0") {
            break;
        }
        assert!(Instant::now() < deadline, "the approval never reached the mempool: {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    admin.anvil_set_next_block_base_fee_per_gas(100_000_000_000).await.unwrap();
    admin.evm_mine(None).await.unwrap();
    admin.anvil_set_auto_mine(true).await.unwrap();

    let id = tokio::time::timeout(WAIT, call)
        .await
        .expect("not held by the underpriced transaction")
        .unwrap()
        .expect("goes through");
    assert_eq!(market.request_state(id).await.unwrap(), Some(RequestState::New));
    assert!(market.transactions_replaced() >= 1, "the approval was replaced");
}

/// A transaction this process did not send (left in the mempool by a run before a restart) holds every later
/// nonce while it is not mined: it is replaced by a no-op transfer to self, and the market's calls go through.
#[actix_rt::test]
async fn an_unknown_stuck_transaction_is_replaced_by_a_no_op() {
    use alloy::consensus::Transaction;
    use alloy::network::TransactionBuilder;
    use alloy::rpc::types::TransactionRequest;
    let chain = Chain::start().await;
    let admin = chain.local.provider(0);
    let client = chain.local.address(CLIENT);
    let market = chain.impatient_market(CLIENT);

    // "The run before" left a transfer in the mempool; nothing is mined for now.
    admin.anvil_set_auto_mine(false).await.unwrap();
    let first_block = admin.get_block_number().await.unwrap();
    let nonce = admin.get_transaction_count(client).await.unwrap();
    let foreign = TransactionRequest::default().with_to(client).with_value(U256::from(1u8));
    let foreign = *chain.local.provider(CLIENT).send_transaction(foreign).await.unwrap().tx_hash();
    let call = tokio::spawn({
        let (market, request) = (market.clone(), chain.request(CLIENT, 1));
        async move { market.request_storage(request).await }
    });
    // Past `stuck_after` the unknown nonce is replaced; then blocks come again.
    let deadline = Instant::now() + WAIT;
    while market.transactions_replaced() == 0 {
        assert!(Instant::now() < deadline, "nothing was replaced");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    admin.anvil_set_auto_mine(true).await.unwrap();
    admin.evm_mine(None).await.unwrap();

    let id = tokio::time::timeout(WAIT, call)
        .await
        .expect("not held by the unknown transfer")
        .unwrap()
        .expect("goes through");
    assert_eq!(market.request_state(id).await.unwrap(), Some(RequestState::New));
    assert!(admin.get_transaction_receipt(foreign).await.unwrap().is_none(), "the unknown transfer was replaced");
    // Nonce `nonce` went to a no-op: a transfer of nothing to self.
    let mut found = None;
    for number in first_block..=admin.get_block_number().await.unwrap() {
        let block = admin.get_block_by_number(number.into()).full().await.unwrap().unwrap();
        for tx in block.transactions.into_transactions() {
            if tx.inner.signer() == client && tx.nonce() == nonce {
                found = Some((tx.to(), tx.value()));
            }
        }
    }
    assert_eq!(found, Some((Some(client), U256::ZERO)), "the no-op took the unknown transaction's nonce");
}

/// Every clone of a market uses the connection given to any of them (the chain actor reconnecting): a clone made
/// while the endpoint was unreachable works once the connection is replaced.
#[actix_rt::test]
async fn a_replaced_connection_serves_every_clone() {
    let chain = Chain::start().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let provider = connect(&url, chain.local.signer(NODE)).await.unwrap();
    let policy = RetryPolicy { attempts: 2, base: Duration::from_millis(10), max: Duration::from_millis(10) };
    let market = OnChainMarket::new(
        provider,
        chain.deployment.marketplace,
        chain.local.signer(NODE),
        policy,
        TxPolicy::default(),
    );
    let clone = market.clone();
    assert!(clone.chain_time().await.is_err(), "nothing answers there");
    market.replace_provider(connect(&chain.local.endpoint(), chain.local.signer(NODE)).await.unwrap());
    clone.chain_time().await.expect("the clone uses the new connection");
}

/// A reorganisation under the cursor (its block replaced by one holding a request) is noticed by the cursor's
/// hash: the blocks are read again and the new block's event is handed over.
#[actix_rt::test]
async fn a_reorg_under_the_cursor_is_read_again() {
    use alloy::network::TransactionBuilder;
    use alloy::rpc::types::anvil::{ReorgOptions, TransactionData};
    let chain = Chain::start().await;
    let admin = chain.local.provider(0);
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let seen = Seen::default();
    let probe = Probe(seen.clone()).start();
    let actor =
        ChainActor::start(chain.config(chain.local.endpoint()), store.clone(), probe.recipient()).await.unwrap();
    actor.do_send(StartWatching);
    let client = chain.market(CLIENT);
    let a = client.request_storage(chain.request(CLIENT, 1)).await.unwrap();
    seen.wait_requested(&[a]).await;

    // An allowance for the request the new branch will hold, then an empty block the cursor passes.
    let token = TestToken::new(chain.deployment.token, chain.local.provider(CLIENT));
    let allowance = U256::from(10u64).pow(U256::from(12));
    token.approve(chain.deployment.marketplace, allowance).send().await.unwrap().watch().await.unwrap();
    admin.evm_mine(None).await.unwrap();
    let head = admin.get_block_number().await.unwrap();
    let deadline = Instant::now() + WAIT;
    while store.send(GetChainCursor { key: chain.cursor_key() }).await.unwrap().unwrap().is_none_or(|c| c.block < head)
    {
        assert!(Instant::now() < deadline, "the cursor never reached the head");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The head block is replaced by one that holds request B: same height, another hash.
    let b = chain.request(CLIENT, 2);
    let marketplace = codex_actors::chain::bindings::Marketplace::new(chain.deployment.marketplace, admin.clone());
    let tx = marketplace
        .requestStorage(b.clone())
        .into_transaction_request()
        .with_from(chain.local.address(CLIENT))
        .with_gas_limit(2_000_000);
    admin.anvil_reorg(ReorgOptions { depth: 1, tx_block_pairs: vec![(TransactionData::JSON(tx), 0)] }).await.unwrap();
    assert_eq!(admin.get_block_number().await.unwrap(), head, "the reorg keeps the height");
    let deadline = Instant::now() + WAIT;
    while !seen.requested().contains(&request_id(&b)) {
        assert!(Instant::now() < deadline, "B in the new branch was never handed over: {:?}", seen.requested());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A was read again with the rewound blocks (at least once; its consumers read the chain's state).
    assert!(seen.requested().iter().filter(|id| **id == a).count() >= 2, "{:?}", seen.requested());
    assert_eq!(client.request_state(request_id(&b)).await.unwrap(), Some(RequestState::New), "B is on chain");
    actor.send(StopChain).await.unwrap();
}
