//! A local anvil chain for tests and development testnets: anvil comes from the project's pinned npm toolchain
//! (`contracts/setup.sh`, run on first use), or from `CODEX_ANVIL`. The chain starts with 256 blocks mined, because
//! the marketplace's constructor needs `block.number > 256` (its challenges read up to 256 block hashes back).

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use alloy::network::EthereumWallet;
use alloy::node_bindings::{Anvil, AnvilInstance};
use alloy::primitives::Address;
use alloy::providers::ext::AnvilApi;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;

/// Why a local chain could not start.
#[derive(Debug, thiserror::Error)]
pub enum LocalChainError {
    #[error("could not install anvil with contracts/setup.sh: {0}")]
    Setup(String),
    #[error("anvil did not start: {0}")]
    Spawn(String),
    #[error("anvil RPC: {0}")]
    Rpc(String),
}

/// The anvil binary: `CODEX_ANVIL` if set, else the one `contracts/setup.sh` installs (running it once per process
/// when needed; it is a no-op when the pinned toolchain is already there).
pub fn anvil_binary() -> Result<PathBuf, LocalChainError> {
    if let Some(path) = std::env::var_os("CODEX_ANVIL") {
        return Ok(PathBuf::from(path));
    }
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../contracts/setup.sh");
            let out = Command::new(&script).output().map_err(|e| format!("{}: {e}", script.display()))?;
            if !out.status.success() {
                return Err(String::from_utf8_lossy(&out.stderr).into_owned());
            }
            let stdout = String::from_utf8_lossy(&out.stdout);
            let path = stdout.lines().last().unwrap_or_default().trim();
            Ok(PathBuf::from(path))
        })
        .clone()
        .map_err(LocalChainError::Setup)
}

/// A running anvil (killed on drop) with its ten funded dev accounts.
pub struct LocalChain {
    instance: AnvilInstance,
}

impl LocalChain {
    /// Starts anvil on a free loopback port with automine (a block per transaction; tests move time with
    /// [`LocalChain::advance`]) and mines 256 blocks.
    pub async fn start() -> Result<Self, LocalChainError> {
        Self::start_with(&[]).await
    }

    /// [`LocalChain::start`] with extra anvil arguments (`["--block-time", "1"]` for a chain whose time moves
    /// on its own).
    pub async fn start_with(args: &[&str]) -> Result<Self, LocalChainError> {
        let binary = anvil_binary()?;
        let instance = Anvil::at(binary).args(args).try_spawn().map_err(|e| LocalChainError::Spawn(e.to_string()))?;
        let chain = Self { instance };
        chain.provider(0).anvil_mine(Some(256), None).await.map_err(|e| LocalChainError::Rpc(e.to_string()))?;
        Ok(chain)
    }

    /// The HTTP JSON-RPC endpoint.
    pub fn endpoint(&self) -> String {
        self.instance.endpoint()
    }

    /// The loopback address anvil listens on (for a proxy in front of it).
    pub fn addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.instance.port()).into()
    }

    /// The WebSocket endpoint.
    pub fn ws_endpoint(&self) -> String {
        self.instance.ws_endpoint()
    }

    pub fn chain_id(&self) -> u64 {
        self.instance.chain_id()
    }

    /// The signer of dev account `index` (0–9).
    pub fn signer(&self, index: usize) -> PrivateKeySigner {
        PrivateKeySigner::from(self.instance.keys()[index].clone())
    }

    pub fn address(&self, index: usize) -> Address {
        self.instance.addresses()[index]
    }

    /// An HTTP provider that signs with dev account `index`.
    pub fn provider(&self, index: usize) -> DynProvider {
        ProviderBuilder::new()
            .wallet(EthereumWallet::from(self.signer(index)))
            .connect_http(self.instance.endpoint_url())
            .erased()
    }

    /// Moves chain time forward by `seconds` and mines a block with the new time.
    pub async fn advance(&self, seconds: u64) -> Result<(), LocalChainError> {
        let provider = self.provider(0);
        provider.anvil_increase_time(seconds).await.map_err(|e| LocalChainError::Rpc(e.to_string()))?;
        provider.anvil_mine(Some(1), None).await.map_err(|e| LocalChainError::Rpc(e.to_string()))
    }
}
