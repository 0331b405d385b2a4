#![allow(clippy::unwrap_used)]
#![forbid(unsafe_code)]
//! Configuration errors: one test per validation rule of the retry settings, the breaker,
//! the budget and every built-in strategy. Each checks the field (a dotted path for nested
//! strategies), that the value and the rule are filled in, and that the message shows all
//! three.

use std::fmt::Debug;
use std::time::Duration;

use redress::backoff::{
    self, Backoff, adaptive, constant, decorrelated_jitter, equal_jitter, exponential, full_jitter,
    retry_after_or, token_backoff,
};
use redress::breaker::BreakerBuilder;
use redress::budget::BudgetBuilder;
use redress::{Budget, CircuitBreaker, ClassSet, ConfigError, ErrorClass, Policy, Retry};

const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);

/// Checks that `result` is a [`ConfigError`] for `field` with a value and a rule, all three
/// shown by its message; returns the error for further checks.
#[track_caller]
fn rejects<T: Debug>(result: Result<T, ConfigError>, field: &str) -> ConfigError {
    let e = result.expect_err("the configuration must be rejected");
    assert_eq!(e.field, field, "wrong field in: {e}");
    assert!(!e.value.is_empty(), "no value in: {e:?}");
    assert!(!e.rule.is_empty(), "no rule in: {e:?}");
    let shown = e.to_string();
    for part in [&*e.field, &*e.value, &*e.rule] {
        assert!(shown.contains(part), "`{shown}` does not show `{part}`");
    }
    e
}

/// As [`rejects`], also checking the offending value as shown.
#[track_caller]
fn rejects_value<T: Debug>(result: Result<T, ConfigError>, field: &str, value: &str) {
    let e = rejects(result, field);
    assert_eq!(e.value, value, "wrong value in: {e}");
}

/// A default retry builder with `s` as its default strategy.
fn with_strategy(s: impl Backoff + 'static) -> Result<Retry, ConfigError> {
    Retry::builder().strategy(s).build()
}

/// A default retry builder with `s` as the strategy of `class`.
fn with_class_strategy(class: ErrorClass, s: impl Backoff + 'static) -> Result<Retry, ConfigError> {
    Retry::builder().class_strategy(class, s).build()
}

// =======================================================================================
// Retry settings
// =======================================================================================

#[test]
fn max_attempts_must_be_at_least_one() {
    rejects_value(
        Retry::builder()
            .max_attempts(0)
            .max_unknown_attempts(None)
            .build(),
        "max_attempts",
        "0",
    );
}

#[test]
fn max_unknown_attempts_must_be_at_least_one() {
    rejects_value(
        Retry::builder().max_unknown_attempts(Some(0)).build(),
        "max_unknown_attempts",
        "0",
    );
}

#[test]
fn max_unknown_attempts_must_not_exceed_max_attempts() {
    let e = rejects(
        Retry::builder()
            .max_attempts(3)
            .max_unknown_attempts(Some(4))
            .build(),
        "max_unknown_attempts",
    );
    assert_eq!(e.value, "4");
    assert!(e.rule.contains("max_attempts"), "{e}");
    // Equal is fine.
    Retry::builder()
        .max_attempts(3)
        .max_unknown_attempts(Some(3))
        .build()
        .unwrap();
}

#[test]
fn class_cap_must_be_at_least_one() {
    rejects_value(
        Retry::builder()
            .class_max_attempts(ErrorClass::RateLimit, 0)
            .build(),
        "class_max_attempts.rate_limit",
        "0",
    );
}

#[test]
fn class_cap_must_not_exceed_max_attempts() {
    let e = rejects(
        Retry::builder()
            .max_attempts(4)
            .class_max_attempts(ErrorClass::ServerError, 5)
            .build(),
        "class_max_attempts.server_error",
    );
    assert_eq!(e.value, "5");
    assert!(e.rule.contains("max_attempts"), "{e}");
    Retry::builder()
        .max_attempts(4)
        .class_max_attempts(ErrorClass::ServerError, 4)
        .build()
        .unwrap();
}

#[test]
fn deadline_must_be_greater_than_zero() {
    rejects_value(
        Retry::builder().deadline(Duration::ZERO).build(),
        "deadline",
        "0ns",
    );
}

#[test]
fn attempt_timeout_must_be_greater_than_zero() {
    rejects_value(
        Retry::builder().attempt_timeout(Duration::ZERO).build(),
        "attempt_timeout",
        "0ns",
    );
}

#[test]
fn retry_errors_reach_the_policy_builders() {
    let bad = || Retry::builder().deadline(Duration::ZERO);
    rejects(bad().policy(), "deadline");
    rejects(Policy::builder().retry(bad()).build(), "deadline");
    rejects(
        Policy::builder()
            .retry(Retry::builder().strategy(equal_jitter(Duration::ZERO, SEC)))
            .build(),
        "strategy.base",
    );
}

// =======================================================================================
// Strategies, through the retry builder
// =======================================================================================

#[test]
fn decorrelated_jitter_base_must_be_positive() {
    rejects_value(
        with_strategy(decorrelated_jitter(Duration::ZERO, SEC)),
        "strategy.base",
        "0ns",
    );
}

#[test]
fn decorrelated_jitter_max_must_be_at_least_base() {
    rejects_value(
        with_strategy(decorrelated_jitter(SEC, MS)),
        "strategy.max",
        "1ms",
    );
}

#[test]
fn equal_jitter_base_must_be_positive() {
    rejects(
        with_class_strategy(ErrorClass::RateLimit, equal_jitter(Duration::ZERO, SEC)),
        "strategies.rate_limit.base",
    );
}

#[test]
fn equal_jitter_max_must_be_at_least_base() {
    rejects(with_strategy(equal_jitter(SEC, MS)), "strategy.max");
    // max == base is a flat, valid schedule.
    with_strategy(equal_jitter(SEC, SEC)).unwrap();
}

#[test]
fn full_jitter_base_must_be_positive() {
    rejects(
        with_class_strategy(ErrorClass::Transient, full_jitter(Duration::ZERO, SEC)),
        "strategies.transient.base",
    );
}

#[test]
fn full_jitter_max_must_be_at_least_base() {
    rejects(
        with_class_strategy(ErrorClass::ServerError, full_jitter(SEC, MS)),
        "strategies.server_error.max",
    );
}

#[test]
fn exponential_base_must_be_positive() {
    rejects(
        with_strategy(exponential(Duration::ZERO, SEC)),
        "strategy.base",
    );
}

#[test]
fn exponential_max_must_be_at_least_base() {
    rejects(with_strategy(exponential(SEC, MS)), "strategy.max");
}

#[test]
fn exponential_factor_must_be_finite_and_at_least_one() {
    for (bad, shown) in [
        (0.5, "0.5"),
        (0.0, "0.0"),
        (-2.0, "-2.0"),
        (f64::NAN, "NaN"),
        (f64::INFINITY, "inf"),
        (f64::NEG_INFINITY, "-inf"),
    ] {
        rejects_value(
            with_class_strategy(ErrorClass::Concurrency, exponential(MS, SEC).factor(bad)),
            "strategies.concurrency.factor",
            shown,
        );
    }
    with_strategy(exponential(MS, SEC).factor(1.0)).unwrap();
}

#[test]
fn constant_accepts_any_delay() {
    with_strategy(constant(Duration::ZERO)).unwrap();
    with_strategy(constant(Duration::MAX)).unwrap();
}

#[test]
fn token_backoff_base_must_be_positive() {
    rejects(
        with_class_strategy(ErrorClass::Concurrency, token_backoff(Duration::ZERO, SEC)),
        "strategies.concurrency.base",
    );
}

#[test]
fn token_backoff_max_must_be_at_least_base() {
    rejects(with_strategy(token_backoff(SEC, MS)), "strategy.max");
}

#[test]
fn retry_after_max_hint_must_be_greater_than_zero() {
    rejects_value(
        with_class_strategy(
            ErrorClass::RateLimit,
            retry_after_or(constant(MS)).max_hint(Duration::ZERO),
        ),
        "strategies.rate_limit.max_hint",
        "0ns",
    );
}

#[test]
fn retry_after_max_hint_plus_jitter_must_not_overflow() {
    rejects(
        with_strategy(
            retry_after_or(constant(MS))
                .max_hint(Duration::MAX)
                .jitter(MS),
        ),
        "strategy.jitter",
    );
    with_strategy(
        retry_after_or(constant(MS))
            .max_hint(Duration::MAX)
            .jitter(Duration::ZERO),
    )
    .unwrap();
}

#[test]
fn retry_after_fallback_errors_are_nested() {
    rejects(
        with_strategy(retry_after_or(equal_jitter(Duration::ZERO, SEC))),
        "strategy.fallback.base",
    );
    rejects(
        with_class_strategy(ErrorClass::RateLimit, retry_after_or(full_jitter(SEC, MS))),
        "strategies.rate_limit.fallback.max",
    );
}

#[test]
fn adaptive_window_must_be_greater_than_zero() {
    rejects_value(
        with_strategy(adaptive(constant(MS)).window(Duration::ZERO)),
        "strategy.window",
        "0ns",
    );
}

#[test]
fn adaptive_target_success_must_be_within_zero_exclusive_and_one() {
    for (bad, shown) in [
        (0.0, "0.0"),
        (-0.1, "-0.1"),
        (1.01, "1.01"),
        (f64::NAN, "NaN"),
        (f64::INFINITY, "inf"),
    ] {
        rejects_value(
            with_class_strategy(
                ErrorClass::ServerError,
                adaptive(constant(MS)).target_success(bad),
            ),
            "strategies.server_error.target_success",
            shown,
        );
    }
    with_strategy(adaptive(constant(MS)).target_success(1.0)).unwrap();
}

#[test]
fn adaptive_min_multiplier_must_be_finite_and_at_least_one() {
    for (bad, shown) in [
        (0.99, "0.99"),
        (0.0, "0.0"),
        (f64::NAN, "NaN"),
        (f64::INFINITY, "inf"),
    ] {
        rejects_value(
            with_strategy(adaptive(constant(MS)).multipliers(bad, 10.0)),
            "strategy.min_multiplier",
            shown,
        );
    }
}

#[test]
fn adaptive_max_multiplier_must_be_finite_and_at_least_min() {
    for (bad, shown) in [(1.5, "1.5"), (f64::NAN, "NaN"), (f64::INFINITY, "inf")] {
        rejects_value(
            with_strategy(adaptive(constant(MS)).multipliers(2.0, bad)),
            "strategy.max_multiplier",
            shown,
        );
    }
    with_strategy(adaptive(constant(MS)).multipliers(1.0, 1.0)).unwrap();
}

#[test]
fn adaptive_fallback_errors_are_nested() {
    rejects(
        with_strategy(adaptive(token_backoff(Duration::ZERO, SEC))),
        "strategy.fallback.base",
    );
    rejects(
        with_class_strategy(
            ErrorClass::Unknown,
            retry_after_or(adaptive(exponential(MS, SEC).factor(0.1))),
        ),
        "strategies.unknown.fallback.fallback.factor",
    );
}

#[test]
fn custom_strategies_are_not_validated() {
    with_strategy(|_: &backoff::BackoffContext| Duration::MAX).unwrap();
}

// =======================================================================================
// Circuit breaker
// =======================================================================================

fn consecutive() -> BreakerBuilder {
    CircuitBreaker::consecutive(5, SEC)
}

fn failure_rate() -> BreakerBuilder {
    CircuitBreaker::failure_rate(0.5, 10, Duration::from_secs(10))
}

#[test]
fn breaker_recovery_must_be_greater_than_zero() {
    rejects_value(
        consecutive().recovery(Duration::ZERO).build(),
        "recovery",
        "0ns",
    );
    rejects(failure_rate().recovery(Duration::ZERO).build(), "recovery");
}

#[test]
fn breaker_probes_must_be_at_least_one() {
    rejects_value(consecutive().probes(0).build(), "probes", "0");
}

#[test]
fn breaker_trip_on_must_name_a_class() {
    rejects(consecutive().trip_on(ClassSet::EMPTY).build(), "trip_on");
}

#[test]
fn consecutive_threshold_must_be_at_least_one() {
    rejects_value(
        CircuitBreaker::consecutive(0, SEC).build(),
        "threshold",
        "0",
    );
}

#[test]
fn consecutive_threshold_must_be_at_most_ten_thousand() {
    rejects_value(
        CircuitBreaker::consecutive(10_001, SEC).build(),
        "threshold",
        "10001",
    );
    CircuitBreaker::consecutive(10_000, SEC).build().unwrap();
}

#[test]
fn consecutive_window_must_be_greater_than_zero() {
    rejects_value(
        CircuitBreaker::consecutive(3, Duration::ZERO).build(),
        "window",
        "0ns",
    );
}

#[test]
fn class_threshold_must_be_between_one_and_ten_thousand() {
    rejects(
        consecutive()
            .class_threshold(ErrorClass::RateLimit, 0)
            .build(),
        "class_thresholds",
    );
    rejects(
        consecutive()
            .class_threshold(ErrorClass::ServerError, 10_001)
            .build(),
        "class_thresholds",
    );
}

#[test]
fn failure_rate_ratio_must_be_within_zero_exclusive_and_one() {
    for (bad, shown) in [
        (0.0, "0.0"),
        (-0.5, "-0.5"),
        (1.5, "1.5"),
        (f64::NAN, "NaN"),
        (f64::INFINITY, "inf"),
        (f64::NEG_INFINITY, "-inf"),
    ] {
        rejects_value(
            CircuitBreaker::failure_rate(bad, 10, SEC).build(),
            "ratio",
            shown,
        );
    }
    CircuitBreaker::failure_rate(1.0, 10, SEC).build().unwrap();
}

#[test]
fn failure_rate_min_throughput_must_be_at_least_one() {
    rejects_value(
        CircuitBreaker::failure_rate(0.5, 0, SEC).build(),
        "min_throughput",
        "0",
    );
}

#[test]
fn failure_rate_window_must_be_greater_than_zero() {
    rejects(
        CircuitBreaker::failure_rate(0.5, 1, Duration::ZERO).build(),
        "window",
    );
}

#[test]
fn failure_rate_buckets_must_be_between_one_and_a_thousand() {
    rejects_value(failure_rate().buckets(0).build(), "buckets", "0");
    rejects_value(failure_rate().buckets(1_001).build(), "buckets", "1001");
    failure_rate().buckets(1_000).build().unwrap();
}

#[test]
fn failure_rate_window_must_give_each_bucket_a_millisecond() {
    let e = rejects(
        CircuitBreaker::failure_rate(0.5, 1, Duration::from_millis(9))
            .buckets(10)
            .build(),
        "window",
    );
    assert_eq!(e.value, "9ms");
    CircuitBreaker::failure_rate(0.5, 1, Duration::from_millis(10))
        .buckets(10)
        .build()
        .unwrap();
}

// =======================================================================================
// Budget
// =======================================================================================

fn ratio_budget(ratio: f64, floor: f64) -> BudgetBuilder {
    Budget::ratio(ratio, floor, Duration::from_secs(10))
}

#[test]
fn budget_window_must_be_greater_than_zero() {
    rejects_value(Budget::rolling(10, Duration::ZERO).build(), "window", "0ns");
    rejects(Budget::ratio(0.2, 1.0, Duration::ZERO).build(), "window");
}

#[test]
fn budget_buckets_must_be_between_one_and_a_thousand() {
    let rolling = || Budget::rolling(10, Duration::from_secs(10));
    rejects_value(rolling().buckets(0).build(), "buckets", "0");
    rejects_value(rolling().buckets(1_001).build(), "buckets", "1001");
    rolling().buckets(1_000).build().unwrap();
}

#[test]
fn budget_window_must_give_each_bucket_a_millisecond() {
    rejects_value(
        Budget::rolling(10, Duration::from_millis(5)).build(),
        "window",
        "5ms",
    );
    Budget::rolling(10, Duration::from_millis(10))
        .build()
        .unwrap();
}

#[test]
fn budget_ratio_must_be_finite_and_within_zero_and_a_thousand() {
    for (bad, shown) in [
        (-0.1, "-0.1"),
        (1000.5, "1000.5"),
        (f64::NAN, "NaN"),
        (f64::INFINITY, "inf"),
        (f64::NEG_INFINITY, "-inf"),
    ] {
        rejects_value(ratio_budget(bad, 1.0).build(), "ratio", shown);
    }
    ratio_budget(0.0, 1.0).build().unwrap();
    ratio_budget(1000.0, 1.0).build().unwrap();
}

#[test]
fn budget_floor_must_be_finite_and_within_zero_and_a_billion() {
    for (bad, shown) in [
        (-1.0, "-1.0"),
        (2e9, "2000000000.0"),
        (f64::NAN, "NaN"),
        (f64::INFINITY, "inf"),
    ] {
        rejects_value(ratio_budget(0.2, bad).build(), "min_per_second", shown);
    }
    ratio_budget(0.2, 0.0).build().unwrap();
}
