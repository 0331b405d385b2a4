//! Scenarios: a circuit breaker inside a policy, in both trip modes and both scopes. The
//! breaker's transitions show up as events of the call that caused them; an open breaker
//! ends a call with `Rejected { until }`.
#![allow(clippy::unwrap_used)]
#![forbid(unsafe_code)]

use std::sync::Arc;

use redress::backoff::constant;
use redress::breaker::BreakerBuilder;
use redress::{
    BreakerScope, CircuitBreaker, CircuitState, Decision, ErrorClass, EventKind, Outcome, Policy,
    Retry, StopReason,
};
use redress_tests::scenario::{at, cancelled, drain, drive, drive_at, fail, ms, ok, secs};

use ErrorClass::{Permanent, ServerError, Transient};

/// A policy retrying every 100 ms, without deadline, through `breaker`.
fn policy_with(breaker: &Arc<CircuitBreaker>, scope: BreakerScope, max_attempts: u32) -> Policy {
    Policy::builder()
        .retry(
            Retry::builder()
                .no_deadline()
                .max_attempts(max_attempts)
                .max_unknown_attempts(None)
                .strategy(constant(ms(100))),
        )
        .breaker(Arc::clone(breaker))
        .breaker_scope(scope)
        .build()
        .unwrap()
}

fn build(b: BreakerBuilder) -> Arc<CircuitBreaker> {
    Arc::new(b.build().unwrap())
}

/// Opens after 2 failures in a row, stays open 1 s, one probe.
fn two_strikes() -> Arc<CircuitBreaker> {
    build(CircuitBreaker::consecutive(2, secs(10)).recovery(secs(1)))
}

fn attempt(n: u32) -> Decision {
    Decision::Attempt { n, deadline: None }
}

/// Trips `p`'s per-attempt breaker with one call at 0 ms; it stays open until 1100 ms.
fn trip(p: &Policy) {
    let t = drive(p, [fail(Transient), fail(Transient)]);
    assert_eq!(t.last(), Decision::Rejected { until: at(1100) });
}

#[test]
fn per_attempt_a_breaker_opening_mid_call_rejects_the_next_attempt() {
    let b = two_strikes();
    let p = policy_with(&b, BreakerScope::PerAttempt, 6);
    let t = drive(&p, [fail(Transient), fail(Transient), ok()]);
    assert_eq!(
        t.decisions(),
        [
            attempt(1),
            Decision::Sleep {
                until: at(100),
                delay: ms(100)
            },
            attempt(2),
            Decision::Sleep {
                until: at(200),
                delay: ms(100)
            },
            Decision::Rejected { until: at(1100) },
        ]
    );
    assert_eq!(t.unused, 1);
    let per_input: Vec<Vec<&str>> = t
        .entries
        .iter()
        .map(|e| e.events.iter().map(|r| r.kind.name()).collect())
        .collect();
    assert_eq!(
        per_input,
        [
            vec![],
            vec!["retry"],
            vec![],
            vec!["circuit_opened", "retry"],
            vec!["circuit_rejected"],
        ]
    );
    let events = t.events();
    assert_eq!((events[1].attempt, events[1].class), (2, Some(Transient)));
    assert_eq!(events[1].elapsed, ms(100));
    assert_eq!(
        events[3].kind,
        EventKind::CircuitRejected { until: at(1100) }
    );
    assert_eq!(events[3].attempt, 2);
    assert_eq!(
        t.stop_reason,
        Some(StopReason::CircuitOpen { until: at(1100) })
    );
    assert_eq!(b.state(), CircuitState::Open);
}

#[test]
fn an_open_breaker_rejects_a_call_before_its_first_attempt() {
    let b = two_strikes();
    let p = policy_with(&b, BreakerScope::PerAttempt, 6);
    trip(&p);
    let t = drive_at(&p, at(500), [ok()]);
    assert_eq!(t.decisions(), [Decision::Rejected { until: at(1100) }]);
    assert_eq!(t.unused, 1, "no attempt ran");
    let e = &t.events()[0];
    assert_eq!(e.kind, EventKind::CircuitRejected { until: at(1100) });
    assert_eq!((e.attempt, e.class, e.elapsed), (0, None, ms(0)));
}

#[test]
fn a_successful_probe_after_recovery_closes_the_breaker() {
    let b = two_strikes();
    let p = policy_with(&b, BreakerScope::PerAttempt, 6);
    trip(&p);
    let t = drive_at(&p, at(1100), [ok().after(ms(50))]);
    assert_eq!(t.decisions(), [attempt(1), Decision::Succeeded]);
    let per_input: Vec<Vec<(&str, u32)>> = t
        .entries
        .iter()
        .map(|e| {
            e.events
                .iter()
                .map(|r| (r.kind.name(), r.attempt))
                .collect()
        })
        .collect();
    assert_eq!(
        per_input,
        [
            vec![("circuit_half_open", 0)],
            vec![("circuit_closed", 1), ("success", 1)],
        ]
    );
    assert_eq!(b.state(), CircuitState::Closed);
}

#[test]
fn a_failed_probe_reopens_the_breaker_for_another_recovery() {
    let b = two_strikes();
    let p = policy_with(&b, BreakerScope::PerAttempt, 6);
    trip(&p);
    let t = drive_at(&p, at(1100), [fail(ServerError).after(ms(50)), ok()]);
    assert_eq!(
        t.decisions(),
        [
            attempt(1),
            Decision::Sleep {
                until: at(1250),
                delay: ms(100)
            },
            Decision::Rejected { until: at(2150) },
        ]
    );
    assert_eq!(
        t.event_names(),
        [
            "circuit_half_open",
            "circuit_opened",
            "retry",
            "circuit_rejected"
        ]
    );
    assert_eq!(t.events()[1].class, Some(ServerError));
    assert_eq!(b.state(), CircuitState::Open);
}

#[test]
fn half_open_admits_only_its_probes_and_a_dropped_machine_gives_its_probe_back() {
    let b = two_strikes();
    let p = policy_with(&b, BreakerScope::PerAttempt, 6);
    trip(&p);
    let mut probe = p.machine();
    assert_eq!(probe.start(at(1100)), attempt(1));
    assert_eq!(b.state(), CircuitState::HalfOpen);

    // The one probe slot is taken: another call is refused for a further recovery time.
    let mut other = p.machine();
    assert_eq!(
        other.start(at(1100)),
        Decision::Rejected { until: at(2100) }
    );

    // The probe's caller vanished: dropping its machine releases the slot.
    drop(probe);
    let t = drive_at(&p, at(1200), [ok()]);
    assert_eq!(t.decisions(), [attempt(1), Decision::Succeeded]);
    // Already half-open: no second half-open event, and the probe's success closes it.
    assert_eq!(t.event_names(), ["circuit_closed", "success"]);
    assert_eq!(b.state(), CircuitState::Closed);
}

#[test]
fn several_probes_must_all_succeed_to_close() {
    let b = build(
        CircuitBreaker::consecutive(2, secs(10))
            .recovery(secs(1))
            .probes(2),
    );
    let p = policy_with(&b, BreakerScope::PerAttempt, 6);
    trip(&p);
    let mut m1 = p.machine();
    let mut m2 = p.machine();
    let mut m3 = p.machine();
    assert_eq!(m1.start(at(1100)), attempt(1));
    assert_eq!(drain(&mut m1)[0].kind, EventKind::CircuitHalfOpen);
    assert_eq!(m2.start(at(1100)), attempt(1));
    assert!(drain(&mut m2).is_empty());
    assert_eq!(m3.start(at(1100)), Decision::Rejected { until: at(2100) });

    assert_eq!(
        m1.on_outcome(at(1110), Outcome::Success),
        Decision::Succeeded
    );
    let names: Vec<_> = drain(&mut m1).iter().map(|e| e.kind.name()).collect();
    assert_eq!(names, ["success"]);
    assert_eq!(
        b.state(),
        CircuitState::HalfOpen,
        "one of two probes succeeded"
    );

    assert_eq!(
        m2.on_outcome(at(1120), Outcome::Success),
        Decision::Succeeded
    );
    let names: Vec<_> = drain(&mut m2).iter().map(|e| e.kind.name()).collect();
    assert_eq!(names, ["circuit_closed", "success"]);
    assert_eq!(b.state(), CircuitState::Closed);
}

#[test]
fn aborting_a_probe_releases_it_without_counting() {
    let b = two_strikes();
    let p = policy_with(&b, BreakerScope::PerAttempt, 6);
    trip(&p);
    let mut m = p.machine();
    assert_eq!(m.start(at(1100)), attempt(1));
    assert_eq!(m.abort(at(1150)), Decision::Failed(StopReason::Aborted));
    assert_eq!(b.state(), CircuitState::HalfOpen, "an abort says nothing");
    // The slot is free again.
    assert_eq!(drive_at(&p, at(1160), [ok()]).last(), Decision::Succeeded);
    assert_eq!(b.state(), CircuitState::Closed);
}

#[test]
fn per_call_the_breaker_counts_each_call_once() {
    let b = two_strikes();
    let p = policy_with(&b, BreakerScope::PerCall, 3);
    let failing = || [fail(Transient), fail(Transient), fail(Transient)];

    // Three failed attempts are one failed call: not enough to trip a 2-strike breaker.
    let t = drive(&p, failing());
    assert_eq!(t.last(), Decision::Failed(StopReason::MaxAttempts));
    assert_eq!(t.event_names(), ["retry", "retry", "max_attempts"]);
    assert_eq!(b.state(), CircuitState::Closed);

    // The second failed call trips it, as the call ends.
    let t = drive_at(&p, at(1000), failing());
    assert_eq!(t.last(), Decision::Failed(StopReason::MaxAttempts));
    let last = t.entries.last().unwrap();
    assert_eq!(last.now, at(1200));
    let names: Vec<_> = last.events.iter().map(|e| e.kind.name()).collect();
    assert_eq!(names, ["circuit_opened", "max_attempts"]);
    assert_eq!(b.state(), CircuitState::Open);

    let t = drive_at(&p, at(1300), [ok()]);
    assert_eq!(t.decisions(), [Decision::Rejected { until: at(2200) }]);
}

#[test]
fn a_call_that_recovers_by_retrying_trips_a_per_attempt_breaker_but_not_a_per_call_one() {
    let script = || [fail(Transient), ok()];
    let one_strike = || build(CircuitBreaker::consecutive(1, secs(10)).recovery(secs(1)));

    let b = one_strike();
    let t = drive(&policy_with(&b, BreakerScope::PerCall, 6), script());
    assert_eq!(t.last(), Decision::Succeeded);
    assert_eq!(t.event_names(), ["retry", "success"]);
    assert_eq!(b.state(), CircuitState::Closed);

    let b = one_strike();
    let t = drive(&policy_with(&b, BreakerScope::PerAttempt, 6), script());
    assert_eq!(t.last(), Decision::Rejected { until: at(1000) });
    assert_eq!(
        t.event_names(),
        ["circuit_opened", "retry", "circuit_rejected"]
    );
}

#[test]
fn per_call_the_whole_call_is_the_half_open_probe() {
    let b = two_strikes();
    let p = policy_with(&b, BreakerScope::PerCall, 3);
    drive(&p, vec![fail(Transient); 3]);
    drive_at(&p, at(300), vec![fail(Transient); 3]);
    assert_eq!(b.state(), CircuitState::Open);
    // Open since 500 ms: half-open from 1500 ms. The probe call fails once, then succeeds.
    let t = drive_at(&p, at(1500), [fail(Transient), ok()]);
    assert_eq!(t.last(), Decision::Succeeded);
    assert_eq!(
        t.event_names(),
        ["circuit_half_open", "retry", "circuit_closed", "success"]
    );
    assert_eq!(b.state(), CircuitState::Closed);
}

#[test]
fn a_cancelled_per_call_call_leaves_the_breaker_alone() {
    let b = build(CircuitBreaker::consecutive(1, secs(10)));
    let p = policy_with(&b, BreakerScope::PerCall, 6);
    let t = drive(&p, [fail(Transient), cancelled()]);
    assert_eq!(t.last(), Decision::Failed(StopReason::Cancelled));
    assert_eq!(t.event_names(), ["retry", "cancelled"]);
    assert_eq!(b.state(), CircuitState::Closed);
}

#[test]
fn failures_outside_trip_on_count_as_answers() {
    let b = build(CircuitBreaker::consecutive(1, secs(10)));
    let p = policy_with(&b, BreakerScope::PerAttempt, 6);
    let t = drive(&p, [fail(Permanent)]);
    assert_eq!(
        t.last(),
        Decision::Failed(StopReason::NonRetryable(Permanent))
    );
    assert_eq!(t.event_names(), ["permanent_failure"]);
    assert_eq!(b.state(), CircuitState::Closed);
    // A tripping class opens it.
    let t = drive(&p, [fail(ServerError)]);
    assert_eq!(
        t.event_names(),
        ["circuit_opened", "retry", "circuit_rejected"]
    );
}

#[test]
fn failure_rate_mode_opens_on_the_ratio_once_throughput_is_reached() {
    let b = build(CircuitBreaker::failure_rate(0.5, 4, secs(10)).recovery(secs(1)));
    let p = policy_with(&b, BreakerScope::PerAttempt, 6);
    assert_eq!(drive_at(&p, at(0), [ok()]).last(), Decision::Succeeded);
    assert_eq!(drive_at(&p, at(10), [ok()]).last(), Decision::Succeeded);
    // 1 failure of 3: below min throughput. 2 of 4 ≥ 0.5: open.
    let t = drive_at(&p, at(20), [fail(Transient), fail(Transient), ok()]);
    assert_eq!(
        t.decisions(),
        [
            attempt(1),
            Decision::Sleep {
                until: at(120),
                delay: ms(100)
            },
            attempt(2),
            Decision::Sleep {
                until: at(220),
                delay: ms(100)
            },
            Decision::Rejected { until: at(1120) },
        ]
    );
    assert_eq!(
        t.event_names(),
        ["retry", "circuit_opened", "retry", "circuit_rejected"]
    );
}

#[test]
fn failure_rate_mode_per_call_opens_after_failed_calls() {
    let b = build(CircuitBreaker::failure_rate(0.5, 4, secs(10)).recovery(secs(1)));
    let p = policy_with(&b, BreakerScope::PerCall, 2);
    drive_at(&p, at(0), [ok()]);
    drive_at(&p, at(10), [fail(Transient), fail(Transient)]);
    drive_at(&p, at(200), [ok()]);
    assert_eq!(b.window_counts(at(200)), (1, 3));
    let t = drive_at(&p, at(300), [fail(ServerError), fail(ServerError)]);
    assert_eq!(t.last(), Decision::Failed(StopReason::MaxAttempts));
    assert_eq!(t.event_names(), ["retry", "circuit_opened", "max_attempts"]);
    assert_eq!(t.events()[1].class, Some(ServerError));
    assert_eq!(
        drive_at(&p, at(500), [ok()]).decisions(),
        [Decision::Rejected { until: at(1400) }]
    );
}

#[test]
fn a_sleeping_call_wakes_into_a_breaker_another_call_opened_and_probes_it() {
    let b = two_strikes();
    let slow = Policy::builder()
        .retry(Retry::builder().no_deadline().strategy(constant(secs(2))))
        .breaker(Arc::clone(&b))
        .build()
        .unwrap();
    let fast = policy_with(&b, BreakerScope::PerAttempt, 6);

    let mut m = slow.machine();
    assert_eq!(m.start(at(0)), attempt(1));
    assert_eq!(
        m.on_outcome(at(0), Outcome::failure(Transient)),
        Decision::Sleep {
            until: at(2000),
            delay: secs(2)
        }
    );
    // Meanwhile another call's failure (the run's second) trips the breaker at 100 ms.
    assert_eq!(
        drive_at(&fast, at(100), [fail(Transient), ok()]).last(),
        Decision::Rejected { until: at(1100) }
    );
    // The slow call wakes after the recovery time: its attempt is the half-open probe.
    let _ = drain(&mut m);
    assert_eq!(m.on_wake(at(2000)), attempt(2));
    let events = drain(&mut m);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::CircuitHalfOpen);
    assert_eq!((events[0].attempt, events[0].class), (1, Some(Transient)));
    assert_eq!(
        m.on_outcome(at(2010), Outcome::Success),
        Decision::Succeeded
    );
    let names: Vec<_> = drain(&mut m).iter().map(|e| e.kind.name()).collect();
    assert_eq!(names, ["circuit_closed", "success"]);
    assert_eq!(b.state(), CircuitState::Closed);
}

#[test]
fn an_attempt_admitted_before_the_breaker_opened_cannot_close_it() {
    let b = build(CircuitBreaker::consecutive(1, secs(10)).recovery(secs(1)));
    let p = policy_with(&b, BreakerScope::PerAttempt, 6);
    let mut slow = p.machine();
    assert_eq!(slow.start(at(0)), attempt(1));
    // Another call trips the breaker while the slow attempt runs.
    drive_at(&p, at(10), [fail(ServerError)]);
    assert_eq!(b.state(), CircuitState::Open);
    // The slow attempt's success belongs to the closed breaker of before: it is ignored.
    assert_eq!(
        slow.on_outcome(at(50), Outcome::Success),
        Decision::Succeeded
    );
    let names: Vec<_> = drain(&mut slow).iter().map(|e| e.kind.name()).collect();
    assert_eq!(names, ["success"]);
    assert_eq!(b.state(), CircuitState::Open);
}
