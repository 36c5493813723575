//! Every exit of every state of the sale machine (seed 001 §5.5); the tests across states (interrupts, stale
//! events, resumption, random event sequences) are in `tests/sequences.rs`, transient failures and Errored keeping
//! a slot this host still holds in `tests/retries.rs`.

use super::*;
use proptest::prelude::*;
use std::mem::discriminant;

const EXPIRES_AT: u64 = 100;

/// What the chain gives back in the tests that free a filled slot.
fn returned() -> U256 {
    U256::from(7u64)
}

fn loaded() -> Event {
    Event::RequestLoaded { expires_at: EXPIRES_AT }
}

fn proof_status(slot: ChainSlotState, required: bool) -> Event {
    Event::ProofStatus { slot, required }
}

fn clean_up(collateral: Collateral, reprocess: Reprocess) -> Vec<Effect> {
    vec![Effect::CleanUp { collateral, reprocess }]
}

const ALL_SLOT_STATES: [ChainSlotState; 7] = [
    ChainSlotState::Free,
    ChainSlotState::Filled,
    ChainSlotState::Finished,
    ChainSlotState::Failed,
    ChainSlotState::Paid,
    ChainSlotState::Cancelled,
    ChainSlotState::Repair,
];

/// Runs `events` from `sale`, answering the effects of the last step.
fn run(sale: &mut Sale, events: impl IntoIterator<Item = Event>) -> Vec<Effect> {
    let mut last = Vec::new();
    for event in events {
        last = sale.step(event);
    }
    last
}

/// The events that take a fresh sale (from [`Sale::new`], or [`Sale::recover`] for Unknown) into `state`.
fn path_to(state: &State) -> Vec<Event> {
    let (before, last) = match state {
        State::Preparing | State::Unknown => return Vec::new(),
        State::SlotReserving => {
            (State::Preparing, vec![loaded(), Event::SlotStateRead(ChainSlotState::Free), Event::ReservationMade])
        }
        State::Downloading => {
            (State::SlotReserving, vec![Event::CanReserve { allowed: true, window_later: false }, Event::Reserved])
        }
        State::InitialProving => (State::Downloading, vec![Event::Stored]),
        State::Filling => (State::InitialProving, vec![Event::ChallengeReady, Event::ProofReady]),
        State::Filled => (State::Filling, vec![Event::FillMined]),
        State::Proving | State::ProvingSimulated => {
            (State::Filled, vec![Event::HostRead { is_me: true }, Event::ExpiryUpdated])
        }
        State::Payout => (State::Proving, vec![proof_status(ChainSlotState::Finished, false)]),
        State::Finished => (State::Payout, vec![Event::Freed { returned: Some(returned()) }]),
        State::Failed => (State::Preparing, vec![Event::RequestFailed]),
        State::Cancelled => (State::Preparing, vec![Event::Cancelled]),
        State::Ignored { reprocess: Reprocess::No } => {
            (State::Preparing, vec![loaded(), Event::SlotStateRead(ChainSlotState::Filled)])
        }
        State::Ignored { reprocess: Reprocess::AsSeen } => {
            (State::Preparing, vec![loaded(), Event::SlotStateRead(ChainSlotState::Free), Event::NoAvailability])
        }
        State::Ignored { reprocess: Reprocess::WhenWindowOpens } => {
            (State::SlotReserving, vec![Event::CanReserve { allowed: false, window_later: true }])
        }
        State::Errored { error } => (State::Preparing, vec![Event::Error(error.clone())]),
    };
    let mut events = path_to(&before);
    events.extend(last);
    events
}

/// A sale driven into `state` through real events: Unknown from [`Sale::recover`], ProvingSimulated with
/// `simulate_every` 3, everything else from [`Sale::new`] without simulation.
fn sale_in(state: &State) -> Sale {
    let (mut sale, _) = match state {
        State::Unknown => Sale::recover(0),
        State::ProvingSimulated => Sale::new(3),
        _ => Sale::new(0),
    };
    run(&mut sale, path_to(state));
    assert_eq!(&sale.state, state, "the path to {state:?} leads elsewhere");
    sale
}

/// The states a sale can be in, one of each (Ignored once per reprocess).
fn every_state() -> Vec<State> {
    vec![
        State::Preparing,
        State::SlotReserving,
        State::Downloading,
        State::InitialProving,
        State::Filling,
        State::Filled,
        State::Proving,
        State::ProvingSimulated,
        State::Payout,
        State::Finished,
        State::Failed,
        State::Cancelled,
        State::Ignored { reprocess: Reprocess::No },
        State::Ignored { reprocess: Reprocess::AsSeen },
        State::Ignored { reprocess: Reprocess::WhenWindowOpens },
        State::Errored { error: "earlier".into() },
        State::Unknown,
    ]
}

/// The states that `Cancelled` and `RequestFailed` interrupt.
fn interruptible_states() -> Vec<State> {
    vec![
        State::Preparing,
        State::SlotReserving,
        State::Downloading,
        State::InitialProving,
        State::Filling,
        State::Filled,
        State::Proving,
        State::ProvingSimulated,
        State::Payout,
        State::Finished,
        State::Unknown,
    ]
}

/// One event of every shape, with every slot state and flag.
fn every_event() -> Vec<Event> {
    let mut events = vec![
        loaded(),
        Event::ReservationMade,
        Event::NoAvailability,
        Event::Reserved,
        Event::ReserveRefused,
        Event::Stored,
        Event::ChallengeReady,
        Event::ProofReady,
        Event::FillMined,
        Event::SlotNotFree,
        Event::ProofStale,
        Event::HostRead { is_me: true },
        Event::HostRead { is_me: false },
        Event::ExpiryUpdated,
        Event::ProofSubmitted,
        Event::ProofFailed("no proof".into()),
        Event::PeriodStarted,
        Event::Freed { returned: None },
        Event::Freed { returned: Some(returned()) },
        Event::Cleared,
        Event::Error("boom".into()),
        Event::Transient("unreachable".into()),
        Event::Retry,
        Event::Cancelled,
        Event::RequestFailed,
        Event::SlotFilled,
        Event::Unsuitable("its own request".into()),
    ];
    for allowed in [false, true] {
        for window_later in [false, true] {
            events.push(Event::CanReserve { allowed, window_later });
        }
    }
    for slot in ALL_SLOT_STATES {
        events.push(Event::SlotStateRead(slot));
        events.push(proof_status(slot, false));
        events.push(proof_status(slot, true));
    }
    events
}

/// The events that do something in `state` (whatever their payload); every other event is stale there.
fn applies(state: &State, event: &Event) -> bool {
    let kinds: Vec<Event> = match state {
        State::Preparing => vec![
            loaded(),
            Event::SlotStateRead(ChainSlotState::Free),
            Event::ReservationMade,
            Event::NoAvailability,
            Event::Unsuitable(String::new()),
        ],
        State::Unknown => vec![loaded(), Event::SlotStateRead(ChainSlotState::Free)],
        State::SlotReserving => {
            vec![Event::CanReserve { allowed: true, window_later: false }, Event::Reserved, Event::ReserveRefused]
        }
        State::Downloading => vec![Event::Stored, Event::SlotFilled],
        State::InitialProving => vec![Event::ChallengeReady, Event::ProofReady],
        State::Filling => vec![Event::FillMined, Event::SlotNotFree, Event::ProofStale],
        State::Filled => vec![Event::HostRead { is_me: true }, Event::ExpiryUpdated],
        State::Proving | State::ProvingSimulated => vec![
            proof_status(ChainSlotState::Filled, true),
            Event::ProofReady,
            Event::ProofSubmitted,
            Event::PeriodStarted,
        ],
        State::Payout => vec![Event::Freed { returned: None }],
        State::Finished => vec![Event::Cleared],
        State::Failed | State::Cancelled => vec![Event::Freed { returned: None }, Event::Cleared],
        State::Errored { .. } => vec![Event::HostRead { is_me: false }, Event::Cleared],
        // Done on entry: nothing applies.
        State::Ignored { .. } => return false,
    };
    // Failures apply everywhere (Errored, the next period while proving, or a retry), interrupts wherever they
    // interrupt.
    let failure = matches!(event, Event::Error(_) | Event::ProofFailed(_) | Event::Transient(_) | Event::Retry);
    let interrupt = matches!(event, Event::Cancelled | Event::RequestFailed) && !state.ends();
    failure || interrupt || kinds.iter().any(|kind| discriminant(kind) == discriminant(event))
}

// --- Preparing ---

#[test]
fn preparing_loads_the_request_then_arms_the_timer_and_reads_the_slot() {
    let (mut sale, effects) = Sale::new(0);
    assert_eq!(effects, vec![Effect::LoadRequest]);
    assert_eq!(sale.state, State::Preparing);
    assert!(!sale.deposited && !sale.done);
    assert_eq!(sale.step(loaded()), vec![Effect::ArmCancelTimer { expires_at: EXPIRES_AT }, Effect::ReadSlotState]);
    assert_eq!(sale.state, State::Preparing);
}

#[test]
fn preparing_a_free_slot_finds_and_reserves_an_availability() {
    let mut sale = sale_in(&State::Preparing);
    assert_eq!(run(&mut sale, [loaded(), Event::SlotStateRead(ChainSlotState::Free)]), vec![Effect::FindAndReserve]);
    assert_eq!(sale.state, State::Preparing);
    assert!(!sale.is_repairing);
}

#[test]
fn preparing_a_slot_in_repair_repairs_it_through_to_the_fill() {
    let mut sale = sale_in(&State::Preparing);
    assert_eq!(run(&mut sale, [loaded(), Event::SlotStateRead(ChainSlotState::Repair)]), vec![Effect::FindAndReserve]);
    assert!(sale.is_repairing);
    let reserved = [Event::ReservationMade, Event::CanReserve { allowed: true, window_later: false }, Event::Reserved];
    assert_eq!(run(&mut sale, reserved), vec![Effect::Store { is_repairing: true }]);
    let proven = [Event::Stored, Event::ChallengeReady, Event::ProofReady];
    assert_eq!(run(&mut sale, proven), vec![Effect::FillSlot { is_repairing: true }]);
    assert_eq!(sale.state, State::Filling);
}

#[test]
fn preparing_ignores_a_slot_neither_free_nor_in_repair() {
    for slot in ALL_SLOT_STATES {
        if matches!(slot, ChainSlotState::Free | ChainSlotState::Repair) {
            continue;
        }
        let mut sale = sale_in(&State::Preparing);
        let effects = run(&mut sale, [loaded(), Event::SlotStateRead(slot)]);
        assert_eq!(effects, clean_up(Collateral::Reserved, Reprocess::No), "{slot:?}");
        assert_eq!(sale.state, State::Ignored { reprocess: Reprocess::No }, "{slot:?}");
        assert!(sale.done, "{slot:?}");
    }
}

#[test]
fn preparing_moves_to_slot_reserving_once_reserved() {
    let mut sale = sale_in(&State::Preparing);
    let effects = run(&mut sale, [loaded(), Event::SlotStateRead(ChainSlotState::Free), Event::ReservationMade]);
    assert_eq!(effects, vec![Effect::CanReserveSlot]);
    assert_eq!(sale.state, State::SlotReserving);
}

#[test]
fn preparing_without_availability_ignores_the_slot_as_seen() {
    let mut sale = sale_in(&State::Preparing);
    let effects = run(&mut sale, [loaded(), Event::SlotStateRead(ChainSlotState::Free), Event::NoAvailability]);
    assert_eq!(effects, clean_up(Collateral::Reserved, Reprocess::AsSeen));
    assert_eq!(sale.state, State::Ignored { reprocess: Reprocess::AsSeen });
    assert!(sale.done);
}

#[test]
fn preparing_ignores_an_unsuitable_request() {
    for before in [vec![], vec![loaded()], vec![loaded(), Event::SlotStateRead(ChainSlotState::Free)]] {
        let case = format!("after {before:?}");
        let mut sale = sale_in(&State::Preparing);
        run(&mut sale, before);
        let effects = sale.step(Event::Unsuitable("its own request".into()));
        assert_eq!(effects, clean_up(Collateral::Reserved, Reprocess::No), "{case}");
        assert_eq!(sale.state, State::Ignored { reprocess: Reprocess::No }, "{case}");
        assert!(sale.done, "{case}");
    }
}

#[test]
fn an_unsuitable_request_changes_nothing_outside_preparing() {
    for state in every_state().into_iter().filter(|state| *state != State::Preparing) {
        let mut sale = sale_in(&state);
        let before = sale.clone();
        assert_eq!(sale.step(Event::Unsuitable("its own request".into())), vec![], "{state:?}");
        assert_eq!(sale, before, "{state:?}");
    }
}

// --- Errors, in every state ---

#[test]
fn an_error_leads_to_errored_from_every_state_but_the_ending_ones() {
    let states = interruptible_states().into_iter().chain([State::Failed, State::Cancelled]);
    for state in states {
        let mut sale = sale_in(&state);
        assert_eq!(sale.step(Event::Error("boom".into())), vec![Effect::CheckHost], "{state:?}");
        assert_eq!(sale.state, State::Errored { error: "boom".into() }, "{state:?}");
        assert!(!sale.done, "{state:?}");
    }
}

#[test]
fn a_failed_proof_outside_proving_leads_to_errored() {
    for state in [State::InitialProving, State::Filling, State::Downloading] {
        let mut sale = sale_in(&state);
        assert_eq!(sale.step(Event::ProofFailed("bad".into())), vec![Effect::CheckHost], "{state:?}");
        assert_eq!(sale.state, State::Errored { error: "bad".into() }, "{state:?}");
    }
}

// --- SlotReserving ---

#[test]
fn slot_reserving_reserves_when_allowed() {
    for window_later in [false, true] {
        let mut sale = sale_in(&State::SlotReserving);
        assert_eq!(sale.step(Event::CanReserve { allowed: true, window_later }), vec![Effect::ReserveSlot]);
        assert_eq!(sale.state, State::SlotReserving);
    }
}

#[test]
fn slot_reserving_ignores_a_slot_it_cannot_reserve() {
    let cases = [(false, Reprocess::No), (true, Reprocess::WhenWindowOpens)];
    for (window_later, reprocess) in cases {
        let mut sale = sale_in(&State::SlotReserving);
        let effects = sale.step(Event::CanReserve { allowed: false, window_later });
        assert_eq!(effects, clean_up(Collateral::Reserved, reprocess), "window_later {window_later}");
        assert_eq!(sale.state, State::Ignored { reprocess }, "window_later {window_later}");
        assert!(sale.done);
    }
}

#[test]
fn slot_reserving_downloads_once_reserved() {
    let mut sale = sale_in(&State::SlotReserving);
    let effects = run(&mut sale, [Event::CanReserve { allowed: true, window_later: false }, Event::Reserved]);
    assert_eq!(effects, vec![Effect::Store { is_repairing: false }]);
    assert_eq!(sale.state, State::Downloading);
}

#[test]
fn slot_reserving_ignores_a_refused_reservation() {
    let mut sale = sale_in(&State::SlotReserving);
    let effects = run(&mut sale, [Event::CanReserve { allowed: true, window_later: false }, Event::ReserveRefused]);
    assert_eq!(effects, clean_up(Collateral::Reserved, Reprocess::No));
    assert_eq!(sale.state, State::Ignored { reprocess: Reprocess::No });
    assert!(sale.done);
}

// --- Downloading ---

#[test]
fn downloading_proves_once_stored() {
    let mut sale = sale_in(&State::Downloading);
    assert_eq!(sale.step(Event::Stored), vec![Effect::WaitStableChallenge]);
    assert_eq!(sale.state, State::InitialProving);
}

#[test]
fn downloading_moves_to_filled_when_the_slot_is_filled() {
    let mut sale = sale_in(&State::Downloading);
    assert_eq!(sale.step(Event::SlotFilled), vec![Effect::GetHost]);
    assert_eq!(sale.state, State::Filled);
    assert!(!sale.deposited, "filled by someone, not yet known to be this host");
    // Filled by another host: nothing was deposited, the reservation's collateral goes back.
    assert_eq!(sale.step(Event::HostRead { is_me: false }), vec![Effect::CheckHost]);
    assert_eq!(sale.step(Event::HostRead { is_me: false }), vec![Effect::Clear]);
    assert_eq!(sale.step(Event::Cleared), clean_up(Collateral::Reserved, Reprocess::No));
}

// --- InitialProving ---

#[test]
fn initial_proving_proves_the_stable_challenge_validly_even_when_simulating() {
    for simulate_every in [0, 1, 3] {
        let (mut sale, _) = Sale::new(simulate_every);
        run(&mut sale, path_to(&State::InitialProving));
        assert_eq!(sale.step(Event::ChallengeReady), vec![Effect::Prove { invalid: false }], "{simulate_every}");
        assert_eq!(sale.state, State::InitialProving);
        assert_eq!(sale.proofs, 0, "the initial proof is not counted for the simulation");
    }
}

#[test]
fn initial_proving_fills_once_proven() {
    let mut sale = sale_in(&State::InitialProving);
    let effects = run(&mut sale, [Event::ChallengeReady, Event::ProofReady]);
    assert_eq!(effects, vec![Effect::FillSlot { is_repairing: false }]);
    assert_eq!(sale.state, State::Filling);
}

#[test]
fn initial_proving_errs_when_the_proof_fails() {
    let mut sale = sale_in(&State::InitialProving);
    let effects = run(&mut sale, [Event::ChallengeReady, Event::ProofFailed("no proof".into())]);
    assert_eq!(effects, vec![Effect::CheckHost]);
    assert_eq!(sale.state, State::Errored { error: "no proof".into() });
}

// --- Filling ---

#[test]
fn filling_moves_to_filled_and_deposits_once_mined() {
    let mut sale = sale_in(&State::Filling);
    assert!(!sale.deposited);
    assert_eq!(sale.step(Event::FillMined), vec![Effect::GetHost]);
    assert_eq!(sale.state, State::Filled);
    assert!(sale.deposited);
}

#[test]
fn filling_ignores_a_slot_filled_by_another_host() {
    let mut sale = sale_in(&State::Filling);
    assert_eq!(sale.step(Event::SlotNotFree), clean_up(Collateral::Reserved, Reprocess::No));
    assert_eq!(sale.state, State::Ignored { reprocess: Reprocess::No });
    assert!(!sale.deposited && sale.done);
}

// --- Filled ---

#[test]
fn filled_updates_the_expiry_when_the_host_is_me() {
    let mut sale = sale_in(&State::Filled);
    assert_eq!(sale.step(Event::HostRead { is_me: true }), vec![Effect::UpdateExpiry]);
    assert_eq!(sale.state, State::Filled);
    assert!(sale.deposited);
}

#[test]
fn filled_errs_when_another_host_holds_the_slot() {
    let mut sale = sale_in(&State::Filled);
    assert_eq!(sale.step(Event::HostRead { is_me: false }), vec![Effect::CheckHost]);
    assert!(matches!(sale.state, State::Errored { .. }), "{:?}", sale.state);
}

#[test]
fn filled_proves_once_the_expiry_is_updated() {
    for (simulate_every, proving) in [(0, State::Proving), (1, State::ProvingSimulated), (3, State::ProvingSimulated)] {
        let (mut sale, _) = Sale::new(simulate_every);
        run(&mut sale, path_to(&State::Filled));
        let effects = run(&mut sale, [Event::HostRead { is_me: true }, Event::ExpiryUpdated]);
        assert_eq!(effects, vec![Effect::ReadProofStatus], "{simulate_every}");
        assert_eq!(sale.state, proving, "{simulate_every}");
    }
}

// --- Proving and ProvingSimulated ---

/// What a first `ProofStatus { slot, required }` does while proving: the effects and the state after.
fn expected_proof_status(proving: &State, slot: ChainSlotState, required: bool) -> (Vec<Effect>, Option<State>) {
    match slot {
        ChainSlotState::Filled if required => (vec![Effect::Prove { invalid: false }], Some(proving.clone())),
        ChainSlotState::Filled | ChainSlotState::Cancelled | ChainSlotState::Failed => {
            (vec![Effect::WaitNextPeriod], Some(proving.clone()))
        }
        ChainSlotState::Finished => (vec![Effect::FreeSlot], Some(State::Payout)),
        // Errored, whatever the message.
        ChainSlotState::Repair | ChainSlotState::Free | ChainSlotState::Paid => (vec![Effect::CheckHost], None),
    }
}

#[test]
fn proving_follows_every_slot_state() {
    for proving in [State::Proving, State::ProvingSimulated] {
        for slot in ALL_SLOT_STATES {
            for required in [false, true] {
                let mut sale = sale_in(&proving);
                let (effects, state) = expected_proof_status(&proving, slot, required);
                let case = format!("{proving:?} {slot:?} required {required}");
                assert_eq!(sale.step(proof_status(slot, required)), effects, "{case}");
                match state {
                    Some(state) => assert_eq!(sale.state, state, "{case}"),
                    None => assert!(matches!(sale.state, State::Errored { .. }), "{case}: {:?}", sale.state),
                }
                assert!(!sale.done, "{case}");
            }
        }
    }
}

#[test]
fn proving_submits_a_proof_then_waits_for_the_next_period() {
    for proving in [State::Proving, State::ProvingSimulated] {
        let mut sale = sale_in(&proving);
        sale.step(proof_status(ChainSlotState::Filled, true));
        assert_eq!(sale.step(Event::ProofReady), vec![Effect::SubmitProof], "{proving:?}");
        assert_eq!(sale.step(Event::ProofSubmitted), vec![Effect::WaitNextPeriod], "{proving:?}");
        assert_eq!(sale.step(Event::PeriodStarted), vec![Effect::ReadProofStatus], "{proving:?}");
        assert_eq!(sale.state, proving);
    }
}

#[test]
fn proving_waits_for_the_next_period_when_a_proof_fails() {
    for proving in [State::Proving, State::ProvingSimulated] {
        let mut sale = sale_in(&proving);
        sale.step(proof_status(ChainSlotState::Filled, true));
        // Making the proof failed.
        assert_eq!(sale.step(Event::ProofFailed("no proof".into())), vec![Effect::WaitNextPeriod], "{proving:?}");
        assert_eq!(sale.state, proving);
        // Submitting it failed.
        let submitted = [Event::PeriodStarted, proof_status(ChainSlotState::Filled, true), Event::ProofReady];
        assert_eq!(run(&mut sale, submitted), vec![Effect::SubmitProof]);
        assert_eq!(sale.step(Event::ProofFailed("reverted".into())), vec![Effect::WaitNextPeriod], "{proving:?}");
        assert_eq!(sale.state, proving);
    }
}

#[test]
fn proving_errs_on_any_other_failure() {
    for proving in [State::Proving, State::ProvingSimulated] {
        let mut sale = sale_in(&proving);
        assert_eq!(sale.step(Event::Error("no period".into())), vec![Effect::CheckHost], "{proving:?}");
        assert_eq!(sale.state, State::Errored { error: "no period".into() });
    }
}

#[test]
fn proving_simulated_spoils_every_nth_proof() {
    for simulate_every in [1u32, 3] {
        let (mut sale, _) = Sale::new(simulate_every);
        run(&mut sale, path_to(&State::ProvingSimulated));
        assert_eq!(sale.state, State::ProvingSimulated);
        for proof in 1..=9u32 {
            // A period without a proof due does not count.
            assert_eq!(sale.step(proof_status(ChainSlotState::Filled, false)), vec![Effect::WaitNextPeriod]);
            assert_eq!(sale.step(Event::PeriodStarted), vec![Effect::ReadProofStatus]);
            let invalid = proof % simulate_every == 0;
            let effects = sale.step(proof_status(ChainSlotState::Filled, true));
            assert_eq!(effects, vec![Effect::Prove { invalid }], "every {simulate_every}, proof {proof}");
            let period = [Event::ProofReady, Event::ProofSubmitted, Event::PeriodStarted];
            assert_eq!(run(&mut sale, period), vec![Effect::ReadProofStatus]);
        }
        assert_eq!(sale.proofs, 9);
    }
}

#[test]
fn proving_without_simulation_never_spoils_a_proof() {
    let mut sale = sale_in(&State::Proving);
    for _ in 0..5 {
        assert_eq!(sale.step(proof_status(ChainSlotState::Filled, true)), vec![Effect::Prove { invalid: false }]);
        run(&mut sale, [Event::ProofReady, Event::ProofSubmitted, Event::PeriodStarted]);
    }
}

// --- Payout and Finished ---

#[test]
fn payout_frees_the_slot_then_finishes_with_what_came_back() {
    let cases = [(Some(returned()), returned()), (None, U256::ZERO)];
    for (came_back, amount) in cases {
        let mut sale = sale_in(&State::Payout);
        assert_eq!(sale.step(Event::Freed { returned: came_back }), vec![Effect::Clear], "{came_back:?}");
        assert_eq!(sale.state, State::Finished);
        assert_eq!(sale.step(Event::Cleared), clean_up(Collateral::Amount(amount), Reprocess::No), "{came_back:?}");
        assert_eq!(sale.state, State::Finished);
        assert!(sale.done);
    }
}

#[test]
fn finished_cleans_up_once_cleared() {
    let mut sale = sale_in(&State::Finished);
    assert_eq!(sale.step(Event::Cleared), clean_up(Collateral::Amount(returned()), Reprocess::No));
    assert!(sale.done);
}

#[test]
fn finished_errs_when_clearing_fails_and_still_cleans_up() {
    let mut sale = sale_in(&State::Finished);
    assert_eq!(sale.step(Event::Error("no clear".into())), vec![Effect::CheckHost]);
    assert_eq!(sale.state, State::Errored { error: "no clear".into() });
    // The slot was paid out: this host no longer holds it.
    assert_eq!(sale.step(Event::HostRead { is_me: false }), vec![Effect::Clear]);
    assert_eq!(sale.step(Event::Cleared), clean_up(Collateral::Amount(returned()), Reprocess::No));
    assert!(sale.done);
}

// --- Failed ---

#[test]
fn failed_frees_the_slot_clears_and_cleans_up() {
    // (state before the failure, what FreeSlot gave back, the collateral the clean-up returns)
    let cases = [
        (State::Downloading, None, Collateral::Reserved),
        (State::Filling, None, Collateral::Reserved),
        (State::Proving, Some(returned()), Collateral::Amount(returned())),
        (State::Proving, None, Collateral::Amount(U256::ZERO)),
        (State::Unknown, Some(returned()), Collateral::Amount(returned())),
    ];
    for (before, came_back, collateral) in cases {
        let case = format!("{before:?} {came_back:?}");
        let mut sale = sale_in(&before);
        assert_eq!(sale.step(Event::RequestFailed), vec![Effect::FreeSlot], "{case}");
        assert_eq!(sale.state, State::Failed, "{case}");
        assert_eq!(sale.step(Event::Freed { returned: came_back }), vec![Effect::Clear], "{case}");
        assert_eq!(sale.state, State::Failed, "{case}: a failed request is not an error");
        assert_eq!(sale.step(Event::Cleared), clean_up(collateral, Reprocess::No), "{case}");
        assert_eq!(sale.state, State::Failed, "{case}");
        assert!(sale.done, "{case}");
    }
}

// --- Cancelled ---

#[test]
fn cancelled_frees_the_slot_clears_and_cleans_up() {
    let cases = [
        (State::Preparing, None, Collateral::Reserved),
        (State::Downloading, None, Collateral::Reserved),
        (State::Filling, None, Collateral::Reserved),
        (State::Filled, Some(returned()), Collateral::Amount(returned())),
        (State::Proving, Some(returned()), Collateral::Amount(returned())),
        (State::Payout, None, Collateral::Amount(U256::ZERO)),
        (State::Unknown, Some(returned()), Collateral::Amount(returned())),
    ];
    for (before, came_back, collateral) in cases {
        let case = format!("{before:?} {came_back:?}");
        let mut sale = sale_in(&before);
        assert_eq!(sale.step(Event::Cancelled), vec![Effect::FreeSlot], "{case}");
        assert_eq!(sale.state, State::Cancelled, "{case}");
        assert_eq!(sale.step(Event::Freed { returned: came_back }), vec![Effect::Clear], "{case}");
        assert_eq!(sale.state, State::Cancelled, "{case}");
        assert_eq!(sale.step(Event::Cleared), clean_up(collateral, Reprocess::No), "{case}");
        assert!(sale.done, "{case}");
    }
}

// --- Ignored and Errored ---

#[test]
fn ignored_cleans_up_on_entry_and_is_done() {
    for reprocess in [Reprocess::No, Reprocess::AsSeen, Reprocess::WhenWindowOpens] {
        let (mut sale, _) = Sale::new(0);
        let path = path_to(&State::Ignored { reprocess });
        let (last, before) = path.split_last().expect("invariant: Ignored is reached by an event");
        run(&mut sale, before.to_vec());
        assert_eq!(sale.step(last.clone()), clean_up(Collateral::Reserved, reprocess), "{reprocess:?}");
        assert_eq!(sale.state, State::Ignored { reprocess });
        assert!(sale.done, "{reprocess:?}");
    }
}

#[test]
fn errored_checks_the_host_then_clears_and_cleans_up_a_slot_it_does_not_hold() {
    let (mut sale, _) = Sale::new(0);
    assert_eq!(sale.step(Event::Error("boom".into())), vec![Effect::CheckHost]);
    assert!(!sale.done);
    assert_eq!(sale.step(Event::HostRead { is_me: false }), vec![Effect::Clear]);
    assert!(!sale.done);
    assert!(matches!(sale.state, State::Errored { .. }), "{:?}", sale.state);
    assert_eq!(sale.step(Event::Cleared), clean_up(Collateral::Reserved, Reprocess::No));
    assert!(sale.done);
}

#[test]
fn an_error_inside_errored_cleans_up_instead_of_looping() {
    let mut sale = sale_in(&State::Errored { error: "first".into() });
    assert_eq!(sale.step(Event::Error("no clear".into())), clean_up(Collateral::Reserved, Reprocess::No));
    assert!(sale.done);
    assert_eq!(sale.state, State::Errored { error: "first".into() }, "the first error is kept");
}

#[test]
fn errored_after_the_fill_returns_an_amount_not_the_reservation() {
    let mut sale = sale_in(&State::Proving);
    let effects =
        run(&mut sale, [proof_status(ChainSlotState::Repair, false), Event::HostRead { is_me: false }, Event::Cleared]);
    assert_eq!(effects, clean_up(Collateral::Amount(U256::ZERO), Reprocess::No));
}

// --- Unknown ---

#[test]
fn unknown_loads_the_request_then_arms_the_timer_and_reads_the_slot() {
    let (mut sale, effects) = Sale::recover(0);
    assert_eq!(effects, vec![Effect::LoadRequest]);
    assert_eq!(sale.state, State::Unknown);
    assert!(sale.deposited, "a recovered slot is this host's");
    assert_eq!(sale.step(loaded()), vec![Effect::ArmCancelTimer { expires_at: EXPIRES_AT }, Effect::ReadSlotState]);
    assert_eq!(sale.state, State::Unknown);
}

#[test]
fn unknown_jumps_to_the_state_the_chain_reports() {
    for slot in ALL_SLOT_STATES {
        let (state, effects) = match slot {
            ChainSlotState::Filled => (Some(State::Filled), vec![Effect::GetHost]),
            ChainSlotState::Finished => (Some(State::Payout), vec![Effect::FreeSlot]),
            ChainSlotState::Paid => (Some(State::Finished), vec![Effect::Clear]),
            ChainSlotState::Failed => (Some(State::Failed), vec![Effect::FreeSlot]),
            ChainSlotState::Cancelled => (Some(State::Cancelled), vec![Effect::FreeSlot]),
            ChainSlotState::Free | ChainSlotState::Repair => (None, vec![Effect::CheckHost]),
        };
        let mut sale = sale_in(&State::Unknown);
        assert_eq!(run(&mut sale, [loaded(), Event::SlotStateRead(slot)]), effects, "{slot:?}");
        match state {
            Some(state) => assert_eq!(sale.state, state, "{slot:?}"),
            None => assert!(matches!(sale.state, State::Errored { .. }), "{slot:?}: {:?}", sale.state),
        }
        assert!(sale.deposited, "{slot:?}");
        assert!(!sale.is_repairing, "{slot:?}");
    }
}

#[test]
fn unknown_recovers_a_filled_slot_into_proving() {
    for (simulate_every, proving) in [(0, State::Proving), (2, State::ProvingSimulated)] {
        let (mut sale, _) = Sale::recover(simulate_every);
        let events = [loaded(), Event::SlotStateRead(ChainSlotState::Filled), Event::HostRead { is_me: true }];
        assert_eq!(run(&mut sale, events), vec![Effect::UpdateExpiry]);
        assert_eq!(sale.step(Event::ExpiryUpdated), vec![Effect::ReadProofStatus]);
        assert_eq!(sale.state, proving);
    }
}

// --- Across states ---

mod retries;
mod sequences;
