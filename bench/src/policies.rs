//! The redress policies the groups measure.
//!
//! | name | groups | what it adds to "3 attempts, exponential" |
//! |---|---|---|
//! | [`retry_only`] | A(a), B(a), C, F | nothing: no deadline, so the success path reads no clock |
//! | [`default_deadline`] | A(b), B(b), F | the builder's defaults: a 60 s deadline (and the default caps) |
//! | [`full`] | A(c), B(c) | [`retry_only`] plus a consecutive breaker and a ratio budget |
//!
//! Breaker and budget mirror the peers' defaults: the breaker opens after 5 failures in a
//! row (failsafe's `consecutive_failures` default), the budget is tower's `TpsBudget`
//! default (retries up to 20 % of calls plus 10 per second, over 10 s).

use std::sync::Arc;
use std::time::Duration;

use redress::backoff::{constant, exponential};
use redress::{Budget, CircuitBreaker, Policy, Retry, RetryBuilder};

use crate::{MAX_ATTEMPTS, Schedule};

fn retry(schedule: Schedule) -> RetryBuilder {
    let b = Retry::builder().max_attempts(MAX_ATTEMPTS);
    if schedule.base.is_zero() {
        // redress's exponential needs a non-zero base; a zero schedule is a constant zero.
        b.strategy(constant(Duration::ZERO))
    } else {
        b.strategy(exponential(schedule.base, schedule.max))
    }
}

/// 3 attempts, exponential backoff, no deadline.
///
/// # Panics
/// Never for the schedules of this crate (the configuration is valid).
pub fn retry_only(schedule: Schedule) -> Policy {
    retry(schedule)
        .no_deadline()
        .policy()
        .expect("valid retry-only policy")
}

/// 3 attempts, exponential backoff, and every other setting at its default (60 s deadline).
///
/// # Panics
/// Never for the schedules of this crate.
pub fn default_deadline(schedule: Schedule) -> Policy {
    retry(schedule).policy().expect("valid default policy")
}

/// The breaker of [`full`]: opens after 5 failures in a row within 10 s.
///
/// # Panics
/// Never (the configuration is valid).
pub fn breaker() -> Arc<CircuitBreaker> {
    Arc::new(
        CircuitBreaker::consecutive(5, Duration::from_secs(10))
            .build()
            .expect("valid breaker"),
    )
}

/// The budget of [`full`]: tower's `TpsBudget::default()` in redress terms.
///
/// # Panics
/// Never (the configuration is valid).
pub fn budget() -> Arc<Budget> {
    Arc::new(
        Budget::ratio(0.2, 10.0, Duration::from_secs(10))
            .build()
            .expect("valid budget"),
    )
}

/// [`retry_only`] plus a breaker ([`breaker`]) and a budget ([`budget`]).
///
/// # Panics
/// Never for the schedules of this crate.
pub fn full(schedule: Schedule) -> Policy {
    Policy::builder()
        .retry(retry(schedule).no_deadline().budget(budget()))
        .breaker(breaker())
        .build()
        .expect("valid full policy")
}
