//! The SalesActor's routing of marketplace events: what each event does to the queue and to the running sales,
//! and the chain reads some need before their slots can be queued (a `StorageRequested` log's block for the
//! reservation window, a freed slot's request). A delivery is answered only once those reads are done, so the
//! chain actor's cursor never moves past an event whose follow-up failed.

use super::*;

impl SalesActor {
    /// Handles one marketplace event at once where no chain read is needed; otherwise answers the read to make
    /// first (its outcome goes to [`SalesActor::apply_follow`]).
    pub(super) fn on_event(
        &mut self,
        event: ChainEvent,
    ) -> Option<LocalBoxFuture<'static, Result<Option<Follow>, MarketError>>> {
        match event.event {
            MarketEvent::StorageRequested { id, ask, expires_at } => {
                let collateral = ask.collateralPerByte.saturating_mul(U256::from(ask.slotSize));
                if !self.could_take(&ask, collateral) {
                    tracing::debug!(request_id = %id, "no availability can take this request: not queued");
                    return None;
                }
                let market = self.market.clone();
                let block = event.block;
                Some(Box::pin(async move {
                    let Some((start, seed)) = market.block_info(block).await? else {
                        tracing::warn!(block, "the block of a StorageRequested log is unknown");
                        return Ok(None);
                    };
                    let window = Window { seed, start, expiry: expires_at.saturating_sub(start) };
                    let indices = (0..ask.slots).collect();
                    Ok(Some(Follow { id, ask, expiry: Some(expires_at), window, indices, collateral }))
                }))
            }
            MarketEvent::SlotFreed { id, index } => {
                let (market, block) = (self.market.clone(), event.block);
                let repair_percent = U256::from(self.market_config.collateral.repairRewardPercentage);
                Some(Box::pin(async move {
                    let (Some(request), Some((start, seed))) =
                        (market.get_request(id).await?, market.block_info(block).await?)
                    else {
                        tracing::warn!(request_id = %id, "a freed slot's request or block is unknown");
                        return Ok(None);
                    };
                    let ask = request.ask;
                    let window = Window { seed, start, expiry: request.expiry };
                    let full = ask.collateralPerByte.saturating_mul(U256::from(ask.slotSize));
                    let collateral = full - full * repair_percent.min(U256::from(100u8)) / U256::from(100u8);
                    Ok(Some(Follow { id, ask, expiry: None, window, indices: vec![index], collateral }))
                }))
            }
            MarketEvent::RequestCancelled { id } => {
                self.remove_request(id);
                self.tell_request(id, Event::Cancelled);
                None
            }
            MarketEvent::RequestFailed { id } => {
                self.remove_request(id);
                self.tell_request(id, Event::RequestFailed);
                None
            }
            MarketEvent::RequestFulfilled { id } => {
                self.remove_request(id);
                None
            }
            MarketEvent::SlotFilled { id, index } => {
                self.remove_slot(id, index);
                if let Some(agent) = self.agents.get(&slot_id(id, index)) {
                    agent.addr.do_send(SaleInput(Event::SlotFilled));
                }
                None
            }
            MarketEvent::SlotReservationsFull { id, index } => {
                self.remove_slot(id, index);
                None
            }
            MarketEvent::ProofSubmitted { .. } => None,
        }
    }

    /// Queues the slots a followed-up event offers.
    pub(super) fn apply_follow(&mut self, follow: Follow) {
        let Follow { id, ask, expiry, window, indices, collateral } = follow;
        let repair = expiry.is_none();
        let items = self.items_for(id, &ask, expiry, &window, indices, collateral);
        if repair {
            for (item, _) in &items {
                tracing::info!(
                    request_id = %id,
                    slot_index = item.slot_index,
                    not_before = item.not_before,
                    "a freed slot is queued for repair"
                );
            }
        }
        self.push(items);
    }

    /// Handles `events` in chain order: the ones that need a chain read wait for it (each retried by the market's
    /// policy); the answer is an error if a read failed, and the chain actor then hands the range over again.
    pub(super) fn handle_events(
        &mut self,
        events: Vec<ChainEvent>,
    ) -> impl ActorFuture<Self, Output = Result<(), NotHandled>> + 'static + use<> {
        let reads: Vec<_> = events.into_iter().filter_map(|event| self.on_event(event)).collect();
        async move {
            let mut follows = Vec::with_capacity(reads.len());
            for read in reads {
                follows.extend(read.await.map_err(|e| NotHandled(format!("a follow-up read: {e}")))?);
            }
            Ok::<_, NotHandled>(follows)
        }
        .into_actor(self)
        .map(|result, act, _| {
            for follow in result? {
                act.apply_follow(follow);
            }
            Ok(())
        })
    }
}
