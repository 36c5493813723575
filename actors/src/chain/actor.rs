//! ChainActor: the node's one owner of a chain connection. It holds the [`OnChainMarket`] (provider, signer,
//! marketplace address), answers market queries and sends market transactions for the other actors, and
//! watches the marketplace's logs: every `poll_interval` it reads the logs of the blocks past its cursor (at most
//! [`MAX_LOG_RANGE`] at a time), hands them to its recipient as one [`ChainEvents`] in chain order, waits for
//! the recipient to take them, and then saves the cursor in redb ([`SaveChainCursor`]). A dropped WebSocket,
//! a chain that is down for a while, or a node restart therefore lose no event: the next poll starts after the
//! last block whose events were handed over. A restarted node with no saved cursor starts at the chain's head.
//!
//! Runs on the arbiter it is started on (the node gives it its own, `codex-chain`); calls and transactions run
//! as futures there, never blocking it. Time in the market is the chain's: [`GetChainTime`] is the latest
//! block's timestamp.

use std::time::Duration;

use actix::prelude::*;
use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;

use super::account::{AccountError, connect};
use super::market::{
    ChainEvent, MAX_LOG_RANGE, Market, MarketError, MarketplaceConfig, OnChainMarket, Request, RequestId, RequestState,
    RetryPolicy,
};
use crate::store::{GetChainCursor, SaveChainCursor, StoreActor};

/// How the node reaches the chain.
#[derive(Debug, Clone)]
pub struct ChainConfig {
    /// JSON-RPC endpoint (http(s):// or ws(s)://).
    pub eth_provider: String,
    /// The account that signs.
    pub signer: PrivateKeySigner,
    pub marketplace: Address,
    pub retry: RetryPolicy,
    /// How often the logs of new blocks are read.
    pub poll_interval: Duration,
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
}

/// The marketplace events of a range of blocks, in chain order; the cursor is saved once the recipient has
/// handled the message.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
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
    /// The last block whose events were handed over.
    cursor: u64,
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
        let saved = store
            .send(GetChainCursor { key: cursor_key.clone() })
            .await
            .map_err(|e| ChainError::Store(e.to_string()))?
            .map_err(|e| ChainError::Store(e.to_string()))?;
        let cursor = match saved {
            Some(block) => block,
            None => market.block_number().await?,
        };
        tracing::info!(
            marketplace = %config.marketplace, chain_id, account = %market.signer(), from_block = cursor + 1,
            "chain connected"
        );
        let actor = Self {
            config,
            market,
            store,
            recipient,
            cursor_key,
            cursor,
            polling: false,
            failures: 0,
            stopping: false,
            stop_waiters: Vec::new(),
        };
        Ok(actor.start())
    }

    fn poll(&mut self, ctx: &mut Context<Self>) {
        if self.polling || self.stopping {
            return;
        }
        self.polling = true;
        let (market, from) = (self.market.clone(), self.cursor + 1);
        let (recipient, store, key) = (self.recipient.clone(), self.store.clone(), self.cursor_key.clone());
        let work = async move {
            let head = market.block_number().await?;
            if head < from {
                return Ok(None);
            }
            let to = head.min(from.saturating_add(MAX_LOG_RANGE - 1));
            let events = market.events(from, to).await?;
            if !events.is_empty() {
                tracing::debug!(from, to, count = events.len(), "marketplace events");
            }
            recipient
                .send(ChainEvents { events, through_block: to })
                .await
                .map_err(|e| MarketError::Other(format!("the event recipient is gone: {e}")))?;
            store
                .send(SaveChainCursor { key, block: to })
                .await
                .map_err(|e| MarketError::Other(e.to_string()))?
                .map_err(|e| MarketError::Other(format!("saving the chain cursor: {e}")))?;
            Ok(Some((to, to < head)))
        };
        ctx.spawn(work.into_actor(self).map(|result: Result<Option<(u64, bool)>, MarketError>, act, ctx| {
            act.polling = false;
            match result {
                Ok(Some((to, behind))) => {
                    act.cursor = to;
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
            ctx.spawn(async move { connect_market(&config).await }.into_actor(self).map(
                |result, act, _| match result {
                    Ok(market) => {
                        tracing::info!("reconnected to the chain");
                        act.market = market;
                    }
                    Err(err) => tracing::warn!(%err, "reconnecting to the chain failed"),
                },
            ));
        }
    }
}

async fn connect_market(config: &ChainConfig) -> Result<OnChainMarket, AccountError> {
    let provider = connect(&config.eth_provider, config.signer.clone()).await?;
    Ok(OnChainMarket::new(provider, config.marketplace, config.signer.address(), config.retry))
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
