//! PurchasingActor (issue 12): this node's storage requests as a client. For `POST /storage/request/{cid}` the
//! NodeActor checks the parameters here ([`CheckStorageParams`]), protects the dataset (erasure coding and
//! slots), then hands the verifiable dataset to [`SubmitPurchase`]: the request is built (slots = K + M, slot
//! size, verify root, random nonce), persisted as *pending* in `purchases-1` before anything is sent, and
//! submitted through the ChainActor (token approval, `requestStorage`): *submitted*.
//!
//! From then on the chain decides: every `check_interval`, and at once on a marketplace event of the request
//! ([`PurchaseEvent`]), the actor reads the request's state: Started → *started*; Cancelled (expired unfilled),
//! Finished or Failed → the client's funds are withdrawn (`withdrawFunds`) and the purchase ends *cancelled*,
//! *finished* or *failed*. Purchases survive restarts: each state change is written before it is reported, and
//! at start every purchase that has not ended is checked again; one left *pending* (by a crash, or by a chain
//! that could not be reached) is submitted again (a request's id depends only on its content, so a resend of a
//! request that did land is refused by the contract, and the chain's state is read instead).
//!
//! Owns: the purchases (a map mirrored in `purchases-1`). Runs on the node's arbiter; all chain calls are
//! futures, never blocking it.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use actix::prelude::*;
use alloy::primitives::{Address, B256, U256};
use alloy::sol_types::SolValue;
use codex_protocol::cid::format_cid;
use codex_protocol::poseidon2::to_le_bytes;
use codex_protocol::slots::{SlotLayout, root_from_cid};
use codex_protocol::{Cid, Manifest};
use serde::{Deserialize, Serialize};

use crate::chain::actor::{ChainActor, GetRequestState, RequestStorage, WithdrawFunds};
use crate::chain::market::{Ask, Content, MarketError, MarketplaceConfig, Request, RequestId, RequestState};
use crate::store::{ListPurchases as ListPurchaseRecords, PutPurchase, StoreActor, StoreError};

/// The smallest and largest numbers of slots a request may have (K + M ≤ 256 for GF(2^8) coding).
const MIN_NODES: u64 = 3;
const MAX_NODES: u64 = 256;

/// Purchasing settings.
#[derive(Debug, Clone)]
pub struct PurchasingConfig {
    /// How often unfinished purchases are checked against the chain.
    pub check_interval: Duration,
}

impl Default for PurchasingConfig {
    fn default() -> Self {
        Self { check_interval: Duration::from_secs(10) }
    }
}

/// What a client asks for (the OpenAPI's StorageRequestCreation, parsed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageParams {
    /// Seconds of storage, from the request's creation.
    pub duration: u64,
    pub price_per_byte_per_second: U256,
    pub proof_probability: U256,
    /// Slots (hosts): K + M.
    pub nodes: u64,
    /// Slots that may be lost: M.
    pub tolerance: u64,
    pub collateral_per_byte: U256,
    /// Seconds after creation by which every slot must be filled.
    pub expiry: u64,
}

/// Why a purchase was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum PurchaseError {
    /// The parameters break a rule (422).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Market(#[from] MarketError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the chain actor stopped")]
    ChainGone,
}

impl PurchaseError {
    /// What kind of failure this is: refused parameters and reverts are the client's (422), an unreachable
    /// chain is temporary (503).
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            Self::Invalid(_) => ErrorKind::Refused,
            Self::Market(MarketError::Reverted(_) | MarketError::RevertedOther(_)) => ErrorKind::Refused,
            Self::Market(MarketError::Transport { .. }) | Self::ChainGone => ErrorKind::Unavailable,
            Self::Market(_) => ErrorKind::Internal,
            Self::Store(err) => err.kind(),
        }
    }
}

/// Checks `params` against the request rules of the marketplace (the contract would revert on most of these;
/// here they are found before any erasure coding). `config` is the deployed configuration.
pub fn check_params(params: &StorageParams, config: &MarketplaceConfig) -> Result<(), PurchaseError> {
    let invalid = |text: String| Err(PurchaseError::Invalid(text));
    let StorageParams { duration, nodes, tolerance, expiry, .. } = *params;
    if tolerance == 0 {
        return invalid("tolerance must be at least 1".into());
    }
    if nodes < MIN_NODES {
        return invalid(format!("nodes must be at least {MIN_NODES}"));
    }
    if nodes > MAX_NODES {
        return invalid(format!("nodes must be at most {MAX_NODES}"));
    }
    if tolerance >= nodes || nodes - tolerance < tolerance {
        return invalid(format!(
            "tolerance {tolerance} is too large for {nodes} nodes: nodes − tolerance must be at least tolerance \
             and at least 2 (1 < nodes − tolerance ≥ tolerance)"
        ));
    }
    if duration == 0 {
        return invalid("duration must be greater than zero".into());
    }
    if duration > config.requestDurationLimit {
        return invalid(format!(
            "duration {duration} s exceeds the marketplace's limit of {} s",
            config.requestDurationLimit
        ));
    }
    if expiry == 0 || expiry >= duration {
        return invalid("expiry must be greater than zero and less than the request's duration".into());
    }
    for (name, value) in [
        ("pricePerBytePerSecond", params.price_per_byte_per_second),
        ("proofProbability", params.proof_probability),
        ("collateralPerByte", params.collateral_per_byte),
    ] {
        if value.is_zero() {
            return invalid(format!("{name} must be greater than zero"));
        }
    }
    // The price (slots × duration × price × slot size) and each slot's collateral (collateral × slot size) must
    // fit a uint256 for any slot size (below 2^64), or the chain refuses them after the erasure coding was paid.
    let max_slot = U256::from(u64::MAX);
    let price = U256::from(nodes)
        .checked_mul(U256::from(duration))
        .and_then(|p| p.checked_mul(params.price_per_byte_per_second))
        .and_then(|p| p.checked_mul(max_slot));
    if price.is_none() {
        return invalid("pricePerBytePerSecond is too large: the request's price would overflow a uint256".into());
    }
    if params.collateral_per_byte.checked_mul(max_slot).is_none() {
        return invalid("collateralPerByte is too large: a slot's collateral would overflow a uint256".into());
    }
    Ok(())
}

/// The request for verifiable dataset `cid` (its manifest `manifest`) with `params`, paid by `client`.
pub fn build_request(
    client: Address,
    cid: &Cid,
    manifest: &Manifest,
    params: &StorageParams,
    nonce: B256,
) -> Result<Request, PurchaseError> {
    let invalid = |text: &str| PurchaseError::Invalid(format!("{}: {text}", format_cid(cid)));
    let erasure = manifest.erasure.as_ref().ok_or_else(|| invalid("not a protected dataset"))?;
    let verification = erasure.verification.as_ref().ok_or_else(|| invalid("not a verifiable dataset"))?;
    let layout = SlotLayout::from_manifest(manifest, verification.cell_size).map_err(|e| invalid(&e.to_string()))?;
    let root =
        root_from_cid(&verification.verify_root).ok_or_else(|| invalid("its verify root is not a field element"))?;
    Ok(Request {
        client,
        ask: Ask {
            proofProbability: params.proof_probability,
            pricePerBytePerSecond: params.price_per_byte_per_second,
            collateralPerByte: params.collateral_per_byte,
            slots: erasure.ec_k + erasure.ec_m,
            slotSize: layout.slot_size(),
            duration: params.duration,
            maxSlotLoss: erasure.ec_m,
        },
        content: Content { cid: cid.to_bytes().into(), merkleRoot: B256::from(to_le_bytes(&root)) },
        expiry: params.expiry,
        nonce,
    })
}

/// Whether `request` describes verifiable dataset `cid` (its manifest `manifest`) truly: its number of slots,
/// slot size, tolerated losses and Merkle root must be the manifest's. A host checks this before it reserves
/// anything: a client that states a small slot size for large slots would fill the host's quota with bytes it does
/// not pay for, and a wrong root makes every proof fail. The reason when it does not.
pub fn check_request_content(cid: &Cid, manifest: &Manifest, request: &Request) -> Result<(), String> {
    let params = StorageParams {
        duration: request.ask.duration,
        price_per_byte_per_second: request.ask.pricePerBytePerSecond,
        proof_probability: request.ask.proofProbability,
        nodes: 0,
        tolerance: 0,
        collateral_per_byte: request.ask.collateralPerByte,
        expiry: request.expiry,
    };
    let expected = build_request(request.client, cid, manifest, &params, request.nonce).map_err(|e| e.to_string())?;
    let (ask, want) = (&request.ask, &expected.ask);
    if (ask.slots, ask.maxSlotLoss) != (want.slots, want.maxSlotLoss) {
        return Err(format!(
            "the request has {} slots tolerating {} losses, the dataset {} and {}",
            ask.slots, ask.maxSlotLoss, want.slots, want.maxSlotLoss
        ));
    }
    if ask.slotSize != want.slotSize {
        return Err(format!("the request's slot size is {}, the dataset's slots hold {}", ask.slotSize, want.slotSize));
    }
    if request.content.merkleRoot != expected.content.merkleRoot {
        return Err("the request's Merkle root is not the dataset's verify root".into());
    }
    Ok(())
}

/// A purchase's state (the OpenAPI's Purchase.state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PurchaseState {
    /// Persisted, not yet accepted by the chain.
    Pending,
    /// On chain, waiting for hosts.
    Submitted,
    /// Every slot filled.
    Started,
    Finished,
    /// Not filled before expiry.
    Cancelled,
    /// Too many slots lost.
    Failed,
    /// Submission failed; see the error.
    Errored,
}

impl PurchaseState {
    /// The OpenAPI's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Submitted => "submitted",
            Self::Started => "started",
            Self::Finished => "finished",
            Self::Cancelled => "cancelled",
            Self::Failed => "failed",
            Self::Errored => "errored",
        }
    }

    fn from_chain(state: RequestState) -> Self {
        match state {
            RequestState::New => Self::Submitted,
            RequestState::Started => Self::Started,
            RequestState::Cancelled => Self::Cancelled,
            RequestState::Finished => Self::Finished,
            RequestState::Failed => Self::Failed,
        }
    }

    /// Ended on chain: the funds left are the client's to withdraw.
    fn ended(self) -> bool {
        matches!(self, Self::Finished | Self::Cancelled | Self::Failed)
    }
}

/// One purchase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purchase {
    pub id: RequestId,
    pub request: Request,
    pub state: PurchaseState,
    pub error: Option<String>,
    /// The client's funds were withdrawn (or there was nothing left to withdraw).
    pub withdrawn: bool,
}

impl Purchase {
    /// Nothing more to do on chain: ended and withdrawn, or errored (checked again only at start and on its
    /// events, in case the request is on chain after all).
    fn settled(&self) -> bool {
        self.state == PurchaseState::Errored || (self.state.ended() && self.withdrawn)
    }
}

/// The stored form of a [`Purchase`] (the request ABI-encoded, exactly as submitted).
#[derive(Serialize, Deserialize)]
struct PurchaseRecord {
    request: Vec<u8>,
    state: PurchaseState,
    error: Option<String>,
    withdrawn: bool,
}

fn encode(purchase: &Purchase) -> Vec<u8> {
    let record = PurchaseRecord {
        request: purchase.request.abi_encode(),
        state: purchase.state,
        error: purchase.error.clone(),
        withdrawn: purchase.withdrawn,
    };
    bincode::serde::encode_to_vec(&record, bincode::config::standard()).unwrap_or_default()
}

fn decode(id: [u8; 32], bytes: &[u8]) -> Option<Purchase> {
    let (record, _): (PurchaseRecord, _) =
        bincode::serde::decode_from_slice(bytes, bincode::config::standard()).ok()?;
    let request = Request::abi_decode(&record.request).ok()?;
    Some(Purchase { id: id.into(), request, state: record.state, error: record.error, withdrawn: record.withdrawn })
}

/// Query: are `params` acceptable (before the dataset is protected)?
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), PurchaseError>")]
pub struct CheckStorageParams {
    pub params: StorageParams,
}

/// Command: request storage for verifiable dataset `cid`; answers the request id once the chain accepted it.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<RequestId, PurchaseError>")]
pub struct SubmitPurchase {
    pub cid: Cid,
    pub manifest: Manifest,
    pub params: StorageParams,
}

/// Query: every purchase id, oldest first.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Vec<RequestId>")]
pub struct ListPurchaseIds;

/// Query: one purchase.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Option<Purchase>")]
pub struct GetPurchase {
    pub id: RequestId,
}

/// Event: something happened on chain to request `id` (a marketplace log): check it now.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct PurchaseEvent {
    pub id: RequestId,
}

/// Command: stop checking purchases (at node stop).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct StopPurchasing;

impl Handler<StopPurchasing> for PurchasingActor {
    type Result = ();
    fn handle(&mut self, _: StopPurchasing, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// The purchasing actor.
pub struct PurchasingActor {
    config: PurchasingConfig,
    market: MarketplaceConfig,
    client: Address,
    chain: Addr<ChainActor>,
    store: Addr<StoreActor>,
    /// By id; `order` keeps creation order for listings.
    purchases: BTreeMap<RequestId, Purchase>,
    order: Vec<RequestId>,
    checking: HashSet<RequestId>,
}

impl PurchasingActor {
    /// Loads the stored purchases and starts the actor; `market` is the deployed configuration and `client`
    /// the node's account.
    pub async fn start(
        config: PurchasingConfig,
        market: MarketplaceConfig,
        client: Address,
        chain: Addr<ChainActor>,
        store: Addr<StoreActor>,
    ) -> Result<Addr<Self>, PurchaseError> {
        let records = store.send(ListPurchaseRecords).await.map_err(|_| StoreError::Unavailable)??;
        let mut purchases = BTreeMap::new();
        let mut order = Vec::new();
        for (id, bytes) in records {
            match decode(id, &bytes) {
                Some(purchase) => {
                    order.push(purchase.id);
                    purchases.insert(purchase.id, purchase);
                }
                None => tracing::warn!(id = %B256::from(id), "unreadable purchase record skipped"),
            }
        }
        tracing::info!(purchases = purchases.len(), "purchasing started");
        Ok(Self { config, market, client, chain, store, purchases, order, checking: HashSet::new() }.start())
    }

    /// Writes `purchase` and takes it as the current state.
    fn save(&mut self, purchase: Purchase) -> impl Future<Output = Result<(), PurchaseError>> + use<> {
        let (store, id, record) = (self.store.clone(), purchase.id, encode(&purchase));
        if !self.purchases.contains_key(&purchase.id) {
            self.order.push(purchase.id);
        }
        self.purchases.insert(purchase.id, purchase);
        async move {
            store.send(PutPurchase { id: id.0, record }).await.map_err(|_| StoreError::Unavailable)??;
            Ok(())
        }
    }

    /// Reads the chain's view of `id` and moves the purchase on (withdrawing the client's funds when the
    /// request ended); one check per purchase at a time.
    fn check(&mut self, id: RequestId, force: bool, ctx: &mut Context<Self>) {
        let Some(purchase) = self.purchases.get(&id).cloned() else { return };
        let errored = purchase.state == PurchaseState::Errored;
        if (purchase.settled() && !(force && errored)) || !self.checking.insert(id) {
            return;
        }
        let chain = self.chain.clone();
        let before = purchase.clone();
        let work = async move {
            let mut next = before;
            let gone = || MarketError::Other("the chain actor stopped".into());
            // The chain first: a request whose submission's answer was lost may be there already.
            let mut state = chain.send(GetRequestState { id }).await.map_err(|_| gone())??;
            if state.is_none() && next.state == PurchaseState::Pending {
                // Left pending by a restart or an unreachable chain, and not on chain: submit again (refused as
                // a duplicate if it landed meanwhile).
                match chain.send(RequestStorage { request: next.request.clone() }).await.map_err(|_| gone())? {
                    Ok(_) => {}
                    Err(e) if e.revert_name().as_deref() == Some("Marketplace_RequestAlreadyExists") => {}
                    Err(e) if e.is_definitive() => {
                        (next.state, next.error) = (PurchaseState::Errored, Some(e.to_string()));
                        return Ok(next);
                    }
                    Err(e) => return Err(e),
                }
                state = chain.send(GetRequestState { id }).await.map_err(|_| gone())??;
            }
            let Some(state) = state else { return Ok(next) };
            next.error = None;
            next.state = PurchaseState::from_chain(state);
            if next.state.ended() && !next.withdrawn {
                match chain.send(WithdrawFunds { id }).await {
                    Ok(Ok(())) => next.withdrawn = true,
                    Ok(Err(e)) if e.revert_name().as_deref() == Some("Marketplace_NothingToWithdraw") => {
                        next.withdrawn = true;
                    }
                    Ok(Err(e)) => tracing::warn!(%id, err = %e, "withdrawing the client's funds failed; will retry"),
                    Err(_) => return Err(MarketError::Other("the chain actor stopped".into())),
                }
            }
            Ok(next)
        };
        ctx.spawn(work.into_actor(self).then(move |result, act, _| {
            act.checking.remove(&id);
            let save = match result {
                Ok(next) if next != purchase => {
                    if next.state != purchase.state {
                        tracing::info!(%id, from = purchase.state.as_str(), to = next.state.as_str(), "purchase");
                    }
                    Some(act.save(next))
                }
                Ok(_) => None,
                Err(err) => {
                    tracing::warn!(%id, %err, "checking a purchase failed; will retry");
                    None
                }
            };
            async move {
                if let Some(save) = save
                    && let Err(err) = save.await
                {
                    tracing::error!(%id, %err, "saving a purchase failed");
                }
            }
            .into_actor(act)
        }));
    }
}

impl Actor for PurchasingActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.config.check_interval, |act, ctx| {
            let ids: Vec<RequestId> = act.order.clone();
            for id in ids {
                act.check(id, false, ctx);
            }
        });
        // At start even errored purchases are looked up: one may be on chain after all.
        for id in self.order.clone() {
            self.check(id, true, ctx);
        }
    }
}

impl Handler<CheckStorageParams> for PurchasingActor {
    type Result = Result<(), PurchaseError>;
    fn handle(&mut self, msg: CheckStorageParams, _: &mut Self::Context) -> Self::Result {
        check_params(&msg.params, &self.market)
    }
}

impl Handler<SubmitPurchase> for PurchasingActor {
    type Result = ResponseActFuture<Self, Result<RequestId, PurchaseError>>;
    fn handle(&mut self, msg: SubmitPurchase, _: &mut Self::Context) -> Self::Result {
        let request = match check_params(&msg.params, &self.market)
            .and_then(|()| build_request(self.client, &msg.cid, &msg.manifest, &msg.params, B256::random()))
        {
            Ok(request) => request,
            Err(err) => return Box::pin(actix::fut::ready(Err(err))),
        };
        let id = crate::chain::market::request_id(&request);
        let pending =
            Purchase { id, request: request.clone(), state: PurchaseState::Pending, error: None, withdrawn: false };
        let persisted = self.save(pending);
        let chain = self.chain.clone();
        Box::pin(
            async move {
                persisted.await?;
                chain.send(RequestStorage { request }).await.map_err(|_| PurchaseError::ChainGone)?.map_err(Into::into)
            }
            .into_actor(self)
            .then(move |result: Result<RequestId, PurchaseError>, act, _| {
                let mut purchase = act.purchases.get(&id).cloned();
                if let Some(p) = purchase.as_mut() {
                    match &result {
                        Ok(_) => p.state = PurchaseState::Submitted,
                        // Sent before, by a resend of this very request: it is on chain.
                        Err(PurchaseError::Market(e))
                            if e.revert_name().as_deref() == Some("Marketplace_RequestAlreadyExists") =>
                        {
                            p.state = PurchaseState::Submitted;
                        }
                        // The chain could not be reached, or the outcome is unknown: the request may or may not
                        // have landed. It stays pending; the periodic check finds it on chain or submits it again.
                        Err(err @ PurchaseError::Market(e)) if !e.is_definitive() => {
                            p.error = Some(err.to_string());
                        }
                        Err(err @ PurchaseError::ChainGone) => p.error = Some(err.to_string()),
                        Err(err) => {
                            p.state = PurchaseState::Errored;
                            p.error = Some(err.to_string());
                        }
                    }
                }
                let save = purchase.map(|p| act.save(p));
                async move {
                    if let Some(save) = save {
                        save.await?;
                    }
                    result
                }
                .into_actor(act)
            }),
        )
    }
}

/// Command: withdraw the client's funds of an ended request now (`POST /storage/purchases/{id}/withdraw`); the
/// purchase afterwards. Refused (`Invalid`) while the request runs; `None` for an unknown purchase.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Result<Option<Purchase>, PurchaseError>")]
pub struct WithdrawPurchase {
    pub id: RequestId,
}

impl Handler<WithdrawPurchase> for PurchasingActor {
    type Result = ResponseActFuture<Self, Result<Option<Purchase>, PurchaseError>>;
    fn handle(&mut self, msg: WithdrawPurchase, _: &mut Self::Context) -> Self::Result {
        let Some(mut purchase) = self.purchases.get(&msg.id).cloned() else {
            return Box::pin(actix::fut::ready(Ok(None)));
        };
        let (chain, id) = (self.chain.clone(), msg.id);
        Box::pin(
            async move {
                let state = chain.send(GetRequestState { id }).await.map_err(|_| PurchaseError::ChainGone)??;
                let Some(state) = state else {
                    return Err(PurchaseError::Invalid(format!(
                        "request {id:#x} is not on chain: nothing to withdraw"
                    )));
                };
                let state = PurchaseState::from_chain(state);
                if !state.ended() {
                    return Err(PurchaseError::Invalid(format!(
                        "request {id:#x} is {}: funds can be withdrawn once it is cancelled, finished or failed",
                        state.as_str()
                    )));
                }
                match chain.send(WithdrawFunds { id }).await.map_err(|_| PurchaseError::ChainGone)? {
                    Ok(()) => {}
                    Err(e) if e.revert_name().as_deref() == Some("Marketplace_NothingToWithdraw") => {}
                    Err(e) => return Err(e.into()),
                }
                (purchase.state, purchase.withdrawn, purchase.error) = (state, true, None);
                Ok(purchase)
            }
            .into_actor(self)
            .then(|result, act, _| {
                let save = result.as_ref().ok().map(|purchase| act.save(purchase.clone()));
                async move {
                    if let Some(save) = save {
                        save.await?;
                    }
                    result.map(Some)
                }
                .into_actor(act)
            }),
        )
    }
}

impl Handler<ListPurchaseIds> for PurchasingActor {
    type Result = MessageResult<ListPurchaseIds>;
    fn handle(&mut self, _: ListPurchaseIds, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.order.clone())
    }
}

impl Handler<GetPurchase> for PurchasingActor {
    type Result = MessageResult<GetPurchase>;
    fn handle(&mut self, msg: GetPurchase, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.purchases.get(&msg.id).cloned())
    }
}

impl Handler<PurchaseEvent> for PurchasingActor {
    type Result = ();
    fn handle(&mut self, msg: PurchaseEvent, ctx: &mut Self::Context) {
        self.check(msg.id, true, ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::deploy::testnet_config;

    /// A verifiable manifest of 2 + 1 slots of 2 blocks each (3 original blocks).
    fn verifiable() -> (Cid, Manifest) {
        use codex_protocol::cid::{ROOT_CODEC, cid_from_sha256};
        use codex_protocol::manifest::ErasureInfo;
        use codex_protocol::poseidon2::F;
        let bs = codex_protocol::DEFAULT_BLOCK_SIZE as u64;
        let tree = cid_from_sha256(ROOT_CODEC, &[7; 32]);
        let mut protected = Manifest::new_unprotected(tree, bs, 6 * bs, None, None);
        protected.erasure = Some(ErasureInfo {
            ec_k: 2,
            ec_m: 1,
            original_tree_cid: cid_from_sha256(ROOT_CODEC, &[2; 32]),
            original_dataset_size: 3 * bs - 10,
            protected_strategy: 1,
            verification: None,
        });
        let roots = [F::from(1u64), F::from(2u64), F::from(3u64)];
        let manifest = codex_protocol::slots::verifiable_manifest(&protected, 2048, &roots, F::from(9u64)).unwrap();
        (cid_from_sha256(codex_protocol::cid::MANIFEST_CODEC, &[3; 32]), manifest)
    }

    #[test]
    fn a_request_that_misstates_its_dataset_is_refused() {
        let (cid, manifest) = verifiable();
        let honest = build_request(Address::ZERO, &cid, &manifest, &params(), B256::ZERO).unwrap();
        assert_eq!(check_request_content(&cid, &manifest, &honest), Ok(()));
        let lie = |edit: &dyn Fn(&mut Request)| {
            let mut request = honest.clone();
            edit(&mut request);
            check_request_content(&cid, &manifest, &request).unwrap_err()
        };
        assert!(lie(&|r| r.ask.slotSize /= 64).contains("slot size"));
        assert!(lie(&|r| r.ask.slots = 4).contains("slots"));
        assert!(lie(&|r| r.ask.maxSlotLoss = 0).contains("losses"));
        assert!(lie(&|r| r.content.merkleRoot = B256::repeat_byte(1)).contains("Merkle root"));
    }

    fn params() -> StorageParams {
        StorageParams {
            duration: 3600,
            price_per_byte_per_second: U256::from(1u64),
            proof_probability: U256::from(4u64),
            nodes: 5,
            tolerance: 2,
            collateral_per_byte: U256::from(1u64),
            expiry: 600,
        }
    }

    fn refused(edit: impl FnOnce(&mut StorageParams), message: &str) {
        let mut p = params();
        edit(&mut p);
        match check_params(&p, &testnet_config(String::new())) {
            Err(PurchaseError::Invalid(text)) => assert!(text.contains(message), "{text}"),
            other => panic!("{p:?} should be refused with '{message}': {other:?}"),
        }
    }

    #[test]
    fn parameter_rules() {
        assert!(check_params(&params(), &testnet_config(String::new())).is_ok());
        refused(|p| p.tolerance = 0, "tolerance must be at least 1");
        refused(|p| p.nodes = 2, "nodes must be at least 3");
        refused(|p| p.nodes = 257, "at most 256");
        refused(|p| p.tolerance = 3, "too large");
        refused(|p| (p.nodes, p.tolerance) = (3, 2), "too large");
        refused(|p| p.duration = 0, "duration must be greater than zero");
        refused(|p| p.duration = 30 * 24 * 3600 + 1, "exceeds the marketplace's limit");
        refused(|p| p.expiry = 0, "expiry must be greater than zero");
        refused(|p| p.expiry = 3600, "less than the request's duration");
        refused(|p| p.price_per_byte_per_second = U256::ZERO, "pricePerBytePerSecond");
        refused(|p| p.proof_probability = U256::ZERO, "proofProbability");
        refused(|p| p.collateral_per_byte = U256::ZERO, "collateralPerByte");
        // The boundaries that pass: K = M, 256 nodes, expiry one second short of the duration.
        let edits: [fn(&mut StorageParams); 3] =
            [|p| (p.nodes, p.tolerance) = (4, 2), |p| p.nodes = 256, |p| p.expiry = 3599];
        for edit in edits {
            let mut p = params();
            edit(&mut p);
            assert!(check_params(&p, &testnet_config(String::new())).is_ok(), "{p:?}");
        }
    }

    #[test]
    fn records_round_trip_and_junk_is_skipped() {
        let request = Request {
            client: Address::repeat_byte(7),
            ask: Ask {
                proofProbability: U256::from(1u64),
                pricePerBytePerSecond: U256::from(2u64),
                collateralPerByte: U256::from(3u64),
                slots: 4,
                slotSize: 65536,
                duration: 3600,
                maxSlotLoss: 1,
            },
            content: Content { cid: vec![1, 2, 3].into(), merkleRoot: B256::repeat_byte(5) },
            expiry: 60,
            nonce: B256::repeat_byte(9),
        };
        let id = crate::chain::market::request_id(&request);
        let purchase =
            Purchase { id, request, state: PurchaseState::Cancelled, error: Some("x".into()), withdrawn: true };
        assert_eq!(decode(id.0, &encode(&purchase)), Some(purchase.clone()));
        assert!(purchase.settled());
        assert_eq!(decode(id.0, b"junk"), None);
    }
}
