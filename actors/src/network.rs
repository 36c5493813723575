//! NetworkActor: the node's libp2p host.
//!
//! The Swarm (TCP + Noise + Yamux and QUIC, identify, ping, Kademlia, connection limits, optional UPnP,
//! AutoNAT, circuit relay v2 (client, and server within limits), DCUtR hole punching (`network/nat.rs`), and
//! the `/codex/blockexc/1.0.0` streams) lives on its own thread with its own single-threaded tokio runtime
//! (`network/swarm.rs`), so hashing, storage or HTTP work never delays it. This actor is the actix side: it
//! forwards typed commands to that thread over a bounded channel and answers with the thread's replies.
//!
//! Handles: [`Dial`], [`Disconnect`], [`Provide`], [`FindProviders`], [`GetNetInfo`], [`StopNetwork`].
//! Emits [`NetEvent`] to the block exchange: peers joining and leaving (with the sender of their outbound
//! blockexc stream) and every decoded blockexc message.

// Bytes from peers pass through here: no indexing that could panic on them.
#![deny(clippy::indexing_slicing)]

mod iplimit;
pub mod kadstore;
pub mod nat;
pub mod spr;
mod swarm;

use actix::prelude::*;
use codex_protocol::Cid;
use codex_protocol::blockexc::Message as WireMessage;
use libp2p::identity::Keypair;
use libp2p::swarm::DialError;
use libp2p::{Multiaddr, PeerId};
use std::net::IpAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use thiserror::Error;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};

pub use nat::{NatInfo, Reachability, RelayLimits};
pub use spr::{BootstrapNode, SprError, parse_bootstrap};
pub use swarm::{put_varint, read_frame};

/// How the node announces its addresses (`--nat`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Nat {
    /// Listen addresses, plus a UPnP mapping when a gateway answers.
    Any,
    /// Listen addresses only.
    None,
    /// Listen addresses, plus a UPnP mapping (`upnp`; `pmp` is served by UPnP too).
    Upnp,
    /// The listen ports on this public IP only.
    ExtIp(IpAddr),
}

impl Nat {
    /// True when what AutoNAT learns decides the announced addresses (`any`, `upnp`); `none` and `extip:`
    /// override it.
    pub fn learns(&self) -> bool {
        matches!(self, Nat::Any | Nat::Upnp)
    }

    /// Parses a `--nat` value.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "any" => Some(Nat::Any),
            "none" => Some(Nat::None),
            "upnp" | "pmp" => Some(Nat::Upnp),
            other => other.strip_prefix("extip:").and_then(|ip| ip.parse().ok()).map(Nat::ExtIp),
        }
    }
}

/// Network configuration.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    pub keypair: Keypair,
    pub listen_addrs: Vec<Multiaddr>,
    pub nat: Nat,
    pub bootstrap: Vec<BootstrapNode>,
    pub max_peers: u32,
    pub agent: String,
    /// Serve as a circuit relay with these limits (`None`: do not relay).
    pub relay: Option<RelayLimits>,
    /// AutoNAT also counts private and documentation addresses (testnets on a LAN or one host).
    pub nat_lan: bool,
}

/// Network errors.
#[derive(Debug, Clone, Error)]
pub enum NetworkError {
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: Multiaddr, reason: String },
    #[error("cannot start the network: {0}")]
    Start(String),
    #[error("peer {peer} could not be dialed: {source}")]
    Dial { peer: PeerId, source: Arc<DialError> },
    #[error("peer {0} was not found in the DHT and no address was given")]
    PeerNotFound(PeerId),
    #[error("the network is not running")]
    Stopped,
}

impl NetworkError {
    /// What kind of failure this is.
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            NetworkError::Dial { .. } | NetworkError::PeerNotFound(_) => ErrorKind::BadRequest,
            NetworkError::Stopped => ErrorKind::Unavailable,
            NetworkError::Listen { .. } | NetworkError::Start(_) => ErrorKind::Internal,
        }
    }
}

/// An encoded blockexc message on its way to a peer, holding its share of the sender's outbound byte budget
/// until the writer has written it (or drops it).
pub struct Frame {
    pub bytes: Vec<u8>,
    pub charge: Option<OwnedSemaphorePermit>,
}

/// What the network tells the block exchange.
#[derive(Message)]
#[rtype(result = "()")]
pub enum NetEvent {
    /// A peer connected; `sender` writes frames (encoded blockexc messages) on our stream to it.
    Connected { peer: PeerId, sender: mpsc::Sender<Frame> },
    /// The last connection to a peer closed.
    Disconnected { peer: PeerId },
    /// A blockexc message arrived.
    Message { peer: PeerId, message: WireMessage },
    /// A peer sent bytes that are not a blockexc message; its stream was closed.
    Malformed { peer: PeerId, reason: String },
    /// A peer announced a frame and did not send it within the deadline (it holds memory and the peer's frame
    /// slot); its stream was closed.
    Stalled { peer: PeerId, reason: String },
}

/// One row of the peer tables of `/debug/info`.
#[derive(Debug, Clone)]
pub struct PeerRow {
    pub peer: PeerId,
    pub addrs: Vec<Multiaddr>,
    pub connected: bool,
    /// For connected peers: true when every connection to it goes through a relay.
    pub relayed: Option<bool>,
}

/// The network's state for `/debug/info` and `/spr`.
#[derive(Debug, Clone, Default)]
pub struct NetInfo {
    pub listen_addrs: Vec<Multiaddr>,
    pub announce_addrs: Vec<Multiaddr>,
    pub spr: Option<String>,
    pub peers: Vec<PeerRow>,
    /// The Kademlia routing table.
    pub table: Vec<PeerRow>,
    pub nat: NatInfo,
}

/// Command: connect to `peer` at `addrs`, or at the addresses the DHT knows when `addrs` is empty.
#[derive(Message)]
#[rtype(result = "Result<(), NetworkError>")]
pub struct Dial {
    pub peer: PeerId,
    pub addrs: Vec<Multiaddr>,
}

/// Command: close every connection to `peer`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Disconnect {
    pub peer: PeerId,
}

/// Command: announce in the DHT that this node provides `cids`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Provide {
    pub cids: Vec<Cid>,
}

/// Query: peers that provide `cid` according to the DHT (the network dials them as they are found).
#[derive(Message)]
#[rtype(result = "Result<Vec<PeerId>, NetworkError>")]
pub struct FindProviders {
    pub cid: Cid,
}

/// Query: addresses, peers and routing table.
#[derive(Message)]
#[rtype(result = "Result<NetInfo, NetworkError>")]
pub struct GetNetInfo;

/// Command: stop the network thread.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopNetwork;

/// Commands for the swarm thread.
enum Command {
    Dial { peer: PeerId, addrs: Vec<Multiaddr>, reply: oneshot::Sender<Result<(), NetworkError>> },
    Disconnect { peer: PeerId },
    Provide { cids: Vec<Cid> },
    FindProviders { cid: Cid, reply: oneshot::Sender<Vec<PeerId>> },
    Info { reply: oneshot::Sender<NetInfo> },
    Stop,
}

/// The network actor.
pub struct NetworkActor {
    commands: mpsc::Sender<Command>,
    thread: Option<JoinHandle<()>>,
}

impl NetworkActor {
    /// Starts the swarm thread, listening and dialing the bootstrap nodes; events go to `events`. Returns once
    /// the listeners are up (or failed).
    pub fn start(config: NetworkConfig, events: Recipient<NetEvent>) -> Result<Addr<Self>, NetworkError> {
        let (commands, receiver) = mpsc::channel(1024);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("codex-network".into())
            .spawn(move || swarm::run(config, receiver, events, ready_tx))
            .map_err(|e| NetworkError::Start(e.to_string()))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Self { commands, thread: Some(thread) }.start()),
            Ok(Err(err)) => {
                let _ = thread.join();
                Err(err)
            }
            Err(_) => Err(NetworkError::Start("the network thread ended during start".into())),
        }
    }

    fn request<T: Send + 'static>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command + 'static,
    ) -> impl Future<Output = Result<T, NetworkError>> + 'static {
        let commands = self.commands.clone();
        async move {
            let (reply, answer) = oneshot::channel();
            commands.send(make(reply)).await.map_err(|_| NetworkError::Stopped)?;
            answer.await.map_err(|_| NetworkError::Stopped)
        }
    }

    fn tell(&self, command: Command) {
        if self.commands.try_send(command).is_err() {
            tracing::warn!("network command queue full or closed; command dropped");
        }
    }
}

impl Actor for NetworkActor {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Self::Context) {
        let _ = self.commands.try_send(Command::Stop);
    }
}

impl Handler<Dial> for NetworkActor {
    type Result = ResponseFuture<Result<(), NetworkError>>;
    fn handle(&mut self, msg: Dial, _: &mut Self::Context) -> Self::Result {
        let answer = self.request(move |reply| Command::Dial { peer: msg.peer, addrs: msg.addrs, reply });
        Box::pin(async move { answer.await? })
    }
}

impl Handler<Disconnect> for NetworkActor {
    type Result = ();
    fn handle(&mut self, msg: Disconnect, _: &mut Self::Context) {
        self.tell(Command::Disconnect { peer: msg.peer });
    }
}

impl Handler<Provide> for NetworkActor {
    type Result = ();
    fn handle(&mut self, msg: Provide, _: &mut Self::Context) {
        self.tell(Command::Provide { cids: msg.cids });
    }
}

impl Handler<FindProviders> for NetworkActor {
    type Result = ResponseFuture<Result<Vec<PeerId>, NetworkError>>;
    fn handle(&mut self, msg: FindProviders, _: &mut Self::Context) -> Self::Result {
        Box::pin(self.request(move |reply| Command::FindProviders { cid: msg.cid, reply }))
    }
}

impl Handler<GetNetInfo> for NetworkActor {
    type Result = ResponseFuture<Result<NetInfo, NetworkError>>;
    fn handle(&mut self, _: GetNetInfo, _: &mut Self::Context) -> Self::Result {
        Box::pin(self.request(|reply| Command::Info { reply }))
    }
}

impl Handler<StopNetwork> for NetworkActor {
    type Result = ();
    fn handle(&mut self, _: StopNetwork, ctx: &mut Self::Context) {
        let _ = self.commands.try_send(Command::Stop);
        if let Some(thread) = self.thread.take() {
            // The loop ends at the next poll; joining here would block the arbiter, so a helper thread waits.
            std::thread::spawn(move || {
                let _ = thread.join();
            });
        }
        ctx.stop();
    }
}
