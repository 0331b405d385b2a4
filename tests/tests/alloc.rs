//! The success paths and the rejection path allocate nothing: a counting global allocator
//! measures every call on every driver.
// The one exception to the workspace's unsafe_code lint: implementing `GlobalAlloc` is an
// `unsafe impl`. It forwards to `System` unchanged.
#![allow(unsafe_code)]
#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use redress::backoff::exponential;
use redress::breaker::BreakerOutcome;
use redress::{Budget, CircuitBreaker, ErrorClass, Instant, Policy, Retry, RetryBuilder};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the
// only addition is a thread-local counter, which never allocates (const-initialised).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged; `ptr` came from `System.alloc` above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by this thread while `f` runs.
fn allocations<R>(f: impl FnOnce() -> R) -> (u64, R) {
    let before = ALLOCATIONS.with(Cell::get);
    let r = f();
    (ALLOCATIONS.with(Cell::get) - before, r)
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

#[test]
fn blocking_success_allocates_nothing() {
    for (name, p) in policies() {
        let _ = redress_blocking::call(&p, |_| Ok::<_, io::Error>(1));
        let (n, r) = allocations(|| redress_blocking::call(&p, |_| Ok::<_, io::Error>(1)));
        assert_eq!(r.unwrap(), 1);
        assert_eq!(n, 0, "{name}");
    }
}

#[test]
fn tokio_success_allocates_nothing() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        for (name, p) in policies() {
            let _ = redress_tokio::call(&p, async |_| Ok::<_, io::Error>(1)).await;
            let before = ALLOCATIONS.with(Cell::get);
            let r = redress_tokio::call(&p, async |_| Ok::<_, io::Error>(1)).await;
            let n = ALLOCATIONS.with(Cell::get) - before;
            assert_eq!(r.unwrap(), 1);
            assert_eq!(n, 0, "{name}");
        }
    });
}

#[test]
fn smol_success_allocates_nothing() {
    smol::block_on(async {
        for (name, p) in policies() {
            let _ = redress_smol::call(&p, async |_| Ok::<_, io::Error>(1)).await;
            let before = ALLOCATIONS.with(Cell::get);
            let r = redress_smol::call(&p, async |_| Ok::<_, io::Error>(1)).await;
            let n = ALLOCATIONS.with(Cell::get) - before;
            assert_eq!(r.unwrap(), 1);
            assert_eq!(n, 0, "{name}");
        }
    });
}

#[test]
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

#[test]
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

#[test]
fn the_counter_sees_allocations() {
    let (n, v) = allocations(|| vec![1u8; 64]);
    assert_eq!(v.len(), 64);
    assert_eq!(n, 1);
}
