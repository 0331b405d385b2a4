//! Bad input: the rows of the bad-input catalogue (`redress::manual::bad_input`) that no
//! other test backs. Each test feeds redress one hostile or absurd value a user controls —
//! extreme settings, strategies and hints of `Duration::MAX`, panicking strategies and
//! classifiers, corrupt saved state — and pins down what redress does with it: an error at
//! build, a clamp, a stop reason, or a panic that leaves shared state consistent.
#![allow(clippy::unwrap_used)]
#![forbid(unsafe_code)]

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use redress::backoff::{Backoff, BackoffContext, constant, retry_after_or};
use redress::drive::{ManualSleeper, SleepVerdict};
use redress::rng::Rng;
use redress::{
    Budget, CircuitBreaker, CircuitState, Classification, Clock, Decision, ErrorClass, Instant,
    ManualClock, Outcome, Policy, Retry, RetryState, StopReason,
};
use redress_blocking::RunBlocking;
use redress_tests::scenario::{drive, fail, fail_hinted, ms, secs};

use ErrorClass::Transient;

/// Panics this file provokes carry this prefix; the panic hook keeps them quiet.
const EXPECTED: &str = "expected panic:";

fn quiet_expected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = info.payload().downcast_ref::<String>().map(String::as_str);
            if !msg.is_some_and(|m| m.starts_with(EXPECTED)) {
                default(info);
            }
        }));
    });
}

fn policy(retry: redress::RetryBuilder) -> Policy {
    retry.policy().unwrap()
}

// ----- settings at their extremes ---------------------------------------------------------

#[test]
fn max_attempts_of_u32_max_is_accepted_and_the_deadline_still_ends_the_call() {
    let p = policy(
        Retry::builder()
            .max_attempts(u32::MAX)
            .deadline(secs(10))
            .strategy(constant(secs(1))),
    );
    let trace = drive(&p, std::iter::repeat_n(fail(Transient), 100));
    assert_eq!(trace.last(), Decision::Failed(StopReason::DeadlineExceeded));
    assert_eq!(trace.attempts(), 10);
}

#[test]
fn a_deadline_and_attempt_timeout_of_duration_max_saturate_at_the_end_of_time() {
    let p = policy(
        Retry::builder()
            .deadline(Duration::MAX)
            .attempt_timeout(Duration::MAX)
            .strategy(constant(ms(1))),
    );
    let mut m = p.machine();
    assert_eq!(
        m.start(Instant::from_secs(5)),
        Decision::Attempt {
            n: 1,
            deadline: Some(Instant::MAX)
        }
    );
    let d = m.on_outcome(Instant::from_secs(6), Outcome::failure(Transient));
    assert!(matches!(d, Decision::Sleep { .. }), "{d:?}");
}

#[test]
fn windows_and_recoveries_of_duration_max_build_and_never_panic() {
    let rolling = Budget::rolling(1, Duration::MAX).build().unwrap();
    let ratio = Budget::ratio(0.5, 1.0, Duration::MAX).build().unwrap();
    for t in [Instant::ZERO, Instant::from_secs(1), Instant::MAX] {
        ratio.deposit(t);
        let _ = rolling.withdraw(t, Transient);
        let _ = ratio.withdraw(t, Transient);
        let _ = (rolling.remaining(t), ratio.remaining(t));
    }
    assert_eq!(
        rolling.remaining(Instant::MAX),
        0,
        "one retry in the only window"
    );

    // A breaker that opens for "ever": it refuses everything before the end of time.
    for b in [
        CircuitBreaker::consecutive(1, Duration::MAX),
        CircuitBreaker::failure_rate(0.5, 1, Duration::MAX),
    ] {
        let b = b.recovery(Duration::MAX).build().unwrap();
        let p = b.try_acquire(Instant::from_secs(1)).unwrap();
        b.record(
            Instant::from_secs(1),
            p,
            redress::breaker::BreakerOutcome::Failure(Transient),
        );
        assert_eq!(b.state(), CircuitState::Open);
        assert_eq!(
            b.try_acquire(Instant::from_secs(1_000_000))
                .unwrap_err()
                .until,
            Instant::MAX
        );
        assert!(b.try_acquire(Instant::MAX).is_ok());
    }
}

#[test]
fn a_budget_of_nothing_or_an_unaffordable_cost_stops_the_first_retry() {
    for budget in [
        Budget::rolling(0, secs(1)).build().unwrap(),
        Budget::rolling(1000, secs(1))
            .cost(Transient, u32::MAX)
            .build()
            .unwrap(),
        Budget::ratio(0.0, 0.0, secs(1)).build().unwrap(),
    ] {
        let p = policy(
            Retry::builder()
                .strategy(constant(ms(1)))
                .budget(Arc::new(budget)),
        );
        let trace = drive(&p, [fail(Transient), fail(Transient)]);
        assert_eq!(trace.last(), Decision::Failed(StopReason::BudgetExhausted));
        assert_eq!(trace.attempts(), 1);
    }
}

// ----- strategy output ------------------------------------------------------------------

/// A strategy that always asks for `delay` and claims `max` as its largest delay.
struct Fixed {
    delay: Duration,
    max: Duration,
}

impl Backoff for Fixed {
    fn delay(&self, _: &BackoffContext, _: &mut dyn Rng) -> Duration {
        self.delay
    }
    fn max_delay(&self) -> Duration {
        self.max
    }
}

#[test]
fn a_strategy_asking_for_duration_max_stops_at_the_deadline_or_sleeps_until_the_end_of_time() {
    let forever = Fixed {
        delay: Duration::MAX,
        max: Duration::MAX,
    };
    let p = policy(Retry::builder().strategy(forever));
    let trace = drive(&p, [fail(Transient)]);
    assert_eq!(trace.last(), Decision::Failed(StopReason::DeadlineExceeded));

    let p = policy(
        Retry::builder()
            .no_deadline()
            .strategy(|_: &BackoffContext| Duration::MAX),
    );
    let mut m = p.machine();
    m.start(Instant::from_secs(1));
    assert_eq!(
        m.on_outcome(Instant::from_secs(1), Outcome::failure(Transient)),
        Decision::Sleep {
            until: Instant::MAX,
            delay: Duration::MAX
        }
    );
    assert_eq!(m.poll_timeout(), Some(Instant::MAX));
    assert!(matches!(
        m.on_wake(Instant::MAX),
        Decision::Attempt { n: 2, .. }
    ));
}

#[test]
fn a_strategy_is_clamped_to_its_own_max_delay() {
    let liar = Fixed {
        delay: secs(3600),
        max: ms(250),
    };
    let p = policy(Retry::builder().strategy(liar));
    let trace = drive(&p, [fail(Transient), redress_tests::scenario::ok()]);
    assert_eq!(trace.sleeps(), [ms(250)]);
}

#[test]
fn a_panicking_strategy_propagates_but_spends_no_budget_and_leaves_the_breaker_consistent() {
    let breaker = Arc::new(
        CircuitBreaker::consecutive(2, secs(1))
            .recovery(ms(10))
            .build()
            .unwrap(),
    );
    let budget = Arc::new(Budget::rolling(5, secs(60)).build().unwrap());
    let p = Policy::builder()
        .retry(
            Retry::builder()
                .strategy(|_: &BackoffContext| -> Duration { panic!("{EXPECTED} strategy bug") })
                .budget(budget.clone()),
        )
        .breaker(breaker.clone())
        .build()
        .unwrap();
    let clock = ManualClock::new(Instant::ZERO);
    let sleeper = ManualSleeper::new(clock.clone());
    let ctx = p.context("op");
    quiet_expected_panics();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        ctx.run_with(&sleeper, |_| {
            Err::<(), _>(io::Error::from(io::ErrorKind::ConnectionReset))
        })
        .is_ok()
    }));
    assert!(outcome.is_err(), "the strategy's panic reaches the caller");
    assert_eq!(budget.remaining(clock.now()), 5, "no budget spent");
    // The failure was recorded before the strategy ran: one more opens the breaker.
    let permit = breaker.try_acquire(clock.now()).unwrap();
    assert_eq!(
        breaker.record(
            clock.now(),
            permit,
            redress::breaker::BreakerOutcome::Failure(Transient)
        ),
        Some(redress::breaker::Transition::Opened)
    );
}

// ----- classifier output ----------------------------------------------------------------

#[test]
fn a_retry_after_hint_of_duration_max_is_capped_or_stops_at_the_deadline() {
    let capped = policy(
        Retry::builder()
            .deadline(secs(120))
            .strategy(retry_after_or(constant(ms(100))).jitter(Duration::ZERO)),
    );
    let trace = drive(
        &capped,
        [
            fail_hinted(ErrorClass::RateLimit, Duration::MAX),
            redress_tests::scenario::ok(),
        ],
    );
    assert_eq!(trace.sleeps(), [secs(60)], "the default max_hint");

    let obedient = policy(
        Retry::builder().strategy(|c: &BackoffContext| c.retry_after.unwrap_or(Duration::ZERO)),
    );
    let trace = drive(
        &obedient,
        [fail_hinted(ErrorClass::RateLimit, Duration::MAX)],
    );
    assert_eq!(trace.last(), Decision::Failed(StopReason::DeadlineExceeded));
}

#[test]
fn a_panicking_classifier_propagates_and_gives_back_its_probe() {
    let breaker = Arc::new(
        CircuitBreaker::consecutive(1, secs(1))
            .recovery(ms(10))
            .build()
            .unwrap(),
    );
    let p = Policy::builder()
        .retry(Retry::builder().strategy(constant(ms(1))))
        .breaker(breaker.clone())
        .build()
        .unwrap();
    let clock = ManualClock::new(Instant::ZERO);
    let sleeper = ManualSleeper::new(clock.clone());
    // Trip the breaker, then let its recovery time pass: the next call is the probe.
    let trip = p.context("op");
    let _ = trip.run_with(&sleeper, |_| {
        Err::<(), _>(io::Error::from(io::ErrorKind::ConnectionReset))
    });
    assert_eq!(breaker.state(), CircuitState::Open);
    clock.advance(ms(10));
    let ctx = p
        .context("op")
        .classify(|_: &io::Error| -> Classification { panic!("{EXPECTED} classifier bug") });
    quiet_expected_panics();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        ctx.run_with(&sleeper, |_| {
            Err::<(), _>(io::Error::from(io::ErrorKind::ConnectionReset))
        })
        .is_ok()
    }));
    assert!(outcome.is_err());
    assert_eq!(breaker.state(), CircuitState::HalfOpen);
    // The probe slot came back: the next call is admitted and closes the breaker.
    let ok = p
        .context("op")
        .run_with(&sleeper, |_| Ok::<_, io::Error>(1));
    assert_eq!(ok.unwrap(), 1);
    assert_eq!(breaker.state(), CircuitState::Closed);
}

// ----- hook output ----------------------------------------------------------------------

#[test]
fn before_sleep_asking_for_an_endless_or_zero_sleep_is_clamped_to_the_planned_one() {
    let p = policy(Retry::builder().max_attempts(3).strategy(constant(ms(100))));
    for (verdict, slept) in [
        (SleepVerdict::Shorten(Duration::MAX), ms(200)),
        (SleepVerdict::Shorten(Duration::ZERO), Duration::ZERO),
    ] {
        let clock = ManualClock::new(Instant::ZERO);
        let sleeper = ManualSleeper::new(clock.clone());
        let ctx = p.context("op").before_sleep(move |_| verdict);
        let r = ctx.run_with(&sleeper, |_| {
            Err::<(), _>(io::Error::from(io::ErrorKind::ConnectionReset))
        });
        assert_eq!(r.unwrap_err().reason(), StopReason::MaxAttempts);
        assert_eq!(clock.now().since_epoch(), slept, "{verdict:?}");
    }
}

// ----- saved state and clocks -----------------------------------------------------------

#[test]
fn a_resumed_state_past_its_caps_gets_one_more_attempt_then_stops() {
    let p = policy(Retry::builder().max_attempts(3).strategy(constant(ms(1))));
    let mut state = RetryState::default();
    state.attempts = 10;
    let mut m = p.resume(&state);
    assert!(matches!(
        m.start(Instant::ZERO),
        Decision::Attempt { n: 11, .. }
    ));
    assert_eq!(
        m.on_outcome(Instant::ZERO, Outcome::failure(Transient)),
        Decision::Failed(StopReason::MaxAttempts)
    );
    // A state that used up its deadline stops before any attempt.
    let mut state = RetryState::default();
    state.elapsed = Duration::MAX;
    let mut m = p.resume(&state);
    assert_eq!(
        m.start(Instant::ZERO),
        Decision::Failed(StopReason::DeadlineExceeded)
    );
}

#[test]
fn a_manual_clock_saturates_at_the_end_of_time() {
    let c = ManualClock::new(Instant::MAX);
    c.advance(Duration::MAX);
    assert_eq!(c.now(), Instant::MAX);
    c.set(Instant::ZERO);
    assert_eq!(c.now(), Instant::ZERO, "set may move it backwards");
}
