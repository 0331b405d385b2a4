#![allow(clippy::unwrap_used)]
//! Property tests: each test is named after the invariant it checks.
//!
//! Most properties drive a [`PolicyMachine`] with a random policy (caps, deadline, attempt
//! timeout, built-in strategies with random parameters, optional breaker and budget) through
//! a random script of outcomes, with a fake clock that may stand still, creep, go backwards
//! or jump as far as [`Instant::MAX`], and with random misuse (early, repeated and
//! out-of-order inputs). One driver records every input into a trace; each property reads
//! the trace. The breaker and the budget are also driven directly.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::select;
use redress::backoff::{self, Backoff};
use redress::breaker::{BreakerBuilder, BreakerOutcome, Permit};
use redress::budget::BudgetBuilder;
use redress::event::EventRecord;
use redress::{
    BreakerScope, Budget, CircuitBreaker, CircuitState, ClassSet, Classification, Decision,
    ErrorClass, EventKind, Instant, Outcome, Policy, PolicyMachine, Retry, StopReason,
};

/// 256 cases a property (seconds in a debug build); set `PROPTEST_CASES` for a longer hunt.
fn config() -> ProptestConfig {
    if std::env::var_os("PROPTEST_CASES").is_some() {
        ProptestConfig::default()
    } else {
        ProptestConfig::with_cases(256)
    }
}

// =======================================================================================
// Random policies
// =======================================================================================

/// A built-in strategy without a wrapper.
#[derive(Clone, Debug)]
enum Leaf {
    Decorrelated {
        base: Duration,
        max: Duration,
    },
    Equal {
        base: Duration,
        max: Duration,
    },
    Full {
        base: Duration,
        max: Duration,
    },
    Exponential {
        base: Duration,
        max: Duration,
        factor: f64,
    },
    Constant(Duration),
    Token {
        base: Duration,
        max: Duration,
    },
}

/// The parameters of an `adaptive` wrapper.
#[derive(Clone, Debug)]
struct AdaptiveParams {
    window: Duration,
    target: f64,
    min: f64,
    max: f64,
}

/// A built-in strategy, possibly wrapped.
#[derive(Clone, Debug)]
enum Spec {
    Leaf(Leaf),
    Adaptive(AdaptiveParams, Leaf),
    RetryAfter {
        max_hint: Duration,
        jitter: Duration,
        fallback: Box<Spec>,
    },
}

#[derive(Clone, Debug)]
enum BreakerSpec {
    Consecutive {
        threshold: u32,
        window: Duration,
        class_threshold: Option<(ErrorClass, u32)>,
    },
    FailureRate {
        ratio: f64,
        min_throughput: u32,
        window: Duration,
        buckets: u32,
    },
}

#[derive(Clone, Debug)]
struct BreakerSettings {
    mode: BreakerSpec,
    recovery: Duration,
    probes: u32,
    scope: BreakerScope,
}

#[derive(Clone, Debug)]
enum BudgetSpec {
    Rolling {
        max: u32,
        window: Duration,
    },
    Ratio {
        ratio: f64,
        floor: f64,
        window: Duration,
    },
}

#[derive(Clone, Debug)]
struct BudgetSettings {
    kind: BudgetSpec,
    buckets: u32,
    costs: [Option<u32>; ErrorClass::COUNT],
}

#[derive(Clone, Debug)]
struct PolicySpec {
    max_attempts: u32,
    max_unknown: Option<u32>,
    class_caps: [Option<u32>; ErrorClass::COUNT],
    deadline: Option<Duration>,
    attempt_timeout: Option<Duration>,
    default_strategy: Option<Spec>,
    class_strategies: Vec<(ErrorClass, Spec)>,
    non_retryable: ClassSet,
    timeout_class: ErrorClass,
    predict_deadline: bool,
    breaker: Option<BreakerSettings>,
    budget: Option<BudgetSettings>,
    seed: u64,
}

fn class() -> BoxedStrategy<ErrorClass> {
    select(ErrorClass::ALL.to_vec()).boxed()
}

/// A positive base delay: sub-millisecond to seconds.
fn base() -> BoxedStrategy<Duration> {
    prop_oneof![
        (1u64..1_000_000).prop_map(Duration::from_nanos),
        (1u64..2_000).prop_map(Duration::from_millis),
    ]
    .boxed()
}

/// `(base, max)` with `max ≥ base`.
fn base_and_max() -> BoxedStrategy<(Duration, Duration)> {
    (
        base(),
        prop_oneof![
            Just(Duration::ZERO),
            (0u64..10_000).prop_map(Duration::from_millis),
            (0u64..86_400).prop_map(Duration::from_secs),
        ],
    )
        .prop_map(|(b, extra)| (b, b + extra))
        .boxed()
}

fn leaf() -> BoxedStrategy<Leaf> {
    prop_oneof![
        base_and_max().prop_map(|(base, max)| Leaf::Decorrelated { base, max }),
        base_and_max().prop_map(|(base, max)| Leaf::Equal { base, max }),
        base_and_max().prop_map(|(base, max)| Leaf::Full { base, max }),
        (
            base_and_max(),
            prop_oneof![3 => Just(2.0), 1 => Just(1.0), 2 => 1.0f64..4.0]
        )
            .prop_map(|((base, max), factor)| Leaf::Exponential { base, max, factor }),
        prop_oneof![
            Just(Duration::ZERO),
            (0u64..5_000).prop_map(Duration::from_millis),
            Just(Duration::from_secs(86_400 * 365)),
        ]
        .prop_map(Leaf::Constant),
        base_and_max().prop_map(|(base, max)| Leaf::Token { base, max }),
    ]
    .boxed()
}

fn adaptive_params() -> BoxedStrategy<AdaptiveParams> {
    (
        (1u64..120_000).prop_map(Duration::from_millis),
        prop_oneof![Just(1.0), 0.01f64..=1.0],
        1.0f64..3.0,
        0.0f64..5.0,
    )
        .prop_map(|(window, target, min, spread)| AdaptiveParams {
            window,
            target,
            min,
            max: min + spread,
        })
        .boxed()
}

fn spec() -> BoxedStrategy<Spec> {
    let hint_params = (
        prop_oneof![
            (1u64..600_000).prop_map(Duration::from_millis),
            Just(Duration::from_secs(u64::MAX / 2)),
        ],
        prop_oneof![
            Just(Duration::ZERO),
            (0u64..1_000).prop_map(Duration::from_millis)
        ],
    );
    prop_oneof![
        4 => leaf().prop_map(Spec::Leaf),
        1 => (adaptive_params(), leaf()).prop_map(|(p, l)| Spec::Adaptive(p, l)),
        2 => (hint_params.clone(), leaf()).prop_map(|((max_hint, jitter), l)| Spec::RetryAfter {
            max_hint,
            jitter,
            fallback: Box::new(Spec::Leaf(l)),
        }),
        1 => (hint_params, adaptive_params(), leaf()).prop_map(|((max_hint, jitter), p, l)| {
            Spec::RetryAfter {
                max_hint,
                jitter,
                fallback: Box::new(Spec::Adaptive(p, l)),
            }
        }),
    ]
    .boxed()
}

fn window_and_buckets() -> BoxedStrategy<(Duration, u32)> {
    (1u32..=10, 0u64..60_000)
        .prop_map(|(buckets, extra)| (Duration::from_millis(u64::from(buckets) + extra), buckets))
        .boxed()
}

fn breaker_settings() -> BoxedStrategy<BreakerSettings> {
    let mode = prop_oneof![
        (
            1u32..5,
            (1u64..60_000).prop_map(Duration::from_millis),
            proptest::option::of((class(), 1u32..4)),
        )
            .prop_map(
                |(threshold, window, class_threshold)| BreakerSpec::Consecutive {
                    threshold,
                    window,
                    class_threshold,
                }
            ),
        (
            prop_oneof![Just(1.0), 0.05f64..=1.0],
            1u32..6,
            window_and_buckets()
        )
            .prop_map(|(ratio, min_throughput, (window, buckets))| {
                BreakerSpec::FailureRate {
                    ratio,
                    min_throughput,
                    window,
                    buckets,
                }
            }),
    ];
    (
        mode,
        (1u64..20_000).prop_map(Duration::from_millis),
        1u32..4,
        prop_oneof![Just(BreakerScope::PerAttempt), Just(BreakerScope::PerCall)],
    )
        .prop_map(|(mode, recovery, probes, scope)| BreakerSettings {
            mode,
            recovery,
            probes,
            scope,
        })
        .boxed()
}

fn budget_settings() -> BoxedStrategy<BudgetSettings> {
    (
        (0u32..10, 1u64..60_000),
        prop_oneof![Just(None), (0.0f64..2.0, 0.0f64..3.0).prop_map(Some)],
        1u32..=10,
        proptest::array::uniform8(prop_oneof![
            6 => Just(Some(1u32)),
            2 => (0u32..4).prop_map(Some),
            1 => Just(None),
        ]),
    )
        .prop_map(|((max, w), ratio, buckets, costs)| {
            let window = Duration::from_millis(u64::from(buckets) + w);
            let kind = match ratio {
                None => BudgetSpec::Rolling { max, window },
                Some((ratio, floor)) => BudgetSpec::Ratio {
                    ratio,
                    floor,
                    window,
                },
            };
            BudgetSettings {
                kind,
                buckets,
                costs,
            }
        })
        .boxed()
}

fn policy_spec() -> BoxedStrategy<PolicySpec> {
    let caps = (
        1u32..=12,
        proptest::option::of(any::<u32>()),
        proptest::array::uniform8(prop_oneof![3 => Just(None), 1 => any::<u32>().prop_map(Some)]),
    );
    let time = (
        proptest::option::of(prop_oneof![
            (1u64..10_000).prop_map(Duration::from_millis),
            (10u64..600).prop_map(Duration::from_secs),
            Just(Duration::from_secs(100 * 365 * 86_400)),
            Just(Duration::MAX),
        ]),
        proptest::option::of(prop_oneof![
            (1u64..60_000).prop_map(Duration::from_millis),
            Just(Duration::MAX),
        ]),
        any::<bool>(),
    );
    let strategies = (
        prop_oneof![7 => spec().prop_map(Some), 1 => Just(None)],
        proptest::collection::vec((class(), spec()), 0..3),
    );
    let classes = (
        prop_oneof![
            2 => Just(redress::retry::DEFAULT_NON_RETRYABLE),
            1 => Just(ClassSet::EMPTY),
            // About two classes.
            1 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| a & b).prop_map(|bits| {
                ErrorClass::ALL
                    .into_iter()
                    .filter(|c| bits & (1 << c.index()) != 0)
                    .collect()
            }),
        ],
        prop_oneof![3 => Just(ErrorClass::Transient), 1 => class()],
    );
    let shared = (
        proptest::option::of(breaker_settings()),
        proptest::option::of(budget_settings()),
        any::<u64>(),
    );
    (caps, time, strategies, classes, shared)
        .prop_map(
            |(
                (max_attempts, unknown, raw_caps),
                (deadline, attempt_timeout, predict_deadline),
                (default_strategy, class_strategies),
                (non_retryable, timeout_class),
                (breaker, budget, seed),
            )| {
                // Caps are valid by construction: between 1 and max_attempts.
                let norm = |raw: u32| 1 + raw % max_attempts;
                PolicySpec {
                    max_attempts,
                    max_unknown: unknown.map(norm),
                    class_caps: raw_caps.map(|c| c.map(norm)),
                    deadline,
                    attempt_timeout,
                    default_strategy,
                    class_strategies,
                    non_retryable,
                    timeout_class,
                    predict_deadline,
                    breaker,
                    budget,
                    seed,
                }
            },
        )
        .boxed()
}

impl Leaf {
    fn build(&self) -> Arc<dyn Backoff> {
        match *self {
            Leaf::Decorrelated { base, max } => Arc::new(backoff::decorrelated_jitter(base, max)),
            Leaf::Equal { base, max } => Arc::new(backoff::equal_jitter(base, max)),
            Leaf::Full { base, max } => Arc::new(backoff::full_jitter(base, max)),
            Leaf::Exponential { base, max, factor } => {
                Arc::new(backoff::exponential(base, max).factor(factor))
            }
            Leaf::Constant(d) => Arc::new(backoff::constant(d)),
            Leaf::Token { base, max } => Arc::new(backoff::token_backoff(base, max)),
        }
    }
}

impl Spec {
    fn build(&self) -> Arc<dyn Backoff> {
        match self {
            Spec::Leaf(l) => l.build(),
            Spec::Adaptive(p, l) => Arc::new(
                backoff::adaptive(l.build())
                    .window(p.window)
                    .target_success(p.target)
                    .multipliers(p.min, p.max),
            ),
            Spec::RetryAfter {
                max_hint,
                jitter,
                fallback,
            } => Arc::new(
                backoff::retry_after_or(fallback.build())
                    .max_hint(*max_hint)
                    .jitter(*jitter),
            ),
        }
    }
}

impl BreakerSettings {
    fn build(&self) -> CircuitBreaker {
        let b: BreakerBuilder = match self.mode {
            BreakerSpec::Consecutive {
                threshold,
                window,
                class_threshold,
            } => {
                let b = CircuitBreaker::consecutive(threshold, window);
                match class_threshold {
                    Some((c, t)) => b.class_threshold(c, t),
                    None => b,
                }
            }
            BreakerSpec::FailureRate {
                ratio,
                min_throughput,
                window,
                buckets,
            } => CircuitBreaker::failure_rate(ratio, min_throughput, window).buckets(buckets),
        };
        b.recovery(self.recovery)
            .probes(self.probes)
            .build()
            .unwrap()
    }
}

impl BudgetSettings {
    fn build(&self) -> Budget {
        let mut b: BudgetBuilder = match self.kind {
            BudgetSpec::Rolling { max, window } => Budget::rolling(max, window),
            BudgetSpec::Ratio {
                ratio,
                floor,
                window,
            } => Budget::ratio(ratio, floor, window),
        };
        b = b.buckets(self.buckets);
        for c in ErrorClass::ALL {
            b = match self.costs[c.index()] {
                Some(cost) => b.cost(c, cost),
                None => b.never(c),
            };
        }
        b.build().unwrap()
    }
}

impl PolicySpec {
    /// A fresh policy (fresh breaker, budget and adaptive state) from these settings.
    fn build(&self) -> Policy {
        let mut r = Retry::builder()
            .max_attempts(self.max_attempts)
            .max_unknown_attempts(self.max_unknown)
            .non_retryable(self.non_retryable)
            .timeout_class(self.timeout_class)
            .predict_deadline(self.predict_deadline);
        for c in ErrorClass::ALL {
            if let Some(cap) = self.class_caps[c.index()] {
                r = r.class_max_attempts(c, cap);
            }
        }
        r = match self.deadline {
            Some(d) => r.deadline(d),
            None => r.no_deadline(),
        };
        if let Some(t) = self.attempt_timeout {
            r = r.attempt_timeout(t);
        }
        r = match &self.default_strategy {
            Some(s) => r.strategy(s.build()),
            None => r.no_default_strategy(),
        };
        for (c, s) in &self.class_strategies {
            r = r.class_strategy(*c, s.build());
        }
        if let Some(b) = &self.budget {
            r = r.budget(Arc::new(b.build()));
        }
        let mut p = Policy::builder().retry(r).seed(self.seed);
        if let Some(b) = &self.breaker {
            p = p.breaker(Arc::new(b.build())).breaker_scope(b.scope);
        }
        p.build().unwrap()
    }

    /// The strategy used for `class` (the last class strategy set for it wins).
    fn strategy_for(&self, class: ErrorClass) -> Option<&Spec> {
        self.class_strategies
            .iter()
            .rev()
            .find(|(c, _)| *c == class)
            .map(|(_, s)| s)
            .or(self.default_strategy.as_ref())
    }

    fn class_of(&self, outcome: &Outcome) -> Option<ErrorClass> {
        match outcome {
            Outcome::Failure(c) => Some(c.class),
            Outcome::TimedOut => Some(self.timeout_class),
            Outcome::Success | Outcome::Cancelled => None,
        }
    }
}

// =======================================================================================
// Random scripts and clocks
// =======================================================================================

/// How the fake clock moves before an input.
#[derive(Clone, Copy, Debug)]
enum TimeMove {
    Stay,
    Forward(Duration),
    Back(Duration),
    ToMax,
    To(u64),
}

impl TimeMove {
    fn apply(self, now: Instant) -> Instant {
        match self {
            TimeMove::Stay => now,
            TimeMove::Forward(d) => now + d,
            TimeMove::Back(d) => now - d,
            TimeMove::ToMax => Instant::MAX,
            TimeMove::To(t) => Instant::from_nanos(t),
        }
    }

    /// How long after the end of a sleep the driver wakes.
    fn wake_time(self, until: Instant) -> Instant {
        match self {
            TimeMove::Forward(d) => until + d,
            TimeMove::ToMax => Instant::MAX,
            TimeMove::To(t) => until.max(Instant::from_nanos(t)),
            TimeMove::Stay | TimeMove::Back(_) => until,
        }
    }

    /// The same move, never backwards.
    fn forward_only(self) -> Self {
        match self {
            TimeMove::Back(_) => TimeMove::Stay,
            m => m,
        }
    }
}

/// A failure's class, mostly one that the default policy retries.
fn failure_class() -> BoxedStrategy<ErrorClass> {
    prop_oneof![
        3 => select(vec![
            ErrorClass::Concurrency,
            ErrorClass::RateLimit,
            ErrorClass::ServerError,
            ErrorClass::Transient,
            ErrorClass::Unknown,
        ]),
        1 => class(),
    ]
    .boxed()
}

fn time_move() -> BoxedStrategy<TimeMove> {
    prop_oneof![
        3 => Just(TimeMove::Stay),
        6 => (0u64..5_000_000).prop_map(|n| TimeMove::Forward(Duration::from_nanos(n))),
        6 => (0u64..30_000).prop_map(|n| TimeMove::Forward(Duration::from_millis(n))),
        2 => (0u64..3_600_000).prop_map(|n| TimeMove::Forward(Duration::from_millis(n))),
        2 => (0u64..60_000).prop_map(|n| TimeMove::Back(Duration::from_millis(n))),
        1 => Just(TimeMove::ToMax),
        1 => any::<u64>().prop_map(TimeMove::To),
    ]
    .boxed()
}

#[derive(Clone, Debug)]
enum OutcomeSpec {
    Success,
    Failure(ErrorClass, Option<Duration>),
    TimedOut,
    Cancelled,
}

impl OutcomeSpec {
    fn outcome(&self) -> Outcome {
        match self {
            OutcomeSpec::Success => Outcome::Success,
            OutcomeSpec::Failure(c, None) => Outcome::failure(*c),
            OutcomeSpec::Failure(c, Some(h)) => {
                Outcome::Failure(Classification::new(*c).with_retry_after(*h))
            }
            OutcomeSpec::TimedOut => Outcome::TimedOut,
            OutcomeSpec::Cancelled => Outcome::Cancelled,
        }
    }
}

fn outcome_spec() -> BoxedStrategy<OutcomeSpec> {
    let hint = prop_oneof![
        6 => Just(None),
        2 => (0u64..120_000).prop_map(|n| Some(Duration::from_millis(n))),
        1 => Just(Some(Duration::from_secs(1_000_000_000))),
        1 => Just(Some(Duration::MAX)),
    ];
    prop_oneof![
        2 => Just(OutcomeSpec::Success),
        10 => (failure_class(), hint).prop_map(|(c, h)| OutcomeSpec::Failure(c, h)),
        2 => Just(OutcomeSpec::TimedOut),
        1 => Just(OutcomeSpec::Cancelled),
    ]
    .boxed()
}

/// Misuse and extra inputs around a regular one.
#[derive(Clone, Debug)]
enum Noise {
    None,
    /// While sleeping: a wake at a fraction (of 256) of the way to the end of the sleep.
    EarlyWake(u8),
    /// While sleeping: wake twice at the end.
    RepeatedWake,
    /// While an attempt runs: a wake.
    WakeWhileAttempting,
    /// While sleeping: an outcome.
    OutcomeWhileSleeping(OutcomeSpec),
    /// Chaos only: abort.
    Abort,
    /// Chaos only: shorten the sleep to a fraction (of 256) of it.
    Reschedule(u8),
}

impl Noise {
    fn is_chaos(&self) -> bool {
        matches!(self, Noise::Abort | Noise::Reschedule(_))
    }
}

fn noise() -> BoxedStrategy<Noise> {
    prop_oneof![
        10 => Just(Noise::None),
        2 => any::<u8>().prop_map(Noise::EarlyWake),
        1 => Just(Noise::RepeatedWake),
        1 => Just(Noise::WakeWhileAttempting),
        1 => outcome_spec().prop_map(Noise::OutcomeWhileSleeping),
        1 => Just(Noise::Abort),
        1 => any::<u8>().prop_map(Noise::Reschedule),
    ]
    .boxed()
}

#[derive(Clone, Debug)]
struct Op {
    time: TimeMove,
    outcome: OutcomeSpec,
    noise: Noise,
}

#[derive(Clone, Debug)]
struct Case {
    policy: PolicySpec,
    /// Calls made one after the other through the same policy (sharing breaker, budget
    /// and adaptive state).
    calls: usize,
    start: u64,
    /// Start with `start_untimed` when the policy allows it.
    untimed: bool,
    ops: Vec<Op>,
}

impl Case {
    /// The same case without misuse: no extra, early or out-of-order inputs.
    fn without_noise(&self) -> Self {
        let mut c = self.clone();
        for op in &mut c.ops {
            op.noise = Noise::None;
        }
        c
    }
}

fn case() -> BoxedStrategy<Case> {
    (
        policy_spec(),
        1usize..=4,
        prop_oneof![
            Just(0u64),
            0u64..1_000_000_000_000,
            Just(u64::MAX - 1_000_000_000),
            any::<u64>()
        ],
        any::<bool>(),
        proptest::collection::vec(
            (time_move(), outcome_spec(), noise()).prop_map(|(time, outcome, noise)| Op {
                time,
                outcome,
                noise,
            }),
            1..40,
        ),
    )
        .prop_map(|(policy, calls, start, untimed, ops)| Case {
            policy,
            calls,
            start,
            untimed,
            ops,
        })
        .boxed()
}

// =======================================================================================
// The driver and its trace
// =======================================================================================

#[derive(Clone, Debug, PartialEq)]
enum InputKind {
    Start,
    StartUntimed,
    Outcome(Outcome),
    Wake,
    Abort,
    Reschedule(Instant),
}

/// One input to the machine and everything observable around it.
#[derive(Clone, Debug, PartialEq)]
struct Input {
    kind: InputKind,
    /// The `now` passed with the input.
    now: Instant,
    /// The machine's own clock after the input (the latest `now` it accepted).
    clock: Instant,
    /// Whether the input was misuse the machine must ignore (out of order, or an early wake).
    misuse: bool,
    before: Option<Decision>,
    decision: Decision,
    events: Vec<EventRecord>,
    poll_timeout: Option<Instant>,
    finished: bool,
    attempt: u32,
    class_attempts: [u32; ErrorClass::COUNT],
    /// Budget units withdrawn during the input (at `clock`).
    withdrawn: u64,
    /// The machine's own measure of the call's time so far (`elapsed` at its latest `now`).
    elapsed: Duration,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct CallTrace {
    /// The instant the call's time is measured from (a timed start).
    start: Option<Instant>,
    inputs: Vec<Input>,
}

struct Driver<'p> {
    policy: &'p Policy,
    m: PolicyMachine<'p>,
    clock: Instant,
    trace: CallTrace,
}

impl<'p> Driver<'p> {
    fn new(policy: &'p Policy) -> Self {
        Self {
            policy,
            m: policy.machine(),
            clock: Instant::ZERO,
            trace: CallTrace::default(),
        }
    }

    fn input(&mut self, kind: InputKind, now: Instant) -> Decision {
        let before = (!self.trace.inputs.is_empty()).then(|| self.m.decision());
        let in_order = match (&kind, before) {
            (InputKind::Start | InputKind::StartUntimed, None) => true,
            (InputKind::Outcome(_), Some(Decision::Attempt { .. })) => true,
            (InputKind::Wake, Some(Decision::Sleep { .. })) => true,
            (InputKind::Abort, Some(d)) => !d.is_terminal(),
            (InputKind::Reschedule(t), Some(Decision::Sleep { until, .. })) => *t < until,
            _ => false,
        };
        // An early wake is ignored entirely: it does not even move the machine's clock.
        let early_wake = matches!(
            (&kind, before),
            (InputKind::Wake, Some(Decision::Sleep { until, .. })) if self.clock.max(now) < until
        );
        let clock = match kind {
            InputKind::Start => now,
            InputKind::StartUntimed => self.clock,
            _ if in_order && !early_wake => self.clock.max(now),
            _ => self.clock,
        };
        let budget = self.policy.retry().budget();
        let remaining_before = budget.map_or(0, |b| b.remaining(clock));
        let decision = match &kind {
            InputKind::Start => self.m.start(now),
            InputKind::StartUntimed => self.m.start_untimed(),
            InputKind::Outcome(o) => self.m.on_outcome(now, o.clone()),
            InputKind::Wake => self.m.on_wake(now),
            InputKind::Abort => self.m.abort(now),
            InputKind::Reschedule(t) => self.m.reschedule(now, *t),
        };
        let mut events = Vec::new();
        while let Some(e) = self.m.poll_event() {
            events.push(e.to_record());
        }
        let remaining_after = budget.map_or(0, |b| b.remaining(clock));
        self.clock = clock;
        if kind == InputKind::Start {
            self.trace.start = Some(now);
        }
        self.trace.inputs.push(Input {
            kind,
            now,
            clock: self.clock,
            misuse: !in_order || early_wake,
            before,
            decision,
            events,
            poll_timeout: self.m.poll_timeout(),
            finished: self.m.is_finished(),
            attempt: self.m.attempt(),
            class_attempts: ErrorClass::ALL.map(|c| self.m.attempts_of(c)),
            withdrawn: remaining_before.saturating_sub(remaining_after),
            elapsed: self.m.elapsed(Instant::ZERO),
        });
        decision
    }
}

/// Drives every call of `case` through a fresh policy; `chaos` adds aborts, reschedules
/// and wild getter calls.
fn run(case: &Case, chaos: bool) -> (Policy, Vec<CallTrace>) {
    let policy = case.policy.build();
    let traces = drive(&policy, case, chaos);
    (policy, traces)
}

fn drive(policy: &Policy, case: &Case, chaos: bool) -> Vec<CallTrace> {
    let mut now = Instant::from_nanos(case.start);
    let mut k = 0;
    let mut traces = Vec::new();
    for _ in 0..case.calls {
        let mut d = Driver::new(policy);
        if case.untimed && !policy.needs_clock() {
            d.input(InputKind::StartUntimed, now);
        } else {
            d.input(InputKind::Start, now);
        }
        let mut guard = 0;
        while !d.m.is_finished() {
            guard += 1;
            assert!(guard < 1_000, "the call never ended: {:#?}", d.trace);
            let op = &case.ops[k % case.ops.len()];
            k += 1;
            if op.noise.is_chaos() && !chaos {
                // Chaos noise is skipped outside chaos runs, but still consumes the op.
            } else if let Noise::Abort = op.noise {
                now = op.time.apply(now);
                d.input(InputKind::Abort, now);
                continue;
            }
            match d.m.decision() {
                Decision::Attempt { .. } => {
                    if let Noise::WakeWhileAttempting = op.noise {
                        d.input(InputKind::Wake, op.time.apply(now));
                    }
                    now = op.time.apply(now);
                    d.input(InputKind::Outcome(op.outcome.outcome()), now);
                }
                Decision::Sleep { until, .. } => {
                    match &op.noise {
                        Noise::EarlyWake(f) if d.clock < until => {
                            let span = until.saturating_duration_since(d.clock);
                            let t = d.clock + span.mul_f64(f64::from(*f) / 256.0);
                            d.input(InputKind::Wake, t.min(until - Duration::from_nanos(1)));
                        }
                        Noise::OutcomeWhileSleeping(o) => {
                            d.input(InputKind::Outcome(o.outcome()), now);
                        }
                        Noise::Reschedule(f) if chaos => {
                            let span = until.saturating_duration_since(d.clock);
                            let t = d.clock + span.mul_f64(f64::from(*f) / 256.0);
                            d.input(InputKind::Reschedule(t), now);
                        }
                        _ => {}
                    }
                    let until = match d.m.decision() {
                        Decision::Sleep { until, .. } => until,
                        _ => continue,
                    };
                    now = op.time.wake_time(until);
                    d.input(InputKind::Wake, now);
                    if let Noise::RepeatedWake = op.noise {
                        d.input(InputKind::Wake, now);
                    }
                }
                other => panic!("unfinished machine with terminal decision {other:?}"),
            }
        }
        // Misuse after the end: nothing changes.
        d.input(InputKind::Wake, now);
        d.input(InputKind::Outcome(Outcome::Success), now);
        if chaos {
            probe_getters(&d.m, now);
            let state = d.m.state();
            let mut resumed = policy.resume(&state);
            let _ = resumed.start(now);
            let _ = resumed.on_outcome(Instant::ZERO, Outcome::failure(ErrorClass::Unknown));
            let _ = resumed.on_wake(Instant::MAX);
            probe_getters(&resumed, Instant::ZERO);
        }
        traces.push(d.trace);
        // The next call starts later on the same clock.
        now = case.ops[k % case.ops.len()].time.forward_only().apply(now);
    }
    traces
}

fn probe_getters(m: &PolicyMachine<'_>, now: Instant) {
    for t in [Instant::ZERO, now, Instant::MAX] {
        let _ = m.elapsed(t);
    }
    let _ = (
        m.state(),
        m.stop_reason(),
        m.poll_timeout(),
        m.total_sleep(),
    );
    let _ = (m.last_class(), m.is_timed(), m.decision(), m.attempt());
}

/// What a regular (not misused) input saw.
type Regular = (InputKind, Instant, Decision, Vec<EventRecord>);

fn all_inputs(traces: &[CallTrace]) -> impl Iterator<Item = &Input> {
    traces.iter().flat_map(|t| t.inputs.iter())
}

fn retries(i: &Input) -> impl Iterator<Item = (Duration, Option<Duration>, &EventRecord)> {
    i.events.iter().filter_map(|e| match e.kind {
        EventKind::Retry { delay, retry_after } => Some((delay, retry_after, e)),
        _ => None,
    })
}

fn is_terminal_event(k: &EventKind) -> bool {
    matches!(
        k,
        EventKind::Success | EventKind::Stopped(_) | EventKind::CircuitRejected { .. }
    )
}

// =======================================================================================
// Strategy bounds, computed independently of the implementation
// =======================================================================================

fn from_nanos_u128(n: u128) -> Duration {
    let secs = u64::try_from(n / 1_000_000_000).unwrap_or(u64::MAX);
    Duration::new(secs, (n % 1_000_000_000) as u32)
}

/// `min(max, base · 2^k)`, exactly.
fn pow2(base: Duration, k: u32, max: Duration) -> Duration {
    let v = if k >= 100 {
        u128::MAX
    } else {
        base.as_nanos().saturating_mul(1u128 << k)
    };
    from_nanos_u128(v.min(max.as_nanos()))
}

/// `min(max, base · f)` in floating point.
fn scaled(base: Duration, f: f64, max: Duration) -> f64 {
    (base.as_secs_f64() * f).min(max.as_secs_f64())
}

/// Where a strategy's delay must lie, in seconds with a tolerance, or exactly.
#[derive(Debug)]
enum Bounds {
    Exact(Duration),
    Range { lo: f64, hi: f64 },
}

impl Bounds {
    fn range(lo: Duration, hi: Duration) -> Self {
        Bounds::Range {
            lo: lo.as_secs_f64(),
            hi: hi.as_secs_f64(),
        }
    }

    fn lo_hi(&self) -> (f64, f64) {
        match self {
            Bounds::Exact(d) => (d.as_secs_f64(), d.as_secs_f64()),
            Bounds::Range { lo, hi } => (*lo, *hi),
        }
    }

    fn contains(&self, d: Duration) -> bool {
        match self {
            Bounds::Exact(e) => d == *e,
            Bounds::Range { lo, hi } => {
                let s = d.as_secs_f64();
                // Float formulas round to the nanosecond, once per step.
                let eps = 4e-9 + 1e-9 * hi.abs();
                s >= lo - eps && s <= hi + eps
            }
        }
    }
}

fn leaf_bounds(l: &Leaf, n: u32, prev: Option<Duration>) -> Bounds {
    match *l {
        Leaf::Decorrelated { base, max } => {
            let p = prev.filter(|p| !p.is_zero()).unwrap_or(base);
            Bounds::range(base.min(max), p.saturating_mul(3).max(base).min(max))
        }
        Leaf::Equal { base, max } => {
            let cap = pow2(base, n, max);
            Bounds::range(cap / 2, cap)
        }
        Leaf::Full { base, max } => {
            Bounds::range(Duration::ZERO, pow2(base, n.saturating_sub(1), max))
        }
        Leaf::Exponential { base, max, factor } => {
            let k = n.saturating_sub(1);
            if factor == 2.0 {
                Bounds::Exact(pow2(base, k, max))
            } else {
                let v = scaled(base, factor.powf(f64::from(k)), max);
                Bounds::Range { lo: v, hi: v }
            }
        }
        Leaf::Constant(d) => Bounds::Exact(d),
        Leaf::Token { base, max } => {
            let cap = scaled(base, 1.5f64.powf(f64::from(n)), max);
            Bounds::Range {
                lo: cap / 2.0,
                hi: cap,
            }
        }
    }
}

fn bounds(s: &Spec, n: u32, prev: Option<Duration>, hint: Option<Duration>) -> Bounds {
    match s {
        Spec::Leaf(l) => leaf_bounds(l, n, prev),
        Spec::Adaptive(p, l) => {
            let fallback = leaf_bounds(l, n, prev);
            if let (Bounds::Exact(d), true) = (&fallback, p.min == 1.0 && p.max == 1.0) {
                return Bounds::Exact(*d);
            }
            let (lo, hi) = fallback.lo_hi();
            Bounds::Range {
                lo: lo * p.min,
                hi: hi * p.max,
            }
        }
        Spec::RetryAfter {
            max_hint,
            jitter,
            fallback,
        } => match hint {
            Some(h) => {
                let lo = h.min(*max_hint);
                if jitter.is_zero() {
                    Bounds::Exact(lo)
                } else {
                    Bounds::range(lo, lo.saturating_add(*jitter))
                }
            }
            None => bounds(fallback, n, prev, hint),
        },
    }
}

// =======================================================================================
// Machine properties
// =======================================================================================

proptest! {
    #![proptest_config(config())]

    #[test]
    fn attempts_never_exceed_max_attempts(case in case()) {
        let (_, traces) = run(&case, false);
        let max = case.policy.max_attempts;
        for t in &traces {
            let mut attempts = 0;
            for i in &t.inputs {
                if let Decision::Attempt { n, .. } = i.decision
                    && i.before != Some(i.decision)
                {
                    attempts += 1;
                    prop_assert_eq!(n, attempts, "attempts are numbered 1, 2, …");
                }
                prop_assert!(attempts <= max, "{} attempts > max {}", attempts, max);
                prop_assert!(i.attempt <= max);
            }
        }
    }

    #[test]
    fn unknown_attempts_never_exceed_max_unknown_attempts(case in case()) {
        let (_, traces) = run(&case, false);
        let Some(cap) = case.policy.max_unknown else { return Ok(()) };
        for t in &traces {
            let mut unknown = 0;
            for i in &t.inputs {
                if let (InputKind::Outcome(o), false) = (&i.kind, i.misuse)
                    && case.policy.class_of(o) == Some(ErrorClass::Unknown)
                {
                    unknown += 1;
                }
                prop_assert!(unknown <= cap, "{} unknown attempts > cap {}", unknown, cap);
                prop_assert!(i.class_attempts[ErrorClass::Unknown.index()] <= cap);
                if let (InputKind::Outcome(o), false) = (&i.kind, i.misuse)
                    && case.policy.class_of(o) == Some(ErrorClass::Unknown)
                    && unknown == cap
                {
                    prop_assert!(matches!(i.decision, Decision::Failed(_)),
                        "the unknown failure that reaches the cap is not retried: {:?}", i.decision);
                }
            }
        }
    }

    #[test]
    fn class_attempts_never_exceed_their_cap(case in case()) {
        let (_, traces) = run(&case, false);
        for t in &traces {
            let mut counts = [0u32; ErrorClass::COUNT];
            for i in &t.inputs {
                if let (InputKind::Outcome(o), false) = (&i.kind, i.misuse)
                    && let Some(c) = case.policy.class_of(o)
                {
                    counts[c.index()] += 1;
                }
                prop_assert_eq!(counts, i.class_attempts, "the machine counts every class");
                for c in ErrorClass::ALL {
                    if let Some(cap) = case.policy.class_caps[c.index()] {
                        prop_assert!(counts[c.index()] <= cap, "{}: {} > cap {}",
                            c, counts[c.index()], cap);
                    }
                }
            }
        }
    }

    #[test]
    fn no_decision_sleeps_past_the_deadline(case in case()) {
        let (_, traces) = run(&case, false);
        let Some(deadline) = case.policy.deadline else { return Ok(()) };
        for t in &traces {
            let start = t.start.unwrap();
            let end = start + deadline;
            for i in &t.inputs {
                match i.decision {
                    Decision::Sleep { until, .. } => {
                        prop_assert!(until < end, "sleep until {:?} ≥ deadline {:?}", until, end);
                    }
                    Decision::Attempt { deadline: Some(d), .. } => {
                        prop_assert!(d <= end, "attempt limit {:?} > deadline {:?}", d, end);
                    }
                    Decision::Attempt { deadline: None, .. } => {
                        prop_assert!(false, "an attempt without a time limit despite a deadline");
                    }
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn every_sleep_lies_within_its_strategys_bounds(case in case()) {
        let (policy, traces) = run(&case, false);
        for t in &traces {
            let mut prev = None;
            for i in &t.inputs {
                for (delay, hint, e) in retries(i) {
                    let class = e.class.unwrap();
                    let live = policy.retry().strategy_for(class).unwrap();
                    prop_assert!(delay <= live.max_delay(),
                        "{:?} > max_delay {:?}", delay, live.max_delay());
                    let spec = case.policy.strategy_for(class).unwrap();
                    let b = bounds(spec, e.attempt, prev, hint);
                    prop_assert!(b.contains(delay),
                        "{:?} outside {:?} (attempt {}, prev {:?}, hint {:?}, {:?})",
                        delay, b, e.attempt, prev, hint, spec);
                    if let Decision::Sleep { delay: slept, .. } = i.decision {
                        prop_assert_eq!(slept, delay);
                    }
                    prev = Some(delay);
                }
            }
        }
    }

    #[test]
    fn non_retryable_classes_are_never_retried(case in case()) {
        let (_, traces) = run(&case, false);
        for i in all_inputs(&traces) {
            if let (InputKind::Outcome(o), false) = (&i.kind, i.misuse)
                && let Some(c) = case.policy.class_of(o)
                && case.policy.non_retryable.contains(c)
            {
                prop_assert_eq!(i.decision, Decision::Failed(StopReason::NonRetryable(c)));
                prop_assert_eq!(retries(i).count(), 0);
                prop_assert_eq!(i.withdrawn, 0);
            }
        }
    }

    #[test]
    fn same_seed_and_outcomes_give_the_same_decisions(case in case()) {
        let (_, a) = run(&case, false);
        let (_, b) = run(&case, false);
        prop_assert_eq!(a, b);
    }

    #[test]
    fn clocks_that_go_backwards_or_jump_never_panic(case in case()) {
        let (_, traces) = run(&case, true);
        for t in &traces {
            let mut elapsed = Duration::ZERO;
            let mut clock = Instant::ZERO;
            for i in &t.inputs {
                prop_assert!(i.clock >= clock, "the machine's clock went backwards");
                clock = i.clock;
                if let Some(start) = t.start {
                    prop_assert_eq!(i.elapsed, i.clock - start,
                        "the machine's clock is the latest `now` it accepted");
                }
                if let Decision::Sleep { until, .. } = i.decision {
                    prop_assert!(until >= i.clock, "a sleep that ended before it began");
                }
                for e in &i.events {
                    prop_assert!(e.elapsed >= elapsed, "elapsed time went backwards");
                    elapsed = e.elapsed;
                }
            }
            prop_assert!(t.inputs.iter().any(|i| i.finished), "every call ends");
        }
    }

    #[test]
    fn the_machine_never_busy_loops(case in case()) {
        let (_, traces) = run(&case, false);
        for i in all_inputs(&traces) {
            let now = i.clock.max(i.now);
            let ok = i.finished
                || matches!(i.decision, Decision::Attempt { .. })
                || i.poll_timeout.is_some_and(|t| t > now);
            prop_assert!(ok, "busy loop after {:?} at {:?}: {:?}, poll_timeout {:?}",
                i.kind, now, i.decision, i.poll_timeout);
            prop_assert_eq!(i.finished, i.decision.is_terminal());
            if let Decision::Sleep { until, .. } = i.decision {
                prop_assert_eq!(i.poll_timeout, Some(until));
            }
        }
    }

    #[test]
    fn early_or_repeated_wake_changes_nothing(case in case()) {
        let (_, noisy) = run(&case, false);
        for t in &noisy {
            let mut prev: Option<&Input> = None;
            for i in &t.inputs {
                if i.misuse {
                    let p = prev.unwrap();
                    prop_assert_eq!(Some(i.decision), i.before);
                    prop_assert_eq!(i.decision, p.decision);
                    prop_assert!(i.events.is_empty(), "misuse emitted {:?}", i.events);
                    prop_assert_eq!(i.poll_timeout, p.poll_timeout);
                    prop_assert_eq!(i.attempt, p.attempt);
                    prop_assert_eq!(i.class_attempts, p.class_attempts);
                    prop_assert_eq!(i.withdrawn, 0);
                }
                prev = Some(i);
            }
        }
        // And the regular inputs see exactly what they would have seen without the misuse.
        let (_, quiet) = run(&case.without_noise(), false);
        let regular = |traces: &[CallTrace]| -> Vec<Vec<Regular>> {
            traces
                .iter()
                .map(|t| {
                    t.inputs
                        .iter()
                        .filter(|i| !i.misuse)
                        .map(|i| (i.kind.clone(), i.now, i.decision, i.events.clone()))
                        .collect()
                })
                .collect()
        };
        prop_assert_eq!(regular(&noisy), regular(&quiet));
    }

    #[test]
    fn terminal_failure_spends_no_budget_and_announces_no_retry(case in case()) {
        let (policy, traces) = run(&case, false);
        let budget = policy.retry().budget();
        for t in &traces {
            let mut announced = 0;
            let mut terminal = None;
            for i in &t.inputs {
                let n = retries(i).count() as u32;
                announced += n;
                if let Some(b) = budget {
                    let cost: u64 = retries(i)
                        .map(|(_, _, e)| u64::from(b.cost(e.class.unwrap()).unwrap()))
                        .sum();
                    prop_assert_eq!(i.withdrawn, cost,
                        "withdrawals must match the retries announced by {:?}", i.kind);
                }
                if i.finished && terminal.is_none() {
                    terminal = Some(i);
                }
            }
            let last = terminal.unwrap();
            if let Decision::Failed(_) = last.decision {
                prop_assert_eq!(retries(last).count(), 0, "the failure that ends a call is not retried");
                prop_assert_eq!(last.withdrawn, 0);
                let ended_asleep = u32::from(last.kind == InputKind::Wake);
                prop_assert_eq!(announced, last.attempt.saturating_sub(1) + ended_asleep,
                    "retries announced vs attempts run ({:?})", last.kind);
            }
        }
    }

    #[test]
    fn events_match_decisions(case in case()) {
        let (_, traces) = run(&case, false);
        for i in all_inputs(&traces) {
            let changed = i.before != Some(i.decision);
            let rs: Vec<_> = retries(i).map(|(d, _, _)| d).collect();
            let terminal: Vec<_> = i.events.iter().filter(|e| is_terminal_event(&e.kind)).collect();
            if !changed {
                prop_assert!(i.events.is_empty(), "{:?} changed nothing but emitted {:?}", i.kind, i.events);
                continue;
            }
            match i.decision {
                Decision::Sleep { delay, .. } => {
                    prop_assert_eq!(rs, vec![delay], "one retry event announces each sleep");
                }
                Decision::Attempt { .. } => {
                    // After a failure, an immediate retry; after a start or a wake, none.
                    match i.kind {
                        // (A delay also ends at once when the clock is at its end.)
                        InputKind::Outcome(_) => prop_assert!(
                            rs.len() == 1 && i.clock + rs[0] <= i.clock,
                            "an immediate attempt follows one zero-delay retry event: {:?}", rs
                        ),
                        _ => prop_assert!(rs.is_empty()),
                    }
                }
                Decision::Rejected { .. } => {
                    // A zero-delay retry may be rejected by the breaker in the same input.
                    prop_assert!(rs.is_empty() || (rs.len() == 1 && i.clock + rs[0] <= i.clock),
                        "{:?}", rs);
                }
                Decision::Succeeded | Decision::Failed(_) => prop_assert!(rs.is_empty()),
            }
            if i.decision.is_terminal() {
                prop_assert_eq!(terminal.len(), 1, "one terminal event: {:?}", i.events);
                let expected = match i.decision {
                    Decision::Succeeded => EventKind::Success,
                    Decision::Failed(r) => EventKind::Stopped(r),
                    Decision::Rejected { until } => EventKind::CircuitRejected { until },
                    _ => unreachable!(),
                };
                prop_assert_eq!(terminal[0].kind, expected);
            } else {
                prop_assert!(terminal.is_empty(), "terminal event without a terminal decision");
            }
        }
    }
}

// =======================================================================================
// Breaker and budget, driven directly
// =======================================================================================

#[derive(Clone, Debug)]
enum BreakerOp {
    Acquire(usize),
    Record(usize, u8),
    Drop(usize),
    Time(TimeMove),
}

fn breaker_ops() -> BoxedStrategy<Vec<BreakerOp>> {
    let op = prop_oneof![
        4 => (0usize..6).prop_map(BreakerOp::Acquire),
        3 => (0usize..6, 0u8..4).prop_map(|(c, o)| BreakerOp::Record(c, o)),
        1 => (0usize..6).prop_map(BreakerOp::Drop),
        3 => prop_oneof![
            4 => (0u64..2_000).prop_map(|n| TimeMove::Forward(Duration::from_millis(n))),
            1 => (0u64..2_000).prop_map(|n| TimeMove::Back(Duration::from_millis(n))),
            1 => (0u64..100_000).prop_map(|n| TimeMove::Forward(Duration::from_millis(n))),
            1 => Just(TimeMove::ToMax),
        ]
        .prop_map(BreakerOp::Time),
    ];
    proptest::collection::vec(op, 1..120).boxed()
}

fn breaker_builder() -> BoxedStrategy<BreakerBuilder> {
    (
        prop_oneof![
            (1u32..4, 1u64..5_000)
                .prop_map(|(t, w)| CircuitBreaker::consecutive(t, Duration::from_millis(w))),
            (0.1f64..=1.0, 1u32..4, 10u64..5_000)
                .prop_map(|(r, n, w)| CircuitBreaker::failure_rate(r, n, Duration::from_millis(w))),
        ],
        1u64..3_000,
        1u32..5,
    )
        .prop_map(|(b, recovery, probes)| {
            b.recovery(Duration::from_millis(recovery)).probes(probes)
        })
        .boxed()
}

/// Outstanding probe permits of the breaker's current half-open generation.
fn live_probes(b: &CircuitBreaker, held: &[Vec<Permit<'_>>]) -> u32 {
    held.iter()
        .flatten()
        .filter(|p| p.is_probe() && p.generation() == b.generation())
        .count() as u32
}

fn breaker_outcome(o: u8) -> BreakerOutcome {
    match o {
        0 => BreakerOutcome::Success,
        1 => BreakerOutcome::Ignored,
        2 => BreakerOutcome::Failure(ErrorClass::Permanent),
        _ => BreakerOutcome::Failure(ErrorClass::ServerError),
    }
}

/// Withdrawal times: bursts, window-sized gaps, steps back (a caller that read its clock
/// before another's withdrawal) and far jumps, including to just before powers of two.
fn withdraw_times() -> BoxedStrategy<Vec<(u64, ErrorClass)>> {
    let step = prop_oneof![
        6 => Just(0i128),
        6 => 0i128..5_000_000,
        6 => 0i128..3_000_000_000,
        2 => -3_000_000_000i128..0,
        1 => 0i128..100_000_000_000,
        1 => any::<u64>().prop_map(i128::from),
    ];
    (
        prop_oneof![
            Just(0u64),
            any::<u64>(),
            (40u32..64, 0u64..10_000_000_000)
                .prop_map(|(p, back)| (1u64 << p).saturating_sub(back)),
        ],
        proptest::collection::vec((step, class()), 1..200),
    )
        .prop_map(|(start, steps)| {
            let mut t = start;
            steps
                .into_iter()
                .map(|(dt, c)| {
                    t = u64::try_from((i128::from(t) + dt).max(0)).unwrap_or(u64::MAX);
                    (t, c)
                })
                .collect()
        })
        .boxed()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn half_open_breaker_never_admits_more_probes_than_configured(
        builder in breaker_builder(),
        ops in breaker_ops(),
    ) {
        let b = builder.build().unwrap();
        let probes = b.config().probes;
        let mut held: Vec<Vec<Permit<'_>>> = (0..6).map(|_| Vec::new()).collect();
        let mut now = Instant::ZERO;
        for op in ops {
            match op {
                BreakerOp::Acquire(c) => {
                    let half_open = b.state() == CircuitState::HalfOpen;
                    let live = live_probes(&b, &held);
                    match b.try_acquire(now) {
                        Ok(p) => {
                            prop_assert_eq!(p.is_probe(), b.state() == CircuitState::HalfOpen);
                            if half_open {
                                prop_assert!(live < probes, "admitted probe {} of {}", live + 1, probes);
                            }
                            held[c].push(p);
                        }
                        Err(r) => {
                            prop_assert!(b.state() != CircuitState::Closed);
                            if half_open {
                                prop_assert_eq!(live, probes,
                                    "a free probe slot was refused: the breaker is wedged");
                            } else {
                                prop_assert!(r.until > now, "open until {:?}, now {:?}", r.until, now);
                            }
                        }
                    }
                }
                BreakerOp::Record(c, o) => {
                    if !held[c].is_empty() {
                        let p = held[c].remove(0);
                        let _ = b.record(now, p, breaker_outcome(o));
                    }
                }
                BreakerOp::Drop(c) => {
                    if !held[c].is_empty() {
                        drop(held[c].remove(0));
                    }
                }
                BreakerOp::Time(m) => now = m.apply(now),
            }
            if b.state() == CircuitState::HalfOpen {
                let live = live_probes(&b, &held);
                prop_assert!(live <= probes, "{} probes out of {}", live, probes);
            }
        }
        // Every caller gone: a half-open breaker admits a probe again.
        held.clear();
        if b.state() == CircuitState::HalfOpen {
            prop_assert!(b.try_acquire(now).is_ok(), "dropped probes wedged the breaker");
        }
    }

    #[test]
    fn budget_never_allows_more_than_its_cap_in_any_window(
        max in 0u32..6,
        window in prop_oneof![
            (10u64..5_000).prop_map(Duration::from_millis),
            (20u32..34).prop_map(|p| Duration::from_nanos(1 << p)),
        ],
        buckets in prop_oneof![1u32..=10, Just(8), Just(16)],
        costs in proptest::array::uniform8(prop_oneof![4 => Just(Some(1u32)), 1 => (0u32..3).prop_map(Some), 1 => Just(None)]),
        times in withdraw_times(),
    ) {
        let buckets = buckets.min(u32::try_from(window.as_millis()).unwrap_or(u32::MAX)).max(1);
        let mut builder = Budget::rolling(max, window).buckets(buckets);
        for c in ErrorClass::ALL {
            builder = match costs[c.index()] {
                Some(n) => builder.cost(c, n),
                None => builder.never(c),
            };
        }
        let budget = builder.build().unwrap();
        // The budget's own timeline: time that went backwards is clamped to the latest
        // instant a (non-free) withdrawal was checked at.
        let mut latest = 0;
        let mut granted: Vec<(u64, u64)> = Vec::new();
        for (t, c) in times {
            let cost = costs[c.index()];
            if cost.is_some_and(|n| n > 0) {
                latest = latest.max(t);
            }
            if budget.withdraw(Instant::from_nanos(t), c) {
                granted.push((latest, u64::from(cost.unwrap())));
            } else {
                prop_assert!(costs[c.index()].is_none_or(|n| n > 0), "a free retry was refused");
            }
        }
        let w = u64::try_from(window.as_nanos()).unwrap();
        for (i, &(t, _)) in granted.iter().enumerate() {
            let in_window: u64 = granted[i..]
                .iter()
                .take_while(|(u, _)| *u < t.saturating_add(w))
                .map(|(_, n)| n)
                .sum();
            prop_assert!(in_window <= u64::from(max),
                "{} units withdrawn in [{}, {}+{:?}) with cap {}", in_window, t, t, window, max);
        }
    }
}

// =======================================================================================
// Regressions: the smallest cases the properties above once found
// =======================================================================================

/// `the_machine_never_busy_loops`: at `Instant::MAX` a sleep cannot end after `now`, so the
/// retry runs at once instead of asking for a timer that is already due.
#[test]
fn a_retry_at_the_end_of_time_does_not_ask_for_a_timer_already_due() {
    let policy = Retry::builder()
        .no_deadline()
        .max_unknown_attempts(None)
        .strategy(backoff::constant(Duration::from_nanos(1)))
        .policy()
        .unwrap();
    let mut m = policy.machine();
    assert!(matches!(
        m.start(Instant::MAX),
        Decision::Attempt { n: 1, .. }
    ));
    let d = m.on_outcome(Instant::MAX, Outcome::failure(ErrorClass::Transient));
    assert!(matches!(d, Decision::Attempt { n: 2, .. }), "{d:?}");
    let e = m.poll_event().unwrap();
    assert!(matches!(e.kind, EventKind::Retry { delay, .. } if delay == Duration::from_nanos(1)));
}

/// `budget_never_allows_more_than_its_cap_in_any_window`: bucket epochs once wrapped far
/// from the clock's epoch, and a wrapped epoch's withdrawals were never counted.
#[test]
fn budget_counts_withdrawals_far_from_the_clocks_epoch() {
    let b = Budget::rolling(1, Duration::from_millis(10))
        .buckets(1)
        .build()
        .unwrap();
    assert!(b.withdraw(
        Instant::from_nanos(7_258_649_287_266_583_201),
        ErrorClass::Auth
    ));
    let late = Instant::from_nanos(13_008_436_597_860_000_000);
    assert!(b.withdraw(late, ErrorClass::Auth));
    assert!(!b.withdraw(late, ErrorClass::Auth), "one retry per window");
}

/// `terminal_failure_spends_no_budget_and_announces_no_retry` (withdrawals match retries):
/// a withdrawal dated before a newer one was granted without being counted.
#[test]
fn budget_counts_withdrawals_whose_clock_went_backwards() {
    let b = Budget::rolling(1, Duration::from_secs(10)).build().unwrap();
    assert!(b.withdraw(Instant::from_secs(20), ErrorClass::Transient));
    assert!(
        !b.withdraw(Instant::from_millis(19_500), ErrorClass::Transient),
        "half a second earlier is the same window"
    );
    assert_eq!(b.remaining(Instant::from_secs(5)), 0);
}
