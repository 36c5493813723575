//! The host's side of the marketplace (seed 001, seed 004), as pure code the sales actors execute:
//!
//! - [`ledger`]: availabilities and reservations: matching, bytes and collateral taken and returned.
//! - [`queue`]: the slot queue: ordering, bound, workers, pause and resume.
//! - [`window`]: the expanding reservation window: the order our hosts take a slot's reservations in.
//! - [`machine`]: the sale state machine, one per slot: `step(state, event) -> (state, effects)`.
//! - [`timing`]: proof timing: when a fill or a periodic proof is made and sent, and how long a retry waits.
//!
//! Ids and amounts are alloy's types ([`B256`], [`U256`], [`Address`]): the chain client uses the same.

pub mod ledger;
pub mod machine;
pub mod queue;
pub mod timing;
pub mod window;

pub use alloy_primitives::{Address, B256, U256};
use serde::{Deserialize, Serialize};

/// An availability's id (random, 32 bytes).
pub type AvailabilityId = B256;
/// A reservation's id (random, 32 bytes).
pub type ReservationId = B256;
/// A storage request's id (keccak256 of its ABI encoding).
pub type RequestId = B256;
/// A slot's id (keccak256(abi.encode(requestId, slotIndex))).
pub type SlotId = B256;

/// Space a host offers for sale (seed 001 §7.2; the REST `SalesAvailabilityREAD`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Availability {
    pub id: AvailabilityId,
    /// Bytes offered in all.
    pub total_size: u64,
    /// Bytes not taken by a reservation or a hosted slot.
    pub free_size: u64,
    /// Longest request duration (seconds) accepted.
    pub duration: u64,
    /// Lowest price accepted, in tokens per byte per second.
    pub min_price_per_byte_per_second: U256,
    /// Collateral this availability may lock in all.
    pub total_collateral: U256,
    /// Collateral not locked by a reservation (less what slashes took).
    pub total_remaining_collateral: U256,
    /// When false, no new slot is taken (hosted ones go on).
    pub enabled: bool,
    /// Unix seconds after which no slot may still be hosted (a request ending later does not match); 0 = none.
    pub until: u64,
}

impl Availability {
    /// Bytes taken by reservations and hosted slots.
    pub fn used_size(&self) -> u64 {
        self.total_size.saturating_sub(self.free_size)
    }
}

/// Space and collateral taken from an availability for one slot (seed 001 §7.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub id: ReservationId,
    pub availability_id: AvailabilityId,
    /// Bytes taken from the availability: the slot's size.
    pub size: u64,
    /// Bytes of `size` already written by the slot's download: they left the store's reservation for the
    /// slot's own accounting (`returnBytesToAvailability`, seed 001 §2.3).
    pub released: u64,
    pub request_id: RequestId,
    pub slot_index: u64,
    /// Unix seconds: the request's end.
    pub valid_until: u64,
    /// Collateral locked for this slot.
    pub collateral: U256,
}

/// One slot waiting to be sold (seed 001 §7.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotQueueItem {
    pub request_id: RequestId,
    pub slot_index: u64,
    pub slot_size: u64,
    /// The request's duration, seconds.
    pub duration: u64,
    pub price_per_byte_per_second: U256,
    /// The collateral a host deposits to fill it (for a repair: less the repair reward).
    pub collateral: U256,
    /// Unix seconds at which the request expires unfilled (`expiresAt`), when known.
    pub expiry: Option<u64>,
    /// Already evaluated against the availabilities without a match.
    pub seen: bool,
    /// Chain time (Unix seconds) before which this host may not reserve the slot (the expanding window); 0 = now.
    pub not_before: u64,
}

impl SlotQueueItem {
    /// `duration × price per slot per second` (price per slot per second = price per byte × slot size).
    pub fn profitability(&self) -> U256 {
        U256::from(self.duration)
            .saturating_mul(self.price_per_byte_per_second)
            .saturating_mul(U256::from(self.slot_size))
    }
}

/// A new availability, as `POST /sales/availability` gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAvailability {
    pub total_size: u64,
    pub duration: u64,
    pub min_price_per_byte_per_second: U256,
    pub total_collateral: U256,
    pub enabled: bool,
    pub until: u64,
}

/// A change to an availability, as `PATCH /sales/availability/{id}` gives it (absent fields stay).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvailabilityPatch {
    pub total_size: Option<u64>,
    pub duration: Option<u64>,
    pub min_price_per_byte_per_second: Option<U256>,
    pub total_collateral: Option<U256>,
    pub enabled: Option<bool>,
    pub until: Option<u64>,
}
