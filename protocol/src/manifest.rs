//! The dataset manifest and its protobuf encoding, byte-identical to the original node's coder.
//!
//! Layout (reference codex-facts §3.2): an outer message whose field 1 is the header. Header fields 1–6
//! (treeCid, blockSize, datasetSize, codec, hcodec, version) are always written, zeros included; 7 ErasureInfo
//! only when protected; 8 filename and 9 mimetype only when set. The manifest CID is `codex-manifest` over
//! SHA-256 of these bytes, so every byte matters.

use crate::Cid;
use crate::chunker::DEFAULT_BLOCK_SIZE;
use crate::cid::{
    BLOCK_CODEC, CidError, MANIFEST_CODEC, PROVING_ROOT_CODEC, ROOT_CODEC, SHA2_256, SLOT_ROOT_CODEC, cid_from_bytes,
    cid_from_sha256, sha256, sha256_digest,
};
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
    #[error("manifest block size {block_size} is not supported: Codex datasets use {expected}-byte blocks")]
    UnsupportedBlockSize { block_size: u64, expected: u64 },
    #[error("manifest field {field} is {value:#x}, expected {expected:#x}")]
    UnexpectedValue { field: &'static str, value: u64, expected: u64 },
    #[error("manifest field {field} names a CID with codec {codec:#x}, expected {expected:#x}")]
    WrongCidCodec { field: &'static str, codec: u64, expected: u64 },
    #[error("manifest field {field} names a CID that is not a 32-byte SHA-256 multihash")]
    NotSha256 { field: &'static str },
    #[error("manifest describes an empty dataset")]
    EmptyDataset,
    #[error("manifest dataset size {size} exceeds the supported maximum of {max} bytes")]
    DatasetTooLarge { size: u64, max: u64 },
    #[error("manifest field {field} is {len} bytes long, at most {max} allowed")]
    TextTooLong { field: &'static str, len: usize, max: usize },
    #[error("manifest field {field} contains control characters")]
    ControlCharacter { field: &'static str },
    #[error("manifest erasure parameters are invalid: ecK = {ec_k}, ecM = {ec_m}")]
    BadErasureParameters { ec_k: u64, ec_m: u64 },
    #[error("manifest original dataset size {original} is invalid for a protected dataset of {dataset} bytes")]
    BadOriginalSize { original: u64, dataset: u64 },
    #[error("protected manifest has {blocks} blocks, its erasure parameters need {expected}")]
    ProtectedBlockCount { blocks: u64, expected: u64 },
    #[error("manifest field {field} is {value}, not a known strategy (0 linear, 1 stepped)")]
    UnknownStrategy { field: &'static str, value: u64 },
    #[error("verifiable manifest has {count} slot roots, expected ecK + ecM = {expected}")]
    SlotRootCount { count: usize, expected: u64 },
    #[error("verifiable manifest cell size {cell_size} is invalid: a power of two dividing the block size")]
    BadCellSize { cell_size: u64 },
}

/// The largest dataset a manifest may describe (1 PiB). The original has no explicit cap; this one keeps
/// every derived size (leaves × block size, tree nodes × 32) far from u64 overflow.
pub const MAX_DATASET_SIZE: u64 = 1 << 50;

/// The longest filename or mimetype accepted in a manifest, in bytes (a common file system's name limit).
pub const MAX_TEXT_LEN: usize = 255;

/// The largest `ecK + ecM` (Leopard's GF(2^16) limit on the shards of one group).
pub const MAX_EC_SHARDS: u64 = 1 << 16;

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

    /// The unprotected view of a protected manifest (codex-facts §3.3): the original dataset's manifest (its
    /// tree and size, the same name and type); `None` for an unprotected manifest.
    pub fn unprotected_view(&self) -> Option<Manifest> {
        let erasure = self.erasure.as_ref()?;
        Some(Manifest {
            tree_cid: erasure.original_tree_cid,
            dataset_size: erasure.original_dataset_size,
            erasure: None,
            ..self.clone()
        })
    }

    /// Bytes a reader gets back: the original size for protected manifests, else the dataset size.
    pub fn content_size(&self) -> u64 {
        self.erasure.as_ref().map_or(self.dataset_size, |e| e.original_dataset_size)
    }

    /// Checks that the manifest is one the original node could have written, before anything is sized from it.
    /// Pure: run it on every manifest that comes from the network (or is read back from a repository) before
    /// allocating or storing anything. Rules:
    /// - `blockSize` is exactly [`DEFAULT_BLOCK_SIZE`] (the original always writes 64 KiB blocks; a tiny block
    ///   size would make a small manifest describe a gigantic tree);
    /// - `codec` is codex-block, `hcodec` SHA-256, `version` 1;
    /// - `treeCid` is a codex-root CID over a 32-byte SHA-256 multihash;
    /// - `datasetSize` is in `1..=`[`MAX_DATASET_SIZE`];
    /// - filename and mimetype are at most [`MAX_TEXT_LEN`] bytes, without control characters;
    /// - protected: `1 ≤ ecK`, `ecK + ecM ≤` [`MAX_EC_SHARDS`], a valid original tree CID, `0 < originalSize ≤
    ///   datasetSize`, known strategies, and `blocksCount = ceil(ceil(originalSize / blockSize) / ecK) × (ecK + ecM)`
    ///   (codex-facts §3.1);
    /// - verifiable: a codex-proving-root verify root, `ecK + ecM` codex-slot-root slot roots, a cell size that
    ///   is a power of two dividing the block size, a known strategy.
    pub fn validate(&self) -> Result<(), ManifestError> {
        let expected_block = DEFAULT_BLOCK_SIZE as u64;
        if self.block_size != expected_block {
            return Err(ManifestError::UnsupportedBlockSize { block_size: self.block_size, expected: expected_block });
        }
        expect_value("codec", self.codec, BLOCK_CODEC)?;
        expect_value("hcodec", self.hcodec, SHA2_256)?;
        expect_value("version", self.version, 1)?;
        check_cid("treeCid", &self.tree_cid, ROOT_CODEC, true)?;
        if self.dataset_size == 0 {
            return Err(ManifestError::EmptyDataset);
        }
        if self.dataset_size > MAX_DATASET_SIZE {
            return Err(ManifestError::DatasetTooLarge { size: self.dataset_size, max: MAX_DATASET_SIZE });
        }
        check_text("filename", self.filename.as_deref())?;
        check_text("mimetype", self.mimetype.as_deref())?;
        if let Some(erasure) = &self.erasure {
            self.validate_erasure(erasure)?;
        }
        Ok(())
    }

    fn validate_erasure(&self, erasure: &ErasureInfo) -> Result<(), ManifestError> {
        let (ec_k, ec_m) = (erasure.ec_k, erasure.ec_m);
        let shards = ec_k.checked_add(ec_m).filter(|n| ec_k >= 1 && *n <= MAX_EC_SHARDS);
        let shards = shards.ok_or(ManifestError::BadErasureParameters { ec_k, ec_m })?;
        check_cid("originalTreeCid", &erasure.original_tree_cid, ROOT_CODEC, true)?;
        let original = erasure.original_dataset_size;
        if original == 0 || original > self.dataset_size {
            return Err(ManifestError::BadOriginalSize { original, dataset: self.dataset_size });
        }
        check_strategy("protectedStrategy", erasure.protected_strategy)?;
        // Sizes are capped by MAX_DATASET_SIZE and shards by MAX_EC_SHARDS: no product below overflows.
        let steps = original.div_ceil(self.block_size).div_ceil(ec_k);
        let expected = steps * shards;
        if self.blocks_count() != expected {
            return Err(ManifestError::ProtectedBlockCount { blocks: self.blocks_count(), expected });
        }
        if let Some(verification) = &erasure.verification {
            check_cid("verifyRoot", &verification.verify_root, PROVING_ROOT_CODEC, false)?;
            if verification.slot_roots.len() as u64 != shards {
                return Err(ManifestError::SlotRootCount { count: verification.slot_roots.len(), expected: shards });
            }
            for root in &verification.slot_roots {
                check_cid("slotRoots", root, SLOT_ROOT_CODEC, false)?;
            }
            let cell_size = verification.cell_size;
            if !cell_size.is_power_of_two() || !self.block_size.is_multiple_of(cell_size) {
                return Err(ManifestError::BadCellSize { cell_size });
            }
            check_strategy("verifiableStrategy", verification.verifiable_strategy)?;
        }
        Ok(())
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

fn expect_value(field: &'static str, value: u64, expected: u64) -> Result<(), ManifestError> {
    if value == expected { Ok(()) } else { Err(ManifestError::UnexpectedValue { field, value, expected }) }
}

/// Checks a CID's codec and, for SHA-256 trees, its multihash (slot and proving roots are Poseidon2 digests).
fn check_cid(field: &'static str, cid: &Cid, codec: u64, sha256_tree: bool) -> Result<(), ManifestError> {
    if cid.codec() != codec {
        return Err(ManifestError::WrongCidCodec { field, codec: cid.codec(), expected: codec });
    }
    if sha256_tree && sha256_digest(cid).is_err() {
        return Err(ManifestError::NotSha256 { field });
    }
    Ok(())
}

fn check_text(field: &'static str, text: Option<&str>) -> Result<(), ManifestError> {
    let Some(text) = text else { return Ok(()) };
    if text.len() > MAX_TEXT_LEN {
        return Err(ManifestError::TextTooLong { field, len: text.len(), max: MAX_TEXT_LEN });
    }
    if text.chars().any(char::is_control) {
        return Err(ManifestError::ControlCharacter { field });
    }
    Ok(())
}

fn check_strategy(field: &'static str, value: u64) -> Result<(), ManifestError> {
    if value <= 1 { Ok(()) } else { Err(ManifestError::UnknownStrategy { field, value }) }
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
    use crate::cid::{format_cid, parse_cid};
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

    const BS: u64 = DEFAULT_BLOCK_SIZE as u64;

    fn valid() -> Manifest {
        let tree = cid_from_sha256(ROOT_CODEC, &[7; 32]);
        Manifest::new_unprotected(tree, BS, 3 * BS + 1, Some("a.bin".into()), Some("text/plain".into()))
    }

    /// ecK 2, ecM 1 over 3 original blocks: 2 steps of 3 shards = 6 blocks.
    fn protected(verifiable: bool) -> Manifest {
        let verification = verifiable.then(|| VerificationInfo {
            verify_root: cid_from_sha256(PROVING_ROOT_CODEC, &[1; 32]),
            slot_roots: (0..3).map(|i| cid_from_sha256(SLOT_ROOT_CODEC, &[i; 32])).collect(),
            cell_size: 2048,
            verifiable_strategy: 0,
        });
        Manifest {
            dataset_size: 6 * BS,
            erasure: Some(ErasureInfo {
                ec_k: 2,
                ec_m: 1,
                original_tree_cid: cid_from_sha256(ROOT_CODEC, &[2; 32]),
                original_dataset_size: 3 * BS - 10,
                protected_strategy: 1,
                verification,
            }),
            ..valid()
        }
    }

    fn erasure_of(manifest: &mut Manifest) -> &mut ErasureInfo {
        manifest.erasure.as_mut().expect("protected")
    }

    #[test]
    fn valid_manifests_pass() {
        assert_eq!(valid().validate(), Ok(()));
        assert_eq!(Manifest { dataset_size: 1, ..valid() }.validate(), Ok(()));
        assert_eq!(Manifest { dataset_size: MAX_DATASET_SIZE, ..valid() }.validate(), Ok(()));
        assert_eq!(Manifest { filename: Some("é".repeat(127)), ..valid() }.validate(), Ok(()));
        assert_eq!(protected(false).validate(), Ok(()));
        assert_eq!(protected(true).validate(), Ok(()));
        let vector = Manifest::decode(
            &(0..VECTOR_HEX.len() / 2)
                .map(|i| u8::from_str_radix(&VECTOR_HEX[2 * i..2 * i + 2], 16).expect("hex"))
                .collect::<Vec<_>>(),
        )
        .expect("decodes");
        assert_eq!(vector.validate(), Ok(()));
    }

    #[test]
    fn block_size_must_be_the_default() {
        for block_size in [1, 2, BS - 1, BS + 1, 2 * BS, u64::MAX] {
            let tiny = Manifest { block_size, dataset_size: 1 << 30, ..valid() };
            assert_eq!(tiny.validate(), Err(ManifestError::UnsupportedBlockSize { block_size, expected: BS }));
        }
    }

    #[test]
    fn codecs_and_version_must_match_the_original() {
        let cases = [
            (Manifest { codec: MANIFEST_CODEC, ..valid() }, "codec"),
            (Manifest { hcodec: 0x13, ..valid() }, "hcodec"),
            (Manifest { version: 0, ..valid() }, "version"),
        ];
        for (manifest, field) in cases {
            assert!(matches!(manifest.validate(), Err(ManifestError::UnexpectedValue { field: f, .. }) if f == field));
        }
        let block_tree = Manifest { tree_cid: cid_from_sha256(BLOCK_CODEC, &[7; 32]), ..valid() };
        assert!(matches!(block_tree.validate(), Err(ManifestError::WrongCidCodec { field: "treeCid", .. })));
        let identity = multihash::Multihash::<64>::wrap(0x00, &[7; 32]).expect("fits");
        let not_sha = Manifest { tree_cid: Cid::new_v1(ROOT_CODEC, identity), ..valid() };
        assert_eq!(not_sha.validate(), Err(ManifestError::NotSha256 { field: "treeCid" }));
        let short = multihash::Multihash::<64>::wrap(SHA2_256, &[7; 20]).expect("fits");
        let short = Manifest { tree_cid: Cid::new_v1(ROOT_CODEC, short), ..valid() };
        assert_eq!(short.validate(), Err(ManifestError::NotSha256 { field: "treeCid" }));
    }

    #[test]
    fn dataset_size_is_bounded() {
        assert_eq!(Manifest { dataset_size: 0, ..valid() }.validate(), Err(ManifestError::EmptyDataset));
        let huge = Manifest { dataset_size: MAX_DATASET_SIZE + 1, ..valid() };
        assert!(matches!(huge.validate(), Err(ManifestError::DatasetTooLarge { .. })));
        let max = Manifest { dataset_size: u64::MAX, ..valid() };
        assert!(matches!(max.validate(), Err(ManifestError::DatasetTooLarge { .. })));
    }

    #[test]
    fn filename_and_mimetype_are_capped_and_printable() {
        let long = Manifest { filename: Some("a".repeat(256)), ..valid() };
        assert_eq!(long.validate(), Err(ManifestError::TextTooLong { field: "filename", len: 256, max: 255 }));
        assert_eq!(Manifest { filename: Some("a".repeat(255)), ..valid() }.validate(), Ok(()));
        let long = Manifest { mimetype: Some("a".repeat(300)), ..valid() };
        assert!(matches!(long.validate(), Err(ManifestError::TextTooLong { field: "mimetype", .. })));
        for bad in ["a\nb", "\u{0}", "x\u{7f}", "\u{9b}"] {
            let name = Manifest { filename: Some(bad.into()), ..valid() };
            assert_eq!(name.validate(), Err(ManifestError::ControlCharacter { field: "filename" }), "{bad:?}");
            let mime = Manifest { mimetype: Some(bad.into()), ..valid() };
            assert_eq!(mime.validate(), Err(ManifestError::ControlCharacter { field: "mimetype" }), "{bad:?}");
        }
    }

    #[test]
    fn erasure_fields_are_consistent() {
        let mut m = protected(true);
        erasure_of(&mut m).ec_k = 0;
        assert!(matches!(m.validate(), Err(ManifestError::BadErasureParameters { .. })));
        let mut m = protected(false);
        erasure_of(&mut m).ec_m = u64::MAX;
        assert!(matches!(m.validate(), Err(ManifestError::BadErasureParameters { .. })));
        let mut m = protected(false);
        erasure_of(&mut m).original_dataset_size = 6 * BS + 1;
        assert!(matches!(m.validate(), Err(ManifestError::BadOriginalSize { .. })));
        let mut m = protected(false);
        erasure_of(&mut m).original_dataset_size = 0;
        assert!(matches!(m.validate(), Err(ManifestError::BadOriginalSize { .. })));
        let mut m = protected(false);
        erasure_of(&mut m).original_tree_cid = cid_from_sha256(MANIFEST_CODEC, &[2; 32]);
        assert!(matches!(m.validate(), Err(ManifestError::WrongCidCodec { field: "originalTreeCid", .. })));
        let mut m = protected(false);
        erasure_of(&mut m).protected_strategy = 2;
        assert!(matches!(m.validate(), Err(ManifestError::UnknownStrategy { field: "protectedStrategy", .. })));
        let m = Manifest { dataset_size: 5 * BS, ..protected(false) };
        assert_eq!(m.validate(), Err(ManifestError::ProtectedBlockCount { blocks: 5, expected: 6 }));
    }

    #[test]
    fn verification_fields_are_consistent() {
        let mut m = protected(true);
        erasure_of(&mut m).verification.as_mut().expect("verifiable").slot_roots.pop();
        assert_eq!(m.validate(), Err(ManifestError::SlotRootCount { count: 2, expected: 3 }));
        let mut m = protected(true);
        erasure_of(&mut m).verification.as_mut().expect("verifiable").slot_roots[1] =
            cid_from_sha256(ROOT_CODEC, &[0; 32]);
        assert!(matches!(m.validate(), Err(ManifestError::WrongCidCodec { field: "slotRoots", .. })));
        let mut m = protected(true);
        erasure_of(&mut m).verification.as_mut().expect("verifiable").verify_root =
            cid_from_sha256(SLOT_ROOT_CODEC, &[0; 32]);
        assert!(matches!(m.validate(), Err(ManifestError::WrongCidCodec { field: "verifyRoot", .. })));
        for cell_size in [0, 3, 3000, 2 * BS] {
            let mut m = protected(true);
            erasure_of(&mut m).verification.as_mut().expect("verifiable").cell_size = cell_size;
            assert_eq!(m.validate(), Err(ManifestError::BadCellSize { cell_size }));
        }
        let mut m = protected(true);
        erasure_of(&mut m).verification.as_mut().expect("verifiable").verifiable_strategy = 7;
        assert!(matches!(m.validate(), Err(ManifestError::UnknownStrategy { field: "verifiableStrategy", .. })));
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
        fn validate_never_panics_and_accepts_only_default_blocks(manifest in arb_manifest()) {
            if manifest.validate().is_ok() {
                prop_assert_eq!(manifest.block_size, BS);
                prop_assert!(manifest.dataset_size >= 1 && manifest.dataset_size <= MAX_DATASET_SIZE);
            }
        }

        #[test]
        fn unprotected_default_block_manifests_validate(size in 1..=MAX_DATASET_SIZE, name in "[a-z]{0,255}") {
            let manifest = Manifest::new_unprotected(cid_from_sha256(ROOT_CODEC, &[3; 32]), BS, size, Some(name), None);
            prop_assert_eq!(manifest.validate(), Ok(()));
            let decoded = Manifest::decode(&manifest.encode());
            prop_assert_eq!(decoded.map(|m| m.validate()), Ok(Ok(())));
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Manifest::decode(&bytes);
        }
    }
}
