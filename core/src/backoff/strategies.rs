//! The built-in strategies.
//!
//! Every strategy here is total: whatever the context holds (attempt `0` or `u32::MAX`, a
//! previous sleep or hint of [`Duration::MAX`]) and whatever its parameters (even ones that
//! [`Backoff::validate`] would reject), it returns a delay no larger than its own
//! [`Backoff::max_delay`] and never panics. Growth is computed with checked integer shifts
//! or [`scale`], so large attempt numbers saturate at the cap instead of overflowing.

use core::fmt;
use core::time::Duration;

use super::{Backoff, BackoffContext, scale};
use crate::error::{ConfigError, ensure};
use crate::rng::{Rng, uniform_duration};
use crate::time::Instant;

/// The base used by the `Default` impls.
const DEFAULT_BASE: Duration = Duration::from_millis(250);
/// The cap used by the `Default` impls of the exponential family.
const DEFAULT_MAX: Duration = Duration::from_secs(30);
/// The cap of [`TokenBackoff::default`]: token waits are short-lived, so a lower ceiling.
const DEFAULT_TOKEN_MAX: Duration = Duration::from_secs(20);

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// `d · 2^k`, saturating at `cap` (and never above it).
///
/// Integer arithmetic keeps powers of two exact, which floats would not for bases such as
/// 100 ms.
fn mul_pow2(d: Duration, k: u32, cap: Duration) -> Duration {
    let n = d.as_nanos();
    let scaled = if k >= u128::BITS {
        if n == 0 { Some(0) } else { None }
    } else {
        n.checked_mul(1u128 << k)
    };
    match scaled {
        Some(s) if s < cap.as_nanos() => duration_from_nanos(s),
        _ => cap,
    }
}

/// A duration of `n` nanoseconds, saturating at [`Duration::MAX`].
fn duration_from_nanos(n: u128) -> Duration {
    let secs = u64::try_from(n / NANOS_PER_SEC).unwrap_or(u64::MAX);
    // The remainder is below one billion, so it always fits a u32.
    let nanos = u32::try_from(n % NANOS_PER_SEC).unwrap_or(0);
    Duration::new(secs, nanos)
}

/// An exponent for `f64::powi`, saturating: beyond `i32::MAX` every factor > 1 has long
/// overflowed to infinity anyway.
fn powi_exp(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn check_base(base: Duration) -> Result<(), ConfigError> {
    ensure(
        base > Duration::ZERO,
        "base",
        base,
        "must be greater than zero",
    )
}

fn check_max(base: Duration, max: Duration) -> Result<(), ConfigError> {
    ensure(max >= base, "max", max, "must be at least `base`")
}

// ---------------------------------------------------------------------------------------
// Decorrelated jitter
// ---------------------------------------------------------------------------------------

/// Decorrelated jitter: each delay is drawn between `base` and three times the previous
/// sleep. Built by [`decorrelated_jitter`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DecorrelatedJitter {
    base: Duration,
    max: Duration,
}

/// Decorrelated jitter (the AWS Architecture Blog variant):
/// `min(max, U(base, 3·prev))`, where `prev` is the call's previous sleep, or `base` before
/// the first retry (a zero previous sleep also counts as `base`).
///
/// Delays wander rather than grow strictly, which spreads competing clients apart well.
///
/// ```
/// use redress::backoff::{Backoff, BackoffContext, decorrelated_jitter};
/// use redress::ErrorClass;
/// use std::time::Duration;
///
/// let s = decorrelated_jitter(Duration::from_millis(100), Duration::from_secs(10));
/// let ctx = BackoffContext::new(2, ErrorClass::Transient).with_prev_sleep(Duration::from_secs(1));
/// let d = s.delay(&ctx, &mut redress::rng::seeded(42));
/// assert!(d >= Duration::from_millis(100) && d <= Duration::from_secs(3));
/// ```
pub const fn decorrelated_jitter(base: Duration, max: Duration) -> DecorrelatedJitter {
    DecorrelatedJitter { base, max }
}

impl Default for DecorrelatedJitter {
    /// `decorrelated_jitter(250ms, 30s)`.
    fn default() -> Self {
        decorrelated_jitter(DEFAULT_BASE, DEFAULT_MAX)
    }
}

impl Backoff for DecorrelatedJitter {
    fn delay(&self, ctx: &BackoffContext, rng: &mut dyn Rng) -> Duration {
        let prev = match ctx.prev_sleep {
            Some(p) if !p.is_zero() => p,
            _ => self.base,
        };
        uniform_duration(rng, self.base, prev.saturating_mul(3)).min(self.max)
    }

    fn max_delay(&self) -> Duration {
        self.max
    }

    fn validate(&self) -> Result<(), ConfigError> {
        check_base(self.base)?;
        check_max(self.base, self.max)
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "decorrelated_jitter(base={:?}, max={:?})",
            self.base, self.max
        )
    }
}

// ---------------------------------------------------------------------------------------
// Equal jitter
// ---------------------------------------------------------------------------------------

/// Equal jitter: half of an exponential cap is kept, the other half is random. Built by
/// [`equal_jitter`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EqualJitter {
    base: Duration,
    max: Duration,
}

/// Equal jitter: `cap = min(max, base·2ⁿ)`, delay `U(cap/2, cap)`, where `n` is the number
/// of the attempt that failed.
///
/// Guarantees at least half the exponential delay while still spreading clients apart.
///
/// ```
/// use redress::backoff::{Backoff, BackoffContext, equal_jitter};
/// use redress::ErrorClass;
/// use std::time::Duration;
///
/// let s = equal_jitter(Duration::from_millis(100), Duration::from_secs(10));
/// let d = s.delay(&BackoffContext::new(2, ErrorClass::Transient), &mut redress::rng::seeded(42));
/// assert!(d >= Duration::from_millis(200) && d <= Duration::from_millis(400));
/// ```
pub const fn equal_jitter(base: Duration, max: Duration) -> EqualJitter {
    EqualJitter { base, max }
}

impl Default for EqualJitter {
    /// `equal_jitter(250ms, 30s)`.
    fn default() -> Self {
        equal_jitter(DEFAULT_BASE, DEFAULT_MAX)
    }
}

impl Backoff for EqualJitter {
    fn delay(&self, ctx: &BackoffContext, rng: &mut dyn Rng) -> Duration {
        let cap = mul_pow2(self.base, ctx.attempt, self.max);
        uniform_duration(rng, cap / 2, cap).min(self.max)
    }

    fn max_delay(&self) -> Duration {
        self.max
    }

    fn validate(&self) -> Result<(), ConfigError> {
        check_base(self.base)?;
        check_max(self.base, self.max)
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "equal_jitter(base={:?}, max={:?})", self.base, self.max)
    }
}

// ---------------------------------------------------------------------------------------
// Full jitter
// ---------------------------------------------------------------------------------------

/// Full jitter: a uniform draw below an exponential cap. Built by [`full_jitter`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FullJitter {
    base: Duration,
    max: Duration,
}

/// Full jitter: `cap = min(max, base·2ⁿ⁻¹)`, delay `U(0, cap)`, where `n` is the number of
/// the attempt that failed (attempt `0` counts as `1`).
///
/// The least total contention of the jittered family, at the price of occasional very short
/// delays.
///
/// ```
/// use redress::backoff::{Backoff, BackoffContext, full_jitter};
/// use redress::ErrorClass;
/// use std::time::Duration;
///
/// let s = full_jitter(Duration::from_millis(100), Duration::from_secs(10));
/// let d = s.delay(&BackoffContext::new(3, ErrorClass::Transient), &mut redress::rng::seeded(42));
/// assert!(d <= Duration::from_millis(400));
/// ```
pub const fn full_jitter(base: Duration, max: Duration) -> FullJitter {
    FullJitter { base, max }
}

impl Default for FullJitter {
    /// `full_jitter(250ms, 30s)`.
    fn default() -> Self {
        full_jitter(DEFAULT_BASE, DEFAULT_MAX)
    }
}

impl Backoff for FullJitter {
    fn delay(&self, ctx: &BackoffContext, rng: &mut dyn Rng) -> Duration {
        let cap = mul_pow2(self.base, ctx.attempt.saturating_sub(1), self.max);
        uniform_duration(rng, Duration::ZERO, cap).min(self.max)
    }

    fn max_delay(&self) -> Duration {
        self.max
    }

    fn validate(&self) -> Result<(), ConfigError> {
        check_base(self.base)?;
        check_max(self.base, self.max)
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "full_jitter(base={:?}, max={:?})", self.base, self.max)
    }
}

// ---------------------------------------------------------------------------------------
// Exponential
// ---------------------------------------------------------------------------------------

/// Plain exponential growth without randomness. Built by [`exponential`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Exponential {
    base: Duration,
    max: Duration,
    factor: f64,
}

/// Exponential backoff: `min(max, base·factorⁿ⁻¹)` with `factor` 2 unless set with
/// [`Exponential::factor`], where `n` is the number of the attempt that failed (attempt `0`
/// counts as `1`). No randomness: prefer a jittered strategy when many clients may retry
/// in lockstep.
///
/// ```
/// use redress::backoff::{Backoff, BackoffContext, exponential};
/// use redress::ErrorClass;
/// use std::time::Duration;
///
/// let s = exponential(Duration::from_millis(100), Duration::from_secs(1));
/// let at = |n| s.delay(&BackoffContext::new(n, ErrorClass::Transient), &mut redress::rng::seeded(0));
/// assert_eq!(at(1), Duration::from_millis(100));
/// assert_eq!(at(3), Duration::from_millis(400));
/// assert_eq!(at(10), Duration::from_secs(1));
/// ```
pub const fn exponential(base: Duration, max: Duration) -> Exponential {
    Exponential {
        base,
        max,
        factor: 2.0,
    }
}

impl Exponential {
    /// The same strategy growing by `factor` per attempt instead of 2 (finite, at least 1).
    #[must_use]
    pub const fn factor(mut self, factor: f64) -> Self {
        self.factor = factor;
        self
    }
}

impl Default for Exponential {
    /// `exponential(250ms, 30s)` with factor 2.
    fn default() -> Self {
        exponential(DEFAULT_BASE, DEFAULT_MAX)
    }
}

impl Backoff for Exponential {
    fn delay(&self, ctx: &BackoffContext, _rng: &mut dyn Rng) -> Duration {
        let k = ctx.attempt.saturating_sub(1);
        if self.factor == 2.0 {
            mul_pow2(self.base, k, self.max)
        } else if k == 0 {
            // factor⁰ is 1 even for garbage factors; keep it exact instead of a float trip.
            self.base.min(self.max)
        } else {
            scale(self.base, self.factor.powi(powi_exp(k)), self.max)
        }
    }

    fn max_delay(&self) -> Duration {
        self.max
    }

    fn validate(&self) -> Result<(), ConfigError> {
        check_base(self.base)?;
        check_max(self.base, self.max)?;
        ensure(
            self.factor.is_finite() && self.factor >= 1.0,
            "factor",
            self.factor,
            "must be finite and at least 1",
        )
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exponential(base={:?}, max={:?}, factor={:?})",
            self.base, self.max, self.factor
        )
    }
}

// ---------------------------------------------------------------------------------------
// Constant
// ---------------------------------------------------------------------------------------

/// The same delay every time. Built by [`constant`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Constant {
    delay: Duration,
}

/// Constant backoff: always `d` (which is also the strategy's maximum). Any `d`, zero
/// included, is valid.
///
/// ```
/// use redress::backoff::{Backoff, BackoffContext, constant};
/// use redress::ErrorClass;
/// use std::time::Duration;
///
/// let s = constant(Duration::from_millis(50));
/// let d = s.delay(&BackoffContext::new(7, ErrorClass::Transient), &mut redress::rng::seeded(0));
/// assert_eq!(d, Duration::from_millis(50));
/// ```
pub const fn constant(d: Duration) -> Constant {
    Constant { delay: d }
}

impl Backoff for Constant {
    fn delay(&self, _ctx: &BackoffContext, _rng: &mut dyn Rng) -> Duration {
        self.delay
    }

    fn max_delay(&self) -> Duration {
        self.delay
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "constant({:?})", self.delay)
    }
}

// ---------------------------------------------------------------------------------------
// Token backoff
// ---------------------------------------------------------------------------------------

/// Gentle growth for waiting on a token or lease to free up. Built by [`token_backoff`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TokenBackoff {
    base: Duration,
    max: Duration,
}

/// Token backoff: `cap = min(max, base·1.5ⁿ)`, delay `U(cap/2, cap)`, where `n` is the
/// number of the attempt that failed.
///
/// Grows more slowly than doubling, for contention (locks, leases, optimistic concurrency)
/// where the holder is expected to finish soon.
///
/// ```
/// use redress::backoff::{Backoff, BackoffContext, token_backoff};
/// use redress::ErrorClass;
/// use std::time::Duration;
///
/// let s = token_backoff(Duration::from_millis(100), Duration::from_secs(5));
/// let d = s.delay(&BackoffContext::new(2, ErrorClass::Concurrency), &mut redress::rng::seeded(42));
/// assert!(d >= Duration::from_micros(112_500) && d <= Duration::from_millis(225));
/// ```
pub const fn token_backoff(base: Duration, max: Duration) -> TokenBackoff {
    TokenBackoff { base, max }
}

impl Default for TokenBackoff {
    /// `token_backoff(250ms, 20s)`.
    fn default() -> Self {
        token_backoff(DEFAULT_BASE, DEFAULT_TOKEN_MAX)
    }
}

impl Backoff for TokenBackoff {
    fn delay(&self, ctx: &BackoffContext, rng: &mut dyn Rng) -> Duration {
        let cap = scale(self.base, 1.5f64.powi(powi_exp(ctx.attempt)), self.max);
        uniform_duration(rng, cap / 2, cap).min(self.max)
    }

    fn max_delay(&self) -> Duration {
        self.max
    }

    fn validate(&self) -> Result<(), ConfigError> {
        check_base(self.base)?;
        check_max(self.base, self.max)
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "token_backoff(base={:?}, max={:?})", self.base, self.max)
    }
}

// ---------------------------------------------------------------------------------------
// Retry-After, or a fallback
// ---------------------------------------------------------------------------------------

/// Honours the dependency's `Retry-After` hint when there is one, else defers to a fallback.
/// Built by [`retry_after_or`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryAfterOr<B> {
    fallback: B,
    max_hint: Duration,
    jitter: Duration,
}

/// The default cap on a server's hint.
const DEFAULT_MAX_HINT: Duration = Duration::from_secs(60);
/// The default spread added to a hint.
const DEFAULT_HINT_JITTER: Duration = Duration::from_millis(250);

/// Retry-After first: with a hint `h`, the delay is `min(h, max_hint) + U(0, jitter)`;
/// without one, `fallback`'s delay. `max_hint` defaults to 60 s and `jitter` to 250 ms
/// (see [`RetryAfterOr::max_hint`] and [`RetryAfterOr::jitter`]).
///
/// The cap protects against a hostile or buggy hint parking the caller for hours; the
/// jitter keeps clients that all received the same hint from returning in the same
/// instant. Feedback ([`Backoff::observe`]) is forwarded to the fallback, so an
/// [`adaptive`](super::adaptive()) fallback keeps learning from calls that were answered
/// with hints.
///
/// ```
/// use redress::backoff::{Backoff, BackoffContext, equal_jitter, retry_after_or};
/// use redress::ErrorClass;
/// use std::time::Duration;
///
/// let s = retry_after_or(equal_jitter(Duration::from_millis(100), Duration::from_secs(10)))
///     .jitter(Duration::ZERO);
/// let ctx = BackoffContext::new(1, ErrorClass::RateLimit).with_retry_after(Duration::from_secs(3));
/// assert_eq!(s.delay(&ctx, &mut redress::rng::seeded(0)), Duration::from_secs(3));
/// ```
pub const fn retry_after_or<B: Backoff>(fallback: B) -> RetryAfterOr<B> {
    RetryAfterOr {
        fallback,
        max_hint: DEFAULT_MAX_HINT,
        jitter: DEFAULT_HINT_JITTER,
    }
}

impl<B: Backoff> RetryAfterOr<B> {
    /// The same strategy capping hints at `max_hint` (greater than zero; default 60 s).
    #[must_use]
    pub fn max_hint(mut self, max_hint: Duration) -> Self {
        self.max_hint = max_hint;
        self
    }

    /// The same strategy adding up to `jitter` to a capped hint (default 250 ms; zero
    /// sleeps exactly the hint).
    #[must_use]
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }
}

impl<B: Backoff> Backoff for RetryAfterOr<B> {
    fn delay(&self, ctx: &BackoffContext, rng: &mut dyn Rng) -> Duration {
        match ctx.retry_after {
            Some(hint) => hint.min(self.max_hint).saturating_add(uniform_duration(
                rng,
                Duration::ZERO,
                self.jitter,
            )),
            // A custom fallback may overshoot its own maximum; clamping here keeps this
            // strategy's promise without relying on the machine.
            None => self.fallback.delay(ctx, rng).min(self.fallback.max_delay()),
        }
    }

    fn max_delay(&self) -> Duration {
        self.max_hint
            .saturating_add(self.jitter)
            .max(self.fallback.max_delay())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        ensure(
            self.max_hint > Duration::ZERO,
            "max_hint",
            self.max_hint,
            "must be greater than zero",
        )?;
        ensure(
            self.max_hint.checked_add(self.jitter).is_some(),
            "jitter",
            self.jitter,
            "`max_hint + jitter` must not overflow a duration",
        )?;
        self.fallback.validate().map_err(|e| e.within("fallback"))
    }

    fn wants_feedback(&self) -> bool {
        self.fallback.wants_feedback()
    }

    fn observe(&self, now: Instant, failed: bool) {
        self.fallback.observe(now, failed);
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "retry_after_or(max_hint={:?}, jitter={:?}, fallback=",
            self.max_hint, self.jitter
        )?;
        self.fallback.describe(f)?;
        f.write_str(")")
    }
}

// ---------------------------------------------------------------------------------------
// From a function
// ---------------------------------------------------------------------------------------

/// A strategy from a function of the context and the injected generator. Built by
/// [`from_fn`].
#[derive(Clone, Copy)]
pub struct FromFn<F> {
    f: F,
}

/// A strategy computing `f(ctx, rng)`.
///
/// For closures that need randomness: drawing from `rng` (rather than a generator of their
/// own) keeps seeded runs reproducible. Closures of the context alone are strategies
/// already and need no wrapper. The result is unbounded ([`Backoff::max_delay`] is
/// [`Duration::MAX`]) unless the closure bounds it.
///
/// ```
/// use redress::backoff::{Backoff, BackoffContext, from_fn};
/// use redress::rng::{Rng, uniform_duration};
/// use redress::ErrorClass;
/// use std::time::Duration;
///
/// let s = from_fn(|ctx: &BackoffContext, rng: &mut dyn Rng| {
///     let top = Duration::from_millis(10) * ctx.attempt.min(100);
///     uniform_duration(rng, Duration::ZERO, top)
/// });
/// let d = s.delay(&BackoffContext::new(3, ErrorClass::Transient), &mut redress::rng::seeded(1));
/// assert!(d <= Duration::from_millis(30));
/// ```
pub const fn from_fn<F>(f: F) -> FromFn<F>
where
    F: Fn(&BackoffContext, &mut dyn Rng) -> Duration + Send + Sync,
{
    FromFn { f }
}

impl<F> fmt::Debug for FromFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FromFn").finish_non_exhaustive()
    }
}

impl<F> Backoff for FromFn<F>
where
    F: Fn(&BackoffContext, &mut dyn Rng) -> Duration + Send + Sync,
{
    fn delay(&self, ctx: &BackoffContext, rng: &mut dyn Rng) -> Duration {
        (self.f)(ctx, rng)
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("from_fn")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::backoff::{Describe, adaptive};
    use crate::class::ErrorClass;
    use crate::rng::seeded;
    use proptest::prelude::{
        Just, Strategy, any, prop_assert, prop_assert_eq, prop_oneof, proptest,
    };

    const MS: Duration = Duration::from_millis(1);

    fn ctx(n: u32) -> BackoffContext {
        BackoffContext::new(n, ErrorClass::Transient)
    }

    fn draw(s: &dyn Backoff, c: &BackoffContext, rng: &mut dyn Rng) -> Duration {
        s.delay(c, rng)
    }

    fn describe(s: &dyn Backoff) -> String {
        Describe(s).to_string()
    }

    fn field(r: Result<(), ConfigError>) -> String {
        r.unwrap_err().field.into_owned()
    }

    // --- deterministic values ---

    #[test]
    fn exponential_doubles_from_base_and_caps_at_max() {
        let s = exponential(100 * MS, Duration::from_secs(1));
        let mut r = seeded(42);
        let got: Vec<_> = [0, 1, 2, 3, 4, 5, 6, 64, 200, u32::MAX]
            .into_iter()
            .map(|n| draw(&s, &ctx(n), &mut r))
            .collect();
        let ms = |v: u64| Duration::from_millis(v);
        assert_eq!(
            got,
            [
                ms(100),
                ms(100),
                ms(200),
                ms(400),
                ms(800),
                ms(1000),
                ms(1000),
                ms(1000),
                ms(1000),
                ms(1000)
            ]
        );
        assert_eq!(s.max_delay(), Duration::from_secs(1));
    }

    #[test]
    fn exponential_factor_changes_the_growth_rate() {
        let s = exponential(100 * MS, Duration::from_secs(10)).factor(3.0);
        let mut r = seeded(42);
        let close = |d: Duration, want: Duration| {
            let diff = d.abs_diff(want);
            assert!(diff <= Duration::from_nanos(1), "{d:?} != {want:?}");
        };
        close(draw(&s, &ctx(1), &mut r), 100 * MS);
        close(draw(&s, &ctx(2), &mut r), 300 * MS);
        close(draw(&s, &ctx(3), &mut r), 900 * MS);
        assert_eq!(draw(&s, &ctx(30), &mut r), Duration::from_secs(10));
        let flat = exponential(100 * MS, Duration::from_secs(10)).factor(1.0);
        for n in [1, 2, 50, u32::MAX] {
            close(draw(&flat, &ctx(n), &mut r), 100 * MS);
        }
    }

    #[test]
    fn exponential_with_garbage_factor_stays_bounded() {
        let mut r = seeded(42);
        for f in [f64::NAN, f64::INFINITY, -1.0, 0.0, 0.5] {
            let s = exponential(100 * MS, Duration::from_secs(1)).factor(f);
            for n in [0, 1, 2, 10, u32::MAX] {
                assert!(draw(&s, &ctx(n), &mut r) <= s.max_delay());
            }
        }
    }

    #[test]
    fn constant_always_returns_its_duration() {
        let mut r = seeded(42);
        for d in [Duration::ZERO, 5 * MS, Duration::MAX] {
            let s = constant(d);
            for n in [0, 1, 9, u32::MAX] {
                let c = ctx(n)
                    .with_prev_sleep(Duration::MAX)
                    .with_retry_after(Duration::from_secs(1));
                assert_eq!(draw(&s, &c, &mut r), d);
            }
            assert_eq!(s.max_delay(), d);
            assert_eq!(s.validate(), Ok(()));
        }
    }

    #[test]
    fn mul_pow2_is_exact_and_saturates() {
        let cap = Duration::MAX;
        assert_eq!(mul_pow2(3 * MS, 0, cap), 3 * MS);
        assert_eq!(mul_pow2(3 * MS, 10, cap), 3072 * MS);
        assert_eq!(
            mul_pow2(Duration::from_nanos(1), 64, cap),
            Duration::from_nanos(1 << 63) * 2
        );
        assert_eq!(mul_pow2(Duration::from_nanos(1), 127, cap), cap);
        assert_eq!(mul_pow2(Duration::from_nanos(1), 128, cap), cap);
        assert_eq!(mul_pow2(Duration::ZERO, u32::MAX, cap), Duration::ZERO);
        assert_eq!(mul_pow2(Duration::MAX, 1, 7 * MS), 7 * MS);
        assert_eq!(mul_pow2(Duration::MAX, 0, Duration::MAX), Duration::MAX);
    }

    // --- jitter bounds over seeded draws ---

    #[test]
    fn equal_jitter_stays_in_the_upper_half_of_its_cap() {
        let s = equal_jitter(100 * MS, Duration::from_secs(2));
        let mut r = seeded(42);
        for (n, cap) in [
            (0, 100),
            (1, 200),
            (2, 400),
            (4, 1600),
            (5, 2000),
            (99, 2000),
        ] {
            let cap = cap * MS;
            let (mut low, mut high) = (false, false);
            for _ in 0..1000 {
                let d = draw(&s, &ctx(n), &mut r);
                assert!(
                    d >= cap / 2 && d <= cap,
                    "n={n}: {d:?} outside [{:?}, {cap:?}]",
                    cap / 2
                );
                low |= d < cap * 3 / 4;
                high |= d > cap * 3 / 4;
            }
            assert!(low && high, "draws for n={n} are not spread");
        }
    }

    #[test]
    fn full_jitter_stays_below_its_cap() {
        let s = full_jitter(100 * MS, Duration::from_secs(2));
        let mut r = seeded(42);
        for (n, cap) in [
            (0, 100),
            (1, 100),
            (2, 200),
            (3, 400),
            (5, 1600),
            (6, 2000),
            (u32::MAX, 2000),
        ] {
            let cap = cap * MS;
            let mut below_half = false;
            for _ in 0..1000 {
                let d = draw(&s, &ctx(n), &mut r);
                assert!(d <= cap, "n={n}: {d:?} > {cap:?}");
                below_half |= d < cap / 2;
            }
            assert!(below_half);
        }
    }

    #[test]
    fn decorrelated_jitter_draws_between_base_and_three_times_prev() {
        let s = decorrelated_jitter(100 * MS, Duration::from_secs(2));
        let mut r = seeded(42);
        for _ in 0..1000 {
            // No previous sleep, or a zero one, counts as base.
            for c in [ctx(1), ctx(1).with_prev_sleep(Duration::ZERO)] {
                let d = draw(&s, &c, &mut r);
                assert!(d >= 100 * MS && d <= 300 * MS, "{d:?}");
            }
            let d = draw(&s, &ctx(3).with_prev_sleep(400 * MS), &mut r);
            assert!(d >= 100 * MS && d <= 1200 * MS, "{d:?}");
            let d = draw(&s, &ctx(3).with_prev_sleep(Duration::MAX), &mut r);
            assert!(d >= 100 * MS && d <= Duration::from_secs(2), "{d:?}");
        }
        // A previous sleep below base/3 leaves nothing to draw from: the delay is base.
        assert_eq!(draw(&s, &ctx(2).with_prev_sleep(MS), &mut r), 100 * MS);
    }

    #[test]
    fn decorrelated_jitter_chains_through_previous_sleeps() {
        let s = decorrelated_jitter(10 * MS, Duration::from_secs(1));
        let mut r = seeded(42);
        let mut prev = None;
        let mut reached_cap_region = false;
        for n in 1..200 {
            let mut c = ctx(n);
            c.prev_sleep = prev;
            let d = draw(&s, &c, &mut r);
            let hi = prev
                .unwrap_or(10 * MS)
                .saturating_mul(3)
                .min(Duration::from_secs(1));
            assert!(d >= 10 * MS && d <= hi.max(10 * MS));
            reached_cap_region |= d > Duration::from_millis(500);
            prev = Some(d);
        }
        assert!(reached_cap_region);
    }

    #[test]
    fn token_backoff_grows_by_half_and_draws_in_the_upper_half() {
        let s = token_backoff(100 * MS, Duration::from_secs(1));
        let mut r = seeded(42);
        // cap = min(1s, 100ms · 1.5ⁿ)
        for (n, cap_us) in [
            (0, 100_000),
            (1, 150_000),
            (2, 225_000),
            (3, 337_500),
            (6, 1_000_000),
        ] {
            let cap = Duration::from_micros(cap_us);
            for _ in 0..1000 {
                let d = draw(&s, &ctx(n), &mut r);
                assert!(d >= cap / 2 && d <= cap, "n={n}: {d:?}");
            }
        }
        assert_eq!(s.max_delay(), Duration::from_secs(1));
    }

    #[test]
    fn same_seed_gives_same_delays() {
        let s = equal_jitter(10 * MS, Duration::from_secs(5));
        let run = |seed| {
            let mut r = seeded(seed);
            (1..20)
                .map(|n| draw(&s, &ctx(n), &mut r))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
    }

    // --- retry-after ---

    #[test]
    fn retry_after_hint_is_capped_and_jittered() {
        let s = retry_after_or(constant(7 * MS));
        let mut r = seeded(42);
        let jitter = Duration::from_millis(250);
        for _ in 0..1000 {
            let d = draw(&s, &ctx(1).with_retry_after(Duration::from_secs(2)), &mut r);
            assert!(d >= Duration::from_secs(2) && d <= Duration::from_secs(2) + jitter);
            let d = draw(
                &s,
                &ctx(1).with_retry_after(Duration::from_secs(600)),
                &mut r,
            );
            assert!(d >= Duration::from_secs(60) && d <= Duration::from_secs(60) + jitter);
            let d = draw(&s, &ctx(1).with_retry_after(Duration::MAX), &mut r);
            assert!(d <= s.max_delay());
        }
        assert_eq!(s.max_delay(), Duration::from_secs(60) + jitter);

        let exact = retry_after_or(constant(7 * MS))
            .max_hint(Duration::from_secs(5))
            .jitter(Duration::ZERO);
        assert_eq!(
            draw(
                &exact,
                &ctx(1).with_retry_after(Duration::from_secs(3)),
                &mut r
            ),
            Duration::from_secs(3)
        );
        assert_eq!(
            draw(
                &exact,
                &ctx(1).with_retry_after(Duration::from_secs(30)),
                &mut r
            ),
            Duration::from_secs(5)
        );
        assert_eq!(
            draw(&exact, &ctx(1).with_retry_after(Duration::ZERO), &mut r),
            Duration::ZERO
        );
    }

    #[test]
    fn retry_after_without_hint_uses_the_fallback() {
        let s = retry_after_or(exponential(100 * MS, Duration::from_secs(1)));
        let mut r = seeded(42);
        assert_eq!(draw(&s, &ctx(3), &mut r), 400 * MS);
        // A fallback with a larger maximum than the hint path raises the strategy's maximum.
        let big = retry_after_or(constant(Duration::from_secs(600)));
        assert_eq!(big.max_delay(), Duration::from_secs(600));
        // An unbounded custom fallback is clamped to its own maximum (here: unbounded).
        let wild = retry_after_or(|_: &BackoffContext| Duration::MAX);
        assert_eq!(draw(&wild, &ctx(1), &mut r), Duration::MAX);
        assert_eq!(wild.max_delay(), Duration::MAX);
    }

    #[test]
    fn retry_after_forwards_feedback_to_the_fallback() {
        let s = retry_after_or(adaptive(constant(100 * MS)));
        assert!(s.wants_feedback());
        assert!(!retry_after_or(constant(MS)).wants_feedback());
        let now = Instant::from_secs(10);
        for _ in 0..20 {
            s.observe(now, true);
        }
        let mut r = seeded(42);
        // All failures: the adaptive fallback runs at its maximum multiplier (5).
        assert_eq!(draw(&s, &ctx(2).at(now), &mut r), 500 * MS);
        // A hint still wins over the learned multiplier.
        let hinted = draw(
            &s,
            &ctx(2).at(now).with_retry_after(Duration::from_secs(1)),
            &mut r,
        );
        assert!(hinted >= Duration::from_secs(1) && hinted <= Duration::from_millis(1250));
    }

    // --- from_fn ---

    #[test]
    fn from_fn_sees_context_and_generator() {
        let s = from_fn(|c: &BackoffContext, rng: &mut dyn Rng| {
            uniform_duration(rng, MS * c.attempt, MS * c.attempt)
        });
        let mut r = seeded(42);
        assert_eq!(draw(&s, &ctx(7), &mut r), 7 * MS);
        assert_eq!(s.max_delay(), Duration::MAX);
        assert_eq!(describe(&s), "from_fn");
        assert_eq!(format!("{s:?}"), "FromFn { .. }");
        assert_eq!(s.validate(), Ok(()));
        assert!(!s.wants_feedback());
    }

    // --- validation ---

    #[test]
    fn base_must_be_positive() {
        let z = Duration::ZERO;
        let max = Duration::from_secs(1);
        assert_eq!(field(decorrelated_jitter(z, max).validate()), "base");
        assert_eq!(field(equal_jitter(z, max).validate()), "base");
        assert_eq!(field(full_jitter(z, max).validate()), "base");
        assert_eq!(field(exponential(z, max).validate()), "base");
        assert_eq!(field(token_backoff(z, max).validate()), "base");
    }

    #[test]
    fn max_must_be_at_least_base() {
        let base = Duration::from_secs(2);
        let max = Duration::from_secs(1);
        assert_eq!(field(decorrelated_jitter(base, max).validate()), "max");
        assert_eq!(field(equal_jitter(base, max).validate()), "max");
        assert_eq!(field(full_jitter(base, max).validate()), "max");
        assert_eq!(field(exponential(base, max).validate()), "max");
        assert_eq!(field(token_backoff(base, max).validate()), "max");
        // max == base is a legal (flat) configuration.
        assert_eq!(equal_jitter(base, base).validate(), Ok(()));
    }

    #[test]
    fn exponential_factor_must_be_finite_and_at_least_one() {
        let s = exponential(MS, Duration::from_secs(1));
        for bad in [0.5, 0.0, -2.0, f64::NAN, f64::INFINITY] {
            let e = s.factor(bad).validate().unwrap_err();
            assert_eq!(e.field, "factor");
            assert!(e.rule.contains("at least 1"));
        }
        assert_eq!(s.factor(1.0).validate(), Ok(()));
        assert_eq!(s.factor(1.5).validate(), Ok(()));
    }

    #[test]
    fn retry_after_rules_and_nested_fallback_errors() {
        let ok = retry_after_or(equal_jitter(MS, Duration::from_secs(1)));
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!(field(ok.max_hint(Duration::ZERO).validate()), "max_hint");
        assert_eq!(
            field(ok.max_hint(Duration::MAX).jitter(MS).validate()),
            "jitter"
        );
        assert_eq!(
            ok.max_hint(Duration::MAX).jitter(Duration::ZERO).validate(),
            Ok(())
        );
        let nested = retry_after_or(equal_jitter(Duration::ZERO, Duration::from_secs(1)));
        assert_eq!(field(nested.validate()), "fallback.base");
        let deeper = retry_after_or(adaptive(exponential(MS, MS).factor(0.1)));
        assert_eq!(field(deeper.validate()), "fallback.fallback.factor");
    }

    #[test]
    fn defaults_match_the_documentation() {
        let b = Duration::from_millis(250);
        let m = Duration::from_secs(30);
        assert_eq!(DecorrelatedJitter::default(), decorrelated_jitter(b, m));
        assert_eq!(EqualJitter::default(), equal_jitter(b, m));
        assert_eq!(FullJitter::default(), full_jitter(b, m));
        assert_eq!(Exponential::default(), exponential(b, m));
        assert_eq!(
            TokenBackoff::default(),
            token_backoff(b, Duration::from_secs(20))
        );
        for s in [
            &DecorrelatedJitter::default() as &dyn Backoff,
            &EqualJitter::default(),
            &FullJitter::default(),
            &Exponential::default(),
            &TokenBackoff::default(),
        ] {
            assert_eq!(s.validate(), Ok(()));
        }
    }

    #[test]
    fn describe_shows_parameters() {
        let b = 250 * MS;
        let m = Duration::from_secs(30);
        assert_eq!(
            describe(&equal_jitter(b, m)),
            "equal_jitter(base=250ms, max=30s)"
        );
        assert_eq!(
            describe(&full_jitter(b, m)),
            "full_jitter(base=250ms, max=30s)"
        );
        assert_eq!(
            describe(&decorrelated_jitter(b, m)),
            "decorrelated_jitter(base=250ms, max=30s)"
        );
        assert_eq!(
            describe(&exponential(b, m).factor(1.5)),
            "exponential(base=250ms, max=30s, factor=1.5)"
        );
        assert_eq!(describe(&constant(b)), "constant(250ms)");
        assert_eq!(
            describe(&TokenBackoff::default()),
            "token_backoff(base=250ms, max=20s)"
        );
        assert_eq!(
            describe(&retry_after_or(constant(b))),
            "retry_after_or(max_hint=60s, jitter=250ms, fallback=constant(250ms))"
        );
    }

    // --- properties ---

    /// Durations biased towards the edges: zero, tiny, ordinary, huge and `MAX`.
    fn any_duration() -> impl Strategy<Value = Duration> {
        prop_oneof![
            Just(Duration::ZERO),
            Just(Duration::MAX),
            (0u64..1_000_000).prop_map(Duration::from_nanos),
            (0u64..3_600_000).prop_map(Duration::from_millis),
            any::<u64>().prop_map(Duration::from_nanos),
            (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
        ]
    }

    fn any_attempt() -> impl Strategy<Value = u32> {
        prop_oneof![Just(0), Just(1), Just(u32::MAX), 0u32..200, any::<u32>()]
    }

    fn any_factor() -> impl Strategy<Value = f64> {
        prop_oneof![Just(2.0), 1.0f64..10.0, any::<f64>()]
    }

    /// Every built-in, with arbitrary (not necessarily valid) parameters.
    fn all_strategies(base: Duration, max: Duration, factor: f64) -> Vec<Box<dyn Backoff>> {
        vec![
            Box::new(decorrelated_jitter(base, max)),
            Box::new(equal_jitter(base, max)),
            Box::new(full_jitter(base, max)),
            Box::new(exponential(base, max)),
            Box::new(exponential(base, max).factor(factor)),
            Box::new(constant(base)),
            Box::new(token_backoff(base, max)),
            Box::new(retry_after_or(equal_jitter(base, max))),
            Box::new(retry_after_or(constant(max)).max_hint(base).jitter(max)),
            Box::new(adaptive(full_jitter(base, max))),
            Box::new(adaptive(exponential(base, max).factor(factor)).multipliers(1.0, factor)),
            Box::new(retry_after_or(adaptive(token_backoff(base, max)))),
        ]
    }

    proptest! {
        #[test]
        fn every_delay_is_within_max_delay(
            base in any_duration(),
            max in any_duration(),
            factor in any_factor(),
            attempt in any_attempt(),
            prev in proptest::option::of(any_duration()),
            hint in proptest::option::of(any_duration()),
            failures in 0usize..30,
            now in any::<u64>(),
            seed in any::<u64>(),
        ) {
            let mut c = ctx(attempt).at(Instant::from_nanos(now));
            c.prev_sleep = prev;
            c.retry_after = hint;
            let mut r = seeded(seed);
            for s in all_strategies(base, max, factor) {
                for i in 0..failures {
                    s.observe(Instant::from_nanos(now), i % 3 != 0);
                }
                let d = s.delay(&c, &mut r);
                prop_assert!(d <= s.max_delay(), "{:?}: {:?} > {:?}", s, d, s.max_delay());
            }
        }

        #[test]
        fn jittered_delays_lie_within_their_formula_bounds(
            base_ms in 1u64..60_000,
            extra_ms in 0u64..3_600_000,
            attempt in any_attempt(),
            prev in proptest::option::of(any_duration()),
            hint in proptest::option::of(any_duration()),
            seed in any::<u64>(),
        ) {
            let base = Duration::from_millis(base_ms);
            let max = base + Duration::from_millis(extra_ms);
            let mut c = ctx(attempt);
            c.prev_sleep = prev;
            let mut r = seeded(seed);

            // Reference caps, computed independently of the implementation.
            let pow2 = |k: u32| -> Duration {
                if k >= 64 {
                    max
                } else {
                    let nanos = base.as_nanos().saturating_mul(1u128 << k);
                    if nanos >= max.as_nanos() { max } else { duration_from_nanos(nanos) }
                }
            };

            let cap = pow2(attempt);
            let d = equal_jitter(base, max).delay(&c, &mut r);
            prop_assert!(d >= cap / 2 && d <= cap, "equal: {:?} vs cap {:?}", d, cap);

            let cap = pow2(attempt.saturating_sub(1));
            let d = full_jitter(base, max).delay(&c, &mut r);
            prop_assert!(d <= cap, "full: {:?} vs cap {:?}", d, cap);

            let d = exponential(base, max).delay(&c, &mut r);
            prop_assert_eq!(d, cap);

            let p = prev.filter(|p| !p.is_zero()).unwrap_or(base);
            let d = decorrelated_jitter(base, max).delay(&c, &mut r);
            prop_assert!(d >= base && d <= p.saturating_mul(3).max(base).min(max),
                "decorrelated: {:?} with prev {:?}", d, p);

            let growth = 1.5f64.powf(f64::from(attempt));
            let cap_secs = (base.as_secs_f64() * growth).min(max.as_secs_f64());
            let d = token_backoff(base, max).delay(&c, &mut r).as_secs_f64();
            let eps = 1e-9 * cap_secs + 1e-9;
            prop_assert!(d >= cap_secs / 2.0 - eps && d <= cap_secs + eps,
                "token: {} vs cap {}", d, cap_secs);

            c.retry_after = hint;
            let s = retry_after_or(constant(max)).jitter(base);
            let d = s.delay(&c, &mut r);
            match hint {
                Some(h) => {
                    let lo = h.min(Duration::from_secs(60));
                    prop_assert!(d >= lo && d <= lo + base, "hint {:?}: {:?}", h, d);
                }
                None => prop_assert_eq!(d, max),
            }
        }
    }
}
