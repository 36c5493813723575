//! Proof timing: when a host proves a slot and sends the proof, as pure functions of chain time, the period
//! length, the slot's pointer and the contract's downtime (marketplace-facts §5). The SalesAgent reads the chain
//! and sleeps; every decision about time is taken here.
//!
//! - A challenge stays the same for a whole period unless the slot's pointer wraps (255 → 0); while the pointer is
//!   within the last `downtime` steps before the wrap, no proof is required and the challenge may change.
//! - A **fill** proves when at least half of the period is left and the pointer is out of the downtime, else at the
//!   next period's start; a fill's proof finished too late for its period is made again for the next (up to
//!   [`FILL_PROOF_ATTEMPTS`] times).
//! - A **periodic proof** is made at once; if the pointer is about to wrap ([`WRAP_MARGIN`]) or wrapped while it
//!   was made, it is made again after the wrap (up to [`PERIODIC_ATTEMPTS`] times within the period); one that
//!   cannot be mined within its period ([`MINING_MARGIN_SECS`]) is not sent.
//! - A transient chain failure is retried after [`ProofTiming::retry_wait`]: a few seconds, never more than a
//!   quarter of a period (a proof may still be due in this one).

/// Proofs a periodic proof may take within its period when the challenge changes under it (a pointer wrap).
pub const PERIODIC_ATTEMPTS: u32 = 3;
/// Proofs a fill may make, one per period, when each finishes too late for its period.
pub const FILL_PROOF_ATTEMPTS: u32 = 3;
/// Blocks a periodic proof's transaction is given to be mined before the pointer wraps and the challenge changes;
/// a proof finished closer to the wrap is made again after it.
pub const WRAP_MARGIN: u8 = 2;
/// Seconds a proof's transaction is given to be mined before its period ends.
pub const MINING_MARGIN_SECS: u64 = 2;
/// Longest wait before a transient failure is retried.
pub const RETRY_DELAY_SECS: u64 = 5;

/// The proof timing of one marketplace: its period and downtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProofTiming {
    period: u64,
    downtime: u8,
}

/// What to do with a proof once it is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterProof {
    /// Send it (a fill's proof in time).
    Send,
    /// A periodic proof in time: check that the challenge did not change and will not with the next blocks
    /// ([`ProofTiming::challenge_check`]).
    CheckChallenge,
    /// A fill's proof too late for its period: prove again at the next period's start.
    NextPeriod,
    /// A periodic proof whose period is over: read the next period's status at once.
    PeriodEnded,
    /// Too late, and no attempt left.
    TooLate,
}

/// What the challenge check of a periodic proof decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeCheck {
    /// The challenge holds: send the proof.
    Send,
    /// The pointer wraps (or wrapped): wait for the wrap, then prove again.
    ProveAfterWrap,
    /// The challenge kept changing: give the period up.
    GiveUp,
}

impl ProofTiming {
    /// Periods of `period` seconds (0 is taken as 1) and a downtime of `downtime` pointer steps.
    pub fn new(period: u64, downtime: u8) -> ProofTiming {
        ProofTiming { period: period.max(1), downtime }
    }

    /// Seconds per period.
    pub fn period(&self) -> u64 {
        self.period
    }

    /// The period chain time `now` falls in.
    pub fn period_of(&self, now: u64) -> u64 {
        now / self.period
    }

    /// When the period of `now` ends (the next one starts).
    pub fn period_end(&self, now: u64) -> u64 {
        self.end_of(self.period_of(now))
    }

    /// When period number `period` ends.
    pub fn end_of(&self, period: u64) -> u64 {
        period.saturating_add(1).saturating_mul(self.period)
    }

    /// Seconds from `now` to one second into the next period.
    pub fn until_next_period(&self, now: u64) -> u64 {
        self.period_end(now).saturating_sub(now).saturating_add(1)
    }

    /// At least half of `now`'s period is left.
    pub fn half_left(&self, now: u64) -> bool {
        self.period_end(now).saturating_sub(now).saturating_mul(2) >= self.period
    }

    /// The pointer is within the downtime before a wrap: no proof is required, and the challenge may change.
    pub fn in_downtime(&self, pointer: u8) -> bool {
        u16::from(pointer) >= 256 - u16::from(self.downtime)
    }

    /// A fill's proof may be made at `now` with the slot's `pointer`: out of the downtime, half the period left.
    pub fn fill_proof_now(&self, now: u64, pointer: u8) -> bool {
        !self.in_downtime(pointer) && self.half_left(now)
    }

    /// A fill waiting for the pointer to leave the downtime may wait another second before its period's `end`.
    pub fn may_wait_for_pointer(now: u64, end: u64) -> bool {
        now.saturating_add(1) < end
    }

    /// The pointer wraps within the next [`WRAP_MARGIN`] blocks.
    pub fn near_wrap(pointer: u8) -> bool {
        pointer >= u8::MAX - WRAP_MARGIN
    }

    /// A proof made for the period ending at `deadline`, finished at `now`, after `attempts` proofs: send it, check
    /// its challenge, or make another.
    pub fn after_proof(&self, periodic: bool, now: u64, deadline: u64, attempts: u32) -> AfterProof {
        if now.saturating_add(MINING_MARGIN_SECS) < deadline {
            return if periodic { AfterProof::CheckChallenge } else { AfterProof::Send };
        }
        if periodic && now >= deadline {
            AfterProof::PeriodEnded
        } else if periodic || attempts >= FILL_PROOF_ATTEMPTS {
            AfterProof::TooLate
        } else {
            AfterProof::NextPeriod
        }
    }

    /// A periodic proof made against a challenge: the pointer now, whether the challenge is still the one proven,
    /// after `attempts` proofs this period.
    pub fn challenge_check(pointer: u8, same_challenge: bool, attempts: u32) -> ChallengeCheck {
        if !Self::near_wrap(pointer) && same_challenge {
            ChallengeCheck::Send
        } else if attempts >= PERIODIC_ATTEMPTS {
            ChallengeCheck::GiveUp
        } else {
            ChallengeCheck::ProveAfterWrap
        }
    }

    /// How long a transient failure waits before its state is tried again (seconds).
    pub fn retry_wait(&self) -> u64 {
        (self.period / 4).clamp(1, RETRY_DELAY_SECS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_and_their_ends() {
        let timing = ProofTiming::new(10, 16);
        assert_eq!((timing.period_of(0), timing.period_of(9), timing.period_of(10)), (0, 0, 1));
        assert_eq!((timing.period_end(0), timing.period_end(9), timing.period_end(10)), (10, 10, 20));
        assert_eq!((timing.end_of(0), timing.end_of(1)), (10, 20));
        assert_eq!(timing.until_next_period(7), 4, "one second into the next period");
        assert_eq!(timing.until_next_period(10), 11);
        // No panic, no overflow at the edges.
        let zero = ProofTiming::new(0, 0);
        assert_eq!((zero.period(), zero.period_end(5), zero.until_next_period(5)), (1, 6, 2));
        assert_eq!(ProofTiming::new(10, 0).period_end(u64::MAX), u64::MAX);
        assert!(ProofTiming::new(u64::MAX, 0).half_left(0));
    }

    #[test]
    fn a_fill_proves_with_half_a_period_left_and_the_pointer_out_of_the_downtime() {
        let timing = ProofTiming::new(10, 16);
        assert!(timing.fill_proof_now(100, 0));
        assert!(timing.fill_proof_now(105, 239), "exactly half left; the last step before the downtime");
        assert!(!timing.fill_proof_now(106, 0), "less than half left");
        assert!(!timing.fill_proof_now(100, 240), "in the downtime (256 - 16)");
        assert!(!timing.fill_proof_now(100, 255));
        assert!(!ProofTiming::new(10, 0).in_downtime(255), "no downtime");
        assert!(ProofTiming::new(10, 255).in_downtime(1));
        assert!(ProofTiming::may_wait_for_pointer(108, 110) && !ProofTiming::may_wait_for_pointer(109, 110));
        assert!(!ProofTiming::may_wait_for_pointer(111, 110), "the period it waited in is over");
    }

    #[test]
    fn a_proof_is_sent_only_when_it_can_be_mined_in_its_period() {
        let timing = ProofTiming::new(10, 16);
        let deadline = 110;
        assert_eq!(timing.after_proof(false, 107, deadline, 1), AfterProof::Send);
        assert_eq!(timing.after_proof(true, 107, deadline, 1), AfterProof::CheckChallenge);
        // Two seconds are left for mining: 108 is too late.
        assert_eq!(timing.after_proof(false, 108, deadline, 1), AfterProof::NextPeriod);
        assert_eq!(timing.after_proof(false, 108, deadline, FILL_PROOF_ATTEMPTS), AfterProof::TooLate);
        assert_eq!(timing.after_proof(true, 108, deadline, 1), AfterProof::TooLate, "in its period, not sent");
        assert_eq!(timing.after_proof(true, 110, deadline, 1), AfterProof::PeriodEnded);
    }

    #[test]
    fn a_periodic_proof_is_made_again_after_a_wrap_a_few_times() {
        assert_eq!(ProofTiming::challenge_check(100, true, 1), ChallengeCheck::Send);
        assert_eq!(ProofTiming::challenge_check(252, true, 1), ChallengeCheck::Send);
        assert_eq!(ProofTiming::challenge_check(253, true, 1), ChallengeCheck::ProveAfterWrap, "wraps soon");
        assert_eq!(ProofTiming::challenge_check(3, false, 1), ChallengeCheck::ProveAfterWrap, "wrapped");
        assert_eq!(ProofTiming::challenge_check(3, false, PERIODIC_ATTEMPTS), ChallengeCheck::GiveUp);
    }

    #[test]
    fn a_transient_failure_waits_a_few_seconds_never_more_than_a_quarter_period() {
        assert_eq!(ProofTiming::new(10, 0).retry_wait(), 2);
        assert_eq!(ProofTiming::new(2, 0).retry_wait(), 1);
        assert_eq!(ProofTiming::new(3600, 0).retry_wait(), RETRY_DELAY_SECS);
    }
}
