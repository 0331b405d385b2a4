//! The success paths and the rejection path allocate nothing: dhat's counting global
//! allocator measures every call on every driver. (A call that retries allocates one
//! block on the async drivers, its boxed retry loop, and none on the blocking driver.) One test function runs every case in
//! turn, so no other test thread allocates while a case is measured. The same function
//! counts clock reads: a policy that needs no clock reads none on its success path.
//!
//! The counting allocator is dhat's rather than a `GlobalAlloc` of our own: implementing
//! `GlobalAlloc` takes an `unsafe impl`, and the workspace's `unsafe_code = "forbid"` is
//! passed as `-F unsafe_code`, which an `#![allow(unsafe_code)]` in this file cannot
//! override (E0453).
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)]

use std::io;
use std::sync::Arc;
use std::time::Duration;

use redress::backoff::exponential;
use redress::{
    BreakerScope, Budget, CircuitBreaker, ErrorClass, Instant, Policy, Retry, RetryBuilder,
};
use redress_tests::CountingClock;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// How often each case is measured.
const TRIES: usize = 5;

/// The fewest heap blocks `$e` allocated over [`TRIES`] runs, and its last value. dhat
/// counts every thread, and a runtime's background thread (async-io's driver, started by
/// the first `smol::block_on`) may allocate during one run; an allocation of the call
/// itself shows in every run. `$e` may `.await`.
macro_rules! fewest_allocations {
    ($e:expr) => {{
        let mut fewest = u64::MAX;
        let mut last = None;
        for _ in 0..TRIES {
            let before = dhat::HeapStats::get().total_blocks;
            let r = $e;
            fewest = fewest.min(dhat::HeapStats::get().total_blocks - before);
            last = Some(r);
        }
        (fewest, last.unwrap())
    }};
}

fn retry() -> RetryBuilder {
    Retry::builder().max_attempts(3).strategy(exponential(
        Duration::from_millis(100),
        Duration::from_secs(10),
    ))
}

/// (a) retry only, no deadline; (b) the defaults (60 s deadline); (c) retry + breaker +
/// budget.
fn policies() -> [(&'static str, Policy); 3] {
    let breaker = CircuitBreaker::consecutive(5, Duration::from_secs(10))
        .build()
        .unwrap();
    let budget = Budget::ratio(0.2, 10.0, Duration::from_secs(10))
        .build()
        .unwrap();
    [
        ("retry only", retry().no_deadline().policy().unwrap()),
        ("default", retry().policy().unwrap()),
        (
            "retry + breaker + budget",
            Policy::builder()
                .retry(retry().budget(Arc::new(budget)))
                .breaker(Arc::new(breaker))
                .build()
                .unwrap(),
        ),
    ]
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

/// Blocking, tokio (a pre-built current-thread runtime) and smol: each call is measured
/// inside the already-running runtime, after a warm-up call.
fn calls_allocate_nothing(policy: &Policy, what: &str, succeeds: bool) {
    let check = |r: Result<i32, redress::RetryError<io::Error>>| match r {
        Ok(v) => succeeds && v == 1,
        Err(e) => !succeeds && e.is_circuit_open(),
    };

    let _ = redress_blocking::call(policy, |_| Ok::<_, io::Error>(1));
    let (n, r) = fewest_allocations!(redress_blocking::call(policy, |_| Ok::<_, io::Error>(1)));
    assert!(check(r), "blocking, {what}");
    assert_eq!(n, 0, "blocking, {what}");

    tokio_rt().block_on(async {
        let _ = redress_tokio::call(policy, async |_| Ok::<_, io::Error>(1)).await;
        let (n, r) =
            fewest_allocations!(redress_tokio::call(policy, async |_| Ok::<_, io::Error>(1)).await);
        assert!(check(r), "tokio, {what}");
        assert_eq!(n, 0, "tokio, {what}");
    });

    smol::block_on(async {
        let _ = redress_smol::call(policy, async |_| Ok::<_, io::Error>(1)).await;
        let (n, r) =
            fewest_allocations!(redress_smol::call(policy, async |_| Ok::<_, io::Error>(1)).await);
        assert!(check(r), "smol, {what}");
        assert_eq!(n, 0, "smol, {what}");
    });
}

fn success_paths_allocate_nothing() {
    for (name, p) in policies() {
        calls_allocate_nothing(&p, name, true);
    }
}

/// A consecutive breaker opened at `Instant::ZERO`, recovering after `recovery`.
fn tripped_breaker(recovery: Duration) -> Arc<CircuitBreaker> {
    let breaker = Arc::new(
        CircuitBreaker::consecutive(1, Duration::from_secs(10))
            .recovery(recovery)
            .build()
            .unwrap(),
    );
    redress_tests::trip_at_zero(&breaker);
    breaker
}

fn open_breaker() -> Arc<CircuitBreaker> {
    tripped_breaker(Duration::from_secs(3600))
}

fn an_open_breaker_rejects_without_allocating() {
    for scope in [BreakerScope::PerAttempt, BreakerScope::PerCall] {
        let policy = Policy::builder()
            .retry(retry())
            .breaker(open_breaker())
            .breaker_scope(scope)
            .build()
            .unwrap();
        calls_allocate_nothing(&policy, &format!("rejected, {scope:?}"), false);
    }
}

/// A policy observed by a `TracingHook` while no tracing subscriber is installed: the
/// success event is emitted, and tracing's disabled fast path allocates nothing.
fn a_tracing_hook_without_a_subscriber_allocates_nothing() {
    let policy = Policy::builder()
        .retry(retry())
        .hook(redress::observe::TracingHook::new())
        .build()
        .unwrap();
    calls_allocate_nothing(&policy, "tracing hook, no subscriber", true);
}

/// A call whose first attempt fails: the blocking driver keeps its machine on the stack;
/// the async drivers box the machine and the retry loop, once per call (the price of a
/// small future for every call that succeeds at once).
fn a_retried_call_allocates_at_most_its_boxed_loop() {
    let policy = Retry::builder()
        .max_attempts(3)
        .strategy(redress::backoff::constant(Duration::ZERO))
        .no_deadline()
        .policy()
        .unwrap();
    let fail_once = || {
        let mut n = 0;
        move |_: redress::Attempt| {
            n += 1;
            if n == 1 {
                Err(io::Error::from(io::ErrorKind::ConnectionReset))
            } else {
                Ok(n)
            }
        }
    };
    let (n, r) = fewest_allocations!(redress_blocking::call(&policy, fail_once()));
    assert_eq!(r.unwrap(), 2);
    assert_eq!(n, 0, "blocking");
    tokio_rt().block_on(async {
        let (n, r) = fewest_allocations!({
            let mut op = fail_once();
            redress_tokio::call(&policy, async |a| op(a)).await
        });
        assert_eq!(r.unwrap(), 2);
        assert_eq!(n, 1, "tokio");
    });
    smol::block_on(async {
        let (n, r) = fewest_allocations!({
            let mut op = fail_once();
            redress_smol::call(&policy, async |a| op(a)).await
        });
        assert_eq!(r.unwrap(), 2);
        assert_eq!(n, 1, "smol");
    });
}

fn the_machine_alone_allocates_nothing() {
    let p = retry().policy().unwrap();
    let (n, d) = fewest_allocations!({
        let mut m = p.machine();
        m.start(Instant::ZERO);
        let d = m.on_outcome(
            Instant::ZERO,
            redress::Outcome::failure(ErrorClass::Transient),
        );
        let redress::Decision::Sleep { until, .. } = d else {
            panic!("{d:?}")
        };
        m.on_wake(until);
        m.on_outcome(until, redress::Outcome::Success)
    });
    assert_eq!(d, redress::Decision::Succeeded);
    assert_eq!(n, 0);
}

fn the_counter_sees_allocations() {
    let (n, v) = fewest_allocations!(vec![1u8; 64]);
    assert_eq!(v.len(), 64);
    assert_eq!(n, 1);
}

/// A policy with a failure-rate breaker (its buckets date every success).
fn failure_rate_policy() -> Policy {
    let breaker = CircuitBreaker::failure_rate(0.5, 10, Duration::from_secs(10))
        .build()
        .unwrap();
    Policy::builder()
        .retry(retry().no_deadline())
        .breaker(Arc::new(breaker))
        .build()
        .unwrap()
}

/// A consecutive breaker past its recovery time at the test clock's start: the call is its
/// half-open probe, whose success closes the breaker.
fn probing_policy() -> Policy {
    Policy::builder()
        .retry(retry().no_deadline())
        .breaker(tripped_breaker(Duration::from_millis(500)))
        .build()
        .unwrap()
}

/// A named policy maker and the (precise, coarse) clock reads of one successful call.
type Case<'a> = (&'a str, &'a dyn Fn() -> Policy, (u32, u32));

/// Clock reads of one successful call, as (precise, coarse): none when the policy needs no
/// clock; one precise read (the start) with a deadline, breaker and budget or not; one
/// coarse read for a consecutive breaker with a budget and no deadline (the deposit is
/// dated by the start, a closed breaker's success by nothing, and neither needs more than
/// bucket precision); two when the success itself is dated: a failure-rate breaker's bucket
/// or a probe that closes the breaker (coarse), an observed call (precise, by the machine).
fn success_paths_read_the_clock_only_when_needed() {
    let [a, b, c] = policies();
    let observed = || {
        Policy::builder()
            .retry(retry())
            .hook(|_: &redress::Event<'_>| {})
            .build()
            .unwrap()
    };
    let undated = || {
        let budget = Budget::ratio(0.2, 10.0, Duration::from_secs(10))
            .build()
            .unwrap();
        let breaker = CircuitBreaker::consecutive(5, Duration::from_secs(10))
            .build()
            .unwrap();
        Policy::builder()
            .retry(retry().no_deadline().budget(Arc::new(budget)))
            .breaker(Arc::new(breaker))
            .build()
            .unwrap()
    };
    let cases: [Case<'_>; 7] = [
        (a.0, &|| a.1.clone(), (0, 0)),
        (b.0, &|| b.1.clone(), (1, 0)),
        (c.0, &|| c.1.clone(), (1, 0)),
        ("breaker + budget, no deadline", &undated, (0, 1)),
        ("failure-rate breaker", &failure_rate_policy, (0, 2)),
        ("half-open probe", &probing_policy, (0, 2)),
        ("observed", &observed, (2, 0)),
    ];
    let rt = tokio_rt();
    for (name, policy, reads) in cases {
        assert_eq!(policy().needs_clock(), reads != (0, 0), "{name}");

        let p = policy();
        let ctx = p.context("clock");
        let clock = CountingClock::new(Instant::from_secs(1), Duration::ZERO);
        let r = redress_blocking::RunBlocking::run_with(&ctx, &clock, |_| Ok::<_, io::Error>(1));
        assert_eq!(r.unwrap(), 1);
        assert_eq!(clock.counts(), reads, "blocking, {name}");

        let p = policy();
        let ctx = p.context("clock");
        let clock = CountingClock::new(Instant::from_secs(1), Duration::ZERO);
        let r = rt.block_on(redress_tokio::RunAsync::run_with(
            &ctx,
            &clock,
            async |_| Ok::<_, io::Error>(1),
        ));
        assert_eq!(r.unwrap(), 1);
        assert_eq!(clock.counts(), reads, "tokio, {name}");

        let p = policy();
        let ctx = p.context("clock");
        let clock = CountingClock::new(Instant::from_secs(1), Duration::ZERO);
        let r = smol::block_on(redress_smol::RunAsync::run_with(&ctx, &clock, async |_| {
            Ok::<_, io::Error>(1)
        }));
        assert_eq!(r.unwrap(), 1);
        assert_eq!(clock.counts(), reads, "smol, {name}");
        if let Some(b) = p.breaker() {
            assert_eq!(b.state(), redress::CircuitState::Closed, "{name}");
        }
    }
}

#[test]
fn hot_paths_allocate_nothing_and_read_the_clock_only_when_needed() {
    let _profiler = dhat::Profiler::builder().testing().build();
    // Start async-io's driver thread first, so its start-up is over before any measurement.
    smol::block_on(async {});
    std::thread::sleep(Duration::from_millis(50));
    the_counter_sees_allocations();
    success_paths_allocate_nothing();
    an_open_breaker_rejects_without_allocating();
    a_tracing_hook_without_a_subscriber_allocates_nothing();
    the_machine_alone_allocates_nothing();
    a_retried_call_allocates_at_most_its_boxed_loop();
    success_paths_read_the_clock_only_when_needed();
}
