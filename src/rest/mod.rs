//! The Codex REST API under `/api/codex/v1` (reference codex-openapi.yaml), one file per API category:
//! [`data`] (upload, list, download, delete, exists), [`node`] (space, peer id), [`debug`] (info, log level).
//!
//! Handlers translate HTTP to NodeActor messages and back; errors are mapped to status codes in one place
//! ([`ApiError`]) and answered as plain text. Networking endpoints: `/connect/{peerId}`, `/spr` ([`node`]) and
//! `/data/{cid}/network…` ([`data`]). The marketplace arrives with its subsystem; until then it is absent (404).

pub mod data;
pub mod debug;
pub mod node;

use crate::metrics::Metrics;
use crate::telemetry::LogControl;
use actix::Addr;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpResponse, ResponseError, web};
use codex_actors::network::NetworkError;
use codex_actors::node::{NodeActor, NodeError};
use codex_actors::store::StoreError;
use codex_protocol::CidError;
use thiserror::Error;

/// Shared state of every handler.
#[derive(Clone)]
pub struct ApiState {
    pub node: Addr<NodeActor>,
    pub metrics: Metrics,
    pub log: LogControl,
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
            ApiError::NotFound(_) | ApiError::Node(NodeError::NotFound { .. }) => StatusCode::NOT_FOUND,
            ApiError::RangeNotSatisfiable(..) => StatusCode::RANGE_NOT_SATISFIABLE,
            ApiError::Node(NodeError::Store(
                StoreError::QuotaExceeded { .. } | StoreError::EmptyDataset | StoreError::CidMismatch { .. },
            )) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Node(NodeError::Store(StoreError::PartOfDataset { .. })) => StatusCode::BAD_REQUEST,
            ApiError::Node(NodeError::Store(StoreError::Unavailable)) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Node(NodeError::Store(_)) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Node(NodeError::NotAManifest { .. }) => StatusCode::BAD_REQUEST,
            ApiError::Node(NodeError::ManifestUnavailable { .. }) => StatusCode::NOT_FOUND,
            ApiError::Node(NodeError::Network(NetworkError::Dial { .. } | NetworkError::PeerNotFound(_))) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::Node(NodeError::Network(NetworkError::Stopped) | NodeError::NoNetwork) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Node(NodeError::Network(_)) => StatusCode::INTERNAL_SERVER_ERROR,
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
        response.content_type("text/plain; charset=utf-8").body(message)
    }
}

/// Mounts the API routes under `/api/codex/v1`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/codex/v1")
            .configure(data::routes)
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
        .configure(configure)
}
