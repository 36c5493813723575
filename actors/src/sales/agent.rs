//! SalesAgent: one actor per slot this host sells (seed 001 §5.3). It holds the slot's [`Sale`] (the pure
//! machine of `codex_protocol::sales::machine`) and executes its effects: chain calls through the market
//! handle (each retried by the market's policy), the slot download through the NodeActor (onStore), proofs
//! through the ProverActor (onProve, on its own thread: a proof never blocks another sale), and records through
//! the SalesActor. Each effect runs as a future on the agent's arbiter; its outcome comes back as an
//! [`Event`] and is applied only if the sale has not moved to another state meanwhile (a stale outcome of an
//! interrupted state is dropped). Every state change is logged with the request, slot, reservation and
//! availability ids, and persisted (`sales-1`) before the new state's effects start.

use std::time::Duration;

use actix::prelude::*;
use alloy::primitives::{B256, U256};
use codex_protocol::cid::cid_from_bytes;
use codex_protocol::sales::machine::{ChainSlotState, Effect, Event, Sale, State};
use codex_protocol::sales::timing::{AfterProof, ChallengeCheck, ProofTiming};
use codex_protocol::sales::{Reservation, SlotId, SlotQueueItem};
use serde::{Deserialize, Serialize};

use super::actor::{AgentEnded, AgentFilled, ProofCounted, ReleaseReservedBytes, Reserve, SalesActor, SaveSale};
use super::{ChainClock, SlotAgentInfo};
use crate::chain::market::{Groth16Proof, Market, MarketError, OnChainMarket, Request, RequestId, SlotState, slot_id};
use crate::node::{FetchNetworkManifest, HostSlot, NodeActor, RepairSlot};
use crate::prover::{Prover, ProverError, SlotFiles};
use crate::purchasing::check_request_content;
use crate::slot_host::HostedSlot;
use crate::store::{DropSlot, SetBlockExpiry, StoreActor};

/// A periodic proof's period ended before the proof could be sent: the next period's status is read at once.
const PERIOD_ENDED: &str = "the period ended before its proof could be sent";

/// What every agent needs.
#[derive(Clone)]
pub struct AgentDeps {
    pub market: OnChainMarket,
    pub sales: Addr<SalesActor>,
    pub node: Addr<NodeActor>,
    pub store: Addr<StoreActor>,
    pub prover: Option<Prover>,
    pub clock: ChainClock,
    /// Seconds per period.
    pub period: u64,
    /// Blocks of the pointer's downtime at the end of the 256-step cycle.
    pub downtime: u8,
}

impl AgentDeps {
    /// The marketplace's proof timing.
    fn timing(&self) -> ProofTiming {
        ProofTiming::new(self.period, self.downtime)
    }
}

/// The `sales-1` record of a sale.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SaleRecord {
    pub item: SlotQueueItem,
    /// Chain time from which the slot's reservation window admits every host.
    pub window_open: u64,
    pub sale: Sale,
    pub reservation: Option<B256>,
}

/// The sale of one slot.
pub struct SalesAgent {
    deps: AgentDeps,
    slot: SlotId,
    item: SlotQueueItem,
    window_open: u64,
    sale: Sale,
    /// Bumped at every state change: outcomes of effects started in an earlier state are dropped.
    epoch: u64,
    /// Effects to run once the agent is started.
    pending: Vec<Effect>,
    request: Option<Request>,
    request_end: u64,
    reservation: Option<Reservation>,
    hosted: Option<HostedSlot>,
    proof: Option<Groth16Proof>,
    /// Resumed after a restart in SlotReserving: the slot may be reserved on chain already (the transaction of
    /// the run that died may even be mined only now), so the reservation is tried but not required.
    resumed_reserving: bool,
}

impl SalesAgent {
    pub fn new(
        deps: AgentDeps,
        item: SlotQueueItem,
        window_open: u64,
        (sale, effects): (Sale, Vec<Effect>),
        reservation: Option<Reservation>,
    ) -> Self {
        let slot = slot_id(item.request_id, item.slot_index);
        let resumed_reserving = sale.resume_to == Some(State::SlotReserving);
        Self {
            deps,
            slot,
            item,
            window_open,
            sale,
            epoch: 0,
            pending: effects,
            request: None,
            request_end: 0,
            reservation,
            hosted: None,
            proof: None,
            resumed_reserving,
        }
    }

    fn request_id(&self) -> RequestId {
        self.item.request_id
    }

    fn index(&self) -> u64 {
        self.item.slot_index
    }

    fn info(&self) -> SlotAgentInfo {
        SlotAgentInfo {
            request_id: self.request_id(),
            slot_index: self.index(),
            request: self.request.clone(),
            reservation: self.reservation.clone(),
            state: self.sale.state.name(),
        }
    }

    fn record(&self) -> SaleRecord {
        SaleRecord {
            item: self.item.clone(),
            window_open: self.window_open,
            sale: self.sale.clone(),
            reservation: self.reservation.as_ref().map(|r| r.id),
        }
    }

    /// Applies `event` and runs the effects that follow.
    fn apply(&mut self, event: Event, ctx: &mut Context<Self>) {
        match &event {
            Event::ProofSubmitted => self.deps.sales.do_send(ProofCounted { submitted: true }),
            Event::ProofFailed(error) => {
                tracing::warn!(request_id = %self.request_id(), slot_index = self.index(), %error, "proof failed");
                self.deps.sales.do_send(ProofCounted { submitted: false });
            }
            _ => {}
        }
        let before = self.sale.state.clone();
        let described = format!("{event:?}");
        let effects = self.sale.step(event);
        if self.sale.state == before {
            self.run(effects, ctx);
            return;
        }
        self.epoch += 1;
        match self.transitioned(&before, &described) {
            // The new state's effects start once its record is durable; the agent takes nothing else meanwhile.
            Some(save) => {
                let sales = self.deps.sales.clone();
                ctx.wait(
                    async move {
                        match sales.send(save).await {
                            Ok(Ok(())) => {}
                            Ok(Err(err)) => tracing::error!(%err, "cannot save a sale record"),
                            Err(err) => tracing::error!(%err, "cannot save a sale record"),
                        }
                    }
                    .into_actor(self)
                    .map(move |(), act, ctx| act.run(effects, ctx)),
                );
            }
            None => self.run(effects, ctx),
        }
    }

    /// Logs a state change and answers the record to persist before its effects; tells the SalesActor when the
    /// slot was filled (its worker is free).
    fn transitioned(&mut self, before: &State, event: &str) -> Option<SaveSale> {
        let state = &self.sale.state;
        tracing::info!(
            request_id = %self.request_id(),
            slot_index = self.index(),
            slot_id = %self.slot,
            reservation_id = ?self.reservation.as_ref().map(|r| r.id),
            availability_id = ?self.reservation.as_ref().map(|r| r.availability_id),
            from = before.name(),
            to = state.name(),
            %event,
            "sale state"
        );
        if let State::Errored { error } = state {
            tracing::warn!(request_id = %self.request_id(), slot_index = self.index(), %error, "sale errored");
        }
        if matches!(state, State::Filled) {
            self.deps.sales.do_send(AgentFilled { slot: self.slot });
        }
        if self.sale.done {
            return None;
        }
        match bincode::serde::encode_to_vec(self.record(), bincode::config::standard()) {
            Ok(record) => Some(SaveSale { slot: self.slot, record }),
            Err(err) => {
                tracing::error!(%err, "cannot encode a sale record");
                None
            }
        }
    }

    fn run(&mut self, effects: Vec<Effect>, ctx: &mut Context<Self>) {
        for effect in effects {
            self.execute(effect, ctx);
        }
    }

    /// Runs `work` and applies the event it ends with, unless the state changed meanwhile.
    fn spawn_event<F>(&mut self, ctx: &mut Context<Self>, work: F)
    where
        F: ActorFuture<Self, Output = Event> + 'static,
    {
        let epoch = self.epoch;
        ctx.spawn(work.map(move |event, act, ctx| {
            if act.epoch == epoch {
                act.apply(event, ctx);
            } else {
                tracing::debug!(?event, "stale sale outcome dropped");
            }
        }));
    }

    fn execute(&mut self, effect: Effect, ctx: &mut Context<Self>) {
        let deps = self.deps.clone();
        let (id, index, slot) = (self.request_id(), self.index(), self.slot);
        match effect {
            Effect::LoadRequest => {
                let work = async move {
                    let request = deps.market.get_request(id).await?;
                    let expires_at = deps.market.request_expires_at(id).await?;
                    let end = deps.market.request_end(id).await?;
                    Ok::<_, MarketError>((request, expires_at, end))
                };
                self.spawn_event(
                    ctx,
                    work.into_actor(self).map(|result, act, _| match result {
                        Ok((Some(request), _, _))
                            if request.client == act.deps.market.signer()
                                && matches!(act.sale.state, State::Preparing) =>
                        {
                            // Selling to itself would spend a reservation and collateral on its own request.
                            Event::Unsuitable("the request is this node's own".into())
                        }
                        Ok((Some(request), expires_at, end)) => {
                            act.request = Some(request);
                            act.request_end = end;
                            Event::RequestLoaded { expires_at }
                        }
                        Ok((None, ..)) => Event::Error("the request is unknown to the marketplace".into()),
                        Err(err) => failed("reading the request", err),
                    }),
                );
            }
            Effect::ArmCancelTimer { expires_at } => self.arm_cancel_timer(expires_at, ctx),
            Effect::ReadSlotState => {
                let work = async move { deps.market.slot_state(slot).await };
                self.spawn_event(
                    ctx,
                    work.into_actor(self).map(|result, _, _| match result {
                        Ok(state) => Event::SlotStateRead(chain_state(state)),
                        Err(err) => failed("reading the slot state", err),
                    }),
                );
            }
            Effect::FindAndReserve => {
                let reserve = Reserve { slot, item: self.item.clone(), valid_until: self.request_end };
                let (request, cid) = (self.request.clone(), self.manifest_cid());
                let work = async move {
                    // The request must say what its dataset is (slots, slot size, root) before a byte or a token
                    // is reserved for it.
                    let (Some(request), Some(cid)) = (request, cid) else {
                        return Err(Event::Unsuitable("the request's content is not a dataset CID".into()));
                    };
                    let manifest = deps
                        .node
                        .send(FetchNetworkManifest { cid })
                        .await
                        .map_err(|e| Event::Error(format!("fetching the dataset's manifest: {e}")))?
                        .map_err(|e| Event::Error(format!("fetching the dataset's manifest: {e}")))?;
                    check_request_content(&cid, &manifest, &request)
                        .map_err(|reason| Event::Unsuitable(format!("the request misstates its dataset: {reason}")))?;
                    deps.sales.send(reserve).await.map_err(|err| Event::Error(format!("reserving space: {err}")))
                };
                self.spawn_event(
                    ctx,
                    work.into_actor(self).map(|result, act, _| match result {
                        Ok(Ok(Some(reservation))) => {
                            act.reservation = Some(reservation);
                            Event::ReservationMade
                        }
                        Ok(Ok(None)) => Event::NoAvailability,
                        Ok(Err(err)) => Event::Error(format!("reserving space: {err}")),
                        Err(event) => {
                            if let Event::Unsuitable(reason) = &event {
                                tracing::warn!(request_id = %act.request_id(), %reason, "request ignored");
                            }
                            event
                        }
                    }),
                );
            }
            Effect::CanReserveSlot if self.resumed_reserving => {
                // This host may hold a reservation already, which `canReserveSlot` would count against it.
                let event = Event::CanReserve { allowed: true, window_later: false };
                self.spawn_event(ctx, fut::ready(event));
            }
            Effect::CanReserveSlot => {
                let window_open = self.window_open;
                let work = async move {
                    let allowed = deps.market.can_reserve_slot(id, index).await?;
                    Ok::<_, MarketError>((allowed, deps.clock.now() < window_open))
                };
                self.spawn_event(
                    ctx,
                    work.into_actor(self).map(|result, _, _| match result {
                        Ok((allowed, window_later)) => Event::CanReserve { allowed, window_later },
                        Err(err) => failed("canReserveSlot", err),
                    }),
                );
            }
            Effect::ReserveSlot => {
                let resumed = std::mem::take(&mut self.resumed_reserving);
                let work = async move { deps.market.reserve_slot(id, index).await };
                self.spawn_event(
                    ctx,
                    work.into_actor(self).map(move |result, _, _| match result {
                        Ok(()) => Event::Reserved,
                        Err(err) if resumed => {
                            // Most likely reserved by the run that died; the fill will tell (a missing
                            // reservation makes it revert).
                            tracing::info!(request_id = %id, slot_index = index, %err, "reserving again failed; going on");
                            Event::Reserved
                        }
                        Err(err @ MarketError::Reverted(_)) => {
                            tracing::info!(request_id = %id, slot_index = index, %err, "reservation refused");
                            Event::ReserveRefused
                        }
                        Err(err) => failed("reserveSlot", err),
                    }),
                );
            }
            Effect::Store { is_repairing } => self.store(is_repairing, ctx),
            Effect::WaitStableChallenge => {
                let work = async move {
                    // A pointer within the downtime of a wrap is waited out (the fill must land before the
                    // challenge changes): the wrap comes within `downtime` blocks, and the fresh challenge then
                    // holds for 256 (`codex_protocol::sales::timing`).
                    let timing = deps.timing();
                    let mut now_ok = timing.half_left(deps.clock.now());
                    loop {
                        if !std::mem::take(&mut now_ok) {
                            sleep_until_next_period(&deps.clock, &timing).await;
                        }
                        let end = timing.period_end(deps.clock.now());
                        let mut pointer = deps.market.get_pointer(slot).await?;
                        while timing.in_downtime(pointer) && ProofTiming::may_wait_for_pointer(deps.clock.now(), end) {
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            pointer = deps.market.get_pointer(slot).await?;
                        }
                        if timing.fill_proof_now(deps.clock.now(), pointer) {
                            break;
                        }
                        tracing::info!(request_id = %id, slot_index = index, pointer, "fill proof waits for the next period");
                    }
                    Ok::<_, MarketError>(())
                };
                self.spawn_event(
                    ctx,
                    work.into_actor(self).map(|result, _, _| match result {
                        Ok(()) => Event::ChallengeReady,
                        Err(err) => failed("waiting for a stable challenge", err),
                    }),
                );
            }
            Effect::Prove { invalid } => self.prove(invalid, ctx),
            Effect::FillSlot { .. } => {
                let (proof, collateral) = (self.proof.clone(), self.item.collateral);
                let me = deps.market.signer();
                let work = async move {
                    let proof = proof.ok_or_else(|| MarketError::Other("no proof to fill with".into()))?;
                    let Err(err) = deps.market.fill_slot(id, index, proof, collateral).await else { return Ok(None) };
                    // Whatever went wrong (a lost answer, a late mining, a revert because it was mined already),
                    // the chain says whether this host holds the slot now.
                    match deps.market.get_host(id, index).await {
                        Ok(Some(host)) if host == me => {
                            tracing::info!(request_id = %id, slot_index = index, %err, "the fill's answer was lost, but the slot is this host's");
                            Ok(None)
                        }
                        Ok(_) => Ok(Some(err)),
                        Err(read) => Err(MarketError::Unconfirmed {
                            tx: Default::default(),
                            message: format!("fillSlot: {err}; getHost: {read}"),
                        }),
                    }
                };
                self.spawn_event(
                    ctx,
                    work.into_actor(self).map(move |result, _, _| match result {
                        Ok(None) => Event::FillMined,
                        Ok(Some(err)) if err.revert_name().as_deref() == Some("Marketplace_SlotNotFree") => {
                            Event::SlotNotFree
                        }
                        // The proof answered the period before the one the transaction landed in (an estimate
                        // passes, the mined transaction fails), or was refused outright for that reason.
                        Ok(Some(err))
                            if matches!(&err, MarketError::TransactionFailed { .. })
                                || err.revert_name().as_deref() == Some("Proofs_InvalidProof") =>
                        {
                            tracing::info!(request_id = %id, slot_index = index, %err, "fill's proof went stale");
                            Event::ProofStale
                        }
                        Ok(Some(err)) | Err(err) => failed("fillSlot", err),
                    }),
                );
            }
            Effect::GetHost | Effect::CheckHost => {
                let me = deps.market.signer();
                let work = async move { deps.market.get_host(id, index).await };
                self.spawn_event(
                    ctx,
                    work.into_actor(self).map(move |result, _, _| match result {
                        Ok(host) => Event::HostRead { is_me: host == Some(me) },
                        Err(err) => failed("getHost", err),
                    }),
                );
            }
            Effect::UpdateExpiry => {
                let (cid, end) = (self.manifest_cid(), self.request_end);
                tracing::info!(request_id = %id, slot_index = index, "slot sold (onSale)");
                let work = async move {
                    let cid = cid.ok_or_else(|| "the request's content is not a CID".to_owned())?;
                    match deps.store.send(SetBlockExpiry { cid, expiry: end }).await {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err(err)) => Err(err.to_string()),
                        Err(err) => Err(err.to_string()),
                    }
                };
                self.spawn_event(
                    ctx,
                    work.into_actor(self).map(|result, _, _| match result {
                        Ok(()) => Event::ExpiryUpdated,
                        Err(err) => Event::Error(format!("updating the slot's expiry: {err}")),
                    }),
                );
            }
            Effect::ReadProofStatus => {
                let work = async move {
                    let state = deps.market.slot_state(slot).await?;
                    let required = state == SlotState::Filled
                        && (deps.market.is_proof_required(slot).await?
                            || deps.market.will_proof_be_required(slot).await?);
                    Ok::<_, MarketError>((state, required))
                };
                self.spawn_event(
                    ctx,
                    work.into_actor(self).map(|result, _, _| match result {
                        Ok((state, required)) => Event::ProofStatus { slot: chain_state(state), required },
                        Err(err) => failed("reading the proof status", err),
                    }),
                );
            }
            Effect::SubmitProof => {
                let proof = self.proof.clone();
                let work = async move {
                    let proof = proof.ok_or_else(|| MarketError::Other("no proof to submit".into()))?;
                    deps.market.submit_proof(slot, proof).await
                };
                self.spawn_event(
                    ctx,
                    work.into_actor(self).map(|result, _, _| match result {
                        Ok(()) => Event::ProofSubmitted,
                        Err(err) => Event::ProofFailed(format!("submitProof: {err}")),
                    }),
                );
            }
            Effect::RetryLater => {
                let wait = Duration::from_secs(deps.timing().retry_wait());
                tracing::info!(request_id = %id, slot_index = index, state = self.sale.state.name(), ?wait, "retrying later");
                self.spawn_event(
                    ctx,
                    async move { tokio::time::sleep(wait).await }.into_actor(self).map(|(), _, _| Event::Retry),
                );
            }
            Effect::WaitNextPeriod => {
                let work = async move { sleep_until_next_period(&deps.clock, &deps.timing()).await };
                self.spawn_event(ctx, work.into_actor(self).map(|(), _, _| Event::PeriodStarted));
            }
            Effect::FreeSlot => {
                let me = deps.market.signer();
                let work = async move {
                    if deps.market.get_host(id, index).await? != Some(me) {
                        return Ok(None);
                    }
                    match deps.market.slot_state(slot).await? {
                        SlotState::Finished | SlotState::Cancelled => {
                            let collateral = deps.market.current_collateral(slot).await?;
                            deps.market.free_slot(slot).await?;
                            Ok(Some(collateral))
                        }
                        SlotState::Failed => {
                            deps.market.free_slot(slot).await?;
                            Ok(Some(U256::ZERO))
                        }
                        _ => Ok::<_, MarketError>(None),
                    }
                };
                self.spawn_event(
                    ctx,
                    work.into_actor(self).map(|result, _, _| match result {
                        Ok(returned) => Event::Freed { returned },
                        Err(err) => failed("freeSlot", err),
                    }),
                );
            }
            Effect::Clear => {
                let (cid, tree) = (self.manifest_cid(), self.hosted.as_ref().map(|h| h.tree));
                let work = async move {
                    if let Some(tree) = tree_of(&deps.store, tree, cid).await {
                        let reason = "the sale is over".to_owned();
                        deps.store
                            .send(DropSlot { tree, reason })
                            .await
                            .map_err(|e| e.to_string())?
                            .map_err(|e| e.to_string())?;
                    }
                    Ok::<_, String>(())
                };
                self.spawn_event(
                    ctx,
                    work.into_actor(self).map(|result, _, _| match result {
                        Ok(()) => Event::Cleared,
                        Err(err) => Event::Error(format!("clearing the slot's data: {err}")),
                    }),
                );
            }
            Effect::CleanUp { collateral, reprocess } => {
                // The slot's data goes too (also where the seed keeps it, as after an ignored fill: it would
                // hold quota until it expired), then the reservation ends and the agent stops.
                let (cid, tree) = (self.manifest_cid(), self.hosted.as_ref().map(|h| h.tree));
                let reservation = self.reservation.as_ref().map(|r| r.id);
                let work = async move {
                    if let Some(tree) = tree_of(&deps.store, tree, cid).await {
                        let reason = "the sale is over".to_owned();
                        let _ = deps.store.send(DropSlot { tree, reason }).await;
                    }
                    let _ = deps.sales.send(AgentEnded { slot, reservation, collateral, reprocess }).await;
                };
                ctx.wait(work.into_actor(self).map(|(), _, ctx| ctx.stop()));
            }
        }
    }

    fn manifest_cid(&self) -> Option<codex_protocol::Cid> {
        self.request.as_ref().and_then(|r| cid_from_bytes(&r.content.cid).ok())
    }

    /// At the request's expiry, asks the chain whether the request was cancelled (it was if no fill completed
    /// it); if so the sale is interrupted.
    fn arm_cancel_timer(&mut self, expires_at: u64, ctx: &mut Context<Self>) {
        let wait = expires_at.saturating_sub(self.deps.clock.now()) + 1;
        ctx.run_later(Duration::from_secs(wait), move |act, ctx| {
            let (market, id) = (act.deps.market.clone(), act.request_id());
            ctx.spawn(async move { market.request_state(id).await }.into_actor(act).map(move |state, act, ctx| {
                match state {
                    Ok(Some(crate::chain::market::RequestState::Cancelled)) => act.apply(Event::Cancelled, ctx),
                    Ok(Some(crate::chain::market::RequestState::New)) | Err(_) => {
                        // The chain's clock lags ours, or it did not answer: ask again shortly.
                        act.arm_cancel_timer(act.deps.clock.now() + 2, ctx)
                    }
                    _ => {}
                }
            }));
        });
    }

    /// onStore: the reservation's bytes leave the store's reservation (the download claims the space it
    /// writes), then the slot is fetched (or rebuilt) and checked against its slot root.
    fn store(&mut self, is_repairing: bool, ctx: &mut Context<Self>) {
        tracing::info!(
            request_id = %self.request_id(),
            slot_index = self.index(),
            repair = is_repairing,
            "storing the slot (a repair rebuilds it from the other slots)"
        );
        let deps = self.deps.clone();
        let (cid, index) = (self.manifest_cid(), self.index());
        let reservation = self.reservation.clone();
        let work = async move {
            let cid = cid.ok_or_else(|| "the request's content is not a CID".to_owned())?;
            if let Some(reservation) = reservation {
                let release = ReleaseReservedBytes { reservation: reservation.id, bytes: reservation.size };
                deps.sales.send(release).await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
            }
            let hosted = if is_repairing {
                deps.node.send(RepairSlot { cid, index }).await
            } else {
                deps.node.send(HostSlot { cid, index }).await
            };
            hosted.map_err(|e| e.to_string())?.map_err(|e| e.to_string())
        };
        self.spawn_event(
            ctx,
            work.into_actor(self).map(|result, act, _| match result {
                Ok(hosted) => {
                    act.hosted = Some(hosted);
                    Event::Stored
                }
                Err(err) => Event::Error(format!("storing the slot: {err}")),
            }),
        );
    }

    /// onProve: the current challenge, proven by the ProverActor; `invalid` spoils the proof (simulated
    /// failures).
    fn prove(&mut self, invalid: bool, ctx: &mut Context<Self>) {
        let deps = self.deps.clone();
        let (cid, index, slot, hosted) = (self.manifest_cid(), self.index(), self.slot, self.hosted.clone());
        let proving = !matches!(self.sale.state, State::InitialProving);
        let work = async move {
            let prover = deps.prover.clone().ok_or("no prover: the node has no proving keys (--circuit-dir)")?;
            let cid = cid.ok_or("the request's content is not a CID")?;
            let manifest = crate::fetch::manifest_of(&deps.store, None, cid)
                .await
                .map_err(|err| format!("the slot's manifest: {err}"))?;
            let (data_path, slots_path) = match hosted {
                Some(hosted) => (hosted.data_path, hosted.slots_path),
                None => {
                    // After a restart: the slot is hosted; the store finds it again.
                    let again = deps.node.send(HostSlot { cid, index }).await;
                    let hosted = again.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
                    (hosted.data_path, hosted.slots_path)
                }
            };
            let files = SlotFiles { manifest, slot_index: index, data_path, slots_path };
            let started = std::time::Instant::now();
            // A proof answers its period's challenge: one finished too late for its period (other sales kept
            // the prover busy) would be refused on chain. When to send, check the challenge or prove again is
            // `codex_protocol::sales::timing`'s to say. (Waiting out the last blocks before a wrap instead of
            // proving at once could use up a short period: hosts missed proofs with 10 s periods and 1 s blocks.)
            let timing = deps.timing();
            let mut attempts = 0;
            let first_period = timing.period_of(deps.clock.now());
            let proof = loop {
                attempts += 1;
                let proving_period = timing.period_of(deps.clock.now());
                if proving && proving_period != first_period {
                    return Err(PERIOD_ENDED.to_owned());
                }
                let challenge = deps.market.get_challenge(slot).await.map_err(|e| e.to_string())?;
                let deadline = timing.end_of(proving_period);
                let proof = loop {
                    match prover.prove(files.clone(), challenge.0).await {
                        // The prover refuses work beyond its queue: try again while the period lasts.
                        Err(ProverError::Busy { .. }) if deps.clock.now() < deadline => {
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                        other => break other.map_err(|e| e.to_string())?,
                    }
                };
                match timing.after_proof(proving, deps.clock.now(), deadline, attempts) {
                    AfterProof::Send => break proof,
                    AfterProof::CheckChallenge => {
                        let mut pointer = deps.market.get_pointer(slot).await.map_err(|e| e.to_string())?;
                        let current = deps.market.get_challenge(slot).await.map_err(|e| e.to_string())?;
                        match ProofTiming::challenge_check(pointer, current == challenge, attempts) {
                            ChallengeCheck::Send => break proof,
                            ChallengeCheck::GiveUp => {
                                return Err("the challenge kept changing while proving".to_owned());
                            }
                            ChallengeCheck::ProveAfterWrap => {}
                        }
                        tracing::info!(
                            slot_index = index,
                            pointer,
                            attempts,
                            "the challenge changes (pointer wrap); proving again after it"
                        );
                        // Wait for the wrap (however long the chain's blocks are), while the period lasts.
                        while ProofTiming::near_wrap(pointer) {
                            if deps.clock.now() >= deadline {
                                return Err(PERIOD_ENDED.to_owned());
                            }
                            tokio::time::sleep(Duration::from_millis(500)).await;
                            pointer = deps.market.get_pointer(slot).await.map_err(|e| e.to_string())?;
                        }
                    }
                    AfterProof::NextPeriod => {
                        tracing::info!(slot_index = index, attempts, "proof too late for its period");
                        sleep_until_next_period(&deps.clock, &timing).await;
                    }
                    AfterProof::PeriodEnded => {
                        tracing::info!(slot_index = index, attempts, "proof too late for its period");
                        return Err(PERIOD_ENDED.to_owned());
                    }
                    AfterProof::TooLate => {
                        tracing::info!(slot_index = index, attempts, "proof too late for its period");
                        return Err("the proof was made too late for its period".to_owned());
                    }
                }
            };
            tracing::info!(slot_index = index, ms = started.elapsed().as_millis() as u64, "slot proven");
            let mut proof = Groth16Proof::from(&proof.proof);
            if invalid {
                proof.a.x ^= U256::from(1u8);
            }
            Ok::<_, String>(proof)
        };
        self.spawn_event(
            ctx,
            work.into_actor(self).map(move |result, act, _| match result {
                Ok(proof) => {
                    if invalid {
                        tracing::info!(request_id = %act.request_id(), slot_index = act.index(), "simulated proof failure");
                    }
                    act.proof = Some(proof);
                    Event::ProofReady
                }
                // The period is over: this period's status is read at once (a proof missed is counted by the
                // chain, not here).
                Err(err) if proving && err == PERIOD_ENDED => Event::PeriodStarted,
                Err(err) if proving => Event::ProofFailed(format!("proving: {err}")),
                Err(err) => Event::Error(format!("proving: {err}")),
            }),
        );
    }
}

/// The tree of the slot's dataset: known from the hosted slot, or from the manifest if it is stored.
async fn tree_of(
    store: &Addr<StoreActor>,
    tree: Option<codex_protocol::Cid>,
    cid: Option<codex_protocol::Cid>,
) -> Option<codex_protocol::Cid> {
    if tree.is_some() {
        return tree;
    }
    crate::fetch::manifest_of(store, None, cid?).await.ok().map(|manifest| manifest.tree_cid)
}

/// The machine's event for a failed market call: definitive ([`Event::Error`]) when the contract refused it,
/// transient ([`Event::Transient`]) when it may pass later.
fn failed(context: &str, err: MarketError) -> Event {
    if err.is_definitive() {
        Event::Error(format!("{context}: {err}"))
    } else {
        Event::Transient(format!("{context}: {err}"))
    }
}

/// The machine's view of a slot state.
fn chain_state(state: SlotState) -> ChainSlotState {
    match state {
        SlotState::Free => ChainSlotState::Free,
        SlotState::Filled => ChainSlotState::Filled,
        SlotState::Finished => ChainSlotState::Finished,
        SlotState::Failed => ChainSlotState::Failed,
        SlotState::Paid => ChainSlotState::Paid,
        SlotState::Cancelled => ChainSlotState::Cancelled,
        SlotState::Repair => ChainSlotState::Repair,
    }
}

/// Sleeps until one second into the next period (chain time).
async fn sleep_until_next_period(clock: &ChainClock, timing: &ProofTiming) {
    tokio::time::sleep(Duration::from_secs(timing.until_next_period(clock.now()))).await;
}

impl Actor for SalesAgent {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        tracing::info!(
            request_id = %self.request_id(),
            slot_index = self.index(),
            slot_id = %self.slot,
            state = self.sale.state.name(),
            "sale started"
        );
        let effects = std::mem::take(&mut self.pending);
        self.run(effects, ctx);
    }
}

/// An event for the sale from the marketplace (routed by the SalesActor).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct SaleInput(pub Event);

impl Handler<SaleInput> for SalesAgent {
    type Result = ();
    fn handle(&mut self, msg: SaleInput, ctx: &mut Self::Context) {
        self.apply(msg.0, ctx);
    }
}

/// Query: what the REST API shows of this sale.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "SlotAgentInfo")]
pub struct GetSaleInfo;

impl Handler<GetSaleInfo> for SalesAgent {
    type Result = MessageResult<GetSaleInfo>;
    fn handle(&mut self, _: GetSaleInfo, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.info())
    }
}

/// Command: stop the agent (the node stops); its record stays for recovery.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct StopAgent;

impl Handler<StopAgent> for SalesAgent {
    type Result = ();
    fn handle(&mut self, _: StopAgent, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
