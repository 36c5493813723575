//! SalesActor: the host's sales (seed 001 §5.1–5.2, §5.6–5.7, §5.10).
//!
//! - **Availabilities and reservations**: the pure [`Ledger`], mirrored in redb. Every change is computed on a
//!   copy, written with the new reservation counter in one transaction ([`CommitSales`]: refused when an
//!   availability would not fit the quota), and only then installed; handlers that change it run one at a time
//!   ([`AtomicResponse`]), so two sales never take the same bytes.
//! - **Marketplace events** ([`SalesEvents`], from the NodeActor): `StorageRequested` → one queue item per slot,
//!   unless no availability could ever take the request (it is then not loaded at all); `SlotFreed` → a repair
//!   item (collateral less the repair reward); `RequestCancelled`, `RequestFulfilled`, `RequestFailed` → the
//!   request leaves the queue, and its agents hear of a cancellation or failure; `SlotFilled` → the slot leaves
//!   the queue and its agent hears of it; `SlotReservationsFull` → the slot leaves the queue.
//! - **The window**: each item carries the chain time from which the expanding window admits this host
//!   (`not_before`, computed from the log's block: `codex_protocol::sales::window`). The contract does not enforce
//!   the window (it admits every address, contracts/README.md "Reservations"): it orders our hosts so they do not
//!   all download the same slot at once.
//! - **Agents**: one [`SalesAgent`] per slot taken from the queue, with the queue's worker until the slot is
//!   filled or the sale ends ([`AgentFilled`], [`AgentEnded`]); at the end the reservation is deleted and its
//!   bytes and collateral return to the availability (onCleanUp), and the slot may go back to the queue.
//! - **Recovery** (seed 001 §5.2.4): at start, every slot this host holds on chain gets an agent in Unknown,
//!   which reads the chain and jumps to the right state; a sale persisted before its fill resumes where it was
//!   if its request is still open, and everything else (reservations of sales that cannot go on) is cleaned up.
//! - When an availability is added, the `StorageRequested` logs of the last `past_events_blocks` blocks whose
//!   requests are still open are replayed into the queue.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use actix::prelude::*;
use alloy::primitives::{Address, B256, U256};
use codex_protocol::sales::ledger::Ledger;
use codex_protocol::sales::machine::{Collateral, Event, Reprocess, Sale};
use codex_protocol::sales::queue::WorkerId;
use codex_protocol::sales::window::Window;
use codex_protocol::sales::{Availability, RequestId, Reservation, SlotId, SlotQueueItem};

use super::agent::{AgentDeps, GetSaleInfo, SaleInput, SaleRecord, SalesAgent, StopAgent};
use super::queue::{
    AvailabilityChanged, ProcessSlot, PushSlots, RemoveRequest, RemoveSlot, ReturnWorker, SlotQueueActor,
};
use super::*;
use crate::chain::actor::NotHandled;
use crate::chain::market::{
    Ask, ChainEvent, Market, MarketError, MarketEvent, MarketplaceConfig, OnChainMarket, RequestState, SlotState,
    slot_id,
};
use crate::node::NodeActor;
use crate::prover::Prover;
use crate::store::{CommitSales, DropSlot, LoadSales, StoreActor};
use futures::future::LocalBoxFuture;

mod events;
mod recovery;
mod rest;

/// Sales settings.
#[derive(Debug, Clone)]
pub struct SalesConfig {
    /// Sales processed at once before their fill (the queue's workers).
    pub max_workers: usize,
    /// Most slots queued.
    pub queue_size: usize,
    /// Every Nth proof is spoiled on purpose while proving (testing validators); 0 never.
    pub simulate_proof_failures: u32,
    /// How far back (blocks) open requests are looked for when an availability is added.
    pub past_events_blocks: u64,
}

impl Default for SalesConfig {
    fn default() -> Self {
        Self {
            max_workers: codex_protocol::sales::queue::DEFAULT_MAX_WORKERS,
            queue_size: codex_protocol::sales::queue::DEFAULT_CAPACITY,
            simulate_proof_failures: 0,
            past_events_blocks: 10_000,
        }
    }
}

/// What a marketplace event offers once its chain reads are done: slots of request `id` to queue.
struct Follow {
    id: RequestId,
    ask: Ask,
    /// The request's expiry; `None` for a repair.
    expiry: Option<u64>,
    window: Window,
    indices: Vec<u64>,
    collateral: U256,
}

/// An agent and what the actor keeps of it.
struct AgentEntry {
    addr: Addr<SalesAgent>,
    request_id: RequestId,
    item: SlotQueueItem,
    window_open: u64,
    worker: Option<WorkerId>,
}

/// The sales actor (see the module documentation).
pub struct SalesActor {
    config: SalesConfig,
    market: OnChainMarket,
    market_config: MarketplaceConfig,
    store: Addr<StoreActor>,
    node: Addr<NodeActor>,
    prover: Option<Prover>,
    clock: ChainClock,
    ledger: Ledger,
    queue: Option<Addr<SlotQueueActor>>,
    agents: HashMap<SlotId, AgentEntry>,
    /// Per queued slot: when its window admits every host.
    windows: HashMap<(RequestId, u64), u64>,
    /// `sales-1` rows read at start, for recovery.
    recovering: Option<Vec<(B256, Vec<u8>)>>,
    /// Recovery is done: until then the queue starts no sale (a recovered sale and a queued one must not race
    /// for the same slot or the same bytes).
    recovered: bool,
    proofs_submitted: u64,
    proofs_failed: u64,
}

impl SalesActor {
    /// Loads the sales records and starts the actor (and its queue) on the current arbiter; recovery runs
    /// right after.
    pub async fn start(
        config: SalesConfig,
        market: OnChainMarket,
        market_config: MarketplaceConfig,
        store: Addr<StoreActor>,
        node: Addr<NodeActor>,
        prover: Option<Prover>,
    ) -> Result<Addr<Self>, SalesError> {
        let records = store.send(LoadSales).await??;
        let ledger = Ledger::new(records.availabilities, records.reservations);
        if let Err(problem) = ledger.check() {
            tracing::error!(%problem, "the sales records are inconsistent");
        }
        if ledger.store_reserved() != records.reserved {
            tracing::warn!(
                persisted = records.reserved,
                computed = ledger.store_reserved(),
                "the reserved-bytes counter disagrees with the availabilities; rewriting it"
            );
            let fix = CommitSales { reserved: Some(ledger.store_reserved()), ..Default::default() };
            if let Err(err) = store.send(fix).await? {
                tracing::error!(%err, "cannot rewrite the reserved-bytes counter");
            }
        }
        let clock = ChainClock::new(market.chain_time().await?);
        let actor = Self {
            config,
            market,
            market_config,
            store,
            node,
            prover,
            clock,
            ledger,
            queue: None,
            agents: HashMap::new(),
            windows: HashMap::new(),
            recovering: Some(records.sales),
            recovered: false,
            proofs_submitted: 0,
            proofs_failed: 0,
        };
        Ok(actor.start())
    }

    fn queue(&self) -> Option<&Addr<SlotQueueActor>> {
        self.queue.as_ref()
    }

    fn deps(&self, ctx: &Context<Self>) -> AgentDeps {
        AgentDeps {
            market: self.market.clone(),
            sales: ctx.address(),
            node: self.node.clone(),
            store: self.store.clone(),
            prover: self.prover.clone(),
            clock: self.clock.clone(),
            period: self.market_config.proofs.period,
            downtime: self.market_config.proofs.downtime,
        }
    }

    /// Writes `commit` with `next`'s reservation counter and installs `next` once it is durable.
    fn commit(
        &mut self,
        next: Ledger,
        mut commit: CommitSales,
    ) -> impl ActorFuture<Self, Output = Result<(), SalesError>> + 'static {
        commit.reserved = Some(next.store_reserved());
        let store = self.store.clone();
        async move { Ok::<_, SalesError>(store.send(commit).await??) }.into_actor(self).map(move |result, act, _| {
            if result.is_ok() {
                act.ledger = next;
            }
            result
        })
    }

    /// The queue items of a request's slots, with the window of the log at `block`; none when no availability
    /// could take the request.
    fn items_for(
        &self,
        id: RequestId,
        ask: &Ask,
        expiry: Option<u64>,
        window: &Window,
        indices: impl IntoIterator<Item = u64>,
        collateral: U256,
    ) -> Vec<(SlotQueueItem, u64)> {
        let signer: Address = self.market.signer();
        if !self.could_take(ask, collateral) {
            tracing::debug!(request_id = %id, "no availability can take this request: not queued");
            return Vec::new();
        }
        indices
            .into_iter()
            .map(|index| {
                let item = SlotQueueItem {
                    request_id: id,
                    slot_index: index,
                    slot_size: ask.slotSize,
                    duration: ask.duration,
                    price_per_byte_per_second: ask.pricePerBytePerSecond,
                    collateral,
                    expiry,
                    seen: false,
                    not_before: window.first_eligible(id, index, 0, signer),
                };
                (item, window.open_to_all_at())
            })
            .collect()
    }

    /// Whether some availability could take a slot of `ask` now (checked before anything is read from the
    /// chain about the request).
    fn could_take(&self, ask: &Ask, collateral: U256) -> bool {
        let valid_until = self.clock.now().saturating_add(ask.duration);
        self.ledger
            .find_availability(ask.slotSize, ask.duration, ask.pricePerBytePerSecond, collateral, valid_until)
            .is_some()
    }

    fn push(&mut self, items: Vec<(SlotQueueItem, u64)>) {
        if items.is_empty() {
            return;
        }
        let mut queued = Vec::with_capacity(items.len());
        for (item, window_open) in items {
            self.windows.insert((item.request_id, item.slot_index), window_open);
            queued.push(item);
        }
        if let Some(queue) = self.queue() {
            queue.do_send(PushSlots { items: queued });
        }
    }

    fn remove_request(&mut self, id: RequestId) {
        self.windows.retain(|(request, _), _| *request != id);
        if let Some(queue) = self.queue() {
            queue.do_send(RemoveRequest { id });
        }
    }

    fn remove_slot(&mut self, id: RequestId, index: u64) {
        self.windows.remove(&(id, index));
        if let Some(queue) = self.queue() {
            queue.do_send(RemoveSlot { id, index });
        }
    }

    fn tell_request(&self, id: RequestId, event: Event) {
        for agent in self.agents.values().filter(|agent| agent.request_id == id) {
            agent.addr.do_send(SaleInput(event.clone()));
        }
    }

    fn start_agent(
        &mut self,
        ctx: &Context<Self>,
        item: SlotQueueItem,
        window_open: u64,
        sale: (Sale, Vec<codex_protocol::sales::machine::Effect>),
        reservation: Option<Reservation>,
        worker: Option<WorkerId>,
    ) {
        let slot = slot_id(item.request_id, item.slot_index);
        if self.agents.contains_key(&slot) {
            // One agent per slot: a second would fill with bytes and collateral the first one holds.
            tracing::warn!(%slot, "the slot already has a sale; not starting another");
            if let (Some(worker), Some(queue)) = (worker, self.queue()) {
                queue.do_send(ReturnWorker { worker });
            }
            return;
        }
        let agent = SalesAgent::new(self.deps(ctx), item.clone(), window_open, sale, reservation).start();
        let entry = AgentEntry { addr: agent, request_id: item.request_id, item, window_open, worker };
        self.agents.insert(slot, entry);
    }
}

impl Actor for SalesActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let queue = SlotQueueActor::new(
            self.config.queue_size,
            self.config.max_workers,
            self.clock.clone(),
            ctx.address().recipient(),
        )
        .start();
        self.queue = Some(queue);
        // The chain's clock, read every few seconds (agents and the queue extrapolate between reads).
        ctx.run_interval(Duration::from_secs(5), |act, ctx| {
            let (market, clock) = (act.market.clone(), act.clock.clone());
            ctx.spawn(
                async move {
                    if let Ok(now) = market.chain_time().await {
                        clock.set(now);
                    }
                }
                .into_actor(act),
            );
        });
        if let Some(rows) = self.recovering.take() {
            self.recover(rows, ctx);
        }
        if self.ledger.availabilities().next().is_some() {
            self.replay_past_requests(ctx);
        }
    }
}

/// The marketplace events the sales care about (from the NodeActor), in chain order; answered once they are
/// handled (an error: hand them over again).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), NotHandled>")]
pub struct SalesEvents {
    pub events: Vec<ChainEvent>,
}

impl Handler<SalesEvents> for SalesActor {
    type Result = ResponseActFuture<Self, Result<(), NotHandled>>;
    fn handle(&mut self, msg: SalesEvents, _: &mut Self::Context) -> Self::Result {
        Box::pin(self.handle_events(msg.events))
    }
}

impl Handler<ProcessSlot> for SalesActor {
    type Result = ();
    fn handle(&mut self, msg: ProcessSlot, ctx: &mut Self::Context) {
        let slot = slot_id(msg.item.request_id, msg.item.slot_index);
        if !self.recovered {
            // Recovery first: the item comes back in a moment.
            if let Some(queue) = self.queue() {
                queue.do_send(ReturnWorker { worker: msg.worker });
            }
            let window_open = self.windows.get(&(msg.item.request_id, msg.item.slot_index)).copied().unwrap_or(0);
            let mut item = msg.item;
            item.not_before = self.clock.now() + 2;
            self.push(vec![(item, window_open)]);
            return;
        }
        let expired = msg.item.expiry.is_some_and(|expiry| expiry <= self.clock.now());
        if self.agents.contains_key(&slot) || expired {
            if let Some(queue) = self.queue() {
                queue.do_send(ReturnWorker { worker: msg.worker });
            }
            return;
        }
        if self.agents.values().any(|agent| agent.request_id == msg.item.request_id) {
            // One slot of a dataset per host (the store keeps one slot per dataset): the other slots of a
            // request this host is selling wait, in case that sale ends without a fill.
            if let Some(queue) = self.queue() {
                queue.do_send(ReturnWorker { worker: msg.worker });
            }
            let window_open = self.windows.get(&(msg.item.request_id, msg.item.slot_index)).copied().unwrap_or(0);
            let mut item = msg.item;
            item.not_before = self.clock.now() + self.market_config.proofs.period.max(10);
            self.push(vec![(item, window_open)]);
            return;
        }
        let window_open = self.windows.get(&(msg.item.request_id, msg.item.slot_index)).copied().unwrap_or(0);
        let sale = Sale::new(self.config.simulate_proof_failures);
        self.start_agent(ctx, msg.item, window_open, sale, None, Some(msg.worker));
    }
}

/// From an agent: find an availability for its slot and reserve bytes and collateral; `None` when none fits.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Option<Reservation>, SalesError>")]
pub struct Reserve {
    pub slot: SlotId,
    pub item: SlotQueueItem,
    /// The request's end.
    pub valid_until: u64,
}

impl Handler<Reserve> for SalesActor {
    type Result = AtomicResponse<Self, Result<Option<Reservation>, SalesError>>;
    fn handle(&mut self, msg: Reserve, _: &mut Self::Context) -> Self::Result {
        let item = &msg.item;
        let found = self.ledger.find_availability(
            item.slot_size,
            item.duration,
            item.price_per_byte_per_second,
            item.collateral,
            msg.valid_until,
        );
        let Some(availability) = found else {
            return AtomicResponse::new(Box::pin(fut::ready(Ok(None))));
        };
        let mut next = self.ledger.clone();
        let created = next.create_reservation(
            B256::random(),
            availability,
            item.slot_size,
            item.request_id,
            item.slot_index,
            item.collateral,
            msg.valid_until,
        );
        let reservation = match created {
            Ok(reservation) => reservation,
            Err(err) => {
                tracing::info!(%err, "no reservation made");
                return AtomicResponse::new(Box::pin(fut::ready(Ok(None))));
            }
        };
        let commit = CommitSales {
            availabilities: next.availability(&availability).cloned().into_iter().collect(),
            reservations: vec![reservation.clone()],
            ..Default::default()
        };
        AtomicResponse::new(Box::pin(
            self.commit(next, commit).map(move |result, _, _| result.map(|()| Some(reservation))),
        ))
    }
}

/// From an agent: `bytes` of its reservation are now held by the slot's download (they leave the store's
/// reservation for sales).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Result<(), SalesError>")]
pub struct ReleaseReservedBytes {
    pub reservation: B256,
    pub bytes: u64,
}

impl Handler<ReleaseReservedBytes> for SalesActor {
    type Result = AtomicResponse<Self, Result<(), SalesError>>;
    fn handle(&mut self, msg: ReleaseReservedBytes, _: &mut Self::Context) -> Self::Result {
        let mut next = self.ledger.clone();
        let released = match next.release_bytes(&msg.reservation, msg.bytes) {
            Ok(released) => released,
            Err(err) => return AtomicResponse::new(Box::pin(fut::ready(Err(SalesError::Invalid(err.to_string()))))),
        };
        if released == 0 {
            return AtomicResponse::new(Box::pin(fut::ready(Ok(()))));
        }
        let commit = CommitSales {
            reservations: next.reservation(&msg.reservation).cloned().into_iter().collect(),
            ..Default::default()
        };
        AtomicResponse::new(Box::pin(self.commit(next, commit)))
    }
}

/// From an agent: its `sales-1` record; answered once it is durable (the agent's next effects wait for it).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), SalesError>")]
pub struct SaveSale {
    pub slot: SlotId,
    pub record: Vec<u8>,
}

impl Handler<SaveSale> for SalesActor {
    type Result = ResponseFuture<Result<(), SalesError>>;
    fn handle(&mut self, msg: SaveSale, _: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        let commit = CommitSales { sales: vec![(msg.slot, msg.record)], ..Default::default() };
        Box::pin(async move { Ok(store.send(commit).await??) })
    }
}

/// From an agent: its slot is filled; the worker goes back to the queue.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct AgentFilled {
    pub slot: SlotId,
}

impl Handler<AgentFilled> for SalesActor {
    type Result = ();
    fn handle(&mut self, msg: AgentFilled, _: &mut Self::Context) {
        let worker = self.agents.get_mut(&msg.slot).and_then(|agent| agent.worker.take());
        if let (Some(worker), Some(queue)) = (worker, self.queue()) {
            queue.do_send(ReturnWorker { worker });
        }
    }
}

/// From an agent: its sale is over (onCleanUp): the reservation ends, returning its bytes and `collateral`, the
/// sale record goes, the worker goes back, and the slot may be queued again.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct AgentEnded {
    pub slot: SlotId,
    /// The agent's own reservation (never another agent's of the same slot).
    pub reservation: Option<B256>,
    pub collateral: Collateral,
    pub reprocess: Reprocess,
}

impl Handler<AgentEnded> for SalesActor {
    type Result = AtomicResponse<Self, ()>;
    fn handle(&mut self, msg: AgentEnded, _: &mut Self::Context) -> Self::Result {
        let Some(agent) = self.agents.remove(&msg.slot) else {
            return AtomicResponse::new(Box::pin(fut::ready(())));
        };
        if let (Some(worker), Some(queue)) = (agent.worker, self.queue()) {
            queue.do_send(ReturnWorker { worker });
        }
        let mut next = self.ledger.clone();
        let mut commit = CommitSales { delete_sales: vec![msg.slot], force: true, ..Default::default() };
        let reservation = msg.reservation.and_then(|id| next.reservation(&id).cloned());
        let grew = reservation.is_some();
        if let Some(reservation) = reservation {
            let returned = match msg.collateral {
                Collateral::Reserved => reservation.collateral,
                Collateral::Amount(amount) => amount,
            };
            if next.delete_reservation(&reservation.id, returned).is_ok() {
                commit.delete_reservations.push(reservation.id);
                commit.availabilities = next.availability(&reservation.availability_id).cloned().into_iter().collect();
            }
        }
        let mut item = agent.item;
        let requeue = match msg.reprocess {
            Reprocess::No => None,
            Reprocess::AsSeen => {
                item.seen = true;
                Some(item)
            }
            Reprocess::WhenWindowOpens => {
                item.seen = false;
                item.not_before = agent.window_open;
                Some(item)
            }
        };
        AtomicResponse::new(Box::pin(self.commit(next, commit).map(move |result, act, _| {
            if let Err(err) = result {
                tracing::error!(%err, slot = %msg.slot, "cleaning up a sale failed");
            }
            // Only bytes and collateral given back can let a paused queue go on.
            if grew && let Some(queue) = act.queue() {
                queue.do_send(AvailabilityChanged { grew: true });
            }
            if let Some(item) = requeue {
                act.push(vec![(item, agent.window_open)]);
            }
        })))
    }
}

/// Query: figures for metrics and tests.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "SalesSummary")]
pub struct GetSalesSummary;

/// What [`GetSalesSummary`] answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SalesSummary {
    /// Running sales by state name.
    pub by_state: Vec<(&'static str, u64)>,
    /// Bytes the store keeps reserved for sales.
    pub reserved_bytes: u64,
    /// Collateral locked by reservations.
    pub locked_collateral: U256,
    pub availabilities: usize,
    pub reservations: usize,
    pub agents: usize,
    /// Proofs submitted (periodic, not the fills' initial proofs) since start.
    pub proofs_submitted: u64,
    /// Proofs that could not be made or were refused since start (their periods are missed).
    pub proofs_failed: u64,
}

impl Handler<GetSalesSummary> for SalesActor {
    type Result = ResponseFuture<SalesSummary>;
    fn handle(&mut self, _: GetSalesSummary, _: &mut Self::Context) -> Self::Result {
        let agents: Vec<Addr<SalesAgent>> = self.agents.values().map(|agent| agent.addr.clone()).collect();
        let mut summary = SalesSummary {
            by_state: Vec::new(),
            reserved_bytes: self.ledger.store_reserved(),
            locked_collateral: self.ledger.locked_collateral(),
            availabilities: self.ledger.availabilities().count(),
            reservations: self.ledger.reservations().count(),
            agents: agents.len(),
            proofs_submitted: self.proofs_submitted,
            proofs_failed: self.proofs_failed,
        };
        Box::pin(async move {
            let mut counts: HashMap<&'static str, u64> = HashMap::new();
            for agent in agents {
                if let Ok(info) = agent.send(GetSaleInfo).await {
                    *counts.entry(info.state).or_default() += 1;
                }
            }
            let mut by_state: Vec<_> = counts.into_iter().collect();
            by_state.sort();
            summary.by_state = by_state;
            summary
        })
    }
}

/// Command: stop the sales (the node stops): agents stop where they are (their records stay for recovery).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct StopSales;

impl Handler<StopSales> for SalesActor {
    type Result = ();
    fn handle(&mut self, _: StopSales, ctx: &mut Self::Context) {
        for agent in self.agents.values() {
            agent.addr.do_send(StopAgent);
        }
        if let Some(queue) = self.queue.take() {
            queue.do_send(super::queue::StopQueue);
        }
        ctx.stop();
    }
}

/// From an agent: a periodic proof was submitted (`submitted`) or failed.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct ProofCounted {
    pub submitted: bool,
}

impl Handler<ProofCounted> for SalesActor {
    type Result = ();
    fn handle(&mut self, msg: ProofCounted, _: &mut Self::Context) {
        if msg.submitted {
            self.proofs_submitted += 1;
        } else {
            self.proofs_failed += 1;
        }
    }
}
