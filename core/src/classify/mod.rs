//! Classifiers for `std::error::Error` values: explicit wrappers, `io::ErrorKind`, HTTP-style
//! status codes and message heuristics.
//!
//! # Why classify
//!
//! A policy never inspects an error: it decides from an [`ErrorClass`] alone (retry a
//! [`Transient`](ErrorClass::Transient) fault, give up on a
//! [`Permanent`](ErrorClass::Permanent) one, wait longer on a
//! [`RateLimit`](ErrorClass::RateLimit)). Something has to turn "connection reset by peer"
//! or "HTTP 503" into that class. Any closure `Fn(&E) -> impl Into<Classification>` can do it
//! (see [`Classify`]); this module provides ready-made classifiers for the common case of
//! `std::error::Error` values, which usually arrive wrapped in a few layers of context.
//!
//! # Rule order
//!
//! [`ChainClassifier`] (and [`default_classifier`] / [`strict_classifier`]) walk the error and
//! its [`source()`](Error::source) chain, outermost first, for at most [`MAX_CHAIN_DEPTH`]
//! errors (which also cuts cycles). For a [`std::io::Error`] carrying a custom error it
//! descends through [`get_ref()`](std::io::Error::get_ref), because `io::Error::source()`
//! skips the wrapped error itself.
//!
//! The rules run one after another, **each over the whole chain** before the next one is
//! tried, so an explicit classification deep in the chain beats an `io::Error` at the top:
//!
//! 1. **Explicit**: a [`Classified`] wrapper, a type registered with
//!    [`ChainClassifier::with_type`] whose [`ClassifyError::classification`] is `Some`, or the
//!    error type of an enabled library feature (see [Library classifiers](#library-classifiers))
//!    with an opinion on it (after the registered types, so a registration can override it).
//! 2. **I/O kind**: a [`std::io::Error`] whose kind maps through [`class_for_io_kind`].
//! 3. **Status**: a type registered with [`ChainClassifier::with_status_type`] whose
//!    [`StatusCode::status_code`] maps through [`class_for_status`] (its
//!    [`StatusCode::retry_after`] becomes the `retry_after` hint).
//! 4. **Heuristics** (only when enabled, as in [`ChainClassifier::new`] and
//!    [`default_classifier`]): the `Display` text of each error, matched through
//!    [`class_for_message`].
//! 5. Otherwise [`ErrorClass::Unknown`].
//!
//! Within one rule the outermost error with an opinion wins. `None` from
//! [`ClassifyError::classification`], an unmapped kind such as
//! [`ErrorKind::Other`](std::io::ErrorKind::Other), or an unmapped status such as `200` means
//! "no opinion" and the walk continues.
//!
//! # Status table ([`class_for_status`])
//!
//! | Status            | Class                                    |
//! |-------------------|------------------------------------------|
//! | 401               | [`Auth`](ErrorClass::Auth)               |
//! | 403               | [`Permission`](ErrorClass::Permission)   |
//! | 408               | [`Transient`](ErrorClass::Transient)     |
//! | 409               | [`Concurrency`](ErrorClass::Concurrency) |
//! | 425 (Too Early)   | [`Transient`](ErrorClass::Transient)     |
//! | 429               | [`RateLimit`](ErrorClass::RateLimit)     |
//! | other 400–499     | [`Permanent`](ErrorClass::Permanent)     |
//! | 500–599           | [`ServerError`](ErrorClass::ServerError) |
//! | anything else     | no opinion (`None`)                      |
//!
//! # I/O kind table ([`class_for_io_kind`])
//!
//! | `io::ErrorKind`                                                                  | Class         |
//! |----------------------------------------------------------------------------------|---------------|
//! | `TimedOut`, `WouldBlock`, `Interrupted`, `ConnectionReset`, `ConnectionAborted`, `ConnectionRefused`, `NotConnected`, `BrokenPipe`, `UnexpectedEof`, `HostUnreachable`, `NetworkUnreachable`, `NetworkDown`, `ResourceBusy`, `AddrNotAvailable` | `Transient` |
//! | `PermissionDenied`                                                               | `Permission`  |
//! | `NotFound`, `InvalidInput`, `InvalidData`, `Unsupported`, `AlreadyExists`, `ReadOnlyFilesystem`, `IsADirectory`, `NotADirectory`, `ArgumentListTooLong`, `DirectoryNotEmpty`, `CrossesDevices`, `TooManyLinks`, `FileTooLarge` | `Permanent` |
//! | `StorageFull`, `QuotaExceeded`                                                   | `Permanent`   |
//! | `Deadlock`                                                                       | `Concurrency` |
//! | anything else (`Other`, `OutOfMemory`, `AddrInUse`, `WriteZero`, future kinds, …) | no opinion    |
//!
//! `StorageFull` and `QuotaExceeded` are `Permanent`: a full disk or an exhausted quota does
//! not clear up within a retry loop, and they are not `RateLimit` because waiting a few
//! seconds does not help.
//!
//! `InvalidFilename` is not in the table: it is stable only since Rust 1.87, above this crate's
//! minimum supported Rust version, so it falls under "no opinion" for now.
//!
//! # Heuristics table ([`class_for_message`])
//!
//! The text is the error's `Display` output, ASCII-lowercased, truncated to its first
//! [`HEURISTIC_TEXT_LIMIT`] bytes (no allocation). Patterns are plain substrings, tried **in
//! this order**; the first that occurs anywhere in the text wins:
//!
//! | # | Patterns                                                                                     | Class         |
//! |---|----------------------------------------------------------------------------------------------|---------------|
//! | 1 | `too many requests`, `rate limit`, `ratelimit`, `throttl`, `slow down`                       | `RateLimit`   |
//! | 2 | `internal server error`, `bad gateway`, `service unavailable`, `gateway timeout`             | `ServerError` |
//! | 3 | `unauthorized`, `unauthenticated`, `invalid token`, `token expired`, `expired token`, `invalid credentials` | `Auth` |
//! | 4 | `forbidden`, `permission denied`, `access denied`, `not allowed`                             | `Permission`  |
//! | 5 | `deadlock`, `serialization failure`, `could not serialize`, `conflict`                       | `Concurrency` |
//! | 6 | `timed out`, `timeout`, `deadline exceeded`, `connection reset`, `connection refused`, `connection closed`, `connection aborted`, `broken pipe`, `temporarily unavailable`, `try again`, `unavailable` | `Transient` |
//!
//! The order puts the specific before the generic: "rate limit exceeded, try again later" is
//! `RateLimit` (a 403 "API rate limit exceeded" too), "504 Gateway Timeout" and
//! "503 Service Unavailable" are `ServerError`, "deadlock detected; try again" is
//! `Concurrency`. The matched pattern is reported in
//! [`details`](Classification::details) as `"heuristic: <pattern>"`.
//!
//! Heuristics guess from prose and can be wrong; use [`strict_classifier`] or
//! [`ChainClassifier::strict`] to turn them off.
//!
//! # Library classifiers
//!
//! One module per library, each behind its own cargo feature (none is on by default). Each
//! documents its table and offers functions for direct use; with the feature on,
//! [`ChainClassifier`] (and so [`default_classifier`] and [`strict_classifier`]) also recognises
//! the library's error types anywhere in a chain, as part of the explicit rule, with an `Unknown`
//! verdict counting as no opinion.
//!
//! | Module      | Feature          | Recognised in chains | Also |
//! |-------------|------------------|----------------------|------|
//! | `http`      | `http`           | (no error type)      | the status table for `http::StatusCode`; `Retry-After` (delta-seconds and HTTP-date, capped against clock skew); a result classifier for `http::Response` |
//! | `reqwest`   | `reqwest`        | `reqwest::Error` (status, timeout, connect, decode, redirect, builder, request/body) | a result classifier for `reqwest::Response`, with `Retry-After` |
//! | `tonic`     | `tonic`          | `tonic::Status` (all 17 gRPC codes, and the `grpc-retry-pushback-ms` trailer) | |
//! | `sqlstate`  | `sqlstate`, `tokio-postgres`, `sqlx` | the error types of `tokio-postgres` and `sqlx` (with those features) | the SQLSTATE table, and SQLite result codes |
//! | `redis`     | `redis`          | `redis::RedisError` and the errors it carries | |
//! | `aws`       | `aws`            | the AWS SDK's `SdkError` and error metadata | |

use core::fmt;
use core::time::Duration;
use std::error::Error;
use std::io;
use std::sync::Arc;

use crate::class::{Classification, Classify, ErrorClass};

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "reqwest")]
pub mod reqwest;
#[cfg(feature = "sqlstate")]
pub mod sqlstate;
#[cfg(feature = "tonic")]
pub mod tonic;

/// How many errors of a chain (the error itself included) the chain classifiers examine.
///
/// Deeper errors are ignored; this also stops a chain whose `source()` cycles.
pub const MAX_CHAIN_DEPTH: usize = 32;

/// How many bytes of an error's `Display` text the message heuristics look at.
pub const HEURISTIC_TEXT_LIMIT: usize = 256;

// ---------------------------------------------------------------------------------------------
// Classified
// ---------------------------------------------------------------------------------------------

/// An error carrying an explicit classification.
///
/// Put it anywhere in an error chain to force the class: the chain classifiers of this module
/// honour it before anything else. It is transparent otherwise: its `Display` is the inner
/// error's, and its [`source()`](Error::source) is the inner error.
///
/// ```
/// use redress::classify::{Classified, default_classifier};
/// use redress::ErrorClass;
///
/// let err = Classified::new(ErrorClass::Permanent, "schema mismatch");
/// assert_eq!(err.to_string(), "schema mismatch");
/// assert_eq!(default_classifier(&err).class, ErrorClass::Permanent);
/// ```
#[derive(Debug)]
pub struct Classified {
    classification: Classification,
    inner: Box<dyn Error + Send + Sync + 'static>,
}

impl Classified {
    /// Wraps `err` with the classification `class` (an [`ErrorClass`] or a full
    /// [`Classification`]). `err` may be any `Error + Send + Sync + 'static`, a `String` or a
    /// `&str`.
    pub fn new(
        class: impl Into<Classification>,
        err: impl Into<Box<dyn Error + Send + Sync + 'static>>,
    ) -> Self {
        Self {
            classification: class.into(),
            inner: err.into(),
        }
    }

    /// The forced classification.
    pub fn classification(&self) -> &Classification {
        &self.classification
    }

    /// The wrapped error.
    pub fn inner(&self) -> &(dyn Error + Send + Sync + 'static) {
        &*self.inner
    }

    /// The wrapped error, unwrapped.
    pub fn into_inner(self) -> Box<dyn Error + Send + Sync + 'static> {
        self.inner
    }
}

impl fmt::Display for Classified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

impl Error for Classified {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.inner)
    }
}

impl ClassifyError for Classified {
    fn classification(&self) -> Option<Classification> {
        Some(self.classification.clone())
    }
}

// ---------------------------------------------------------------------------------------------
// User-implemented traits
// ---------------------------------------------------------------------------------------------

/// An error type's own opinion of its class.
///
/// Implement it on your error types and register them with [`ChainClassifier::with_type`] so
/// they are recognised anywhere in an error chain, or classify a value directly with
/// [`by_trait`].
///
/// ```
/// use redress::classify::{ChainClassifier, ClassifyError};
/// use redress::{Classification, ErrorClass};
///
/// #[derive(Debug)]
/// enum DbError { Serialization, Syntax, Other }
/// # impl std::fmt::Display for DbError {
/// #     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { write!(f, "{self:?}") }
/// # }
/// # impl std::error::Error for DbError {}
///
/// impl ClassifyError for DbError {
///     fn classification(&self) -> Option<Classification> {
///         match self {
///             DbError::Serialization => Some(ErrorClass::Concurrency.into()),
///             DbError::Syntax => Some(ErrorClass::Permanent.into()),
///             DbError::Other => None,
///         }
///     }
/// }
///
/// let classifier = ChainClassifier::new().with_type::<DbError>();
/// assert_eq!(classifier.classify_error(&DbError::Syntax).class, ErrorClass::Permanent);
/// ```
pub trait ClassifyError {
    /// The class of this error, or `None` for "no opinion" (the classifier keeps looking).
    fn classification(&self) -> Option<Classification>;
}

/// An error exposing an HTTP-style numeric status, classified through [`class_for_status`].
///
/// Register the type with [`ChainClassifier::with_status_type`].
pub trait StatusCode {
    /// The status, if this error carries one.
    fn status_code(&self) -> Option<u16>;

    /// How long the server asked the caller to wait (a parsed `Retry-After`), reported as the
    /// classification's [`retry_after`](Classification::retry_after). `None` by default.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

// ---------------------------------------------------------------------------------------------
// Tables
// ---------------------------------------------------------------------------------------------

/// The class of an HTTP-style status code: the one status table of the crate.
///
/// | Status            | Class                                    |
/// |-------------------|------------------------------------------|
/// | 401               | [`Auth`](ErrorClass::Auth)               |
/// | 403               | [`Permission`](ErrorClass::Permission)   |
/// | 408               | [`Transient`](ErrorClass::Transient)     |
/// | 409               | [`Concurrency`](ErrorClass::Concurrency) |
/// | 425 (Too Early)   | [`Transient`](ErrorClass::Transient)     |
/// | 429               | [`RateLimit`](ErrorClass::RateLimit)     |
/// | other 400–499     | [`Permanent`](ErrorClass::Permanent)     |
/// | 500–599           | [`ServerError`](ErrorClass::ServerError) |
/// | anything else     | `None` (not a failure status)            |
pub const fn class_for_status(status: u16) -> Option<ErrorClass> {
    match status_entry(status) {
        Some((class, _)) => Some(class),
        None => None,
    }
}

/// The status table with a static detail string per row.
const fn status_entry(status: u16) -> Option<(ErrorClass, &'static str)> {
    Some(match status {
        401 => (ErrorClass::Auth, "status: 401 unauthorized"),
        403 => (ErrorClass::Permission, "status: 403 forbidden"),
        408 => (ErrorClass::Transient, "status: 408 request timeout"),
        409 => (ErrorClass::Concurrency, "status: 409 conflict"),
        425 => (ErrorClass::Transient, "status: 425 too early"),
        429 => (ErrorClass::RateLimit, "status: 429 too many requests"),
        400..=499 => (ErrorClass::Permanent, "status: 4xx"),
        500..=599 => (ErrorClass::ServerError, "status: 5xx"),
        _ => return None,
    })
}

/// One row of the I/O kind table: kind, class, detail string.
type IoRow = (io::ErrorKind, ErrorClass, &'static str);

/// The I/O kind table, in documentation order.
const IO_KINDS: &[IoRow] = {
    use ErrorClass::{Concurrency, Permanent, Permission, Transient};
    use io::ErrorKind as K;
    &[
        (K::TimedOut, Transient, "io: timed out"),
        (K::WouldBlock, Transient, "io: would block"),
        (K::Interrupted, Transient, "io: interrupted"),
        (K::ConnectionReset, Transient, "io: connection reset"),
        (K::ConnectionAborted, Transient, "io: connection aborted"),
        (K::ConnectionRefused, Transient, "io: connection refused"),
        (K::NotConnected, Transient, "io: not connected"),
        (K::BrokenPipe, Transient, "io: broken pipe"),
        (K::UnexpectedEof, Transient, "io: unexpected eof"),
        (K::HostUnreachable, Transient, "io: host unreachable"),
        (K::NetworkUnreachable, Transient, "io: network unreachable"),
        (K::NetworkDown, Transient, "io: network down"),
        (K::ResourceBusy, Transient, "io: resource busy"),
        (K::AddrNotAvailable, Transient, "io: address not available"),
        (K::PermissionDenied, Permission, "io: permission denied"),
        (K::NotFound, Permanent, "io: not found"),
        (K::InvalidInput, Permanent, "io: invalid input"),
        (K::InvalidData, Permanent, "io: invalid data"),
        (K::Unsupported, Permanent, "io: unsupported"),
        (K::AlreadyExists, Permanent, "io: already exists"),
        (K::ReadOnlyFilesystem, Permanent, "io: read-only filesystem"),
        (K::IsADirectory, Permanent, "io: is a directory"),
        (K::NotADirectory, Permanent, "io: not a directory"),
        (
            K::ArgumentListTooLong,
            Permanent,
            "io: argument list too long",
        ),
        (K::DirectoryNotEmpty, Permanent, "io: directory not empty"),
        (K::CrossesDevices, Permanent, "io: crosses devices"),
        (K::TooManyLinks, Permanent, "io: too many links"),
        (K::FileTooLarge, Permanent, "io: file too large"),
        (K::StorageFull, Permanent, "io: storage full"),
        (K::QuotaExceeded, Permanent, "io: quota exceeded"),
        (K::Deadlock, Concurrency, "io: deadlock"),
    ]
};

/// The class of an [`io::ErrorKind`].
///
/// | `io::ErrorKind` | Class |
/// |-----------------|-------|
/// | `TimedOut`, `WouldBlock`, `Interrupted`, `ConnectionReset`, `ConnectionAborted`, `ConnectionRefused`, `NotConnected`, `BrokenPipe`, `UnexpectedEof`, `HostUnreachable`, `NetworkUnreachable`, `NetworkDown`, `ResourceBusy`, `AddrNotAvailable` | [`Transient`](ErrorClass::Transient) |
/// | `PermissionDenied` | [`Permission`](ErrorClass::Permission) |
/// | `NotFound`, `InvalidInput`, `InvalidData`, `Unsupported`, `AlreadyExists`, `ReadOnlyFilesystem`, `IsADirectory`, `NotADirectory`, `ArgumentListTooLong`, `DirectoryNotEmpty`, `CrossesDevices`, `TooManyLinks`, `FileTooLarge` | [`Permanent`](ErrorClass::Permanent) |
/// | `StorageFull`, `QuotaExceeded` | [`Permanent`](ErrorClass::Permanent): a full disk or exhausted quota does not clear up within a retry loop, and waiting is no cure, so not `RateLimit` |
/// | `Deadlock` | [`Concurrency`](ErrorClass::Concurrency) |
/// | anything else (`Other`, `Uncategorized`, `OutOfMemory`, `AddrInUse`, `WriteZero`, kinds added later, …) | `None` |
///
/// `InvalidFilename` (stable only since Rust 1.87, above the crate's minimum supported Rust
/// version) is not listed yet and gives `None`.
pub fn class_for_io_kind(kind: io::ErrorKind) -> Option<ErrorClass> {
    io_entry(kind).map(|(class, _)| class)
}

fn io_entry(kind: io::ErrorKind) -> Option<(ErrorClass, &'static str)> {
    IO_KINDS
        .iter()
        .find(|(k, _, _)| *k == kind)
        .map(|&(_, class, details)| (class, details))
}

/// One row of the heuristics table: lowercase pattern, class, detail string.
type HeuristicRow = (&'static str, ErrorClass, &'static str);

macro_rules! heuristics {
    ($($class:ident: [$($pat:literal),+ $(,)?]),+ $(,)?) => {
        &[$($(($pat, ErrorClass::$class, concat!("heuristic: ", $pat)),)+)+]
    };
}

/// The heuristics table, in priority order (the first matching pattern wins).
const HEURISTICS: &[HeuristicRow] = heuristics![
    RateLimit: ["too many requests", "rate limit", "ratelimit", "throttl", "slow down"],
    ServerError: [
        "internal server error",
        "bad gateway",
        "service unavailable",
        "gateway timeout",
    ],
    Auth: [
        "unauthorized",
        "unauthenticated",
        "invalid token",
        "token expired",
        "expired token",
        "invalid credentials",
    ],
    Permission: ["forbidden", "permission denied", "access denied", "not allowed"],
    Concurrency: ["deadlock", "serialization failure", "could not serialize", "conflict"],
    Transient: [
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
];

/// The class the message heuristics give `message`, if any pattern matches.
///
/// The message is ASCII-lowercased and only its first [`HEURISTIC_TEXT_LIMIT`] bytes are
/// examined. Patterns are tried in this order; the first that occurs anywhere wins:
///
/// | # | Patterns | Class |
/// |---|----------|-------|
/// | 1 | `too many requests`, `rate limit`, `ratelimit`, `throttl`, `slow down` | [`RateLimit`](ErrorClass::RateLimit) |
/// | 2 | `internal server error`, `bad gateway`, `service unavailable`, `gateway timeout` | [`ServerError`](ErrorClass::ServerError) |
/// | 3 | `unauthorized`, `unauthenticated`, `invalid token`, `token expired`, `expired token`, `invalid credentials` | [`Auth`](ErrorClass::Auth) |
/// | 4 | `forbidden`, `permission denied`, `access denied`, `not allowed` | [`Permission`](ErrorClass::Permission) |
/// | 5 | `deadlock`, `serialization failure`, `could not serialize`, `conflict` | [`Concurrency`](ErrorClass::Concurrency) |
/// | 6 | `timed out`, `timeout`, `deadline exceeded`, `connection reset`, `connection refused`, `connection closed`, `connection aborted`, `broken pipe`, `temporarily unavailable`, `try again`, `unavailable` | [`Transient`](ErrorClass::Transient) |
///
/// ```
/// use redress::classify::class_for_message;
/// use redress::ErrorClass;
///
/// assert_eq!(class_for_message("504 Gateway Timeout"), Some(ErrorClass::ServerError));
/// assert_eq!(class_for_message("read timed out"), Some(ErrorClass::Transient));
/// assert_eq!(class_for_message("no such table"), None);
/// ```
pub fn class_for_message(message: &str) -> Option<ErrorClass> {
    let mut text = LowerText::new();
    // An `Err` only means the text was truncated.
    let _ = fmt::Write::write_str(&mut text, message);
    heuristic_entry(text.as_bytes()).map(|&(_, class, _)| class)
}

/// The first heuristics row whose pattern occurs in `lower` (already lowercased).
fn heuristic_entry(lower: &[u8]) -> Option<&'static HeuristicRow> {
    HEURISTICS
        .iter()
        .find(|(pattern, _, _)| contains(lower, pattern.as_bytes()))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// A fixed-size, stack-allocated `fmt::Write` sink that ASCII-lowercases what it receives and
/// keeps at most [`HEURISTIC_TEXT_LIMIT`] bytes, cut at a `char` boundary.
struct LowerText {
    buf: [u8; HEURISTIC_TEXT_LIMIT],
    len: usize,
}

impl LowerText {
    const fn new() -> Self {
        Self {
            buf: [0; HEURISTIC_TEXT_LIMIT],
            len: 0,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl fmt::Write for LowerText {
    /// Appends `s`; once the buffer is full it keeps what fits and returns `Err`, which stops
    /// the `Display` implementation early (the writer failing is the one case the `fmt`
    /// contract lets a `Display` fail).
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = HEURISTIC_TEXT_LIMIT - self.len;
        let mut take = s.len().min(room);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        let dst = &mut self.buf[self.len..self.len + take];
        dst.copy_from_slice(&s.as_bytes()[..take]);
        dst.make_ascii_lowercase();
        self.len += take;
        if take < s.len() {
            Err(fmt::Error)
        } else {
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Chain walking
// ---------------------------------------------------------------------------------------------

/// The error and its causes, outermost first, at most [`MAX_CHAIN_DEPTH`] of them.
fn chain<'a>(err: &'a (dyn Error + 'static)) -> Chain<'a> {
    Chain {
        next: Some(err),
        left: MAX_CHAIN_DEPTH,
    }
}

struct Chain<'a> {
    next: Option<&'a (dyn Error + 'static)>,
    left: usize,
}

impl<'a> Iterator for Chain<'a> {
    type Item = &'a (dyn Error + 'static);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let current = self.next?;
        self.left -= 1;
        self.next = cause(current);
        Some(current)
    }
}

/// The next error in the chain. `io::Error::source()` of a custom error returns the wrapped
/// error's *source*, skipping the wrapped error itself, so for `io::Error` descend through
/// `get_ref()` instead.
fn cause<'a>(err: &'a (dyn Error + 'static)) -> Option<&'a (dyn Error + 'static)> {
    if let Some(inner) = err.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
        return Some(inner);
    }
    // A shared error (`Arc<dyn Error>`, as redis and others wrap theirs) is itself an
    // `Error`, but its `source()` is the inner error's source: step into the inner error.
    if let Some(inner) = err.downcast_ref::<Arc<dyn Error + Send + Sync>>() {
        return Some(&**inner);
    }
    if let Some(inner) = err.downcast_ref::<Arc<dyn Error>>() {
        return Some(&**inner);
    }
    err.source()
}

// ---------------------------------------------------------------------------------------------
// ChainClassifier
// ---------------------------------------------------------------------------------------------

/// A registered probe: recognises one type in the chain and gives its opinion.
type Probe = fn(&(dyn Error + 'static)) -> Option<Classification>;

fn explicit_probe<T: ClassifyError + Error + 'static>(
    err: &(dyn Error + 'static),
) -> Option<Classification> {
    err.downcast_ref::<T>()
        .and_then(ClassifyError::classification)
}

fn status_probe<T: StatusCode + Error + 'static>(
    err: &(dyn Error + 'static),
) -> Option<Classification> {
    let err = err.downcast_ref::<T>()?;
    let (class, details) = status_entry(err.status_code()?)?;
    let classification = verdict(class, details);
    Some(match err.retry_after() {
        Some(wait) => classification.with_retry_after(wait),
        None => classification,
    })
}

/// A configurable classifier for any `std::error::Error`, walking its `source()` chain.
///
/// See the [module documentation](self) for the rule order and tables. Registrations are
/// plain function pointers, so building one allocates only for the registrations, and
/// classifying does not allocate (beyond cloning the classification of a [`Classified`] or what a
/// user's [`ClassifyError`] does).
///
/// It is a [`Classify<E>`](Classify) for every `E: Error + 'static` and for the trait objects
/// `dyn Error`, `dyn Error + Send` and `dyn Error + Send + Sync`. It cannot be one for
/// `Box<dyn Error + Send + Sync>` (coherence: std may one day implement `Error` for that box),
/// so for a boxed error use `|e: &Box<dyn Error + Send + Sync>| classifier.classify_error(&**e)`.
///
/// ```
/// use redress::classify::{ChainClassifier, StatusCode};
/// use redress::{Classify, ErrorClass};
///
/// #[derive(Debug)]
/// struct HttpError(u16);
/// # impl std::fmt::Display for HttpError {
/// #     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { write!(f, "http {}", self.0) }
/// # }
/// # impl std::error::Error for HttpError {}
/// impl StatusCode for HttpError {
///     fn status_code(&self) -> Option<u16> { Some(self.0) }
/// }
///
/// let classifier = ChainClassifier::new().with_status_type::<HttpError>();
/// assert_eq!(classifier.classify(&HttpError(503)).class, ErrorClass::ServerError);
/// let io = std::io::Error::other(HttpError(429));
/// assert_eq!(classifier.classify(&io).class, ErrorClass::RateLimit);
/// ```
#[derive(Clone)]
pub struct ChainClassifier {
    explicit: Vec<Probe>,
    status: Vec<Probe>,
    heuristics: bool,
}

impl ChainClassifier {
    /// The default classifier: built-in rules plus message heuristics, no registered types.
    pub const fn new() -> Self {
        Self {
            explicit: Vec::new(),
            status: Vec::new(),
            heuristics: true,
        }
    }

    /// The built-in rules without message heuristics, no registered types.
    pub const fn strict() -> Self {
        Self {
            explicit: Vec::new(),
            status: Vec::new(),
            heuristics: false,
        }
    }

    /// Recognises `T` anywhere in the chain and asks its [`ClassifyError::classification`]
    /// (rule 1, explicit). Types registered first are asked first.
    pub fn with_type<T: ClassifyError + Error + 'static>(mut self) -> Self {
        self.explicit.push(explicit_probe::<T>);
        self
    }

    /// Recognises `T` anywhere in the chain and classifies its [`StatusCode::status_code`]
    /// through [`class_for_status`] (rule 3, status).
    pub fn with_status_type<T: StatusCode + Error + 'static>(mut self) -> Self {
        self.status.push(status_probe::<T>);
        self
    }

    /// Turns the message heuristics (rule 4) on or off.
    pub fn heuristics(mut self, enabled: bool) -> Self {
        self.heuristics = enabled;
        self
    }

    /// Whether the message heuristics are on.
    pub fn heuristics_enabled(&self) -> bool {
        self.heuristics
    }

    /// Classifies `err` and its `source()` chain (the rules of the
    /// [module documentation](self)).
    pub fn classify_error(&self, err: &(dyn Error + 'static)) -> Classification {
        // The commonest error, alone: an `io::Error` with nothing inside it. No explicit,
        // library or status rule can match one (none of them names `io::Error`, and no
        // other crate can make `io::Error` a `ClassifyError` or `StatusCode`), so its kind
        // decides, as the io rule below would.
        if let Some(io) = err.downcast_ref::<io::Error>()
            && io.get_ref().is_none()
            && let Some((class, details)) = io_entry(io.kind())
        {
            return verdict(class, details);
        }
        self.explicit_rule(err)
            .or_else(|| io_rule(err))
            .or_else(|| self.status_rule(err))
            .or_else(|| self.heuristics.then(|| heuristic_rule(err)).flatten())
            .unwrap_or(Classification::new(ErrorClass::Unknown))
    }

    fn explicit_rule(&self, err: &(dyn Error + 'static)) -> Option<Classification> {
        chain(err).find_map(|e| match e.downcast_ref::<Classified>() {
            Some(classified) => Some(classified.classification.clone()),
            None => self
                .explicit
                .iter()
                .find_map(|probe| probe(e))
                .or_else(|| library_rule(e)),
        })
    }

    fn status_rule(&self, err: &(dyn Error + 'static)) -> Option<Classification> {
        if self.status.is_empty() {
            return None;
        }
        chain(err).find_map(|e| self.status.iter().find_map(|probe| probe(e)))
    }
}

/// The error types of the libraries whose classifier features are enabled, recognised
/// anywhere in the chain as part of the explicit rule (after registered types). Each
/// feature's module provides `probe`: `Some` when `err` is its library's error type and the
/// module has an opinion about it.
#[allow(unused_variables)] // with no library feature enabled, `err` is not looked at
fn library_rule(err: &(dyn Error + 'static)) -> Option<Classification> {
    let found: Option<Classification> = None;
    #[cfg(feature = "reqwest")]
    let found = found.or_else(|| reqwest::probe(err));
    #[cfg(feature = "tonic")]
    let found = found.or_else(|| tonic::probe(err));
    #[cfg(feature = "sqlstate")]
    let found = found.or_else(|| sqlstate::probe(err));
    #[cfg(feature = "redis")]
    let found = found.or_else(|| redis::probe(err));
    #[cfg(feature = "aws")]
    let found = found.or_else(|| aws::probe(err));
    found
}

/// A classification of `class` with a static details string: every table row's verdict.
fn verdict(class: ErrorClass, details: &'static str) -> Classification {
    Classification::new(class).with_details(details)
}

fn io_rule(err: &(dyn Error + 'static)) -> Option<Classification> {
    chain(err).find_map(|e| {
        let (class, details) = io_entry(e.downcast_ref::<io::Error>()?.kind())?;
        Some(verdict(class, details))
    })
}

fn heuristic_rule(err: &(dyn Error + 'static)) -> Option<Classification> {
    chain(err).find_map(|e| {
        let mut text = LowerText::new();
        // An `Err` means the text was truncated (or the `Display` failed): use what we got.
        let _ = fmt::write(&mut text, format_args!("{e}"));
        let &(_, class, details) = heuristic_entry(text.as_bytes())?;
        Some(verdict(class, details))
    })
}

impl Default for ChainClassifier {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ChainClassifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainClassifier")
            .field("explicit_types", &self.explicit.len())
            .field("status_types", &self.status.len())
            .field("heuristics", &self.heuristics)
            .finish()
    }
}

impl<E: Error + 'static> Classify<E> for ChainClassifier {
    fn classify(&self, error: &E) -> Classification {
        self.classify_error(error)
    }
}

impl Classify<dyn Error + 'static> for ChainClassifier {
    fn classify(&self, error: &(dyn Error + 'static)) -> Classification {
        self.classify_error(error)
    }
}

impl Classify<dyn Error + Send + 'static> for ChainClassifier {
    fn classify(&self, error: &(dyn Error + Send + 'static)) -> Classification {
        self.classify_error(error)
    }
}

impl Classify<dyn Error + Send + Sync + 'static> for ChainClassifier {
    fn classify(&self, error: &(dyn Error + Send + Sync + 'static)) -> Classification {
        self.classify_error(error)
    }
}

// ---------------------------------------------------------------------------------------------
// Ready-made classifier functions
// ---------------------------------------------------------------------------------------------

static DEFAULT: ChainClassifier = ChainClassifier::new();
static STRICT: ChainClassifier = ChainClassifier::strict();

/// Classifies `err` like [`ChainClassifier::new`]: explicit [`Classified`] wrappers,
/// `io::ErrorKind`, then message heuristics. Does not allocate (beyond cloning a
/// [`Classified`]'s classification).
///
/// As a fn item it is a [`Classify<dyn Error>`](Classify); for a concrete error type use
/// `|e: &MyError| default_classifier(e)` or a [`ChainClassifier`].
pub fn default_classifier(err: &(dyn Error + 'static)) -> Classification {
    DEFAULT.classify_error(err)
}

/// The default classifier as a zero-sized value: classifies every error like
/// [`ChainClassifier::new`] (and [`default_classifier`]), with nothing to store or drop.
/// The drivers' `call` functions use it.
///
/// ```
/// use redress::classify::DefaultClassifier;
/// use redress::{Classify, ErrorClass};
///
/// let e = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
/// assert_eq!(DefaultClassifier.classify(&e).class, ErrorClass::Transient);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultClassifier;

impl<E: Error + 'static> Classify<E> for DefaultClassifier {
    fn classify(&self, error: &E) -> Classification {
        DEFAULT.classify_error(error)
    }
}

impl Classify<dyn Error + 'static> for DefaultClassifier {
    fn classify(&self, error: &(dyn Error + 'static)) -> Classification {
        DEFAULT.classify_error(error)
    }
}

impl Classify<dyn Error + Send + 'static> for DefaultClassifier {
    fn classify(&self, error: &(dyn Error + Send + 'static)) -> Classification {
        DEFAULT.classify_error(error)
    }
}

impl Classify<dyn Error + Send + Sync + 'static> for DefaultClassifier {
    fn classify(&self, error: &(dyn Error + Send + Sync + 'static)) -> Classification {
        DEFAULT.classify_error(error)
    }
}

/// Classifies `err` like [`ChainClassifier::strict`]: explicit [`Classified`] wrappers and
/// `io::ErrorKind` only, no message heuristics. Does not allocate (beyond cloning a
/// [`Classified`]'s classification).
pub fn strict_classifier(err: &(dyn Error + 'static)) -> Classification {
    STRICT.classify_error(err)
}

/// The error's own [`ClassifyError`] opinion, else [`default_classifier`] over its chain.
pub fn by_trait<E: ClassifyError + Error + 'static>(err: &E) -> Classification {
    err.classification()
        .unwrap_or_else(|| default_classifier(err))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::borrow::Cow;
    use std::io::ErrorKind as K;

    // ---- test error types -------------------------------------------------------------------

    /// A leaf error with a message.
    #[derive(Debug)]
    struct Msg(String);

    impl fmt::Display for Msg {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(&self.0)
        }
    }
    impl Error for Msg {}

    fn msg(s: &str) -> Msg {
        Msg(s.to_owned())
    }

    /// A context layer with a message and a source.
    #[derive(Debug)]
    struct Wrap {
        msg: String,
        source: Box<dyn Error + Send + Sync + 'static>,
    }

    impl fmt::Display for Wrap {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(&self.msg)
        }
    }
    impl Error for Wrap {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&*self.source)
        }
    }

    fn wrap(msg: &str, source: impl Into<Box<dyn Error + Send + Sync + 'static>>) -> Wrap {
        Wrap {
            msg: msg.to_owned(),
            source: source.into(),
        }
    }

    /// `depth` context layers (messages "layer i") over `leaf`.
    fn nest(
        depth: usize,
        leaf: impl Error + Send + Sync + 'static,
    ) -> Box<dyn Error + Send + Sync> {
        let mut e: Box<dyn Error + Send + Sync> = Box::new(leaf);
        for i in 0..depth {
            e = Box::new(wrap(&format!("layer {i}"), e));
        }
        e
    }

    /// A user error with its own opinion (`None` = no opinion).
    #[derive(Debug)]
    struct DbError(Option<ErrorClass>);

    impl fmt::Display for DbError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("db error")
        }
    }
    impl Error for DbError {}
    impl ClassifyError for DbError {
        fn classification(&self) -> Option<Classification> {
            self.0
                .map(|c| Classification::new(c).with_details("db says so"))
        }
    }

    /// A user error with an HTTP status.
    #[derive(Debug)]
    struct HttpError {
        status: Option<u16>,
        retry_after: Option<Duration>,
    }

    fn http(status: u16) -> HttpError {
        HttpError {
            status: Some(status),
            retry_after: None,
        }
    }

    impl fmt::Display for HttpError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "http error {:?}", self.status)
        }
    }
    impl Error for HttpError {}
    impl StatusCode for HttpError {
        fn status_code(&self) -> Option<u16> {
            self.status
        }
        fn retry_after(&self) -> Option<Duration> {
            self.retry_after
        }
    }

    /// An error whose source is itself: an infinite chain.
    #[derive(Debug)]
    struct SelfLoop(&'static str);

    impl fmt::Display for SelfLoop {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }
    impl Error for SelfLoop {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(self)
        }
    }

    fn full() -> ChainClassifier {
        ChainClassifier::new()
            .with_type::<DbError>()
            .with_status_type::<HttpError>()
    }

    fn class_of(c: &ChainClassifier, e: &(dyn Error + 'static)) -> ErrorClass {
        c.classify_error(e).class
    }

    // ---- tables -----------------------------------------------------------------------------

    #[test]
    fn status_table_covers_every_branch_and_boundary() {
        use ErrorClass::*;
        let cases: &[(u16, Option<ErrorClass>)] = &[
            (0, None),
            (100, None),
            (200, None),
            (204, None),
            (302, None),
            (399, None),
            (400, Some(Permanent)),
            (401, Some(Auth)),
            (402, Some(Permanent)),
            (403, Some(Permission)),
            (404, Some(Permanent)),
            (407, Some(Permanent)),
            (408, Some(Transient)),
            (409, Some(Concurrency)),
            (410, Some(Permanent)),
            (422, Some(Permanent)),
            (424, Some(Permanent)),
            (425, Some(Transient)),
            (426, Some(Permanent)),
            (428, Some(Permanent)),
            (429, Some(RateLimit)),
            (430, Some(Permanent)),
            (499, Some(Permanent)),
            (500, Some(ServerError)),
            (502, Some(ServerError)),
            (503, Some(ServerError)),
            (504, Some(ServerError)),
            (599, Some(ServerError)),
            (600, None),
            (999, None),
            (u16::MAX, None),
        ];
        for &(status, expected) in cases {
            assert_eq!(class_for_status(status), expected, "status {status}");
            assert_eq!(
                status_entry(status).map(|(c, _)| c),
                expected,
                "status {status}"
            );
        }
        // Exhaustively: 5xx is ServerError, 4xx is never None, the rest is None.
        for status in 0..=u16::MAX {
            let class = class_for_status(status);
            match status {
                400..=499 => assert!(class.is_some_and(|c| c != ServerError && c != Unknown)),
                500..=599 => assert_eq!(class, Some(ServerError)),
                _ => assert_eq!(class, None, "status {status}"),
            }
        }
    }

    #[test]
    fn io_kind_table_maps_every_listed_kind() {
        use ErrorClass::*;
        let cases: &[(K, Option<ErrorClass>)] = &[
            (K::TimedOut, Some(Transient)),
            (K::WouldBlock, Some(Transient)),
            (K::Interrupted, Some(Transient)),
            (K::ConnectionReset, Some(Transient)),
            (K::ConnectionAborted, Some(Transient)),
            (K::ConnectionRefused, Some(Transient)),
            (K::NotConnected, Some(Transient)),
            (K::BrokenPipe, Some(Transient)),
            (K::UnexpectedEof, Some(Transient)),
            (K::HostUnreachable, Some(Transient)),
            (K::NetworkUnreachable, Some(Transient)),
            (K::NetworkDown, Some(Transient)),
            (K::ResourceBusy, Some(Transient)),
            (K::AddrNotAvailable, Some(Transient)),
            (K::PermissionDenied, Some(Permission)),
            (K::NotFound, Some(Permanent)),
            (K::InvalidInput, Some(Permanent)),
            (K::InvalidData, Some(Permanent)),
            (K::Unsupported, Some(Permanent)),
            (K::AlreadyExists, Some(Permanent)),
            (K::ReadOnlyFilesystem, Some(Permanent)),
            (K::IsADirectory, Some(Permanent)),
            (K::NotADirectory, Some(Permanent)),
            (K::ArgumentListTooLong, Some(Permanent)),
            (K::DirectoryNotEmpty, Some(Permanent)),
            (K::CrossesDevices, Some(Permanent)),
            (K::TooManyLinks, Some(Permanent)),
            (K::FileTooLarge, Some(Permanent)),
            (K::StorageFull, Some(Permanent)),
            (K::QuotaExceeded, Some(Permanent)),
            (K::Deadlock, Some(Concurrency)),
            (K::Other, None),
            (K::OutOfMemory, None),
            (K::AddrInUse, None),
            (K::WriteZero, None),
            (K::StaleNetworkFileHandle, None),
            (K::ExecutableFileBusy, None),
            (K::NotSeekable, None),
        ];
        for &(kind, expected) in cases {
            assert_eq!(class_for_io_kind(kind), expected, "{kind:?}");
            // The same through a classifier, with a static detail string.
            let got = strict_classifier(&io::Error::from(kind));
            assert_eq!(got.class, expected.unwrap_or(Unknown), "{kind:?}");
            assert_eq!(got.details.is_some(), expected.is_some(), "{kind:?}");
            assert!(matches!(got.details, None | Some(Cow::Borrowed(_))));
        }
        // Every row of the table is covered above, and no kind appears twice.
        for (i, (kind, _, _)) in IO_KINDS.iter().enumerate() {
            assert!(cases.iter().any(|(k, _)| k == kind), "{kind:?} untested");
            assert!(
                !IO_KINDS[..i].iter().any(|(k, _, _)| k == kind),
                "{kind:?} twice"
            );
        }
    }

    #[test]
    fn heuristics_table_in_priority_order() {
        use ErrorClass::*;
        let cases: &[(&str, Option<ErrorClass>)] = &[
            // each pattern on its own, in mixed case
            ("429 Too Many Requests", Some(RateLimit)),
            ("Rate Limit exceeded", Some(RateLimit)),
            ("RateLimitError", Some(RateLimit)),
            ("request was throttled", Some(RateLimit)),
            ("Throttling: please back off", Some(RateLimit)),
            ("SlowDown: please slow down", Some(RateLimit)),
            ("500 Internal Server Error", Some(ServerError)),
            ("502 Bad Gateway", Some(ServerError)),
            ("503 Service Unavailable", Some(ServerError)),
            ("504 Gateway Timeout", Some(ServerError)),
            ("401 Unauthorized", Some(Auth)),
            ("request unauthenticated", Some(Auth)),
            ("Invalid Token", Some(Auth)),
            ("token expired at 12:00", Some(Auth)),
            ("expired token", Some(Auth)),
            ("Invalid credentials supplied", Some(Auth)),
            ("403 Forbidden", Some(Permission)),
            ("Permission denied (os error 13)", Some(Permission)),
            ("ACCESS DENIED", Some(Permission)),
            ("operation not allowed", Some(Permission)),
            ("Deadlock found when trying to get lock", Some(Concurrency)),
            ("ERROR: serialization failure", Some(Concurrency)),
            (
                "could not serialize access due to concurrent update",
                Some(Concurrency),
            ),
            ("409 Conflict", Some(Concurrency)),
            ("operation timed out", Some(Transient)),
            ("read timeout", Some(Transient)),
            ("context deadline exceeded", Some(Transient)),
            ("Connection reset by peer", Some(Transient)),
            ("connection refused", Some(Transient)),
            (
                "connection closed before message completed",
                Some(Transient),
            ),
            ("connection aborted", Some(Transient)),
            ("Broken pipe", Some(Transient)),
            ("Resource temporarily unavailable", Some(Transient)),
            ("please try again", Some(Transient)),
            ("backend unavailable", Some(Transient)),
            // priority: specific before generic
            ("rate limit exceeded, try again later", Some(RateLimit)),
            ("403 Forbidden: API rate limit exceeded", Some(RateLimit)),
            ("503 Slow Down", Some(RateLimit)),
            ("upstream: gateway timeout", Some(ServerError)),
            ("service unavailable, try again", Some(ServerError)),
            ("unauthorized: access denied", Some(Auth)),
            ("deadlock detected; try again", Some(Concurrency)),
            ("conflict: timed out waiting for lock", Some(Concurrency)),
            // no match
            ("", None),
            ("no such table: users", None),
            ("tim ed out", None),
            ("ünïcödé 🚀 错误", None),
        ];
        for &(text, expected) in cases {
            assert_eq!(class_for_message(text), expected, "{text:?}");
            let got = default_classifier(&msg(text));
            assert_eq!(
                got.class,
                expected.unwrap_or(ErrorClass::Unknown),
                "{text:?}"
            );
        }
        // Every pattern is lowercase ASCII, reachable (not shadowed by an earlier pattern that
        // is a substring of it with another class), and reported as its details.
        for (i, &(pattern, class, details)) in HEURISTICS.iter().enumerate() {
            assert!(
                pattern
                    .bytes()
                    .all(|b| !b.is_ascii_uppercase() && b.is_ascii())
            );
            assert_eq!(details, format!("heuristic: {pattern}"));
            let got = default_classifier(&msg(pattern));
            assert_eq!(got.class, class, "{pattern:?}");
            assert_eq!(got.details, Some(Cow::Borrowed(details)), "{pattern:?}");
            assert!(
                !HEURISTICS[..i]
                    .iter()
                    .any(|&(p, c, _)| c != class && pattern.contains(p)),
                "{pattern:?} is shadowed"
            );
        }
    }

    #[test]
    fn heuristic_text_is_truncated_at_the_limit_on_a_char_boundary() {
        let pad = "x".repeat(HEURISTIC_TEXT_LIMIT - "timeout".len());
        assert_eq!(
            class_for_message(&format!("{pad}TIMEOUT")),
            Some(ErrorClass::Transient)
        );
        assert_eq!(class_for_message(&format!("{pad}xtimeout")), None);
        assert_eq!(
            default_classifier(&msg(&format!("{pad}xtimeout"))).class,
            ErrorClass::Unknown
        );
        // A multi-byte char straddling the limit is dropped whole.
        for shift in 0..4 {
            let text = format!(
                "{}{}",
                "y".repeat(HEURISTIC_TEXT_LIMIT - shift),
                "🚀".repeat(3)
            );
            let mut lower = LowerText::new();
            assert!(fmt::write(&mut lower, format_args!("{text}")).is_err());
            let kept = std::str::from_utf8(lower.as_bytes());
            assert!(kept.is_ok_and(|k| text.starts_with(k)), "shift {shift}");
            assert!(lower.as_bytes().len() > HEURISTIC_TEXT_LIMIT - 4);
        }
        // Text written in several pieces is kept in order and lowercased.
        let mut lower = LowerText::new();
        assert!(fmt::write(&mut lower, format_args!("A{}C{}", "B", 1)).is_ok());
        assert_eq!(lower.as_bytes(), b"abc1");
    }

    // ---- Classified and the traits ----------------------------------------------------------

    #[test]
    fn classified_is_transparent_and_carries_its_classification() {
        let c = Classified::new(
            Classification::new(ErrorClass::RateLimit).with_retry_after(Duration::from_secs(7)),
            msg("Inner Message"),
        );
        assert_eq!(c.to_string(), "Inner Message");
        assert_eq!(c.classification().class, ErrorClass::RateLimit);
        assert_eq!(
            ClassifyError::classification(&c),
            Some(c.classification().clone())
        );
        assert_eq!(c.inner().to_string(), "Inner Message");
        assert!(c.source().is_some_and(|s| s.is::<Msg>()));
        let got = default_classifier(&c);
        assert_eq!(got.class, ErrorClass::RateLimit);
        assert_eq!(got.retry_after, Some(Duration::from_secs(7)));
        assert!(c.into_inner().is::<Msg>());

        let from_str = Classified::new(ErrorClass::Permanent, "plain text");
        assert_eq!(from_str.to_string(), "plain text");
        assert_eq!(strict_classifier(&from_str).class, ErrorClass::Permanent);
        // Explicit beats the inner's own text.
        let over = Classified::new(ErrorClass::Permanent, msg("timed out"));
        assert_eq!(default_classifier(&over).class, ErrorClass::Permanent);
    }

    #[test]
    fn by_trait_prefers_the_errors_own_opinion() {
        assert_eq!(
            by_trait(&DbError(Some(ErrorClass::Auth))).class,
            ErrorClass::Auth
        );
        assert_eq!(
            by_trait(&DbError(Some(ErrorClass::Auth)))
                .details
                .as_deref(),
            Some("db says so")
        );
        // No opinion: falls back to the default classifier (here, nothing recognised).
        assert_eq!(by_trait(&DbError(None)).class, ErrorClass::Unknown);
        let c = Classified::new(ErrorClass::Concurrency, "x");
        assert_eq!(by_trait(&c).class, ErrorClass::Concurrency);
    }

    // ---- chains -----------------------------------------------------------------------------

    #[test]
    fn classified_deep_in_chain_beats_io_error_at_top() {
        let inner = nest(
            5,
            Classified::new(ErrorClass::Permanent, msg("bad request")),
        );
        let top = io::Error::new(K::TimedOut, inner);
        assert_eq!(
            class_of(&ChainClassifier::strict(), &top),
            ErrorClass::Permanent
        );
        assert_eq!(default_classifier(&top).class, ErrorClass::Permanent);
        // Without the wrapper the io kind decides.
        let plain = io::Error::new(K::TimedOut, nest(5, msg("bad request")));
        let got = default_classifier(&plain);
        assert_eq!(got.class, ErrorClass::Transient);
        assert_eq!(got.details.as_deref(), Some("io: timed out"));
    }

    #[test]
    fn io_other_descends_into_the_custom_error() {
        // `io::Error::source()` would skip the `Classified` itself; `get_ref()` does not.
        let e = io::Error::other(Classified::new(ErrorClass::Auth, msg("nope")));
        assert!(e.source().is_some_and(|s| s.is::<Msg>()));
        assert_eq!(strict_classifier(&e).class, ErrorClass::Auth);

        let e = io::Error::other(http(503));
        assert_eq!(class_of(&full(), &e), ErrorClass::ServerError);

        let e = io::Error::other(DbError(Some(ErrorClass::Concurrency)));
        assert_eq!(class_of(&full(), &e), ErrorClass::Concurrency);

        // io inside io: the inner kind is used when the outer one has no opinion.
        let e = io::Error::other(io::Error::from(K::ConnectionReset));
        assert_eq!(strict_classifier(&e).class, ErrorClass::Transient);

        // io::Error -> wrap -> io::Error -> custom
        let e = io::Error::other(wrap(
            "ctx",
            io::Error::other(Classified::new(ErrorClass::Permission, "deep")),
        ));
        assert_eq!(strict_classifier(&e).class, ErrorClass::Permission);
    }

    #[test]
    fn registered_classify_error_type_is_found_three_deep() {
        let e = nest(3, DbError(Some(ErrorClass::Concurrency)));
        let got = full().classify_error(&*e);
        assert_eq!(got.class, ErrorClass::Concurrency);
        assert_eq!(got.details.as_deref(), Some("db says so"));
        // Not registered: not recognised.
        assert_eq!(
            class_of(&ChainClassifier::strict(), &*e),
            ErrorClass::Unknown
        );
        // `None` is no opinion: the walk continues below it.
        let e = wrap(
            "outer",
            Wrap {
                msg: "db".into(),
                source: Box::new(DbError(None)),
            },
        );
        assert_eq!(class_of(&full(), &e), ErrorClass::Unknown);
        let e = io::Error::other(wrap("ctx", DbError(None)));
        assert_eq!(class_of(&full(), &e), ErrorClass::Unknown);
    }

    #[test]
    fn registered_status_type_is_classified_by_the_status_table() {
        let c = ChainClassifier::strict().with_status_type::<HttpError>();
        let e = nest(
            2,
            HttpError {
                status: Some(429),
                retry_after: Some(Duration::from_secs(3)),
            },
        );
        let got = c.classify_error(&*e);
        assert_eq!(got.class, ErrorClass::RateLimit);
        assert_eq!(got.retry_after, Some(Duration::from_secs(3)));
        assert_eq!(
            got.details.as_deref(),
            Some("status: 429 too many requests")
        );
        assert_eq!(class_of(&c, &http(401)), ErrorClass::Auth);
        assert_eq!(class_of(&c, &http(404)), ErrorClass::Permanent);
        // Unmapped status or no status: no opinion, the walk continues.
        assert_eq!(class_of(&c, &http(200)), ErrorClass::Unknown);
        let none = HttpError {
            status: None,
            retry_after: None,
        };
        assert_eq!(class_of(&c, &none), ErrorClass::Unknown);
        let e = wrap(
            "ctx",
            Wrap {
                msg: "ok-ish".into(),
                source: Box::new(http(502)),
            },
        );
        let e = HttpErrorOver200(e);
        assert_eq!(
            class_of(&c.clone().with_status_type::<HttpErrorOver200>(), &e),
            ErrorClass::ServerError
        );
        // Not registered: not recognised.
        assert_eq!(
            class_of(&ChainClassifier::strict(), &http(503)),
            ErrorClass::Unknown
        );
    }

    /// A status type reporting 200 whose cause reports a failure status.
    #[derive(Debug)]
    struct HttpErrorOver200(Wrap);

    impl fmt::Display for HttpErrorOver200 {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("status 200")
        }
    }
    impl Error for HttpErrorOver200 {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }
    impl StatusCode for HttpErrorOver200 {
        fn status_code(&self) -> Option<u16> {
            Some(200)
        }
    }

    #[test]
    fn explicit_beats_io_beats_status_beats_heuristics() {
        let c = full().with_status_type::<StatusOver>();
        // Outermost first: heuristics text, then a registered status type, then an io error,
        // then an explicit wrapper innermost.
        let explicit = Classified::new(ErrorClass::Permanent, msg("leaf"));
        let io_err = io::Error::new(K::ConnectionReset, explicit);
        let e = wrap("timed out", StatusOver(http(503), Box::new(io_err)));
        assert_eq!(class_of(&c, &e), ErrorClass::Permanent);

        // Remove the explicit layer: io wins.
        let io_err = io::Error::new(K::ConnectionReset, msg("leaf"));
        let e = wrap("timed out", StatusOver(http(503), Box::new(io_err)));
        let got = c.classify_error(&e);
        assert_eq!(
            (got.class, got.details.as_deref()),
            (ErrorClass::Transient, Some("io: connection reset"))
        );

        // Remove io: status wins.
        let e = wrap("timed out", StatusOver(http(503), Box::new(msg("leaf"))));
        assert_eq!(class_of(&c, &e), ErrorClass::ServerError);

        // Remove status: heuristics win.
        let e = wrap("timed out", msg("leaf"));
        let got = c.classify_error(&e);
        assert_eq!(
            (got.class, got.details.as_deref()),
            (ErrorClass::Transient, Some("heuristic: timed out"))
        );

        // Nothing: Unknown.
        let e = wrap("context", msg("leaf"));
        assert_eq!(
            c.classify_error(&e),
            Classification::new(ErrorClass::Unknown)
        );

        // A registered ClassifyError type counts as explicit, even below io and status.
        let e = StatusOver(
            http(503),
            Box::new(io::Error::new(K::TimedOut, DbError(Some(ErrorClass::Auth)))),
        );
        assert_eq!(class_of(&c, &e), ErrorClass::Auth);
    }

    /// A registered status type (through its first field) with a cause.
    #[derive(Debug)]
    struct StatusOver(HttpError, Box<dyn Error + Send + Sync>);

    impl fmt::Display for StatusOver {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "status over: {}", self.0)
        }
    }
    impl Error for StatusOver {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&*self.1)
        }
    }
    impl StatusCode for StatusOver {
        fn status_code(&self) -> Option<u16> {
            self.0.status_code()
        }
    }

    #[test]
    fn strict_ignores_heuristics() {
        let e = wrap("ctx", msg("Connection reset by peer"));
        assert_eq!(default_classifier(&e).class, ErrorClass::Transient);
        assert_eq!(strict_classifier(&e).class, ErrorClass::Unknown);
        assert_eq!(
            class_of(&ChainClassifier::strict(), &e),
            ErrorClass::Unknown
        );
        assert_eq!(
            class_of(&ChainClassifier::new().heuristics(false), &e),
            ErrorClass::Unknown
        );
        assert_eq!(
            class_of(&ChainClassifier::strict().heuristics(true), &e),
            ErrorClass::Transient
        );
        assert!(ChainClassifier::new().heuristics_enabled());
        assert!(ChainClassifier::default().heuristics_enabled());
        assert!(!ChainClassifier::strict().heuristics_enabled());
        // Strict still honours explicit wrappers and io kinds.
        assert_eq!(
            strict_classifier(&io::Error::from(K::BrokenPipe)).class,
            ErrorClass::Transient
        );
    }

    #[test]
    fn forty_deep_chain_terminates_and_is_cut_at_the_depth_limit() {
        // The signal at the bottom of a 40-deep chain is beyond the limit.
        let e = nest(40, Classified::new(ErrorClass::Permanent, "x"));
        assert_eq!(chain(&*e).count(), MAX_CHAIN_DEPTH);
        assert_eq!(default_classifier(&*e).class, ErrorClass::Unknown);
        // Boundary: the last examined position is found, the next one is not.
        let last = nest(MAX_CHAIN_DEPTH - 1, msg("timed out"));
        assert_eq!(chain(&*last).count(), MAX_CHAIN_DEPTH);
        assert_eq!(default_classifier(&*last).class, ErrorClass::Transient);
        let beyond = nest(MAX_CHAIN_DEPTH, msg("timed out"));
        assert_eq!(default_classifier(&*beyond).class, ErrorClass::Unknown);
        let beyond = nest(MAX_CHAIN_DEPTH, io::Error::from(K::TimedOut));
        assert_eq!(strict_classifier(&*beyond).class, ErrorClass::Unknown);
    }

    #[test]
    fn self_referencing_chain_is_cut_at_the_depth_limit() {
        let e = SelfLoop("nothing to see");
        assert_eq!(chain(&e).count(), MAX_CHAIN_DEPTH);
        assert_eq!(full().classify_error(&e).class, ErrorClass::Unknown);
        assert_eq!(
            default_classifier(&SelfLoop("timed out")).class,
            ErrorClass::Transient
        );
        let e = io::Error::other(wrap("ctx", SelfLoop("x")));
        assert_eq!(strict_classifier(&e).class, ErrorClass::Unknown);
    }

    #[test]
    fn chain_classifier_is_a_classify_for_errors_and_dyn_errors() {
        fn via<E: ?Sized, C: Classify<E>>(c: &C, e: &E) -> ErrorClass {
            c.classify(e).class
        }
        let c = ChainClassifier::new();
        let io_err = io::Error::from(K::TimedOut);
        assert_eq!(via::<io::Error, _>(&c, &io_err), ErrorClass::Transient);
        assert_eq!(via::<dyn Error, _>(&c, &io_err), ErrorClass::Transient);
        let boxed: Box<dyn Error + Send + Sync> = Box::new(io::Error::from(K::NotFound));
        assert_eq!(
            via::<dyn Error + Send + Sync, _>(&c, &*boxed),
            ErrorClass::Permanent
        );
        let send: &(dyn Error + Send) = &io_err;
        assert_eq!(via::<dyn Error + Send, _>(&c, send), ErrorClass::Transient);
        // The free functions are classifiers of `dyn Error` through the closure blanket impl.
        assert_eq!(
            via::<dyn Error, _>(&default_classifier, &io_err),
            ErrorClass::Transient
        );
        assert_eq!(
            via::<dyn Error, _>(&strict_classifier, &msg("timeout")),
            ErrorClass::Unknown
        );
        let typed = |e: &io::Error| default_classifier(e);
        assert_eq!(via(&typed, &io_err), ErrorClass::Transient);
        // Debug shows the configuration.
        let dbg = format!("{:?}", full());
        assert!(
            dbg.contains("explicit_types: 1") && dbg.contains("status_types: 1"),
            "{dbg}"
        );
    }

    proptest! {
        #[test]
        fn classifying_arbitrary_messages_never_panics(
            chars in proptest::collection::vec(any::<char>(), 0..600),
            depth in 0usize..4,
        ) {
            let text: String = chars.into_iter().collect();
            let expected = class_for_message(&text).unwrap_or(ErrorClass::Unknown);
            prop_assert_eq!(default_classifier(&msg(&text)).class, expected);
            prop_assert_eq!(strict_classifier(&msg(&text)).class, ErrorClass::Unknown);
            let nested = io::Error::other(nest(depth, Msg(text.clone())));
            let got = full().classify_error(&nested).class;
            // Context layers say "layer i", which matches nothing.
            prop_assert_eq!(got, expected);
            let mut lower = LowerText::new();
            let _ = fmt::write(&mut lower, format_args!("{text}"));
            prop_assert!(std::str::from_utf8(lower.as_bytes()).is_ok());
            prop_assert!(lower.as_bytes().len() <= HEURISTIC_TEXT_LIMIT);
        }
    }

    #[test]
    fn shared_errors_are_stepped_into() {
        #[derive(Debug)]
        struct Outer(Arc<dyn Error + Send + Sync>);
        impl fmt::Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("outer")
            }
        }
        impl Error for Outer {
            fn source(&self) -> Option<&(dyn Error + 'static)> {
                Some(&self.0)
            }
        }
        let reset: Arc<dyn Error + Send + Sync> =
            Arc::new(io::Error::from(io::ErrorKind::ConnectionReset));
        let err = Outer(reset);
        assert_eq!(strict_classifier(&err).class, ErrorClass::Transient);
        assert_eq!(chain(&err).count(), 3);
    }
}
