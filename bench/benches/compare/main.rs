//! redress and its peers, group by group, in one run (see the crate docs of `redress_bench`).
//!
//! ```text
//! cargo bench -p redress-bench                    # everything
//! cargo bench -p redress-bench -- "^D"            # one group (a criterion regex filter)
//! cargo run -p redress-bench --release --bin bench-report
//! ```

use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};

#[path = "../../peers/mod.rs"]
#[allow(
    dead_code,
    reason = "shared with tests/adapters.rs, which also inspects the configurations"
)]
mod peers;

mod breakers;
mod budgets;
mod core_machine;
mod floor;
mod retries;

/// Short measurements so that every group fits in a few minutes on 2 cores.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
        .without_plots()
        .configure_from_args()
}

/// A group with the shared settings.
pub(crate) type Group<'a> = BenchmarkGroup<'a, WallTime>;

/// Benchmarks `f` on `threads` threads (one: criterion's own loop; more: the aggregate time
/// per operation of all threads together).
pub(crate) fn on_threads<R>(
    g: &mut Group<'_>,
    threads: usize,
    name: &str,
    f: impl Fn() -> R + Sync,
) {
    if threads == 1 {
        g.bench_function(name, |b| b.iter(&f));
    } else {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                redress_bench::contend::run(threads, iters, |_| {
                    std::hint::black_box(f());
                })
            })
        });
    }
}

criterion_group! {
    name = benches;
    config = config();
    targets =
        retries::a_sync_success,
        retries::b_async_success,
        retries::c_retries,
        breakers::d_breakers,
        budgets::e_budgets,
        core_machine::f_machine,
        floor::g_floor,
}
criterion_main!(benches);
