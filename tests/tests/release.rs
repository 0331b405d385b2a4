//! Rejected values released before a retry (`ResultCheck::release_before_retry`,
//! `CallContext::release_rejected`) and the per-call attempt cap
//! (`CallContext::max_attempts`, `PolicyMachine::with_max_attempts`).
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)]

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redress::backoff::constant;
use redress::drive::{ManualSleeper, ResultCheck, SleepVerdict};
use redress::{
    Classification, Decision, ErrorClass, LastFailure, ManualClock, Outcome, Policy, Retry,
    StopReason,
};
use redress_tokio::RunAsync;

/// A response-like value that counts its drops (a body holding a pooled connection).
#[derive(Debug)]
struct Body {
    status: u16,
    drops: Arc<AtomicUsize>,
}

impl Drop for Body {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

fn rejects_5xx(b: &Body) -> Option<ErrorClass> {
    (b.status >= 500).then_some(ErrorClass::ServerError)
}

fn every_second(attempts: u32) -> Policy {
    Retry::builder()
        .max_attempts(attempts)
        .no_deadline()
        .strategy(constant(Duration::from_secs(1)))
        .policy()
        .unwrap()
}

/// What the operation and the `before_sleep` hook saw: drops counted at each point.
#[derive(Debug, Default)]
struct Seen {
    /// Drops counted when attempt n (index n - 1) started.
    at_attempt: Vec<usize>,
    /// Drops counted when each sleep was announced.
    at_sleep: Vec<usize>,
}

/// Runs a call whose attempts return 503 bodies until `ok_at` (if any) on tokio's paused
/// clock, with or without releasing rejected values.
async fn run(
    release: bool,
    attempts: u32,
    ok_at: Option<usize>,
) -> (
    Result<Body, redress::RetryError<io::Error, Body>>,
    Arc<AtomicUsize>,
    Seen,
) {
    let policy = every_second(attempts);
    let drops = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let hook_seen = Arc::clone(&seen);
    let hook_drops = Arc::clone(&drops);
    let ctx = policy
        .context("release")
        .classify_result(rejects_5xx)
        .before_sleep(move |_| {
            let n = hook_drops.load(Ordering::SeqCst);
            hook_seen.lock().unwrap().at_sleep.push(n);
            SleepVerdict::Sleep
        });
    let op = {
        let drops = Arc::clone(&drops);
        let seen = Arc::clone(&seen);
        async move |a: redress::Attempt| {
            seen.lock()
                .unwrap()
                .at_attempt
                .push(drops.load(Ordering::SeqCst));
            let ok = ok_at.is_some_and(|n| a.n as usize == n);
            Ok::<_, io::Error>(Body {
                status: if ok { 200 } else { 503 },
                drops: Arc::clone(&drops),
            })
        }
    };
    let result = if release {
        ctx.release_rejected().run(op).await
    } else {
        ctx.run(op).await
    };
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    (result, drops, seen)
}

#[tokio::test(start_paused = true)]
async fn a_released_value_is_dropped_before_the_sleep_and_the_next_attempt() {
    let (result, drops, seen) = run(true, 3, Some(3)).await;
    let body = result.unwrap();
    assert_eq!(body.status, 200);
    // Attempt 1's body was gone when its sleep was announced, attempt 2's likewise.
    assert_eq!(seen.at_sleep, [1, 2]);
    assert_eq!(seen.at_attempt, [0, 1, 2]);
    assert_eq!(drops.load(Ordering::SeqCst), 2);
    drop(body);
    assert_eq!(drops.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn by_default_a_rejected_value_is_kept_until_the_next_attempt_ends() {
    let (result, drops, seen) = run(false, 3, Some(3)).await;
    assert_eq!(result.unwrap().status, 200);
    // Unchanged behaviour: attempt n's body lives until attempt n + 1 has failed.
    assert_eq!(seen.at_sleep, [0, 1]);
    assert_eq!(seen.at_attempt, [0, 0, 1]);
    assert_eq!(drops.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn the_last_rejected_value_is_kept_for_the_error_either_way() {
    for release in [true, false] {
        let (result, drops, seen) = run(release, 3, None).await;
        let err = result.unwrap_err();
        assert_eq!(err.reason(), StopReason::MaxAttempts);
        assert_eq!(err.attempts(), 3);
        assert_eq!(err.last_class(), Some(ErrorClass::ServerError));
        assert_eq!(seen.at_attempt.len(), 3, "release={release}");
        // The two retried bodies are gone; the third is in the error.
        assert_eq!(drops.load(Ordering::SeqCst), 2, "release={release}");
        let body = err.into_value().unwrap();
        assert_eq!(body.status, 503);
        drop(body);
        assert_eq!(drops.load(Ordering::SeqCst), 3);
    }
}

#[test]
fn the_blocking_driver_releases_too() {
    let policy = every_second(2);
    let drops = Arc::new(AtomicUsize::new(0));
    let sleeper = ManualSleeper::new(ManualClock::new(redress::Instant::ZERO));
    let ctx = policy
        .context("release")
        .classify_result(rejects_5xx)
        .release_rejected();
    let mut seen = Vec::new();
    let r: Result<Body, _> = redress_blocking::RunBlocking::run_with(&ctx, &sleeper, |a| {
        seen.push(drops.load(Ordering::SeqCst));
        Ok::<_, io::Error>(Body {
            status: if a.n == 2 { 200 } else { 503 },
            drops: Arc::clone(&drops),
        })
    });
    assert_eq!(r.unwrap().status, 200);
    assert_eq!(seen, [0, 1]);
}

#[test]
fn releasing_keeps_the_wrapped_check_and_only_changes_the_release() {
    let check = redress::drive::Releasing(redress::drive::ByResult(rejects_5xx));
    assert!(check.release_before_retry());
    assert!(!redress::drive::ByResult(rejects_5xx).release_before_retry());
    assert!(!ResultCheck::<Body>::release_before_retry(
        &redress::AcceptAll
    ));
    let drops = Arc::new(AtomicUsize::new(0));
    let (c, kept) = check
        .check(Body {
            status: 502,
            drops: Arc::clone(&drops),
        })
        .unwrap_err();
    assert_eq!(c, Classification::new(ErrorClass::ServerError));
    assert_eq!(kept.status, 502);
}

#[tokio::test(start_paused = true)]
async fn a_call_stopped_during_a_released_sleep_keeps_its_class_but_no_value() {
    let policy = every_second(3);
    let drops = Arc::new(AtomicUsize::new(0));
    let handle = redress::AbortHandle::new();
    let aborter = handle.clone();
    let ctx = policy
        .context("release")
        .classify_result(rejects_5xx)
        .release_rejected()
        .abort_handle(handle)
        .before_sleep(move |_| {
            aborter.abort();
            SleepVerdict::Sleep
        });
    let err = ctx
        .run(async |_| {
            Ok::<_, io::Error>(Body {
                status: 503,
                drops: Arc::clone(&drops),
            })
        })
        .await
        .unwrap_err();
    assert_eq!(err.reason(), StopReason::Aborted);
    assert_eq!(err.attempts(), 1);
    assert_eq!(err.last_class(), Some(ErrorClass::ServerError));
    assert!(matches!(err.last(), LastFailure::Nothing));
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

// ----- the per-call attempt cap ---------------------------------------------------------

fn reset() -> io::Error {
    io::Error::from(io::ErrorKind::ConnectionReset)
}

#[tokio::test(start_paused = true)]
async fn a_call_capped_at_one_attempt_is_never_retried() {
    let policy = every_second(5);
    let ctx = policy.context("once").max_attempts(1);
    let mut calls = 0;
    let err = ctx
        .run(async |_| {
            calls += 1;
            Err::<(), _>(reset())
        })
        .await
        .unwrap_err();
    assert_eq!(calls, 1);
    assert_eq!(err.reason(), StopReason::MaxAttempts);
    assert_eq!(err.attempts(), 1);
    assert_eq!(err.last_class(), Some(ErrorClass::Transient));
}

#[test]
fn the_cap_only_ever_lowers_the_policys_max_attempts() {
    // (policy max_attempts, per-call cap, attempts that run against a dependency that
    // always fails)
    let table: [(u32, Option<u32>, u32); 6] = [
        (5, None, 5),
        (5, Some(0), 1),
        (5, Some(1), 1),
        (5, Some(3), 3),
        (5, Some(5), 5),
        (2, Some(9), 2),
    ];
    for (max, cap, expected) in table {
        let policy = Retry::builder()
            .max_attempts(max)
            .no_deadline()
            .strategy(constant(Duration::ZERO))
            .policy()
            .unwrap();
        let ctx = policy.context("cap");
        let ctx = match cap {
            Some(n) => ctx.max_attempts(n),
            None => ctx,
        };
        let sleeper = ManualSleeper::new(ManualClock::new(redress::Instant::ZERO));
        let mut calls = 0;
        let err = redress_blocking::RunBlocking::run_with(&ctx, &sleeper, |_| {
            calls += 1;
            Err::<(), _>(reset())
        })
        .unwrap_err();
        assert_eq!(calls, expected, "max={max} cap={cap:?}");
        assert_eq!(
            err.reason(),
            StopReason::MaxAttempts,
            "max={max} cap={cap:?}"
        );
    }
}

#[test]
fn the_machine_stops_at_its_cap_before_spending_budget() {
    let budget = Arc::new(
        redress::Budget::rolling(10, Duration::from_secs(10))
            .build()
            .unwrap(),
    );
    let policy = Retry::builder()
        .max_attempts(5)
        .no_deadline()
        .strategy(constant(Duration::from_secs(1)))
        .budget(Arc::clone(&budget))
        .policy()
        .unwrap();
    let now = redress::Instant::ZERO;
    let before = budget.remaining(now);
    let mut m = policy.machine().with_max_attempts(2);
    assert!(matches!(m.start(now), Decision::Attempt { n: 1, .. }));
    let d = m.on_outcome(now, Outcome::failure(ErrorClass::Transient));
    assert!(matches!(d, Decision::Sleep { .. }));
    let later = redress::Instant::from_secs(1);
    assert!(matches!(m.on_wake(later), Decision::Attempt { n: 2, .. }));
    let d = m.on_outcome(later, Outcome::failure(ErrorClass::Transient));
    assert_eq!(d, Decision::Failed(StopReason::MaxAttempts));
    // One retry was paid for; the capped one was not.
    assert_eq!(budget.remaining(later), before - 1);
}
