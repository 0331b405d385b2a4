//! Adaptive backoff: stretch another strategy's delays while the dependency keeps failing.
//!
//! The recent failure rate is kept in a ring of [`BUCKETS`] time buckets covering the
//! window, so the state has a fixed size however many calls go through, and counting costs
//! one short lock on failure and feedback paths only. Old buckets are recycled when time
//! reaches them again; an observation dated before the newest one seen is counted as if it
//! happened at that newest time, so a clock that steps back can neither panic nor revive
//! stale counts.

use core::fmt;
use core::time::Duration;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{Backoff, BackoffContext, scale};
use crate::error::{ConfigError, ensure};
use crate::rng::Rng;
use crate::time::{Instant, duration_nanos};

/// How many buckets the window is split into: the rate forgets old outcomes in steps of
/// `window / BUCKETS`.
const BUCKETS: usize = 12;
/// [`BUCKETS`] as the type bucket indices are computed in.
const BUCKETS_U64: u64 = BUCKETS as u64;

const DEFAULT_WINDOW: Duration = Duration::from_secs(60);
const DEFAULT_TARGET_SUCCESS: f64 = 0.9;
const DEFAULT_MIN_MULTIPLIER: f64 = 1.0;
const DEFAULT_MAX_MULTIPLIER: f64 = 5.0;

/// Outcomes observed during one bucket-wide slice of time.
#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    /// Which slice (`now / width`) the counts belong to.
    slice: u64,
    failures: u64,
    total: u64,
}

/// The rolling window: a ring of buckets indexed by time slice.
#[derive(Clone, Copy, Debug, Default)]
struct Window {
    /// The newest slice observed; earlier times are clamped to it.
    latest: u64,
    buckets: [Bucket; BUCKETS],
}

impl Window {
    fn record(&mut self, slice: u64, failed: bool) {
        let slice = slice.max(self.latest);
        self.latest = slice;
        let bucket = &mut self.buckets[ring_index(slice)];
        if bucket.slice != slice {
            *bucket = Bucket {
                slice,
                ..Bucket::default()
            };
        }
        bucket.total = bucket.total.saturating_add(1);
        if failed {
            bucket.failures = bucket.failures.saturating_add(1);
        }
    }

    /// `(failures, total)` over the buckets still inside the window at `slice`.
    fn counts(&self, slice: u64) -> (u64, u64) {
        let slice = slice.max(self.latest);
        self.buckets
            .iter()
            .filter(|b| slice.saturating_sub(b.slice) < BUCKETS_U64)
            .fold((0u64, 0u64), |(f, t), b| {
                (f.saturating_add(b.failures), t.saturating_add(b.total))
            })
    }
}

fn ring_index(slice: u64) -> usize {
    // The remainder is below BUCKETS, so the conversion cannot fail.
    usize::try_from(slice % BUCKETS_U64).unwrap_or(0)
}

/// `v` limited to `[lo, hi]` without `f64::clamp`'s panic on `lo > hi` or NaN bounds
/// (possible before validation); a NaN `v` gives `lo`.
fn clamp_f64(v: f64, lo: f64, hi: f64) -> f64 {
    v.max(lo).min(hi)
}

/// A strategy that multiplies its fallback's delays by up to `max_multiplier` while the
/// recent failure rate exceeds a target. Built by [`adaptive`].
pub struct Adaptive<B> {
    fallback: B,
    window: Duration,
    target_success: f64,
    min_multiplier: f64,
    max_multiplier: f64,
    state: Mutex<Window>,
}

/// Adaptive backoff: `fallback`'s delay times a multiplier `m`, at most
/// `fallback.max_delay() · max_multiplier`.
///
/// `m` comes from the failure rate `fr = failures / outcomes` observed (through
/// [`Backoff::observe`]) over the last `window` (default 60 s). With `tf = 1 −
/// target_success` (default target 0.9): no observations or `fr ≤ tf` give
/// `m = min_multiplier`; otherwise `m = min + (fr − tf)/(1 − tf) · (max − min)`, reaching
/// `max_multiplier` when every outcome failed. Multipliers default to 1 and 5.
///
/// The strategy is shared by every call of a policy, so the pressure one call sees slows
/// the others down too. To honour `Retry-After` hints exactly while still learning, wrap
/// it the other way round: `retry_after_or(adaptive(…))` forwards feedback to it.
///
/// ```
/// use redress::backoff::{Backoff, BackoffContext, adaptive, constant};
/// use redress::{ErrorClass, Instant};
/// use std::time::Duration;
///
/// let s = adaptive(constant(Duration::from_millis(100)));
/// let now = Instant::from_secs(1);
/// for _ in 0..10 {
///     s.observe(now, true);
/// }
/// let ctx = BackoffContext::new(1, ErrorClass::ServerError).at(now);
/// assert_eq!(s.delay(&ctx, &mut redress::rng::seeded(0)), Duration::from_millis(500));
/// ```
pub fn adaptive<B: Backoff>(fallback: B) -> Adaptive<B> {
    Adaptive {
        fallback,
        window: DEFAULT_WINDOW,
        target_success: DEFAULT_TARGET_SUCCESS,
        min_multiplier: DEFAULT_MIN_MULTIPLIER,
        max_multiplier: DEFAULT_MAX_MULTIPLIER,
        state: Mutex::new(Window::default()),
    }
}

impl<B: Backoff> Adaptive<B> {
    /// The same strategy measuring the failure rate over `window` (greater than zero;
    /// default 60 s).
    #[must_use]
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// The same strategy aiming at `target_success`, the share of successful outcomes
    /// (in `(0, 1]`; default 0.9) at or above which the multiplier stays at its minimum.
    #[must_use]
    pub fn target_success(mut self, target_success: f64) -> Self {
        self.target_success = target_success;
        self
    }

    /// The same strategy with multipliers between `min` (at least 1) and `max` (at least
    /// `min`); defaults 1 and 5.
    #[must_use]
    pub fn multipliers(mut self, min: f64, max: f64) -> Self {
        self.min_multiplier = min;
        self.max_multiplier = max;
        self
    }

    /// The multiplier this strategy would apply at `now`, from the outcomes observed in
    /// the window ending then.
    pub fn multiplier(&self, now: Instant) -> f64 {
        let (failures, total) = self.lock().counts(self.slice(now));
        let (lo, hi) = (self.min_multiplier, self.max_multiplier);
        if total == 0 {
            return lo;
        }
        // Computed on the success rate: `fr ≤ 1 − target` is `sr ≥ target`, and
        // `(fr − tf)/(1 − tf)` is `(target − sr)/target`, without the rounding of `1 − 0.9`
        // that would count a rate exactly at the target as above it. Counts beyond 2⁵³
        // lose precision as f64, which a rate does not mind.
        let successes = total.saturating_sub(failures);
        let sr = successes as f64 / total as f64;
        let target = self.target_success;
        if sr >= target {
            return lo;
        }
        let frac = (target - sr) / target;
        clamp_f64(lo + frac * (hi - lo), lo, hi)
    }

    /// The time slice `now` falls into.
    fn slice(&self, now: Instant) -> u64 {
        let width = (duration_nanos(self.window) / BUCKETS_U64).max(1);
        now.as_nanos() / width
    }

    fn lock(&self) -> MutexGuard<'_, Window> {
        // The window holds plain counters that are valid at every step, so a panic
        // elsewhere while the lock was held cannot leave it inconsistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<B: Backoff> Backoff for Adaptive<B> {
    fn delay(&self, ctx: &BackoffContext, rng: &mut dyn Rng) -> Duration {
        let base = self.fallback.delay(ctx, rng).min(self.fallback.max_delay());
        let m = self.multiplier(ctx.now);
        let cap = self.max_delay();
        if m == 1.0 {
            // The common healthy case; skip the float round trip so delays stay exact.
            base.min(cap)
        } else {
            scale(base, m, cap)
        }
    }

    fn max_delay(&self) -> Duration {
        let fallback_max = self.fallback.max_delay();
        if self.max_multiplier == 1.0 {
            fallback_max
        } else {
            scale(fallback_max, self.max_multiplier, Duration::MAX)
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        ensure(
            self.window > Duration::ZERO,
            "window",
            self.window,
            "must be greater than zero",
        )?;
        ensure(
            self.target_success.is_finite()
                && self.target_success > 0.0
                && self.target_success <= 1.0,
            "target_success",
            self.target_success,
            "must be greater than 0 and at most 1",
        )?;
        ensure(
            self.min_multiplier.is_finite() && self.min_multiplier >= 1.0,
            "min_multiplier",
            self.min_multiplier,
            "must be finite and at least 1",
        )?;
        ensure(
            self.max_multiplier.is_finite() && self.max_multiplier >= self.min_multiplier,
            "max_multiplier",
            self.max_multiplier,
            "must be finite and at least `min_multiplier`",
        )?;
        self.fallback.validate().map_err(|e| e.within("fallback"))
    }

    fn wants_feedback(&self) -> bool {
        true
    }

    fn observe(&self, now: Instant, failed: bool) {
        let slice = self.slice(now);
        self.lock().record(slice, failed);
        // The fallback may learn too (for example a nested adaptive strategy).
        if self.fallback.wants_feedback() {
            self.fallback.observe(now, failed);
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "adaptive(window={:?}, target_success={:?}, multipliers={:?}..={:?}, fallback=",
            self.window, self.target_success, self.min_multiplier, self.max_multiplier
        )?;
        self.fallback.describe(f)?;
        f.write_str(")")
    }
}

impl<B: fmt::Debug> fmt::Debug for Adaptive<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Adaptive")
            .field("fallback", &self.fallback)
            .field("window", &self.window)
            .field("target_success", &self.target_success)
            .field("min_multiplier", &self.min_multiplier)
            .field("max_multiplier", &self.max_multiplier)
            .finish_non_exhaustive()
    }
}

impl<B: Clone> Clone for Adaptive<B> {
    /// A copy with the same configuration and a snapshot of the observed outcomes; the two
    /// learn independently from then on.
    fn clone(&self) -> Self {
        let snapshot = *self.state.lock().unwrap_or_else(PoisonError::into_inner);
        Self {
            fallback: self.fallback.clone(),
            window: self.window,
            target_success: self.target_success,
            min_multiplier: self.min_multiplier,
            max_multiplier: self.max_multiplier,
            state: Mutex::new(snapshot),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::backoff::{Describe, constant, equal_jitter, exponential};
    use crate::class::ErrorClass;
    use crate::rng::seeded;
    use proptest::prelude::{Just, any, prop_assert, prop_assert_eq, prop_oneof, proptest};

    const MS: Duration = Duration::from_millis(1);

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    fn feed(s: &dyn Backoff, now: Instant, failures: usize, successes: usize) {
        for _ in 0..failures {
            s.observe(now, true);
        }
        for _ in 0..successes {
            s.observe(now, false);
        }
    }

    #[test]
    fn adaptive_is_send_sync_and_debug() {
        fn assert_traits<T: Send + Sync + fmt::Debug>() {}
        assert_traits::<Adaptive<crate::backoff::Constant>>();
        let s = adaptive(constant(MS));
        let dbg = format!("{s:?}");
        assert!(dbg.starts_with("Adaptive { fallback: Constant"), "{dbg}");
    }

    #[test]
    fn no_observations_give_the_min_multiplier() {
        let s = adaptive(constant(MS)).multipliers(2.0, 4.0);
        assert_eq!(s.multiplier(Instant::ZERO), 2.0);
        assert_eq!(s.multiplier(Instant::MAX), 2.0);
    }

    #[test]
    fn failure_rate_at_or_below_target_keeps_the_min_multiplier() {
        let s = adaptive(constant(MS));
        let now = Instant::from_secs(5);
        feed(&s, now, 1, 9); // fr = 0.1 = 1 − target
        assert_eq!(s.multiplier(now), 1.0);
        feed(&s, now, 0, 90); // fr = 0.01
        assert_eq!(s.multiplier(now), 1.0);
    }

    #[test]
    fn failure_rate_above_target_interpolates_linearly() {
        // tf = 0.1: fr = 0.55 is halfway from tf to 1, so m is halfway from 1 to 5.
        let s = adaptive(constant(MS));
        let now = Instant::from_secs(5);
        feed(&s, now, 11, 9);
        assert!(close(s.multiplier(now), 3.0), "{}", s.multiplier(now));

        let all = adaptive(constant(MS)).multipliers(1.5, 3.0);
        feed(&all, now, 4, 0);
        assert_eq!(all.multiplier(now), 3.0);

        // target_success = 1 tolerates no failure at all.
        let strict = adaptive(constant(MS)).target_success(1.0);
        feed(&strict, now, 1, 3);
        assert!(
            close(strict.multiplier(now), 2.0),
            "{}",
            strict.multiplier(now)
        );
    }

    #[test]
    fn delay_is_the_fallback_times_the_multiplier() {
        let s = adaptive(constant(100 * MS));
        let now = Instant::from_secs(1);
        let ctx = BackoffContext::new(2, ErrorClass::ServerError).at(now);
        let mut r = seeded(42);
        assert_eq!(s.delay(&ctx, &mut r), 100 * MS);
        feed(&s, now, 11, 9);
        let d = s.delay(&ctx, &mut r);
        assert!(d.abs_diff(300 * MS) <= Duration::from_nanos(1), "{d:?}");
        let all = adaptive(constant(100 * MS));
        feed(&all, now, 3, 0);
        assert_eq!(all.delay(&ctx, &mut r), 500 * MS);
        assert_eq!(all.max_delay(), 500 * MS);
    }

    #[test]
    fn delay_follows_a_growing_fallback_and_respects_the_scaled_cap() {
        let s = adaptive(exponential(100 * MS, Duration::from_secs(1))).multipliers(1.0, 3.0);
        let now = Instant::from_secs(1);
        feed(&s, now, 10, 0);
        let mut r = seeded(42);
        let at = |n| BackoffContext::new(n, ErrorClass::Transient).at(now);
        assert_eq!(s.delay(&at(1), &mut r), 300 * MS);
        assert_eq!(s.delay(&at(2), &mut r), 600 * MS);
        assert_eq!(s.delay(&at(40), &mut r), Duration::from_secs(3));
        assert_eq!(s.max_delay(), Duration::from_secs(3));
    }

    #[test]
    fn jittered_fallback_draws_are_scaled_within_bounds() {
        let s = adaptive(equal_jitter(100 * MS, Duration::from_secs(10)));
        let now = Instant::from_secs(1);
        feed(&s, now, 5, 0);
        let mut r = seeded(42);
        let ctx = BackoffContext::new(1, ErrorClass::Transient).at(now);
        for _ in 0..1000 {
            let d = s.delay(&ctx, &mut r);
            // fallback in [100ms, 200ms], times 5.
            assert!(d >= 500 * MS && d <= 1000 * MS, "{d:?}");
        }
    }

    #[test]
    fn old_observations_age_out_of_the_window() {
        let window = Duration::from_secs(12);
        let s = adaptive(constant(MS)).window(window);
        let t0 = Instant::from_secs(100);
        feed(&s, t0, 10, 0);
        assert_eq!(s.multiplier(t0), 5.0);
        // Still inside the window.
        assert_eq!(s.multiplier(t0 + Duration::from_secs(10)), 5.0);
        // A full window later the bucket is out.
        assert_eq!(s.multiplier(t0 + window), 1.0);
        // New outcomes in a reused bucket do not inherit the old counts.
        let later = t0 + window * 2;
        feed(&s, later, 0, 10);
        assert_eq!(s.multiplier(later), 1.0);
        feed(&s, later, 2, 0);
        // 2 failures out of 12: fr ≈ 0.167 > 0.1.
        let m = s.multiplier(later);
        assert!(m > 1.0 && m < 2.0, "{m}");
    }

    #[test]
    fn times_going_backwards_are_clamped_to_the_newest() {
        let s = adaptive(constant(MS));
        let late = Instant::from_secs(1_000);
        feed(&s, late, 0, 9);
        // An observation from long ago counts at the newest time instead of being lost
        // or panicking.
        feed(&s, Instant::ZERO, 9, 0);
        assert!(close(s.multiplier(late), 1.0 + (0.5 - 0.1) / 0.9 * 4.0));
        // Asking about an earlier time reports the newest window.
        assert_eq!(s.multiplier(Instant::ZERO), s.multiplier(late));
        feed(&s, Instant::MAX, 1, 0);
        feed(&s, Instant::ZERO, 1, 0);
        assert_eq!(s.multiplier(Instant::MAX), 5.0);
    }

    #[test]
    fn tiny_and_huge_windows_do_not_panic() {
        for w in [
            Duration::from_nanos(1),
            Duration::from_nanos(11),
            Duration::MAX,
        ] {
            let s = adaptive(constant(MS)).window(w);
            for t in [0, 1, 12, u64::MAX] {
                s.observe(Instant::from_nanos(t), true);
                let m = s.multiplier(Instant::from_nanos(t));
                assert!((1.0..=5.0).contains(&m));
            }
        }
    }

    #[test]
    fn a_poisoned_lock_is_still_usable() {
        let s = adaptive(constant(MS));
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _guard = s.state.lock().unwrap();
            panic!("poison the lock");
        }));
        assert!(s.state.is_poisoned());
        s.observe(Instant::ZERO, true);
        assert_eq!(s.multiplier(Instant::ZERO), 5.0);
        let _copy = s.clone();
    }

    #[test]
    fn clones_start_from_a_snapshot_and_learn_independently() {
        let s = adaptive(constant(MS));
        let now = Instant::from_secs(1);
        feed(&s, now, 10, 0);
        let c = s.clone();
        assert_eq!(c.multiplier(now), 5.0);
        feed(&c, now, 0, 1000);
        assert_eq!(c.multiplier(now), 1.0);
        assert_eq!(s.multiplier(now), 5.0);
    }

    #[test]
    fn feedback_reaches_a_learning_fallback() {
        let s = adaptive(adaptive(constant(MS)).multipliers(1.0, 2.0));
        assert!(s.wants_feedback());
        let now = Instant::from_secs(1);
        feed(&s, now, 10, 0);
        assert_eq!(s.fallback.multiplier(now), 2.0);
        assert_eq!(s.max_delay(), 10 * MS);
    }

    #[test]
    fn validation_names_the_offending_field() {
        let field = |s: Adaptive<crate::backoff::Constant>| s.validate().unwrap_err().field;
        let ok = || adaptive(constant(MS));
        assert_eq!(ok().validate(), Ok(()));
        assert_eq!(field(ok().window(Duration::ZERO)), "window");
        for bad in [0.0, -0.1, 1.01, f64::NAN, f64::INFINITY] {
            assert_eq!(field(ok().target_success(bad)), "target_success");
        }
        for bad in [0.99, 0.0, f64::NAN, f64::INFINITY] {
            assert_eq!(field(ok().multipliers(bad, 10.0)), "min_multiplier");
        }
        for bad in [1.5, f64::NAN, f64::INFINITY] {
            assert_eq!(field(ok().multipliers(2.0, bad)), "max_multiplier");
        }
        assert_eq!(ok().multipliers(1.0, 1.0).validate(), Ok(()));
        let nested = adaptive(equal_jitter(Duration::ZERO, MS));
        assert_eq!(nested.validate().unwrap_err().field, "fallback.base");
    }

    #[test]
    fn invalid_settings_never_panic() {
        let now = Instant::from_secs(1);
        let mut r = seeded(42);
        let ctx = BackoffContext::new(1, ErrorClass::Transient).at(now);
        for (ts, lo, hi) in [
            (0.0, 1.0, 5.0),
            (f64::NAN, 1.0, 5.0),
            (2.0, 1.0, 5.0),
            (0.9, 5.0, 1.0),
            (0.9, f64::NAN, f64::NAN),
            (0.9, f64::INFINITY, f64::INFINITY),
            (0.9, -1.0, -1.0),
        ] {
            let s = adaptive(constant(100 * MS))
                .target_success(ts)
                .multipliers(lo, hi);
            feed(&s, now, 3, 1);
            let _ = s.multiplier(now);
            assert!(s.delay(&ctx, &mut r) <= s.max_delay());
        }
    }

    #[test]
    fn describe_shows_parameters_and_fallback() {
        let s = adaptive(constant(100 * MS));
        assert_eq!(
            Describe(&s).to_string(),
            "adaptive(window=60s, target_success=0.9, multipliers=1.0..=5.0, fallback=constant(100ms))"
        );
    }

    proptest! {
        #[test]
        fn adaptive_multiplier_stays_between_min_and_max(
            min in 1.0f64..10.0,
            spread in 0.0f64..10.0,
            target in prop_oneof![Just(1.0), 0.001f64..=1.0],
            window_ms in prop_oneof![Just(1u64), 1u64..10_000_000],
            ops in proptest::collection::vec(
                (prop_oneof![any::<u64>(), 0u64..100_000_000_000], any::<bool>(), any::<u64>()),
                0..200,
            ),
        ) {
            let max = min + spread;
            let s = adaptive(constant(100 * MS))
                .window(Duration::from_millis(window_ms))
                .target_success(target)
                .multipliers(min, max);
            prop_assert_eq!(s.validate(), Ok(()));
            let mut r = seeded(1);
            for (t, failed, query) in ops {
                s.observe(Instant::from_nanos(t), failed);
                let m = s.multiplier(Instant::from_nanos(query));
                prop_assert!(m >= min && m <= max, "{} outside [{}, {}]", m, min, max);
                let ctx = BackoffContext::new(1, ErrorClass::Transient).at(Instant::from_nanos(query));
                let d = s.delay(&ctx, &mut r);
                prop_assert!(d <= s.max_delay());
            }
        }
    }
}
