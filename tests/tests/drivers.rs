//! Driver behaviour beyond the conformance table: cancellation (dropped futures), abort
//! handles, panics, attempt timeouts on real and paused clocks, hooks (and hooks that
//! panic), deferral and resumption, result-based retries and reports, on every driver.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use futures_lite::future::{or, poll_once};
use redress::backoff::constant;
use redress::drive::{CallResult, ManualSleeper, ResultCheck, SleepVerdict, Timer};
use redress::event::Event;
use redress::{
    AbortHandle, Attempt, BreakerScope, Budget, CallContext, CircuitBreaker, CircuitState,
    Classify, Clock, ErrorClass, Instant, LastFailure, ManualClock, Policy, Retry, RetryState,
    StopReason, SystemClock,
};
use redress_tests::CountingClock;
use redress_tokio::TokioTimer;

fn transient() -> io::Error {
    io::Error::from(io::ErrorKind::ConnectionReset)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn every(d: Duration, attempts: u32) -> Policy {
    Retry::builder()
        .max_attempts(attempts)
        .no_deadline()
        .strategy(constant(d))
        .policy()
        .unwrap()
}

/// Sets its flag when dropped: proves a timed-out attempt's future was dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

/// Runs `f` on smol's executor, failing instead of hanging if it does not finish within
/// 30 s (a hang guard only, not a timing assertion).
fn smol_guarded<T>(f: impl Future<Output = T>) -> T {
    smol::block_on(or(f, async {
        smol::Timer::after(Duration::from_secs(30)).await;
        panic!("hang guard: the call did not finish")
    }))
}

// ----- every driver, one helper ----------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Driver {
    Blocking,
    Tokio,
    Smol,
    AsyncStd,
}

const DRIVERS: [Driver; 4] = [
    Driver::Blocking,
    Driver::Tokio,
    Driver::Smol,
    Driver::AsyncStd,
];

/// One call of the synchronous script `f` through `ctx` on `driver`, on the fake clock of
/// `sleeper`.
fn run_manual<C, R>(
    driver: Driver,
    ctx: &CallContext<'_, C, R>,
    sleeper: &ManualSleeper,
    mut f: impl FnMut(Attempt) -> Result<u16, io::Error>,
) -> CallResult<u16, io::Error, R>
where
    C: Classify<io::Error>,
    R: ResultCheck<u16>,
{
    match driver {
        Driver::Blocking => redress_blocking::RunBlocking::run_with(ctx, sleeper, f),
        Driver::Tokio => {
            tokio_rt().block_on(redress_tokio::RunAsync::run_with(ctx, sleeper, async |a| {
                f(a)
            }))
        }
        Driver::Smol => smol::block_on(redress_smol::RunAsync::run_with(ctx, sleeper, async |a| {
            f(a)
        })),
        Driver::AsyncStd => {
            async_std::task::block_on(redress_smol::RunAsync::run_with(ctx, sleeper, async |a| {
                f(a)
            }))
        }
    }
}

/// One call (or, with `resume`, the continuation of a deferred one) through `ctx` on
/// `driver`'s own clock and timer.
fn run_real<C, R>(
    driver: Driver,
    ctx: &CallContext<'_, C, R>,
    resume: Option<&RetryState>,
    mut f: impl FnMut(Attempt) -> Result<u16, io::Error>,
) -> CallResult<u16, io::Error, R>
where
    C: Classify<io::Error>,
    R: ResultCheck<u16>,
{
    use redress_blocking::RunBlocking;
    match (driver, resume) {
        (Driver::Blocking, None) => ctx.run(f),
        (Driver::Blocking, Some(s)) => ctx.resume(s, f),
        (Driver::Tokio, None) => {
            tokio_rt().block_on(redress_tokio::RunAsync::run(ctx, async |a| f(a)))
        }
        (Driver::Tokio, Some(s)) => {
            tokio_rt().block_on(redress_tokio::RunAsync::resume(ctx, s, async |a| f(a)))
        }
        (Driver::Smol, None) => smol::block_on(redress_smol::RunAsync::run(ctx, async |a| f(a))),
        (Driver::Smol, Some(s)) => {
            smol::block_on(redress_smol::RunAsync::resume(ctx, s, async |a| f(a)))
        }
        (Driver::AsyncStd, None) => {
            async_std::task::block_on(redress_smol::RunAsync::run(ctx, async |a| f(a)))
        }
        (Driver::AsyncStd, Some(s)) => {
            async_std::task::block_on(redress_smol::RunAsync::resume(ctx, s, async |a| f(a)))
        }
    }
}

// ----- cancellation ----------------------------------------------------------------------

/// A breaker that is half-open with its probe slot free: opened at time zero, then its
/// first probe (at the end of the recovery time) admitted and dropped unreported.
fn half_open(b: CircuitBreaker) -> Arc<CircuitBreaker> {
    let recovery = b.config().recovery;
    redress_tests::trip_at_zero(&b);
    assert_eq!(b.state(), CircuitState::Open);
    drop(b.try_acquire(Instant::ZERO + recovery).unwrap());
    assert_eq!(b.state(), CircuitState::HalfOpen);
    Arc::new(b)
}

fn failure_rate() -> CircuitBreaker {
    CircuitBreaker::failure_rate(0.5, 1, Duration::from_secs(600))
        .recovery(ms(1))
        .build()
        .unwrap()
}

fn consecutive() -> CircuitBreaker {
    CircuitBreaker::consecutive(1, Duration::from_secs(600))
        .recovery(ms(1))
        .build()
        .unwrap()
}

fn budget() -> Arc<Budget> {
    Arc::new(
        Budget::rolling(5, Duration::from_secs(600))
            .build()
            .unwrap(),
    )
}

fn guarded_policy(
    breaker: &Arc<CircuitBreaker>,
    budget: &Arc<Budget>,
    scope: BreakerScope,
) -> Policy {
    Policy::builder()
        .retry(
            Retry::builder()
                .strategy(constant(ms(10)))
                .budget(budget.clone()),
        )
        .breaker(breaker.clone())
        .breaker_scope(scope)
        .build()
        .unwrap()
}

/// What the shared breaker and budget hold.
#[derive(Debug, PartialEq, Eq)]
struct Shared {
    state: CircuitState,
    admits: bool,
    window: (u64, u64),
    remaining: u64,
}

fn shared(b: &CircuitBreaker, budget: &Budget, now: Instant) -> Shared {
    Shared {
        state: b.state(),
        admits: b.would_admit(now),
        window: b.window_counts(now),
        // Clamped to the latest withdrawal, so any instant reads the current amount.
        remaining: budget.remaining(Instant::ZERO),
    }
}

fn free_probe(s: Shared) -> Shared {
    Shared { admits: true, ..s }
}

#[tokio::test(start_paused = true)]
async fn tokio_call_dropped_while_sleeping_frees_the_probe_and_counts_nothing_twice() {
    let (breaker, budget) = (half_open(failure_rate()), budget());
    let policy = guarded_policy(&breaker, &budget, BreakerScope::PerCall);
    let mut call = Box::pin(redress_tokio::call(&policy, async |_| {
        Err::<u16, _>(transient())
    }));
    // The first attempt fails; the call is now sleeping, holding the probe.
    assert!(poll_once(call.as_mut()).await.is_none());
    let during = shared(&breaker, &budget, TokioTimer.now());
    assert_eq!(
        during,
        Shared {
            state: CircuitState::HalfOpen,
            admits: false,
            window: (0, 0),
            remaining: 4,
        }
    );
    drop(call);
    assert_eq!(
        shared(&breaker, &budget, TokioTimer.now()),
        free_probe(during)
    );
    // A new call is the probe, and its success closes the breaker.
    let v = redress_tokio::call(&policy, async |_| Ok::<_, io::Error>(7)).await;
    assert_eq!(v.unwrap(), 7);
    assert_eq!(breaker.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn tokio_call_dropped_during_a_pending_attempt_frees_the_probe() {
    let (breaker, budget) = (half_open(consecutive()), budget());
    let policy = guarded_policy(&breaker, &budget, BreakerScope::PerAttempt);
    let started = AtomicUsize::new(0);
    let call = redress_tokio::call(&policy, async |_| {
        started.fetch_add(1, Ordering::SeqCst);
        futures_lite::future::pending::<()>().await;
        Ok::<u16, io::Error>(1)
    });
    assert!(
        tokio::time::timeout(Duration::from_secs(1), call)
            .await
            .is_err(),
        "the attempt never ends: the timeout drops the call"
    );
    assert_eq!(started.load(Ordering::SeqCst), 1);
    assert_eq!(
        shared(&breaker, &budget, TokioTimer.now()),
        Shared {
            state: CircuitState::HalfOpen,
            admits: true,
            window: (0, 0),
            remaining: 5,
        }
    );
    let v = redress_tokio::call(&policy, async |_| Ok::<_, io::Error>(7)).await;
    assert_eq!(v.unwrap(), 7);
    assert_eq!(breaker.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn tokio_call_dropped_mid_retry_leaves_counts_and_budget_alone() {
    let breaker = Arc::new(
        CircuitBreaker::failure_rate(0.9, 100, Duration::from_secs(600))
            .build()
            .unwrap(),
    );
    let budget = budget();
    let policy = guarded_policy(&breaker, &budget, BreakerScope::PerAttempt);
    let mut call = Box::pin(redress_tokio::call(&policy, async |a| {
        if a.n == 1 {
            return Err(transient());
        }
        futures_lite::future::pending::<()>().await;
        Ok::<u16, io::Error>(1)
    }));
    // Attempt 1 fails (counted, one retry withdrawn); after the sleep, attempt 2 hangs.
    assert!(poll_once(call.as_mut()).await.is_none());
    tokio::time::sleep(ms(20)).await;
    assert!(poll_once(call.as_mut()).await.is_none());
    let during = shared(&breaker, &budget, TokioTimer.now());
    assert_eq!(
        during,
        Shared {
            state: CircuitState::Closed,
            admits: true,
            window: (1, 1),
            remaining: 4,
        }
    );
    drop(call);
    assert_eq!(shared(&breaker, &budget, TokioTimer.now()), during);
}

#[test]
fn smol_call_dropped_while_sleeping_frees_the_probe_and_counts_nothing_twice() {
    let (breaker, budget) = (half_open(failure_rate()), budget());
    let policy = guarded_policy(&breaker, &budget, BreakerScope::PerCall);
    smol_guarded(async {
        let mut call = Box::pin(redress_smol::call(&policy, async |_| {
            Err::<u16, _>(transient())
        }));
        assert!(poll_once(call.as_mut()).await.is_none());
        let during = shared(&breaker, &budget, SystemClock.now());
        assert_eq!(
            (during.state, during.admits),
            (CircuitState::HalfOpen, false)
        );
        assert_eq!((during.window, during.remaining), ((0, 0), 4));
        drop(call);
        assert_eq!(
            shared(&breaker, &budget, SystemClock.now()),
            free_probe(during)
        );
        let v = redress_smol::call(&policy, async |_| Ok::<_, io::Error>(7)).await;
        assert_eq!(v.unwrap(), 7);
        assert_eq!(breaker.state(), CircuitState::Closed);
    });
}

#[test]
fn smol_call_dropped_during_a_pending_attempt_frees_the_probe() {
    let (breaker, budget) = (half_open(consecutive()), budget());
    let policy = guarded_policy(&breaker, &budget, BreakerScope::PerAttempt);
    smol_guarded(async {
        let mut call = Box::pin(redress_smol::call(&policy, async |_| {
            futures_lite::future::pending::<()>().await;
            Ok::<u16, io::Error>(1)
        }));
        assert!(poll_once(call.as_mut()).await.is_none());
        let during = shared(&breaker, &budget, SystemClock.now());
        assert_eq!(
            (during.state, during.admits),
            (CircuitState::HalfOpen, false)
        );
        drop(call);
        assert_eq!(
            shared(&breaker, &budget, SystemClock.now()),
            free_probe(during)
        );
        // Raced against a timer and dropped by `or`: the same.
        let hung = redress_smol::call(&policy, async |_| {
            futures_lite::future::pending::<()>().await;
            Ok::<u16, io::Error>(1)
        });
        let r = or(async { Some(hung.await) }, async {
            smol::Timer::after(ms(20)).await;
            None
        })
        .await;
        assert!(r.is_none());
        assert!(breaker.would_admit(SystemClock.now()));
        let v = redress_smol::call(&policy, async |_| Ok::<_, io::Error>(7)).await;
        assert_eq!(v.unwrap(), 7);
        assert_eq!(breaker.state(), CircuitState::Closed);
        assert_eq!(budget.remaining(Instant::ZERO), 5);
    });
}

#[test]
fn smol_call_dropped_mid_retry_leaves_counts_and_budget_alone() {
    let breaker = Arc::new(
        CircuitBreaker::failure_rate(0.9, 100, Duration::from_secs(600))
            .build()
            .unwrap(),
    );
    let budget = budget();
    let policy = guarded_policy(&breaker, &budget, BreakerScope::PerAttempt);
    smol_guarded(async {
        let mut call = Box::pin(redress_smol::call(&policy, async |a| {
            if a.n == 1 {
                return Err(transient());
            }
            futures_lite::future::pending::<()>().await;
            Ok::<u16, io::Error>(1)
        }));
        assert!(poll_once(call.as_mut()).await.is_none());
        smol::Timer::after(ms(20)).await;
        assert!(poll_once(call.as_mut()).await.is_none());
        let during = shared(&breaker, &budget, SystemClock.now());
        assert_eq!((during.window, during.remaining), ((1, 1), 4));
        drop(call);
        assert_eq!(shared(&breaker, &budget, SystemClock.now()), during);
    });
}

// ----- abort -----------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn tokio_abort_during_a_sleep_stops_the_call() {
    use redress_tokio::RunAsync;
    let policy = every(Duration::from_secs(3600), 5);
    let abort = AbortHandle::new();
    let ctx = policy.context("abortable").abort_handle(abort.clone());
    let trigger = abort.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        trigger.abort();
    });
    let start = tokio::time::Instant::now();
    let e = ctx
        .run(async |_| Err::<(), _>(transient()))
        .await
        .unwrap_err();
    assert_eq!(e.reason(), StopReason::Aborted);
    assert_eq!(e.attempts(), 1);
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(1),
        "woke when aborted, not after the hour"
    );
}

#[test]
fn smol_abort_during_a_sleep_stops_the_call() {
    use redress_smol::RunAsync;
    let policy = every(Duration::from_secs(3600), 5);
    let abort = AbortHandle::new();
    let ctx = policy.context("abortable").abort_handle(abort.clone());
    let trigger = std::thread::spawn(move || {
        std::thread::sleep(ms(20));
        abort.abort();
    });
    let e = smol_guarded(ctx.run(async |_| Err::<(), _>(transient()))).unwrap_err();
    trigger.join().unwrap();
    assert_eq!((e.reason(), e.attempts()), (StopReason::Aborted, 1));
}

#[test]
fn blocking_abort_wakes_a_sleeping_thread() {
    use redress_blocking::RunBlocking;
    let abort = AbortHandle::new();
    let (tx, rx) = mpsc::channel();
    let handle = abort.clone();
    let call = std::thread::spawn(move || {
        let policy = every(Duration::from_secs(3600), 5);
        let ctx = policy.context("abortable").abort_handle(handle);
        let e = ctx.run(|_| Err::<(), _>(transient())).unwrap_err();
        tx.send((e.reason(), e.attempts())).unwrap();
    });
    std::thread::sleep(ms(20));
    abort.abort();
    // A hang guard only: without the abort the call would sleep for an hour.
    let got = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("hang guard");
    call.join().unwrap();
    assert_eq!(got, (StopReason::Aborted, 1));
}

#[test]
fn an_aborted_handle_runs_no_attempt_on_any_driver() {
    let breaker = Arc::new(consecutive());
    let policy = Policy::builder()
        .retry(Retry::builder().strategy(constant(Duration::ZERO)))
        .breaker(breaker.clone())
        .build()
        .unwrap();
    let abort = AbortHandle::new();
    abort.abort();
    let ctx = policy.context("abortable").abort_handle(abort);
    for d in DRIVERS {
        let mut ran = 0;
        let e = run_real(d, &ctx, None, |_| {
            ran += 1;
            Ok(1)
        })
        .unwrap_err();
        assert_eq!(
            (e.reason(), e.attempts(), ran),
            (StopReason::Aborted, 0, 0),
            "{d:?}"
        );
        assert!(matches!(e.last(), LastFailure::Nothing));
    }
    assert_eq!(breaker.state(), CircuitState::Closed);
}

#[test]
fn an_abort_before_a_zero_delay_retry_counts_only_attempts_that_ran() {
    let policy = every(Duration::ZERO, 5);
    let sleeper = ManualSleeper::new(ManualClock::new(Instant::ZERO));
    for d in DRIVERS {
        // A fresh handle per driver: a fired handle stays fired.
        let abort = AbortHandle::new();
        let h = abort.clone();
        let ctx = policy
            .context("abortable")
            .abort_handle(abort)
            .on_attempt(move |_| h.abort());
        let mut ran = 0;
        let e = run_manual(d, &ctx, &sleeper, |_| {
            ran += 1;
            Err(transient())
        })
        .unwrap_err();
        assert_eq!((e.reason(), ran), (StopReason::Aborted, 1), "{d:?}");
        assert_eq!(e.attempts(), 1, "{d:?}: attempts that ran");
    }
}

// ----- panics ----------------------------------------------------------------------------

#[test]
fn a_panicking_blocking_op_propagates_and_releases_the_probe() {
    use redress_blocking::RunBlocking;
    for scope in [BreakerScope::PerAttempt, BreakerScope::PerCall] {
        let (breaker, budget) = (half_open(consecutive()), budget());
        let policy = guarded_policy(&breaker, &budget, scope);
        let ctx = policy.context("panics");
        let sleeper = ManualSleeper::new(ManualClock::new(Instant::from_secs(100)));
        let before = budget.remaining(Instant::ZERO);
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = ctx.run_with(&sleeper, |_| -> Result<u16, io::Error> {
                panic!("op panicked while holding the half-open probe")
            });
        }));
        let msg = panicked.unwrap_err();
        assert_eq!(
            msg.downcast_ref::<&str>(),
            Some(&"op panicked while holding the half-open probe")
        );
        assert_eq!(breaker.state(), CircuitState::HalfOpen, "{scope:?}");
        assert!(
            breaker.would_admit(sleeper.clock.now()),
            "{scope:?}: probe slot released"
        );
        assert_eq!(budget.remaining(Instant::ZERO), before, "{scope:?}");
        // The probe slot came back: a new call is admitted and closes the breaker.
        ctx.run_with(&sleeper, |_| Ok::<_, io::Error>(1)).unwrap();
        assert_eq!(breaker.state(), CircuitState::Closed, "{scope:?}");
    }
}

#[test]
fn a_panic_in_a_later_attempt_keeps_what_earlier_attempts_spent() {
    use redress_blocking::RunBlocking;
    let (breaker, budget) = (half_open(consecutive()), budget());
    let policy = guarded_policy(&breaker, &budget, BreakerScope::PerCall);
    let ctx = policy.context("panics");
    let sleeper = ManualSleeper::new(ManualClock::new(Instant::from_secs(100)));
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = ctx.run_with(&sleeper, |a| -> Result<u16, io::Error> {
            if a.n == 1 {
                return Err(transient());
            }
            panic!("second attempt panicked")
        });
    }));
    assert!(panicked.is_err());
    // The first retry was withdrawn before the panic, and only that.
    assert_eq!(budget.remaining(Instant::ZERO), 4);
    assert_eq!(breaker.state(), CircuitState::HalfOpen);
    assert!(breaker.would_admit(sleeper.clock.now()));
}

// ----- attempt timeouts ------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn tokio_times_out_a_hanging_attempt_and_retries_it() {
    let policy = Retry::builder()
        .max_attempts(3)
        .attempt_timeout(ms(50))
        .strategy(constant(ms(10)))
        .policy()
        .unwrap();
    let dropped = Arc::new(AtomicBool::new(false));
    let mut limits = Vec::new();
    let (r, report) = redress_tokio::call_with_report(&policy, async |a| {
        limits.push(a.time_limit);
        if a.n == 1 {
            let _flag = DropFlag(dropped.clone());
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        Ok::<_, io::Error>(a.n)
    })
    .await;
    assert_eq!(r.unwrap(), 2);
    assert!(
        dropped.load(Ordering::SeqCst),
        "the hung attempt was dropped"
    );
    assert_eq!(limits, [Some(ms(50)), Some(ms(50))]);
    assert_eq!(report.attempts, 2);
    assert_eq!(report.timeline[0].class, Some(ErrorClass::Transient));
    assert_eq!(report.timeline[0].sleep_after, Some(ms(10)));
    assert_eq!(report.timeline[0].elapsed, ms(50));
    assert_eq!(report.timeline[1].class, None);
    assert!(report.succeeded);
}

#[tokio::test(start_paused = true)]
async fn tokio_every_attempt_timing_out_keeps_timed_out_as_the_last_failure() {
    let policy = Retry::builder()
        .max_attempts(2)
        .attempt_timeout(ms(50))
        .strategy(constant(ms(10)))
        .policy()
        .unwrap();
    let e = redress_tokio::call(&policy, async |_| {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok::<u16, io::Error>(1)
    })
    .await
    .unwrap_err();
    assert_eq!(e.reason(), StopReason::MaxAttempts);
    assert_eq!(e.last_class(), Some(ErrorClass::Transient));
    assert!(matches!(e.last(), LastFailure::TimedOut));
}

#[test]
fn smol_times_out_a_hanging_attempt_with_a_real_timer() {
    let policy = Retry::builder()
        .max_attempts(3)
        .attempt_timeout(ms(20))
        .strategy(constant(ms(1)))
        .policy()
        .unwrap();
    let dropped = Arc::new(AtomicBool::new(false));
    let (r, report) = smol_guarded(redress_smol::call_with_report(&policy, async |a| {
        if a.n == 1 {
            let _flag = DropFlag(dropped.clone());
            smol::Timer::after(Duration::from_secs(10)).await;
        }
        Ok::<_, io::Error>(a.n)
    }));
    assert_eq!(r.unwrap(), 2);
    assert!(
        dropped.load(Ordering::SeqCst),
        "the hung attempt was dropped"
    );
    assert_eq!(report.attempts, 2);
    assert_eq!(report.timeline[0].class, Some(ErrorClass::Transient));
    assert!(report.timeline[0].elapsed >= ms(20), "{report:?}");
    assert!(report.succeeded);
}

#[test]
fn async_std_times_out_a_hanging_attempt_with_a_real_timer() {
    let policy = Retry::builder()
        .max_attempts(2)
        .attempt_timeout(ms(20))
        .strategy(constant(ms(1)))
        .policy()
        .unwrap();
    let call = redress_smol::call(&policy, async |_| {
        async_std::task::sleep(Duration::from_secs(10)).await;
        Ok::<u16, io::Error>(1)
    });
    let e = async_std::task::block_on(async_std::future::timeout(Duration::from_secs(30), call))
        .expect("hang guard")
        .unwrap_err();
    assert_eq!(e.reason(), StopReason::MaxAttempts);
    assert!(matches!(e.last(), LastFailure::TimedOut));
}

// ----- hooks -----------------------------------------------------------------------------

#[test]
fn on_attempt_sees_every_attempt_in_order() {
    let policy = every(Duration::from_secs(1), 4);
    for d in DRIVERS {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let ctx = policy
            .context("counted")
            .on_attempt(move |a| log.lock().unwrap().push((a.n, a.is_retry())));
        let sleeper = ManualSleeper::new(ManualClock::new(Instant::ZERO));
        let r = run_manual(d, &ctx, &sleeper, |a| {
            if a.n < 3 {
                Err(transient())
            } else {
                Ok(a.n as u16)
            }
        });
        assert_eq!(r.unwrap(), 3, "{d:?}");
        assert_eq!(
            *seen.lock().unwrap(),
            [(1, false), (2, true), (3, true)],
            "{d:?}"
        );
    }
}

#[test]
fn before_sleep_can_shorten_or_veto_on_every_driver() {
    let policy = every(Duration::from_secs(60), 3);
    let shorten = policy
        .context("s")
        .before_sleep(|_| SleepVerdict::Shorten(Duration::from_secs(1)));
    let veto = policy.context("v").before_sleep(|i| {
        if i.attempt >= 2 {
            SleepVerdict::Abort
        } else {
            SleepVerdict::Sleep
        }
    });
    for d in DRIVERS {
        let clock = ManualClock::new(Instant::ZERO);
        let sleeper = ManualSleeper::new(clock.clone());
        let e = run_manual(d, &shorten, &sleeper, |_| Err(transient())).unwrap_err();
        assert_eq!(e.reason(), StopReason::MaxAttempts, "{d:?}");
        assert_eq!(clock.now(), Instant::from_secs(2), "{d:?}: two 1 s sleeps");

        let clock = ManualClock::new(Instant::ZERO);
        let sleeper = ManualSleeper::new(clock.clone());
        let e = run_manual(d, &veto, &sleeper, |_| Err(transient())).unwrap_err();
        assert_eq!(
            (e.reason(), e.attempts()),
            (StopReason::Aborted, 2),
            "{d:?}"
        );
        assert_eq!(clock.now(), Instant::from_secs(60), "{d:?}: one full sleep");
        assert!(matches!(e.last(), LastFailure::Error(_)), "{d:?}");
    }
}

#[test]
fn panicking_hooks_are_contained_and_change_nothing() {
    let retry = || {
        Retry::builder()
            .max_attempts(4)
            .no_deadline()
            .strategy(constant(Duration::from_secs(1)))
    };
    let quiet = Policy::builder().retry(retry()).seed(7).build().unwrap();
    let loud = Policy::builder()
        .retry(retry())
        .seed(7)
        .hook(|_: &Event<'_>| panic!("policy hook panicked"))
        .build()
        .unwrap();
    let plain = quiet.context("hooks");
    let panicky = loud
        .context("hooks")
        .on_attempt(|_| panic!("on_attempt panicked"))
        .before_sleep(|_| panic!("before_sleep panicked"));
    for d in DRIVERS {
        for fail_until in [3, 10] {
            let script = |a: Attempt| {
                if a.n < fail_until {
                    Err(transient())
                } else {
                    Ok(a.n as u16)
                }
            };
            let outcome = |r: CallResult<u16, io::Error, redress::AcceptAll>| {
                r.map_err(|e| (e.reason(), e.attempts(), e.last_class()))
            };
            let c1 = ManualClock::new(Instant::ZERO);
            let expected = outcome(run_manual(
                d,
                &plain,
                &ManualSleeper::new(c1.clone()),
                script,
            ));
            let c2 = ManualClock::new(Instant::ZERO);
            let got = outcome(run_manual(
                d,
                &panicky,
                &ManualSleeper::new(c2.clone()),
                script,
            ));
            assert_eq!(got, expected, "{d:?}");
            assert_eq!(c2.now(), c1.now(), "{d:?}: the same sleeps");
        }
    }
}

// ----- deferral --------------------------------------------------------------------------

#[test]
fn deferred_calls_resume_where_they_stopped_on_every_driver() {
    let policy = every(Duration::from_secs(30), 3);
    let ctx = policy.context("job").deferring(true);
    for d in DRIVERS {
        let e = run_real(d, &ctx, None, |a| {
            assert_eq!(a.n, 1);
            Err(transient())
        })
        .unwrap_err();
        assert!(
            matches!(e.reason(), StopReason::Deferred { delay, .. } if delay == Duration::from_secs(30)),
            "{d:?}: {:?}",
            e.reason()
        );
        let state = e.state().unwrap().clone();
        assert_eq!(state.attempts, 1, "{d:?}");
        assert_eq!(state.attempts_of(ErrorClass::Transient), 1, "{d:?}");
        assert_eq!(state.total_sleep, Duration::from_secs(30), "{d:?}");

        // The re-delivered job continues at attempt 2 and is deferred again.
        let e = run_real(d, &ctx, Some(&state), |a| {
            assert_eq!(a.n, 2);
            Err(io::Error::from(io::ErrorKind::TimedOut))
        })
        .unwrap_err();
        assert!(matches!(e.reason(), StopReason::Deferred { .. }), "{d:?}");
        assert_eq!(e.attempts(), 2, "{d:?}");
        let state = e.state().unwrap().clone();
        assert_eq!(state.attempts, 2, "{d:?}");
        assert_eq!(state.total_sleep, Duration::from_secs(60), "{d:?}");

        // The third delivery is the last attempt: success, or the attempts run out.
        let v = run_real(d, &ctx, Some(&state), |a| Ok(a.n as u16)).unwrap();
        assert_eq!(v, 3, "{d:?}");
        let e = run_real(d, &ctx, Some(&state), |_| Err(transient())).unwrap_err();
        assert_eq!(
            (e.reason(), e.attempts()),
            (StopReason::MaxAttempts, 3),
            "{d:?}"
        );
        assert!(
            e.state().is_none(),
            "{d:?}: only deferred calls carry state"
        );
    }
}

// ----- result-based retries --------------------------------------------------------------

#[test]
fn rejected_values_are_retried_and_the_last_is_returned_on_every_driver() {
    let policy = every(Duration::ZERO, 3);
    let ctx = policy
        .context("status")
        .classify_result(|r: &u16| (*r == 503).then_some(ErrorClass::ServerError));
    for d in DRIVERS {
        let mut statuses = [503u16, 503, 200].into_iter();
        let v = run_real(d, &ctx, None, |_| Ok(statuses.next().unwrap())).unwrap();
        assert_eq!(v, 200, "{d:?}");

        let mut calls = 0;
        let e = run_real(d, &ctx, None, |_| {
            calls += 1;
            Ok(503)
        })
        .unwrap_err();
        assert_eq!(calls, 3, "{d:?}");
        assert_eq!(e.reason(), StopReason::MaxAttempts, "{d:?}");
        assert_eq!(e.last_class(), Some(ErrorClass::ServerError), "{d:?}");
        assert_eq!(e.value(), Some(&503), "{d:?}");
        assert_eq!(e.into_value(), Some(503), "{d:?}");
    }
}

// ----- reports ---------------------------------------------------------------------------

fn check_success_report(report: &redress::CallReport, what: &str) {
    assert!(report.succeeded, "{what}");
    assert_eq!(report.stop, None, "{what}");
    assert_eq!(report.attempts, 2, "{what}");
    let classes: Vec<_> = report.timeline.iter().map(|r| r.class).collect();
    assert_eq!(classes, [Some(ErrorClass::Transient), None], "{what}");
    let sleeps: Vec<_> = report.timeline.iter().map(|r| r.sleep_after).collect();
    assert_eq!(sleeps, [Some(ms(1)), None], "{what}");
    assert_eq!(report.total_sleep, ms(1), "{what}");
    assert!(report.elapsed >= ms(1), "{what}");
}

#[test]
fn reports_cover_successes_too_on_every_driver() {
    let policy = every(ms(1), 3);
    let script = |n: &mut u16| {
        *n += 1;
        if *n == 1 { Err(transient()) } else { Ok(*n) }
    };

    let mut n = 0;
    let (r, report) = redress_blocking::call_with_report(&policy, |_| script(&mut n));
    assert_eq!(r.unwrap(), 2);
    check_success_report(&report, "blocking");

    let mut n = 0;
    let (r, report) = tokio_rt().block_on(redress_tokio::call_with_report(&policy, async |_| {
        script(&mut n)
    }));
    assert_eq!(r.unwrap(), 2);
    check_success_report(&report, "tokio");

    let mut n = 0;
    let (r, report) = smol_guarded(redress_smol::call_with_report(&policy, async |_| {
        script(&mut n)
    }));
    assert_eq!(r.unwrap(), 2);
    check_success_report(&report, "smol");

    // A first-attempt success is reported as well (the bare path is not taken).
    let (r, report) = redress_blocking::call_with_report(&policy, |_| Ok::<_, io::Error>(1));
    assert_eq!(r.unwrap(), 1);
    assert!(report.succeeded);
    assert_eq!(report.attempts, 1);
    assert_eq!(report.timeline.len(), 1);
    assert_eq!(report.timeline[0].class, None);
}

#[tokio::test(start_paused = true)]
async fn tokio_runs_a_long_schedule_instantly_on_the_paused_clock() {
    let policy = every(Duration::from_secs(10), 3);
    let wall = std::time::Instant::now();
    let start = tokio::time::Instant::now();
    let mut n = 0;
    let (r, report) = redress_tokio::call_with_report(&policy, async |_| {
        n += 1;
        if n < 3 { Err(transient()) } else { Ok(n) }
    })
    .await;
    assert_eq!(r.unwrap(), 3);
    assert_eq!(report.attempts, 3);
    let sleeps: Vec<_> = report.timeline.iter().map(|r| r.sleep_after).collect();
    let ten = Some(Duration::from_secs(10));
    assert_eq!(sleeps, [ten, ten, None], "the strategy's sleeps");
    assert_eq!(report.total_sleep, Duration::from_secs(20));
    assert!(report.succeeded);
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(20),
        "virtual time only"
    );
    // A hang guard rather than a timing assertion: 20 s of sleeps took no real 20 s.
    assert!(wall.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_call_future_holds_its_first_attempt_and_boxes_the_retry_loop() {
    // The machine and the retry loop are boxed once a call goes on, and the context of
    // `call` holds no classifier state, so the future every call builds (and moves) stays
    // small: 1536 bytes with the machine in it, about 430 now.
    let policy = Policy::default();
    let tokio = redress_tokio::call(&policy, async |_| Ok::<_, io::Error>(1));
    let smol = redress_smol::call(&policy, async |_| Ok::<_, io::Error>(1));
    assert!(size_of_val(&tokio) <= 512, "{} bytes", size_of_val(&tokio));
    assert!(size_of_val(&smol) <= 512, "{} bytes", size_of_val(&smol));
    // Both still run: a failure goes through the boxed loop to the retry's success.
    let ctx = redress::CallContext::new(&policy);
    let mut n = 0;
    let r = tokio_rt().block_on(redress_tokio::RunAsync::run_with(
        &ctx,
        &ManualSleeper::default(),
        async |_| {
            n += 1;
            if n == 1 {
                Err(io::Error::from(io::ErrorKind::ConnectionReset))
            } else {
                Ok(n)
            }
        },
    ));
    assert_eq!(r.unwrap(), 2);
    drop((tokio, smol));
}

#[test]
fn a_coarse_reading_behind_the_end_of_the_open_state_does_not_refuse_the_call() {
    // Opened at 0 with a 1 s recovery; the precise clock reads 1.002 s, the coarse one
    // 0.998 s. Refusing on the coarse reading would name an `until` already past (and a
    // caller sleeping until it would spin): the call is admitted as the probe instead.
    let make = || {
        let breaker = Arc::new(
            CircuitBreaker::consecutive(1, Duration::from_secs(10))
                .recovery(Duration::from_secs(1))
                .build()
                .unwrap(),
        );
        redress_tests::trip_at_zero(&breaker);
        let policy = Policy::builder()
            .retry(Retry::builder().no_deadline())
            .breaker(breaker)
            .build()
            .unwrap();
        assert!(!policy.needs_precise_clock());
        (
            policy,
            CountingClock::new(Instant::from_millis(1002), Duration::from_millis(4)),
        )
    };
    let (policy, clock) = make();
    let r = redress_blocking::RunBlocking::run_with(&policy.context("probe"), &clock, |_| {
        Ok::<_, io::Error>(1)
    });
    assert_eq!(r.unwrap(), 1, "blocking");
    assert_eq!(policy.breaker().unwrap().state(), CircuitState::Closed);
    for driver in ["tokio", "smol"] {
        let (policy, clock) = make();
        let ctx = policy.context("probe");
        let r = match driver {
            "tokio" => tokio_rt().block_on(redress_tokio::RunAsync::run_with(
                &ctx,
                &clock,
                async |_| Ok::<_, io::Error>(1),
            )),
            _ => smol::block_on(redress_smol::RunAsync::run_with(&ctx, &clock, async |_| {
                Ok::<_, io::Error>(1)
            })),
        };
        assert_eq!(r.unwrap(), 1, "{driver}");
        assert_eq!(
            policy.breaker().unwrap().state(),
            CircuitState::Closed,
            "{driver}"
        );
    }
    // A refusal far from the end of the open state stands on the coarse reading alone.
    let (policy, _) = make();
    let clock = CountingClock::new(Instant::from_millis(500), Duration::from_millis(4));
    let r = redress_blocking::RunBlocking::run_with(&policy.context("early"), &clock, |_| {
        Ok::<_, io::Error>(1)
    });
    assert!(r.unwrap_err().is_circuit_open());
    assert_eq!(clock.counts().0, 0, "no precise read");
}

#[test]
fn breakers_and_budgets_that_measure_short_times_keep_the_precise_clock() {
    // A coarse reading lags by up to a tick (≤ 10 ms): fine for 1 s buckets, not for 4 ms.
    let budget = |window_ms| {
        Policy::builder()
            .retry(
                Retry::builder().no_deadline().budget(Arc::new(
                    Budget::ratio(0.5, 0.0, Duration::from_millis(window_ms))
                        .build()
                        .unwrap(),
                )),
            )
            .build()
            .unwrap()
    };
    assert!(!budget(10_000).needs_precise_clock());
    assert!(budget(40).needs_precise_clock());
    let breaker = |window: Duration, recovery: Duration| {
        Policy::builder()
            .retry(Retry::builder().no_deadline())
            .breaker(Arc::new(
                CircuitBreaker::failure_rate(0.5, 2, window)
                    .recovery(recovery)
                    .build()
                    .unwrap(),
            ))
            .build()
            .unwrap()
    };
    let s = Duration::from_secs;
    assert!(!breaker(s(10), s(30)).needs_precise_clock());
    assert!(breaker(Duration::from_millis(400), s(30)).needs_precise_clock());
    assert!(breaker(s(10), Duration::from_millis(50)).needs_precise_clock());
    // A deadline always needs it.
    assert!(Retry::builder().policy().unwrap().needs_precise_clock());
}
