//! The Codex REST API under `/api/codex/v1` (reference codex-openapi.yaml), one file per API category:
//! [`data`] (upload, list, download, delete, exists), [`node`] (space, peer id), [`debug`] (info, log level).
//!
//! Handlers translate HTTP to NodeActor messages and back; errors are mapped to status codes in one place
//! ([`ApiError`]) and answered as plain text. Networking endpoints: `/connect/{peerId}`, `/spr` ([`node`]) and
//! `/data/{cid}/network…` ([`data`]). The marketplace (with persistence): buying storage ([`market`],
//! `/storage/…`) and selling it ([`sales`], `/sales/…`).
//!
//! The API has no authentication, so [`access_guard`] keeps web pages out: a `Host` that is not a loopback name,
//! the bind address or an `--api-allowed-hosts` entry is refused (DNS rebinding), and so are state-changing
//! requests from a web origin other than `--api-cors-origin` and cross-site requests (`Sec-Fetch-Site`) from such
//! an origin. Clients that are not browsers send no `Origin` and are not affected.

mod body;
pub mod data;
pub mod debug;
pub mod durability;
pub mod market;
pub mod node;
pub mod sales;

use crate::metrics::Metrics;
use crate::telemetry::LogControl;
use actix::Addr;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpResponse, ResponseError, web};
use codex_actors::error::ErrorKind;
use codex_actors::node::{NodeActor, NodeError};
use codex_actors::store::StoreError;
use codex_protocol::CidError;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::Semaphore;

/// Shared state of every handler.
#[derive(Clone)]
pub struct ApiState {
    pub node: Addr<NodeActor>,
    pub metrics: Metrics,
    pub log: LogControl,
    /// The `Host` names the API answers to.
    pub hosts: AllowedHosts,
    /// Bounds on concurrent uploads and on idle upload bodies.
    pub uploads: UploadLimits,
    /// How long a network stream waits for the next block before it gives up and cuts the connection.
    pub stream_stall_timeout: Duration,
}

impl ApiState {
    /// State with the defaults: loopback hosts only, [`UploadLimits::default`], a 10-minute stream stall limit.
    pub fn new(node: Addr<NodeActor>, metrics: Metrics, log: LogControl) -> Self {
        Self {
            node,
            metrics,
            log,
            hosts: AllowedHosts::default(),
            uploads: UploadLimits::default(),
            stream_stall_timeout: Duration::from_secs(600),
        }
    }
}

/// Concurrent uploads allowed by default: each one holds a hasher and a writer thread.
pub const DEFAULT_MAX_UPLOADS: usize = 8;
/// An upload body that sends nothing for this long is dropped (and rolled back).
pub const DEFAULT_UPLOAD_IDLE: Duration = Duration::from_secs(60);

/// How many uploads may run at once and how long an upload body may stay silent.
#[derive(Debug, Clone)]
pub struct UploadLimits {
    /// One permit per running upload; an upload that finds none is answered 503.
    pub slots: Arc<Semaphore>,
    /// No body bytes for this long: the upload is dropped and answered 408.
    pub idle_timeout: Duration,
}

impl UploadLimits {
    pub fn new(max_uploads: usize, idle_timeout: Duration) -> Self {
        Self { slots: Arc::new(Semaphore::new(max_uploads)), idle_timeout }
    }
}

impl Default for UploadLimits {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_UPLOADS, DEFAULT_UPLOAD_IDLE)
    }
}

/// One allowed host: a lower-case name (IPv6 in brackets) and, optionally, the only port it is allowed with.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostEntry {
    name: String,
    port: Option<u16>,
}

/// The `Host` header values the API accepts: loopback names (`localhost`, `127.0.0.1`, `[::1]`), the bind
/// address, and the `--api-allowed-hosts` entries (`*` allows any host). Ports are ignored unless an entry names
/// one.
#[derive(Debug, Clone)]
pub struct AllowedHosts {
    any: bool,
    entries: Vec<HostEntry>,
}

impl Default for AllowedHosts {
    fn default() -> Self {
        let entries = ["localhost", "127.0.0.1", "[::1]"]
            .into_iter()
            .map(|name| HostEntry { name: name.to_owned(), port: None })
            .collect();
        Self { any: false, entries }
    }
}

/// Splits `host[:port]` (IPv6 in brackets, or a bare IPv6 address) into a normalised name and the port.
/// `None` when it is not a host name.
fn split_host(text: &str) -> Option<(String, Option<u16>)> {
    let text = text.trim();
    if let Ok(ip) = text.parse::<std::net::Ipv6Addr>() {
        return Some((format!("[{ip}]"), None));
    }
    let (name, port) = if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let ip: std::net::Ipv6Addr = inside.parse().ok()?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?.parse().ok()?),
        };
        (format!("[{ip}]"), port)
    } else {
        match text.rsplit_once(':') {
            Some((name, port)) => (name.to_owned(), Some(port.parse().ok()?)),
            None => (text.to_owned(), None),
        }
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let valid = !name.is_empty()
        && (name.starts_with('[') || name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')));
    valid.then_some((name, port))
}

/// Checks one `--api-allowed-hosts` entry: `*`, `name`, `name:port`, an IP address or `[IPv6]:port`.
pub fn check_allowed_host(entry: &str) -> Result<(), String> {
    if entry.trim() == "*" || split_host(entry).is_some() {
        return Ok(());
    }
    Err(format!("'{entry}' is not a host name, host:port, IP address or *"))
}

impl AllowedHosts {
    /// Loopback names, `bind` (unless it is the unspecified address, which no client uses as a name), and
    /// `extra` (`--api-allowed-hosts`; `*` = any host). Entries that are not host names are skipped (the
    /// configuration refuses them at load).
    pub fn new(bind: IpAddr, extra: &[String]) -> Self {
        let mut hosts = Self::default();
        if !bind.is_unspecified() {
            let name = match bind {
                IpAddr::V4(ip) => ip.to_string(),
                IpAddr::V6(ip) => format!("[{ip}]"),
            };
            hosts.entries.push(HostEntry { name, port: None });
        }
        for entry in extra {
            if entry.trim() == "*" {
                hosts.any = true;
            } else if let Some((name, port)) = split_host(entry) {
                hosts.entries.push(HostEntry { name, port });
            }
        }
        hosts
    }

    /// True when a request with this `Host` header value may be served.
    pub fn allows(&self, host: &str) -> bool {
        if self.any {
            return true;
        }
        let Some((name, port)) = split_host(host) else { return false };
        self.entries.iter().any(|entry| entry.name == name && (entry.port.is_none() || entry.port == port))
    }
}

/// Everything a handler can fail with; [`ResponseError`] maps each to its status code.
#[derive(Debug, Error)]
pub enum ApiError {
    #[error("Invalid CID: {0}")]
    BadCid(#[from] CidError),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    RangeNotSatisfiable(String, u64),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Busy(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    Node(#[from] NodeError),
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        ApiError::Node(NodeError::Store(err))
    }
}

impl From<actix::MailboxError> for ApiError {
    fn from(err: actix::MailboxError) -> Self {
        ApiError::Node(NodeError::from(err))
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadCid(_) | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::RangeNotSatisfiable(..) => StatusCode::RANGE_NOT_SATISFIABLE,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Node(err) => match err.kind() {
                ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
                ErrorKind::NotFound => StatusCode::NOT_FOUND,
                ErrorKind::Refused => StatusCode::UNPROCESSABLE_ENTITY,
                ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    fn error_response(&self) -> HttpResponse<BoxBody> {
        let status = self.status_code();
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "request failed");
            "Internal error; see the node's log".to_owned()
        } else {
            tracing::debug!(error = %self, %status, "request refused");
            self.to_string()
        };
        let mut response = HttpResponse::build(status);
        if let ApiError::RangeNotSatisfiable(_, len) = self {
            response.insert_header((header::CONTENT_RANGE, format!("bytes */{len}")));
        }
        if let ApiError::Busy(_) = self {
            response.insert_header((header::RETRY_AFTER, "5"));
        }
        response.content_type("text/plain; charset=utf-8").body(message)
    }
}

/// Mounts the API routes under `/api/codex/v1`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/codex/v1")
            .configure(data::routes)
            .configure(durability::routes)
            .configure(market::routes)
            .configure(node::routes)
            .configure(debug::routes)
            .default_service(web::to(not_found)),
    );
}

async fn not_found() -> HttpResponse {
    HttpResponse::NotFound().content_type("text/plain; charset=utf-8").body("No such endpoint")
}

/// The allowed CORS origin (`--api-cors-origin`); CORS is off when `None`.
#[derive(Debug, Clone)]
pub struct CorsOrigin(pub Option<HeaderValue>);

/// CORS as the original does it (only when `--api-cors-origin` is set): every response gets
/// `Access-Control-Allow-Origin`, `Access-Control-Allow-Methods: <METHOD>, OPTIONS` and a one-day max age;
/// preflight `OPTIONS` requests on the data routes answer 204 (see [`data`]).
pub async fn cors(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let origin = request.app_data::<web::Data<CorsOrigin>>().and_then(|cors| cors.0.clone());
    let requested = request.headers().get(header::ACCESS_CONTROL_REQUEST_METHOD).cloned();
    let method = request.method().clone();
    let mut response = next.call(request).await?;
    if let Some(origin) = origin {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        let allowed = requested.as_ref().and_then(|v| v.to_str().ok()).unwrap_or(method.as_str()).to_owned();
        if let Ok(value) = HeaderValue::from_str(&format!("{allowed}, OPTIONS")) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, value);
        }
        headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    }
    Ok(response)
}

/// True for methods that change the node's state.
fn changes_state(method: &actix_web::http::Method) -> bool {
    use actix_web::http::Method;
    [Method::POST, Method::PUT, Method::DELETE, Method::PATCH].contains(method)
}

/// Why a request is refused by [`access_guard`], if it is.
fn refusal(request: &ServiceRequest, hosts: &AllowedHosts, cors: &CorsOrigin) -> Option<String> {
    let headers = request.headers();
    // HTTP/1.0 clients may send no Host; they are not browsers.
    let host = match headers.get(header::HOST) {
        Some(value) => Some(value.to_str().unwrap_or_default()),
        None => request.uri().authority().map(|a| a.as_str()),
    };
    if let Some(host) = host
        && !hosts.allows(host)
    {
        return Some(format!(
            "Host '{host}' is not allowed: this API answers to localhost, 127.0.0.1, [::1], its bind address and \
             the names given with --api-allowed-hosts (CODEX_API_ALLOWED_HOSTS, api-allowed-hosts)"
        ));
    }
    let origin = headers.get(header::ORIGIN);
    let cors_allows = |origin: Option<&HeaderValue>| match (&cors.0, origin) {
        (Some(allowed), _) if allowed.as_bytes() == b"*" => true,
        (Some(allowed), Some(origin)) => allowed == origin,
        _ => false,
    };
    // A page served by this API's own origin (Origin = http://<Host>) is not cross-site.
    let same_origin = |origin: &HeaderValue| {
        let authority = origin.to_str().ok().and_then(|o| o.split_once("://")).map(|(_, a)| a);
        matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
    };
    if let Some(origin) = origin
        && changes_state(request.method())
        && !cors_allows(Some(origin))
        && !same_origin(origin)
    {
        return Some(format!(
            "Origin '{}' may not change this node: only the origin set with --api-cors-origin may",
            String::from_utf8_lossy(origin.as_bytes())
        ));
    }
    // Browsers mark requests a page makes to another site; such requests (even plain GETs, which can dial
    // peers through /connect) are served only to the configured CORS origin.
    let fetch_site = headers.get("sec-fetch-site").map(HeaderValue::as_bytes);
    if matches!(fetch_site, Some(b"cross-site" | b"same-site")) && !cors_allows(origin) {
        return Some(
            "Cross-site request refused: a web page may use this API only from the origin set with \
             --api-cors-origin"
                .to_owned(),
        );
    }
    None
}

/// Refuses requests that come from web pages the operator did not allow (403, plain text): see the module
/// documentation.
pub async fn access_guard(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let refused = match (request.app_data::<web::Data<ApiState>>(), request.app_data::<web::Data<CorsOrigin>>()) {
        (Some(state), Some(cors)) => refusal(&request, &state.hosts, cors),
        _ => Some("The API is not configured".to_owned()),
    };
    match refused {
        Some(reason) => {
            // Debug, not warn: a hostile page could otherwise fill the log; the client gets the reason.
            tracing::debug!(method = %request.method(), path = request.path(), "request refused by the access guard");
            let response = ApiError::Forbidden(reason).error_response();
            Ok(request.into_response(response))
        }
        None => Ok(next.call(request).await?.map_into_boxed_body()),
    }
}

/// The whole API application: routes, shared state and CORS. Used by `main` and by the REST tests.
pub fn app(
    state: ApiState,
    cors_origin: CorsOrigin,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(web::Data::new(state))
        .app_data(web::Data::new(cors_origin))
        .wrap(from_fn(cors))
        .wrap(from_fn(access_guard))
        .configure(configure)
}
