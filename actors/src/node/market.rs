//! The NodeActor's marketplace side (with persistence): [`EnableMarketplace`] connects the ChainActor (its
//! events come back here as [`ChainEvents`]) and starts the PurchasingActor; [`RequestPurchase`],
//! [`ListPurchases`] and [`GetPurchase`] serve the storage endpoints. Without persistence they answer
//! [`NodeError::NoPersistence`].

use super::{DatasetStored, NodeActor, NodeError};
use crate::chain::actor::GetMarket;
use crate::chain::actor::{
    ChainActor, ChainConfig, ChainError, ChainEvents, GetChainId, GetConfiguration, NotHandled, StartWatching,
    StopChain, is_local_chain,
};
use crate::chain::market::{MarketEvent, RequestId};
use crate::protect::protect_dataset;
use crate::purchasing::{
    CheckStorageParams, GetPurchase as GetPurchaseRecord, ListPurchaseIds, Purchase, PurchaseError, PurchaseEvent,
    PurchasingActor, PurchasingConfig, StopPurchasing, StorageParams, SubmitPurchase, WithdrawPurchase,
};
use crate::sales::{GetSalesSummary, SalesActor, SalesConfig, SalesEvents, SalesSummary};
use crate::validator::{
    GetValidatorInfo, StopValidator, ValidatorActor, ValidatorConfig, ValidatorEvents, ValidatorInfo,
};
use actix::prelude::*;
use alloy::primitives::Address;
use codex_protocol::Cid;

/// The marketplace actors of a node with persistence.
#[derive(Clone)]
pub(super) struct MarketActors {
    chain: Addr<ChainActor>,
    purchasing: Addr<PurchasingActor>,
    /// The host's side (issue 13).
    pub(super) sales: Addr<SalesActor>,
    /// With `--validator` (issue 14).
    validator: Option<Addr<ValidatorActor>>,
}

/// What [`EnableMarketplace`] connected to.
#[derive(Debug, Clone)]
pub struct MarketInfo {
    pub account: Address,
    pub marketplace: Address,
}

/// Command: connect to the chain and start the marketplace actors (once, at start).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<MarketInfo, NodeError>")]
pub struct EnableMarketplace {
    pub chain: ChainConfig,
    pub purchasing: PurchasingConfig,
    pub sales: SalesConfig,
    /// Run a validator too.
    pub validator: Option<ValidatorConfig>,
    /// The proving keys are development keys: refused unless the chain is a local one.
    pub development_keys: bool,
}

/// Command: buy storage for stored dataset `cid` (erasure coding, slots, the request on chain); the request id.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<RequestId, NodeError>")]
pub struct RequestPurchase {
    pub cid: Cid,
    pub params: StorageParams,
}

/// Query: this node's purchase ids.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Result<Vec<RequestId>, NodeError>")]
pub struct ListPurchases;

/// Query: one purchase.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Result<Option<Purchase>, NodeError>")]
pub struct GetPurchase {
    pub id: RequestId,
}

impl MarketActors {
    /// Stops checking purchases and watching the chain (at node stop).
    pub(super) fn stop(&self) {
        self.purchasing.do_send(StopPurchasing);
        self.sales.do_send(crate::sales::StopSales);
        if let Some(validator) = &self.validator {
            validator.do_send(StopValidator);
        }
        self.chain.do_send(StopChain);
    }
}

impl NodeActor {
    fn market(&self) -> Result<MarketActors, NodeError> {
        self.market.clone().ok_or(NodeError::NoPersistence)
    }

    /// The SalesActor, or [`NodeError::NoPersistence`].
    pub(super) fn sales(&self) -> Result<Addr<SalesActor>, NodeError> {
        Ok(self.market()?.sales)
    }
}

impl Handler<EnableMarketplace> for NodeActor {
    type Result = ResponseActFuture<Self, Result<MarketInfo, NodeError>>;
    fn handle(&mut self, msg: EnableMarketplace, ctx: &mut Self::Context) -> Self::Result {
        let (store, me, prover) = (self.store.clone(), ctx.address(), self.prover.clone());
        let account = msg.chain.signer.address();
        let marketplace = msg.chain.marketplace;
        Box::pin(
            async move {
                let chain = ChainActor::start(msg.chain, store.clone(), me.clone().recipient()).await?;
                let chain_id = chain.send(GetChainId).await.map_err(|_| PurchaseError::ChainGone)?;
                if msg.development_keys && !is_local_chain(chain_id) {
                    chain.do_send(StopChain);
                    return Err(ChainError::DevelopmentKeys { chain_id }.into());
                }
                let config = chain
                    .send(GetConfiguration {})
                    .await
                    .map_err(|_| PurchaseError::ChainGone)?
                    .map_err(PurchaseError::from)?;
                let purchasing =
                    PurchasingActor::start(msg.purchasing, config.clone(), account, chain.clone(), store.clone())
                        .await?;
                let market = chain.send(GetMarket).await.map_err(|_| PurchaseError::ChainGone)?;
                let validator = match msg.validator {
                    Some(validator) => Some(
                        ValidatorActor::start(validator, market.clone(), &config).await.map_err(PurchaseError::from)?,
                    ),
                    None => None,
                };
                let sales = SalesActor::start(msg.sales, market, config, store, me, prover).await?;
                Ok(MarketActors { chain, purchasing, sales, validator })
            }
            .into_actor(self)
            .map(move |result: Result<MarketActors, NodeError>, act, _| {
                let actors = result?;
                // Every recipient of chain events exists now: the backlog since the last run can come.
                actors.chain.do_send(StartWatching);
                act.market = Some(actors);
                tracing::info!(%account, %marketplace, "marketplace enabled");
                Ok(MarketInfo { account, marketplace })
            }),
        )
    }
}

impl Handler<ChainEvents> for NodeActor {
    type Result = ResponseFuture<Result<(), NotHandled>>;
    fn handle(&mut self, msg: ChainEvents, _: &mut Self::Context) -> Self::Result {
        // Watching starts once the marketplace actors exist; without them nothing can be handled.
        let Some(market) = self.market.clone() else {
            return Box::pin(async { Err(NotHandled("the marketplace is not enabled yet".into())) });
        };
        for event in &msg.events {
            match event.event {
                MarketEvent::RequestFulfilled { id }
                | MarketEvent::RequestCancelled { id }
                | MarketEvent::RequestFailed { id } => market.purchasing.do_send(PurchaseEvent { id }),
                _ => {}
            }
        }
        if msg.events.is_empty() {
            return Box::pin(async { Ok(()) });
        }
        // The host's side and the validator take every event in chain order; the cursor moves once both have
        // handled them (the sales' follow-up reads included).
        Box::pin(async move {
            if let Some(validator) = &market.validator {
                validator
                    .send(ValidatorEvents { events: msg.events.clone() })
                    .await
                    .map_err(|e| NotHandled(format!("the validator: {e}")))?;
            }
            market
                .sales
                .send(SalesEvents { events: msg.events })
                .await
                .map_err(|e| NotHandled(format!("sales: {e}")))?
        })
    }
}

impl Handler<RequestPurchase> for NodeActor {
    type Result = ResponseFuture<Result<RequestId, NodeError>>;
    fn handle(&mut self, msg: RequestPurchase, ctx: &mut Self::Context) -> Self::Result {
        let (market, actors, me) = (self.market(), self.protect.clone(), ctx.address());
        Box::pin(async move {
            let market = market?;
            let checked = CheckStorageParams { params: msg.params.clone() };
            market.purchasing.send(checked).await.map_err(|_| PurchaseError::ChainGone)??;
            let started = std::time::Instant::now();
            let stored = protect_dataset(actors, msg.cid, msg.params.nodes, msg.params.tolerance).await?;
            me.do_send(DatasetStored { cid: stored.cid, tree: stored.manifest.tree_cid });
            let protected = std::time::Instant::now();
            let submit = SubmitPurchase { cid: stored.cid, manifest: stored.manifest, params: msg.params };
            let id = market.purchasing.send(submit).await.map_err(|_| PurchaseError::ChainGone)??;
            tracing::info!(
                %id,
                protect_ms = protected.duration_since(started).as_millis() as u64,
                chain_ms = protected.elapsed().as_millis() as u64,
                "storage requested"
            );
            Ok(id)
        })
    }
}

impl Handler<ListPurchases> for NodeActor {
    type Result = ResponseFuture<Result<Vec<RequestId>, NodeError>>;
    fn handle(&mut self, _: ListPurchases, _: &mut Self::Context) -> Self::Result {
        let market = self.market();
        Box::pin(
            async move { Ok(market?.purchasing.send(ListPurchaseIds).await.map_err(|_| PurchaseError::ChainGone)?) },
        )
    }
}

impl Handler<GetPurchase> for NodeActor {
    type Result = ResponseFuture<Result<Option<Purchase>, NodeError>>;
    fn handle(&mut self, msg: GetPurchase, _: &mut Self::Context) -> Self::Result {
        let market = self.market();
        Box::pin(async move {
            Ok(market?.purchasing.send(GetPurchaseRecord { id: msg.id }).await.map_err(|_| PurchaseError::ChainGone)?)
        })
    }
}

/// Command: withdraw the funds of an ended purchase; the purchase, `None` if unknown.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Result<Option<Purchase>, NodeError>")]
pub struct WithdrawPurchaseFunds {
    pub id: RequestId,
}

impl Handler<WithdrawPurchaseFunds> for NodeActor {
    type Result = ResponseFuture<Result<Option<Purchase>, NodeError>>;
    fn handle(&mut self, msg: WithdrawPurchaseFunds, _: &mut Self::Context) -> Self::Result {
        let market = self.market();
        Box::pin(async move {
            let purchasing = market?.purchasing;
            Ok(purchasing.send(WithdrawPurchase { id: msg.id }).await.map_err(|_| PurchaseError::ChainGone)??)
        })
    }
}

/// Query: the sales figures for metrics (`None` without persistence).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Option<SalesSummary>")]
pub struct GetSalesMetrics;

impl Handler<GetSalesMetrics> for NodeActor {
    type Result = ResponseFuture<Option<SalesSummary>>;
    fn handle(&mut self, _: GetSalesMetrics, _: &mut Self::Context) -> Self::Result {
        let sales = self.sales().ok();
        Box::pin(async move { sales?.send(GetSalesSummary).await.ok() })
    }
}

/// Query: the validator's figures (`None` without `--validator`).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Option<ValidatorInfo>")]
pub struct GetValidatorMetrics;

impl Handler<GetValidatorMetrics> for NodeActor {
    type Result = ResponseFuture<Option<ValidatorInfo>>;
    fn handle(&mut self, _: GetValidatorMetrics, _: &mut Self::Context) -> Self::Result {
        let validator = self.market.as_ref().and_then(|m| m.validator.clone());
        Box::pin(async move { validator?.send(GetValidatorInfo).await.ok() })
    }
}
