//! A manifest block fetched from a peer: decoding never panics, and whatever decodes survives a round trip
//! (`decode(encode(m)) == m`), so the CID we compute for a decoded manifest is the CID of what we re-serve.
#![no_main]

use codex_protocol::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(manifest) = Manifest::decode(data) else { return };
    let _ = (manifest.blocks_count(), manifest.content_size(), manifest.is_protected());
    let encoded = manifest.encode();
    assert_eq!(Manifest::decode(&encoded).as_ref(), Ok(&manifest));
    // Encoding is canonical: a decoded manifest's encoding encodes to itself.
    assert_eq!(Manifest::decode(&encoded).map(|m| m.encode()), Ok(encoded));
});
