//! Scenarios: what a call tells its observer. Exact event sequences (names, attempts,
//! classes, elapsed time, operation names), hooks that cannot change the call, and the
//! `CallReport` folded from the events.
#![allow(clippy::unwrap_used)]
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use redress::backoff::constant;
use redress::event::{Event, EventRecord, Recorder};
use redress::report::AttemptRecord;
use redress::{
    CallReport, CircuitBreaker, Decision, ErrorClass, EventKind, Outcome, Policy, Retry, StopReason,
};
use redress_tests::scenario::{
    Step, as_event, at, cancelled, drive, drive_at, drive_machine, fail, ms, ok, secs,
};

use ErrorClass::{Permanent, ServerError, Transient, Unknown};

/// 100 ms between attempts, the default caps and deadline, events named `operation`.
fn named(operation: &str) -> Policy {
    Policy::builder()
        .retry(Retry::builder().strategy(constant(ms(100))))
        .operation(operation)
        .build()
        .unwrap()
}

/// Fails twice (10 ms, then 20 ms into the attempt), then succeeds after 30 ms.
fn two_failures_then_success() -> [Step; 3] {
    [
        fail(Transient).after(ms(10)),
        fail(ServerError).after(ms(20)),
        ok().after(ms(30)),
    ]
}

fn record(
    kind: EventKind,
    attempt: u32,
    class: Option<ErrorClass>,
    elapsed_ms: u64,
    operation: &str,
) -> EventRecord {
    EventRecord {
        kind,
        attempt,
        class,
        elapsed: ms(elapsed_ms),
        operation: operation.into(),
    }
}

fn retry_after(delay_ms: u64) -> EventKind {
    EventKind::Retry {
        delay: ms(delay_ms),
        retry_after: None,
    }
}

#[test]
fn a_retried_call_emits_one_retry_per_sleep_then_success() {
    let p = named("fetch_user");
    let t = drive(&p, two_failures_then_success());
    assert_eq!(
        t.events(),
        [
            record(retry_after(100), 1, Some(Transient), 10, "fetch_user"),
            record(retry_after(100), 2, Some(ServerError), 130, "fetch_user"),
            record(EventKind::Success, 3, None, 260, "fetch_user"),
        ]
    );
    assert_eq!(t.event_names(), ["retry", "retry", "success"]);
}

#[test]
fn a_machine_can_rename_the_operation_of_its_call() {
    let p = named("fetch_user");
    let t = drive_machine(
        &p,
        p.machine().with_operation("fetch_user:42"),
        at(0),
        [fail(Transient), ok()],
    );
    assert!(t.events().iter().all(|e| &*e.operation == "fetch_user:42"));
    // Unnamed policies emit an empty name.
    let t = drive(&Policy::default(), [ok()]);
    assert_eq!(&*t.events()[0].operation, "");
}

#[test]
fn the_events_of_failed_calls_end_with_their_stop_reason() {
    let p = named("op");
    let cases: [(Vec<Step>, &str, StopReason); 4] = [
        (
            vec![fail(Permanent)],
            "permanent_failure",
            StopReason::NonRetryable(Permanent),
        ),
        (
            vec![fail(Unknown), fail(Unknown)],
            "max_unknown_attempts",
            StopReason::MaxUnknownAttempts,
        ),
        (
            vec![fail(Transient); 6],
            "max_attempts",
            StopReason::MaxAttempts,
        ),
        (
            vec![fail(Transient), cancelled()],
            "cancelled",
            StopReason::Cancelled,
        ),
    ];
    for (script, name, reason) in cases {
        let t = drive(&p, script);
        let events = t.events();
        let last = events.last().unwrap();
        assert_eq!(last.kind, EventKind::Stopped(reason), "{name}");
        assert_eq!(last.kind.name(), name);
        assert_eq!(last.attempt, t.state.attempts, "{name}");
        assert_eq!(last.class, t.state.last_class, "{name}");
        // Every event before the last is a retry, one per attempt.
        assert!(
            events[..events.len() - 1]
                .iter()
                .zip(1..)
                .all(|(e, n)| e.kind.name() == "retry" && e.attempt == n)
        );
    }
}

#[test]
fn the_hook_sees_exactly_the_events_a_driver_drains() {
    let rec = Recorder::default();
    let p = Policy::builder()
        .retry(Retry::builder().strategy(constant(ms(100))))
        .operation("sync")
        .hook(rec.clone())
        .build()
        .unwrap();
    let t = drive(&p, two_failures_then_success());
    assert_eq!(rec.take(), t.events());
    assert!(rec.take().is_empty());
}

#[test]
fn a_panicking_hook_cannot_change_the_call() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let noisy = Policy::builder()
        .retry(Retry::builder().strategy(constant(ms(100))))
        .operation("op")
        .hook(move |e: &Event<'_>| {
            seen.fetch_add(1, Ordering::Relaxed);
            panic!("observer bug at {}", e.name());
        })
        .build()
        .unwrap();
    let quiet = named("op");
    let with_hook = drive(&noisy, two_failures_then_success());
    let without = drive(&quiet, two_failures_then_success());
    assert_eq!(with_hook, without);
    assert_eq!(
        calls.load(Ordering::Relaxed),
        3,
        "the hook ran for every event"
    );
    // And emitting directly is contained too.
    noisy.emit(&as_event(&with_hook.events()[0]));
    assert_eq!(calls.load(Ordering::Relaxed), 4);
}

#[test]
fn events_not_drained_are_dropped_at_the_next_input() {
    let p = named("op");
    let mut m = p.machine();
    m.start(at(0));
    m.on_outcome(at(0), Outcome::failure(Transient));
    // An early wake-up is no input at all: the retry event is still queued.
    m.on_wake(at(50));
    assert_eq!(m.poll_event().map(|e| e.name()), Some("retry"));
    assert!(m.poll_event().is_none());

    let mut m = p.machine();
    m.start(at(0));
    m.on_outcome(at(0), Outcome::failure(Transient));
    assert_eq!(
        m.on_wake(at(100)),
        Decision::Attempt {
            n: 2,
            deadline: Some(at(60_000))
        }
    );
    assert!(
        m.poll_event().is_none(),
        "the undrained retry event is gone"
    );
}

#[test]
fn events_display_as_one_log_line() {
    let p = named("fetch_user");
    let t = drive(&p, two_failures_then_success());
    let lines: Vec<String> = t.events().iter().map(|r| as_event(r).to_string()).collect();
    assert_eq!(
        lines,
        [
            "retry attempt=1 class=transient sleep=100ms operation=fetch_user elapsed=10ms",
            "retry attempt=2 class=server_error sleep=100ms operation=fetch_user elapsed=130ms",
            "success attempt=3 operation=fetch_user elapsed=260ms",
        ]
    );
}

#[test]
fn the_report_of_a_successful_call_lists_every_attempt() {
    let t = drive(&named("op"), two_failures_then_success());
    assert_eq!(
        t.report(),
        CallReport {
            attempts: 3,
            timeline: vec![
                AttemptRecord {
                    attempt: 1,
                    class: Some(Transient),
                    sleep_after: Some(ms(100)),
                    elapsed: ms(10)
                },
                AttemptRecord {
                    attempt: 2,
                    class: Some(ServerError),
                    sleep_after: Some(ms(100)),
                    elapsed: ms(130)
                },
                AttemptRecord {
                    attempt: 3,
                    class: None,
                    sleep_after: None,
                    elapsed: ms(260)
                },
            ],
            total_sleep: ms(200),
            elapsed: ms(260),
            succeeded: true,
            stop: None,
        }
    );
}

#[test]
fn the_report_of_a_failed_call_ends_with_its_stop_reason() {
    let p = Policy::from(
        Retry::builder()
            .max_attempts(2)
            .strategy(constant(ms(50)))
            .build()
            .unwrap(),
    );
    let t = drive(
        &p,
        [fail(Transient).after(ms(5)), fail(Transient).after(ms(5))],
    );
    let report = t.report();
    assert_eq!(report.attempts, 2);
    assert_eq!(report.total_sleep, ms(50));
    assert_eq!(report.elapsed, ms(60));
    assert!(!report.succeeded);
    assert_eq!(report.stop, Some(StopReason::MaxAttempts));
    assert_eq!(
        report.timeline.last(),
        Some(&AttemptRecord {
            attempt: 2,
            class: Some(Transient),
            sleep_after: None,
            elapsed: ms(60)
        })
    );
    assert_eq!(report.stop, t.stop_reason);
    assert_eq!(report.total_sleep, t.state.total_sleep);
}

#[test]
fn the_report_of_a_deferred_call_counts_the_deferral_as_sleep() {
    let p = named("job");
    let t = drive_machine(&p, p.machine().deferring(true), at(0), [fail(Transient)]);
    let report = t.report();
    assert_eq!(
        report.stop,
        Some(StopReason::Deferred {
            retry_at: at(100),
            delay: ms(100)
        })
    );
    assert_eq!(report.total_sleep, ms(100));
    assert_eq!(report.timeline.len(), 1);
}

#[test]
fn the_report_of_a_rejected_call_names_the_open_circuit() {
    let breaker = Arc::new(
        CircuitBreaker::consecutive(1, secs(10))
            .recovery(secs(1))
            .build()
            .unwrap(),
    );
    let p = Policy::builder()
        .retry(Retry::builder().no_deadline().strategy(constant(ms(100))))
        .breaker(breaker)
        .operation("dep")
        .build()
        .unwrap();
    let t = drive(&p, [fail(ServerError), ok()]);
    assert_eq!(
        t.events(),
        [
            record(EventKind::CircuitOpened, 1, Some(ServerError), 0, "dep"),
            record(retry_after(100), 1, Some(ServerError), 0, "dep"),
            record(
                EventKind::CircuitRejected { until: at(1000) },
                1,
                Some(ServerError),
                100,
                "dep"
            ),
        ]
    );
    let report = t.report();
    assert_eq!(
        report.stop,
        Some(StopReason::CircuitOpen { until: at(1000) })
    );
    assert_eq!(report.stop, t.stop_reason);
    assert_eq!(report.attempts, 1);
    assert_eq!(report.timeline.len(), 1, "breaker events add no attempts");
    assert!(!report.succeeded);

    // A call rejected at admission made no attempt at all.
    let t = drive_at(&p, at(500), [ok()]);
    let report = t.report();
    assert_eq!(report.attempts, 0);
    assert!(report.timeline.is_empty());
    assert_eq!(
        report.stop,
        Some(StopReason::CircuitOpen { until: at(1000) })
    );
}
