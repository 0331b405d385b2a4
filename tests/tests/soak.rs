//! Soak: many calls through ONE shared policy (breaker + budget) against a scripted failure
//! pattern, on two threads of the blocking driver and on 64 tasks of a two-worker tokio
//! runtime.
//!
//! The pattern is a function of the call's index (so it is the same on every run and every
//! driver): most attempts succeed, some fail Transient, a few Permanent; one stretch in ten
//! is a brownout where half the attempts fail, so the budget runs dry, and one an outage
//! where every attempt fails with ServerError, so the breaker opens, rejects, probes and
//! closes again.
//!
//! Checks:
//! - **every call is accounted for**: successes + failures + rejections = calls made;
//! - **the hook saw exactly what the calls returned**: a counting hook (one atomic counter
//!   per event kind and stop reason, no allocation) matches the results and each call's
//!   `CallReport`: successes, stops by reason, rejections, retries;
//! - the breaker's transitions counted by the hook lead to the state it ends in;
//! - **memory stays flat**: resident memory (`/proc/self/statm`) after a warm-up and at the
//!   end differ by less than [`GROWTH_LIMIT`].
//!
//! Size: `REDRESS_SOAK_CALLS` calls per driver (default 100 000, so 200 000 in all);
//! `.ci/run` runs it with `REDRESS_SOAK_CALLS=1000000` in release. No real sleeping: the
//! backoff is zero and the clock is a [`ManualClock`] advanced 1 µs per call.
#![allow(clippy::unwrap_used)]
#![forbid(unsafe_code)]

use std::io;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redress::backoff::constant;
use redress::drive::{ManualSleeper, run_async, run_blocking};
use redress::event::Event;
use redress::{
    Attempt, Budget, CallReport, CircuitBreaker, CircuitState, EventKind, Hook, Instant,
    ManualClock, Policy, Retry, RetryError, StopReason,
};

const DEFAULT_CALLS: u64 = 100_000;
/// Resident memory may grow this much between the warm-up and the end.
const GROWTH_LIMIT: u64 = 4 << 20;
/// Calls in one scripted phase (see [`script`]).
const PHASE: u64 = 5_000;

fn calls() -> u64 {
    std::env::var("REDRESS_SOAK_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CALLS)
}

/// The soak tests measure the process's memory, so they must not overlap.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

// ----- the script ---------------------------------------------------------------------------

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// How attempt `n` of call `index` ends. Phases of [`PHASE`] calls: phase 9 of every 10 is
/// an outage (every attempt fails with a server error), phase 4 a brownout (half the
/// attempts fail), the others are healthy (10% transient failures, 1% permanent).
fn script(index: u64, n: u32) -> Result<(), io::Error> {
    let roll = mix(index ^ (u64::from(n) << 48)) % 100;
    let failure_rate = match (index / PHASE) % 10 {
        9 => return Err(io::Error::other("503 service unavailable")), // ServerError
        4 => 50,
        _ => 10,
    };
    if roll < failure_rate {
        Err(io::Error::from(io::ErrorKind::ConnectionReset)) // Transient
    } else if roll == 99 {
        Err(io::Error::from(io::ErrorKind::NotFound)) // Permanent
    } else {
        Ok(())
    }
}

// ----- counting -----------------------------------------------------------------------------

const STOPS: [&str; 12] = [
    "non_retryable",
    "max_attempts",
    "max_attempts_for_class",
    "max_unknown_attempts",
    "deadline_exceeded",
    "deadline_unreachable",
    "no_strategy",
    "budget_exhausted",
    "circuit_open",
    "aborted",
    "cancelled",
    "deferred",
];

fn stop_index(r: &StopReason) -> usize {
    STOPS.iter().position(|n| *n == r.name()).unwrap_or(0)
}

/// The hook: one atomic counter per event kind and per stop reason; no allocation.
#[derive(Default)]
struct Counts {
    success: AtomicU64,
    retry: AtomicU64,
    stopped: [AtomicU64; STOPS.len()],
    opened: AtomicU64,
    half_open: AtomicU64,
    closed: AtomicU64,
    rejected: AtomicU64,
    other: AtomicU64,
}

impl Hook for Counts {
    fn on_event(&self, event: &Event<'_>) {
        let counter = match &event.kind {
            EventKind::Success => &self.success,
            EventKind::Retry { .. } => &self.retry,
            EventKind::Stopped(r) => &self.stopped[stop_index(r)],
            EventKind::CircuitOpened => &self.opened,
            EventKind::CircuitHalfOpen => &self.half_open,
            EventKind::CircuitClosed => &self.closed,
            EventKind::CircuitRejected { .. } => &self.rejected,
            _ => &self.other,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the callers saw, from results and reports.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: [AtomicU64; STOPS.len()],
    rejected: AtomicU64,
    retries: AtomicU64,
}

impl Tally {
    fn add(&self, result: &Result<(), RetryError<io::Error>>, report: &CallReport) {
        let retries = report
            .timeline
            .iter()
            .filter(|r| r.sleep_after.is_some())
            .count() as u64;
        self.retries.fetch_add(retries, Ordering::Relaxed);
        match result {
            Ok(()) => {
                assert!(report.succeeded && report.stop.is_none());
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                assert_eq!(report.stop, Some(e.reason()));
                assert!(!report.succeeded);
                if e.is_circuit_open() {
                    self.rejected.fetch_add(1, Ordering::Relaxed);
                } else {
                    assert_eq!(report.attempts, e.attempts());
                    self.failed[stop_index(&e.reason())].fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Empties `report` for the next call, keeping its timeline's allocation.
fn reset(report: &mut CallReport) {
    let mut timeline = std::mem::take(&mut report.timeline);
    timeline.clear();
    *report = CallReport {
        timeline,
        ..CallReport::new()
    };
}

/// Resident memory in bytes, if this system tells (Linux).
fn resident() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

// ----- the rig ------------------------------------------------------------------------------

struct Rig {
    policy: Policy,
    breaker: Arc<CircuitBreaker>,
    counts: Arc<Counts>,
    tally: Tally,
    clock: ManualClock,
    next: AtomicU64,
    total: u64,
    warm_up: u64,
    memory_after_warm_up: Mutex<Option<u64>>,
}

impl Rig {
    fn new(total: u64) -> Self {
        let breaker = Arc::new(
            CircuitBreaker::consecutive(20, Duration::from_secs(1))
                .recovery(Duration::from_millis(2))
                .probes(2)
                .build()
                .unwrap(),
        );
        let budget = Arc::new(
            Budget::ratio(0.1, 10.0, Duration::from_millis(50))
                .build()
                .unwrap(),
        );
        let counts = Arc::new(Counts::default());
        let policy = Policy::builder()
            .retry(
                Retry::builder()
                    .max_attempts(3)
                    .strategy(constant(Duration::ZERO))
                    .budget(budget),
            )
            .breaker(breaker.clone())
            .shared_hook(counts.clone())
            .seed(7)
            .build()
            .unwrap();
        Self {
            policy,
            breaker,
            counts,
            tally: Tally::default(),
            clock: ManualClock::new(Instant::ZERO),
            next: AtomicU64::new(0),
            total,
            warm_up: total / 10,
            memory_after_warm_up: Mutex::new(None),
        }
    }

    /// The next call's index, or `None` once every call was made. Records the memory
    /// after the warm-up.
    fn take(&self) -> Option<u64> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        if i == self.warm_up {
            *self.memory_after_warm_up.lock().unwrap() = resident();
        }
        (i < self.total).then(|| {
            self.clock.advance(Duration::from_micros(1));
            i
        })
    }

    fn check(&self, label: &str) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (c, t) = (&self.counts, &self.tally);
        let failed: u64 = t.failed.iter().map(load).sum();
        let (ok, rejected) = (load(&t.ok), load(&t.rejected));
        println!(
            "{label}: {} calls: {ok} ok, {failed} failed, {rejected} rejected, {} retries; \
             breaker opened {} times, closed {} times",
            self.total,
            load(&t.retries),
            load(&c.opened),
            load(&c.closed),
        );
        let stops: Vec<String> = STOPS
            .iter()
            .zip(&t.failed)
            .filter(|(_, n)| load(n) > 0)
            .map(|(name, n)| format!("{name} {}", load(n)))
            .collect();
        println!(
            "{label}: stops {}; breaker {:?}",
            stops.join(", "),
            self.breaker.state()
        );
        assert_eq!(ok + failed + rejected, self.total, "{label}: calls lost");
        assert_eq!(load(&c.success), ok, "{label}: success events");
        assert_eq!(load(&c.rejected), rejected, "{label}: rejection events");
        assert_eq!(load(&c.retry), load(&t.retries), "{label}: retry events");
        for (i, name) in STOPS.iter().enumerate() {
            if *name != "circuit_open" {
                assert_eq!(load(&c.stopped[i]), load(&t.failed[i]), "{label}: {name}");
            }
        }
        assert_eq!(load(&c.other), 0);
        // Every phase of the script happened.
        assert!(
            ok > 0 && rejected > 0 && load(&c.closed) > 0,
            "{label}: too small"
        );
        assert!(load(&t.failed[stop_index(&StopReason::BudgetExhausted)]) > 0);
        // The transitions lead to the final state (see the breaker docs for the paths).
        let state = self.breaker.state();
        let (opened, half, closed) = (load(&c.opened), load(&c.half_open), load(&c.closed));
        assert_eq!(
            opened - half,
            u64::from(state == CircuitState::Open),
            "{label}"
        );
        assert!(closed + u64::from(state == CircuitState::HalfOpen) <= half);

        if let (Some(before), Some(after)) =
            (*self.memory_after_warm_up.lock().unwrap(), resident())
        {
            println!("{label}: resident memory {before} B after warm-up, {after} B at the end");
            assert!(
                after.saturating_sub(before) < GROWTH_LIMIT,
                "{label}: memory grew from {before} to {after} bytes"
            );
        }
    }
}

// ----- the drivers --------------------------------------------------------------------------

#[test]
fn two_threads_of_blocking_calls_share_one_policy() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let rig = Rig::new(calls());
    let sleeper = ManualSleeper::new(rig.clock.clone());
    let ctx = rig.policy.context("soak");
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                let mut report = CallReport::new();
                while let Some(i) = rig.take() {
                    reset(&mut report);
                    let r = run_blocking(&ctx, &sleeper, None, Some(&mut report), |a: Attempt| {
                        script(i, a.n)
                    });
                    rig.tally.add(&r, &report);
                }
            });
        }
    });
    rig.check("blocking, 2 threads");
}

#[test]
fn sixty_four_tokio_tasks_share_one_policy() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let rig = Arc::new(Rig::new(calls()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let rig = rig.clone();
                tokio::spawn(async move {
                    let sleeper = ManualSleeper::new(rig.clock.clone());
                    let ctx = rig.policy.context("soak");
                    let mut report = CallReport::new();
                    let mut made = 0u32;
                    while let Some(i) = rig.take() {
                        reset(&mut report);
                        let op = async move |a: Attempt| script(i, a.n);
                        let r = run_async(&ctx, &sleeper, None, Some(&mut report), op).await;
                        rig.tally.add(&r, &report);
                        made += 1;
                        if made.is_multiple_of(32) {
                            tokio::task::yield_now().await; // let the other tasks in
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    drop(rt);
    rig.check("tokio, 64 tasks on 2 workers");
}
