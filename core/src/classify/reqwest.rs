//! Classifier for [`reqwest`] errors and responses (feature `reqwest`).
//!
//! ```
//! use redress::ErrorClass;
//! use redress::classify::reqwest::classify_error;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // Nothing listens on this port any more: the connection is refused, which is transient.
//! let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
//! let err = reqwest::get(format!("http://127.0.0.1:{port}/")).await.unwrap_err();
//! assert_eq!(classify_error(&err).class, ErrorClass::Transient);
//!
//! // A request that cannot be built is permanent.
//! let err = reqwest::get("http://[::1").await.unwrap_err();
//! assert_eq!(classify_error(&err).class, ErrorClass::Permanent);
//!
//! // The chain classifier recognises a reqwest error anywhere in a source chain.
//! let wrapped = std::io::Error::other(err);
//! assert_eq!(redress::classify::default_classifier(&wrapped).class, ErrorClass::Permanent);
//! # }
//! ```
//!
//! # Errors ([`classify_error`])
//!
//! The first matching row wins, in this order:
//!
//! | reqwest error | Class | Why |
//! |---------------|-------|-----|
//! | a status error ([`is_status`](::reqwest::Error::is_status), from [`error_for_status`](::reqwest::Response::error_for_status)) | the [status table](super::class_for_status) (401 `Auth`, 403 `Permission`, 408/425 `Transient`, 409 `Concurrency`, 429 `RateLimit`, other 4xx `Permanent`, 5xx `ServerError`) | the server's answer |
//! | a timeout ([`is_timeout`](::reqwest::Error::is_timeout): the client's total, connect or read timeout, or a timed-out I/O operation) | `Transient` | |
//! | a connect error ([`is_connect`](::reqwest::Error::is_connect): refused, unreachable, DNS, TLS handshake) | the [`io::ErrorKind`](std::io::ErrorKind) of an `io::Error` in its chain through [`class_for_io_kind`](super::class_for_io_kind) (e.g. `PermissionDenied` → `Permission`, `InvalidData`, which is how tokio's TLS adapters typically report a rejected certificate → `Permanent`), else `Transient` | a server that is down or restarting refuses connections for a while |
//! | a decode error ([`is_decode`](::reqwest::Error::is_decode)) while **reading** the body: the connection closed or failed before the body was complete (a hyper error or a reqwest body error in its chain) | like a body error, below | reqwest reports every failure of [`bytes`](::reqwest::Response::bytes), [`text`](::reqwest::Response::text) and `json` as a decode error, even when the connection broke |
//! | any other decode error: the body does not parse (e.g. `Response::json` on a body that is not the expected JSON) | `Permanent` | retrying returns the same body |
//! | a redirect error ([`is_redirect`](::reqwest::Error::is_redirect): too many redirects, an error of a custom redirect policy, a redirect to plain HTTP under `https_only`) | `Permanent` | the same request is redirected the same way |
//! | a builder error ([`is_builder`](::reqwest::Error::is_builder): a bad URL, header or configuration) | `Permanent` | the request cannot be built |
//! | a request or body error ([`is_request`](::reqwest::Error::is_request), [`is_body`](::reqwest::Error::is_body): the connection failed while sending or receiving, e.g. the server closed or reset it) | the `io::ErrorKind` in its chain, if the I/O table has an opinion, else `Transient` | |
//! | anything else (an upgrade error, kinds added later) | `Unknown` | |
//!
//! The classification's [`details`](Classification::details) name the row (`"reqwest: timeout"`,
//! `"reqwest: decode"`, …), the status row of a status error (`"status: 5xx"`) or the I/O row
//! when an `io::ErrorKind` decided (`"io: connection refused"`). A status error carries no
//! headers, so it has no `Retry-After` hint: to keep the hint, classify the response before
//! calling `error_for_status`, with [`classify_response`] or a [`ResponseClassifier`].
//!
//! With this feature on, [`ChainClassifier`](super::ChainClassifier) (and so
//! [`default_classifier`](super::default_classifier)) recognises a `reqwest::Error` anywhere in
//! an error's source chain (wrapped in `anyhow`, `io::Error::other`, …), through its
//! [`ClassifyError`] implementation; an `Unknown` verdict counts as no opinion there.
//!
//! # Responses ([`classify_response`], [`ResponseClassifier`])
//!
//! An operation that returns a [`reqwest::Response`] as `Ok` fails through
//! its status: [`classify_response`] and the [`ResponseClassifier`] (the one of the
//! [`http`](super::http) module, which also implements
//! [`ClassifyResult<reqwest::Response>`](ClassifyResult)) give `None` for a success and
//! otherwise the status table's class with the `Retry-After` hint, read as the
//! [`http`](super::http) module documents (both forms, clamped to
//! [`DEFAULT_MAX_RETRY_AFTER`](super::http::DEFAULT_MAX_RETRY_AFTER) or the classifier's cap).
//!
//! ```
//! use redress::ClassifyResult;
//! use redress::classify::reqwest::ResponseClassifier;
//!
//! let classifier = ResponseClassifier::default();
//! let response = reqwest::Response::from(
//!     http::Response::builder().status(503).header("retry-after", "7").body("").unwrap(),
//! );
//! let c = classifier.classify_result(&response).unwrap();
//! assert_eq!(c.class, redress::ErrorClass::ServerError);
//! assert_eq!(c.retry_after, Some(std::time::Duration::from_secs(7)));
//! ```

use std::error::Error;

use ::reqwest::{Error as ReqwestError, Response};

pub use super::http::ResponseClassifier;
use crate::class::{Classification, ClassifyResult, ErrorClass};
use crate::classify::{ClassifyError, chain, io_entry, status_entry, verdict};

/// The classification of a reqwest error (the table of the [module documentation](self)).
pub fn classify_error(err: &ReqwestError) -> Classification {
    if err.is_status() {
        return match err.status().and_then(|s| status_entry(s.as_u16())) {
            Some((class, details)) => verdict(class, details),
            None => verdict(ErrorClass::Unknown, "reqwest: status"),
        };
    }
    if err.is_timeout() {
        return verdict(ErrorClass::Transient, "reqwest: timeout");
    }
    if err.is_connect() {
        return transport(err, "reqwest: connect");
    }
    if err.is_decode() {
        return if cut_short(err) {
            transport(err, "reqwest: body cut short")
        } else {
            verdict(ErrorClass::Permanent, "reqwest: decode")
        };
    }
    if err.is_redirect() {
        return verdict(ErrorClass::Permanent, "reqwest: redirect");
    }
    if err.is_builder() {
        return verdict(ErrorClass::Permanent, "reqwest: builder");
    }
    if err.is_request() {
        return transport(err, "reqwest: request");
    }
    if err.is_body() {
        return transport(err, "reqwest: body");
    }
    verdict(ErrorClass::Unknown, "reqwest: other")
}

/// The classification of a response: `None` for a success, else the class of its status with
/// the `Retry-After` hint, clamped to
/// [`DEFAULT_MAX_RETRY_AFTER`](super::http::DEFAULT_MAX_RETRY_AFTER). Like
/// [`ResponseClassifier::default()`](ResponseClassifier), whose cap can be changed.
pub fn classify_response(resp: &Response) -> Option<Classification> {
    ResponseClassifier::new().classify_result(resp)
}

impl ClassifyResult<Response> for ResponseClassifier {
    fn classify_result(&self, value: &Response) -> Option<Classification> {
        self.classify_parts(value.status(), value.headers())
    }
}

impl ClassifyError for ReqwestError {
    /// [`classify_error`], with `Unknown` as no opinion.
    fn classification(&self) -> Option<Classification> {
        let classification = classify_error(self);
        (classification.class != ErrorClass::Unknown).then_some(classification)
    }
}

/// The chain classifier's probe: `Some` when `err` is a `reqwest::Error` with a known class.
pub(super) fn probe(err: &(dyn Error + 'static)) -> Option<Classification> {
    err.downcast_ref::<ReqwestError>()?.classification()
}

/// A connection-level failure: the class of an `io::Error` in the chain if the I/O table has an
/// opinion, else `Transient`.
fn transport(err: &ReqwestError, details: &'static str) -> Classification {
    chain(err)
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .find_map(|io| io_entry(io.kind()))
        .map_or_else(
            || verdict(ErrorClass::Transient, details),
            |(class, details)| verdict(class, details),
        )
}

/// Whether a decode error comes from the transport rather than the content: reqwest wraps
/// every failure to read a body (a hyper error, or its own body error for a read timeout) as a
/// decode error.
fn cut_short(err: &ReqwestError) -> bool {
    chain(err).skip(1).any(|e| {
        e.is::<::hyper::Error>()
            || e.downcast_ref::<ReqwestError>()
                .is_some_and(|inner| inner.is_body() || inner.is_request())
    })
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::classify::{ChainClassifier, default_classifier, strict_classifier};

    use ErrorClass::*;

    /// What the local server does with each connection.
    #[derive(Clone, Copy, Debug)]
    enum Serve {
        /// Nothing listens on the port.
        Refuse,
        /// Reads the request, writes these bytes, closes the connection.
        Reply(&'static [u8]),
        /// Reads the request and never answers (keeps the connection open).
        Hang,
    }

    /// How the client reads the answer.
    #[derive(Clone, Copy, Debug)]
    enum Read {
        /// `send`, then `error_for_status`.
        Status,
        /// `send`, then `bytes`.
        Bytes,
        /// `send`, then `json::<u32>`.
        Json,
    }

    /// Starts the server (until the runtime ends) and returns its URL.
    async fn serve(serve: Serve) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        match serve {
            Serve::Refuse => drop(listener),
            Serve::Reply(_) | Serve::Hang => {
                tokio::spawn(async move {
                    loop {
                        let Ok((mut stream, _)) = listener.accept().await else {
                            return;
                        };
                        tokio::spawn(async move {
                            read_request(&mut stream).await;
                            match serve {
                                Serve::Reply(bytes) => {
                                    // The client may be gone already: nothing to check here.
                                    let _ = stream.write_all(bytes).await;
                                    let _ = stream.shutdown().await;
                                }
                                _ => std::future::pending::<()>().await,
                            }
                        });
                    }
                });
            }
        }
        format!("http://{addr}/")
    }

    /// Reads up to the end of the request head (the tests send no request bodies).
    async fn read_request(stream: &mut tokio::net::TcpStream) {
        let mut buf = Vec::new();
        let mut chunk = [0; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut chunk).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// A timeout that fires while the server keeps quiet.
    const SHORT: Duration = Duration::from_millis(50);
    /// A timeout that no test reaches.
    const LONG: Duration = Duration::from_secs(60);

    /// A client with a timeout (reqwest then wraps body errors in its own body error).
    fn client(timeout: Duration) -> ::reqwest::Client {
        ::reqwest::Client::builder()
            .timeout(timeout)
            .redirect(::reqwest::redirect::Policy::limited(2))
            .build()
            .unwrap()
    }

    /// A client without timeouts (reqwest then reports hyper's body errors directly).
    fn client_without_timeout() -> ::reqwest::Client {
        ::reqwest::Client::builder()
            .redirect(::reqwest::redirect::Policy::limited(2))
            .build()
            .unwrap()
    }

    async fn fetch(client: &::reqwest::Client, serve_with: Serve, read: Read) -> ReqwestError {
        let url = serve(serve_with).await;
        let resp = match client.get(&url).send().await {
            Ok(resp) => resp,
            Err(err) => return err,
        };
        let result = match read {
            Read::Status => resp.error_for_status().map(drop),
            Read::Bytes => resp.bytes().await.map(drop),
            Read::Json => resp.json::<u32>().await.map(drop),
        };
        result.unwrap_err()
    }

    /// The reqwest predicate a row is about, to check the test produced the intended error.
    #[derive(Clone, Copy, Debug)]
    enum Is {
        Status,
        Timeout,
        Connect,
        Decode,
        Redirect,
        Request,
    }

    fn is(err: &ReqwestError, is: Is) -> bool {
        match is {
            Is::Status => err.is_status(),
            Is::Timeout => err.is_timeout(),
            Is::Connect => err.is_connect(),
            Is::Decode => err.is_decode(),
            Is::Redirect => err.is_redirect(),
            Is::Request => err.is_request(),
        }
    }

    const NOT_JSON: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
    const CUT_SHORT: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nhello";
    const CUT_SHORT_CHUNKED: &[u8] =
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n";
    const REDIRECT_LOOP: &[u8] = b"HTTP/1.1 302 Found\r\nlocation: /\r\ncontent-length: 0\r\n\r\n";

    fn status(code: u16) -> &'static [u8] {
        let head = format!("HTTP/1.1 {code} X\r\ncontent-length: 0\r\nretry-after: 7\r\n\r\n");
        Box::leak(head.into_bytes().into_boxed_slice())
    }

    #[tokio::test]
    async fn error_table() {
        let rows: Vec<(&str, Serve, Read, Is, ErrorClass, &str)> = vec![
            (
                "503",
                Serve::Reply(status(503)),
                Read::Status,
                Is::Status,
                ServerError,
                "status: 5xx",
            ),
            (
                "500",
                Serve::Reply(status(500)),
                Read::Status,
                Is::Status,
                ServerError,
                "status: 5xx",
            ),
            (
                "404",
                Serve::Reply(status(404)),
                Read::Status,
                Is::Status,
                Permanent,
                "status: 4xx",
            ),
            (
                "429",
                Serve::Reply(status(429)),
                Read::Status,
                Is::Status,
                RateLimit,
                "status: 429 too many requests",
            ),
            (
                "401",
                Serve::Reply(status(401)),
                Read::Status,
                Is::Status,
                Auth,
                "status: 401 unauthorized",
            ),
            (
                "403",
                Serve::Reply(status(403)),
                Read::Status,
                Is::Status,
                Permission,
                "status: 403 forbidden",
            ),
            (
                "409",
                Serve::Reply(status(409)),
                Read::Status,
                Is::Status,
                Concurrency,
                "status: 409 conflict",
            ),
            (
                "408",
                Serve::Reply(status(408)),
                Read::Status,
                Is::Status,
                Transient,
                "status: 408 request timeout",
            ),
            (
                "refused",
                Serve::Refuse,
                Read::Status,
                Is::Connect,
                Transient,
                "io: connection refused",
            ),
            (
                "no answer",
                Serve::Hang,
                Read::Status,
                Is::Timeout,
                Transient,
                "reqwest: timeout",
            ),
            (
                "not json",
                Serve::Reply(NOT_JSON),
                Read::Json,
                Is::Decode,
                Permanent,
                "reqwest: decode",
            ),
            (
                "closed before answering",
                Serve::Reply(b""),
                Read::Status,
                Is::Request,
                Transient,
                "reqwest: request",
            ),
            (
                "closed in the status line",
                Serve::Reply(b"HTTP/1.1 200 O"),
                Read::Status,
                Is::Request,
                Transient,
                "reqwest: request",
            ),
            (
                "closed in the body",
                Serve::Reply(CUT_SHORT),
                Read::Bytes,
                Is::Decode,
                Transient,
                "io: unexpected eof",
            ),
            (
                "closed in a chunked body",
                Serve::Reply(CUT_SHORT_CHUNKED),
                Read::Bytes,
                Is::Decode,
                Transient,
                "io: unexpected eof",
            ),
            (
                "closed in the body, json",
                Serve::Reply(CUT_SHORT),
                Read::Json,
                Is::Decode,
                Transient,
                "io: unexpected eof",
            ),
            (
                "redirect loop",
                Serve::Reply(REDIRECT_LOOP),
                Read::Status,
                Is::Redirect,
                Permanent,
                "reqwest: redirect",
            ),
        ];
        // Each row with a client that has a timeout (a short one where the server never
        // answers, so that the timeout fires; a long one elsewhere, so that it does not), and,
        // where the server answers, with one that has none.
        let rows = rows.into_iter().flat_map(|row| {
            let hang = matches!(row.1, Serve::Hang);
            let timeout = if hang { SHORT } else { LONG };
            let plain = (!hang).then(|| (row, client_without_timeout()));
            [Some((row, client(timeout))), plain].into_iter().flatten()
        });
        for ((name, serve_with, read, predicate, class, details), client) in rows {
            let err = fetch(&client, serve_with, read).await;
            assert!(is(&err, predicate), "{name}: {err:?}");
            assert_eq!(
                err.is_decode() && cut_short(&err),
                name.starts_with("closed in the body") || name.starts_with("closed in a"),
                "{name}: {err:?}"
            );
            let c = classify_error(&err);
            assert_eq!(c.class, class, "{name}: {err:?}");
            assert_eq!(c.details.as_deref(), Some(details), "{name}: {err:?}");
            assert_eq!(c.retry_after, None, "{name}");

            // The chain classifier finds it, bare or wrapped.
            assert_eq!(err.classification(), Some(c.clone()), "{name}");
            assert_eq!(strict_classifier(&err), c, "{name}");
            let wrapped = io::Error::other(err);
            assert_eq!(default_classifier(&wrapped), c, "{name}");
            assert_eq!(
                ChainClassifier::strict().classify_error(&wrapped),
                c,
                "{name}"
            );
        }
    }

    #[tokio::test]
    async fn builder_errors_are_permanent() {
        for url in ["not a url", "http://[::1", "ftp://example.invalid/"] {
            let err = client(LONG).get(url).send().await.unwrap_err();
            assert!(err.is_builder(), "{url}: {err:?}");
            let c = classify_error(&err);
            assert_eq!(c.class, Permanent, "{url}");
            assert_eq!(c.details.as_deref(), Some("reqwest: builder"), "{url}");
        }
    }

    #[tokio::test]
    async fn responses() {
        let rows: &[(&[u8], Option<ErrorClass>, Option<Duration>)] = &[
            (b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 7\r\ncontent-length: 0\r\n\r\n", Some(ServerError), Some(Duration::from_secs(7))),
            (b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 3600\r\ncontent-length: 0\r\n\r\n", Some(RateLimit), Some(Duration::from_secs(300))),
            (b"HTTP/1.1 429 Too Many Requests\r\nretry-after: Sun, 06 Nov 1994 08:49:37 GMT\r\ncontent-length: 0\r\n\r\n", Some(RateLimit), Some(Duration::ZERO)),
            (b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n", Some(Permanent), None),
            (b"HTTP/1.1 503 Service Unavailable\r\nretry-after: soon\r\ncontent-length: 0\r\n\r\n", Some(ServerError), None),
            (b"HTTP/1.1 200 OK\r\nretry-after: 7\r\ncontent-length: 0\r\n\r\n", None, None),
            (b"HTTP/1.1 204 No Content\r\n\r\n", None, None),
        ];
        for &(reply, class, retry_after) in rows {
            let url = serve(Serve::Reply(reply)).await;
            let resp = client(LONG).get(&url).send().await.unwrap();
            let c = classify_response(&resp);
            assert_eq!(c.as_ref().map(|c| c.class), class, "{resp:?}");
            assert_eq!(
                c.as_ref().and_then(|c| c.retry_after),
                retry_after,
                "{resp:?}"
            );
            assert_eq!(ResponseClassifier::default().classify_result(&resp), c);
        }

        let url = serve(Serve::Reply(status(503))).await;
        let resp = client(LONG).get(&url).send().await.unwrap();
        let classifier = ResponseClassifier::new().with_max_retry_after(Duration::from_secs(2));
        let c = classifier.classify_result(&resp).unwrap();
        assert_eq!(c.retry_after, Some(Duration::from_secs(2)));
    }
}
