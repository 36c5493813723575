//! The outbox: control messages (want-list entries and presences) for a peer whose send queue is full, merged
//! into as few messages as possible until the queue has room. A plain state machine; the actor waits for room.
//!
//! Want-lists and presences are sets of entries applied in order, so what waits can be sent as one message
//! instead of many: under load a peer gets fewer, larger frames, and nothing is dropped (a dropped wantBlock
//! cost a request timeout, 15 s, and a dropped Have a leaf's source). A full want-list replaces the peer's
//! list, so the entries waiting before it are dropped from the backlog. The backlog of a peer is bounded
//! ([`MAX_BACKLOG`] entries and presences); past it, new entries are refused and counted (the requester asks
//! again after its timeouts), and a peer that does not read is disconnected by the actor after
//! [`super::ledger::SEND_STALL`].

use codex_protocol::blockexc::{BlockPresence, Message as WireMessage, WantEntry, WantList};
use libp2p::PeerId;
use std::collections::HashMap;

/// Want-list entries and presences one message carries at most (each kind).
pub const MAX_ENTRIES_PER_MESSAGE: usize = 1024;
/// Want-list entries and presences that may wait for one peer (together): about 1 MiB.
pub const MAX_BACKLOG: usize = 16 * 1024;

/// Control entries for one peer: want-list entries (the first message a full list) and presences.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Control {
    pub entries: Vec<WantEntry>,
    /// The entries are the peer's whole want-list (replacing what it had).
    pub full: bool,
    pub presences: Vec<BlockPresence>,
}

impl Control {
    pub fn wants(entries: Vec<WantEntry>, full: bool) -> Self {
        Self { entries, full, presences: Vec::new() }
    }

    pub fn presences(presences: Vec<BlockPresence>) -> Self {
        Self { entries: Vec::new(), full: false, presences }
    }

    fn len(&self) -> usize {
        self.entries.len() + self.presences.len()
    }

    fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.presences.is_empty() && !self.full
    }
}

#[derive(Default)]
struct Backlog {
    waiting: Control,
    /// A wait for room in the peer's queue is running.
    flushing: bool,
}

/// The outbox.
#[derive(Default)]
pub struct Outbox {
    peers: HashMap<PeerId, Backlog>,
}

impl Outbox {
    /// Adds `control` to what waits for `peer`. Returns how many entries and presences were refused (the
    /// backlog is full).
    pub fn push(&mut self, peer: PeerId, control: Control) -> usize {
        let backlog = self.peers.entry(peer).or_default();
        let waiting = &mut backlog.waiting;
        if control.full {
            // A full list replaces the peer's list: entries waiting before it no longer matter.
            waiting.entries.clear();
            waiting.full = true;
        }
        let offered = control.len();
        let before = waiting.len();
        let room = MAX_BACKLOG.saturating_sub(before);
        waiting.entries.extend(control.entries.into_iter().take(room));
        let room = MAX_BACKLOG.saturating_sub(waiting.len());
        waiting.presences.extend(control.presences.into_iter().take(room));
        offered - (waiting.len() - before)
    }

    /// True while messages to `peer` wait for room (new ones must join them, to keep their order).
    pub fn is_flushing(&self, peer: &PeerId) -> bool {
        self.peers.get(peer).is_some_and(|b| b.flushing)
    }

    /// Marks a wait for room for `peer` as running.
    pub fn start_flush(&mut self, peer: &PeerId) {
        if let Some(backlog) = self.peers.get_mut(peer) {
            backlog.flushing = true;
        }
    }

    /// The wait for room for `peer` ended without sending (the queue stays full or the peer left).
    pub fn stop_flush(&mut self, peer: &PeerId) {
        if let Some(backlog) = self.peers.get_mut(peer) {
            backlog.flushing = false;
        }
    }

    /// True when something waits for `peer`.
    pub fn has_waiting(&self, peer: &PeerId) -> bool {
        self.peers.get(peer).is_some_and(|b| !b.waiting.is_empty())
    }

    /// The next message for `peer` (at most [`MAX_ENTRIES_PER_MESSAGE`] entries and presences), or `None` when
    /// nothing waits.
    pub fn take(&mut self, peer: &PeerId) -> Option<WireMessage> {
        let backlog = self.peers.get_mut(peer)?;
        let waiting = &mut backlog.waiting;
        if waiting.is_empty() {
            return None;
        }
        let entries: Vec<WantEntry> =
            waiting.entries.drain(..waiting.entries.len().min(MAX_ENTRIES_PER_MESSAGE)).collect();
        let presences: Vec<BlockPresence> =
            waiting.presences.drain(..waiting.presences.len().min(MAX_ENTRIES_PER_MESSAGE)).collect();
        let full = std::mem::take(&mut waiting.full);
        Some(WireMessage { wantlist: WantList { entries, full }, presences, ..WireMessage::default() })
    }

    /// Forgets `peer` when nothing waits for it and no wait for room runs.
    pub fn remove_idle(&mut self, peer: &PeerId) {
        if self.peers.get(peer).is_some_and(|b| b.waiting.is_empty() && !b.flushing) {
            self.peers.remove(peer);
        }
    }

    /// Forgets `peer` (it left).
    pub fn remove(&mut self, peer: &PeerId) {
        self.peers.remove(peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use codex_protocol::blockexc::{BlockAddress, PresenceType, WantType};
    use codex_protocol::cid::block_cid;

    fn entry(n: u64, cancel: bool) -> WantEntry {
        let address = BlockAddress::Leaf { tree: block_cid(b"tree"), index: n };
        WantEntry { address, priority: 0, cancel, want_type: WantType::WantHave, send_dont_have: false }
    }

    fn presence(n: u64) -> BlockPresence {
        let address = BlockAddress::Leaf { tree: block_cid(b"tree"), index: n };
        BlockPresence { address, kind: PresenceType::Have, price: vec![0; 32] }
    }

    #[test]
    fn waiting_messages_merge_in_order_into_bounded_messages() {
        let (mut outbox, peer) = (Outbox::default(), PeerId::random());
        assert_eq!(outbox.push(peer, Control::wants(vec![entry(1, false)], false)), 0);
        outbox.start_flush(&peer);
        assert!(outbox.is_flushing(&peer));
        outbox.push(peer, Control::presences(vec![presence(7)]));
        outbox.push(peer, Control::wants(vec![entry(1, true), entry(2, false)], false));
        let message = outbox.take(&peer).expect("one message");
        assert_eq!(message.wantlist.entries, vec![entry(1, false), entry(1, true), entry(2, false)], "in order");
        assert_eq!(message.presences, vec![presence(7)]);
        assert!(!message.wantlist.full);
        assert!(outbox.take(&peer).is_none(), "all of it went in one message");
        // Long lists are cut to the per-message bound.
        outbox.push(
            peer,
            Control::wants((0..MAX_ENTRIES_PER_MESSAGE as u64 + 5).map(|n| entry(n, false)).collect(), false),
        );
        assert_eq!(outbox.take(&peer).expect("first").wantlist.entries.len(), MAX_ENTRIES_PER_MESSAGE);
        assert_eq!(outbox.take(&peer).expect("rest").wantlist.entries.len(), 5);
        outbox.stop_flush(&peer);
        outbox.remove_idle(&peer);
        assert!(!outbox.has_waiting(&peer) && !outbox.is_flushing(&peer));
    }

    #[test]
    fn a_full_list_replaces_the_entries_before_it_and_the_backlog_is_bounded() {
        let (mut outbox, peer) = (Outbox::default(), PeerId::random());
        outbox.push(peer, Control { presences: vec![presence(1)], ..Control::wants(vec![entry(1, false)], false) });
        outbox.push(peer, Control::wants(vec![entry(2, false)], true));
        let message = outbox.take(&peer).expect("message");
        assert!(message.wantlist.full);
        assert_eq!(message.wantlist.entries, vec![entry(2, false)], "entry 1 was replaced");
        assert_eq!(message.presences, vec![presence(1)], "presences are not part of the list");
        let many: Vec<WantEntry> = (0..MAX_BACKLOG as u64 + 10).map(|n| entry(n, false)).collect();
        assert_eq!(outbox.push(peer, Control::wants(many, false)), 10, "what does not fit is refused");
        assert_eq!(outbox.push(peer, Control::presences(vec![presence(2)])), 1);
        let mut taken = 0;
        while let Some(message) = outbox.take(&peer) {
            assert!(!message.wantlist.full, "only the first message of a full list says so");
            taken += message.wantlist.entries.len();
        }
        assert_eq!(taken, MAX_BACKLOG);
    }
}
