//! The ValidatorActor (issue 14) on anvil with the real contracts and real proofs of a tiny circuit (the
//! marketplace harness: chain time moves only when the test moves it):
//!
//! - two validators in groups 0 and 1 of 2 split the filled slots of a request between them exactly, by the
//!   first 8 bytes of each SlotId; a host that never proves is marked once per period by the validator of its
//!   slot's group, slashed, and freed after `maxNumberOfSlashes`; when more slots are freed than `maxSlotLoss`
//!   the request fails, and the token accounting balances: hosts lose their collateral, the validators earn
//!   20 % of each slash, the client gets back all it paid, the rest stays in the contract;
//! - a validator loads the filled slots from past logs when it starts, and one restarted mid-request still
//!   marks the missed proofs of the periods after it came back; a host that proves is never marked.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly on purpose")]

#[path = "marketplace/harness.rs"]
#[allow(dead_code, reason = "the contract tests' harness: this file uses part of it")]
mod harness;

use std::time::Duration;

use actix::prelude::*;
use alloy::primitives::{B256, U256};
use codex_actors::chain::market::{OnChainMarket, RetryPolicy};
use codex_actors::validator::{GetValidatorInfo, StopValidator, ValidatorActor, ValidatorConfig, ValidatorInfo};
use codex_protocol::validator::{Groups, group_of};
use harness::*;

/// How long a validator may take to act on a period the test has ended.
const WAIT: Duration = Duration::from_secs(30);

fn config(groups: Option<Groups>) -> ValidatorConfig {
    ValidatorConfig { max_slots: 0, groups, poll_interval: Duration::from_millis(200) }
}

async fn start(env: &Env, account: usize, groups: Option<Groups>) -> Addr<ValidatorActor> {
    let market = OnChainMarket::new(
        env.chain.provider(account),
        env.deployment.marketplace,
        env.chain.signer(account),
        RetryPolicy::default(),
        Default::default(),
    );
    ValidatorActor::start(config(groups), market, &env.config).await.expect("validator starts")
}

async fn info(validator: &Addr<ValidatorActor>) -> ValidatorInfo {
    validator.send(GetValidatorInfo).await.expect("validator runs")
}

/// Waits until `done` holds for the validator's figures.
async fn wait_for(
    validator: &Addr<ValidatorActor>,
    what: &str,
    done: impl Fn(&ValidatorInfo) -> bool,
) -> ValidatorInfo {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = info(validator).await;
        if done(&now) {
            return now;
        }
        assert!(tokio::time::Instant::now() < deadline, "validator: {what} within {WAIT:?}; it has {now:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Mines blocks (at the current time) until the pointers of every slot in `slots`, for `period`, stay out of
/// downtime and away from a wrap for the next 16 blocks: the validator's checks and marks then see a proof as
/// required.
async fn mine_until_required(env: &Env, slots: &[B256], period: u64) {
    for _ in 0..=256 {
        let next = env.block_number().await + 1;
        let fine = slots
            .iter()
            .all(|slot| (next..next + 16).all(|number| (DOWNTIME..250).contains(&pointer(*slot, number, period))));
        if fine {
            return;
        }
        env.mine(1).await;
    }
    panic!("no block range with every pointer out of downtime");
}

/// A request of 3 slots filled by hosts A, B and C; its id, slot ids and fill period.
async fn filled_request(env: &Env, nonce: u8) -> (B256, Vec<B256>, u64) {
    let (id, _) = env.request_storage(&env.request(1, nonce)).await;
    let created = env.now().await;
    env.jump(created + EXPIRY / 2).await;
    for (slot, host) in [HOST_A, HOST_B, HOST_C].into_iter().enumerate() {
        env.reserve(host, id, slot as u64).await;
        env.fill(host, id, slot as u64).await;
    }
    let slots = (0..SLOTS).map(|i| slot_id(id, i)).collect();
    (id, slots, period_of(env.now().await))
}

/// Ends period `period` (chain time one second past its end) with every slot's proof required.
async fn end_period(env: &Env, slots: &[B256], period: u64) {
    mine_until_required(env, slots, period).await;
    env.jump(period_end(period) + 1).await;
}

#[actix::test]
async fn validators_in_two_groups_split_the_slots_and_mark_until_the_request_fails() {
    let env = Env::start().await;
    let before = env.balances().await;
    let (id, slots, filled) = filled_request(&env, 21).await;
    let groups: Vec<Groups> = (0..2).map(|i| Groups::new(2, i).unwrap()).collect();
    // Started after the fills: they find the slots in the past logs.
    let validators = [start(&env, VALIDATOR, Some(groups[0])).await, start(&env, OTHER, Some(groups[1])).await];
    for (validator, group) in validators.iter().zip(&groups) {
        let info = wait_for(validator, "loaded", |i| i.loaded).await;
        let mine: Vec<B256> = slots.iter().copied().filter(|s| group_of(s, 2) == group.index()).collect();
        let mut watched = info.slots.clone();
        watched.sort();
        let mut expected = mine.clone();
        expected.sort();
        assert_eq!(watched, expected, "group {} watches exactly its slots", group.index());
    }

    // The fill period needs no proof; the next one does, and nobody proves: every slot is marked once.
    end_period(&env, &slots, filled).await;
    for validator in &validators {
        wait_for(validator, "checked the fill period", |i| i.last.as_ref().is_some_and(|l| l.period == filled)).await;
    }
    assert_eq!(info(&validators[0]).await.marked_total + info(&validators[1]).await.marked_total, 0);
    let market = &env.actor(0).market;
    end_period(&env, &slots, filled + 1).await;
    for validator in &validators {
        let watched = info(validator).await.watched as u64;
        wait_for(validator, "marked its slots", |i| i.marked_total == watched).await;
    }
    for slot in &slots {
        assert_eq!(market.missingProofs(*slot).call().await.unwrap(), 1);
        assert_eq!(market.currentCollateral(*slot).call().await.unwrap(), U256::from(COLLATERAL - SLASH));
    }

    // The second missed proof frees each slot; the second freed slot fails the request, and the third slot
    // then takes no more marks (its request failed).
    end_period(&env, &slots, filled + 2).await;
    let mut marks = 0;
    for validator in &validators {
        let info =
            wait_for(validator, "checked the period", |i| i.last.as_ref().is_some_and(|l| l.period == filled + 2))
                .await;
        marks += info.marked_total;
    }
    assert_eq!(marks, 5, "3 slashes, then 2 that free a slot each and fail the request");
    assert_eq!(env.request_state(id).await, FAILED);
    // A later pass drops the slots that are no longer Filled.
    end_period(&env, &[], filled + 3).await;
    for validator in &validators {
        wait_for(validator, "dropped every slot", |i| i.watched == 0).await;
        let info = info(validator).await;
        println!(
            "validator: {} marks, {} gas ({} per mark)",
            info.marked_total,
            info.gas_total,
            info.gas_total / info.marked_total.max(1)
        );
    }

    // Accounting: each validator got 20 % of the slashes it made; the client gets back all it paid.
    let rewards: Vec<i128> = {
        let mut out = Vec::new();
        for validator in &validators {
            out.push(info(validator).await.marked_total as i128 * VALIDATOR_REWARD as i128);
        }
        out
    };
    for validator in &validators {
        validator.send(StopValidator).await.unwrap();
    }
    for host in [HOST_A, HOST_B, HOST_C] {
        // Hosts whose slot failed (not freed) free it; they get nothing back.
        for slot in env.my_slots(host).await {
            env.ok(env.actor(host).market.freeSlot_1(slot)).await;
        }
    }
    env.ok(env.actor(CLIENT).market.withdrawFunds_0(id)).await;
    let collateral = COLLATERAL as i128;
    env.assert_moved(
        &before,
        &[
            (HOST_A, -collateral),
            (HOST_B, -collateral),
            (HOST_C, -collateral),
            (VALIDATOR, rewards[0]),
            (OTHER, rewards[1]),
            (MARKET, 3 * collateral - rewards[0] - rewards[1]),
        ],
    )
    .await;
}

#[actix::test]
async fn a_restarted_validator_marks_the_periods_after_it_came_back() {
    let env = Env::start().await;
    let (id, slots, filled) = filled_request(&env, 22).await;
    let validator = start(&env, VALIDATOR, None).await;
    wait_for(&validator, "loaded 3 slots", |i| i.loaded && i.watched == 3).await;

    // Period after the fill: hosts A and C prove, B does not; only B's slot is marked.
    let period = filled + 1;
    env.jump(period_end(filled) + 1).await;
    env.submit_proof(HOST_A, id, 0).await;
    env.submit_proof(HOST_C, id, 2).await;
    end_period(&env, &slots, period).await;
    wait_for(&validator, "marked B", |i| i.last.as_ref().is_some_and(|l| l.period == period)).await;
    assert_eq!(info(&validator).await.marked_total, 1);
    let market = &env.actor(0).market;
    assert_eq!(market.missingProofs(slots[1]).call().await.unwrap(), 1);
    assert_eq!(market.missingProofs(slots[0]).call().await.unwrap(), 0);

    // The validator stops; a new one starts (nothing kept between them) and finds the slots again.
    validator.send(StopValidator).await.unwrap();
    let validator = start(&env, VALIDATOR, None).await;
    wait_for(&validator, "reloaded 3 slots", |i| i.loaded && i.watched == 3).await;
    end_period(&env, &slots, period + 1).await;
    wait_for(&validator, "marked every slot", |i| i.marked_total == 3).await;
    assert_eq!(env.slot_state(id, 1).await, REPAIR, "B's second miss freed it");
    assert_eq!(market.missingProofs(slots[0]).call().await.unwrap(), 1);
}
