//! The SalesActor's handlers of the host's REST calls (forwarded by the NodeActor as `SalesCall`s):
//! availabilities created, changed and listed, reservations, the slots held on chain, the sale of one slot.

use super::*;

impl Handler<CreateAvailability> for SalesActor {
    type Result = AtomicResponse<Self, Result<Availability, SalesError>>;
    fn handle(&mut self, msg: CreateAvailability, _: &mut Self::Context) -> Self::Result {
        let mut next = self.ledger.clone();
        let created = match next.create_availability(B256::random(), msg.new, self.clock.now()) {
            Ok(created) => created,
            Err(err) => return AtomicResponse::new(Box::pin(fut::ready(Err(SalesError::Invalid(err.to_string()))))),
        };
        let commit = CommitSales { availabilities: vec![created.clone()], ..Default::default() };
        AtomicResponse::new(Box::pin(self.commit(next, commit).map(move |result, act, ctx| {
            result.map_err(quota_refusal)?;
            tracing::info!(availability_id = %created.id, total_size = created.total_size, "availability created");
            if let Some(queue) = act.queue() {
                queue.do_send(AvailabilityChanged { grew: true });
            }
            act.replay_past_requests(ctx);
            Ok(created)
        })))
    }
}

/// A quota refusal is the caller's to fix (422), with the store's message.
fn quota_refusal(err: SalesError) -> SalesError {
    match err {
        SalesError::Store(store @ crate::store::StoreError::QuotaExceeded { .. }) => {
            SalesError::Invalid(format!("not enough storage quota for this availability: {store}"))
        }
        other => other,
    }
}

impl Handler<UpdateAvailability> for SalesActor {
    type Result = AtomicResponse<Self, Result<(), SalesError>>;
    fn handle(&mut self, msg: UpdateAvailability, _: &mut Self::Context) -> Self::Result {
        if self.ledger.availability(&msg.id).is_none() {
            let missing = SalesError::NotFound(format!("availability {} not found", msg.id));
            return AtomicResponse::new(Box::pin(fut::ready(Err(missing))));
        }
        let mut next = self.ledger.clone();
        let outcome = match next.update_availability(&msg.id, msg.patch, self.clock.now()) {
            Ok(outcome) => outcome,
            Err(err) => return AtomicResponse::new(Box::pin(fut::ready(Err(SalesError::Invalid(err.to_string()))))),
        };
        let commit = CommitSales { availabilities: vec![outcome.availability.clone()], ..Default::default() };
        let grew = outcome.grew;
        AtomicResponse::new(Box::pin(self.commit(next, commit).map(move |result, act, _| {
            result.map_err(quota_refusal)?;
            if let Some(queue) = act.queue() {
                queue.do_send(AvailabilityChanged { grew });
            }
            Ok(())
        })))
    }
}

impl Handler<ListAvailabilities> for SalesActor {
    type Result = Result<Vec<Availability>, SalesError>;
    fn handle(&mut self, _: ListAvailabilities, _: &mut Self::Context) -> Self::Result {
        Ok(self.ledger.availabilities().cloned().collect())
    }
}

impl Handler<ListReservations> for SalesActor {
    type Result = Result<Vec<Reservation>, SalesError>;
    fn handle(&mut self, msg: ListReservations, _: &mut Self::Context) -> Self::Result {
        if self.ledger.availability(&msg.availability).is_none() {
            return Err(SalesError::NotFound(format!("availability {} not found", msg.availability)));
        }
        Ok(self.ledger.reservations_of(&msg.availability))
    }
}

impl Handler<ListActiveSlots> for SalesActor {
    type Result = ResponseFuture<Result<Vec<ActiveSlot>, SalesError>>;
    fn handle(&mut self, _: ListActiveSlots, _: &mut Self::Context) -> Self::Result {
        let market = self.market.clone();
        Box::pin(async move {
            let mut slots = Vec::new();
            for id in market.my_slots().await? {
                if let Some((request, slot_index)) = market.get_active_slot(id).await? {
                    slots.push(ActiveSlot { id, request, slot_index });
                }
            }
            Ok(slots)
        })
    }
}

impl Handler<GetSlotAgent> for SalesActor {
    type Result = ResponseFuture<Result<Option<SlotAgentInfo>, SalesError>>;
    fn handle(&mut self, msg: GetSlotAgent, _: &mut Self::Context) -> Self::Result {
        let agent = self.agents.get(&msg.slot).map(|agent| agent.addr.clone());
        Box::pin(async move {
            match agent {
                Some(agent) => Ok(agent.send(GetSaleInfo).await.ok()),
                None => Ok(None),
            }
        })
    }
}
