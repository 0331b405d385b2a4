//! Scenarios: handing retries to a job queue. A deferring machine ends the call with
//! `Deferred { retry_at, delay }` instead of sleeping; `state()` is what the queue saves, and
//! `Policy::resume(&state)` continues the call with its attempt numbers, counts and deadline.
#![allow(clippy::unwrap_used)]
#![forbid(unsafe_code)]

use std::sync::{Arc, Mutex};

use redress::backoff::{BackoffContext, constant};
use redress::{
    BreakerScope, Budget, CircuitBreaker, CircuitState, Decision, ErrorClass, Instant, Policy,
    Retry, RetryBuilder, RetryState, StopReason,
};
use redress_tests::scenario::{Step, Trace, at, drive_machine, fail, ms, ok, secs};

use ErrorClass::{Transient, Unknown};

fn policy(b: RetryBuilder) -> Policy {
    b.policy().unwrap()
}

/// Runs one job: a deferring machine of `p` (fresh, or resumed from `state`) at `now`.
fn job(p: &Policy, state: Option<&RetryState>, now: Instant, step: Step) -> Trace {
    let m = match state {
        Some(s) => p.resume(s),
        None => p.machine(),
    };
    drive_machine(p, m.deferring(true), now, [step])
}

#[test]
fn a_deferring_machine_stops_with_the_retry_time_instead_of_sleeping() {
    let p = policy(Retry::builder().strategy(constant(ms(100))));
    let t = job(&p, None, at(0), fail(Transient).after(ms(20)));
    assert_eq!(
        t.decisions(),
        [
            Decision::Attempt {
                n: 1,
                deadline: Some(Instant::from_secs(60))
            },
            Decision::Failed(StopReason::Deferred {
                retry_at: at(120),
                delay: ms(100)
            }),
        ]
    );
    assert!(t.sleeps().is_empty());
    assert_eq!(
        t.event_names(),
        ["deferred"],
        "no retry event: this call ends here"
    );
    let e = &t.events()[0];
    assert_eq!(
        (e.attempt, e.class, e.elapsed),
        (1, Some(Transient), ms(20))
    );

    let s = &t.state;
    assert_eq!(s.attempts, 1);
    assert_eq!(s.elapsed, ms(120), "the planned delay counts as used time");
    assert_eq!(s.attempts_of(Transient), 1);
    assert_eq!(s.prev_sleep, Some(ms(100)));
    assert_eq!(s.last_class, Some(Transient));
    assert_eq!(s.total_sleep, ms(100));
}

#[test]
fn a_resumed_call_continues_its_attempt_numbers_and_deadline() {
    let p = policy(Retry::builder().strategy(constant(ms(100))));
    let first = job(&p, None, at(0), fail(Transient).after(ms(20)));

    // The queue runs the job later, on its own clock.
    let t = job(&p, Some(&first.state), at(7000), fail(Transient));
    assert_eq!(
        t.decisions(),
        [
            Decision::Attempt {
                n: 2,
                // 60 s minus the 120 ms already used.
                deadline: Some(at(7000 + 60_000 - 120))
            },
            Decision::Failed(StopReason::Deferred {
                retry_at: at(7100),
                delay: ms(100)
            }),
        ]
    );
    assert_eq!(t.state.attempts, 2);
    assert_eq!(t.state.elapsed, ms(220));
    assert_eq!(t.state.total_sleep, ms(200));
    assert_eq!(t.state.attempts_of(Transient), 2);
    assert_eq!(t.events()[0].elapsed, ms(120), "elapsed carries over too");
}

#[test]
fn a_job_queue_runs_the_call_to_max_attempts_across_deliveries() {
    let p = policy(Retry::builder().max_attempts(4).strategy(constant(secs(1))));
    let mut state: Option<RetryState> = None;
    let mut now = at(0);
    let mut attempts = Vec::new();
    let last = loop {
        let t = job(&p, state.as_ref(), now, fail(Transient));
        if let Decision::Attempt { n, .. } = t.decisions()[0] {
            attempts.push(n);
        }
        match t.last() {
            Decision::Failed(StopReason::Deferred { retry_at, .. }) => {
                now = retry_at;
                state = Some(t.state);
            }
            other => break other,
        }
    };
    assert_eq!(attempts, [1, 2, 3, 4]);
    assert_eq!(last, Decision::Failed(StopReason::MaxAttempts));
    assert_eq!(now, at(3000));
}

#[test]
fn the_last_allowed_attempt_is_not_deferred() {
    let p = policy(Retry::builder().max_attempts(2).strategy(constant(ms(100))));
    let first = job(&p, None, at(0), fail(Transient));
    let t = job(&p, Some(&first.state), at(500), fail(Transient));
    assert_eq!(t.last(), Decision::Failed(StopReason::MaxAttempts));
    assert_eq!(t.event_names(), ["max_attempts"]);
}

#[test]
fn per_class_counts_survive_a_deferral() {
    let p = policy(Retry::builder().strategy(constant(ms(100))));
    let first = job(&p, None, at(0), fail(Unknown));
    assert_eq!(first.state.attempts_of(Unknown), 1);
    let t = job(&p, Some(&first.state), at(100), fail(Unknown));
    assert_eq!(t.last(), Decision::Failed(StopReason::MaxUnknownAttempts));
    assert_eq!(t.state.attempts_of(Unknown), 2);
}

#[test]
fn a_resumed_call_keeps_the_deadline_of_the_original_call() {
    let p = policy(
        Retry::builder()
            .deadline(secs(1))
            .strategy(constant(ms(400))),
    );
    let first = job(&p, None, at(0), fail(Transient));
    assert_eq!(
        first.last(),
        Decision::Failed(StopReason::Deferred {
            retry_at: at(400),
            delay: ms(400)
        })
    );
    // 600 ms are left. After a 300 ms attempt, a 400 ms delay would pass the deadline.
    let t = job(
        &p,
        Some(&first.state),
        at(5000),
        fail(Transient).after(ms(300)),
    );
    assert_eq!(
        t.decisions(),
        [
            Decision::Attempt {
                n: 2,
                deadline: Some(at(5600))
            },
            Decision::Failed(StopReason::DeadlineExceeded),
        ]
    );
}

#[test]
fn a_call_resumed_after_its_deadline_stops_without_an_attempt() {
    let p = policy(
        Retry::builder()
            .deadline(secs(1))
            .strategy(constant(ms(100))),
    );
    let first = job(&p, None, at(0), fail(Transient).after(ms(500)));
    let mut state = first.state;
    // The queue adds the time the job waited beyond its retry time.
    state.elapsed = secs(1);
    let t = job(&p, Some(&state), at(9000), ok());
    assert_eq!(
        t.decisions(),
        [Decision::Failed(StopReason::DeadlineExceeded)]
    );
    assert_eq!(t.unused, 1);
    let e = &t.events()[0];
    assert_eq!(e.kind.name(), "deadline_exceeded");
    assert_eq!((e.attempt, e.class), (1, Some(Transient)));
}

#[test]
fn a_resumed_call_may_sleep_instead_and_its_strategy_sees_the_previous_delay() {
    let seen: Arc<Mutex<Vec<BackoffContext>>> = Arc::default();
    let log = Arc::clone(&seen);
    let p = policy(
        Retry::builder()
            .no_deadline()
            .strategy(move |ctx: &BackoffContext| {
                log.lock().unwrap().push(*ctx);
                ms(100) * ctx.attempt
            }),
    );
    let first = job(&p, None, at(0), fail(Transient));
    // Resumed without deferring: the rest of the call sleeps in-process.
    let t = drive_machine(
        &p,
        p.resume(&first.state),
        at(1000),
        [fail(Transient), ok()],
    );
    assert_eq!(
        t.decisions(),
        [
            Decision::Attempt {
                n: 2,
                deadline: None
            },
            Decision::Sleep {
                until: at(1200),
                delay: ms(200)
            },
            Decision::Attempt {
                n: 3,
                deadline: None
            },
            Decision::Succeeded,
        ]
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].attempt, 2);
    assert_eq!(seen[1].prev_sleep, Some(ms(100)));
    assert_eq!(seen[1].elapsed, ms(100));
}

#[test]
fn a_resumed_call_makes_no_new_deposit_in_a_ratio_budget() {
    let budget = Arc::new(Budget::ratio(1.0, 0.0, secs(10)).build().unwrap());
    let p = policy(
        Retry::builder()
            .strategy(constant(ms(100)))
            .budget(Arc::clone(&budget)),
    );
    // The call's one deposit pays for one retry…
    let first = job(&p, None, at(0), fail(Transient));
    assert!(matches!(
        first.last(),
        Decision::Failed(StopReason::Deferred { .. })
    ));
    // …and its resumption is the same call, not a new one.
    let t = job(&p, Some(&first.state), at(100), fail(Transient));
    assert_eq!(t.last(), Decision::Failed(StopReason::BudgetExhausted));
}

#[test]
fn a_deferral_does_not_count_against_a_per_call_breaker() {
    let breaker = Arc::new(CircuitBreaker::consecutive(1, secs(10)).build().unwrap());
    let p = Policy::builder()
        .retry(Retry::builder().strategy(constant(ms(100))))
        .breaker(Arc::clone(&breaker))
        .breaker_scope(BreakerScope::PerCall)
        .build()
        .unwrap();
    let t = job(&p, None, at(0), fail(Transient));
    assert!(matches!(
        t.last(),
        Decision::Failed(StopReason::Deferred { .. })
    ));
    assert_eq!(breaker.state(), CircuitState::Closed);
}
