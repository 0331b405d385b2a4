//! The demo: one outage of a dependency, seen through three policies.
//!
//! A fleet of clients calls a dependency that fails outright for 100 seconds. Each policy
//! is run against the same traffic on a fake clock (a discrete-event simulation over the
//! pure `PolicyMachine`), and the table shows what each does to the dependency: naive
//! retries multiply the load during the outage; a retry budget caps the extra load; a
//! breaker also stops first attempts while the dependency is down.
//!
//! `cargo run --release -p redress-examples --example outage`
#![forbid(unsafe_code)]

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;
use std::time::Duration;

use redress::backoff::decorrelated_jitter;
use redress::rng::{seeded, unit_f64};
use redress::{
    Budget, CircuitBreaker, Decision, ErrorClass, Instant, Outcome, Policy, PolicyMachine, Retry,
};

const CLIENTS: u64 = 200;
const RUN: Duration = Duration::from_secs(300);
const OUTAGE: (u64, u64) = (100, 200);
const ATTEMPT_TIME: Duration = Duration::from_millis(20);

struct Stats {
    calls: u64,
    ok: u64,
    attempts: u64,
    per_second: BTreeMap<u64, u64>,
    stops: BTreeMap<&'static str, u64>,
}

fn simulate(policy: &Policy) -> Stats {
    let mut stats = Stats {
        calls: 0,
        ok: 0,
        attempts: 0,
        per_second: BTreeMap::new(),
        stops: BTreeMap::new(),
    };
    let mut rng = seeded(7);
    let mut machines: Vec<PolicyMachine<'_>> = Vec::new();
    // (when, sequence, machine index or u64::MAX for "client starts a call"), earliest first.
    let mut queue = BinaryHeap::new();
    let mut seq = 0u64;
    for c in 0..CLIENTS {
        let t = Instant::from_millis(c * 1000 / CLIENTS);
        queue.push(Reverse((t, seq, usize::MAX)));
        seq += 1;
    }
    let end = Instant::ZERO + RUN;
    while let Some(Reverse((now, _, idx))) = queue.pop() {
        let decision = if idx == usize::MAX {
            if now >= end {
                continue;
            }
            // A client starts a call now and its next one a second later.
            queue.push(Reverse((now + Duration::from_secs(1), seq, usize::MAX)));
            seq += 1;
            stats.calls += 1;
            machines.push(policy.machine());
            let i = machines.len() - 1;
            let d = machines[i].start(now);
            (i, d)
        } else {
            let m = &mut machines[idx];
            let d = match m.decision() {
                Decision::Attempt { .. } => {
                    let secs = now.since_epoch().as_secs();
                    let down = (OUTAGE.0..OUTAGE.1).contains(&secs);
                    if down || unit_f64(&mut rng) < 0.01 {
                        let class = if down {
                            ErrorClass::ServerError
                        } else {
                            ErrorClass::Transient
                        };
                        m.on_outcome(now, Outcome::failure(class))
                    } else {
                        m.on_outcome(now, Outcome::Success)
                    }
                }
                _ => m.on_wake(now),
            };
            (idx, d)
        };
        let (i, d) = decision;
        match d {
            Decision::Attempt { .. } => {
                stats.attempts += 1;
                *stats
                    .per_second
                    .entry(now.since_epoch().as_secs())
                    .or_default() += 1;
                queue.push(Reverse((now + ATTEMPT_TIME, seq, i)));
            }
            Decision::Sleep { until, .. } => queue.push(Reverse((until, seq, i))),
            Decision::Succeeded => stats.ok += 1,
            Decision::Failed(r) => *stats.stops.entry(r.name()).or_default() += 1,
            Decision::Rejected { .. } => *stats.stops.entry("circuit_open").or_default() += 1,
        }
        seq += 1;
    }
    stats
}

fn main() -> Result<(), redress::ConfigError> {
    let retry = || {
        Retry::builder()
            .max_attempts(6)
            .deadline(Duration::from_secs(30))
            .strategy(decorrelated_jitter(
                Duration::from_millis(100),
                Duration::from_secs(5),
            ))
    };
    let budget = || {
        Budget::ratio(0.1, 5.0, Duration::from_secs(10))
            .build()
            .map(Arc::new)
    };
    let policies = [
        (
            "naive retries",
            Policy::builder().retry(retry()).seed(1).build()?,
        ),
        (
            "retries + budget",
            Policy::builder()
                .retry(retry().budget(budget()?))
                .seed(1)
                .build()?,
        ),
        (
            "retries + budget + breaker",
            Policy::builder()
                .retry(retry().budget(budget()?))
                .breaker(Arc::new(
                    CircuitBreaker::failure_rate(0.5, 50, Duration::from_secs(10))
                        .recovery(Duration::from_secs(5))
                        .build()?,
                ))
                .seed(1)
                .build()?,
        ),
    ];
    println!(
        "{CLIENTS} clients, one call per second each for {}s; the dependency fails every call from {}s to {}s.\n",
        RUN.as_secs(),
        OUTAGE.0,
        OUTAGE.1
    );
    println!(
        "{:<28} {:>7} {:>7} {:>9} {:>6} {:>12} {:>12}  stop reasons",
        "policy", "calls", "ok", "attempts", "ampl.", "outage peak/s", "outage mean/s"
    );
    for (name, policy) in &policies {
        let s = simulate(policy);
        let outage: Vec<u64> = (OUTAGE.0..OUTAGE.1)
            .map(|t| s.per_second.get(&t).copied().unwrap_or(0))
            .collect();
        let peak = outage.iter().max().copied().unwrap_or(0);
        let mean = outage.iter().sum::<u64>() as f64 / outage.len() as f64;
        println!(
            "{:<28} {:>7} {:>7} {:>9} {:>6.2} {:>12} {:>12.1}  {:?}",
            name,
            s.calls,
            s.ok,
            s.attempts,
            s.attempts as f64 / s.calls as f64,
            peak,
            mean,
            s.stops
        );
    }
    Ok(())
}
