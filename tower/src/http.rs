//! HTTP requests (feature `http`): retry only what is safe to send twice.
//!
//! [`HttpReplay`] is the [`Replay`] for [`http::Request<B>`](::http::Request) (and, with the
//! `reqwest` feature, for `reqwest::Request`). A request is replayed when both hold:
//!
//! 1. **Its method is idempotent, or the caller opted in.** Sending a `GET` twice reads
//!    twice; sending a `POST` twice may charge a card twice. The rule
//!    ([`HttpReplay::is_retryable`]):
//!
//!    | Request | Retried |
//!    |---|---|
//!    | `GET`, `HEAD`, `OPTIONS`, `TRACE` (safe), `PUT`, `DELETE` (idempotent, RFC 9110 §9.2.2) | yes |
//!    | any other method (`POST`, `PATCH`, `CONNECT`, extensions) carrying an `Idempotency-Key` header ([`HttpReplay::idempotency_header`] renames it) | yes |
//!    | any other method with the [`Idempotent`] marker in its extensions (`http::Request` only) | yes |
//!    | any method, on a layer told [`retry_non_idempotent(true)`](HttpReplay::retry_non_idempotent) | yes |
//!    | any other method | no: one attempt |
//!
//! 2. **Its body can be copied.** [`ReplayBody`] copies bodies held in memory and refuses
//!    streams:
//!
//!    | Body type | Copy |
//!    |---|---|
//!    | `()`, `String`, `Vec<u8>`, `&'static str`, `&'static [u8]`, `Cow<'static, str>`, `Cow<'static, [u8]>`, [`Bytes`] | a clone (cheap for `Bytes` and `&'static`) |
//!    | [`Full<D>`](Full) (`D: Clone`), [`Empty<D>`](Empty) | a clone |
//!    | [`Either<L, R>`](Either), `Option<B>` | the copy of the inner body, if it has one |
//!    | [`BoxBody`], [`UnsyncBoxBody`], [`StreamBody`] | none: one attempt |
//!    | `reqwest::Body` (through `reqwest::Request::try_clone`) | bytes: a clone; a stream: none |
//!
//! A request that fails either test is still sent, once, under the breaker, the attempt
//! timeout and the deadline; it is never retried.
//!
//! The copy keeps the method, URI, version, headers and extensions.
//!
//! ```
//! use http::{Method, Request};
//! use redress_tower::Replay;
//! use redress_tower::http::{HttpReplay, Idempotent};
//!
//! let replay = HttpReplay::new();
//! let get = Request::get("https://example.com/").body(String::new()).unwrap();
//! assert!(replay.replay(&get).is_some());
//!
//! let post = Request::post("https://example.com/pay").body("{}".to_string()).unwrap();
//! assert!(replay.replay(&post).is_none());
//!
//! let keyed = Request::post("https://example.com/pay")
//!     .header("idempotency-key", "order-42")
//!     .body("{}".to_string())
//!     .unwrap();
//! assert!(replay.replay(&keyed).is_some());
//!
//! let marked = Request::post("https://example.com/pay")
//!     .extension(Idempotent)
//!     .body("{}".to_string())
//!     .unwrap();
//! assert_eq!(replay.replay(&marked).unwrap().method(), Method::POST);
//! ```

use std::borrow::Cow;

use ::http::header::{HeaderMap, HeaderName};
use ::http::{Extensions, Method, Request};
use bytes::Bytes;
use http_body_util::combinators::{BoxBody, UnsyncBoxBody};
use http_body_util::{Either, Empty, Full, StreamBody};

use crate::layer::RetryLayer;
use crate::replay::Replay;
use redress::classify::http::ResponseClassifier;
use redress::{ChainClassifier, Policy};

/// The header that makes any request retryable: `Idempotency-Key` (the IETF HTTPAPI
/// draft's name, used by Stripe and others).
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// A marker in a request's extensions: this request may be sent more than once, whatever
/// its method (`request.extensions_mut().insert(Idempotent)`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Idempotent;

/// Whether `method` is idempotent by definition (RFC 9110 §9.2.2): `GET`, `HEAD`,
/// `OPTIONS`, `TRACE`, `PUT` and `DELETE`.
pub fn is_idempotent_method(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// The [`Replay`] of HTTP requests: idempotent (or opted-in) requests with a copyable body.
/// See the [module docs](self) for the rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpReplay {
    header: HeaderName,
    any_method: bool,
}

impl Default for HttpReplay {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpReplay {
    /// The safe defaults: idempotent methods, or requests carrying an `Idempotency-Key`
    /// header or the [`Idempotent`] marker.
    pub fn new() -> Self {
        Self {
            header: IDEMPOTENCY_KEY,
            any_method: false,
        }
    }

    /// The header whose presence opts a request in (default [`IDEMPOTENCY_KEY`]).
    #[must_use]
    pub fn idempotency_header(mut self, name: HeaderName) -> Self {
        self.header = name;
        self
    }

    /// Retries requests of any method, as long as their body can be copied (default off).
    /// Only for services where every request is known to be safe to repeat.
    #[must_use]
    pub fn retry_non_idempotent(mut self, on: bool) -> Self {
        self.any_method = on;
        self
    }

    /// The rule: whether a request with this method, these headers and (if the request
    /// type has them) these extensions may be sent more than once. Its body is checked
    /// separately.
    pub fn is_retryable(
        &self,
        method: &Method,
        headers: &HeaderMap,
        extensions: Option<&Extensions>,
    ) -> bool {
        self.any_method
            || is_idempotent_method(method)
            || headers.contains_key(&self.header)
            || extensions.is_some_and(|e| e.get::<Idempotent>().is_some())
    }
}

impl<B: ReplayBody> Replay<Request<B>> for HttpReplay {
    fn replay(&self, request: &Request<B>) -> Option<Request<B>> {
        if !self.is_retryable(
            request.method(),
            request.headers(),
            Some(request.extensions()),
        ) {
            return None;
        }
        let mut copy = Request::new(request.body().replay_body()?);
        *copy.method_mut() = request.method().clone();
        *copy.uri_mut() = request.uri().clone();
        *copy.version_mut() = request.version();
        *copy.headers_mut() = request.headers().clone();
        *copy.extensions_mut() = request.extensions().clone();
        Some(copy)
    }
}

impl RetryLayer<ChainClassifier, ResponseClassifier, HttpReplay> {
    /// A layer for HTTP services: like [`RetryLayer::new`], with [`HttpReplay::new`] as the
    /// replay (idempotent requests with copyable bodies only) and the core's
    /// [`ResponseClassifier`] for responses (a 5xx, 408, 429, … response is a failure of its
    /// status's class, with its `Retry-After` as the hint; a 2xx or 3xx is a success).
    pub fn http(policy: Policy) -> Self {
        RetryLayer::new(policy)
            .replay(HttpReplay::new())
            .classify_response(ResponseClassifier::new())
    }
}

impl<C, R> RetryLayer<C, R, HttpReplay> {
    /// Retries requests of any method whose body can be copied
    /// (see [`HttpReplay::retry_non_idempotent`]).
    pub fn retry_non_idempotent(mut self, on: bool) -> Self {
        self.replay = self.replay.retry_non_idempotent(on);
        self
    }

    /// The header whose presence opts a request in
    /// (see [`HttpReplay::idempotency_header`]).
    pub fn idempotency_header(mut self, name: HeaderName) -> Self {
        self.replay = self.replay.idempotency_header(name);
        self
    }
}

/// A request body that can be copied for a retry, or says it cannot (a stream).
///
/// Implement it for your own body types; see the [module docs](self) for the built-in ones.
pub trait ReplayBody: Sized {
    /// A copy of the body, or `None` if it cannot be read twice.
    fn replay_body(&self) -> Option<Self>;
}

macro_rules! replay_by_clone {
    ($($t:ty),* $(,)?) => {$(
        impl ReplayBody for $t {
            fn replay_body(&self) -> Option<Self> {
                Some(self.clone())
            }
        }
    )*};
}

replay_by_clone!(
    (),
    String,
    Vec<u8>,
    &'static str,
    &'static [u8],
    Cow<'static, str>,
    Cow<'static, [u8]>,
    Bytes,
);

impl<D: Clone> ReplayBody for Full<D> {
    fn replay_body(&self) -> Option<Self> {
        Some(self.clone())
    }
}

impl<D> ReplayBody for Empty<D> {
    fn replay_body(&self) -> Option<Self> {
        Some(*self)
    }
}

impl<L: ReplayBody, R: ReplayBody> ReplayBody for Either<L, R> {
    fn replay_body(&self) -> Option<Self> {
        match self {
            Either::Left(l) => l.replay_body().map(Either::Left),
            Either::Right(r) => r.replay_body().map(Either::Right),
        }
    }
}

impl<B: ReplayBody> ReplayBody for Option<B> {
    fn replay_body(&self) -> Option<Self> {
        match self {
            Some(b) => b.replay_body().map(Some),
            None => Some(None),
        }
    }
}

impl<D, E> ReplayBody for BoxBody<D, E> {
    fn replay_body(&self) -> Option<Self> {
        None
    }
}

impl<D, E> ReplayBody for UnsyncBoxBody<D, E> {
    fn replay_body(&self) -> Option<Self> {
        None
    }
}

impl<S> ReplayBody for StreamBody<S> {
    fn replay_body(&self) -> Option<Self> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_idempotent_methods_are_idempotent() {
        // (method, idempotent)
        let table = [
            (Method::GET, true),
            (Method::HEAD, true),
            (Method::OPTIONS, true),
            (Method::TRACE, true),
            (Method::PUT, true),
            (Method::DELETE, true),
            (Method::POST, false),
            (Method::PATCH, false),
            (Method::CONNECT, false),
            (Method::from_bytes(b"PURGE").unwrap(), false),
        ];
        for (method, expected) in table {
            assert_eq!(is_idempotent_method(&method), expected, "{method}");
        }
    }

    #[test]
    fn the_rule_opts_requests_in_by_header_marker_or_layer_setting() {
        let key = HeaderName::from_static("x-request-once");
        // (method, header present, marker present, any-method layer, custom header, retryable)
        let table = [
            (Method::GET, false, false, false, false, true),
            (Method::DELETE, false, false, false, false, true),
            (Method::POST, false, false, false, false, false),
            (Method::PATCH, false, false, false, false, false),
            (Method::POST, true, false, false, false, true),
            (Method::PATCH, true, false, false, false, true),
            (Method::POST, false, true, false, false, true),
            (Method::POST, false, false, true, false, true),
            (Method::CONNECT, false, false, true, false, true),
            // A renamed header: the default name no longer opts in, the new one does.
            (Method::POST, false, false, false, true, false),
            (Method::POST, true, false, false, true, true),
        ];
        for (method, header, marker, any, custom, expected) in table {
            let mut replay = HttpReplay::new().retry_non_idempotent(any);
            if custom {
                replay = replay.idempotency_header(key.clone());
            }
            let mut headers = HeaderMap::new();
            if header {
                let name = if custom { key.clone() } else { IDEMPOTENCY_KEY };
                headers.insert(name, "k-1".parse().unwrap());
            } else if custom {
                headers.insert(IDEMPOTENCY_KEY, "k-1".parse().unwrap());
            }
            let mut ext = Extensions::new();
            if marker {
                ext.insert(Idempotent);
            }
            assert_eq!(
                replay.is_retryable(&method, &headers, Some(&ext)),
                expected,
                "{method} header={header} marker={marker} any={any} custom={custom}"
            );
        }
    }

    fn copies<B: ReplayBody>(body: B) -> bool {
        body.replay_body().is_some()
    }

    #[test]
    fn bodies_in_memory_are_copied_and_streams_are_not() {
        type Boxed = BoxBody<Bytes, std::convert::Infallible>;
        type Unsync = UnsyncBoxBody<Bytes, std::convert::Infallible>;
        type Stream = StreamBody<std::iter::Empty<()>>;
        // (body type, copied)
        let table: [(&str, bool); 16] = [
            ("()", copies(())),
            ("String", copies(String::from("a"))),
            ("Vec<u8>", copies(vec![1u8])),
            ("&str", copies("a")),
            ("&[u8]", copies(&b"a"[..])),
            ("Cow<str>", copies(Cow::<str>::Owned("a".into()))),
            ("Cow<[u8]>", copies(Cow::<[u8]>::Borrowed(b"a"))),
            ("Bytes", copies(Bytes::from_static(b"a"))),
            ("Full", copies(Full::new(Bytes::from_static(b"a")))),
            ("Empty", copies(Empty::<Bytes>::new())),
            (
                "Either::Left(Full)",
                copies(Either::<_, Boxed>::Left(Full::new(Bytes::new()))),
            ),
            ("Option<String>", copies(Some(String::new()))),
            ("None::<String>", copies(None::<String>)),
            ("BoxBody", !copies(Boxed::default())),
            ("UnsyncBoxBody", !copies(Unsync::default())),
            ("StreamBody", !copies(Stream::new(std::iter::empty()))),
        ];
        for (name, ok) in table {
            assert!(ok, "{name}");
        }
        let right: Either<Full<Bytes>, Boxed> = Either::Right(Boxed::default());
        assert!(right.replay_body().is_none());
    }

    #[test]
    fn the_copy_keeps_method_uri_version_headers_extensions_and_body() {
        let mut req = Request::put("https://example.com/items/7?x=1")
            .version(::http::Version::HTTP_2)
            .header("x-trace", "abc")
            .body(Bytes::from_static(b"payload"))
            .unwrap();
        req.extensions_mut().insert(7u32);
        let copy = HttpReplay::new().replay(&req).unwrap();
        assert_eq!(copy.method(), Method::PUT);
        assert_eq!(copy.uri(), req.uri());
        assert_eq!(copy.version(), ::http::Version::HTTP_2);
        assert_eq!(copy.headers(), req.headers());
        assert_eq!(copy.extensions().get::<u32>(), Some(&7));
        assert_eq!(copy.body(), req.body());
    }
}
