//! Minimal protobuf wire format: unsigned varints and length-delimited fields.
//!
//! The original node writes its messages with nim-libp2p's `minprotobuf`, which emits every field the code
//! writes (no proto3 default omission) in code order. Generated codecs would not reproduce those bytes, so the
//! few messages we need are written by hand on top of this module.

use thiserror::Error;

/// Errors while reading protobuf bytes. Bytes come from peers and disk: every read is bounds-checked.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    #[error("truncated varint at byte {offset}")]
    TruncatedVarint { offset: usize },
    #[error("varint longer than 10 bytes at byte {offset}")]
    VarintOverflow { offset: usize },
    #[error("length-delimited field of {len} bytes at byte {offset} runs past the end ({available} left)")]
    TruncatedBytes { offset: usize, len: u64, available: usize },
    #[error("unsupported wire type {wire_type} for field {field}")]
    UnsupportedWireType { field: u64, wire_type: u64 },
    #[error("field number 0 is invalid")]
    ZeroField,
}

const WIRE_VARINT: u64 = 0;
const WIRE_FIXED64: u64 = 1;
const WIRE_LEN: u64 = 2;
const WIRE_FIXED32: u64 = 5;

/// Appends protobuf fields to a byte buffer, in the order they are written.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes field `field` as an unsigned varint, even when `value` is zero.
    pub fn varint(&mut self, field: u64, value: u64) -> &mut Self {
        put_varint(&mut self.buf, (field << 3) | WIRE_VARINT);
        put_varint(&mut self.buf, value);
        self
    }

    /// Writes field `field` as length-delimited bytes (also used for strings and nested messages).
    pub fn bytes(&mut self, field: u64, value: &[u8]) -> &mut Self {
        put_varint(&mut self.buf, (field << 3) | WIRE_LEN);
        put_varint(&mut self.buf, value.len() as u64);
        self.buf.extend_from_slice(value);
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Appends `value` as an unsigned LEB128 varint.
pub fn put_varint(buf: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buf.push((value as u8) | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

/// Reads an unsigned varint from the front of `bytes`; returns the value and the bytes consumed.
pub fn get_varint(bytes: &[u8], offset: usize) -> Result<(u64, usize), WireError> {
    let mut value: u64 = 0;
    for (i, byte) in bytes.iter().enumerate() {
        if i >= 10 {
            return Err(WireError::VarintOverflow { offset });
        }
        let low = u64::from(byte & 0x7f);
        if i == 9 && low > 1 {
            return Err(WireError::VarintOverflow { offset });
        }
        value |= low << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    Err(WireError::TruncatedVarint { offset })
}

/// One decoded field value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    /// Fixed-width values are skipped by our messages but accepted for forward compatibility.
    Fixed,
}

/// Iterates over the fields of one message. Unknown fields are returned too; callers ignore them.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    fn read_varint(&mut self) -> Result<u64, WireError> {
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        let (value, used) = get_varint(rest, self.pos)?;
        self.pos += used;
        Ok(value)
    }

    fn take(&mut self, len: u64) -> Result<&'a [u8], WireError> {
        let available = self.bytes.len() - self.pos;
        let end = usize::try_from(len)
            .ok()
            .filter(|len| *len <= available)
            .map(|len| self.pos + len)
            .ok_or(WireError::TruncatedBytes { offset: self.pos, len, available })?;
        let slice =
            self.bytes.get(self.pos..end).ok_or(WireError::TruncatedBytes { offset: self.pos, len, available })?;
        self.pos = end;
        Ok(slice)
    }

    /// Reads the next field, or `None` at the end of the message.
    pub fn next_field(&mut self) -> Result<Option<(u64, Value<'a>)>, WireError> {
        if self.pos >= self.bytes.len() {
            return Ok(None);
        }
        let key = self.read_varint()?;
        let field = key >> 3;
        if field == 0 {
            return Err(WireError::ZeroField);
        }
        let value = match key & 7 {
            WIRE_VARINT => Value::Varint(self.read_varint()?),
            WIRE_LEN => {
                let len = self.read_varint()?;
                Value::Bytes(self.take(len)?)
            }
            WIRE_FIXED64 => {
                self.take(8)?;
                Value::Fixed
            }
            WIRE_FIXED32 => {
                self.take(4)?;
                Value::Fixed
            }
            wire_type => return Err(WireError::UnsupportedWireType { field, wire_type }),
        };
        Ok(Some((field, value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn varint_known_encodings() {
        let mut buf = Vec::new();
        put_varint(&mut buf, 65536);
        assert_eq!(buf, [0x80, 0x80, 0x04]);
        let mut buf = Vec::new();
        put_varint(&mut buf, 0xCD02);
        assert_eq!(buf, [0x82, 0x9a, 0x03]);
    }

    #[test]
    fn truncated_inputs_are_errors() {
        assert!(get_varint(&[0x80], 0).is_err());
        let mut reader = Reader::new(&[0x0a, 0x05, 1, 2]);
        assert!(matches!(reader.next_field(), Err(WireError::TruncatedBytes { .. })));
        let mut reader = Reader::new(&[0x00, 0x01]);
        assert_eq!(reader.next_field(), Err(WireError::ZeroField));
        assert!(get_varint(&[0xff; 11], 0).is_err());
    }

    proptest! {
        #[test]
        fn varint_round_trip(value: u64) {
            let mut buf = Vec::new();
            put_varint(&mut buf, value);
            prop_assert_eq!(get_varint(&buf, 0), Ok((value, buf.len())));
        }

        #[test]
        fn fields_round_trip(a: u64, b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut writer = Writer::new();
            writer.varint(3, a).bytes(9, &b);
            let bytes = writer.finish();
            let mut reader = Reader::new(&bytes);
            prop_assert_eq!(reader.next_field(), Ok(Some((3, Value::Varint(a)))));
            prop_assert_eq!(reader.next_field(), Ok(Some((9, Value::Bytes(&b[..])))));
            prop_assert_eq!(reader.next_field(), Ok(None));
        }

        #[test]
        fn reader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut reader = Reader::new(&bytes);
            for _ in 0..200 {
                match reader.next_field() {
                    Ok(Some(_)) => continue,
                    _ => break,
                }
            }
        }
    }
}
