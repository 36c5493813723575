//! The storage endpoints of the Codex API (marketplace, as a client): `POST /storage/request/{cid}`,
//! `GET /storage/purchases`, `GET /storage/purchases/{id}`. Without persistence they answer 503 with a message.
//! The host's endpoints (`/sales/…`, selling storage) are in [`super::sales`], registered from [`routes`];
//! both read their bodies with `super::body`.

use super::body::{parse_json, uint256};
use super::{ApiError, ApiState};
use actix_web::{HttpResponse, web};
use alloy::primitives::{B256, U256};
use codex_actors::chain::market::Request;
use codex_actors::node::{GetPurchase, ListPurchases, RequestPurchase, WithdrawPurchaseFunds};
use codex_actors::purchasing::{Purchase, StorageParams};
use codex_protocol::cid::{cid_from_bytes, format_cid, parse_cid};
use serde::{Deserialize, Serialize};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/storage/request/{cid}").route(web::post().to(request_storage)))
        .service(web::resource("/storage/purchases").route(web::get().to(list_purchases)))
        .service(web::resource("/storage/purchases/{id}").route(web::get().to(get_purchase)))
        .service(web::resource("/storage/purchases/{id}/withdraw").route(web::post().to(withdraw_purchase)))
        .configure(super::sales::routes);
}

/// The OpenAPI's StorageRequestCreation.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StorageRequestCreation {
    duration: u64,
    #[serde(deserialize_with = "uint256")]
    price_per_byte_per_second: U256,
    #[serde(deserialize_with = "uint256")]
    proof_probability: U256,
    #[serde(default = "default_nodes")]
    nodes: u64,
    #[serde(default = "default_tolerance")]
    tolerance: u64,
    #[serde(deserialize_with = "uint256")]
    collateral_per_byte: U256,
    expiry: u64,
}

fn default_nodes() -> u64 {
    3
}

fn default_tolerance() -> u64 {
    1
}

async fn request_storage(
    state: web::Data<ApiState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let cid = parse_cid(&path)?;
    let creation: StorageRequestCreation = parse_json(&body)?;
    let params = StorageParams {
        duration: creation.duration,
        price_per_byte_per_second: creation.price_per_byte_per_second,
        proof_probability: creation.proof_probability,
        nodes: creation.nodes,
        tolerance: creation.tolerance,
        collateral_per_byte: creation.collateral_per_byte,
        expiry: creation.expiry,
    };
    let id = state.node.send(RequestPurchase { cid, params }).await??;
    Ok(HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(format!("{id:#x}")))
}

async fn list_purchases(state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    let ids = state.node.send(ListPurchases).await??;
    Ok(HttpResponse::Ok().json(ids.iter().map(|id| format!("{id:#x}")).collect::<Vec<_>>()))
}

fn purchase_id(text: &str) -> Result<B256, ApiError> {
    text.parse()
        .map_err(|_| ApiError::BadRequest(format!("invalid purchase id '{text}': 32 bytes in hex are expected")))
}

async fn get_purchase(state: web::Data<ApiState>, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id = purchase_id(&path.into_inner())?;
    match state.node.send(GetPurchase { id }).await?? {
        Some(purchase) => Ok(HttpResponse::Ok().json(PurchaseDto::from(&purchase))),
        None => Err(ApiError::NotFound(format!("purchase {id:#x} not found"))),
    }
}

/// Withdraws the client's funds of an ended request (an extension: the node also does it by itself when it sees
/// the request end); 422 while the request runs.
async fn withdraw_purchase(state: web::Data<ApiState>, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id = purchase_id(&path.into_inner())?;
    match state.node.send(WithdrawPurchaseFunds { id }).await?? {
        Some(purchase) => Ok(HttpResponse::Ok().json(PurchaseDto::from(&purchase))),
        None => Err(ApiError::NotFound(format!("purchase {id:#x} not found"))),
    }
}

/// The OpenAPI's Purchase.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PurchaseDto {
    request_id: String,
    state: &'static str,
    error: Option<String>,
    request: StorageRequestDto,
}

/// The OpenAPI's StorageRequest (also in the host's Slot and SlotAgent).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct StorageRequestDto {
    id: String,
    client: String,
    ask: AskDto,
    content: ContentDto,
    expiry: u64,
    nonce: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AskDto {
    slots: u64,
    slot_size: u64,
    duration: u64,
    proof_probability: String,
    price_per_byte_per_second: String,
    collateral_per_byte: String,
    max_slot_loss: u64,
}

#[derive(Serialize)]
struct ContentDto {
    cid: String,
}

impl From<&Request> for StorageRequestDto {
    fn from(request: &Request) -> Self {
        let ask = &request.ask;
        Self {
            id: format!("{:#x}", codex_actors::chain::market::request_id(request)),
            client: request.client.to_checksum(None),
            ask: AskDto {
                slots: ask.slots,
                slot_size: ask.slotSize,
                duration: ask.duration,
                proof_probability: ask.proofProbability.to_string(),
                price_per_byte_per_second: ask.pricePerBytePerSecond.to_string(),
                collateral_per_byte: ask.collateralPerByte.to_string(),
                max_slot_loss: ask.maxSlotLoss,
            },
            content: ContentDto {
                cid: cid_from_bytes(&request.content.cid).map(|cid| format_cid(&cid)).unwrap_or_default(),
            },
            expiry: request.expiry,
            nonce: format!("{:#x}", request.nonce),
        }
    }
}

impl From<&Purchase> for PurchaseDto {
    fn from(purchase: &Purchase) -> Self {
        Self {
            request_id: format!("{:#x}", purchase.id),
            state: purchase.state.as_str(),
            error: purchase.error.clone(),
            request: StorageRequestDto::from(&purchase.request),
        }
    }
}
