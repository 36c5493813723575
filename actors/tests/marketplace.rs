//! Contract tests of the Marketplace (`contracts/src`) against marketplace-facts §1–§7 and the fixes of
//! contracts/README.md, on anvil with the real Groth16Verifier and real proofs of a tiny circuit: every external
//! function, every custom error that can be reached (Marketplace_*, Proofs_*, Periods_*, SlotReservations_*),
//! every request and slot state transition with chain time moved forward, the views, the RequestId and SlotId
//! rules, reservations (open to all, live for a quarter of the expiry), and the TestToken balance of every account in each scenario (what
//! the client paid = what hosts, validators and the client got back + what stays in the contract). Prints the gas
//! of each transaction kind (`cargo test -p codex-actors --test marketplace -- --nocapture`).
//!
//! `Marketplace_InsufficientDuration` cannot be reached: `0 < expiry < duration` is checked first, so a zero
//! duration always fails with `Marketplace_InvalidExpiry` (as in the original).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly on purpose")]

#[path = "marketplace/harness.rs"]
mod harness;

use alloy::node_bindings::Anvil;
use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::sol_types::SolValue;
use codex_actors::chain::anvil::anvil_binary;
use codex_actors::chain::bindings::Marketplace;
use harness::*;

/// A change to a valid request.
type EditRequest = fn(&mut Marketplace::Request);

fn u(value: u128) -> U256 {
    U256::from(value)
}

fn i(value: u128) -> i128 {
    i128::try_from(value).unwrap()
}

/// The error deploying a Marketplace with `config` reverts with, or `None` when it deploys.
async fn constructor_error(
    provider: &DynProvider,
    config: Marketplace::MarketplaceConfig,
    token: Address,
    verifier: Address,
) -> Option<String> {
    Marketplace::deploy_builder(provider.clone(), config, token, verifier)
        .call_raw()
        .await
        .err()
        .map(|e| error_name(&e))
}

#[actix_rt::test]
async fn constructor_checks() {
    let env = Env::start().await;
    let (token, verifier) = (env.deployment.token, env.deployment.verifier);
    let check = |edit: fn(&mut Marketplace::MarketplaceConfig)| {
        let mut config = test_config();
        edit(&mut config);
        constructor_error(&env.admin, config, token, verifier)
    };
    assert_eq!(check(|_| {}).await, None);
    assert_eq!(
        check(|c| c.collateral.repairRewardPercentage = 101).await.as_deref(),
        Some("Marketplace_RepairRewardPercentageTooHigh")
    );
    assert_eq!(
        check(|c| {
            c.collateral.slashPercentage = 101;
            c.collateral.maxNumberOfSlashes = 1;
        })
        .await
        .as_deref(),
        Some("Marketplace_SlashPercentageTooHigh")
    );
    assert_eq!(
        check(|c| c.collateral.maxNumberOfSlashes = 6).await.as_deref(),
        Some("Marketplace_MaximumSlashingTooHigh"),
        "6 × 20 % > 100 %"
    );
    assert_eq!(check(|c| c.collateral.maxNumberOfSlashes = 5).await, None, "5 × 20 % = 100 %");
    assert_eq!(
        check(|c| {
            c.collateral.validatorRewardPercentage = 101;
            c.collateral.repairRewardPercentage = 0;
        })
        .await
        .as_deref(),
        Some("Error(validatorRewardPercentage > 100)"),
        "fix 5"
    );
    assert_eq!(
        check(|c| c.collateral.validatorRewardPercentage = 91).await.as_deref(),
        Some("Error(repair + validator reward percentages > 100)"),
        "fix 5: 10 + 91"
    );
    assert_eq!(check(|c| c.collateral.validatorRewardPercentage = 90).await, None, "10 + 90");
    assert_eq!(check(|c| c.proofs.period = 0).await.as_deref(), Some("Periods_InvalidSecondsPerPeriod"));

    // A token address without code: the transfer "succeeds" with empty return data, which the marketplace refuses.
    let tokenless = Address::repeat_byte(0x77);
    let market = Marketplace::deploy(env.chain.provider(0), test_config(), tokenless, verifier).await.unwrap();
    let client = Marketplace::new(*market.address(), env.chain.provider(CLIENT));
    assert_eq!(
        env.revert(CLIENT, client.requestStorage(env.request(1, 1))).await,
        "Marketplace_TransferFailed",
        "fix 2"
    );

    // block.number must be above 256: a fresh anvil, without the 256 blocks of LocalChain.
    let anvil = Anvil::at(anvil_binary().unwrap()).try_spawn().unwrap();
    let fresh = ProviderBuilder::new().connect_http(anvil.endpoint_url()).erased();
    let at = |n: u64| {
        let fresh = fresh.clone();
        async move {
            let mined = fresh.get_block_number().await.unwrap();
            alloy::providers::ext::AnvilApi::anvil_mine(&fresh, Some(n - mined), None).await.unwrap();
            constructor_error(&fresh, test_config(), token, verifier).await
        }
    };
    assert_eq!(at(1).await.as_deref(), Some("Proofs_InsufficientBlockHeight"));
    assert_eq!(at(256).await.as_deref(), Some("Proofs_InsufficientBlockHeight"), "block.number 256");
    assert_eq!(at(257).await, None, "block.number 257");
}

#[actix_rt::test]
async fn request_validation_ids_and_views() {
    let env = Env::start().await;
    let reader = &env.actor(0).market;
    assert_eq!(reader.configuration().call().await.unwrap(), env.config);
    assert_eq!(reader.token().call().await.unwrap(), env.deployment.token);

    let base = env.request(1, 2);
    let client = &env.actor(CLIENT).market;
    let cases: [(&str, EditRequest); 11] = [
        ("Marketplace_InvalidExpiry", |r| r.expiry = 0),
        ("Marketplace_InvalidExpiry", |r| r.expiry = r.ask.duration),
        ("Marketplace_InsufficientSlots", |r| r.ask.slots = 0),
        ("Marketplace_InvalidMaxSlotLoss", |r| r.ask.maxSlotLoss = 4),
        ("Marketplace_InvalidExpiry", |r| {
            r.ask.duration = 0;
            r.expiry = 0;
        }),
        ("Marketplace_InsufficientProofProbability", |r| r.ask.proofProbability = U256::ZERO),
        ("Marketplace_InsufficientCollateral", |r| r.ask.collateralPerByte = U256::ZERO),
        ("Marketplace_InsufficientReward", |r| r.ask.pricePerBytePerSecond = U256::ZERO),
        ("Marketplace_InvalidCid", |r| r.content.cid = Bytes::new()),
        ("Marketplace_DurationExceedsLimit", |r| r.ask.duration = 30 * 24 * 3600 + 1),
        ("Marketplace_InvalidClientAddress", |r| r.client = Address::repeat_byte(1)),
    ];
    for (error, edit) in cases {
        let mut request = base.clone();
        edit(&mut request);
        assert_eq!(env.revert(CLIENT, client.requestStorage(request.clone())).await, error, "{request:?}");
    }
    let mut longest = base.clone();
    longest.ask.duration = 30 * 24 * 3600;
    client.requestStorage(longest).from(env.address(CLIENT)).call().await.expect("duration = requestDurationLimit");
    assert_eq!(
        env.revert(OTHER, env.actor(OTHER).market.requestStorage(base.clone())).await,
        "Marketplace_InvalidClientAddress",
        "sent by another account"
    );
    let mut unapproved = base.clone();
    unapproved.client = env.address(UNAPPROVED);
    assert_eq!(
        env.revert(UNAPPROVED, env.actor(UNAPPROVED).market.requestStorage(unapproved)).await,
        "ERC20InsufficientAllowance",
        "the token's own error is passed on"
    );

    // RequestId = keccak256(abi.encode(request)): a dynamic tuple, so the encoding starts with the offset 0x20.
    let encoded = base.abi_encode();
    assert_eq!(U256::from_be_slice(&encoded[..32]), U256::from(0x20));
    let before = env.balances().await;
    let (id, _) = env.request_storage(&base).await;
    let created = env.now().await;
    env.assert_moved(&before, &[(CLIENT, -i(MAX_PRICE)), (MARKET, i(MAX_PRICE))]).await;
    assert_eq!(env.revert(CLIENT, client.requestStorage(base.clone())).await, "Marketplace_RequestAlreadyExists");
    let (other_id, _) = env.request_storage(&env.request(1, 3)).await;
    assert_ne!(id, other_id, "the nonce makes identical requests distinct");

    // Views of a new request.
    assert_eq!(reader.getRequest(id).call().await.unwrap(), base);
    assert_eq!(env.request_state(id).await, NEW);
    assert_eq!(reader.requestEnd(id).call().await.unwrap(), created + DURATION);
    assert_eq!(reader.requestExpiry(id).call().await.unwrap(), created + EXPIRY);
    assert_eq!(env.my_requests(CLIENT).await, [id, other_id]);
    assert!(env.my_requests(OTHER).await.is_empty());
    assert!(env.my_slots(HOST_A).await.is_empty());
    let free = slot_id(id, 0);
    assert_eq!(env.slot_state(id, 0).await, FREE);
    assert_eq!(reader.getHost(free).call().await.unwrap(), Address::ZERO);
    assert_eq!(reader.currentCollateral(free).call().await.unwrap(), U256::ZERO);
    assert_eq!(reader.missingProofs(free).call().await.unwrap(), 0);
    assert_eq!(reader.slotProbability(free).call().await.unwrap(), U256::ZERO, "no request behind a free slot");
    assert!(!reader.isProofRequired(free).call().await.unwrap());
    assert!(!reader.willProofBeRequired(free).call().await.unwrap());
    assert_eq!(env.revert(0, reader.getActiveSlot(free)).await, "Marketplace_SlotIsFree");
    assert_eq!(env.revert(HOST_A, env.actor(HOST_A).market.freeSlot_1(free)).await, "Marketplace_SlotIsFree");
    let validator = &env.actor(VALIDATOR).market;
    let period = period_of(created);
    assert_eq!(
        env.revert(VALIDATOR, validator.markProofAsMissing(free, period)).await,
        "Marketplace_SlotNotAcceptingProofs"
    );
    assert_eq!(
        env.revert(VALIDATOR, validator.canMarkProofAsMissing(free, period)).await,
        "Marketplace_SlotNotAcceptingProofs"
    );

    // Pointer and challenge (§5.2), computed here from the latest block.
    let latest = env.latest().await;
    let number = latest.header.number;
    let p = reader.getPointer(free).call().await.unwrap();
    assert_eq!(p, pointer(free, number, period_of(latest.header.timestamp)));
    let referenced = env.admin.get_block_by_number((number - 1 - u64::from(p)).into()).await.unwrap().unwrap();
    assert_eq!(reader.getChallenge(free).call().await.unwrap(), keccak256(referenced.header.hash));
    env.mine(1).await;
    assert_eq!(reader.getPointer(free).call().await.unwrap(), p.wrapping_add(1), "one block, one step");

    // Unknown requests and slots, and the checks of fillSlot and withdrawFunds before anything is filled.
    let unknown = B256::repeat_byte(0xee);
    assert_eq!(env.revert(0, reader.getRequest(unknown)).await, "Marketplace_UnknownRequest");
    assert_eq!(env.revert(0, reader.requestState(unknown)).await, "Marketplace_UnknownRequest");
    assert_eq!(env.revert(0, reader.requestEnd(unknown)).await, "Marketplace_UnknownRequest");
    assert_eq!(reader.requestExpiry(unknown).call().await.unwrap(), 0);
    assert_eq!(env.revert(CLIENT, client.withdrawFunds_0(unknown)).await, "Marketplace_UnknownRequest");
    let host = &env.actor(HOST_A).market;
    let proof = env.data.proof(0, B256::ZERO);
    assert_eq!(env.revert(HOST_A, host.fillSlot(unknown, 0, proof.clone())).await, "Marketplace_UnknownRequest");
    assert_eq!(
        env.revert(HOST_A, host.submitProof(slot_id(unknown, 0), proof.clone())).await,
        "Marketplace_UnknownRequest"
    );
    assert_eq!(env.revert(HOST_A, host.fillSlot(id, SLOTS, proof.clone())).await, "Marketplace_InvalidSlot");
    assert_eq!(env.revert(HOST_A, host.fillSlot(id, 0, proof)).await, "Marketplace_ReservationRequired");
    assert_eq!(
        env.revert(OTHER, env.actor(OTHER).market.withdrawFunds_0(id)).await,
        "Marketplace_InvalidClientAddress"
    );
    assert_eq!(env.revert(CLIENT, client.withdrawFunds_0(id)).await, "Marketplace_InvalidState", "still New");
}

#[actix_rt::test]
async fn reservations_open_to_all_hold_their_place_for_a_quarter_of_the_expiry() {
    let env = Env::start().await;
    let (id, _) = env.request_storage(&env.request(1, 3)).await;
    let created = env.now().await;
    const TTL: u64 = EXPIRY / 4;

    // Every account may reserve every slot at once (an original host checks canReserveSlot once, at the start).
    for who in 0..10 {
        for slot in 0..SLOTS {
            assert!(env.can_reserve(who, id, slot).await, "account {who}, slot {slot}");
        }
    }

    // maxReservations = 3 live per slot; SlotReservationsFull at the third; no duplicates while live.
    let mut first = 0;
    for (n, who) in [HOST_A, HOST_B, HOST_C].into_iter().enumerate() {
        let receipt = env.reserve(who, id, 1).await;
        if n == 0 {
            first = env.now().await;
        }
        let full = events::<Marketplace::SlotReservationsFull>(&receipt);
        if n == 2 {
            assert_eq!(full, [Marketplace::SlotReservationsFull { requestId: id, slotIndex: 1 }]);
        } else {
            assert!(full.is_empty());
        }
    }
    assert!(!env.can_reserve(HOST_D, id, 1).await);
    assert_eq!(
        env.revert(HOST_D, env.actor(HOST_D).market.reserveSlot(id, 1)).await,
        "SlotReservations_ReservationNotAllowed",
        "full"
    );
    assert!(!env.can_reserve(HOST_A, id, 1).await);
    assert_eq!(
        env.revert(HOST_A, env.actor(HOST_A).market.reserveSlot(id, 1)).await,
        "SlotReservations_ReservationNotAllowed",
        "already reserved"
    );

    // A reservation holds its place for expiry/4: one second before, the slot is still full; at its end a new
    // host takes the place of every expired reservation, and a displaced host can no longer fill.
    env.jump(first + TTL - 1).await;
    assert!(!env.can_reserve(HOST_D, id, 1).await, "1 s before the first reservation expires");
    env.jump(first + TTL).await;
    assert!(env.can_reserve(HOST_D, id, 1).await, "the first reservation expired");
    assert!(env.can_reserve(HOST_A, id, 1).await, "its holder may renew it");
    let receipt = env.reserve(HOST_D, id, 1).await;
    assert!(events::<Marketplace::SlotReservationsFull>(&receipt).is_empty(), "B and C expired too: 2 live");
    env.jump(created + EXPIRY / 2).await;
    let proof = env.next_block_proof(id, 1).await;
    let displaced = env.actor(HOST_A).market.fillSlot(id, 1, proof);
    assert_eq!(env.revert(HOST_A, displaced).await, "Marketplace_ReservationRequired", "A was displaced");
    // An expired reservation that nobody displaced still lets its holder fill.
    env.reserve(HOST_A, id, 0).await;
    assert!(!env.can_reserve(HOST_A, id, 0).await);
    env.jump(env.now().await + TTL + 1).await;
    env.fill(HOST_A, id, 0).await;
    assert_eq!(env.slot_state(id, 0).await, FILLED);
    assert!(!env.can_reserve(HOST_D, id, 0).await, "a filled slot");

    // Fix 3: unknown requests, slot indices out of range, never-filled slots after expiry.
    for (request, slot) in [(B256::repeat_byte(0xee), 0), (id, SLOTS)] {
        assert!(!env.can_reserve(HOST_D, request, slot).await);
        assert_eq!(
            env.revert(HOST_D, env.actor(HOST_D).market.reserveSlot(request, slot)).await,
            "SlotReservations_ReservationNotAllowed"
        );
    }
    assert!(env.can_reserve(HOST_C, id, 2).await);
    env.jump(created + EXPIRY + 1).await;
    assert_eq!(env.request_state(id).await, CANCELLED);
    assert!(!env.can_reserve(HOST_C, id, 2).await, "the request expired");
}

#[actix_rt::test]
async fn finished_request_with_proofs_a_missed_proof_and_payouts() {
    let env = Env::start().await;
    let before = env.balances().await;
    let request = env.request(1, 4);
    let (id, receipt) = env.request_storage(&request).await;
    println!("gas requestStorage: {}", receipt.gas_used);
    let created = env.now().await;
    let slots: Vec<B256> = (0..SLOTS).map(|n| slot_id(id, n)).collect();

    env.jump(created + EXPIRY / 2).await;
    let receipt = env.reserve(HOST_A, id, 0).await;
    println!("gas reserveSlot: {}", receipt.gas_used);
    env.reserve(HOST_B, id, 1).await;
    env.reserve(HOST_C, id, 2).await;
    env.reserve(HOST_D, id, 0).await;
    let fill_period = period_of(env.now().await);
    let receipt = env.fill(HOST_A, id, 0).await;
    println!("gas fillSlot: {} (with the Groth16 verification)", receipt.gas_used);
    let filled_at = env.now().await;
    assert!(events::<Marketplace::RequestFulfilled>(&receipt).is_empty());

    // The checks of fillSlot.
    let good = env.next_block_proof(id, 2).await;
    let wrong_slot = env.next_block_proof(id, 1).await;
    let (other, host_c, host_d) = (&env.actor(OTHER).market, &env.actor(HOST_C).market, &env.actor(HOST_D).market);
    assert_eq!(env.revert(OTHER, other.fillSlot(id, 2, good.clone())).await, "Marketplace_ReservationRequired");
    assert_eq!(env.revert(HOST_C, host_c.fillSlot(id, 3, good.clone())).await, "Marketplace_InvalidSlot");
    assert_eq!(env.revert(HOST_D, host_d.fillSlot(id, 0, good.clone())).await, "Marketplace_SlotNotFree");
    assert_eq!(env.revert(HOST_C, host_c.fillSlot(id, 2, wrong_slot)).await, "Proofs_InvalidProof");
    env.fill(HOST_B, id, 1).await;
    assert_eq!(env.request_state(id).await, NEW);
    let receipt = env.fill(HOST_C, id, 2).await;
    assert_eq!(events::<Marketplace::RequestFulfilled>(&receipt), [Marketplace::RequestFulfilled { requestId: id }]);
    assert_eq!(env.request_state(id).await, STARTED);
    assert_eq!(env.now().await, filled_at);
    env.assert_moved(
        &before,
        &[
            (CLIENT, -i(MAX_PRICE)),
            (HOST_A, -i(COLLATERAL)),
            (HOST_B, -i(COLLATERAL)),
            (HOST_C, -i(COLLATERAL)),
            (MARKET, i(MAX_PRICE + 3 * COLLATERAL)),
        ],
    )
    .await;

    // Views of filled slots; the SlotId rule through mySlots.
    let reader = &env.actor(0).market;
    for (n, host) in [HOST_A, HOST_B, HOST_C].into_iter().enumerate() {
        let slot = slots[n];
        assert_eq!(env.slot_state(id, n as u64).await, FILLED);
        assert_eq!(reader.getHost(slot).call().await.unwrap(), env.address(host));
        assert_eq!(reader.currentCollateral(slot).call().await.unwrap(), u(COLLATERAL));
        let active = reader.getActiveSlot(slot).call().await.unwrap();
        assert_eq!((active.request, active.slotIndex), (request.clone(), n as u64));
        assert_eq!(env.my_slots(host).await, [slot], "SlotId = keccak256(abi.encode(requestId, slotIndex))");
    }
    assert_eq!(reader.slotProbability(slots[0]).call().await.unwrap(), U256::ZERO, "1 × 192 / 256");
    assert!(!reader.isProofRequired(slots[0]).call().await.unwrap(), "not in the fill period");
    assert_eq!(reader.requestEnd(id).call().await.unwrap(), created + DURATION);
    assert!(!env.can_reserve(OTHER, id, 0).await);
    assert_eq!(env.revert(OTHER, other.reserveSlot(id, 0)).await, "SlotReservations_ReservationNotAllowed");
    let client = &env.actor(CLIENT).market;
    assert_eq!(env.revert(CLIENT, client.withdrawFunds_0(id)).await, "Marketplace_InvalidState", "Started");

    // The next period: a proof is due once the pointer leaves downtime.
    let proof_period = fill_period + 1;
    env.jump(period_end(fill_period) + 1).await;
    let validator = &env.actor(VALIDATOR).market;
    assert_eq!(
        env.revert(VALIDATOR, validator.canMarkProofAsMissing(slots[1], fill_period)).await,
        "Proofs_ProofNotMissing",
        "the fill's proof counts for the fill period"
    );
    env.mine_until_pointer(slots[0], proof_period, |p| p < DOWNTIME).await;
    env.mine(1).await;
    assert!(reader.getPointer(slots[0]).call().await.unwrap() < DOWNTIME);
    assert!(reader.willProofBeRequired(slots[0]).call().await.unwrap());
    assert!(!reader.isProofRequired(slots[0]).call().await.unwrap());
    env.mine_until_pointer(slots[0], proof_period, |p| p >= DOWNTIME).await;
    env.mine(1).await;
    assert!(!reader.willProofBeRequired(slots[0]).call().await.unwrap());
    assert!(reader.isProofRequired(slots[0]).call().await.unwrap());

    let receipt = env.submit_proof(HOST_A, id, 0).await;
    println!("gas submitProof: {} (with the Groth16 verification)", receipt.gas_used);
    let (host_a, host_b) = (&env.actor(HOST_A).market, &env.actor(HOST_B).market);
    let proof_0 = env.next_block_proof(id, 0).await;
    assert_eq!(env.revert(HOST_A, host_a.submitProof(slots[0], proof_0.clone())).await, "Proofs_ProofAlreadySubmitted");
    assert_eq!(
        env.revert(HOST_B, host_b.submitProof(slots[0], proof_0.clone())).await,
        "Marketplace_ProofNotSubmittedByHost"
    );
    assert_eq!(env.revert(HOST_B, host_b.submitProof(slots[1], proof_0)).await, "Proofs_InvalidProof");
    env.submit_proof(HOST_C, id, 2).await;
    // Host B misses this period, which can be marked from just after its end.
    assert_eq!(
        env.revert(VALIDATOR, validator.canMarkProofAsMissing(slots[1], proof_period)).await,
        "Proofs_PeriodNotEnded"
    );
    env.jump(period_end(proof_period)).await;
    assert_eq!(
        env.revert(VALIDATOR, validator.canMarkProofAsMissing(slots[1], proof_period)).await,
        "Proofs_PeriodNotEnded",
        "at the period's end"
    );
    env.jump(period_end(proof_period) + 1).await;
    assert_eq!(
        env.revert(VALIDATOR, validator.canMarkProofAsMissing(slots[1], fill_period)).await,
        "Proofs_ValidationTimedOut"
    );
    assert_eq!(
        env.revert(VALIDATOR, validator.canMarkProofAsMissing(slots[0], proof_period)).await,
        "Proofs_ProofNotMissing"
    );
    assert_eq!(
        env.revert(VALIDATOR, validator.markProofAsMissing(slots[2], proof_period)).await,
        "Proofs_ProofNotMissing"
    );
    // Recomputed with the current block: with the pointer in downtime, no proof was required.
    env.mine_until_pointer(slots[1], proof_period, |p| p < DOWNTIME).await;
    env.mine(1).await;
    assert_eq!(
        env.revert(VALIDATOR, validator.canMarkProofAsMissing(slots[1], proof_period)).await,
        "Proofs_ProofNotRequired"
    );
    env.mine_until_pointer(slots[1], proof_period, |p| (DOWNTIME..255).contains(&p)).await;
    env.mine(1).await;
    validator.canMarkProofAsMissing(slots[1], proof_period).call().await.expect("can be marked");
    let receipt = env.ok(validator.markProofAsMissing(slots[1], proof_period)).await;
    println!("gas markProofAsMissing: {}", receipt.gas_used);
    assert_eq!(
        env.revert(VALIDATOR, validator.markProofAsMissing(slots[1], proof_period)).await,
        "Proofs_ProofAlreadyMarkedMissing"
    );
    assert_eq!(reader.missingProofs(slots[1]).call().await.unwrap(), 1);
    assert_eq!(reader.currentCollateral(slots[1]).call().await.unwrap(), u(COLLATERAL - SLASH));
    assert_eq!(env.slot_state(id, 1).await, FILLED, "one slash of two");

    // The end: Finished is computed; the first payout stores it.
    let ends = created + DURATION;
    env.jump(ends).await;
    assert_eq!(env.request_state(id).await, STARTED, "at endsAt");
    env.jump(ends + 1).await;
    assert_eq!(env.request_state(id).await, FINISHED);
    assert_eq!(env.slot_state(id, 0).await, SLOT_FINISHED);
    assert_eq!(reader.requestEnd(id).call().await.unwrap(), ends);
    assert_eq!(env.revert(OTHER, other.freeSlot_1(slots[0])).await, "Marketplace_InvalidSlotHost");
    let receipt = env.ok(host_a.freeSlot_1(slots[0])).await;
    println!("gas freeSlot: {} (payout of a finished slot)", receipt.gas_used);
    assert_eq!(env.slot_state(id, 0).await, PAID);
    assert_eq!(env.revert(HOST_A, host_a.freeSlot_1(slots[0])).await, "Marketplace_AlreadyPaid");
    assert!(env.my_requests(CLIENT).await.is_empty(), "the first payout removes the request (§12.2 item 8)");
    env.ok(host_b.freeSlot_0(slots[1], env.address(RECIPIENT), env.address(OTHER))).await;
    env.ok(host_c.freeSlot_1(slots[2])).await;
    for host in [HOST_A, HOST_B, HOST_C] {
        assert!(env.my_slots(host).await.is_empty());
    }

    assert_eq!(env.revert(OTHER, other.withdrawFunds_0(id)).await, "Marketplace_InvalidClientAddress");
    let receipt = env.ok(client.withdrawFunds_0(id)).await;
    println!("gas withdrawFunds: {}", receipt.gas_used);
    assert_eq!(env.request_state(id).await, FINISHED);
    assert_eq!(env.revert(CLIENT, client.withdrawFunds_0(id)).await, "Marketplace_NothingToWithdraw");

    let pay = u128::from(ends - filled_at) * PRICE_PER_SLOT_SECOND;
    env.assert_moved(
        &before,
        &[
            (CLIENT, -i(3 * pay)),
            (HOST_A, i(pay)),
            (HOST_B, -i(COLLATERAL)),
            (RECIPIENT, i(pay)),
            (OTHER, i(COLLATERAL - SLASH)),
            (HOST_C, i(pay)),
            (VALIDATOR, i(VALIDATOR_REWARD)),
            (MARKET, i(SLASH - VALIDATOR_REWARD)),
        ],
    )
    .await;
}

#[actix_rt::test]
async fn cancelled_request_with_a_fill_at_expiry() {
    let env = Env::start().await;
    // Created half-way through a period, so expiresAt is too.
    env.jump(env.now().await + PERIOD / 2 - 1).await;
    let before = env.balances().await;
    let (id, _) = env.request_storage(&env.request(4, 5)).await;
    let created = env.now().await;
    let expires = created + EXPIRY;
    let reader = &env.actor(0).market;
    assert_eq!(reader.requestExpiry(id).call().await.unwrap(), expires);

    env.jump(created + EXPIRY / 2).await;
    env.reserve(HOST_A, id, 0).await;
    env.reserve(HOST_B, id, 1).await;
    env.reserve(HOST_D, id, 0).await;
    env.fill(HOST_A, id, 0).await;
    let filled_at = env.now().await;
    assert_eq!(reader.slotProbability(slot_id(id, 0)).call().await.unwrap(), U256::from(3u64), "4 × 192 / 256");
    let client = &env.actor(CLIENT).market;
    assert_eq!(env.revert(CLIENT, client.withdrawFunds_0(id)).await, "Marketplace_InvalidState", "New");

    // Fix 1: a fill at exactly expiresAt, then cancellation, pays 0 and returns the collateral.
    env.jump(expires - 10).await;
    let proof = env.next_block_proof(id, 1).await;
    assert!(env.send_at(expires, env.actor(HOST_B).market.fillSlot(id, 1, proof)).await.status());
    assert_eq!(env.request_state(id).await, NEW, "at expiresAt");
    env.jump(expires + 1).await;
    assert_eq!(env.request_state(id).await, CANCELLED, "computed");
    assert_eq!(env.slot_state(id, 0).await, SLOT_CANCELLED);
    assert_eq!(env.slot_state(id, 2).await, FREE, "never filled");
    assert_eq!(reader.requestEnd(id).call().await.unwrap(), expires);
    assert!(!env.can_reserve(HOST_C, id, 2).await);
    assert_eq!(
        env.revert(HOST_C, env.actor(HOST_C).market.reserveSlot(id, 2)).await,
        "SlotReservations_ReservationNotAllowed"
    );
    let proof = env.data.proof(0, B256::ZERO);
    assert_eq!(
        env.revert(HOST_D, env.actor(HOST_D).market.fillSlot(id, 0, proof)).await,
        "Marketplace_SlotNotFree",
        "cancelled"
    );

    assert_eq!(
        env.revert(OTHER, env.actor(OTHER).market.withdrawFunds_0(id)).await,
        "Marketplace_InvalidClientAddress"
    );
    let receipt = env.ok(client.withdrawFunds_0(id)).await;
    assert_eq!(events::<Marketplace::RequestCancelled>(&receipt), [Marketplace::RequestCancelled { requestId: id }]);
    assert_eq!(env.request_state(id).await, CANCELLED, "stored");
    assert!(env.my_requests(CLIENT).await.is_empty());
    assert_eq!(env.revert(CLIENT, client.withdrawFunds_0(id)).await, "Marketplace_NothingToWithdraw");

    env.ok(env.actor(HOST_A).market.freeSlot_1(slot_id(id, 0))).await;
    env.ok(env.actor(HOST_B).market.freeSlot_1(slot_id(id, 1))).await;
    assert_eq!(env.slot_state(id, 1).await, PAID);
    assert!(env.my_slots(HOST_A).await.is_empty() && env.my_slots(HOST_B).await.is_empty());
    let paid = u128::from(expires - filled_at) * PRICE_PER_SLOT_SECOND;
    env.assert_moved(&before, &[(CLIENT, -i(paid)), (HOST_A, i(paid))]).await;
    assert_eq!(env.balances().await[MARKET], 0, "nothing left in the contract");
}

#[actix_rt::test]
async fn abandoned_slot_is_repaired_with_the_discount() {
    let env = Env::start().await;
    let before = env.balances().await;
    let request = env.request(1, 6);
    let (id, _) = env.request_storage(&request).await;
    let created = env.now().await;
    env.jump(created + EXPIRY / 2).await;
    for (slot, host) in [HOST_A, HOST_B, HOST_C].into_iter().enumerate() {
        env.reserve(host, id, slot as u64).await;
        env.fill(host, id, slot as u64).await;
    }
    let filled_at = env.now().await;
    assert_eq!(env.request_state(id).await, STARTED);

    // Filled → Repair by the host: all of its collateral is forfeited.
    let slot = slot_id(id, 0);
    let host_a = &env.actor(HOST_A).market;
    let receipt = env.ok(host_a.freeSlot_1(slot)).await;
    println!("gas freeSlot: {} (a host abandons a filled slot)", receipt.gas_used);
    assert_eq!(events::<Marketplace::SlotFreed>(&receipt), [Marketplace::SlotFreed { requestId: id, slotIndex: 0 }]);
    assert!(events::<Marketplace::RequestFailed>(&receipt).is_empty(), "1 empty slot ≤ maxSlotLoss");
    let reader = &env.actor(0).market;
    assert_eq!(env.slot_state(id, 0).await, REPAIR);
    assert_eq!(env.request_state(id).await, STARTED);
    assert_eq!(reader.getHost(slot).call().await.unwrap(), Address::ZERO);
    assert_eq!(reader.currentCollateral(slot).call().await.unwrap(), U256::ZERO);
    assert_eq!(reader.getActiveSlot(slot).call().await.unwrap().slotIndex, 0, "stored Repair is not Free");
    assert!(env.my_slots(HOST_A).await.is_empty());
    assert_eq!(env.revert(HOST_A, host_a.freeSlot_1(slot)).await, "Marketplace_InvalidSlotHost");
    let period = period_of(env.now().await);
    assert_eq!(
        env.revert(VALIDATOR, env.actor(VALIDATOR).market.markProofAsMissing(slot, period - 1)).await,
        "Marketplace_SlotNotAcceptingProofs"
    );

    // The forced free cleared the slot's reservations (the old host's too): every account may reserve at once.
    for who in 0..10 {
        assert!(env.can_reserve(who, id, 0).await, "account {who} right after the forced free");
    }
    // The repair fill's proof counts for its period: the next one (A's fill proved this period's).
    env.jump(period_end(period_of(env.now().await)) + 1).await;
    let mid = env.balances().await;
    env.reserve(HOST_D, id, 0).await;
    let receipt = env.fill(HOST_D, id, 0).await;
    let repaired_at = env.now().await;
    assert!(events::<Marketplace::RequestFulfilled>(&receipt).is_empty());
    env.assert_moved(&mid, &[(HOST_D, -i(REPAIR_DEPOSIT)), (MARKET, i(REPAIR_DEPOSIT))]).await;
    assert_eq!(reader.currentCollateral(slot).call().await.unwrap(), u(COLLATERAL), "credited in full");
    assert_eq!(env.slot_state(id, 0).await, FILLED);
    assert_eq!(env.request_state(id).await, STARTED);

    let ends = created + DURATION;
    env.jump(ends + 1).await;
    for (n, host) in [HOST_D, HOST_B, HOST_C].into_iter().enumerate() {
        env.ok(env.actor(host).market.freeSlot_1(slot_id(id, n as u64))).await;
    }
    env.ok(env.actor(CLIENT).market.withdrawFunds_0(id)).await;
    let pay = u128::from(ends - filled_at) * PRICE_PER_SLOT_SECOND;
    let repair_pay = u128::from(ends - repaired_at) * PRICE_PER_SLOT_SECOND;
    env.assert_moved(
        &before,
        &[
            (CLIENT, -i(2 * pay + repair_pay)),
            (HOST_A, -i(COLLATERAL)),
            (HOST_B, i(pay)),
            (HOST_C, i(pay)),
            (HOST_D, i(repair_pay + COLLATERAL - REPAIR_DEPOSIT)),
            (MARKET, i(REPAIR_DEPOSIT)),
        ],
    )
    .await;
}

#[actix_rt::test]
async fn missed_proofs_free_a_slot_and_abandonment_fails_the_request() {
    let env = Env::start().await;
    let before = env.balances().await;
    let (id, _) = env.request_storage(&env.request(1, 7)).await;
    let created = env.now().await;
    env.jump(created + EXPIRY / 2).await;
    for (slot, host) in [HOST_A, HOST_B, HOST_C].into_iter().enumerate() {
        env.reserve(host, id, slot as u64).await;
        env.fill(host, id, slot as u64).await;
    }
    let fill_period = period_of(env.now().await);
    let reader = &env.actor(0).market;
    let slot = slot_id(id, 1);

    // Host B never proves: maxNumberOfSlashes (2) missed proofs free the slot.
    let receipt = env.mark_missing(id, 1, fill_period + 1).await;
    assert!(events::<Marketplace::SlotFreed>(&receipt).is_empty());
    assert_eq!(reader.missingProofs(slot).call().await.unwrap(), 1);
    assert_eq!(reader.currentCollateral(slot).call().await.unwrap(), u(COLLATERAL - SLASH));
    // Host C did not prove either: the validation window of that period ends `timeout` seconds after it.
    let (slot_c, missed) = (slot_id(id, 2), fill_period + 1);
    let validator = &env.actor(VALIDATOR).market;
    env.jump(period_end(missed) + TIMEOUT - 1).await;
    env.mine_until_pointer(slot_c, missed, |p| (DOWNTIME..255).contains(&p)).await;
    env.mine(1).await;
    validator.canMarkProofAsMissing(slot_c, missed).call().await.expect("the last second of the window");
    env.jump(period_end(missed) + TIMEOUT).await;
    assert_eq!(
        env.revert(VALIDATOR, validator.canMarkProofAsMissing(slot_c, missed)).await,
        "Proofs_ValidationTimedOut"
    );
    let receipt = env.mark_missing(id, 1, fill_period + 2).await;
    println!("gas markProofAsMissing: {} (the last slash, which frees the slot)", receipt.gas_used);
    assert_eq!(events::<Marketplace::SlotFreed>(&receipt), [Marketplace::SlotFreed { requestId: id, slotIndex: 1 }]);
    assert_eq!(env.slot_state(id, 1).await, REPAIR);
    assert_eq!(reader.missingProofs(slot).call().await.unwrap(), 0, "reset");
    assert_eq!(reader.currentCollateral(slot).call().await.unwrap(), U256::ZERO);
    assert_eq!(reader.getHost(slot).call().await.unwrap(), Address::ZERO);
    assert!(env.my_slots(HOST_B).await.is_empty());
    assert_eq!(env.request_state(id).await, STARTED);

    // A Repair slot can be filled up to, not at, endsAt.
    let freed = env.now().await;
    env.jump(freed + EXPIRY / 2).await;
    env.reserve(HOST_D, id, 1).await;
    let ends = created + DURATION;
    env.jump(ends).await;
    let proof = env.next_block_proof(id, 1).await;
    assert_eq!(
        env.revert(HOST_D, env.actor(HOST_D).market.fillSlot(id, 1, proof)).await,
        "Marketplace_StartNotBeforeExpiry"
    );

    // A second empty slot (> maxSlotLoss) fails the request at once.
    let receipt = env.ok(env.actor(HOST_A).market.freeSlot_1(slot_id(id, 0))).await;
    assert_eq!(events::<Marketplace::RequestFailed>(&receipt), [Marketplace::RequestFailed { requestId: id }]);
    assert_eq!(env.request_state(id).await, FAILED);
    assert_eq!(reader.requestEnd(id).call().await.unwrap(), ends - 1, "endsAt = now − 1");
    for n in 0..SLOTS {
        assert_eq!(env.slot_state(id, n).await, SLOT_FAILED);
    }
    assert_eq!(
        env.revert(VALIDATOR, validator.markProofAsMissing(slot_id(id, 2), period_of(ends) - 1)).await,
        "Marketplace_SlotNotAcceptingProofs"
    );
    env.jump(ends + EXPIRY).await;
    assert_eq!(env.request_state(id).await, FAILED, "final");
    assert!(!env.can_reserve(OTHER, id, 1).await, "a Repair slot of a failed request");

    // The remaining host gets nothing back; the client gets everything it paid.
    env.ok(env.actor(HOST_C).market.freeSlot_1(slot_id(id, 2))).await;
    assert!(env.my_slots(HOST_C).await.is_empty());
    assert_eq!(env.slot_state(id, 2).await, SLOT_FAILED);
    let client = &env.actor(CLIENT).market;
    env.ok(client.withdrawFunds_1(id, env.address(RECIPIENT))).await;
    assert_eq!(env.revert(CLIENT, client.withdrawFunds_0(id)).await, "Marketplace_NothingToWithdraw");
    env.assert_moved(
        &before,
        &[
            (CLIENT, -i(MAX_PRICE)),
            (RECIPIENT, i(MAX_PRICE)),
            (HOST_A, -i(COLLATERAL)),
            (HOST_B, -i(COLLATERAL)),
            (HOST_C, -i(COLLATERAL)),
            (VALIDATOR, i(2 * VALIDATOR_REWARD)),
            (MARKET, i(3 * COLLATERAL - 2 * VALIDATOR_REWARD)),
        ],
    )
    .await;
}

/// The end-to-end scenario of `contracts/test/scenario.mjs` (its own anvil, reservations and their expiry,
/// fills, slashes, payouts, repair, constructor checks) passes.
#[test]
fn contracts_scenario_script_passes() {
    anvil_binary().expect("the pinned toolchain");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../contracts/test/scenario.mjs");
    let out = std::process::Command::new("node").arg(&script).output().expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("all passed") && !stdout.contains("FAIL"), "{stdout}");
}
