//! The two HTTP request headers the REST API interprets itself: `Range` on downloads and the filename of
//! `Content-Disposition` on uploads.
//!
//! Both arrive from any HTTP client, so both are plain functions over text that never panic; the REST layer maps
//! their errors to status codes.

use thiserror::Error;

/// Why a `Range` header cannot be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RangeError {
    /// The range starts at or past the end of the body, or is the empty suffix `bytes=-0` (answered with 416).
    #[error("the range is outside the {len} bytes")]
    Unsatisfiable { len: u64 },
}

/// Why a `Content-Disposition` filename is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FilenameError {
    #[error("The filename is not valid.")]
    Invalid,
}

/// The single byte range `[start, end)` a `Range` header asks of a body of `len` bytes.
///
/// `Ok(None)` serves the whole body: the value is not a `bytes=` range, is malformed, or names several ranges
/// (RFC 9110 lets a server ignore those). A returned range always has `start < end <= len`.
pub fn parse_range(value: &str, len: u64) -> Result<Option<(u64, u64)>, RangeError> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else { return Ok(None) };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.split_once('-') else { return Ok(None) };
    let (first, last) = (first.trim(), last.trim());
    let range = match (first.parse::<u64>(), last.parse::<u64>()) {
        (Ok(start), Ok(end)) if start <= end => (start, end.saturating_add(1).min(len)),
        (Ok(start), Err(_)) if last.is_empty() => (start, len),
        (Err(_), Ok(suffix)) if first.is_empty() => {
            if suffix == 0 {
                return Err(RangeError::Unsatisfiable { len });
            }
            (len.saturating_sub(suffix), len)
        }
        _ => return Ok(None),
    };
    if range.0 >= len {
        return Err(RangeError::Unsatisfiable { len });
    }
    Ok(Some(range))
}

/// True for names the original's `isValidFilename` accepts.
pub fn is_valid_filename(name: &str) -> bool {
    const INVALID: &[char] = &['/', '\\', ':', '*', '?', '"', '<', '>', '|', '^'];
    const RESERVED: &[&str] = &["CON", "PRN", "AUX", "NUL"];
    if name.is_empty() || name.len() > 255 || name.starts_with(' ') || name.ends_with(' ') || name.ends_with('.') {
        return false;
    }
    if name.chars().any(|c| c.is_control() || INVALID.contains(&c)) {
        return false;
    }
    let stem = name.split('.').next().unwrap_or_default().to_ascii_uppercase();
    let numbered = (stem.starts_with("COM") || stem.starts_with("LPT"))
        && stem.len() == 4
        && stem.as_bytes().get(3).is_some_and(u8::is_ascii_digit);
    !(RESERVED.contains(&stem.as_str()) || numbered)
}

/// The filename of a `Content-Disposition` value (`attachment; filename="name"`), given as raw header bytes.
///
/// `Ok(None)` when the value has no `filename=`; an error when the value is not UTF-8 or the name fails
/// [`is_valid_filename`].
pub fn disposition_filename(value: &[u8]) -> Result<Option<String>, FilenameError> {
    let text = std::str::from_utf8(value).map_err(|_| FilenameError::Invalid)?;
    let Some(start) = text.find("filename=") else { return Ok(None) };
    let rest = text.get(start + "filename=".len()..).unwrap_or_default();
    let name = match rest.strip_prefix('"') {
        Some(quoted) => quoted.find('"').and_then(|end| quoted.get(..end)).unwrap_or(quoted),
        None => rest.split(';').next().unwrap_or_default().trim(),
    };
    if !is_valid_filename(name) {
        return Err(FilenameError::Invalid);
    }
    Ok(Some(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn filenames() {
        for good in ["codex.png", "a", "my file.tar.gz", "COMA.txt", "ünïcode.txt"] {
            assert!(is_valid_filename(good), "{good}");
        }
        for bad in
            ["", "a/b", "a\\b", "x:y", "q?", "\"q\"", " lead", "trail ", "dot.", "CON", "nul.txt", "COM1", "a\nb"]
        {
            assert!(!is_valid_filename(bad), "{bad:?}");
        }
        assert!(!is_valid_filename(&"a".repeat(256)));
        assert!(is_valid_filename(&"a".repeat(255)));
    }

    #[test]
    fn disposition_forms() {
        assert_eq!(disposition_filename(b"attachment"), Ok(None));
        assert_eq!(disposition_filename(b"attachment; filename=\"a b.txt\""), Ok(Some("a b.txt".into())));
        assert_eq!(disposition_filename(b"attachment; filename=x.bin; size=3"), Ok(Some("x.bin".into())));
        assert_eq!(disposition_filename(b"attachment; filename=\"open.txt"), Ok(Some("open.txt".into())));
        assert_eq!(disposition_filename(b"attachment; filename=\"\""), Err(FilenameError::Invalid));
        assert_eq!(disposition_filename(b"attachment; filename=a/b"), Err(FilenameError::Invalid));
        assert_eq!(disposition_filename("filename=\"ü.txt\"".as_bytes()), Ok(Some("ü.txt".into())));
        assert_eq!(disposition_filename(b"filename=\xff.txt"), Err(FilenameError::Invalid), "not UTF-8");
    }

    #[test]
    fn ranges() {
        let unsatisfiable = Err(RangeError::Unsatisfiable { len: 100 });
        assert_eq!(parse_range("bytes=0-9", 100), Ok(Some((0, 10))));
        assert_eq!(parse_range(" bytes= 5 - 200 ", 100), Ok(Some((5, 100))));
        assert_eq!(parse_range("bytes=90-", 100), Ok(Some((90, 100))));
        assert_eq!(parse_range("bytes=-10", 100), Ok(Some((90, 100))));
        assert_eq!(parse_range("bytes=-1000", 100), Ok(Some((0, 100))));
        assert_eq!(parse_range("bytes=99-99", 100), Ok(Some((99, 100))));
        assert_eq!(parse_range("bytes=0-18446744073709551615", 100), Ok(Some((0, 100))));
        assert_eq!(parse_range("bytes=100-", 100), unsatisfiable);
        assert_eq!(parse_range("bytes=100-200", 100), unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Err(RangeError::Unsatisfiable { len: 0 }));
        for ignored in ["", "items=0-1", "bytes=0-1,5-6", "bytes=5-1", "bytes=x-1", "bytes=1", "bytes=-", "bytes=-x"] {
            assert_eq!(parse_range(ignored, 100), Ok(None), "{ignored:?}");
        }
    }

    proptest! {
        #[test]
        fn ranges_stay_inside_the_body(value in "(bytes=)?[ 0-9,-]{0,24}", len in 0u64..1000) {
            if let Ok(Some((start, end))) = parse_range(&value, len) {
                prop_assert!(start < end && end <= len);
            }
        }

        #[test]
        fn accepted_filenames_are_valid(value in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(Some(name)) = disposition_filename(&value) {
                prop_assert!(is_valid_filename(&name));
            }
        }
    }
}
