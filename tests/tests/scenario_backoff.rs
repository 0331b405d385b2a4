//! Scenarios: how long a policy sleeps between attempts (per-class strategies, exact
//! schedules, seeded jitter, `Retry-After` hints) and what strategies are told.
#![allow(clippy::unwrap_used)]
#![forbid(unsafe_code)]

use std::sync::{Arc, Mutex};

use core::time::Duration;

use redress::backoff::{
    BackoffContext, constant, decorrelated_jitter, equal_jitter, exponential, retry_after_or,
};
use redress::rng::seeded;
use redress::{Decision, ErrorClass, EventKind, Instant, Policy, Retry, RetryBuilder, StopReason};
use redress_tests::scenario::{Step, at, drive, drive_machine, fail, fail_hinted, ms, ok, secs};

use ErrorClass::{RateLimit, ServerError, Transient};

fn policy(b: RetryBuilder) -> Policy {
    b.policy().unwrap()
}

fn seeded_policy(b: RetryBuilder, seed: u64) -> Policy {
    Policy::builder().retry(b).seed(seed).build().unwrap()
}

fn transient_failures(n: usize) -> Vec<Step> {
    vec![fail(Transient); n]
}

#[test]
fn exponential_doubles_from_base_and_stops_at_max() {
    let p = policy(
        Retry::builder()
            .no_deadline()
            .max_attempts(6)
            .strategy(exponential(ms(100), secs(1))),
    );
    let t = drive(&p, transient_failures(6));
    assert_eq!(t.sleeps(), [ms(100), ms(200), ms(400), ms(800), secs(1)]);
    let untils: Vec<Instant> = t
        .decisions()
        .into_iter()
        .filter_map(|d| match d {
            Decision::Sleep { until, .. } => Some(until),
            _ => None,
        })
        .collect();
    assert_eq!(untils, [at(100), at(300), at(700), at(1500), at(2500)]);
    assert_eq!(t.last(), Decision::Failed(StopReason::MaxAttempts));
    assert_eq!(t.state.total_sleep, ms(2500));
}

#[test]
fn constant_sleeps_the_same_every_time() {
    let p = policy(
        Retry::builder()
            .no_deadline()
            .max_attempts(4)
            .strategy(constant(ms(250))),
    );
    let t = drive(&p, transient_failures(3).into_iter().chain([ok()]));
    assert_eq!(t.sleeps(), [ms(250); 3]);
    assert_eq!(t.last(), Decision::Succeeded);
    assert_eq!(t.end, at(750));
}

#[test]
fn the_sleep_ends_delay_after_the_failure_not_after_the_attempt_started() {
    let p = policy(Retry::builder().no_deadline().strategy(constant(ms(100))));
    let t = drive(&p, [fail(Transient).after(ms(30)), ok().after(ms(5))]);
    assert_eq!(
        t.decisions(),
        [
            Decision::Attempt {
                n: 1,
                deadline: None
            },
            Decision::Sleep {
                until: at(130),
                delay: ms(100)
            },
            Decision::Attempt {
                n: 2,
                deadline: None
            },
            Decision::Succeeded,
        ]
    );
    assert_eq!(t.end, at(135));
}

#[test]
fn each_class_uses_its_own_strategy_and_others_the_default() {
    let p = policy(
        Retry::builder()
            .no_deadline()
            .strategy(exponential(ms(100), secs(10)))
            .class_strategy(RateLimit, constant(secs(1))),
    );
    let t = drive(
        &p,
        [fail(Transient), fail(RateLimit), fail(Transient), ok()],
    );
    // The exponential counts the call's attempts: the third failure is attempt 3 → 400 ms.
    assert_eq!(t.sleeps(), [ms(100), secs(1), ms(400)]);
    let classes: Vec<_> = t.events().iter().map(|e| e.class).collect();
    assert_eq!(
        classes,
        [Some(Transient), Some(RateLimit), Some(Transient), None]
    );
}

#[test]
fn a_seeded_policy_draws_the_same_jitter_every_time() {
    let retry = || {
        Retry::builder()
            .no_deadline()
            .max_attempts(5)
            .strategy(equal_jitter(ms(100), secs(10)))
    };
    let a = seeded_policy(retry(), 7);
    let b = seeded_policy(retry(), 7);
    let other = seeded_policy(retry(), 8);
    let ta = drive(&a, transient_failures(5));
    let tb = drive(&b, transient_failures(5));
    let to = drive(&other, transient_failures(5));
    assert_eq!(ta, tb, "same seed, same policy, same outcomes: same trace");
    assert_ne!(ta.sleeps(), to.sleeps(), "another seed draws other delays");
    // equal_jitter: cap = base·2ⁿ, delay within [cap/2, cap].
    for (n, d) in (1u32..).zip(ta.sleeps()) {
        let cap = ms(100) * 2u32.pow(n);
        assert!(d >= cap / 2 && d <= cap, "attempt {n}: {d:?}");
    }
    // The second call of a seeded policy is reproducible too, and differs from the first.
    let ta2 = drive(&a, transient_failures(5));
    let tb2 = drive(&b, transient_failures(5));
    assert_eq!(ta2.sleeps(), tb2.sleeps());
    assert_ne!(ta2.sleeps(), ta.sleeps());
}

#[test]
fn an_injected_generator_makes_jitter_reproducible_without_a_policy_seed() {
    let p = policy(
        Retry::builder()
            .no_deadline()
            .max_attempts(6)
            .strategy(decorrelated_jitter(ms(100), secs(1))),
    );
    let run = |seed| {
        drive_machine(
            &p,
            p.machine_with_rng(seeded(seed)),
            Instant::ZERO,
            transient_failures(6),
        )
    };
    let first = run(42);
    assert_eq!(first.sleeps(), run(42).sleeps());
    // Decorrelated jitter: U(base, 3·prev), never above max.
    let mut prev = ms(100);
    for d in first.sleeps() {
        assert!(
            d >= ms(100) && d <= (prev * 3).min(secs(1)),
            "{d:?} after {prev:?}"
        );
        prev = d;
    }
}

#[test]
fn retry_after_hints_are_slept_exactly_with_zero_hint_jitter() {
    let p = policy(
        Retry::builder()
            .no_deadline()
            .strategy(retry_after_or(exponential(ms(100), secs(10))).jitter(Duration::ZERO)),
    );
    let t = drive(&p, [fail_hinted(RateLimit, secs(3)), fail(RateLimit), ok()]);
    // With a hint: the hint. Without: the fallback, for attempt 2.
    assert_eq!(t.sleeps(), [secs(3), ms(200)]);
    let kinds: Vec<EventKind> = t.events().iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::Retry {
                delay: secs(3),
                retry_after: Some(secs(3))
            },
            EventKind::Retry {
                delay: ms(200),
                retry_after: None
            },
            EventKind::Success,
        ]
    );
}

#[test]
fn retry_after_hints_are_capped_at_max_hint() {
    let p = policy(
        Retry::builder().no_deadline().strategy(
            retry_after_or(constant(ms(100)))
                .max_hint(secs(5))
                .jitter(Duration::ZERO),
        ),
    );
    let t = drive(&p, [fail_hinted(RateLimit, secs(120)), ok()]);
    assert_eq!(t.sleeps(), [secs(5)]);
    // The event still carries the server's own hint.
    assert_eq!(
        t.events()[0].kind,
        EventKind::Retry {
            delay: secs(5),
            retry_after: Some(secs(120))
        }
    );
}

#[test]
fn retry_after_jitter_is_seeded_and_bounded() {
    let retry = || {
        Retry::builder()
            .no_deadline()
            .strategy(retry_after_or(constant(ms(100))).jitter(ms(250)))
    };
    let script = || {
        [
            fail_hinted(RateLimit, secs(2)),
            fail_hinted(RateLimit, secs(2)),
            ok(),
        ]
    };
    let a = drive(&seeded_policy(retry(), 3), script());
    let b = drive(&seeded_policy(retry(), 3), script());
    assert_eq!(a.sleeps(), b.sleeps());
    for d in a.sleeps() {
        assert!(d >= secs(2) && d <= secs(2) + ms(250), "{d:?}");
    }
}

#[test]
fn strategies_without_hint_support_ignore_the_hint() {
    let p = policy(
        Retry::builder()
            .no_deadline()
            .strategy(exponential(ms(100), secs(10))),
    );
    let t = drive(&p, [fail_hinted(ServerError, secs(5)), ok()]);
    assert_eq!(t.sleeps(), [ms(100)]);
    assert_eq!(
        t.events()[0].kind,
        EventKind::Retry {
            delay: ms(100),
            retry_after: Some(secs(5))
        }
    );
}

#[test]
fn strategies_see_the_call_and_are_never_asked_about_the_terminal_failure() {
    let seen: Arc<Mutex<Vec<BackoffContext>>> = Arc::default();
    let log = Arc::clone(&seen);
    let p = policy(
        Retry::builder()
            .deadline(secs(10))
            .max_attempts(3)
            .strategy(move |ctx: &BackoffContext| {
                log.lock().unwrap().push(*ctx);
                ms(100)
            }),
    );
    let t = drive(
        &p,
        [
            fail(Transient).after(ms(50)),
            fail_hinted(RateLimit, secs(1)).after(ms(50)),
            fail(Transient).after(ms(50)),
        ],
    );
    assert_eq!(t.last(), Decision::Failed(StopReason::MaxAttempts));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.len(),
        2,
        "the third (last allowed) failure asks for no delay"
    );

    assert_eq!(seen[0].attempt, 1);
    assert_eq!(seen[0].class, Transient);
    assert_eq!(seen[0].retry_after, None);
    assert_eq!(seen[0].prev_sleep, None);
    assert_eq!(seen[0].elapsed, ms(50));
    assert_eq!(seen[0].remaining, Some(ms(9950)));
    assert_eq!(seen[0].now, at(50));

    assert_eq!(seen[1].attempt, 2);
    assert_eq!(seen[1].class, RateLimit);
    assert_eq!(seen[1].retry_after, Some(secs(1)));
    assert_eq!(seen[1].prev_sleep, Some(ms(100)));
    assert_eq!(seen[1].elapsed, ms(200));
    assert_eq!(seen[1].remaining, Some(ms(9800)));
    assert_eq!(seen[1].now, at(200));
}
