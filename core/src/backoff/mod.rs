//! Backoff: how long to wait before the next attempt.
//!
//! A strategy is anything implementing [`Backoff`]: it gets a [`BackoffContext`] (which
//! attempt failed, with which class and hint, how long the call has run and how long is
//! left) and an injected random generator, and returns a delay. Plain closures
//! `Fn(&BackoffContext) -> Duration` are strategies too.
//!
//! The machine asks a strategy for a delay only once it knows another attempt is allowed
//! (caps, deadline), so strategies never see the terminal failure. Whatever a strategy
//! returns is clamped to its own [`Backoff::max_delay`]; a delay that would end past the
//! call's deadline is never slept (the call stops with `DeadlineExceeded` instead).
//!
//! Built-ins and their formulas (`n` is the 1-based number of the attempt that failed,
//! `U(a, b)` a uniform draw from the injected generator):
//!
//! | strategy | delay after failed attempt `n` |
//! |---|---|
//! | [`decorrelated_jitter(base, max)`](decorrelated_jitter) | `min(max, U(base, 3·prev))`, `prev` = previous sleep of the call or `base` |
//! | [`equal_jitter(base, max)`](equal_jitter) | `cap = min(max, base·2ⁿ)`; `U(cap/2, cap)` |
//! | [`full_jitter(base, max)`](full_jitter) | `cap = min(max, base·2ⁿ⁻¹)`; `U(0, cap)` |
//! | [`exponential(base, max)`](exponential) | `min(max, base·2ⁿ⁻¹)` |
//! | [`constant(d)`](constant) | `d` |
//! | [`token_backoff(base, max)`](token_backoff) | `cap = min(max, base·1.5ⁿ)`; `U(cap/2, cap)` |
//! | [`retry_after_or(fallback)`](retry_after_or) | hint present: `min(max, hint) + U(0, jitter)`; else `fallback` |
//! | [`adaptive(fallback)`](adaptive()) | `fallback · m`, `m` grows while the recent failure rate exceeds a target |
//!
//! To honour server hints *and* adapt, nest as `retry_after_or(adaptive(fallback))`: the
//! other order would multiply the server's own hint.

use core::fmt;
use core::time::Duration;

use crate::class::ErrorClass;
use crate::error::ConfigError;
use crate::rng::Rng;
use crate::time::Instant;

mod adaptive;
mod strategies;

pub use adaptive::{Adaptive, adaptive};
pub use strategies::{
    Constant, DecorrelatedJitter, EqualJitter, Exponential, FromFn, FullJitter, RetryAfterOr,
    TokenBackoff, constant, decorrelated_jitter, equal_jitter, exponential, from_fn, full_jitter,
    retry_after_or, token_backoff,
};

/// Everything a strategy may base a delay on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackoffContext {
    /// The 1-based number of the attempt that just failed.
    pub attempt: u32,
    /// The class of that failure.
    pub class: ErrorClass,
    /// The dependency's own hint (`Retry-After`), if the classifier found one.
    pub retry_after: Option<Duration>,
    /// The previous sleep of this call (of any class), `None` before the first retry.
    pub prev_sleep: Option<Duration>,
    /// Time since the call started.
    pub elapsed: Duration,
    /// Time left before the call's deadline, `None` when it has none.
    pub remaining: Option<Duration>,
    /// The current time, for strategies that keep time-windowed state.
    pub now: Instant,
}

impl BackoffContext {
    /// A context for the failure of attempt `attempt` with `class`, with no history.
    ///
    /// Handy for calling a strategy directly (tests, documentation, doctor output).
    pub const fn new(attempt: u32, class: ErrorClass) -> Self {
        Self {
            attempt,
            class,
            retry_after: None,
            prev_sleep: None,
            elapsed: Duration::ZERO,
            remaining: None,
            now: Instant::ZERO,
        }
    }

    /// The same context with a previous sleep.
    pub const fn with_prev_sleep(mut self, prev: Duration) -> Self {
        self.prev_sleep = Some(prev);
        self
    }

    /// The same context with a `Retry-After` hint.
    pub const fn with_retry_after(mut self, hint: Duration) -> Self {
        self.retry_after = Some(hint);
        self
    }

    /// The same context with a remaining time budget.
    pub const fn with_remaining(mut self, remaining: Duration) -> Self {
        self.remaining = Some(remaining);
        self
    }

    /// The same context at time `now`.
    pub const fn at(mut self, now: Instant) -> Self {
        self.now = now;
        self
    }
}

/// A backoff strategy.
///
/// Strategies are shared by every call of a policy (`Send + Sync`) and must not panic.
/// Random draws come only from the `rng` argument, so a seeded generator makes every
/// delay reproducible.
pub trait Backoff: Send + Sync {
    /// The delay before the next attempt.
    fn delay(&self, ctx: &BackoffContext, rng: &mut dyn Rng) -> Duration;

    /// The largest delay this strategy may return; the machine clamps to it.
    fn max_delay(&self) -> Duration {
        Duration::MAX
    }

    /// Checks the strategy's parameters; called by the policy builder.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the parameter (relative to the strategy) that breaks a rule.
    fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }

    /// Whether the strategy wants [`Backoff::observe`] calls. Checked once when the policy
    /// is built, so strategies without feedback cost nothing on the success path.
    fn wants_feedback(&self) -> bool {
        false
    }

    /// Feedback from the policy: an attempt at `now` succeeded (`failed == false`) or failed
    /// and will be retried with this strategy (`failed == true`).
    fn observe(&self, now: Instant, failed: bool) {
        let _ = (now, failed);
    }

    /// A short human description with parameters, such as `equal_jitter(base=250ms, max=30s)`.
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("custom")
    }
}

impl<F> Backoff for F
where
    F: Fn(&BackoffContext) -> Duration + Send + Sync,
{
    fn delay(&self, ctx: &BackoffContext, _rng: &mut dyn Rng) -> Duration {
        self(ctx)
    }
}

impl<B: Backoff + ?Sized> Backoff for std::sync::Arc<B> {
    fn delay(&self, ctx: &BackoffContext, rng: &mut dyn Rng) -> Duration {
        (**self).delay(ctx, rng)
    }
    fn max_delay(&self) -> Duration {
        (**self).max_delay()
    }
    fn validate(&self) -> Result<(), ConfigError> {
        (**self).validate()
    }
    fn wants_feedback(&self) -> bool {
        (**self).wants_feedback()
    }
    fn observe(&self, now: Instant, failed: bool) {
        (**self).observe(now, failed)
    }
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).describe(f)
    }
}

/// Displays a strategy through [`Backoff::describe`].
pub struct Describe<'a>(pub &'a dyn Backoff);

impl fmt::Display for Describe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.describe(f)
    }
}

impl fmt::Debug for dyn Backoff + '_ {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.describe(f)
    }
}

/// The delay a policy actually uses: the strategy's answer clamped to its maximum.
pub(crate) fn bounded_delay(s: &dyn Backoff, ctx: &BackoffContext, rng: &mut dyn Rng) -> Duration {
    s.delay(ctx, rng).min(s.max_delay())
}

/// `d · factor` for a non-negative finite factor, saturating at `cap`; garbage factors
/// (NaN, negative, infinite) give `cap` for +inf and zero otherwise.
pub(crate) fn scale(d: Duration, factor: f64, cap: Duration) -> Duration {
    if factor.is_nan() || factor <= 0.0 {
        return Duration::ZERO;
    }
    let secs = d.as_secs_f64() * factor;
    if !secs.is_finite() || secs >= cap.as_secs_f64() {
        return cap;
    }
    Duration::try_from_secs_f64(secs).map_or(cap, |v| v.min(cap))
}
