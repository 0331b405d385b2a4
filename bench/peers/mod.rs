//! The peers' adapters, configured like redress's (see the crate docs of `redress_bench`).
//!
//! The peers are dev-dependencies of the bench crate, so this module is compiled into the
//! targets that may use them (the benchmarks, `tests/adapters.rs`, the profiling example)
//! with `#[path = "../peers/mod.rs"]` rather than into the library.
//!
//! | adapter | library | schedule mapping |
//! |---|---|---|
//! | [`BackonSync`], [`BackonAsync`] | backon 1.6 | `ExponentialBuilder`: min delay = base, factor 2, max delay, `max_times(2)` |
//! | [`TokioRetry`] | tokio-retry 0.3 | `ExponentialBackoff::from_millis(2).factor(base_ms / 2)` (base^n·factor), `take(2)` |
//! | [`TokioRetry2`] | tokio-retry2 0.9 | `ExponentialFactorBackoff::from_millis(base_ms, 2.0)`, `take(2)` |
//! | [`Tower`] | tower 0.5 `retry` | a `Policy` with 2 retries left and doubling delays; optionally a `TpsBudget` |

use core::future::{Ready, ready};
use core::task::{Context, Poll};
use std::io;
use std::time::Duration;

use backon::{BlockingRetryable, ExponentialBuilder, Retryable};
use redress_bench::adapters::{Delay, op};
use redress_bench::{AsyncAdapter, GaveUp, MAX_ATTEMPTS, Schedule, Script, SyncAdapter};
use tower::retry::budget::{Budget as _, TpsBudget};
use tower::{Service, ServiceExt};

/// Retries after the first attempt.
const RETRIES: u32 = MAX_ATTEMPTS - 1;

/// backon's builder for `s`.
pub(crate) fn backon_builder(s: Schedule) -> ExponentialBuilder {
    ExponentialBuilder::new()
        .with_min_delay(s.base)
        .with_max_delay(s.max)
        .with_factor(2.0)
        .with_max_times(RETRIES as usize)
}

/// backon, blocking: `op.retry(builder).sleep(std::thread::sleep).call()`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BackonSync(pub(crate) ExponentialBuilder);

impl BackonSync {
    /// Configured with `schedule`.
    pub(crate) fn new(schedule: Schedule) -> Self {
        Self(backon_builder(schedule))
    }
}

impl SyncAdapter for BackonSync {
    #[inline]
    fn run_sync(&self, s: &Script) -> Result<u64, GaveUp> {
        (|| s.attempt())
            .retry(self.0)
            .sleep(std::thread::sleep)
            .call()
            .map_err(|_| GaveUp)
    }
}

/// backon, async: `op.retry(builder).sleep(sleeper).await`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BackonAsync {
    builder: ExponentialBuilder,
    skip_zero: bool,
}

impl BackonAsync {
    /// Configured with `schedule`, sleeping with `tokio::time::sleep` (backon's default).
    pub(crate) fn new(schedule: Schedule) -> Self {
        Self {
            builder: backon_builder(schedule),
            skip_zero: false,
        }
    }

    /// Configured with `schedule`, with a sleeper that returns at once for a zero delay
    /// (as redress's drivers do) instead of going through tokio's timer.
    pub(crate) fn skipping_zero_sleeps(schedule: Schedule) -> Self {
        Self {
            builder: backon_builder(schedule),
            skip_zero: true,
        }
    }
}

impl AsyncAdapter for BackonAsync {
    async fn run_async(&self, s: &Script) -> Result<u64, GaveUp> {
        let r = if self.skip_zero {
            (|| op(s)).retry(self.builder).sleep(Delay::after).await
        } else {
            (|| op(s))
                .retry(self.builder)
                .sleep(tokio::time::sleep)
                .await
        };
        r.map_err(|_| GaveUp)
    }
}

/// Whole milliseconds of `d` (the tokio-retry crates count in milliseconds).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// tokio-retry: `Retry::start(strategy, op)`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TokioRetry(pub(crate) Schedule);

impl TokioRetry {
    /// The delays tokio-retry will sleep.
    pub(crate) fn strategy(&self) -> impl Iterator<Item = Duration> + use<> {
        use tokio_retry::strategy::ExponentialBackoff;
        let base = millis(self.0.base);
        let e = if base == 0 {
            ExponentialBackoff::from_millis(0)
        } else {
            // base^n · factor: 2·(base/2), 4·(base/2), … = base, 2·base, …
            ExponentialBackoff::from_millis(2).factor(base / 2)
        };
        e.max_delay(self.0.max).take(RETRIES as usize)
    }
}

impl AsyncAdapter for TokioRetry {
    async fn run_async(&self, s: &Script) -> Result<u64, GaveUp> {
        tokio_retry::Retry::start(self.strategy(), || op(s))
            .await
            .map_err(|_| GaveUp)
    }
}

/// tokio-retry2: `Retry::spawn(strategy, op)`, every error marked transient.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TokioRetry2(pub(crate) Schedule);

impl TokioRetry2 {
    /// The delays tokio-retry2 will sleep.
    pub(crate) fn strategy(&self) -> impl Iterator<Item = Duration> + use<> {
        use tokio_retry2::strategy::ExponentialFactorBackoff;
        ExponentialFactorBackoff::from_millis(millis(self.0.base), 2.0)
            .max_delay(self.0.max)
            .take(RETRIES as usize)
    }
}

impl AsyncAdapter for TokioRetry2 {
    async fn run_async(&self, s: &Script) -> Result<u64, GaveUp> {
        tokio_retry2::Retry::spawn(self.strategy(), || async move {
            op(s).await.map_err(tokio_retry2::RetryError::transient)
        })
        .await
        .map_err(|_| GaveUp)
    }
}

/// The service tower's `Retry` wraps: one attempt of the script per request.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ScriptService;

impl<'a> Service<&'a Script> for ScriptService {
    type Response = u64;
    type Error = io::Error;
    type Future = Ready<Result<u64, io::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, s: &'a Script) -> Self::Future {
        ready(s.attempt())
    }
}

/// A tower retry policy: 2 retries with doubling delays, every error retried, and
/// optionally a `TpsBudget` used as tower's budget docs show (deposit on success, withdraw
/// before a retry).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Attempts<'b> {
    left: u32,
    next: Duration,
    max: Duration,
    budget: Option<&'b TpsBudget>,
}

impl Attempts<'_> {
    /// The delay before the next retry, if one is granted.
    pub(crate) fn next_delay(&self) -> Duration {
        self.next
    }
}

impl<'a> tower::retry::Policy<&'a Script, u64, io::Error> for Attempts<'_> {
    type Future = Delay;

    fn retry(
        &mut self,
        _req: &mut &'a Script,
        result: &mut Result<u64, io::Error>,
    ) -> Option<Delay> {
        match result {
            Ok(_) => {
                if let Some(b) = self.budget {
                    b.deposit();
                }
                None
            }
            Err(_) if self.left > 0 => {
                if let Some(b) = self.budget
                    && !b.withdraw()
                {
                    return None;
                }
                self.left -= 1;
                let d = self.next;
                self.next = self.next.saturating_mul(2).min(self.max);
                Some(Delay::after(d))
            }
            Err(_) => None,
        }
    }

    fn clone_request(&mut self, req: &&'a Script) -> Option<&'a Script> {
        Some(*req)
    }
}

/// tower: `Retry::new(policy, service).oneshot(request)`.
#[derive(Debug)]
pub(crate) struct Tower {
    schedule: Schedule,
    budget: Option<TpsBudget>,
}

impl Tower {
    /// Retries only.
    pub(crate) fn new(schedule: Schedule) -> Self {
        Self {
            schedule,
            budget: None,
        }
    }

    /// Retries through `TpsBudget::default()` (the budget redress's `full` policy mirrors).
    pub(crate) fn with_budget(schedule: Schedule) -> Self {
        Self {
            schedule,
            budget: Some(TpsBudget::default()),
        }
    }

    /// A fresh policy for one call (a copy: no reference count, no allocation).
    pub(crate) fn policy(&self) -> Attempts<'_> {
        Attempts {
            left: RETRIES,
            next: self.schedule.base,
            max: self.schedule.max,
            budget: self.budget.as_ref(),
        }
    }
}

impl AsyncAdapter for Tower {
    async fn run_async(&self, s: &Script) -> Result<u64, GaveUp> {
        tower::retry::Retry::new(self.policy(), ScriptService)
            .oneshot(s)
            .await
            .map_err(|_| GaveUp)
    }
}

// ----- breakers and budgets (groups D and E) ------------------------------------------

/// failsafe's consecutive-failures breaker: opens after `n` failures in a row, then stays
/// open for an hour.
pub(crate) fn failsafe_consecutive(
    n: u32,
) -> failsafe::StateMachine<
    failsafe::failure_policy::ConsecutiveFailures<failsafe::backoff::Constant>,
    (),
> {
    use failsafe::failure_policy::consecutive_failures;
    failsafe::Config::new()
        .failure_policy(consecutive_failures(
            n,
            failsafe::backoff::constant(Duration::from_secs(3600)),
        ))
        .build()
}

/// failsafe's default breaker (success rate over a window, or 5 consecutive failures).
pub(crate) fn failsafe_default() -> impl failsafe::CircuitBreaker + Clone + Send + Sync {
    failsafe::Config::new().build()
}

/// recloser with its defaults (opens at a 50 % failure rate over the last 100 calls).
pub(crate) fn recloser_default() -> recloser::Recloser {
    recloser::Recloser::default()
}

/// A recloser that opens on its first failure and stays open for an hour.
pub(crate) fn recloser_hair_trigger() -> recloser::Recloser {
    recloser::Recloser::custom()
        .closed_len(1)
        .open_wait(Duration::from_secs(3600))
        .build()
}

/// Fails calls through `call` until it rejects one (at most 10 000 tries); true if it did.
pub(crate) fn trip(call: impl Fn() -> Result<(), Option<()>>) -> bool {
    (0..10_000).any(|_| matches!(call(), Err(None)))
}

/// failsafe's result, as [`trip`] wants it.
pub(crate) fn failsafe_result<T>(r: Result<T, failsafe::Error<()>>) -> Result<T, Option<()>> {
    r.map_err(|e| match e {
        failsafe::Error::Inner(()) => Some(()),
        failsafe::Error::Rejected => None,
    })
}

/// recloser's result, as [`trip`] wants it.
pub(crate) fn recloser_result<T>(r: Result<T, recloser::Error<()>>) -> Result<T, Option<()>> {
    r.map_err(|e| match e {
        recloser::Error::Inner(()) => Some(()),
        recloser::Error::Rejected => None,
    })
}

/// tower's `TpsBudget` with its defaults: deposit then withdraw, as one call that retries
/// once does. True if the withdrawal was granted.
#[inline]
pub(crate) fn tps_spend(b: &TpsBudget) -> bool {
    b.deposit();
    b.withdraw()
}
