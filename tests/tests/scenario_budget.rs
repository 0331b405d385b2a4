//! Scenarios: a shared retry budget. Each retry withdraws its class's cost; when the budget
//! cannot afford one the call stops with `BudgetExhausted`. First attempts are never refused,
//! and a call's terminal failure spends nothing.
#![allow(clippy::unwrap_used)]
#![forbid(unsafe_code)]

use std::sync::Arc;

use redress::backoff::constant;
use redress::{Budget, Decision, ErrorClass, Instant, Outcome, Policy, Retry, StopReason};
use redress_tests::scenario::{at, drive, drive_at, fail, ms, ok, secs};

use ErrorClass::{Concurrency, Permanent, RateLimit, ServerError, Transient};

fn policy_with(budget: &Arc<Budget>, max_attempts: u32) -> Policy {
    Retry::builder()
        .no_deadline()
        .max_attempts(max_attempts)
        .max_unknown_attempts(None)
        .strategy(constant(ms(100)))
        .budget(Arc::clone(budget))
        .policy()
        .unwrap()
}

fn attempt(n: u32) -> Decision {
    Decision::Attempt { n, deadline: None }
}

#[test]
fn an_empty_rolling_budget_stops_the_retry_it_cannot_afford() {
    let budget = Arc::new(Budget::rolling(2, secs(10)).build().unwrap());
    let p = policy_with(&budget, 6);
    let t = drive(
        &p,
        [fail(Transient), fail(Transient), fail(Transient), ok()],
    );
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
            attempt(3),
            Decision::Failed(StopReason::BudgetExhausted),
        ]
    );
    assert_eq!(t.event_names(), ["retry", "retry", "budget_exhausted"]);
    let stop = t.events().pop().unwrap();
    assert_eq!((stop.attempt, stop.class), (3, Some(Transient)));
    assert_eq!(budget.remaining(at(200)), 0);
}

#[test]
fn a_rolling_budget_refills_once_the_window_has_passed() {
    let budget = Arc::new(Budget::rolling(2, secs(10)).build().unwrap());
    let p = policy_with(&budget, 6);
    drive(&p, [fail(Transient), fail(Transient), ok()]);
    assert_eq!(budget.remaining(at(100)), 0);

    // Within the window (kept in ten 1 s buckets, counted conservatively): no retry.
    let t = drive_at(&p, at(10_500), [fail(Transient), ok()]);
    assert_eq!(
        t.decisions(),
        [attempt(1), Decision::Failed(StopReason::BudgetExhausted)]
    );
    // Once the withdrawals' bucket has left the counted span, retries are affordable again.
    assert_eq!(budget.remaining(at(11_000)), 2);
    let t = drive_at(&p, at(11_000), [fail(Transient), ok()]);
    assert_eq!(t.last(), Decision::Succeeded);
    assert_eq!(t.sleeps(), [ms(100)]);
    assert_eq!(budget.remaining(at(11_100)), 1);
}

#[test]
fn a_ratio_budget_grows_with_the_calls_that_start() {
    let budget = Arc::new(Budget::ratio(0.5, 0.0, secs(10)).build().unwrap());
    let p = policy_with(&budget, 6);
    assert!(p.needs_clock(), "ratio budgets count calls over time");

    // One call deposited: 0.5 of a retry rounds down to none.
    let t = drive(&p, [fail(Transient), ok()]);
    assert_eq!(t.last(), Decision::Failed(StopReason::BudgetExhausted));
    assert_eq!(t.attempts(), 1);

    for start in [10, 20, 30] {
        assert_eq!(drive_at(&p, at(start), [ok()]).last(), Decision::Succeeded);
    }
    // The fifth call's own deposit makes 5: floor(2.5) = 2 retries.
    let t = drive_at(
        &p,
        at(40),
        [fail(Transient), fail(Transient), fail(Transient), ok()],
    );
    assert_eq!(t.sleeps(), [ms(100), ms(100)]);
    assert_eq!(t.last(), Decision::Failed(StopReason::BudgetExhausted));
}

#[test]
fn a_ratio_budget_floor_lets_a_quiet_service_retry() {
    // 0.1 retries per second over 10 s: one retry without any deposits worth a retry.
    let budget = Arc::new(Budget::ratio(0.0, 0.1, secs(10)).build().unwrap());
    let p = policy_with(&budget, 6);
    let t = drive(&p, [fail(Transient), fail(Transient), ok()]);
    assert_eq!(t.sleeps(), [ms(100)]);
    assert_eq!(t.last(), Decision::Failed(StopReason::BudgetExhausted));
}

#[test]
fn per_class_costs_make_retries_free_dear_or_impossible() {
    let budget = Arc::new(
        Budget::rolling(3, secs(10))
            .cost(RateLimit, 0)
            .cost(ServerError, 3)
            .never(Concurrency)
            .build()
            .unwrap(),
    );
    let p = policy_with(&budget, 6);

    // Free: five RateLimit retries cost nothing.
    let t = drive(&p, vec![fail(RateLimit); 6]);
    assert_eq!(t.sleeps().len(), 5);
    assert_eq!(t.last(), Decision::Failed(StopReason::MaxAttempts));
    assert_eq!(budget.remaining(at(500)), 3);

    // Dear: one ServerError retry takes all three units.
    let t = drive_at(&p, at(1000), [fail(ServerError), fail(ServerError), ok()]);
    assert_eq!(t.sleeps(), [ms(100)]);
    assert_eq!(t.last(), Decision::Failed(StopReason::BudgetExhausted));
    assert_eq!(budget.remaining(at(1100)), 0);

    // Impossible: Concurrency is never retried through this budget, even when it is full.
    let fresh = Arc::new(
        Budget::rolling(3, secs(10))
            .never(Concurrency)
            .build()
            .unwrap(),
    );
    let t = drive(&policy_with(&fresh, 6), [fail(Concurrency), ok()]);
    assert_eq!(
        t.decisions(),
        [attempt(1), Decision::Failed(StopReason::BudgetExhausted)]
    );
    assert_eq!(fresh.remaining(at(0)), 3);

    // And a free class still retries on an exhausted budget.
    let t = drive_at(&p, at(2000), [fail(RateLimit), ok()]);
    assert_eq!(t.last(), Decision::Succeeded);
}

#[test]
fn two_policies_sharing_a_budget_share_its_retries() {
    let budget = Arc::new(Budget::rolling(2, secs(10)).build().unwrap());
    let a = policy_with(&budget, 6);
    let b = Retry::builder()
        .no_deadline()
        .strategy(constant(ms(5)))
        .budget(Arc::clone(&budget))
        .policy()
        .unwrap();

    let t = drive(&a, [fail(Transient), fail(ServerError), ok()]);
    assert_eq!(t.last(), Decision::Succeeded);
    let t = drive_at(&b, at(300), [fail(Transient), ok()]);
    assert_eq!(
        t.decisions(),
        [attempt(1), Decision::Failed(StopReason::BudgetExhausted)]
    );
}

#[test]
fn no_budget_is_spent_on_a_call_that_stops_anyway() {
    let budget = Arc::new(Budget::rolling(10, secs(10)).build().unwrap());
    let p = policy_with(&budget, 3);

    // Three attempts, two retries: the third failure withdraws nothing.
    let t = drive(&p, vec![fail(Transient); 3]);
    assert_eq!(t.last(), Decision::Failed(StopReason::MaxAttempts));
    assert_eq!(budget.remaining(at(200)), 8);

    // Non-retryable failures spend nothing.
    let t = drive_at(&p, at(300), [fail(Permanent)]);
    assert_eq!(
        t.last(),
        Decision::Failed(StopReason::NonRetryable(Permanent))
    );
    assert_eq!(budget.remaining(at(300)), 8);

    // A retry that would sleep past the deadline spends nothing.
    let deadline = Retry::builder()
        .deadline(secs(1))
        .strategy(constant(secs(2)))
        .budget(Arc::clone(&budget))
        .policy()
        .unwrap();
    let t = drive_at(&deadline, at(400), [fail(Transient)]);
    assert_eq!(t.last(), Decision::Failed(StopReason::DeadlineExceeded));
    assert_eq!(budget.remaining(at(400)), 8);
}

#[test]
fn a_rolling_budget_needs_no_clock_on_the_success_path() {
    let budget = Arc::new(Budget::rolling(1, secs(10)).build().unwrap());
    let p = policy_with(&budget, 6);
    assert!(!p.needs_clock());

    let mut m = p.machine();
    assert_eq!(m.start_untimed(), attempt(1));
    // The first failure starts the clock; the budget sees the driver's time.
    let d = m.on_outcome(Instant::from_secs(50), Outcome::failure(Transient));
    assert_eq!(
        d,
        Decision::Sleep {
            until: at(50_100),
            delay: ms(100)
        }
    );
    assert_eq!(budget.remaining(Instant::from_secs(50)), 0);
    assert_eq!(m.on_wake(at(50_100)), attempt(2));
    assert_eq!(
        m.on_outcome(at(50_100), Outcome::failure(Transient)),
        Decision::Failed(StopReason::BudgetExhausted)
    );
}
