//! The `Range` header of a download, from any HTTP client. The first 8 bytes are the body length (little
//! endian), the rest the header text. A served range is never empty and never leaves the body.
#![no_main]

use codex_protocol::http::{RangeError, parse_range};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (len_bytes, header) = data.split_at(data.len().min(8));
    let mut len = [0u8; 8];
    len[..len_bytes.len()].copy_from_slice(len_bytes);
    let len = u64::from_le_bytes(len);
    let Ok(value) = std::str::from_utf8(header) else { return };
    match parse_range(value, len) {
        Ok(Some((start, end))) => assert!(start < end && end <= len, "range {start}..{end} of {len} bytes"),
        Ok(None) => {}
        Err(RangeError::Unsatisfiable { len: reported }) => assert_eq!(reported, len),
    }
});
