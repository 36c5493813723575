//! Data endpoints: `POST /data` (streaming upload), `GET /data` (list), `GET /data/{cid}` (download, with
//! HTTP ranges), `DELETE /data/{cid}`, `GET /data/{cid}/exists`, the CORS preflights of `/data` and
//! `/data/{cid}`, and the network ones: `POST /data/{cid}/network` (background fetch),
//! `GET /data/{cid}/network/stream` (streams in order while the fetch runs, with ranges) and
//! `GET /data/{cid}/network/manifest`.

use super::{ApiError, ApiState};
use actix_web::body::SizedStream;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use codex_actors::node::{
    BeginStore, DatasetStored, Delete, FetchDataset, FetchNetworkManifest, FetchState, HasLocalBlock, IterateManifests,
    Retrieve, StreamDownload,
};
use codex_actors::store::{DownloadStatus, Progress};
use codex_protocol::Manifest;
use codex_protocol::cid::{format_cid, parse_cid};
use codex_protocol::http::{RangeError, disposition_filename, parse_range};
use futures_util::StreamExt;
use serde::Serialize;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Duration;

/// Bytes read from disk per chunk of a download.
const READ_CHUNK: u64 = 256 * 1024;
/// Chunks buffered between the reading thread and the socket.
const READ_AHEAD: usize = 8;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/data")
            .route(web::post().to(upload))
            .route(web::get().to(list))
            .route(web::method(actix_web::http::Method::OPTIONS).to(preflight_data)),
    )
    .service(
        web::resource("/data/{cid}")
            .route(web::get().to(download))
            .route(web::delete().to(delete))
            .route(web::method(actix_web::http::Method::OPTIONS).to(preflight_cid)),
    )
    .service(web::resource("/data/{cid}/exists").route(web::get().to(exists)))
    .service(web::resource("/data/{cid}/network").route(web::post().to(network_fetch)))
    .service(web::resource("/data/{cid}/network/stream").route(web::get().to(network_stream)))
    .service(web::resource("/data/{cid}/network/manifest").route(web::get().to(network_manifest)));
}

/// `ManifestItem` of the OpenAPI.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestItem {
    pub tree_cid: String,
    pub dataset_size: u64,
    pub block_size: u64,
    pub protected: bool,
    pub filename: Option<String>,
    pub mimetype: Option<String>,
}

/// `DataItem` of the OpenAPI.
#[derive(Debug, Serialize)]
pub struct DataItem {
    pub cid: String,
    pub manifest: ManifestItem,
}

/// `DataList` of the OpenAPI.
#[derive(Debug, Serialize)]
pub struct DataList {
    pub content: Vec<DataItem>,
}

impl DataItem {
    pub fn new(cid: &codex_protocol::Cid, manifest: &Manifest) -> Self {
        Self {
            cid: format_cid(cid),
            manifest: ManifestItem {
                tree_cid: format_cid(&manifest.tree_cid),
                dataset_size: manifest.dataset_size,
                block_size: manifest.block_size,
                protected: manifest.is_protected(),
                filename: manifest.filename.clone(),
                mimetype: manifest.mimetype.clone(),
            },
        }
    }
}

/// Validates `Content-Type`: it must be a MIME type with a known file extension (as the original checks), and
/// it must be a header value that can be sent back as is when the dataset is downloaded. curl's
/// `--data-binary` sends `application/x-www-form-urlencoded` by default: that counts as no type, so the manifest
/// is the same as without the header.
fn upload_mimetype(request: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = request.headers().get(header::CONTENT_TYPE) else { return Ok(None) };
    let invalid =
        || ApiError::Unprocessable(format!("The MIME type '{}' is not valid.", value.as_bytes().escape_ascii()));
    // Only visible ASCII and spaces: no control characters (not even tabs), no bytes that are not ASCII.
    if value.as_bytes().iter().any(|b| !(b' '..=b'~').contains(b)) {
        return Err(invalid());
    }
    let text = value.to_str().map_err(|_| invalid())?.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let essence = text.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if essence == "application/x-www-form-urlencoded" {
        return Ok(None);
    }
    if mime_guess::get_mime_extensions_str(&essence).is_none() || HeaderValue::from_str(text).is_err() {
        return Err(ApiError::Unprocessable(format!("The MIME type '{text}' is not valid.")));
    }
    Ok(Some(text.to_owned()))
}

/// The `Content-Disposition` a download of `filename` is served with.
fn disposition_for(filename: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")).ok()
}

/// Extracts and validates the filename of `Content-Disposition` (`attachment; filename="name"`). The name must
/// be UTF-8, pass the original's rules and fit back into the header downloads are served with.
fn upload_filename(request: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = request.headers().get(header::CONTENT_DISPOSITION) else { return Ok(None) };
    let invalid = || ApiError::Unprocessable("The filename is not valid.".into());
    let name = disposition_filename(value.as_bytes()).map_err(|_| invalid())?;
    if name.as_deref().is_some_and(|name| disposition_for(name).is_none()) {
        return Err(invalid());
    }
    Ok(name)
}

async fn upload(
    state: web::Data<ApiState>,
    request: HttpRequest,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let mimetype = upload_mimetype(&request)?;
    let filename = upload_filename(&request)?;
    // Held until the upload ends, whatever the outcome: each upload runs two threads of its own.
    let _slot = state
        .uploads
        .slots
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::Busy("Too many uploads are running; try again shortly.".into()))?;
    let idle = state.uploads.idle_timeout;
    let mut session = state.node.send(BeginStore { filename, mimetype }).await??;
    loop {
        // Dropping the session on any error below (or when the client goes away) rolls the upload back.
        let next = tokio::time::timeout(idle, payload.next()).await.map_err(|_| {
            tracing::info!(received = session.received(), ?idle, "upload body idle: upload dropped");
            ApiError::Timeout(format!("No upload data arrived for {} s; the upload was dropped.", idle.as_secs_f64()))
        })?;
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|err| ApiError::BadRequest(format!("upload interrupted: {err}")))?;
        session.push(chunk).await?;
    }
    let stored = session.finish().await?;
    state.metrics.uploads.inc();
    state.node.do_send(DatasetStored { cid: stored.cid, tree: stored.manifest.tree_cid });
    Ok(HttpResponse::Ok().content_type("text/plain").body(format_cid(&stored.cid)))
}

async fn list(state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    let datasets = state.node.send(IterateManifests).await??;
    let content = datasets.iter().map(|d| DataItem::new(&d.cid, &d.manifest)).collect();
    Ok(HttpResponse::Ok().json(DataList { content }))
}

/// A single byte range `[start, end)` from a `Range` header; `None` serves the whole body (no header, a
/// malformed one, or several ranges, which RFC 9110 lets a server ignore).
fn requested_range(request: &HttpRequest, len: u64) -> Result<Option<(u64, u64)>, ApiError> {
    let Some(value) = request.headers().get(header::RANGE).and_then(|v| v.to_str().ok()) else { return Ok(None) };
    parse_range(value, len).map_err(|RangeError::Unsatisfiable { len }| {
        ApiError::RangeNotSatisfiable(format!("Range '{value}' is outside the {len} bytes"), len)
    })
}

/// Streams bytes `[start, end)` of `file`, read on a blocking thread.
fn file_stream(
    file: File,
    start: u64,
    end: u64,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(READ_AHEAD);
    tokio::task::spawn_blocking(move || {
        let mut offset = start;
        while offset < end {
            let len = READ_CHUNK.min(end - offset) as usize;
            let mut buf = vec![0u8; len];
            let result = file.read_exact_at(&mut buf, offset).map(|_| Bytes::from(buf)).inspect_err(|err| {
                tracing::error!(%err, offset, "reading a dataset failed");
            });
            let failed = result.is_err();
            if tx.blocking_send(result).is_err() || failed {
                return;
            }
            offset += len as u64;
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
}

fn content_disposition(manifest: &Manifest) -> HeaderValue {
    manifest
        .filename
        .as_deref()
        .filter(|name| !name.contains(['"', '\\']))
        .and_then(disposition_for)
        .unwrap_or_else(|| HeaderValue::from_static("attachment"))
}

async fn download(
    state: web::Data<ApiState>,
    request: HttpRequest,
    cid: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let cid = parse_cid(&cid)?;
    serve_local(&state, &request, cid).await
}

/// The response head of a dataset download: 200 or 206 with its range, type and disposition headers.
fn download_head(
    request: &HttpRequest,
    manifest: &Manifest,
) -> Result<(actix_web::HttpResponseBuilder, u64, u64), ApiError> {
    let len = manifest.content_size();
    let range = requested_range(request, len)?;
    let (start, end) = range.unwrap_or((0, len));
    let mut response = match range {
        Some(_) => {
            let mut partial = HttpResponse::PartialContent();
            partial.insert_header((header::CONTENT_RANGE, format!("bytes {start}-{}/{len}", end - 1)));
            partial
        }
        None => HttpResponse::Ok(),
    };
    // Uploads are checked, but a manifest fetched from a peer may carry anything: never fail the download on it.
    let mimetype = manifest
        .mimetype
        .as_deref()
        .and_then(|m| HeaderValue::from_str(m).ok())
        .unwrap_or_else(|| HeaderValue::from_static("application/octet-stream"));
    response
        .insert_header((header::CONTENT_TYPE, mimetype))
        .insert_header((header::CONTENT_DISPOSITION, content_disposition(manifest)))
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header(("Access-Control-Headers", "X-Requested-With"));
    Ok((response, start, end))
}

/// Streams a locally stored dataset.
async fn serve_local(
    state: &ApiState,
    request: &HttpRequest,
    cid: codex_protocol::Cid,
) -> Result<HttpResponse, ApiError> {
    let opened = state.node.send(Retrieve { cid }).await??;
    let (mut response, start, end) = download_head(request, &opened.manifest)?;
    state.metrics.downloads.inc();
    tracing::debug!(cid = %format_cid(&cid), start, end, "download started");
    Ok(response.body(SizedStream::new(end - start, file_stream(opened.file, start, end))))
}

/// What a stream of a dataset that is still arriving needs to know about its download ([`Progress`]; tests
/// use a stand-in).
pub trait Arrivals: Send + Sync + 'static {
    /// True when block `index` is stored and readable.
    fn has(&self, index: u64) -> bool;
    /// The download's status.
    fn status(&self) -> DownloadStatus;
    /// Changes whenever blocks arrive.
    fn watch_arrivals(&self) -> tokio::sync::watch::Receiver<u64>;
    /// The stream waits for block `index` (so the download can fetch it first).
    fn waiting_for(&self, index: u64);
}

impl Arrivals for Progress {
    fn has(&self, index: u64) -> bool {
        Progress::has(self, index)
    }
    fn status(&self) -> DownloadStatus {
        Progress::status(self)
    }
    fn watch_arrivals(&self) -> tokio::sync::watch::Receiver<u64> {
        Progress::watch_arrivals(self)
    }
    fn waiting_for(&self, index: u64) {
        Progress::reader_waits_for(self, index)
    }
}

/// Streams bytes `[start, end)` of a dataset that is still arriving: each block is sent once it is stored.
///
/// While it waits for a block, the task watches the response body too: when the body is dropped (the client went
/// away) it ends at once and releases the file and the download's progress. If no block arrives for `stall`,
/// the stream ends with an error (the client sees a body shorter than its `Content-Length`), so no reader waits
/// forever on a download that is stuck.
pub fn arriving_stream(
    file: File,
    progress: Arc<dyn Arrivals>,
    block_size: u64,
    start: u64,
    end: u64,
    stall: Duration,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(READ_AHEAD);
    let file = Arc::new(file);
    actix_web::rt::spawn(async move {
        let mut arrivals = progress.watch_arrivals();
        let mut offset = start;
        let mut waiting_since = tokio::time::Instant::now();
        while offset < end {
            let index = offset / block_size;
            if !progress.has(index) {
                if let DownloadStatus::Failed(reason) = progress.status() {
                    let _ = tx.send(Err(std::io::Error::other(format!("the download failed: {reason}")))).await;
                    return;
                }
                progress.waiting_for(index);
                if waiting_since.elapsed() >= stall {
                    tracing::info!(index, ?stall, "network stream: no block arrived in time, stream ended");
                    let message = format!("no block arrived for {} s", stall.as_secs());
                    let _ = tx.send(Err(std::io::Error::new(std::io::ErrorKind::TimedOut, message))).await;
                    return;
                }
                // Re-checks at least every second, even if no arrival is announced.
                tokio::select! {
                    () = tx.closed() => {
                        tracing::info!(index, "network stream: the client went away");
                        return;
                    }
                    _ = tokio::time::timeout(Duration::from_secs(1), arrivals.changed()) => continue,
                }
            }
            let mut last = index;
            while (last + 1) * block_size < end
                && (last + 1 - index) * block_size < 4 * READ_CHUNK
                && progress.has(last + 1)
            {
                last += 1;
            }
            let chunk_end = end.min((last + 1) * block_size);
            let (reader, from, len) = (file.clone(), offset, (chunk_end - offset) as usize);
            let read = tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; len];
                reader.read_exact_at(&mut buf, from).map(|_| Bytes::from(buf))
            })
            .await
            .unwrap_or_else(|err| Err(std::io::Error::other(err)));
            let failed = read.is_err();
            if tx.send(read).await.is_err() || failed {
                return;
            }
            offset = chunk_end;
            waiting_since = tokio::time::Instant::now();
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
}

async fn network_fetch(state: web::Data<ApiState>, cid: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let cid = parse_cid(&cid)?;
    let fetched = state.node.send(FetchDataset { cid, in_order: false }).await??;
    Ok(HttpResponse::Ok().json(DataItem::new(&cid, &fetched.manifest)))
}

async fn network_manifest(state: web::Data<ApiState>, cid: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let cid = parse_cid(&cid)?;
    let manifest = state.node.send(FetchNetworkManifest { cid }).await??;
    Ok(HttpResponse::Ok().json(DataItem::new(&cid, &manifest)))
}

async fn network_stream(
    state: web::Data<ApiState>,
    request: HttpRequest,
    cid: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let cid = parse_cid(&cid)?;
    let fetched = state.node.send(FetchDataset { cid, in_order: true }).await??;
    let FetchState::Downloading(_) = fetched.state else { return serve_local(&state, &request, cid).await };
    // The download may complete between the two calls: then the dataset is local.
    let Some(opened) = state.node.send(StreamDownload { cid }).await?? else {
        return serve_local(&state, &request, cid).await;
    };
    let (mut response, start, end) = download_head(&request, &opened.manifest)?;
    state.metrics.downloads.inc();
    tracing::debug!(cid = %format_cid(&cid), start, end, "network stream started");
    let stall = state.stream_stall_timeout;
    let body = arriving_stream(opened.file, opened.progress, opened.manifest.block_size, start, end, stall);
    Ok(response.body(SizedStream::new(end - start, body)))
}

async fn delete(state: web::Data<ApiState>, cid: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let cid = parse_cid(&cid)?;
    let outcome = state.node.send(Delete { cid }).await??;
    tracing::info!(cid = %format_cid(&cid), bytes = outcome.freed_bytes, blocks = outcome.removed_blocks, "deleted");
    Ok(HttpResponse::NoContent().finish())
}

async fn exists(state: web::Data<ApiState>, cid: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let cid = parse_cid(&cid)?;
    let has = state.node.send(HasLocalBlock { cid }).await??;
    // The spec says `{"has": bool}`, the original answers `{"<cid>": bool}`: both keys, so both kinds of
    // client read it right.
    let mut body = serde_json::Map::new();
    body.insert(format_cid(&cid), has.into());
    body.insert("has".into(), has.into());
    Ok(HttpResponse::Ok().json(body))
}

async fn preflight_data() -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, "content-type, content-disposition"))
        .finish()
}

async fn preflight_cid() -> HttpResponse {
    HttpResponse::NoContent().finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A download that never delivers anything.
    struct Stalled(tokio::sync::watch::Sender<u64>);

    impl Arrivals for Stalled {
        fn has(&self, _: u64) -> bool {
            false
        }
        fn status(&self) -> DownloadStatus {
            DownloadStatus::Running
        }
        fn watch_arrivals(&self) -> tokio::sync::watch::Receiver<u64> {
            self.0.subscribe()
        }
        fn waiting_for(&self, _: u64) {}
    }

    #[actix_web::test]
    async fn a_stalled_stream_is_released_when_its_body_is_dropped() {
        let file = tempfile::tempfile().expect("tempfile");
        let progress = Arc::new(Stalled(tokio::sync::watch::channel(0).0));
        let stream = arriving_stream(file, progress.clone(), 65536, 0, 65536, Duration::from_secs(3600));
        let mut stream = Box::pin(stream);
        // The stream waits for the first block.
        let first = tokio::time::timeout(Duration::from_millis(300), stream.next()).await;
        assert!(first.is_err(), "no data yet");
        assert_eq!(Arc::strong_count(&progress), 2, "the stream's task holds the download");
        // The client goes away: actix-web drops the body.
        drop(stream);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while Arc::strong_count(&progress) > 1 {
            assert!(tokio::time::Instant::now() < deadline, "the stream's task still waits for the stalled download");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[actix_web::test]
    async fn a_stalled_stream_ends_with_an_error_after_the_stall_limit() {
        let file = tempfile::tempfile().expect("tempfile");
        let progress = Arc::new(Stalled(tokio::sync::watch::channel(0).0));
        let stream = arriving_stream(file, progress.clone(), 65536, 0, 65536, Duration::from_millis(200));
        let mut stream = Box::pin(stream);
        let item = tokio::time::timeout(Duration::from_secs(5), stream.next()).await.expect("ends within 5 s");
        let err = item.expect("an item").expect_err("an error");
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert!(tokio::time::timeout(Duration::from_secs(1), stream.next()).await.expect("ended").is_none());
    }
}
