//! JSON request bodies of the marketplace endpoints ([`super::market`], [`super::sales`]): the size bound, the
//! parse into a DTO (any failure is a 400 with serde's message), and token amounts ([`Amount`]), which the
//! OpenAPI gives as decimal strings and clients also send as JSON numbers.

use super::ApiError;
use alloy::primitives::U256;
use serde::de::{self, Deserialize, DeserializeOwned, Deserializer, Visitor};
use std::fmt;

/// Largest body the marketplace endpoints read.
pub const MAX_BODY: usize = 4096;

/// Parses `body` (at most [`MAX_BODY`] bytes) as JSON into `T`: 400 with the reason otherwise.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.len() > MAX_BODY {
        return Err(ApiError::BadRequest(format!("the request body is larger than {MAX_BODY} bytes")));
    }
    serde_json::from_slice(body).map_err(|err| ApiError::BadRequest(format!("invalid JSON body: {err}")))
}

/// A uint256 amount given as a decimal string (the OpenAPI's form) or a JSON number (a non-negative integer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amount(pub U256);

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(AmountVisitor)
    }
}

struct AmountVisitor;

impl Visitor<'_> for AmountVisitor {
    type Value = Amount;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an amount as a decimal string or a non-negative integer")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Amount, E> {
        let digits = text.trim();
        let parsed = (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| U256::from_str_radix(digits, 10).ok())
            .flatten();
        parsed.map(Amount).ok_or_else(|| E::custom(format!("'{text}' is not a decimal number")))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Amount, E> {
        Ok(Amount(U256::from(n)))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Amount, E> {
        u64::try_from(n).map(|n| Amount(U256::from(n))).map_err(|_| E::custom(format!("{n} is negative")))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Amount, E> {
        Err(E::custom(format!("{n} is not an integer: give amounts above 2^64 as decimal strings")))
    }
}

/// `deserialize_with` for a required [`Amount`] field.
pub fn uint256<'de, D: Deserializer<'de>>(deserializer: D) -> Result<U256, D::Error> {
    Ok(Amount::deserialize(deserializer)?.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amount(json: &str) -> Result<U256, String> {
        serde_json::from_str::<Amount>(json).map(|a| a.0).map_err(|err| err.to_string())
    }

    #[test]
    fn amounts_are_decimal_strings_or_integers() {
        assert_eq!(amount(r#""0""#), Ok(U256::ZERO));
        assert_eq!(amount(r#"" 42 ""#), Ok(U256::from(42u64)));
        assert_eq!(amount("42"), Ok(U256::from(42u64)));
        assert_eq!(amount(&u64::MAX.to_string()), Ok(U256::from(u64::MAX)));
        let max = U256::MAX.to_string();
        assert_eq!(amount(&format!("\"{max}\"")), Ok(U256::MAX));
    }

    #[test]
    fn other_amounts_are_refused_with_a_reason() {
        assert!(amount(r#""0x10""#).unwrap_err().contains("is not a decimal number"));
        assert!(amount(r#""-1""#).unwrap_err().contains("is not a decimal number"));
        assert!(amount(r#""""#).unwrap_err().contains("is not a decimal number"));
        assert!(amount("-1").unwrap_err().contains("negative"));
        assert!(amount("1.5").unwrap_err().contains("not an integer"));
        assert!(amount("1e30").unwrap_err().contains("decimal strings"));
        assert!(amount("true").unwrap_err().contains("decimal string or a non-negative integer"));
        assert!(amount("null").is_err());
        // One more than U256::MAX.
        let over = "115792089237316195423570985008687907853269984665640564039457584007913129639936";
        assert!(amount(&format!("\"{over}\"")).unwrap_err().contains("is not a decimal number"));
    }

    #[test]
    fn bodies_are_bounded_and_parsed() {
        let parsed: Result<serde_json::Value, _> = parse_json(b"{\"a\": 1}");
        assert!(parsed.is_ok());
        let big = vec![b' '; MAX_BODY + 1];
        let Err(ApiError::BadRequest(message)) = parse_json::<serde_json::Value>(&big) else { panic!("refused") };
        assert!(message.contains("larger than"), "{message}");
        let Err(ApiError::BadRequest(message)) = parse_json::<serde_json::Value>(b"{") else { panic!("refused") };
        assert!(message.starts_with("invalid JSON body"), "{message}");
    }
}
