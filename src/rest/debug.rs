//! Debug endpoints: `GET /debug/info` and `POST /debug/chronicles/loglevel?level=…`.
//!
//! `/debug/info` reports the node's identity, repository, listen and announce addresses, SPR, and its peer table
//! in the OpenAPI `DebugInfo` shape: `table.nodes` lists the Kademlia routing table plus every connected peer
//! (`seen` = connected now; the extension `connection` says `direct` or `relayed`). Node ids are the SHA-256 of
//! the peer id bytes (Kademlia keys). The extension `nat` gives reachability (AutoNAT) and why, relay
//! reservations, the relay this node serves, and each announced address with the reason it is announced.

use super::{ApiError, ApiState};
use crate::telemetry::LogDirectives;
use actix_web::{HttpResponse, web};
use codex_actors::node::{GetNetworkInfo, GetNodeInfo, GetProverInfo};
use serde::{Deserialize, Serialize};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/debug/info", web::get().to(info)).route("/debug/chronicles/loglevel", web::post().to(set_log_level));
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TableNode {
    node_id: String,
    peer_id: String,
    record: String,
    address: Option<String>,
    seen: bool,
    /// An extension: for connected peers, `direct` or `relayed` (every connection through a relay).
    #[serde(skip_serializing_if = "Option::is_none")]
    connection: Option<&'static str>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PeersTable {
    local_node: TableNode,
    nodes: Vec<TableNode>,
}

#[derive(Debug, Serialize)]
struct CodexVersion {
    version: String,
    revision: String,
    contracts: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DebugInfo {
    id: String,
    addrs: Vec<String>,
    repo: String,
    spr: String,
    announce_addresses: Vec<String>,
    table: PeersTable,
    codex: CodexVersion,
    /// The storage prover (an extension): `null` when it is off (no keys in the circuit directory).
    prover: Option<ProverStatus>,
    /// Reachability behind NATs (an extension).
    nat: NatStatus,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct NatStatus {
    /// The `--nat` mode.
    mode: String,
    /// `public`, `private` or `unknown`.
    reachability: String,
    reason: String,
    /// Relayed addresses of the relays this node holds a reservation on.
    relay_reservations: Vec<String>,
    /// The circuit relay this node serves; `null` when it does not relay.
    relay: Option<RelayStatus>,
    /// Each announced address and why it is announced.
    announced: Vec<AnnouncedAddress>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RelayStatus {
    reservations: usize,
    reservations_denied: u64,
    circuits: usize,
    circuits_accepted: u64,
    circuits_denied: u64,
}

#[derive(Debug, Serialize)]
struct AnnouncedAddress {
    address: String,
    why: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ProverStatus {
    loaded: bool,
    key_hash: Option<String>,
    samples: Option<usize>,
}

fn node_id(peer: &libp2p::PeerId) -> String {
    codex_protocol::cid::sha256(&peer.to_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

async fn info(state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    let info = state.node.send(GetNodeInfo).await?;
    let net = state.node.send(GetNetworkInfo).await??;
    let prover = state.node.send(GetProverInfo).await?.map(|p| ProverStatus {
        loaded: p.loaded,
        key_hash: p.key_hash.map(|h| h.iter().map(|b| format!("{b:02x}")).collect()),
        samples: p.samples,
    });
    let peer_id = info.peer_id.to_string();
    let spr = net.spr.clone().filter(|_| !net.announce_addrs.is_empty()).unwrap_or_default();
    let mut nodes: Vec<TableNode> = Vec::new();
    for row in net.table.iter().chain(net.peers.iter()) {
        if nodes.iter().any(|n| n.peer_id == row.peer.to_string()) {
            continue;
        }
        nodes.push(TableNode {
            node_id: node_id(&row.peer),
            peer_id: row.peer.to_string(),
            record: String::new(),
            address: row.addrs.first().map(ToString::to_string),
            seen: net.peers.iter().any(|p| p.peer == row.peer),
            connection: net
                .peers
                .iter()
                .find(|p| p.peer == row.peer)
                .and_then(|p| p.relayed)
                .map(|relayed| if relayed { "relayed" } else { "direct" }),
        });
    }
    let body = DebugInfo {
        id: peer_id.clone(),
        addrs: net.listen_addrs.iter().map(ToString::to_string).collect(),
        repo: info.data_dir.display().to_string(),
        spr: spr.clone(),
        announce_addresses: net.announce_addrs.iter().map(ToString::to_string).collect(),
        table: PeersTable {
            local_node: TableNode {
                node_id: node_id(&info.peer_id),
                peer_id,
                record: spr,
                address: net.announce_addrs.first().map(ToString::to_string),
                seen: true,
                connection: None,
            },
            nodes,
        },
        codex: CodexVersion {
            version: concat!("v", env!("CARGO_PKG_VERSION")).into(),
            revision: option_env!("CODEX_REVISION").unwrap_or("unknown").into(),
            contracts: String::new(),
        },
        prover,
        nat: NatStatus {
            mode: net.nat.mode.clone(),
            reachability: net.nat.reachability.to_string(),
            reason: net.nat.reason.clone(),
            relay_reservations: net.nat.reservations.iter().map(ToString::to_string).collect(),
            relay: net.nat.relay.as_ref().map(|r| RelayStatus {
                reservations: r.reservations,
                reservations_denied: r.reservations_denied,
                circuits: r.circuits,
                circuits_accepted: r.circuits_accepted,
                circuits_denied: r.circuits_denied,
            }),
            announced: net
                .nat
                .announced
                .iter()
                .map(|a| AnnouncedAddress { address: a.addr.to_string(), why: a.why.clone() })
                .collect(),
        },
    };
    let pretty = serde_json::to_string_pretty(&body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok(HttpResponse::Ok().content_type("application/json").body(pretty))
}

#[derive(Debug, Deserialize)]
struct LogLevelQuery {
    level: Option<String>,
}

async fn set_log_level(state: web::Data<ApiState>, query: web::Query<LogLevelQuery>) -> Result<HttpResponse, ApiError> {
    let level = query.level.as_deref().filter(|l| !l.trim().is_empty());
    let level = level.ok_or_else(|| ApiError::BadRequest("Missing log level: use ?level=info;trace:store".into()))?;
    let directives = LogDirectives::parse(level).map_err(|err| ApiError::BadRequest(err.to_string()))?;
    state.log.set(&directives).map_err(|err| ApiError::BadRequest(format!("cannot apply log level: {err}")))?;
    tracing::info!(level, "log level changed");
    Ok(HttpResponse::Ok().finish())
}
