//! The event loop: one policy, one fleet, one dependency, a fake clock.
//!
//! Events live in a binary heap ordered by `(time, sequence)`, so ties resolve in the order
//! they were scheduled and every run with the same seed replays exactly. Each logical call
//! is a [`PolicyMachine`] in a slot; finished calls give their slot back, so memory follows
//! the number of calls in flight, not the number of calls. Arrivals are one aggregated
//! stream (a superposition of the clients' streams), so the heap holds one arrival event
//! plus the calls in flight. A `synced` run adds one exchange event: the next instance's
//! exchange with the fleet's store (see [`sync`](super::sync)).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::Duration;

use redress::breaker::Transition;
use redress::event::EventKind;
use redress::rng::seeded;
use redress::{Classification, Decision, Instant, Outcome, Policy, PolicyMachine, StopReason};

use super::histogram::Histogram;
use super::mix;
use super::model::{Answer, ArrivalProcess, Model, nanos};
use super::scenario::Scenario;
use super::sync::FleetStore;

/// The id of the arrival event (slots use the others).
const ARRIVAL: u32 = u32::MAX;
/// The id of the next exchange with the fleet's store (`synced` runs only).
const SYNC: u32 = u32::MAX - 1;

/// An event's heap key: time, then scheduling order, then id, in one `u128` (cheaper to
/// compare and move than a tuple). The sequence wraps after 2³² events; the order stays
/// total and deterministic, only FIFO among equal instants is then approximate.
fn key(t: u64, seq: u64, id: u32) -> u128 {
    (u128::from(t) << 64) | (u128::from(seq as u32) << 32) | u128::from(id)
}

fn unkey(k: u128) -> (u64, u32) {
    ((k >> 64) as u64, k as u32)
}

/// What one policy did over one run.
#[derive(Clone, Debug, Default)]
pub struct RunStats {
    /// Logical calls started.
    pub calls: u64,
    /// Calls that succeeded.
    pub successes: u64,
    /// Attempts that reached the dependency.
    pub attempts: u64,
    /// Calls started during the main outage.
    pub outage_calls: u64,
    /// Attempts that reached the dependency during the main outage.
    pub outage_attempts: u64,
    /// Of those, retries (attempts after a call's first).
    pub outage_retries: u64,
    /// Attempts per sample of the scenario's `sample` width.
    pub series: Vec<u64>,
    /// Call latencies, in microseconds.
    pub latency: Histogram,
    /// Time breakers were open or half-open, summed over policy instances.
    pub breaker_open: Duration,
    /// Policy instances (one per client, or one for the fleet).
    pub instances: u64,
    /// For each instance whose breaker opened during the main outage, when it first did
    /// (sorted).
    pub outage_openings: Vec<Duration>,
    /// Calls stopped by an exhausted budget.
    pub budget_denials: u64,
    /// Stop reasons of calls that did not succeed, by name.
    pub stops: BTreeMap<&'static str, u64>,
    /// The simulated instant the last call finished.
    pub end: Duration,
    /// Events processed.
    pub events: u64,
}

struct Slot<'p> {
    machine: PolicyMachine<'p>,
    started: Instant,
    instance: u32,
    answer: Answer,
}

/// Runs `policies` (one per client, or a single one shared by the fleet) through the
/// scenario with `seed`. With `sync`, the instances exchange their breakers' and budgets'
/// counts with the fleet's store every `sync` (the `synced` scope). `progress` is called
/// with the simulated seconds now and then.
pub fn run(
    scenario: &Scenario,
    policies: &[Policy],
    sync: Option<Duration>,
    seed: u64,
    progress: &mut dyn FnMut(u64),
) -> RunStats {
    let end = nanos(scenario.duration);
    let sample = nanos(scenario.sample).max(1);
    let outage = scenario
        .main_outage()
        .map(|o| (nanos(o.start), nanos(o.end)));
    let in_outage = |t: u64| outage.is_some_and(|(s, e)| s <= t && t < e);
    let track_breaker = policies.iter().any(|p| p.breaker().is_some());

    let mut arrivals =
        ArrivalProcess::new(&scenario.load, scenario.clients, seeded(mix(seed, 0xA11)));
    let mut model = Model::new(&scenario.dependency, seeded(mix(seed, 0xDE9)));
    let mut stats = RunStats {
        series: vec![0; usize::try_from(end / sample + 1).unwrap_or(0)],
        instances: policies.len() as u64,
        ..RunStats::default()
    };
    let series_cap = stats.series.len().saturating_mul(2);
    let mut open_since: Vec<Option<u64>> = vec![None; policies.len()];
    let mut opened: Vec<Option<u64>> = vec![None; policies.len()];
    let mut fleet = sync.map(|every| FleetStore::new(policies, every));
    let mut heap: BinaryHeap<Reverse<u128>> = BinaryHeap::with_capacity(1024);
    let mut slots: Vec<Slot<'_>> = Vec::with_capacity(1024);
    let mut free: Vec<u32> = Vec::with_capacity(1024);
    let mut seq = 0u64;
    let mut last = 0u64;

    if let Some(t) = arrivals.next_after(0).filter(|t| *t < end) {
        heap.push(Reverse(key(t, seq, ARRIVAL)));
        seq += 1;
    }
    if let Some(f) = &fleet {
        heap.push(Reverse(key(f.next_at(), seq, SYNC)));
        seq += 1;
    }

    while let Some(Reverse(k)) = heap.pop() {
        let (t, id) = unkey(k);
        let now = Instant::from_nanos(t);
        if id == SYNC {
            let Some(f) = &mut fleet else { continue };
            let x = f.exchange(now, policies);
            let since = &mut open_since[x.instance];
            if x.tripped || x.followed == Some(Transition::Opened) {
                if since.is_none() {
                    *since = Some(t);
                }
                if opened[x.instance].is_none() && in_outage(t) {
                    opened[x.instance] = Some(t);
                }
            } else if x.followed == Some(Transition::Closed)
                && let Some(s) = since.take()
            {
                stats.breaker_open += Duration::from_nanos(t - s);
            }
            // Exchanges go on while calls are in flight or still to arrive.
            if !heap.is_empty() {
                heap.push(Reverse(key(f.next_at(), seq, SYNC)));
                seq += 1;
            }
            continue;
        }
        last = t;
        stats.events += 1;
        if stats.events & 0x3_FFFF == 0 {
            progress(t / 1_000_000_000);
        }
        let (index, decision) = if id == ARRIVAL {
            if let Some(next) = arrivals.next_after(t).filter(|n| *n < end) {
                heap.push(Reverse(key(next, seq, ARRIVAL)));
                seq += 1;
            }
            let client = arrivals.client();
            let instance = if policies.len() == 1 {
                0
            } else {
                client as usize % policies.len()
            };
            stats.calls += 1;
            if in_outage(t) {
                stats.outage_calls += 1;
            }
            let slot = Slot {
                machine: policies[instance].machine(),
                started: now,
                instance: instance as u32,
                answer: Answer::Success,
            };
            let index = match free.pop() {
                Some(i) => {
                    slots[i as usize] = slot;
                    i as usize
                }
                None => {
                    slots.push(slot);
                    slots.len() - 1
                }
            };
            let d = slots[index].machine.start(now);
            (index, d)
        } else {
            let index = id as usize;
            let slot = &mut slots[index];
            let d = match slot.machine.decision() {
                Decision::Attempt { .. } => {
                    let outcome = match slot.answer {
                        Answer::Success => Outcome::Success,
                        Answer::TimedOut => Outcome::TimedOut,
                        Answer::Failure(class, hint) => Outcome::Failure(Classification {
                            retry_after: hint,
                            ..Classification::new(class)
                        }),
                    };
                    slot.machine.on_outcome(now, outcome)
                }
                _ => slot.machine.on_wake(now),
            };
            (index, d)
        };

        let slot = &mut slots[index];
        if track_breaker {
            while let Some(e) = slot.machine.poll_event() {
                let since = &mut open_since[slot.instance as usize];
                match e.kind {
                    EventKind::CircuitOpened if since.is_none() => {
                        *since = Some(t);
                        let first = &mut opened[slot.instance as usize];
                        if first.is_none() && in_outage(t) {
                            *first = Some(t);
                        }
                    }
                    EventKind::CircuitClosed => {
                        if let Some(s) = since.take() {
                            stats.breaker_open += Duration::from_nanos(t - s);
                        }
                    }
                    _ => {}
                }
            }
        }
        let finished = match decision {
            Decision::Attempt { n, deadline } => {
                stats.attempts += 1;
                if in_outage(t) {
                    stats.outage_attempts += 1;
                    stats.outage_retries += u64::from(n > 1);
                }
                // Calls in flight after the last arrival extend the series, up to twice the
                // run's length (a policy sleeping for days must not grow it without bound).
                let bucket = usize::try_from(t / sample).unwrap_or(usize::MAX);
                if bucket < series_cap {
                    if bucket >= stats.series.len() {
                        stats.series.resize(bucket + 1, 0);
                    }
                    stats.series[bucket] += 1;
                }
                let (answer, latency) = model.answer(t);
                let done = t.saturating_add(latency.max(1));
                let (answer, at) = match deadline {
                    Some(dl) if done > dl.as_nanos() => (Answer::TimedOut, dl.as_nanos().max(t)),
                    _ => (answer, done),
                };
                slot.answer = answer;
                heap.push(Reverse(key(at, seq, index as u32)));
                seq += 1;
                false
            }
            Decision::Sleep { until, .. } => {
                heap.push(Reverse(key(until.as_nanos(), seq, index as u32)));
                seq += 1;
                false
            }
            Decision::Succeeded => {
                stats.successes += 1;
                true
            }
            Decision::Failed(reason) => {
                if reason == StopReason::BudgetExhausted {
                    stats.budget_denials += 1;
                }
                *stats.stops.entry(reason.name()).or_default() += 1;
                true
            }
            Decision::Rejected { .. } => {
                *stats.stops.entry("circuit_open").or_default() += 1;
                true
            }
        };
        if finished {
            let took = now.saturating_duration_since(slot.started);
            stats
                .latency
                .record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
            free.push(index as u32);
        }
    }
    for s in open_since.into_iter().flatten() {
        stats.breaker_open += Duration::from_nanos(last.saturating_sub(s));
    }
    stats.outage_openings = opened
        .into_iter()
        .flatten()
        .map(Duration::from_nanos)
        .collect();
    stats.outage_openings.sort_unstable();
    stats.end = Duration::from_nanos(last);
    progress(last / 1_000_000_000);
    stats
}
