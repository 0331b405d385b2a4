//! Durations as humane strings: `"250ms"`, `"1.5s"`, `"2m"`, `"1h30m"`.
//!
//! Files never hold bare numbers for time: a bare `30` could mean seconds or milliseconds,
//! and a policy file is read by people under pressure. Units are `ns`, `us` (or `µs`),
//! `ms`, `s`, `m`, `h` and `d`; a number may have up to nine decimals; several parts add up
//! (`"1m30s"`). Parsing is exact (integer arithmetic, no float rounding), and
//! [`format_duration`] gives back a string that parses to the same duration.

use core::fmt;
use core::time::Duration;

const NANOS_PER: [(&str, u128); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
    ("d", 86_400_000_000_000),
];

/// Parses a duration such as `"250ms"`, `"1.5s"`, `"2m"` or `"1h30m"`.
///
/// # Errors
/// A message naming what is wrong (missing unit, unknown unit, too many decimals, overflow).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err(
            r#"expected a duration such as "250ms", "1.5s" or "2m", found an empty string"#.into(),
        );
    }
    let mut total: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(digits);
        let tail = tail.trim_start();
        if number.is_empty() {
            return Err(format!(
                "invalid duration {text:?}: expected a number before {tail:?} (for example \"250ms\")"
            ));
        }
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.' || c.is_whitespace())
            .unwrap_or(tail.len());
        let (unit, after) = tail.split_at(unit_len);
        let Some(&(_, per)) = NANOS_PER.iter().find(|(u, _)| *u == unit) else {
            return Err(if unit.is_empty() {
                format!(
                    "invalid duration {text:?}: missing unit (use ns, us, ms, s, m, h or d, as in \"{number}ms\" or \"{number}s\")"
                )
            } else {
                format!(
                    "invalid duration {text:?}: unknown unit {unit:?} (use ns, us, ms, s, m, h or d)"
                )
            });
        };
        total = total
            .checked_add(part_nanos(text, number, per)?)
            .ok_or_else(|| format!("invalid duration {text:?}: too large"))?;
        rest = after.trim_start();
    }
    let secs = u64::try_from(total / 1_000_000_000)
        .map_err(|_| format!("invalid duration {text:?}: too large"))?;
    // The remainder is below one billion.
    let nanos = u32::try_from(total % 1_000_000_000).unwrap_or(0);
    Ok(Duration::new(secs, nanos))
}

fn part_nanos(text: &str, number: &str, per: u128) -> Result<u128, String> {
    let (int, frac) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if frac.contains('.') || (int.is_empty() && frac.is_empty()) {
        return Err(format!(
            "invalid duration {text:?}: malformed number {number:?}"
        ));
    }
    if frac.len() > 9 {
        return Err(format!(
            "invalid duration {text:?}: at most 9 decimals are supported"
        ));
    }
    let too_large = || format!("invalid duration {text:?}: too large");
    let int_value: u128 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| too_large())?
    };
    let mut nanos = int_value.checked_mul(per).ok_or_else(too_large)?;
    if !frac.is_empty() {
        let scale = 10u128.pow(u32::try_from(frac.len()).unwrap_or(9));
        let frac_value: u128 = frac.parse().map_err(|_| too_large())?;
        let frac_nanos = frac_value * per;
        if !frac_nanos.is_multiple_of(scale) {
            return Err(format!(
                "invalid duration {text:?}: finer than one nanosecond"
            ));
        }
        nanos = nanos
            .checked_add(frac_nanos / scale)
            .ok_or_else(too_large)?;
    }
    Ok(nanos)
}

/// Formats a duration in the shortest unit that states it exactly: `"2m"`, `"1.5s"`,
/// `"250ms"`, `"0s"`. The result parses back to the same duration.
pub fn format_duration(d: Duration) -> String {
    DurationText(d).to_string()
}

/// Displays a duration as [`format_duration`] does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DurationText(pub Duration);

impl fmt::Display for DurationText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.as_nanos();
        if n == 0 {
            return f.write_str("0s");
        }
        const H: u128 = 3_600_000_000_000;
        const M: u128 = 60_000_000_000;
        if n.is_multiple_of(H) {
            return write!(f, "{}h", n / H);
        }
        if n.is_multiple_of(M) {
            return write!(f, "{}m", n / M);
        }
        // Seconds, milliseconds or microseconds with up to three decimals, else nanoseconds.
        for (unit, per) in [("s", 1_000_000_000u128), ("ms", 1_000_000), ("us", 1_000)] {
            if n >= per && n.is_multiple_of(per / 1000) {
                let whole = n / per;
                let frac = (n % per) / (per / 1000);
                if frac == 0 {
                    return write!(f, "{whole}{unit}");
                }
                let digits = format!("{frac:03}");
                return write!(f, "{whole}.{}{unit}", digits.trim_end_matches('0'));
            }
        }
        write!(f, "{n}ns")
    }
}

/// Serde helpers for `Duration` fields (`#[serde(with = "duration")]`).
pub(crate) mod serde_duration {
    use core::fmt;
    use core::time::Duration;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&super::DurationText(*d))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(DurationVisitor)
    }

    pub(crate) struct DurationVisitor;

    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(r#"a duration string such as "250ms", "1.5s" or "2m""#)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
            super::parse_duration(v).map_err(E::custom)
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
            Err(E::custom(format!(
                r#"invalid type: integer `{v}`, expected a duration string with a unit, such as "{v}ms" or "{v}s""#
            )))
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
            Err(E::custom(format!(
                r#"invalid type: integer `{v}`, expected a duration string with a unit, such as "{v}ms" or "{v}s""#
            )))
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
            Err(E::custom(format!(
                r#"invalid type: float `{v}`, expected a duration string with a unit, such as "{v}s""#
            )))
        }
    }

    /// For `Option<Duration>` fields (with `#[serde(default)]`).
    pub(crate) mod option {
        use core::time::Duration;

        use serde::{Deserializer, Serializer};

        pub(crate) fn serialize<S: Serializer>(
            d: &Option<Duration>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Duration>, D::Error> {
            super::deserialize(d).map(Some)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_decimals_and_compounds() {
        let cases = [
            ("250ms", Duration::from_millis(250)),
            ("1.5s", Duration::from_millis(1500)),
            ("2m", Duration::from_secs(120)),
            ("1h30m", Duration::from_secs(5400)),
            ("1m 30s", Duration::from_secs(90)),
            ("30 s", Duration::from_secs(30)),
            ("10us", Duration::from_micros(10)),
            ("10µs", Duration::from_micros(10)),
            ("7ns", Duration::from_nanos(7)),
            ("0s", Duration::ZERO),
            (".5s", Duration::from_millis(500)),
            ("1d", Duration::from_secs(86_400)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        for bad in [
            "",
            "10",
            "ms",
            "1.2.3s",
            "5 parsecs",
            "1.0000000001s",
            "1x",
            "-1s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should fail");
        }
        assert!(parse_duration("99999999999999999999999h").is_err());
    }

    #[test]
    fn formats_round_trip() {
        for d in [
            Duration::ZERO,
            Duration::from_millis(250),
            Duration::from_millis(1500),
            Duration::from_secs(90),
            Duration::from_secs(120),
            Duration::from_secs(7200),
            Duration::from_micros(1500),
            Duration::from_nanos(1234),
            Duration::new(3, 1),
            Duration::MAX,
        ] {
            let text = format_duration(d);
            assert_eq!(parse_duration(&text), Ok(d), "{text}");
        }
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_duration(Duration::from_secs(120)), "2m");
    }
}
