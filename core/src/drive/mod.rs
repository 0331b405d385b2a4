//! Runtime-agnostic driving: the loop every driver shares.
//!
//! The machine decides; a driver runs attempts and waits. Everything about that loop that
//! does not depend on a runtime lives here, so the driver crates (`redress-blocking`,
//! `redress-tokio`, `redress-smol`) are only a clock and a timer: [`run_blocking`] over a
//! [`Sleeper`], [`run_async`] over a [`Timer`]. Neither reads a clock or sleeps by itself.
//!
//! A [`CallContext`] holds what many calls share: the policy, an operation name, the
//! classifiers, an [`AbortHandle`], the `on_attempt` / `before_sleep` hooks, and optionally
//! a cap on the attempts of each call.

use core::time::Duration;
use std::borrow::Cow;
use std::convert::Infallible;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use crate::class::{AcceptAll, Classification, ClassifyResult, ErrorClass};
use crate::classify::ChainClassifier;
use crate::policy::Policy;
use crate::time::Instant;

mod abort;
mod blocking;
mod future;
mod macros;

pub use abort::AbortHandle;
pub use blocking::{ManualSleeper, Sleeper, ThreadSleeper, run_blocking};
pub use future::{ManualSleep, Timer, run_async};

/// What an operation is told about the attempt it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Attempt {
    /// The 1-based attempt number.
    pub n: u32,
    /// When the attempt must be done (the earlier of the per-attempt timeout and the
    /// call's deadline), if ever.
    pub deadline: Option<Instant>,
    /// The time left until `deadline` when the attempt starts.
    pub time_limit: Option<Duration>,
}

impl Attempt {
    /// Whether this is a retry (not the first attempt).
    pub fn is_retry(&self) -> bool {
        self.n > 1
    }
}

/// What a `before_sleep` hook is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SleepInfo {
    /// The attempt that failed.
    pub attempt: u32,
    /// Its class.
    pub class: Option<ErrorClass>,
    /// The chosen delay.
    pub delay: Duration,
    /// When the sleep ends.
    pub until: Instant,
}

/// A `before_sleep` hook's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SleepVerdict {
    /// Sleep as planned.
    #[default]
    Sleep,
    /// Sleep at most this long (for example while shutting down gracefully).
    Shorten(Duration),
    /// Do not retry: stop the call with [`StopReason::Aborted`](crate::StopReason::Aborted).
    Abort,
}

/// Decides whether a successful value is really a success (result-based retries).
///
/// Implemented by [`AcceptAll`] (every value is a success; nothing is kept),
/// [`ByResult`] (wraps a [`ClassifyResult`]; a rejected value is kept for the error) and
/// [`Releasing`] (another check whose rejected values are released before each retry).
///
/// # When a rejected value is dropped
/// | [`release_before_retry`](Self::release_before_retry) | A rejected value that is retried | The rejected value of the last attempt |
/// |---|---|---|
/// | `false` (the default) | kept until the next attempt fails or the call ends | kept in the error |
/// | `true` | dropped as soon as the machine decides to retry, before the sleep and the hooks | kept in the error |
///
/// Releasing matters when a value holds a resource: a rejected HTTP response keeps its body,
/// and with it a pooled connection, alive for as long as it is held. A call stopped while
/// sleeping after a released value (an abort, an open breaker at wake-up) ends with
/// [`LastFailure::Nothing`](crate::LastFailure::Nothing) and the class of that value.
pub trait ResultCheck<T> {
    /// What a failed call keeps of a rejected value.
    type Kept;
    /// `Ok(value)` for a success, or the classification and the value to keep.
    ///
    /// # Errors
    /// The classification of a value that counts as a failure.
    fn check(&self, value: T) -> Result<T, (Classification, Self::Kept)>;

    /// Whether a rejected value is dropped as soon as the machine decides to retry, rather
    /// than kept until the next attempt ends. `false` by default; the value of the last
    /// attempt is kept for the error either way.
    fn release_before_retry(&self) -> bool {
        false
    }
}

impl<T> ResultCheck<T> for AcceptAll {
    type Kept = Infallible;
    fn check(&self, value: T) -> Result<T, (Classification, Infallible)> {
        Ok(value)
    }
}

/// The result of a call whose `Ok` values are checked by `R`: the value, or a
/// [`RetryError`](crate::RetryError) that may keep a rejected value.
pub type CallResult<T, E, R> = Result<T, crate::error::RetryError<E, <R as ResultCheck<T>>::Kept>>;

/// A result classifier used as a [`ResultCheck`].
#[derive(Clone, Copy, Debug)]
pub struct ByResult<F>(pub F);

impl<T, F: ClassifyResult<T>> ResultCheck<T> for ByResult<F> {
    type Kept = T;
    fn check(&self, value: T) -> Result<T, (Classification, T)> {
        match self.0.classify_result(&value) {
            None => Ok(value),
            Some(c) => Err((c, value)),
        }
    }
}

/// A [`ResultCheck`] whose rejected values are dropped before each retry (see
/// [`ResultCheck::release_before_retry`]); built with [`CallContext::release_rejected`].
#[derive(Clone, Copy, Debug)]
pub struct Releasing<R>(pub R);

impl<T, R: ResultCheck<T>> ResultCheck<T> for Releasing<R> {
    type Kept = R::Kept;
    fn check(&self, value: T) -> Result<T, (Classification, R::Kept)> {
        self.0.check(value)
    }
    fn release_before_retry(&self) -> bool {
        true
    }
}

type AttemptHook = Arc<dyn Fn(&Attempt) + Send + Sync>;
type SleepHook = Arc<dyn Fn(&SleepInfo) -> SleepVerdict + Send + Sync>;

/// What many calls share: policy, operation name, classifiers, abort handle and hooks.
///
/// Built with [`Policy::context`]; drivers run calls through it by reference, so one
/// context serves any number of calls (it is `Clone` when its classifiers are).
#[derive(Clone)]
#[must_use]
pub struct CallContext<'p, C = ChainClassifier, R = AcceptAll> {
    pub(crate) policy: &'p Policy,
    pub(crate) operation: Option<Cow<'p, str>>,
    pub(crate) classifier: C,
    pub(crate) result: R,
    pub(crate) abort: Option<AbortHandle>,
    pub(crate) on_attempt: Option<AttemptHook>,
    pub(crate) before_sleep: Option<SleepHook>,
    pub(crate) defer: bool,
    pub(crate) max_attempts: Option<u32>,
}

impl Policy {
    /// A context running calls of this policy under `operation` (the name events carry).
    pub fn context<'p>(&'p self, operation: impl Into<Cow<'p, str>>) -> CallContext<'p> {
        CallContext::new(self).operation(operation)
    }
}

impl<'p> CallContext<'p> {
    /// A context with the default classifier ([`ChainClassifier::new`]) and no result
    /// classifier.
    pub fn new(policy: &'p Policy) -> Self {
        Self {
            policy,
            operation: None,
            classifier: ChainClassifier::new(),
            result: AcceptAll,
            abort: None,
            on_attempt: None,
            before_sleep: None,
            defer: false,
            max_attempts: None,
        }
    }
}

impl<'p, C, R> CallContext<'p, C, R> {
    /// The operation name events carry.
    pub fn operation(mut self, name: impl Into<Cow<'p, str>>) -> Self {
        self.operation = Some(name.into());
        self
    }

    /// The error classifier (any [`Classify`](crate::Classify) of the call's error type).
    pub fn classify<C2>(self, classifier: C2) -> CallContext<'p, C2, R> {
        CallContext {
            policy: self.policy,
            operation: self.operation,
            classifier,
            result: self.result,
            abort: self.abort,
            on_attempt: self.on_attempt,
            before_sleep: self.before_sleep,
            defer: self.defer,
            max_attempts: self.max_attempts,
        }
    }

    /// A result classifier: `Some(class)` marks an `Ok` value as a failure (for example
    /// an HTTP 503 response). If retries run out, the last value is in the error.
    pub fn classify_result<F>(self, f: F) -> CallContext<'p, C, ByResult<F>> {
        CallContext {
            policy: self.policy,
            operation: self.operation,
            classifier: self.classifier,
            result: ByResult(f),
            abort: self.abort,
            on_attempt: self.on_attempt,
            before_sleep: self.before_sleep,
            defer: self.defer,
            max_attempts: self.max_attempts,
        }
    }

    /// Releases values rejected by the result classifier before each retry instead of
    /// keeping them until the next attempt ends (see [`ResultCheck::release_before_retry`]):
    /// a retried HTTP response's body and connection are freed before the sleep. The value
    /// of the last attempt is still kept for the error.
    pub fn release_rejected(self) -> CallContext<'p, C, Releasing<R>> {
        CallContext {
            policy: self.policy,
            operation: self.operation,
            classifier: self.classifier,
            result: Releasing(self.result),
            abort: self.abort,
            on_attempt: self.on_attempt,
            before_sleep: self.before_sleep,
            defer: self.defer,
            max_attempts: self.max_attempts,
        }
    }

    /// Caps each call of this context at `n` attempts, below the policy's own
    /// `max_attempts` (a larger `n` changes nothing; `0` counts as `1`). A call stopped by
    /// the cap ends with [`StopReason::MaxAttempts`](crate::StopReason::MaxAttempts). Use it
    /// for one call that must not be repeated, such as a request that cannot be sent twice:
    /// `max_attempts(1)` keeps the breaker, the timeouts and the hooks, and never retries.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n);
        self
    }

    /// An abort handle: once aborted, calls stop between attempts (and cut their sleep
    /// short) with [`StopReason::Aborted`](crate::StopReason::Aborted).
    pub fn abort_handle(mut self, handle: AbortHandle) -> Self {
        self.abort = Some(handle);
        self
    }

    /// A hook called before every attempt. A panic in it is contained.
    pub fn on_attempt(mut self, f: impl Fn(&Attempt) + Send + Sync + 'static) -> Self {
        self.on_attempt = Some(Arc::new(f));
        self
    }

    /// A hook called before every sleep; it may shorten the sleep or abort the call. A
    /// panic in it is contained (the sleep goes ahead).
    pub fn before_sleep(
        mut self,
        f: impl Fn(&SleepInfo) -> SleepVerdict + Send + Sync + 'static,
    ) -> Self {
        self.before_sleep = Some(Arc::new(f));
        self
    }

    /// Defer instead of sleeping: a retry ends the call with
    /// [`StopReason::Deferred`](crate::StopReason::Deferred), and the error carries the
    /// [`RetryState`](crate::RetryState) to resume from.
    pub fn deferring(mut self, on: bool) -> Self {
        self.defer = on;
        self
    }

    /// The policy.
    pub fn policy(&self) -> &'p Policy {
        self.policy
    }

    /// The abort handle, if any.
    pub fn abort(&self) -> Option<&AbortHandle> {
        self.abort.as_ref()
    }

    #[inline]
    pub(crate) fn run_on_attempt(&self, a: &Attempt) {
        if let Some(h) = &self.on_attempt {
            let _ = catch_unwind(AssertUnwindSafe(|| h(a)));
        }
    }

    pub(crate) fn run_before_sleep(&self, s: &SleepInfo) -> SleepVerdict {
        match &self.before_sleep {
            Some(h) => catch_unwind(AssertUnwindSafe(|| h(s))).unwrap_or_default(),
            None => SleepVerdict::Sleep,
        }
    }
}

pub(crate) mod step;
