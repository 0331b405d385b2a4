//! Scenarios: inputs a careless driver may give. Early or repeated wake-ups, inputs out of
//! order and clocks that go backwards are harmless; `abort`, `reschedule` and
//! `start_untimed` do what they say; a zero delay never reaches the driver's timer.
#![allow(clippy::unwrap_used)]
#![forbid(unsafe_code)]

use std::sync::Arc;

use core::time::Duration;

use redress::backoff::constant;
use redress::{
    CircuitBreaker, Decision, ErrorClass, EventKind, Instant, Outcome, Policy, Retry, RetryBuilder,
    StopReason,
};
use redress_tests::scenario::{at, cancelled, drain, drive, drive_at, fail, ms, ok, secs};

use ErrorClass::{ServerError, Transient};

fn policy(b: RetryBuilder) -> Policy {
    b.policy().unwrap()
}

/// 100 ms between attempts, no deadline.
fn simple() -> Policy {
    policy(Retry::builder().no_deadline().strategy(constant(ms(100))))
}

fn attempt(n: u32) -> Decision {
    Decision::Attempt { n, deadline: None }
}

fn sleep(until: u64, delay: u64) -> Decision {
    Decision::Sleep {
        until: at(until),
        delay: ms(delay),
    }
}

fn transient() -> Outcome {
    Outcome::failure(Transient)
}

#[test]
fn an_early_or_repeated_wake_returns_the_same_sleep_and_no_event() {
    let p = simple();
    let mut m = p.machine();
    assert_eq!(m.start(at(0)), attempt(1));
    assert_eq!(m.on_outcome(at(0), transient()), sleep(100, 100));
    assert_eq!(drain(&mut m).len(), 1);

    for now in [0, 50, 50, 99] {
        assert_eq!(m.on_wake(at(now)), sleep(100, 100), "woken at {now} ms");
        assert!(m.poll_event().is_none());
        assert_eq!(m.poll_timeout(), Some(at(100)));
        assert_eq!(m.attempt(), 1);
        assert_eq!(m.total_sleep(), ms(100));
        assert!(!m.is_finished());
    }
    assert_eq!(m.on_wake(at(100)), attempt(2));
    assert!(m.poll_event().is_none());
    // Waking again once the attempt is due changes nothing either.
    assert_eq!(m.on_wake(at(150)), attempt(2));
    assert_eq!(m.attempt(), 2);
    assert!(m.poll_event().is_none());
}

#[test]
fn an_early_wake_leaves_the_saved_state_untouched() {
    let p = simple();
    let mut m = p.machine();
    m.start(at(0));
    m.on_outcome(at(0), transient());
    let before = m.state();
    assert_eq!(m.on_wake(at(50)), sleep(100, 100));
    assert_eq!(m.state(), before);
}

#[test]
fn inputs_before_start_change_nothing() {
    let p = simple();
    let mut m = p.machine();
    let before = m.decision();
    assert_eq!(m.on_outcome(at(0), transient()), before);
    assert_eq!(m.on_wake(at(0)), before);
    assert_eq!(m.reschedule(at(0), at(0)), before);
    assert!(m.poll_event().is_none());
    assert_eq!(m.attempt(), 0);
    assert!(!m.is_finished());
    assert_eq!(m.attempts_of(Transient), 0);
    assert_eq!(m.start(at(0)), attempt(1));
}

#[test]
fn out_of_order_inputs_return_the_current_decision() {
    let p = simple();
    let mut m = p.machine();
    assert_eq!(m.start(at(0)), attempt(1));
    // A second start, or a wake-up while the attempt runs: the attempt is still due.
    assert_eq!(m.start(at(10)), attempt(1));
    assert_eq!(m.on_wake(at(10)), attempt(1));
    assert_eq!(m.start_untimed(), attempt(1));
    assert!(m.poll_event().is_none());

    assert_eq!(m.on_outcome(at(10), transient()), sleep(110, 100));
    let _ = drain(&mut m);
    // An outcome while sleeping is ignored: no attempt is running.
    assert_eq!(
        m.on_outcome(at(20), Outcome::failure(ServerError)),
        sleep(110, 100)
    );
    assert!(m.poll_event().is_none());
    assert_eq!(m.attempts_of(ServerError), 0);
    assert_eq!(m.last_class(), Some(Transient));
}

#[test]
fn a_finished_machine_ignores_every_input() {
    let p = simple();
    let mut m = p.machine();
    m.start(at(0));
    assert_eq!(m.on_outcome(at(5), Outcome::Success), Decision::Succeeded);
    let _ = drain(&mut m);
    assert_eq!(m.on_outcome(at(6), transient()), Decision::Succeeded);
    assert_eq!(m.on_wake(at(7)), Decision::Succeeded);
    assert_eq!(m.start(at(8)), Decision::Succeeded);
    assert_eq!(m.abort(at(9)), Decision::Succeeded);
    assert_eq!(m.reschedule(at(10), at(10)), Decision::Succeeded);
    assert!(m.poll_event().is_none());
    assert_eq!(m.poll_timeout(), None);
    assert_eq!(m.stop_reason(), None);
}

#[test]
fn time_going_backwards_is_clamped_to_the_latest_instant_seen() {
    let p = simple();
    let mut m = p.machine();
    assert_eq!(m.start(at(1000)), attempt(1));
    // Reported "before" the start: treated as at the start.
    assert_eq!(m.on_outcome(at(500), transient()), sleep(1100, 100));
    assert_eq!(drain(&mut m)[0].elapsed, ms(0));
    assert_eq!(m.on_wake(at(1100)), attempt(2));
    // Reported at the epoch: treated as 1100 ms.
    assert_eq!(m.on_outcome(Instant::ZERO, transient()), sleep(1200, 100));
    assert_eq!(drain(&mut m)[0].elapsed, ms(100));
    assert_eq!(m.elapsed(Instant::ZERO), ms(100));
    // A wake-up from the past is an early wake-up.
    assert_eq!(m.on_wake(at(3)), sleep(1200, 100));
    assert_eq!(m.on_wake(at(1200)), attempt(3));
}

#[test]
fn a_backwards_clock_cannot_stretch_the_deadline() {
    let p = policy(
        Retry::builder()
            .deadline(secs(1))
            .strategy(constant(ms(100))),
    );
    let mut m = p.machine();
    m.start(at(0));
    assert_eq!(m.on_outcome(at(800), transient()), sleep(900, 100));
    assert_eq!(
        m.on_wake(at(900)),
        Decision::Attempt {
            n: 2,
            deadline: Some(at(1000))
        }
    );
    // Told it is 100 ms, the machine stays at 900 ms: a 100 ms sleep would reach the deadline.
    assert_eq!(
        m.on_outcome(at(100), transient()),
        Decision::Failed(StopReason::DeadlineExceeded)
    );
    assert_eq!(drain(&mut m)[0].elapsed, ms(900));
}

#[test]
fn abort_stops_a_sleeping_call_at_once() {
    let p = simple();
    let mut m = p.machine();
    m.start(at(0));
    m.on_outcome(at(0), transient());
    let _ = drain(&mut m);
    assert_eq!(m.abort(at(50)), Decision::Failed(StopReason::Aborted));
    let events = drain(&mut m);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::Stopped(StopReason::Aborted));
    assert_eq!(events[0].kind.name(), "aborted");
    assert_eq!(
        (events[0].attempt, events[0].class, events[0].elapsed),
        (1, None, ms(50))
    );
    assert!(m.is_finished());
    assert_eq!(m.poll_timeout(), None);
    assert_eq!(m.stop_reason(), Some(StopReason::Aborted));
    assert_eq!(m.on_wake(at(100)), Decision::Failed(StopReason::Aborted));
}

#[test]
fn abort_before_start_or_during_an_attempt_ends_the_call() {
    let p = simple();
    let mut m = p.machine();
    assert_eq!(m.abort(at(0)), Decision::Failed(StopReason::Aborted));
    assert_eq!(drain(&mut m)[0].attempt, 0);
    assert_eq!(m.start(at(0)), Decision::Failed(StopReason::Aborted));

    let mut m = p.machine();
    m.start(at(0));
    assert_eq!(m.abort(at(10)), Decision::Failed(StopReason::Aborted));
    assert_eq!(
        m.on_outcome(at(20), Outcome::Success),
        Decision::Failed(StopReason::Aborted)
    );
}

#[test]
fn reschedule_only_ever_shortens_the_current_sleep() {
    let p = policy(Retry::builder().no_deadline().strategy(constant(secs(1))));
    let mut m = p.machine();
    m.start(at(0));
    assert_eq!(
        m.reschedule(at(0), at(500)),
        attempt(1),
        "nothing to shorten"
    );
    assert_eq!(m.on_outcome(at(0), transient()), sleep(1000, 1000));
    let _ = drain(&mut m);

    assert_eq!(
        m.reschedule(at(0), at(2000)),
        sleep(1000, 1000),
        "later: unchanged"
    );
    assert_eq!(m.reschedule(at(0), at(400)), sleep(400, 400));
    assert!(m.poll_event().is_none());
    assert_eq!(m.poll_timeout(), Some(at(400)));
    assert_eq!(m.total_sleep(), ms(400));
    assert_eq!(m.state().prev_sleep, Some(ms(400)));
    assert_eq!(m.on_wake(at(399)), sleep(400, 400));
    assert_eq!(m.on_wake(at(400)), attempt(2));
}

#[test]
fn reschedule_into_the_past_ends_the_sleep_now() {
    let p = policy(Retry::builder().no_deadline().strategy(constant(secs(1))));
    let mut m = p.machine();
    m.start(at(0));
    m.on_outcome(at(0), transient());
    // Woken early at 300 ms (nothing changes), then asked at 300 ms to end the sleep at
    // 100 ms: it ends now, with the next attempt, after 300 ms of sleep.
    assert_eq!(m.on_wake(at(300)), sleep(1000, 1000));
    assert_eq!(m.reschedule(at(300), at(100)), attempt(2));
    assert_eq!(m.total_sleep(), ms(300));
}

#[test]
fn start_untimed_reads_no_clock_when_the_policy_needs_none() {
    let p = simple();
    assert!(!p.needs_clock());
    let mut m = p.machine();
    assert_eq!(m.start_untimed(), attempt(1));
    assert!(!m.is_timed());
    // A success may be reported with any instant.
    assert_eq!(
        m.on_outcome(Instant::ZERO, Outcome::Success),
        Decision::Succeeded
    );
    let events = drain(&mut m);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::Success);
    assert_eq!((events[0].attempt, events[0].elapsed), (1, ms(0)));
}

#[test]
fn an_untimed_call_measures_time_from_its_first_failure() {
    let p = simple();
    let mut m = p.machine();
    assert_eq!(m.start_untimed(), attempt(1));
    assert_eq!(m.on_outcome(at(5000), transient()), sleep(5100, 100));
    assert!(m.is_timed());
    assert_eq!(drain(&mut m)[0].elapsed, ms(0));
    assert_eq!(m.on_wake(at(5100)), attempt(2));
    assert_eq!(
        m.on_outcome(at(5150), Outcome::Success),
        Decision::Succeeded
    );
    assert_eq!(drain(&mut m)[0].elapsed, ms(150));
}

#[test]
fn start_untimed_on_a_policy_that_needs_the_clock_starts_at_the_epoch() {
    let p = policy(Retry::builder().deadline(secs(60)));
    assert!(p.needs_clock());
    let mut m = p.machine();
    assert_eq!(
        m.start_untimed(),
        Decision::Attempt {
            n: 1,
            deadline: Some(Instant::from_secs(60))
        }
    );
    assert!(m.is_timed());
}

#[test]
fn zero_delays_collapse_into_an_immediate_attempt() {
    let p = policy(
        Retry::builder()
            .no_deadline()
            .strategy(constant(Duration::ZERO)),
    );
    let t = drive(&p, [fail(Transient), fail(ServerError), ok()]);
    assert_eq!(
        t.decisions(),
        [attempt(1), attempt(2), attempt(3), Decision::Succeeded]
    );
    assert!(t.sleeps().is_empty());
    let kinds: Vec<EventKind> = t.events().iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::Retry {
                delay: Duration::ZERO,
                retry_after: None
            },
            EventKind::Retry {
                delay: Duration::ZERO,
                retry_after: None
            },
            EventKind::Success,
        ]
    );
    assert_eq!(t.end, at(0));
}

#[test]
fn a_zero_delay_into_a_freshly_opened_breaker_is_rejected_at_once() {
    let breaker = Arc::new(
        CircuitBreaker::consecutive(1, secs(10))
            .recovery(secs(5))
            .build()
            .unwrap(),
    );
    let p = Policy::builder()
        .retry(
            Retry::builder()
                .no_deadline()
                .strategy(constant(Duration::ZERO)),
        )
        .breaker(breaker)
        .build()
        .unwrap();
    let t = drive_at(&p, at(10), [fail(Transient).after(ms(5)), ok()]);
    assert_eq!(
        t.decisions(),
        [attempt(1), Decision::Rejected { until: at(5015) }]
    );
    assert_eq!(
        t.event_names(),
        ["circuit_opened", "retry", "circuit_rejected"]
    );
}

#[test]
fn a_cancelled_attempt_ends_the_call() {
    let p = simple();
    let t = drive(&p, [fail(Transient), cancelled(), ok()]);
    assert_eq!(t.last(), Decision::Failed(StopReason::Cancelled));
    assert_eq!(t.unused, 1);
    assert_eq!(t.event_names(), ["retry", "cancelled"]);
    assert_eq!(t.events()[1].attempt, 2);
}

#[test]
fn instants_near_the_end_of_time_saturate_instead_of_panicking() {
    let near_end = Instant::MAX - ms(50);
    let t = drive_at(&simple(), near_end, [fail(Transient), ok()]);
    assert_eq!(
        t.decisions(),
        [
            attempt(1),
            Decision::Sleep {
                until: Instant::MAX,
                delay: ms(100)
            },
            attempt(2),
            Decision::Succeeded
        ]
    );
    // With a deadline, the saturated deadline leaves only 50 ms: no room for the sleep.
    let p = policy(Retry::builder().strategy(constant(ms(100))));
    let t = drive_at(&p, near_end, [fail(Transient)]);
    assert_eq!(t.last(), Decision::Failed(StopReason::DeadlineExceeded));
}
