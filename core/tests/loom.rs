//! Model checking of the shared breaker and budget with [loom]: every interleaving (up to
//! `LOOM_MAX_PREEMPTIONS` pre-emptions) of concurrent `try_acquire` / `record` / permit drops /
//! `withdraw` / `deposit` calls, checked against the promises of the breaker and budget docs:
//!
//! - **no lost update**: concurrent records and deposits are all counted;
//! - **exactly the configured number of half-open probes** is admitted at once;
//! - **a dropped probe permit is always released**, even when it races a transition;
//! - **the breaker can always close**: from whatever state the threads leave it in, a late
//!   call is admitted and enough successes close it;
//! - **fleet sharing** ([`redress::fleet`]): a decision followed from another instance, or a
//!   merge of the fleet's counts, racing calls and withdrawals, neither lets a stale permit
//!   move the breaker nor grants beyond the fleet's cap.
//!
//! Runs only under `--cfg loom`, which switches core's shared state to loom's primitives
//! (`core/src/sync.rs`):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 \
//!     CARGO_TARGET_DIR=target/loom cargo test -p redress --test loom --release
//! ```
#![cfg(loom)]
#![allow(clippy::unwrap_used)]
#![forbid(unsafe_code)]

use std::time::Duration;

use loom::sync::Arc;
use loom::thread;
use redress::breaker::{BreakerOutcome, Transition};
use redress::{Budget, CircuitBreaker, CircuitState, ErrorClass, Instant};

const FAIL: BreakerOutcome = BreakerOutcome::Failure(ErrorClass::Transient);
const RECOVERY: Duration = Duration::from_millis(10);

fn at_ms(n: u64) -> Instant {
    Instant::from_millis(n)
}

/// A consecutive-mode breaker that opens after `threshold` failures and admits `probes`
/// probes after [`RECOVERY`].
fn breaker(threshold: u32, probes: u32) -> CircuitBreaker {
    CircuitBreaker::consecutive(threshold, Duration::from_secs(60))
        .recovery(RECOVERY)
        .probes(probes)
        .build()
        .unwrap()
}

/// Opens `b` (threshold 1) at t = 0, before any thread starts.
fn tripped(probes: u32) -> CircuitBreaker {
    let b = breaker(1, probes);
    let p = b.try_acquire(at_ms(0)).unwrap();
    assert_eq!(b.record(at_ms(0), p, FAIL), Some(Transition::Opened));
    b
}

/// From whatever state the threads left `b` in (all their permits resolved or dropped), a
/// late caller is admitted and `probes` successes close it: nothing is wedged.
fn assert_can_close(b: &CircuitBreaker, probes: u32) {
    let late = Instant::from_secs(3600);
    let mut held = Vec::new();
    for i in 0..probes {
        match b.try_acquire(late) {
            Ok(p) => held.push(p),
            Err(e) => panic!("probe {i} refused in {:?}: {e:?}", b.state()),
        }
        if b.state() == CircuitState::Closed {
            break;
        }
    }
    for p in held {
        b.record(late, p, BreakerOutcome::Success);
    }
    assert_eq!(b.state(), CircuitState::Closed);
}

// ----- no lost updates ------------------------------------------------------------------

#[test]
fn concurrent_failures_are_all_counted_and_open_the_breaker_once() {
    loom::model(|| {
        let b = Arc::new(breaker(3, 1));
        let record_failure = |b: &CircuitBreaker| {
            let p = b.try_acquire(at_ms(1)).unwrap();
            b.record(at_ms(1), p, FAIL)
        };
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let b = b.clone();
                thread::spawn(move || record_failure(&b))
            })
            .collect();
        let mut opened = usize::from(record_failure(&b) == Some(Transition::Opened));
        for h in handles {
            opened += usize::from(h.join().unwrap() == Some(Transition::Opened));
        }
        assert_eq!(
            opened, 1,
            "three failures in a row open the breaker exactly once"
        );
        assert_eq!(b.state(), CircuitState::Open);
        assert_can_close(&b, 1);
    });
}

#[test]
fn concurrent_successes_and_failures_are_all_counted_in_the_window() {
    loom::model(|| {
        // Never trips (min_throughput 100): only the counting is under test.
        let b = Arc::new(
            CircuitBreaker::failure_rate(0.5, 100, Duration::from_secs(1))
                .buckets(1)
                .build()
                .unwrap(),
        );
        let record = |b: &CircuitBreaker, outcome| {
            let p = b.try_acquire(at_ms(1)).unwrap();
            assert_eq!(b.record(at_ms(1), p, outcome), None);
        };
        let b1 = b.clone();
        let t1 = thread::spawn(move || record(&b1, BreakerOutcome::Success));
        let b2 = b.clone();
        let t2 = thread::spawn(move || record(&b2, FAIL));
        record(&b, BreakerOutcome::Success);
        t1.join().unwrap();
        t2.join().unwrap();
        assert_eq!(b.window_counts(at_ms(1)), (1, 3));
    });
}

#[test]
fn a_success_racing_a_failure_leaves_the_run_consistent() {
    loom::model(|| {
        // Threshold 2: one failure, one success, then one more failure. Whatever the order of
        // the first two, the breaker opens only if the two failures were in a row.
        let b = Arc::new(breaker(2, 1));
        let b1 = b.clone();
        let t1 = thread::spawn(move || {
            let p = b1.try_acquire(at_ms(1)).unwrap();
            b1.record(at_ms(1), p, FAIL)
        });
        let p = b.try_acquire(at_ms(1)).unwrap();
        let by_success = b.record(at_ms(1), p, BreakerOutcome::Success);
        let by_failure = t1.join().unwrap();
        assert_eq!((by_success, by_failure), (None, None));
        let p = b.try_acquire(at_ms(2)).unwrap();
        let last = b.record(at_ms(2), p, FAIL);
        // The success either came first (the run is the two failures: open) or between them
        // (the run restarted: closed). Never anything else.
        match b.state() {
            CircuitState::Open => assert_eq!(last, Some(Transition::Opened)),
            CircuitState::Closed => assert_eq!(last, None),
            CircuitState::HalfOpen => panic!("half-open without a probe"),
        }
        assert_can_close(&b, 1);
    });
}

// ----- half-open probes -----------------------------------------------------------------

#[test]
fn half_open_admits_exactly_its_probes_to_concurrent_callers() {
    loom::model(|| {
        let b = Arc::new(tripped(2));
        // Three callers at once after the recovery time; each keeps its permit (forgotten, so
        // no slot is given back while the others try).
        let admit = |b: &CircuitBreaker| match b.try_acquire(at_ms(10)) {
            Ok(p) => {
                assert!(p.is_probe());
                let t = p.transition();
                std::mem::forget(p);
                (1, usize::from(t == Some(Transition::HalfOpened)))
            }
            Err(_) => (0, 0),
        };
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let b = b.clone();
                thread::spawn(move || admit(&b))
            })
            .collect();
        let (mut admitted, mut half_opened) = admit(&b);
        for h in handles {
            let (a, t) = h.join().unwrap();
            admitted += a;
            half_opened += t;
        }
        assert_eq!(admitted, 2, "exactly `probes` callers are admitted");
        assert_eq!(half_opened, 1, "one of them made the transition");
        assert_eq!(b.state(), CircuitState::HalfOpen);
    });
}

#[test]
fn a_dropped_probe_is_always_given_back() {
    loom::model(|| {
        let b = Arc::new(tripped(1));
        // Two callers race for the single probe and drop whatever they got.
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let b = b.clone();
                thread::spawn(move || drop(b.try_acquire(at_ms(10))))
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(b.state(), CircuitState::HalfOpen);
        // The slot is free again: a third caller is admitted at once.
        let p = b.try_acquire(at_ms(11)).unwrap();
        assert!(p.is_probe());
        assert_eq!(
            b.record(at_ms(11), p, BreakerOutcome::Success),
            Some(Transition::Closed)
        );
    });
}

#[test]
fn a_probe_dropped_while_another_reopens_the_breaker_does_not_free_a_new_slot() {
    loom::model(|| {
        let b = Arc::new(tripped(2));
        let first = b.try_acquire(at_ms(10)).unwrap();
        let second = b.try_acquire(at_ms(10)).unwrap();
        // One probe fails (reopening the breaker) while the other is dropped: the drop
        // belongs to the old generation and must not release a slot of the new one.
        let b1 = b.clone();
        let t1 = thread::spawn(move || {
            let p = b1.try_acquire(at_ms(10));
            assert!(p.is_err(), "both slots are taken");
        });
        assert_eq!(b.record(at_ms(10), first, FAIL), Some(Transition::Opened));
        drop(second);
        t1.join().unwrap();
        assert_eq!(b.state(), CircuitState::Open);
        // After the next recovery time exactly two probes are admitted again.
        let p1 = b.try_acquire(at_ms(20)).unwrap();
        let p2 = b.try_acquire(at_ms(20)).unwrap();
        assert!(b.try_acquire(at_ms(20)).is_err());
        b.record(at_ms(21), p1, BreakerOutcome::Success);
        assert_eq!(
            b.record(at_ms(21), p2, BreakerOutcome::Success),
            Some(Transition::Closed)
        );
    });
}

#[test]
fn a_failed_probe_and_a_successful_one_racing_leave_the_breaker_open() {
    loom::model(|| {
        let b = Arc::new(tripped(2));
        let b1 = b.clone();
        let t1 = thread::spawn(move || {
            // Refused only if the other probe already failed and reopened the breaker.
            let p = b1.try_acquire(at_ms(10)).ok()?;
            b1.record(at_ms(11), p, BreakerOutcome::Success)
        });
        let p = b.try_acquire(at_ms(10)).unwrap();
        let by_failure = b.record(at_ms(11), p, FAIL);
        let by_success = t1.join().unwrap();
        // Two probes must both succeed to close; one failed, so the breaker is open, and
        // the success (before the failure, or stale after it) closed nothing.
        assert_eq!(by_failure, Some(Transition::Opened));
        assert_eq!(by_success, None);
        assert_eq!(b.state(), CircuitState::Open);
        assert_can_close(&b, 2);
    });
}

#[test]
fn probes_that_succeed_or_vanish_concurrently_never_wedge_half_open() {
    loom::model(|| {
        let b = Arc::new(tripped(2));
        // Three callers race for two probe slots; one drops its permit, two report success.
        let go = |b: &CircuitBreaker, report: bool| match b.try_acquire(at_ms(10)) {
            Ok(p) if report => b.record(at_ms(11), p, BreakerOutcome::Success),
            Ok(p) => {
                drop(p);
                None
            }
            Err(_) => None,
        };
        let b1 = b.clone();
        let t1 = thread::spawn(move || go(&b1, false));
        let b2 = b.clone();
        let t2 = thread::spawn(move || go(&b2, true));
        let mine = go(&b, true);
        let closed = [mine, t1.join().unwrap(), t2.join().unwrap()]
            .iter()
            .filter(|t| **t == Some(Transition::Closed))
            .count();
        assert!(closed <= 1, "closed twice");
        assert_eq!(closed == 1, b.state() == CircuitState::Closed);
        assert_can_close(&b, 2);
    });
}

#[test]
fn a_lock_free_success_racing_a_trip_in_failure_rate_mode_opens_the_breaker_once() {
    loom::model(|| {
        // Ratio 0.5 over at least 2 calls: two failures and a success open it in any order.
        let b = Arc::new(
            CircuitBreaker::failure_rate(0.5, 2, Duration::from_secs(1))
                .buckets(1)
                .recovery(RECOVERY)
                .build()
                .unwrap(),
        );
        let go = |b: &CircuitBreaker, outcome| match b.try_acquire(at_ms(1)) {
            Ok(p) => b.record(at_ms(1), p, outcome),
            Err(_) => None,
        };
        let b1 = b.clone();
        let t1 = thread::spawn(move || go(&b1, FAIL));
        let b2 = b.clone();
        let t2 = thread::spawn(move || go(&b2, BreakerOutcome::Success));
        let mine = go(&b, FAIL);
        let opened = [mine, t1.join().unwrap(), t2.join().unwrap()]
            .iter()
            .filter(|t| **t == Some(Transition::Opened))
            .count();
        assert_eq!(opened, 1);
        assert_eq!(b.state(), CircuitState::Open);
        assert_can_close(&b, 1);
    });
}

#[test]
fn the_breaker_can_always_close_after_concurrent_mixed_traffic() {
    loom::model(|| {
        let b = Arc::new(breaker(1, 1));
        // Closed at first; one thread fails (opening it), one arrives late enough to probe
        // and drops its permit, and the main thread succeeds with an early permit.
        let b1 = b.clone();
        let t1 = thread::spawn(move || {
            if let Ok(p) = b1.try_acquire(at_ms(0)) {
                b1.record(at_ms(0), p, FAIL);
            }
        });
        let b2 = b.clone();
        let t2 = thread::spawn(move || drop(b2.try_acquire(at_ms(10))));
        if let Ok(p) = b.try_acquire(at_ms(0)) {
            b.record(at_ms(5), p, BreakerOutcome::Success);
        }
        t1.join().unwrap();
        t2.join().unwrap();
        assert_can_close(&b, 1);
    });
}

// ----- budgets --------------------------------------------------------------------------

#[test]
fn a_rolling_budget_grants_its_last_unit_to_exactly_one_caller() {
    loom::model(|| {
        let budget = Arc::new(Budget::rolling(1, Duration::from_secs(1)).build().unwrap());
        let b1 = budget.clone();
        let t1 = thread::spawn(move || b1.withdraw(at_ms(1), ErrorClass::Transient));
        let mine = budget.withdraw(at_ms(1), ErrorClass::Transient);
        let theirs = t1.join().unwrap();
        assert!(mine ^ theirs, "exactly one withdrawal succeeds");
        assert_eq!(budget.remaining(at_ms(1)), 0);
    });
}

#[test]
fn concurrent_deposits_and_withdrawals_balance() {
    loom::model(|| {
        // Capacity = deposits in the window (ratio 1, no floor).
        let budget = Arc::new(
            Budget::ratio(1.0, 0.0, Duration::from_secs(10))
                .buckets(1)
                .build()
                .unwrap(),
        );
        budget.deposit(at_ms(0));
        let b1 = budget.clone();
        let t1 = thread::spawn(move || b1.deposit(at_ms(1)));
        let b2 = budget.clone();
        let t2 = thread::spawn(move || b2.withdraw(at_ms(1), ErrorClass::Transient));
        budget.deposit(at_ms(1));
        t1.join().unwrap();
        assert!(
            t2.join().unwrap(),
            "one unit was deposited before anyone withdrew"
        );
        // Three deposits, one withdrawal, whatever the order.
        assert_eq!(budget.remaining(at_ms(1)), 2);
    });
}

#[test]
fn a_withdrawal_with_a_stale_clock_is_counted_in_the_latest_window() {
    loom::model(|| {
        // One thread read its clock long before the other; the withdrawal clamped to the
        // later instant must still be counted by a check at that instant.
        let budget = Arc::new(Budget::rolling(1, Duration::from_secs(1)).build().unwrap());
        let b1 = budget.clone();
        let t1 = thread::spawn(move || b1.withdraw(Instant::from_secs(5), ErrorClass::Transient));
        let stale = budget.withdraw(at_ms(0), ErrorClass::Transient);
        let fresh = t1.join().unwrap();
        assert!(fresh || stale);
        assert_eq!(budget.remaining(Instant::from_secs(5)), 0);
    });
}

// ----- fleet sharing (redress::fleet) ---------------------------------------------------

#[test]
fn a_followed_open_racing_a_closed_call_leaves_the_breaker_open() {
    loom::model(|| {
        use redress::fleet::FleetDirective;
        // A call admitted while closed reports success while the store follows another
        // instance's open: the stale permit must not close or re-trip anything.
        let b = Arc::new(breaker(1, 1));
        let permit_holder = b.clone();
        let t1 = thread::spawn(move || {
            // Admitted before the follow, or refused after it.
            let p = permit_holder.try_acquire(at_ms(1)).ok()?;
            permit_holder.record(at_ms(2), p, BreakerOutcome::Success)
        });
        let followed = b.follow(
            at_ms(1),
            FleetDirective::Open {
                until: at_ms(1_000),
            },
        );
        assert_eq!(followed, Some(Transition::Opened));
        assert_eq!(t1.join().unwrap(), None);
        assert_eq!(b.state(), CircuitState::Open);
        assert!(b.try_acquire(at_ms(999)).is_err());
        assert_can_close(&b, 1);
    });
}

#[test]
fn a_fleet_close_racing_a_probe_never_wedges_the_breaker() {
    loom::model(|| {
        use redress::fleet::FleetDirective;
        let b = Arc::new(tripped(1));
        let prober = b.clone();
        let t1 = thread::spawn(move || {
            if let Ok(p) = prober.try_acquire(at_ms(20)) {
                prober.record(at_ms(21), p, FAIL);
            }
        });
        b.follow(at_ms(20), FleetDirective::Close);
        t1.join().unwrap();
        // Closed, or reopened by the probe's failure: either way it can close again.
        assert_can_close(&b, 1);
    });
}

#[test]
fn a_merge_racing_withdrawals_never_grants_beyond_the_fleet_cap() {
    loom::model(|| {
        use redress::fleet::FleetBudgetCounts;
        // Cap 2; the others spent 1. Whether the merge lands before or after the two
        // withdrawals, at most the cap is reached once the merge is in.
        let budget = Arc::new(Budget::rolling(2, Duration::from_secs(1)).build().unwrap());
        let b1 = budget.clone();
        let t1 = thread::spawn(move || b1.withdraw(at_ms(1), ErrorClass::Transient));
        budget.merge(
            at_ms(1),
            FleetBudgetCounts {
                withdrawn: 1,
                ..FleetBudgetCounts::default()
            },
            at_ms(500),
        );
        let mine = budget.withdraw(at_ms(1), ErrorClass::Transient);
        let theirs = t1.join().unwrap();
        // Whether the other thread withdrew before or after the merge, exactly one unit
        // (the cap minus the others' one) is granted: the main thread withdraws after it.
        assert_eq!(u64::from(mine) + u64::from(theirs), 1);
        assert_eq!(budget.remaining(at_ms(1)), 0);
    });
}
