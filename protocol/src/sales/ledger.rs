//! Availability and reservation accounting (seed 001 §2.3, §5.7, §7.1, §7.2), as pure code.
//!
//! The [`Ledger`] holds the host's availabilities (space and collateral offered for sale) and the reservations
//! taken from them (one per slot being sold or hosted). It keeps, for every availability,
//! `free_size + Σ its reservations' size == total_size`, and checks every change against the REST rules before
//! applying it, so a refused change leaves the ledger as it was. The sales actor persists what the ledger answers;
//! the ledger itself does no I/O.
//!
//! - Matching ([`Ledger::find_availability`], seed 001 §5.5.1) picks the best fit: the smallest `free_size` that
//!   still takes the slot, ties broken by id, so the outcome is deterministic.
//! - [`Ledger::release_bytes`] follows `returnBytesToAvailability`: bytes written for a slot leave the store's
//!   reservation ([`Ledger::store_reserved`]) but stay taken from the availability until the reservation ends.
//! - [`Ledger::update_availability`] tells whether the availability grew, so the slot queue can resume
//!   (seed 001 §5.2.2).

use std::collections::BTreeMap;

use super::{
    Availability, AvailabilityId, AvailabilityPatch, NewAvailability, RequestId, Reservation, ReservationId, U256,
};

/// A change the ledger refused; the ledger is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("no availability with id {0}")]
    UnknownAvailability(AvailabilityId),
    #[error("no reservation with id {0}")]
    UnknownReservation(ReservationId),
    /// A rule broken by the caller's parameters: the message is shown to REST clients (422).
    #[error("{0}")]
    Invalid(String),
    /// The availability cannot take this reservation (not enough free bytes or remaining collateral, disabled…).
    #[error("the availability cannot take this reservation: {0}")]
    DoesNotFit(String),
}

/// What [`Ledger::update_availability`] answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateOutcome {
    /// The availability after the change.
    pub availability: Availability,
    /// The availability may now match slots it did not match before: `free_size`, `duration`,
    /// `min_price_per_byte_per_second` or `total_remaining_collateral` increased (seed 001 §5.2.2), or it was
    /// enabled, or its `until` moved later (or to 0, no limit).
    pub grew: bool,
}

/// The host's availabilities and reservations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    availabilities: BTreeMap<AvailabilityId, Availability>,
    reservations: BTreeMap<ReservationId, Reservation>,
}

/// Most availabilities a host keeps (each is matched against every request).
pub const MAX_AVAILABILITIES: usize = 1000;

fn invalid(message: impl Into<String>) -> LedgerError {
    LedgerError::Invalid(message.into())
}

fn check_until(until: u64, now: u64) -> Result<(), LedgerError> {
    if until != 0 && until < now {
        return Err(invalid(format!("until must be in the future (0 for no limit): {until} is before now ({now})")));
    }
    Ok(())
}

/// Whether `until` (0 = none) admits strictly more request ends than `before`.
fn until_relaxed(before: u64, after: u64) -> bool {
    before != 0 && (after == 0 || after > before)
}

impl Ledger {
    /// A ledger holding what was persisted. Use [`Ledger::check`] to verify the loaded state.
    pub fn new(
        availabilities: impl IntoIterator<Item = Availability>,
        reservations: impl IntoIterator<Item = Reservation>,
    ) -> Self {
        Self {
            availabilities: availabilities.into_iter().map(|a| (a.id, a)).collect(),
            reservations: reservations.into_iter().map(|r| (r.id, r)).collect(),
        }
    }

    /// Every availability, by id.
    pub fn availabilities(&self) -> impl Iterator<Item = &Availability> {
        self.availabilities.values()
    }

    pub fn availability(&self, id: &AvailabilityId) -> Option<&Availability> {
        self.availabilities.get(id)
    }

    /// Every reservation, by id.
    pub fn reservations(&self) -> impl Iterator<Item = &Reservation> {
        self.reservations.values()
    }

    pub fn reservation(&self, id: &ReservationId) -> Option<&Reservation> {
        self.reservations.get(id)
    }

    /// The reservations taken from `availability`, by id.
    pub fn reservations_of(&self, availability: &AvailabilityId) -> Vec<Reservation> {
        self.reservations.values().filter(|r| &r.availability_id == availability).cloned().collect()
    }

    /// The reservation held for slot `slot_index` of `request_id`, if any.
    pub fn reservation_for(&self, request_id: &RequestId, slot_index: u64) -> Option<&Reservation> {
        self.reservations.values().find(|r| &r.request_id == request_id && r.slot_index == slot_index)
    }

    /// Adds an availability (`POST /sales/availability`): `totalSize`, `duration`, `minPricePerBytePerSecond` and
    /// `totalCollateral` > 0 (as the original), `until` 0 or not before `now`, at most [`MAX_AVAILABILITIES`]. All
    /// of it is free.
    pub fn create_availability(
        &mut self,
        id: AvailabilityId,
        new: NewAvailability,
        now: u64,
    ) -> Result<Availability, LedgerError> {
        if self.availabilities.contains_key(&id) {
            return Err(invalid(format!("an availability with id {id} exists already")));
        }
        if new.total_size == 0 {
            return Err(invalid("totalSize must be greater than 0"));
        }
        if new.duration == 0 {
            return Err(invalid("duration must be greater than 0"));
        }
        if new.min_price_per_byte_per_second.is_zero() {
            return Err(invalid("minPricePerBytePerSecond must be greater than 0"));
        }
        if new.total_collateral.is_zero() {
            return Err(invalid("totalCollateral must be greater than 0"));
        }
        if self.availabilities.len() >= MAX_AVAILABILITIES {
            return Err(invalid(format!(
                "a host may have at most {MAX_AVAILABILITIES} availabilities: update or delete one instead"
            )));
        }
        check_until(new.until, now)?;
        let availability = Availability {
            id,
            total_size: new.total_size,
            free_size: new.total_size,
            duration: new.duration,
            min_price_per_byte_per_second: new.min_price_per_byte_per_second,
            total_collateral: new.total_collateral,
            total_remaining_collateral: new.total_collateral,
            enabled: new.enabled,
            until: new.until,
        };
        self.availabilities.insert(id, availability.clone());
        Ok(availability)
    }

    /// Changes an availability (`PATCH /sales/availability/{id}`); absent fields stay.
    ///
    /// `totalSize` may not go below the bytes in use, and `free_size` moves by the same delta; a `totalCollateral`
    /// change moves `total_remaining_collateral` by the same delta, and may not remove collateral that reservations
    /// hold. `totalSize` 0 and `duration` 0 are refused, `until` as in [`Ledger::create_availability`].
    pub fn update_availability(
        &mut self,
        id: &AvailabilityId,
        patch: AvailabilityPatch,
        now: u64,
    ) -> Result<UpdateOutcome, LedgerError> {
        let before = self.availabilities.get(id).ok_or(LedgerError::UnknownAvailability(*id))?;
        let mut after = before.clone();
        if let Some(total_size) = patch.total_size {
            if total_size == 0 {
                return Err(invalid("totalSize must be greater than 0"));
            }
            let used = before.used_size();
            if total_size < used {
                return Err(invalid(format!("totalSize must be at least the {used} bytes in use")));
            }
            after.total_size = total_size;
            after.free_size = total_size - used;
        }
        if let Some(duration) = patch.duration {
            if duration == 0 {
                return Err(invalid("duration must be greater than 0"));
            }
            after.duration = duration;
        }
        if let Some(price) = patch.min_price_per_byte_per_second {
            if price.is_zero() {
                return Err(invalid("minPricePerBytePerSecond must be greater than 0"));
            }
            after.min_price_per_byte_per_second = price;
        }
        if patch.total_collateral.is_some_and(|c| c.is_zero()) {
            return Err(invalid("totalCollateral must be greater than 0"));
        }
        if let Some(total_collateral) = patch.total_collateral {
            after.total_remaining_collateral = if total_collateral >= before.total_collateral {
                before.total_remaining_collateral.saturating_add(total_collateral - before.total_collateral)
            } else {
                let removed = before.total_collateral - total_collateral;
                before.total_remaining_collateral.checked_sub(removed).ok_or_else(|| {
                    let locked = before.total_collateral.saturating_sub(before.total_remaining_collateral);
                    invalid(format!("totalCollateral must be at least the {locked} collateral locked by reservations"))
                })?
            };
            after.total_collateral = total_collateral;
        }
        if let Some(enabled) = patch.enabled {
            after.enabled = enabled;
        }
        if let Some(until) = patch.until {
            check_until(until, now)?;
            let running = self.reservations.values().filter(|r| &r.availability_id == id).map(|r| r.valid_until).max();
            if let Some(end) = running.filter(|end| until != 0 && until < *end) {
                return Err(invalid(format!(
                    "until must not be before the end of a running reservation ({end}): {until}"
                )));
            }
            after.until = until;
        }
        let grew = after.free_size > before.free_size
            || after.duration > before.duration
            || after.min_price_per_byte_per_second > before.min_price_per_byte_per_second
            || after.total_remaining_collateral > before.total_remaining_collateral
            || (after.enabled && !before.enabled)
            || until_relaxed(before.until, after.until);
        self.availabilities.insert(*id, after.clone());
        Ok(UpdateOutcome { availability: after, grew })
    }

    /// The availability that takes a slot of `size` bytes for `duration` seconds at `price_per_byte_per_second`,
    /// locking `collateral`, for a request ending at `valid_until` (seed 001 §5.5.1): enabled, enough free bytes
    /// and remaining collateral, a long enough duration, a low enough minimum price, and an `until` (0 = none) not
    /// before the request's end. Among those, the smallest `free_size` (best fit), ties by id.
    pub fn find_availability(
        &self,
        size: u64,
        duration: u64,
        price_per_byte_per_second: U256,
        collateral: U256,
        valid_until: u64,
    ) -> Option<AvailabilityId> {
        self.availabilities
            .values()
            .filter(|a| {
                a.enabled
                    && a.free_size >= size
                    && a.duration >= duration
                    && a.min_price_per_byte_per_second <= price_per_byte_per_second
                    && a.total_remaining_collateral >= collateral
                    && (a.until == 0 || a.until >= valid_until)
            })
            .min_by_key(|a| (a.free_size, a.id))
            .map(|a| a.id)
    }

    /// Takes `size` bytes and `collateral` from `availability` for slot `slot_index` of `request_id`.
    ///
    /// The availability must be enabled and hold enough free bytes and remaining collateral
    /// ([`LedgerError::DoesNotFit`] otherwise: matching and reserving are two steps, the availability may have
    /// changed between them). A second reservation for the same slot, or a reused id, is [`LedgerError::Invalid`].
    #[allow(clippy::too_many_arguments)]
    pub fn create_reservation(
        &mut self,
        id: ReservationId,
        availability: AvailabilityId,
        size: u64,
        request_id: RequestId,
        slot_index: u64,
        collateral: U256,
        valid_until: u64,
    ) -> Result<Reservation, LedgerError> {
        if self.reservations.contains_key(&id) {
            return Err(invalid(format!("a reservation with id {id} exists already")));
        }
        if let Some(existing) = self.reservation_for(&request_id, slot_index) {
            return Err(invalid(format!(
                "slot {slot_index} of request {request_id} is reserved already (reservation {})",
                existing.id
            )));
        }
        let entry = self.availabilities.get_mut(&availability).ok_or(LedgerError::UnknownAvailability(availability))?;
        if !entry.enabled {
            return Err(LedgerError::DoesNotFit(format!("availability {availability} is disabled")));
        }
        if entry.free_size < size {
            return Err(LedgerError::DoesNotFit(format!(
                "{size} bytes asked, {} free in availability {availability}",
                entry.free_size
            )));
        }
        if entry.total_remaining_collateral < collateral {
            return Err(LedgerError::DoesNotFit(format!(
                "{collateral} collateral asked, {} remaining in availability {availability}",
                entry.total_remaining_collateral
            )));
        }
        entry.free_size -= size;
        entry.total_remaining_collateral -= collateral;
        let reservation = Reservation {
            id,
            availability_id: availability,
            size,
            released: 0,
            request_id,
            slot_index,
            valid_until,
            collateral,
        };
        self.reservations.insert(id, reservation.clone());
        Ok(reservation)
    }

    /// Records `bytes` of the slot written to the store: they leave the store's reservation
    /// (`returnBytesToAvailability`, seed 001 §2.3). Never more than the reservation's size in all; answers the
    /// bytes actually released by this call.
    pub fn release_bytes(&mut self, id: &ReservationId, bytes: u64) -> Result<u64, LedgerError> {
        let reservation = self.reservations.get_mut(id).ok_or(LedgerError::UnknownReservation(*id))?;
        let moved = bytes.min(reservation.size.saturating_sub(reservation.released));
        reservation.released += moved;
        Ok(moved)
    }

    /// Ends a reservation (the sale finished, failed, was cancelled or ignored): its whole size goes back to the
    /// availability's `free_size`, and `returned_collateral` (what the contract paid back, less slashes) to its
    /// `total_remaining_collateral`, never above `total_collateral`. Answers the deleted reservation.
    pub fn delete_reservation(
        &mut self,
        id: &ReservationId,
        returned_collateral: U256,
    ) -> Result<Reservation, LedgerError> {
        let reservation = self.reservations.get(id).ok_or(LedgerError::UnknownReservation(*id))?;
        let availability = self
            .availabilities
            .get_mut(&reservation.availability_id)
            .ok_or(LedgerError::UnknownAvailability(reservation.availability_id))?;
        availability.free_size = availability.free_size.saturating_add(reservation.size).min(availability.total_size);
        availability.total_remaining_collateral = availability
            .total_remaining_collateral
            .saturating_add(returned_collateral)
            .min(availability.total_collateral);
        self.reservations.remove(id).ok_or(LedgerError::UnknownReservation(*id))
    }

    /// Bytes the store must keep reserved for sales: every availability's free bytes, and every reservation's bytes
    /// not yet written.
    pub fn store_reserved(&self) -> u64 {
        let free = self.availabilities.values().fold(0u64, |sum, a| sum.saturating_add(a.free_size));
        self.reservations.values().fold(free, |sum, r| sum.saturating_add(r.size.saturating_sub(r.released)))
    }

    /// Collateral held by reservations.
    pub fn locked_collateral(&self) -> U256 {
        self.reservations.values().fold(U256::ZERO, |sum, r| sum.saturating_add(r.collateral))
    }

    /// Verifies the ledger's invariants: for each availability `free_size + Σ its reservations' size == total_size`
    /// and `total_remaining_collateral <= total_collateral`; every reservation's availability exists and
    /// `released <= size`. Answers a description of the first one broken.
    pub fn check(&self) -> Result<(), String> {
        let mut taken: BTreeMap<AvailabilityId, u128> = BTreeMap::new();
        for r in self.reservations.values() {
            if !self.availabilities.contains_key(&r.availability_id) {
                return Err(format!("reservation {} refers to unknown availability {}", r.id, r.availability_id));
            }
            if r.released > r.size {
                return Err(format!("reservation {} released {} of its {} bytes", r.id, r.released, r.size));
            }
            *taken.entry(r.availability_id).or_default() += u128::from(r.size);
        }
        for a in self.availabilities.values() {
            if a.free_size > a.total_size {
                return Err(format!(
                    "availability {}: free size {} above total size {}",
                    a.id, a.free_size, a.total_size
                ));
            }
            let reserved = taken.get(&a.id).copied().unwrap_or(0);
            if u128::from(a.free_size) + reserved != u128::from(a.total_size) {
                return Err(format!(
                    "availability {}: free size {} + reserved {} != total size {}",
                    a.id, a.free_size, reserved, a.total_size
                ));
            }
            if a.total_remaining_collateral > a.total_collateral {
                return Err(format!(
                    "availability {}: remaining collateral {} above total collateral {}",
                    a.id, a.total_remaining_collateral, a.total_collateral
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sales::B256;
    use proptest::prelude::*;

    const NOW: u64 = 1_000_000;

    fn id(n: u8) -> B256 {
        B256::repeat_byte(n)
    }

    fn new_availability(total_size: u64, total_collateral: u64) -> NewAvailability {
        NewAvailability {
            total_size,
            duration: 1000,
            min_price_per_byte_per_second: U256::from(10),
            total_collateral: U256::from(total_collateral),
            enabled: true,
            until: 0,
        }
    }

    fn ledger_with(availabilities: &[(u8, u64, u64)]) -> Ledger {
        let mut ledger = Ledger::default();
        for &(n, size, collateral) in availabilities {
            ledger.create_availability(id(n), new_availability(size, collateral), NOW).unwrap();
        }
        ledger
    }

    fn reserve(
        ledger: &mut Ledger,
        rid: u8,
        aid: u8,
        size: u64,
        slot: u64,
        collateral: u64,
    ) -> Result<Reservation, LedgerError> {
        ledger.create_reservation(id(rid), id(aid), size, id(0xee), slot, U256::from(collateral), NOW + 500)
    }

    fn invalid_message(result: Result<impl std::fmt::Debug, LedgerError>) -> String {
        match result {
            Err(LedgerError::Invalid(message)) => message,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn create_availability_sets_free_and_remaining() {
        let mut ledger = Ledger::default();
        let a = ledger.create_availability(id(1), new_availability(100, 50), NOW).unwrap();
        assert_eq!(a.free_size, 100);
        assert_eq!(a.total_remaining_collateral, U256::from(50));
        assert_eq!(ledger.availability(&id(1)), Some(&a));
        assert_eq!(ledger.store_reserved(), 100);
        ledger.check().unwrap();
    }

    #[test]
    fn zero_prices_and_collateral_are_refused_as_the_original_does() {
        let mut ledger = ledger_with(&[(1, 100, 50)]);
        let mut free = new_availability(10, 1);
        free.min_price_per_byte_per_second = U256::ZERO;
        assert!(invalid_message(ledger.create_availability(id(2), free, NOW)).contains("minPricePerBytePerSecond"));
        let no_collateral = new_availability(10, 0);
        assert!(invalid_message(ledger.create_availability(id(2), no_collateral, NOW)).contains("totalCollateral"));
        let price = AvailabilityPatch { min_price_per_byte_per_second: Some(U256::ZERO), ..Default::default() };
        assert!(invalid_message(ledger.update_availability(&id(1), price, NOW)).contains("minPricePerBytePerSecond"));
        let collateral = AvailabilityPatch { total_collateral: Some(U256::ZERO), ..Default::default() };
        assert!(invalid_message(ledger.update_availability(&id(1), collateral, NOW)).contains("totalCollateral"));
        assert_eq!(ledger.availabilities().count(), 1, "nothing was added");
    }

    #[test]
    fn until_may_not_cut_a_running_reservation_short() {
        let mut ledger = ledger_with(&[(1, 100, 50)]);
        reserve(&mut ledger, 10, 1, 10, 0, 20).unwrap();
        let until = |until: u64| AvailabilityPatch { until: Some(until), ..Default::default() };
        let message = invalid_message(ledger.update_availability(&id(1), until(NOW + 499), NOW));
        assert!(message.contains("until") && message.contains(&(NOW + 500).to_string()), "{message}");
        ledger.update_availability(&id(1), until(NOW + 500), NOW).unwrap();
        ledger.update_availability(&id(1), until(0), NOW).unwrap();
    }

    #[test]
    fn the_number_of_availabilities_is_bounded() {
        let mut ledger = Ledger::default();
        for n in 0..MAX_AVAILABILITIES {
            let key = B256::from(U256::from(n + 1));
            ledger.create_availability(key, new_availability(10, 1), NOW).unwrap();
        }
        let message = invalid_message(ledger.create_availability(id(0xff), new_availability(10, 1), NOW));
        assert!(message.contains("at most"), "{message}");
    }

    #[test]
    fn create_availability_rules() {
        let mut ledger = Ledger::default();
        assert!(invalid_message(ledger.create_availability(id(1), new_availability(0, 1), NOW)).contains("totalSize"));
        let mut zero_duration = new_availability(10, 1);
        zero_duration.duration = 0;
        assert!(invalid_message(ledger.create_availability(id(1), zero_duration, NOW)).contains("duration"));
        let mut past = new_availability(10, 1);
        past.until = NOW - 1;
        assert!(invalid_message(ledger.create_availability(id(1), past, NOW)).contains("until must be in the future"));
        assert_eq!(ledger.availabilities().count(), 0);

        // until == now and until == 0 are fine.
        ledger.create_availability(id(1), new_availability(10, 1), NOW).unwrap();
        let mut at_now = new_availability(10, 1);
        at_now.until = NOW;
        ledger.create_availability(id(2), at_now, NOW).unwrap();
        assert!(invalid_message(ledger.create_availability(id(2), new_availability(10, 1), NOW)).contains("exists"));
    }

    #[test]
    fn update_unknown_availability() {
        let mut ledger = Ledger::default();
        assert_eq!(
            ledger.update_availability(&id(9), AvailabilityPatch::default(), NOW),
            Err(LedgerError::UnknownAvailability(id(9)))
        );
    }

    #[test]
    fn update_total_size_moves_free_size() {
        let mut ledger = ledger_with(&[(1, 100, 50)]);
        reserve(&mut ledger, 10, 1, 30, 0, 5).unwrap();
        let patch = |size| AvailabilityPatch { total_size: Some(size), ..Default::default() };

        let out = ledger.update_availability(&id(1), patch(150), NOW).unwrap();
        assert_eq!((out.availability.total_size, out.availability.free_size, out.grew), (150, 120, true));
        let out = ledger.update_availability(&id(1), patch(30), NOW).unwrap();
        assert_eq!((out.availability.total_size, out.availability.free_size, out.grew), (30, 0, false));
        ledger.check().unwrap();

        let message = invalid_message(ledger.update_availability(&id(1), patch(29), NOW));
        assert_eq!(message, "totalSize must be at least the 30 bytes in use");
        assert!(invalid_message(ledger.update_availability(&id(1), patch(0), NOW)).contains("totalSize"));
        assert_eq!(ledger.availability(&id(1)).unwrap().total_size, 30);
    }

    #[test]
    fn update_collateral_moves_remaining() {
        let mut ledger = ledger_with(&[(1, 100, 50)]);
        reserve(&mut ledger, 10, 1, 10, 0, 20).unwrap();
        let patch = |c: u64| AvailabilityPatch { total_collateral: Some(U256::from(c)), ..Default::default() };

        let out = ledger.update_availability(&id(1), patch(70), NOW).unwrap();
        assert_eq!(out.availability.total_remaining_collateral, U256::from(50));
        assert!(out.grew);
        let out = ledger.update_availability(&id(1), patch(20), NOW).unwrap();
        assert_eq!(out.availability.total_remaining_collateral, U256::ZERO);
        assert!(!out.grew);
        let message = invalid_message(ledger.update_availability(&id(1), patch(19), NOW));
        assert!(message.contains("totalCollateral") && message.contains("20"), "{message}");
        assert_eq!(ledger.availability(&id(1)).unwrap().total_collateral, U256::from(20));
        ledger.check().unwrap();
    }

    #[test]
    fn update_rejects_bad_fields_atomically() {
        let mut ledger = ledger_with(&[(1, 100, 50)]);
        let before = ledger.clone();
        let bad_duration = AvailabilityPatch { total_size: Some(200), duration: Some(0), ..Default::default() };
        assert!(invalid_message(ledger.update_availability(&id(1), bad_duration, NOW)).contains("duration"));
        let bad_until = AvailabilityPatch { total_size: Some(200), until: Some(NOW - 1), ..Default::default() };
        assert!(invalid_message(ledger.update_availability(&id(1), bad_until, NOW)).contains("until"));
        assert_eq!(ledger, before);
    }

    #[test]
    fn update_grew_flags() {
        let mut ledger = ledger_with(&[(1, 100, 50)]);
        let mut grew = |patch: AvailabilityPatch| ledger.update_availability(&id(1), patch, NOW).unwrap().grew;
        assert!(!grew(AvailabilityPatch::default()));
        assert!(grew(AvailabilityPatch { duration: Some(2000), ..Default::default() }));
        assert!(!grew(AvailabilityPatch { duration: Some(1500), ..Default::default() }));
        assert!(grew(AvailabilityPatch { min_price_per_byte_per_second: Some(U256::from(11)), ..Default::default() }));
        assert!(!grew(AvailabilityPatch { min_price_per_byte_per_second: Some(U256::from(1)), ..Default::default() }));
        assert!(!grew(AvailabilityPatch { enabled: Some(false), ..Default::default() }));
        assert!(grew(AvailabilityPatch { enabled: Some(true), ..Default::default() }));
        assert!(!grew(AvailabilityPatch { until: Some(NOW + 10), ..Default::default() }));
        assert!(grew(AvailabilityPatch { until: Some(NOW + 20), ..Default::default() }));
        assert!(!grew(AvailabilityPatch { until: Some(NOW + 15), ..Default::default() }));
        assert!(grew(AvailabilityPatch { until: Some(0), ..Default::default() }));
        assert!(!grew(AvailabilityPatch { total_size: Some(90), ..Default::default() }));
        assert!(grew(AvailabilityPatch { total_size: Some(91), ..Default::default() }));
    }

    #[test]
    fn find_availability_matching_rules() {
        let mut ledger = ledger_with(&[(1, 100, 50)]);
        let price = U256::from(10);
        let find = |l: &Ledger, size, duration, price, collateral: u64, valid_until| {
            l.find_availability(size, duration, price, U256::from(collateral), valid_until)
        };
        assert_eq!(find(&ledger, 100, 1000, price, 50, NOW + 10), Some(id(1)));
        assert_eq!(find(&ledger, 101, 1000, price, 50, NOW + 10), None, "size");
        assert_eq!(find(&ledger, 100, 1001, price, 50, NOW + 10), None, "duration");
        assert_eq!(find(&ledger, 100, 1000, U256::from(9), 50, NOW + 10), None, "price");
        assert_eq!(find(&ledger, 100, 1000, price, 51, NOW + 10), None, "collateral");

        let until = |u| AvailabilityPatch { until: Some(u), ..Default::default() };
        ledger.update_availability(&id(1), until(NOW + 10), NOW).unwrap();
        assert_eq!(find(&ledger, 1, 1, price, 0, NOW + 10), Some(id(1)));
        assert_eq!(find(&ledger, 1, 1, price, 0, NOW + 11), None, "until");

        let disable = AvailabilityPatch { enabled: Some(false), ..Default::default() };
        ledger.update_availability(&id(1), disable, NOW).unwrap();
        assert_eq!(find(&ledger, 1, 1, price, 0, NOW), None, "disabled");
    }

    #[test]
    fn find_availability_best_fit_ties_by_id() {
        let mut ledger = ledger_with(&[(3, 100, 50), (1, 500, 50), (2, 100, 50)]);
        let find = |l: &Ledger, size| l.find_availability(size, 1, U256::from(10), U256::ZERO, NOW);
        assert_eq!(find(&ledger, 50), Some(id(2)), "smallest free, ties by id");
        assert_eq!(find(&ledger, 101), Some(id(1)));
        reserve(&mut ledger, 10, 3, 40, 0, 0).unwrap();
        assert_eq!(find(&ledger, 50), Some(id(3)), "60 free is the best fit");
        assert_eq!(find(&ledger, 61), Some(id(2)));
    }

    #[test]
    fn create_reservation_takes_bytes_and_collateral() {
        let mut ledger = ledger_with(&[(1, 100, 50)]);
        let r = reserve(&mut ledger, 10, 1, 30, 4, 20).unwrap();
        assert_eq!((r.size, r.released, r.slot_index, r.collateral), (30, 0, 4, U256::from(20)));
        let a = ledger.availability(&id(1)).unwrap();
        assert_eq!((a.free_size, a.total_remaining_collateral), (70, U256::from(30)));
        assert_eq!(ledger.reservation(&id(10)), Some(&r));
        assert_eq!(ledger.reservation_for(&id(0xee), 4), Some(&r));
        assert_eq!(ledger.reservation_for(&id(0xee), 5), None);
        assert_eq!(ledger.reservations_of(&id(1)), vec![r.clone()]);
        assert_eq!(ledger.reservations_of(&id(2)), vec![]);
        assert_eq!(ledger.locked_collateral(), U256::from(20));
        assert_eq!(ledger.store_reserved(), 100);
        ledger.check().unwrap();
    }

    #[test]
    fn create_reservation_refusals() {
        let mut ledger = ledger_with(&[(1, 100, 50)]);
        assert_eq!(reserve(&mut ledger, 10, 2, 1, 0, 0), Err(LedgerError::UnknownAvailability(id(2))));
        assert!(matches!(reserve(&mut ledger, 10, 1, 101, 0, 0), Err(LedgerError::DoesNotFit(_))));
        assert!(matches!(reserve(&mut ledger, 10, 1, 1, 0, 51), Err(LedgerError::DoesNotFit(_))));
        reserve(&mut ledger, 10, 1, 100, 0, 50).unwrap();
        assert!(invalid_message(reserve(&mut ledger, 11, 1, 0, 0, 0)).contains("reserved already"));
        assert!(invalid_message(reserve(&mut ledger, 10, 1, 0, 1, 0)).contains("exists already"));

        let mut ledger = ledger_with(&[(1, 100, 50)]);
        ledger
            .update_availability(&id(1), AvailabilityPatch { enabled: Some(false), ..Default::default() }, NOW)
            .unwrap();
        let refused = reserve(&mut ledger, 10, 1, 1, 0, 0);
        assert!(matches!(&refused, Err(LedgerError::DoesNotFit(m)) if m.contains("disabled")), "{refused:?}");
        assert_eq!(ledger.reservations().count(), 0);
    }

    #[test]
    fn release_bytes_is_capped() {
        let mut ledger = ledger_with(&[(1, 100, 50)]);
        reserve(&mut ledger, 10, 1, 30, 0, 0).unwrap();
        assert_eq!(ledger.release_bytes(&id(10), 10), Ok(10));
        assert_eq!(ledger.store_reserved(), 90);
        assert_eq!(ledger.release_bytes(&id(10), 25), Ok(20));
        assert_eq!(ledger.release_bytes(&id(10), 1), Ok(0));
        assert_eq!(ledger.reservation(&id(10)).unwrap().released, 30);
        assert_eq!(ledger.store_reserved(), 70);
        assert_eq!(ledger.availability(&id(1)).unwrap().free_size, 70, "released bytes stay taken");
        assert_eq!(ledger.release_bytes(&id(11), 1), Err(LedgerError::UnknownReservation(id(11))));
        ledger.check().unwrap();
    }

    #[test]
    fn delete_reservation_returns_size_and_collateral() {
        let mut ledger = ledger_with(&[(1, 100, 50)]);
        reserve(&mut ledger, 10, 1, 30, 0, 20).unwrap();
        reserve(&mut ledger, 11, 1, 30, 1, 20).unwrap();
        ledger.release_bytes(&id(10), 30).unwrap();

        let deleted = ledger.delete_reservation(&id(10), U256::from(15)).unwrap();
        assert_eq!(deleted.id, id(10));
        let a = ledger.availability(&id(1)).unwrap();
        assert_eq!((a.free_size, a.total_remaining_collateral), (70, U256::from(25)), "5 slashed");
        assert_eq!(ledger.delete_reservation(&id(10), U256::ZERO), Err(LedgerError::UnknownReservation(id(10))));

        // Returned collateral never lifts remaining above total.
        ledger.delete_reservation(&id(11), U256::from(1000)).unwrap();
        let a = ledger.availability(&id(1)).unwrap();
        assert_eq!((a.free_size, a.total_remaining_collateral), (100, U256::from(50)));
        assert_eq!(ledger.locked_collateral(), U256::ZERO);
        ledger.check().unwrap();
    }

    #[test]
    fn check_reports_broken_invariants() {
        let ledger = ledger_with(&[(1, 100, 50)]);
        let a = ledger.availability(&id(1)).unwrap().clone();
        let r = Reservation {
            id: id(10),
            availability_id: id(1),
            size: 30,
            released: 0,
            request_id: id(0xee),
            slot_index: 0,
            valid_until: 0,
            collateral: U256::ZERO,
        };
        // free_size not reduced by the reservation.
        let err = Ledger::new([a.clone()], [r.clone()]).check().unwrap_err();
        assert!(err.contains("free size 100 + reserved 30 != total size 100"), "{err}");
        let taken = Availability { free_size: 70, ..a.clone() };
        Ledger::new([taken.clone()], [r.clone()]).check().unwrap();
        let over_released = Reservation { released: 31, ..r.clone() };
        assert!(Ledger::new([taken.clone()], [over_released]).check().unwrap_err().contains("released"));
        let orphan = Reservation { availability_id: id(2), ..r.clone() };
        assert!(Ledger::new([taken], [orphan]).check().unwrap_err().contains("unknown availability"));
        let too_free = Availability { free_size: 101, ..a.clone() };
        assert!(Ledger::new([too_free], []).check().unwrap_err().contains("above total size"));
        let too_rich = Availability { total_remaining_collateral: U256::from(51), ..a };
        assert!(Ledger::new([too_rich], []).check().unwrap_err().contains("remaining collateral"));
    }

    #[derive(Debug, Clone)]
    enum Event {
        Reserve {
            size: u64,
            duration: u64,
            price: u64,
            collateral: u64,
        },
        Release {
            pick: usize,
            bytes: u64,
        },
        Patch {
            pick: usize,
            total_size: Option<u64>,
            duration: Option<u64>,
            total_collateral: Option<u64>,
            enabled: Option<bool>,
        },
        Delete {
            pick: usize,
            returned_percent: u64,
        },
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            3 => (1u64..400, 1u64..1200, 5u64..20, 0u64..60)
                .prop_map(|(size, duration, price, collateral)| Event::Reserve { size, duration, price, collateral }),
            2 => (any::<usize>(), 0u64..300).prop_map(|(pick, bytes)| Event::Release { pick, bytes }),
            1 => (
                any::<usize>(),
                proptest::option::of(0u64..1500),
                proptest::option::of(0u64..1500),
                proptest::option::of(0u64..300),
                proptest::option::of(any::<bool>()),
            )
                .prop_map(|(pick, total_size, duration, total_collateral, enabled)| Event::Patch {
                    pick,
                    total_size,
                    duration,
                    total_collateral,
                    enabled
                }),
            2 => (any::<usize>(), 0u64..=100).prop_map(|(pick, returned_percent)| Event::Delete { pick, returned_percent }),
        ]
    }

    fn pick<T: Clone>(items: &[T], index: usize) -> Option<T> {
        if items.is_empty() { None } else { items.get(index % items.len()).cloned() }
    }

    proptest! {
        #[test]
        fn random_events_keep_the_invariant(
            sizes in proptest::collection::vec((1u64..1000, 1u64..200), 1..4),
            events in proptest::collection::vec(event(), 0..60),
        ) {
            let mut ledger = Ledger::default();
            for (n, &(size, collateral)) in sizes.iter().enumerate() {
                ledger.create_availability(id(n as u8 + 1), new_availability(size, collateral), NOW).unwrap();
            }
            let mut all_returned_in_full = true;
            let mut next_id = 0x40u8;
            for event in events {
                let reservation_ids: Vec<B256> = ledger.reservations().map(|r| r.id).collect();
                let availability_ids: Vec<B256> = ledger.availabilities().map(|a| a.id).collect();
                match event {
                    Event::Reserve { size, duration, price, collateral } => {
                        let collateral = U256::from(collateral);
                        if let Some(aid) = ledger.find_availability(size, duration, U256::from(price), collateral, NOW + 10) {
                            let before = ledger.availability(&aid).unwrap().clone();
                            next_id = next_id.wrapping_add(1);
                            let r = ledger
                                .create_reservation(id(next_id), aid, size, id(next_id), 0, collateral, NOW + 10)
                                .unwrap();
                            let after = ledger.availability(&aid).unwrap();
                            prop_assert_eq!(after.free_size, before.free_size - r.size);
                            prop_assert_eq!(after.total_remaining_collateral, before.total_remaining_collateral - collateral);
                        }
                    }
                    Event::Release { pick: p, bytes } => {
                        if let Some(rid) = pick(&reservation_ids, p) {
                            let before = ledger.reservation(&rid).unwrap().clone();
                            let moved = ledger.release_bytes(&rid, bytes).unwrap();
                            prop_assert_eq!(moved, bytes.min(before.size - before.released));
                        }
                    }
                    Event::Patch { pick: p, total_size, duration, total_collateral, enabled } => {
                        if let Some(aid) = pick(&availability_ids, p) {
                            let before = ledger.clone();
                            let patch = AvailabilityPatch {
                                total_size,
                                duration,
                                min_price_per_byte_per_second: None,
                                total_collateral: total_collateral.map(U256::from),
                                enabled,
                                until: None,
                            };
                            match ledger.update_availability(&aid, patch, NOW) {
                                Ok(_) => {}
                                Err(LedgerError::Invalid(_)) => prop_assert_eq!(&ledger, &before),
                                Err(other) => prop_assert!(false, "unexpected {:?}", other),
                            }
                        }
                    }
                    Event::Delete { pick: p, returned_percent } => {
                        if let Some(rid) = pick(&reservation_ids, p) {
                            let collateral = ledger.reservation(&rid).unwrap().collateral;
                            let returned = collateral * U256::from(returned_percent) / U256::from(100);
                            all_returned_in_full &= returned == collateral;
                            ledger.delete_reservation(&rid, returned).unwrap();
                        }
                    }
                }
                prop_assert_eq!(ledger.check(), Ok(()));
            }

            let remaining: Vec<B256> = ledger.reservations().map(|r| r.id).collect();
            for rid in remaining {
                let collateral = ledger.reservation(&rid).unwrap().collateral;
                ledger.delete_reservation(&rid, collateral).unwrap();
                prop_assert_eq!(ledger.check(), Ok(()));
            }
            prop_assert_eq!(ledger.locked_collateral(), U256::ZERO);
            let total: u64 = ledger.availabilities().map(|a| a.total_size).sum();
            prop_assert_eq!(ledger.store_reserved(), total);
            for a in ledger.availabilities() {
                prop_assert_eq!(a.free_size, a.total_size);
                if all_returned_in_full {
                    prop_assert_eq!(a.total_remaining_collateral, a.total_collateral);
                }
            }
        }
    }
}
