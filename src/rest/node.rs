//! Node endpoints: `GET /space`, `GET /peerid` and `GET /spr` (text or JSON by `Accept`, as the original), and
//! `GET /connect/{peerId}[?addrs=…]`.

use super::{ApiError, ApiState};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use codex_actors::node::{Connect, GetNetworkInfo, GetNodeInfo, GetSpace};
use libp2p::{Multiaddr, PeerId};
use serde::Serialize;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/space", web::get().to(space))
        .route("/peerid", web::get().to(peer_id))
        .route("/spr", web::get().to(spr))
        .route("/connect/{peerId}", web::get().to(connect));
}

/// `Space` of the OpenAPI.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpaceItem {
    pub total_blocks: u64,
    pub quota_max_bytes: u64,
    pub quota_used_bytes: u64,
    pub quota_reserved_bytes: u64,
}

async fn space(state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    let space = state.node.send(GetSpace).await?;
    Ok(HttpResponse::Ok().json(SpaceItem {
        total_blocks: space.total_blocks,
        quota_max_bytes: space.quota_max_bytes,
        quota_used_bytes: space.quota_used_bytes,
        quota_reserved_bytes: space.quota_reserved_bytes,
    }))
}

/// True when the client's `Accept` prefers `text/plain` over JSON.
pub fn prefers_text(request: &HttpRequest) -> bool {
    let accept = request.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let position = |kind: &str| accept.find(kind);
    match (position("text/plain"), position("application/json")) {
        (Some(text), Some(json)) => text < json,
        (Some(_), None) => true,
        _ => false,
    }
}

async fn peer_id(state: web::Data<ApiState>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let info = state.node.send(GetNodeInfo).await?;
    let id = info.peer_id.to_string();
    if prefers_text(&request) {
        return Ok(HttpResponse::Ok().content_type("text/plain").body(id));
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({ "id": id })))
}

async fn spr(state: web::Data<ApiState>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let info = state.node.send(GetNetworkInfo).await??;
    let Some(spr) = info.spr.filter(|_| !info.announce_addrs.is_empty()) else {
        return Ok(HttpResponse::ServiceUnavailable()
            .content_type("text/plain; charset=utf-8")
            .body("Node SPR not ready, try again later"));
    };
    if prefers_text(&request) {
        return Ok(HttpResponse::Ok().content_type("text/plain").body(spr));
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({ "spr": spr })))
}

/// The `addrs` of a connect request: repeated (`?addrs=a&addrs=b`) or comma-separated.
fn connect_addrs(query: &str) -> Result<Vec<Multiaddr>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|err| ApiError::BadRequest(format!("Invalid query string: {err}")))?;
    let mut addrs = Vec::new();
    for (_, value) in pairs.into_iter().filter(|(key, _)| key == "addrs" || key == "addrs[]") {
        for text in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let addr = text
                .parse::<Multiaddr>()
                .map_err(|err| ApiError::BadRequest(format!("Invalid multiaddress '{text}': {err}")))?;
            addrs.push(addr);
        }
    }
    Ok(addrs)
}

async fn connect(
    state: web::Data<ApiState>,
    request: HttpRequest,
    peer: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let peer: PeerId = peer.parse().map_err(|err| ApiError::BadRequest(format!("Invalid peer id '{peer}': {err}")))?;
    let addrs = connect_addrs(request.query_string())?;
    state.node.send(Connect { peer, addrs }).await??;
    Ok(HttpResponse::Ok().content_type("text/plain").body("Successfully connected to peer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_addrs_forms() {
        let a = "/ip4/127.0.0.1/tcp/8070";
        let b = "/ip4/10.0.0.1/tcp/1";
        let repeated = format!("addrs={}&addrs={}", a.replace('/', "%2F"), b);
        assert_eq!(connect_addrs(&repeated).expect("parses").len(), 2);
        assert_eq!(connect_addrs(&format!("addrs={a},{b}")).expect("parses").len(), 2);
        assert!(connect_addrs("").expect("empty").is_empty());
        assert!(connect_addrs("addrs=nonsense").is_err());
    }
}
