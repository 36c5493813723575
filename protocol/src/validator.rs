//! The validator's rules (issue 14; marketplace-facts §5.5 and §9), as pure code the ValidatorActor executes:
//! which slots a validator watches ([`Watchlist`]: its group, its bound), and when it acts ([`due_period`]:
//! one pass a period, just after the period ended, inside the contract's marking window).
//!
//! A slot belongs to group `first 8 bytes of its SlotId, big-endian, mod groups` (the original's
//! `groupIndexForSlotId`), so validators with the same group count and different indices split the slots.

use crate::sales::{RequestId, SlotId};
use std::collections::BTreeMap;

/// A validator's share of the slots: group `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Groups {
    count: u16,
    index: u16,
}

/// Why a group setting is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupsError {
    #[error("validator groups must be between 2 and 65535, not {0}")]
    Count(u32),
    #[error("validator group index {index} is not below the number of groups ({count})")]
    Index { index: u32, count: u32 },
}

impl Groups {
    /// Group `index` of `count` (2 ≤ count ≤ 65535, index < count, as the original's flags).
    pub fn new(count: u32, index: u32) -> Result<Self, GroupsError> {
        let count16 = u16::try_from(count).ok().filter(|c| *c >= 2).ok_or(GroupsError::Count(count))?;
        if index >= count {
            return Err(GroupsError::Index { index, count });
        }
        // index < count ≤ u16::MAX.
        let index = u16::try_from(index).map_err(|_| GroupsError::Index { index, count })?;
        Ok(Self { count: count16, index })
    }

    pub fn count(&self) -> u16 {
        self.count
    }

    pub fn index(&self) -> u16 {
        self.index
    }

    /// Whether `slot` is in this group.
    pub fn contains(&self, slot: &SlotId) -> bool {
        group_of(slot, self.count) == self.index
    }
}

/// The group of `slot` among `count` groups (`count` ≥ 1).
pub fn group_of(slot: &SlotId, count: u16) -> u16 {
    let first = slot.iter().take(8).fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte));
    // The remainder is below `count`, so it fits.
    (first % u64::from(count.max(1))) as u16
}

/// A watched slot: which request and index it is (for logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchedSlot {
    pub request: RequestId,
    pub index: u64,
}

/// What [`Watchlist::offer`] did with a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    Added,
    AlreadyWatched,
    /// Another group's slot.
    OtherGroup,
    /// The list holds `max_slots` already.
    Full,
}

/// The slots a validator watches: its group's only, at most `max_slots` (0: no bound).
#[derive(Debug, Clone)]
pub struct Watchlist {
    max_slots: usize,
    groups: Option<Groups>,
    slots: BTreeMap<SlotId, WatchedSlot>,
}

impl Watchlist {
    pub fn new(max_slots: usize, groups: Option<Groups>) -> Self {
        Self { max_slots, groups, slots: BTreeMap::new() }
    }

    /// A slot that was filled: watched if it is this validator's and there is room.
    pub fn offer(&mut self, slot: SlotId, watched: WatchedSlot) -> Offer {
        if self.groups.is_some_and(|g| !g.contains(&slot)) {
            return Offer::OtherGroup;
        }
        if self.slots.contains_key(&slot) {
            return Offer::AlreadyWatched;
        }
        if self.max_slots != 0 && self.slots.len() >= self.max_slots {
            return Offer::Full;
        }
        self.slots.insert(slot, watched);
        Offer::Added
    }

    /// A slot that is no longer filled (freed, or its request ended); whether it was watched.
    pub fn remove(&mut self, slot: &SlotId) -> bool {
        self.slots.remove(slot).is_some()
    }

    pub fn contains(&self, slot: &SlotId) -> bool {
        self.slots.contains_key(slot)
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The watched slots, in id order.
    pub fn slots(&self) -> impl Iterator<Item = (&SlotId, &WatchedSlot)> {
        self.slots.iter()
    }
}

/// The period holding chain time `time` (periods are aligned to the Unix epoch; `period` > 0 seconds).
pub fn period_of(time: u64, period: u64) -> u64 {
    time / period.max(1)
}

/// The first second after period `p` (`periodEnd` in the contract).
pub fn period_end(p: u64, period: u64) -> u64 {
    p.saturating_add(1).saturating_mul(period.max(1))
}

/// The period whose proofs a validator that reads chain time `now` should check, if any: the one before the
/// current, once it has ended (the contract takes a mark only when `periodEnd(missed) < block.timestamp`), and
/// not checked already (`last_checked`). Periods skipped while the validator was away are not gone back to:
/// their marking windows have closed.
pub fn due_period(now: u64, period: u64, last_checked: Option<u64>) -> Option<u64> {
    let target = period_of(now, period).checked_sub(1)?;
    let ended = period_end(target, period) < now;
    (ended && last_checked.is_none_or(|last| last < target)).then_some(target)
}

/// Whether a mark for period `missed` can still land at chain time `now`: the contract refuses it from
/// `periodEnd(missed) + timeout` on (`Proofs_ValidationTimedOut`).
pub fn within_marking_window(missed: u64, now: u64, period: u64, timeout: u64) -> bool {
    let end = period_end(missed, period);
    end < now && now < end.saturating_add(timeout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::B256;

    fn slot(first: u64, rest: u8) -> SlotId {
        let bytes: Vec<u8> = first.to_be_bytes().into_iter().chain(std::iter::repeat_n(rest, 24)).collect();
        B256::from_slice(&bytes)
    }

    fn watched() -> WatchedSlot {
        WatchedSlot { request: B256::ZERO, index: 0 }
    }

    #[test]
    fn the_group_is_the_first_eight_bytes_big_endian_mod_count() {
        assert_eq!(group_of(&slot(0, 0xff), 2), 0);
        assert_eq!(group_of(&slot(7, 0xff), 2), 1);
        assert_eq!(group_of(&slot(7, 0xff), 5), 2);
        // Only the first 8 bytes count, read big-endian: 0x0100…00 = 2^56.
        assert_eq!(group_of(&slot(1 << 56, 0x00), 3), ((1u64 << 56) % 3) as u16);
        assert_eq!(group_of(&slot(u64::MAX, 0x13), 65535), (u64::MAX % 65535) as u16);
    }

    #[test]
    fn group_settings_follow_the_original_flags() {
        assert_eq!(Groups::new(1, 0), Err(GroupsError::Count(1)));
        assert_eq!(Groups::new(65536, 0), Err(GroupsError::Count(65536)));
        assert_eq!(Groups::new(4, 4), Err(GroupsError::Index { index: 4, count: 4 }));
        let g = Groups::new(65535, 65534).unwrap();
        assert_eq!((g.count(), g.index()), (65535, 65534));
    }

    #[test]
    fn validators_of_every_group_split_the_slots_exactly() {
        let groups: Vec<Groups> = (0..3).map(|i| Groups::new(3, i).unwrap()).collect();
        let mut lists: Vec<Watchlist> = groups.iter().map(|g| Watchlist::new(0, Some(*g))).collect();
        for n in 0..300u64 {
            let id = B256::from(alloy_primitives::keccak256(n.to_le_bytes()));
            let taken: Vec<Offer> = lists.iter_mut().map(|l| l.offer(id, watched())).collect();
            assert_eq!(taken.iter().filter(|o| **o == Offer::Added).count(), 1, "{taken:?}");
            assert_eq!(taken.iter().filter(|o| **o == Offer::OtherGroup).count(), 2, "{taken:?}");
        }
        assert_eq!(lists.iter().map(Watchlist::len).sum::<usize>(), 300);
        // Keccak spreads them: no group is empty.
        assert!(lists.iter().all(|l| l.len() > 50), "{:?}", lists.iter().map(Watchlist::len).collect::<Vec<_>>());
    }

    #[test]
    fn the_list_is_bounded_and_frees_room_on_remove() {
        let mut list = Watchlist::new(2, None);
        assert_eq!(list.offer(slot(1, 0), watched()), Offer::Added);
        assert_eq!(list.offer(slot(1, 0), watched()), Offer::AlreadyWatched);
        assert_eq!(list.offer(slot(2, 0), watched()), Offer::Added);
        assert_eq!(list.offer(slot(3, 0), watched()), Offer::Full);
        assert!(list.remove(&slot(1, 0)));
        assert!(!list.remove(&slot(1, 0)));
        assert_eq!(list.offer(slot(3, 0), watched()), Offer::Added);
        assert_eq!(list.len(), 2);
        let mut unbounded = Watchlist::new(0, None);
        for n in 0..5000 {
            assert_eq!(unbounded.offer(slot(n, 1), watched()), Offer::Added);
        }
    }

    #[test]
    fn a_validator_checks_each_period_once_just_after_it_and_marks_inside_the_timeout() {
        // 10-second periods: period 5 is [50, 60).
        assert_eq!(period_of(59, 10), 5);
        assert_eq!(period_end(5, 10), 60);
        assert_eq!(due_period(5, 10, None), None, "period 0: nothing before it");
        assert_eq!(due_period(60, 10, Some(4)), None, "period 5 ends at 60: not yet past it");
        assert_eq!(due_period(61, 10, Some(4)), Some(5));
        assert_eq!(due_period(69, 10, Some(5)), None, "checked once");
        assert_eq!(due_period(71, 10, Some(5)), Some(6));
        assert_eq!(due_period(95, 10, Some(5)), Some(8), "skipped periods are not gone back to");
        assert_eq!(due_period(61, 10, None), Some(5), "a validator that just started checks the last period");
        // Missed period 5, timeout 4: marks land at 61, 62, 63, not at 60 (not ended) or 64 (timed out).
        assert!(!within_marking_window(5, 60, 10, 4));
        assert!((61..64).all(|now| within_marking_window(5, now, 10, 4)));
        assert!(!within_marking_window(5, 64, 10, 4));
    }
}
