//! Sending to peers: control entries (want-lists, presences) go out at once while a peer's queue has room, and
//! wait merged in the [`crate::blockexc::outbox::Outbox`] while it is full; a queue that stays full for [`ledger::SEND_STALL`] is a peer
//! that does not read.

use super::BlockExchangeActor;
use crate::blockexc::ledger;
use crate::blockexc::outbox::Control;
use crate::network::Frame;
use actix::prelude::*;
use codex_protocol::blockexc::{BlockPresence, Message as WireMessage, WantEntry};
use libp2p::PeerId;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

impl BlockExchangeActor {
    /// Sends control entries to a peer: at once while its queue has room, else merged with what waits for it
    /// and sent as room frees (see [`crate::blockexc::outbox::Outbox`]).
    pub(super) fn send(&mut self, peer: PeerId, control: Control, ctx: &mut Context<Self>) {
        if !self.senders.contains_key(&peer) {
            return;
        }
        let refused = self.outbox.push(peer, control);
        if refused > 0 {
            tracing::debug!(%peer, refused, "the peer's backlog is full; entries dropped");
        }
        if !self.outbox.is_flushing(&peer) {
            self.drain(peer, ctx);
        }
    }

    /// Sends what waits for `peer` while its queue has room; once it is full, waits for room (a queue that stays
    /// full for [`ledger::SEND_STALL`] is a peer that does not read).
    pub(super) fn drain(&mut self, peer: PeerId, ctx: &mut Context<Self>) {
        let Some(sender) = self.senders.get(&peer).cloned() else {
            self.outbox.remove(&peer);
            return;
        };
        while self.outbox.has_waiting(&peer) {
            match sender.try_reserve() {
                Ok(permit) => {
                    let Some(message) = self.outbox.take(&peer) else { break };
                    permit.send(self.control_frame(message));
                }
                Err(TrySendError::Closed(())) => {
                    // The peer's writer ended (its stream failed) while the connection lives on: without a stream
                    // the peer is useless and would hold requests; drop it, it may reconnect afresh.
                    tracing::debug!(%peer, "the peer's blockexc stream is gone; disconnecting");
                    return self.drop_peer(peer);
                }
                Err(TrySendError::Full(())) => return self.wait_for_room(peer, sender.clone(), ctx),
            }
        }
        self.outbox.remove_idle(&peer);
    }

    pub(super) fn wait_for_room(&mut self, peer: PeerId, sender: mpsc::Sender<Frame>, ctx: &mut Context<Self>) {
        self.outbox.start_flush(&peer);
        let session = self.ledger.session(&peer);
        async move { tokio::time::timeout(ledger::SEND_STALL, sender.reserve_owned()).await }
            .into_actor(self)
            .map(move |result, act, ctx| {
                if act.ledger.session(&peer) != session {
                    return;
                }
                act.outbox.stop_flush(&peer);
                match result {
                    Ok(Ok(permit)) => {
                        if let Some(message) = act.outbox.take(&peer) {
                            permit.send(act.control_frame(message));
                        }
                        act.drain(peer, ctx);
                    }
                    Ok(Err(_)) => act.drop_peer(peer),
                    Err(_) => act.strike(peer, ledger::BAN_STRIKES, "does not read what it is sent"),
                }
            })
            .spawn(ctx);
    }

    /// A control message's frame, charged to the outbound budget when it has room. Control frames go out even
    /// when it has none: they are small, and a peer's backlog and queue bound them.
    pub(super) fn control_frame(&self, message: WireMessage) -> Frame {
        let bytes = message.encode();
        let charge = self.outbound.clone().try_acquire_many_owned(bytes.len().max(1) as u32).ok();
        Frame { bytes, charge }
    }

    pub(super) fn send_entries(&mut self, peer: PeerId, entries: Vec<WantEntry>, full: bool, ctx: &mut Context<Self>) {
        self.send(peer, Control::wants(entries, full), ctx);
    }

    pub(super) fn broadcast(&mut self, entries: Vec<WantEntry>, ctx: &mut Context<Self>) {
        if entries.is_empty() {
            return;
        }
        let peers: Vec<PeerId> = self.senders.keys().copied().collect();
        for peer in peers {
            self.send_entries(peer, entries.clone(), false, ctx);
        }
    }

    /// Sends `presences` to `peer` (as many messages as the per-message bound needs).
    pub(super) fn send_presences(&mut self, peer: PeerId, presences: Vec<BlockPresence>, ctx: &mut Context<Self>) {
        self.send(peer, Control::presences(presences), ctx);
    }
}
