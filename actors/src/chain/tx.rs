//! The node account's transactions, reconciled: every transaction is signed here and sent as raw bytes, so its
//! hash is known before it leaves and a resend after a lost answer is the same transaction (the node answers
//! "already known", or it is mined once). It is then followed by hash until a receipt appears. While it waits:
//!
//! - the chain endpoint may be down: receipt reads that fail are retried until [`TxPolicy::give_up_after`], and
//!   only then does the caller hear [`MarketError::Unconfirmed`] (sent, outcome unknown: the caller reads the
//!   state the transaction was meant to create);
//! - a transaction not mined after [`TxPolicy::stuck_after`] is replaced: the same nonce and call with fees at
//!   least 25 % higher (and no lower than the chain's estimate now); a nonce below it that this process did not
//!   send (a transaction left in the mempool by a run before a restart) is replaced by a no-op transfer to self,
//!   so nothing this node sends waits behind it for ever;
//! - if the nonce is used by a transaction that is none of ours, the caller hears [`MarketError::Unconfirmed`].
//!
//! Nonces come from the node's pending count or past the highest nonce in flight here, whichever is higher, so a
//! send whose answer was lost never gives its nonce to a second transaction.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use alloy::eips::eip2718::Encodable2718;
use alloy::network::{EthereumWallet, TransactionBuilder};
use alloy::primitives::{Address, B256, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};

use super::market::MarketError;

/// How transactions are followed once sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxPolicy {
    /// How often a receipt is asked for.
    pub poll: Duration,
    /// A transaction not mined after this long is replaced with higher fees (and again after as long).
    pub stuck_after: Duration,
    /// How long a transaction is followed, the endpoint down or not, before the caller is told its outcome is
    /// unknown.
    pub give_up_after: Duration,
}

impl Default for TxPolicy {
    fn default() -> Self {
        Self {
            poll: Duration::from_millis(500),
            stuck_after: Duration::from_secs(45),
            give_up_after: Duration::from_secs(300),
        }
    }
}

/// A transaction of ours not yet known to be mined.
#[derive(Debug, Clone)]
struct InFlight {
    /// Unsigned, with nonce, gas and fees of the last version sent.
    request: TransactionRequest,
    /// Every version sent (the first, then replacements).
    hashes: Vec<B256>,
    last_sent: Instant,
    /// A no-op replacing a transaction this process did not send: nobody follows it.
    filler: bool,
}

/// What every clone of a market shares: the connection (swapped in place when the chain actor reconnects), the
/// signer, the send lock and the transactions in flight.
pub(super) struct Transactor {
    provider: RwLock<DynProvider>,
    wallet: EthereumWallet,
    signer: Address,
    policy: TxPolicy,
    /// Held from nonce assignment until the transaction was handed to the node (or the send gave up).
    send_lock: tokio::sync::Mutex<()>,
    in_flight: Mutex<BTreeMap<u64, InFlight>>,
    chain_id: tokio::sync::OnceCell<u64>,
    /// Transactions replaced with higher fees since start (for tests and logs).
    replaced: std::sync::atomic::AtomicU64,
}

/// Whether a node's answer to a raw send means the transaction may well be in its pool or mined already.
fn maybe_accepted(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    ["already known", "known transaction", "nonce too low", "already imported", "replacement transaction underpriced"]
        .iter()
        .any(|m| message.contains(m))
}

/// Fees at least 25 % above `old` and no lower than `now`.
fn bumped(old: u128, now: u128) -> u128 {
    old.saturating_add(old / 4).saturating_add(1).max(now)
}

impl Transactor {
    pub(super) fn new(provider: DynProvider, wallet: EthereumWallet, signer: Address, policy: TxPolicy) -> Arc<Self> {
        Arc::new(Self {
            provider: RwLock::new(provider),
            wallet,
            signer,
            policy,
            send_lock: tokio::sync::Mutex::new(()),
            in_flight: Mutex::new(BTreeMap::new()),
            chain_id: tokio::sync::OnceCell::new(),
            replaced: Default::default(),
        })
    }

    pub(super) fn signer(&self) -> Address {
        self.signer
    }

    /// The current connection.
    pub(super) fn provider(&self) -> DynProvider {
        self.provider.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Replaces the connection for every clone of the market (the chain actor reconnected).
    pub(super) fn replace_provider(&self, provider: DynProvider) {
        *self.provider.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = provider;
    }

    pub(super) fn replaced(&self) -> u64 {
        self.replaced.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn in_flight(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, InFlight>> {
        self.in_flight.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn chain_id(&self) -> Result<u64, MarketError> {
        let provider = self.provider();
        self.chain_id
            .get_or_try_init(|| async move { provider.get_chain_id().await })
            .await
            .copied()
            .map_err(|e| MarketError::Transport { attempts: 1, message: e.to_string() })
    }

    /// Signs `request` and answers its raw bytes and hash.
    async fn sign(&self, request: TransactionRequest) -> Result<(Vec<u8>, B256), MarketError> {
        let envelope =
            request.build(&self.wallet).await.map_err(|e| MarketError::Other(format!("signing a transaction: {e}")))?;
        Ok((envelope.encoded_2718(), *envelope.tx_hash()))
    }

    /// Sends signed bytes; `Ok` when the node took them or may already have them.
    async fn send_raw(&self, raw: &[u8]) -> Result<(), MarketError> {
        match self.provider().send_raw_transaction(raw).await {
            Ok(_) => Ok(()),
            Err(err) if maybe_accepted(&err.to_string()) => Ok(()),
            Err(alloy::transports::RpcError::Transport(kind)) => {
                Err(MarketError::Transport { attempts: 1, message: kind.to_string() })
            }
            Err(err) => Err(MarketError::Other(format!("sending a transaction: {err}"))),
        }
    }

    /// Signs and sends `request` (its `to`, input and gas limit set) with the next nonce, then follows it until it
    /// is mined. `prepare` retries are the caller's: this is called once the gas estimate passed.
    pub(super) async fn transact(
        &self,
        request: TransactionRequest,
        retry: super::market::RetryPolicy,
    ) -> Result<TransactionReceipt, MarketError> {
        let nonce = {
            let _turn = self.send_lock.lock().await;
            let chain_id = self.chain_id().await?;
            let provider = self.provider();
            let signer = self.signer;
            let (pending, fees) = super::market::retry(retry, super::market::classify_plain, || async {
                let pending = provider.get_transaction_count(signer).pending().await?;
                let fees = provider.estimate_eip1559_fees().await?;
                Ok::<_, alloy::transports::TransportError>((pending, fees))
            })
            .await?;
            let nonce = {
                let flight = self.in_flight();
                flight.last_key_value().map_or(pending, |(last, _)| pending.max(last + 1))
            };
            let request = request
                .with_from(signer)
                .with_nonce(nonce)
                .with_chain_id(chain_id)
                .with_max_fee_per_gas(fees.max_fee_per_gas)
                .with_max_priority_fee_per_gas(fees.max_priority_fee_per_gas);
            let (raw, hash) = self.sign(request.clone()).await?;
            self.in_flight()
                .insert(nonce, InFlight { request, hashes: vec![hash], last_sent: Instant::now(), filler: false });
            // The same bytes again after a transport error: a send that did arrive is not doubled.
            let sent = super::market::retry(
                retry,
                |e: &MarketError| match e {
                    MarketError::Transport { message, .. } => super::market::Verdict::Retry(message.clone()),
                    _ => super::market::Verdict::Fail(MarketError::Other(e.to_string())),
                },
                || self.send_raw(&raw),
            )
            .await;
            match sent {
                Ok(()) => tracing::debug!(%hash, nonce, "transaction sent"),
                // The node may have it: followed like any other (replaced if it never arrived).
                Err(err @ MarketError::Transport { .. }) => {
                    tracing::warn!(%hash, nonce, %err, "a transaction's send went unanswered; following it by hash")
                }
                Err(err) => {
                    self.in_flight().remove(&nonce);
                    return Err(err);
                }
            }
            nonce
        };
        self.follow(nonce).await
    }

    /// Waits for a receipt of any version of the transaction with `nonce`.
    async fn follow(&self, nonce: u64) -> Result<TransactionReceipt, MarketError> {
        let started = Instant::now();
        loop {
            tokio::time::sleep(self.policy.poll).await;
            let Some(entry) = self.in_flight().get(&nonce).cloned() else {
                return Err(MarketError::Other(format!("transaction {nonce} is no longer followed")));
            };
            if let Some(receipt) = self.receipt_of(&entry.hashes).await {
                self.in_flight().remove(&nonce);
                return if receipt.status() {
                    Ok(receipt)
                } else {
                    Err(MarketError::TransactionFailed { tx: receipt.transaction_hash })
                };
            }
            let last = entry.hashes.last().copied().unwrap_or_default();
            let provider = self.provider();
            if let Ok(mined) = provider.get_transaction_count(self.signer).latest().await
                && mined > nonce
            {
                // The nonce is used. One of ours may have been mined between the reads: look once more.
                if let Some(receipt) = self.receipt_of(&entry.hashes).await {
                    self.in_flight().remove(&nonce);
                    return if receipt.status() {
                        Ok(receipt)
                    } else {
                        Err(MarketError::TransactionFailed { tx: receipt.transaction_hash })
                    };
                }
                self.in_flight().remove(&nonce);
                return Err(MarketError::Unconfirmed {
                    tx: last,
                    message: "its nonce was used by another transaction".into(),
                });
            }
            if started.elapsed() >= self.policy.give_up_after {
                self.in_flight().remove(&nonce);
                return Err(MarketError::Unconfirmed {
                    tx: last,
                    message: format!("no receipt after {:?}", self.policy.give_up_after),
                });
            }
            if entry.last_sent.elapsed() >= self.policy.stuck_after {
                self.unstick(nonce).await;
            }
        }
    }

    async fn receipt_of(&self, hashes: &[B256]) -> Option<TransactionReceipt> {
        let provider = self.provider();
        for hash in hashes {
            if let Ok(Some(receipt)) = provider.get_transaction_receipt(*hash).await {
                return Some(receipt);
            }
        }
        None
    }

    /// Replaces every transaction at or below `nonce` that has waited [`TxPolicy::stuck_after`]: ours with
    /// higher fees, unknown ones (from before a restart) with a no-op transfer to self.
    async fn unstick(&self, nonce: u64) {
        let _turn = self.send_lock.lock().await;
        let provider = self.provider();
        let (Ok(mined), Ok(fees)) =
            (provider.get_transaction_count(self.signer).latest().await, provider.estimate_eip1559_fees().await)
        else {
            return;
        };
        self.in_flight().retain(|n, entry| !(entry.filler && *n < mined));
        for n in mined..=nonce {
            let entry = self.in_flight().get(&n).cloned();
            let (request, filler) = match entry {
                Some(entry) if entry.last_sent.elapsed() < self.policy.stuck_after => continue,
                Some(entry) => {
                    let old_fee = entry.request.max_fee_per_gas.unwrap_or_default();
                    let old_tip = entry.request.max_priority_fee_per_gas.unwrap_or_default();
                    let request = entry
                        .request
                        .with_max_fee_per_gas(bumped(old_fee, fees.max_fee_per_gas))
                        .with_max_priority_fee_per_gas(bumped(old_tip, fees.max_priority_fee_per_gas));
                    (request, entry.filler)
                }
                None => {
                    let Ok(chain_id) = self.chain_id().await else { return };
                    let request = TransactionRequest::default()
                        .with_from(self.signer)
                        .with_to(self.signer)
                        .with_value(U256::ZERO)
                        .with_nonce(n)
                        .with_chain_id(chain_id)
                        .with_gas_limit(21_000)
                        .with_max_fee_per_gas(fees.max_fee_per_gas.saturating_mul(2))
                        .with_max_priority_fee_per_gas(fees.max_priority_fee_per_gas.saturating_mul(2).max(1));
                    (request, true)
                }
            };
            let Ok((raw, hash)) = self.sign(request.clone()).await else { return };
            match self.send_raw(&raw).await {
                Ok(()) => {
                    self.replaced.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!(
                        nonce = n,
                        %hash,
                        max_fee = request.max_fee_per_gas.unwrap_or_default(),
                        no_op = filler,
                        "a stuck transaction is replaced with higher fees"
                    );
                }
                Err(err) => tracing::warn!(nonce = n, %err, "replacing a stuck transaction failed; will retry"),
            }
            let mut flight = self.in_flight();
            let entry = flight.entry(n).or_insert_with(|| InFlight {
                request: request.clone(),
                hashes: Vec::new(),
                last_sent: Instant::now(),
                filler,
            });
            entry.request = request;
            entry.hashes.push(hash);
            entry.last_sent = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bumps_are_a_quarter_up_at_least_and_follow_the_chain() {
        assert_eq!(bumped(100, 0), 126);
        assert_eq!(bumped(100, 500), 500);
        assert_eq!(bumped(0, 0), 1);
        assert_eq!(bumped(u128::MAX, 0), u128::MAX);
    }

    #[test]
    fn answers_that_mean_the_node_may_have_the_transaction() {
        assert!(maybe_accepted("server returned an error response: error code -32000: already known"));
        assert!(maybe_accepted("Nonce too low"));
        assert!(!maybe_accepted("insufficient funds for gas * price + value"));
    }
}
