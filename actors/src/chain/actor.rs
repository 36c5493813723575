//! ChainActor: the node's one owner of a chain connection. It holds the [`OnChainMarket`] (provider, signer,
//! marketplace address; every clone handed out shares its connection, which a reconnect swaps in place), answers
//! market queries and sends market transactions for the other actors, and watches the marketplace's logs.
//!
//! Watching starts only with [`StartWatching`], once the recipients of the events exist (the node sends it after
//! every marketplace actor started), so the backlog of a restart reaches them. Every `poll_interval` it reads the
//! logs of the blocks past its cursor that have `confirmations` (at most [`MAX_LOG_RANGE`] at a time), hands them to
//! its recipient as one [`ChainEvents`] in chain order, waits until the recipient *handled* them (it answers an
//! error when a follow-up read failed: the range is read again at the next poll), and only then saves the cursor
//! (block and hash) in redb ([`SaveChainCursor`]). A dropped connection, a chain that is down for a while, a
//! recipient that could not handle an event, or a node restart therefore lose no event; a reorg under the cursor
//! (its block's hash changed) rewinds it [`REORG_DEPTH`] blocks and hands those blocks over again. Events may
//! come twice; consumers read the chain's state, so a repeat is harmless. A restarted node with no saved cursor
//! starts at the chain's head.
//!
//! Runs on the system arbiter; calls and transactions run as futures there, never blocking it. Time in the
//! market is the chain's: [`GetChainTime`] is the latest block's timestamp.

use std::time::Duration;

use actix::prelude::*;
use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;

use super::account::{AccountError, connect};
use super::market::{
    ChainEvent, MAX_LOG_RANGE, Market, MarketError, MarketplaceConfig, OnChainMarket, Request, RequestId, RequestState,
    RetryPolicy,
};
use super::tx::TxPolicy;
use crate::store::{ChainCursor, GetChainCursor, SaveChainCursor, StoreActor};

/// Blocks the cursor goes back when its block's hash changed (a reorg): those blocks' events are handed over
/// again.
pub const REORG_DEPTH: u64 = 64;

/// Confirmations asked of events on a public chain unless configured.
pub const DEFAULT_CONFIRMATIONS: u64 = 3;

/// Whether `chain_id` is a local development chain (anvil, hardhat, ganache): it never reorganises.
pub fn is_local_chain(chain_id: u64) -> bool {
    matches!(chain_id, 31337 | 1337)
}

/// How the node reaches the chain.
#[derive(Debug, Clone)]
pub struct ChainConfig {
    /// JSON-RPC endpoint (http(s):// or ws(s)://).
    pub eth_provider: String,
    /// The account that signs.
    pub signer: PrivateKeySigner,
    pub marketplace: Address,
    pub retry: RetryPolicy,
    /// How transactions are followed, replaced when stuck, and given up on.
    pub tx: TxPolicy,
    /// How often the logs of new blocks are read.
    pub poll_interval: Duration,
    /// Blocks an event must have (its own included) before it is handed over: 1 acts on the head. `None`: 1 on
    /// a local development chain (ids 31337 and 1337), [`DEFAULT_CONFIRMATIONS`] elsewhere.
    pub confirmations: Option<u64>,
}

/// Why the chain actor could not start.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Market(#[from] MarketError),
    #[error("no marketplace at {address} on chain {chain_id}: check --marketplace-address")]
    NoMarketplace { address: Address, chain_id: u64 },
    #[error("the repository: {0}")]
    Store(String),
    #[error(
        "the proving keys are development keys (derived from a public seed): anyone could forge storage proofs on \
         chain {chain_id}. Import keys from a trusted setup with `codex prover import`, or pass --insecure-dev-keys \
         on a test network"
    )]
    DevelopmentKeys { chain_id: u64 },
}

/// The recipient could not handle some events (a follow-up read failed): the range is handed over again later.
#[derive(Debug, Clone, thiserror::Error)]
#[error("events not handled: {0}")]
pub struct NotHandled(pub String);

/// The marketplace events of a range of blocks, in chain order; the cursor is saved once the recipient has
/// handled the message (answered `Ok`).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), NotHandled>")]
pub struct ChainEvents {
    pub events: Vec<ChainEvent>,
    /// The last block of the range.
    pub through_block: u64,
}

/// The chain actor.
pub struct ChainActor {
    config: ChainConfig,
    market: OnChainMarket,
    store: Addr<StoreActor>,
    recipient: Recipient<ChainEvents>,
    cursor_key: String,
    /// The last block whose events were handled, and its hash.
    cursor: ChainCursor,
    chain_id: u64,
    /// [`StartWatching`] came.
    watching: bool,
    /// Blocks an event must have before it is handed over.
    confirmations: u64,
    polling: bool,
    failures: u32,
    /// A [`StopChain`] came: no new poll starts, and the actor stops once the poll under way has finished.
    stopping: bool,
    /// Dropped with the actor: the [`StopChain`] callers wait for that.
    stop_waiters: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl ChainActor {
    /// Connects, checks that a marketplace answers at the configured address, loads the saved cursor (or starts
    /// at the chain's head) and starts the actor on the current arbiter.
    pub async fn start(
        config: ChainConfig,
        store: Addr<StoreActor>,
        recipient: Recipient<ChainEvents>,
    ) -> Result<Addr<Self>, ChainError> {
        let market = connect_market(&config).await?;
        let chain_id = market.chain_id().await?;
        match market.configuration().await {
            Ok(_) => {}
            Err(err @ MarketError::Transport { .. }) => return Err(err.into()),
            Err(_) => return Err(ChainError::NoMarketplace { address: config.marketplace, chain_id }),
        }
        let cursor_key = format!("{chain_id}:{:#x}", config.marketplace);
        let local = if is_local_chain(chain_id) { 1 } else { DEFAULT_CONFIRMATIONS };
        let confirmations = config.confirmations.unwrap_or(local).max(1);
        let saved = store
            .send(GetChainCursor { key: cursor_key.clone() })
            .await
            .map_err(|e| ChainError::Store(e.to_string()))?
            .map_err(|e| ChainError::Store(e.to_string()))?;
        let cursor = match saved {
            Some(cursor) => cursor,
            None => ChainCursor { block: market.block_number().await?, hash: None },
        };
        tracing::info!(
            marketplace = %config.marketplace, chain_id, account = %market.signer(), from_block = cursor.block + 1,
            confirmations, "chain connected"
        );
        let actor = Self {
            config,
            market,
            store,
            recipient,
            cursor_key,
            cursor,
            chain_id,
            watching: false,
            confirmations,
            polling: false,
            failures: 0,
            stopping: false,
            stop_waiters: Vec::new(),
        };
        Ok(actor.start())
    }

    fn poll(&mut self, ctx: &mut Context<Self>) {
        if self.polling || self.stopping || !self.watching {
            return;
        }
        self.polling = true;
        let (market, cursor, confirmations) = (self.market.clone(), self.cursor, self.confirmations);
        let (recipient, store, key) = (self.recipient.clone(), self.store.clone(), self.cursor_key.clone());
        let work = async move {
            let mut from = cursor.block + 1;
            if let Some(saved) = cursor.hash
                && market.block_hash(cursor.block).await? != Some(saved.into())
            {
                from = cursor.block.saturating_sub(REORG_DEPTH).max(1);
                tracing::warn!(block = cursor.block, from, "the chain reorganised under the cursor: re-reading");
            }
            let head = market.block_number().await?;
            let safe = head.saturating_sub(confirmations - 1);
            if safe < from {
                return Ok(None);
            }
            let to = safe.min(from.saturating_add(MAX_LOG_RANGE - 1));
            let events = market.events(from, to).await?;
            let hash = market.block_hash(to).await?.map(|h| h.0);
            if !events.is_empty() {
                tracing::debug!(from, to, count = events.len(), "marketplace events");
            }
            recipient
                .send(ChainEvents { events, through_block: to })
                .await
                .map_err(|e| MarketError::Other(format!("the event recipient is gone: {e}")))?
                .map_err(|e| MarketError::Other(e.to_string()))?;
            let next = ChainCursor { block: to, hash };
            store
                .send(SaveChainCursor { key, cursor: next })
                .await
                .map_err(|e| MarketError::Other(e.to_string()))?
                .map_err(|e| MarketError::Other(format!("saving the chain cursor: {e}")))?;
            Ok(Some((next, to < safe)))
        };
        ctx.spawn(work.into_actor(self).map(|result: Result<Option<(ChainCursor, bool)>, MarketError>, act, ctx| {
            act.polling = false;
            match result {
                Ok(Some((cursor, behind))) => {
                    act.cursor = cursor;
                    act.failures = 0;
                    if behind {
                        // Catching up after a restart or an outage: the next range at once.
                        ctx.notify(Poll);
                    }
                }
                Ok(None) => act.failures = 0,
                Err(err) => act.poll_failed(err, ctx),
            }
            if act.stopping {
                ctx.stop();
            }
        }));
    }

    fn poll_failed(&mut self, err: MarketError, ctx: &mut Context<Self>) {
        self.failures += 1;
        tracing::warn!(%err, failures = self.failures, "reading marketplace events failed; will retry");
        if matches!(err, MarketError::Transport { .. }) && self.failures >= 2 {
            // The connection may be beyond repair (a WebSocket whose reconnects ran out): make a new one.
            let config = self.config.clone();
            // Every clone of the market (sales agents, the validator) gets the new connection with it.
            ctx.spawn(async move { connect(&config.eth_provider, config.signer.clone()).await }.into_actor(self).map(
                |result, act, _| match result {
                    Ok(provider) => {
                        tracing::info!("reconnected to the chain");
                        act.market.replace_provider(provider);
                    }
                    Err(err) => tracing::warn!(%err, "reconnecting to the chain failed"),
                },
            ));
        }
    }
}

async fn connect_market(config: &ChainConfig) -> Result<OnChainMarket, AccountError> {
    let provider = connect(&config.eth_provider, config.signer.clone()).await?;
    Ok(OnChainMarket::new(provider, config.marketplace, config.signer.clone(), config.retry, config.tx))
}

impl Actor for ChainActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.config.poll_interval, |act, ctx| act.poll(ctx));
        self.poll(ctx);
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Poll;

/// Command: start handing events over (the recipients are ready). Until then nothing is read, so a restart's
/// backlog waits for them.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct StartWatching;

impl Handler<StartWatching> for ChainActor {
    type Result = ();
    fn handle(&mut self, _: StartWatching, ctx: &mut Self::Context) {
        self.watching = true;
        self.poll(ctx);
    }
}

impl Handler<Poll> for ChainActor {
    type Result = ();
    fn handle(&mut self, _: Poll, ctx: &mut Self::Context) {
        self.poll(ctx);
    }
}

/// Command: stop watching and drop the connection. A poll under way finishes first (its events handed over, the
/// cursor saved), so an actor started afterwards on the same repository neither repeats nor skips events; the
/// answer comes once the actor has stopped.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct StopChain;

impl Handler<StopChain> for ChainActor {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, _: StopChain, ctx: &mut Self::Context) -> Self::Result {
        self.stopping = true;
        let (stopped, done) = tokio::sync::oneshot::channel();
        self.stop_waiters.push(stopped);
        if !self.polling {
            ctx.stop();
        }
        Box::pin(async move { done.await.unwrap_or(()) })
    }
}

/// Query: the chain's id.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "u64")]
pub struct GetChainId;

impl Handler<GetChainId> for ChainActor {
    type Result = u64;
    fn handle(&mut self, _: GetChainId, _: &mut Self::Context) -> u64 {
        self.chain_id
    }
}

/// Query: the market handle (cheap to clone), for callers that run several calls in a row.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "OnChainMarket")]
pub struct GetMarket;

impl Handler<GetMarket> for ChainActor {
    type Result = MessageResult<GetMarket>;
    fn handle(&mut self, _: GetMarket, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.market.clone())
    }
}

/// Defines a message answered by one [`Market`] call on a clone of the actor's market.
macro_rules! market_message {
    ($(#[$doc:meta])* $name:ident { $($field:ident: $ty:ty),* } -> $out:ty, |$m:ident| $call:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name { $(pub $field: $ty),* }

        impl Message for $name {
            type Result = Result<$out, MarketError>;
        }

        impl Handler<$name> for ChainActor {
            type Result = ResponseFuture<Result<$out, MarketError>>;
            fn handle(&mut self, msg: $name, _: &mut Self::Context) -> Self::Result {
                let $m = self.market.clone();
                let $name { $($field),* } = msg;
                Box::pin(async move { $call.await })
            }
        }
    };
}

market_message!(
    /// Query: the marketplace configuration.
    GetConfiguration {} -> MarketplaceConfig, |m| m.configuration()
);
market_message!(
    /// Query: the latest block's timestamp, the market's clock.
    GetChainTime {} -> u64, |m| m.chain_time()
);
market_message!(
    /// Query: a request, `None` if the contract does not know it.
    GetRequest { id: RequestId } -> Option<Request>, |m| m.get_request(id)
);
market_message!(
    /// Query: a request's state, `None` if the contract does not know it.
    GetRequestState { id: RequestId } -> Option<RequestState>, |m| m.request_state(id)
);
market_message!(
    /// Command: approve the maximum price and submit the request; its id.
    RequestStorage { request: Request } -> RequestId, |m| m.request_storage(request)
);
market_message!(
    /// Command: withdraw what a cancelled, failed or finished request returns to its client.
    WithdrawFunds { id: RequestId } -> (), |m| m.withdraw_funds(id)
);
