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
use super::{Command, Frame, Nat, NetEvent, NetInfo, NetworkConfig, NetworkError, PeerRow, iplimit, spr};
use actix::Recipient;
use codex_protocol::blockexc::{MAX_FRAME_SIZE, Message as WireMessage, PROTOCOL_ID};
use codex_protocol::frame::{MAX_PREFIX_LEN, parse_len_prefix_max};
use futures::StreamExt;
use futures::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use libp2p::kad;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, connection_limits, identify, noise, ping, tcp, upnp, yamux};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

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
/// Read buffer per blockexc stream.
const READ_BUFFER: usize = 64 * 1024;

/// What one peer's readers share: one frame in flight across its streams, and a count of its inbound streams.
struct PeerGate {
    frame: Semaphore,
    inbound: AtomicUsize,
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

struct Host {
    swarm: Swarm<Behaviour>,
    control: libp2p_stream::Control,
    events: Recipient<NetEvent>,
    readers: Readers,
    gates: HashMap<PeerId, Arc<PeerGate>>,
    keypair: libp2p::identity::Keypair,
    nat: Nat,
    bootstrap: Vec<spr::BootstrapNode>,
    /// The remote address of one connection per connected peer.
    connected: HashMap<PeerId, Multiaddr>,
    dials: HashMap<PeerId, Vec<PendingDial>>,
    lookups: HashMap<kad::QueryId, PeerId>,
    provider_queries: HashMap<kad::QueryId, (HashSet<PeerId>, oneshot::Sender<Vec<PeerId>>)>,
}

impl Host {
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
        let use_upnp = matches!(config.nat, Nat::Any | Nat::Upnp);
        let agent = config.agent.clone();
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(config.keypair.clone())
            .with_tokio()
            .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
            .map_err(|e| start(&e))?
            .with_behaviour(|key| {
                let mut kad_config = kad::Config::new(KAD_PROTOCOL);
                kad_config.set_query_timeout(Duration::from_secs(20));
                // The DiscoveryActor re-provides every 30 minutes itself, as the original does.
                kad_config.set_provider_publication_interval(None);
                // Records we store for others expire after 2 h (libp2p's default is 48 h): providers re-announce
                // every 30 min, and a flood of records does not occupy the bounded store for two days.
                kad_config.set_provider_record_ttl(Some(Duration::from_secs(2 * 3600)));
                let mut kad = kad::Behaviour::with_config(peer_id, ProviderStore::new(peer_id), kad_config);
                kad.set_mode(Some(kad::Mode::Server));
                Behaviour {
                    limits: connection_limits::Behaviour::new(limits),
                    ip_limits: iplimit::Behaviour::new(MAX_INBOUND_PER_IP),
                    identify: identify::Behaviour::new(
                        identify::Config::new("/codex/1.0.0".into(), key.public()).with_agent_version(agent),
                    ),
                    ping: ping::Behaviour::default(),
                    kad,
                    stream: libp2p_stream::Behaviour::new(),
                    upnp: Toggle::from(use_upnp.then(upnp::tokio::Behaviour::default)),
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
            nat: config.nat,
            bootstrap: config.bootstrap,
            connected: HashMap::new(),
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
            }
        }
    }

    fn gate(&mut self, peer: PeerId) -> Arc<PeerGate> {
        self.gates
            .entry(peer)
            .or_insert_with(|| Arc::new(PeerGate { frame: Semaphore::new(1), inbound: AtomicUsize::new(0) }))
            .clone()
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
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
                for announced in self.announce_for(&address) {
                    self.swarm.add_external_address(announced);
                }
            }
            SwarmEvent::ConnectionEstablished { peer_id, endpoint, num_established, .. } => {
                self.connected.insert(peer_id, endpoint.get_remote_address().clone());
                for pending in self.dials.remove(&peer_id).unwrap_or_default() {
                    let _ = pending.reply.send(Ok(()));
                }
                if num_established.get() == 1 {
                    tracing::debug!(peer = %peer_id, "peer connected");
                    let (sender, receiver) = mpsc::channel(SEND_QUEUE);
                    let (readers, gate) = (self.readers.clone(), self.gate(peer_id));
                    tokio::spawn(write_frames(peer_id, self.control.clone(), receiver, readers, gate));
                    self.events.do_send(NetEvent::Connected { peer: peer_id, sender });
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                tracing::debug!(peer = %peer_id, "peer disconnected");
                self.connected.remove(&peer_id);
                self.gates.remove(&peer_id);
                self.events.do_send(NetEvent::Disconnected { peer: peer_id });
            }
            SwarmEvent::OutgoingConnectionError { peer_id: Some(peer), error, .. } => {
                if self.swarm.is_connected(&peer) {
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
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }))
                if info.protocols.contains(&KAD_PROTOCOL) =>
            {
                for addr in info.listen_addrs.into_iter().filter(is_dialable) {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(event)) => self.on_kad_event(event),
            SwarmEvent::ListenerClosed { addresses, reason: Err(err), .. } => {
                tracing::error!(?addresses, err = %describe(&err), "a listener failed");
            }
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

    /// The addresses to announce for a new listen address, by `--nat`.
    fn announce_for(&self, listen: &Multiaddr) -> Vec<Multiaddr> {
        match &self.nat {
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
            _ if is_dialable(listen) => vec![listen.clone()],
            _ => Vec::new(),
        }
    }

    fn info(&mut self) -> NetInfo {
        let listen_addrs: Vec<Multiaddr> = self.swarm.listeners().cloned().collect();
        let announce_addrs: Vec<Multiaddr> = self.swarm.external_addresses().cloned().collect();
        let spr = spr::encode_spr(&self.keypair, announce_addrs.clone());
        let mut peers: Vec<PeerRow> = self
            .connected
            .iter()
            .map(|(peer, addr)| PeerRow { peer: *peer, addrs: vec![addr.clone()], connected: true })
            .collect();
        peers.sort_by_key(|row| row.peer.to_string());
        let mut table = Vec::new();
        for bucket in self.swarm.behaviour_mut().kad.kbuckets() {
            for entry in bucket.iter() {
                let peer = *entry.node.key.preimage();
                table.push(PeerRow {
                    peer,
                    addrs: entry.node.value.iter().cloned().collect(),
                    connected: self.connected.contains_key(&peer),
                });
            }
        }
        NetInfo { listen_addrs, announce_addrs, spr, peers, table }
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

/// Opens our outbound stream to `peer`, reads from it, and writes every queued frame to it.
async fn write_frames(
    peer: PeerId,
    mut control: libp2p_stream::Control,
    mut frames: mpsc::Receiver<Frame>,
    readers: Readers,
    gate: Arc<PeerGate>,
) {
    let stream = match control.open_stream(peer, BLOCKEXC).await {
        Ok(stream) => stream,
        Err(err) => {
            tracing::debug!(%peer, %err, "no blockexc stream to the peer");
            return;
        }
    };
    let (reader, mut writer) = stream.split();
    tokio::spawn(async move { read_frames(peer, reader, &readers, &gate).await });
    let mut prefix = Vec::with_capacity(10);
    while let Some(frame) = frames.recv().await {
        prefix.clear();
        put_varint(&mut prefix, frame.bytes.len() as u64);
        let written = async {
            writer.write_all(&prefix).await?;
            writer.write_all(&frame.bytes).await?;
            writer.flush().await
        };
        if let Err(err) = written.await {
            tracing::debug!(%peer, %err, "blockexc stream write failed");
            break;
        }
    }
    let _ = writer.close().await;
}

/// Reads frames from one stream until it ends or sends garbage. The peer's gate allows one frame in flight
/// across its streams (read, decoded and handled); the shared budget bounds the bytes of all peers' frames.
async fn read_frames<R: AsyncRead + Unpin>(peer: PeerId, stream: R, readers: &Readers, gate: &PeerGate) {
    let malformed = |reason: String| readers.events.do_send(NetEvent::Malformed { peer, reason });
    let mut reader = BufReader::with_capacity(READ_BUFFER, stream);
    loop {
        let len = match read_frame_len(&mut reader).await {
            Ok(Some(len)) => len,
            Ok(None) => return,
            Err(err) => {
                tracing::debug!(%peer, %err, "blockexc stream read failed");
                if err.kind() == std::io::ErrorKind::InvalidData {
                    malformed(err.to_string());
                }
                return;
            }
        };
        let Ok(_in_flight) = gate.frame.acquire().await else { return };
        let body = read_budgeted_body(&mut reader, len, &readers.budget);
        let (frame, _budget) = match tokio::time::timeout(FRAME_DEADLINE, body).await {
            Ok(Ok(read)) => read,
            Ok(Err(err)) => {
                tracing::debug!(%peer, %err, "blockexc stream read failed");
                return;
            }
            Err(_) => {
                let reason = format!("a frame of {len} bytes did not arrive within {FRAME_DEADLINE:?}");
                readers.events.do_send(NetEvent::Stalled { peer, reason });
                return;
            }
        };
        match WireMessage::decode(&frame) {
            Ok(message) => {
                drop(frame);
                if readers.events.send(NetEvent::Message { peer, message }).await.is_err() {
                    return;
                }
            }
            Err(err) => {
                malformed(err.to_string());
                return;
            }
        }
    }
}

/// Reads a frame's length prefix with [`codex_protocol::frame::parse_len_prefix_max`] (the parser the fuzz target
/// `frame` exercises): `Ok(None)` at a clean end of stream; lengths over [`MAX_FRAME_SIZE`] and overlong varints
/// are `InvalidData`.
async fn read_frame_len<R: AsyncRead + Unpin>(reader: &mut R) -> std::io::Result<Option<usize>> {
    let mut prefix = [0u8; MAX_PREFIX_LEN];
    for filled in 0..MAX_PREFIX_LEN {
        let Some(slot) = prefix.get_mut(filled..=filled) else { break };
        if reader.read(slot).await? == 0 {
            if filled == 0 {
                return Ok(None);
            }
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let parsed = parse_len_prefix_max(prefix.get(..=filled).unwrap_or_default(), MAX_FRAME_SIZE as u64)
            .map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidData, err.to_string()))?;
        if let Some((len, _)) = parsed {
            return Ok(Some(len as usize));
        }
    }
    Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "frame length varint too long"))
}

/// Budget taken per step of a frame body: a frame holds budget only for bytes that arrived (give or take a step).
const BUDGET_STEP: usize = 256 * 1024;

/// Reads a frame body of `len` bytes, taking budget from `budget` step by step as its bytes arrive, so a peer that
/// announces a large frame and trickles it holds no more budget than it sent. The permits are returned with the
/// body and held until the message is handled.
async fn read_budgeted_body<R: AsyncRead + Unpin>(
    reader: &mut R,
    len: usize,
    budget: &Arc<Semaphore>,
) -> std::io::Result<(Vec<u8>, Option<OwnedSemaphorePermit>)> {
    let mut frame = Vec::with_capacity(len.min(BUDGET_STEP));
    let mut held: Option<OwnedSemaphorePermit> = None;
    while frame.len() < len {
        let step = (len - frame.len()).min(BUDGET_STEP);
        let permit = budget
            .clone()
            .acquire_many_owned(step as u32)
            .await
            .map_err(|_| std::io::Error::other("the frame budget is closed"))?;
        match held.as_mut() {
            Some(held) => held.merge(permit),
            None => held = Some(permit),
        }
        let start = frame.len();
        frame.resize(start + step, 0);
        reader.read_exact(frame.get_mut(start..).unwrap_or_default()).await?;
    }
    Ok((frame, held))
}

/// Reads one frame (varint length + body, at most [`MAX_FRAME_SIZE`]): `Ok(None)` at a clean end of stream.
/// For callers outside the node's readers (tests, tools): the body is read as the readers read it, with a budget
/// of its own.
pub async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> std::io::Result<Option<Vec<u8>>> {
    match read_frame_len(reader).await? {
        Some(len) => {
            let budget = Arc::new(Semaphore::new(MAX_FRAME_SIZE));
            read_budgeted_body(reader, len, &budget).await.map(|(frame, _)| Some(frame))
        }
        None => Ok(None),
    }
}

pub use codex_protocol::frame::put_varint;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_refuse_oversized_lengths() {
        futures::executor::block_on(async {
            let mut bytes = Vec::new();
            for body in [vec![], vec![7u8; 300]] {
                put_varint(&mut bytes, body.len() as u64);
                bytes.extend_from_slice(&body);
            }
            let mut reader = futures::io::Cursor::new(bytes);
            assert_eq!(read_frame(&mut reader).await.expect("frame"), Some(vec![]));
            assert_eq!(read_frame(&mut reader).await.expect("frame"), Some(vec![7u8; 300]));
            assert_eq!(read_frame(&mut reader).await.expect("end"), None);

            let mut huge = Vec::new();
            put_varint(&mut huge, MAX_FRAME_SIZE as u64 + 1);
            let err = read_frame(&mut futures::io::Cursor::new(huge)).await.expect_err("too large");
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);

            let mut short = Vec::new();
            put_varint(&mut short, 10);
            short.extend_from_slice(&[1, 2, 3]);
            assert!(read_frame(&mut futures::io::Cursor::new(short)).await.is_err());
            let endless = vec![0xffu8; 20];
            assert!(read_frame(&mut futures::io::Cursor::new(endless)).await.is_err());
        });
    }
}
