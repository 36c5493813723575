//! SlotQueueActor (seed 001 §5.2, seed 004): the slot queue ([`SlotQueue`], pure) and its worker pool. Slots
//! come in with [`PushSlots`] (one request's slots, shuffled) and leave with [`RemoveRequest`] /
//! [`RemoveSlot`]; whenever a worker is free, the queue is not paused and an item's window admits this host
//! (`not_before` ≤ chain time), the best item goes to the SalesActor as [`ProcessSlot`] with the worker, which
//! comes back with [`ReturnWorker`] once the sale is filled or over. A seen item at the head pauses the queue;
//! an availability that grew ([`AvailabilityChanged`]), a new unseen item or [`Unpause`] resume it.
//!
//! Runs on the node's arbiter; it only moves small records, and checks every second for items whose window
//! opened.

use std::time::Duration;

use actix::prelude::*;
use codex_protocol::sales::queue::{SlotQueue, WorkerId};
use codex_protocol::sales::{RequestId, SlotQueueItem};

use super::ChainClock;

/// A slot for the SalesActor to sell, with the worker that carries it.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct ProcessSlot {
    pub item: SlotQueueItem,
    pub worker: WorkerId,
}

/// Command: queue slots (one request's: they are shuffled first).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct PushSlots {
    pub items: Vec<SlotQueueItem>,
}

/// Command: drop every queued slot of a request.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct RemoveRequest {
    pub id: RequestId,
}

/// Command: drop one queued slot.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct RemoveSlot {
    pub id: RequestId,
    pub index: u64,
}

/// Command: a worker is free again.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct ReturnWorker {
    pub worker: WorkerId,
}

/// Event: an availability was created or changed; `grew`: it can now take more than before.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct AvailabilityChanged {
    pub grew: bool,
}

/// Command: resume a paused queue.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Unpause;

/// Query: the queued items in priority order, and whether the queue is paused.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "(Vec<SlotQueueItem>, bool)")]
pub struct ListQueue;

/// The slot queue actor.
pub struct SlotQueueActor {
    queue: SlotQueue,
    clock: ChainClock,
    sales: Recipient<ProcessSlot>,
}

impl SlotQueueActor {
    pub fn new(capacity: usize, max_workers: usize, clock: ChainClock, sales: Recipient<ProcessSlot>) -> Self {
        Self { queue: SlotQueue::new(capacity, max_workers), clock, sales }
    }

    /// Hands out every item that may be processed now.
    fn dispatch(&mut self) {
        while let Some((item, worker)) = self.queue.pop(self.clock.now()) {
            tracing::debug!(request_id = %item.request_id, slot_index = item.slot_index, ?worker, "slot dequeued");
            self.sales.do_send(ProcessSlot { item, worker });
        }
    }
}

impl Actor for SlotQueueActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(Duration::from_secs(1), |act, _| act.dispatch());
    }
}

impl Handler<PushSlots> for SlotQueueActor {
    type Result = ();
    fn handle(&mut self, msg: PushSlots, _: &mut Self::Context) {
        let seed = alloy::primitives::B256::random();
        let outcome = self.queue.push(msg.items, u64::from_be_bytes(seed.0[..8].try_into().unwrap_or_default()));
        for dropped in outcome.dropped {
            tracing::debug!(request_id = %dropped.request_id, slot_index = dropped.slot_index, "queue full: slot dropped");
        }
        self.dispatch();
    }
}

impl Handler<RemoveRequest> for SlotQueueActor {
    type Result = ();
    fn handle(&mut self, msg: RemoveRequest, _: &mut Self::Context) {
        self.queue.remove_request(&msg.id);
    }
}

impl Handler<RemoveSlot> for SlotQueueActor {
    type Result = ();
    fn handle(&mut self, msg: RemoveSlot, _: &mut Self::Context) {
        self.queue.remove_slot(&msg.id, msg.index);
    }
}

impl Handler<ReturnWorker> for SlotQueueActor {
    type Result = ();
    fn handle(&mut self, msg: ReturnWorker, _: &mut Self::Context) {
        self.queue.return_worker(msg.worker);
        self.dispatch();
    }
}

impl Handler<AvailabilityChanged> for SlotQueueActor {
    type Result = ();
    fn handle(&mut self, msg: AvailabilityChanged, _: &mut Self::Context) {
        self.queue.availability_changed(msg.grew);
        self.dispatch();
    }
}

impl Handler<Unpause> for SlotQueueActor {
    type Result = ();
    fn handle(&mut self, _: Unpause, _: &mut Self::Context) {
        self.queue.unpause();
        self.dispatch();
    }
}

impl Handler<ListQueue> for SlotQueueActor {
    type Result = MessageResult<ListQueue>;
    fn handle(&mut self, _: ListQueue, _: &mut Self::Context) -> Self::Result {
        MessageResult((self.queue.items(), self.queue.paused()))
    }
}

/// Command: stop the queue.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct StopQueue;

impl Handler<StopQueue> for SlotQueueActor {
    type Result = ();
    fn handle(&mut self, _: StopQueue, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
