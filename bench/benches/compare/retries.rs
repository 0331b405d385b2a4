//! Groups A, B and C: whole calls through retry libraries.

use std::hint::black_box;
use std::time::Instant;

use criterion::Criterion;
use redress_bench::adapters::{Direct, HandLoop, RedressAsync, RedressSync};
use redress_bench::{AsyncAdapter, Schedule, Script, SyncAdapter, policies};
use tokio::runtime::Runtime;

use crate::Group;
use crate::peers::{self, BackonAsync, BackonSync, TokioRetry, TokioRetry2, Tower};

fn sync<A: SyncAdapter>(g: &mut Group<'_>, name: &str, a: &A, make: fn() -> Script) {
    g.bench_function(name, |b| {
        b.iter(|| {
            let s = make();
            a.run_sync(black_box(&s))
        })
    });
}

/// Many calls inside one `block_on` per measurement batch, so the runtime's own entry cost
/// is not part of a call.
fn run_async<A: AsyncAdapter>(
    g: &mut Group<'_>,
    rt: &Runtime,
    name: &str,
    a: &A,
    make: fn() -> Script,
) {
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let s = make();
                    let _ = black_box(a.run_async(black_box(&s)).await);
                }
                start.elapsed()
            })
        })
    });
}

/// A. The success path of a blocking call.
pub(crate) fn a_sync_success(c: &mut Criterion) {
    let s = Schedule::REALISTIC;
    let ok = Script::succeed;
    let mut g = c.benchmark_group("A sync success");
    sync(&mut g, "baseline: direct call", &Direct, ok);
    sync(&mut g, "baseline: hand-written loop", &HandLoop(s), ok);
    sync(
        &mut g,
        "redress (a) retry only",
        &RedressSync(policies::retry_only(s)),
        ok,
    );
    sync(
        &mut g,
        "redress (b) default, 60 s deadline",
        &RedressSync(policies::default_deadline(s)),
        ok,
    );
    sync(
        &mut g,
        "redress (c) retry + breaker + budget",
        &RedressSync(policies::full(s)),
        ok,
    );
    sync(&mut g, "backon", &BackonSync::new(s), ok);
    // What target A(c) is measured against: a bare breaker call of the two breaker crates.
    let fs = peers::failsafe_consecutive(5);
    g.bench_function("ref: failsafe bare breaker call (consecutive)", |b| {
        b.iter(|| {
            let s = ok();
            black_box(failsafe::CircuitBreaker::call(&fs, || s.attempt()))
        })
    });
    let rc = peers::recloser_default();
    g.bench_function("ref: recloser bare breaker call", |b| {
        b.iter(|| {
            let s = ok();
            black_box(rc.call(|| s.attempt()))
        })
    });
    g.finish();
}

/// B. The success path of an async call on a current-thread tokio runtime.
pub(crate) fn b_async_success(c: &mut Criterion) {
    let s = Schedule::REALISTIC;
    let ok = Script::succeed;
    let rt = redress_bench::current_thread_runtime();
    let mut g = c.benchmark_group("B async success");
    run_async(&mut g, &rt, "baseline: direct await", &Direct, ok);
    run_async(&mut g, &rt, "baseline: hand-written loop", &HandLoop(s), ok);
    run_async(
        &mut g,
        &rt,
        "redress (a) retry only",
        &RedressAsync(policies::retry_only(s)),
        ok,
    );
    run_async(
        &mut g,
        &rt,
        "redress (b) default, 60 s deadline",
        &RedressAsync(policies::default_deadline(s)),
        ok,
    );
    run_async(
        &mut g,
        &rt,
        "redress (c) retry + breaker + budget",
        &RedressAsync(policies::full(s)),
        ok,
    );
    run_async(&mut g, &rt, "backon", &BackonAsync::new(s), ok);
    run_async(&mut g, &rt, "tokio-retry", &TokioRetry(s), ok);
    run_async(&mut g, &rt, "tokio-retry2", &TokioRetry2(s), ok);
    run_async(&mut g, &rt, "tower retry", &Tower::new(s), ok);
    run_async(
        &mut g,
        &rt,
        "tower retry + TpsBudget",
        &Tower::with_budget(s),
        ok,
    );
    g.finish();
}

/// C. Fail, fail, succeed with zero backoff: two retry decisions per call.
pub(crate) fn c_retries(c: &mut Criterion) {
    let s = Schedule::ZERO;
    let script = || Script::fail_times(2);

    let mut g = c.benchmark_group("C1 fail-fail-succeed sync");
    sync(&mut g, "baseline: hand-written loop", &HandLoop(s), script);
    sync(
        &mut g,
        "redress (a) retry only",
        &RedressSync(policies::retry_only(s)),
        script,
    );
    sync(
        &mut g,
        "redress (b) default, 60 s deadline",
        &RedressSync(policies::default_deadline(s)),
        script,
    );
    sync(&mut g, "backon", &BackonSync::new(s), script);
    g.finish();

    let rt = redress_bench::current_thread_runtime();
    let mut g = c.benchmark_group("C2 fail-fail-succeed async");
    run_async(
        &mut g,
        &rt,
        "baseline: hand-written loop",
        &HandLoop(s),
        script,
    );
    run_async(
        &mut g,
        &rt,
        "redress (a) retry only",
        &RedressAsync(policies::retry_only(s)),
        script,
    );
    run_async(
        &mut g,
        &rt,
        "redress (b) default, 60 s deadline",
        &RedressAsync(policies::default_deadline(s)),
        script,
    );
    run_async(
        &mut g,
        &rt,
        "backon (tokio sleep)",
        &BackonAsync::new(s),
        script,
    );
    run_async(
        &mut g,
        &rt,
        "backon (zero sleeps skipped)",
        &BackonAsync::skipping_zero_sleeps(s),
        script,
    );
    run_async(&mut g, &rt, "tokio-retry", &TokioRetry(s), script);
    run_async(&mut g, &rt, "tokio-retry2", &TokioRetry2(s), script);
    run_async(&mut g, &rt, "tower retry", &Tower::new(s), script);
    g.finish();
}
