//! The dataset manifest and its protobuf encoding, byte-identical to the original node's coder.
//!
//! Layout (reference codex-facts §3.2): an outer message whose field 1 is the header. Header fields 1–6
//! (treeCid, blockSize, datasetSize, codec, hcodec, version) are always written, zeros included; 7 ErasureInfo
//! only when protected; 8 filename and 9 mimetype only when set. The manifest CID is `codex-manifest` over
//! SHA-256 of these bytes, so every byte matters.

use crate::Cid;
use crate::cid::{BLOCK_CODEC, CidError, MANIFEST_CODEC, SHA2_256, cid_from_bytes, cid_from_sha256, sha256};
use crate::protobuf::{Reader, Value, WireError, Writer};
use thiserror::Error;

/// Errors decoding a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ManifestError {
    #[error("malformed manifest: {0}")]
    Wire(#[from] WireError),
    #[error("manifest has no header")]
    MissingHeader,
    #[error("manifest field {field} is missing")]
    MissingField { field: &'static str },
    #[error("manifest field {field} holds a bad CID: {source}")]
    BadCid { field: &'static str, source: CidError },
    #[error("manifest field {field} is not valid UTF-8")]
    BadString { field: &'static str },
    #[error("manifest block size {block_size} is invalid")]
    BadBlockSize { block_size: u64 },
}

/// Erasure-coding information of a protected manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasureInfo {
    pub ec_k: u64,
    pub ec_m: u64,
    pub original_tree_cid: Cid,
    pub original_dataset_size: u64,
    pub protected_strategy: u64,
    pub verification: Option<VerificationInfo>,
}

/// Slot verification information of a verifiable manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerificationInfo {
    pub verify_root: Cid,
    pub slot_roots: Vec<Cid>,
    pub cell_size: u64,
    pub verifiable_strategy: u64,
}

/// A dataset manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub tree_cid: Cid,
    pub block_size: u64,
    pub dataset_size: u64,
    pub codec: u64,
    pub hcodec: u64,
    pub version: u64,
    pub filename: Option<String>,
    pub mimetype: Option<String>,
    pub erasure: Option<ErasureInfo>,
}

impl Manifest {
    /// The manifest of a freshly uploaded (unprotected) dataset.
    pub fn new_unprotected(
        tree_cid: Cid,
        block_size: u64,
        dataset_size: u64,
        filename: Option<String>,
        mimetype: Option<String>,
    ) -> Self {
        Self {
            tree_cid,
            block_size,
            dataset_size,
            codec: BLOCK_CODEC,
            hcodec: SHA2_256,
            version: 1,
            filename: filename.filter(|s| !s.is_empty()),
            mimetype: mimetype.filter(|s| !s.is_empty()),
            erasure: None,
        }
    }

    pub fn is_protected(&self) -> bool {
        self.erasure.is_some()
    }

    /// Number of blocks in the tree: `ceil(datasetSize / blockSize)`.
    pub fn blocks_count(&self) -> u64 {
        if self.block_size == 0 { 0 } else { self.dataset_size.div_ceil(self.block_size) }
    }

    /// Bytes a reader gets back: the original size for protected manifests, else the dataset size.
    pub fn content_size(&self) -> u64 {
        self.erasure.as_ref().map_or(self.dataset_size, |e| e.original_dataset_size)
    }

    /// Encodes the manifest exactly as the original node does.
    pub fn encode(&self) -> Vec<u8> {
        let mut header = Writer::new();
        header
            .bytes(1, &self.tree_cid.to_bytes())
            .varint(2, self.block_size)
            .varint(3, self.dataset_size)
            .varint(4, self.codec)
            .varint(5, self.hcodec)
            .varint(6, self.version);
        if let Some(erasure) = &self.erasure {
            let mut info = Writer::new();
            info.varint(1, erasure.ec_k)
                .varint(2, erasure.ec_m)
                .bytes(3, &erasure.original_tree_cid.to_bytes())
                .varint(4, erasure.original_dataset_size)
                .varint(5, erasure.protected_strategy);
            if let Some(verification) = &erasure.verification {
                let mut ver = Writer::new();
                ver.bytes(1, &verification.verify_root.to_bytes());
                for root in &verification.slot_roots {
                    ver.bytes(2, &root.to_bytes());
                }
                ver.varint(3, verification.cell_size).varint(4, verification.verifiable_strategy);
                info.bytes(6, &ver.finish());
            }
            header.bytes(7, &info.finish());
        }
        if let Some(filename) = &self.filename {
            header.bytes(8, filename.as_bytes());
        }
        if let Some(mimetype) = &self.mimetype {
            header.bytes(9, mimetype.as_bytes());
        }
        let mut outer = Writer::new();
        outer.bytes(1, &header.finish());
        outer.finish()
    }

    /// The manifest CID of `encoded` (the output of [`Manifest::encode`]).
    pub fn cid_of(encoded: &[u8]) -> Cid {
        cid_from_sha256(MANIFEST_CODEC, &sha256(encoded))
    }

    /// Decodes a manifest. Bytes may come from peers: never panics.
    pub fn decode(bytes: &[u8]) -> Result<Self, ManifestError> {
        let mut outer = Reader::new(bytes);
        let mut header = None;
        while let Some((field, value)) = outer.next_field()? {
            if let (1, Value::Bytes(b)) = (field, value) {
                header = Some(b);
            }
        }
        let header = header.ok_or(ManifestError::MissingHeader)?;
        let mut tree_cid = None;
        let (mut block_size, mut dataset_size, mut codec, mut hcodec, mut version) = (0, 0, 0, 0, 0);
        let (mut filename, mut mimetype, mut erasure) = (None, None, None);
        let mut reader = Reader::new(header);
        while let Some((field, value)) = reader.next_field()? {
            match (field, value) {
                (1, Value::Bytes(b)) => tree_cid = Some(decode_cid(b, "treeCid")?),
                (2, Value::Varint(v)) => block_size = v,
                (3, Value::Varint(v)) => dataset_size = v,
                (4, Value::Varint(v)) => codec = v,
                (5, Value::Varint(v)) => hcodec = v,
                (6, Value::Varint(v)) => version = v,
                (7, Value::Bytes(b)) if !b.is_empty() => erasure = Some(decode_erasure(b)?),
                (8, Value::Bytes(b)) => filename = decode_string(b, "filename")?,
                (9, Value::Bytes(b)) => mimetype = decode_string(b, "mimetype")?,
                _ => {}
            }
        }
        if block_size == 0 {
            return Err(ManifestError::BadBlockSize { block_size });
        }
        Ok(Self {
            tree_cid: tree_cid.ok_or(ManifestError::MissingField { field: "treeCid" })?,
            block_size,
            dataset_size,
            codec,
            hcodec,
            version,
            filename,
            mimetype,
            erasure,
        })
    }
}

fn decode_cid(bytes: &[u8], field: &'static str) -> Result<Cid, ManifestError> {
    cid_from_bytes(bytes).map_err(|source| ManifestError::BadCid { field, source })
}

fn decode_string(bytes: &[u8], field: &'static str) -> Result<Option<String>, ManifestError> {
    let text = std::str::from_utf8(bytes).map_err(|_| ManifestError::BadString { field })?;
    Ok((!text.is_empty()).then(|| text.to_owned()))
}

fn decode_erasure(bytes: &[u8]) -> Result<ErasureInfo, ManifestError> {
    let mut reader = Reader::new(bytes);
    let (mut ec_k, mut ec_m, mut original_dataset_size, mut protected_strategy) = (0, 0, 0, 0);
    let (mut original_tree_cid, mut verification) = (None, None);
    while let Some((field, value)) = reader.next_field()? {
        match (field, value) {
            (1, Value::Varint(v)) => ec_k = v,
            (2, Value::Varint(v)) => ec_m = v,
            (3, Value::Bytes(b)) => original_tree_cid = Some(decode_cid(b, "originalTreeCid")?),
            (4, Value::Varint(v)) => original_dataset_size = v,
            (5, Value::Varint(v)) => protected_strategy = v,
            (6, Value::Bytes(b)) if !b.is_empty() => verification = Some(decode_verification(b)?),
            _ => {}
        }
    }
    Ok(ErasureInfo {
        ec_k,
        ec_m,
        original_tree_cid: original_tree_cid.ok_or(ManifestError::MissingField { field: "originalTreeCid" })?,
        original_dataset_size,
        protected_strategy,
        verification,
    })
}

fn decode_verification(bytes: &[u8]) -> Result<VerificationInfo, ManifestError> {
    let mut reader = Reader::new(bytes);
    let (mut verify_root, mut slot_roots, mut cell_size, mut verifiable_strategy) = (None, Vec::new(), 0, 0);
    while let Some((field, value)) = reader.next_field()? {
        match (field, value) {
            (1, Value::Bytes(b)) => verify_root = Some(decode_cid(b, "verifyRoot")?),
            (2, Value::Bytes(b)) => slot_roots.push(decode_cid(b, "slotRoots")?),
            (3, Value::Varint(v)) => cell_size = v,
            (4, Value::Varint(v)) => verifiable_strategy = v,
            _ => {}
        }
    }
    Ok(VerificationInfo {
        verify_root: verify_root.ok_or(ManifestError::MissingField { field: "verifyRoot" })?,
        slot_roots,
        cell_size,
        verifiable_strategy,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cid::{PROVING_ROOT_CODEC, ROOT_CODEC, SLOT_ROOT_CODEC, format_cid, parse_cid};
    use proptest::prelude::*;

    const VECTOR_HEX: &str = "0a360a2601839a031220050b50fa8145c235e1b817326d34f733420298a9aa511f13622dd81264e8d4df10808004181220829a0328123001";

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn appendix_a_manifest_vector() {
        let tree = parse_cid("zDzSvJTezk7bJNQqFq8k1iHXY84psNuUfZVusA5bBQQUSuyzDSVL").expect("cid");
        let manifest = Manifest::new_unprotected(tree, 65536, 18, None, None);
        let bytes = manifest.encode();
        assert_eq!(hex(&bytes), VECTOR_HEX);
        assert_eq!(bytes.len(), 56);
        assert_eq!(format_cid(&Manifest::cid_of(&bytes)), "zDvZRwzmC3Q7e7NLkfsPmtgSCfectUc1ssn5xK2rzC9yRz1yeZuK");
        assert_eq!(Manifest::decode(&bytes), Ok(manifest));
    }

    #[test]
    fn decode_errors() {
        assert_eq!(Manifest::decode(&[]), Err(ManifestError::MissingHeader));
        assert!(matches!(Manifest::decode(&[0x0a, 0x02, 0x10, 0x00]), Err(ManifestError::BadBlockSize { .. })));
        assert!(matches!(Manifest::decode(&[0x0a, 0x04, 0x10, 0x01, 0x0a, 0x00]), Err(ManifestError::BadCid { .. })));
    }

    fn arb_cid(codec: u64) -> impl Strategy<Value = Cid> {
        any::<[u8; 32]>().prop_map(move |d| cid_from_sha256(codec, &d))
    }

    fn arb_manifest() -> impl Strategy<Value = Manifest> {
        let verification = (
            arb_cid(PROVING_ROOT_CODEC),
            proptest::collection::vec(arb_cid(SLOT_ROOT_CODEC), 0..6),
            1u64..5000,
            0u64..2,
        )
            .prop_map(|(verify_root, slot_roots, cell_size, verifiable_strategy)| VerificationInfo {
                verify_root,
                slot_roots,
                cell_size,
                verifiable_strategy,
            });
        let erasure =
            (1u64..10, 0u64..10, arb_cid(ROOT_CODEC), any::<u64>(), 0u64..2, proptest::option::of(verification))
                .prop_map(
                    |(ec_k, ec_m, original_tree_cid, original_dataset_size, protected_strategy, verification)| {
                        ErasureInfo {
                            ec_k,
                            ec_m,
                            original_tree_cid,
                            original_dataset_size,
                            protected_strategy,
                            verification,
                        }
                    },
                );
        (
            arb_cid(ROOT_CODEC),
            1u64..(1 << 30),
            any::<u64>(),
            proptest::option::of("[a-zA-Z0-9 ._-]{1,40}"),
            proptest::option::of("[a-z]{1,10}/[a-z0-9.+-]{1,20}"),
            proptest::option::of(erasure),
        )
            .prop_map(|(tree_cid, block_size, dataset_size, filename, mimetype, erasure)| Manifest {
                erasure,
                ..Manifest::new_unprotected(tree_cid, block_size, dataset_size, filename, mimetype)
            })
    }

    proptest! {
        #[test]
        fn round_trip(manifest in arb_manifest()) {
            let bytes = manifest.encode();
            prop_assert_eq!(Manifest::decode(&bytes), Ok(manifest));
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Manifest::decode(&bytes);
        }
    }
}
