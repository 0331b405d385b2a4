//! Driver behaviour beyond the conformance table: abort handles, panics, timeouts on
//! tokio's paused clock, deferral and resumption, result-based retries and reports.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)]

use std::io;
use std::sync::Arc;
use std::time::Duration;

use redress::backoff::constant;
use redress::breaker::BreakerOutcome;
use redress::drive::{ManualSleeper, SleepVerdict};
use redress::{
    AbortHandle, CircuitBreaker, CircuitState, Clock, ErrorClass, Instant, ManualClock, Policy,
    Retry, StopReason,
};

fn transient() -> io::Error {
    io::Error::from(io::ErrorKind::ConnectionReset)
}

fn every(d: Duration, attempts: u32) -> Policy {
    Retry::builder()
        .max_attempts(attempts)
        .no_deadline()
        .strategy(constant(d))
        .policy()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn tokio_runs_a_long_schedule_instantly_on_the_paused_clock() {
    let policy = every(Duration::from_secs(10), 3);
    let start = tokio::time::Instant::now();
    let mut n = 0;
    let (r, report) = redress_tokio::call_with_report(&policy, async |_| {
        n += 1;
        if n < 3 { Err(transient()) } else { Ok(n) }
    })
    .await;
    assert_eq!(r.unwrap(), 3);
    assert_eq!(report.attempts, 3);
    assert_eq!(report.total_sleep, Duration::from_secs(20));
    assert!(report.succeeded);
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(20),
        "virtual time only"
    );
}

#[tokio::test(start_paused = true)]
async fn tokio_times_out_a_hanging_attempt_and_retries_it() {
    let policy = Retry::builder()
        .max_attempts(3)
        .attempt_timeout(Duration::from_millis(50))
        .strategy(constant(Duration::from_millis(10)))
        .policy()
        .unwrap();
    let mut n = 0;
    let (r, report) = redress_tokio::call_with_report(&policy, async |a| {
        n += 1;
        if a.n == 1 {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        Ok::<_, io::Error>(a.n)
    })
    .await;
    assert_eq!(r.unwrap(), 2);
    assert_eq!(n, 2);
    assert_eq!(report.timeline[0].class, Some(ErrorClass::Transient));
    assert_eq!(report.timeline[0].elapsed, Duration::from_millis(50));
}

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
    assert!(start.elapsed() < Duration::from_secs(2), "woke on abort");
}

#[test]
fn blocking_abort_wakes_a_sleeping_thread() {
    use redress_blocking::RunBlocking;
    let policy = every(Duration::from_secs(3600), 5);
    let abort = AbortHandle::new();
    let ctx = policy.context("abortable").abort_handle(abort.clone());
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        abort.abort();
    });
    // A hang guard only: without the abort this would sleep for an hour.
    let e = ctx.run(|_| Err::<(), _>(transient())).unwrap_err();
    t.join().unwrap();
    assert_eq!(e.reason(), StopReason::Aborted);
}

#[test]
fn an_aborted_handle_runs_no_attempt() {
    use redress_blocking::RunBlocking;
    let policy = every(Duration::ZERO, 5);
    let abort = AbortHandle::new();
    abort.abort();
    let ctx = policy.context("abortable").abort_handle(abort);
    let mut ran = 0;
    let e = ctx
        .run(|_| {
            ran += 1;
            Ok::<_, io::Error>(())
        })
        .unwrap_err();
    assert_eq!((e.reason(), e.attempts(), ran), (StopReason::Aborted, 0, 0));
}

#[test]
fn a_panicking_blocking_op_leaves_the_breaker_usable() {
    let breaker = Arc::new(
        CircuitBreaker::consecutive(1, Duration::from_secs(60))
            .recovery(Duration::from_millis(1))
            .build()
            .unwrap(),
    );
    let p = breaker.try_acquire(Instant::ZERO).unwrap();
    breaker.record(
        Instant::ZERO,
        p,
        BreakerOutcome::Failure(ErrorClass::Transient),
    );
    let policy = Policy::builder()
        .retry(Retry::builder().strategy(constant(Duration::ZERO)))
        .breaker(breaker.clone())
        .build()
        .unwrap();
    std::thread::sleep(Duration::from_millis(5));
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = redress_blocking::call(&policy, |_| -> Result<(), io::Error> {
            panic!("op panicked while holding the half-open probe")
        });
    }));
    assert!(panicked.is_err());
    assert_eq!(breaker.state(), CircuitState::HalfOpen);
    // The probe slot came back: a new call is admitted and closes the breaker.
    redress_blocking::call(&policy, |_| Ok::<_, io::Error>(())).unwrap();
    assert_eq!(breaker.state(), CircuitState::Closed);
}

#[test]
fn before_sleep_can_shorten_or_veto_on_every_driver() {
    let policy = every(Duration::from_secs(60), 3);
    let clock = ManualClock::new(Instant::ZERO);
    let sleeper = ManualSleeper::new(clock.clone());
    let shorten = policy
        .context("s")
        .before_sleep(|_| SleepVerdict::Shorten(Duration::from_secs(1)));
    let veto = policy.context("v").before_sleep(|_| SleepVerdict::Abort);

    let r =
        redress_blocking::RunBlocking::run_with(&shorten, &sleeper, |_| Err::<(), _>(transient()));
    assert_eq!(r.unwrap_err().reason(), StopReason::MaxAttempts);
    assert_eq!(clock.now(), Instant::from_secs(2), "two 1 s sleeps");

    let r = smol::block_on(redress_smol::RunAsync::run_with(
        &shorten,
        &sleeper,
        async |_| Err::<(), _>(transient()),
    ));
    assert_eq!(r.unwrap_err().reason(), StopReason::MaxAttempts);
    assert_eq!(clock.now(), Instant::from_secs(4));

    let r = redress_blocking::RunBlocking::run_with(&veto, &sleeper, |_| Err::<(), _>(transient()));
    let e = r.unwrap_err();
    assert_eq!((e.reason(), e.attempts()), (StopReason::Aborted, 1));
    let r = smol::block_on(redress_smol::RunAsync::run_with(
        &veto,
        &sleeper,
        async |_| Err::<(), _>(transient()),
    ));
    assert_eq!(r.unwrap_err().reason(), StopReason::Aborted);
}

#[test]
fn deferred_calls_resume_where_they_stopped_on_every_driver() {
    use redress_blocking::RunBlocking;
    let policy = every(Duration::from_secs(30), 4);
    let ctx = policy.context("job").deferring(true);

    let e = ctx.run(|_| Err::<u32, _>(transient())).unwrap_err();
    assert!(
        matches!(e.reason(), StopReason::Deferred { delay, .. } if delay == Duration::from_secs(30))
    );
    let state = e.state().unwrap().clone();
    assert_eq!(state.attempts, 1);

    // The re-delivered job continues at attempt 2 and is deferred again.
    let e = ctx
        .resume(&state, |a| {
            assert_eq!(a.n, 2);
            Err::<u32, _>(transient())
        })
        .unwrap_err();
    let state = e.state().unwrap().clone();
    assert_eq!(state.attempts, 2);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let n = rt
        .block_on(redress_tokio::RunAsync::resume(&ctx, &state, async |a| {
            Ok::<_, io::Error>(a.n)
        }))
        .unwrap();
    assert_eq!(n, 3);
    let n = smol::block_on(redress_smol::RunAsync::resume(&ctx, &state, async |a| {
        Ok::<_, io::Error>(a.n)
    }))
    .unwrap();
    assert_eq!(n, 3);
}

#[test]
fn rejected_values_are_retried_and_the_last_is_returned() {
    use redress_blocking::RunBlocking;
    let policy = every(Duration::ZERO, 3);
    let ctx = policy
        .context("status")
        .classify_result(|s: &u16| (*s == 503).then_some(ErrorClass::ServerError));
    let mut statuses = [503u16, 503, 200].into_iter();
    assert_eq!(
        ctx.run(|_| Ok::<_, io::Error>(statuses.next().unwrap()))
            .unwrap(),
        200
    );
    let e = ctx.run(|_| Ok::<_, io::Error>(503)).unwrap_err();
    assert_eq!(e.reason(), StopReason::MaxAttempts);
    assert_eq!(e.into_value(), Some(503));
}

#[test]
fn reports_cover_successes_too() {
    let policy = every(Duration::from_millis(1), 3);
    let mut n = 0;
    let (r, report) = redress_blocking::call_with_report(&policy, |_| {
        n += 1;
        if n == 1 { Err(transient()) } else { Ok(n) }
    });
    assert_eq!(r.unwrap(), 2);
    assert!(report.succeeded);
    assert_eq!(report.attempts, 2);
    assert_eq!(report.timeline.len(), 2);
    assert_eq!(report.timeline[0].class, Some(ErrorClass::Transient));
    assert_eq!(
        report.timeline[0].sleep_after,
        Some(Duration::from_millis(1))
    );
    assert_eq!(report.timeline[1].class, None);
}
