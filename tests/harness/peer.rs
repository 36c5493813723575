//! A raw libp2p host for tests that play a misbehaving peer: TCP + Noise + Yamux, a secp256k1 key,
//! `libp2p-stream` (to open and accept `/codex/blockexc/1.0.0` streams and write arbitrary bytes on them) and a
//! Kademlia behaviour on `/codex/kad/1.0.0`. It only connects to the peers it is told to allow, so a Kademlia
//! query cannot wander off to other nodes. Runs on the caller's tokio runtime; the swarm is driven by a task
//! that takes [`PeerCommand`]s and counts what happened in [`PeerStats`].

use futures::StreamExt;
use libp2p::allow_block_list::{self, AllowedPeers};
use libp2p::kad::{self, store::MemoryStore, store::MemoryStoreConfig};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

pub const BLOCKEXC: StreamProtocol = StreamProtocol::new(codex_protocol::blockexc::PROTOCOL_ID);
pub const KAD: StreamProtocol = StreamProtocol::new("/codex/kad/1.0.0");

#[derive(NetworkBehaviour)]
pub struct RawBehaviour {
    allow: allow_block_list::Behaviour<AllowedPeers>,
    stream: libp2p_stream::Behaviour,
    kad: kad::Behaviour<MemoryStore>,
}

/// What the swarm task does for the test.
pub enum PeerCommand {
    Dial(PeerId, Multiaddr),
    /// `start_providing` for each key (one Kademlia ADD_PROVIDER round per key).
    Provide(Vec<Vec<u8>>),
}

/// Counters of swarm events, read by the test.
#[derive(Debug, Default)]
pub struct PeerStats {
    pub established: AtomicUsize,
    pub closed: AtomicUsize,
    pub dial_failures: AtomicUsize,
    pub provide_started: AtomicUsize,
    pub provide_ok: AtomicUsize,
    pub provide_failed: AtomicUsize,
    /// `start_providing` refused by the local store.
    pub provide_refused: AtomicUsize,
    /// Connected to any peer right now.
    pub connected: AtomicUsize,
}

impl PeerStats {
    pub fn get(counter: &AtomicUsize) -> usize {
        counter.load(Ordering::Relaxed)
    }
}

/// A raw libp2p host (a handle: clones drive the same swarm).
#[derive(Clone)]
pub struct RawPeer {
    pub peer_id: PeerId,
    pub control: libp2p_stream::Control,
    pub stats: Arc<PeerStats>,
    commands: mpsc::UnboundedSender<PeerCommand>,
}

impl RawPeer {
    /// Builds the host, allowed to connect only to `allowed`, and spawns its swarm on the current tokio
    /// runtime. `kad_routes` are added to its Kademlia routing table.
    pub fn spawn(allowed: &[PeerId], kad_routes: &[(PeerId, Multiaddr)]) -> RawPeer {
        let keypair = libp2p::identity::Keypair::generate_secp256k1();
        let peer_id = keypair.public().to_peer_id();
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_tcp(Default::default(), libp2p::noise::Config::new, libp2p::yamux::Config::default)
            .expect("tcp")
            .with_behaviour(|_| {
                let mut config = kad::Config::new(KAD);
                config.set_query_timeout(Duration::from_secs(10));
                config.set_provider_publication_interval(None);
                config.set_record_ttl(None);
                // Room for a flood of provided keys (the default store refuses past 1024).
                let store_config = MemoryStoreConfig { max_provided_keys: 1 << 20, ..Default::default() };
                let store = MemoryStore::with_config(peer_id, store_config);
                let mut kad = kad::Behaviour::with_config(peer_id, store, config);
                kad.set_mode(Some(kad::Mode::Client));
                RawBehaviour { allow: Default::default(), stream: libp2p_stream::Behaviour::new(), kad }
            })
            .expect("behaviour")
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
            .build();
        for peer in allowed {
            swarm.behaviour_mut().allow.allow_peer(*peer);
        }
        for (peer, addr) in kad_routes {
            swarm.behaviour_mut().kad.add_address(peer, addr.clone());
        }
        let control = swarm.behaviour().stream.new_control();
        let stats = Arc::new(PeerStats::default());
        let (commands, mut receiver) = mpsc::unbounded_channel();
        let counters = stats.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    event = swarm.select_next_some() => on_event(&counters, event),
                    command = receiver.recv() => match command {
                        None => return,
                        Some(PeerCommand::Dial(peer, addr)) => {
                            let opts = libp2p::swarm::dial_opts::DialOpts::peer_id(peer).addresses(vec![addr]).build();
                            if swarm.dial(opts).is_err() {
                                counters.dial_failures.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Some(PeerCommand::Provide(keys)) => {
                            for key in keys {
                                if swarm.behaviour_mut().kad.start_providing(kad::RecordKey::new(&key)).is_ok() {
                                    counters.provide_started.fetch_add(1, Ordering::Relaxed);
                                } else {
                                    counters.provide_refused.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                    },
                }
            }
        });
        RawPeer { peer_id, control, stats, commands }
    }

    pub fn dial(&self, peer: PeerId, addr: Multiaddr) {
        let _ = self.commands.send(PeerCommand::Dial(peer, addr));
    }

    pub fn provide(&self, keys: Vec<Vec<u8>>) {
        let _ = self.commands.send(PeerCommand::Provide(keys));
    }
}

fn on_event(stats: &PeerStats, event: SwarmEvent<RawBehaviourEvent>) {
    match event {
        SwarmEvent::ConnectionEstablished { .. } => {
            stats.established.fetch_add(1, Ordering::Relaxed);
            stats.connected.fetch_add(1, Ordering::Relaxed);
        }
        SwarmEvent::ConnectionClosed { .. } => {
            stats.closed.fetch_add(1, Ordering::Relaxed);
            stats.connected.fetch_sub(1, Ordering::Relaxed);
        }
        SwarmEvent::OutgoingConnectionError { .. } => {
            stats.dial_failures.fetch_add(1, Ordering::Relaxed);
        }
        SwarmEvent::Behaviour(RawBehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
            result: kad::QueryResult::StartProviding(result),
            step,
            ..
        })) if step.last => {
            let counter = if result.is_ok() { &stats.provide_ok } else { &stats.provide_failed };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        _ => {}
    }
}

/// Appends `value` as an unsigned varint.
pub fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads blockexc frames from `stream` on a task of their own (a frame read is never cut in half by a
/// timeout); at most one frame waits in the channel, so a consumer that stops receiving stops the reading.
pub fn frames<R>(stream: R) -> mpsc::Receiver<Vec<u8>>
where
    R: futures::AsyncRead + Unpin + Send + 'static,
{
    let (sender, receiver) = mpsc::channel(1);
    tokio::spawn(async move {
        let mut reader = futures::io::BufReader::new(stream);
        while let Ok(Some(frame)) = codex_actors::network::read_frame(&mut reader).await {
            if sender.send(frame).await.is_err() {
                return;
            }
        }
    });
    receiver
}

/// A blockexc frame: varint length + body.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 10);
    varint(&mut out, body.len() as u64);
    out.extend_from_slice(body);
    out
}
