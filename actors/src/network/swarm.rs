//! The swarm thread: owns the libp2p Swarm and runs its event loop on a single-threaded tokio runtime.
//!
//! Block exchange streams follow the original: per peer, one long-lived outbound stream opened on connect and
//! used for every message we send; messages are read from it and from any stream the peer opens to us. Each
//! frame is an unsigned-varint length and a blockexc protobuf, at most 100 MiB. Reader tasks decode frames on
//! this thread and hand messages to the block exchange with `send().await`, so a slow block exchange slows
//! the peer's stream instead of growing a queue.
//!
//! Bounds on what a peer can make this thread hold: a frame is at most [`MAX_FRAME_SIZE`] and decodes within
//! the limits of `codex_protocol::blockexc`; each peer has one frame in flight (read, decoded and handed to the
//! block exchange) across all its streams, and at most [`MAX_INBOUND_STREAMS`] inbound blockexc streams; a frame
//! body must arrive within [`FRAME_DEADLINE`]; all peers together hold at most [`FRAME_BUDGET`] bytes of frames
//! in flight. Connections: inbound and outbound have separate limits, pending inbound connections are capped,
//! and a remote IP may hold at most [`MAX_INBOUND_PER_IP`] inbound connections ([`super::iplimit`]). Remote
//! Kademlia provider records are bounded ([`super::kadstore`]).

use super::kadstore::ProviderStore;
use super::nat::{HOLE_PUNCH_GRACE, NatState, Reachability, RelayServerStats, is_relayed};
use super::{Command, Nat, NetEvent, NetInfo, NetworkConfig, NetworkError, PeerRow, iplimit, spr};
use actix::Recipient;
use codex_protocol::blockexc::PROTOCOL_ID;
use futures::StreamExt;
use libp2p::core::transport::timeout::TransportTimeout;
use libp2p::core::{Transport as _, upgrade};
use libp2p::kad;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, autonat, connection_limits, dcutr, identify, noise, ping, relay, tcp,
    upnp, yamux,
};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;

mod frames;
mod reach;

pub use frames::read_frame;
use frames::{read_frames, write_frames};

const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/codex/kad/1.0.0");
const BLOCKEXC: StreamProtocol = StreamProtocol::new(PROTOCOL_ID);
/// Frames queued per peer before senders wait (each at most ~1.3 MiB: 20 blocks).
const SEND_QUEUE: usize = 8;
/// Inbound blockexc streams one peer may have open at once (the original uses one).
pub const MAX_INBOUND_STREAMS: usize = 4;
/// Time a frame's body may take to arrive once its length is known.
pub const FRAME_DEADLINE: Duration = Duration::from_secs(30);
/// Bytes of frames all peers together may have in flight.
pub const FRAME_BUDGET: usize = 64 << 20;
/// Inbound connections one remote IP may hold (loopback is exempt).
pub const MAX_INBOUND_PER_IP: usize = 8;
/// A TCP dial or handshake that has not finished by then fails (the kernel's own SYN timeout is two minutes,
/// which would hold AutoNAT dial-backs to nodes behind NAT that long).
const TCP_TIMEOUT: Duration = Duration::from_secs(20);
/// A peer reached over QUIC by this node's dial is told to the block exchange at the latest this long after,
/// if no TCP connection came beside it.
const PATH_GRACE: Duration = Duration::from_secs(2);
/// Without an AutoNAT verdict by then, the node serves the DHT on its listen addresses (as with `--nat none`).
const UNKNOWN_SERVE_AFTER: Duration = Duration::from_secs(30);

/// What one peer's readers share: one frame in flight across its streams, and a count of its inbound streams.
struct PeerGate {
    frame: Semaphore,
    inbound: AtomicUsize,
    /// False once the peer's last connection closed: its writer does not open new streams.
    connected: AtomicBool,
}

/// What every reader needs.
#[derive(Clone)]
struct Readers {
    events: Recipient<NetEvent>,
    budget: Arc<Semaphore>,
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    limits: connection_limits::Behaviour,
    ip_limits: iplimit::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    kad: kad::Behaviour<ProviderStore>,
    stream: libp2p_stream::Behaviour,
    upnp: Toggle<upnp::tokio::Behaviour>,
    relay_client: relay::client::Behaviour,
    relay: Toggle<relay::Behaviour>,
    dcutr: dcutr::Behaviour,
    autonat: autonat::v1::Behaviour,
}

/// Runs the swarm until [`Command::Stop`] or until every command sender is gone.
pub(super) fn run(
    config: NetworkConfig,
    commands: mpsc::Receiver<Command>,
    events: Recipient<NetEvent>,
    ready: std::sync::mpsc::Sender<Result<(), NetworkError>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            let _ = ready.send(Err(NetworkError::Start(err.to_string())));
            return;
        }
    };
    runtime.block_on(async move {
        let mut host = match Host::new(config, events) {
            Ok(host) => host,
            Err(err) => {
                let _ = ready.send(Err(err));
                return;
            }
        };
        let _ = ready.send(Ok(()));
        host.run(commands).await;
    });
    tracing::info!("network stopped");
}

struct PendingDial {
    reply: oneshot::Sender<Result<(), NetworkError>>,
    /// True once a DHT lookup for the peer's addresses was tried.
    looked_up: bool,
}

/// One open connection.
struct Conn {
    id: ConnectionId,
    /// The remote address (for a relayed connection, the circuit address).
    addr: Multiaddr,
    relayed: bool,
    /// True when this node dialed it.
    dialer: bool,
    /// True for a connection hole punching made (the peer is behind a NAT: not a relay candidate).
    punched: bool,
}

/// How good a connection is as the block exchange's path, worst first: a relayed connection (the relay's
/// bandwidth and limits), QUIC, TCP. QUIC's AES-GCM is cheaper than Noise's ChaCha20-Poly1305 on these CPUs, but
/// measured end to end QUIC (quinn, ~1,200-byte packets) moves 1 GiB between two nodes in 8.1 s where TCP + Noise
/// + Yamux takes 4.6 s (README, Benchmarks): between two nodes offering both, TCP is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Path {
    Relayed,
    Quic,
    Tcp,
}

impl Conn {
    fn path(&self) -> Path {
        if self.relayed {
            Path::Relayed
        } else if self.addr.iter().any(|p| matches!(p, Protocol::QuicV1)) {
            Path::Quic
        } else {
            Path::Tcp
        }
    }
}

struct Host {
    swarm: Swarm<Behaviour>,
    control: libp2p_stream::Control,
    events: Recipient<NetEvent>,
    readers: Readers,
    gates: HashMap<PeerId, Arc<PeerGate>>,
    keypair: libp2p::identity::Keypair,
    nat: Nat,
    bootstrap: Vec<spr::BootstrapNode>,
    /// The open connections of each connected peer.
    conns: HashMap<PeerId, Vec<Conn>>,
    /// Peers the block exchange was told about (`NetEvent::Connected`).
    announced: HashSet<PeerId>,
    /// Peers reached only through a relay, waiting for hole punching until the deadline.
    waiting: HashMap<PeerId, Instant>,
    /// Peers this node reached over QUIC, waiting until the deadline for a TCP connection beside it.
    settling: HashMap<PeerId, Instant>,
    nat_state: NatState,
    /// When the node's provider records are published again (its announced addresses changed).
    reprovide_at: Option<Instant>,
    /// While reachability is being learned: when Kademlia starts serving if AutoNAT has no verdict by then.
    serve_dht_at: Option<Instant>,
    dials: HashMap<PeerId, Vec<PendingDial>>,
    lookups: HashMap<kad::QueryId, PeerId>,
    provider_queries: HashMap<kad::QueryId, (HashSet<PeerId>, oneshot::Sender<Vec<PeerId>>)>,
}

impl Host {
    /// Closes the connections to `peer` on a worse [`Path`] than its best one. Both sides apply the same rule,
    /// so they close the same connections.
    fn keep_best_path(&mut self, peer: PeerId) {
        let conns = self.conns.get(&peer).map(Vec::as_slice).unwrap_or_default();
        let Some(best) = conns.iter().map(Conn::path).max() else { return };
        let worse: Vec<ConnectionId> = conns.iter().filter(|c| c.path() < best).map(|c| c.id).collect();
        for id in worse {
            self.swarm.close_connection(id);
        }
    }

    /// A QUIC handshake finishes before TCP + Noise + Yamux, so a dial to a peer offering both ends on QUIC.
    /// When this node dialed a peer and holds only QUIC to it (the peer is settling, not yet told to the block
    /// exchange), it also dials the TCP addresses the peer announced; once that connection is up,
    /// [`Host::keep_best_path`] closes the QUIC one. Without TCP addresses, or when the dial fails, the QUIC
    /// connection is the path.
    fn dial_tcp_over_quic(&mut self, peer: PeerId, addrs: &[Multiaddr]) {
        if !self.settling.contains_key(&peer) {
            return;
        }
        let tcp: Vec<Multiaddr> = addrs
            .iter()
            .filter(|a| {
                is_dialable(a)
                    && a.iter().any(|p| matches!(p, Protocol::Tcp(_)))
                    && !a.iter().any(|p| matches!(p, Protocol::P2pCircuit))
            })
            .cloned()
            .collect();
        if tcp.is_empty() {
            self.settle(peer);
            return;
        }
        let opts = DialOpts::peer_id(peer).addresses(tcp).condition(PeerCondition::Always).build();
        if let Err(err) = self.swarm.dial(opts) {
            tracing::debug!(%peer, %err, "no TCP dial beside QUIC");
            self.settle(peer);
        }
    }

    /// The peer's path is settled: the block exchange hears of it (once). A peer left with relayed connections
    /// only waits for hole punching like any relayed peer.
    fn settle(&mut self, peer: PeerId) {
        self.settling.remove(&peer);
        let Some(conns) = self.conns.get(&peer).filter(|conns| !conns.is_empty()) else { return };
        if conns.iter().any(|c| !c.relayed) {
            self.announce(peer);
        } else if !self.announced.contains(&peer) {
            self.waiting.entry(peer).or_insert_with(|| Instant::now() + HOLE_PUNCH_GRACE);
        }
    }

    fn new(config: NetworkConfig, events: Recipient<NetEvent>) -> Result<Self, NetworkError> {
        let start = |e: &dyn std::fmt::Display| NetworkError::Start(e.to_string());
        let peer_id = config.keypair.public().to_peer_id();
        // A quarter of the slots (at least 8) stay for connections this node makes, so inbound peers cannot
        // take them all.
        let outbound = (config.max_peers / 4).max(8).min(config.max_peers);
        let limits = connection_limits::ConnectionLimits::default()
            .with_max_established(Some(config.max_peers))
            .with_max_established_incoming(Some(config.max_peers.saturating_sub(outbound).max(1)))
            .with_max_established_outgoing(Some(outbound))
            .with_max_pending_incoming(Some(32))
            .with_max_pending_outgoing(Some(64))
            .with_max_established_per_peer(Some(2));
        // UPnP serves the same modes that learn their reachability.
        let learns = config.nat.learns();
        let agent = config.agent.clone();
        let relay_limits = config.relay.clone();
        let autonat_config = autonat::v1::Config {
            boot_delay: Duration::from_secs(5),
            retry_interval: Duration::from_secs(30),
            refresh_interval: Duration::from_secs(5 * 60),
            throttle_server_period: Duration::from_secs(30),
            only_global_ips: !config.nat_lan,
            ..autonat::v1::Config::default()
        };
        let tcp_config = tcp::Config::default().nodelay(true);
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(config.keypair.clone())
            .with_tokio()
            .with_quic()
            .with_other_transport(|key| -> Result<_, Box<dyn std::error::Error + Send + Sync>> {
                let transport = tcp::tokio::Transport::new(tcp_config)
                    .upgrade(upgrade::Version::V1Lazy)
                    .authenticate(noise::Config::new(key)?)
                    .multiplex(yamux::Config::default());
                Ok(TransportTimeout::new(transport, TCP_TIMEOUT))
            })
            .map_err(|e| start(&e))?
            .with_relay_client(noise::Config::new, yamux::Config::default)
            .map_err(|e| start(&e))?
            .with_behaviour(|key, relay_client| {
                let mut kad_config = kad::Config::new(KAD_PROTOCOL);
                kad_config.set_query_timeout(Duration::from_secs(20));
                // The DiscoveryActor re-provides every 30 minutes itself, as the original does.
                kad_config.set_provider_publication_interval(None);
                // Records we store for others expire after 2 h (libp2p's default is 48 h): providers re-announce
                // every 30 min, and a flood of records does not occupy the bounded store for two days.
                kad_config.set_provider_record_ttl(Some(Duration::from_secs(2 * 3600)));
                let mut kad = kad::Behaviour::with_config(peer_id, ProviderStore::new(peer_id), kad_config);
                // A node that learns its reachability serves the DHT once it is known to be public (or after
                // [`UNKNOWN_SERVE_AFTER`] without a verdict): peers must not keep addresses nobody can dial.
                kad.set_mode(Some(if learns { kad::Mode::Client } else { kad::Mode::Server }));
                Behaviour {
                    limits: connection_limits::Behaviour::new(limits),
                    ip_limits: iplimit::Behaviour::new(MAX_INBOUND_PER_IP),
                    // Peers learn only the announced addresses, never private listen addresses as such.
                    identify: identify::Behaviour::new(
                        identify::Config::new("/codex/1.0.0".into(), key.public())
                            .with_agent_version(agent)
                            .with_hide_listen_addrs(true)
                            .with_push_listen_addr_updates(true),
                    ),
                    ping: ping::Behaviour::default(),
                    kad,
                    stream: libp2p_stream::Behaviour::new(),
                    upnp: Toggle::from(learns.then(upnp::tokio::Behaviour::default)),
                    relay_client,
                    relay: Toggle::from(relay_limits.map(|limits| relay::Behaviour::new(peer_id, limits.to_config()))),
                    dcutr: dcutr::Behaviour::new(peer_id),
                    autonat: autonat::v1::Behaviour::new(peer_id, autonat_config),
                }
            })
            .map_err(|e| start(&e))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
            .build();
        for addr in &config.listen_addrs {
            swarm
                .listen_on(addr.clone())
                .map_err(|e| NetworkError::Listen { addr: addr.clone(), reason: describe(&e) })?;
        }
        let control = swarm.behaviour().stream.new_control();
        let readers = Readers { events: events.clone(), budget: Arc::new(Semaphore::new(FRAME_BUDGET)) };
        Ok(Self {
            swarm,
            control,
            events,
            readers,
            gates: HashMap::new(),
            keypair: config.keypair,
            nat: config.nat.clone(),
            bootstrap: config.bootstrap,
            conns: HashMap::new(),
            announced: HashSet::new(),
            waiting: HashMap::new(),
            settling: HashMap::new(),
            nat_state: NatState {
                relay: config.relay.as_ref().map(|_| RelayServerStats::default()),
                reachability: match config.nat {
                    Nat::ExtIp(_) => Reachability::Public,
                    _ => Reachability::Unknown,
                },
                ..NatState::default()
            },
            reprovide_at: None,
            serve_dht_at: learns.then(|| Instant::now() + UNKNOWN_SERVE_AFTER),
            dials: HashMap::new(),
            lookups: HashMap::new(),
            provider_queries: HashMap::new(),
        })
    }

    async fn run(&mut self, mut commands: mpsc::Receiver<Command>) {
        let mut incoming = match self.control.accept(BLOCKEXC) {
            Ok(incoming) => incoming,
            Err(_) => {
                tracing::error!("the blockexc protocol was registered twice");
                return;
            }
        };
        for node in self.bootstrap.clone() {
            for addr in &node.addrs {
                self.swarm.behaviour_mut().kad.add_address(&node.peer, addr.clone());
            }
            let opts = DialOpts::peer_id(node.peer).addresses(node.addrs.clone()).build();
            if let Err(err) = self.swarm.dial(opts) {
                tracing::warn!(peer = %node.peer, %err, "cannot dial a bootstrap node");
            }
        }
        let mut refresh = tokio::time::interval(Duration::from_secs(300));
        let mut nat_tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                command = commands.recv() => match command {
                    None | Some(Command::Stop) => break,
                    Some(command) => self.on_command(command),
                },
                Some((peer, stream)) = incoming.next() => self.on_inbound_stream(peer, stream),
                _ = refresh.tick() => {
                    // Keeps the routing table fresh; fails harmlessly while no peer is known.
                    let _ = self.swarm.behaviour_mut().kad.bootstrap();
                }
                _ = nat_tick.tick() => self.on_nat_tick(),
            }
        }
    }

    fn gate(&mut self, peer: PeerId) -> Arc<PeerGate> {
        self.gates
            .entry(peer)
            .or_insert_with(|| {
                Arc::new(PeerGate {
                    frame: Semaphore::new(1),
                    inbound: AtomicUsize::new(0),
                    connected: AtomicBool::new(true),
                })
            })
            .clone()
    }

    /// Tells the block exchange about `peer` (once) and starts its writer.
    fn announce(&mut self, peer: PeerId) {
        if !self.announced.insert(peer) {
            return;
        }
        tracing::debug!(%peer, "peer connected");
        let (sender, receiver) = mpsc::channel(SEND_QUEUE);
        let (readers, gate) = (self.readers.clone(), self.gate(peer));
        tokio::spawn(write_frames(peer, self.control.clone(), receiver, readers, gate));
        self.events.do_send(NetEvent::Connected { peer, sender });
    }

    fn on_inbound_stream(&mut self, peer: PeerId, stream: libp2p::Stream) {
        let gate = self.gate(peer);
        if gate.inbound.fetch_add(1, Ordering::AcqRel) >= MAX_INBOUND_STREAMS {
            gate.inbound.fetch_sub(1, Ordering::AcqRel);
            tracing::debug!(%peer, "too many inbound blockexc streams; closing the new one");
            return;
        }
        let readers = self.readers.clone();
        tokio::spawn(async move {
            read_frames(peer, stream, &readers, &gate).await;
            gate.inbound.fetch_sub(1, Ordering::AcqRel);
        });
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Dial { peer, addrs, reply } => self.dial(peer, addrs, reply),
            Command::Disconnect { peer } => {
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            Command::Provide { cids } => {
                for cid in cids {
                    if let Err(err) =
                        self.swarm.behaviour_mut().kad.start_providing(kad::RecordKey::new(&cid.to_bytes()))
                    {
                        tracing::warn!(%err, "cannot provide a CID");
                    }
                }
            }
            Command::FindProviders { cid, reply } => {
                let query = self.swarm.behaviour_mut().kad.get_providers(kad::RecordKey::new(&cid.to_bytes()));
                self.provider_queries.insert(query, (HashSet::new(), reply));
            }
            Command::Info { reply } => {
                let _ = reply.send(self.info());
            }
            Command::Stop => {}
        }
    }

    fn dial(&mut self, peer: PeerId, addrs: Vec<Multiaddr>, reply: oneshot::Sender<Result<(), NetworkError>>) {
        if self.swarm.is_connected(&peer) {
            let _ = reply.send(Ok(()));
            return;
        }
        let given = !addrs.is_empty();
        // With addresses given, dial them even while another dial to the peer runs (a DHT or bootstrap dial):
        // the caller asked for these addresses, and refusing would answer 400 for a peer about to connect.
        let condition = if given { PeerCondition::Disconnected } else { PeerCondition::DisconnectedAndNotDialing };
        let opts =
            DialOpts::peer_id(peer).condition(condition).addresses(addrs).extend_addresses_through_behaviour().build();
        match self.swarm.dial(opts) {
            Ok(()) => self.dials.entry(peer).or_default().push(PendingDial { reply, looked_up: given }),
            Err(_) if !given => {
                self.dials.entry(peer).or_default().push(PendingDial { reply, looked_up: true });
                let query = self.swarm.behaviour_mut().kad.get_closest_peers(peer);
                self.lookups.insert(query, peer);
            }
            Err(err) => {
                let _ = reply.send(Err(NetworkError::Dial { peer, source: Arc::new(err) }));
            }
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => self.on_new_listen_addr(address),
            SwarmEvent::ExpiredListenAddr { address, .. } if is_relayed(&address) => {
                self.swarm.remove_external_address(&address);
                self.schedule_reprovide();
            }
            SwarmEvent::ConnectionEstablished { peer_id, connection_id, endpoint, .. } => {
                let relayed = endpoint.is_relayed();
                let conn = Conn {
                    id: connection_id,
                    addr: endpoint.get_remote_address().clone(),
                    relayed,
                    dialer: endpoint.is_dialer(),
                    punched: false,
                };
                let conns = self.conns.entry(peer_id).or_default();
                conns.push(conn);
                let has_direct = conns.iter().any(|c| !c.relayed);
                for pending in self.dials.remove(&peer_id).unwrap_or_default() {
                    let _ = pending.reply.send(Ok(()));
                }
                let settles = endpoint.is_dialer()
                    && conns.iter().map(Conn::path).max() == Some(Path::Quic)
                    && !self.announced.contains(&peer_id);
                if has_direct {
                    // One path per peer, the best: relayed connections close when a direct one exists, QUIC ones
                    // when a TCP one does (the block exchange's writer moves to the remaining connection).
                    self.keep_best_path(peer_id);
                    self.waiting.remove(&peer_id);
                    if settles {
                        // A TCP connection may follow (identify tells the peer's addresses): the block exchange
                        // hears of the peer once the path is settled, so nothing it sends is lost with the QUIC
                        // connection.
                        self.settling.entry(peer_id).or_insert_with(|| Instant::now() + PATH_GRACE);
                    } else {
                        self.settle(peer_id);
                    }
                } else if !self.announced.contains(&peer_id) {
                    tracing::debug!(peer = %peer_id, "peer reached through a relay; waiting for hole punching");
                    self.waiting.entry(peer_id).or_insert_with(|| Instant::now() + HOLE_PUNCH_GRACE);
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, connection_id, num_established, .. } => {
                if let Some(conns) = self.conns.get_mut(&peer_id) {
                    conns.retain(|c| c.id != connection_id);
                }
                if num_established == 0 {
                    self.conns.remove(&peer_id);
                    self.settling.remove(&peer_id);
                    self.waiting.remove(&peer_id);
                    if let Some(gate) = self.gates.remove(&peer_id) {
                        gate.connected.store(false, Ordering::Release);
                    }
                    if self.announced.remove(&peer_id) {
                        tracing::debug!(peer = %peer_id, "peer disconnected");
                        self.events.do_send(NetEvent::Disconnected { peer: peer_id });
                    }
                }
            }
            SwarmEvent::OutgoingConnectionError { peer_id: Some(peer), error, .. } => {
                if self.swarm.is_connected(&peer) {
                    if self.settling.contains_key(&peer) {
                        // A TCP dial beside QUIC failed: the QUIC connection it is.
                        self.settle(peer);
                    }
                    return;
                }
                let pending = self.dials.remove(&peer).unwrap_or_default();
                let error = Arc::new(error);
                let (retry, failed): (Vec<_>, Vec<_>) = pending.into_iter().partition(|p| !p.looked_up);
                for pending in failed {
                    let _ = pending.reply.send(Err(NetworkError::Dial { peer, source: error.clone() }));
                }
                if !retry.is_empty() {
                    let retry = retry.into_iter().map(|p| PendingDial { looked_up: true, ..p }).collect();
                    self.dials.insert(peer, retry);
                    let query = self.swarm.behaviour_mut().kad.get_closest_peers(peer);
                    self.lookups.insert(query, peer);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })) => {
                if info.protocols.contains(&relay::HOP_PROTOCOL_NAME) {
                    self.add_relay_candidate(peer_id);
                }
                self.dial_tcp_over_quic(peer_id, &info.listen_addrs);
                if info.protocols.contains(&KAD_PROTOCOL) {
                    for addr in info.listen_addrs.into_iter().filter(is_dialable) {
                        self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Autonat(event)) => self.on_autonat_event(event),
            SwarmEvent::Behaviour(BehaviourEvent::Dcutr(event)) => self.on_dcutr_event(event),
            SwarmEvent::Behaviour(BehaviourEvent::Relay(event)) => self.on_relay_event(event),
            SwarmEvent::Behaviour(BehaviourEvent::RelayClient(event)) => self.on_relay_client_event(event),
            SwarmEvent::ListenerClosed { listener_id, addresses, reason } => {
                if let Err(err) = &reason {
                    tracing::warn!(?addresses, err = %describe(err), "a listener closed");
                }
                self.on_listener_closed(listener_id, &addresses);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(event)) => self.on_kad_event(event),
            SwarmEvent::ListenerError { error, .. } => tracing::warn!(err = %describe(&error), "listener error"),
            SwarmEvent::Behaviour(BehaviourEvent::Upnp(event)) => match event {
                upnp::Event::NewExternalAddr { external_addr, .. } => {
                    tracing::info!(addr = %external_addr, "UPnP mapped an external address")
                }
                upnp::Event::GatewayNotFound => tracing::info!("no UPnP gateway found"),
                upnp::Event::NonRoutableGateway => tracing::info!("the UPnP gateway is not routable"),
                upnp::Event::ExpiredExternalAddr { external_addr, .. } => {
                    tracing::info!(addr = %external_addr, "UPnP mapping expired")
                }
            },
            _ => {}
        }
    }

    fn on_kad_event(&mut self, event: kad::Event) {
        let kad::Event::OutboundQueryProgressed { id, result, step, .. } = event else { return };
        match result {
            kad::QueryResult::GetProviders(result) => {
                let local = *self.swarm.local_peer_id();
                if let Ok(kad::GetProvidersOk::FoundProviders { providers, .. }) = result
                    && let Some((found, _)) = self.provider_queries.get_mut(&id)
                {
                    for peer in providers.into_iter().filter(|p| *p != local) {
                        // Dial now, while the query still knows the provider's addresses.
                        if found.insert(peer) && !self.swarm.is_connected(&peer) {
                            let _ = self.swarm.dial(peer);
                        }
                    }
                }
                if step.last
                    && let Some((found, reply)) = self.provider_queries.remove(&id)
                {
                    let _ = reply.send(found.into_iter().collect());
                }
            }
            kad::QueryResult::GetClosestPeers(result) => {
                let Some(peer) = self.lookups.remove(&id) else { return };
                let peers = match result {
                    Ok(ok) => ok.peers,
                    Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
                };
                let addrs: Vec<Multiaddr> =
                    peers.into_iter().filter(|p| p.peer_id == peer).flat_map(|p| p.addrs).collect();
                let pending = self.dials.remove(&peer).unwrap_or_default();
                if pending.is_empty() {
                    return;
                }
                if addrs.is_empty() {
                    for p in pending {
                        let _ = p.reply.send(Err(NetworkError::PeerNotFound(peer)));
                    }
                    return;
                }
                let opts = DialOpts::peer_id(peer).addresses(addrs).build();
                match self.swarm.dial(opts) {
                    Ok(()) => {
                        self.dials.insert(peer, pending);
                    }
                    Err(err) => {
                        let err = Arc::new(err);
                        for p in pending {
                            let _ = p.reply.send(Err(NetworkError::Dial { peer, source: err.clone() }));
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn info(&mut self) -> NetInfo {
        let listen_addrs: Vec<Multiaddr> = self.swarm.listeners().cloned().collect();
        let announce_addrs: Vec<Multiaddr> = self.swarm.external_addresses().cloned().collect();
        let spr = spr::encode_spr(&self.keypair, announce_addrs.clone());
        let mut peers: Vec<PeerRow> = self
            .conns
            .iter()
            .map(|(peer, conns)| PeerRow {
                peer: *peer,
                addrs: conns.iter().map(|c| c.addr.clone()).collect(),
                connected: true,
                relayed: Some(!conns.iter().any(|c| !c.relayed)),
            })
            .collect();
        peers.sort_by_key(|row| row.peer.to_string());
        let mut table = Vec::new();
        for bucket in self.swarm.behaviour_mut().kad.kbuckets() {
            for entry in bucket.iter() {
                let peer = *entry.node.key.preimage();
                table.push(PeerRow {
                    peer,
                    addrs: entry.node.value.iter().cloned().collect(),
                    connected: self.conns.contains_key(&peer),
                    relayed: None,
                });
            }
        }
        let nat = self.nat_info();
        NetInfo { listen_addrs, announce_addrs, spr, peers, table, nat }
    }
}

/// True for addresses another host could dial (not `0.0.0.0` or `::`).
fn is_dialable(addr: &Multiaddr) -> bool {
    !addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_unspecified(),
        Protocol::Ip6(ip) => ip.is_unspecified(),
        _ => false,
    })
}

/// An error and its sources, joined (`Display` of transport errors often leaves the cause to `source()`).
fn describe(err: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current: Option<&dyn std::error::Error> = Some(err);
    while let Some(e) = current {
        let text = e.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    if parts.is_empty() { format!("{err:?}") } else { parts.join(": ") }
}

pub use codex_protocol::frame::put_varint;

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(addr: &str, relayed: bool) -> Conn {
        let addr = addr.parse().expect("multiaddr");
        Conn { id: ConnectionId::new_unchecked(0), addr, relayed, dialer: true, punched: false }
    }

    #[test]
    fn tcp_is_the_kept_path_then_quic_then_a_relay() {
        let tcp = conn("/ip4/192.0.2.1/tcp/4001", false);
        let quic = conn("/ip4/192.0.2.1/udp/4001/quic-v1", false);
        let relayed = conn("/ip4/203.0.113.1/tcp/4001/p2p-circuit", true);
        assert_eq!((tcp.path(), quic.path(), relayed.path()), (Path::Tcp, Path::Quic, Path::Relayed));
        assert!(Path::Relayed < Path::Quic && Path::Quic < Path::Tcp);
    }
}
