//! DiscoveryActor: content discovery on the Kademlia DHT.
//!
//! Announces the manifest CID and the tree CID of every stored dataset (at start, when a dataset is stored,
//! and again every 30 minutes, as the original's Advertiser does), and looks for providers of CIDs the block
//! exchange wants, at most once per CID every 3 s; the network dials providers as the lookup finds them.
//!
//! Handles: [`Announce`], [`Locate`].

use crate::network::{Dial, FindProviders, NetworkActor, Provide};
use crate::store::{ListDatasets, StoreActor};
use actix::prelude::*;
use codex_protocol::Cid;
use codex_protocol::cid::format_cid;
use libp2p::PeerId;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Re-announce interval.
pub const REPROVIDE_INTERVAL: Duration = Duration::from_secs(30 * 60);
const LOCATE_INTERVAL: Duration = Duration::from_secs(3);
/// Lookups running at once.
const MAX_LOOKUPS: usize = 10;

/// Command: announce that this node provides `cids`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Announce {
    pub cids: Vec<Cid>,
}

/// Command: look for providers of `cid` (rate limited; found providers get dialed). Answers the providers
/// once the lookup finished, or `None` when no lookup ran (one ran for this CID less than 3 s ago, too many
/// run, or it failed).
#[derive(Message)]
#[rtype(result = "Option<Vec<PeerId>>")]
pub struct Locate {
    pub cid: Cid,
}

/// The discovery actor.
pub struct DiscoveryActor {
    network: Addr<NetworkActor>,
    store: Addr<StoreActor>,
    last_lookup: HashMap<Cid, Instant>,
    running: usize,
}

impl DiscoveryActor {
    pub fn new(network: Addr<NetworkActor>, store: Addr<StoreActor>) -> Self {
        Self { network, store, last_lookup: HashMap::new(), running: 0 }
    }

    fn reprovide(&mut self, ctx: &mut Context<Self>) {
        self.store
            .send(ListDatasets)
            .into_actor(self)
            .map(|result, act, _| {
                let Ok(Ok(datasets)) = result else { return };
                let cids: Vec<Cid> = datasets.iter().flat_map(|d| [d.cid, d.manifest.tree_cid]).collect();
                tracing::debug!(datasets = datasets.len(), "announcing stored datasets");
                if !cids.is_empty() {
                    act.network.do_send(Provide { cids });
                }
            })
            .spawn(ctx);
    }
}

impl Actor for DiscoveryActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.reprovide(ctx);
        ctx.run_interval(REPROVIDE_INTERVAL, |act, ctx| act.reprovide(ctx));
    }
}

impl Handler<Announce> for DiscoveryActor {
    type Result = ();
    fn handle(&mut self, msg: Announce, _: &mut Self::Context) {
        for cid in &msg.cids {
            tracing::debug!(cid = %format_cid(cid), "announcing");
        }
        self.network.do_send(Provide { cids: msg.cids });
    }
}

impl Handler<Locate> for DiscoveryActor {
    type Result = ResponseActFuture<Self, Option<Vec<PeerId>>>;
    fn handle(&mut self, msg: Locate, _: &mut Self::Context) -> Self::Result {
        let now = Instant::now();
        if self.running >= MAX_LOOKUPS
            || self.last_lookup.get(&msg.cid).is_some_and(|last| now.duration_since(*last) < LOCATE_INTERVAL)
        {
            return Box::pin(fut::ready(None));
        }
        self.last_lookup.retain(|_, last| now.duration_since(*last) < LOCATE_INTERVAL);
        self.last_lookup.insert(msg.cid, now);
        self.running += 1;
        let cid = msg.cid;
        Box::pin(self.network.send(FindProviders { cid }).into_actor(self).map(move |result, act, _| {
            act.running -= 1;
            match result {
                Ok(Ok(providers)) => {
                    tracing::debug!(cid = %format_cid(&cid), providers = providers.len(), "providers found");
                    // The lookup dials providers whose addresses it learned; the others are looked up by
                    // peer id (a no-op for peers already connected).
                    for peer in &providers {
                        let (network, peer) = (act.network.clone(), *peer);
                        actix::spawn(async move {
                            if let Ok(Err(err)) = network.send(Dial { peer, addrs: Vec::new() }).await {
                                tracing::debug!(%err, "cannot reach a provider");
                            }
                        });
                    }
                    Some(providers)
                }
                Ok(Err(err)) => {
                    tracing::debug!(%err, "provider lookup failed");
                    None
                }
                Err(_) => None,
            }
        }))
    }
}
