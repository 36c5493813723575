//! Durability endpoints, extensions of the Codex API (the original exposes erasure coding only inside
//! `requestStorage`): `POST /data/{cid}/protect` erasure-codes a stored dataset and builds its slots, answering
//! the DataItem of the verifiable manifest; `POST /data/{cid}/slots/{index}/network` fetches one slot of a
//! verifiable dataset from the network and keeps it once it matches its slot root;
//! `POST /data/{cid}/slots/{index}/repair` rebuilds a slot whose host is gone from the other slots.

use super::data::DataItem;
use super::{ApiError, ApiState};
use actix_web::{HttpResponse, web};
use codex_actors::node::{HostSlot, Protect, RepairSlot};
use codex_actors::slot_host::HostedSlot;
use codex_protocol::cid::format_cid;
use codex_protocol::cid::parse_cid;
use serde::Deserialize;

/// Largest body the durability endpoints read.
const MAX_BODY: usize = 4096;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/data/{cid}/protect").route(web::post().to(protect)))
        .service(web::resource("/data/{cid}/slots/{index}/network").route(web::post().to(host_slot)))
        .service(web::resource("/data/{cid}/slots/{index}/repair").route(web::post().to(repair_slot)));
}

/// The body of `POST /data/{cid}/protect`: `nodes` slots, any `nodes − tolerance` of which rebuild the data.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProtectParams {
    nodes: u64,
    tolerance: u64,
}

fn json_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    if body.len() > MAX_BODY {
        return Err(ApiError::BadRequest(format!("the request body is larger than {MAX_BODY} bytes")));
    }
    serde_json::from_slice(body).map_err(|err| ApiError::BadRequest(format!("invalid JSON body: {err}")))
}

async fn protect(
    state: web::Data<ApiState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let cid = parse_cid(&path)?;
    let params: ProtectParams = json_body(&body)?;
    let stored = state.node.send(Protect { cid, nodes: params.nodes, tolerance: params.tolerance }).await??;
    Ok(HttpResponse::Ok().json(DataItem::new(&stored.cid, &stored.manifest)))
}

/// The answer of `POST /data/{cid}/slots/{index}/network`.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct SlotItem {
    cid: String,
    slot_index: u64,
    slot_root: String,
    /// Blocks stored (the slot's erasure padding is not stored).
    blocks: u64,
}

fn slot_path(path: web::Path<(String, String)>) -> Result<(codex_protocol::Cid, u64), ApiError> {
    let (cid, index) = path.into_inner();
    let cid = parse_cid(&cid)?;
    let index: u64 = index
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("invalid slot index '{index}': a number is expected")))?;
    Ok((cid, index))
}

fn slot_item(hosted: &HostedSlot) -> SlotItem {
    SlotItem {
        cid: format_cid(&hosted.manifest_cid),
        slot_index: hosted.index,
        slot_root: format_cid(&hosted.slot_root),
        blocks: hosted.blocks,
    }
}

async fn host_slot(state: web::Data<ApiState>, path: web::Path<(String, String)>) -> Result<HttpResponse, ApiError> {
    let (cid, index) = slot_path(path)?;
    let hosted = state.node.send(HostSlot { cid, index }).await??;
    Ok(HttpResponse::Ok().json(slot_item(&hosted)))
}

async fn repair_slot(state: web::Data<ApiState>, path: web::Path<(String, String)>) -> Result<HttpResponse, ApiError> {
    let (cid, index) = slot_path(path)?;
    let hosted = state.node.send(RepairSlot { cid, index }).await??;
    Ok(HttpResponse::Ok().json(slot_item(&hosted)))
}
