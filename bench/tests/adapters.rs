//! Every adapter is configured alike: 1 attempt on success, exactly 3 on a permanent
//! failure, 3 on "fail, fail, succeed", and the same delays (100 ms, 200 ms).

#[path = "../peers/mod.rs"]
mod peers;

use std::time::Duration;

use redress::{Decision, ErrorClass, Instant, Outcome};
use redress_bench::adapters::{Direct, HandLoop, RedressAsync, RedressSync};
use redress_bench::{AsyncAdapter, GaveUp, Schedule, Script, SyncAdapter, policies};

use peers::{BackonAsync, BackonSync, TokioRetry, TokioRetry2, Tower};

/// One blocking call of a script through some adapter.
type RunSync = Box<dyn Fn(&Script) -> Result<u64, GaveUp>>;

/// What a script should end with: the result and the number of attempts.
type Case = (fn() -> Script, Result<u64, GaveUp>, u32);

fn sync_adapters(s: Schedule) -> Vec<(&'static str, RunSync)> {
    fn boxed<A: SyncAdapter + 'static>(a: A) -> RunSync {
        Box::new(move |script| a.run_sync(script))
    }
    vec![
        ("hand-written loop", boxed(HandLoop(s))),
        (
            "redress retry only",
            boxed(RedressSync(policies::retry_only(s))),
        ),
        (
            "redress default",
            boxed(RedressSync(policies::default_deadline(s))),
        ),
        ("redress full", boxed(RedressSync(policies::full(s)))),
        ("backon", boxed(BackonSync::new(s))),
    ]
}

/// Runs `script` through every async adapter on one current-thread runtime; returns each
/// adapter's name, result and attempt count.
fn run_async(
    s: Schedule,
    make: impl Fn() -> Script,
) -> Vec<(&'static str, Result<u64, GaveUp>, u32)> {
    let rt = redress_bench::current_thread_runtime();
    rt.block_on(async {
        let mut out = Vec::new();
        macro_rules! check {
            ($name:expr, $adapter:expr) => {{
                let a = $adapter;
                let script = make();
                let r = a.run_async(&script).await;
                out.push(($name, r, script.attempts()));
            }};
        }
        check!("hand-written loop", HandLoop(s));
        check!("redress retry only", RedressAsync(policies::retry_only(s)));
        check!(
            "redress default",
            RedressAsync(policies::default_deadline(s))
        );
        check!("redress full", RedressAsync(policies::full(s)));
        check!("backon", BackonAsync::new(s));
        check!(
            "backon (zero sleeps skipped)",
            BackonAsync::skipping_zero_sleeps(s)
        );
        check!("tokio-retry", TokioRetry(s));
        check!("tokio-retry2", TokioRetry2(s));
        check!("tower", Tower::new(s));
        check!("tower + TpsBudget", Tower::with_budget(s));
        out
    })
}

#[test]
fn sync_adapters_attempt_once_on_success_and_three_times_on_permanent_failure() {
    // Fresh adapters per script: five failures in a row would open the full policy's breaker.
    let cases: [Case; 3] = [
        (Script::succeed, Ok(1), 1),
        (Script::always_fail, Err(GaveUp), 3),
        (|| Script::fail_times(2), Ok(3), 3),
    ];
    for (make, result, attempts) in cases {
        for (name, run) in sync_adapters(Schedule::ZERO) {
            let s = make();
            assert_eq!((run(&s), s.attempts()), (result, attempts), "{name}");
        }
    }
    let s = Script::always_fail();
    assert_eq!(Direct.run_sync(&s), Err(GaveUp));
    assert_eq!(s.attempts(), 1, "the direct call never retries");
}

#[test]
fn async_adapters_attempt_once_on_success_and_three_times_on_permanent_failure() {
    for (name, r, n) in run_async(Schedule::ZERO, Script::succeed) {
        assert_eq!((r, n), (Ok(1), 1), "{name}: success");
    }
    for (name, r, n) in run_async(Schedule::ZERO, Script::always_fail) {
        assert_eq!((r, n), (Err(GaveUp), 3), "{name}: permanent failure");
    }
    for (name, r, n) in run_async(Schedule::ZERO, || Script::fail_times(2)) {
        assert_eq!((r, n), (Ok(3), 3), "{name}: fail, fail, succeed");
    }
}

#[test]
fn async_adapters_also_hold_with_a_one_nanosecond_backoff() {
    // tokio-retry counts whole milliseconds, so it sleeps zero here; the others sleep 1 ns.
    let tiny = Schedule {
        base: Duration::from_nanos(1),
        max: Duration::from_nanos(4),
    };
    for (name, r, n) in run_async(tiny, Script::always_fail) {
        assert_eq!((r, n), (Err(GaveUp), 3), "{name}: permanent failure");
    }
    for (name, run) in sync_adapters(tiny) {
        let s = Script::always_fail();
        assert_eq!(run(&s), Err(GaveUp), "{name}");
        assert_eq!(s.attempts(), 3, "{name}");
    }
}

#[test]
fn every_library_sleeps_the_same_schedule() {
    let s = Schedule::REALISTIC;
    let want = vec![Duration::from_millis(100), Duration::from_millis(200)];

    // backon computes in f32: 200 ms comes out as 200.000003 ms.
    let backon: Vec<_> = backon::BackoffBuilder::build(peers::backon_builder(s)).collect();
    assert_eq!(backon.len(), 2, "backon");
    for (got, want) in backon.iter().zip(&want) {
        assert!(
            got.abs_diff(*want) < Duration::from_micros(1),
            "backon: {got:?}"
        );
    }
    assert_eq!(
        TokioRetry(s).strategy().collect::<Vec<_>>(),
        want,
        "tokio-retry"
    );
    assert_eq!(
        TokioRetry2(s).strategy().collect::<Vec<_>>(),
        want,
        "tokio-retry2"
    );
    assert_eq!(
        (1..=2).map(|n| s.delay(n)).collect::<Vec<_>>(),
        want,
        "hand-written loop"
    );

    // tower: the policy's own answers (its sleep futures need a runtime to exist in).
    let rt = redress_bench::current_thread_runtime();
    let _in_runtime = rt.enter();
    let tower = Tower::new(s);
    let mut p = tower.policy();
    let script = Script::always_fail();
    let mut req = &script;
    let mut delays = Vec::new();
    loop {
        let next = p.next_delay();
        let mut result = script.attempt();
        if tower::retry::Policy::retry(&mut p, &mut req, &mut result).is_none() {
            break;
        }
        delays.push(next);
    }
    assert_eq!(delays, want, "tower");

    // redress: every policy's machine, on a fake clock.
    for policy in [
        policies::retry_only(s),
        policies::default_deadline(s),
        policies::full(s),
    ] {
        let mut m = policy.machine();
        let mut now = Instant::ZERO;
        assert!(matches!(m.start(now), Decision::Attempt { n: 1, .. }));
        let mut delays = Vec::new();
        loop {
            match m.on_outcome(now, Outcome::failure(ErrorClass::Transient)) {
                Decision::Sleep { until, delay } => {
                    delays.push(delay);
                    now = until;
                    assert!(matches!(m.on_wake(now), Decision::Attempt { .. }));
                }
                Decision::Failed(_) => break,
                d => panic!("unexpected {d:?}"),
            }
        }
        assert_eq!(delays, want, "redress {policy:?}");
        assert_eq!(m.attempt(), 3);
    }
}

#[test]
fn open_breakers_reject_and_closed_ones_admit() {
    use peers::{failsafe_result, recloser_result, trip};
    use redress_bench::adapters::breaker_call;

    let ok = || Ok::<(), ()>(());
    let fail = || Err::<(), ()>(());

    // Closed: every setup admits a success.
    let b = policies::breaker();
    assert!(breaker_call(&b, Instant::ZERO, ok).is_ok());
    let fs = peers::failsafe_consecutive(5);
    assert!(failsafe::CircuitBreaker::call(&fs, ok).is_ok());
    let fd = peers::failsafe_default();
    assert!(failsafe::CircuitBreaker::call(&fd, ok).is_ok());
    assert!(peers::recloser_default().call(ok).is_ok());

    // Open: each trips and then rejects without running the operation.
    let b = redress::CircuitBreaker::consecutive(1, Duration::from_secs(10))
        .recovery(Duration::from_secs(3600))
        .build()
        .unwrap();
    assert!(trip(|| breaker_call(&b, Instant::ZERO, fail)));
    assert!(breaker_call(&b, Instant::ZERO, || -> Result<(), ()> { panic!("ran") }).is_err());

    let fs = peers::failsafe_consecutive(1);
    assert!(trip(|| failsafe_result(failsafe::CircuitBreaker::call(
        &fs, fail
    ))));
    assert!(!failsafe::CircuitBreaker::is_call_permitted(&fs));

    let fd = peers::failsafe_default();
    assert!(trip(|| failsafe_result(failsafe::CircuitBreaker::call(
        &fd, fail
    ))));
    assert!(!failsafe::CircuitBreaker::is_call_permitted(&fd));

    let r = peers::recloser_hair_trigger();
    assert!(trip(|| recloser_result(r.call(fail))));
    assert!(r.call(|| -> Result<(), ()> { panic!("ran") }).is_err());
}

#[test]
fn budgets_grant_a_share_of_calls() {
    let tps = tower::retry::budget::TpsBudget::default();
    let granted = (0..10_000).filter(|_| peers::tps_spend(&tps)).count();
    let b = policies::budget();
    let now = Instant::from_secs(1);
    let ours = (0..10_000)
        .filter(|_| {
            b.deposit(now);
            b.withdraw(now, ErrorClass::Transient)
        })
        .count();
    // Both: 20 % of 10 000 calls plus the 100-retry floor, give or take rounding.
    for (name, n) in [("TpsBudget", granted), ("redress", ours)] {
        assert!((2_000..=2_200).contains(&n), "{name}: {n}");
    }
}
