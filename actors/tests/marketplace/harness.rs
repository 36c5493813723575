//! The harness of the marketplace contract tests: one anvil per test with the TestToken, the real Groth16Verifier
//! (the verifying key of a tiny circuit, so a proof takes milliseconds) and the Marketplace; ten funded dev
//! accounts; chain time that only moves when a test moves it (every transaction and every mined block is pinned
//! to a timestamp, and `eth_call` reads the latest block, so periods, pointers and reservation lifetimes are deterministic);
//! real proofs against the contract's challenges; revert reasons decoded into the contracts' custom error names;
//! token balances of every account.

use std::fmt::Debug;
use std::sync::OnceLock;

use alloy::contract::{CallBuilder, CallDecoder};
use alloy::eips::BlockNumberOrTag;
use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::providers::ext::AnvilApi;
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::TransactionReceipt;
use alloy::sol_types::{SolEvent, SolInterface, SolValue};
use codex_actors::chain::anvil::LocalChain;
use codex_actors::chain::bindings::{Marketplace, TestToken};
use codex_actors::chain::deploy::{Deployment, deploy, testnet_config};
use codex_protocol::poseidon2::{F, merkle_root, to_le_bytes};
use codex_protocol::proofs::groth16::{self, AbiProof, AbiVerifyingKey, ProvingKey, VerifyingKey};
use codex_protocol::proofs::{ProofInput, ProofParams};
use codex_protocol::slots::{SlotLayout, SlotTree, entropy_from_challenge, slot_block_digest};

/// A circuit small enough to prove in milliseconds: 3 samples, slots of 8 cells, datasets of up to 4 slots.
pub const PARAMS: ProofParams =
    ProofParams { samples: 3, max_slot_depth: 3, max_dataset_depth: 2, block_depth: 1, cell_elements: 2 };

/// Seconds per period of the test configuration.
pub const PERIOD: u64 = 60;
pub const TIMEOUT: u64 = 20;
pub const DOWNTIME: u8 = 64;
pub const DOWNTIME_PRODUCT: u8 = 67;

/// Dev accounts and their roles.
pub const CLIENT: usize = 1;
pub const HOST_A: usize = 2;
pub const HOST_B: usize = 3;
pub const HOST_C: usize = 4;
pub const HOST_D: usize = 5;
pub const OTHER: usize = 6;
pub const VALIDATOR: usize = 7;
pub const RECIPIENT: usize = 8;
/// Funded, but has not approved the marketplace.
pub const UNAPPROVED: usize = 9;
/// The index of the Marketplace contract in a balance snapshot (after the ten dev accounts).
pub const MARKET: usize = 10;

/// Gas limit of every transaction: sent without an estimate, so a reverting transaction is mined (status 0) at the
/// pinned time instead of failing in eth_estimateGas.
const GAS: u64 = 5_000_000;

/// The request of the tests: 3 slots of 1024 bytes, 1 token per byte-second (1024 per slot-second), 100 tokens of
/// collateral per byte (102,400 per slot), one hour, filled within 10 minutes, one slot may be lost.
pub const SLOT_SIZE: u64 = 1024;
pub const PRICE_PER_SLOT_SECOND: u128 = 1024;
pub const COLLATERAL: u128 = 102_400;
pub const DURATION: u64 = 3600;
pub const EXPIRY: u64 = 600;
pub const SLOTS: u64 = 3;
pub const MAX_PRICE: u128 = SLOTS as u128 * DURATION as u128 * PRICE_PER_SLOT_SECOND;
/// One missed proof: 20 % of the full collateral, of which the validator gets 20 %.
pub const SLASH: u128 = COLLATERAL * 20 / 100;
pub const VALIDATOR_REWARD: u128 = SLASH * 20 / 100;
/// What a repairing host deposits: the collateral minus the 10 % repair reward.
pub const REPAIR_DEPOSIT: u128 = COLLATERAL - COLLATERAL * 10 / 100;

/// Tiny-circuit keys, made once per test binary.
fn keys() -> &'static (ProvingKey, VerifyingKey) {
    static KEYS: OnceLock<(ProvingKey, VerifyingKey)> = OnceLock::new();
    KEYS.get_or_init(|| groth16::setup(PARAMS, [11; 32]).expect("setup of the tiny circuit"))
}

/// Block `b` of `slot`: three data blocks of 64 bytes, then zero padding.
fn block(slot: u64, b: u64) -> Vec<u8> {
    if b >= 3 { vec![0; 64] } else { (0..64u64).map(|i| (i * 31 + b * 7 + slot * 101) as u8).collect() }
}

/// A dataset of 3 slots × 3 blocks of 64 bytes (cells of 32 bytes, one pad block per slot) and its trees.
pub struct Dataset {
    layout: SlotLayout,
    trees: Vec<SlotTree>,
    roots: Vec<F>,
}

impl Dataset {
    pub fn new() -> Self {
        let layout = SlotLayout::new(64, 32, 9, 3).unwrap();
        let trees: Vec<SlotTree> = (0..SLOTS)
            .map(|slot| {
                let digests: Vec<F> = layout
                    .slot_blocks(slot)
                    .unwrap()
                    .zip(0..3)
                    .map(|(index, b)| slot_block_digest(&layout, index, &block(slot, b)).unwrap())
                    .collect();
                SlotTree::new(&layout, &digests).unwrap()
            })
            .collect();
        let roots = trees.iter().map(SlotTree::root).collect();
        Self { layout, trees, roots }
    }

    /// `content.merkleRoot`: the dataset root as 32 little-endian bytes.
    pub fn merkle_root(&self) -> B256 {
        B256::from(to_le_bytes(&merkle_root(&self.roots).unwrap()))
    }

    /// A real proof for `slot` under the contract's `challenge` (entropy = its first 31 bytes, little-endian).
    pub fn proof(&self, slot: u64, challenge: B256) -> Marketplace::Groth16Proof {
        let entropy = entropy_from_challenge(&challenge.0);
        let s = slot as usize;
        let input = ProofInput::build(&PARAMS, &self.layout, entropy, &self.roots, slot, &self.trees[s], |b| {
            Some(block(slot, b))
        })
        .unwrap();
        let proof = groth16::prove_seeded(&keys().0, PARAMS, input, [slot as u8 + 1; 32]).unwrap();
        Marketplace::Groth16Proof::from(&AbiProof::from(&proof))
    }
}

/// RequestId = keccak256(abi.encode(request)).
pub fn request_id(request: &Marketplace::Request) -> B256 {
    keccak256(request.abi_encode())
}

/// SlotId = keccak256(abi.encode(requestId, uint64 slotIndex)): two 32-byte words.
pub fn slot_id(request: B256, index: u64) -> B256 {
    let mut words = request.to_vec();
    words.extend_from_slice(&U256::from(index).to_be_bytes::<32>());
    keccak256(words)
}

/// The contract's pointer for `slot` in `period` at block `number` (marketplace-facts §5.2).
pub fn pointer(slot: B256, number: u64, period: u64) -> u8 {
    let period_term = (u128::from(period) * u128::from(DOWNTIME_PRODUCT)) % 256;
    ((u128::from(number % 256) + period_term + u128::from(slot.0[31])) % 256) as u8
}

pub fn period_of(timestamp: u64) -> u64 {
    timestamp / PERIOD
}

pub fn period_end(period: u64) -> u64 {
    (period + 1) * PERIOD
}

/// The name of the custom error (or `Error(reason)`) a call reverted with: the Marketplace's errors, then the
/// TestToken's (OpenZeppelin ERC20 errors passed on by the marketplace).
pub fn error_name(error: &alloy::contract::Error) -> String {
    let data = error.as_revert_data().unwrap_or_else(|| panic!("not a revert: {error}"));
    if let Ok(e) = Marketplace::MarketplaceErrors::abi_decode(&data) {
        return variant_name(&e);
    }
    if let Ok(e) = TestToken::TestTokenErrors::abi_decode(&data) {
        return variant_name(&e);
    }
    if let Ok(e) = <alloy::sol_types::Revert as alloy::sol_types::SolError>::abi_decode(&data) {
        return format!("Error({})", e.reason);
    }
    format!("undecoded revert {data}")
}

fn variant_name<T: Debug>(value: &T) -> String {
    let text = format!("{value:?}");
    text.split(['(', ' ', '{']).next().unwrap_or_default().to_owned()
}

/// The events of type `E` in a receipt.
pub fn events<E: SolEvent>(receipt: &TransactionReceipt) -> Vec<E> {
    receipt.inner.logs().iter().filter_map(|log| log.log_decode::<E>().ok()).map(|log| log.inner.data).collect()
}

/// A dev account with the contracts bound to its signer.
pub struct Actor {
    pub address: Address,
    pub market: Marketplace::MarketplaceInstance<DynProvider>,
    pub token: TestToken::TestTokenInstance<DynProvider>,
}

/// One test's chain: anvil, the deployed contracts, ten funded accounts, the dataset.
pub struct Env {
    pub chain: LocalChain,
    pub admin: DynProvider,
    pub deployment: Deployment,
    pub config: Marketplace::MarketplaceConfig,
    pub actors: Vec<Actor>,
    pub data: Dataset,
}

/// The configuration of the tests: the testnet's collateral rules (repair reward 10 %, 2 slashes of 20 %,
/// validators get 20 %), 3 reservations per slot, periods of 60 s with a 20 s validation timeout, downtime 64.
pub fn test_config() -> Marketplace::MarketplaceConfig {
    let mut config = testnet_config("tiny-circuit".into());
    config.proofs.period = PERIOD;
    config.proofs.timeout = TIMEOUT;
    config.proofs.downtime = DOWNTIME;
    config.proofs.downtimeProduct = DOWNTIME_PRODUCT;
    config
}

impl Env {
    /// Starts anvil, deploys the contracts with [`test_config`], mints 10^12 tokens to every dev account, approves
    /// the marketplace from all but [`UNAPPROVED`], and moves time to one second after a period start.
    pub async fn start() -> Self {
        let chain = LocalChain::start().await.expect("anvil");
        let admin = chain.provider(0);
        let config = test_config();
        let vk = AbiVerifyingKey::from(&keys().1);
        let deployment = deploy(&admin, config.clone(), &vk).await.expect("deploy");
        let actors: Vec<Actor> = (0..10)
            .map(|i| {
                let provider = chain.provider(i);
                Actor {
                    address: chain.address(i),
                    market: Marketplace::new(deployment.marketplace, provider.clone()),
                    token: TestToken::new(deployment.token, provider),
                }
            })
            .collect();
        let env = Self { chain, admin, deployment, config, actors, data: Dataset::new() };
        for (i, actor) in env.actors.iter().enumerate() {
            env.ok(actor.token.mint(actor.address, U256::from(10u64).pow(U256::from(12)))).await;
            if i != UNAPPROVED {
                env.ok(actor.token.approve(env.deployment.marketplace, U256::MAX)).await;
            }
        }
        let now = env.now().await;
        env.jump((period_of(now) + 2) * PERIOD + 1).await;
        env
    }

    pub fn actor(&self, index: usize) -> &Actor {
        &self.actors[index]
    }

    pub fn address(&self, index: usize) -> Address {
        self.actors[index].address
    }

    /// The client's request with proof probability `probability` and nonce byte `nonce`.
    pub fn request(&self, probability: u64, nonce: u8) -> Marketplace::Request {
        Marketplace::Request {
            client: self.address(CLIENT),
            ask: Marketplace::Ask {
                proofProbability: U256::from(probability),
                pricePerBytePerSecond: U256::from(1u64),
                collateralPerByte: U256::from(100u64),
                slots: SLOTS,
                slotSize: SLOT_SIZE,
                duration: DURATION,
                maxSlotLoss: 1,
            },
            content: Marketplace::Content {
                cid: Bytes::from_static(b"zDvZRwzm-manifest"),
                merkleRoot: self.data.merkle_root(),
            },
            expiry: EXPIRY,
            nonce: B256::repeat_byte(nonce),
        }
    }

    // ---- time and blocks ----

    pub async fn latest(&self) -> alloy::rpc::types::Block {
        self.admin.get_block_by_number(BlockNumberOrTag::Latest).await.unwrap().expect("latest block")
    }

    /// The latest block's timestamp: the time every call sees and every transaction is mined at.
    pub async fn now(&self) -> u64 {
        self.latest().await.header.timestamp
    }

    pub async fn block_number(&self) -> u64 {
        self.admin.get_block_number().await.unwrap()
    }

    /// Mines one block at `timestamp`.
    pub async fn jump(&self, timestamp: u64) {
        self.admin.anvil_set_next_block_timestamp(timestamp).await.unwrap();
        self.admin.anvil_mine(Some(1), None).await.unwrap();
        assert_eq!(self.now().await, timestamp);
    }

    /// Mines `blocks` blocks without moving time.
    pub async fn mine(&self, blocks: u64) {
        let now = self.now().await;
        for _ in 0..blocks {
            self.jump(now).await;
        }
    }

    /// Mines blocks (at most 256) until a transaction in the next block sees a pointer of `slot` in `period` for
    /// which `accept` holds.
    pub async fn mine_until_pointer(&self, slot: B256, period: u64, accept: impl Fn(u8) -> bool) {
        for _ in 0..=256 {
            if accept(pointer(slot, self.block_number().await + 1, period)) {
                return;
            }
            self.mine(1).await;
        }
        panic!("no acceptable pointer within 256 blocks");
    }

    // ---- transactions and calls ----

    /// Sends `call` in its own block at the current chain time (no gas estimate) and returns the receipt, reverted
    /// or not.
    pub async fn send<D: CallDecoder>(&self, call: CallBuilder<&DynProvider, D>) -> TransactionReceipt {
        let now = self.now().await;
        self.send_at(now, call).await
    }

    /// [`Env::send`] mined at `timestamp`.
    pub async fn send_at<D: CallDecoder>(
        &self,
        timestamp: u64,
        call: CallBuilder<&DynProvider, D>,
    ) -> TransactionReceipt {
        self.admin.anvil_set_next_block_timestamp(timestamp).await.unwrap();
        let receipt = call.gas(GAS).send().await.expect("send").get_receipt().await.expect("receipt");
        let block = self.latest().await;
        assert_eq!((block.header.number, block.header.timestamp), (receipt.block_number.unwrap(), timestamp));
        receipt
    }

    /// [`Env::send`], which must succeed.
    pub async fn ok<D: CallDecoder>(&self, call: CallBuilder<&DynProvider, D>) -> TransactionReceipt {
        let receipt = self.send(call).await;
        assert!(receipt.status(), "transaction reverted: {receipt:?}");
        receipt
    }

    /// The error `call` reverts with, from `from`, at the latest block.
    pub async fn revert<D: CallDecoder>(&self, from: usize, call: CallBuilder<&DynProvider, D>) -> String {
        match call.from(self.address(from)).call_raw().await {
            Ok(output) => panic!("expected a revert, got {output}"),
            Err(e) => error_name(&e),
        }
    }

    // ---- marketplace steps ----

    /// The client requests storage; returns the request id (checked against the StorageRequested event) and the
    /// receipt.
    pub async fn request_storage(&self, request: &Marketplace::Request) -> (B256, TransactionReceipt) {
        let receipt = self.ok(self.actor(CLIENT).market.requestStorage(request.clone())).await;
        let id = request_id(request);
        let requested = events::<Marketplace::StorageRequested>(&receipt);
        assert_eq!(requested.len(), 1);
        assert_eq!(requested[0].requestId, id, "RequestId = keccak256(abi.encode(request))");
        assert_eq!(requested[0].ask, request.ask);
        assert_eq!(requested[0].expiry, self.now().await + request.expiry, "the absolute expiry");
        (id, receipt)
    }

    pub async fn reserve(&self, host: usize, id: B256, slot: u64) -> TransactionReceipt {
        self.ok(self.actor(host).market.reserveSlot(id, slot)).await
    }

    /// A proof of `slot` under the challenge the next block will see, and that block's pointer is not the last
    /// before a wrap (the pointer and the referenced block then stay as read).
    pub async fn next_block_proof(&self, id: B256, slot: u64) -> Marketplace::Groth16Proof {
        let slot_id = slot_id(id, slot);
        let period = period_of(self.now().await);
        self.mine_until_pointer(slot_id, period, |p| p != 0).await;
        let challenge = self.actor(0).market.getChallenge(slot_id).call().await.unwrap();
        self.data.proof(slot, challenge)
    }

    /// `host` fills `slot` with a real proof at the current time; must succeed.
    pub async fn fill(&self, host: usize, id: B256, slot: u64) -> TransactionReceipt {
        let proof = self.next_block_proof(id, slot).await;
        let receipt = self.ok(self.actor(host).market.fillSlot(id, slot, proof)).await;
        assert_eq!(
            events::<Marketplace::SlotFilled>(&receipt),
            [Marketplace::SlotFilled { requestId: id, slotIndex: slot }]
        );
        receipt
    }

    /// `host` submits a real proof for `slot` in the current period; must succeed.
    pub async fn submit_proof(&self, host: usize, id: B256, slot: u64) -> TransactionReceipt {
        let proof = self.next_block_proof(id, slot).await;
        let receipt = self.ok(self.actor(host).market.submitProof(slot_id(id, slot), proof)).await;
        assert_eq!(events::<Marketplace::ProofSubmitted>(&receipt).len(), 1);
        receipt
    }

    /// The validator marks `period` of `slot` missing, one second into the validation window, in a block whose
    /// pointer is out of downtime; must succeed.
    pub async fn mark_missing(&self, id: B256, slot: u64, period: u64) -> TransactionReceipt {
        let slot_id = slot_id(id, slot);
        self.jump(period_end(period) + 1).await;
        self.mine_until_pointer(slot_id, period, |p| p >= DOWNTIME).await;
        self.ok(self.actor(VALIDATOR).market.markProofAsMissing(slot_id, period)).await
    }

    // ---- views ----

    pub async fn request_state(&self, id: B256) -> u8 {
        self.actor(0).market.requestState(id).call().await.unwrap()
    }

    pub async fn slot_state(&self, id: B256, slot: u64) -> u8 {
        self.actor(0).market.slotState(slot_id(id, slot)).call().await.unwrap()
    }

    pub async fn my_slots(&self, host: usize) -> Vec<B256> {
        self.actor(host).market.mySlots().from(self.address(host)).call().await.unwrap()
    }

    pub async fn my_requests(&self, client: usize) -> Vec<B256> {
        self.actor(client).market.myRequests().from(self.address(client)).call().await.unwrap()
    }

    pub async fn can_reserve(&self, who: usize, id: B256, slot: u64) -> bool {
        self.actor(who).market.canReserveSlot(id, slot).from(self.address(who)).call().await.unwrap()
    }

    /// TestToken balances of the ten dev accounts, then of the Marketplace ([`MARKET`]).
    pub async fn balances(&self) -> Vec<i128> {
        let token = &self.actor(0).token;
        let mut holders: Vec<Address> = self.actors.iter().map(|a| a.address).collect();
        holders.push(self.deployment.marketplace);
        let mut out = Vec::new();
        for holder in holders {
            let balance = token.balanceOf(holder).call().await.unwrap();
            out.push(i128::try_from(balance).expect("balances fit in i128"));
        }
        out
    }

    /// Checks that the balances moved from `before` by exactly `expected` (account index, change; every other
    /// holder unchanged) and that no token was created or destroyed.
    pub async fn assert_moved(&self, before: &[i128], expected: &[(usize, i128)]) {
        let after = self.balances().await;
        let mut want = vec![0i128; after.len()];
        for &(index, change) in expected {
            want[index] += change;
        }
        let moved: Vec<i128> = after.iter().zip(before).map(|(a, b)| a - b).collect();
        assert_eq!(moved, want, "balance changes (accounts 0–9, then the marketplace)");
        assert_eq!(after.iter().sum::<i128>(), before.iter().sum::<i128>(), "nothing minted or burned");
    }
}

/// Request states.
pub const NEW: u8 = 0;
pub const STARTED: u8 = 1;
pub const CANCELLED: u8 = 2;
pub const FINISHED: u8 = 3;
pub const FAILED: u8 = 4;
/// Slot states.
pub const FREE: u8 = 0;
pub const FILLED: u8 = 1;
pub const SLOT_FINISHED: u8 = 2;
pub const SLOT_FAILED: u8 = 3;
pub const PAID: u8 = 4;
pub const SLOT_CANCELLED: u8 = 5;
pub const REPAIR: u8 = 6;
