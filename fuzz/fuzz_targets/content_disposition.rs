//! The `Content-Disposition` header of an upload, as raw header bytes from any HTTP client. An accepted filename
//! passes the original's filename rules (so it cannot escape a directory or break the header it is echoed in).
#![no_main]

use codex_protocol::http::{disposition_filename, is_valid_filename};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(name)) = disposition_filename(data) {
        assert!(is_valid_filename(&name));
        assert!(!name.is_empty() && name.len() <= 255);
        assert!(!name.contains(['/', '\\', '"']) && !name.chars().any(char::is_control));
        assert!(String::from_utf8_lossy(data).contains(&name));
    }
});
