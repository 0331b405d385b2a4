//! A tower [`Layer`](tower_layer::Layer) that runs every call of a
//! [`Service`](tower_service::Service) under a redress [`Policy`](redress::Policy):
//! retries with per-class backoff, the circuit breaker, the retry budget, the per-attempt
//! timeout and the call's deadline, all from the policy.
//!
//! ```
//! use std::io;
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::time::Duration;
//!
//! use redress::Retry;
//! use redress::backoff::constant;
//! use redress_tower::RetryLayer;
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let policy = Retry::builder()
//!     .max_attempts(3)
//!     .strategy(constant(Duration::from_millis(50)))
//!     .policy()?;
//!
//! // A flaky dependency: the connection drops twice, then it answers.
//! let calls = Arc::new(AtomicU32::new(0));
//! let flaky = service_fn({
//!     let calls = Arc::clone(&calls);
//!     move |name: String| {
//!         let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
//!         async move {
//!             if n < 3 {
//!                 Err(io::Error::from(io::ErrorKind::ConnectionReset)) // Transient: retried
//!             } else {
//!                 Ok(format!("hello, {name}"))
//!             }
//!         }
//!     }
//! });
//!
//! let mut service = ServiceBuilder::new()
//!     .layer(RetryLayer::new(policy).operation("greet"))
//!     .service(flaky);
//! let reply = service.ready().await?.call("world".to_string()).await?;
//! assert_eq!(reply, "hello, world");
//! assert_eq!(calls.load(Ordering::SeqCst), 3);
//! # Ok(()) }
//! ```
//!
//! # What the layer decides, and with what
//! | Setting | Default | Set with |
//! |---|---|---|
//! | retries, backoff, deadline, attempt timeout, budget, breaker, events | the [`Policy`](redress::Policy) | [`RetryLayer::new`] |
//! | the operation name of events | the policy's | [`RetryLayer::operation`] |
//! | the class of an error | [`ChainClassifier::new`](redress::ChainClassifier::new), which also takes [`BoxError`] | [`RetryLayer::classify`] ([`ClassifyServiceError`]) |
//! | which responses are failures | none ([`AcceptAll`](redress::AcceptAll)); with `RetryLayer::http`, the core's `ResponseClassifier` (5xx, 408, 429, … with `Retry-After`) | [`RetryLayer::classify_response`] |
//! | whether and how a request is sent again | [`CloneReplay`]; `HttpReplay` with `RetryLayer::http` | [`RetryLayer::replay`] ([`Replay`]) |
//!
//! # Safe defaults
//! | Situation | What happens |
//! |---|---|
//! | the request cannot be copied ([`Replay`] returns `None`: a streaming body, a `POST` without an idempotency key) | exactly one attempt, still under the breaker, the timeout and the deadline; never retried |
//! | HTTP `POST`, `PATCH` or another non-idempotent method (feature `http`) | not retried unless it carries an `Idempotency-Key` header or the `Idempotent` marker, or the layer allows it (`retry_non_idempotent(true)`) |
//! | a response classified as a failure is retried | it is dropped before the sleep, releasing its body and connection |
//! | the last attempt's response is classified as a failure | it is returned as `Ok`: the caller sees the real `503` |
//! | an attempt runs past the policy's attempt timeout or the call's deadline | its future is dropped; the attempt counts as [`Outcome::TimedOut`](redress::Outcome::TimedOut) |
//! | the breaker is open | the call fails at once with [`StopReason::CircuitOpen`](redress::StopReason::CircuitOpen); the inner service is not called |
//! | the inner service is not ready before a retry | the retry waits for `poll_ready` (within the attempt's time limit) |
//!
//! Errors are [`Error`] (a [`RetryError`](redress::RetryError) around the boxed,
//! classified inner error), which is `Into<BoxError>` like the errors of other tower
//! middleware. The call's future is `Send + 'static`, and runs on tokio's timer
//! ([`redress_tokio::TokioTimer`]), so paused time (`#[tokio::test(start_paused = true)]`)
//! runs whole retry schedules instantly in tests.
//!
//! # Features
//! - `http`: `http::HttpReplay` for `http::Request<B>`, the idempotency rule and
//!   `http::ReplayBody`; turns on the core's `http` classifiers.
//! - `reqwest`: `HttpReplay` for `reqwest::Request`, so the layer wraps a `reqwest::Client`
//!   directly; turns on the core's `reqwest` classifiers.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod classify;
#[cfg(feature = "http")]
pub mod http;
mod layer;
pub mod replay;
#[cfg(feature = "reqwest")]
pub mod reqwest;

pub use classify::{BoxError, ClassifyServiceError};
pub use layer::{Error, ResponseFuture, RetryLayer, RetryService};
pub use replay::{CloneReplay, NoReplay, Replay};
