//! Classifier for [`tonic::Status`] (feature `tonic`): every gRPC code, and
//! the server's `grpc-retry-pushback-ms`.
//!
//! ```
//! use std::time::Duration;
//!
//! use redress::ErrorClass;
//! use redress::classify::tonic::{class_for_code, classify_status};
//! use tonic::{Code, Status, metadata::MetadataMap};
//!
//! assert_eq!(class_for_code(Code::Unavailable), Some(ErrorClass::Transient));
//! assert_eq!(class_for_code(Code::ResourceExhausted), Some(ErrorClass::RateLimit));
//! assert_eq!(class_for_code(Code::Ok), None);
//!
//! // The server asks for 250 ms of patience.
//! let mut metadata = MetadataMap::new();
//! metadata.insert("grpc-retry-pushback-ms", "250".parse().unwrap());
//! let status = Status::with_metadata(Code::Unavailable, "overloaded", metadata);
//! let c = classify_status(&status);
//! assert_eq!(c.class, ErrorClass::Transient);
//! assert_eq!(c.retry_after, Some(Duration::from_millis(250)));
//!
//! // A negative pushback: the server asks the client not to retry at all.
//! let mut metadata = MetadataMap::new();
//! metadata.insert("grpc-retry-pushback-ms", "-1".parse().unwrap());
//! let status = Status::with_metadata(Code::Unavailable, "draining", metadata);
//! assert_eq!(classify_status(&status).class, ErrorClass::Permanent);
//!
//! // The chain classifier recognises a status anywhere in a source chain.
//! let wrapped = std::io::Error::other(Status::permission_denied("no"));
//! assert_eq!(redress::classify::default_classifier(&wrapped).class, ErrorClass::Permission);
//! ```
//!
//! # Codes ([`class_for_code`])
//!
//! | Code                   | Class         | Why |
//! |------------------------|---------------|-----|
//! | `Ok` (0)               | `None`        | not a failure |
//! | `Cancelled` (1)        | `Transient`   | a cancellation the client did not ask for is usually a server shutting down, a proxy or load balancer aborting the stream, or a peer going away; the same call can succeed next time. A cancellation the caller asked for ends its own operation and does not reach a retry loop |
//! | `Unknown` (2)          | `ServerError` | an error the server did not map (often an unexpected failure in a handler), or a transport error tonic could not place |
//! | `InvalidArgument` (3)  | `Permanent`   | the request is wrong |
//! | `DeadlineExceeded` (4) | `Transient`   | the call ran out of time; the next attempt gets a new deadline |
//! | `NotFound` (5)         | `Permanent`   | |
//! | `AlreadyExists` (6)    | `Permanent`   | |
//! | `PermissionDenied` (7) | `Permission`  | |
//! | `ResourceExhausted` (8)| `RateLimit`   | quota or throttling, or the server is out of a resource: slow down |
//! | `FailedPrecondition` (9) | `Permanent` | the system is not in the state the call needs; gRPC asks clients not to retry it until that state is fixed |
//! | `Aborted` (10)         | `Concurrency` | a concurrency conflict (a transaction abort, a sequencer check); gRPC suggests retrying at a higher level, as for a serialization failure |
//! | `OutOfRange` (11)      | `Permanent`   | |
//! | `Unimplemented` (12)   | `Permanent`   | |
//! | `Internal` (13)        | `ServerError` | |
//! | `Unavailable` (14)     | `Transient`   | gRPC's own "most likely a transient condition, retry with a backoff" |
//! | `DataLoss` (15)        | `ServerError` | the dependency's data is lost or corrupt: a fault of the server, not of the request (which `Permanent` means), so it counts toward the breaker's view of the server's health; another replica, or the same one after a repair, may answer. The policy bounds the retries, and a caller that never wants to retry it can map the class |
//! | `Unauthenticated` (16) | `Auth`        | |
//!
//! [`classify_status`] gives `Unknown` for a `Status` whose code is `Ok` (not a failure), and
//! [`ChainClassifier`](super::ChainClassifier) takes that as no opinion.
//!
//! # Server pushback (`grpc-retry-pushback-ms`)
//!
//! gRPC's retry design (proposal A6) lets a server tell the client how long to wait before
//! retrying, in a `grpc-retry-pushback-ms` trailer; tonic gives trailers to the
//! [`Status`]'s [`metadata`](Status::metadata). [`retry_pushback`] reads it and
//! [`classify_status`] applies it:
//!
//! | `grpc-retry-pushback-ms`                             | Classification |
//! |------------------------------------------------------|----------------|
//! | absent                                               | the code's class, no hint |
//! | a non-negative integer (`0`, `250`; surrounding spaces and tabs ignored) | the code's class, with that many milliseconds as the [`retry_after`](Classification::retry_after) hint, at most the cap ([`DEFAULT_MAX_PUSHBACK`], 5 minutes, or the caller's) |
//! | digits too large for a `u64`                         | the code's class, with the cap as the hint |
//! | negative (`-1`), unparseable (`abc`, `1.5`), empty, or several values | `Permanent`, with details saying the server asks not to retry |
//!
//! Per A6, a negative or unparseable pushback is the server asking the client **not to retry
//! this call at all**, so it is `Permanent` whatever the code; several values are treated the
//! same way, as gRPC's Go implementation does. The cap guards against a wrong or hostile value
//! parking the caller for hours, for the same reasons as the HTTP `Retry-After` cap (see
//! `redress::classify::http` with the `http` feature); it does not depend on that feature.
//!
//! With this feature on, [`ChainClassifier`](super::ChainClassifier) (and so
//! [`default_classifier`](super::default_classifier)) recognises a `tonic::Status` anywhere in an
//! error's source chain, through its [`ClassifyError`] implementation.

use std::error::Error;
use std::time::Duration;

use ::tonic::metadata::MetadataMap;
use ::tonic::{Code, Status};

use crate::class::{Classification, ErrorClass};
use crate::classify::{ClassifyError, verdict};

/// The metadata key (trailer) of the server's retry pushback (gRPC proposal A6).
pub const PUSHBACK_KEY: &str = "grpc-retry-pushback-ms";

/// The default cap on a pushback hint: 5 minutes, like the HTTP `Retry-After` cap.
///
/// A longer wait is more often a wrong value than something a retry loop should sleep
/// through; past the cap the policy's own deadline and backoff decide.
pub const DEFAULT_MAX_PUSHBACK: Duration = Duration::from_secs(5 * 60);

/// What the server's `grpc-retry-pushback-ms` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pushback {
    /// Retry after this delay (already clamped to the cap).
    After(Duration),
    /// Do not retry this call (a negative, unparseable or repeated value).
    DoNotRetry,
}

/// The code table: class (`None` for `Ok`) and detail string. The match is exhaustive, so a
/// code added to tonic's `Code` has to be placed here.
const fn code_entry(code: Code) -> (Option<ErrorClass>, &'static str) {
    use ErrorClass::{Auth, Concurrency, Permanent, Permission, RateLimit, ServerError, Transient};
    match code {
        Code::Ok => (None, "grpc: ok"),
        Code::Cancelled => (Some(Transient), "grpc: cancelled"),
        Code::Unknown => (Some(ServerError), "grpc: unknown"),
        Code::InvalidArgument => (Some(Permanent), "grpc: invalid argument"),
        Code::DeadlineExceeded => (Some(Transient), "grpc: deadline exceeded"),
        Code::NotFound => (Some(Permanent), "grpc: not found"),
        Code::AlreadyExists => (Some(Permanent), "grpc: already exists"),
        Code::PermissionDenied => (Some(Permission), "grpc: permission denied"),
        Code::ResourceExhausted => (Some(RateLimit), "grpc: resource exhausted"),
        Code::FailedPrecondition => (Some(Permanent), "grpc: failed precondition"),
        Code::Aborted => (Some(Concurrency), "grpc: aborted"),
        Code::OutOfRange => (Some(Permanent), "grpc: out of range"),
        Code::Unimplemented => (Some(Permanent), "grpc: unimplemented"),
        Code::Internal => (Some(ServerError), "grpc: internal"),
        Code::Unavailable => (Some(Transient), "grpc: unavailable"),
        Code::DataLoss => (Some(ServerError), "grpc: data loss"),
        Code::Unauthenticated => (Some(Auth), "grpc: unauthenticated"),
    }
}

/// The details of a classification forced to `Permanent` by a pushback.
const DO_NOT_RETRY: &str = "grpc: the server's grpc-retry-pushback-ms asks not to retry";

/// The class of a gRPC status code (the table of the [module documentation](self)); `None`
/// for `Ok`.
pub const fn class_for_code(code: Code) -> Option<ErrorClass> {
    code_entry(code).0
}

/// Reads `grpc-retry-pushback-ms` from `metadata` (the table of the
/// [module documentation](self)); a delay is clamped to `cap`. `None` when the key is absent.
pub fn retry_pushback(metadata: &MetadataMap, cap: Duration) -> Option<Pushback> {
    let mut values = metadata.get_all(PUSHBACK_KEY).into_iter();
    let first = values.next()?;
    if values.next().is_some() {
        return Some(Pushback::DoNotRetry);
    }
    Some(match first.to_str() {
        Ok(text) => parse_pushback(text, cap),
        Err(_) => Pushback::DoNotRetry,
    })
}

/// Parses one `grpc-retry-pushback-ms` value: a non-negative decimal integer of milliseconds
/// (spaces and tabs around it ignored) is a delay, clamped to `cap` (also when it overflows a
/// `u64`); anything else asks not to retry.
pub fn parse_pushback(value: &str, cap: Duration) -> Pushback {
    let text = value.trim_matches([' ', '\t']);
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Pushback::DoNotRetry;
    }
    // Only digits: the one way to fail now is overflow, which the cap covers.
    Pushback::After(
        text.parse::<u64>()
            .map_or(cap, |ms| Duration::from_millis(ms).min(cap)),
    )
}

/// The classification of a status: the class of its code (see [`class_for_code`]) with the
/// server's pushback applied, clamped to [`DEFAULT_MAX_PUSHBACK`]; `Unknown` for a status whose
/// code is `Ok`.
pub fn classify_status(status: &Status) -> Classification {
    classify_status_with_max_pushback(status, DEFAULT_MAX_PUSHBACK)
}

/// [`classify_status`] with another cap on the pushback hint.
pub fn classify_status_with_max_pushback(status: &Status, cap: Duration) -> Classification {
    let (class, details) = code_entry(status.code());
    let Some(class) = class else {
        return Classification::new(ErrorClass::Unknown).with_details(details);
    };
    let classification = verdict(class, details);
    match retry_pushback(status.metadata(), cap) {
        None => classification,
        Some(Pushback::After(delay)) => classification.with_retry_after(delay),
        Some(Pushback::DoNotRetry) => {
            Classification::new(ErrorClass::Permanent).with_details(DO_NOT_RETRY)
        }
    }
}

impl ClassifyError for Status {
    /// [`classify_status`]; `None` (no opinion) for a status whose code is `Ok`.
    fn classification(&self) -> Option<Classification> {
        class_for_code(self.code())?;
        Some(classify_status(self))
    }
}

/// The chain classifier's probe: `Some` when `err` is a `tonic::Status` with a failing code.
pub(super) fn probe(err: &(dyn Error + 'static)) -> Option<Classification> {
    err.downcast_ref::<Status>()?.classification()
}

#[cfg(test)]
mod tests {
    use ::http::{HeaderMap, HeaderValue};

    use super::*;
    use crate::classify::{ChainClassifier, Classified, default_classifier, strict_classifier};

    use ErrorClass::*;

    #[test]
    fn code_table() {
        let rows: [(Code, Option<ErrorClass>); 17] = [
            (Code::Ok, None),
            (Code::Cancelled, Some(Transient)),
            (Code::Unknown, Some(ServerError)),
            (Code::InvalidArgument, Some(Permanent)),
            (Code::DeadlineExceeded, Some(Transient)),
            (Code::NotFound, Some(Permanent)),
            (Code::AlreadyExists, Some(Permanent)),
            (Code::PermissionDenied, Some(Permission)),
            (Code::ResourceExhausted, Some(RateLimit)),
            (Code::FailedPrecondition, Some(Permanent)),
            (Code::Aborted, Some(Concurrency)),
            (Code::OutOfRange, Some(Permanent)),
            (Code::Unimplemented, Some(Permanent)),
            (Code::Internal, Some(ServerError)),
            (Code::Unavailable, Some(Transient)),
            (Code::DataLoss, Some(ServerError)),
            (Code::Unauthenticated, Some(Auth)),
        ];
        for (i, (code, expected)) in rows.into_iter().enumerate() {
            // The rows cover every code, in order.
            assert_eq!(code as i32, i as i32);
            assert_eq!(Code::from_i32(i as i32), code);
            assert_eq!(class_for_code(code), expected, "{code:?}");

            let status = Status::new(code, "message");
            let c = classify_status(&status);
            assert_eq!(c.class, expected.unwrap_or(Unknown), "{code:?}");
            assert_eq!(c.retry_after, None);
            assert!(c.details.as_deref().unwrap().starts_with("grpc: "));
            assert_eq!(
                status.classification(),
                expected.map(|_| c.clone()),
                "{code:?}"
            );
            assert_eq!(probe(&status), status.classification(), "{code:?}");
        }
        // Numbers outside the table are tonic's `Unknown`.
        assert_eq!(class_for_code(Code::from_i32(17)), Some(ServerError));
        assert_eq!(class_for_code(Code::from_i32(-1)), Some(ServerError));
    }

    #[test]
    fn pushback_table() {
        const CAP: Duration = DEFAULT_MAX_PUSHBACK;
        let ms = |ms| Pushback::After(Duration::from_millis(ms));
        let rows: &[(&str, Pushback)] = &[
            ("0", ms(0)),
            ("250", ms(250)),
            ("  250", ms(250)),
            ("250\t", ms(250)),
            ("300000", ms(300_000)),
            ("300001", Pushback::After(CAP)),
            ("99999999999999999999999", Pushback::After(CAP)),
            ("-1", Pushback::DoNotRetry),
            ("-250", Pushback::DoNotRetry),
            ("+250", Pushback::DoNotRetry),
            ("1.5", Pushback::DoNotRetry),
            ("abc", Pushback::DoNotRetry),
            ("250ms", Pushback::DoNotRetry),
            ("", Pushback::DoNotRetry),
            ("  ", Pushback::DoNotRetry),
        ];
        for &(raw, expected) in rows {
            assert_eq!(parse_pushback(raw, CAP), expected, "{raw:?}");

            let mut metadata = MetadataMap::new();
            metadata.insert(PUSHBACK_KEY, raw.parse().unwrap());
            assert_eq!(retry_pushback(&metadata, CAP), Some(expected), "{raw:?}");

            for code in [Code::Unavailable, Code::ResourceExhausted, Code::Internal] {
                let status = Status::with_metadata(code, "", metadata.clone());
                let c = classify_status(&status);
                match expected {
                    Pushback::After(delay) => {
                        assert_eq!(c.class, class_for_code(code).unwrap(), "{raw:?}");
                        assert_eq!(c.retry_after, Some(delay), "{raw:?}");
                    }
                    Pushback::DoNotRetry => {
                        assert_eq!(c.class, Permanent, "{raw:?}");
                        assert_eq!(c.retry_after, None, "{raw:?}");
                        assert_eq!(c.details.as_deref(), Some(DO_NOT_RETRY));
                    }
                }
            }
        }
    }

    #[test]
    fn pushback_edge_cases() {
        let cap = Duration::from_secs(1);
        let rows: &[(&[&[u8]], Option<Pushback>)] = &[
            (&[], None),
            (&[b"999"], Some(Pushback::After(Duration::from_millis(999)))),
            (&[b"1001"], Some(Pushback::After(cap))),
            // Several values: do not retry (like gRPC's Go implementation).
            (&[b"10", b"10"], Some(Pushback::DoNotRetry)),
            (&[b"10", b"20"], Some(Pushback::DoNotRetry)),
            // Not visible ASCII.
            (&[b"\xff10"], Some(Pushback::DoNotRetry)),
        ];
        for &(values, expected) in rows {
            let mut metadata = MetadataMap::new();
            for value in values {
                // The path of a real response: trailers turned into a `Status` by tonic.
                let value = ::tonic::metadata::MetadataValue::try_from(*value).unwrap();
                metadata.append(PUSHBACK_KEY, value);
            }
            assert_eq!(retry_pushback(&metadata, cap), expected, "{values:?}");
        }
        let mut metadata = MetadataMap::new();
        metadata.insert(PUSHBACK_KEY, "5000".parse().unwrap());
        let status = Status::with_metadata(Code::Unavailable, "", metadata);
        assert_eq!(
            classify_status_with_max_pushback(&status, cap).retry_after,
            Some(cap)
        );
        assert_eq!(
            classify_status(&status).retry_after,
            Some(Duration::from_secs(5))
        );
    }

    #[test]
    fn pushback_from_trailers() {
        let rows: &[(&str, &str, ErrorClass, Option<Duration>)] = &[
            ("14", "250", Transient, Some(Duration::from_millis(250))),
            ("8", "1000", RateLimit, Some(Duration::from_secs(1))),
            ("14", "-1", Permanent, None),
            ("0", "250", Unknown, None),
        ];
        for &(code, pushback, class, retry_after) in rows {
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", HeaderValue::from_static(code));
            trailers.insert("grpc-message", HeaderValue::from_static("busy"));
            trailers.insert(PUSHBACK_KEY, HeaderValue::from_str(pushback).unwrap());
            let status = Status::from_header_map(&trailers).unwrap();
            let c = classify_status(&status);
            assert_eq!(
                (c.class, c.retry_after),
                (class, retry_after),
                "{code} {pushback}"
            );
        }
    }

    #[test]
    fn chain_classifier_finds_a_status() {
        let status = Status::resource_exhausted("quota");
        let expected = classify_status(&status);
        assert_eq!(default_classifier(&status), expected);
        let wrapped = std::io::Error::other(status);
        assert_eq!(strict_classifier(&wrapped), expected);
        assert_eq!(ChainClassifier::strict().classify_error(&wrapped), expected);

        // `Ok` is no opinion: the walk goes on (here to the heuristics).
        let ok = std::io::Error::other(Status::new(Code::Ok, "service unavailable"));
        assert_eq!(default_classifier(&ok).class, ServerError);
        assert_eq!(strict_classifier(&ok).class, Unknown);

        // An explicit wrapper outside still wins.
        let forced = Classified::new(Transient, Status::permission_denied("no"));
        assert_eq!(default_classifier(&forced).class, Transient);
    }

    #[cfg(feature = "http")]
    #[test]
    fn same_cap_as_http() {
        assert_eq!(
            DEFAULT_MAX_PUSHBACK,
            crate::classify::http::DEFAULT_MAX_RETRY_AFTER
        );
    }
}
