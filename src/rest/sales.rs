//! The host's endpoints of the Codex API (selling storage, issue 13), each a [`SalesCall`] to the node:
//!
//! - `GET /sales/availability`: the availabilities (SalesAvailabilityREAD[]).
//! - `POST /sales/availability`: offer space (SalesAvailability; `enabled` defaults to true, `until` to 0):
//!   201 with the new SalesAvailabilityREAD.
//! - `PATCH /sales/availability/{id}`: change the given fields (all optional; `freeSize` is refused, 422): 204.
//! - `GET /sales/availability/{id}/reservations`: its reservations (Reservation[]).
//! - `GET /sales/slots`: the slots this host holds (Slot[]); `GET /sales/slots/{slotId}`: the sale of one
//!   (SlotAgent), 404 when this host is not filling it.
//!
//! Ids are 32 bytes in hex, with or without `0x` (400 otherwise); amounts are decimal strings or JSON numbers
//! (`super::body::Amount`). A body that is not valid JSON of the right shape is a 400 with serde's reason; the
//! SalesActor's refusals are 422 with its message, unknown ids 404, and without persistence every endpoint
//! answers 503 (see [`ApiError`]).

use super::body::{Amount, parse_json, uint256};
use super::market::StorageRequestDto;
use super::{ApiError, ApiState};
use actix_web::{HttpResponse, web};
use alloy::primitives::{B256, U256};
use codex_actors::node::SalesCall;
use codex_actors::sales::{
    ActiveSlot, CreateAvailability, GetSlotAgent, ListActiveSlots, ListAvailabilities, ListReservations, SlotAgentInfo,
    UpdateAvailability,
};
use codex_protocol::sales::{Availability, AvailabilityPatch, NewAvailability, Reservation};
use serde::de::{Deserializer, IgnoredAny};
use serde::{Deserialize, Serialize};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/sales/availability")
            .route(web::get().to(list_availabilities))
            .route(web::post().to(create_availability)),
    )
    .service(web::resource("/sales/availability/{id}").route(web::patch().to(update_availability)))
    .service(web::resource("/sales/availability/{id}/reservations").route(web::get().to(list_reservations)))
    .service(web::resource("/sales/slots").route(web::get().to(list_slots)))
    .service(web::resource("/sales/slots/{slotId}").route(web::get().to(get_slot)));
}

/// A 32-byte id from a path, with or without `0x`; `what` names it in the 400.
fn parse_id(text: &str, what: &str) -> Result<B256, ApiError> {
    let digits = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")).unwrap_or(text);
    let valid = digits.len() == 64 && digits.bytes().all(|b| b.is_ascii_hexdigit());
    let id = valid.then(|| digits.parse::<B256>().ok()).flatten();
    id.ok_or_else(|| ApiError::BadRequest(format!("invalid {what} '{text}': 32 bytes in hex are expected")))
}

async fn list_availabilities(state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    let availabilities = state.node.send(SalesCall(ListAvailabilities)).await??;
    Ok(HttpResponse::Ok().json(availabilities.iter().map(AvailabilityDto::from).collect::<Vec<_>>()))
}

async fn create_availability(state: web::Data<ApiState>, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    let new = parse_json::<NewAvailabilityDto>(&body)?.into();
    let created = state.node.send(SalesCall(CreateAvailability { new })).await??;
    Ok(HttpResponse::Created().json(AvailabilityDto::from(&created)))
}

async fn update_availability(
    state: web::Data<ApiState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path, "availability id")?;
    let patch = parse_json::<AvailabilityPatchDto>(&body)?.into_patch()?;
    state.node.send(SalesCall(UpdateAvailability { id, patch })).await??;
    Ok(HttpResponse::NoContent().finish())
}

async fn list_reservations(state: web::Data<ApiState>, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let availability = parse_id(&path, "availability id")?;
    let reservations = state.node.send(SalesCall(ListReservations { availability })).await??;
    Ok(HttpResponse::Ok().json(reservations.iter().map(ReservationDto::from).collect::<Vec<_>>()))
}

async fn list_slots(state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    let slots = state.node.send(SalesCall(ListActiveSlots)).await??;
    Ok(HttpResponse::Ok().json(slots.iter().map(SlotDto::from).collect::<Vec<_>>()))
}

async fn get_slot(state: web::Data<ApiState>, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let slot = parse_id(&path, "slot id")?;
    match state.node.send(SalesCall(GetSlotAgent { slot })).await?? {
        Some(agent) => Ok(HttpResponse::Ok().json(SlotAgentDto::from(&agent))),
        None => Err(ApiError::NotFound("Provider not filling slot".to_owned())),
    }
}

/// The OpenAPI's SalesAvailability, as `POST /sales/availability` reads it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewAvailabilityDto {
    total_size: u64,
    duration: u64,
    #[serde(deserialize_with = "uint256")]
    min_price_per_byte_per_second: U256,
    #[serde(deserialize_with = "uint256")]
    total_collateral: U256,
    #[serde(default = "enabled_by_default")]
    enabled: bool,
    #[serde(default)]
    until: u64,
}

fn enabled_by_default() -> bool {
    true
}

impl From<NewAvailabilityDto> for NewAvailability {
    fn from(dto: NewAvailabilityDto) -> Self {
        Self {
            total_size: dto.total_size,
            duration: dto.duration,
            min_price_per_byte_per_second: dto.min_price_per_byte_per_second,
            total_collateral: dto.total_collateral,
            enabled: dto.enabled,
            until: dto.until,
        }
    }
}

/// The OpenAPI's SalesAvailability as `PATCH /sales/availability/{id}` reads it: every field optional (absent
/// or null = unchanged), and `freeSize`, which the node computes, refused.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AvailabilityPatchDto {
    total_size: Option<u64>,
    duration: Option<u64>,
    min_price_per_byte_per_second: Option<Amount>,
    total_collateral: Option<Amount>,
    enabled: Option<bool>,
    until: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    free_size: bool,
}

/// True when the field is there, whatever its value (null included).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(deserializer)?;
    Ok(true)
}

impl AvailabilityPatchDto {
    fn into_patch(self) -> Result<AvailabilityPatch, ApiError> {
        if self.free_size {
            return Err(ApiError::Unprocessable("Updating freeSize is not allowed".to_owned()));
        }
        Ok(AvailabilityPatch {
            total_size: self.total_size,
            duration: self.duration,
            min_price_per_byte_per_second: self.min_price_per_byte_per_second.map(|a| a.0),
            total_collateral: self.total_collateral.map(|a| a.0),
            enabled: self.enabled,
            until: self.until,
        })
    }
}

/// The OpenAPI's SalesAvailabilityREAD.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AvailabilityDto {
    id: String,
    total_size: u64,
    free_size: u64,
    duration: u64,
    min_price_per_byte_per_second: String,
    total_collateral: String,
    total_remaining_collateral: String,
    enabled: bool,
    until: u64,
}

impl From<&Availability> for AvailabilityDto {
    fn from(availability: &Availability) -> Self {
        Self {
            id: format!("{:#x}", availability.id),
            total_size: availability.total_size,
            free_size: availability.free_size,
            duration: availability.duration,
            min_price_per_byte_per_second: availability.min_price_per_byte_per_second.to_string(),
            total_collateral: availability.total_collateral.to_string(),
            total_remaining_collateral: availability.total_remaining_collateral.to_string(),
            enabled: availability.enabled,
            until: availability.until,
        }
    }
}

/// The OpenAPI's Reservation.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ReservationDto {
    id: String,
    availability_id: String,
    size: u64,
    request_id: String,
    slot_index: u64,
    valid_until: u64,
}

impl From<&Reservation> for ReservationDto {
    fn from(reservation: &Reservation) -> Self {
        Self {
            id: format!("{:#x}", reservation.id),
            availability_id: format!("{:#x}", reservation.availability_id),
            size: reservation.size,
            request_id: format!("{:#x}", reservation.request_id),
            slot_index: reservation.slot_index,
            valid_until: reservation.valid_until,
        }
    }
}

/// The OpenAPI's Slot.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SlotDto {
    id: String,
    request: StorageRequestDto,
    slot_index: u64,
}

impl From<&ActiveSlot> for SlotDto {
    fn from(slot: &ActiveSlot) -> Self {
        Self {
            id: format!("{:#x}", slot.id),
            request: StorageRequestDto::from(&slot.request),
            slot_index: slot.slot_index,
        }
    }
}

/// The OpenAPI's SlotAgent (`request` and `reservation` left out when unknown).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SlotAgentDto {
    slot_index: u64,
    request_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    request: Option<StorageRequestDto>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reservation: Option<ReservationDto>,
    state: &'static str,
}

impl From<&SlotAgentInfo> for SlotAgentDto {
    fn from(agent: &SlotAgentInfo) -> Self {
        Self {
            slot_index: agent.slot_index,
            request_id: format!("{:#x}", agent.request_id),
            request: agent.request.as_ref().map(StorageRequestDto::from),
            reservation: agent.reservation.as_ref().map(ReservationDto::from),
            state: agent.state,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn new_availability(json: &str) -> Result<NewAvailability, String> {
        parse_json::<NewAvailabilityDto>(json.as_bytes()).map(NewAvailability::from).map_err(|err| err.to_string())
    }

    fn patch(json: &str) -> Result<AvailabilityPatch, ApiError> {
        parse_json::<AvailabilityPatchDto>(json.as_bytes())?.into_patch()
    }

    fn id(byte: u8) -> B256 {
        B256::repeat_byte(byte)
    }

    #[test]
    fn a_new_availability_takes_amounts_as_strings_or_numbers_and_has_defaults() {
        let full = r#"{"totalSize": 1048576, "duration": 3600, "minPricePerBytePerSecond": "5",
            "totalCollateral": "115792089237316195423570985008687907853269984665640564039457584007913129639935",
            "enabled": false, "until": 1700000000}"#;
        let expected = NewAvailability {
            total_size: 1 << 20,
            duration: 3600,
            min_price_per_byte_per_second: U256::from(5u64),
            total_collateral: U256::MAX,
            enabled: false,
            until: 1_700_000_000,
        };
        assert_eq!(new_availability(full), Ok(expected));

        let minimal = r#"{"totalSize": 0, "duration": 1, "minPricePerBytePerSecond": 7, "totalCollateral": "0"}"#;
        let parsed = new_availability(minimal).expect("parsed");
        assert_eq!(parsed.min_price_per_byte_per_second, U256::from(7u64));
        assert_eq!(parsed.total_collateral, U256::ZERO);
        assert!(parsed.enabled, "enabled defaults to true");
        assert_eq!(parsed.until, 0, "until defaults to 0");
    }

    #[test]
    fn a_new_availability_missing_a_field_or_of_the_wrong_type_is_refused_with_the_reason() {
        let valid = json!({"totalSize": 10, "duration": 1, "minPricePerBytePerSecond": "1", "totalCollateral": "1"});
        for field in ["totalSize", "duration", "minPricePerBytePerSecond", "totalCollateral"] {
            let mut body = valid.clone();
            body.as_object_mut().expect("object").remove(field);
            let message = new_availability(&body.to_string()).unwrap_err();
            assert!(message.contains(&format!("missing field `{field}`")), "{message}");
        }
        let wrong = [
            (json!({"totalSize": "ten"}), "invalid type"),
            (json!({"totalSize": -1}), "invalid value"),
            (json!({"duration": 1.5}), "invalid type"),
            (json!({"minPricePerBytePerSecond": "1.5"}), "is not a decimal number"),
            (json!({"totalCollateral": -3}), "negative"),
            (json!({"enabled": "yes"}), "invalid type"),
            (json!({"until": null}), "invalid type"),
            (json!({"totalSise": 1}), "unknown field `totalSise`"),
        ];
        for (change, reason) in wrong {
            let mut body = valid.clone();
            for (key, value) in change.as_object().expect("object") {
                body[key] = value.clone();
            }
            let message = new_availability(&body.to_string()).unwrap_err();
            assert!(message.starts_with("invalid JSON body") && message.contains(reason), "{body}: {message}");
        }
        assert!(new_availability("not json").unwrap_err().starts_with("invalid JSON body"));
        assert!(new_availability("[]").is_err());
    }

    #[test]
    fn a_patch_takes_any_subset_of_fields() {
        assert_eq!(patch("{}").expect("empty patch"), AvailabilityPatch::default());
        let parsed = patch(r#"{"totalCollateral": 12, "minPricePerBytePerSecond": "3", "enabled": false}"#);
        let expected = AvailabilityPatch {
            min_price_per_byte_per_second: Some(U256::from(3u64)),
            total_collateral: Some(U256::from(12u64)),
            enabled: Some(false),
            ..AvailabilityPatch::default()
        };
        assert_eq!(parsed.expect("patch"), expected);
        let parsed = patch(r#"{"totalSize": 5, "duration": 6, "until": 7, "enabled": null}"#).expect("patch");
        assert_eq!(
            (parsed.total_size, parsed.duration, parsed.until, parsed.enabled),
            (Some(5), Some(6), Some(7), None)
        );
    }

    #[test]
    fn a_patch_of_free_size_is_unprocessable_and_a_malformed_patch_a_bad_request() {
        for body in [r#"{"freeSize": 10}"#, r#"{"freeSize": null, "enabled": true}"#, r#"{"freeSize": "1"}"#] {
            let Err(ApiError::Unprocessable(message)) = patch(body) else { panic!("{body} is refused") };
            assert_eq!(message, "Updating freeSize is not allowed");
        }
        for body in [r#"{"totalSize": "big"}"#, r#"{"id": "0x00"}"#, "{", r#"{"totalCollateral": "1e3"}"#] {
            assert!(matches!(patch(body), Err(ApiError::BadRequest(_))), "{body}");
        }
    }

    #[test]
    fn ids_are_32_bytes_of_hex_with_or_without_0x() {
        let hex = "ab".repeat(32);
        assert_eq!(parse_id(&hex, "slot id").expect("bare"), id(0xab));
        assert_eq!(parse_id(&format!("0x{hex}"), "slot id").expect("0x"), id(0xab));
        assert_eq!(parse_id(&format!("0X{}", hex.to_uppercase()), "slot id").expect("upper"), id(0xab));
        let short = &hex[..62];
        let bad =
            [String::new(), "0x".into(), short.into(), format!("{hex}ab"), format!("0x{short}zz"), format!(" {hex}")];
        for bad in bad {
            let Err(ApiError::BadRequest(message)) = parse_id(&bad, "slot id") else { panic!("'{bad}' is refused") };
            assert!(message.starts_with("invalid slot id") && message.contains("32 bytes in hex"), "{message}");
        }
    }

    fn availability() -> Availability {
        Availability {
            id: id(1),
            total_size: 1000,
            free_size: 400,
            duration: 3600,
            min_price_per_byte_per_second: U256::from(2u64),
            total_collateral: U256::MAX,
            total_remaining_collateral: U256::from(10u64).pow(U256::from(20u64)),
            enabled: true,
            until: 0,
        }
    }

    fn reservation() -> Reservation {
        Reservation {
            id: id(2),
            availability_id: id(1),
            size: 300,
            released: 100,
            request_id: id(3),
            slot_index: 4,
            valid_until: 1_700_000_000,
            collateral: U256::from(9u64),
        }
    }

    #[test]
    fn an_availability_is_written_as_the_openapi_spells_it() {
        let written = serde_json::to_value(AvailabilityDto::from(&availability())).expect("json");
        let expected = json!({
            "id": format!("0x{}", "01".repeat(32)),
            "totalSize": 1000,
            "freeSize": 400,
            "duration": 3600,
            "minPricePerBytePerSecond": "2",
            "totalCollateral": U256::MAX.to_string(),
            "totalRemainingCollateral": "100000000000000000000",
            "enabled": true,
            "until": 0
        });
        assert_eq!(written, expected);
    }

    #[test]
    fn a_reservation_is_written_as_the_openapi_spells_it() {
        let written = serde_json::to_value(ReservationDto::from(&reservation())).expect("json");
        let expected = json!({
            "id": format!("0x{}", "02".repeat(32)),
            "availabilityId": format!("0x{}", "01".repeat(32)),
            "size": 300,
            "requestId": format!("0x{}", "03".repeat(32)),
            "slotIndex": 4,
            "validUntil": 1_700_000_000u64
        });
        assert_eq!(written, expected);
    }

    #[test]
    fn a_slot_agent_leaves_out_what_it_does_not_know() {
        let agent = SlotAgentInfo {
            request_id: id(3),
            slot_index: 2,
            request: None,
            reservation: Some(reservation()),
            state: "SaleDownloading",
        };
        let written = serde_json::to_value(SlotAgentDto::from(&agent)).expect("json");
        let mut fields: Vec<&str> = written.as_object().expect("object").keys().map(String::as_str).collect();
        fields.sort_unstable();
        assert_eq!(fields, ["requestId", "reservation", "slotIndex", "state"]);
        assert_eq!(written["requestId"], Value::from(format!("0x{}", "03".repeat(32))));
        assert_eq!(written["slotIndex"], 2);
        assert_eq!(written["state"], "SaleDownloading");
        assert_eq!(written["reservation"]["availabilityId"], Value::from(format!("0x{}", "01".repeat(32))));
        let bare = SlotAgentInfo { reservation: None, ..agent };
        let written = serde_json::to_value(SlotAgentDto::from(&bare)).expect("json");
        assert!(written.get("reservation").is_none() && written.get("request").is_none(), "{written}");
    }

    #[test]
    fn a_slot_is_written_with_its_request_as_the_purchases_show_it() {
        use codex_actors::chain::market::{Ask, Content, Request, request_id, slot_id};
        let request = Request {
            client: alloy::primitives::Address::repeat_byte(7),
            ask: Ask {
                proofProbability: U256::from(1u64),
                pricePerBytePerSecond: U256::from(2u64),
                collateralPerByte: U256::from(3u64),
                slots: 4,
                slotSize: 65536,
                duration: 3600,
                maxSlotLoss: 1,
            },
            content: Content { cid: vec![1, 2, 3].into(), merkleRoot: B256::repeat_byte(5) },
            expiry: 60,
            nonce: B256::repeat_byte(9),
        };
        let slot = ActiveSlot { id: slot_id(request_id(&request), 2), request: request.clone(), slot_index: 2 };
        let written = serde_json::to_value(SlotDto::from(&slot)).expect("json");
        assert_eq!(written["id"], Value::from(format!("{:#x}", slot.id)));
        assert_eq!(written["slotIndex"], 2);
        let purchase_form = serde_json::to_value(StorageRequestDto::from(&request)).expect("json");
        assert_eq!(written["request"], purchase_form);
        assert_eq!(written["request"]["id"], Value::from(format!("{:#x}", request_id(&request))));
        assert_eq!(written["request"]["ask"]["slotSize"], 65536);
        assert_eq!(written.as_object().expect("object").len(), 3);
    }
}
