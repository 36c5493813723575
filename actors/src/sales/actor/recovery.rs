//! The SalesActor's recovery at start (seed 001 §5.2.4) and the replay of open requests: sales the chain says are
//! this host's get an agent in SaleUnknown, sales persisted before their fill resume where they were (a repair
//! too), everything else gives its bytes back (and its collateral, unless it was deposited), and only then does
//! the queue start new sales; the open requests and the freed slots of recent blocks are queued again.

use super::*;

impl SalesActor {
    /// Replays the `StorageRequested` logs of recent blocks whose requests are still open, and the `SlotFreed`
    /// logs whose slots still wait for repair (seed 004; a restart loses the queue).
    pub(super) fn replay_past_requests(&mut self, ctx: &mut Context<Self>) {
        let (market, lookback) = (self.market.clone(), self.config.past_events_blocks);
        let work = async move {
            let head = market.block_number().await?;
            let mut from = head.saturating_sub(lookback).max(1);
            let mut open = Vec::new();
            while from <= head {
                let to = head.min(from + crate::chain::market::MAX_LOG_RANGE - 1);
                for event in market.events(from, to).await? {
                    let still_open = match &event.event {
                        MarketEvent::StorageRequested { id, .. } => {
                            market.request_state(*id).await? == Some(RequestState::New)
                        }
                        MarketEvent::SlotFreed { id, index } => {
                            market.slot_state(slot_id(*id, *index)).await? == SlotState::Repair
                        }
                        _ => false,
                    };
                    if still_open {
                        open.push(event);
                    }
                }
                from = to + 1;
            }
            Ok::<_, MarketError>(open)
        };
        ctx.spawn(work.into_actor(self).then(|result, act, _| {
            let open = result.unwrap_or_else(|err| {
                tracing::warn!(%err, "cannot replay past storage requests");
                Vec::new()
            });
            if !open.is_empty() {
                tracing::info!(events = open.len(), "open storage requests and freed slots replayed into the queue");
            }
            act.handle_events(open).map(|result, _, _| {
                if let Err(err) = result {
                    tracing::warn!(%err, "cannot replay past storage requests");
                }
            })
        }));
    }

    /// Recovery at start (see the module documentation).
    pub(super) fn recover(&mut self, rows: Vec<(B256, Vec<u8>)>, ctx: &mut Context<Self>) {
        let market = self.market.clone();
        let mut records = Vec::new();
        for (slot, bytes) in rows {
            match bincode::serde::decode_from_slice::<SaleRecord, _>(&bytes, bincode::config::standard()) {
                Ok((record, _)) => records.push((slot, record)),
                Err(err) => tracing::error!(%slot, %err, "an unreadable sale record is dropped"),
            }
        }
        let work = async move {
            let mine: HashSet<SlotId> = market.my_slots().await?.into_iter().collect();
            let mut resumable = HashMap::new();
            for (slot, record) in &records {
                if mine.contains(slot) || record.sale.state.resumable().is_none() {
                    continue;
                }
                // A new request's free slot, or a started request's slot waiting for repair.
                let open = match market.slot_state(*slot).await? {
                    SlotState::Free => market.request_state(record.item.request_id).await? == Some(RequestState::New),
                    SlotState::Repair => true,
                    _ => false,
                };
                resumable.insert(*slot, open);
            }
            let mut unrecorded = Vec::new();
            for slot in &mine {
                if !records.iter().any(|(s, _)| s == slot)
                    && let Some((request, index)) = market.get_active_slot(*slot).await?
                {
                    unrecorded.push((*slot, request, index));
                }
            }
            Ok::<_, MarketError>((records, mine, resumable, unrecorded))
        };
        ctx.spawn(work.into_actor(self).map(|result, act, ctx| {
            let (records, mine, resumable, unrecorded) = match result {
                Ok(found) => found,
                Err(err) => {
                    tracing::error!(%err, "sales recovery could not read the chain; retrying in 10 s");
                    ctx.run_later(Duration::from_secs(10), |act, ctx| act.restart_recovery(ctx));
                    return;
                }
            };
            act.finish_recovery(records, mine, resumable, unrecorded, ctx);
        }));
    }

    fn restart_recovery(&mut self, ctx: &mut Context<Self>) {
        let store = self.store.clone();
        ctx.spawn(async move { store.send(LoadSales).await }.into_actor(self).map(|result, act, ctx| match result {
            Ok(Ok(records)) => act.recover(records.sales, ctx),
            _ => tracing::error!("sales recovery cannot read the sales records"),
        }));
    }

    fn finish_recovery(
        &mut self,
        records: Vec<(SlotId, SaleRecord)>,
        mine: HashSet<SlotId>,
        resumable: HashMap<SlotId, bool>,
        unrecorded: Vec<(SlotId, crate::chain::market::Request, u64)>,
        ctx: &mut Context<Self>,
    ) {
        let simulate = self.config.simulate_proof_failures;
        let mut kept_reservations = HashSet::new();
        let mut dropped = Vec::new();
        for (slot, record) in records {
            let reservation = record.reservation.and_then(|id| self.ledger.reservation(&id).cloned());
            if mine.contains(&slot) {
                tracing::info!(%slot, "recovering a sale from the chain (SaleUnknown)");
                kept_reservations.extend(reservation.as_ref().map(|r| r.id));
                self.start_agent(ctx, record.item, record.window_open, Sale::recover(simulate), reservation, None);
            } else if let (Some(state), Some(true)) = (record.sale.state.resumable(), resumable.get(&slot)) {
                tracing::info!(%slot, state = state.name(), "resuming a sale");
                kept_reservations.extend(reservation.as_ref().map(|r| r.id));
                let sale = Sale::resume(state, record.sale.is_repairing, simulate);
                self.start_agent(ctx, record.item, record.window_open, sale, reservation, None);
            } else {
                tracing::info!(%slot, state = record.sale.state.name(), "a sale that cannot go on is cleaned up");
                dropped.push((slot, record));
            }
        }
        for (slot, request, index) in unrecorded {
            tracing::info!(%slot, "recovering an unrecorded slot of this host (SaleUnknown)");
            let ask = &request.ask;
            let item = SlotQueueItem {
                request_id: crate::chain::market::request_id(&request),
                slot_index: index,
                slot_size: ask.slotSize,
                duration: ask.duration,
                price_per_byte_per_second: ask.pricePerBytePerSecond,
                collateral: ask.collateralPerByte.saturating_mul(U256::from(ask.slotSize)),
                expiry: None,
                seen: true,
                not_before: 0,
            };
            let reservation = self.ledger.reservation_for(&item.request_id, index).cloned();
            kept_reservations.extend(reservation.as_ref().map(|r| r.id));
            self.start_agent(ctx, item, 0, Sale::recover(simulate), reservation, None);
        }
        // Reservations no sale goes on with: their bytes go back, and their collateral unless it was deposited (a
        // filled slot that is no longer this host's was slashed out or failed while the node was down: the chain
        // kept the collateral).
        let forfeited: HashSet<B256> = dropped
            .iter()
            .filter(|(_, record)| record.sale.deposited)
            .filter_map(|(_, record)| record.reservation)
            .collect();
        let mut next = self.ledger.clone();
        let orphans: Vec<Reservation> =
            next.reservations().filter(|r| !kept_reservations.contains(&r.id)).cloned().collect();
        let mut commit = CommitSales { force: true, ..Default::default() };
        for reservation in &orphans {
            let returned = if forfeited.contains(&reservation.id) { U256::ZERO } else { reservation.collateral };
            if next.delete_reservation(&reservation.id, returned).is_ok() {
                commit.delete_reservations.push(reservation.id);
            }
        }
        commit.delete_sales = dropped.iter().map(|(slot, _)| *slot).collect();
        commit.availabilities = next.availabilities().cloned().collect();
        if !orphans.is_empty() || !dropped.is_empty() {
            tracing::info!(reservations = orphans.len(), sales = dropped.len(), "stale sales cleaned up");
        }
        let market = self.market.clone();
        let store = self.store.clone();
        // `wait`, not `spawn`: the commit installs its copy of the ledger when it is durable, so no other message
        // (an availability created over REST right after start) may change the ledger in between, or that change
        // would be lost from memory. (The durability test's spare host lost its availability this way.)
        ctx.wait(self.commit(next, commit).map(|result, act, _| {
            if let Err(err) = result {
                tracing::error!(%err, "cleaning up stale sales failed");
            }
            act.recovered = true;
        }));
        // Their data goes too (onClear).
        ctx.spawn(
            async move {
                for (_, record) in dropped {
                    clear_request_data(&market, &store, record.item.request_id).await;
                }
            }
            .into_actor(self),
        );
    }
}

/// Drops the hosted slot (or unfinished download) of request `id`'s dataset, if any.
async fn clear_request_data(market: &OnChainMarket, store: &Addr<StoreActor>, id: RequestId) {
    let Ok(Some(request)) = market.get_request(id).await else { return };
    let Ok(cid) = codex_protocol::cid::cid_from_bytes(&request.content.cid) else { return };
    if let Ok(manifest) = crate::fetch::manifest_of(store, None, cid).await {
        let reason = "the sale is over".to_owned();
        let _ = store.send(DropSlot { tree: manifest.tree_cid, reason }).await;
    }
}
