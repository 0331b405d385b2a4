//! Tokio driver for [redress] policies.
//!
//! ```
//! use redress::{ErrorClass, Retry};
//! use redress::backoff::constant;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let policy = Retry::builder()
//!     .max_attempts(3)
//!     .strategy(constant(Duration::from_millis(1)))
//!     .policy()?;
//!
//! let mut calls = 0;
//! let value = redress_tokio::call(&policy, async |_attempt| {
//!     calls += 1; // async closures may borrow `&mut` state across attempts
//!     if calls < 3 {
//!         Err(std::io::Error::from(std::io::ErrorKind::TimedOut)) // Transient: retried
//!     } else {
//!         Ok("done")
//!     }
//! })
//! .await?;
//! assert_eq!((value, calls), ("done", 3));
//! # Ok(()) }
//! ```
//!
//! Attempts run inside the caller's task; each is raced against its time limit (the
//! earlier of the per-attempt timeout and the call's deadline) on tokio's timer, and a
//! timed-out attempt is dropped and counted as [`Outcome::TimedOut`](redress::Outcome).
//! Time is read from `tokio::time::Instant`, so tests with `#[tokio::test(start_paused =
//! true)]` run whole retry schedules instantly. Dropping the call's future at any await
//! point releases its breaker permit. Zero delays never touch the timer.
//!
//! **Spawning a call.** The compiler cannot yet prove that the future of an `async`
//! closure is `Send`, so a call whose operation is an `async |attempt| …` closure cannot be
//! moved into `tokio::spawn` when the closure borrows across awaits. Pass a closure
//! returning an `async move` block instead (`move |attempt| { let c = c.clone(); async move
//! { … } }`): it is an `AsyncFnMut` too, and its future is `Send` when what it captures is.
//!
//! [`RunAsync`] runs calls through a [`CallContext`] (operation name, classifiers, abort
//! handle, hooks): `policy.context("fetch").run(op).await`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use redress::drive::Timer;
use redress::{Instant, SystemClock};

pub use redress::{AbortHandle, Attempt, CallContext};

/// Tokio's clock and timer.
///
/// Its [`now_coarse`](Timer::now_coarse) is its `now`: tokio's clock can be paused and
/// advanced by tests (`tokio::time::pause`), which only `tokio::time::Instant` follows.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioTimer;

impl Timer for TokioTimer {
    type Sleep = tokio::time::Sleep;

    fn now(&self) -> Instant {
        SystemClock::instant_from_std(tokio::time::Instant::now().into_std())
    }

    fn sleep_until(&self, until: Instant) -> Self::Sleep {
        tokio::time::sleep_until(SystemClock::std_from_instant(until).into())
    }
}

redress::async_driver!(TokioTimer);
