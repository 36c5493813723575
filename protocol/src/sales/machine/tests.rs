use super::*;

/// Runs `events` from `sale`, answering the effects of the last step.
fn run(sale: &mut Sale, events: impl IntoIterator<Item = Event>) -> Vec<Effect> {
    let mut last = Vec::new();
    for event in events {
        last = sale.step(event);
    }
    last
}

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
