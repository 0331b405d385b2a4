//! Cross-driver conformance: one table of scenarios (a policy and a script of attempt
//! results), each run through the blocking driver, the async loop on tokio's, smol's and
//! async-std's executors, and a machine driven by hand. Every run uses the same seed and the
//! same fake clock, and all five must produce the identical event trace and result.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)]

use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redress::backoff::{
    constant, decorrelated_jitter, equal_jitter, exponential, full_jitter, retry_after_or,
    token_backoff,
};
use redress::breaker::BreakerOutcome;
use redress::drive::ManualSleeper;
use redress::event::{EventRecord, Recorder};
use redress::{
    BreakerScope, Budget, CircuitBreaker, ClassSet, Classification, Clock, Decision, ErrorClass,
    Instant, ManualClock, Outcome, Policy, PolicyBuilder, Retry, RetryBuilder, StopReason,
};

use ErrorClass::{Permanent, RateLimit, ServerError, Transient, Unknown};

/// A failure of a known class, with an optional Retry-After hint.
#[derive(Debug)]
struct Fail(ErrorClass, Option<Duration>);

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Error for Fail {}

fn classify(e: &Fail) -> Classification {
    Classification {
        class: e.0,
        retry_after: e.1,
        details: None,
    }
}

fn reject_503(v: &u32) -> Option<ErrorClass> {
    (*v == 503).then_some(ServerError)
}

/// One attempt of a script: how long it takes on the fake clock, and what it returns.
#[derive(Clone, Copy, Debug)]
struct Step {
    takes: Duration,
    result: Result<u32, (ErrorClass, Option<Duration>)>,
}

fn ok() -> Step {
    Step {
        takes: Duration::ZERO,
        result: Ok(200),
    }
}
fn val(v: u32) -> Step {
    Step {
        takes: Duration::ZERO,
        result: Ok(v),
    }
}
fn err(c: ErrorClass) -> Step {
    Step {
        takes: Duration::ZERO,
        result: Err((c, None)),
    }
}
fn hint(c: ErrorClass, ms: u64) -> Step {
    Step {
        takes: Duration::ZERO,
        result: Err((c, Some(Duration::from_millis(ms)))),
    }
}
impl Step {
    fn taking(mut self, ms: u64) -> Self {
        self.takes = Duration::from_millis(ms);
        self
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

type MakePolicy = fn(PolicyBuilder) -> PolicyBuilder;

struct Scenario {
    name: &'static str,
    policy: MakePolicy,
    script: Vec<Step>,
    defer: bool,
}

fn sc(name: &'static str, policy: MakePolicy, script: Vec<Step>) -> Scenario {
    Scenario {
        name,
        policy,
        script,
        defer: false,
    }
}

fn retry(r: RetryBuilder) -> RetryBuilder {
    r
}

fn exp() -> RetryBuilder {
    Retry::builder().strategy(exponential(ms(100), ms(1000)))
}

fn breaker_consecutive(n: u32) -> Arc<CircuitBreaker> {
    Arc::new(
        CircuitBreaker::consecutive(n, Duration::from_secs(10))
            .recovery(Duration::from_secs(5))
            .build()
            .unwrap(),
    )
}

fn scenarios() -> Vec<Scenario> {
    let mut v = vec![
        sc("success at once, default policy", |p| p, vec![ok()]),
        sc(
            "transient then success",
            |p| p.retry(exp()),
            vec![err(Transient), ok()],
        ),
        sc(
            "every attempt fails: max attempts",
            |p| p.retry(exp().max_attempts(3)),
            vec![err(Transient); 3],
        ),
        sc(
            "permanent failure is not retried",
            |p| p.retry(exp()),
            vec![err(Permanent)],
        ),
        sc(
            "unknown failures hit their cap",
            |p| p.retry(exp()),
            vec![err(Unknown), err(Unknown)],
        ),
        sc(
            "per-class cap on rate limits",
            |p| p.retry(exp().class_max_attempts(RateLimit, 2)),
            vec![err(RateLimit), err(RateLimit)],
        ),
        sc(
            "retry-after hints are honoured",
            |p| {
                p.retry(
                    exp()
                        .class_strategy(RateLimit, retry_after_or(constant(ms(50))).jitter(ms(10))),
                )
            },
            vec![hint(RateLimit, 300), err(RateLimit), ok()],
        ),
        sc(
            "a sleep past the deadline is not taken",
            |p| p.retry(exp().deadline(ms(250))),
            vec![err(Transient), err(Transient), ok()],
        ),
        sc(
            "no strategy for the class",
            |p| {
                p.retry(
                    Retry::builder()
                        .no_default_strategy()
                        .class_strategy(Transient, constant(ms(10))),
                )
            },
            vec![err(Transient), err(ServerError)],
        ),
        sc(
            "decorrelated jitter is seeded",
            |p| {
                p.retry(retry(
                    Retry::builder().strategy(decorrelated_jitter(ms(10), ms(500))),
                ))
            },
            vec![err(Transient), err(ServerError), err(Transient), ok()],
        ),
        sc(
            "equal jitter is seeded",
            |p| p.retry(Retry::builder().strategy(equal_jitter(ms(10), ms(500)))),
            vec![err(Transient), err(Transient), ok()],
        ),
        sc(
            "full jitter is seeded",
            |p| p.retry(Retry::builder().strategy(full_jitter(ms(10), ms(500)))),
            vec![err(ServerError), err(ServerError), ok()],
        ),
        sc(
            "token backoff",
            |p| p.retry(Retry::builder().strategy(token_backoff(ms(10), ms(500)))),
            vec![err(Transient), ok()],
        ),
        sc(
            "rejected values are retried",
            |p| p.retry(exp()),
            vec![val(503), val(503), ok()],
        ),
        sc(
            "the last rejected value is kept",
            |p| p.retry(exp().max_attempts(2)),
            vec![val(503), val(503)],
        ),
        sc(
            "rolling budget runs out",
            |p| {
                let b = Budget::rolling(1, Duration::from_secs(10)).build().unwrap();
                p.retry(exp().budget(Arc::new(b)))
            },
            vec![err(Transient), err(Transient), ok()],
        ),
        sc(
            "ratio budget with a floor",
            |p| {
                let b = Budget::ratio(0.5, 0.2, Duration::from_secs(10))
                    .build()
                    .unwrap();
                p.retry(exp().budget(Arc::new(b)))
            },
            vec![err(Transient), err(Transient), err(Transient), ok()],
        ),
        sc(
            "budget never pays for rate limits",
            |p| {
                let b = Budget::rolling(10, Duration::from_secs(10))
                    .never(RateLimit)
                    .build()
                    .unwrap();
                p.retry(exp().budget(Arc::new(b)))
            },
            vec![err(Transient), err(RateLimit)],
        ),
        sc(
            "breaker opens mid-call and rejects the next attempt",
            |p| p.retry(exp()).breaker(breaker_consecutive(2)),
            vec![err(Transient), err(Transient), ok()],
        ),
        sc(
            "per-call breaker sees only the final result",
            |p| {
                p.retry(exp())
                    .breaker(breaker_consecutive(2))
                    .breaker_scope(BreakerScope::PerCall)
            },
            vec![err(Transient), err(Transient), ok()],
        ),
        sc(
            "failure-rate breaker",
            |p| {
                let b = CircuitBreaker::failure_rate(0.5, 3, Duration::from_secs(10))
                    .build()
                    .unwrap();
                p.retry(exp()).breaker(Arc::new(b))
            },
            vec![err(ServerError), ok()],
        ),
        sc(
            "an open breaker rejects the call at once",
            |p| {
                let b = breaker_consecutive(1);
                let permit = b.try_acquire(Instant::ZERO).unwrap();
                b.record(Instant::ZERO, permit, BreakerOutcome::Failure(Transient));
                p.retry(exp()).breaker(b)
            },
            vec![ok()],
        ),
        sc(
            "slow attempts use up the deadline",
            |p| p.retry(exp().deadline(ms(700))),
            vec![
                err(Transient).taking(200),
                err(Transient).taking(200),
                err(Transient).taking(200),
            ],
        ),
        sc(
            "deadline prediction refuses a hopeless retry",
            |p| {
                p.retry(
                    Retry::builder()
                        .strategy(constant(ms(100)))
                        .deadline(ms(650))
                        .predict_deadline(true),
                )
            },
            vec![err(Transient).taking(300), err(Transient).taking(300), ok()],
        ),
        sc(
            "zero delays retry at once",
            |p| p.retry(Retry::builder().strategy(constant(Duration::ZERO))),
            vec![err(Transient), err(ServerError), ok()],
        ),
        sc(
            "permanent errors made retryable",
            |p| p.retry(exp().non_retryable(ClassSet::of(&[ErrorClass::Auth]))),
            vec![err(Permanent), ok()],
        ),
        sc(
            "no clock needed: untimed start",
            |p| {
                let b = Budget::rolling(5, Duration::from_secs(10)).build().unwrap();
                p.retry(exp().no_deadline().budget(Arc::new(b)))
            },
            vec![err(Transient).taking(40), ok()],
        ),
    ];
    v.push(Scenario {
        defer: true,
        ..sc(
            "deferral ends the call with retry-at",
            |p| p.retry(exp()),
            vec![err(Transient)],
        )
    });
    v
}

/// What a run ends with, comparable across drivers.
#[derive(Debug, PartialEq)]
enum End {
    Ok(u32),
    Err {
        reason: StopReason,
        attempts: u32,
        last_class: Option<ErrorClass>,
        value: Option<u32>,
    },
}

type Trace = (End, Vec<EventRecord>);

fn build(s: &Scenario, rec: &Recorder) -> Policy {
    (s.policy)(Policy::builder().seed(42).operation("conformance"))
        .hook(rec.clone())
        .build()
        .unwrap()
}

/// Runs one attempt of the script on the fake clock.
fn attempt(script: &[Step], n: &mut usize, clock: &ManualClock) -> Result<u32, Fail> {
    let step = script.get(*n).copied().unwrap_or_else(ok);
    *n += 1;
    clock.advance(step.takes);
    step.result.map_err(|(c, h)| Fail(c, h))
}

fn end_of(r: Result<u32, redress::RetryError<Fail, u32>>) -> End {
    match r {
        Ok(v) => End::Ok(v),
        Err(e) => End::Err {
            reason: e.reason(),
            attempts: e.attempts(),
            last_class: e.last_class(),
            value: e.value().copied(),
        },
    }
}

fn blocking(s: &Scenario) -> Trace {
    let rec = Recorder::default();
    let policy = build(s, &rec);
    let clock = ManualClock::new(Instant::ZERO);
    let ctx = policy
        .context("conformance")
        .classify(classify)
        .classify_result(reject_503)
        .deferring(s.defer);
    let mut n = 0;
    let r =
        redress_blocking::RunBlocking::run_with(&ctx, &ManualSleeper::new(clock.clone()), |_| {
            attempt(&s.script, &mut n, &clock)
        });
    (end_of(r), rec.take())
}

#[derive(Clone, Copy)]
enum Executor {
    Tokio,
    Smol,
    AsyncStd,
}

fn on_async(s: &Scenario, exec: Executor) -> Trace {
    let rec = Recorder::default();
    let policy = build(s, &rec);
    let clock = ManualClock::new(Instant::ZERO);
    let sleeper = ManualSleeper::new(clock.clone());
    let ctx = policy
        .context("conformance")
        .classify(classify)
        .classify_result(reject_503)
        .deferring(s.defer);
    let mut n = 0;
    let op = async |_| attempt(&s.script, &mut n, &clock);
    let r = match exec {
        Executor::Tokio => tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(redress_tokio::RunAsync::run_with(&ctx, &sleeper, op)),
        Executor::Smol => smol::block_on(redress_smol::RunAsync::run_with(&ctx, &sleeper, op)),
        Executor::AsyncStd => {
            async_std::task::block_on(redress_smol::RunAsync::run_with(&ctx, &sleeper, op))
        }
    };
    (end_of(r), rec.take())
}

/// The same scenario with the machine driven by hand, as the drivers document the loop.
fn by_hand(s: &Scenario) -> Trace {
    let rec = Recorder::default();
    let policy = build(s, &rec);
    let clock = ManualClock::new(Instant::ZERO);
    let mut m = policy
        .machine()
        .with_operation("conformance")
        .deferring(s.defer);
    let mut n = 0;
    let mut value = None;
    let mut d = if policy.needs_clock() {
        m.start(clock.now())
    } else {
        m.start_untimed()
    };
    loop {
        while let Some(e) = m.poll_event() {
            policy.emit(&e);
        }
        d = match d {
            Decision::Attempt { .. } => {
                let outcome = match attempt(&s.script, &mut n, &clock) {
                    Ok(v) => match reject_503(&v) {
                        None => {
                            value = Some(v);
                            Outcome::Success
                        }
                        Some(c) => {
                            value = Some(v);
                            Outcome::failure(c)
                        }
                    },
                    Err(e) => {
                        value = None;
                        Outcome::Failure(classify(&e))
                    }
                };
                let now = if matches!(outcome, Outcome::Success) && !m.is_timed() {
                    Instant::ZERO
                } else {
                    clock.now()
                };
                m.on_outcome(now, outcome)
            }
            Decision::Sleep { until, .. } => {
                if until > clock.now() {
                    clock.set(until);
                }
                m.on_wake(clock.now())
            }
            Decision::Succeeded => {
                return (End::Ok(value.unwrap()), rec.take());
            }
            Decision::Failed(_) | Decision::Rejected { .. } => {
                let end = End::Err {
                    reason: m.stop_reason().unwrap(),
                    attempts: m.attempt(),
                    last_class: m.last_class(),
                    value: value.filter(|v| *v == 503),
                };
                return (end, rec.take());
            }
        };
    }
}

#[test]
fn every_driver_produces_the_trace_of_the_machine_driven_by_hand() {
    let all = scenarios();
    assert!(all.len() >= 25, "{} scenarios", all.len());
    let mut reasons = std::collections::BTreeSet::new();
    for s in &all {
        let expected = by_hand(s);
        if let End::Err { reason, .. } = &expected.0 {
            reasons.insert(reason.name());
        }
        assert!(!expected.1.is_empty(), "{}: no events", s.name);
        assert_eq!(blocking(s), expected, "blocking: {}", s.name);
        assert_eq!(on_async(s, Executor::Tokio), expected, "tokio: {}", s.name);
        assert_eq!(on_async(s, Executor::Smol), expected, "smol: {}", s.name);
        assert_eq!(
            on_async(s, Executor::AsyncStd),
            expected,
            "async-std: {}",
            s.name
        );
    }
    // The table exercises most ways a call can end.
    for r in [
        "max_attempts",
        "non_retryable",
        "max_unknown_attempts",
        "max_attempts_for_class",
        "deadline_exceeded",
        "deadline_unreachable",
        "no_strategy",
        "budget_exhausted",
        "circuit_open",
        "deferred",
    ] {
        assert!(
            reasons.contains(r),
            "no scenario ends with {r}: {reasons:?}"
        );
    }
}

#[test]
fn the_same_scenario_twice_gives_the_same_trace() {
    for s in &scenarios() {
        assert_eq!(blocking(s), blocking(s), "{}", s.name);
    }
}
