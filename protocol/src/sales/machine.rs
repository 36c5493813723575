//! The sale state machine (seed 001 §5.5): one [`Sale`] per slot a host tries to sell, as a pure function
//! `step(sale, event) -> (sale, effects)`. The SalesAgent actor executes the [`Effect`]s (chain calls, the
//! download, proofs, store writes) and feeds their outcomes back as [`Event`]s; marketplace events and the
//! cancellation timer come in as events too. Nothing here waits or does I/O, so every exit of every state is
//! tested below.
//!
//! States and their exits, as the seed's diagrams draw them:
//!
//! | State | Entry effects | Exits |
//! |---|---|---|
//! | Preparing | LoadRequest, then ArmCancelTimer + ReadSlotState, then FindAndReserve | reservation made → SlotReserving; slot neither Free nor Repair → Ignored; no availability → Ignored (reprocess as seen) |
//! | SlotReserving | CanReserveSlot, then ReserveSlot | reserved → Downloading; cannot reserve now → Ignored (reprocess when the window opens) or Ignored; reserve refused → Ignored |
//! | Downloading | Store | stored → InitialProving; SlotFilled → Filled |
//! | InitialProving | WaitStableChallenge, then Prove | proof → Filling |
//! | Filling | FillSlot | mined → Filled; slot not free → Ignored; proof stale (landed a period late) → InitialProving, at most 3 fills |
//! | Filled | GetHost, then UpdateExpiry | host is me → Proving (ProvingSimulated when simulating); another host → Errored |
//! | Proving | ReadProofStatus; Prove + SubmitProof when required; WaitNextPeriod | Finished → Payout; Repair, Free, Paid → Errored; proof errors wait for the next period |
//! | Payout | FreeSlot | freed → Finished |
//! | Finished | Clear, then CleanUp | (terminal) |
//! | Failed | FreeSlot, Clear, then CleanUp | (terminal) |
//! | Cancelled | FreeSlot, Clear, then CleanUp | (terminal) |
//! | Ignored | CleanUp | (terminal) |
//! | Errored | CheckHost, then Clear and CleanUp | host is me → Filled (after RetryLater): the slot is kept and proven |
//! | Unknown | LoadRequest, then ArmCancelTimer + ReadSlotState (a resumed sale: ArmCancelTimer, then its state) | Filled → Filled; Finished → Payout; Paid → Finished; Failed → Failed; Cancelled → Cancelled; Free, Repair → Errored |
//!
//! An effect's failure is either definitive ([`Event::Error`]: the contract refused, the store failed) or
//! transient ([`Event::Transient`]: the chain could not be reached, a transaction's outcome is unknown). A
//! transient failure never ends a sale: the state is entered again after [`Effect::RetryLater`] (states before
//! the fill give up after [`MAX_PRE_FILL_RETRIES`] and go to Errored). A definitive failure leads to Errored,
//! except a failed proof or proof submission while proving (the next period is awaited). Errored drops nothing
//! while the chain says this host holds the slot (`getHost`): the sale goes back to Filled and proves on; a
//! host that cannot be read is asked again later. The cancellation
//! timer ([`Event::Cancelled`], sent once the chain says the request is Cancelled) and the `RequestFailed` event
//! ([`Event::RequestFailed`]) interrupt every state that is not Failed, Cancelled, Ignored or Errored.

use super::U256;

/// A slot's state on chain (the contract's `SlotState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ChainSlotState {
    Free,
    Filled,
    Finished,
    Failed,
    Paid,
    Cancelled,
    Repair,
}

/// Whether and how an ignored slot goes back to the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Reprocess {
    /// Dropped.
    No,
    /// Back to the queue as seen: no availability matched (seed 001 §5.2.3).
    AsSeen,
    /// Back to the queue, unseen, once the slot's reservation window admits every host: the contract's window
    /// did not admit this host yet.
    WhenWindowOpens,
}

/// The sale's state (seed 001 §5.5).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum State {
    Preparing,
    SlotReserving,
    Downloading,
    InitialProving,
    Filling,
    Filled,
    Proving,
    ProvingSimulated,
    Payout,
    Finished,
    Failed,
    Cancelled,
    Ignored { reprocess: Reprocess },
    Errored { error: String },
    Unknown,
}

impl State {
    /// The name the REST API reports (`SlotAgent.state`).
    pub fn name(&self) -> &'static str {
        match self {
            State::Preparing => "SalePreparing",
            State::SlotReserving => "SaleSlotReserving",
            State::Downloading => "SaleDownloading",
            State::InitialProving => "SaleInitialProving",
            State::Filling => "SaleFilling",
            State::Filled => "SaleFilled",
            State::Proving => "SaleProving",
            State::ProvingSimulated => "SaleProvingSimulated",
            State::Payout => "SalePayout",
            State::Finished => "SaleFinished",
            State::Failed => "SaleFailed",
            State::Cancelled => "SaleCancelled",
            State::Ignored { .. } => "SaleIgnored",
            State::Errored { .. } => "SaleErrored",
            State::Unknown => "SaleUnknown",
        }
    }

    /// Cancellation and `RequestFailed` no longer change these.
    fn ends(&self) -> bool {
        matches!(self, State::Failed | State::Cancelled | State::Ignored { .. } | State::Errored { .. })
    }

    /// The state a sale persisted in `self` resumes in after a restart, when its slot is not (yet) this host's on
    /// chain: the steps before the fill are repeated from the start of the state (a download resumes from what
    /// is stored); a fill needs a fresh proof, so Filling resumes in InitialProving. `None`: nothing to resume
    /// (the sale is cleaned up, or read from the chain in Unknown when the slot is this host's).
    pub fn resumable(&self) -> Option<State> {
        match self {
            State::SlotReserving => Some(State::SlotReserving),
            State::Downloading => Some(State::Downloading),
            State::InitialProving | State::Filling => Some(State::InitialProving),
            _ => None,
        }
    }
}

/// Collateral going back to the availability when a sale ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Collateral {
    /// Nothing was deposited: the reservation's whole collateral.
    Reserved,
    /// What the chain gave back (0 when forfeited).
    Amount(U256),
}

/// Work the executor does; most answer with an [`Event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Read the request: answers [`Event::RequestLoaded`].
    LoadRequest,
    /// Arm the cancellation timer at the request's expiry (`expires_at`): when it fires and the chain says the
    /// request is Cancelled, the executor sends [`Event::Cancelled`].
    ArmCancelTimer { expires_at: u64 },
    /// Read the slot's state: [`Event::SlotStateRead`].
    ReadSlotState,
    /// Find a matching availability and reserve its bytes and collateral: [`Event::ReservationMade`] or
    /// [`Event::NoAvailability`].
    FindAndReserve,
    /// `canReserveSlot`: [`Event::CanReserve`].
    CanReserveSlot,
    /// `reserveSlot`: [`Event::Reserved`] or [`Event::ReserveRefused`].
    ReserveSlot,
    /// onStore: download (or, repairing, rebuild) the slot, releasing reserved bytes as they are written, with
    /// block expiry at the request's expiry: [`Event::Stored`].
    Store { is_repairing: bool },
    /// Wait for a period whose challenge stays stable while proving, then read it: [`Event::ChallengeReady`].
    WaitStableChallenge,
    /// onProve for the challenge read last: [`Event::ProofReady`]. `invalid`: simulate a failure (the executor
    /// spoils the proof).
    Prove { invalid: bool },
    /// `fillSlot` with the proof and the slot's collateral (less the repair reward when repairing):
    /// [`Event::FillMined`] or [`Event::SlotNotFree`].
    FillSlot { is_repairing: bool },
    /// `getHost`: [`Event::HostRead`].
    GetHost,
    /// onSale, then onExpiryUpdate (block expiry to the request's end): [`Event::ExpiryUpdated`].
    UpdateExpiry,
    /// Read the slot's state and whether a proof is due this period: [`Event::ProofStatus`].
    ReadProofStatus,
    /// `submitProof` with the proof made last: [`Event::ProofSubmitted`] (a failure: [`Event::ProofFailed`]).
    SubmitProof,
    /// Wait for the next period to start: [`Event::PeriodStarted`].
    WaitNextPeriod,
    /// If this host holds the slot: read its collateral and `freeSlot`; [`Event::Freed`] with what came back
    /// (`None` when this host did not hold it).
    FreeSlot,
    /// onClear: drop the slot's data: [`Event::Cleared`].
    Clear,
    /// `getHost`, before an errored sale drops anything: [`Event::HostRead`].
    CheckHost,
    /// Wait a little (the chain was unreachable), then [`Event::Retry`]: the state is entered again.
    RetryLater,
    /// onCleanUp: delete the reservation, returning its bytes and `collateral` to the availability, maybe
    /// requeue the slot, and stop. Nothing follows.
    CleanUp { collateral: Collateral, reprocess: Reprocess },
}

/// What happened: an effect's outcome, a marketplace event, a timer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    RequestLoaded {
        expires_at: u64,
    },
    SlotStateRead(ChainSlotState),
    ReservationMade,
    NoAvailability,
    /// `canReserveSlot`'s answer; `window_later`: false now, but the window has not opened to every host yet.
    CanReserve {
        allowed: bool,
        window_later: bool,
    },
    Reserved,
    /// `reserveSlot` reverted with a refusal (not allowed, full, already reserved).
    ReserveRefused,
    Stored,
    ChallengeReady,
    ProofReady,
    FillMined,
    /// `fillSlot` reverted: another host filled it first.
    SlotNotFree,
    /// `fillSlot` failed because its proof answered an earlier period's challenge (the transaction landed in the
    /// next period): the fill is proven again, at most [`MAX_FILL_ATTEMPTS`] times in all.
    ProofStale,
    HostRead {
        is_me: bool,
    },
    ExpiryUpdated,
    ProofStatus {
        slot: ChainSlotState,
        required: bool,
    },
    ProofSubmitted,
    /// Proving or submitting failed this period.
    ProofFailed(String),
    PeriodStarted,
    Freed {
        returned: Option<U256>,
    },
    Cleared,
    /// An effect failed for good (the contract refused, the store failed).
    Error(String),
    /// An effect failed, but may pass later (the chain was unreachable, a transaction's outcome is unknown).
    Transient(String),
    /// [`Effect::RetryLater`] is over.
    Retry,
    /// The request expired unfilled (the timer fired and the chain says Cancelled).
    Cancelled,
    /// `RequestFailed` for this request.
    RequestFailed,
    /// `SlotFilled` for this slot.
    SlotFilled,
    /// The request is not one this host should take (its own, or it does not match its dataset): ignored.
    Unsuitable(String),
}

/// One slot's sale.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sale {
    pub state: State,
    /// The slot is being repaired (its state was Repair when reserved).
    pub is_repairing: bool,
    /// Collateral was deposited (the fill was mined, or the slot was found to be this host's).
    pub deposited: bool,
    /// What `FreeSlot` gave back.
    pub returned: Option<U256>,
    /// Simulated proof failures: every Nth proof is invalid; 0 never.
    pub simulate_every: u32,
    /// Proofs made while proving (for the simulation).
    pub proofs: u64,
    /// `CleanUp` was emitted: the sale is over and takes no more events.
    pub done: bool,
    /// A resumed sale: the state it goes back to once its request is loaded.
    #[serde(default)]
    pub resume_to: Option<State>,
    /// Fills sent so far.
    #[serde(default)]
    pub fill_attempts: u32,
    /// Transient failures retried in a row before the fill.
    #[serde(default)]
    pub retries: u32,
}

/// Most fills a sale sends (a fill whose proof went stale is proven and sent again).
pub const MAX_FILL_ATTEMPTS: u32 = 3;

/// Transient failures in a row a sale retries before its fill (after it, there is no limit: the host may hold
/// the slot).
pub const MAX_PRE_FILL_RETRIES: u32 = 5;

impl Sale {
    /// A new sale of a slot from the queue: Preparing, with its entry effects.
    pub fn new(simulate_every: u32) -> (Sale, Vec<Effect>) {
        Sale::enter_new(State::Preparing, simulate_every, false)
    }

    /// A sale found on chain at start (this host holds the slot): Unknown, with its entry effects.
    pub fn recover(simulate_every: u32) -> (Sale, Vec<Effect>) {
        Sale::enter_new(State::Unknown, simulate_every, true)
    }

    /// A sale persisted before its fill, resumed in `state` (see [`State::resumable`]): the request is loaded
    /// and the cancellation timer armed again (in Unknown), then the sale goes back to `state`.
    pub fn resume(state: State, is_repairing: bool, simulate_every: u32) -> (Sale, Vec<Effect>) {
        let (mut sale, effects) = Sale::enter_new(State::Unknown, simulate_every, false);
        sale.is_repairing = is_repairing;
        sale.resume_to = Some(state);
        (sale, effects)
    }

    fn enter_new(state: State, simulate_every: u32, deposited: bool) -> (Sale, Vec<Effect>) {
        let mut sale = Sale {
            state: State::Unknown,
            is_repairing: false,
            deposited,
            returned: None,
            simulate_every,
            proofs: 0,
            done: false,
            resume_to: None,
            fill_attempts: 0,
            retries: 0,
        };
        let effects = sale.enter(state);
        (sale, effects)
    }

    /// The collateral a clean-up returns.
    fn collateral(&self) -> Collateral {
        if self.deposited { Collateral::Amount(self.returned.unwrap_or(U256::ZERO)) } else { Collateral::Reserved }
    }

    fn clean_up(&mut self, reprocess: Reprocess) -> Vec<Effect> {
        self.done = true;
        vec![Effect::CleanUp { collateral: self.collateral(), reprocess }]
    }

    /// Moves to `state` and answers its entry effects.
    fn enter(&mut self, state: State) -> Vec<Effect> {
        self.state = state;
        match &self.state {
            State::Preparing | State::Unknown => vec![Effect::LoadRequest],
            State::SlotReserving => vec![Effect::CanReserveSlot],
            State::Downloading => vec![Effect::Store { is_repairing: self.is_repairing }],
            State::InitialProving => vec![Effect::WaitStableChallenge],
            State::Filling => {
                self.fill_attempts += 1;
                vec![Effect::FillSlot { is_repairing: self.is_repairing }]
            }
            State::Filled => vec![Effect::GetHost],
            State::Proving | State::ProvingSimulated => vec![Effect::ReadProofStatus],
            State::Payout | State::Failed | State::Cancelled => vec![Effect::FreeSlot],
            State::Finished => vec![Effect::Clear],
            State::Errored { .. } => vec![Effect::CheckHost],
            State::Ignored { reprocess } => {
                let reprocess = *reprocess;
                self.clean_up(reprocess)
            }
        }
    }

    fn errored(&mut self, error: impl Into<String>) -> Vec<Effect> {
        self.enter(State::Errored { error: error.into() })
    }

    /// The proof to make next while proving: spoiled every `simulate_every`th time.
    fn next_proof(&mut self) -> Effect {
        self.proofs += 1;
        let invalid = self.simulate_every > 0 && self.proofs.is_multiple_of(u64::from(self.simulate_every));
        Effect::Prove { invalid }
    }

    /// Applies `event`; the effects to run next. Events that do not apply to the current state change nothing.
    pub fn step(&mut self, event: Event) -> Vec<Effect> {
        if self.done {
            return Vec::new();
        }
        // Interrupts (seed 001 §5.5: "OnCancelled", "OnFailed" in every diagram).
        match event {
            Event::Cancelled if !self.state.ends() => return self.enter(State::Cancelled),
            Event::RequestFailed if !self.state.ends() => return self.enter(State::Failed),
            Event::Cancelled | Event::RequestFailed => return Vec::new(),
            _ => {}
        }
        if !matches!(event, Event::Transient(_) | Event::Retry) {
            self.retries = 0;
        }
        match (self.state.clone(), event) {
            // Errored keeps the slot while the chain says it is this host's; otherwise its data goes.
            (State::Errored { .. }, Event::HostRead { is_me: true }) => {
                self.deposited = true;
                self.state = State::Filled;
                vec![Effect::RetryLater]
            }
            (State::Errored { .. }, Event::HostRead { is_me: false }) => vec![Effect::Clear],
            (State::Errored { .. }, Event::Transient(_)) => vec![Effect::RetryLater],
            // Other errors inside Errored do not loop: clean-up goes on.
            (State::Errored { .. }, Event::Error(_) | Event::ProofFailed(_) | Event::Cleared) => {
                self.clean_up(Reprocess::No)
            }
            // The chain could not be reached: the state is tried again (before the fill, a few times).
            (state, Event::Transient(error)) => {
                let filled = matches!(
                    state,
                    State::Filled
                        | State::Proving
                        | State::ProvingSimulated
                        | State::Payout
                        | State::Failed
                        | State::Cancelled
                        | State::Unknown
                        | State::Filling
                );
                if !filled && self.retries >= MAX_PRE_FILL_RETRIES {
                    return self.errored(error);
                }
                self.retries += 1;
                vec![Effect::RetryLater]
            }
            (state, Event::Retry) => self.enter(state),
            // While proving, a failed proof waits for the next period.
            (State::Proving | State::ProvingSimulated, Event::ProofFailed(_)) => vec![Effect::WaitNextPeriod],
            (_, Event::Error(error)) | (_, Event::ProofFailed(error)) => self.errored(error),

            (State::Unknown, Event::RequestLoaded { expires_at }) if self.resume_to.is_some() => {
                let mut effects = vec![Effect::ArmCancelTimer { expires_at }];
                if let Some(state) = self.resume_to.take() {
                    effects.extend(self.enter(state));
                }
                effects
            }
            (State::Preparing | State::Unknown, Event::RequestLoaded { expires_at }) => {
                vec![Effect::ArmCancelTimer { expires_at }, Effect::ReadSlotState]
            }
            (State::Preparing, Event::SlotStateRead(slot)) => match slot {
                ChainSlotState::Free | ChainSlotState::Repair => {
                    self.is_repairing = slot == ChainSlotState::Repair;
                    vec![Effect::FindAndReserve]
                }
                _ => self.enter(State::Ignored { reprocess: Reprocess::No }),
            },
            (State::Preparing, Event::Unsuitable(_)) => self.enter(State::Ignored { reprocess: Reprocess::No }),
            (State::Preparing, Event::ReservationMade) => self.enter(State::SlotReserving),
            (State::Preparing, Event::NoAvailability) => self.enter(State::Ignored { reprocess: Reprocess::AsSeen }),

            (State::Unknown, Event::SlotStateRead(slot)) => match slot {
                ChainSlotState::Filled => self.enter(State::Filled),
                ChainSlotState::Finished => self.enter(State::Payout),
                ChainSlotState::Paid => self.enter(State::Finished),
                ChainSlotState::Failed => self.enter(State::Failed),
                ChainSlotState::Cancelled => self.enter(State::Cancelled),
                ChainSlotState::Free => self.errored("the slot is free on chain, but this host's sale was under way"),
                ChainSlotState::Repair => self.errored("the slot was freed by force: this host no longer holds it"),
            },

            (State::SlotReserving, Event::CanReserve { allowed: true, .. }) => vec![Effect::ReserveSlot],
            (State::SlotReserving, Event::CanReserve { allowed: false, window_later }) => {
                let reprocess = if window_later { Reprocess::WhenWindowOpens } else { Reprocess::No };
                self.enter(State::Ignored { reprocess })
            }
            (State::SlotReserving, Event::Reserved) => self.enter(State::Downloading),
            (State::SlotReserving, Event::ReserveRefused) => self.enter(State::Ignored { reprocess: Reprocess::No }),

            (State::Downloading, Event::Stored) => self.enter(State::InitialProving),
            (State::Downloading, Event::SlotFilled) => self.enter(State::Filled),

            (State::InitialProving, Event::ChallengeReady) => vec![Effect::Prove { invalid: false }],
            (State::InitialProving, Event::ProofReady) => self.enter(State::Filling),

            (State::Filling, Event::FillMined) => {
                self.deposited = true;
                self.enter(State::Filled)
            }
            (State::Filling, Event::SlotNotFree) => self.enter(State::Ignored { reprocess: Reprocess::No }),
            (State::Filling, Event::ProofStale) if self.fill_attempts < MAX_FILL_ATTEMPTS => {
                self.enter(State::InitialProving)
            }
            (State::Filling, Event::ProofStale) => self.errored("every fill's proof went stale"),

            (State::Filled, Event::HostRead { is_me: true }) => {
                self.deposited = true;
                vec![Effect::UpdateExpiry]
            }
            (State::Filled, Event::HostRead { is_me: false }) => self.errored("the slot was filled by another host"),
            (State::Filled, Event::ExpiryUpdated) => {
                let proving = if self.simulate_every > 0 { State::ProvingSimulated } else { State::Proving };
                self.enter(proving)
            }

            (State::Proving | State::ProvingSimulated, Event::ProofStatus { slot, required }) => match slot {
                ChainSlotState::Filled if required => vec![self.next_proof()],
                ChainSlotState::Filled | ChainSlotState::Cancelled | ChainSlotState::Failed => {
                    vec![Effect::WaitNextPeriod]
                }
                ChainSlotState::Finished => self.enter(State::Payout),
                ChainSlotState::Repair => self.errored("the slot was freed by force (missed proofs)"),
                ChainSlotState::Free | ChainSlotState::Paid => {
                    self.errored(format!("the slot is {slot:?} on chain while proving"))
                }
            },
            (State::Proving | State::ProvingSimulated, Event::ProofReady) => vec![Effect::SubmitProof],
            (State::Proving | State::ProvingSimulated, Event::ProofSubmitted) => vec![Effect::WaitNextPeriod],
            (State::Proving | State::ProvingSimulated, Event::PeriodStarted) => vec![Effect::ReadProofStatus],

            (State::Payout, Event::Freed { returned }) => {
                self.returned = returned;
                self.enter(State::Finished)
            }
            (State::Finished, Event::Cleared) => self.clean_up(Reprocess::No),
            // `FreeSlot` answers an amount only when this host held the slot: then collateral was deposited,
            // even if the fill's outcome was lost to the interrupt.
            (State::Failed, Event::Freed { returned }) => {
                self.deposited |= returned.is_some();
                self.returned = returned;
                vec![Effect::Clear]
            }
            (State::Failed, Event::Cleared) => self.clean_up(Reprocess::No),
            (State::Cancelled, Event::Freed { returned }) => {
                self.deposited |= returned.is_some();
                self.returned = returned;
                vec![Effect::Clear]
            }
            (State::Cancelled, Event::Cleared) => self.clean_up(Reprocess::No),

            // Anything else is stale or does not concern this state.
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests;
