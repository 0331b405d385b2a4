//! Loops one hot path so that `valgrind --tool=callgrind` can count its instructions.
//!
//! ```text
//! CARGO_PROFILE_RELEASE_DEBUG=line-tables-only CARGO_TARGET_DIR=target/profiling \
//!   cargo build --release -p redress-bench --example hot
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='hot::measure*' \
//!   --callgrind-out-file=/tmp/cg.a_retry_only target/profiling/release/examples/hot a_retry_only 100000
//! callgrind_annotate --inclusive=yes /tmp/cg.a_retry_only | head -40
//! ```
//! Only `measure` (the loop) is collected, so the total divided by the iteration count is
//! the cost of one call. `hot list` prints the cases; `hot sizes` the sizes of the types a
//! call moves around.

#[path = "../peers/mod.rs"]
#[allow(
    dead_code,
    reason = "shared with the benchmarks; a profile needs only some of it"
)]
mod peers;

use std::hint::black_box;
use std::time::Duration;

use redress::{Clock, Decision, ErrorClass, Instant, Outcome, Policy, PolicyMachine, SystemClock};
use redress_bench::adapters::{RedressAsync, RedressSync, breaker_call};
use redress_bench::{AsyncAdapter, Schedule, Script, SyncAdapter, policies};

/// The loop callgrind collects: `iters` calls of `f`.
#[inline(never)]
fn measure<F: FnMut()>(iters: u64, mut f: F) {
    for _ in 0..iters {
        f();
    }
}

fn sync<A: SyncAdapter>(iters: u64, a: &A, make: fn() -> Script) {
    measure(iters, || {
        let s = make();
        let _ = black_box(a.run_sync(black_box(&s)));
    });
}

fn run_async<A: AsyncAdapter>(iters: u64, a: &A, make: fn() -> Script) {
    // Every call on these paths resolves on its first poll (nothing sleeps), so a no-op
    // waker inside the runtime's context (for timers that are created but never polled)
    // stands in for `block_on` without counting any scheduler machinery.
    let rt = redress_bench::current_thread_runtime();
    let _in_runtime = rt.enter();
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    measure(iters, || {
        let s = make();
        let mut fut = std::pin::pin!(a.run_async(black_box(&s)));
        match fut.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(r) => {
                let _ = black_box(r);
            }
            std::task::Poll::Pending => panic!("a success path went pending"),
        }
    });
}

fn machine(iters: u64, p: &Policy, fail_first: bool) {
    let now = Instant::from_secs(1);
    measure(iters, || {
        let mut m: PolicyMachine<'_> = p.machine();
        black_box(m.start(black_box(now)));
        while let Some(e) = m.poll_event() {
            black_box(e);
        }
        let mut t = now;
        if fail_first {
            if let Decision::Sleep { until, .. } =
                m.on_outcome(t, Outcome::failure(ErrorClass::Transient))
            {
                t = until;
            }
            while let Some(e) = m.poll_event() {
                black_box(e);
            }
            black_box(m.on_wake(t));
        }
        black_box(m.on_outcome(t, Outcome::Success));
        while let Some(e) = m.poll_event() {
            black_box(e);
        }
    });
}

const CASES: &[&str] = &[
    "a_retry_only",
    "a_default",
    "a_full",
    "a_backon",
    "b_retry_only",
    "b_default",
    "b_full",
    "b_backon",
    "b_tokio_retry",
    "c_retry_only",
    "c_backon",
    "d_consecutive",
    "d_consecutive_clock",
    "d_failure_rate_clock",
    "d_failsafe",
    "d_recloser",
    "e_redress",
    "e_tps",
    "f_retry_only",
    "f_default",
    "f_full",
    "f_fail_retry_only",
    "g_system_clock",
    "g_std_now",
];

fn sizes() {
    use std::mem::size_of;
    println!(
        "PolicyMachine<'_>        {:>5} bytes",
        size_of::<PolicyMachine<'_>>()
    );
    println!(
        "redress::Event<'_>       {:>5} bytes",
        size_of::<redress::Event<'_>>()
    );
    println!(
        "Option<redress::Event>   {:>5} bytes",
        size_of::<Option<redress::Event<'_>>>()
    );
    println!(
        "redress::Decision        {:>5} bytes",
        size_of::<Decision>()
    );
    println!(
        "redress::CallContext<'_> {:>5} bytes",
        size_of::<redress::CallContext<'_>>()
    );
    println!(
        "RetryError<io::Error>    {:>5} bytes",
        size_of::<redress::RetryError<std::io::Error>>()
    );
    let p = policies::retry_only(Schedule::REALISTIC);
    let s = Script::succeed();
    let f = redress_tokio::call(&p, async |_| s.attempt());
    println!("redress_tokio::call future {:>3} bytes", size_of_val(&f));
    drop(f);
    println!(
        "tokio::time::Sleep       {:>5} bytes",
        size_of::<tokio::time::Sleep>()
    );
    let f = tokio_retry::Retry::start(
        tokio_retry::strategy::ExponentialBackoff::from_millis(2).take(2),
        || async { s.attempt() },
    );
    println!("tokio_retry::Retry future {:>4} bytes", size_of_val(&f));
    drop(f);
}

fn main() {
    let mut args = std::env::args().skip(1);
    let case = args.next().unwrap_or_default();
    let iters: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let s = Schedule::REALISTIC;
    let ok = Script::succeed;
    let c = || Script::fail_times(2);
    let now = Instant::from_secs(1);
    match case.as_str() {
        "a_retry_only" => sync(iters, &RedressSync(policies::retry_only(s)), ok),
        "a_default" => sync(iters, &RedressSync(policies::default_deadline(s)), ok),
        "a_full" => sync(iters, &RedressSync(policies::full(s)), ok),
        "a_backon" => sync(iters, &peers::BackonSync::new(s), ok),
        "b_retry_only" => run_async(iters, &RedressAsync(policies::retry_only(s)), ok),
        "b_default" => run_async(iters, &RedressAsync(policies::default_deadline(s)), ok),
        "b_full" => run_async(iters, &RedressAsync(policies::full(s)), ok),
        "b_backon" => run_async(iters, &peers::BackonAsync::new(s), ok),
        "b_tokio_retry" => run_async(iters, &peers::TokioRetry(s), ok),
        "c_retry_only" => sync(iters, &RedressSync(policies::retry_only(Schedule::ZERO)), c),
        "c_backon" => sync(iters, &peers::BackonSync::new(Schedule::ZERO), c),
        "d_consecutive" => {
            let b = policies::breaker();
            measure(iters, || {
                let _ = black_box(breaker_call(&b, black_box(now), || Ok::<_, ()>(1)));
            });
        }
        "d_consecutive_clock" => {
            let b = policies::breaker();
            measure(iters, || {
                let _ = black_box(breaker_call(&b, SystemClock.now(), || Ok::<_, ()>(1)));
            });
        }
        "d_failure_rate_clock" => {
            let b = redress::CircuitBreaker::failure_rate(0.5, 100, Duration::from_secs(10))
                .build()
                .expect("valid breaker");
            measure(iters, || {
                let _ = black_box(breaker_call(&b, SystemClock.now(), || Ok::<_, ()>(1)));
            });
        }
        "d_failsafe" => {
            let b = peers::failsafe_consecutive(5);
            measure(iters, || {
                let _ = black_box(failsafe::CircuitBreaker::call(&b, || Ok::<_, ()>(1)));
            });
        }
        "d_recloser" => {
            let b = peers::recloser_default();
            measure(iters, || {
                let _ = black_box(b.call(|| Ok::<_, ()>(1)));
            });
        }
        "e_redress" => {
            let b = policies::budget();
            measure(iters, || {
                let now = black_box(now);
                b.deposit(now);
                black_box(b.withdraw(now, ErrorClass::Transient));
            });
        }
        "e_tps" => {
            let b = tower::retry::budget::TpsBudget::default();
            measure(iters, || {
                black_box(peers::tps_spend(&b));
            });
        }
        "f_retry_only" => machine(iters, &policies::retry_only(s), false),
        "f_default" => machine(iters, &policies::default_deadline(s), false),
        "f_full" => machine(iters, &policies::full(s), false),
        "f_fail_retry_only" => machine(iters, &policies::retry_only(s), true),
        "g_system_clock" => measure(iters, || {
            black_box(SystemClock.now());
        }),
        "g_std_now" => measure(iters, || {
            black_box(std::time::Instant::now());
        }),
        "sizes" => sizes(),
        "list" => {
            for c in CASES {
                println!("  {c}");
            }
        }
        _ => {
            println!("usage: hot <case> [iterations]   (or: hot sizes)\ncases:");
            for c in CASES {
                println!("  {c}");
            }
        }
    }
}
