//! `codex contracts deploy`: deploys TestToken, the Groth16Verifier (with the verifying key of a circuit
//! directory made by `codex prover setup`) and the Marketplace with a configuration, mints test tokens to each
//! `--fund` address, and prints `{"chainId", "token", "verifier", "marketplace"}` on stdout. The defaults fit a
//! fast local testnet; every field of the marketplace configuration can be set.

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use alloy::providers::ext::AnvilApi;
use codex_actors::chain::account::{connect, read_private_key};
use codex_actors::chain::bindings::Marketplace;
use codex_actors::chain::deploy::{deploy, mint, testnet_config};
use codex_actors::prover::load_keys;
use codex_protocol::proofs::groth16::AbiVerifyingKey;
use std::path::PathBuf;
use std::process::ExitCode;

/// Contract commands.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum ContractsCommand {
    /// Deploy token, verifier and marketplace; prints their addresses as JSON.
    Deploy(DeployArgs),
}

/// `codex contracts deploy` options. Defaults: a fast local testnet (see `testnet_config`).
#[derive(clap::Args, Debug, Clone)]
pub struct DeployArgs {
    /// JSON-RPC endpoint of the chain (http://, https://, ws:// or wss://).
    #[arg(long, env = "CODEX_ETH_PROVIDER", default_value = "ws://localhost:8545")]
    pub eth_provider: String,
    /// File holding the deployer's private key in hex (mode 0600).
    #[arg(long, env = "CODEX_ETH_PRIVATE_KEY")]
    pub eth_private_key: PathBuf,
    /// Circuit directory made by `codex prover setup`: its verifying key goes into the verifier, its key hash
    /// into the configuration's zkeyHash.
    #[arg(long)]
    pub circuit_dir: PathBuf,
    /// Seconds per proof period.
    #[arg(long, default_value_t = 30)]
    pub period: u64,
    /// Seconds after a period's end in which a missed proof can be marked.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
    /// Blocks per 256 in which no proof is required (period must be below downtime × block time).
    #[arg(long, default_value_t = 64)]
    pub downtime: u8,
    /// A prime: how far the challenge pointer moves from period to period.
    #[arg(long, default_value_t = 67)]
    pub downtime_product: u8,
    /// Reservations per slot.
    #[arg(long, default_value_t = 3)]
    pub max_reservations: u8,
    /// Longest request duration, in seconds.
    #[arg(long, default_value_t = 30 * 24 * 3600)]
    pub request_duration_limit: u64,
    /// Percent of the collateral a repairing host does not deposit (paid back at payout).
    #[arg(long, default_value_t = 10)]
    pub repair_reward_percentage: u8,
    /// Missed proofs after which a slot is freed.
    #[arg(long, default_value_t = 2)]
    pub max_number_of_slashes: u8,
    /// Percent of the collateral taken per missed proof.
    #[arg(long, default_value_t = 20)]
    pub slash_percentage: u8,
    /// Percent of each slash paid to the validator that marked it.
    #[arg(long, default_value_t = 20)]
    pub validator_reward_percentage: u8,
    /// Mint test tokens to this address (repeatable).
    #[arg(long)]
    pub fund: Vec<Address>,
    /// Test tokens (base units) minted to each --fund address.
    #[arg(long, default_value = "1000000000000000000000000")]
    pub fund_amount: U256,
}

impl DeployArgs {
    fn config(&self, zkey_hash: String) -> Marketplace::MarketplaceConfig {
        let mut config = testnet_config(zkey_hash);
        config.collateral.repairRewardPercentage = self.repair_reward_percentage;
        config.collateral.maxNumberOfSlashes = self.max_number_of_slashes;
        config.collateral.slashPercentage = self.slash_percentage;
        config.collateral.validatorRewardPercentage = self.validator_reward_percentage;
        config.proofs.period = self.period;
        config.proofs.timeout = self.timeout;
        config.proofs.downtime = self.downtime;
        config.proofs.downtimeProduct = self.downtime_product;
        config.reservations.maxReservations = self.max_reservations;
        config.requestDurationLimit = self.request_duration_limit;
        config
    }
}

/// Runs a contracts command; returns the process exit code.
pub fn run(command: ContractsCommand) -> ExitCode {
    let ContractsCommand::Deploy(args) = command;
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start a runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run_deploy(args)) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_deploy(args: DeployArgs) -> anyhow::Result<String> {
    use anyhow::Context as _;
    let keys = load_keys(&args.circuit_dir)?;
    let zkey_hash: String = keys.hash.iter().map(|b| format!("{b:02x}")).collect();
    let signer = read_private_key(&args.eth_private_key)?;
    let provider = connect(&args.eth_provider, signer).await?;
    // The marketplace needs block.number > 256 (challenges read block hashes up to 256 back). A fresh local
    // chain (anvil, hardhat) is asked to mine up to there.
    let height = provider.get_block_number().await.context("reading the block number")?;
    if height <= 256 {
        provider.anvil_mine(Some(257 - height), None).await.with_context(|| {
            format!("the chain is at block {height}: the marketplace needs more than 256 blocks, and mining failed")
        })?;
    }
    let deployment = deploy(&provider, args.config(zkey_hash), &AbiVerifyingKey::from(&keys.verifying)).await?;
    for address in &args.fund {
        mint(&provider, deployment.token, *address, args.fund_amount).await?;
    }
    eprintln!(
        "deployed on chain {}: marketplace {}, token {}, verifier {} (circuit: {} samples)",
        deployment.chain_id, deployment.marketplace, deployment.token, deployment.verifier, keys.params.samples
    );
    Ok(serde_json::to_string(&deployment)?)
}
