//! Stream framing of the block exchange: each message is an unsigned-varint length prefix and that many bytes.
//!
//! The transport reads bytes as they arrive; [`parse_len_prefix`] looks at what it has so far and says whether
//! the prefix is complete, so a reader can ask for more without ever trusting a length it has not checked.
//! Lengths over the limit and varints longer than 10 bytes are refused before any body byte is awaited.

use crate::blockexc::MAX_MESSAGE_SIZE;
use thiserror::Error;

pub use crate::protobuf::put_varint;

/// Longest accepted length prefix: 10 bytes hold any u64.
pub const MAX_PREFIX_LEN: usize = 10;
/// Largest frame body [`parse_len_prefix`] accepts: the largest blockexc message.
pub const MAX_FRAME_LEN: u64 = MAX_MESSAGE_SIZE as u64;

/// Why a length prefix is refused. Either means the peer speaks garbage: the stream cannot be resynchronised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("frame length varint is longer than {MAX_PREFIX_LEN} bytes or overflows 64 bits")]
    VarintTooLong,
    #[error("frame of {len} bytes exceeds {max}")]
    TooLarge { len: u64, max: u64 },
}

/// Parses the length prefix at the start of `bytes`, refusing bodies over [`MAX_FRAME_LEN`].
///
/// `Ok(None)`: the prefix is not complete yet (read more). `Ok(Some((len, used)))`: the body is `len` bytes and
/// starts at `bytes[used]`.
pub fn parse_len_prefix(bytes: &[u8]) -> Result<Option<(u64, usize)>, FrameError> {
    parse_len_prefix_max(bytes, MAX_FRAME_LEN)
}

/// [`parse_len_prefix`] with another limit on the body length.
pub fn parse_len_prefix_max(bytes: &[u8], max: u64) -> Result<Option<(u64, usize)>, FrameError> {
    let mut len: u64 = 0;
    for (i, byte) in bytes.iter().take(MAX_PREFIX_LEN).enumerate() {
        let low = u64::from(byte & 0x7f);
        // The tenth byte holds bit 63 only; anything more overflows.
        if i == MAX_PREFIX_LEN - 1 && (low > 1 || byte & 0x80 != 0) {
            return Err(FrameError::VarintTooLong);
        }
        len |= low << (7 * i);
        if byte & 0x80 == 0 {
            if len > max {
                return Err(FrameError::TooLarge { len, max });
            }
            return Ok(Some((len, i + 1)));
        }
    }
    Ok(None)
}

/// Splits the first whole frame off `bytes`: `Ok(Some((body, used)))` when `bytes` holds its prefix and whole
/// body (`used` bytes in all), `Ok(None)` when more bytes are needed.
pub fn split_frame(bytes: &[u8]) -> Result<Option<(&[u8], usize)>, FrameError> {
    let Some((len, prefix)) = parse_len_prefix(bytes)? else { return Ok(None) };
    let body_len = usize::try_from(len).map_err(|_| FrameError::TooLarge { len, max: MAX_FRAME_LEN })?;
    let Some(body) = bytes.get(prefix..).and_then(|rest| rest.get(..body_len)) else { return Ok(None) };
    Ok(Some((body, prefix + body_len)))
}

/// Appends `body` to `out` as one frame.
pub fn put_frame(out: &mut Vec<u8>, body: &[u8]) {
    put_varint(out, body.len() as u64);
    out.extend_from_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn prefixes() {
        assert_eq!(parse_len_prefix(&[]), Ok(None));
        assert_eq!(parse_len_prefix(&[0x00]), Ok(Some((0, 1))));
        assert_eq!(parse_len_prefix(&[0x05, 1, 2]), Ok(Some((5, 1))));
        assert_eq!(parse_len_prefix(&[0xac, 0x02]), Ok(Some((300, 2))));
        assert_eq!(parse_len_prefix(&[0xac]), Ok(None));
        // A non-minimal encoding of 0 is still a complete prefix.
        assert_eq!(parse_len_prefix(&[0x80, 0x00]), Ok(Some((0, 2))));
        let mut max = Vec::new();
        put_varint(&mut max, MAX_FRAME_LEN);
        assert_eq!(parse_len_prefix(&max), Ok(Some((MAX_FRAME_LEN, max.len()))));
        let mut over = Vec::new();
        put_varint(&mut over, MAX_FRAME_LEN + 1);
        assert_eq!(parse_len_prefix(&over), Err(FrameError::TooLarge { len: MAX_FRAME_LEN + 1, max: MAX_FRAME_LEN }));
    }

    #[test]
    fn long_varints_are_refused() {
        assert_eq!(parse_len_prefix(&[0xff; 9]), Ok(None));
        assert_eq!(parse_len_prefix(&[0xff; 10]), Err(FrameError::VarintTooLong));
        assert_eq!(parse_len_prefix(&[0xff; 20]), Err(FrameError::VarintTooLong));
        let mut top = vec![0x80; 9];
        top.push(0x01);
        assert!(matches!(parse_len_prefix_max(&top, u64::MAX), Ok(Some((len, 10))) if len == 1 << 63));
        top[9] = 0x02;
        assert_eq!(parse_len_prefix_max(&top, u64::MAX), Err(FrameError::VarintTooLong));
        let mut u64_max = Vec::new();
        put_varint(&mut u64_max, u64::MAX);
        assert_eq!(parse_len_prefix_max(&u64_max, u64::MAX), Ok(Some((u64::MAX, 10))));
        assert!(matches!(parse_len_prefix(&u64_max), Err(FrameError::TooLarge { .. })));
    }

    #[test]
    fn frames_split_in_order() {
        let mut bytes = Vec::new();
        put_frame(&mut bytes, &[]);
        put_frame(&mut bytes, &[7; 300]);
        let (first, used) = split_frame(&bytes).expect("valid").expect("whole");
        assert_eq!((first, used), (&[][..], 1));
        let (second, used2) = split_frame(&bytes[used..]).expect("valid").expect("whole");
        assert_eq!((second, used + used2), (&[7u8; 300][..], bytes.len()));
        assert_eq!(split_frame(&bytes[used..bytes.len() - 1]), Ok(None));
    }

    proptest! {
        #[test]
        fn every_prefix_round_trips_and_is_incremental(len in 0u64..=MAX_FRAME_LEN) {
            let mut bytes = Vec::new();
            put_varint(&mut bytes, len);
            prop_assert_eq!(parse_len_prefix(&bytes), Ok(Some((len, bytes.len()))));
            for cut in 0..bytes.len() {
                prop_assert_eq!(parse_len_prefix(&bytes[..cut]), Ok(None));
            }
        }
    }
}
