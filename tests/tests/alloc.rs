//! The success paths and the rejection path allocate nothing: dhat's counting global
//! allocator measures every call on every driver. One test function runs every case in
//! turn, so no other test thread allocates while a case is measured.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)]

use std::io;
use std::sync::Arc;
use std::time::Duration;

use redress::backoff::exponential;
use redress::breaker::BreakerOutcome;
use redress::{Budget, CircuitBreaker, ErrorClass, Instant, Policy, Retry, RetryBuilder};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Heap blocks allocated while `f` runs.
fn allocations<R>(f: impl FnOnce() -> R) -> (u64, R) {
    let before = dhat::HeapStats::get().total_blocks;
    let r = f();
    (dhat::HeapStats::get().total_blocks - before, r)
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

fn blocking_success_allocates_nothing() {
    for (name, p) in policies() {
        let _ = redress_blocking::call(&p, |_| Ok::<_, io::Error>(1));
        let (n, r) = allocations(|| redress_blocking::call(&p, |_| Ok::<_, io::Error>(1)));
        assert_eq!(r.unwrap(), 1);
        assert_eq!(n, 0, "{name}");
    }
}

fn tokio_success_allocates_nothing() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        for (name, p) in policies() {
            let _ = redress_tokio::call(&p, async |_| Ok::<_, io::Error>(1)).await;
            let before = dhat::HeapStats::get().total_blocks;
            let r = redress_tokio::call(&p, async |_| Ok::<_, io::Error>(1)).await;
            let n = dhat::HeapStats::get().total_blocks - before;
            assert_eq!(r.unwrap(), 1);
            assert_eq!(n, 0, "{name}");
        }
    });
}

fn smol_success_allocates_nothing() {
    smol::block_on(async {
        for (name, p) in policies() {
            let _ = redress_smol::call(&p, async |_| Ok::<_, io::Error>(1)).await;
            let before = dhat::HeapStats::get().total_blocks;
            let r = redress_smol::call(&p, async |_| Ok::<_, io::Error>(1)).await;
            let n = dhat::HeapStats::get().total_blocks - before;
            assert_eq!(r.unwrap(), 1);
            assert_eq!(n, 0, "{name}");
        }
    });
}

fn an_open_breaker_rejects_without_allocating() {
    let breaker = Arc::new(
        CircuitBreaker::consecutive(1, Duration::from_secs(10))
            .recovery(Duration::from_secs(3600))
            .build()
            .unwrap(),
    );
    let p = breaker.try_acquire(Instant::ZERO).unwrap();
    breaker.record(
        Instant::ZERO,
        p,
        BreakerOutcome::Failure(ErrorClass::Transient),
    );
    let policy = Policy::builder()
        .retry(retry())
        .breaker(breaker)
        .build()
        .unwrap();
    let _ = redress_blocking::call(&policy, |_| Ok::<_, io::Error>(1));
    let (n, r) = allocations(|| redress_blocking::call(&policy, |_| Ok::<_, io::Error>(1)));
    assert!(r.unwrap_err().is_circuit_open());
    assert_eq!(n, 0);
}

fn the_machine_alone_allocates_nothing() {
    let p = retry().policy().unwrap();
    let (n, _) = allocations(|| {
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
    assert_eq!(n, 0);
}

fn the_counter_sees_allocations() {
    let (n, v) = allocations(|| vec![1u8; 64]);
    assert_eq!(v.len(), 64);
    assert_eq!(n, 1);
}

#[test]
fn success_and_rejection_paths_allocate_nothing() {
    let _profiler = dhat::Profiler::builder().testing().build();
    the_counter_sees_allocations();
    blocking_success_allocates_nothing();
    tokio_success_allocates_nothing();
    smol_success_allocates_nothing();
    an_open_breaker_rejects_without_allocating();
    the_machine_alone_allocates_nothing();
}
