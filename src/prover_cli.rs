//! `codex prover setup`: creates a development key set for the storage-proof circuit in a circuit directory
//! (see `codex_actors::prover`). The keys derive from a seed, so every node of a testnet given the same seed
//! gets the same keys; anyone who knows the seed can forge proofs, which the command says loudly, and the node
//! refuses them on a chain that is not a local one unless `--insecure-dev-keys` is given.
//! `codex prover import`: copies a key set made elsewhere (a trusted setup) into a circuit directory.

use codex_actors::prover::{import_keys, write_keys};
use codex_protocol::cid::sha256;
use codex_protocol::proofs::ProofParams;
use std::path::PathBuf;
use std::process::ExitCode;

/// Prover commands.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum ProverCommand {
    /// Create development proving and verifying keys (INSECURE: derived from a public seed).
    Setup {
        /// Where the keys go (the node's `--circuit-dir`).
        #[arg(long)]
        circuit_dir: PathBuf,
        /// Cells sampled per proof.
        #[arg(long, default_value_t = 5)]
        proof_samples: usize,
        /// The seed text the keys derive from (nodes of one testnet must use the same).
        #[arg(long, default_value = "codex development keys")]
        seed: String,
    },
    /// Copy a key set made elsewhere (params.json, proving.key, verifying.key, keys.sha256) into a circuit
    /// directory, checking it first.
    Import {
        /// The directory holding the key set.
        #[arg(long)]
        from: PathBuf,
        /// Where the keys go (the node's `--circuit-dir`).
        #[arg(long)]
        circuit_dir: PathBuf,
    },
}

/// Runs a prover command; returns the process exit code.
pub fn run(command: ProverCommand) -> ExitCode {
    match command {
        ProverCommand::Import { from, circuit_dir } => match import_keys(&from, &circuit_dir) {
            Ok(hash) => {
                println!("{}", hash.iter().map(|b| format!("{b:02x}")).collect::<String>());
                eprintln!("keys of {} imported into {}", from.display(), circuit_dir.display());
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("error: {err}");
                ExitCode::from(1)
            }
        },
        ProverCommand::Setup { circuit_dir, proof_samples, seed } => {
            if proof_samples == 0 {
                eprintln!("error: --proof-samples must be at least 1");
                return ExitCode::from(2);
            }
            eprintln!(
                "WARNING: these are DEVELOPMENT keys derived from the seed {seed:?}: anyone who knows it can forge \\
                 storage proofs. Use them only on test networks."
            );
            let started = std::time::Instant::now();
            match write_keys(&circuit_dir, ProofParams::with_samples(proof_samples), sha256(seed.as_bytes())) {
                Ok(hash) => {
                    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
                    println!("{hex}");
                    eprintln!(
                        "keys for {proof_samples} samples written to {} in {:.1} s",
                        circuit_dir.display(),
                        started.elapsed().as_secs_f64()
                    );
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("error: {err}");
                    ExitCode::from(1)
                }
            }
        }
    }
}
