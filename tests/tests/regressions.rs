//! Regressions: bugs found by the fuzzers (`fuzz/`), the chaos tests and the soak test,
//! each kept as the smallest test that failed before its fix.
#![allow(clippy::unwrap_used)]
#![forbid(unsafe_code)]

use std::io;
use std::time::Duration;

use redress::backoff::constant;
use redress::drive::ManualSleeper;
use redress::{
    Clock, Decision, ErrorClass, Instant, ManualClock, Outcome, Policy, Retry, RetryState,
    StopReason,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn transient() -> io::Error {
    io::Error::from(io::ErrorKind::ConnectionReset)
}

/// Found by the soak test: `ManualSleeper`'s async sleep moved the clock when it was
/// *created*, so racing an attempt that finished at once against its time limit still aged
/// the clock to that limit (here the 60 s deadline), and the first failure found the
/// call's deadline already passed.
#[test]
fn a_manual_sleeper_leaves_the_clock_alone_when_an_attempt_beats_its_time_limit() {
    let clock = ManualClock::new(Instant::ZERO);
    let sleeper = ManualSleeper::new(clock.clone());
    let policy = Retry::builder()
        .max_attempts(3)
        .strategy(constant(ms(10)))
        .policy()
        .unwrap();
    let ctx = policy.context("op");
    for tokio_crate in [true, false] {
        clock.set(Instant::ZERO);
        let mut calls = 0;
        let op = async |_| {
            calls += 1;
            if calls < 3 {
                Err(transient())
            } else {
                Ok(calls)
            }
        };
        let result = if tokio_crate {
            futures_lite::future::block_on(redress_tokio::RunAsync::run_with(&ctx, &sleeper, op))
        } else {
            futures_lite::future::block_on(redress_smol::RunAsync::run_with(&ctx, &sleeper, op))
        };
        assert_eq!(result.unwrap(), 3);
        // Two sleeps of 10 ms; no time limit was reached.
        assert_eq!(clock.now(), Instant::from_millis(20));
    }
}

/// The other half of the fix: an attempt that never finishes still ends at its time limit,
/// with the clock moved there.
#[test]
fn a_manual_sleeper_still_ends_a_hanging_attempt_at_its_time_limit() {
    let clock = ManualClock::new(Instant::ZERO);
    let sleeper = ManualSleeper::new(clock.clone());
    let policy = Retry::builder()
        .max_attempts(2)
        .attempt_timeout(ms(500))
        .strategy(constant(ms(10)))
        .policy()
        .unwrap();
    let ctx = policy.context("op");
    let mut calls = 0;
    let result = futures_lite::future::block_on(redress_smol::RunAsync::run_with(
        &ctx,
        &sleeper,
        async |_| {
            calls += 1;
            if calls == 1 {
                std::future::pending::<()>().await;
            }
            Ok::<_, io::Error>(calls)
        },
    ));
    assert_eq!(result.unwrap(), 2);
    assert_eq!(clock.now(), Instant::from_millis(510));
}

fn corrupt_state() -> RetryState {
    let mut s = RetryState::default();
    s.attempts = u32::MAX;
    s.elapsed = Duration::MAX;
    s.class_attempts = [u32::MAX; ErrorClass::COUNT];
    s.prev_sleep = Some(Duration::MAX);
    s.total_sleep = Duration::MAX;
    s
}

/// Found by the `machine_inputs` fuzz target (crash-dba3f103…): resuming a saved state whose
/// attempt count was already `u32::MAX` overflowed the count when the next attempt began
/// (a panic with overflow checks, a wrap to attempt 0 without).
#[test]
fn resuming_a_state_at_the_largest_attempt_count_does_not_overflow() {
    let policy = Retry::builder()
        .no_deadline()
        .strategy(constant(ms(1)))
        .policy()
        .unwrap();
    let mut m = policy.resume(&corrupt_state());
    assert_eq!(
        m.start(Instant::ZERO),
        Decision::Attempt {
            n: u32::MAX,
            deadline: None
        }
    );
    assert_eq!(
        m.on_outcome(Instant::ZERO, Outcome::failure(ErrorClass::Transient)),
        Decision::Failed(StopReason::MaxAttempts)
    );
    let untimed = Policy::from(Retry::builder().no_deadline().build().unwrap());
    let mut m = untimed.resume(&corrupt_state());
    assert!(matches!(
        m.start_untimed(),
        Decision::Attempt { n: u32::MAX, .. }
    ));
}

/// Found next to the one above: the elapsed time of a resumed call (its saved `elapsed`
/// plus the time since it resumed) overflowed `Duration` for a saved `elapsed` near
/// `Duration::MAX`, panicking when the first event was stamped.
#[test]
fn resuming_a_state_with_the_largest_elapsed_time_does_not_overflow() {
    let policy = Retry::builder()
        .no_deadline()
        .strategy(constant(ms(1)))
        .policy()
        .unwrap();
    let mut state = RetryState::default();
    state.elapsed = Duration::MAX;
    let mut m = policy.resume(&state);
    assert!(matches!(
        m.start(Instant::ZERO),
        Decision::Attempt { n: 1, .. }
    ));
    let d = m.on_outcome(
        Instant::from_secs(1),
        Outcome::failure(ErrorClass::Transient),
    );
    assert!(matches!(d, Decision::Sleep { .. }), "{d:?}");
    let event = m.poll_event().unwrap();
    assert_eq!(event.elapsed, Duration::MAX);
    assert_eq!(m.elapsed(Instant::from_secs(2)), Duration::MAX);
}
