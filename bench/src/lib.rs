//! # redress-bench: redress side by side with its Rust peers
//!
//! Criterion benchmarks that measure redress and the crates people would otherwise reach for
//! (backon, tokio-retry, tokio-retry2, tower's retry and `TpsBudget`, failsafe, recloser) **in
//! the same run**, so ratios between them hold even on a noisy machine.
//!
//! ```text
//! cargo bench -p redress-bench                       # every group, ~5 minutes on 2 cores
//! cargo bench -p redress-bench -- "^D"               # some groups (a criterion regex)
//! cargo run -p redress-bench --release --bin bench-report   # markdown tables of the last run
//! bash bench/profile.sh a_retry_only                  # callgrind instructions per call
//! ```
//!
//! ## What is configured identically
//! Every retry library gets **at most 3 attempts** (the first call and 2 retries) and
//! **exponential backoff** with the same schedule ([`Schedule`]): 100 ms, then 200 ms,
//! capped at 10 s, without jitter. The success-path groups never sleep, so the schedule only
//! has to be equal, not realistic; the retry groups use a zero schedule so that what is
//! measured is the decision, not the sleep. `tests/adapters.rs` checks that each adapter
//! really runs 1 attempt on success and exactly 3 on a permanent failure.
//!
//! ## This crate
//! - [`Script`]: the operation every adapter runs (fails a fixed number of times, counts).
//! - [`SyncAdapter`] / [`AsyncAdapter`]: one call of a script through some retry library;
//!   [`adapters`] holds redress's and the hand-written baselines (the peers' live in
//!   `bench/peers/`, because peers are dev-dependencies only).
//! - [`policies`]: the redress policies of groups A–C and F.
//! - [`contend`]: runs one operation on several threads and times the whole.
//! - [`report`]: reads criterion's `estimates.json` files and prints one table per group.
//!
//! Beside the library: `benches/compare/` (the groups A–G), `tests/adapters.rs` (every
//! adapter configured alike), `tests/clock_reads.rs` (clock reads per successful call),
//! `examples/hot.rs` with `profile.sh` (callgrind instruction counts of one hot path), and
//! the recorded run in the repository's `BENCHMARKS.md`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use core::future::Future;
use core::time::Duration;
use std::cell::Cell;
use std::io;

pub mod adapters;
pub mod contend;
pub mod policies;
pub mod report;

/// Attempts per call in every configuration: the first call and two retries.
pub const MAX_ATTEMPTS: u32 = 3;

/// The exponential schedule every library is configured with: `base`, `2·base`, … capped at
/// `max`, no jitter. A zero `base` means "retry at once" (zero backoff).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// The first delay.
    pub base: Duration,
    /// The largest delay.
    pub max: Duration,
}

impl Schedule {
    /// 100 ms, 200 ms, … capped at 10 s: the success-path configuration.
    pub const REALISTIC: Self = Self {
        base: Duration::from_millis(100),
        max: Duration::from_secs(10),
    };

    /// No delay at all: the retry-decision groups and the adapter tests.
    pub const ZERO: Self = Self {
        base: Duration::ZERO,
        max: Duration::ZERO,
    };

    /// The delay after failed attempt `n` (1-based).
    pub fn delay(&self, n: u32) -> Duration {
        let factor = 1u32 << n.saturating_sub(1).min(16);
        self.base.saturating_mul(factor).min(self.max)
    }
}

/// The operation under test: fails its first `fail_first` attempts with a transient error
/// (`io::ErrorKind::ConnectionReset`), then succeeds with the attempt number.
///
/// It counts attempts in a `Cell`, so every adapter can borrow it without `&mut`.
#[derive(Debug)]
pub struct Script {
    fail_first: u32,
    attempts: Cell<u32>,
}

impl Script {
    /// A script whose first attempt succeeds.
    pub const fn succeed() -> Self {
        Self::fail_times(0)
    }

    /// A script that fails `n` times, then succeeds.
    pub const fn fail_times(n: u32) -> Self {
        Self {
            fail_first: n,
            attempts: Cell::new(0),
        }
    }

    /// A script that never succeeds.
    pub const fn always_fail() -> Self {
        Self::fail_times(u32::MAX)
    }

    /// Runs one attempt.
    ///
    /// # Errors
    /// A transient I/O error while the script still has failures to give.
    #[inline]
    pub fn attempt(&self) -> Result<u64, io::Error> {
        let n = self.attempts.get() + 1;
        self.attempts.set(n);
        if n <= self.fail_first {
            Err(io::Error::from(io::ErrorKind::ConnectionReset))
        } else {
            Ok(u64::from(n))
        }
    }

    /// Attempts run so far.
    pub fn attempts(&self) -> u32 {
        self.attempts.get()
    }
}

/// The library stopped retrying (its error is dropped: only attempts are compared).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GaveUp;

/// One call of a [`Script`] through a blocking retry library.
pub trait SyncAdapter {
    /// Runs the script until it succeeds or the library gives up; [`GaveUp`] if it gave up.
    ///
    /// # Errors
    /// [`GaveUp`] when the library stopped retrying.
    fn run_sync(&self, script: &Script) -> Result<u64, GaveUp>;
}

/// One call of a [`Script`] through an async retry library (on a tokio runtime).
pub trait AsyncAdapter {
    /// Runs the script until it succeeds or the library gives up; [`GaveUp`] if it gave up.
    fn run_async<'a>(
        &'a self,
        script: &'a Script,
    ) -> impl Future<Output = Result<u64, GaveUp>> + 'a;
}

/// A current-thread tokio runtime with the timer enabled (every async group runs on one).
///
/// # Panics
/// If the runtime cannot be built (no thread or timer can be created).
pub fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread tokio runtime")
}
