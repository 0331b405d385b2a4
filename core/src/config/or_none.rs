//! `OrNone`: a setting that may be switched off with the string `"none"`.

use core::fmt;
use core::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::duration::{DurationText, parse_duration};

/// A value, or `"none"` to switch the setting off (`deadline = "none"`,
/// `max_unknown_attempts = "none"`). Leaving the key out keeps the default instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrNone<T> {
    /// Switched off.
    None,
    /// This value.
    Value(T),
}

impl<T> OrNone<T> {
    /// The value, `None` when switched off.
    pub fn value(self) -> Option<T> {
        match self {
            Self::None => None,
            Self::Value(v) => Some(v),
        }
    }
}

impl<T> From<Option<T>> for OrNone<T> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Self::None, Self::Value)
    }
}

impl Serialize for OrNone<Duration> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::None => s.serialize_str("none"),
            Self::Value(d) => s.collect_str(&DurationText(*d)),
        }
    }
}

impl Serialize for OrNone<u32> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::None => s.serialize_str("none"),
            Self::Value(n) => s.serialize_u32(*n),
        }
    }
}

struct DurationOrNone;

impl Visitor<'_> for DurationOrNone {
    type Value = OrNone<Duration>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"a duration such as "30s", or "none""#)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        if v == "none" {
            return Ok(OrNone::None);
        }
        parse_duration(v).map(OrNone::Value).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Err(E::custom(format!(
            r#"invalid type: integer `{v}`, expected a duration string with a unit, such as "{v}s", or "none""#
        )))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl<'de> Deserialize<'de> for OrNone<Duration> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DurationOrNone)
    }
}

struct CountOrNone;

impl Visitor<'_> for CountOrNone {
    type Value = OrNone<u32>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"a whole number, or "none""#)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        if v == "none" {
            Ok(OrNone::None)
        } else {
            Err(E::invalid_value(de::Unexpected::Str(v), &self))
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        u32::try_from(v)
            .map(OrNone::Value)
            .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        u32::try_from(v)
            .map(OrNone::Value)
            .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
    }
}

impl<'de> Deserialize<'de> for OrNone<u32> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CountOrNone)
    }
}
