//! Quota bookkeeping shared by the StoreActor, running uploads and space queries.
//!
//! `used` and `reserved` are the persisted counters; on top of them, bytes are *claimed* in memory by work in
//! flight: an upload claims block by block as it writes, a network download claims its whole dataset when it
//! starts (or resumes), a standalone block or manifest while it is written. A new claim is granted only when
//! `used + reserved + claimed ≤ max`. Claims are reported as reserved in [`Space`]. Claims live only in memory,
//! so a crash frees them; downloads claim again when they resume.
//!
//! Inside the store a claim is a [`QuotaClaim`]: it is released when dropped, so no early return can leak it,
//! and [`QuotaClaim::settle`] turns it into `used` in the same step as the counters change. Uploads, which
//! claim from their own threads, use [`QuotaGate::claim`] and [`QuotaGate::release`] and hand their total to
//! the commit, which adopts it as a `QuotaClaim`.

use super::StoreError;
use super::repo::Counters;
use std::sync::{Arc, Mutex, MutexGuard};

/// The shared quota state.
#[derive(Debug, Clone)]
pub struct QuotaGate {
    inner: Arc<Mutex<QuotaState>>,
}

#[derive(Debug, Clone, Copy)]
struct QuotaState {
    max: u64,
    counters: Counters,
    claimed: u64,
}

/// The repository's space summary (the REST `Space`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    pub total_blocks: u64,
    pub quota_max_bytes: u64,
    pub quota_used_bytes: u64,
    /// Persisted reservations plus every claim in flight (uploads, downloads).
    pub quota_reserved_bytes: u64,
    /// The in-flight part of `quota_reserved_bytes`.
    pub pending_bytes: u64,
}

impl QuotaGate {
    pub(super) fn new(max: u64, counters: Counters) -> Self {
        Self { inner: Arc::new(Mutex::new(QuotaState { max, counters, claimed: 0 })) }
    }

    fn lock(&self) -> MutexGuard<'_, QuotaState> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Claims `bytes` for a running upload, or says how much is missing. The caller must [`QuotaGate::release`]
    /// it or hand it to the commit.
    pub fn claim(&self, bytes: u64) -> Result<(), StoreError> {
        let mut state = self.lock();
        let taken = state.counters.used.saturating_add(state.counters.reserved).saturating_add(state.claimed);
        let free = state.max.saturating_sub(taken);
        if bytes > free {
            return Err(StoreError::QuotaExceeded { needed: bytes, free, max: state.max });
        }
        state.claimed += bytes;
        Ok(())
    }

    /// Returns an unused claim made with [`QuotaGate::claim`].
    pub fn release(&self, bytes: u64) {
        let mut state = self.lock();
        state.claimed = state.claimed.saturating_sub(bytes);
    }

    /// Claims `bytes` as a guard that releases them when dropped.
    pub fn claim_guarded(&self, bytes: u64) -> Result<QuotaClaim, StoreError> {
        self.claim(bytes)?;
        Ok(QuotaClaim { gate: self.clone(), bytes })
    }

    /// Claims `bytes` even beyond the quota (a download resumed after the quota shrank: its data is on disk).
    pub(super) fn claim_forced(&self, bytes: u64) -> QuotaClaim {
        let mut state = self.lock();
        state.claimed = state.claimed.saturating_add(bytes);
        QuotaClaim { gate: self.clone(), bytes }
    }

    /// Takes over `bytes` already claimed with [`QuotaGate::claim`] (an upload's total at its commit).
    pub(super) fn adopt(&self, bytes: u64) -> QuotaClaim {
        QuotaClaim { gate: self.clone(), bytes }
    }

    /// Sets the persisted reservation counter in memory (the caller persists it), refusing growth past the
    /// quota. Answers the counters before.
    pub(super) fn set_reserved(&self, reserved: u64) -> Result<Counters, StoreError> {
        let mut state = self.lock();
        let before = state.counters;
        if reserved > before.reserved {
            let taken = before.used.saturating_add(before.reserved).saturating_add(state.claimed);
            let free = state.max.saturating_sub(taken);
            let needed = reserved - before.reserved;
            if needed > free {
                return Err(StoreError::QuotaExceeded { needed, free, max: state.max });
            }
        }
        state.counters.reserved = reserved;
        Ok(before)
    }

    /// Puts the reservation counter back (a failed write).
    pub(super) fn set_reserved_unchecked(&self, reserved: u64) {
        self.lock().counters.reserved = reserved;
    }

    pub(super) fn counters(&self) -> Counters {
        self.lock().counters
    }

    pub(super) fn set_counters(&self, counters: Counters) {
        self.lock().counters = counters;
    }

    /// The current space summary.
    pub fn space(&self) -> Space {
        let state = self.lock();
        Space {
            total_blocks: state.counters.total_blocks,
            quota_max_bytes: state.max,
            quota_used_bytes: state.counters.used,
            quota_reserved_bytes: state.counters.reserved.saturating_add(state.claimed),
            pending_bytes: state.claimed,
        }
    }
}

/// Bytes claimed for one piece of work; released on drop unless settled.
#[derive(Debug)]
#[must_use = "a claim is released as soon as it is dropped"]
pub struct QuotaClaim {
    gate: QuotaGate,
    bytes: u64,
}

impl QuotaClaim {
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Releases what this claim holds beyond `bytes`.
    pub(super) fn shrink_to(&mut self, bytes: u64) {
        if self.bytes > bytes {
            self.gate.release(self.bytes - bytes);
            self.bytes = bytes;
        }
    }

    /// Adds `other`'s bytes to this claim.
    pub(super) fn absorb(&mut self, mut other: QuotaClaim) {
        self.bytes += std::mem::take(&mut other.bytes);
    }

    /// The work is committed: installs the new `counters` (where the bytes are now `used`) and drops the
    /// claim, in one step so no claim sees the bytes counted twice or not at all.
    pub(super) fn settle(mut self, counters: Counters) {
        let mut state = self.gate.lock();
        state.counters = counters;
        state.claimed = state.claimed.saturating_sub(std::mem::take(&mut self.bytes));
    }
}

impl Drop for QuotaClaim {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.gate.release(self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(max: u64) -> QuotaGate {
        QuotaGate::new(max, Counters { used: 10, reserved: 5, total_blocks: 1 })
    }

    #[test]
    fn claims_are_released_on_drop_and_show_as_reserved() {
        let gate = gate(100);
        let claim = gate.claim_guarded(80).expect("fits");
        let space = gate.space();
        assert_eq!((space.quota_reserved_bytes, space.pending_bytes), (85, 80));
        assert!(matches!(gate.claim_guarded(6), Err(StoreError::QuotaExceeded { needed: 6, free: 5, max: 100 })));
        drop(claim);
        assert_eq!((gate.space().quota_reserved_bytes, gate.space().pending_bytes), (5, 0));
        let _fits = gate.claim_guarded(85).expect("all free again");
    }

    #[test]
    fn settling_moves_the_claim_into_used_at_once() {
        let gate = gate(100);
        let mut claim = gate.claim_guarded(30).expect("fits");
        claim.absorb(gate.claim_guarded(20).expect("fits"));
        assert_eq!(claim.bytes(), 50);
        assert_eq!(gate.space().pending_bytes, 50);
        claim.settle(Counters { used: 60, reserved: 5, total_blocks: 2 });
        let space = gate.space();
        assert_eq!((space.quota_used_bytes, space.pending_bytes, space.quota_reserved_bytes), (60, 0, 5));
    }

    #[test]
    fn forced_and_adopted_claims_are_released_too() {
        let gate = gate(20);
        let forced = gate.claim_forced(50);
        assert_eq!(gate.space().pending_bytes, 50);
        assert!(gate.claim(1).is_err(), "beyond the quota");
        drop(forced);
        gate.claim(3).expect("raw claim");
        drop(gate.adopt(3));
        assert_eq!(gate.space().pending_bytes, 0);
    }
}
