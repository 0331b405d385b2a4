//! # redress: failure handling is policy
//!
//! An operation's error is first *classified* into one of eight semantic classes
//! ([`ErrorClass`]: Auth, Permission, Permanent, Concurrency, RateLimit, ServerError,
//! Transient, Unknown), optionally with hints such as `Retry-After`. A [`Policy`] then
//! decides what that class gets: a per-class backoff, attempt caps, a total deadline,
//! per-attempt timeouts, a shared retry [`Budget`] that stops retry storms,
//! and a [`CircuitBreaker`] that fails fast while a dependency is
//! down. Every decision is observable through one hook, and every call ends with a reason.
//!
//! This crate is the **sans-IO core**: a pure [`PolicyMachine`] that receives
//! [`Outcome`]s and returns [`Decision`]s. It never reads a clock, sleeps, spawns or does
//! I/O; time ([`Instant`]) and randomness ([`rng`]) come in as arguments. Thin driver crates
//! (`redress-blocking`, `redress-tokio`, `redress-smol`) execute the decisions; the same
//! machine can be driven by hand with a fake clock, as here:
//!
//! ```
//! use redress::{Decision, ErrorClass, Instant, Outcome, Policy, Retry, StopReason};
//! use redress::backoff::exponential;
//! use std::time::Duration;
//!
//! let policy: Policy = Retry::builder()
//!     .max_attempts(3)
//!     .strategy(exponential(Duration::from_millis(100), Duration::from_secs(1)))
//!     .policy()?;
//!
//! let mut now = Instant::ZERO;
//! let mut m = policy.machine();
//! assert_eq!(m.start(now), Decision::Attempt { n: 1, deadline: Some(Instant::from_secs(60)) });
//!
//! // The first attempt fails with a passing fault: sleep 100 ms, then try again.
//! let d = m.on_outcome(now, Outcome::failure(ErrorClass::Transient));
//! assert_eq!(d, Decision::Sleep { until: Instant::from_millis(100), delay: Duration::from_millis(100) });
//! now = Instant::from_millis(100);
//! assert!(matches!(m.on_wake(now), Decision::Attempt { n: 2, .. }));
//!
//! // The second fails with a server error: 200 ms; the third is the last allowed.
//! let d = m.on_outcome(now, Outcome::failure(ErrorClass::ServerError));
//! assert!(matches!(d, Decision::Sleep { delay, .. } if delay == Duration::from_millis(200)));
//! now = Instant::from_millis(300);
//! assert!(matches!(m.on_wake(now), Decision::Attempt { n: 3, .. }));
//! let d = m.on_outcome(now, Outcome::failure(ErrorClass::Transient));
//! assert_eq!(d, Decision::Failed(StopReason::MaxAttempts));
//! # Ok::<(), redress::ConfigError>(())
//! ```
//!
//! ## The drive loop
//! 1. `m.start(now)` → [`Decision::Attempt`] (or `Rejected` by an open breaker).
//! 2. Run the attempt, within `deadline` if one is given; classify the result.
//! 3. `m.on_outcome(now, outcome)` → `Succeeded`, `Failed(reason)`, `Rejected`,
//!    `Attempt` (after a zero delay) or `Sleep { until, .. }`.
//! 4. On `Sleep`, wait until `until`, then `m.on_wake(now)` → `Attempt` (go to 2) or a stop.
//! 5. After every input, drain [`PolicyMachine::poll_event`] into [`Policy::emit`].
//!
//! **The machine never busy-loops**: after any input it is finished, asks for an attempt,
//! or its [`poll_timeout`](PolicyMachine::poll_timeout) lies in the future. **Misuse is
//! harmless**: early wake-ups and out-of-order inputs return the current decision. **Time
//! that goes backwards is clamped**, and no input makes it panic.
//!
//! ## Writing your own driver
//! A driver is the loop above plus a timer. It reads its clock (mapped onto [`Instant`],
//! for example with [`SystemClock`]) before each input, classifies errors with a
//! [`Classify`] implementation (such as [`classify::default_classifier`]), and, when
//! [`Policy::needs_clock`] is false, may use [`PolicyMachine::start_untimed`] so the success
//! path reads no clock at all. A success needs the time it happened only if
//! [`PolicyMachine::needs_time_on_success`]; otherwise [`PolicyMachine::last_now`] will do.
//! When [`Policy::needs_precise_clock`] is false, a reading of
//! [`Clock::now_coarse`] is exact enough. To hand retries to a job queue instead of
//! sleeping, build the machine [`deferring`](PolicyMachine::deferring), save
//! [`PolicyMachine::state`] and continue later with [`Policy::resume`].
//!
//! ## What a call costs
//! The bundled drivers run the first attempt of a new call without building a machine: an
//! admission (one clock read if the policy needs time, a budget deposit, a breaker permit),
//! the attempt, and the success recorded as the machine would have recorded it, with the
//! same events. Only a failure builds the machine, which takes over that attempt exactly as
//! if it had started the call. The success or rejection of a new call allocates nothing
//! (a [`CallReport`] may grow its timeline); the async drivers box the machine and retry
//! loop (one allocation) once a call goes on, or from the start for a resumed call, so the
//! future every call builds stays small. `BENCHMARKS.md` has the numbers against the Rust
//! peers.
//!
//! ## Modules
//! - [`class`] and [`classify`]: classes, classifications, classifiers.
//! - [`backoff`]: strategies and their formulas.
//! - [`retry`]: retry settings, and the table of what each cap counts.
//! - [`breaker`], [`budget`]: shared state, each opening with why it exists.
//! - [`event`]: events and the hook. [`report`]: a structured account of a finished call.
//! - [`manual::bad_input`]: every input a user controls and what redress does with bad
//!   values of it.
//! - `config` and `doctor` (feature `serde`): policy files in TOML or JSON with located
//!   errors, and a linter of their settings.
//! - `observe` (features `tracing`, `metrics`): ready hooks emitting structured `tracing`
//!   events and `metrics` counters, histograms and a breaker-state gauge.
//!
//! ## Library classifiers (one cargo feature each; the default build pulls none)
//! | Feature | Module | Classifies |
//! |---------|--------|------------|
//! | `http` | `classify::http` | `http::StatusCode`, `Retry-After` (delta-seconds and HTTP-date, capped), `http::Response` |
//! | `reqwest` | `classify::reqwest` | `reqwest::Error` (connect, timeout, decode, status, …) and `reqwest::Response` |
//! | `tonic` | `classify::tonic` | `tonic::Status`: every gRPC code, `grpc-retry-pushback-ms` |
//! | `sqlstate` | `classify::sqlstate` | SQLSTATE codes (PostgreSQL, MySQL) and SQLite result codes |
//! | `tokio-postgres`, `sqlx` | `classify::sqlstate` | `tokio_postgres::Error`, `sqlx::Error` |
//! | `redis` | `classify::redis` | `redis::RedisError`: connection loss, `BUSY`/`LOADING`/`TRYAGAIN`, `MOVED`/`ASK`, `NOAUTH`, … |
//! | `aws` | `classify::aws` | AWS SDK errors (`SdkError`, `ErrorMetadata`): throttling, transient, 5xx |
//!
//! With a feature on, [`ChainClassifier`] (and so [`default_classifier`]) also recognises
//! that library's error type anywhere in an error's `source()` chain.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod backoff;
pub mod breaker;
pub mod budget;
pub mod class;
pub mod classify;
#[cfg(feature = "serde")]
pub mod config;
pub mod decision;
#[cfg(feature = "serde")]
pub mod doctor;
pub mod drive;
pub mod error;
pub mod event;
pub mod fleet;
mod machine;
pub mod manual;
#[cfg(any(feature = "tracing", feature = "metrics"))]
pub mod observe;
mod policy;
pub mod report;
pub mod retry;
pub mod rng;
mod state;
mod sync;
pub mod time;
mod window;

pub use breaker::{CircuitBreaker, CircuitState};
pub use budget::Budget;
pub use class::{
    AcceptAll, ClassSet, ClassTable, Classification, Classify, ClassifyResult, ErrorClass,
};
pub use classify::{
    ChainClassifier, Classified, ClassifyError, StatusCode, default_classifier, strict_classifier,
};
pub use decision::{Decision, Outcome, StopReason};
pub use drive::{AbortHandle, Attempt, CallContext};
pub use error::{ConfigError, LastFailure, RetryError};
pub use event::{Event, EventKind, Hook};
pub use machine::PolicyMachine;
pub use policy::{BreakerScope, Policy, PolicyBuilder, RetrySource};
pub use report::CallReport;
pub use retry::{Retry, RetryBuilder};
pub use state::RetryState;
pub use time::{Clock, Instant, ManualClock, SystemClock};
