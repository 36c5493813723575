//! Debug endpoints: `GET /debug/info` and `POST /debug/chronicles/loglevel?level=…`.
//!
//! Until networking lands, `/debug/info` reports the node's identity and repository with empty address lists,
//! an empty SPR and an empty DHT table (nothing is listening yet); the shape is the OpenAPI `DebugInfo`.

use super::{ApiError, ApiState};
use crate::telemetry::LogDirectives;
use actix_web::{HttpResponse, web};
use codex_actors::node::GetNodeInfo;
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
}

async fn info(state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    let info = state.node.send(GetNodeInfo).await?;
    let peer_id = info.peer_id.to_string();
    // Kademlia keys are SHA-256 of the peer id bytes.
    let node_id: String =
        codex_protocol::cid::sha256(&info.peer_id.to_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let body = DebugInfo {
        id: peer_id.clone(),
        addrs: Vec::new(),
        repo: info.data_dir.display().to_string(),
        spr: String::new(),
        announce_addresses: Vec::new(),
        table: PeersTable {
            local_node: TableNode { node_id, peer_id, record: String::new(), address: None, seen: false },
            nodes: Vec::new(),
        },
        codex: CodexVersion {
            version: concat!("v", env!("CARGO_PKG_VERSION")).into(),
            revision: option_env!("CODEX_REVISION").unwrap_or("unknown").into(),
            contracts: String::new(),
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
