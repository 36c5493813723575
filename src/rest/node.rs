//! Node endpoints: `GET /space` and `GET /peerid` (text or JSON by `Accept`, as the original).

use super::{ApiError, ApiState};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use codex_actors::node::{GetNodeInfo, GetSpace};
use serde::Serialize;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/space", web::get().to(space)).route("/peerid", web::get().to(peer_id));
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
