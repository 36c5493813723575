//! `codex persistence …`: the node with the marketplace, as the original's sub-command (codex-facts §9.2–9.3):
//! `codex [node options] persistence --eth-provider URL --eth-private-key FILE [--eth-account ADDR]
//! --marketplace-address ADDR [--validator [--validator-max-slots N] [--validator-groups G
//! --validator-group-index I]] [prover [--circuit-dir DIR] [--proof-samples N]]`. Every option is also a
//! `CODEX_*` variable and a key of the TOML file (`persistence = true` turns the marketplace on there).

use crate::config::{ConfigError, Settings};
use alloy::primitives::Address;
use serde::Serialize;
use std::path::PathBuf;

/// `codex persistence` options.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct PersistenceArgs {
    #[command(flatten)]
    pub market: MarketFlags,
    /// Make every Nth storage proof invalid on purpose, for testing (as the top-level option) [default: 0].
    #[arg(long)]
    pub simulate_proof_failures: Option<u32>,
    #[command(subcommand)]
    pub prover: Option<PersistenceCommand>,
}

/// `codex persistence prover`.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum PersistenceCommand {
    /// Storage-proof options.
    Prover(ProverFlags),
}

/// `codex persistence prover` options.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ProverFlags {
    /// Directory of the storage-proof keys (`codex prover setup`) [default: circuits/ in the data dir].
    #[arg(long)]
    pub circuit_dir: Option<PathBuf>,
    /// Samples per proof the keys must have been made for (checked at start).
    #[arg(long)]
    pub proof_samples: Option<usize>,
}

/// The marketplace options; unset ones do not hide lower configuration layers.
#[derive(clap::Args, Debug, Clone, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct MarketFlags {
    /// Set by the `persistence` command.
    #[arg(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persistence: Option<bool>,
    /// Ethereum JSON-RPC endpoint, http(s):// or ws(s):// [default: ws://localhost:8545].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eth_provider: Option<String>,
    /// The account to use (must be the private key's).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eth_account: Option<String>,
    /// File with the account's private key in hex; must be mode 0600.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eth_private_key: Option<PathBuf>,
    /// The Marketplace contract (printed by `codex contracts deploy`).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marketplace_address: Option<String>,
    #[arg(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proof_samples: Option<usize>,
    /// Also run a validator: watch filled slots and mark the proofs their hosts miss (earns a share of slashes).
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub validator: bool,
    /// Most slots the validator watches; 0 = no limit [default: 1000].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validator_max_slots: Option<usize>,
    /// Split the slots among this many validators (2–65535); each watches the slots of its group index.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validator_groups: Option<u32>,
    /// This validator's group (0 ≤ index < --validator-groups) [default: 0].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validator_group_index: Option<u32>,
    /// Blocks a marketplace event must have before the node acts on it [default: 1 on a local development
    /// chain (ids 31337, 1337), 3 elsewhere].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmations: Option<u64>,
    /// Start even though the proving keys are the public development keys and the chain is not a local one
    /// (anyone could forge proofs with them: testing only).
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub insecure_dev_keys: bool,
}

impl PersistenceArgs {
    /// Folds the command's options into the node's flags (the marketplace on, prover options included).
    pub fn apply(self, flags: &mut crate::config::NodeFlags) {
        flags.market = MarketFlags { persistence: Some(true), ..self.market };
        if self.simulate_proof_failures.is_some() {
            flags.simulate_proof_failures = self.simulate_proof_failures;
        }
        if let Some(PersistenceCommand::Prover(prover)) = self.prover {
            if prover.circuit_dir.is_some() {
                flags.circuit_dir = prover.circuit_dir;
            }
            flags.market.proof_samples = prover.proof_samples;
        }
    }
}

fn invalid(option: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { option, reason: reason.into() }
}

/// The marketplace options' own checks (the key file and the chain are checked when the node starts).
pub fn validate(settings: &Settings) -> Result<(), ConfigError> {
    let provider = settings.eth_provider.as_str();
    if !["http://", "https://", "ws://", "wss://"].iter().any(|scheme| provider.starts_with(scheme)) {
        return Err(invalid("eth-provider", format!("'{provider}' is not an http(s):// or ws(s):// URL")));
    }
    if settings.eth_private_key.is_none() {
        return Err(invalid(
            "eth-private-key",
            "persistence is enabled, but no Ethereum private key was set: give a hex key file (mode 0600)",
        ));
    }
    if let Some(account) = &settings.eth_account {
        account.parse::<Address>().map_err(|_| invalid("eth-account", format!("'{account}' is not an address")))?;
    }
    validator_groups(settings)?;
    if settings.confirmations == Some(0) {
        return Err(invalid("confirmations", "0: give 1 to act on the latest block, more to wait for later blocks"));
    }
    match &settings.marketplace_address {
        None => Err(invalid(
            "marketplace-address",
            "persistence is enabled, but no marketplace address was set (`codex contracts deploy` prints it)",
        )),
        Some(address) => match address.parse::<Address>() {
            Ok(_) => Ok(()),
            Err(_) => Err(invalid("marketplace-address", format!("'{address}' is not an address"))),
        },
    }
}

/// The validator's group from `--validator-groups` and `--validator-group-index` (none without groups).
pub fn validator_groups(settings: &Settings) -> Result<Option<codex_protocol::validator::Groups>, ConfigError> {
    match settings.validator_groups {
        None if settings.validator_group_index != 0 => {
            Err(invalid("validator-group-index", "a group index needs --validator-groups"))
        }
        None => Ok(None),
        Some(groups) => codex_protocol::validator::Groups::new(groups, settings.validator_group_index)
            .map(Some)
            .map_err(|err| invalid("validator-groups", err.to_string())),
    }
}
