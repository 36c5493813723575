//! ValidatorActor (issue 14; marketplace-facts §5.5, §9): watches filled slots and marks the proofs their hosts
//! missed, so the contract slashes them and, after `maxNumberOfSlashes`, frees their slots for repair.
//!
//! - **Owns** the [`Watchlist`] (its group's slots, at most `max_slots`) and its counters; nothing durable: at
//!   start it rebuilds the list from the chain (the `SlotFilled` and `SlotFreed` logs of the last
//!   `requestDurationLimit` seconds, then each slot's state), so a restart misses no slot.
//! - **Handles** [`ValidatorEvents`] (the marketplace logs, routed by the NodeActor: `SlotFilled` adds a slot,
//!   `SlotFreed` drops it), [`GetValidatorInfo`] (metrics, `/debug/info`), [`StopValidator`].
//! - **Each period**, at the first reading of the chain's time (every `poll_interval`) past its end, one pass: every watched slot that is no longer
//!   Filled is dropped; for the others `canMarkProofAsMissing(slot, missed period)` is asked and, when it
//!   passes, `markProofAsMissing` is sent (the market's retry policy, gas = estimate + 50 %). A pass that
//!   starts after the contract's marking window (`timeout` seconds) has closed marks nothing and says so.
//! - **Emits** nothing: its effects are transactions. Runs on the system arbiter; every call is a future.

use std::time::Duration;

use actix::prelude::*;
use codex_protocol::validator::{Groups, Offer, WatchedSlot, Watchlist, due_period, within_marking_window};
use futures::StreamExt;

use crate::chain::market::{
    ChainEvent, MAX_LOG_RANGE, Market, MarketError, MarketEvent, MarketplaceConfig, OnChainMarket, SlotId, SlotState,
    slot_id,
};
use crate::sales::ChainClock;

/// Validator settings (`codex persistence --validator …`).
#[derive(Debug, Clone)]
pub struct ValidatorConfig {
    /// Most slots watched; 0 = no bound.
    pub max_slots: usize,
    /// Watch only this group's slots.
    pub groups: Option<Groups>,
    /// How often the chain's time is read (a pass starts at the first reading past a period's end).
    pub poll_interval: Duration,
}

impl Default for ValidatorConfig {
    fn default() -> Self {
        Self { max_slots: 1000, groups: None, poll_interval: Duration::from_secs(1) }
    }
}

/// Slot checks of one pass that run at once.
const CONCURRENT_CHECKS: usize = 8;

/// What one period's pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassSummary {
    /// The period whose proofs were checked.
    pub period: u64,
    /// Slots watched when the pass began.
    pub watched: usize,
    /// Proofs marked missing.
    pub marked: u64,
    /// Gas the marks used.
    pub gas_used: u64,
    /// Slots dropped (no longer Filled).
    pub dropped: usize,
    /// Checks or marks that failed (chain errors; the slot stays watched).
    pub errors: usize,
    /// The pass began after the marking window had closed.
    pub too_late: bool,
}

/// The validator's figures.
#[derive(Debug, Clone, Default)]
pub struct ValidatorInfo {
    pub watched: usize,
    pub marked_total: u64,
    pub gas_total: u64,
    pub passes: u64,
    /// Whether the slots of the past logs are loaded (until then only new ones are watched).
    pub loaded: bool,
    pub last: Option<PassSummary>,
    pub groups: Option<Groups>,
    pub max_slots: usize,
    /// The watched slots, in id order.
    pub slots: Vec<SlotId>,
}

/// The marketplace logs of a range of blocks (all of them: the validator keeps what concerns it).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct ValidatorEvents {
    pub events: Vec<ChainEvent>,
}

/// Query: the validator's figures.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "ValidatorInfo")]
pub struct GetValidatorInfo;

/// Command: stop (at node stop).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct StopValidator;

/// The validator (see the module documentation).
pub struct ValidatorActor {
    config: ValidatorConfig,
    market: OnChainMarket,
    period: u64,
    timeout: u64,
    duration_limit: u64,
    clock: ChainClock,
    watch: Watchlist,
    loaded: bool,
    passing: bool,
    /// A chain-time read is under way.
    reading: bool,
    marked_total: u64,
    gas_total: u64,
    passes: u64,
    last: Option<PassSummary>,
    /// The last period a pass ran for (never twice for one period).
    last_period: Option<u64>,
}

/// How a slot's check ended.
enum Check {
    /// No longer Filled: drop it.
    Gone,
    /// Marked; the gas used.
    Marked(u64),
    /// Nothing to mark (the contract's reason: `Proofs_ProofNotMissing`, `Proofs_ProofNotRequired`, …).
    Fine,
    Failed(MarketError),
}

impl ValidatorActor {
    /// Reads the chain's time and starts the validator on the current arbiter; it loads the past slots itself.
    pub async fn start(
        config: ValidatorConfig,
        market: OnChainMarket,
        market_config: &MarketplaceConfig,
    ) -> Result<Addr<Self>, MarketError> {
        let clock = ChainClock::new(market.chain_time().await?);
        let watch = Watchlist::new(config.max_slots, config.groups);
        tracing::info!(
            period = market_config.proofs.period,
            timeout = market_config.proofs.timeout,
            max_slots = config.max_slots,
            groups = config.groups.map(|g| g.count()),
            group_index = config.groups.map(|g| g.index()),
            "validator starting"
        );
        Ok(Self {
            config,
            market,
            period: market_config.proofs.period.max(1),
            timeout: market_config.proofs.timeout,
            duration_limit: market_config.requestDurationLimit,
            clock,
            watch,
            loaded: false,
            passing: false,
            reading: false,
            marked_total: 0,
            gas_total: 0,
            passes: 0,
            last: None,
            last_period: None,
        }
        .start())
    }

    fn offer(&mut self, slot: SlotId, watched: WatchedSlot) {
        match self.watch.offer(slot, watched) {
            Offer::Added => {
                tracing::debug!(%slot, request_id = %watched.request, slot_index = watched.index, "validator watches slot")
            }
            Offer::Full => tracing::warn!(
                %slot, max_slots = self.config.max_slots,
                "validator is watching its maximum of slots: slot not watched (raise --validator-max-slots)"
            ),
            Offer::AlreadyWatched | Offer::OtherGroup => {}
        }
    }

    /// Loads the slots filled within the request duration limit that are still Filled; retried until it works.
    fn load(&mut self, ctx: &mut Context<Self>) {
        let market = self.market.clone();
        let since = self.clock.now().saturating_sub(self.duration_limit);
        let started = std::time::Instant::now();
        ctx.spawn(past_filled_slots(market, since).into_actor(self).map(move |result, act, ctx| match result {
            Ok(slots) => {
                let found = slots.len();
                for (slot, watched) in slots {
                    act.offer(slot, watched);
                }
                act.loaded = true;
                tracing::info!(
                    found,
                    watched = act.watch.len(),
                    ms = started.elapsed().as_millis() as u64,
                    "validator loaded the filled slots from past logs"
                );
            }
            Err(err) => {
                tracing::warn!(%err, "validator cannot read past logs yet; retrying in 10 s");
                ctx.run_later(Duration::from_secs(10), |act, ctx| act.load(ctx));
            }
        }));
    }

    /// Reads the chain's time; once a period has ended that no pass has checked yet, runs one for it. Driven
    /// by the chain's clock, not the local one: a chain whose time jumps (or stalls) is followed as it goes.
    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.passing || self.reading {
            return;
        }
        self.reading = true;
        let market = self.market.clone();
        ctx.spawn(async move { market.chain_time().await }.into_actor(self).map(|result, act, ctx| {
            act.reading = false;
            let now = match result {
                Ok(now) => now,
                Err(err) => return tracing::debug!(%err, "validator cannot read the chain's time"),
            };
            act.clock.set(now);
            if let Some(target) = due_period(now, act.period, act.last_period) {
                act.pass(ctx, target);
            }
        }));
    }

    /// One pass over the watched slots for the proofs of period `target` (see the module documentation).
    fn pass(&mut self, ctx: &mut Context<Self>, target: u64) {
        self.passing = true;
        let slots: Vec<(SlotId, WatchedSlot)> = self.watch.slots().map(|(s, w)| (*s, *w)).collect();
        let (market, period, timeout, now) = (self.market.clone(), self.period, self.timeout, self.clock.now());
        let work = async move {
            let mut summary = PassSummary { period: target, watched: slots.len(), ..PassSummary::default() };
            if !within_marking_window(target, now, period, timeout) {
                summary.too_late = true;
                return Ok::<_, MarketError>((summary, Vec::new()));
            }
            let checks = futures::stream::iter(slots)
                .map(|(slot, watched)| {
                    let market = market.clone();
                    async move { (slot, watched, check_slot(&market, slot, target).await) }
                })
                .buffer_unordered(CONCURRENT_CHECKS)
                .collect::<Vec<_>>()
                .await;
            Ok((summary, checks))
        };
        ctx.spawn(work.into_actor(self).map(move |result, act, _ctx| {
            act.passing = false;
            match result {
                Ok((mut summary, checks)) => {
                    for (slot, watched, check) in checks {
                        match check {
                            Check::Gone => {
                                act.watch.remove(&slot);
                                summary.dropped += 1;
                            }
                            Check::Marked(gas) => {
                                summary.marked += 1;
                                summary.gas_used += gas;
                                tracing::info!(
                                    %slot, request_id = %watched.request, slot_index = watched.index,
                                    period = target, gas, "proof marked missing"
                                );
                            }
                            Check::Fine => {}
                            Check::Failed(err) => {
                                summary.errors += 1;
                                tracing::warn!(%slot, period = target, %err, "validator check failed");
                            }
                        }
                    }
                    if summary.too_late {
                        tracing::warn!(period = target, "validator woke after the marking window closed");
                    }
                    tracing::info!(
                        period = summary.period,
                        watched = summary.watched,
                        marked = summary.marked,
                        gas_used = summary.gas_used,
                        dropped = summary.dropped,
                        errors = summary.errors,
                        "validator period checked"
                    );
                    act.marked_total += summary.marked;
                    act.gas_total += summary.gas_used;
                    act.passes += 1;
                    act.last_period = Some(target);
                    act.last = Some(summary);
                }
                Err(err) => tracing::warn!(period = target, %err, "validator pass failed: the chain did not answer"),
            }
        }));
    }
}

/// Checks one slot for `missed` and marks it when the contract allows.
async fn check_slot(market: &OnChainMarket, slot: SlotId, missed: u64) -> Check {
    match market.slot_state(slot).await {
        Ok(SlotState::Filled) => {}
        Ok(_) => return Check::Gone,
        Err(err) => return Check::Failed(err),
    }
    let mut verdict = market.can_mark_proof_as_missing(slot, missed).await;
    // A block whose timestamp is still inside the period may be the latest one for a second.
    if matches!(&verdict, Ok(Err(reason)) if reason == "Proofs_PeriodNotEnded") {
        tokio::time::sleep(Duration::from_secs(1)).await;
        verdict = market.can_mark_proof_as_missing(slot, missed).await;
    }
    match verdict {
        Ok(Ok(())) => match market.mark_proof_as_missing(slot, missed).await {
            Ok(gas) => Check::Marked(gas),
            // Marked by another validator in the meantime, or the window closed under us.
            Err(err) if err.revert_name().is_some() => {
                tracing::debug!(%slot, %err, "mark refused");
                Check::Fine
            }
            Err(err) => Check::Failed(err),
        },
        Ok(Err(reason)) => {
            tracing::trace!(%slot, missed, %reason, "nothing to mark");
            Check::Fine
        }
        Err(err) => Check::Failed(err),
    }
}

/// The first block whose timestamp is at least `since` (binary search; block 0 when every block is later).
async fn first_block_since(market: &OnChainMarket, since: u64, head: u64) -> Result<u64, MarketError> {
    let (mut lo, mut hi) = (0u64, head);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let time = market.block_info(mid).await?.map(|(t, _)| t).unwrap_or(0);
        if time >= since {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(lo)
}

/// The slots filled since chain time `since` and not freed since, that are Filled now, in order of filling.
async fn past_filled_slots(market: OnChainMarket, since: u64) -> Result<Vec<(SlotId, WatchedSlot)>, MarketError> {
    let head = market.block_number().await?;
    let mut from = first_block_since(&market, since, head).await?;
    let mut filled: Vec<(SlotId, WatchedSlot)> = Vec::new();
    while from <= head {
        let to = head.min(from.saturating_add(MAX_LOG_RANGE - 1));
        for event in market.events(from, to).await? {
            match event.event {
                MarketEvent::SlotFilled { id, index } => {
                    let slot = slot_id(id, index);
                    filled.retain(|(s, _)| *s != slot);
                    filled.push((slot, WatchedSlot { request: id, index }));
                }
                MarketEvent::SlotFreed { id, index } => {
                    let slot = slot_id(id, index);
                    filled.retain(|(s, _)| *s != slot);
                }
                _ => {}
            }
        }
        from = to + 1;
    }
    let mut still = Vec::with_capacity(filled.len());
    for (slot, watched) in filled {
        if market.slot_state(slot).await? == SlotState::Filled {
            still.push((slot, watched));
        }
    }
    Ok(still)
}

impl Actor for ValidatorActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.load(ctx);
        ctx.run_interval(self.config.poll_interval, |act, ctx| act.tick(ctx));
    }
}

impl Handler<ValidatorEvents> for ValidatorActor {
    type Result = ();
    fn handle(&mut self, msg: ValidatorEvents, _: &mut Self::Context) {
        for event in msg.events {
            match event.event {
                MarketEvent::SlotFilled { id, index } => {
                    self.offer(slot_id(id, index), WatchedSlot { request: id, index })
                }
                MarketEvent::SlotFreed { id, index } if self.watch.remove(&slot_id(id, index)) => {
                    tracing::info!(request_id = %id, slot_index = index, "validator: slot freed, no longer watched");
                }
                _ => {}
            }
        }
    }
}

impl Handler<GetValidatorInfo> for ValidatorActor {
    type Result = MessageResult<GetValidatorInfo>;
    fn handle(&mut self, _: GetValidatorInfo, _: &mut Self::Context) -> Self::Result {
        MessageResult(ValidatorInfo {
            watched: self.watch.len(),
            marked_total: self.marked_total,
            gas_total: self.gas_total,
            passes: self.passes,
            loaded: self.loaded,
            last: self.last.clone(),
            groups: self.config.groups,
            max_slots: self.config.max_slots,
            slots: self.watch.slots().map(|(slot, _)| *slot).collect(),
        })
    }
}

impl Handler<StopValidator> for ValidatorActor {
    type Result = ();
    fn handle(&mut self, _: StopValidator, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
