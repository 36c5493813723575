//! Option values with units, as the original node's CLI takes them: sizes (`20GiB`, `500MB`, `1024`) and
//! durations (`30d`, `10m`, `90`). Binary units throughout, like the original (`MB` = 1024² bytes); a plain
//! number is bytes or seconds. Both parse from strings (CLI, env) and from TOML integers.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;
use thiserror::Error;

/// A value with units could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UnitError {
    #[error("'{value}' is not a size: use a number of bytes or a number with a unit, e.g. 20GiB, 500MiB, 1024")]
    Size { value: String },
    #[error("'{value}' is not a duration: use seconds or a number with a suffix s, m, h, d or w, e.g. 30d, 10m")]
    Duration { value: String },
}

/// A number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

/// A duration in whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seconds(pub u64);

impl Seconds {
    pub fn duration(self) -> Duration {
        Duration::from_secs(self.0)
    }
}

fn split_number(text: &str) -> (&str, &str) {
    let text = text.trim();
    let end = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    (&text[..end], text[end..].trim())
}

impl FromStr for ByteSize {
    type Err = UnitError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || UnitError::Size { value: text.to_owned() };
        let (number, unit) = split_number(text);
        let factor: u64 = match unit.to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => 1 << 10,
            "m" | "mb" | "mib" => 1 << 20,
            "g" | "gb" | "gib" => 1 << 30,
            "t" | "tb" | "tib" => 1 << 40,
            _ => return Err(error()),
        };
        if number.contains('.') {
            let value: f64 = number.parse().map_err(|_| error())?;
            let bytes = value * factor as f64;
            if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
                return Err(error());
            }
            return Ok(ByteSize(bytes as u64));
        }
        let value: u64 = number.parse().map_err(|_| error())?;
        value.checked_mul(factor).map(ByteSize).ok_or_else(error)
    }
}

impl FromStr for Seconds {
    type Err = UnitError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || UnitError::Duration { value: text.to_owned() };
        let (number, unit) = split_number(text);
        let value: u64 = number.parse().map_err(|_| error())?;
        let factor: u64 = match unit {
            "" | "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 604_800,
            _ => return humantime::parse_duration(text).map(|d| Seconds(d.as_secs())).map_err(|_| error()),
        };
        value.checked_mul(factor).map(Seconds).ok_or_else(error)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
        let mut value = self.0 as f64;
        let mut unit = 0;
        while value >= 1024.0 && unit + 1 < UNITS.len() {
            value /= 1024.0;
            unit += 1;
        }
        if unit == 0 { write!(f, "{} B", self.0) } else { write!(f, "{value:.1} {}", UNITS[unit]) }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    Number(u64),
    Text(String),
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match NumberOrText::deserialize(deserializer)? {
            NumberOrText::Number(n) => Ok(ByteSize(n)),
            NumberOrText::Text(text) => text.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match NumberOrText::deserialize(deserializer)? {
            NumberOrText::Number(n) => Ok(Seconds(n)),
            NumberOrText::Text(text) => text.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

impl Serialize for Seconds {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!("20GiB".parse(), Ok(ByteSize(20 << 30)));
        assert_eq!("500MB".parse(), Ok(ByteSize(500 << 20)));
        assert_eq!("1024".parse(), Ok(ByteSize(1024)));
        assert_eq!("1.5 GiB".parse(), Ok(ByteSize(3 << 29)));
        assert!("20 parsecs".parse::<ByteSize>().is_err());
        assert!("".parse::<ByteSize>().is_err());
        assert!("99999999999TiB".parse::<ByteSize>().is_err());
        assert_eq!(ByteSize(20 << 30).to_string(), "20.0 GiB");
    }

    #[test]
    fn durations() {
        assert_eq!("30d".parse(), Ok(Seconds(30 * 86_400)));
        assert_eq!("10m".parse(), Ok(Seconds(600)));
        assert_eq!("90".parse(), Ok(Seconds(90)));
        assert_eq!("1h 30m".parse(), Ok(Seconds(5400)));
        assert!("soon".parse::<Seconds>().is_err());
    }
}
