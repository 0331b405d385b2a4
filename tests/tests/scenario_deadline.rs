//! Scenarios: the call's deadline and the per-attempt time limit. A sleep that would end at
//! or past the deadline is never slept; each attempt gets the earlier of its own timeout and
//! the deadline; a timed-out attempt counts as the policy's timeout class.
#![allow(clippy::unwrap_used)]
#![forbid(unsafe_code)]

use core::time::Duration;

use redress::backoff::{constant, exponential, retry_after_or};
use redress::{
    ClassSet, Decision, ErrorClass, EventKind, Instant, Retry, RetryBuilder, StopReason,
};
use redress_tests::scenario::{
    Input, at, drive, drive_at, fail, fail_hinted, ms, ok, secs, times_out,
};

use ErrorClass::{Permanent, RateLimit, ServerError, Transient};

fn policy(b: RetryBuilder) -> redress::Policy {
    b.policy().unwrap()
}

fn attempt(n: u32, deadline_ms: u64) -> Decision {
    Decision::Attempt {
        n,
        deadline: Some(at(deadline_ms)),
    }
}

#[test]
fn the_first_attempt_runs_within_the_default_sixty_second_deadline() {
    let p = policy(Retry::builder());
    let t = drive_at(&p, Instant::from_secs(5), [ok()]);
    assert_eq!(
        t.decisions()[0],
        Decision::Attempt {
            n: 1,
            deadline: Some(Instant::from_secs(65))
        }
    );
}

#[test]
fn a_sleep_ending_exactly_at_the_deadline_stops_at_once() {
    let p = policy(
        Retry::builder()
            .deadline(secs(1))
            .strategy(constant(ms(500))),
    );
    let t = drive(&p, [fail(Transient).after(ms(500)), ok()]);
    assert_eq!(
        t.decisions(),
        [
            attempt(1, 1000),
            Decision::Failed(StopReason::DeadlineExceeded)
        ]
    );
    assert_eq!(t.unused, 1);
    assert_eq!(
        t.end,
        at(500),
        "no time is spent sleeping towards the deadline"
    );
    let events = t.events();
    assert_eq!(t.event_names(), ["deadline_exceeded"]);
    assert_eq!(events[0].elapsed, ms(500));
    assert_eq!(events[0].class, Some(Transient));
    assert_eq!(events[0].attempt, 1);
}

#[test]
fn a_sleep_ending_just_before_the_deadline_is_slept() {
    let p = policy(
        Retry::builder()
            .deadline(secs(1))
            .strategy(constant(ms(500))),
    );
    let t = drive(&p, [fail(Transient).after(ms(499)), ok()]);
    assert_eq!(
        t.decisions(),
        [
            attempt(1, 1000),
            Decision::Sleep {
                until: at(999),
                delay: ms(500)
            },
            attempt(2, 1000),
            Decision::Succeeded,
        ]
    );
}

#[test]
fn each_attempt_gets_the_earlier_of_its_timeout_and_the_deadline() {
    let p = policy(
        Retry::builder()
            .deadline(secs(1))
            .attempt_timeout(ms(300))
            .strategy(constant(ms(100))),
    );
    let t = drive(&p, [times_out(), times_out(), times_out(), ok()]);
    assert_eq!(
        t.decisions(),
        [
            attempt(1, 300),
            Decision::Sleep {
                until: at(400),
                delay: ms(100)
            },
            attempt(2, 700),
            Decision::Sleep {
                until: at(800),
                delay: ms(100)
            },
            // 800 + 300 = 1100 is past the deadline: the deadline wins.
            attempt(3, 1000),
            // Timed out at the deadline itself: no time is left.
            Decision::Failed(StopReason::DeadlineExceeded),
        ]
    );
    assert_eq!(t.end, at(1000));
    assert_eq!(t.state.attempts_of(Transient), 3);
}

#[test]
fn without_a_deadline_only_the_attempt_timeout_limits_an_attempt() {
    let p = policy(Retry::builder().no_deadline().strategy(constant(ms(10))));
    let t = drive(&p, [ok()]);
    assert_eq!(
        t.decisions()[0],
        Decision::Attempt {
            n: 1,
            deadline: None
        }
    );
    let p = policy(
        Retry::builder()
            .no_deadline()
            .attempt_timeout(secs(2))
            .strategy(constant(ms(10))),
    );
    let t = drive(&p, [times_out(), ok()]);
    assert_eq!(
        t.decisions(),
        [
            attempt(1, 2000),
            Decision::Sleep {
                until: at(2010),
                delay: ms(10)
            },
            attempt(2, 4010),
            Decision::Succeeded,
        ]
    );
}

#[test]
fn a_timed_out_attempt_counts_as_the_timeout_class() {
    let p = policy(
        Retry::builder()
            .no_deadline()
            .attempt_timeout(ms(200))
            .timeout_class(ServerError)
            .strategy(exponential(ms(100), secs(10)))
            .class_strategy(ServerError, constant(ms(50))),
    );
    let t = drive(&p, [times_out(), ok()]);
    assert_eq!(t.sleeps(), [ms(50)]);
    assert_eq!(
        t.entries[1].input,
        Input::Outcome(redress::Outcome::TimedOut)
    );
    let retry = &t.events()[0];
    assert_eq!(retry.class, Some(ServerError));
    assert_eq!(retry.elapsed, ms(200));
    assert_eq!(t.state.attempts_of(ServerError), 1);
    assert_eq!(t.state.last_class, Some(ServerError));
}

#[test]
fn timeouts_default_to_transient_and_obey_that_class_cap() {
    let p = policy(
        Retry::builder()
            .no_deadline()
            .attempt_timeout(ms(100))
            .class_max_attempts(Transient, 2)
            .strategy(constant(ms(10))),
    );
    let t = drive(&p, [times_out(), times_out(), ok()]);
    assert_eq!(
        t.last(),
        Decision::Failed(StopReason::MaxAttemptsForClass(Transient))
    );
    assert_eq!(t.end, at(210));
}

#[test]
fn a_non_retryable_timeout_class_stops_at_the_first_timeout() {
    let p = policy(
        Retry::builder()
            .attempt_timeout(ms(100))
            .timeout_class(Permanent)
            .non_retryable(ClassSet::of(&[Permanent])),
    );
    let t = drive(&p, [times_out()]);
    assert_eq!(
        t.last(),
        Decision::Failed(StopReason::NonRetryable(Permanent))
    );
    assert_eq!(t.end, at(100));
}

#[test]
fn a_failure_reported_after_the_deadline_stops_with_deadline_exceeded() {
    // The driver did not enforce the attempt's limit; the machine still stops.
    let p = policy(Retry::builder().deadline(secs(1)).strategy(constant(ms(1))));
    let t = drive(&p, [fail(Transient).after(secs(2))]);
    assert_eq!(t.last(), Decision::Failed(StopReason::DeadlineExceeded));
    assert_eq!(t.events()[0].elapsed, secs(2));
}

#[test]
fn a_wake_up_late_past_the_deadline_stops_without_another_attempt() {
    let p = policy(
        Retry::builder()
            .deadline(secs(1))
            .strategy(constant(ms(500))),
    );
    let mut m = p.machine();
    m.start(at(0));
    assert_eq!(
        m.on_outcome(at(0), redress::Outcome::failure(Transient)),
        Decision::Sleep {
            until: at(500),
            delay: ms(500)
        }
    );
    // The driver's timer fired far too late.
    assert_eq!(
        m.on_wake(at(1200)),
        Decision::Failed(StopReason::DeadlineExceeded)
    );
    assert_eq!(m.attempt(), 1);
    let e = m.poll_event().unwrap();
    assert_eq!(e.kind, EventKind::Stopped(StopReason::DeadlineExceeded));
    assert_eq!(
        (e.attempt, e.class, e.elapsed),
        (1, Some(Transient), ms(1200))
    );
}

#[test]
fn a_success_reported_after_the_deadline_still_succeeds() {
    let p = policy(Retry::builder().deadline(secs(1)));
    let t = drive(&p, [ok().after(secs(2))]);
    assert_eq!(t.last(), Decision::Succeeded);
}

#[test]
fn a_hint_longer_than_the_time_left_fails_fast() {
    let p = policy(
        Retry::builder()
            .deadline(secs(5))
            .strategy(retry_after_or(constant(ms(100))).jitter(ms(0))),
    );
    let t = drive(&p, [fail_hinted(RateLimit, secs(10)).after(ms(100))]);
    assert_eq!(
        t.decisions(),
        [
            attempt(1, 5000),
            Decision::Failed(StopReason::DeadlineExceeded)
        ]
    );
    assert_eq!(t.end, at(100), "no sleep towards a deadline it cannot beat");
}

#[test]
fn deadline_prediction_refuses_a_retry_that_cannot_finish_in_time() {
    let retry = |predict| {
        Retry::builder()
            .deadline(secs(1))
            .predict_deadline(predict)
            .strategy(constant(ms(100)))
    };
    let script = || {
        [
            fail(Transient).after(ms(400)),
            fail(Transient).after(ms(300)),
            ok(),
        ]
    };
    // Attempt 1 took 400 ms (the first sample); attempt 2 300 ms: the moving average with
    // weight 1/8 is 400 - 50 + 37.5 = 387.5 ms. At 800 ms, 100 ms of sleep plus 387.5 ms of
    // attempt would end past the deadline.
    let p = policy(retry(true));
    let t = drive(&p, script());
    assert_eq!(
        t.decisions(),
        [
            attempt(1, 1000),
            Decision::Sleep {
                until: at(500),
                delay: ms(100)
            },
            attempt(2, 1000),
            Decision::Failed(StopReason::DeadlineUnreachable),
        ]
    );
    assert_eq!(t.event_names(), ["retry", "deadline_unreachable"]);
    assert_eq!(p.typical_attempt_time(), Duration::from_micros(387_500));

    // Without prediction the same call sleeps and tries a third time.
    let p = policy(retry(false));
    let t = drive(&p, script());
    assert_eq!(t.last(), Decision::Succeeded);
    assert_eq!(t.attempts(), 3);
    assert_eq!(p.typical_attempt_time(), ms(0));
}

#[test]
fn deadline_prediction_learns_from_earlier_calls_of_the_policy() {
    let p = policy(
        Retry::builder()
            .deadline(ms(500))
            .predict_deadline(true)
            .strategy(constant(ms(100))),
    );
    // An earlier call's attempt took 450 ms.
    assert_eq!(drive(&p, [ok().after(ms(450))]).last(), Decision::Succeeded);
    assert_eq!(p.typical_attempt_time(), ms(450));
    // This call's attempt fails after 10 ms: typical = 450 - 56.25 + 1.25 = 395 ms, and
    // 100 ms + 395 ms > the 490 ms left.
    let t = drive_at(&p, at(1000), [fail(Transient).after(ms(10))]);
    assert_eq!(t.last(), Decision::Failed(StopReason::DeadlineUnreachable));
    assert_eq!(p.typical_attempt_time(), ms(395));
    assert!(matches!(
        t.events()[0].kind,
        EventKind::Stopped(StopReason::DeadlineUnreachable)
    ));
}
