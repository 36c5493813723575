//! Transient failures (the chain could not be reached, a transaction's outcome is unknown) in every state, and
//! Errored keeping a slot this host still holds: once a slot may be this host's, nothing drops it because the
//! chain was unreachable for a while.

use super::*;

/// The states in which this host may hold the slot (the fill may have been mined): transient failures are retried
/// without limit.
fn filled_states() -> Vec<State> {
    vec![
        State::Filling,
        State::Filled,
        State::Proving,
        State::ProvingSimulated,
        State::Payout,
        State::Failed,
        State::Cancelled,
        State::Unknown,
    ]
}

/// The states before the fill: transient failures are retried [`MAX_PRE_FILL_RETRIES`] times in a row.
fn pre_fill_states() -> Vec<State> {
    vec![State::Preparing, State::SlotReserving, State::Downloading, State::InitialProving]
}

/// What entering `state` answers, for a sale that is not repairing.
fn entry_effects(state: &State) -> Vec<Effect> {
    match state {
        State::Preparing | State::Unknown => vec![Effect::LoadRequest],
        State::SlotReserving => vec![Effect::CanReserveSlot],
        State::Downloading => vec![Effect::Store { is_repairing: false }],
        State::InitialProving => vec![Effect::WaitStableChallenge],
        State::Filling => vec![Effect::FillSlot { is_repairing: false }],
        State::Filled => vec![Effect::GetHost],
        State::Proving | State::ProvingSimulated => vec![Effect::ReadProofStatus],
        State::Payout | State::Failed | State::Cancelled => vec![Effect::FreeSlot],
        State::Finished => vec![Effect::Clear],
        State::Errored { .. } => vec![Effect::CheckHost],
        State::Ignored { reprocess } => clean_up(Collateral::Reserved, *reprocess),
    }
}

fn transient() -> Event {
    Event::Transient("unreachable".into())
}

/// Whether `effects` drop the slot's data or end the sale.
fn drops_the_slot(effects: &[Effect]) -> bool {
    effects.iter().any(|effect| matches!(effect, Effect::Clear | Effect::CleanUp { .. }))
}

// --- After the fill: without limit ---

#[test]
fn a_transient_failure_after_the_fill_is_retried_without_limit() {
    for state in filled_states() {
        let mut sale = sale_in(&state);
        for round in 1..=100 {
            let case = format!("{state:?}, transient failure {round}");
            assert_eq!(sale.step(transient()), vec![Effect::RetryLater], "{case}");
            assert_eq!(sale.state, state, "{case}");
            assert_eq!(sale.step(Event::Retry), entry_effects(&state), "{case}: the state is entered again");
            assert_eq!(sale.state, state, "{case}");
            assert!(!sale.done, "{case}");
        }
    }
}

#[test]
fn transient_failures_in_a_row_after_the_fill_keep_the_state() {
    for state in filled_states() {
        let mut sale = sale_in(&state);
        for round in 1..=100 {
            assert_eq!(sale.step(transient()), vec![Effect::RetryLater], "{state:?}, transient failure {round}");
            assert_eq!(sale.state, state, "{state:?}, transient failure {round}");
        }
        assert_eq!(sale.step(Event::Retry), entry_effects(&state), "{state:?}");
        assert!(!sale.done, "{state:?}");
    }
}

#[test]
fn a_transient_failure_while_proving_retries_the_proof_status() {
    for proving in [State::Proving, State::ProvingSimulated] {
        let mut sale = sale_in(&proving);
        assert_eq!(sale.step(proof_status(ChainSlotState::Filled, true)), vec![Effect::Prove { invalid: false }]);
        assert_eq!(sale.step(Event::ProofReady), vec![Effect::SubmitProof], "{proving:?}");
        // The submission's outcome is unknown: the period's status is read again.
        assert_eq!(sale.step(transient()), vec![Effect::RetryLater], "{proving:?}");
        assert_eq!(sale.step(Event::Retry), vec![Effect::ReadProofStatus], "{proving:?}");
        assert_eq!(sale.step(proof_status(ChainSlotState::Filled, false)), vec![Effect::WaitNextPeriod]);
        assert_eq!(sale.state, proving);
    }
}

#[test]
fn a_retried_fill_is_sent_again_and_counted() {
    let mut sale = sale_in(&State::Filling);
    assert_eq!(sale.fill_attempts, 1);
    assert_eq!(sale.step(transient()), vec![Effect::RetryLater]);
    assert_eq!(sale.step(Event::Retry), vec![Effect::FillSlot { is_repairing: false }]);
    assert_eq!(sale.fill_attempts, 2);
    assert_eq!(sale.step(Event::FillMined), vec![Effect::GetHost]);
    assert!(sale.deposited);
}

#[test]
fn a_transient_failure_while_freeing_keeps_the_collateral_to_come() {
    for state in [State::Payout, State::Failed, State::Cancelled] {
        let mut sale = sale_in(&state);
        assert_eq!(run(&mut sale, [transient(), Event::Retry]), vec![Effect::FreeSlot], "{state:?}");
        assert_eq!(sale.step(Event::Freed { returned: Some(returned()) }), vec![Effect::Clear], "{state:?}");
        let effects = sale.step(Event::Cleared);
        assert_eq!(effects, clean_up(Collateral::Amount(returned()), Reprocess::No), "{state:?}");
    }
}

// --- Before the fill: a few times ---

#[test]
fn a_state_before_the_fill_gives_up_after_max_pre_fill_retries() {
    for state in pre_fill_states() {
        let mut sale = sale_in(&state);
        for attempt in 1..=MAX_PRE_FILL_RETRIES {
            let case = format!("{state:?}, transient failure {attempt}");
            assert_eq!(sale.step(transient()), vec![Effect::RetryLater], "{case}");
            assert_eq!(sale.step(Event::Retry), entry_effects(&state), "{case}: the state is entered again");
            assert_eq!(sale.state, state, "{case}");
        }
        let effects = sale.step(Event::Transient("still unreachable".into()));
        assert_eq!(effects, vec![Effect::CheckHost], "{state:?}: one failure too many");
        assert_eq!(sale.state, State::Errored { error: "still unreachable".into() }, "{state:?}");
        assert!(!sale.done, "{state:?}");
    }
}

#[test]
fn an_event_other_than_a_retry_starts_the_count_of_transient_failures_again() {
    // Inside one state.
    let mut sale = sale_in(&State::Preparing);
    for attempt in 1..=MAX_PRE_FILL_RETRIES {
        assert_eq!(run(&mut sale, [transient(), Event::Retry]), vec![Effect::LoadRequest], "failure {attempt}");
    }
    assert_eq!(sale.step(loaded()), vec![Effect::ArmCancelTimer { expires_at: EXPIRES_AT }, Effect::ReadSlotState]);
    for attempt in 1..=MAX_PRE_FILL_RETRIES {
        assert_eq!(sale.step(transient()), vec![Effect::RetryLater], "failure {attempt} after the request was loaded");
    }
    assert_eq!(sale.step(transient()), vec![Effect::CheckHost], "the count still ends");

    // Across the states before the fill: MAX_PRE_FILL_RETRIES failures before every step do not stop a sale.
    let steps = [
        loaded(),
        Event::SlotStateRead(ChainSlotState::Free),
        Event::ReservationMade,
        Event::CanReserve { allowed: true, window_later: false },
        Event::Reserved,
        Event::Stored,
        Event::ChallengeReady,
        Event::ProofReady,
    ];
    let mut sale = sale_in(&State::Preparing);
    for event in steps {
        let state = sale.state.clone();
        for attempt in 1..=MAX_PRE_FILL_RETRIES {
            let case = format!("{state:?} before {event:?}, failure {attempt}");
            assert_eq!(sale.step(transient()), vec![Effect::RetryLater], "{case}");
            assert_eq!(sale.step(Event::Retry), entry_effects(&state), "{case}");
        }
        sale.step(event.clone());
        assert!(!matches!(sale.state, State::Errored { .. } | State::Ignored { .. }), "{event:?}: {:?}", sale.state);
    }
    assert_eq!(sale.state, State::Filling);
}

// --- Errored ---

#[test]
fn errored_goes_back_to_filled_and_proves_while_this_host_holds_the_slot() {
    let states = [
        State::Downloading,
        State::Filling,
        State::Filled,
        State::Proving,
        State::ProvingSimulated,
        State::Payout,
        State::Unknown,
    ];
    for state in states {
        let mut sale = sale_in(&state);
        let proving = if sale.simulate_every > 0 { State::ProvingSimulated } else { State::Proving };
        assert_eq!(sale.step(Event::Error("reverted".into())), vec![Effect::CheckHost], "{state:?}");
        assert_eq!(sale.state, State::Errored { error: "reverted".into() }, "{state:?}");
        let back = [
            (Event::HostRead { is_me: true }, vec![Effect::RetryLater], State::Filled),
            (Event::Retry, vec![Effect::GetHost], State::Filled),
            (Event::HostRead { is_me: true }, vec![Effect::UpdateExpiry], State::Filled),
            (Event::ExpiryUpdated, vec![Effect::ReadProofStatus], proving.clone()),
        ];
        for (event, expected, after) in back {
            let case = format!("{state:?} {event:?}");
            let effects = sale.step(event);
            assert!(!drops_the_slot(&effects), "{case}: {effects:?}");
            assert_eq!(effects, expected, "{case}");
            assert_eq!(sale.state, after, "{case}");
            assert!(sale.deposited, "{case}: the slot is this host's");
            assert!(!sale.done, "{case}");
        }
        let effects = sale.step(proof_status(ChainSlotState::Filled, true));
        assert!(matches!(effects.as_slice(), [Effect::Prove { .. }]), "{state:?}: {effects:?}");
    }
}

#[test]
fn errored_asks_again_for_a_host_it_cannot_read_and_never_clears_meanwhile() {
    let cases = [
        (State::Preparing, Collateral::Reserved),
        (State::Downloading, Collateral::Reserved),
        (State::Proving, Collateral::Amount(U256::ZERO)),
    ];
    for (state, collateral) in cases {
        let mut sale = sale_in(&state);
        assert_eq!(sale.step(Event::Error("boom".into())), vec![Effect::CheckHost], "{state:?}");
        for round in 1..=100 {
            let case = format!("{state:?}, unreadable host {round}");
            assert_eq!(sale.step(transient()), vec![Effect::RetryLater], "{case}");
            assert_eq!(sale.step(Event::Retry), vec![Effect::CheckHost], "{case}");
            assert_eq!(sale.state, State::Errored { error: "boom".into() }, "{case}: the first error is kept");
            assert!(!sale.done, "{case}");
        }
        // Once the chain answers that another host holds the slot, the data goes.
        assert_eq!(sale.step(Event::HostRead { is_me: false }), vec![Effect::Clear], "{state:?}");
        assert_eq!(sale.step(Event::Cleared), clean_up(collateral, Reprocess::No), "{state:?}");
        assert!(sale.done, "{state:?}");
    }
}

#[test]
fn a_sale_that_gave_up_before_the_fill_still_checks_the_host() {
    let mut sale = sale_in(&State::Downloading);
    for _ in 0..MAX_PRE_FILL_RETRIES {
        run(&mut sale, [transient(), Event::Retry]);
    }
    assert_eq!(sale.step(transient()), vec![Effect::CheckHost]);
    assert_eq!(sale.step(Event::HostRead { is_me: false }), vec![Effect::Clear]);
    assert_eq!(sale.step(Event::Cleared), clean_up(Collateral::Reserved, Reprocess::No));
}

// --- A proving sale under random failures ---

/// The events a proving sale meets when proofs fail but the slot stays this host's (the chain's failures come from
/// [`flaky_chain`]).
fn proving_events() -> Vec<Event> {
    vec![
        Event::ProofFailed("no proof".into()),
        Event::PeriodStarted,
        proof_status(ChainSlotState::Filled, false),
        proof_status(ChainSlotState::Filled, true),
        Event::ProofReady,
        Event::ProofSubmitted,
        Event::HostRead { is_me: true },
        Event::ExpiryUpdated,
    ]
}

/// Events of a proving sale on a flaky chain: mostly transient failures and retries, so that long runs of them
/// (more than [`MAX_PRE_FILL_RETRIES`] in a row) come up.
fn flaky_chain() -> impl Strategy<Value = Vec<Event>> {
    let event = prop_oneof![
        3 => prop::sample::select(vec![transient(), Event::Retry]),
        1 => prop::sample::select(proving_events()),
    ];
    prop::collection::vec(event, 0..200)
}

proptest! {
    #[test]
    fn a_proving_sale_never_drops_its_slot_on_transient_failures_or_failed_proofs(
        simulated in any::<bool>(),
        events in flaky_chain(),
    ) {
        let proving = if simulated { State::ProvingSimulated } else { State::Proving };
        let mut sale = sale_in(&proving);
        for event in events {
            let effects = sale.step(event.clone());
            prop_assert!(!drops_the_slot(&effects), "{:?} gave {:?}", event, effects);
            prop_assert!(!sale.done, "{:?}", event);
            prop_assert_eq!(&sale.state, &proving, "{:?}", event);
            prop_assert!(sale.deposited);
        }
    }
}
