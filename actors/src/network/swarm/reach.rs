//! The swarm thread's NAT handling (see [`crate::network::nat`] for the rules): AutoNAT's verdicts, relay
//! reservations, hole punching outcomes, the relay this node serves, and the announced addresses.

use super::{Host, is_dialable};
use crate::network::Nat;
use crate::network::nat::{Announced, NatInfo, Reachability, RelayCandidate, is_relayed, relay_of};
use libp2p::core::transport::ListenerId;
use libp2p::kad::store::RecordStore;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId, autonat, dcutr, kad, relay};
use std::time::Duration;
use tokio::time::Instant;

/// Delay before provider records are published again after the announced addresses changed (changes come in
/// bursts: a reservation on each relay, AutoNAT's verdict).
const REPROVIDE_DELAY: Duration = Duration::from_secs(3);

impl Host {
    /// The addresses to announce for a new listen address, by `--nat` and reachability.
    fn announce_for(&self, listen: &Multiaddr) -> Vec<Multiaddr> {
        match &self.nat {
            _ if is_relayed(listen) => vec![listen.clone()],
            Nat::ExtIp(ip) => {
                let mut mapped = Multiaddr::empty();
                for protocol in listen.iter() {
                    mapped.push(match protocol {
                        Protocol::Ip4(_) | Protocol::Ip6(_) => Protocol::from(*ip),
                        other => other,
                    });
                }
                vec![mapped]
            }
            _ if self.nat.learns() && self.nat_state.reachability == Reachability::Private => Vec::new(),
            _ if is_dialable(listen) => vec![listen.clone()],
            _ => Vec::new(),
        }
    }

    pub(super) fn on_new_listen_addr(&mut self, address: Multiaddr) {
        if is_relayed(&address) {
            tracing::info!(%address, "reserved a slot on a relay; announcing the relayed address");
        } else {
            tracing::info!(%address, "listening");
        }
        for announced in self.announce_for(&address) {
            self.swarm.add_external_address(announced);
        }
        self.schedule_reprovide();
    }

    pub(super) fn schedule_reprovide(&mut self) {
        self.reprovide_at = Some(Instant::now() + REPROVIDE_DELAY);
    }

    /// Once a second: peers whose hole punching took too long go through the relay; reservations are kept up;
    /// provider records are published again after an address change.
    pub(super) fn on_nat_tick(&mut self) {
        let now = Instant::now();
        let settled: Vec<PeerId> = self.settling.iter().filter(|(_, at)| **at <= now).map(|(p, _)| *p).collect();
        for peer in settled {
            self.settle(peer);
        }
        let expired: Vec<PeerId> = self.waiting.iter().filter(|(_, at)| **at <= now).map(|(p, _)| *p).collect();
        for peer in expired {
            self.waiting.remove(&peer);
            tracing::info!(%peer, "no direct connection after waiting for hole punching; data goes through the relay");
            self.announce(peer);
        }
        self.reserve_relays();
        if self.serve_dht_at.is_some_and(|at| at <= now) {
            self.serve_dht_at = None;
            if self.nat_state.reachability == Reachability::Unknown {
                tracing::info!("AutoNAT has no verdict yet; serving the DHT on the listen addresses meanwhile");
                self.swarm.behaviour_mut().kad.set_mode(Some(kad::Mode::Server));
            }
        }
        if self.reprovide_at.is_some_and(|at| at <= now) {
            self.reprovide_at = None;
            let keys: Vec<kad::RecordKey> =
                self.swarm.behaviour_mut().kad.store_mut().provided().map(|r| r.key.clone()).collect();
            if !keys.is_empty() {
                tracing::debug!(records = keys.len(), "announced addresses changed; publishing provider records again");
            }
            for key in keys {
                let _ = self.swarm.behaviour_mut().kad.start_providing(key);
            }
        }
    }

    /// A peer that speaks the relay protocol becomes a relay candidate when this node dialed it directly (not
    /// through hole punching, which only reaches peers behind NATs).
    pub(super) fn add_relay_candidate(&mut self, peer: PeerId) {
        if self.nat_state.candidates.contains_key(&peer) {
            return;
        }
        let Some(conn) = self.conns.get(&peer).into_iter().flatten().find(|c| c.dialer && !c.relayed && !c.punched)
        else {
            return;
        };
        tracing::debug!(%peer, addr = %conn.addr, "a relay candidate");
        self.nat_state.candidates.insert(peer, RelayCandidate { addr: conn.addr.clone(), listener: None });
    }

    /// Listens on relays while private (when what is learned counts).
    fn reserve_relays(&mut self) {
        if !self.nat.learns() {
            return;
        }
        for (relay, circuit) in self.nat_state.relays_to_reserve() {
            match self.swarm.listen_on(circuit.clone()) {
                Ok(listener) => {
                    if let Some(candidate) = self.nat_state.candidates.get_mut(&relay) {
                        candidate.listener = Some(listener);
                    }
                }
                Err(err) => {
                    tracing::warn!(%relay, %circuit, %err, "cannot listen through a relay");
                    self.nat_state.candidates.remove(&relay);
                }
            }
        }
    }

    pub(super) fn on_listener_closed(&mut self, listener: ListenerId, addresses: &[Multiaddr]) {
        for addr in addresses.iter().filter(|a| is_relayed(a)) {
            self.swarm.remove_external_address(addr);
        }
        let relay = self.nat_state.candidates.iter().find(|(_, c)| c.listener == Some(listener)).map(|(p, _)| *p);
        if let Some(relay) = relay {
            // Dropped as a candidate: identify adds it again when it is still a relay and still reachable.
            tracing::info!(%relay, "the reservation on a relay ended");
            self.nat_state.candidates.remove(&relay);
            self.schedule_reprovide();
        }
    }

    pub(super) fn on_autonat_event(&mut self, event: autonat::v1::Event) {
        let autonat::v1::Event::StatusChanged { old, new } = event else { return };
        let reachability = match &new {
            autonat::v1::NatStatus::Public(addr) => {
                self.nat_state.public_addr = Some(addr.clone());
                Reachability::Public
            }
            autonat::v1::NatStatus::Private => Reachability::Private,
            autonat::v1::NatStatus::Unknown => Reachability::Unknown,
        };
        tracing::info!(?old, ?new, "AutoNAT: reachability changed");
        if !self.nat.learns() {
            return;
        }
        self.nat_state.reachability = reachability;
        if reachability != Reachability::Public {
            self.nat_state.public_addr = None;
        }
        self.apply_reachability();
    }

    /// Brings the announced addresses, Kademlia's mode and the relay listeners in line with reachability.
    fn apply_reachability(&mut self) {
        let listen: Vec<Multiaddr> = self.swarm.listeners().filter(|a| !is_relayed(a)).cloned().collect();
        match self.nat_state.reachability {
            Reachability::Private => {
                self.serve_dht_at = None;
                let direct: Vec<Multiaddr> =
                    self.swarm.external_addresses().filter(|a| !is_relayed(a)).cloned().collect();
                for addr in direct {
                    self.swarm.remove_external_address(&addr);
                }
                // Peers could not reach this node's routing service; it asks and does not answer.
                self.swarm.behaviour_mut().kad.set_mode(Some(kad::Mode::Client));
                self.reserve_relays();
            }
            reachability => {
                for addr in listen.iter().filter(|a| is_dialable(a)) {
                    self.swarm.add_external_address(addr.clone());
                }
                if reachability == Reachability::Public || self.serve_dht_at.is_none() {
                    self.serve_dht_at = None;
                    self.swarm.behaviour_mut().kad.set_mode(Some(kad::Mode::Server));
                }
                if reachability == Reachability::Public {
                    let listeners: Vec<ListenerId> =
                        self.nat_state.candidates.values_mut().filter_map(|c| c.listener.take()).collect();
                    for listener in listeners {
                        self.swarm.remove_listener(listener);
                    }
                }
            }
        }
        self.schedule_reprovide();
    }

    pub(super) fn on_dcutr_event(&mut self, event: dcutr::Event) {
        let peer = event.remote_peer_id;
        match event.result {
            Ok(id) => {
                // The direct connection's `ConnectionEstablished` (handled just before this event) closed the
                // relayed ones and told the block exchange.
                tracing::info!(%peer, "hole punching succeeded: direct connection");
                if let Some(conn) = self.conns.get_mut(&peer).into_iter().flatten().find(|c| c.id == id) {
                    conn.punched = true;
                }
            }
            Err(err) => {
                tracing::warn!(%peer, %err, "hole punching failed; data with this peer goes through the relay");
                if self.waiting.remove(&peer).is_some() {
                    self.announce(peer);
                }
            }
        }
    }

    pub(super) fn on_relay_client_event(&mut self, event: relay::client::Event) {
        if let relay::client::Event::ReservationReqAccepted { relay_peer_id, renewal: false, .. } = event {
            tracing::debug!(relay = %relay_peer_id, "relay reservation accepted");
        }
    }

    pub(super) fn on_relay_event(&mut self, event: relay::Event) {
        let Some(stats) = self.nat_state.relay.as_mut() else { return };
        match event {
            relay::Event::ReservationReqAccepted { src_peer_id, renewed: false, .. } => {
                stats.reservations += 1;
                tracing::debug!(peer = %src_peer_id, "relay: reservation accepted");
            }
            relay::Event::ReservationTimedOut { .. } | relay::Event::ReservationClosed { .. } => {
                stats.reservations = stats.reservations.saturating_sub(1);
            }
            relay::Event::ReservationReqDenied { src_peer_id, .. } => {
                stats.reservations_denied += 1;
                tracing::info!(peer = %src_peer_id, "relay: reservation refused (at the relay's limits)");
            }
            relay::Event::CircuitReqAccepted { src_peer_id, dst_peer_id } => {
                stats.circuits += 1;
                stats.circuits_accepted += 1;
                tracing::debug!(src = %src_peer_id, dst = %dst_peer_id, "relay: circuit opened");
            }
            relay::Event::CircuitClosed { .. } => stats.circuits = stats.circuits.saturating_sub(1),
            relay::Event::CircuitReqDenied { src_peer_id, dst_peer_id, .. } => {
                stats.circuits_denied += 1;
                tracing::info!(src = %src_peer_id, dst = %dst_peer_id, "relay: circuit refused (at the relay's limits)");
            }
            _ => {}
        }
    }

    /// The NAT side of `/debug/info`: reachability and why, reservations, the relay served, announced addresses.
    pub(super) fn nat_info(&self) -> NatInfo {
        let state = &self.nat_state;
        let (mode, reason) = match &self.nat {
            Nat::ExtIp(ip) => (format!("extip:{ip}"), "--nat extip: the operator gave the public IP".to_string()),
            Nat::None => ("none".into(), "--nat none: listen addresses are announced whatever is learned".into()),
            Nat::Any | Nat::Upnp => {
                let mode = if self.nat == Nat::Any { "any" } else { "upnp" };
                let reason = match state.reachability {
                    Reachability::Unknown => "AutoNAT has no verdict yet (no server answered)".to_string(),
                    Reachability::Public => match &state.public_addr {
                        Some(addr) => format!("AutoNAT: peers dialed this node back at {addr}"),
                        None => "AutoNAT: peers dialed this node back".to_string(),
                    },
                    Reachability::Private => {
                        "AutoNAT: peers could not dial this node back; it is reachable through relays".to_string()
                    }
                };
                (mode.to_string(), reason)
            }
        };
        let reservations: Vec<Multiaddr> = self.swarm.listeners().filter(|a| is_relayed(a)).cloned().collect();
        let announced = self
            .swarm
            .external_addresses()
            .map(|addr| {
                let why = if let Some(relay) = relay_of(addr) {
                    format!("relayed through {relay}: this node is {}", state.reachability)
                } else if let Nat::ExtIp(_) = self.nat {
                    "--nat extip".to_string()
                } else if state.public_addr.as_ref() == Some(addr) {
                    "confirmed by AutoNAT".to_string()
                } else if self.swarm.listeners().any(|l| l == addr) {
                    format!("listen address; reachability {}", state.reachability)
                } else {
                    "mapped by UPnP or confirmed by a peer".to_string()
                };
                Announced { addr: addr.clone(), why }
            })
            .collect();
        NatInfo { mode, reachability: state.reachability, reason, reservations, relay: state.relay.clone(), announced }
    }
}
