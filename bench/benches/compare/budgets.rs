//! Group E: a shared retry budget, one call's deposit and one retry's withdrawal.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::Criterion;
use redress::{Clock, ErrorClass, Instant, SystemClock};
use redress_bench::policies;
use tower::retry::budget::TpsBudget;

use crate::peers;
use crate::{Group, on_threads};

fn spend(g: &mut Group<'_>, threads: usize) {
    let counter = AtomicU64::new(0);
    let ours = policies::budget();
    let tps = TpsBudget::default();
    let now = Instant::from_secs(1);

    on_threads(g, threads, "baseline: one shared atomic add", || {
        counter.fetch_add(1, Ordering::Relaxed) == u64::MAX
    });
    on_threads(
        g,
        threads,
        "redress ratio: deposit + withdraw, now given",
        || {
            let now = black_box(now);
            ours.deposit(now);
            ours.withdraw(now, ErrorClass::Transient)
        },
    );
    on_threads(
        g,
        threads,
        "redress ratio: deposit + withdraw, clock read per call",
        || {
            let now = SystemClock.now();
            ours.deposit(now);
            ours.withdraw(now, ErrorClass::Transient)
        },
    );
    on_threads(
        g,
        threads,
        "redress ratio: deposit + withdraw, coarse clock read per call",
        || {
            let now = SystemClock.now_coarse();
            ours.deposit(now);
            ours.withdraw(now, ErrorClass::Transient)
        },
    );
    // The same budget shared with a fleet (redress::fleet): the others' counts are merged
    // and the remainder split between two instances, so every withdrawal also counts the
    // fleet and checks this instance's share.
    let shared = policies::budget();
    shared.merge(
        now,
        redress::fleet::FleetBudgetCounts {
            withdrawn: 0,
            deposits: 1 << 40,
            instances: 2,
            ticket: 0,
        },
        Instant::from_secs(1 << 30),
    );
    on_threads(
        g,
        threads,
        "redress ratio shared with a fleet: deposit + withdraw, now given",
        || {
            let now = black_box(now);
            shared.deposit(now);
            shared.withdraw(now, ErrorClass::Transient)
        },
    );
    on_threads(g, threads, "tower TpsBudget: deposit + withdraw", || {
        peers::tps_spend(&tps)
    });
}

/// E. Budgets on one and two threads.
pub(crate) fn e_budgets(c: &mut Criterion) {
    let mut g = c.benchmark_group("E1 budget, 1 thread");
    spend(&mut g, 1);
    g.finish();
    let mut g = c.benchmark_group("E2 budget, 2 threads sharing one");
    spend(&mut g, 2);
    g.finish();
}
