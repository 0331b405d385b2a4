//! Shared helpers of redress's scenario, property and conformance tests.
#![forbid(unsafe_code)]

pub mod scenario;

use std::cell::Cell;
use std::time::Duration;

use redress::breaker::BreakerOutcome;
use redress::drive::{ManualSleep, ManualSleeper, Sleeper, Timer};
use redress::{AbortHandle, CircuitBreaker, ErrorClass, Instant, ManualClock};

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

/// A fake clock that counts its precise and coarse reads, and whose coarse reading lags by
/// a set amount (as a kernel tick would); a blocking [`Sleeper`] and an async [`Timer`]
/// whose sleeps move it, like [`ManualSleeper`].
pub struct CountingClock {
    inner: ManualSleeper,
    lag: Duration,
    precise: Cell<u32>,
    coarse: Cell<u32>,
}

impl CountingClock {
    /// A clock reading `t`, whose coarse reading lags by `lag`.
    pub fn new(t: Instant, lag: Duration) -> Self {
        Self {
            inner: ManualSleeper::new(ManualClock::new(t)),
            lag,
            precise: Cell::new(0),
            coarse: Cell::new(0),
        }
    }

    /// (precise reads, coarse reads) so far.
    pub fn counts(&self) -> (u32, u32) {
        (self.precise.get(), self.coarse.get())
    }

    fn read(&self) -> Instant {
        self.precise.set(self.precise.get() + 1);
        Sleeper::now(&self.inner)
    }

    fn read_coarse(&self) -> Instant {
        self.coarse.set(self.coarse.get() + 1);
        Sleeper::now(&self.inner) - self.lag
    }
}

impl Sleeper for CountingClock {
    fn now(&self) -> Instant {
        self.read()
    }
    fn now_coarse(&self) -> Instant {
        self.read_coarse()
    }
    fn sleep_until(&self, until: Instant, abort: Option<&AbortHandle>) {
        Sleeper::sleep_until(&self.inner, until, abort);
    }
}

impl Timer for CountingClock {
    type Sleep = ManualSleep;
    fn now(&self) -> Instant {
        self.read()
    }
    fn now_coarse(&self) -> Instant {
        self.read_coarse()
    }
    fn sleep_until(&self, until: Instant) -> ManualSleep {
        Timer::sleep_until(&self.inner, until)
    }
}
