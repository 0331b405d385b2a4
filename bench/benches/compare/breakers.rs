//! Group D: circuit breakers in the closed state (one and two threads) and rejecting while
//! open.

use std::hint::black_box;
use std::time::Duration;

use criterion::Criterion;
use redress::{CircuitBreaker, Clock, Instant, SystemClock};
use redress_bench::adapters::breaker_call;
use redress_bench::policies;

use crate::peers;
use crate::{Group, on_threads};

/// The operation behind every breaker: succeeds at once.
#[inline]
fn op() -> Result<u64, ()> {
    Ok(black_box(1))
}

fn closed(g: &mut Group<'_>, threads: usize) {
    let now = Instant::from_secs(1);
    let consecutive = policies::breaker();
    let rate = CircuitBreaker::failure_rate(0.5, 100, Duration::from_secs(10))
        .build()
        .expect("valid breaker");
    let fs = peers::failsafe_consecutive(5);
    let fd = peers::failsafe_default();
    let rc = peers::recloser_default();

    on_threads(g, threads, "baseline: direct call", op);
    on_threads(g, threads, "redress consecutive, now given", || {
        breaker_call(&consecutive, black_box(now), op)
    });
    on_threads(
        g,
        threads,
        "redress consecutive, clock read per call",
        || breaker_call(&consecutive, SystemClock.now(), op),
    );
    on_threads(
        g,
        threads,
        "redress consecutive, coarse clock read per call",
        || breaker_call(&consecutive, SystemClock.now_coarse(), op),
    );
    on_threads(
        g,
        threads,
        "redress failure-rate, clock read per call",
        || breaker_call(&rate, SystemClock.now(), op),
    );
    on_threads(g, threads, "failsafe consecutive", || {
        failsafe::CircuitBreaker::call(&fs, op)
    });
    on_threads(g, threads, "failsafe default", || {
        failsafe::CircuitBreaker::call(&fd, op)
    });
    on_threads(g, threads, "recloser default", || rc.call(op));
}

fn open(g: &mut Group<'_>) {
    let now = Instant::from_secs(1);
    let fail = || Err::<u64, ()>(());
    let b = CircuitBreaker::consecutive(1, Duration::from_secs(10))
        .recovery(Duration::from_secs(3600))
        .build()
        .expect("valid breaker");
    let fs = peers::failsafe_consecutive(1);
    let fd = peers::failsafe_default();
    let rc = peers::recloser_hair_trigger();
    let tripped = [
        peers::trip(|| breaker_call(&b, now, fail).map(drop)),
        peers::trip(|| peers::failsafe_result(failsafe::CircuitBreaker::call(&fs, fail)).map(drop)),
        peers::trip(|| peers::failsafe_result(failsafe::CircuitBreaker::call(&fd, fail)).map(drop)),
        peers::trip(|| peers::recloser_result(rc.call(fail)).map(drop)),
    ];
    assert!(
        tripped.iter().all(|t| *t),
        "every breaker opens: {tripped:?}"
    );

    on_threads(g, 1, "baseline: direct call", op);
    on_threads(g, 1, "redress, now given", || {
        breaker_call(&b, black_box(now), op)
    });
    on_threads(g, 1, "redress, clock read per call", || {
        breaker_call(&b, SystemClock.now(), op)
    });
    on_threads(g, 1, "redress, coarse clock read per call", || {
        breaker_call(&b, SystemClock.now_coarse(), op)
    });
    on_threads(g, 1, "failsafe consecutive", || {
        failsafe::CircuitBreaker::call(&fs, op)
    });
    on_threads(g, 1, "failsafe default", || {
        failsafe::CircuitBreaker::call(&fd, op)
    });
    on_threads(g, 1, "recloser", || rc.call(op));
}

/// D. Breakers: closed-state overhead on one and two threads, and open-state rejection.
pub(crate) fn d_breakers(c: &mut Criterion) {
    let mut g = c.benchmark_group("D1 breaker closed, 1 thread");
    closed(&mut g, 1);
    g.finish();
    let mut g = c.benchmark_group("D2 breaker closed, 2 threads sharing one");
    closed(&mut g, 2);
    g.finish();
    let mut g = c.benchmark_group("D3 breaker open, rejection");
    open(&mut g);
    g.finish();
}
