//! The marketplace as the node uses it: the [`Market`] trait (seed 001 §6.1's calls, the client's calls and the
//! logs of §5.6), its one implementation on a real chain ([`OnChainMarket`], alloy), and the error type every
//! call returns.
//!
//! Every view retries with exponential backoff on transport errors ([`RetryPolicy`]); a revert comes back as
//! [`MarketError::Reverted`] naming the contract's custom error. Transactions go through the shared
//! [`Transactor`](super::tx) (signed here, followed by hash, replaced when stuck, reconciled when an answer is
//! lost): a call whose outcome cannot be known answers [`MarketError::Unconfirmed`], and its caller reads the state
//! the call was meant to create. Every clone of a market shares one connection (swapped in place when the chain
//! actor reconnects), one nonce sequence and one approval lock. A call that approves tokens and then spends them
//! (`request_storage`, `fill_slot`) holds the approval lock until the spending transaction is mined, because
//! `approve` sets the allowance instead of adding to it: concurrent calls would otherwise share one allowance.
//! Their gas is the estimate plus 50 %, as the original pads it: the same call costs more when it lands in a later
//! block (a fill that completes a request, a proof that frees a slot).

use std::sync::Arc;
use std::time::Duration;

use alloy::contract::{CallBuilder, CallDecoder, Error as ContractCallError};
use alloy::network::{EthereumWallet, TransactionBuilder};
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::{Filter, TransactionReceipt};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolEventInterface, SolInterface};
use alloy::transports::{RpcError, TransportErrorKind};

use super::bindings::{Marketplace, TestToken};
use super::tx::{Transactor, TxPolicy};

pub use Marketplace::{Ask, Content, Groth16Proof, MarketplaceConfig, Request};

/// A request's id: keccak256 of its ABI encoding.
pub type RequestId = B256;
/// A slot's id: keccak256(abi.encode(requestId, slotIndex)).
pub type SlotId = B256;

/// The id of `request` (marketplace-facts §1.5).
pub fn request_id(request: &Request) -> RequestId {
    alloy::primitives::keccak256(alloy::sol_types::SolValue::abi_encode(request))
}

/// The id of slot `index` of request `id` (marketplace-facts §1.5).
pub fn slot_id(id: RequestId, index: u64) -> SlotId {
    alloy::primitives::keccak256(alloy::sol_types::SolValue::abi_encode(&(id, U256::from(index))))
}

/// A request's state, as the contract computes it (ordinals are the ABI's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RequestState {
    New,
    Started,
    Cancelled,
    Finished,
    Failed,
}

/// A slot's state, as the contract computes it (ordinals are the ABI's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SlotState {
    Free,
    Filled,
    Finished,
    Failed,
    Paid,
    Cancelled,
    Repair,
}

impl TryFrom<u8> for RequestState {
    type Error = MarketError;
    fn try_from(value: u8) -> Result<Self, MarketError> {
        use RequestState::*;
        [New, Started, Cancelled, Finished, Failed]
            .get(usize::from(value))
            .copied()
            .ok_or_else(|| MarketError::Decode(format!("request state {value}")))
    }
}

impl TryFrom<u8> for SlotState {
    type Error = MarketError;
    fn try_from(value: u8) -> Result<Self, MarketError> {
        use SlotState::*;
        [Free, Filled, Finished, Failed, Paid, Cancelled, Repair]
            .get(usize::from(value))
            .copied()
            .ok_or_else(|| MarketError::Decode(format!("slot state {value}")))
    }
}

/// A custom error the contracts revert with.
#[derive(Debug)]
pub enum ContractError {
    /// One of the Marketplace's errors (`Marketplace_*`, `Proofs_*`, `Periods_*`, `SlotReservations_*`).
    Marketplace(Marketplace::MarketplaceErrors),
    /// One of the token's ERC-20 errors (`ERC20InsufficientAllowance`, `ERC20InsufficientBalance`, …), raised
    /// when the marketplace pulls tokens.
    Token(TestToken::TestTokenErrors),
}

impl ContractError {
    /// The error's name as the contract declares it (`Marketplace_SlotNotFree`).
    pub fn name(&self) -> String {
        // The generated enums' Debug output is `Variant(Variant)`: the variant is the Solidity name.
        let text = match self {
            Self::Marketplace(e) => format!("{e:?}"),
            Self::Token(e) => format!("{e:?}"),
        };
        text.split(['(', ' ', '{']).next().unwrap_or_default().to_owned()
    }
}

/// Why a market call failed.
#[derive(Debug, thiserror::Error)]
pub enum MarketError {
    #[error("the contract reverted with {}", .0.name())]
    Reverted(ContractError),
    #[error("the contract reverted: {0}")]
    RevertedOther(String),
    #[error("the chain is unreachable ({attempts} attempts): {message}")]
    Transport { attempts: u32, message: String },
    #[error("the transaction {tx} was mined but failed")]
    TransactionFailed { tx: B256 },
    /// Sent, but whether it was mined is unknown (no receipt in time, or its nonce went to another transaction):
    /// read the state it was meant to create.
    #[error("the outcome of transaction {tx} is unknown: {message}")]
    Unconfirmed { tx: B256, message: String },
    #[error("cannot decode the chain's answer: {0}")]
    Decode(String),
    #[error("chain call failed: {0}")]
    Other(String),
}

impl MarketError {
    /// The contract error's name, if this is a decoded revert.
    pub fn revert_name(&self) -> Option<String> {
        match self {
            Self::Reverted(e) => Some(e.name()),
            _ => None,
        }
    }

    /// The contract refused the call (a revert, or a mined transaction that failed): trying again unchanged
    /// would be refused again. Anything else (the chain unreachable, an unknown outcome, an answer that could
    /// not be read) may pass later.
    pub fn is_definitive(&self) -> bool {
        matches!(self, Self::Reverted(_) | Self::RevertedOther(_) | Self::TransactionFailed { .. })
    }
}

/// How transport errors are retried: `attempts` tries in all, waiting `base`, 2·`base`, … up to `max` between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub base: Duration,
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { attempts: 8, base: Duration::from_millis(250), max: Duration::from_secs(30) }
    }
}

/// What one attempt's error means.
pub(super) enum Verdict {
    Retry(String),
    Fail(MarketError),
}

fn classify_rpc<E: std::fmt::Display>(err: &RpcError<TransportErrorKind, E>, revert: Option<Bytes>) -> Verdict {
    if let Some(data) = revert {
        if let Ok(e) = Marketplace::MarketplaceErrors::abi_decode(&data) {
            return Verdict::Fail(MarketError::Reverted(ContractError::Marketplace(e)));
        }
        if let Ok(e) = TestToken::TestTokenErrors::abi_decode(&data) {
            return Verdict::Fail(MarketError::Reverted(ContractError::Token(e)));
        }
        return Verdict::Fail(MarketError::RevertedOther(format!("{err} (data {data})")));
    }
    match err {
        RpcError::Transport(kind) => Verdict::Retry(kind.to_string()),
        RpcError::ErrorResp(resp) if resp.is_retry_err() => Verdict::Retry(resp.to_string()),
        RpcError::ErrorResp(resp) if resp.message.contains("revert") => {
            Verdict::Fail(MarketError::RevertedOther(resp.to_string()))
        }
        other => Verdict::Fail(MarketError::Other(other.to_string())),
    }
}

/// [`classify_rpc`] for calls that cannot revert (block numbers, logs, fees).
pub(super) fn classify_plain(err: &RpcError<TransportErrorKind>) -> Verdict {
    classify_rpc(err, None)
}

fn classify_call(err: &ContractCallError) -> Verdict {
    match err {
        ContractCallError::TransportError(e) => classify_rpc(e, err.as_revert_data()),
        ContractCallError::PendingTransactionError(e) => Verdict::Retry(e.to_string()),
        other => Verdict::Fail(MarketError::Other(other.to_string())),
    }
}

/// Runs `attempt` until it succeeds, fails for good, or `policy.attempts` transport errors happened.
pub(super) async fn retry<T, E, F, Fut>(
    policy: RetryPolicy,
    classify: fn(&E) -> Verdict,
    mut attempt: F,
) -> Result<T, MarketError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut wait = policy.base;
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(err) => match classify(&err) {
                Verdict::Fail(err) => return Err(err),
                Verdict::Retry(message) if tries >= policy.attempts => {
                    return Err(MarketError::Transport { attempts: tries, message });
                }
                Verdict::Retry(message) => {
                    tracing::debug!(%message, tries, "chain call failed, retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(policy.max);
                }
            },
        }
    }
}

/// A marketplace log, decoded (marketplace-facts §4.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarketEvent {
    StorageRequested { id: RequestId, ask: Ask, expires_at: u64 },
    RequestFulfilled { id: RequestId },
    RequestCancelled { id: RequestId },
    RequestFailed { id: RequestId },
    SlotFilled { id: RequestId, index: u64 },
    SlotFreed { id: RequestId, index: u64 },
    SlotReservationsFull { id: RequestId, index: u64 },
    ProofSubmitted { slot: SlotId },
}

/// A [`MarketEvent`] with where it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainEvent {
    pub block: u64,
    pub log_index: u64,
    pub event: MarketEvent,
}

fn decode_event(log: &alloy::rpc::types::Log) -> Option<MarketEvent> {
    use Marketplace::MarketplaceEvents as E;
    let decoded = E::decode_log(&log.inner).ok()?;
    Some(match decoded.data {
        E::StorageRequested(e) => MarketEvent::StorageRequested { id: e.requestId, ask: e.ask, expires_at: e.expiry },
        E::RequestFulfilled(e) => MarketEvent::RequestFulfilled { id: e.requestId },
        E::RequestCancelled(e) => MarketEvent::RequestCancelled { id: e.requestId },
        E::RequestFailed(e) => MarketEvent::RequestFailed { id: e.requestId },
        E::SlotFilled(e) => MarketEvent::SlotFilled { id: e.requestId, index: e.slotIndex },
        E::SlotFreed(e) => MarketEvent::SlotFreed { id: e.requestId, index: e.slotIndex },
        E::SlotReservationsFull(e) => MarketEvent::SlotReservationsFull { id: e.requestId, index: e.slotIndex },
        E::ProofSubmitted(e) => MarketEvent::ProofSubmitted { slot: e.id },
    })
}

/// The marketplace calls the node makes. [`OnChainMarket`] is the implementation; tests of the actors that
/// use a market may plug in their own.
#[allow(async_fn_in_trait, reason = "used on actix arbiters, whose futures need not be Send")]
pub trait Market: Clone + 'static {
    /// The account that signs.
    fn signer(&self) -> Address;
    /// The marketplace's address.
    fn address(&self) -> Address;
    async fn configuration(&self) -> Result<MarketplaceConfig, MarketError>;
    /// The timestamp of the latest block: the market's clock.
    async fn chain_time(&self) -> Result<u64, MarketError>;
    async fn block_number(&self) -> Result<u64, MarketError>;
    async fn chain_id(&self) -> Result<u64, MarketError>;
    /// The request, or `None` if the contract does not know it.
    async fn get_request(&self, id: RequestId) -> Result<Option<Request>, MarketError>;
    /// The request's state, or `None` if the contract does not know it.
    async fn request_state(&self, id: RequestId) -> Result<Option<RequestState>, MarketError>;
    async fn request_expires_at(&self, id: RequestId) -> Result<u64, MarketError>;
    async fn request_end(&self, id: RequestId) -> Result<u64, MarketError>;
    async fn slot_state(&self, slot: SlotId) -> Result<SlotState, MarketError>;
    /// The slot's host, `None` when free or in repair.
    async fn get_host(&self, id: RequestId, index: u64) -> Result<Option<Address>, MarketError>;
    async fn current_collateral(&self, slot: SlotId) -> Result<U256, MarketError>;
    async fn my_slots(&self) -> Result<Vec<SlotId>, MarketError>;
    async fn my_requests(&self) -> Result<Vec<RequestId>, MarketError>;
    /// Approves the request's maximum price, then submits it; the request id.
    async fn request_storage(&self, request: Request) -> Result<RequestId, MarketError>;
    async fn withdraw_funds(&self, id: RequestId) -> Result<(), MarketError>;
    async fn reserve_slot(&self, id: RequestId, index: u64) -> Result<(), MarketError>;
    /// Approves `collateral`, then fills the slot with `proof`.
    async fn fill_slot(
        &self,
        id: RequestId,
        index: u64,
        proof: Groth16Proof,
        collateral: U256,
    ) -> Result<(), MarketError>;
    async fn submit_proof(&self, slot: SlotId, proof: Groth16Proof) -> Result<(), MarketError>;
    async fn free_slot(&self, slot: SlotId) -> Result<(), MarketError>;
    /// Whether this signer may reserve the slot now (state, reservation count, the expanding window).
    async fn can_reserve_slot(&self, id: RequestId, index: u64) -> Result<bool, MarketError>;
    /// The slot's challenge for the current period (32 bytes of on-chain randomness).
    async fn get_challenge(&self, slot: SlotId) -> Result<B256, MarketError>;
    /// The slot's position in the current period's pointer cycle (0..256).
    async fn get_pointer(&self, slot: SlotId) -> Result<u8, MarketError>;
    async fn is_proof_required(&self, slot: SlotId) -> Result<bool, MarketError>;
    async fn will_proof_be_required(&self, slot: SlotId) -> Result<bool, MarketError>;
    /// The request and index of a slot that is not free, `None` when free.
    async fn get_active_slot(&self, slot: SlotId) -> Result<Option<(Request, u64)>, MarketError>;
    /// Block `number`'s timestamp and parent hash (a reservation window's start and seed), `None` if unknown.
    async fn block_info(&self, number: u64) -> Result<Option<(u64, B256)>, MarketError>;
    /// Block `number`'s hash, `None` if unknown.
    async fn block_hash(&self, number: u64) -> Result<Option<B256>, MarketError>;
    /// The decoded marketplace logs of blocks `from..=to`, in chain order.
    async fn events(&self, from: u64, to: u64) -> Result<Vec<ChainEvent>, MarketError>;

    /// Whether `markProofAsMissing(slot, period)` would pass now (the view reverts with the reason otherwise:
    /// that revert is `Ok(Err(name))`).
    async fn can_mark_proof_as_missing(&self, slot: SlotId, period: u64) -> Result<Result<(), String>, MarketError>;
    /// Marks the proof of `slot` for `period` missing (slashing its host); the gas the transaction used.
    async fn mark_proof_as_missing(&self, slot: SlotId, period: u64) -> Result<u64, MarketError>;
}

/// The marketplace on a real chain, through alloy.
#[derive(Clone)]
pub struct OnChainMarket {
    tx: Arc<Transactor>,
    market: Address,
    retry: RetryPolicy,
    /// Held from an approval until the transaction that spends it is mined: `approve` sets the allowance, so
    /// two calls approving at once would leave one allowance for two transfers.
    approval_lock: Arc<tokio::sync::Mutex<()>>,
}

impl OnChainMarket {
    /// The marketplace at `market`, through `provider`; transactions are signed by `signer`.
    pub fn new(
        provider: DynProvider,
        market: Address,
        signer: PrivateKeySigner,
        retry: RetryPolicy,
        tx: TxPolicy,
    ) -> Self {
        let address = signer.address();
        let tx = Transactor::new(provider, EthereumWallet::from(signer), address, tx);
        Self { tx, market, retry, approval_lock: Arc::default() }
    }

    /// Replaces the connection of this market and of every clone of it (the chain actor reconnected): their
    /// nonces, locks and transactions in flight carry on.
    pub fn replace_provider(&self, provider: DynProvider) {
        self.tx.replace_provider(provider);
    }

    /// Stuck transactions replaced with higher fees since start.
    pub fn transactions_replaced(&self) -> u64 {
        self.tx.replaced()
    }

    fn provider(&self) -> DynProvider {
        self.tx.provider()
    }

    fn contract(&self) -> Marketplace::MarketplaceInstance<DynProvider> {
        Marketplace::new(self.market, self.provider())
    }

    async fn token(&self) -> Result<TestToken::TestTokenInstance<DynProvider>, MarketError> {
        let contract = self.contract();
        let token = retry(self.retry, classify_call, || async { contract.token().call().await }).await?;
        Ok(TestToken::new(token, self.provider()))
    }

    /// Sends the transaction `build` makes (gas: estimate + 50 %; a revert of the estimate is the call's
    /// answer, and uses no nonce) and follows it until it is mined (see [`super::tx`]).
    async fn transact<P, D>(&self, build: impl Fn() -> CallBuilder<P, D>) -> Result<TransactionReceipt, MarketError>
    where
        P: Provider,
        D: CallDecoder,
    {
        let gas =
            retry(self.retry, classify_call, || async { build().from(self.tx.signer()).estimate_gas().await }).await?;
        let request = build().into_transaction_request().with_gas_limit(gas.saturating_add(gas / 2));
        self.tx.transact(request, self.retry).await
    }

    /// A view call, retried on transport errors.
    async fn view<P, D>(&self, build: impl Fn() -> CallBuilder<P, D>) -> Result<D::CallOutput, MarketError>
    where
        P: Provider,
        D: CallDecoder,
    {
        retry(self.retry, classify_call, || async { build().call().await }).await
    }

    async fn approve(&self, amount: U256) -> Result<(), MarketError> {
        let token = self.token().await?;
        self.transact(|| token.approve(self.market, amount)).await.map(drop)
    }
}

/// Most blocks one `eth_getLogs` asks for (public endpoints cap ranges).
pub const MAX_LOG_RANGE: u64 = 1000;

impl Market for OnChainMarket {
    fn signer(&self) -> Address {
        self.tx.signer()
    }

    fn address(&self) -> Address {
        self.market
    }

    async fn configuration(&self) -> Result<MarketplaceConfig, MarketError> {
        let c = self.contract();
        self.view(|| c.configuration()).await
    }

    async fn chain_time(&self) -> Result<u64, MarketError> {
        let provider = &self.provider();
        let block = retry(
            self.retry,
            |e| classify_rpc(e, None),
            || async { provider.get_block_by_number(alloy::eips::BlockNumberOrTag::Latest).await },
        )
        .await?;
        block.map(|b| b.header.timestamp).ok_or_else(|| MarketError::Decode("no latest block".into()))
    }

    async fn block_number(&self) -> Result<u64, MarketError> {
        let provider = &self.provider();
        retry(self.retry, |e| classify_rpc(e, None), || async { provider.get_block_number().await }).await
    }

    async fn chain_id(&self) -> Result<u64, MarketError> {
        let provider = &self.provider();
        retry(self.retry, |e| classify_rpc(e, None), || async { provider.get_chain_id().await }).await
    }

    async fn get_request(&self, id: RequestId) -> Result<Option<Request>, MarketError> {
        let c = self.contract();
        match self.view(|| c.getRequest(id)).await {
            Ok(request) => Ok(Some(request)),
            Err(e) if e.revert_name().as_deref() == Some("Marketplace_UnknownRequest") => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn request_state(&self, id: RequestId) -> Result<Option<RequestState>, MarketError> {
        let c = self.contract();
        match self.view(|| c.requestState(id)).await {
            Ok(state) => Ok(Some(RequestState::try_from(state)?)),
            Err(e) if e.revert_name().as_deref() == Some("Marketplace_UnknownRequest") => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn request_expires_at(&self, id: RequestId) -> Result<u64, MarketError> {
        let c = self.contract();
        self.view(|| c.requestExpiry(id)).await
    }

    async fn request_end(&self, id: RequestId) -> Result<u64, MarketError> {
        let c = self.contract();
        self.view(|| c.requestEnd(id)).await
    }

    async fn slot_state(&self, slot: SlotId) -> Result<SlotState, MarketError> {
        let c = self.contract();
        SlotState::try_from(self.view(|| c.slotState(slot)).await?)
    }

    async fn get_host(&self, id: RequestId, index: u64) -> Result<Option<Address>, MarketError> {
        let c = self.contract();
        let host = self.view(|| c.getHost(slot_id(id, index))).await?;
        Ok((host != Address::ZERO).then_some(host))
    }

    async fn current_collateral(&self, slot: SlotId) -> Result<U256, MarketError> {
        let c = self.contract();
        self.view(|| c.currentCollateral(slot)).await
    }

    async fn my_slots(&self) -> Result<Vec<SlotId>, MarketError> {
        let c = self.contract();
        let ids = self.view(|| c.mySlots().from(self.signer())).await?;
        Ok(ids.into_iter().collect())
    }

    async fn my_requests(&self) -> Result<Vec<RequestId>, MarketError> {
        let c = self.contract();
        let ids = self.view(|| c.myRequests().from(self.signer())).await?;
        Ok(ids.into_iter().collect())
    }

    async fn request_storage(&self, request: Request) -> Result<RequestId, MarketError> {
        let ask = &request.ask;
        let max_price = U256::from(ask.slots)
            .checked_mul(U256::from(ask.duration))
            .and_then(|p| p.checked_mul(ask.pricePerBytePerSecond))
            .and_then(|p| p.checked_mul(U256::from(ask.slotSize)))
            .ok_or_else(|| MarketError::Other("the request's price overflows a uint256".into()))?;
        let _approval = self.approval_lock.lock().await;
        self.approve(max_price).await?;
        let c = self.contract();
        self.transact(|| c.requestStorage(request.clone())).await?;
        Ok(request_id(&request))
    }

    async fn withdraw_funds(&self, id: RequestId) -> Result<(), MarketError> {
        let c = self.contract();
        self.transact(|| c.withdrawFunds_0(id)).await.map(drop)
    }

    async fn reserve_slot(&self, id: RequestId, index: u64) -> Result<(), MarketError> {
        let c = self.contract();
        self.transact(|| c.reserveSlot(id, index)).await.map(drop)
    }

    async fn fill_slot(
        &self,
        id: RequestId,
        index: u64,
        proof: Groth16Proof,
        collateral: U256,
    ) -> Result<(), MarketError> {
        let _approval = self.approval_lock.lock().await;
        self.approve(collateral).await?;
        let c = self.contract();
        self.transact(|| c.fillSlot(id, index, proof.clone())).await.map(drop)
    }

    async fn submit_proof(&self, slot: SlotId, proof: Groth16Proof) -> Result<(), MarketError> {
        let c = self.contract();
        self.transact(|| c.submitProof(slot, proof.clone())).await.map(drop)
    }

    async fn free_slot(&self, slot: SlotId) -> Result<(), MarketError> {
        let c = self.contract();
        self.transact(|| c.freeSlot_1(slot)).await.map(drop)
    }

    async fn can_reserve_slot(&self, id: RequestId, index: u64) -> Result<bool, MarketError> {
        let c = self.contract();
        self.view(|| c.canReserveSlot(id, index).from(self.signer())).await
    }

    async fn get_challenge(&self, slot: SlotId) -> Result<B256, MarketError> {
        let c = self.contract();
        self.view(|| c.getChallenge(slot)).await
    }

    async fn get_pointer(&self, slot: SlotId) -> Result<u8, MarketError> {
        let c = self.contract();
        self.view(|| c.getPointer(slot)).await
    }

    async fn is_proof_required(&self, slot: SlotId) -> Result<bool, MarketError> {
        let c = self.contract();
        self.view(|| c.isProofRequired(slot)).await
    }

    async fn will_proof_be_required(&self, slot: SlotId) -> Result<bool, MarketError> {
        let c = self.contract();
        self.view(|| c.willProofBeRequired(slot)).await
    }

    async fn get_active_slot(&self, slot: SlotId) -> Result<Option<(Request, u64)>, MarketError> {
        let c = self.contract();
        match self.view(|| c.getActiveSlot(slot)).await {
            Ok(active) => Ok(Some((active.request, active.slotIndex))),
            Err(e) if e.revert_name().as_deref() == Some("Marketplace_SlotIsFree") => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn block_info(&self, number: u64) -> Result<Option<(u64, B256)>, MarketError> {
        let provider = &self.provider();
        let block = retry(
            self.retry,
            |e| classify_rpc(e, None),
            || async { provider.get_block_by_number(alloy::eips::BlockNumberOrTag::Number(number)).await },
        )
        .await?;
        Ok(block.map(|b| (b.header.timestamp, b.header.parent_hash)))
    }

    async fn block_hash(&self, number: u64) -> Result<Option<B256>, MarketError> {
        let provider = &self.provider();
        let block = retry(self.retry, classify_plain, || async {
            provider.get_block_by_number(alloy::eips::BlockNumberOrTag::Number(number)).await
        })
        .await?;
        Ok(block.map(|b| b.header.hash))
    }

    async fn can_mark_proof_as_missing(&self, slot: SlotId, period: u64) -> Result<Result<(), String>, MarketError> {
        let c = self.contract();
        match self.view(|| c.canMarkProofAsMissing(slot, period)).await {
            Ok(_) => Ok(Ok(())),
            Err(MarketError::Reverted(e)) => Ok(Err(e.name())),
            Err(MarketError::RevertedOther(reason)) => Ok(Err(reason)),
            Err(e) => Err(e),
        }
    }

    async fn mark_proof_as_missing(&self, slot: SlotId, period: u64) -> Result<u64, MarketError> {
        let c = self.contract();
        let receipt = self.transact(|| c.markProofAsMissing(slot, period)).await?;
        Ok(receipt.gas_used)
    }

    async fn events(&self, from: u64, to: u64) -> Result<Vec<ChainEvent>, MarketError> {
        let filter = Filter::new().address(self.market).from_block(from).to_block(to);
        let provider = &self.provider();
        let logs = retry(self.retry, |e| classify_rpc(e, None), || async { provider.get_logs(&filter).await }).await?;
        Ok(logs
            .iter()
            .filter_map(|log| {
                let event = decode_event(log)?;
                Some(ChainEvent { block: log.block_number?, log_index: log.log_index?, event })
            })
            .collect())
    }
}
