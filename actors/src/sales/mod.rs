//! Selling storage (issue 13; seed 001, seed 004): the host's side of the marketplace.
//!
//! - [`SalesActor`] (`actor.rs`): availabilities and reservations (the pure `codex_protocol::sales::ledger`,
//!   mirrored in redb), the agent registry, the routing of marketplace events to the queue and the agents,
//!   recovery at start.
//! - `SlotQueueActor` (`queue.rs`): the slot queue and its worker pool.
//! - `SalesAgent` (`agent.rs`): one actor per slot, executing the effects of `codex_protocol::sales::machine`.
//!
//! The public messages below are what the NodeActor forwards from the REST layer.

use actix::prelude::*;
use codex_protocol::sales::{Availability, AvailabilityId, AvailabilityPatch, NewAvailability, Reservation, SlotId};

use crate::chain::market::{MarketError, Request, RequestId};
use crate::error::ErrorKind;
use crate::store::StoreError;

/// Why a sales call failed.
#[derive(Debug, thiserror::Error)]
pub enum SalesError {
    /// The parameters break a rule (422, with the message).
    #[error("{0}")]
    Invalid(String),
    /// What was asked for does not exist (404).
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Market(#[from] MarketError),
    #[error("the sales actors stopped")]
    Gone,
}

impl SalesError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            SalesError::Invalid(_) => ErrorKind::Refused,
            SalesError::NotFound(_) => ErrorKind::NotFound,
            SalesError::Store(err) => err.kind(),
            SalesError::Market(_) | SalesError::Gone => ErrorKind::Unavailable,
        }
    }
}

impl From<MailboxError> for SalesError {
    fn from(_: MailboxError) -> Self {
        SalesError::Gone
    }
}

/// Command: offer space for sale; the new availability (its bytes are reserved in the store's quota).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Availability, SalesError>")]
pub struct CreateAvailability {
    pub new: NewAvailability,
}

/// Command: change an availability (new values apply to new sales only).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), SalesError>")]
pub struct UpdateAvailability {
    pub id: AvailabilityId,
    pub patch: AvailabilityPatch,
}

/// Query: every availability.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Result<Vec<Availability>, SalesError>")]
pub struct ListAvailabilities;

/// Query: the reservations of an availability ([`SalesError::NotFound`] when it does not exist).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Result<Vec<Reservation>, SalesError>")]
pub struct ListReservations {
    pub availability: AvailabilityId,
}

/// A slot this host holds on chain (the REST `Slot`).
#[derive(Debug, Clone)]
pub struct ActiveSlot {
    pub id: SlotId,
    pub request: Request,
    pub slot_index: u64,
}

/// Query: the slots this host holds on chain (`mySlots`).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Result<Vec<ActiveSlot>, SalesError>")]
pub struct ListActiveSlots;

/// A running sale (the REST `SlotAgent`).
#[derive(Debug, Clone)]
pub struct SlotAgentInfo {
    pub request_id: RequestId,
    pub slot_index: u64,
    pub request: Option<Request>,
    pub reservation: Option<Reservation>,
    /// The state's name as the OpenAPI spells it (`SaleDownloading`, …).
    pub state: &'static str,
}

/// Query: the sale of slot `slot` running here, if any.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Result<Option<SlotAgentInfo>, SalesError>")]
pub struct GetSlotAgent {
    pub slot: SlotId,
}

mod actor;
mod agent;
mod queue;

pub use actor::{GetSalesSummary, SalesActor, SalesConfig, SalesEvents, SalesSummary, StopSales};
pub use agent::{SaleRecord, SalesAgent};
pub use queue::{ListQueue, SlotQueueActor, Unpause};

/// The market's clock (chain time, Unix seconds), read from the chain every few seconds and extrapolated with
/// the local clock in between: the queue's window checks and the agents' period waits use it.
#[derive(Debug, Clone)]
pub struct ChainClock(std::sync::Arc<std::sync::Mutex<(u64, std::time::Instant)>>);

impl ChainClock {
    pub fn new(chain_time: u64) -> Self {
        Self(std::sync::Arc::new(std::sync::Mutex::new((chain_time, std::time::Instant::now()))))
    }

    /// Records a fresh reading of the chain's time.
    pub fn set(&self, chain_time: u64) {
        *self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = (chain_time, std::time::Instant::now());
    }

    /// The chain's time now, as far as this node can tell.
    pub fn now(&self) -> u64 {
        let (at, read) = *self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        at.saturating_add(read.elapsed().as_secs())
    }
}
