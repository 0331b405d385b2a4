//! The `synced` policy scope: every client's policy instance exchanges its breaker's and
//! budget's counts with an in-simulation store every sync interval, as `redress-redis` does
//! through Redis, with the core's pure exchange API ([`redress::fleet`]).
//!
//! One exchange of instance `i` at `now`, per shared object, with no round-trip time:
//!
//! 1. take the object's snapshot and push its counts per bucket into the store's bucket of
//!    the same start (the simulation has one clock). As in redress-redis's script, the store
//!    keeps the fleet's totals and every instance's own counts per bucket; a push raises
//!    the instance's own counts to the snapshot's and adds the difference to the totals;
//! 2. breakers: if the snapshot's generation changed other than through `follow`, publish
//!    the state (open until …, or closed) under the next sequence number; counts are kept
//!    per sequence number, and an instance pushes and reads them only once it has seen the
//!    latest one (its own counts restart at every transition);
//! 3. read the fleet's totals over the window (budgets: one bucket more than the window, as
//!    the budget itself counts), subtract this instance's own, and
//!    [merge](redress::Budget::merge) the rest — the others' counts as of their last push —
//!    valid for three intervals (redress-redis's default `stale_after`). A budget's merge
//!    also splits what the fleet has left between the instances that exchanged within those
//!    three intervals, this one included, with a draw for the remainder that is a hash of
//!    the instance and the round of exchanges, as redress-redis draws from its instance id
//!    and `wall_ms / interval_ms`;
//! 4. breakers: [follow](redress::CircuitBreaker::follow) the latest state another instance
//!    published, once per sequence number.
//!
//! Instance `i` exchanges at `k × interval + i × interval / n`: in turn, spread evenly, so a
//! publication reaches every other instance within one interval.

use std::collections::BTreeMap;
use std::time::Duration;

use redress::breaker::Transition;
use redress::fleet::{FleetBreakerCounts, FleetBudgetCounts, FleetDirective};
use redress::{Budget, CircuitBreaker, CircuitState, Instant, Policy};

use super::model::nanos;

/// The fleet's totals and every instance's own counts per bucket (by bucket index).
#[derive(Debug, Default)]
struct Counts {
    /// The fleet's totals per bucket index.
    totals: BTreeMap<u64, [u64; 2]>,
    /// Per instance: its own counts per bucket index (the highest it pushed).
    pushed: Vec<BTreeMap<u64, [u64; 2]>>,
}

impl Counts {
    fn new(instances: usize) -> Self {
        Self {
            totals: BTreeMap::new(),
            pushed: vec![BTreeMap::new(); instances],
        }
    }

    /// Pushes instance `i`'s `buckets` (`(start, counts)` from a snapshot, absolute) into the
    /// window of `len` buckets of `width` ending at `now`'s, and returns what the others
    /// counted in that window: per bucket, the total minus this instance's own.
    fn exchange(
        &mut self,
        i: usize,
        now: u64,
        buckets: &[(Instant, [u64; 2])],
        width: u64,
        len: u64,
    ) -> [u64; 2] {
        let width = width.max(1);
        let newest = now / width;
        let first = newest.saturating_sub(len.max(1) - 1);
        let pushed = &mut self.pushed[i];
        for &(start, counts) in buckets {
            let id = start.as_nanos() / width;
            if id < first || id > newest {
                continue;
            }
            let before = pushed.entry(id).or_default();
            let total = self.totals.entry(id).or_default();
            for k in 0..2 {
                total[k] += counts[k].saturating_sub(before[k]);
                before[k] = before[k].max(counts[k]);
            }
        }
        pushed.retain(|id, _| *id >= first);
        // Every instance's window starts at or after this one from now on (one clock).
        self.totals.retain(|id, _| *id >= first);
        let mut others = [0u64; 2];
        for (id, total) in self.totals.range(first..=newest) {
            let own = pushed.get(id).copied().unwrap_or_default();
            others[0] += total[0].saturating_sub(own[0]);
            others[1] += total[1].saturating_sub(own[1]);
        }
        others
    }

    /// Forgets every count: a new breaker sequence number starts from nothing (new keys).
    fn clear(&mut self) {
        self.totals.clear();
        for p in &mut self.pushed {
            p.clear();
        }
    }
}

/// A breaker's side of the store: its counts under the latest sequence number, the last
/// published state, and what each instance knows.
#[derive(Debug)]
struct BreakerStore {
    /// Whether counts are shared (failure-rate mode) or decisions only.
    with_counts: bool,
    /// Counts pushed under sequence number `counts_seq`.
    counts: Counts,
    counts_seq: u64,
    /// Published transitions so far.
    seq: u64,
    /// The last published state: its sequence number, the directive, the publisher.
    state: Option<(u64, FleetDirective, usize)>,
    /// Per instance: the sequence number its counts are pushed under.
    believed: Vec<u64>,
    /// Per instance: the sequence number of the last state applied or published.
    applied: Vec<Option<u64>>,
    /// Per instance: the generation after its last exchange; a change is its own.
    generation: Vec<Option<u64>>,
}

/// A budget's side of the store: its counts, and when each instance last exchanged (the
/// instances that split what the fleet has left).
#[derive(Debug)]
struct BudgetStore {
    counts: Counts,
    /// Per instance: when it last exchanged (nanoseconds), if it has.
    seen: Vec<Option<u64>>,
}

/// The fleet's store, and the exchange schedule.
#[derive(Debug)]
pub(crate) struct FleetStore {
    interval: u64,
    instances: u64,
    /// Exchanges so far: the next is instance `tick % instances` in round `tick / instances`.
    tick: u64,
    budget: Option<BudgetStore>,
    breaker: Option<BreakerStore>,
}

/// Breaker transitions one exchange made on its instance (followed or tripped by merge), for
/// the engine's accounting; transitions the instance made itself arrive as events.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Exchanged {
    /// The instance that exchanged.
    pub(crate) instance: usize,
    /// A transition made by following another instance.
    pub(crate) followed: Option<Transition>,
    /// The fleet's counts crossed the threshold at the merge: the breaker opened.
    pub(crate) tripped: bool,
}

impl FleetStore {
    /// A store for `policies` (one per instance; they are all built from the same config)
    /// exchanging every `interval`.
    pub(crate) fn new(policies: &[Policy], interval: Duration) -> Self {
        let n = policies.len();
        let first = policies.first();
        Self {
            interval: nanos(interval).max(1),
            instances: n.max(1) as u64,
            tick: 0,
            budget: first.and_then(|p| p.retry().budget()).map(|_| BudgetStore {
                counts: Counts::new(n),
                seen: vec![None; n],
            }),
            breaker: first.and_then(|p| p.breaker()).map(|b| BreakerStore {
                with_counts: b.snapshot(Instant::ZERO).bucket_width.is_some(),
                counts: Counts::new(n),
                counts_seq: 0,
                seq: 0,
                state: None,
                believed: vec![0; n],
                applied: vec![None; n],
                generation: vec![None; n],
            }),
        }
    }

    /// When the next exchange happens (nanoseconds).
    pub(crate) fn next_at(&self) -> u64 {
        let round = self.tick / self.instances;
        let i = self.tick % self.instances;
        round.saturating_mul(self.interval) + i * self.interval / self.instances
    }

    /// Runs the next exchange at `now` on its instance's policy.
    pub(crate) fn exchange(&mut self, now: Instant, policies: &[Policy]) -> Exchanged {
        let i = (self.tick % self.instances) as usize;
        self.tick += 1;
        let mut out = Exchanged {
            instance: i,
            ..Exchanged::default()
        };
        let Some(policy) = policies.get(i) else {
            return out;
        };
        let stale_after = self.interval.saturating_mul(3);
        let valid_until = now + Duration::from_nanos(stale_after);
        if let (Some(store), Some(budget)) = (&mut self.budget, policy.retry().budget()) {
            let round = now.as_nanos() / self.interval;
            store.exchange(i, now, budget, round, stale_after);
        }
        if let (Some(store), Some(breaker)) = (&mut self.breaker, policy.breaker()) {
            let (followed, tripped) = store.exchange(i, now, breaker, valid_until);
            out.followed = followed;
            out.tripped = tripped;
        }
        out
    }
}

impl BudgetStore {
    /// Instance `i`'s exchange in `round`: push, read the others' counts and how many
    /// instances exchanged within `stale_after` (nanoseconds), and merge with this
    /// instance's draw.
    fn exchange(&mut self, i: usize, now: Instant, budget: &Budget, round: u64, stale_after: u64) {
        let snap = budget.snapshot(now);
        let buckets: Vec<(Instant, [u64; 2])> = snap
            .buckets
            .iter()
            .map(|b| (b.start, [b.withdrawn, b.deposits]))
            .collect();
        let width = nanos(snap.bucket_width).max(1);
        // One bucket more than the window holds, as the budget itself counts.
        let len = nanos(snap.window).div_ceil(width) + 1;
        let others = self
            .counts
            .exchange(i, now.as_nanos(), &buckets, width, len);
        self.seen[i] = Some(now.as_nanos());
        let since = now.as_nanos().saturating_sub(stale_after);
        let members = self
            .seen
            .iter()
            .filter(|t| t.is_some_and(|t| t >= since))
            .count();
        let instances = u32::try_from(members).unwrap_or(u32::MAX);
        budget.merge(
            now,
            FleetBudgetCounts {
                withdrawn: others[0],
                deposits: others[1],
                instances,
                ticket: ticket(i, round, instances),
            },
            now + Duration::from_nanos(stale_after),
        );
    }
}

/// Instance `i`'s draw for the split of a budget's remainder in exchange `round`, in
/// `0..instances`: a fixed mix of both (SplitMix64's finalizer), so draws differ between
/// instances and rounds and a run stays the same for a seed.
fn ticket(i: usize, round: u64, instances: u32) -> u32 {
    let mix = |mut z: u64| {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let h = mix(mix(i as u64)
        .wrapping_add(round)
        .wrapping_add(0x9e37_79b9_7f4a_7c15));
    u32::try_from(h % u64::from(instances.max(1))).unwrap_or(0)
}

impl BreakerStore {
    /// Instance `i`'s exchange: what following did, and whether the merge tripped it.
    fn exchange(
        &mut self,
        i: usize,
        now: Instant,
        breaker: &CircuitBreaker,
        until: Instant,
    ) -> (Option<Transition>, bool) {
        let snap = breaker.snapshot(now);
        // Its counts restart at every transition; the store keeps its own counts as pushed
        // (as redress-redis's script does), so lower counts add nothing until they pass them.
        let changed = self.generation[i] != Some(snap.generation);
        let first = self.generation[i].is_none();
        let publish = match (snap.state, snap.open_until) {
            (CircuitState::Open, Some(until)) if changed => Some(FleetDirective::Open { until }),
            // A breaker that starts closed has nothing to tell the fleet.
            (CircuitState::Closed, _) if changed && !first => Some(FleetDirective::Close),
            _ => None,
        };
        if let Some(d) = publish {
            self.seq += 1;
            self.state = Some((self.seq, d, i));
            self.applied[i] = Some(self.seq);
        }
        // Counts are pushed and read only under the latest sequence number.
        let others = (self.believed[i] == self.seq && self.with_counts).then(|| {
            if self.counts_seq != self.seq {
                // The first push under a new number: the old numbers' counts are dead.
                self.counts.clear();
                self.counts_seq = self.seq;
            }
            let buckets: Vec<(Instant, [u64; 2])> = snap
                .buckets
                .iter()
                .map(|b| (b.start, [b.failures, b.failures + b.successes]))
                .collect();
            let width = snap.bucket_width.map_or(1, nanos).max(1);
            let len = nanos(snap.window).div_ceil(width);
            self.counts
                .exchange(i, now.as_nanos(), &buckets, width, len)
        });
        // Follow the latest state another instance published, once.
        let mut followed = None;
        if let Some((seq, directive, by)) = self.state
            && self.applied[i] != Some(seq)
        {
            self.applied[i] = Some(seq);
            if by != i {
                followed = breaker.follow(now, directive);
            }
        }
        // What the breaker does after the snapshot is its own, to be published next time;
        // what following does is not.
        self.generation[i] = Some(if followed.is_some() {
            breaker.generation()
        } else {
            snap.generation
        });
        if self.believed[i] != self.seq {
            self.believed[i] = self.seq;
            self.counts.pushed[i].clear();
            return (followed, false);
        }
        let Some(others) = others else {
            return (followed, false);
        };
        let merged = breaker.merge(
            now,
            FleetBreakerCounts {
                failures: others[0],
                calls: others[1],
            },
            until,
        );
        (followed, merged == Some(Transition::Opened))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use redress::breaker::BreakerOutcome;
    use redress::{ErrorClass, Retry};

    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    /// `n` instances, each with its own budget (rolling, 10 per 10 s) and failure-rate breaker.
    fn fleet(n: usize) -> Vec<Policy> {
        (0..n)
            .map(|_| {
                let budget = Arc::new(Budget::rolling(10, secs(10)).build().unwrap());
                let breaker = Arc::new(
                    CircuitBreaker::failure_rate(0.5, 10, secs(10))
                        .recovery(secs(5))
                        .build()
                        .unwrap(),
                );
                Policy::builder()
                    .retry(Retry::builder().max_attempts(3).budget(budget))
                    .breaker(breaker)
                    .build()
                    .unwrap()
            })
            .collect()
    }

    fn budget(p: &Policy) -> &Budget {
        p.retry().budget().unwrap()
    }

    fn breaker(p: &Policy) -> &CircuitBreaker {
        p.breaker().unwrap()
    }

    /// Runs every exchange due up to `until`.
    fn exchange_until(store: &mut FleetStore, policies: &[Policy], until: Instant) {
        while store.next_at() <= until.as_nanos() {
            let now = Instant::from_nanos(store.next_at());
            store.exchange(now, policies);
        }
    }

    #[test]
    fn instances_take_turns_spread_over_the_interval() {
        let policies = fleet(4);
        let mut store = FleetStore::new(&policies, secs(1));
        let mut times = Vec::new();
        for _ in 0..6 {
            times.push(store.next_at() / 1_000_000);
            let x = store.exchange(Instant::from_nanos(store.next_at()), &policies);
            assert_eq!(x.instance, (times.len() - 1) % 4);
        }
        assert_eq!(times, [0, 250, 500, 750, 1000, 1250]);
    }

    #[test]
    fn others_are_what_the_other_instances_pushed_within_the_window() {
        let mut c = Counts::new(3);
        let w = 1_000_000_000;
        // Instance 1 pushed 4 in bucket 0, then 2 more in bucket 0 and 3 in bucket 1.
        assert_eq!(c.exchange(1, 500, &[(at(0), [4, 0])], w, 3), [0, 0]);
        assert_eq!(
            c.exchange(
                1,
                1_500_000_000,
                &[(at(0), [6, 0]), (at(1000), [3, 1])],
                w,
                3
            ),
            [0, 0]
        );
        assert_eq!(
            c.exchange(2, 1_600_000_000, &[(at(1000), [1, 0])], w, 3),
            [9, 1]
        );
        assert_eq!(c.exchange(0, 1_700_000_000, &[], w, 3), [10, 1]);
        // At 3.5 s the window is buckets 1..=3: bucket 0 has left it.
        assert_eq!(c.exchange(0, 3_500_000_000, &[], w, 3), [4, 1]);
        // Pushing the same snapshot again adds nothing.
        assert_eq!(
            c.exchange(2, 3_500_000_000, &[(at(1000), [1, 0])], w, 3),
            [3, 1]
        );
        // Nor does a lower one (its counts restarted): the store keeps the highest.
        assert_eq!(
            c.exchange(2, 3_500_000_000, &[(at(1000), [0, 0])], w, 3),
            [3, 1]
        );
        assert_eq!(c.exchange(0, 3_500_000_000, &[], w, 3), [4, 1]);
    }

    #[test]
    fn a_budget_counts_what_the_others_withdrew_and_splits_what_is_left() {
        let policies = fleet(2);
        let mut store = FleetStore::new(&policies, secs(1));
        for _ in 0..6 {
            assert!(budget(&policies[0]).withdraw(at(100), ErrorClass::Transient));
        }
        // Instance 0 exchanges alone at 0 ms: nothing to split with.
        exchange_until(&mut store, &policies, at(0));
        assert_eq!(budget(&policies[0]).fleet_share(at(100)), None);
        // Instance 1 exchanges at 500 ms: 6 pushed at 0 ms, and 4 left for two instances.
        exchange_until(&mut store, &policies, at(500));
        assert_eq!(budget(&policies[1]).remaining(at(600)), 4);
        assert_eq!(budget(&policies[1]).fleet_share(at(600)), Some(2));
        exchange_until(&mut store, &policies, at(1500));
        assert_eq!(budget(&policies[1]).remaining(at(1600)), 4);
        for _ in 0..2 {
            assert!(budget(&policies[1]).withdraw(at(1600), ErrorClass::Transient));
        }
        assert!(
            !budget(&policies[1]).withdraw(at(1600), ErrorClass::Transient),
            "its share of the 4 is spent"
        );
        assert_eq!(budget(&policies[1]).remaining(at(1600)), 2);
        // Instance 1 pushes them at 2.5 s; instance 0 learns of them at its exchange after.
        exchange_until(&mut store, &policies, at(2000));
        assert_eq!(budget(&policies[0]).remaining(at(2000)), 4);
        exchange_until(&mut store, &policies, at(3000));
        assert_eq!(budget(&policies[0]).remaining(at(3000)), 2);
        assert_eq!(budget(&policies[0]).fleet_share(at(3000)), Some(1));
        // Merges stay valid for three intervals; an instance that stops exchanging then
        // decides alone.
        assert_eq!(budget(&policies[0]).remaining(at(5999)), 2);
        assert_eq!(budget(&policies[0]).remaining(at(6000)), 4);
        assert_eq!(budget(&policies[0]).fleet_share(at(6000)), None);
    }

    #[test]
    fn instances_split_a_budget_while_they_exchanged_within_three_intervals() {
        let policies = fleet(3);
        let mut store = FleetStore::new(&policies, secs(1)).budget.unwrap();
        let stale = 3_000_000_000;
        let instances = |p: &Policy, now: Instant| budget(p).fleet(now).unwrap().instances;
        store.exchange(0, at(0), budget(&policies[0]), 0, stale);
        assert_eq!(instances(&policies[0], at(0)), 1, "only itself so far");
        store.exchange(1, at(100), budget(&policies[1]), 0, stale);
        store.exchange(2, at(200), budget(&policies[2]), 0, stale);
        assert_eq!(instances(&policies[2], at(200)), 3);
        // Instance 0 last exchanged at 0 ms: it counts until 3 s, then no longer.
        store.exchange(1, at(3000), budget(&policies[1]), 3, stale);
        assert_eq!(instances(&policies[1], at(3000)), 3);
        store.exchange(1, at(3001), budget(&policies[1]), 3, stale);
        assert_eq!(instances(&policies[1], at(3001)), 2);
    }

    #[test]
    fn draws_differ_between_instances_and_rounds_and_stay_in_range() {
        let by_instance: std::collections::BTreeSet<u32> =
            (0..100).map(|i| ticket(i, 7, 1000)).collect();
        assert!(by_instance.len() > 90, "{}", by_instance.len());
        let by_round: std::collections::BTreeSet<u32> =
            (0..100).map(|r| ticket(3, r, 1000)).collect();
        assert!(by_round.len() > 90, "{}", by_round.len());
        assert!((0..100).all(|r| ticket(5, r, 3) < 3));
        assert_eq!(ticket(5, 1, 0), 0);
        assert_eq!(ticket(5, 1, 1), 0);
        assert_eq!(ticket(42, 9, 100), ticket(42, 9, 100));
    }

    #[test]
    fn an_open_is_published_and_followed_at_the_next_exchanges() {
        let policies = fleet(3);
        let mut store = FleetStore::new(&policies, secs(1));
        exchange_until(&mut store, &policies, at(700));
        let b0 = breaker(&policies[0]);
        for _ in 0..10 {
            let p = b0.try_acquire(at(800)).unwrap();
            b0.record(at(800), p, BreakerOutcome::Failure(ErrorClass::ServerError));
        }
        assert_eq!(b0.state(), CircuitState::Open);
        // Instance 0 publishes at 1 s; 1 and 2 follow at 1.33 s and 1.67 s.
        let x = store.exchange(at(1000), &policies);
        assert_eq!((x.instance, x.followed, x.tripped), (0, None, false));
        let x = store.exchange(Instant::from_nanos(store.next_at()), &policies);
        assert_eq!((x.instance, x.followed), (1, Some(Transition::Opened)));
        let x = store.exchange(Instant::from_nanos(store.next_at()), &policies);
        assert_eq!((x.instance, x.followed), (2, Some(Transition::Opened)));
        let until = b0.snapshot(at(1000)).open_until;
        for p in &policies {
            assert_eq!(breaker(p).snapshot(at(1700)).open_until, until);
        }
        // Following is not published again, and nothing is followed twice.
        let seq = store.breaker.as_ref().unwrap().seq;
        for _ in 0..3 {
            let x = store.exchange(Instant::from_nanos(store.next_at()), &policies);
            assert_eq!(x.followed, None);
        }
        assert_eq!(store.breaker.as_ref().unwrap().seq, seq);
    }

    #[test]
    fn the_fleets_failures_trip_a_breaker_at_the_merge() {
        let policies = fleet(2);
        let mut store = FleetStore::new(&policies, secs(1));
        // Either alone is below the minimum of 10 calls.
        let b1 = breaker(&policies[1]);
        for _ in 0..6 {
            let p = b1.try_acquire(at(100)).unwrap();
            b1.record(at(100), p, BreakerOutcome::Failure(ErrorClass::ServerError));
        }
        let b0 = breaker(&policies[0]);
        for _ in 0..4 {
            let p = b0.try_acquire(at(100)).unwrap();
            b0.record(at(100), p, BreakerOutcome::Failure(ErrorClass::ServerError));
        }
        assert_eq!(b0.state(), CircuitState::Closed);
        // Instance 0 pushes its 4 at 0 ms; instance 1 sees them at 500 ms.
        assert!(!store.exchange(at(0), &policies).tripped);
        let x = store.exchange(at(500), &policies);
        assert!(x.tripped, "6 own + 4 others = 10 failures of 10 calls");
        assert_eq!(b1.state(), CircuitState::Open);
        // Instance 0 sees the same crossing at its own next exchange, one interval later.
        let x = store.exchange(at(1000), &policies);
        assert_eq!((x.instance, x.tripped), (0, true));
        assert_eq!(b0.state(), CircuitState::Open);
    }
}
