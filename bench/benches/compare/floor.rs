//! Group G: the floor every hot path stands on.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::Criterion;
use redress::rng::{Rng, derive_rng, seeded};
use redress::{Clock, SystemClock};

/// G. Clock reads, one random draw, one atomic read-modify-write.
pub(crate) fn g_floor(c: &mut Criterion) {
    let mut g = c.benchmark_group("G floor");
    g.bench_function("baseline: empty iteration", |b| b.iter(|| black_box(1u64)));
    g.bench_function("ref: std Instant::now()", |b| {
        b.iter(std::time::Instant::now)
    });
    g.bench_function("redress SystemClock.now()", |b| {
        b.iter(|| SystemClock.now())
    });
    g.bench_function("redress SystemClock.now_coarse()", |b| {
        b.iter(|| SystemClock.now_coarse())
    });
    g.bench_function("ref: tokio Instant::now() (read by redress-tokio)", |b| {
        b.iter(tokio::time::Instant::now)
    });
    let mut rng = seeded(1);
    g.bench_function("ref: rand_pcg Pcg64Mcg next_u64", |b| {
        b.iter(|| rng.next_u64())
    });
    let mut i = 0u64;
    g.bench_function(
        "redress derive_rng + one draw (a retry's first jitter)",
        |b| {
            b.iter(|| {
                i += 1;
                derive_rng(black_box(7), i).next_u64()
            })
        },
    );
    let a = AtomicU64::new(0);
    g.bench_function("ref: uncontended AtomicU64 fetch_add", |b| {
        b.iter(|| a.fetch_add(1, Ordering::Relaxed))
    });
    g.finish();
}
