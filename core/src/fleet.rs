//! Sharing breakers and budgets between processes: what a remote store needs.
//!
//! # Why
//! A [`Budget`] or a [`CircuitBreaker`] kept by each process alone does not stop a fleet from
//! hammering a sick dependency: each of 200 instances sees 1/200 of the evidence and spends
//! its own budget, so the fleet retries 200 budgets' worth and each breaker trips late, if at
//! all. Sharing the evidence makes the fleet act as one client.
//!
//! # The exchange
//! The core keeps deciding from local memory: admission, recording and withdrawal never wait
//! for a network. A store (the `redress-redis` crate, or your own) runs an exchange per shared
//! object, off the call path, every sync interval:
//!
//! 1. [`Budget::snapshot`] / [`CircuitBreaker::snapshot`] give the object's **own** counts per
//!    time bucket (and the breaker's state). The store records them as this instance's
//!    counts: absolute values, not increments, so a push repeated after a lost reply
//!    changes nothing.
//! 2. The store reads the fleet's totals over the window minus this instance's own,
//!    leaving what **the others** did.
//! 3. [`Budget::merge`] / [`CircuitBreaker::merge`] install the others' counts until a
//!    `valid_until` instant. Until then every decision counts own + others: a withdrawal must
//!    fit the fleet's spending, and a failure-rate breaker trips on the fleet's failure rate
//!    (a merge that already crosses it opens the breaker at once). After `valid_until` the
//!    object decides from its own counts alone, as if it were not shared: a store that cannot
//!    reach its server fails open to local decisions by doing nothing.
//!
//!    A budget also splits what the fleet has left: with `instances` instances sharing it,
//!    each may withdraw only its share of the remainder until the next merge (`remaining /
//!    instances`, plus one unit for the instances whose `ticket` draws the division's
//!    remainder). Without the split, every instance would see the whole remainder at each
//!    refill of the window, and when an outage starts, and spend it again, `instances`
//!    times over, before the next exchange told it about the others. The split counts every
//!    instance, busy or idle: a few busy instances get only their shares per exchange (the
//!    rest stays in the budget and is split again at the next one), which is the price of
//!    never handing out the same remainder twice.
//! 4. Breakers only: when another instance opens or closes its breaker, the store passes that
//!    decision to [`CircuitBreaker::follow`], so every instance follows within one interval.
//!    A transition made by `follow` must not be published again: it is not new evidence.
//!
//! **Consistency:** eventually consistent within one exchange. Between exchanges an instance
//! does not see what the others did; the split keeps the fleet's withdrawals per round of
//! exchanges to about what was left (exactly, when the instances' draws are distinct). What
//! it cannot bound is spending before an instance's first merge, and by instances the store
//! did not yet count.
//!
//! **Consecutive breakers** share only open/close decisions, not counts: "`n` failures in a
//! row" has no fleet-wide meaning (one instance's success does not interrupt another's run),
//! and summing every instance's current run would trip a healthy fleet on scattered blips.
//! Use [`CircuitBreaker::failure_rate`] to trip on the fleet's evidence.
//!
//! ```
//! use redress::fleet::{FleetBudgetCounts, FleetDirective};
//! use redress::{Budget, CircuitBreaker, ErrorClass, Instant};
//! use std::time::Duration;
//!
//! let budget = Budget::rolling(10, Duration::from_secs(10)).build()?;
//! let now = Instant::from_secs(1);
//! // The rest of the fleet already retried 9 times in the window.
//! let others = FleetBudgetCounts { withdrawn: 9, ..FleetBudgetCounts::default() };
//! budget.merge(now, others, now + Duration::from_secs(3));
//! assert!(budget.withdraw(now, ErrorClass::Transient));
//! assert!(!budget.withdraw(now, ErrorClass::Transient), "the fleet's 10 are spent");
//! // Once the fleet's counts are stale, the budget decides alone again.
//! assert!(budget.withdraw(now + Duration::from_secs(3), ErrorClass::Transient));
//!
//! let breaker = CircuitBreaker::failure_rate(0.5, 20, Duration::from_secs(10)).build()?;
//! // Another instance opened its breaker until t = 31 s: this one follows.
//! breaker.follow(now, FleetDirective::Open { until: Instant::from_secs(31) });
//! assert!(breaker.try_acquire(now).is_err());
//! # Ok::<(), redress::ConfigError>(())
//! ```
//!
//! [`Budget`]: crate::Budget
//! [`Budget::snapshot`]: crate::Budget::snapshot
//! [`Budget::merge`]: crate::Budget::merge
//! [`CircuitBreaker`]: crate::CircuitBreaker
//! [`CircuitBreaker::snapshot`]: crate::CircuitBreaker::snapshot
//! [`CircuitBreaker::merge`]: crate::CircuitBreaker::merge
//! [`CircuitBreaker::follow`]: crate::CircuitBreaker::follow
//! [`CircuitBreaker::failure_rate`]: crate::CircuitBreaker::failure_rate

use core::time::Duration;

use crate::breaker::{CLOSED, CircuitBreaker, CircuitState, OPEN, Transition, TripMode, trips};
use crate::budget::{Budget, BudgetKind};
use crate::sync::Ordering;
use crate::time::Instant;

/// A budget's own counts, as [`Budget::snapshot`] reports them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BudgetSnapshot {
    /// The budget's window.
    pub window: Duration,
    /// The width of one time bucket.
    pub bucket_width: Duration,
    /// The non-empty buckets of the current window, oldest first.
    pub buckets: Vec<BudgetBucket>,
}

/// One time bucket of a [`BudgetSnapshot`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BudgetBucket {
    /// Where the bucket starts.
    pub start: Instant,
    /// Cost units withdrawn in it.
    pub withdrawn: u64,
    /// First attempts deposited in it (ratio budgets).
    pub deposits: u64,
}

/// What the rest of a fleet withdrew and deposited over a budget's window, and how many
/// instances split what is left.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FleetBudgetCounts {
    /// Cost units the others withdrew.
    pub withdrawn: u64,
    /// First attempts the others deposited (ratio budgets).
    pub deposits: u64,
    /// How many instances share the budget, this one included; 0 or 1 when unknown or
    /// alone (no split).
    pub instances: u32,
    /// This instance's draw for the split's remainder, in `0..instances`. A store should
    /// spread draws over the instances and change them every exchange, so the remainder
    /// goes to different instances in turn; with distinct draws it is handed out exactly
    /// (`redress-redis` hashes the instance and the round, so about exactly).
    pub ticket: u32,
}

/// A breaker's own state and counts, as [`CircuitBreaker::snapshot`] reports them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BreakerSnapshot {
    /// The current state.
    pub state: CircuitState,
    /// How many transitions the breaker has made; a change since the last snapshot means
    /// the state changed (perhaps more than once) in between.
    pub generation: u64,
    /// While open: when it may admit a probe.
    pub open_until: Option<Instant>,
    /// The window failures are counted over.
    pub window: Duration,
    /// Failure-rate mode: the width of one time bucket; `None` in consecutive mode.
    pub bucket_width: Option<Duration>,
    /// Failure-rate mode: the non-empty buckets of the current window, oldest first. The
    /// counts restart at every transition.
    pub buckets: Vec<BreakerBucket>,
}

/// One time bucket of a [`BreakerSnapshot`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerBucket {
    /// Where the bucket starts.
    pub start: Instant,
    /// Tripping failures recorded in it.
    pub failures: u64,
    /// Other outcomes recorded in it.
    pub successes: u64,
}

/// What the rest of a fleet recorded over a failure-rate breaker's window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FleetBreakerCounts {
    /// Tripping failures the others recorded.
    pub failures: u64,
    /// Calls the others recorded, failures included.
    pub calls: u64,
}

/// A breaker decision another instance published.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FleetDirective {
    /// Another instance opened its breaker; stay open until `until`.
    Open {
        /// When the breaker may admit probes again (on this instance's time line).
        until: Instant,
    },
    /// Another instance's probes succeeded and it closed its breaker.
    Close,
}

/// A budget's share of what the fleet had left at the last merge.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Share {
    /// Cost units this instance may withdraw until the next merge.
    pub(crate) allowance: u64,
    /// Cost units it withdrew since the merge.
    pub(crate) spent: u64,
}

/// Counts from elsewhere, current until an instant.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Remote<T> {
    counts: T,
    until: u64,
}

impl<T: Copy> Remote<T> {
    /// The counts if they are still current at `now` (nanos).
    pub(crate) fn current(remote: &Option<Self>, now: u64) -> Option<T> {
        remote.as_ref().filter(|r| now < r.until).map(|r| r.counts)
    }
}

/// Two lists of `(bucket start, count)` (each sorted by start) as one list of
/// `(start, first count, second count)`, sorted by start.
fn join<'a>(
    a: &'a [(u64, u64)],
    b: &'a [(u64, u64)],
) -> impl Iterator<Item = (Instant, u64, u64)> + 'a {
    let mut starts: Vec<u64> = a.iter().chain(b).map(|&(start, _)| start).collect();
    starts.sort_unstable();
    starts.dedup();
    let count = |list: &[(u64, u64)], start: u64| {
        list.iter()
            .find(|&&(s, _)| s == start)
            .map_or(0, |&(_, n)| n)
    };
    starts
        .into_iter()
        .map(move |start| (Instant::from_nanos(start), count(a, start), count(b, start)))
}

impl Budget {
    /// The budget's own counts per time bucket over the window ending at `now`; what a
    /// remote store pushes. Counts from [`merge`](Self::merge) are not included.
    pub fn snapshot(&self, now: Instant) -> BudgetSnapshot {
        let ledger = self.lock();
        let withdrawn = ledger.withdrawn.live(now);
        let width = ledger.withdrawn.width();
        drop(ledger);
        let deposits = self.deposits.as_ref().map(|d| d.live(now));
        let buckets = join(&withdrawn, deposits.as_deref().unwrap_or_default())
            .map(|(start, withdrawn, deposits)| BudgetBucket {
                start,
                withdrawn,
                deposits,
            })
            .collect();
        let window = match self.kind() {
            BudgetKind::Rolling { window, .. } | BudgetKind::Ratio { window, .. } => window,
        };
        BudgetSnapshot {
            window,
            bucket_width: Duration::from_nanos(width),
            buckets,
        }
    }

    /// Installs what the rest of the fleet withdrew and deposited over the window, to be
    /// counted by every decision before `valid_until`; afterwards the budget decides from
    /// its own counts alone. Replaces the previous merge.
    ///
    /// With `others.instances` of 2 or more, withdrawals until the next merge are also held
    /// to this instance's share of what the fleet has left at `now` (see the
    /// [module docs](self)).
    pub fn merge(&self, now: Instant, others: FleetBudgetCounts, valid_until: Instant) {
        let mut ledger = self.lock();
        if now >= valid_until {
            ledger.fleet = None;
            ledger.share = None;
            return;
        }
        let at = self.clamped(now);
        let spent = ledger.withdrawn.sum(at) + others.withdrawn;
        let remaining = self
            .capacity(self.local_deposits(at) + others.deposits)
            .saturating_sub(spent);
        ledger.share = (others.instances >= 2).then(|| {
            let n = u64::from(others.instances);
            let extra = u64::from(others.ticket) % n < remaining % n;
            Share {
                allowance: remaining / n + u64::from(extra),
                spent: 0,
            }
        });
        ledger.fleet = Some(Remote {
            counts: others,
            until: valid_until.as_nanos(),
        });
    }

    /// What this instance may still withdraw of its share before the next merge, if a
    /// merge that splits the remainder is current at `now`.
    pub fn fleet_share(&self, now: Instant) -> Option<u64> {
        let ledger = self.lock();
        Remote::current(&ledger.fleet, now.as_nanos())?;
        ledger.share.map(|s| s.allowance.saturating_sub(s.spent))
    }

    /// Drops the fleet's counts: decisions use the budget's own counts from now on.
    pub fn forget_fleet(&self) {
        let mut ledger = self.lock();
        ledger.fleet = None;
        ledger.share = None;
    }

    /// The fleet's counts, if a merge is current at `now`.
    pub fn fleet(&self, now: Instant) -> Option<FleetBudgetCounts> {
        Remote::current(&self.lock().fleet, now.as_nanos())
    }
}

impl CircuitBreaker {
    /// The breaker's own state, and its counts per time bucket (failure-rate mode) over the
    /// window ending at `now`; what a remote store pushes.
    pub fn snapshot(&self, now: Instant) -> BreakerSnapshot {
        let inner = self.lock();
        let w = self.word.load(Ordering::Acquire);
        let window = match self.config().mode {
            TripMode::FailureRate { window, .. } | TripMode::Consecutive { window, .. } => window,
        };
        let (bucket_width, failures) = match self.config().mode {
            TripMode::FailureRate { .. } => (
                Some(Duration::from_nanos(inner.failures.width())),
                inner.failures.live(now),
            ),
            TripMode::Consecutive { .. } => (None, Vec::new()),
        };
        let successes = match self.config().mode {
            TripMode::FailureRate { .. } => self.successes.live(now),
            TripMode::Consecutive { .. } => Vec::new(),
        };
        drop(inner);
        let buckets = join(&failures, &successes)
            .map(|(start, failures, successes)| BreakerBucket {
                start,
                failures,
                successes,
            })
            .collect();
        let state = match w & 3 {
            CLOSED => CircuitState::Closed,
            OPEN => CircuitState::Open,
            _ => CircuitState::HalfOpen,
        };
        BreakerSnapshot {
            state,
            generation: w >> 2,
            open_until: (state == CircuitState::Open)
                .then(|| Instant::from_nanos(self.open_until.load(Ordering::Acquire))),
            window,
            bucket_width,
            buckets,
        }
    }

    /// Installs what the rest of the fleet recorded over the window (failure-rate mode), to
    /// be counted before `valid_until`; afterwards the breaker decides from its own counts.
    ///
    /// Returns [`Transition::Opened`] if the fleet's failures (own + others) already cross the
    /// threshold while closed: the breaker opens at once, as it would on a local failure. In
    /// consecutive mode, or while not closed, the counts are not installed and nothing
    /// happens.
    pub fn merge(
        &self,
        now: Instant,
        others: FleetBreakerCounts,
        valid_until: Instant,
    ) -> Option<Transition> {
        let TripMode::FailureRate {
            ratio,
            min_throughput,
            ..
        } = self.config().mode
        else {
            return None;
        };
        let mut inner = self.lock();
        let now = inner.advance(now);
        if self.word.load(Ordering::Acquire) & 3 != CLOSED {
            return None;
        }
        let remote = Remote {
            counts: others,
            until: valid_until.as_nanos(),
        };
        inner.fleet = Some(remote);
        let at = Instant::from_nanos(now);
        let others = Remote::current(&inner.fleet, now)?;
        let own_failures = inner.failures.sum(at);
        let fails = own_failures + others.failures;
        let total = own_failures + self.successes.sum(at) + others.calls;
        if trips(ratio, min_throughput, fails, total) {
            self.open(&mut inner, now);
            Some(Transition::Opened)
        } else {
            None
        }
    }

    /// Applies a decision another instance published.
    ///
    /// `Open { until }` opens a closed or half-open breaker until `until` (or extends an open
    /// one's recovery to it); an `until` already past does nothing. `Close` closes an open or
    /// half-open breaker. Returns the transition made, if any. Permits handed out before it
    /// are ignored when recorded, as after any transition.
    pub fn follow(&self, now: Instant, directive: FleetDirective) -> Option<Transition> {
        let mut inner = self.lock();
        let now = inner.advance(now);
        let state = self.word.load(Ordering::Acquire) & 3;
        match directive {
            FleetDirective::Open { until } => {
                let until = until.as_nanos();
                if until <= now {
                    return None;
                }
                if state == OPEN {
                    self.open_until.fetch_max(until, Ordering::AcqRel);
                    return None;
                }
                self.open_until.store(until, Ordering::Release);
                self.set_state(&mut inner, OPEN, now);
                Some(Transition::Opened)
            }
            FleetDirective::Close => {
                if state == CLOSED {
                    return None;
                }
                self.set_state(&mut inner, CLOSED, now);
                Some(Transition::Closed)
            }
        }
    }

    /// The fleet's counts, if a merge is current at `now` (failure-rate mode, closed).
    pub fn fleet(&self, now: Instant) -> Option<FleetBreakerCounts> {
        Remote::current(&self.lock().fleet, now.as_nanos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::BreakerOutcome;
    use crate::class::ErrorClass;
    use proptest::prelude::*;

    const T: ErrorClass = ErrorClass::Transient;

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn budget_others(withdrawn: u64, deposits: u64) -> FleetBudgetCounts {
        FleetBudgetCounts {
            withdrawn,
            deposits,
            ..FleetBudgetCounts::default()
        }
    }

    fn split(withdrawn: u64, instances: u32, ticket: u32) -> FleetBudgetCounts {
        FleetBudgetCounts {
            withdrawn,
            deposits: 0,
            instances,
            ticket,
        }
    }

    #[test]
    fn each_instance_gets_its_share_of_what_is_left_until_the_next_merge() {
        // 20 per window, 10 spent by the others: 10 left for 4 instances, 2 each and one
        // more for the two whose draws fall under the remainder (10 % 4 = 2).
        let allowances: Vec<u64> = (0..4)
            .map(|ticket| {
                let b = Budget::rolling(20, secs(10)).build().unwrap();
                b.merge(at(0), split(10, 4, ticket), at(3000));
                b.fleet_share(at(0)).unwrap()
            })
            .collect();
        assert_eq!(allowances, vec![3, 3, 2, 2]);

        let b = Budget::rolling(20, secs(10)).build().unwrap();
        b.merge(at(0), split(10, 4, 3), at(3000));
        assert!(b.withdraw(at(1), T));
        assert!(b.withdraw(at(2), T));
        assert!(
            !b.withdraw(at(3), T),
            "its share of 2 is spent; 8 are left for the others"
        );
        assert_eq!(b.remaining(at(3)), 8);
        // The next merge splits again what is left: 20 − 2 own − 14 others = 4, by 2.
        b.merge(at(1000), split(14, 2, 0), at(4000));
        assert_eq!(b.fleet_share(at(1000)), Some(2));
        assert!(b.withdraw(at(1001), T));
        assert!(b.withdraw(at(1002), T));
        assert!(!b.withdraw(at(1003), T));
        // Stale: the budget decides alone, without a share.
        assert_eq!(b.fleet_share(at(4000)), None);
        assert!(b.withdraw(at(4000), T));
        // One instance, or an unknown number: no split.
        let c = Budget::rolling(20, secs(10)).build().unwrap();
        c.merge(at(0), split(10, 1, 0), at(3000));
        assert_eq!(c.fleet_share(at(0)), None);
        assert_eq!((0..20).filter(|_| c.withdraw(at(0), T)).count(), 10);
    }

    #[test]
    fn a_merged_budget_counts_the_fleets_spending_until_it_goes_stale() {
        let b = Budget::rolling(5, secs(10)).build().unwrap();
        b.merge(at(0), budget_others(4, 0), at(3000));
        assert_eq!(b.remaining(at(0)), 1);
        assert!(b.withdraw(at(0), T));
        assert!(!b.withdraw(at(1000), T));
        assert_eq!(b.fleet(at(2999)), Some(budget_others(4, 0)));
        // Stale: the budget decides from its own one withdrawal.
        assert_eq!(b.fleet(at(3000)), None);
        assert_eq!(b.remaining(at(3000)), 4);
        b.merge(at(3000), budget_others(4, 0), at(6000));
        b.forget_fleet();
        assert_eq!(b.remaining(at(3000)), 4);
        // A merge that is stale on arrival is not installed.
        b.merge(at(3000), budget_others(4, 0), at(3000));
        assert_eq!(b.fleet(at(0)), None);
    }

    #[test]
    fn the_fleets_first_attempts_raise_a_ratio_budget() {
        let b = Budget::ratio(0.5, 0.0, secs(10)).build().unwrap();
        b.deposit(at(0));
        b.deposit(at(0));
        assert_eq!(b.remaining(at(0)), 1);
        b.merge(at(0), budget_others(3, 10), at(1000));
        // (2 own + 10 others) × 0.5 = 6, minus 3 the others spent.
        assert_eq!(b.remaining(at(0)), 3);
    }

    #[test]
    fn a_budget_snapshot_holds_its_own_counts_per_bucket() {
        let b = Budget::ratio(1.0, 0.0, secs(10)).build().unwrap();
        for _ in 0..3 {
            b.deposit(at(0));
        }
        b.deposit(at(2500));
        assert!(b.withdraw(at(2500), T));
        b.merge(at(2500), budget_others(100, 100), at(9000));
        let s = b.snapshot(at(2500));
        assert_eq!(s.bucket_width, secs(1));
        assert_eq!(
            s.buckets,
            vec![
                BudgetBucket {
                    start: at(0),
                    withdrawn: 0,
                    deposits: 3
                },
                BudgetBucket {
                    start: at(2000),
                    withdrawn: 1,
                    deposits: 1
                },
            ]
        );
        // The window moved past both buckets.
        assert!(b.snapshot(at(60_000)).buckets.is_empty());
    }

    fn rate_breaker() -> CircuitBreaker {
        CircuitBreaker::failure_rate(0.5, 10, secs(10))
            .recovery(secs(5))
            .build()
            .unwrap()
    }

    fn record(b: &CircuitBreaker, now: Instant, o: BreakerOutcome) -> Option<Transition> {
        let p = b.try_acquire(now).unwrap();
        b.record(now, p, o)
    }

    #[test]
    fn a_local_failure_trips_on_the_fleets_failure_rate() {
        let b = rate_breaker();
        // Alone, 1 failure of 2 calls is below the minimum throughput of 10.
        record(&b, at(0), BreakerOutcome::Success);
        record(&b, at(0), BreakerOutcome::Failure(T));
        b.merge(
            at(0),
            FleetBreakerCounts {
                failures: 4,
                calls: 7,
            },
            at(3000),
        );
        assert_eq!(b.state(), CircuitState::Closed, "5 of 9 calls, still < 10");
        assert_eq!(
            record(&b, at(1), BreakerOutcome::Failure(T)),
            Some(Transition::Opened),
            "6 of 10 failed"
        );
        assert_eq!(
            b.fleet(at(1)),
            None,
            "a transition drops the fleet's counts"
        );
    }

    #[test]
    fn a_merge_that_crosses_the_threshold_opens_at_once() {
        let b = rate_breaker();
        record(&b, at(0), BreakerOutcome::Failure(T));
        let others = FleetBreakerCounts {
            failures: 9,
            calls: 12,
        };
        assert_eq!(b.merge(at(10), others, at(3000)), Some(Transition::Opened));
        assert_eq!(b.try_acquire(at(10)).unwrap_err().until, at(5010));
        // While open, merges change nothing.
        assert_eq!(b.merge(at(20), others, at(3000)), None);
        assert_eq!(b.fleet(at(20)), None);
        // Stale counts are not counted.
        let c = rate_breaker();
        assert_eq!(c.merge(at(10), others, at(10)), None);
        assert_eq!(
            record(&c, at(11), BreakerOutcome::Failure(T)),
            None,
            "1 of 1 call, the others' are stale"
        );
    }

    #[test]
    fn a_consecutive_breaker_ignores_counts_but_follows_decisions() {
        let b = CircuitBreaker::consecutive(3, secs(10)).build().unwrap();
        let others = FleetBreakerCounts {
            failures: 100,
            calls: 100,
        };
        assert_eq!(b.merge(at(0), others, at(3000)), None);
        assert_eq!(b.fleet(at(0)), None);
        assert_eq!(record(&b, at(1), BreakerOutcome::Failure(T)), None);
        assert_eq!(
            b.follow(at(2), FleetDirective::Open { until: at(4000) }),
            Some(Transition::Opened)
        );
        assert_eq!(b.try_acquire(at(3)).unwrap_err().until, at(4000));
    }

    #[test]
    fn following_opens_extends_and_closes() {
        let b = rate_breaker();
        let stale = b.try_acquire(at(0)).unwrap();
        assert_eq!(
            b.follow(at(0), FleetDirective::Open { until: at(0) }),
            None,
            "an until already past is ignored"
        );
        assert_eq!(
            b.follow(at(0), FleetDirective::Open { until: at(1000) }),
            Some(Transition::Opened)
        );
        // A permit from before the transition cannot move it.
        assert_eq!(b.record(at(1), stale, BreakerOutcome::Success), None);
        assert_eq!(
            b.follow(at(1), FleetDirective::Open { until: at(2000) }),
            None,
            "extends, no new transition"
        );
        assert_eq!(
            b.follow(at(1), FleetDirective::Open { until: at(1500) }),
            None,
            "never shortens"
        );
        assert_eq!(b.try_acquire(at(1999)).unwrap_err().until, at(2000));
        let g = b.generation();
        assert_eq!(
            b.follow(at(5), FleetDirective::Close),
            Some(Transition::Closed)
        );
        assert_eq!(b.generation(), g + 1);
        assert!(b.try_acquire(at(6)).is_ok());
        assert_eq!(b.follow(at(7), FleetDirective::Close), None);
        // A half-open breaker follows a close too.
        b.follow(at(10), FleetDirective::Open { until: at(20) });
        let probe = b.try_acquire(at(20)).unwrap();
        assert_eq!(b.state(), CircuitState::HalfOpen);
        assert_eq!(
            b.follow(at(21), FleetDirective::Close),
            Some(Transition::Closed)
        );
        drop(probe);
        assert_eq!(b.state(), CircuitState::Closed);
    }

    #[test]
    fn a_breaker_snapshot_reports_state_generation_and_counts() {
        let b = rate_breaker();
        record(&b, at(0), BreakerOutcome::Failure(T));
        record(&b, at(1500), BreakerOutcome::Success);
        record(&b, at(1500), BreakerOutcome::Success);
        let s = b.snapshot(at(1500));
        assert_eq!(s.state, CircuitState::Closed);
        assert_eq!(s.generation, 0);
        assert_eq!(s.open_until, None);
        assert_eq!(s.bucket_width, Some(secs(1)));
        assert_eq!(
            s.buckets,
            vec![
                BreakerBucket {
                    start: at(0),
                    failures: 1,
                    successes: 0
                },
                BreakerBucket {
                    start: at(1000),
                    failures: 0,
                    successes: 2
                },
            ]
        );
        b.follow(at(1600), FleetDirective::Open { until: at(9000) });
        let s = b.snapshot(at(1600));
        assert_eq!(
            (s.state, s.generation, s.open_until),
            (CircuitState::Open, 1, Some(at(9000)))
        );
        assert!(s.buckets.is_empty(), "counts restart at a transition");
        let c = CircuitBreaker::consecutive(2, secs(1)).build().unwrap();
        record(&c, at(0), BreakerOutcome::Failure(T));
        let s = c.snapshot(at(0));
        assert_eq!((s.bucket_width, s.buckets.len()), (None, 0));
    }

    proptest! {
        /// With the fleet's spending merged, one instant admits exactly what the window's cap
        /// leaves after the others' and the own withdrawals: never more.
        #[test]
        fn a_merged_budget_never_admits_beyond_the_fleet_cap(
            cap in 0u32..50,
            own in 0u32..60,
            others in 0u64..80,
        ) {
            let b = Budget::rolling(cap, secs(10)).build().unwrap();
            let mut granted = 0u64;
            for _ in 0..own {
                granted += u64::from(b.withdraw(at(1), T));
            }
            b.merge(at(1), budget_others(others, 0), at(5000));
            let mut more = 0u64;
            for _ in 0..100 {
                more += u64::from(b.withdraw(at(2), T));
            }
            prop_assert_eq!(granted, u64::from(own.min(cap)));
            prop_assert_eq!(more, u64::from(cap).saturating_sub(granted + others));
            let s = b.snapshot(at(2));
            prop_assert_eq!(s.buckets.iter().map(|b| b.withdrawn).sum::<u64>(), granted + more);
        }

        /// Instances holding distinct draws split exactly what the fleet has left: no unit is
        /// lost to rounding and none is handed out twice.
        #[test]
        fn distinct_draws_split_exactly_what_is_left(
            cap in 0u32..500,
            others in 0u64..600,
            instances in 2u32..64,
        ) {
            let mut total = 0u64;
            for ticket in 0..instances {
                let b = Budget::rolling(cap, secs(10)).build().unwrap();
                b.merge(at(0), split(others, instances, ticket), at(3000));
                let mut got = 0u64;
                while b.withdraw(at(1), T) {
                    got += 1;
                }
                prop_assert_eq!(Some(0), b.fleet_share(at(1)));
                total += got;
            }
            prop_assert_eq!(total, u64::from(cap).saturating_sub(others));
        }

        /// Following any sequence of decisions leaves the breaker in the last one's state
        /// (an open one until its latest until), and never panics.
        #[test]
        fn following_decisions_ends_in_the_last_ones_state(
            steps in proptest::collection::vec((any::<bool>(), 1u64..10_000), 1..20),
        ) {
            let b = rate_breaker();
            let mut until = 0u64;
            let mut open = false;
            for (i, &(close, u)) in steps.iter().enumerate() {
                let now = at(i as u64);
                if close {
                    b.follow(now, FleetDirective::Close);
                    open = false;
                } else if u > i as u64 {
                    b.follow(now, FleetDirective::Open { until: at(u) });
                    until = if open { until.max(u) } else { u };
                    open = true;
                }
            }
            if open {
                prop_assert_eq!(b.state(), CircuitState::Open);
                prop_assert_eq!(b.snapshot(at(0)).open_until, Some(at(until)));
            } else {
                prop_assert_eq!(b.state(), CircuitState::Closed);
            }
        }
    }
}
