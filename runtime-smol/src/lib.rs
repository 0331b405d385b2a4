//! smol / async-io driver for [redress] policies; also runs under async-std
//! (whose executor polls async-io timers too).
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
//! let value = smol::block_on(redress_smol::call(&policy, async |_attempt| {
//!     calls += 1;
//!     if calls < 3 {
//!         Err(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)) // Transient
//!     } else {
//!         Ok("done")
//!     }
//! }))?;
//! assert_eq!((value, calls), ("done", 3));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Each attempt is raced against its time limit with an `async_io::Timer`; a timed-out
//! attempt is dropped and counted as [`Outcome::TimedOut`](redress::Outcome). Dropping the
//! call's future releases its breaker permit. For tests, [`RunAsync::run_with`] takes any
//! [`Timer`], such as [`ManualSleeper`](redress::drive::ManualSleeper), which moves a fake
//! clock instead of waiting.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use redress::drive::Timer;
use redress::{Clock, Instant, SystemClock};

pub use redress::{AbortHandle, Attempt, CallContext};

/// async-io's timer on the process's monotonic clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SmolTimer;

/// The future of a [`SmolTimer`] sleep.
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct SmolSleep(async_io::Timer);

impl Future for SmolSleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

impl Timer for SmolTimer {
    type Sleep = SmolSleep;

    fn now(&self) -> Instant {
        SystemClock.now()
    }

    fn now_coarse(&self) -> Instant {
        SystemClock.now_coarse()
    }

    fn sleep_until(&self, until: Instant) -> Self::Sleep {
        SmolSleep(async_io::Timer::at(SystemClock::std_from_instant(until)))
    }
}

redress::async_driver!(SmolTimer);
