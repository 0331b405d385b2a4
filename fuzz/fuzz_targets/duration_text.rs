//! Durations as text (`"250ms"`, `"1h30m"`): the parser of policy files.
//!
//! Checks: parsing never panics, and a parsed duration formats to text that parses back to
//! the same duration (the promise of `format_duration`).
#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;
use redress::config::{format_duration, parse_duration};

fuzz_target!(|text: &str| {
    if let Ok(d) = parse_duration(text) {
        let shown = format_duration(d);
        assert_eq!(parse_duration(&shown), Ok(d), "{text:?} -> {shown:?}");
    }
});
