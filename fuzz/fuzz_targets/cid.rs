//! CIDs as peers and HTTP clients send them: the binary form (blockexc and manifest fields) and the text form
//! (REST paths). Parsing never panics; a parsed CID round-trips through both forms.
#![no_main]

use codex_protocol::cid::{cid_from_bytes, format_cid, is_manifest, parse_cid, sha256_digest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(cid) = cid_from_bytes(data) {
        let _ = (sha256_digest(&cid), is_manifest(&cid));
        assert_eq!(cid_from_bytes(&cid.to_bytes()), Ok(cid));
        if u64::from(cid.version()) == 1 {
            assert_eq!(parse_cid(&format_cid(&cid)), Ok(cid));
        }
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(cid) = parse_cid(text)
    {
        let _ = sha256_digest(&cid);
        assert_eq!(cid_from_bytes(&cid.to_bytes()), Ok(cid));
        assert_eq!(parse_cid(&format_cid(&cid)), Ok(cid));
    }
});
