//! Reachability behind NATs: what AutoNAT learned, the circuit-relay reservations a node behind NAT holds, the
//! relay this node serves, and which addresses the node announces and why.
//!
//! The swarm thread owns one [`NatState`]. Its rules, in one place:
//! - `--nat extip:IP` and `--nat none` decide the announced addresses; AutoNAT still runs (to answer other
//!   nodes' probes) but what it learns changes nothing.
//! - Otherwise (`any`, `upnp`): while reachability is unknown or public, the dialable listen addresses (and
//!   UPnP mappings, and addresses AutoNAT confirmed) are announced. Once AutoNAT finds the node private, the
//!   direct addresses are withdrawn, Kademlia switches to client mode, and the node reserves a slot on up to
//!   [`MAX_RELAYS`] relays (bootstrap nodes, or peers that speak the relay protocol and that this node reached
//!   by dialing a direct address); the relayed addresses are what it announces.
//! - Announced addresses feed `/spr`, identify (listen addresses are hidden), and provider records: when they
//!   change, the node's provider records are published again.

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

/// Relays a node behind NAT reserves a slot on at once.
pub const MAX_RELAYS: usize = 2;
/// How long a peer reached only through a relay waits for hole punching before the block exchange uses the
/// relayed connection.
pub const HOLE_PUNCH_GRACE: Duration = Duration::from_secs(8);

/// What the node knows about being dialable from the internet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reachability {
    /// Not known (yet): no AutoNAT server answered.
    #[default]
    Unknown,
    /// Other nodes dialed this node back (AutoNAT), or the operator said so (`--nat extip:`).
    Public,
    /// Other nodes could not dial this node back: it is behind a NAT or firewall.
    Private,
}

impl fmt::Display for Reachability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reachability::Unknown => "unknown",
            Reachability::Public => "public",
            Reachability::Private => "private",
        })
    }
}

/// The circuit relay this node serves (`--relay*`): limits that bound what relaying can cost it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayLimits {
    /// Reservations held by all peers together.
    pub max_reservations: usize,
    /// Circuits relayed at once.
    pub max_circuits: usize,
    /// Circuits relayed at once for one source peer.
    pub max_circuits_per_peer: usize,
    /// Bytes relayed per circuit in each direction; 0 = no limit.
    pub circuit_bytes: u64,
    /// How long one circuit may last.
    pub circuit_duration: Duration,
}

impl Default for RelayLimits {
    /// Enough to coordinate hole punching and to carry small messages; relaying data needs an operator's choice
    /// of `circuit_bytes`.
    fn default() -> Self {
        Self {
            max_reservations: 128,
            max_circuits: 16,
            max_circuits_per_peer: 4,
            circuit_bytes: 128 << 10,
            circuit_duration: Duration::from_secs(120),
        }
    }
}

impl RelayLimits {
    /// The libp2p relay configuration with these limits (libp2p's per-peer and per-IP rate limiters kept).
    pub fn to_config(&self) -> libp2p::relay::Config {
        libp2p::relay::Config {
            max_reservations: self.max_reservations,
            max_circuits: self.max_circuits,
            max_circuits_per_peer: self.max_circuits_per_peer,
            max_circuit_bytes: self.circuit_bytes,
            max_circuit_duration: self.circuit_duration,
            ..libp2p::relay::Config::default()
        }
    }
}

/// Counters of the relay this node serves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayServerStats {
    pub reservations: usize,
    pub reservations_denied: u64,
    pub circuits: usize,
    pub circuits_accepted: u64,
    pub circuits_denied: u64,
}

/// One announced address and why it is announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announced {
    pub addr: Multiaddr,
    pub why: String,
}

/// The NAT side of `/debug/info`.
#[derive(Debug, Clone, Default)]
pub struct NatInfo {
    /// The `--nat` mode.
    pub mode: String,
    pub reachability: Reachability,
    /// Where the reachability comes from, in words.
    pub reason: String,
    /// Relays this node holds a reservation on (their relayed addresses).
    pub reservations: Vec<Multiaddr>,
    /// `None` when this node does not serve as a relay.
    pub relay: Option<RelayServerStats>,
    pub announced: Vec<Announced>,
}

/// A relay this node may reserve a slot on.
#[derive(Debug, Clone)]
pub struct RelayCandidate {
    /// A direct address of the relay.
    pub addr: Multiaddr,
    /// The circuit listener while a reservation is wanted.
    pub listener: Option<libp2p::core::transport::ListenerId>,
}

/// The swarm thread's NAT state.
#[derive(Debug, Default)]
pub struct NatState {
    pub reachability: Reachability,
    /// The address AutoNAT confirmed while public.
    pub public_addr: Option<Multiaddr>,
    pub candidates: HashMap<PeerId, RelayCandidate>,
    pub relay: Option<RelayServerStats>,
}

impl NatState {
    /// The circuit listen address on `relay` at `addr`.
    pub fn circuit_addr(relay: PeerId, addr: &Multiaddr) -> Multiaddr {
        let mut circuit: Multiaddr = addr.iter().filter(|p| !matches!(p, Protocol::P2p(_))).collect();
        circuit.push(Protocol::P2p(relay));
        circuit.push(Protocol::P2pCircuit);
        circuit
    }

    /// Candidates to listen on now: while private, up to [`MAX_RELAYS`] minus those already listened on.
    pub fn relays_to_reserve(&self) -> Vec<(PeerId, Multiaddr)> {
        if self.reachability != Reachability::Private {
            return Vec::new();
        }
        let active = self.candidates.values().filter(|c| c.listener.is_some()).count();
        let mut free: Vec<(PeerId, Multiaddr)> = self
            .candidates
            .iter()
            .filter(|(_, c)| c.listener.is_none())
            .map(|(peer, c)| (*peer, Self::circuit_addr(*peer, &c.addr)))
            .collect();
        free.sort_by_key(|(peer, _)| peer.to_string());
        free.truncate(MAX_RELAYS.saturating_sub(active));
        free
    }
}

/// True for addresses through a relay.
pub fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| p == Protocol::P2pCircuit)
}

/// The relay's peer id in a relayed address.
pub fn relay_of(addr: &Multiaddr) -> Option<PeerId> {
    let mut last = None;
    for p in addr.iter() {
        match p {
            Protocol::P2p(peer) => last = Some(peer),
            Protocol::P2pCircuit => return last,
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn circuit_addresses_name_the_relay_and_only_private_nodes_reserve() {
        let relay = PeerId::random();
        let addr: Multiaddr = "/ip4/203.0.113.10/tcp/4001".parse().expect("addr");
        let circuit = NatState::circuit_addr(relay, &addr.clone().with(Protocol::P2p(relay)));
        assert_eq!(circuit.to_string(), format!("/ip4/203.0.113.10/tcp/4001/p2p/{relay}/p2p-circuit"));
        assert!(is_relayed(&circuit));
        assert!(!is_relayed(&addr));
        assert_eq!(relay_of(&circuit), Some(relay));
        assert_eq!(relay_of(&addr), None);

        let mut state = NatState::default();
        for _ in 0..3 {
            state.candidates.insert(PeerId::random(), RelayCandidate { addr: addr.clone(), listener: None });
        }
        assert!(state.relays_to_reserve().is_empty(), "unknown reachability reserves nothing");
        state.reachability = Reachability::Public;
        assert!(state.relays_to_reserve().is_empty(), "a public node reserves nothing");
        state.reachability = Reachability::Private;
        assert_eq!(state.relays_to_reserve().len(), MAX_RELAYS);
    }
}
