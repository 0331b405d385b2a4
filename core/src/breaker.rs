//! Circuit breaker: fail fast while a dependency is persistently unhealthy.
//!
//! # Why
//! Retries help with passing faults and hurt with persistent ones: when a dependency is
//! down, every caller retrying it multiplies the load on something that is already failing,
//! and every caller waits through its whole backoff schedule to learn what the previous
//! caller already knew. A breaker remembers. After enough failures it *opens* and refuses
//! calls at once (no attempt, no sleep); after a recovery time it goes *half-open* and lets a
//! few probe calls through; if they succeed it *closes* again, if one fails it reopens.
//!
//! # Trip modes
//! - [`CircuitBreaker::consecutive`]: opens after `threshold` failures in a row, all within
//!   `window` (a success resets the run). Optional per-class thresholds open it sooner for
//!   one class.
//! - [`CircuitBreaker::failure_rate`]: opens when, over a sliding `window`, at least
//!   `min_throughput` calls were recorded and the share of failures is at least `ratio`
//!   (as Polly's advanced breaker and resilience4j do). The window is kept in fixed time
//!   buckets, so memory does not grow with traffic.
//!
//! Only failures of the `trip_on` classes count (Transient, ServerError, RateLimit and
//! Unknown by default); any other outcome is evidence that the dependency answered and
//! counts as a success, as in Polly.
//!
//! # Shared, pure, and never wedged
//! A breaker is shared by `Arc` between calls, threads and policies. Every method takes
//! `now`; it never reads a clock. [`try_acquire`](CircuitBreaker::try_acquire) hands out a
//! [`Permit`] that carries the breaker's *generation*: a completion reported with a permit
//! from before a transition is ignored, so a slow call cannot close a breaker that reopened
//! meanwhile. A half-open probe permit that is dropped without being reported (its call
//! vanished) gives its probe slot back, so the breaker can never stay half-open forever.
//!
//! The closed-state path takes no lock: admission is one atomic load, and recording a
//! success is one load (consecutive mode) or one atomic add (failure-rate mode).
//!
//! # Across processes
//! A breaker can count a whole fleet's evidence and follow decisions other instances made,
//! while still deciding from local memory: see [`crate::fleet`] for the exchange
//! ([`snapshot`](CircuitBreaker::snapshot), [`merge`](CircuitBreaker::merge),
//! [`follow`](CircuitBreaker::follow)) and `redress-redis` for a store.

use core::time::Duration;

use crate::class::{ClassSet, ClassTable, ErrorClass};
use crate::error::{ConfigError, ensure};
use crate::sync::{AtomicU32, AtomicU64, Mutex, MutexGuard, Ordering};
use crate::time::{Instant, duration_nanos};
use crate::window::Buckets;

/// The three breaker states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum CircuitState {
    /// Calls pass; failures are counted.
    Closed,
    /// Calls are refused until the recovery time has passed.
    Open,
    /// A limited number of probe calls pass; their results decide.
    HalfOpen,
}

impl CircuitState {
    /// The stable snake_case name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// A state change of a breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// Closed → open, or half-open → open after a failed probe.
    Opened,
    /// Open → half-open: the permit that caused it is the first probe.
    HalfOpened,
    /// Half-open → closed.
    Closed,
}

/// How a call recorded with a [`Permit`] ended, from the breaker's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerOutcome {
    /// The dependency answered well.
    Success,
    /// The call failed with this class (counted only if the class is in `trip_on`).
    Failure(ErrorClass),
    /// Neither: the call was cancelled or its result says nothing about the dependency.
    Ignored,
}

/// The breaker refused admission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker is open")]
pub struct Rejected {
    /// When the breaker may next admit a call.
    pub until: Instant,
}

/// How a breaker trips.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum TripMode {
    /// `threshold` failures in a row, all within `window`.
    Consecutive {
        /// Failures in a row that open the breaker.
        threshold: u32,
        /// The span those failures must fall in.
        window: Duration,
        /// Lower thresholds for single classes (failures of that class in a row).
        class_thresholds: ClassTable<Option<u32>>,
    },
    /// At least `ratio` of at least `min_throughput` calls failed over `window`.
    FailureRate {
        /// The failure share that opens the breaker, in `(0, 1]`.
        ratio: f64,
        /// Calls that must be seen in the window before the ratio counts.
        min_throughput: u32,
        /// The sliding window.
        window: Duration,
        /// How many time buckets the window is kept in.
        buckets: u32,
    },
}

/// Settings of a [`CircuitBreaker`]; built with [`CircuitBreaker::consecutive`] or
/// [`CircuitBreaker::failure_rate`].
#[derive(Clone, Debug, PartialEq)]
pub struct BreakerConfig {
    /// How the breaker trips.
    pub mode: TripMode,
    /// How long the breaker stays open before it admits probes.
    pub recovery: Duration,
    /// How many probes half-open admits at once; this many successes close it.
    pub probes: u32,
    /// The failure classes that count.
    pub trip_on: ClassSet,
}

/// The classes that trip a breaker unless configured otherwise.
pub const DEFAULT_TRIP_ON: ClassSet = ClassSet::of(&[
    ErrorClass::Transient,
    ErrorClass::ServerError,
    ErrorClass::RateLimit,
    ErrorClass::Unknown,
]);

/// A builder of a [`CircuitBreaker`].
#[derive(Clone, Debug)]
#[must_use]
pub struct BreakerBuilder {
    config: BreakerConfig,
}

impl BreakerBuilder {
    /// How long the breaker stays open before admitting probes (default 30 s).
    pub fn recovery(mut self, d: Duration) -> Self {
        self.config.recovery = d;
        self
    }

    /// How many probes half-open admits at once, and how many successes close it
    /// (default 1).
    pub fn probes(mut self, n: u32) -> Self {
        self.config.probes = n;
        self
    }

    /// The failure classes that count (default Transient, ServerError, RateLimit, Unknown).
    pub fn trip_on(mut self, classes: ClassSet) -> Self {
        self.config.trip_on = classes;
        self
    }

    /// Consecutive mode only: open after `threshold` failures of `class` in a row (within
    /// the window). The class is added to `trip_on`.
    pub fn class_threshold(mut self, class: ErrorClass, threshold: u32) -> Self {
        if let TripMode::Consecutive {
            class_thresholds, ..
        } = &mut self.config.mode
        {
            class_thresholds[class] = Some(threshold);
        }
        self.config.trip_on = self.config.trip_on.with(class);
        self
    }

    /// Failure-rate mode only: the number of time buckets (default 10, 1..=1000).
    pub fn buckets(mut self, n: u32) -> Self {
        if let TripMode::FailureRate { buckets, .. } = &mut self.config.mode {
            *buckets = n;
        }
        self
    }

    /// Validates and builds.
    ///
    /// # Errors
    /// A [`ConfigError`] for a zero threshold, window, recovery or probe count, a ratio
    /// outside `(0, 1]`, a bucket count outside `1..=1000`, or a window shorter than one
    /// millisecond per bucket.
    pub fn build(self) -> Result<CircuitBreaker, ConfigError> {
        CircuitBreaker::new(self.config)
    }
}

/// Failure memory of the consecutive mode: the times of the last `cap` failures.
#[derive(Debug)]
struct Run {
    times: Box<[u64]>,
    len: usize,
    head: usize,
}

impl Run {
    fn new(cap: u32) -> Self {
        Self {
            times: vec![0; cap as usize].into_boxed_slice(),
            len: 0,
            head: 0,
        }
    }

    /// Records a failure at `now`; true if the run is full and spans at most `window`.
    fn push(&mut self, now: u64, window: u64) -> bool {
        let cap = self.times.len();
        self.times[self.head] = now;
        self.head = (self.head + 1) % cap;
        self.len = (self.len + 1).min(cap);
        // With a full ring, `head` now points at the oldest entry.
        self.len == cap && now.saturating_sub(self.times[self.head % cap]) <= window
    }

    fn clear(&mut self) {
        self.len = 0;
        self.head = 0;
    }
}

#[derive(Debug)]
pub(crate) struct Inner {
    last_now: u64,
    probes_out: u32,
    probe_successes: u32,
    run: Option<Run>,
    class_runs: ClassTable<Option<Run>>,
    pub(crate) failures: Buckets,
    /// What the rest of a fleet reported (failure-rate mode); see [`crate::fleet`].
    pub(crate) fleet: Option<crate::fleet::Remote<crate::fleet::FleetBreakerCounts>>,
}

pub(crate) const CLOSED: u64 = 0;
pub(crate) const OPEN: u64 = 1;
pub(crate) const HALF_OPEN: u64 = 2;

/// A circuit breaker shared by `Arc`. See the [module docs](self) for the model.
///
/// Call order: [`try_acquire`](Self::try_acquire) before the attempt, then
/// [`record`](Self::record) with the permit once it ended. Dropping a permit unreported
/// counts as [`BreakerOutcome::Ignored`].
#[derive(Debug)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    /// `generation << 2 | state`; written only under `inner`'s lock.
    pub(crate) word: AtomicU64,
    /// While open: the instant (nanos) it may admit a probe.
    pub(crate) open_until: AtomicU64,
    /// Consecutive mode: failures in the current run (a success only locks when non-zero).
    streak: AtomicU32,
    /// Failure-rate mode: successes per time bucket.
    pub(crate) successes: Buckets,
    inner: Mutex<Inner>,
}

impl CircuitBreaker {
    /// A breaker that opens after `threshold` failures in a row within `window`.
    ///
    /// Defaults: recovery 30 s, 1 probe, trip on Transient, ServerError, RateLimit, Unknown.
    pub fn consecutive(threshold: u32, window: Duration) -> BreakerBuilder {
        Self::builder(TripMode::Consecutive {
            threshold,
            window,
            class_thresholds: ClassTable::default(),
        })
    }

    /// A breaker that opens when at least `ratio` of at least `min_throughput` calls in the
    /// sliding `window` failed.
    pub fn failure_rate(ratio: f64, min_throughput: u32, window: Duration) -> BreakerBuilder {
        Self::builder(TripMode::FailureRate {
            ratio,
            min_throughput,
            window,
            buckets: 10,
        })
    }

    fn builder(mode: TripMode) -> BreakerBuilder {
        BreakerBuilder {
            config: BreakerConfig {
                mode,
                recovery: Duration::from_secs(30),
                probes: 1,
                trip_on: DEFAULT_TRIP_ON,
            },
        }
    }

    /// A breaker from a full configuration.
    ///
    /// # Errors
    /// See [`BreakerBuilder::build`].
    pub fn new(config: BreakerConfig) -> Result<Self, ConfigError> {
        validate(&config)?;
        let (run, class_runs, buckets, width) = match &config.mode {
            TripMode::Consecutive {
                threshold,
                class_thresholds,
                ..
            } => {
                let mut runs = ClassTable::<Option<Run>>::default();
                for (c, t) in class_thresholds.iter() {
                    runs[c] = t.map(Run::new);
                }
                (Some(Run::new(*threshold)), runs, 0, 1)
            }
            TripMode::FailureRate {
                window, buckets, ..
            } => (
                None,
                ClassTable::default(),
                *buckets as usize,
                (duration_nanos(*window) / u64::from(*buckets)).max(1),
            ),
        };
        Ok(Self {
            word: AtomicU64::new(CLOSED),
            open_until: AtomicU64::new(0),
            streak: AtomicU32::new(0),
            successes: Buckets::new(buckets, width),
            inner: Mutex::new(Inner {
                last_now: 0,
                probes_out: 0,
                probe_successes: 0,
                run,
                class_runs,
                failures: Buckets::new(buckets, width),
                fleet: None,
            }),
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// The current state (an open breaker whose recovery time has passed still reads
    /// `Open` until a call is admitted).
    pub fn state(&self) -> CircuitState {
        match self.word.load(Ordering::Acquire) & 3 {
            CLOSED => CircuitState::Closed,
            OPEN => CircuitState::Open,
            _ => CircuitState::HalfOpen,
        }
    }

    /// How many transitions the breaker has made.
    pub fn generation(&self) -> u64 {
        self.word.load(Ordering::Acquire) >> 2
    }

    /// Whether a call at `now` would be admitted, without admitting it.
    pub fn would_admit(&self, now: Instant) -> bool {
        let w = self.word.load(Ordering::Acquire);
        match w & 3 {
            CLOSED => true,
            OPEN => now.as_nanos() >= self.open_until.load(Ordering::Acquire),
            _ => {
                let inner = self.lock();
                inner.probes_out < self.config.probes
            }
        }
    }

    /// The finest time the breaker measures: its recovery time, and its window (a
    /// consecutive breaker's) or one bucket of it (a failure-rate breaker's). A clock that
    /// lags by a small part of this is exact enough for it.
    pub fn time_grain(&self) -> Duration {
        let window = match self.config.mode {
            TripMode::Consecutive { window, .. } => window,
            TripMode::FailureRate {
                window, buckets, ..
            } => window / buckets.max(1),
        };
        window.min(self.config.recovery)
    }

    /// Whether the breaker counts failure rates in time buckets (a success is then counted
    /// at the time it happened), rather than runs of consecutive failures.
    pub fn is_failure_rate(&self) -> bool {
        matches!(self.config.mode, TripMode::FailureRate { .. })
    }

    /// Asks to run one call (or attempt) at `now`.
    ///
    /// # Errors
    /// [`Rejected`] while open (before the recovery time) or while half-open with every
    /// probe slot taken.
    #[inline]
    pub fn try_acquire(&self, now: Instant) -> Result<Permit<'_>, Rejected> {
        let w = self.word.load(Ordering::Acquire);
        if w & 3 == CLOSED {
            return Ok(Permit::new(self, w >> 2, false, None));
        }
        if w & 3 == OPEN {
            let until = self.open_until.load(Ordering::Acquire);
            if now.as_nanos() < until {
                return Err(Rejected {
                    until: Instant::from_nanos(until),
                });
            }
        }
        self.acquire_slow(now)
    }

    fn acquire_slow(&self, now: Instant) -> Result<Permit<'_>, Rejected> {
        let mut inner = self.lock();
        let now = inner.advance(now);
        let w = self.word.load(Ordering::Acquire);
        let (state, gen_) = (w & 3, w >> 2);
        match state {
            CLOSED => Ok(Permit::new(self, gen_, false, None)),
            OPEN => {
                let until = self.open_until.load(Ordering::Acquire);
                if now < until {
                    return Err(Rejected {
                        until: Instant::from_nanos(until),
                    });
                }
                let g = self.set_state(&mut inner, HALF_OPEN, now);
                inner.probes_out = 1;
                Ok(Permit::new(self, g, true, Some(Transition::HalfOpened)))
            }
            _ => {
                if inner.probes_out < self.config.probes {
                    inner.probes_out += 1;
                    Ok(Permit::new(self, gen_, true, None))
                } else {
                    Err(Rejected {
                        until: Instant::from_nanos(
                            now.saturating_add(duration_nanos(self.config.recovery)),
                        ),
                    })
                }
            }
        }
    }

    /// Reports how the call admitted by `permit` ended, at `now`.
    ///
    /// Returns the transition this caused, if any. A permit from an earlier generation is
    /// ignored (its call started before the breaker last changed state).
    #[inline]
    pub fn record(
        &self,
        now: Instant,
        mut permit: Permit<'_>,
        outcome: BreakerOutcome,
    ) -> Option<Transition> {
        // The most common report, inlined: a closed consecutive breaker's success with no
        // run of failures to reset (or from an earlier generation) changes nothing.
        if !permit.probe
            && outcome == BreakerOutcome::Success
            && matches!(self.config.mode, TripMode::Consecutive { .. })
            && (self.word.load(Ordering::Acquire) >> 2 != permit.generation
                || self.streak.load(Ordering::Relaxed) == 0)
        {
            permit.resolved = true;
            return None;
        }
        self.record_slow(now, permit, outcome)
    }

    #[inline(never)]
    fn record_slow(
        &self,
        now: Instant,
        mut permit: Permit<'_>,
        outcome: BreakerOutcome,
    ) -> Option<Transition> {
        permit.resolved = true;
        let outcome = match outcome {
            BreakerOutcome::Failure(c) if !self.config.trip_on.contains(c) => {
                BreakerOutcome::Success
            }
            o => o,
        };
        if !permit.probe {
            // Closed-state fast paths: nothing to do unless a failure or a run to reset.
            let w = self.word.load(Ordering::Acquire);
            if w >> 2 != permit.generation {
                return None;
            }
            match outcome {
                BreakerOutcome::Ignored => return None,
                BreakerOutcome::Success => match self.config.mode {
                    TripMode::Consecutive { .. } => {
                        if self.streak.load(Ordering::Relaxed) == 0 {
                            return None;
                        }
                    }
                    TripMode::FailureRate { .. } => {
                        self.successes.add(now, 1);
                        return None;
                    }
                },
                BreakerOutcome::Failure(_) => {}
            }
        }
        let mut inner = self.lock();
        let now = inner.advance(now);
        let w = self.word.load(Ordering::Acquire);
        if w >> 2 != permit.generation {
            return None;
        }
        match (w & 3, outcome) {
            (CLOSED, BreakerOutcome::Success) => {
                self.reset_run(&mut inner);
                None
            }
            (CLOSED, BreakerOutcome::Failure(class)) => {
                if self.count_failure(&mut inner, now, class) {
                    self.open(&mut inner, now);
                    Some(Transition::Opened)
                } else {
                    None
                }
            }
            (HALF_OPEN, BreakerOutcome::Success) => {
                inner.probes_out = inner.probes_out.saturating_sub(1);
                inner.probe_successes += 1;
                if inner.probe_successes >= self.config.probes {
                    self.set_state(&mut inner, CLOSED, now);
                    Some(Transition::Closed)
                } else {
                    None
                }
            }
            (HALF_OPEN, BreakerOutcome::Failure(_)) => {
                self.open(&mut inner, now);
                Some(Transition::Opened)
            }
            (HALF_OPEN, BreakerOutcome::Ignored) => {
                inner.probes_out = inner.probes_out.saturating_sub(1);
                None
            }
            _ => None,
        }
    }

    fn release(&self, permit: &Permit<'_>) {
        let mut inner = self.lock();
        let w = self.word.load(Ordering::Acquire);
        if w >> 2 == permit.generation && w & 3 == HALF_OPEN {
            inner.probes_out = inner.probes_out.saturating_sub(1);
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every critical section leaves Inner consistent, so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn set_state(&self, inner: &mut Inner, state: u64, _now: u64) -> u64 {
        let g = (self.word.load(Ordering::Acquire) >> 2).wrapping_add(1);
        inner.probes_out = 0;
        inner.probe_successes = 0;
        self.reset_run(inner);
        inner.failures.clear();
        self.successes.clear();
        // The fleet's counts were for the old state too: the next exchange brings new ones.
        inner.fleet = None;
        self.word.store(g << 2 | state, Ordering::Release);
        g
    }

    pub(crate) fn open(&self, inner: &mut Inner, now: u64) {
        self.open_until.store(
            now.saturating_add(duration_nanos(self.config.recovery)),
            Ordering::Release,
        );
        self.set_state(inner, OPEN, now);
    }

    fn reset_run(&self, inner: &mut Inner) {
        self.streak.store(0, Ordering::Relaxed);
        if let Some(r) = &mut inner.run {
            r.clear();
        }
        for r in inner.class_runs.0.iter_mut().flatten() {
            r.clear();
        }
    }

    /// Counts a tripping failure; true if the breaker must open.
    fn count_failure(&self, inner: &mut Inner, now: u64, class: ErrorClass) -> bool {
        match &self.config.mode {
            TripMode::Consecutive { window, .. } => {
                let window = duration_nanos(*window);
                self.streak.fetch_add(1, Ordering::Relaxed);
                let mut trip = inner.run.as_mut().is_some_and(|r| r.push(now, window));
                if let Some(r) = inner.class_runs[class].as_mut() {
                    trip |= r.push(now, window);
                }
                trip
            }
            TripMode::FailureRate {
                ratio,
                min_throughput,
                ..
            } => {
                let at = Instant::from_nanos(now);
                inner.failures.add(at, 1);
                let others = crate::fleet::Remote::current(&inner.fleet, now).unwrap_or_default();
                let own_failures = inner.failures.sum(at);
                let fails = own_failures + others.failures;
                let total = own_failures + self.successes.sum(at) + others.calls;
                trips(*ratio, *min_throughput, fails, total)
            }
        }
    }

    /// Counts in the window ending at `now` (failure-rate mode), as `(failures, total)`.
    pub fn window_counts(&self, now: Instant) -> (u64, u64) {
        if !matches!(self.config.mode, TripMode::FailureRate { .. }) {
            return (0, 0);
        }
        let inner = self.lock();
        let f = inner.failures.sum(now);
        (f, f + self.successes.sum(now))
    }
}

/// Whether `fails` of `total` calls cross a failure-rate threshold.
pub(crate) fn trips(ratio: f64, min_throughput: u32, fails: u64, total: u64) -> bool {
    fails > 0 && total >= u64::from(min_throughput) && fails as f64 >= ratio * total as f64
}

impl Inner {
    /// Clamps time that went backwards to the latest instant seen.
    pub(crate) fn advance(&mut self, now: Instant) -> u64 {
        self.last_now = self.last_now.max(now.as_nanos());
        self.last_now
    }
}

fn validate(c: &BreakerConfig) -> Result<(), ConfigError> {
    ensure(
        !c.recovery.is_zero(),
        "recovery",
        c.recovery,
        "must be greater than zero",
    )?;
    ensure(c.probes >= 1, "probes", c.probes, "must be at least 1")?;
    ensure(
        !c.trip_on.is_empty(),
        "trip_on",
        c.trip_on,
        "must name at least one class",
    )?;
    match &c.mode {
        TripMode::Consecutive {
            threshold,
            window,
            class_thresholds,
        } => {
            ensure(
                *threshold >= 1,
                "threshold",
                threshold,
                "must be at least 1",
            )?;
            ensure(
                *threshold <= 10_000,
                "threshold",
                threshold,
                "must be at most 10000",
            )?;
            ensure(
                !window.is_zero(),
                "window",
                window,
                "must be greater than zero",
            )?;
            for (class, t) in class_thresholds.iter() {
                if let Some(t) = t {
                    ensure(
                        (1..=10_000).contains(t),
                        "class_thresholds",
                        (class, t),
                        "must be between 1 and 10000",
                    )?;
                }
            }
        }
        TripMode::FailureRate {
            ratio,
            min_throughput,
            window,
            buckets,
        } => {
            ensure(
                ratio.is_finite() && *ratio > 0.0 && *ratio <= 1.0,
                "ratio",
                ratio,
                "must be within (0, 1]",
            )?;
            ensure(
                *min_throughput >= 1,
                "min_throughput",
                min_throughput,
                "must be at least 1",
            )?;
            ensure(
                !window.is_zero(),
                "window",
                window,
                "must be greater than zero",
            )?;
            ensure(
                (1..=1000).contains(buckets),
                "buckets",
                buckets,
                "must be between 1 and 1000",
            )?;
            ensure(
                *window >= Duration::from_millis(u64::from(*buckets)),
                "window",
                window,
                "must be at least 1ms per bucket",
            )?;
        }
    }
    Ok(())
}

/// Admission to run one call through a breaker.
///
/// Report its end with [`CircuitBreaker::record`]. A permit dropped unreported counts as
/// [`BreakerOutcome::Ignored`]: a half-open probe slot is given back.
#[derive(Debug)]
#[must_use = "report the call's end with CircuitBreaker::record"]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    generation: u64,
    probe: bool,
    transition: Option<Transition>,
    resolved: bool,
}

impl<'a> Permit<'a> {
    fn new(
        breaker: &'a CircuitBreaker,
        generation: u64,
        probe: bool,
        transition: Option<Transition>,
    ) -> Self {
        Self {
            breaker,
            generation,
            probe,
            transition,
            resolved: false,
        }
    }

    /// Whether this permit is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// The transition that admitting this permit caused ([`Transition::HalfOpened`] for the
    /// first probe after the recovery time).
    pub fn transition(&self) -> Option<Transition> {
        self.transition
    }

    /// The breaker generation the permit belongs to.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.probe && !self.resolved {
            self.breaker.release(self);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }
    fn at(n: u64) -> Instant {
        Instant::from_millis(n)
    }
    const T: BreakerOutcome = BreakerOutcome::Failure(ErrorClass::Transient);

    #[test]
    fn consecutive_trips_only_on_a_run_within_the_window() {
        let b = CircuitBreaker::consecutive(3, ms(100)).build().unwrap();
        for t in [0, 10] {
            let p = b.try_acquire(at(t)).unwrap();
            assert_eq!(b.record(at(t), p, T), None);
        }
        // A success resets the run.
        let p = b.try_acquire(at(20)).unwrap();
        b.record(at(20), p, BreakerOutcome::Success);
        for t in [30, 40] {
            let p = b.try_acquire(at(t)).unwrap();
            assert_eq!(b.record(at(t), p, T), None);
        }
        let p = b.try_acquire(at(50)).unwrap();
        assert_eq!(b.record(at(50), p, T), Some(Transition::Opened));
        assert_eq!(b.state(), CircuitState::Open);
        assert_eq!(b.try_acquire(at(60)).unwrap_err().until, at(30_050));
    }

    #[test]
    fn consecutive_failures_spread_wider_than_the_window_do_not_trip() {
        let b = CircuitBreaker::consecutive(3, ms(100)).build().unwrap();
        for t in [0, 60, 120, 180] {
            let p = b.try_acquire(at(t)).unwrap();
            assert_eq!(b.record(at(t), p, T), None, "t={t}");
        }
    }

    #[test]
    fn non_tripping_classes_count_as_success() {
        let b = CircuitBreaker::consecutive(2, ms(100)).build().unwrap();
        let p = b.try_acquire(at(0)).unwrap();
        b.record(at(0), p, T);
        let p = b.try_acquire(at(1)).unwrap();
        b.record(at(1), p, BreakerOutcome::Failure(ErrorClass::Permanent));
        let p = b.try_acquire(at(2)).unwrap();
        assert_eq!(b.record(at(2), p, T), None);
    }

    #[test]
    fn half_open_admits_probes_and_closes_after_successes() {
        let b = CircuitBreaker::consecutive(1, ms(100))
            .recovery(ms(50))
            .probes(2)
            .build()
            .unwrap();
        let p = b.try_acquire(at(0)).unwrap();
        assert_eq!(b.record(at(0), p, T), Some(Transition::Opened));
        assert!(b.try_acquire(at(49)).is_err());
        let p1 = b.try_acquire(at(50)).unwrap();
        assert_eq!(p1.transition(), Some(Transition::HalfOpened));
        let p2 = b.try_acquire(at(50)).unwrap();
        assert!(b.try_acquire(at(50)).is_err(), "third probe refused");
        assert_eq!(b.record(at(51), p1, BreakerOutcome::Success), None);
        assert_eq!(
            b.record(at(52), p2, BreakerOutcome::Success),
            Some(Transition::Closed)
        );
        assert_eq!(b.state(), CircuitState::Closed);
    }

    #[test]
    fn dropped_probe_releases_its_slot() {
        let b = CircuitBreaker::consecutive(1, ms(100))
            .recovery(ms(10))
            .build()
            .unwrap();
        let p = b.try_acquire(at(0)).unwrap();
        b.record(at(0), p, T);
        let probe = b.try_acquire(at(10)).unwrap();
        assert!(b.try_acquire(at(11)).is_err());
        drop(probe);
        let probe = b.try_acquire(at(12)).unwrap();
        assert_eq!(
            b.record(at(13), probe, BreakerOutcome::Success),
            Some(Transition::Closed)
        );
    }

    #[test]
    fn stale_permits_are_ignored() {
        let b = CircuitBreaker::consecutive(1, ms(100))
            .recovery(ms(10))
            .build()
            .unwrap();
        let old = b.try_acquire(at(0)).unwrap();
        let p = b.try_acquire(at(0)).unwrap();
        b.record(at(1), p, T);
        let probe = b.try_acquire(at(20)).unwrap();
        // The old closed-state permit cannot move the half-open breaker.
        assert_eq!(b.record(at(21), old, BreakerOutcome::Success), None);
        assert_eq!(b.state(), CircuitState::HalfOpen);
        assert_eq!(b.record(at(22), probe, T), Some(Transition::Opened));
    }

    #[test]
    fn failure_rate_needs_min_throughput_and_ratio() {
        let b = CircuitBreaker::failure_rate(0.5, 4, ms(1000))
            .build()
            .unwrap();
        let p = b.try_acquire(at(0)).unwrap();
        assert_eq!(b.record(at(0), p, T), None);
        let p = b.try_acquire(at(1)).unwrap();
        assert_eq!(b.record(at(1), p, T), None, "2 < min throughput");
        let p = b.try_acquire(at(2)).unwrap();
        b.record(at(2), p, BreakerOutcome::Success);
        assert_eq!(b.window_counts(at(2)), (2, 3));
        let p = b.try_acquire(at(3)).unwrap();
        assert_eq!(
            b.record(at(3), p, T),
            Some(Transition::Opened),
            "3/4 >= 0.5"
        );
    }

    #[test]
    fn failure_rate_forgets_old_buckets() {
        let b = CircuitBreaker::failure_rate(0.5, 2, ms(1000))
            .build()
            .unwrap();
        let p = b.try_acquire(at(0)).unwrap();
        b.record(at(0), p, T);
        let p = b.try_acquire(at(5000)).unwrap();
        assert_eq!(
            b.record(at(5000), p, T),
            None,
            "the first failure left the window"
        );
        assert_eq!(b.window_counts(at(5000)), (1, 1));
    }

    #[test]
    fn time_going_backwards_does_not_panic_or_reopen_early() {
        let b = CircuitBreaker::consecutive(1, ms(100))
            .recovery(ms(100))
            .build()
            .unwrap();
        let p = b.try_acquire(at(1000)).unwrap();
        b.record(at(1000), p, T);
        assert!(b.try_acquire(at(0)).is_err());
        assert!(b.try_acquire(Instant::MAX).is_ok());
    }

    #[test]
    fn bad_configs_are_rejected_with_the_field() {
        let cases: Vec<(BreakerBuilder, &str)> = vec![
            (CircuitBreaker::consecutive(0, ms(1)), "threshold"),
            (CircuitBreaker::consecutive(1, ms(0)), "window"),
            (
                CircuitBreaker::consecutive(1, ms(1)).recovery(ms(0)),
                "recovery",
            ),
            (CircuitBreaker::consecutive(1, ms(1)).probes(0), "probes"),
            (
                CircuitBreaker::consecutive(1, ms(1)).trip_on(ClassSet::EMPTY),
                "trip_on",
            ),
            (
                CircuitBreaker::consecutive(1, ms(1)).class_threshold(ErrorClass::RateLimit, 0),
                "class_thresholds",
            ),
            (CircuitBreaker::failure_rate(0.0, 1, ms(1000)), "ratio"),
            (CircuitBreaker::failure_rate(1.5, 1, ms(1000)), "ratio"),
            (CircuitBreaker::failure_rate(f64::NAN, 1, ms(1000)), "ratio"),
            (
                CircuitBreaker::failure_rate(0.5, 0, ms(1000)),
                "min_throughput",
            ),
            (CircuitBreaker::failure_rate(0.5, 1, ms(0)), "window"),
            (
                CircuitBreaker::failure_rate(0.5, 1, ms(1000)).buckets(0),
                "buckets",
            ),
            (
                CircuitBreaker::failure_rate(0.5, 1, ms(5)).buckets(10),
                "window",
            ),
        ];
        for (b, field) in cases {
            assert_eq!(b.build().unwrap_err().field, field);
        }
    }
}
