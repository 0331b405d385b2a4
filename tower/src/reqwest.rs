//! `reqwest::Request` (feature `reqwest`): the same rule as HTTP requests, through
//! [`reqwest::Request::try_clone`](::reqwest::Request::try_clone).
//!
//! [`HttpReplay`] replays a `reqwest::Request` whose method is idempotent or that carries
//! the idempotency header (or on a layer told
//! [`retry_non_idempotent(true)`](HttpReplay::retry_non_idempotent)), and whose body is
//! held in memory: `try_clone` returns `None` for a streaming body, and such a request is
//! sent once. reqwest keeps a request's extensions private, so the
//! [`Idempotent`](crate::http::Idempotent) marker cannot be read from it: use the header.
//!
//! `reqwest::Client` is a `tower::Service<reqwest::Request>`, so the layer wraps it
//! directly:
//!
//! ```no_run
//! use redress::Policy;
//! use redress_tower::RetryLayer;
//! use tower_layer::Layer;
//! use tower_service::Service;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let mut client = RetryLayer::http(Policy::default()).layer(reqwest::Client::new());
//! let request = reqwest::Request::new(reqwest::Method::GET, "http://localhost:8080/".parse()?);
//! std::future::poll_fn(|cx| client.poll_ready(cx)).await?;
//! let response = client.call(request).await?;
//! # let _ = response;
//! # Ok(()) }
//! ```

use ::reqwest::Request;

use crate::http::HttpReplay;
use crate::replay::Replay;

impl Replay<Request> for HttpReplay {
    fn replay(&self, request: &Request) -> Option<Request> {
        if !self.is_retryable(request.method(), request.headers(), None) {
            return None;
        }
        request.try_clone()
    }
}

#[cfg(test)]
mod tests {
    use ::reqwest::{Body, Method};

    use super::*;
    use crate::http::IDEMPOTENCY_KEY;

    fn request(method: Method, body: Option<Body>, key: bool) -> Request {
        let mut r = Request::new(method, "http://localhost/x".parse().unwrap());
        *r.body_mut() = body;
        if key {
            r.headers_mut()
                .insert(IDEMPOTENCY_KEY, "k".parse().unwrap());
        }
        r
    }

    #[test]
    fn reqwest_requests_follow_the_same_rule_and_streams_are_sent_once() {
        let bytes = || Some(Body::from("payload"));
        let stream = || Some(Body::wrap(String::from("payload")));
        // (method, body, idempotency key, any-method layer, replayed)
        let table: [(Method, Option<Body>, bool, bool, bool); 9] = [
            (Method::GET, None, false, false, true),
            (Method::PUT, bytes(), false, false, true),
            (Method::PUT, stream(), false, false, false),
            (Method::POST, bytes(), false, false, false),
            (Method::POST, bytes(), true, false, true),
            (Method::POST, stream(), true, false, false),
            (Method::PATCH, bytes(), false, true, true),
            (Method::DELETE, None, false, false, true),
            (Method::CONNECT, None, false, false, false),
        ];
        for (i, (method, body, key, any, expected)) in table.into_iter().enumerate() {
            let replay = HttpReplay::new().retry_non_idempotent(any);
            let req = request(method, body, key);
            let copy = replay.replay(&req);
            assert_eq!(copy.is_some(), expected, "row {i}");
            if let Some(copy) = copy {
                assert_eq!(copy.method(), req.method());
                assert_eq!(copy.url(), req.url());
                assert_eq!(copy.headers(), req.headers());
                assert_eq!(
                    copy.body().and_then(Body::as_bytes),
                    req.body().and_then(Body::as_bytes)
                );
            }
        }
    }
}
