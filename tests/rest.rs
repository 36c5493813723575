//! The REST API in process: every endpoint and every error code, on a real NodeActor over a temporary
//! repository.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly on purpose")]

use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::HeaderValue;
use actix_web::test::{self, TestRequest};
use codex::metrics::Metrics;
use codex::rest::{AllowedHosts, ApiState, CorsOrigin, UploadLimits, app};
use codex::telemetry::LogControl;
use codex_actors::maintenance::MaintenanceConfig;
use codex_actors::node::{NodeActor, NodeConfig};
use codex_actors::store::StoreConfig;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const API: &str = "/api/codex/v1";
const VECTOR_CID: &str = "zDvZRwzmC3Q7e7NLkfsPmtgSCfectUc1ssn5xK2rzC9yRz1yeZuK";

fn node(dir: &Path, quota: u64) -> ApiState {
    let key = libp2p_identity::Keypair::generate_secp256k1();
    let config = NodeConfig {
        data_dir: dir.to_owned(),
        peer_id: key.public().to_peer_id(),
        store: StoreConfig {
            repo_dir: dir.join("repo"),
            quota_max: quota,
            block_ttl: Some(Duration::from_secs(86_400)),
            sweep_batch: 1000,
        },
        maintenance: MaintenanceConfig { interval: Duration::from_secs(600) },
        network: None,
        exchange: Default::default(),
        coding_threads: 2,
        prover: None,
    };
    let node = NodeActor::start(config).expect("node starts");
    ApiState::new(node, Metrics::new(), LogControl::detached())
}

/// Builds the API app over `state`, with CORS for `cors` when given.
macro_rules! service {
    ($state:expr, $cors:expr) => {
        test::init_service(app(
            $state,
            CorsOrigin(($cors as Option<&str>).map(|o| HeaderValue::from_str(o).expect("origin"))),
        ))
        .await
    };
}

async fn body_text(response: ServiceResponse<impl actix_web::body::MessageBody>) -> String {
    String::from_utf8(test::read_body(response).await.to_vec()).expect("utf-8")
}

/// A response header as text ("" when absent).
fn header<'a>(headers: &'a actix_web::http::header::HeaderMap, name: &str) -> &'a str {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

/// The body's announced size: what becomes Content-Length on the wire.
fn sized(response: &ServiceResponse<impl actix_web::body::MessageBody>) -> Option<u64> {
    match actix_web::body::MessageBody::size(response.response().body()) {
        actix_web::body::BodySize::Sized(n) => Some(n),
        _ => None,
    }
}

fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed) ^ (i >> 9) as u8).collect()
}

#[actix_web::test]
async fn upload_list_download_delete_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = service!(node(dir.path(), 1 << 30), None);

    let request = TestRequest::post().uri(&format!("{API}/data")).set_payload("some file contents").to_request();
    let response = test::call_service(&app, request).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_text(response).await, VECTOR_CID);

    let request = TestRequest::get().uri(&format!("{API}/space")).to_request();
    let space: Value = test::call_and_read_body_json(&app, request).await;
    assert_eq!(space["totalBlocks"], 2);
    assert_eq!(space["quotaUsedBytes"], 65592);
    assert_eq!(space["quotaMaxBytes"], 1u64 << 30);
    assert_eq!(space["quotaReservedBytes"], 0);

    let request = TestRequest::get().uri(&format!("{API}/data")).to_request();
    let list: Value = test::call_and_read_body_json(&app, request).await;
    let item = &list["content"][0];
    assert_eq!(item["cid"], VECTOR_CID);
    assert_eq!(item["manifest"]["treeCid"], "zDzSvJTezk7bJNQqFq8k1iHXY84psNuUfZVusA5bBQQUSuyzDSVL");
    assert_eq!(item["manifest"]["datasetSize"], 18);
    assert_eq!(item["manifest"]["blockSize"], 65536);
    assert_eq!(item["manifest"]["protected"], false);
    assert_eq!(item["manifest"]["filename"], Value::Null);

    let request = TestRequest::get().uri(&format!("{API}/data/{VECTOR_CID}")).to_request();
    let response = test::call_service(&app, request).await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(sized(&response), Some(18));
    assert_eq!(header(&headers, "content-type"), "application/octet-stream");
    assert_eq!(header(&headers, "content-disposition"), "attachment");
    assert_eq!(body_text(response).await, "some file contents");

    let request = TestRequest::delete().uri(&format!("{API}/data/{VECTOR_CID}")).to_request();
    assert_eq!(test::call_service(&app, request).await.status(), StatusCode::NO_CONTENT);
    let request = TestRequest::get().uri(&format!("{API}/data/{VECTOR_CID}")).to_request();
    let response = test::call_service(&app, request).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(body_text(response).await.contains("could not be retrieved"));
    let request = TestRequest::get().uri(&format!("{API}/space")).to_request();
    let space: Value = test::call_and_read_body_json(&app, request).await;
    assert_eq!((space["totalBlocks"].as_u64(), space["quotaUsedBytes"].as_u64()), (Some(0), Some(0)));
    // Deleting again is not an error.
    let request = TestRequest::delete().uri(&format!("{API}/data/{VECTOR_CID}")).to_request();
    assert_eq!(test::call_service(&app, request).await.status(), StatusCode::NO_CONTENT);
}

#[actix_web::test]
async fn boundary_sizes_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = service!(node(dir.path(), 1 << 30), None);
    for (i, len) in [1usize, 65535, 65536, 65537, 5 * 1024 * 1024 + 3].into_iter().enumerate() {
        let bytes = payload(len, i as u8);
        let request = TestRequest::post().uri(&format!("{API}/data")).set_payload(bytes.clone()).to_request();
        let response = test::call_service(&app, request).await;
        assert_eq!(response.status(), StatusCode::OK, "upload of {len}");
        let cid = body_text(response).await;
        let request = TestRequest::get().uri(&format!("{API}/data/{cid}")).to_request();
        let response = test::call_service(&app, request).await;
        assert_eq!(sized(&response), Some(len as u64), "Content-Length of {len}");
        assert_eq!(test::read_body(response).await.as_ref(), bytes.as_slice(), "download of {len}");
    }
}

#[actix_web::test]
async fn upload_metadata_and_validation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = service!(node(dir.path(), 1 << 30), None);
    let request = TestRequest::post()
        .uri(&format!("{API}/data"))
        .insert_header(("content-type", "image/png"))
        .insert_header(("content-disposition", "attachment; filename=\"codex.png\"; size=\"1000\""))
        .set_payload(vec![1u8; 1000])
        .to_request();
    let response = test::call_service(&app, request).await;
    assert_eq!(response.status(), StatusCode::OK);
    let cid = body_text(response).await;
    let request = TestRequest::get().uri(&format!("{API}/data/{cid}")).to_request();
    let response = test::call_service(&app, request).await;
    assert_eq!(header(response.headers(), "content-type"), "image/png");
    assert_eq!(header(response.headers(), "content-disposition"), "attachment; filename=\"codex.png\"");
    let request = TestRequest::get().uri(&format!("{API}/data")).to_request();
    let list: Value = test::call_and_read_body_json(&app, request).await;
    assert_eq!(list["content"][0]["manifest"]["filename"], "codex.png");
    assert_eq!(list["content"][0]["manifest"]["mimetype"], "image/png");

    let cases = [
        (("content-type", "not/a-type"), "The MIME type 'not/a-type' is not valid."),
        (("content-disposition", "attachment; filename=\"a/b\""), "The filename is not valid."),
        (("content-disposition", "attachment; filename=\"\""), "The filename is not valid."),
    ];
    for (header, message) in cases {
        let request =
            TestRequest::post().uri(&format!("{API}/data")).insert_header(header).set_payload("x").to_request();
        let response = test::call_service(&app, request).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{header:?}");
        assert_eq!(body_text(response).await, message);
    }
    // An empty upload is refused: a dataset needs at least one block.
    let request = TestRequest::post().uri(&format!("{API}/data")).to_request();
    let response = test::call_service(&app, request).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body_text(response).await.contains("empty"));
    // Nothing partial was stored by the refused uploads.
    let request = TestRequest::get().uri(&format!("{API}/data")).to_request();
    let list: Value = test::call_and_read_body_json(&app, request).await;
    assert_eq!(list["content"].as_array().map(Vec::len), Some(1));
}

#[actix_web::test]
async fn quota_full_is_a_clear_422_and_stores_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = service!(node(dir.path(), 3 * 65536), None);
    let request = TestRequest::post().uri(&format!("{API}/data")).set_payload(payload(5 * 65536, 1)).to_request();
    let response = test::call_service(&app, request).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body_text(response).await.contains("not enough storage quota"));
    let request = TestRequest::get().uri(&format!("{API}/space")).to_request();
    let space: Value = test::call_and_read_body_json(&app, request).await;
    assert_eq!(space["quotaUsedBytes"], 0);
}

#[actix_web::test]
async fn cid_errors_ranges_and_exists() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = service!(node(dir.path(), 1 << 30), None);
    let bytes = payload(200_000, 5);
    let request = TestRequest::post().uri(&format!("{API}/data")).set_payload(bytes.clone()).to_request();
    let cid = body_text(test::call_service(&app, request).await).await;

    for (method, path) in [("GET", "/data/notacid"), ("DELETE", "/data/notacid"), ("GET", "/data/notacid/exists")] {
        let request =
            TestRequest::default().method(method.parse().expect("method")).uri(&format!("{API}{path}")).to_request();
        let response = test::call_service(&app, request).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{method} {path}");
        assert!(body_text(response).await.starts_with("Invalid CID"));
    }
    // A valid CID the node does not have.
    let request = TestRequest::get().uri(&format!("{API}/data/{VECTOR_CID}")).to_request();
    assert_eq!(test::call_service(&app, request).await.status(), StatusCode::NOT_FOUND);

    let ranges: [(&str, StatusCode, Option<&str>, std::ops::Range<usize>); 5] = [
        ("bytes=0-9", StatusCode::PARTIAL_CONTENT, Some("bytes 0-9/200000"), 0..10),
        ("bytes=199990-", StatusCode::PARTIAL_CONTENT, Some("bytes 199990-199999/200000"), 199_990..200_000),
        ("bytes=-5", StatusCode::PARTIAL_CONTENT, Some("bytes 199995-199999/200000"), 199_995..200_000),
        ("bytes=65530-65545", StatusCode::PARTIAL_CONTENT, Some("bytes 65530-65545/200000"), 65_530..65_546),
        ("bytes=0-1,5-6", StatusCode::OK, None, 0..200_000),
    ];
    for (range, status, content_range, expected) in ranges {
        let request = TestRequest::get().uri(&format!("{API}/data/{cid}")).insert_header(("range", range)).to_request();
        let response = test::call_service(&app, request).await;
        assert_eq!(response.status(), status, "{range}");
        assert_eq!(response.headers().get("content-range").and_then(|v| v.to_str().ok()), content_range);
        assert_eq!(test::read_body(response).await.as_ref(), &bytes[expected], "{range}");
    }
    let request =
        TestRequest::get().uri(&format!("{API}/data/{cid}")).insert_header(("range", "bytes=300000-")).to_request();
    let response = test::call_service(&app, request).await;
    assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(response.headers(), "content-range"), "bytes */200000");

    let block = codex_protocol::cid::format_cid(&codex_protocol::cid::block_cid(&bytes[..65536]));
    let request = TestRequest::get().uri(&format!("{API}/data/{block}/exists")).to_request();
    let exists: Value = test::call_and_read_body_json(&app, request).await;
    assert_eq!((exists["has"].as_bool(), exists[&block].as_bool()), (Some(true), Some(true)));
    let request = TestRequest::get().uri(&format!("{API}/data/{VECTOR_CID}/exists")).to_request();
    let exists: Value = test::call_and_read_body_json(&app, request).await;
    assert_eq!(exists["has"], false);
    // A block inside a dataset cannot be deleted on its own.
    let request = TestRequest::delete().uri(&format!("{API}/data/{block}")).to_request();
    let response = test::call_service(&app, request).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(body_text(response).await.contains("part of a dataset"));
}

#[actix_web::test]
async fn node_and_debug_endpoints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = node(dir.path(), 1 << 30);
    let app = service!(state, None);
    let request = TestRequest::get().uri(&format!("{API}/peerid")).to_request();
    let json: Value = test::call_and_read_body_json(&app, request).await;
    let id = json["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("16Uiu2HA"), "secp256k1 peer id: {id}");
    let request = TestRequest::get().uri(&format!("{API}/peerid")).insert_header(("accept", "text/plain")).to_request();
    assert_eq!(body_text(test::call_service(&app, request).await).await, id);

    let request = TestRequest::get().uri(&format!("{API}/debug/info")).to_request();
    let info: Value = test::call_and_read_body_json(&app, request).await;
    assert_eq!(info["id"], id.as_str());
    assert_eq!(info["repo"], dir.path().display().to_string());
    assert_eq!(info["table"]["localNode"]["peerId"], id.as_str());
    assert_eq!(info["table"]["localNode"]["nodeId"].as_str().map(str::len), Some(64));
    for key in ["addrs", "announceAddresses"] {
        assert!(info[key].is_array(), "{key}");
    }
    assert!(info["codex"]["version"].as_str().is_some_and(|v| v.starts_with('v')));

    let level =
        |query: &'static str| TestRequest::post().uri(&format!("{API}/debug/chronicles/loglevel{query}")).to_request();
    assert_eq!(test::call_service(&app, level("?level=debug;trace:store,restapi")).await.status(), StatusCode::OK);
    assert_eq!(test::call_service(&app, level("")).await.status(), StatusCode::BAD_REQUEST);
    let response = test::call_service(&app, level("?level=loud")).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(body_text(response).await.contains("unknown log level"));

    // This node runs without networking: network endpoints answer with clear errors, never a panic.
    let cases = [
        ("/spr", StatusCode::SERVICE_UNAVAILABLE),
        ("/connect/16Uiu2HAm", StatusCode::BAD_REQUEST),
        ("/connect/16Uiu2HAmMBnpb2u5viTz1VfNTyaNDRG1wiP328MoP4b5ZWUJ6CAi", StatusCode::SERVICE_UNAVAILABLE),
        ("/data/x/network/manifest", StatusCode::BAD_REQUEST),
        ("/data/zDvZRwzmCWVrJHWDQZHe8gh4WxFoJUZAdmPXmdiT6MuZxetFA6a8/network/manifest", StatusCode::NOT_FOUND),
    ];
    for (path, status) in cases {
        let request = TestRequest::get().uri(&format!("{API}{path}")).to_request();
        assert_eq!(test::call_service(&app, request).await.status(), status, "{path}");
    }
}

#[actix_web::test]
async fn cors_only_when_configured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = node(dir.path(), 1 << 30);
    let plain = service!(state.clone(), None);
    let request = TestRequest::get().uri(&format!("{API}/space")).to_request();
    let response = test::call_service(&plain, request).await;
    assert!(response.headers().get("access-control-allow-origin").is_none());

    let cors = service!(state, Some("*"));
    let request = TestRequest::get().uri(&format!("{API}/space")).to_request();
    let response = test::call_service(&cors, request).await;
    assert_eq!(header(response.headers(), "access-control-allow-origin"), "*");
    assert_eq!(header(response.headers(), "access-control-allow-methods"), "GET, OPTIONS");
    assert_eq!(header(response.headers(), "access-control-max-age"), "86400");
    let request = TestRequest::default()
        .method(actix_web::http::Method::OPTIONS)
        .uri(&format!("{API}/data"))
        .insert_header(("access-control-request-method", "POST"))
        .to_request();
    let response = test::call_service(&cors, request).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(response.headers(), "access-control-allow-methods"), "POST, OPTIONS");
    assert_eq!(header(response.headers(), "access-control-allow-headers"), "content-type, content-disposition");
}

#[actix_web::test]
async fn foreign_hosts_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = node(dir.path(), 1 << 30);
    let app = service!(state.clone(), None);
    let space = |host: &str| TestRequest::get().uri(&format!("{API}/space")).insert_header(("host", host)).to_request();
    for host in ["localhost", "localhost:8080", "127.0.0.1:8080", "[::1]:8080", "LOCALHOST."] {
        assert_eq!(test::call_service(&app, space(host)).await.status(), StatusCode::OK, "{host}");
    }
    // A DNS-rebinding page reaches the API under its own name.
    for host in ["evil.example", "evil.example:8080", "localhost.evil.example", "127.0.0.1.nip.io", "[::2]:8080"] {
        let response = test::call_service(&app, space(host)).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{host}");
        assert!(body_text(response).await.contains("--api-allowed-hosts"), "{host}");
    }
    // Uploads under a foreign Host store nothing.
    let request = TestRequest::post()
        .uri(&format!("{API}/data"))
        .insert_header(("host", "evil.example:8080"))
        .set_payload("x")
        .to_request();
    assert_eq!(test::call_service(&app, request).await.status(), StatusCode::FORBIDDEN);

    // The bind address and --api-allowed-hosts entries (with or without a port) are allowed.
    let mut configured = state.clone();
    configured.hosts =
        AllowedHosts::new("192.168.7.2".parse().expect("ip"), &["codex.lan".into(), "node1:18080".into()]);
    let app = service!(configured, None);
    for (host, status) in [
        ("192.168.7.2:8080", StatusCode::OK),
        ("codex.lan:1234", StatusCode::OK),
        ("node1:18080", StatusCode::OK),
        ("node1:18081", StatusCode::FORBIDDEN),
        ("codex.lan.evil.example", StatusCode::FORBIDDEN),
        ("localhost:8080", StatusCode::OK),
    ] {
        assert_eq!(test::call_service(&app, space(host)).await.status(), status, "{host}");
    }
    let mut any = state;
    any.hosts = AllowedHosts::new("0.0.0.0".parse().expect("ip"), &["*".into()]);
    let app = service!(any, None);
    assert_eq!(test::call_service(&app, space("whatever.example")).await.status(), StatusCode::OK);
}

#[actix_web::test]
async fn web_pages_cannot_change_the_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = node(dir.path(), 1 << 30);
    let plain = service!(state.clone(), None);
    let evil = "https://evil.example";
    let post = |path: &str, origin: &str| {
        TestRequest::post()
            .uri(&format!("{API}{path}"))
            .insert_header(("host", "127.0.0.1:8080"))
            .insert_header(("origin", origin))
            .set_payload("some file contents")
            .to_request()
    };
    for path in ["/data", "/debug/chronicles/loglevel?level=trace", &format!("/data/{VECTOR_CID}/network")] {
        let response = test::call_service(&plain, post(path, evil)).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
        assert!(body_text(response).await.contains("--api-cors-origin"), "{path}");
    }
    let request =
        TestRequest::delete().uri(&format!("{API}/data/{VECTOR_CID}")).insert_header(("origin", "null")).to_request();
    assert_eq!(test::call_service(&plain, request).await.status(), StatusCode::FORBIDDEN);
    // Nothing was stored.
    let request = TestRequest::get().uri(&format!("{API}/data")).to_request();
    let list: Value = test::call_and_read_body_json(&plain, request).await;
    assert_eq!(list["content"].as_array().map(Vec::len), Some(0));
    // A page of the API's own origin, and clients without Origin, are served.
    assert_eq!(test::call_service(&plain, post("/data", "http://127.0.0.1:8080")).await.status(), StatusCode::OK);
    // A cross-site GET (an <img> or a no-cors fetch, no Origin) cannot make the node dial.
    let request = TestRequest::get()
        .uri(&format!("{API}/connect/16Uiu2HAmMBnpb2u5viTz1VfNTyaNDRG1wiP328MoP4b5ZWUJ6CAi?addrs=/ip4/10.0.0.1/tcp/1"))
        .insert_header(("sec-fetch-site", "cross-site"))
        .insert_header(("sec-fetch-mode", "no-cors"))
        .to_request();
    assert_eq!(test::call_service(&plain, request).await.status(), StatusCode::FORBIDDEN);
    // Reads from a foreign origin are not refused (the browser keeps the answer from the page anyway).
    let request = TestRequest::get().uri(&format!("{API}/space")).insert_header(("origin", evil)).to_request();
    assert_eq!(test::call_service(&plain, request).await.status(), StatusCode::OK);

    // With --api-cors-origin, that origin may change the node; others still may not.
    let app = "https://app.example";
    let cors = service!(state, Some(app));
    assert_eq!(test::call_service(&cors, post("/data", app)).await.status(), StatusCode::OK);
    assert_eq!(test::call_service(&cors, post("/data", evil)).await.status(), StatusCode::FORBIDDEN);
    let request = TestRequest::default()
        .method(actix_web::http::Method::OPTIONS)
        .uri(&format!("{API}/data"))
        .insert_header(("origin", app))
        .insert_header(("sec-fetch-site", "cross-site"))
        .insert_header(("access-control-request-method", "POST"))
        .to_request();
    let response = test::call_service(&cors, request).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(response.headers(), "access-control-allow-origin"), app);
    let request = TestRequest::get()
        .uri(&format!("{API}/space"))
        .insert_header(("origin", app))
        .insert_header(("sec-fetch-site", "cross-site"))
        .to_request();
    assert_eq!(test::call_service(&cors, request).await.status(), StatusCode::OK);
}

#[actix_web::test]
async fn curl_form_content_type_counts_as_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = service!(node(dir.path(), 1 << 30), None);
    // What `curl --data-binary @file` sends.
    let request = TestRequest::post()
        .uri(&format!("{API}/data"))
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .set_payload("some file contents")
        .to_request();
    let response = test::call_service(&app, request).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_text(response).await, VECTOR_CID, "the same manifest as an upload without a type");
    let request = TestRequest::get().uri(&format!("{API}/data")).to_request();
    let list: Value = test::call_and_read_body_json(&app, request).await;
    assert_eq!(list["content"][0]["manifest"]["mimetype"], Value::Null);
}

#[actix_web::test]
async fn metadata_that_cannot_be_served_back_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = service!(node(dir.path(), 1 << 30), None);
    let cases: [(&str, &[u8], &str); 4] = [
        ("content-type", b"image/png;\tname=x", "MIME type"),
        ("content-type", b"image/png; name=\xe9t\xe9", "MIME type"),
        ("content-disposition", b"attachment; filename=\"caf\xe9.txt\"", "filename"),
        ("content-disposition", b"attachment; filename=\"a\tb.txt\"", "filename"),
    ];
    for (name, value, message) in cases {
        let request = TestRequest::post()
            .uri(&format!("{API}/data"))
            .insert_header((name, HeaderValue::from_bytes(value).expect("a header value")))
            .set_payload("x")
            .to_request();
        let response = test::call_service(&app, request).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{}", value.escape_ascii());
        assert!(body_text(response).await.contains(message));
    }
    let request = TestRequest::get().uri(&format!("{API}/data")).to_request();
    let list: Value = test::call_and_read_body_json(&app, request).await;
    assert_eq!(list["content"].as_array().map(Vec::len), Some(0), "nothing stored");
    // Parameters and UTF-8 file names are fine, and come back as they were sent.
    let request = TestRequest::post()
        .uri(&format!("{API}/data"))
        .insert_header(("content-type", "text/plain; charset=utf-8"))
        .insert_header(("content-disposition", "attachment; filename=\"ünïcode.txt\""))
        .set_payload("x")
        .to_request();
    let response = test::call_service(&app, request).await;
    assert_eq!(response.status(), StatusCode::OK);
    let cid = body_text(response).await;
    let request = TestRequest::get().uri(&format!("{API}/data/{cid}")).to_request();
    let response = test::call_service(&app, request).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(response.headers(), "content-type"), "text/plain; charset=utf-8");
    assert_eq!(
        response.headers().get("content-disposition").map(HeaderValue::as_bytes),
        Some("attachment; filename=\"ünïcode.txt\"".as_bytes())
    );
}

/// A POST to `$path` whose body is fed by the test: (request, sender); chunks sent on the sender make up the
/// body, which ends when the sender is dropped. (A macro: the request type is actix-http's, not re-exported.)
macro_rules! fed_upload {
    ($path:expr) => {{
        let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(4);
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|chunk| (Ok::<_, actix_web::error::PayloadError>(chunk), rx))
        });
        let boxed: std::pin::Pin<
            Box<dyn futures_util::Stream<Item = Result<bytes::Bytes, actix_web::error::PayloadError>>>,
        > = Box::pin(stream);
        let request = TestRequest::post().uri(&format!("{API}{}", $path)).to_request();
        let (request, _) = request.replace_payload(actix_web::dev::Payload::from(boxed));
        (request, tx)
    }};
}

/// Segment files in the repository (uploads in progress or stored).
fn segment_files(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("repo/segments")).map_or(0, |entries| entries.flatten().count())
}

#[actix_web::test]
async fn concurrent_uploads_are_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut state = node(dir.path(), 1 << 30);
    state.uploads = UploadLimits::new(1, Duration::from_secs(30));
    let slots = state.uploads.slots.clone();
    let app = std::rc::Rc::new(service!(state, None));
    let (request, feed) = fed_upload!("/data");
    let first = {
        let app = app.clone();
        actix_web::rt::spawn(async move {
            let response = test::call_service(&*app, request).await;
            (response.status(), body_text(response).await)
        })
    };
    feed.send(bytes::Bytes::from_static(b"some file ")).await.expect("feed");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while slots.available_permits() > 0 {
        assert!(std::time::Instant::now() < deadline, "the first upload did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The one slot is taken: a second upload is refused at once and stores nothing.
    let request = TestRequest::post().uri(&format!("{API}/data")).set_payload(payload(100_000, 3)).to_request();
    let response = test::call_service(&*app, request).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(!header(response.headers(), "retry-after").is_empty(), "Retry-After is set");
    assert!(body_text(response).await.contains("Too many uploads"));
    // The first one completes; then the slot is free again.
    feed.send(bytes::Bytes::from_static(b"contents")).await.expect("feed");
    drop(feed);
    let (status, cid) = first.await.expect("first upload");
    assert_eq!((status, cid.as_str()), (StatusCode::OK, VECTOR_CID));
    assert_eq!(slots.available_permits(), 1);
    let request = TestRequest::post().uri(&format!("{API}/data")).set_payload(payload(100_000, 3)).to_request();
    assert_eq!(test::call_service(&*app, request).await.status(), StatusCode::OK);
    let request = TestRequest::get().uri(&format!("{API}/data")).to_request();
    let list: Value = test::call_and_read_body_json(&*app, request).await;
    assert_eq!(list["content"].as_array().map(Vec::len), Some(2), "the refused upload stored nothing");
}

#[actix_web::test]
async fn an_idle_upload_body_is_dropped_and_rolled_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut state = node(dir.path(), 4 * 65536 + 4096);
    state.uploads = UploadLimits::new(2, Duration::from_millis(300));
    let slots = state.uploads.slots.clone();
    let app = service!(state, None);
    let (request, feed) = fed_upload!("/data");
    // Three blocks arrive, then nothing: the client stalls but keeps the connection.
    feed.send(bytes::Bytes::from(payload(3 * 65536 + 10, 4))).await.expect("feed");
    let response = tokio::time::timeout(Duration::from_secs(10), test::call_service(&app, request))
        .await
        .expect("the idle upload is answered, not left waiting");
    assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    assert!(body_text(response).await.contains("No upload data arrived"));
    drop(feed);
    assert_eq!(slots.available_permits(), 2, "the upload's slot is free");
    let request = TestRequest::get().uri(&format!("{API}/space")).to_request();
    let space: Value = test::call_and_read_body_json(&app, request).await;
    assert_eq!((space["totalBlocks"].as_u64(), space["quotaUsedBytes"].as_u64()), (Some(0), Some(0)));
    assert_eq!(space["quotaReservedBytes"], 0);
    let request = TestRequest::get().uri(&format!("{API}/data")).to_request();
    let list: Value = test::call_and_read_body_json(&app, request).await;
    assert_eq!(list["content"].as_array().map(Vec::len), Some(0));
    // Its segment files are removed (on a background thread).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while segment_files(dir.path()) > 0 {
        assert!(std::time::Instant::now() < deadline, "the dropped upload's files are still there");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The quota it claimed is back: an upload of the whole quota's worth still fits.
    let request = TestRequest::post().uri(&format!("{API}/data")).set_payload(payload(4 * 65536, 5)).to_request();
    assert_eq!(test::call_service(&app, request).await.status(), StatusCode::OK);
}

/// `POST /data/{cid}/protect` with JSON `body` (a macro: the request type is actix-http's, not re-exported).
macro_rules! protect_request {
    ($cid:expr, $body:expr) => {
        TestRequest::post()
            .uri(&format!("{API}/data/{}/protect", $cid))
            .insert_header(("content-type", "application/json"))
            .set_payload(($body as &str).to_owned())
            .to_request()
    };
}

#[actix_web::test]
async fn protect_makes_a_verifiable_dataset_that_reads_back_the_original() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = service!(node(dir.path(), 1 << 30), None);
    // 11 blocks; K = 3, M = 2: rounded 12, steps 4, 20 encoded blocks in 5 slots of 4.
    let bytes = payload(10 * 65536 + 1234, 3);
    let request = TestRequest::post().uri(&format!("{API}/data")).set_payload(bytes.clone()).to_request();
    let cid = body_text(test::call_service(&app, request).await).await;

    let response = test::call_service(&app, protect_request!(&cid, r#"{"nodes": 5, "tolerance": 2}"#)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let item: Value = test::read_body_json(response).await;
    let protected = item["cid"].as_str().expect("cid").to_owned();
    assert_ne!(protected, cid);
    assert_eq!(item["manifest"]["protected"], true);
    assert_eq!(item["manifest"]["datasetSize"], 20 * 65536);

    // The original bytes read back from the protected dataset, without decoding.
    let request = TestRequest::get().uri(&format!("{API}/data/{protected}")).to_request();
    let response = test::call_service(&app, request).await;
    assert_eq!(sized(&response), Some(bytes.len() as u64));
    assert_eq!(test::read_body(response).await.as_ref(), bytes.as_slice());

    // Protecting is deterministic: again gives the same dataset; a protected dataset cannot be protected.
    let response = test::call_service(&app, protect_request!(&cid, r#"{"nodes": 5, "tolerance": 2}"#)).await;
    let again: Value = test::read_body_json(response).await;
    assert_eq!(again["cid"], item["cid"]);
    let response = test::call_service(&app, protect_request!(&protected, r#"{"nodes": 5, "tolerance": 2}"#)).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body_text(response).await.contains("already protected"));

    // The protected dataset outlives the original (they share the data file until one is deleted).
    let request = TestRequest::delete().uri(&format!("{API}/data/{cid}")).to_request();
    assert_eq!(test::call_service(&app, request).await.status(), StatusCode::NO_CONTENT);
    let request = TestRequest::get().uri(&format!("{API}/data/{protected}")).to_request();
    let response = test::call_service(&app, request).await;
    assert_eq!(test::read_body(response).await.as_ref(), bytes.as_slice());
    let request = TestRequest::delete().uri(&format!("{API}/data/{protected}")).to_request();
    assert_eq!(test::call_service(&app, request).await.status(), StatusCode::NO_CONTENT);
    let request = TestRequest::get().uri(&format!("{API}/space")).to_request();
    let space: Value = test::call_and_read_body_json(&app, request).await;
    assert_eq!((space["totalBlocks"].as_u64(), space["quotaUsedBytes"].as_u64()), (Some(0), Some(0)));
}

#[actix_web::test]
async fn protect_refuses_bad_parameters_clearly_and_stores_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = service!(node(dir.path(), 1 << 30), None);
    let request = TestRequest::post().uri(&format!("{API}/data")).set_payload(payload(65536 * 2, 1)).to_request();
    let cid = body_text(test::call_service(&app, request).await).await;
    let cases = [
        (r#"{"nodes": 2, "tolerance": 2}"#, StatusCode::BAD_REQUEST, "greater than tolerance"),
        (r#"{"nodes": 3, "tolerance": 2}"#, StatusCode::BAD_REQUEST, "K ≥ M"),
        (r#"{"nodes": 300, "tolerance": 2}"#, StatusCode::BAD_REQUEST, "256"),
        (r#"{"nodes": 5}"#, StatusCode::BAD_REQUEST, "tolerance"),
        ("not json", StatusCode::BAD_REQUEST, "invalid JSON"),
        // Two blocks cannot be split into K = 3 data blocks.
        (r#"{"nodes": 5, "tolerance": 2}"#, StatusCode::UNPROCESSABLE_ENTITY, "196608"),
    ];
    for (body, status, message) in cases {
        let response = test::call_service(&app, protect_request!(&cid, body)).await;
        assert_eq!(response.status(), status, "{body}");
        let text = body_text(response).await;
        assert!(text.contains(message), "{body}: {text}");
    }
    let missing = "zDvZRwzmC3Q7e7NLkfsPmtgSCfectUc1ssn5xK2rzC9yRz1yeZuK";
    let response = test::call_service(&app, protect_request!(missing, r#"{"nodes": 3, "tolerance": 1}"#)).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let request = TestRequest::get().uri(&format!("{API}/data")).to_request();
    let list: Value = test::call_and_read_body_json(&app, request).await;
    assert_eq!(list["content"].as_array().map(Vec::len), Some(1), "nothing but the upload is stored");
    assert_eq!(segment_files(dir.path()), 2, "only the upload's data and tree files remain");
}
