//! The REST client in the `codex` binary: `codex upload FILE`, `codex download CID [-o FILE]`, `codex list`,
//! `codex space`, against a node's `/api/codex/v1` (`--api-url`, default the local node).
//!
//! Blocking I/O with streamed bodies (a 10 GiB file is never held in memory) and progress bars on stderr when it
//! is a terminal. Exit codes scripts can rely on:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | local I/O error (input unreadable, output unwritable) |
//! | 2 | usage error (clap, or an argument the client refuses) |
//! | 3 | the node cannot be reached |
//! | 4 | not found (HTTP 404) |
//! | 5 | the node refused the request (another 4xx: bad CID, invalid filename or MIME type, quota) |
//! | 6 | node error (5xx), or a malformed or truncated response |

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Deserialize;
use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use thiserror::Error;

const API_PATH: &str = "/api/codex/v1";

/// Where the node is.
#[derive(clap::Args, Debug, Clone)]
pub struct ClientArgs {
    /// Base URL of the node's REST API (client commands only).
    #[arg(long, env = "CODEX_API_URL", default_value = "http://127.0.0.1:8080", global = true)]
    pub api_url: String,
}

/// Client commands.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum ClientCommand {
    /// Upload FILE to the node; prints the manifest CID.
    Upload {
        file: PathBuf,
        /// Content type to record, e.g. image/png.
        #[arg(long)]
        mimetype: Option<String>,
        /// File name to record (default: FILE's name).
        #[arg(long)]
        filename: Option<String>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Download CID to FILE (-o), or to stdout.
    Download {
        cid: String,
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// List the datasets stored on the node.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show the node's storage space.
    Space {
        #[arg(long)]
        json: bool,
    },
    /// Storage-proof keys (no node needed).
    Prover {
        #[command(subcommand)]
        command: crate::prover_cli::ProverCommand,
    },
    /// Run the node with the marketplace: `persistence --eth-provider URL --eth-private-key FILE
    /// --marketplace-address ADDR [prover --circuit-dir DIR]`.
    Persistence(crate::persistence::PersistenceArgs),
    /// Marketplace contracts (no node needed).
    Contracts {
        #[command(subcommand)]
        command: crate::contracts_cli::ContractsCommand,
    },
}

/// What can go wrong, each with its exit code.
#[derive(Debug, Error)]
pub enum ClientError {
    #[error("{context}: {source}")]
    Local { context: String, source: std::io::Error },
    #[error("{0}")]
    InvalidArgument(String),
    #[error("cannot reach the node at {url}: {source}")]
    Unreachable { url: String, source: Box<ureq::Error> },
    #[error("{what}: {status} {message}")]
    Http { what: String, status: u16, message: String },
    #[error("{what}: {reason}")]
    BadResponse { what: String, reason: String },
}

impl ClientError {
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Local { .. } => 1,
            ClientError::InvalidArgument(_) => 2,
            ClientError::Unreachable { .. } => 3,
            ClientError::Http { status: 404, .. } => 4,
            ClientError::Http { status, .. } if (400..500).contains(status) => 5,
            ClientError::Http { .. } | ClientError::BadResponse { .. } => 6,
        }
    }
}

fn local(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClientError {
    let context = context.into();
    move |source| ClientError::Local { context, source }
}

/// Runs one client command; returns the process exit code.
pub fn run(args: &ClientArgs, command: ClientCommand) -> ExitCode {
    let client = Client::new(&args.api_url);
    let result = match command {
        ClientCommand::Upload { file, mimetype, filename, quiet } => {
            client.upload(&file, mimetype.as_deref(), filename, quiet).map(|cid| println!("{cid}"))
        }
        ClientCommand::Download { cid, output, quiet } => client.download(&cid, output.as_deref(), quiet),
        ClientCommand::List { json } => client.list(json),
        ClientCommand::Space { json } => client.space(json),
        ClientCommand::Prover { command } => return crate::prover_cli::run(command),
        ClientCommand::Contracts { command } => return crate::contracts_cli::run(command),
        // `main` runs the node for `persistence` before it gets here.
        ClientCommand::Persistence(_) => return ExitCode::from(2),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}

struct Client {
    base: String,
    agent: ureq::Agent,
}

type Response = ureq::http::Response<ureq::Body>;

impl Client {
    fn new(api_url: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .build()
            .into();
        Self { base: format!("{}{API_PATH}", api_url.trim_end_matches('/')), agent }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Maps transport errors and non-2xx answers to [`ClientError`].
    fn check(&self, what: &str, result: Result<Response, ureq::Error>) -> Result<Response, ClientError> {
        let mut response = match result {
            Ok(response) => response,
            Err(ureq::Error::Io(source)) => {
                return Err(ClientError::Unreachable {
                    url: self.base.clone(),
                    source: Box::new(ureq::Error::Io(source)),
                });
            }
            Err(err @ (ureq::Error::HostNotFound | ureq::Error::ConnectionFailed | ureq::Error::Timeout(_))) => {
                return Err(ClientError::Unreachable { url: self.base.clone(), source: Box::new(err) });
            }
            Err(err) => return Err(ClientError::BadResponse { what: what.into(), reason: err.to_string() }),
        };
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(response);
        }
        let message = response.body_mut().read_to_string().unwrap_or_default().trim().to_owned();
        Err(ClientError::Http { what: what.into(), status, message })
    }

    fn upload(
        &self,
        file: &Path,
        mimetype: Option<&str>,
        filename: Option<String>,
        quiet: bool,
    ) -> Result<String, ClientError> {
        let name = match filename {
            Some(name) => name,
            None => file.file_name().and_then(|n| n.to_str()).map(String::from).unwrap_or_default(),
        };
        let disposition = content_disposition(&name)?;
        let mut input = File::open(file).map_err(local(format!("cannot open {}", file.display())))?;
        let len = input.metadata().map_err(local(format!("cannot read {}", file.display())))?.len();
        let bar = progress(len, quiet);
        let mut reader = bar.wrap_read(&mut input);
        let mut request = self.agent.post(self.url("/data")).header("Content-Length", len.to_string());
        if let Some(disposition) = disposition {
            request = request.header("Content-Disposition", disposition);
        }
        if let Some(mimetype) = mimetype {
            request = request.header("Content-Type", mimetype);
        }
        let result = request.send(ureq::SendBody::from_reader(&mut reader));
        bar.finish_and_clear();
        let mut response = self.check("upload failed", result)?;
        let cid = response
            .body_mut()
            .read_to_string()
            .map_err(|e| ClientError::BadResponse { what: "upload".into(), reason: e.to_string() })?;
        Ok(cid.trim().to_owned())
    }

    fn download(&self, cid: &str, output: Option<&Path>, quiet: bool) -> Result<(), ClientError> {
        let local_result = self.agent.get(self.url(&format!("/data/{cid}"))).call();
        let response = match self.check("download failed", local_result) {
            Err(ClientError::Http { status: 404, .. }) => {
                let network = self.agent.get(self.url(&format!("/data/{cid}/network/stream"))).call();
                self.check("download failed", network)?
            }
            other => other?,
        };
        let expected = response.body().content_length();
        let bar = progress(expected.unwrap_or(0), quiet || expected.is_none());
        let mut body = response.into_body().into_reader();
        let received = match output {
            Some(path) => {
                let part = part_path(path);
                let result = File::create(&part)
                    .map_err(local(format!("cannot create {}", part.display())))
                    .and_then(|mut file| {
                        let n = copy(&mut body, &mut file, &bar, &part)?;
                        file.sync_all().map_err(local(format!("cannot write {}", part.display())))?;
                        Ok(n)
                    })
                    .and_then(|n| check_length(n, expected).map(|_| n))
                    .and_then(|n| {
                        std::fs::rename(&part, path)
                            .map(|_| n)
                            .map_err(local(format!("cannot write {}", path.display())))
                    });
                if result.is_err() {
                    let _ = std::fs::remove_file(&part);
                }
                result?
            }
            None => {
                let stdout = std::io::stdout();
                let mut out = stdout.lock();
                let n = copy(&mut body, &mut out, &bar, Path::new("stdout"))?;
                out.flush().map_err(local("cannot write to stdout"))?;
                check_length(n, expected)?;
                n
            }
        };
        bar.finish_and_clear();
        if !quiet && output.is_some() {
            eprintln!("downloaded {}", human_bytes(received));
        }
        Ok(())
    }

    fn get_json<T: for<'de> Deserialize<'de>>(&self, path: &str, what: &str) -> Result<(T, String), ClientError> {
        let mut response = self.check(what, self.agent.get(self.url(path)).call())?;
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| ClientError::BadResponse { what: what.into(), reason: e.to_string() })?;
        let value = serde_json::from_str(&text)
            .map_err(|e| ClientError::BadResponse { what: what.into(), reason: e.to_string() })?;
        Ok((value, text))
    }

    fn list(&self, json: bool) -> Result<(), ClientError> {
        let (list, text): (DataList, String) = self.get_json("/data", "list failed")?;
        if json {
            println!("{}", pretty(&text));
            return Ok(());
        }
        println!("{:<54} {:>10}  {:<24} MIMETYPE", "CID", "SIZE", "FILENAME");
        for item in list.content {
            println!(
                "{:<54} {:>10}  {:<24} {}",
                item.cid,
                human_bytes(item.manifest.dataset_size),
                item.manifest.filename.unwrap_or_default(),
                item.manifest.mimetype.unwrap_or_default()
            );
        }
        Ok(())
    }

    fn space(&self, json: bool) -> Result<(), ClientError> {
        let (space, text): (Space, String) = self.get_json("/space", "space failed")?;
        if json {
            println!("{}", pretty(&text));
            return Ok(());
        }
        let free = space.quota_max_bytes.saturating_sub(space.quota_used_bytes + space.quota_reserved_bytes);
        let percent = if space.quota_max_bytes == 0 {
            0.0
        } else {
            space.quota_used_bytes as f64 * 100.0 / space.quota_max_bytes as f64
        };
        println!("total blocks   {}", space.total_blocks);
        println!("quota          {}", human_bytes(space.quota_max_bytes));
        println!("used           {} ({percent:.1}%)", human_bytes(space.quota_used_bytes));
        println!("reserved       {}", human_bytes(space.quota_reserved_bytes));
        println!("free           {}", human_bytes(free));
        Ok(())
    }
}

#[derive(Deserialize)]
struct DataList {
    content: Vec<DataItem>,
}

#[derive(Deserialize)]
struct DataItem {
    cid: String,
    manifest: ManifestItem,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestItem {
    dataset_size: u64,
    filename: Option<String>,
    mimetype: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Space {
    total_blocks: u64,
    quota_max_bytes: u64,
    quota_used_bytes: u64,
    quota_reserved_bytes: u64,
}

fn pretty(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| text.to_owned())
}

/// `attachment; filename="NAME"`, or `None` for an empty name. Refuses names that cannot be quoted.
fn content_disposition(name: &str) -> Result<Option<String>, ClientError> {
    if name.is_empty() {
        return Ok(None);
    }
    if name.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
        return Err(ClientError::InvalidArgument(format!(
            "file name {name:?} contains quotes, backslashes or control characters; pass --filename"
        )));
    }
    Ok(Some(format!("attachment; filename=\"{name}\"")))
}

fn part_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".part");
    path.with_file_name(name)
}

fn copy(body: &mut impl Read, out: &mut impl Write, bar: &ProgressBar, target: &Path) -> Result<u64, ClientError> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0;
    loop {
        let n = body
            .read(&mut buf)
            .map_err(|e| ClientError::BadResponse { what: "download interrupted".into(), reason: e.to_string() })?;
        if n == 0 {
            return Ok(total);
        }
        out.write_all(&buf[..n]).map_err(local(format!("cannot write {}", target.display())))?;
        total += n as u64;
        bar.inc(n as u64);
    }
}

fn check_length(received: u64, expected: Option<u64>) -> Result<(), ClientError> {
    match expected {
        Some(expected) if expected != received => Err(ClientError::BadResponse {
            what: "download truncated".into(),
            reason: format!("received {received} of {expected} bytes"),
        }),
        _ => Ok(()),
    }
}

fn progress(total: u64, hidden: bool) -> ProgressBar {
    if hidden || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}") {
        bar.set_style(style);
    }
    bar
}

/// Human-readable binary size: `512 B`, `1.5 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    crate::units::ByteSize(bytes).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_human() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 << 19), "1.5 MiB");
        assert_eq!(human_bytes(20 << 30), "20.0 GiB");
    }

    #[test]
    fn exit_codes() {
        let http = |status| ClientError::Http { what: "x".into(), status, message: String::new() };
        assert_eq!(http(404).exit_code(), 4);
        assert_eq!(http(422).exit_code(), 5);
        assert_eq!(http(400).exit_code(), 5);
        assert_eq!(http(500).exit_code(), 6);
        assert_eq!(ClientError::InvalidArgument(String::new()).exit_code(), 2);
        let io = ClientError::Local { context: String::new(), source: std::io::Error::other("x") };
        assert_eq!(io.exit_code(), 1);
        assert_eq!(check_length(5, Some(6)).map_err(|e| e.exit_code()), Err(6));
    }

    #[test]
    fn disposition_header() {
        assert_eq!(content_disposition("a.png").ok().flatten().as_deref(), Some("attachment; filename=\"a.png\""));
        assert!(content_disposition("").ok().flatten().is_none());
        assert!(content_disposition("a\"b").is_err());
        assert_eq!(part_path(Path::new("/x/out.bin")), PathBuf::from("/x/out.bin.part"));
    }
}
