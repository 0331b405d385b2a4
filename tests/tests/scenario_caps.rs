//! Scenarios: the caps that end a call (max_attempts, max_unknown_attempts, per-class caps,
//! non-retryable classes, missing strategies). Every cap counts attempts, the first included.
#![allow(clippy::unwrap_used)]
#![forbid(unsafe_code)]

use redress::backoff::{constant, exponential};
use redress::{ClassSet, Decision, ErrorClass, Instant, Policy, Retry, RetryBuilder, StopReason};
use redress_tests::scenario::{at, drive, fail, ms, ok, secs};

use ErrorClass::{
    Auth, Concurrency, Permanent, Permission, RateLimit, ServerError, Transient, Unknown,
};

/// Constant 10 ms sleeps, no deadline, the default caps otherwise.
fn retry() -> RetryBuilder {
    Retry::builder().strategy(constant(ms(10))).no_deadline()
}

fn policy(b: RetryBuilder) -> Policy {
    b.policy().unwrap()
}

fn attempt(n: u32) -> Decision {
    Decision::Attempt { n, deadline: None }
}

fn sleep_until(t: u64) -> Decision {
    Decision::Sleep {
        until: at(t),
        delay: ms(10),
    }
}

#[test]
fn max_attempts_three_runs_the_operation_three_times_and_sleeps_twice() {
    let p = policy(retry().max_attempts(3));
    let t = drive(&p, [fail(Transient), fail(Transient), fail(Transient)]);
    assert_eq!(
        t.decisions(),
        [
            attempt(1),
            sleep_until(10),
            attempt(2),
            sleep_until(20),
            attempt(3),
            Decision::Failed(StopReason::MaxAttempts),
        ]
    );
    assert_eq!(t.unused, 0);
    assert_eq!(t.event_names(), ["retry", "retry", "max_attempts"]);
    assert_eq!(t.stop_reason, Some(StopReason::MaxAttempts));
    assert_eq!(t.state.attempts, 3);
    assert_eq!(t.state.attempts_of(Transient), 3);
}

#[test]
fn a_success_on_the_last_allowed_attempt_succeeds() {
    let p = policy(retry().max_attempts(3));
    let t = drive(&p, [fail(ServerError), fail(Transient), ok()]);
    assert_eq!(t.last(), Decision::Succeeded);
    assert_eq!(t.attempts(), 3);
    assert_eq!(t.event_names(), ["retry", "retry", "success"]);
    assert_eq!(t.stop_reason, None);
}

#[test]
fn a_first_success_makes_one_attempt_and_one_event() {
    let p = policy(retry());
    let t = drive(&p, [ok(), ok()]);
    assert_eq!(t.decisions(), [attempt(1), Decision::Succeeded]);
    assert_eq!(t.unused, 1, "the second step is never needed");
    assert_eq!(t.event_names(), ["success"]);
}

#[test]
fn max_attempts_one_never_retries() {
    let p = policy(retry().max_attempts(1).max_unknown_attempts(None));
    let t = drive(&p, [fail(Transient), ok()]);
    assert_eq!(
        t.decisions(),
        [attempt(1), Decision::Failed(StopReason::MaxAttempts)]
    );
    assert_eq!(t.unused, 1);
    assert_eq!(t.event_names(), ["max_attempts"]);
    assert!(t.sleeps().is_empty());
}

#[test]
fn the_default_unknown_cap_stops_at_the_second_unknown_failure() {
    let p = policy(retry());
    let t = drive(&p, [fail(Unknown), fail(Unknown), ok()]);
    assert_eq!(
        t.decisions(),
        [
            attempt(1),
            sleep_until(10),
            attempt(2),
            Decision::Failed(StopReason::MaxUnknownAttempts),
        ]
    );
    assert_eq!(t.event_names(), ["retry", "max_unknown_attempts"]);
    assert_eq!(t.events()[1].class, Some(Unknown));
}

#[test]
fn the_unknown_cap_counts_only_unknown_attempts() {
    let p = policy(retry().max_unknown_attempts(Some(2)));
    let t = drive(
        &p,
        [
            fail(Unknown),
            fail(Transient),
            fail(ServerError),
            fail(Unknown),
        ],
    );
    assert_eq!(t.attempts(), 4);
    assert_eq!(t.last(), Decision::Failed(StopReason::MaxUnknownAttempts));
    assert_eq!(t.state.attempts_of(Unknown), 2);
    assert_eq!(t.state.attempts_of(Transient), 1);
    assert_eq!(t.state.attempts_of(ServerError), 1);
}

#[test]
fn without_an_unknown_cap_unknown_failures_run_to_max_attempts() {
    let p = policy(retry().max_attempts(4).max_unknown_attempts(None));
    let t = drive(
        &p,
        [fail(Unknown), fail(Unknown), fail(Unknown), fail(Unknown)],
    );
    assert_eq!(t.attempts(), 4);
    assert_eq!(t.last(), Decision::Failed(StopReason::MaxAttempts));
}

#[test]
fn a_class_cap_stops_at_its_nth_failure_of_that_class() {
    let p = policy(retry().class_max_attempts(RateLimit, 2));
    let t = drive(
        &p,
        [fail(RateLimit), fail(Transient), fail(RateLimit), ok()],
    );
    assert_eq!(t.attempts(), 3);
    assert_eq!(
        t.last(),
        Decision::Failed(StopReason::MaxAttemptsForClass(RateLimit))
    );
    assert_eq!(
        t.event_names(),
        ["retry", "retry", "max_attempts_for_class"]
    );
    let stop = t.events().pop().unwrap();
    assert_eq!((stop.attempt, stop.class), (3, Some(RateLimit)));
}

#[test]
fn a_class_cap_leaves_other_classes_alone() {
    let p = policy(retry().max_attempts(5).class_max_attempts(RateLimit, 1));
    let t = drive(
        &p,
        [
            fail(Transient),
            fail(ServerError),
            fail(Transient),
            fail(Transient),
            fail(Transient),
        ],
    );
    assert_eq!(t.attempts(), 5);
    assert_eq!(t.last(), Decision::Failed(StopReason::MaxAttempts));
}

#[test]
fn the_default_non_retryable_classes_stop_at_the_first_failure() {
    let p = policy(retry());
    for class in [Auth, Permission, Permanent] {
        let t = drive(&p, [fail(class), ok()]);
        assert_eq!(
            t.decisions(),
            [
                attempt(1),
                Decision::Failed(StopReason::NonRetryable(class))
            ],
            "{class}"
        );
        assert_eq!(t.event_names(), ["permanent_failure"], "{class}");
        assert_eq!(t.events()[0].class, Some(class));
        assert_eq!(t.unused, 1);
    }
}

#[test]
fn non_retryable_classes_are_configurable() {
    let p = policy(retry().non_retryable(ClassSet::of(&[Concurrency])));
    // Permanent is retried once it is no longer listed…
    let t = drive(&p, [fail(Permanent), ok()]);
    assert_eq!(t.last(), Decision::Succeeded);
    assert_eq!(t.sleeps(), [ms(10)]);
    // …and Concurrency is not.
    let t = drive(&p, [fail(Concurrency)]);
    assert_eq!(
        t.last(),
        Decision::Failed(StopReason::NonRetryable(Concurrency))
    );
}

#[test]
fn a_class_without_a_strategy_stops_with_no_strategy() {
    let p = policy(
        Retry::builder()
            .no_deadline()
            .no_default_strategy()
            .class_strategy(RateLimit, constant(secs(1))),
    );
    let t = drive(&p, [fail(Transient)]);
    assert_eq!(
        t.decisions(),
        [
            attempt(1),
            Decision::Failed(StopReason::NoStrategy(Transient))
        ]
    );
    assert_eq!(t.event_names(), ["no_strategy"]);

    let t = drive(&p, [fail(RateLimit), ok()]);
    assert_eq!(
        t.decisions(),
        [
            attempt(1),
            Decision::Sleep {
                until: Instant::from_secs(1),
                delay: secs(1)
            },
            attempt(2),
            Decision::Succeeded,
        ]
    );
}

#[test]
fn caps_are_per_call_not_per_policy() {
    let p = policy(retry().max_attempts(2));
    for _ in 0..3 {
        let t = drive(&p, [fail(Transient), fail(Transient)]);
        assert_eq!(t.attempts(), 2);
        assert_eq!(t.sleeps(), [ms(10)]);
        assert_eq!(t.last(), Decision::Failed(StopReason::MaxAttempts));
    }
}

#[test]
fn a_mixed_run_reports_the_first_cap_it_reaches() {
    // exponential(100ms) grows with the call's attempt number, whatever the class.
    let p = policy(
        Retry::builder()
            .no_deadline()
            .max_attempts(6)
            .class_max_attempts(ServerError, 2)
            .strategy(exponential(ms(100), secs(10))),
    );
    let t = drive(
        &p,
        [
            fail(Transient),
            fail(ServerError),
            fail(Unknown),
            fail(ServerError),
        ],
    );
    assert_eq!(t.sleeps(), [ms(100), ms(200), ms(400)]);
    assert_eq!(
        t.last(),
        Decision::Failed(StopReason::MaxAttemptsForClass(ServerError))
    );
    assert_eq!(t.end, at(700));
}

#[test]
fn the_first_failing_check_names_the_stop_reason_non_retryable_before_max_attempts() {
    let p = policy(retry().max_attempts(1).max_unknown_attempts(None));
    let t = drive(&p, [fail(Permanent)]);
    assert_eq!(
        t.last(),
        Decision::Failed(StopReason::NonRetryable(Permanent))
    );
}

#[test]
fn an_unset_unknown_cap_never_exceeds_max_attempts() {
    let r = Retry::builder().max_attempts(1).build().unwrap();
    assert_eq!(r.max_unknown_attempts(), Some(1));
    let r = Retry::builder().max_attempts(5).build().unwrap();
    assert_eq!(r.max_unknown_attempts(), Some(2));
    // Set explicitly, the rule still applies.
    assert!(
        Retry::builder()
            .max_attempts(1)
            .max_unknown_attempts(Some(2))
            .build()
            .is_err()
    );
}
