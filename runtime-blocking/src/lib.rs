//! Blocking driver for [redress] policies: runs an operation on the current
//! thread, sleeping with `std::thread::sleep` between attempts.
//!
//! ```
//! use redress::{ErrorClass, Retry};
//! use redress::backoff::constant;
//! use std::time::Duration;
//!
//! let policy = Retry::builder()
//!     .max_attempts(3)
//!     .strategy(constant(Duration::from_millis(1)))
//!     .policy()?;
//!
//! let mut calls = 0;
//! let value = redress_blocking::call(&policy, |_attempt| {
//!     calls += 1;
//!     if calls < 3 {
//!         Err(std::io::Error::from(std::io::ErrorKind::ConnectionReset)) // Transient: retried
//!     } else {
//!         Ok("done")
//!     }
//! })
//! .unwrap();
//! assert_eq!((value, calls), ("done", 3));
//! # Ok::<(), redress::ConfigError>(())
//! ```
//!
//! # Time limits
//! A running closure cannot be pre-empted. Each attempt receives its time limit in
//! [`Attempt::deadline`] / [`Attempt::time_limit`] (the earlier of the per-attempt timeout
//! and the call's deadline): pass it on to the I/O you do (a socket timeout, a client's
//! request timeout). A result that arrives late is still used.
//!
//! # Panics
//! A panicking operation propagates its panic to the caller. The call's machine is dropped
//! on the way out, which releases its breaker permit, so breakers and budgets stay
//! consistent.
//!
//! # Tests
//! [`RunBlocking::run_with`] takes any [`Sleeper`]; [`ManualSleeper`] moves a fake clock
//! instead of sleeping, so a whole retry schedule runs instantly.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::error::Error;

use redress::drive::{CallResult, ResultCheck, run_blocking};
use redress::{CallReport, Classify, Policy, RetryError, RetryState};

pub use redress::drive::{ManualSleeper, Sleeper, ThreadSleeper};
pub use redress::{AbortHandle, Attempt, CallContext};

/// Runs `op` under `policy` with the default classifier.
///
/// # Errors
/// A [`RetryError`] saying why the call stopped, with the last error.
pub fn call<T, E, F>(policy: &Policy, op: F) -> Result<T, RetryError<E>>
where
    F: FnMut(Attempt) -> Result<T, E>,
    E: Error + 'static,
{
    CallContext::new(policy)
        .classify(redress::classify::DefaultClassifier)
        .run(op)
}

/// Like [`call`], also returning the call's [`CallReport`] (on success too).
pub fn call_with_report<T, E, F>(policy: &Policy, op: F) -> (Result<T, RetryError<E>>, CallReport)
where
    F: FnMut(Attempt) -> Result<T, E>,
    E: Error + 'static,
{
    CallContext::new(policy).run_with_report(op)
}

/// Runs calls through a [`CallContext`] on the current thread.
pub trait RunBlocking<C, R> {
    /// Runs one call of `op`.
    ///
    /// # Errors
    /// A [`RetryError`] saying why the call stopped.
    fn run<T, E, F>(&self, op: F) -> CallResult<T, E, R>
    where
        F: FnMut(Attempt) -> Result<T, E>,
        R: ResultCheck<T>,
        C: Classify<E>;

    /// Runs one call, also returning its report.
    fn run_with_report<T, E, F>(&self, op: F) -> (CallResult<T, E, R>, CallReport)
    where
        F: FnMut(Attempt) -> Result<T, E>,
        R: ResultCheck<T>,
        C: Classify<E>;

    /// Continues a deferred call from its saved state.
    ///
    /// # Errors
    /// A [`RetryError`] saying why the call stopped.
    fn resume<T, E, F>(&self, state: &RetryState, op: F) -> CallResult<T, E, R>
    where
        F: FnMut(Attempt) -> Result<T, E>,
        R: ResultCheck<T>,
        C: Classify<E>;

    /// Runs one call with an injected clock and sleeper (tests: [`ManualSleeper`]).
    ///
    /// # Errors
    /// A [`RetryError`] saying why the call stopped.
    fn run_with<T, E, F, S>(&self, sleeper: &S, op: F) -> CallResult<T, E, R>
    where
        F: FnMut(Attempt) -> Result<T, E>,
        R: ResultCheck<T>,
        S: Sleeper + ?Sized,
        C: Classify<E>;
}

impl<C, R> RunBlocking<C, R> for CallContext<'_, C, R> {
    fn run<T, E, F>(&self, op: F) -> CallResult<T, E, R>
    where
        F: FnMut(Attempt) -> Result<T, E>,
        R: ResultCheck<T>,
        C: Classify<E>,
    {
        self.run_with(&ThreadSleeper, op)
    }

    fn run_with_report<T, E, F>(&self, op: F) -> (CallResult<T, E, R>, CallReport)
    where
        F: FnMut(Attempt) -> Result<T, E>,
        R: ResultCheck<T>,
        C: Classify<E>,
    {
        let mut report = CallReport::new();
        let r = run_blocking(self, &ThreadSleeper, None, Some(&mut report), op);
        (r, report)
    }

    fn resume<T, E, F>(&self, state: &RetryState, op: F) -> CallResult<T, E, R>
    where
        F: FnMut(Attempt) -> Result<T, E>,
        R: ResultCheck<T>,
        C: Classify<E>,
    {
        run_blocking(self, &ThreadSleeper, Some(state), None, op)
    }

    fn run_with<T, E, F, S>(&self, sleeper: &S, op: F) -> CallResult<T, E, R>
    where
        F: FnMut(Attempt) -> Result<T, E>,
        R: ResultCheck<T>,
        S: Sleeper + ?Sized,
        C: Classify<E>,
    {
        run_blocking(self, sleeper, None, None, op)
    }
}

/// `op.retry(&policy)` for closures.
pub trait RetryExt<T, E>: FnMut() -> Result<T, E> + Sized {
    /// Runs the closure under `policy` with the default classifier.
    ///
    /// # Errors
    /// A [`RetryError`] saying why the call stopped.
    fn retry(mut self, policy: &Policy) -> Result<T, RetryError<E>>
    where
        E: Error + 'static,
    {
        call(policy, |_| self())
    }
}

impl<T, E, F: FnMut() -> Result<T, E>> RetryExt<T, E> for F {}
