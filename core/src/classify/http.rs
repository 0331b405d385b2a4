//! Classifier for HTTP responses (feature `http`): the status table and `Retry-After`.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//!
//! use http::{HeaderMap, HeaderValue, Response, StatusCode, header::RETRY_AFTER};
//! use redress::ClassifyResult;
//! use redress::ErrorClass;
//! use redress::classify::http::{
//!     DEFAULT_MAX_RETRY_AFTER, ResponseClassifier, class_for_status, classify_parts,
//!     parse_retry_after,
//! };
//!
//! assert_eq!(class_for_status(StatusCode::TOO_MANY_REQUESTS), Some(ErrorClass::RateLimit));
//! assert_eq!(class_for_status(StatusCode::OK), None);
//!
//! // Both forms of Retry-After: delta-seconds and an HTTP-date, read against `now`.
//! let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_450);
//! let cap = DEFAULT_MAX_RETRY_AFTER;
//! let seconds = HeaderValue::from_static("120");
//! assert_eq!(parse_retry_after(&seconds, now, cap), Some(Duration::from_secs(120)));
//! let date = HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT");
//! assert_eq!(parse_retry_after(&date, now, cap), Some(Duration::from_secs(30)));
//!
//! // A failing status, with the hint.
//! let mut headers = HeaderMap::new();
//! headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
//! let c = classify_parts(StatusCode::SERVICE_UNAVAILABLE, &headers, now, cap).unwrap();
//! assert_eq!(c.class, ErrorClass::ServerError);
//! assert_eq!(c.retry_after, Some(Duration::from_secs(7)));
//!
//! // A response classifier, for operations whose `Ok` value is a response.
//! let response = Response::builder().status(429).header("retry-after", "2").body(()).unwrap();
//! let c = ResponseClassifier::default().classify_result(&response).unwrap();
//! assert_eq!(c.class, ErrorClass::RateLimit);
//! assert_eq!(c.retry_after, Some(Duration::from_secs(2)));
//! assert!(ResponseClassifier::default()
//!     .classify_result(&Response::new(()))
//!     .is_none());
//! ```
//!
//! # Status table
//!
//! [`class_for_status`] is [`super::class_for_status`] (the crate's one status table) for an
//! [`http::StatusCode`]:
//!
//! | Status            | Class         |
//! |-------------------|---------------|
//! | 100–399           | no failure (`None`) |
//! | 401               | `Auth`        |
//! | 403               | `Permission`  |
//! | 408               | `Transient`   |
//! | 409               | `Concurrency` |
//! | 425 (Too Early)   | `Transient`   |
//! | 429               | `RateLimit`   |
//! | other 400–499     | `Permanent`   |
//! | 500–599           | `ServerError` |
//! | anything else (600–999) | `None`  |
//!
//! # `Retry-After`
//!
//! A `Retry-After` header (RFC 9110 §10.2.3) on a failing response becomes the
//! classification's [`retry_after`](Classification::retry_after) hint, whatever the status
//! (it is most common on 429 and 503).
//!
//! | Value                                                    | Hint |
//! |----------------------------------------------------------|------|
//! | delta-seconds (`0`, `120`: ASCII digits only)            | that many seconds, at most the cap |
//! | delta-seconds too large for a `u64`                      | the cap |
//! | an HTTP-date in the future (IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT`, RFC 850 `Sunday, 06-Nov-94 08:49:37 GMT`, asctime `Sun Nov  6 08:49:37 1994`) | the time from `now` to that date, at most the cap |
//! | an HTTP-date at or before `now`                          | [`Duration::ZERO`] |
//! | leading or trailing spaces and tabs (`  5`, `5 `)        | ignored, as HTTP parsers trim optional whitespace around a field value |
//! | empty, negative (`-1`), signed (`+5`), fractional (`1.5`), anything else (`abc`), an invalid date (including a weekday that does not match the date), non-ASCII | no hint (`None`) |
//! | several `Retry-After` fields that disagree               | no hint (`None`); several that agree count once |
//!
//! **Clock skew.** An HTTP-date is the server's clock; the caller's may differ by seconds or
//! hours. A date is therefore turned into a delay against a `now` the caller passes in (the
//! [`ResponseClassifier`] reads [`SystemTime::now`] only when a header in date form is there), a
//! date in the past means "now" rather than an error, and every hint is clamped to a cap:
//! [`DEFAULT_MAX_RETRY_AFTER`] (5 minutes) unless the caller passes another.
//!
//! The default cap of 5 minutes: a retry loop is meant to ride out blips, throttling windows and
//! restarts, which a well-behaved server prices in seconds to a few minutes. A longer
//! `Retry-After` usually announces maintenance, or comes from a skewed clock or a wrong date,
//! and honouring it blindly would park a caller (and whatever it holds) for hours; past the cap
//! the policy's own deadline and backoff decide. Raise it with
//! [`ResponseClassifier::with_max_retry_after`] or the `cap` argument where a service is known
//! to ask for longer waits.

use std::time::{Duration, SystemTime};

use ::http::header::RETRY_AFTER;
use ::http::{HeaderMap, HeaderValue, Response, StatusCode};

use crate::class::{Classification, ClassifyResult, ErrorClass};
use crate::classify::verdict;

/// The default cap on a `Retry-After` hint: 5 minutes.
///
/// Longer waits are more often maintenance windows, skewed clocks or wrong dates than
/// something a retry loop should sleep through (see the [module documentation](self)).
pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(5 * 60);

/// The class of an HTTP status: [`super::class_for_status`] (the crate's status table) for an
/// [`http::StatusCode`]. `None` for the statuses that are not failures
/// (1xx, 2xx, 3xx).
pub fn class_for_status(status: StatusCode) -> Option<ErrorClass> {
    super::class_for_status(status.as_u16())
}

/// Parses one `Retry-After` value into a delay: delta-seconds or an HTTP-date read against
/// `now`, clamped to `cap` (see the table of the [module documentation](self)).
///
/// `None` when the value is empty, negative, fractional, not ASCII or otherwise unparseable.
pub fn parse_retry_after(value: &HeaderValue, now: SystemTime, cap: Duration) -> Option<Duration> {
    parse_with(value, &mut || now, cap)
}

/// The delay asked for by the `Retry-After` header(s) of `headers`, read against `now` and
/// clamped to `cap`; see [`parse_retry_after`].
///
/// `None` when there is no such header, when one of them does not parse, or when several
/// disagree.
pub fn retry_after(headers: &HeaderMap, now: SystemTime, cap: Duration) -> Option<Duration> {
    retry_after_with(headers, &mut || now, cap)
}

/// The classification of a response with this status and these headers: `None` when the status
/// is not a failure, else its class (see [`class_for_status`]) with the `Retry-After` hint when
/// present and parseable (read against `now`, clamped to `cap`), and a static detail string such
/// as `"status: 5xx"`.
pub fn classify_parts(
    status: StatusCode,
    headers: &HeaderMap,
    now: SystemTime,
    cap: Duration,
) -> Option<Classification> {
    classify_with(status, headers, &mut || now, cap)
}

/// Classifies responses: `None` for a success, else the class of the status with the
/// `Retry-After` hint (see the [module documentation](self)).
///
/// It reads [`SystemTime::now`] only when a `Retry-After` header in date form is present.
///
/// ```
/// use std::time::Duration;
///
/// use redress::ClassifyResult;
/// use redress::classify::http::ResponseClassifier;
///
/// let classifier = ResponseClassifier::default().with_max_retry_after(Duration::from_secs(30));
/// let response = http::Response::builder().status(503).header("retry-after", "3600").body(()).unwrap();
/// let c = classifier.classify_result(&response).unwrap();
/// assert_eq!(c.retry_after, Some(Duration::from_secs(30)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ResponseClassifier {
    max_retry_after: Duration,
}

impl ResponseClassifier {
    /// A classifier with the default cap, [`DEFAULT_MAX_RETRY_AFTER`].
    pub const fn new() -> Self {
        Self {
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
        }
    }

    /// This classifier with another cap on the `Retry-After` hint.
    pub const fn with_max_retry_after(mut self, cap: Duration) -> Self {
        self.max_retry_after = cap;
        self
    }

    /// The cap on the `Retry-After` hint.
    pub const fn max_retry_after(&self) -> Duration {
        self.max_retry_after
    }

    /// Classifies a status and its headers, like [`classify_parts`] with this classifier's cap
    /// and a `now` read (once) only when a `Retry-After` date is present.
    pub fn classify_parts(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
    ) -> Option<Classification> {
        let mut now = LazyNow::default();
        classify_with(status, headers, &mut || now.get(), self.max_retry_after)
    }
}

impl Default for ResponseClassifier {
    fn default() -> Self {
        Self::new()
    }
}

impl<B> ClassifyResult<Response<B>> for ResponseClassifier {
    fn classify_result(&self, value: &Response<B>) -> Option<Classification> {
        self.classify_parts(value.status(), value.headers())
    }
}

impl ClassifyResult<::http::response::Parts> for ResponseClassifier {
    fn classify_result(&self, value: &::http::response::Parts) -> Option<Classification> {
        self.classify_parts(value.status, &value.headers)
    }
}

impl ClassifyResult<StatusCode> for ResponseClassifier {
    fn classify_result(&self, value: &StatusCode) -> Option<Classification> {
        status_classification(*value)
    }
}

/// [`SystemTime::now`], read on first use and then remembered.
#[derive(Default)]
struct LazyNow(Option<SystemTime>);

impl LazyNow {
    fn get(&mut self) -> SystemTime {
        *self.0.get_or_insert_with(SystemTime::now)
    }
}

/// The class and static details of a failing status, without hints.
fn status_classification(status: StatusCode) -> Option<Classification> {
    let (class, details) = super::status_entry(status.as_u16())?;
    Some(verdict(class, details))
}

/// [`classify_parts`] with a `now` computed only when a date needs it.
fn classify_with(
    status: StatusCode,
    headers: &HeaderMap,
    now: &mut dyn FnMut() -> SystemTime,
    cap: Duration,
) -> Option<Classification> {
    let classification = status_classification(status)?;
    Some(match retry_after_with(headers, now, cap) {
        Some(delay) => classification.with_retry_after(delay),
        None => classification,
    })
}

fn retry_after_with(
    headers: &HeaderMap,
    now: &mut dyn FnMut() -> SystemTime,
    cap: Duration,
) -> Option<Duration> {
    let mut found = None;
    for value in headers.get_all(RETRY_AFTER) {
        let delay = parse_with(value, now, cap)?;
        match found {
            Some(previous) if previous != delay => return None,
            _ => found = Some(delay),
        }
    }
    found
}

fn parse_with(
    value: &HeaderValue,
    now: &mut dyn FnMut() -> SystemTime,
    cap: Duration,
) -> Option<Duration> {
    // `to_str` fails on anything but visible ASCII (and tab).
    let text = value.to_str().ok()?.trim_matches([' ', '\t']);
    if text.is_empty() {
        return None;
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        // Only digits: delta-seconds. The one way to fail now is overflow: clamp it.
        return Some(
            text.parse::<u64>()
                .map_or(cap, |secs| Duration::from_secs(secs).min(cap)),
        );
    }
    let date = httpdate::parse_http_date(text).ok()?;
    // A date at or before `now` gives `Err` or zero: retry now.
    Some(
        date.duration_since(now())
            .map_or(Duration::ZERO, |delay| delay.min(cap)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use ErrorClass::*;

    /// 2015-10-21 07:27:30 UTC.
    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_450)
    }

    const CAP: Duration = DEFAULT_MAX_RETRY_AFTER;

    fn secs(s: u64) -> Option<Duration> {
        Some(Duration::from_secs(s))
    }

    #[test]
    fn status_table() {
        let rows: &[(u16, Option<ErrorClass>)] = &[
            (100, None),
            (101, None),
            (200, None),
            (201, None),
            (204, None),
            (301, None),
            (304, None),
            (307, None),
            (399, None),
            (400, Some(Permanent)),
            (401, Some(Auth)),
            (403, Some(Permission)),
            (404, Some(Permanent)),
            (405, Some(Permanent)),
            (408, Some(Transient)),
            (409, Some(Concurrency)),
            (410, Some(Permanent)),
            (413, Some(Permanent)),
            (422, Some(Permanent)),
            (425, Some(Transient)),
            (429, Some(RateLimit)),
            (451, Some(Permanent)),
            (499, Some(Permanent)),
            (500, Some(ServerError)),
            (501, Some(ServerError)),
            (502, Some(ServerError)),
            (503, Some(ServerError)),
            (504, Some(ServerError)),
            (599, Some(ServerError)),
            (600, None),
            (999, None),
        ];
        let classifier = ResponseClassifier::default();
        for &(code, expected) in rows {
            let status = StatusCode::from_u16(code).unwrap();
            assert_eq!(class_for_status(status), expected, "{code}");
            assert_eq!(
                class_for_status(status),
                super::super::class_for_status(code),
                "{code}"
            );
            let by_parts = classify_parts(status, &HeaderMap::new(), now(), CAP);
            assert_eq!(by_parts.as_ref().map(|c| c.class), expected, "{code}");
            if let Some(c) = &by_parts {
                assert_eq!(c.retry_after, None, "{code}");
                assert!(
                    c.details.as_deref().unwrap().starts_with("status: "),
                    "{code}"
                );
            }
            assert_eq!(classifier.classify_result(&status), by_parts, "{code}");
            let response = Response::builder().status(status).body(()).unwrap();
            assert_eq!(classifier.classify_result(&response), by_parts, "{code}");
        }
    }

    #[test]
    fn retry_after_table() {
        let rows: &[(&[u8], Option<Duration>)] = &[
            (b"0", secs(0)),
            (b"120", secs(120)),
            (b"300", secs(300)),
            (b"301", Some(CAP)),
            (b"  5", secs(5)),
            (b"5 ", secs(5)),
            (b"\t5\t", secs(5)),
            (b"007", secs(7)),
            (b"-1", None),
            (b"+5", None),
            (b"1.5", None),
            (b"1e3", None),
            (b"5 5", None),
            (b"abc", None),
            (b"", None),
            (b"   ", None),
            (b"99999999999999999999999", Some(CAP)),
            (b"18446744073709551615", Some(CAP)),
            ("\u{0665}".as_bytes(), None), // ARABIC-INDIC DIGIT FIVE
            (b"\xff5", None),
            // 30 s ahead of `now`, in each of the three date formats.
            (b"Wed, 21 Oct 2015 07:28:00 GMT", secs(30)),
            (b"Wednesday, 21-Oct-15 07:28:00 GMT", secs(30)),
            (b"Wed Oct 21 07:28:00 2015", secs(30)),
            (b" Wed, 21 Oct 2015 07:28:00 GMT ", secs(30)),
            // Exactly now, and in the past.
            (b"Wed, 21 Oct 2015 07:27:30 GMT", Some(Duration::ZERO)),
            (b"Wed, 21 Oct 2015 07:27:00 GMT", Some(Duration::ZERO)),
            (b"Sun, 06 Nov 1994 08:49:37 GMT", Some(Duration::ZERO)),
            // 10 days ahead: clamped.
            (b"Sat, 31 Oct 2015 07:27:30 GMT", Some(CAP)),
            // Invalid dates.
            (b"Wed, 32 Oct 2015 07:28:00 GMT", None),
            (b"Wed, 21 Foo 2015 07:28:00 GMT", None),
            (b"Wed, 21 Oct 2015 25:28:00 GMT", None),
            (b"Thu, 21 Oct 2015 07:28:00 GMT", None), // the wrong weekday
            (b"2015-10-21T07:28:00Z", None),
        ];
        for &(raw, expected) in rows {
            let value = HeaderValue::from_bytes(raw).unwrap();
            assert_eq!(parse_retry_after(&value, now(), CAP), expected, "{raw:?}");

            let mut headers = HeaderMap::new();
            headers.insert(RETRY_AFTER, value);
            assert_eq!(retry_after(&headers, now(), CAP), expected, "{raw:?}");
            let c = classify_parts(StatusCode::SERVICE_UNAVAILABLE, &headers, now(), CAP).unwrap();
            assert_eq!(c.class, ServerError);
            assert_eq!(c.retry_after, expected, "{raw:?}");
        }
    }

    #[test]
    fn another_cap() {
        let cap = Duration::from_secs(10);
        let rows: &[(&str, Option<Duration>)] = &[
            ("9", secs(9)),
            ("10", secs(10)),
            ("11", secs(10)),
            ("99999999999999999999999", secs(10)),
            ("Wed, 21 Oct 2015 07:27:35 GMT", secs(5)),
            ("Wed, 21 Oct 2015 07:28:00 GMT", secs(10)),
        ];
        for &(raw, expected) in rows {
            let value = HeaderValue::from_str(raw).unwrap();
            assert_eq!(parse_retry_after(&value, now(), cap), expected, "{raw}");
        }
        let classifier = ResponseClassifier::new().with_max_retry_after(cap);
        assert_eq!(classifier.max_retry_after(), cap);
        let response = Response::builder()
            .status(429)
            .header(RETRY_AFTER, "3600")
            .body(())
            .unwrap();
        assert_eq!(
            classifier.classify_result(&response).unwrap().retry_after,
            Some(cap)
        );
    }

    #[test]
    fn several_headers() {
        let rows: &[(&[&str], Option<Duration>)] = &[
            (&[], None),
            (&["5", "5"], secs(5)),
            (&["5", " 5"], secs(5)),
            (&["30", "Wed, 21 Oct 2015 07:28:00 GMT"], secs(30)),
            (&["5", "6"], None),
            (&["5", "abc"], None),
            (&["abc", "5"], None),
        ];
        for &(values, expected) in rows {
            let mut headers = HeaderMap::new();
            for value in values {
                headers.append(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
            }
            assert_eq!(retry_after(&headers, now(), CAP), expected, "{values:?}");
        }
    }

    #[test]
    fn no_hint_on_success() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("5"));
        assert_eq!(classify_parts(StatusCode::OK, &headers, now(), CAP), None);
        assert_eq!(
            classify_parts(StatusCode::MOVED_PERMANENTLY, &headers, now(), CAP),
            None
        );
    }

    #[test]
    fn response_classifier_reads_the_clock_for_dates() {
        let classifier = ResponseClassifier::default();
        let rows: &[(&str, Option<Duration>)] = &[
            // Long past, and far ahead, of any clock this test runs on.
            ("Sun, 06 Nov 1994 08:49:37 GMT", Some(Duration::ZERO)),
            ("Tue, 01 Jan 2199 00:00:00 GMT", Some(CAP)),
            ("Tue, 01 Jan 2199 00:00:00 XYZ", None),
        ];
        for &(raw, expected) in rows {
            let response = Response::builder()
                .status(503)
                .header(RETRY_AFTER, raw)
                .body(())
                .unwrap();
            let c = classifier.classify_result(&response).unwrap();
            assert_eq!(c.retry_after, expected, "{raw}");
            let (parts, ()) = response.into_parts();
            assert_eq!(classifier.classify_result(&parts), Some(c), "{raw}");
        }
    }

    #[test]
    fn the_clock_is_read_only_for_dates() {
        let reads = std::cell::Cell::new(0);
        let mut headers = HeaderMap::new();
        headers.append(RETRY_AFTER, HeaderValue::from_static("5"));
        let mut clock = || {
            reads.set(reads.get() + 1);
            now()
        };
        let c = classify_with(StatusCode::TOO_MANY_REQUESTS, &headers, &mut clock, CAP);
        assert_eq!(c.unwrap().retry_after, secs(5));
        assert_eq!(reads.get(), 0);

        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        let c = classify_with(StatusCode::TOO_MANY_REQUESTS, &headers, &mut clock, CAP);
        assert_eq!(c.unwrap().retry_after, secs(30));
        assert_eq!(reads.get(), 1);

        let mut lazy = LazyNow::default();
        let first = lazy.get();
        assert_eq!(lazy.get(), first);
    }
}
