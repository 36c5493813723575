//! Signed peer records (`spr:` text from a bootstrap node setting or a peer), and the two binary layers under
//! the text: the signed envelope and the peer record. Nothing panics; what verifies names at most as many
//! addresses as its bytes could hold.
#![no_main]

use codex_protocol::spr::{decode_envelope, decode_peer_record, decode_spr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(record) = decode_spr(text)
    {
        assert!(record.addrs.len() <= data.len() / 2);
    }
    if let Ok(record) = decode_envelope(data) {
        assert!(record.addrs.len() <= data.len() / 2);
    }
    if let Ok(record) = decode_peer_record(data) {
        assert!(record.addrs.len() <= data.len() / 2);
        let _ = record.peer.to_base58();
        for addr in &record.addrs {
            let _ = addr.to_string();
        }
    }
});
