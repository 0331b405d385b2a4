//! Retry budgets: a shared cap on retries that stops retry storms.
//!
//! # Why budgets
//! Per-call caps (`max_attempts`) bound what one call can do, not what a fleet of calls does
//! together. When a dependency degrades, every in-flight call fails and retries at once: with
//! `max_attempts = 6` the dependency suddenly sees up to six times its normal load, exactly
//! when it can least take it, and the outage feeds itself. A budget is shared by many calls
//! (and may be shared by many policies): each retry must withdraw from it, and when it is
//! empty the call stops with `BudgetExhausted` instead of retrying. First attempts are never
//! refused by a budget; only the *extra* load is capped.
//!
//! Two kinds, both with fixed memory regardless of traffic (time buckets, not a list of
//! timestamps):
//! - [`Budget::rolling`]: at most `max_retries` retries in any sliding `window` (the cap of
//!   the Python original).
//! - [`Budget::ratio`]: retries may be at most `ratio` of the first attempts seen in the
//!   window, plus a floor of `min_per_second` retries per second so that a quiet service can
//!   still retry (Finagle's and tower's `TpsBudget` model). Every call deposits one unit when
//!   it starts.
//!
//! Beyond both: a per-class *cost*. A RateLimit retry can be made cheap, a Transient one dear,
//! and a class can be made unaffordable (never retried through this budget).
//!
//! The budget never reads a clock: every method takes `now`. Withdrawals serialise on a
//! small lock (only failing calls withdraw); deposits are lock-free.
//!
//! # Across processes
//! One budget can cap a whole fleet's retries: [`crate::fleet`] describes the exchange
//! ([`snapshot`](Budget::snapshot), [`merge`](Budget::merge)) and `redress-redis` runs it
//! over Redis. Calls still decide from local memory.

use core::time::Duration;

use crate::class::{ClassTable, ErrorClass};
use crate::error::{ConfigError, ensure};
use crate::fleet::Remote;
use crate::sync::{AtomicU64, Contended, Mutex, MutexGuard, Ordering};
use crate::time::{Instant, duration_nanos};
use crate::window::Buckets;

/// How a budget refills.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum BudgetKind {
    /// At most `max_retries` cost units in any sliding `window`.
    Rolling {
        /// Cost units allowed per window.
        max_retries: u32,
        /// The window.
        window: Duration,
    },
    /// Cost units withdrawn in the window may be at most `ratio` × deposits in the window
    /// plus `min_per_second` × the window's length in seconds.
    Ratio {
        /// Retries allowed per first attempt, in `[0, 1000]`.
        ratio: f64,
        /// Retries per second always allowed.
        min_per_second: f64,
        /// The window.
        window: Duration,
    },
}

/// A builder of a [`Budget`].
#[derive(Clone, Debug)]
#[must_use]
pub struct BudgetBuilder {
    kind: BudgetKind,
    costs: ClassTable<Option<u32>>,
    buckets: u32,
}

impl BudgetBuilder {
    /// What one retry of `class` withdraws (default 1; 0 makes its retries free).
    pub fn cost(mut self, class: ErrorClass, cost: u32) -> Self {
        self.costs[class] = Some(cost);
        self
    }

    /// Retries of `class` are never allowed through this budget.
    pub fn never(mut self, class: ErrorClass) -> Self {
        self.costs[class] = None;
        self
    }

    /// How many time buckets the window is kept in (default 10, 1..=1000). More buckets
    /// follow the window more closely.
    pub fn buckets(mut self, n: u32) -> Self {
        self.buckets = n;
        self
    }

    /// Validates and builds.
    ///
    /// # Errors
    /// A [`ConfigError`] for a zero window, a window shorter than 1 ms per bucket, a bucket
    /// count outside 1..=1000, or a ratio or floor that is negative, not finite or above
    /// 1000.
    pub fn build(self) -> Result<Budget, ConfigError> {
        let window = match self.kind {
            BudgetKind::Rolling { window, .. } => window,
            BudgetKind::Ratio {
                ratio,
                min_per_second,
                window,
            } => {
                ensure(
                    ratio.is_finite() && (0.0..=1000.0).contains(&ratio),
                    "ratio",
                    ratio,
                    "must be a finite number within [0, 1000]",
                )?;
                ensure(
                    min_per_second.is_finite() && (0.0..=1e9).contains(&min_per_second),
                    "min_per_second",
                    min_per_second,
                    "must be a finite number within [0, 1e9]",
                )?;
                window
            }
        };
        ensure(
            !window.is_zero(),
            "window",
            window,
            "must be greater than zero",
        )?;
        ensure(
            (1..=1000).contains(&self.buckets),
            "buckets",
            self.buckets,
            "must be between 1 and 1000",
        )?;
        ensure(
            window >= Duration::from_millis(u64::from(self.buckets)),
            "window",
            window,
            "must be at least 1ms per bucket",
        )?;
        let width = duration_nanos(window).div_ceil(u64::from(self.buckets));
        // One extra bucket so the counted span always covers a whole window: the cap then
        // holds for every window, not just bucket-aligned ones.
        let len = self.buckets as usize + 1;
        let deposits =
            matches!(self.kind, BudgetKind::Ratio { .. }).then(|| Buckets::new(len, width));
        Ok(Budget {
            kind: self.kind,
            costs: self.costs,
            ledger: Contended(Mutex::new(Ledger {
                withdrawn: Buckets::new(len, width),
                fleet: None,
                share: None,
            })),
            latest: Contended(AtomicU64::new(0)),
            deposits,
        })
    }
}

/// A shared retry budget; see the [module docs](self).
///
/// Share it by `Arc` between calls and policies.
#[derive(Debug)]
pub struct Budget {
    kind: BudgetKind,
    costs: ClassTable<Option<u32>>,
    /// Written by every withdrawal, so on cache lines apart from the settings every call
    /// reads.
    pub(crate) ledger: Contended<Mutex<Ledger>>,
    /// The latest instant (nanos) a withdrawal was checked at; written under `ledger`'s
    /// lock.
    pub(crate) latest: Contended<AtomicU64>,
    pub(crate) deposits: Option<Buckets>,
}

/// What withdrawals serialise on.
#[derive(Debug)]
pub(crate) struct Ledger {
    pub(crate) withdrawn: Buckets,
    /// What the rest of a fleet spent and deposited; see [`crate::fleet`].
    pub(crate) fleet: Option<crate::fleet::Remote<crate::fleet::FleetBudgetCounts>>,
    /// This instance's share of what the fleet had left at the last merge.
    pub(crate) share: Option<crate::fleet::Share>,
}

impl Budget {
    /// At most `max_retries` retries in any sliding `window`.
    pub fn rolling(max_retries: u32, window: Duration) -> BudgetBuilder {
        Self::builder(BudgetKind::Rolling {
            max_retries,
            window,
        })
    }

    /// Retries at most `ratio` of recent first attempts, plus `min_per_second` per second,
    /// over `window` (tower's `TpsBudget` defaults are 0.2, 10/s, 10 s).
    pub fn ratio(ratio: f64, min_per_second: f64, window: Duration) -> BudgetBuilder {
        Self::builder(BudgetKind::Ratio {
            ratio,
            min_per_second,
            window,
        })
    }

    fn builder(kind: BudgetKind) -> BudgetBuilder {
        BudgetBuilder {
            kind,
            costs: ClassTable::splat(Some(1)),
            buckets: 10,
        }
    }

    /// The kind and its parameters.
    pub fn kind(&self) -> BudgetKind {
        self.kind
    }

    /// What a retry of `class` costs, `None` if it is never allowed.
    pub fn cost(&self, class: ErrorClass) -> Option<u32> {
        self.costs[class]
    }

    /// Whether calls must [`deposit`](Self::deposit) (ratio budgets only).
    pub fn wants_deposits(&self) -> bool {
        self.deposits.is_some()
    }

    /// The width of one of the budget's time buckets: the finest time it measures.
    pub fn time_grain(&self) -> Duration {
        Duration::from_nanos(self.lock().withdrawn.width())
    }

    /// Records a first attempt at `now` (feeds ratio budgets; a no-op for rolling ones).
    #[inline]
    pub fn deposit(&self, now: Instant) {
        if let Some(d) = &self.deposits {
            d.add(now, 1);
        }
    }

    /// Withdraws the cost of one retry of `class` at `now`; false if the budget cannot
    /// afford it (nothing is withdrawn then). A `now` earlier than one already withdrawn at
    /// (a caller that read its clock before another's withdrawal) is clamped to it.
    pub fn withdraw(&self, now: Instant, class: ErrorClass) -> bool {
        let Some(cost) = self.costs[class] else {
            return false;
        };
        if cost == 0 {
            return true;
        }
        // The deposits are atomics, not guarded by the lock: sum them before taking it (at
        // the instant the lock will most likely clamp to), so the critical section that
        // other threads wait on stays short.
        let early = self.clamped(now);
        let deposits = self.local_deposits(early);
        let mut ledger = self.lock();
        // Clamped, so the withdrawal lands in a bucket every later check counts; an older
        // `now` would neither see newer withdrawals nor be recorded.
        // `latest` is only written under the ledger's lock: a load and a store, not an RMW.
        let now = self.clamped(now);
        self.latest.store(now.as_nanos(), Ordering::Relaxed);
        let deposits = if now == early {
            deposits
        } else {
            self.local_deposits(now)
        };
        let cost = u64::from(cost);
        let fleet = Remote::current(&ledger.fleet, now.as_nanos());
        let others = fleet.unwrap_or_default();
        let spent = ledger.withdrawn.sum(now) + others.withdrawn;
        if spent + cost > self.capacity(deposits + others.deposits) {
            return false;
        }
        if let (Some(_), Some(share)) = (fleet, &mut ledger.share) {
            if share.spent + cost > share.allowance {
                return false;
            }
            share.spent += cost;
        }
        ledger.withdrawn.add(now, cost);
        true
    }

    /// Cost units that could be withdrawn at `now` (clamped like [`withdraw`](Self::withdraw)'s),
    /// counting what the rest of the fleet spent if a [`merge`](Self::merge) is current. This
    /// is the fleet's remainder; this instance's part of it until the next merge is
    /// [`fleet_share`](Self::fleet_share).
    pub fn remaining(&self, now: Instant) -> u64 {
        let ledger = self.lock();
        let now = self.clamped(now);
        let others = Remote::current(&ledger.fleet, now.as_nanos()).unwrap_or_default();
        self.capacity(self.local_deposits(now) + others.deposits)
            .saturating_sub(ledger.withdrawn.sum(now) + others.withdrawn)
    }

    /// `now`, or the latest instant a withdrawal was checked at if that is later. Exact with
    /// the ledger's lock held; without it, a hint another withdrawal may overtake.
    pub(crate) fn clamped(&self, now: Instant) -> Instant {
        Instant::from_nanos(self.latest.load(Ordering::Relaxed).max(now.as_nanos()))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Ledger> {
        // Every critical section leaves the ledger consistent, so a poisoned lock is usable.
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This instance's deposits counted at `now` (none for a rolling budget).
    pub(crate) fn local_deposits(&self, now: Instant) -> u64 {
        self.deposits.as_ref().map_or(0, |d| d.sum(now))
    }

    /// The cost units a window allows, given the deposits counted in it (this instance's and
    /// the fleet's).
    pub(crate) fn capacity(&self, deposits: u64) -> u64 {
        match self.kind {
            BudgetKind::Rolling { max_retries, .. } => u64::from(max_retries),
            BudgetKind::Ratio {
                ratio,
                min_per_second,
                window,
            } => {
                // Floor, not round: 0.6 of one deposit allows no retry (tower#857). Every
                // term is finite and non-negative (checked at build), and `as` truncates
                // toward zero and saturates: the floor, without a libm call.
                let v = ratio * deposits as f64 + min_per_second * window.as_secs_f64();
                v as u64
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn rolling_caps_retries_per_window_and_refills() {
        let b = Budget::rolling(2, Duration::from_secs(1)).build().unwrap();
        assert!(b.withdraw(at(0), ErrorClass::Transient));
        assert!(b.withdraw(at(100), ErrorClass::Transient));
        assert!(!b.withdraw(at(200), ErrorClass::Transient));
        assert_eq!(b.remaining(at(200)), 0);
        // Conservative: the cap holds for every 1 s window, so refill comes once the
        // withdrawals' buckets have fully left the counted span.
        assert!(!b.withdraw(at(1050), ErrorClass::Transient));
        assert!(b.withdraw(at(1100), ErrorClass::Transient));
        assert!(b.withdraw(at(1200), ErrorClass::Transient));
    }

    #[test]
    fn per_class_costs() {
        let b = Budget::rolling(10, Duration::from_secs(1))
            .cost(ErrorClass::RateLimit, 0)
            .cost(ErrorClass::Transient, 5)
            .never(ErrorClass::Permanent)
            .build()
            .unwrap();
        assert!(!b.withdraw(at(0), ErrorClass::Permanent));
        for _ in 0..100 {
            assert!(b.withdraw(at(0), ErrorClass::RateLimit));
        }
        assert!(b.withdraw(at(0), ErrorClass::Transient));
        assert!(b.withdraw(at(0), ErrorClass::Transient));
        assert!(!b.withdraw(at(0), ErrorClass::Transient));
        assert!(
            !b.withdraw(at(0), ErrorClass::Unknown),
            "cost 1 > 0 remaining"
        );
    }

    #[test]
    fn ratio_allows_a_share_of_deposits_plus_a_floor() {
        let b = Budget::ratio(0.5, 0.0, Duration::from_secs(10))
            .build()
            .unwrap();
        assert!(b.wants_deposits());
        assert!(
            !b.withdraw(at(0), ErrorClass::Transient),
            "nothing deposited"
        );
        for _ in 0..4 {
            b.deposit(at(0));
        }
        assert!(b.withdraw(at(1), ErrorClass::Transient));
        assert!(b.withdraw(at(1), ErrorClass::Transient));
        assert!(!b.withdraw(at(1), ErrorClass::Transient));
        let floor = Budget::ratio(0.0, 1.0, Duration::from_secs(10))
            .build()
            .unwrap();
        assert_eq!(floor.remaining(at(0)), 10);
    }

    #[test]
    fn fractional_ratio_floors() {
        let b = Budget::ratio(0.6, 0.0, Duration::from_secs(10))
            .build()
            .unwrap();
        b.deposit(at(0));
        assert!(!b.withdraw(at(0), ErrorClass::Transient));
    }

    #[test]
    fn bad_configs_name_the_field() {
        let cases: Vec<(BudgetBuilder, &str)> = vec![
            (Budget::rolling(1, Duration::ZERO), "window"),
            (Budget::rolling(1, Duration::from_millis(5)), "window"),
            (
                Budget::rolling(1, Duration::from_secs(1)).buckets(0),
                "buckets",
            ),
            (
                Budget::rolling(1, Duration::from_secs(10)).buckets(5000),
                "buckets",
            ),
            (Budget::ratio(-0.1, 0.0, Duration::from_secs(1)), "ratio"),
            (
                Budget::ratio(f64::NAN, 0.0, Duration::from_secs(1)),
                "ratio",
            ),
            (
                Budget::ratio(0.1, f64::INFINITY, Duration::from_secs(1)),
                "min_per_second",
            ),
            (
                Budget::ratio(0.1, -1.0, Duration::from_secs(1)),
                "min_per_second",
            ),
        ];
        for (b, field) in cases {
            assert_eq!(b.build().unwrap_err().field, field);
        }
    }
}
