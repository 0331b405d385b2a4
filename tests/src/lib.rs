//! Shared helpers of redress's scenario, property and conformance tests.
#![forbid(unsafe_code)]

pub mod scenario;

use redress::breaker::BreakerOutcome;
use redress::{CircuitBreaker, ErrorClass, Instant};

/// Records one transient failure at `Instant::ZERO` on `breaker`, which opens it if its
/// threshold is one (a closed breaker always admits, so the permit is there to record).
pub fn trip_at_zero(breaker: &CircuitBreaker) {
    if let Ok(p) = breaker.try_acquire(Instant::ZERO) {
        breaker.record(
            Instant::ZERO,
            p,
            BreakerOutcome::Failure(ErrorClass::Transient),
        );
    }
}
