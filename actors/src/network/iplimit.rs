//! A libp2p behaviour that caps inbound connections per remote IP address, pending and established alike, so
//! one host cannot take every inbound slot with many peer ids (an eclipse). Loopback addresses are exempt:
//! local testnets and tests run many nodes on 127.0.0.1.

use libp2p::core::transport::PortUse;
use libp2p::core::{ConnectedPoint, Endpoint};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::behaviour::{ConnectionEstablished, ListenFailure};
use libp2p::swarm::{
    ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm, dummy,
};
use libp2p::{Multiaddr, PeerId};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll};

/// Why a connection was refused.
#[derive(Debug, thiserror::Error)]
#[error("{ip} already has {limit} inbound connections")]
pub struct TooManyFromIp {
    pub ip: IpAddr,
    pub limit: usize,
}

/// The behaviour.
pub struct Behaviour {
    limit: usize,
    /// Inbound connections (pending or established) by remote IP.
    by_ip: HashMap<IpAddr, usize>,
    connections: HashMap<ConnectionId, IpAddr>,
}

/// The IP address of a multiaddress, if it has one.
pub fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

impl Behaviour {
    pub fn new(limit: usize) -> Self {
        Self { limit, by_ip: HashMap::new(), connections: HashMap::new() }
    }

    /// Counts an inbound connection from `remote`, or refuses it.
    fn admit(&mut self, id: ConnectionId, remote: &Multiaddr) -> Result<(), ConnectionDenied> {
        // A relayed connection's address names the relay's IP, not the peer's; the relay bounds circuits.
        if remote.iter().any(|p| p == Protocol::P2pCircuit) {
            return Ok(());
        }
        let Some(ip) = ip_of(remote) else { return Ok(()) };
        if ip.is_loopback() || self.connections.contains_key(&id) {
            return Ok(());
        }
        let count = self.by_ip.entry(ip).or_default();
        if *count >= self.limit {
            return Err(ConnectionDenied::new(TooManyFromIp { ip, limit: self.limit }));
        }
        *count += 1;
        self.connections.insert(id, ip);
        Ok(())
    }

    fn release(&mut self, id: ConnectionId) {
        let Some(ip) = self.connections.remove(&id) else { return };
        if let Some(count) = self.by_ip.get_mut(&ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.by_ip.remove(&ip);
            }
        }
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        id: ConnectionId,
        _: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.admit(id, remote)
    }

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. })
            | FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => self.release(connection_id),
            FromSwarm::ConnectionEstablished(ConnectionEstablished {
                connection_id,
                endpoint: ConnectedPoint::Listener { send_back_addr, .. },
                ..
            }) => {
                // Counted when pending; counting again is a no-op for a known id.
                let _ = self.admit(connection_id, send_back_addr);
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(&mut self, _: PeerId, _: ConnectionId, event: THandlerOutEvent<Self>) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbound_connections_per_ip_are_capped_and_freed() {
        let mut limits = Behaviour::new(2);
        let remote: Multiaddr = "/ip4/192.0.2.7/tcp/4000".parse().expect("addr");
        let other: Multiaddr = "/ip4/192.0.2.8/tcp/4000".parse().expect("addr");
        let (a, b, c) =
            (ConnectionId::new_unchecked(1), ConnectionId::new_unchecked(2), ConnectionId::new_unchecked(3));
        assert!(limits.admit(a, &remote).is_ok());
        assert!(limits.admit(b, &remote).is_ok());
        assert!(limits.admit(c, &remote).is_err(), "a third connection from one IP is refused");
        assert!(limits.admit(ConnectionId::new_unchecked(4), &other).is_ok(), "other IPs are not affected");
        limits.release(a);
        assert!(limits.admit(c, &remote).is_ok(), "a closed connection frees its slot");
        let local: Multiaddr = "/ip4/127.0.0.1/tcp/4000".parse().expect("addr");
        for n in 10..50 {
            assert!(limits.admit(ConnectionId::new_unchecked(n), &local).is_ok(), "loopback is exempt");
        }
    }
}
