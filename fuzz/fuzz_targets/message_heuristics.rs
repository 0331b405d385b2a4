//! The classifier's message heuristics on arbitrary text, against a plain reference
//! implementation of their documented table (`redress::classify::class_for_message`).
//!
//! Checks: classification never panics (any UTF-8, any length, cuts inside multi-byte
//! characters), `class_for_message` agrees with the reference, and `default_classifier`
//! gives an error with that message the same class (or `Unknown` when nothing matches).
#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;
use redress::ErrorClass;
use redress::classify::{HEURISTIC_TEXT_LIMIT, class_for_message, default_classifier};

/// The table of `class_for_message`'s docs, in order.
const TABLE: &[(&[&str], ErrorClass)] = &[
    (
        &[
            "too many requests",
            "rate limit",
            "ratelimit",
            "throttl",
            "slow down",
        ],
        ErrorClass::RateLimit,
    ),
    (
        &[
            "internal server error",
            "bad gateway",
            "service unavailable",
            "gateway timeout",
        ],
        ErrorClass::ServerError,
    ),
    (
        &[
            "unauthorized",
            "unauthenticated",
            "invalid token",
            "token expired",
            "expired token",
            "invalid credentials",
        ],
        ErrorClass::Auth,
    ),
    (
        &[
            "forbidden",
            "permission denied",
            "access denied",
            "not allowed",
        ],
        ErrorClass::Permission,
    ),
    (
        &[
            "deadlock",
            "serialization failure",
            "could not serialize",
            "conflict",
        ],
        ErrorClass::Concurrency,
    ),
    (
        &[
            "timed out",
            "timeout",
            "deadline exceeded",
            "connection reset",
            "connection refused",
            "connection closed",
            "connection aborted",
            "broken pipe",
            "temporarily unavailable",
            "try again",
            "unavailable",
        ],
        ErrorClass::Transient,
    ),
];

fn reference(message: &str) -> Option<ErrorClass> {
    let mut cut = message.len().min(HEURISTIC_TEXT_LIMIT);
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    let lower = message[..cut].to_ascii_lowercase();
    TABLE
        .iter()
        .flat_map(|(patterns, class)| patterns.iter().map(move |p| (p, *class)))
        .find(|(p, _)| lower.contains(**p))
        .map(|(_, class)| class)
}

fuzz_target!(|message: &str| {
    let got = class_for_message(message);
    assert_eq!(got, reference(message), "{message:?}");
    let err = std::io::Error::other(message.to_owned());
    let c = default_classifier(&err);
    assert_eq!(c.class, got.unwrap_or(ErrorClass::Unknown), "{message:?}");
});
