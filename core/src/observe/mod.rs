//! Ready-made observers of a policy's events (features `tracing` and `metrics`).
//!
//! ```
//! # #[cfg(all(feature = "tracing", feature = "metrics"))] {
//! use std::time::Duration;
//!
//! use redress::backoff::constant;
//! use redress::drive::{ManualSleeper, run_blocking};
//! use redress::event::Recorder;
//! use redress::observe::{MetricsHook, TracingHook};
//! use redress::{Policy, Retry};
//!
//! // Once a tracing subscriber and a metrics recorder (such as
//! // metrics-exporter-prometheus) are installed:
//! let metrics = MetricsHook::new();
//! metrics.describe();
//! let mine = Recorder::default();
//! let policy = Policy::builder()
//!     .retry(Retry::builder().max_attempts(3).strategy(constant(Duration::from_millis(50))))
//!     // One hook per policy, but a tuple of hooks is a hook: all three see every event.
//!     .hook((TracingHook::new(), metrics, mine.clone()))
//!     .build()
//!     .unwrap();
//!
//! // A driver crate runs this with `redress_blocking::call(&policy, op)`; here a fake
//! // clock runs the retry schedule at once.
//! let mut failures = 1;
//! let user = run_blocking(&policy.context("fetch_user"), &ManualSleeper::default(), None, None, |_| {
//!     if failures > 0 {
//!         failures -= 1;
//!         return Err(std::io::Error::from(std::io::ErrorKind::ConnectionReset)); // Transient
//!     }
//!     Ok("user")
//! })
//! .unwrap();
//! assert_eq!(user, "user");
//! // `redress` logged `retry` (INFO) and `success` (DEBUG), and counted
//! // redress_retries_total{operation="fetch_user",class="transient"} 1 and
//! // redress_calls_total{operation="fetch_user",outcome="success"} 1.
//! assert_eq!(mine.names(), ["retry", "success"]);
//! # }
//! ```
//!
//! | Hook | Feature | What it does |
//! |---|---|---|
//! | [`TracingHook`] | `tracing` | one `tracing` event per redress event, target `redress`, with structured fields; levels and fields in [its module](self::tracing) |
//! | [`MetricsHook`] | `metrics` | counters, histograms and a breaker-state gauge through the `metrics` facade; names and labels in [its module](self::metrics) |
//!
//! A policy has one [`Hook`](crate::Hook); a tuple of hooks, an `Option` of one and
//! [`Hooks`](crate::event::Hooks) are hooks too, so these combine with each other and with
//! your own. Observers never change a call: a panicking hook is contained. With no hook
//! installed none of this code runs.

#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "tracing")]
pub mod tracing;

#[cfg(feature = "metrics")]
pub use self::metrics::MetricsHook;
#[cfg(feature = "tracing")]
pub use self::tracing::TracingHook;
