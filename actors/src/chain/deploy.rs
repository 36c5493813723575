//! Deploying the contract set: TestToken, the Groth16Verifier with a circuit's verifying key, and the
//! Marketplace with a configuration (what `codex contracts deploy` and the tests run).

use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider};
use codex_protocol::proofs::groth16::AbiVerifyingKey;

use super::bindings::{Groth16Verifier, Marketplace, TestToken};

/// Why a deployment failed.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("deploying {contract}: {message}")]
    Contract { contract: &'static str, message: String },
    #[error("minting test tokens to {address}: {message}")]
    Mint { address: Address, message: String },
    #[error("chain: {0}")]
    Rpc(String),
}

/// Where the contracts of one deployment live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    pub chain_id: u64,
    pub token: Address,
    pub verifier: Address,
    pub marketplace: Address,
}

/// A configuration for a fast local testnet (seconds, not minutes): period 30 s, timeout 10 s, downtime 64
/// blocks with downtimeProduct 67 (period < downtime × block time for 1-second blocks), 3 reservations per slot,
/// requests up to 30 days; the original's collateral rules (repair reward 10 %, 2 slashes of 20 %, validators get
/// 20 % of a slash).
pub fn testnet_config(zkey_hash: String) -> Marketplace::MarketplaceConfig {
    Marketplace::MarketplaceConfig {
        collateral: Marketplace::CollateralConfig {
            repairRewardPercentage: 10,
            maxNumberOfSlashes: 2,
            slashPercentage: 20,
            validatorRewardPercentage: 20,
        },
        proofs: Marketplace::ProofConfig {
            period: 30,
            timeout: 10,
            downtime: 64,
            downtimeProduct: 67,
            zkeyHash: zkey_hash,
        },
        reservations: Marketplace::SlotReservationsConfig { maxReservations: 3 },
        requestDurationLimit: 30 * 24 * 3600,
    }
}

/// Deploys TestToken, Groth16Verifier (with `key`) and Marketplace (with `config`) from the provider's account.
/// The chain must be past block 256 (the marketplace reads block hashes up to 256 back).
pub async fn deploy(
    provider: &DynProvider,
    config: Marketplace::MarketplaceConfig,
    key: &AbiVerifyingKey,
) -> Result<Deployment, DeployError> {
    let failed = |contract: &'static str| {
        move |e: alloy::contract::Error| DeployError::Contract { contract, message: e.to_string() }
    };
    let chain_id = provider.get_chain_id().await.map_err(|e| DeployError::Rpc(e.to_string()))?;
    let token = TestToken::deploy_builder(provider.clone()).deploy().await.map_err(failed("TestToken"))?;
    let verifier = Groth16Verifier::deploy_builder(provider.clone(), key.into())
        .deploy()
        .await
        .map_err(failed("Groth16Verifier"))?;
    let marketplace = Marketplace::deploy_builder(provider.clone(), config, token, verifier)
        .deploy()
        .await
        .map_err(failed("Marketplace"))?;
    Ok(Deployment { chain_id, token, verifier, marketplace })
}

/// Mints `amount` test tokens to `address` (TestToken's mint is open to anyone).
pub async fn mint(provider: &DynProvider, token: Address, address: Address, amount: U256) -> Result<(), DeployError> {
    let failed = |e: String| DeployError::Mint { address, message: e };
    let receipt = TestToken::new(token, provider.clone())
        .mint(address, amount)
        .send()
        .await
        .map_err(|e| failed(e.to_string()))?
        .get_receipt()
        .await
        .map_err(|e| failed(e.to_string()))?;
    if receipt.status() { Ok(()) } else { Err(failed("reverted".into())) }
}
