//! The blockexc stream framing: a varint length prefix, then the body. The input is a stream's bytes; it is cut
//! into frames the way a reader does, checking that the prefix parser is incremental (a prefix of a prefix is
//! "need more") and never lets through a length over the limit or a prefix over 10 bytes.
#![no_main]

use codex_protocol::frame::{MAX_FRAME_LEN, MAX_PREFIX_LEN, parse_len_prefix, put_varint, split_frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    loop {
        match parse_len_prefix(rest) {
            Err(_) => {
                // A refused prefix is refused however many more bytes follow, and is never "need more".
                assert!(split_frame(rest).is_err());
                return;
            }
            Ok(None) => {
                assert!(rest.len() < MAX_PREFIX_LEN);
                assert_eq!(split_frame(rest), Ok(None));
                return;
            }
            Ok(Some((len, used))) => {
                assert!((1..=MAX_PREFIX_LEN).contains(&used) && used <= rest.len());
                assert!(len <= MAX_FRAME_LEN);
                for cut in 0..used {
                    assert_eq!(parse_len_prefix(&rest[..cut]), Ok(None));
                }
                let mut minimal = Vec::new();
                put_varint(&mut minimal, len);
                assert!(minimal.len() <= used);
                assert_eq!(parse_len_prefix(&minimal), Ok(Some((len, minimal.len()))));
                match split_frame(rest) {
                    Ok(Some((body, total))) => {
                        assert_eq!(body.len() as u64, len);
                        assert_eq!(total, used + body.len());
                        assert_eq!(body, &rest[used..total]);
                        rest = &rest[total..];
                    }
                    Ok(None) => {
                        assert!(((rest.len() - used) as u64) < len);
                        return;
                    }
                    Err(err) => panic!("split_frame refused a prefix parse_len_prefix accepted: {err}"),
                }
            }
        }
    }
});
