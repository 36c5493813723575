//! ProverActor (issue 11): Groth16 storage proofs for slots this node holds, on a one-thread `SyncArbiter`
//! (`codex-prover`); the proving itself runs on arkworks' worker pool, never on network, HTTP or arbiter threads.
//!
//! Keys live in `--circuit-dir` (see [`write_keys`], [`load_keys`]): `proving.key` (uncompressed, loaded without
//! curve checks, so it loads in milliseconds), `verifying.key` (compressed, checked), `params.json` (the circuit
//! shape) and `keys.sha256`, the SHA-256 over the parameters and both key files: it identifies the key set (the
//! role of the original's `zkeyHash`) and guards the unchecked load (a changed file is refused). They are loaded
//! once, on the prover's thread when it starts, so the node's start does not wait for them.
//!
//! [`Prove`]: the witness is built from the slot's files (its `.slots` block digests and the blocks the samples
//! fall in) and checked natively first, so a damaged slot is reported ([`ProverError::Proof`] with
//! `DamagedBlock`) before any proving. Every `simulate_failures`-th proof is made invalid on purpose (seed 001's
//! `--simulate-proof-failures`). [`Prover`] is the handle callers use: it refuses work beyond `queue` waiting
//! proofs with [`ProverError::Busy`].

use crate::slots::read_slot_digests;
use actix::prelude::*;
use codex_protocol::Manifest;
use codex_protocol::cid::sha256;
use codex_protocol::poseidon2::F;
use codex_protocol::proofs::groth16::{self, AbiProof, Proof, ProvingKey, Uint256, VerifyingKey, abi_public};
use codex_protocol::proofs::{ProofError, ProofInput, ProofParams};
use codex_protocol::slots::{SlotLayout, SlotTree, entropy_from_challenge, root_from_cid};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use thiserror::Error;

const PROVING_KEY: &str = "proving.key";
const VERIFYING_KEY: &str = "verifying.key";
const PARAMS: &str = "params.json";
const HASH: &str = "keys.sha256";
/// Present in a directory of development keys (`write_keys`): they derive from a seed anyone may know.
const DEVELOPMENT: &str = "DEVELOPMENT";

/// Prover errors.
#[derive(Debug, Error)]
pub enum ProverError {
    #[error("no proving keys in {}: create them with `codex prover setup --circuit-dir {}`", .dir.display(), .dir.display())]
    NoKeys { dir: PathBuf },
    #[error("the keys in {} are unusable: {reason}", .dir.display())]
    BadKeys { dir: PathBuf, reason: String },
    #[error("{context}: {source}")]
    Io { context: &'static str, source: std::io::Error },
    #[error("the slot cannot be proven: {0}")]
    Slot(String),
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error("the prover is busy: {waiting} proofs are waiting already")]
    Busy { waiting: usize },
    #[error("the prover stopped")]
    Stopped,
}

impl ProverError {
    fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> ProverError {
        move |source| ProverError::Io { context, source }
    }
}

impl From<MailboxError> for ProverError {
    fn from(_: MailboxError) -> Self {
        ProverError::Stopped
    }
}

/// A loaded key set.
pub struct Keys {
    pub params: ProofParams,
    pub proving: ProvingKey,
    pub verifying: VerifyingKey,
    /// SHA-256 over the parameters and both key files.
    pub hash: [u8; 32],
}

/// The circuit shape as stored next to the keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct StoredParams {
    samples: usize,
    max_slot_depth: usize,
    max_dataset_depth: usize,
    block_depth: usize,
    cell_elements: usize,
}

impl From<ProofParams> for StoredParams {
    fn from(p: ProofParams) -> Self {
        Self {
            samples: p.samples,
            max_slot_depth: p.max_slot_depth,
            max_dataset_depth: p.max_dataset_depth,
            block_depth: p.block_depth,
            cell_elements: p.cell_elements,
        }
    }
}

impl From<StoredParams> for ProofParams {
    fn from(p: StoredParams) -> Self {
        ProofParams {
            samples: p.samples,
            max_slot_depth: p.max_slot_depth,
            max_dataset_depth: p.max_dataset_depth,
            block_depth: p.block_depth,
            cell_elements: p.cell_elements,
        }
    }
}

fn key_hash(params: &[u8], proving: &[u8], verifying: &[u8]) -> [u8; 32] {
    let mut all = Vec::with_capacity(params.len() + proving.len() + verifying.len());
    all.extend_from_slice(params);
    all.extend_from_slice(proving);
    all.extend_from_slice(verifying);
    sha256(&all)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Creates a **development** key set for `params` from `seed` in `dir` (every node given the same seed derives
/// the same keys; anyone who knows the seed can forge proofs) and returns its hash. Existing keys are replaced.
pub fn write_keys(dir: &Path, params: ProofParams, seed: [u8; 32]) -> Result<[u8; 32], ProverError> {
    std::fs::create_dir_all(dir).map_err(ProverError::io("creating the circuit directory"))?;
    let (proving, verifying) = groth16::setup(params, seed)?;
    let bad = |reason: String| ProverError::BadKeys { dir: dir.to_owned(), reason };
    let proving = groth16::to_key_file_bytes(&proving).map_err(|e| bad(e.to_string()))?;
    let verifying = groth16::to_bytes(&verifying).map_err(|e| bad(e.to_string()))?;
    let stored = serde_json::to_vec_pretty(&StoredParams::from(params)).map_err(|e| bad(e.to_string()))?;
    let hash = key_hash(&stored, &proving, &verifying);
    let warning = b"These keys derive from a seed: anyone who knows it can forge storage proofs. Testing only.\n";
    for (name, bytes) in [
        (PARAMS, stored.as_slice()),
        (PROVING_KEY, proving.as_slice()),
        (VERIFYING_KEY, verifying.as_slice()),
        (HASH, hex(&hash).as_bytes()),
        (DEVELOPMENT, warning.as_slice()),
    ] {
        std::fs::write(dir.join(name), bytes).map_err(ProverError::io("writing a key file"))?;
    }
    Ok(hash)
}

/// Whether the keys in `dir` are development keys (made by [`write_keys`], not imported from a setup whose
/// secrets nobody kept).
pub fn is_development(dir: &Path) -> bool {
    dir.join(DEVELOPMENT).exists()
}

/// Copies the key set of `from` (made elsewhere: a trusted setup) into `to`, after checking that it loads and
/// matches its hash; answers the hash. A development marker in `from` comes along; one already in `to` goes.
pub fn import_keys(from: &Path, to: &Path) -> Result<[u8; 32], ProverError> {
    load_keys(from)?;
    let hash = std::fs::read(from.join(HASH)).map_err(ProverError::io("reading the keys' hash"))?;
    let mut digest = [0u8; 32];
    for (i, byte) in digest.iter_mut().enumerate() {
        let pair = hash.trim_ascii().get(2 * i..2 * i + 2).and_then(|p| std::str::from_utf8(p).ok());
        *byte = pair.and_then(|p| u8::from_str_radix(p, 16).ok()).unwrap_or_default();
    }
    std::fs::create_dir_all(to).map_err(ProverError::io("creating the circuit directory"))?;
    for name in [PARAMS, PROVING_KEY, VERIFYING_KEY, HASH] {
        // Written beside the target, then renamed: a crash leaves the old set or the new one.
        let partial = to.join(format!("{name}.importing"));
        std::fs::copy(from.join(name), &partial).map_err(ProverError::io("copying a key file"))?;
        std::fs::rename(&partial, to.join(name)).map_err(ProverError::io("copying a key file"))?;
    }
    if from.join(DEVELOPMENT).exists() {
        std::fs::copy(from.join(DEVELOPMENT), to.join(DEVELOPMENT)).map_err(ProverError::io("copying a key file"))?;
    } else if to.join(DEVELOPMENT).exists() {
        std::fs::remove_file(to.join(DEVELOPMENT)).map_err(ProverError::io("removing the development marker"))?;
    }
    load_keys(to)?;
    Ok(digest)
}

/// The circuit parameters the keys in `dir` were made for (their `params.json`), without loading the keys.
pub fn key_params(dir: &Path) -> Result<ProofParams, ProverError> {
    let bytes = std::fs::read(dir.join(PARAMS)).map_err(|_| ProverError::NoKeys { dir: dir.to_owned() })?;
    let stored: StoredParams = serde_json::from_slice(&bytes)
        .map_err(|e| ProverError::BadKeys { dir: dir.to_owned(), reason: format!("params.json: {e}") })?;
    Ok(stored.into())
}

/// Loads the key set of `dir`, refusing files that do not hash to `keys.sha256`.
pub fn load_keys(dir: &Path) -> Result<Keys, ProverError> {
    let read = |name: &str| std::fs::read(dir.join(name));
    let bad = |reason: String| ProverError::BadKeys { dir: dir.to_owned(), reason };
    let (params, proving, verifying, hash) = match (read(PARAMS), read(PROVING_KEY), read(VERIFYING_KEY), read(HASH)) {
        (Ok(params), Ok(proving), Ok(verifying), Ok(hash)) => (params, proving, verifying, hash),
        _ => return Err(ProverError::NoKeys { dir: dir.to_owned() }),
    };
    let computed = key_hash(&params, &proving, &verifying);
    if hex(&computed).as_bytes() != hash.trim_ascii() {
        return Err(bad("the key files do not match keys.sha256 (changed or damaged)".into()));
    }
    let stored: StoredParams = serde_json::from_slice(&params).map_err(|e| bad(format!("params.json: {e}")))?;
    Ok(Keys {
        params: stored.into(),
        proving: groth16::from_key_file_bytes(&proving).map_err(|e| bad(format!("proving key: {e}")))?,
        verifying: groth16::from_bytes(&verifying).map_err(|e| bad(format!("verifying key: {e}")))?,
        hash: computed,
    })
}

/// What the prover needs to prove slot `slot_index` of a verifiable dataset held here.
#[derive(Debug, Clone)]
pub struct SlotFiles {
    /// The verifiable manifest.
    pub manifest: Manifest,
    pub slot_index: u64,
    /// The segment holding the slot's blocks at their dataset positions.
    pub data_path: PathBuf,
    /// The segment's `.slots` file (block digests).
    pub slots_path: PathBuf,
}

/// A proof, ready for the marketplace.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotProof {
    pub proof: AbiProof,
    /// `[entropy, dataSetRoot, slotIndex]` as uint256.
    pub public: [Uint256; 3],
    /// The proof in arkworks' form (for [`VerifyProof`]).
    pub raw: Proof,
    pub public_fields: [F; 3],
}

/// Command: prove that slot `slot.slot_index` is held, for `challenge` (the 32-byte on-chain randomness).
#[derive(Message)]
#[rtype(result = "Result<SlotProof, ProverError>")]
pub struct Prove {
    pub slot: SlotFiles,
    pub challenge: [u8; 32],
}

/// Query: does `proof` verify for `public` under the loaded verifying key?
#[derive(Message)]
#[rtype(result = "Result<bool, ProverError>")]
pub struct VerifyProof {
    pub public: [F; 3],
    pub proof: Proof,
}

/// What the prover runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProverInfo {
    pub loaded: bool,
    pub key_hash: Option<[u8; 32]>,
    pub samples: Option<usize>,
}

/// Query: the prover's keys.
#[derive(Message)]
#[rtype(result = "ProverInfo")]
pub struct GetProverInfo;

/// Configuration of the prover.
#[derive(Debug, Clone)]
pub struct ProverConfig {
    pub circuit_dir: PathBuf,
    /// Every Nth proof is made invalid on purpose; 0 never.
    pub simulate_failures: u32,
    /// Proofs that may wait for the prover; more are refused with [`ProverError::Busy`].
    pub queue: usize,
}

/// The prover actor (see the module documentation).
pub struct ProverActor {
    config: ProverConfig,
    keys: Option<Result<Keys, String>>,
    proofs: u64,
}

impl Actor for ProverActor {
    type Context = SyncContext<Self>;

    fn started(&mut self, _: &mut Self::Context) {
        let started = std::time::Instant::now();
        let keys = load_keys(&self.config.circuit_dir);
        match &keys {
            Ok(keys) => tracing::info!(
                hash = %hex(&keys.hash),
                samples = keys.params.samples,
                ms = started.elapsed().as_millis() as u64,
                "proving keys loaded"
            ),
            Err(err) => tracing::warn!(%err, "no usable proving keys; proofs will fail"),
        }
        self.keys = Some(keys.map_err(|err| err.to_string()));
    }
}

impl ProverActor {
    fn keys(&self) -> Result<&Keys, ProverError> {
        match &self.keys {
            Some(Ok(keys)) => Ok(keys),
            Some(Err(reason)) => {
                Err(ProverError::BadKeys { dir: self.config.circuit_dir.clone(), reason: reason.clone() })
            }
            None => Err(ProverError::NoKeys { dir: self.config.circuit_dir.clone() }),
        }
    }
}

impl Handler<Prove> for ProverActor {
    type Result = Result<SlotProof, ProverError>;
    fn handle(&mut self, msg: Prove, _: &mut Self::Context) -> Self::Result {
        let started = std::time::Instant::now();
        let keys = self.keys()?;
        let input = proof_input(&keys.params, &msg.slot, &msg.challenge)?;
        let public_fields = input.public_inputs();
        let witness_ms = started.elapsed().as_millis() as u64;
        let mut seed = [0u8; 32];
        File::open("/dev/urandom")
            .and_then(|file| file.read_exact_at(&mut seed, 0))
            .map_err(ProverError::io("reading randomness"))?;
        let samples = keys.params.samples;
        let mut raw = groth16::prove_seeded(&keys.proving, keys.params, input, seed)?;
        self.proofs += 1;
        let simulate = self.config.simulate_failures;
        if simulate > 0 && self.proofs.is_multiple_of(u64::from(simulate)) {
            tracing::warn!(slot = msg.slot.slot_index, "simulating a proof failure: this proof is invalid on purpose");
            std::mem::swap(&mut raw.a, &mut raw.c);
        }
        tracing::info!(
            slot = msg.slot.slot_index,
            samples,
            witness_ms,
            total_ms = started.elapsed().as_millis() as u64,
            "proof made"
        );
        Ok(SlotProof { proof: AbiProof::from(&raw), public: abi_public(&public_fields), raw, public_fields })
    }
}

impl Handler<VerifyProof> for ProverActor {
    type Result = Result<bool, ProverError>;
    fn handle(&mut self, msg: VerifyProof, _: &mut Self::Context) -> Self::Result {
        Ok(groth16::verify(&self.keys()?.verifying, &msg.public, &msg.proof)?)
    }
}

impl Handler<GetProverInfo> for ProverActor {
    type Result = MessageResult<GetProverInfo>;
    fn handle(&mut self, _: GetProverInfo, _: &mut Self::Context) -> Self::Result {
        let keys = self.keys().ok();
        MessageResult(ProverInfo {
            loaded: keys.is_some(),
            key_hash: keys.map(|k| k.hash),
            samples: keys.map(|k| k.params.samples),
        })
    }
}

/// The witness of a proof for `slot` and `challenge`, built from the slot's files and checked natively.
fn proof_input(params: &ProofParams, slot: &SlotFiles, challenge: &[u8; 32]) -> Result<ProofInput, ProverError> {
    let verification = slot
        .manifest
        .erasure
        .as_ref()
        .and_then(|e| e.verification.as_ref())
        .ok_or_else(|| ProverError::Slot("not a verifiable dataset".into()))?;
    let layout = SlotLayout::from_manifest(&slot.manifest, verification.cell_size)
        .map_err(|err| ProverError::Slot(err.to_string()))?;
    let slot_roots = verification
        .slot_roots
        .iter()
        .map(root_from_cid)
        .collect::<Option<Vec<F>>>()
        .ok_or_else(|| ProverError::Slot("a slot root is not a field element".into()))?;
    let blocks = layout
        .slot_blocks(slot.slot_index)
        .ok_or_else(|| ProverError::Slot(format!("the dataset has no slot {}", slot.slot_index)))?;
    let digests = read_slot_digests(&slot.slots_path, blocks).map_err(|err| ProverError::Slot(err.to_string()))?;
    let tree = SlotTree::new(&layout, &digests).map_err(|err| ProverError::Slot(err.to_string()))?;
    let data = File::open(&slot.data_path).map_err(ProverError::io("opening the slot's data"))?;
    let block_size = layout.block_size() as usize;
    let read_block = |block_in_slot: u64| -> Option<Vec<u8>> {
        let mut bytes = vec![0u8; block_size];
        let Some(index) = layout.dataset_index(slot.slot_index, block_in_slot) else {
            // A pad block of the slot: all zeros.
            return Some(bytes);
        };
        if layout.is_empty_block(index) {
            return Some(bytes);
        }
        data.read_exact_at(&mut bytes, index * block_size as u64).ok()?;
        Some(bytes)
    };
    let entropy = entropy_from_challenge(challenge);
    let input = ProofInput::build(params, &layout, entropy, &slot_roots, slot.slot_index, &tree, read_block)?;
    input.check(params)?;
    Ok(input)
}

/// The handle callers use: the prover's address plus the count of proofs waiting, to refuse work beyond the
/// configured queue instead of piling it up behind proofs that take seconds each.
#[derive(Clone)]
pub struct Prover {
    addr: Addr<ProverActor>,
    waiting: Arc<AtomicUsize>,
    queue: usize,
}

impl Prover {
    /// Starts the prover on its own thread (keys load there, after the node has started).
    pub fn start(config: ProverConfig) -> Self {
        let queue = config.queue.max(1);
        let addr = SyncArbiter::start(1, move || ProverActor { config: config.clone(), keys: None, proofs: 0 });
        Self { addr, waiting: Arc::new(AtomicUsize::new(0)), queue }
    }

    /// Proves, or refuses at once with [`ProverError::Busy`] when `queue` proofs are already waiting.
    pub async fn prove(&self, slot: SlotFiles, challenge: [u8; 32]) -> Result<SlotProof, ProverError> {
        let waiting = self.waiting.fetch_add(1, Ordering::AcqRel);
        let _done = Decrement(self.waiting.clone());
        if waiting >= self.queue {
            return Err(ProverError::Busy { waiting });
        }
        self.addr.send(Prove { slot, challenge }).await?
    }

    /// Verifies a proof with the loaded verifying key.
    pub async fn verify(&self, public: [F; 3], proof: Proof) -> Result<bool, ProverError> {
        self.addr.send(VerifyProof { public, proof }).await?
    }

    /// The loaded keys.
    pub async fn info(&self) -> Result<ProverInfo, ProverError> {
        Ok(self.addr.send(GetProverInfo).await?)
    }
}

struct Decrement(Arc<AtomicUsize>);

impl Drop for Decrement {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
