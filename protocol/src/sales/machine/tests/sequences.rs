//! Tests across states: interrupts (cancellation, request failure) in every state, events that do or do not
//! apply, stale events, resumption after a restart, whole sales, random event sequences, and the fill retried
//! after a stale proof.

use super::*;

#[test]
fn cancellation_and_request_failure_interrupt_every_state_that_has_not_ended() {
    for state in interruptible_states() {
        let mut sale = sale_in(&state);
        assert_eq!(sale.step(Event::Cancelled), vec![Effect::FreeSlot], "{state:?}");
        assert_eq!(sale.state, State::Cancelled, "{state:?}");

        let mut sale = sale_in(&state);
        assert_eq!(sale.step(Event::RequestFailed), vec![Effect::FreeSlot], "{state:?}");
        assert_eq!(sale.state, State::Failed, "{state:?}");
    }
}

#[test]
fn cancellation_and_request_failure_change_nothing_once_a_sale_has_ended() {
    let ended = every_state().into_iter().filter(|state| !interruptible_states().contains(state));
    for state in ended {
        for event in [Event::Cancelled, Event::RequestFailed] {
            let mut sale = sale_in(&state);
            let before = sale.clone();
            assert_eq!(sale.step(event.clone()), vec![], "{state:?} {event:?}");
            assert_eq!(sale, before, "{state:?} {event:?}");
        }
    }
}

// --- Stale events ---

#[test]
fn events_that_do_not_apply_change_nothing() {
    let mut checked = 0;
    for state in every_state() {
        for event in every_event() {
            if applies(&state, &event) {
                continue;
            }
            let mut sale = sale_in(&state);
            let before = sale.clone();
            assert_eq!(sale.step(event.clone()), vec![], "{state:?} {event:?}");
            assert_eq!(sale, before, "{state:?} {event:?}");
            checked += 1;
        }
    }
    // The table is not empty by mistake: most events are stale in most states.
    assert!(checked > 400, "{checked}");
}

#[test]
fn events_that_apply_do_something() {
    // The converse of the table above, so that `applies` does not hide a stale event.
    for state in every_state() {
        for event in every_event() {
            if !applies(&state, &event) {
                continue;
            }
            let mut sale = sale_in(&state);
            let before = sale.clone();
            let effects = sale.step(event.clone());
            assert!(!effects.is_empty() || sale != before, "{state:?} {event:?} did nothing");
        }
    }
}

#[test]
fn stale_events_named_by_the_seed_are_ignored() {
    let cases = [
        (State::Downloading, Event::FillMined),
        (State::Preparing, Event::SlotFilled),
        (State::InitialProving, Event::SlotFilled),
        (State::Filling, Event::SlotFilled),
        (State::Proving, Event::SlotFilled),
        (State::Proving, Event::FillMined),
        (State::SlotReserving, Event::Stored),
        (State::Payout, Event::Cleared),
    ];
    for (state, event) in cases {
        let mut sale = sale_in(&state);
        assert_eq!(sale.step(event.clone()), vec![], "{state:?} {event:?}");
        assert_eq!(sale.state, state, "{state:?} {event:?}");
    }
}

// --- Done ---

#[test]
fn a_sale_that_cleaned_up_takes_no_more_events() {
    let endings: Vec<(State, Vec<Event>)> = vec![
        (State::Ignored { reprocess: Reprocess::AsSeen }, vec![]),
        (State::Errored { error: "boom".into() }, vec![Event::HostRead { is_me: false }, Event::Cleared]),
        (State::Finished, vec![Event::Cleared]),
        (State::Cancelled, vec![Event::Freed { returned: None }, Event::Cleared]),
        (State::Failed, vec![Event::Freed { returned: None }, Event::Cleared]),
    ];
    for (state, rest) in endings {
        let mut sale = sale_in(&state);
        run(&mut sale, rest);
        assert!(sale.done, "{state:?}");
        let before = sale.clone();
        for event in every_event() {
            assert_eq!(sale.step(event.clone()), vec![], "{state:?} {event:?}");
            assert_eq!(sale, before, "{state:?} {event:?}");
        }
    }
}

// --- Resumption ---

#[test]
fn only_the_steps_before_the_fill_are_resumable() {
    for state in every_state() {
        let expected = match state {
            State::SlotReserving => Some(State::SlotReserving),
            State::Downloading => Some(State::Downloading),
            State::InitialProving | State::Filling => Some(State::InitialProving),
            _ => None,
        };
        assert_eq!(state.resumable(), expected, "{state:?}");
    }
}

#[test]
fn a_resumed_sale_repeats_its_state_from_the_start() {
    let cases = [
        (State::SlotReserving, false, vec![Effect::CanReserveSlot]),
        (State::Downloading, false, vec![Effect::Store { is_repairing: false }]),
        (State::Downloading, true, vec![Effect::Store { is_repairing: true }]),
        (State::InitialProving, true, vec![Effect::WaitStableChallenge]),
    ];
    for (state, is_repairing, effects) in cases {
        let case = format!("{state:?} repairing {is_repairing}");
        let (mut sale, entry) = Sale::resume(state.clone(), is_repairing, 0);
        assert_eq!(entry, vec![Effect::LoadRequest], "{case}: the request first");
        assert_eq!(sale.state, State::Unknown, "{case}");
        let mut expected = vec![Effect::ArmCancelTimer { expires_at: 9 }];
        expected.extend(effects);
        assert_eq!(sale.step(Event::RequestLoaded { expires_at: 9 }), expected, "{case}: timer armed, state resumed");
        assert_eq!(sale.state, state, "{case}");
        assert_eq!(sale.is_repairing, is_repairing, "{case}");
        assert!(!sale.deposited && !sale.done, "{case}");
    }
}

#[test]
fn a_resumed_repair_fills_as_a_repair() {
    let (mut sale, _) = Sale::resume(State::InitialProving, true, 0);
    let effects = run(&mut sale, [Event::RequestLoaded { expires_at: 9 }, Event::ChallengeReady, Event::ProofReady]);
    assert_eq!(effects, vec![Effect::FillSlot { is_repairing: true }]);
}

// --- The whole journey ---

#[test]
fn a_sale_runs_from_preparing_to_finished() {
    let (mut sale, effects) = Sale::new(0);
    assert_eq!(effects, vec![Effect::LoadRequest]);
    let effects = sale.step(Event::RequestLoaded { expires_at: 100 });
    assert_eq!(effects, vec![Effect::ArmCancelTimer { expires_at: 100 }, Effect::ReadSlotState]);
    assert_eq!(sale.step(Event::SlotStateRead(ChainSlotState::Free)), vec![Effect::FindAndReserve]);
    assert_eq!(sale.step(Event::ReservationMade), vec![Effect::CanReserveSlot]);
    assert_eq!(sale.step(Event::CanReserve { allowed: true, window_later: false }), vec![Effect::ReserveSlot]);
    assert_eq!(sale.step(Event::Reserved), vec![Effect::Store { is_repairing: false }]);
    assert_eq!(sale.step(Event::Stored), vec![Effect::WaitStableChallenge]);
    assert_eq!(sale.step(Event::ChallengeReady), vec![Effect::Prove { invalid: false }]);
    assert_eq!(sale.step(Event::ProofReady), vec![Effect::FillSlot { is_repairing: false }]);
    assert_eq!(sale.step(Event::FillMined), vec![Effect::GetHost]);
    assert_eq!(sale.step(Event::HostRead { is_me: true }), vec![Effect::UpdateExpiry]);
    assert_eq!(sale.step(Event::ExpiryUpdated), vec![Effect::ReadProofStatus]);
    assert_eq!(sale.state, State::Proving);
    let required = Event::ProofStatus { slot: ChainSlotState::Filled, required: true };
    assert_eq!(sale.step(required), vec![Effect::Prove { invalid: false }]);
    assert_eq!(sale.step(Event::ProofReady), vec![Effect::SubmitProof]);
    assert_eq!(sale.step(Event::ProofSubmitted), vec![Effect::WaitNextPeriod]);
    assert_eq!(sale.step(Event::PeriodStarted), vec![Effect::ReadProofStatus]);
    let finished = Event::ProofStatus { slot: ChainSlotState::Finished, required: false };
    assert_eq!(sale.step(finished), vec![Effect::FreeSlot]);
    let returned = U256::from(7u64);
    assert_eq!(sale.step(Event::Freed { returned: Some(returned) }), vec![Effect::Clear]);
    let last = run(&mut sale, [Event::Cleared]);
    assert_eq!(last, vec![Effect::CleanUp { collateral: Collateral::Amount(returned), reprocess: Reprocess::No }]);
    assert!(sale.done);
    assert!(sale.step(Event::Cancelled).is_empty(), "a finished sale takes no more events");
}

// --- Random event sequences ---

/// One step of a random run: `guided` picks among the events that move the current state on (so that runs reach
/// the late states), otherwise among all events; `pick` chooses within the list.
#[derive(Debug, Clone)]
struct Pick {
    guided: bool,
    pick: usize,
}

/// Whether `event` takes `sale` on without ending or failing it: failures, retries, interrupts and the exits to
/// Ignored or Errored apply almost everywhere, so a run that picked among all the events that apply would seldom
/// get past Preparing.
fn moves_on(sale: &Sale, event: &Event) -> bool {
    let disrupts = matches!(
        event,
        Event::Error(_)
            | Event::ProofFailed(_)
            | Event::Transient(_)
            | Event::Retry
            | Event::Cancelled
            | Event::RequestFailed
    );
    if disrupts || !applies(&sale.state, event) {
        return false;
    }
    let mut next = sale.clone();
    next.step(event.clone());
    !next.done && !matches!(next.state, State::Errored { .. } | State::Ignored { .. })
}

fn picks() -> impl Strategy<Value = Vec<Pick>> {
    prop::collection::vec((prop::bool::weighted(0.9), any::<usize>()), 0..80)
        .prop_map(|picks| picks.into_iter().map(|(guided, pick)| Pick { guided, pick }).collect())
}

proptest! {
    #[test]
    fn random_event_sequences_keep_the_invariants(
        recovered in any::<bool>(),
        simulate_every in 0u32..4,
        picks in picks(),
    ) {
        let (mut sale, entry) = if recovered { Sale::recover(simulate_every) } else { Sale::new(simulate_every) };
        prop_assert_eq!(entry, vec![Effect::LoadRequest]);
        let events = every_event();
        let mut clean_ups = 0;
        for Pick { guided, pick } in picks {
            let mut candidates: Vec<&Event> = Vec::new();
            if guided {
                candidates = events.iter().filter(|event| moves_on(&sale, event)).collect();
            }
            if candidates.is_empty() {
                candidates = events.iter().collect();
            }
            let event = candidates[pick % candidates.len()];
            let before = sale.clone();
            let effects = sale.step(event.clone());
            if before.done {
                prop_assert!(effects.is_empty(), "done, yet {:?} gave {:?}", event, effects);
                prop_assert_eq!(&sale, &before);
                continue;
            }
            prop_assert!(!before.deposited || sale.deposited, "a deposit was forgotten on {:?}", event);
            let errs = matches!(sale.state, State::Errored { .. }) && !matches!(before.state, State::Errored { .. });
            if errs {
                prop_assert_eq!(&effects, &vec![Effect::CheckHost], "Errored is entered by checking the host");
            }
            if matches!(event, Event::Transient(_)) {
                // A transient failure drops nothing: it is retried, or (before the fill, too often) errs.
                let expected = if errs { Effect::CheckHost } else { Effect::RetryLater };
                prop_assert_eq!(&effects, &vec![expected], "{:?} in {:?}", event, before.state);
            }
            for (index, effect) in effects.iter().enumerate() {
                if let Effect::CleanUp { collateral, .. } = effect {
                    clean_ups += 1;
                    prop_assert_eq!(index, effects.len() - 1, "CleanUp is the last effect");
                    prop_assert_eq!(*collateral == Collateral::Reserved, !sale.deposited);
                    prop_assert!(sale.done);
                }
            }
            prop_assert!(clean_ups <= 1, "{} clean-ups", clean_ups);
            prop_assert_eq!(sale.done, clean_ups == 1);
        }
        prop_assert_eq!(sale.done, clean_ups == 1, "a done sale cleaned up exactly once");
    }
}

#[test]
fn a_cancellation_during_a_mined_fill_returns_the_chains_collateral() {
    // Cancelled arrives while FillSlot runs; the fill was mined, so FreeSlot finds this host holding the slot.
    let mut sale = sale_in(&State::Filling);
    assert_eq!(sale.step(Event::Cancelled), vec![Effect::FreeSlot]);
    let amount = U256::from(5u8);
    let effects = run(&mut sale, [Event::Freed { returned: Some(amount) }, Event::Cleared]);
    assert_eq!(effects, vec![Effect::CleanUp { collateral: Collateral::Amount(amount), reprocess: Reprocess::No }]);
}

#[test]
fn a_failed_proof_inside_errored_goes_on_with_the_clean_up() {
    let (mut sale, _) = Sale::new(0);
    assert_eq!(sale.step(Event::Error("boom".into())), vec![Effect::CheckHost]);
    let effects = sale.step(Event::ProofFailed("late".into()));
    assert_eq!(effects, vec![Effect::CleanUp { collateral: Collateral::Reserved, reprocess: Reprocess::No }]);
}

#[test]
fn a_fill_whose_proof_went_stale_is_proven_again_three_times_at_most() {
    let mut sale = sale_in(&State::Filling);
    for attempt in 1..MAX_FILL_ATTEMPTS {
        assert_eq!(sale.state, State::Filling, "fill {attempt}");
        assert_eq!(sale.step(Event::ProofStale), vec![Effect::WaitStableChallenge], "fill {attempt}");
        run(&mut sale, [Event::ChallengeReady, Event::ProofReady]);
    }
    assert_eq!(sale.fill_attempts, MAX_FILL_ATTEMPTS);
    assert_eq!(sale.step(Event::ProofStale), vec![Effect::CheckHost]);
    assert!(matches!(sale.state, State::Errored { .. }));
}
