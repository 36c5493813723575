//! The node's chain account: its private key file (hex, owner-only permissions, as the original's
//! `--eth-private-key`) and a signing provider for an `--eth-provider` URL (http(s):// or ws(s)://).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use alloy::network::EthereumWallet;
use alloy::providers::{DynProvider, Provider, ProviderBuilder, WsConnect};
use alloy::signers::local::PrivateKeySigner;

/// Why the account could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("cannot read the private key file {}: {source}", .path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error(
        "the private key file {} can be read by others (mode {mode:o}): run `chmod 600 {}`",
        .path.display(), .path.display()
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error("the private key file {} does not hold a hex secp256k1 private key", .path.display())]
    BadKey { path: PathBuf },
    #[error("--eth-provider {url}: {message}")]
    Provider { url: String, message: String },
}

/// Reads a private key (64 hex digits, `0x` optional, surrounding whitespace ignored) from `path`, which must
/// not be readable or writable by group or others.
pub fn read_private_key(path: &Path) -> Result<PrivateKeySigner, AccountError> {
    let read = |source| AccountError::Read { path: path.to_owned(), source };
    let mode = std::fs::metadata(path).map_err(read)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(AccountError::Permissions { path: path.to_owned(), mode });
    }
    let text = std::fs::read_to_string(path).map_err(read)?;
    let hex = text.trim();
    let hex = hex.strip_prefix("0x").unwrap_or(hex);
    hex.parse::<PrivateKeySigner>().map_err(|_| AccountError::BadKey { path: path.to_owned() })
}

/// A provider for `url` that signs with `signer`: HTTP for http(s)://, a WebSocket for ws(s)://.
pub async fn connect(url: &str, signer: PrivateKeySigner) -> Result<DynProvider, AccountError> {
    let failed = |message: String| AccountError::Provider { url: url.to_owned(), message };
    let builder = ProviderBuilder::new().wallet(EthereumWallet::from(signer));
    if url.starts_with("ws://") || url.starts_with("wss://") {
        // A dropped WebSocket is reconnected every second for a minute; past that, callers reconnect.
        let ws = WsConnect::new(url).with_max_retries(60).with_retry_interval(std::time::Duration::from_secs(1));
        let provider = builder.connect_ws(ws).await.map_err(|e| failed(e.to_string()))?;
        Ok(provider.erased())
    } else if url.starts_with("http://") || url.starts_with("https://") {
        let parsed = url.parse().map_err(|e| failed(format!("not a URL: {e}")))?;
        Ok(builder.connect_http(parsed).erased())
    } else {
        Err(failed("use an http://, https://, ws:// or wss:// URL".into()))
    }
}
