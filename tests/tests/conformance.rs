//! Cross-driver conformance: one table of scenarios (a policy built with a fixed seed, a
//! script of attempt results and durations, and optionally context hooks, an abort handle or
//! deferral), each run through the blocking driver, the async loop on tokio's, smol's and
//! async-std's executors, and a machine driven by hand. Every run builds a fresh policy
//! (fresh breaker and budget) with the same seed on the same fake clock, and all five must
//! produce the identical event trace, result and end time.
//!
//! # What a script step means
//! A [`Step`] runs for `takes` on the fake clock, then returns its result. If the attempt
//! has a time limit (`Attempt::deadline`) that the step would overrun, the attempt is cut at
//! that limit: the async drivers drop it (the op *sleeps* past its deadline and the
//! driver's deadline timer fires first) and report it timed out; the blocking op, which
//! cannot be pre-empted, honours its time limit as a socket timeout would and gives up at
//! it with an error the classifier maps to the policy's timeout class; the hand-driven
//! machine is told `Outcome::TimedOut`. All three must then agree.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redress::backoff::{
    adaptive, constant, decorrelated_jitter, equal_jitter, exponential, full_jitter,
    retry_after_or, token_backoff,
};
use redress::drive::{ByResult, ManualSleeper, SleepVerdict, Timer, run_async, run_blocking};
use redress::event::{EventRecord, Recorder};
use redress::{
    AbortHandle, Attempt, BreakerScope, Budget, CallContext, CircuitBreaker, ClassSet,
    Classification, Classify, Clock, Decision, ErrorClass, Instant, LastFailure, ManualClock,
    Outcome, Policy, PolicyBuilder, PolicyMachine, Retry, RetryBuilder, RetryError, RetryState,
    StopReason,
};

use ErrorClass::{Permanent, RateLimit, ServerError, Transient, Unknown};

// ----- the operation's error and its classification ------------------------------------

/// The scripted operation's error: its class is explicit.
#[derive(Debug)]
enum Fail {
    /// A failure of this class, with an optional Retry-After hint.
    Class(ErrorClass, Option<Duration>),
    /// A blocking attempt that gave up at its time limit.
    GaveUp,
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Class(c, _) => write!(f, "{c}"),
            Self::GaveUp => f.write_str("gave up at the time limit"),
        }
    }
}

impl Error for Fail {}

fn classification(class: ErrorClass, retry_after: Option<Duration>) -> Classification {
    Classification {
        class,
        retry_after,
        details: None,
    }
}

/// The classifier: a failure's own class; giving up at the time limit is the policy's
/// timeout class (so the blocking driver sees what the async ones report as `TimedOut`).
fn classifier(timeout_class: ErrorClass) -> impl Fn(&Fail) -> Classification + Clone {
    move |e: &Fail| match e {
        Fail::Class(c, hint) => classification(*c, *hint),
        Fail::GaveUp => classification(timeout_class, None),
    }
}

type RejectFn = fn(&u32) -> Option<ErrorClass>;

/// The result classifier: an `Ok(503)` is a ServerError.
fn reject_503(v: &u32) -> Option<ErrorClass> {
    (*v == 503).then_some(ServerError)
}

// ----- scripts ---------------------------------------------------------------------------

/// One attempt of a script: how long it runs on the fake clock, and what it returns.
#[derive(Clone, Copy, Debug)]
struct Step {
    takes: Duration,
    result: Result<u32, (ErrorClass, Option<Duration>)>,
}

fn ok() -> Step {
    val(200)
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
/// An attempt that would run for an hour: it overruns any time limit.
fn hang() -> Step {
    ok().taking(3_600_000)
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

/// The next step of the script (a success once it runs out).
fn next_step(script: &[Step], n: &mut usize) -> Step {
    let step = script.get(*n).copied().unwrap_or_else(ok);
    *n += 1;
    step
}

fn step_result(step: Step) -> Result<u32, Fail> {
    step.result.map_err(|(c, h)| Fail::Class(c, h))
}

/// One attempt on the blocking driver: runs on the fake clock, honouring its time limit.
fn blocking_attempt(
    script: &[Step],
    n: &mut usize,
    clock: &ManualClock,
    a: Attempt,
) -> Result<u32, Fail> {
    let step = next_step(script, n);
    let end = clock.now().saturating_add(step.takes);
    if let Some(limit) = a.deadline
        && end > limit
    {
        if limit > clock.now() {
            clock.set(limit);
        }
        return Err(Fail::GaveUp);
    }
    clock.set(end);
    step_result(step)
}

/// One attempt on an async driver: sleeps for its duration on the fake timer.
async fn async_attempt(
    script: &[Step],
    n: &mut usize,
    sleeper: &ManualSleeper,
    a: Attempt,
) -> Result<u32, Fail> {
    let step = next_step(script, n);
    let end = sleeper.clock.now().saturating_add(step.takes);
    if a.deadline.is_some_and(|limit| end > limit) {
        // A real timer fires the earlier instant first. A `ManualSleep` completes at its
        // first poll instead, so yield once: the driver then polls its deadline timer,
        // which completes and drops this attempt before its own sleep is ever polled.
        futures_lite::future::yield_now().await;
    }
    Timer::sleep_until(sleeper, end).await;
    step_result(step)
}

// ----- scenarios -------------------------------------------------------------------------

type MakePolicy = fn(PolicyBuilder) -> PolicyBuilder;

/// A `before_sleep` rule: (failed attempt, its class, planned delay) → verdict.
type SleepRule = fn(u32, Option<ErrorClass>, Duration) -> SleepVerdict;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Sleep between attempts.
    Sleep,
    /// Defer instead of sleeping: the call ends with `Deferred`.
    Defer,
    /// Defer, then resume from the saved state at `retry_at`, until the call ends otherwise.
    DeferAndResume,
}

struct Scenario {
    name: &'static str,
    policy: MakePolicy,
    script: Vec<Step>,
    /// Where the fake clock starts.
    start: Instant,
    mode: Mode,
    before_sleep: Option<SleepRule>,
    /// An `on_attempt` hook fires the call's abort handle when attempt `n` starts (0: the
    /// handle has fired before the call).
    abort_at: Option<u32>,
}

fn sc(name: &'static str, policy: MakePolicy, script: Vec<Step>) -> Scenario {
    Scenario {
        name,
        policy,
        script,
        start: Instant::ZERO,
        mode: Mode::Sleep,
        before_sleep: None,
        abort_at: None,
    }
}

impl Scenario {
    fn starting_at(mut self, secs: u64) -> Self {
        self.start = Instant::from_secs(secs);
        self
    }
    fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }
    fn before_sleep(mut self, rule: SleepRule) -> Self {
        self.before_sleep = Some(rule);
        self
    }
    fn abort_at(mut self, n: u32) -> Self {
        self.abort_at = Some(n);
        self
    }
}

fn exp() -> RetryBuilder {
    Retry::builder().strategy(exponential(ms(100), ms(1000)))
}

fn consecutive(n: u32) -> Arc<CircuitBreaker> {
    Arc::new(
        CircuitBreaker::consecutive(n, Duration::from_secs(10))
            .recovery(Duration::from_secs(5))
            .build()
            .unwrap(),
    )
}

/// A breaker opened at time zero (recovery 5 s): a call from 5 s on is its first probe.
fn opened_at_zero(b: Arc<CircuitBreaker>) -> Arc<CircuitBreaker> {
    redress_tests::trip_at_zero(&b);
    b
}

fn rolling(n: u32) -> Budget {
    Budget::rolling(n, Duration::from_secs(10)).build().unwrap()
}

#[allow(clippy::too_many_lines)]
fn scenarios() -> Vec<Scenario> {
    vec![
        // ----- plain retries and caps
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
            "permanent errors made retryable",
            |p| p.retry(exp().non_retryable(ClassSet::of(&[ErrorClass::Auth]))),
            vec![err(Permanent), ok()],
        ),
        sc(
            "unknown failures hit the default cap",
            |p| p.retry(exp()),
            vec![err(Unknown), err(Unknown)],
        ),
        sc(
            "unknown cap raised to three",
            |p| p.retry(exp().max_unknown_attempts(Some(3))),
            vec![err(Unknown), err(Transient), err(Unknown), err(Unknown)],
        ),
        sc(
            "unknown cap removed",
            |p| p.retry(exp().max_attempts(4).max_unknown_attempts(None)),
            vec![err(Unknown); 4],
        ),
        sc(
            "per-class cap on rate limits",
            |p| p.retry(exp().class_max_attempts(RateLimit, 2)),
            vec![err(RateLimit), err(Transient), err(RateLimit)],
        ),
        sc(
            "zero delays retry at once",
            |p| p.retry(Retry::builder().strategy(constant(Duration::ZERO))),
            vec![err(Transient), err(ServerError), ok()],
        ),
        // ----- strategies, per class, seeded jitter
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
            "per-class strategies side by side",
            |p| {
                p.retry(
                    Retry::builder()
                        .strategy(constant(ms(20)))
                        .class_strategy(RateLimit, constant(ms(700)))
                        .class_strategy(ServerError, full_jitter(ms(10), ms(400))),
                )
            },
            vec![err(Transient), err(RateLimit), err(ServerError), ok()],
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
            |p| p.retry(Retry::builder().strategy(decorrelated_jitter(ms(10), ms(500)))),
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
            "an adaptive strategy learns from outcomes",
            |p| p.retry(Retry::builder().strategy(adaptive(constant(ms(100))))),
            vec![err(ServerError), err(ServerError), err(Transient), ok()],
        ),
        // ----- result classifier
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
        // ----- budgets
        sc(
            "rolling budget runs out",
            |p| p.retry(exp().budget(Arc::new(rolling(1)))),
            vec![err(Transient), err(Transient), ok()],
        ),
        sc(
            "rolling budget with per-class costs",
            |p| {
                let b = Budget::rolling(4, Duration::from_secs(10))
                    .cost(Transient, 3)
                    .cost(RateLimit, 0)
                    .build()
                    .unwrap();
                p.retry(exp().budget(Arc::new(b)))
            },
            vec![
                err(Transient),
                err(RateLimit),
                err(RateLimit),
                err(Transient),
                ok(),
            ],
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
            "ratio budget with per-class costs",
            |p| {
                let b = Budget::ratio(3.0, 0.0, Duration::from_secs(10))
                    .cost(ServerError, 2)
                    .cost(RateLimit, 0)
                    .build()
                    .unwrap();
                p.retry(exp().budget(Arc::new(b)))
            },
            vec![
                err(ServerError),
                err(RateLimit),
                err(Transient),
                err(ServerError),
                ok(),
            ],
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
            "no clock needed: untimed start",
            |p| p.retry(exp().no_deadline().budget(Arc::new(rolling(5)))),
            vec![err(Transient).taking(40), ok()],
        ),
        // ----- breakers
        sc(
            "consecutive breaker opens mid-call and rejects the next attempt",
            |p| p.retry(exp()).breaker(consecutive(2)),
            vec![err(Transient), err(Transient), ok()],
        ),
        sc(
            "per-call consecutive breaker sees only the final result",
            |p| {
                p.retry(exp().max_attempts(3))
                    .breaker(consecutive(1))
                    .breaker_scope(BreakerScope::PerCall)
            },
            vec![err(Transient), err(Transient), err(Transient)],
        ),
        sc(
            "per-call breaker: retries that end well count as a success",
            |p| {
                p.retry(exp())
                    .breaker(consecutive(2))
                    .breaker_scope(BreakerScope::PerCall)
            },
            vec![err(Transient), err(Transient), ok()],
        ),
        sc(
            "failure-rate breaker per attempt",
            |p| {
                let b = CircuitBreaker::failure_rate(0.5, 3, Duration::from_secs(10))
                    .build()
                    .unwrap();
                p.retry(exp()).breaker(Arc::new(b))
            },
            vec![err(ServerError), err(ServerError), err(ServerError), ok()],
        ),
        sc(
            "failure-rate breaker per call",
            |p| {
                let b = CircuitBreaker::failure_rate(0.5, 1, Duration::from_secs(10))
                    .build()
                    .unwrap();
                p.retry(exp().max_attempts(3))
                    .breaker(Arc::new(b))
                    .breaker_scope(BreakerScope::PerCall)
            },
            vec![err(ServerError), err(Transient), err(ServerError)],
        ),
        sc(
            "a class threshold trips the breaker sooner",
            |p| {
                let b = CircuitBreaker::consecutive(5, Duration::from_secs(10))
                    .class_threshold(ServerError, 2)
                    .build()
                    .unwrap();
                p.retry(exp()).breaker(Arc::new(b))
            },
            vec![err(ServerError), err(ServerError), ok()],
        ),
        sc(
            "failures outside trip_on do not trip",
            |p| {
                let b = CircuitBreaker::consecutive(1, Duration::from_secs(10))
                    .trip_on(ClassSet::of(&[ServerError]))
                    .build()
                    .unwrap();
                p.retry(exp()).breaker(Arc::new(b))
            },
            vec![err(RateLimit), err(Transient), ok()],
        ),
        sc(
            "an open breaker rejects the call at once",
            |p| p.retry(exp()).breaker(opened_at_zero(consecutive(1))),
            vec![ok()],
        ),
        sc(
            "a half-open probe that succeeds closes the breaker",
            |p| p.retry(exp()).breaker(opened_at_zero(consecutive(1))),
            vec![ok()],
        )
        .starting_at(10),
        sc(
            "a failed half-open probe reopens and the retry is rejected",
            |p| p.retry(exp()).breaker(opened_at_zero(consecutive(1))),
            vec![err(Transient), ok()],
        )
        .starting_at(10),
        sc(
            "a per-call half-open probe covers the call's retries",
            |p| {
                p.retry(exp())
                    .breaker(opened_at_zero(consecutive(1)))
                    .breaker_scope(BreakerScope::PerCall)
            },
            vec![err(Transient), err(ServerError), ok()],
        )
        .starting_at(10),
        sc(
            "a failure-rate breaker opens, half-opens and closes within one call",
            |p| {
                let b = CircuitBreaker::failure_rate(0.6, 4, Duration::from_secs(10))
                    .recovery(Duration::from_millis(150))
                    .build()
                    .unwrap();
                p.retry(exp().max_attempts(6).budget(Arc::new(rolling(5))))
                    .breaker(Arc::new(b))
            },
            vec![
                err(Transient),
                err(ServerError),
                err(Transient),
                err(RateLimit),
                ok(),
            ],
        ),
        // ----- deadlines and attempt timeouts
        sc(
            "a sleep past the deadline is not taken",
            |p| p.retry(exp().deadline(ms(250))),
            vec![err(Transient), err(Transient), ok()],
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
            "an attempt past its timeout is cut and retried",
            |p| p.retry(exp().attempt_timeout(ms(100))),
            vec![hang(), ok().taking(40)],
        ),
        sc(
            "every attempt times out",
            |p| p.retry(exp().max_attempts(3).attempt_timeout(ms(50))),
            vec![hang(), hang(), hang()],
        ),
        sc(
            "timeouts count as their configured class",
            |p| {
                p.retry(
                    exp()
                        .attempt_timeout(ms(50))
                        .timeout_class(ServerError)
                        .class_strategy(ServerError, constant(ms(5)))
                        .class_max_attempts(ServerError, 2),
                )
            },
            vec![hang(), err(Transient), hang()],
        ),
        sc(
            "the call's deadline cuts an attempt before its own timeout",
            |p| p.retry(exp().deadline(ms(250)).attempt_timeout(ms(1000))),
            vec![err(Transient).taking(100), hang()],
        ),
        sc(
            "slow attempts within their timeout are not cut",
            |p| p.retry(exp().attempt_timeout(ms(500))),
            vec![err(Transient).taking(300), ok().taking(499)],
        ),
        sc(
            "a timed-out half-open probe reopens the breaker",
            |p| {
                p.retry(exp().attempt_timeout(ms(100)))
                    .breaker(opened_at_zero(consecutive(1)))
            },
            vec![hang(), ok()],
        )
        .starting_at(10),
        // ----- before_sleep and abort
        sc(
            "before_sleep shortens every sleep",
            |p| p.retry(Retry::builder().strategy(constant(Duration::from_secs(10)))),
            vec![err(Transient), err(ServerError), ok()],
        )
        .before_sleep(|_, _, _| SleepVerdict::Shorten(ms(25))),
        sc(
            "a shortened sleep feeds decorrelated jitter",
            |p| p.retry(Retry::builder().strategy(decorrelated_jitter(ms(50), ms(5000)))),
            vec![err(Transient), err(Transient), err(Transient), ok()],
        )
        .before_sleep(|n, _, _| {
            if n == 2 {
                SleepVerdict::Shorten(ms(5))
            } else {
                SleepVerdict::Sleep
            }
        }),
        sc(
            "before_sleep shortening to zero retries at once",
            |p| p.retry(exp()),
            vec![err(Transient), err(Transient), ok()],
        )
        .before_sleep(|_, _, _| SleepVerdict::Shorten(Duration::ZERO)),
        sc(
            "before_sleep vetoes the second retry",
            |p| p.retry(exp()),
            vec![err(Transient), err(ServerError), ok()],
        )
        .before_sleep(|n, _, _| {
            if n >= 2 {
                SleepVerdict::Abort
            } else {
                SleepVerdict::Sleep
            }
        }),
        sc(
            "before_sleep vetoes rate limits only, with a per-call breaker",
            |p| {
                p.retry(exp())
                    .breaker(consecutive(1))
                    .breaker_scope(BreakerScope::PerCall)
            },
            vec![err(Transient), hint(RateLimit, 2000), ok()],
        )
        .before_sleep(|_, class, _| {
            if class == Some(RateLimit) {
                SleepVerdict::Abort
            } else {
                SleepVerdict::Sleep
            }
        }),
        sc(
            "an abort during a failing attempt stops the call at its wake-up",
            |p| p.retry(exp()),
            vec![err(Transient), err(Transient), ok()],
        )
        .abort_at(2),
        sc(
            "an abort during the last attempt does not undo its success",
            |p| p.retry(exp()).breaker(consecutive(3)),
            vec![err(Transient), ok()],
        )
        .abort_at(2),
        sc(
            "an abort before a zero-delay retry stops it",
            |p| p.retry(Retry::builder().strategy(constant(Duration::ZERO))),
            vec![err(Transient), err(Transient), ok()],
        )
        .abort_at(1),
        sc(
            "an abort before the call runs no attempt",
            |p| p.retry(exp()).breaker(consecutive(1)),
            vec![ok()],
        )
        .abort_at(0),
        // ----- deferral
        sc(
            "deferral ends the call with retry-at",
            |p| p.retry(exp()),
            vec![err(Transient)],
        )
        .mode(Mode::Defer),
        sc(
            "deferred and resumed until success",
            |p| p.retry(exp()),
            vec![err(Transient), hint(RateLimit, 2000), ok()],
        )
        .mode(Mode::DeferAndResume),
        sc(
            "deferred and resumed until the attempts run out",
            |p| p.retry(exp().max_attempts(3)),
            vec![err(Transient), err(ServerError), err(Transient)],
        )
        .mode(Mode::DeferAndResume),
        sc(
            "deferred and resumed past the deadline",
            |p| p.retry(exp().deadline(ms(500))),
            vec![err(Transient).taking(100), err(Transient).taking(100), ok()],
        )
        .mode(Mode::DeferAndResume),
        sc(
            "deferral with a breaker and a ratio budget",
            |p| {
                let b = Budget::ratio(1.0, 0.0, Duration::from_secs(10))
                    .build()
                    .unwrap();
                p.retry(exp().budget(Arc::new(b))).breaker(consecutive(2))
            },
            vec![err(Transient), err(Transient), ok()],
        )
        .mode(Mode::DeferAndResume),
    ]
}

// ----- what a run produces ---------------------------------------------------------------

/// What the last attempt of a failed call left behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Last {
    Nothing,
    Error(ErrorClass),
    Value(u32),
    TimedOut,
}

/// How a run ended, comparable across drivers.
#[derive(Debug, PartialEq, Eq)]
enum End {
    Ok(u32),
    Err {
        reason: StopReason,
        attempts: u32,
        last_class: Option<ErrorClass>,
        last: Last,
    },
}

#[derive(Debug, PartialEq, Eq)]
struct Trace {
    end: End,
    events: Vec<EventRecord>,
    /// The fake clock when the call returned.
    ended_at: Instant,
    /// How many times the operation was invoked.
    ops: usize,
}

type CallResult = Result<u32, RetryError<Fail, u32>>;

fn end_of(r: CallResult) -> End {
    match r {
        Ok(v) => End::Ok(v),
        Err(e) => End::Err {
            reason: e.reason(),
            attempts: e.attempts(),
            last_class: e.last_class(),
            last: match e.last() {
                LastFailure::Nothing => Last::Nothing,
                LastFailure::Error(Fail::Class(c, _)) => Last::Error(*c),
                // The blocking op's way of timing out (see the module docs).
                LastFailure::Error(Fail::GaveUp) | LastFailure::TimedOut => Last::TimedOut,
                LastFailure::Value(v) => Last::Value(*v),
            },
        },
    }
}

/// One run's fresh world: policy (new breaker and budget), recorder, fake clock, abort
/// handle.
struct World {
    rec: Recorder,
    policy: Policy,
    clock: ManualClock,
    sleeper: ManualSleeper,
    abort: AbortHandle,
}

impl World {
    /// `hooked`: with the recording hook. Without it, nothing observes the call, so the
    /// drivers take their bare success path; the result must not change.
    fn new(s: &Scenario, hooked: bool) -> Self {
        let rec = Recorder::default();
        let mut b = (s.policy)(Policy::builder().seed(42).operation("conformance"));
        if hooked {
            b = b.hook(rec.clone());
        }
        let clock = ManualClock::new(s.start);
        let abort = AbortHandle::new();
        if s.abort_at == Some(0) {
            abort.abort();
        }
        Self {
            rec,
            policy: b.build().unwrap(),
            sleeper: ManualSleeper::new(clock.clone()),
            clock,
            abort,
        }
    }

    fn ctx(
        &self,
        s: &Scenario,
    ) -> CallContext<'_, impl Classify<Fail> + use<>, ByResult<RejectFn>> {
        let mut ctx = self
            .policy
            .context("conformance")
            .classify(classifier(self.policy.retry().timeout_class()))
            .classify_result(reject_503 as RejectFn)
            .deferring(s.mode != Mode::Sleep);
        if let Some(k) = s.abort_at {
            ctx = ctx.abort_handle(self.abort.clone());
            let h = self.abort.clone();
            ctx = ctx.on_attempt(move |a| {
                if a.n == k {
                    h.abort();
                }
            });
        }
        if let Some(rule) = s.before_sleep {
            ctx = ctx.before_sleep(move |i| rule(i.attempt, i.class, i.delay));
        }
        ctx
    }

    /// For [`Mode::DeferAndResume`]: the state to resume a deferred call from, after moving
    /// the clock to its retry time (the job queue re-delivers it then).
    fn resumable(&self, s: &Scenario, r: &CallResult) -> Option<RetryState> {
        let Err(e) = r else { return None };
        let StopReason::Deferred { retry_at, .. } = e.reason() else {
            return None;
        };
        if s.mode != Mode::DeferAndResume {
            return None;
        }
        if retry_at > self.clock.now() {
            self.clock.set(retry_at);
        }
        Some(e.state().unwrap().clone())
    }

    fn finish(&self, end: End, ops: usize) -> Trace {
        Trace {
            end,
            events: self.rec.take(),
            ended_at: self.clock.now(),
            ops,
        }
    }
}

// ----- the drivers -----------------------------------------------------------------------

fn blocking(s: &Scenario, hooked: bool) -> Trace {
    let w = World::new(s, hooked);
    let ctx = w.ctx(s);
    let mut n = 0;
    let mut op = |a| blocking_attempt(&s.script, &mut n, &w.clock, a);
    let mut r = redress_blocking::RunBlocking::run_with(&ctx, &w.sleeper, &mut op);
    while let Some(state) = w.resumable(s, &r) {
        r = run_blocking(&ctx, &w.sleeper, Some(&state), None, &mut op);
    }
    w.finish(end_of(r), n)
}

#[derive(Clone, Copy, Debug)]
enum Executor {
    Tokio,
    Smol,
    AsyncStd,
}

/// Resumes deferred calls until one ends otherwise (async drivers).
async fn resume_all<C, F>(
    w: &World,
    s: &Scenario,
    ctx: &CallContext<'_, C, ByResult<RejectFn>>,
    mut r: CallResult,
    op: &mut F,
) -> CallResult
where
    C: Classify<Fail>,
    F: AsyncFnMut(Attempt) -> Result<u32, Fail>,
{
    while let Some(state) = w.resumable(s, &r) {
        r = run_async(ctx, &w.sleeper, Some(&state), None, &mut *op).await;
    }
    r
}

fn on_async(s: &Scenario, exec: Executor, hooked: bool) -> Trace {
    let w = World::new(s, hooked);
    let ctx = w.ctx(s);
    let mut n = 0;
    let (script, sleeper) = (&s.script, &w.sleeper);
    let mut op = async |a| async_attempt(script, &mut n, sleeper, a).await;
    let r = match exec {
        Executor::Tokio => tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
            .block_on(async {
                let r = redress_tokio::RunAsync::run_with(&ctx, sleeper, &mut op).await;
                resume_all(&w, s, &ctx, r, &mut op).await
            }),
        Executor::Smol => smol::block_on(async {
            let r = redress_smol::RunAsync::run_with(&ctx, sleeper, &mut op).await;
            resume_all(&w, s, &ctx, r, &mut op).await
        }),
        Executor::AsyncStd => async_std::task::block_on(async {
            let r = redress_smol::RunAsync::run_with(&ctx, sleeper, &mut op).await;
            resume_all(&w, s, &ctx, r, &mut op).await
        }),
    };
    w.finish(end_of(r), n)
}

// ----- the machine driven by hand --------------------------------------------------------

/// What a driver does with a decision before acting on it: drain and emit the events, stop
/// an attempt once the abort handle fired, run the `on_attempt` hook, and ask the
/// `before_sleep` rule about every new sleep. `now` is the time of the input that produced
/// `d`.
fn settle(
    s: &Scenario,
    w: &World,
    m: &mut PolicyMachine<'_>,
    mut d: Decision,
    now: Instant,
    announced: &mut Option<Instant>,
) -> Decision {
    loop {
        while let Some(e) = m.poll_event() {
            w.policy.emit(&e);
        }
        match d {
            Decision::Attempt { n, .. } => {
                if w.abort.is_aborted() {
                    d = m.abort_before_attempt(now);
                    continue;
                }
                if s.abort_at == Some(n) {
                    w.abort.abort();
                }
                return d;
            }
            Decision::Sleep { until, delay } => {
                if *announced == Some(until) {
                    return d;
                }
                match s
                    .before_sleep
                    .map(|rule| rule(m.attempt(), m.last_class(), delay))
                {
                    None | Some(SleepVerdict::Sleep) => {}
                    Some(SleepVerdict::Shorten(max)) => {
                        d = m.reschedule(now, now.saturating_add(max));
                        if !matches!(d, Decision::Sleep { .. }) {
                            continue;
                        }
                    }
                    Some(SleepVerdict::Abort) => {
                        d = m.abort(now);
                        continue;
                    }
                }
                let Decision::Sleep { until, .. } = d else {
                    continue;
                };
                *announced = Some(until);
                return d;
            }
            Decision::Succeeded | Decision::Failed(_) | Decision::Rejected { .. } => return d,
        }
    }
}

/// The scenario with a machine driven by hand, as the crate docs describe the loop. Like
/// the drivers, a policy that needs no clock starts untimed and reports a success of an
/// untimed machine at `Instant::ZERO`; every other input is dated with the fake clock.
fn by_hand(s: &Scenario, hooked: bool) -> Trace {
    let w = World::new(s, hooked);
    let clock = &w.clock;
    let mut n = 0;
    let mut resume: Option<RetryState> = None;
    loop {
        let mut m = match &resume {
            Some(state) => w.policy.resume(state),
            None => w.policy.machine(),
        }
        .with_operation("conformance")
        .deferring(s.mode != Mode::Sleep);
        let mut last = Last::Nothing;
        let mut announced = None;
        let (d, t) = if w.abort.is_aborted() {
            let t = clock.now();
            (m.abort(t), t)
        } else if w.policy.needs_clock() {
            let t = clock.now();
            (m.start(t), t)
        } else {
            (m.start_untimed(), Instant::ZERO)
        };
        let mut d = settle(s, &w, &mut m, d, t, &mut announced);
        loop {
            match d {
                Decision::Attempt { deadline, .. } => {
                    let step = next_step(&s.script, &mut n);
                    let end = clock.now().saturating_add(step.takes);
                    let mut value = None;
                    let outcome = match deadline {
                        Some(limit) if end > limit => {
                            if limit > clock.now() {
                                clock.set(limit);
                            }
                            last = Last::TimedOut;
                            Outcome::TimedOut
                        }
                        _ => {
                            clock.set(end);
                            match step.result {
                                Ok(v) => match reject_503(&v) {
                                    None => {
                                        value = Some(v);
                                        Outcome::Success
                                    }
                                    Some(c) => {
                                        last = Last::Value(v);
                                        Outcome::failure(c)
                                    }
                                },
                                Err((c, h)) => {
                                    last = Last::Error(c);
                                    Outcome::Failure(classification(c, h))
                                }
                            }
                        }
                    };
                    let t = if outcome == Outcome::Success && !m.is_timed() {
                        Instant::ZERO
                    } else {
                        clock.now()
                    };
                    d = m.on_outcome(t, outcome);
                    d = settle(s, &w, &mut m, d, t, &mut announced);
                    if d == Decision::Succeeded {
                        return w.finish(End::Ok(value.unwrap()), n);
                    }
                }
                Decision::Sleep { until, .. } => {
                    if until > clock.now() {
                        clock.set(until);
                    }
                    let t = clock.now();
                    d = if w.abort.is_aborted() {
                        m.abort(t)
                    } else {
                        m.on_wake(t)
                    };
                    d = settle(s, &w, &mut m, d, t, &mut announced);
                }
                Decision::Failed(StopReason::Deferred { retry_at, .. })
                    if s.mode == Mode::DeferAndResume =>
                {
                    resume = Some(m.state());
                    if retry_at > clock.now() {
                        clock.set(retry_at);
                    }
                    break;
                }
                Decision::Succeeded | Decision::Failed(_) | Decision::Rejected { .. } => {
                    let end = End::Err {
                        reason: m.stop_reason().unwrap(),
                        attempts: m.attempt(),
                        last_class: m.last_class(),
                        last,
                    };
                    return w.finish(end, n);
                }
            }
        }
    }
}

// ----- the tests -------------------------------------------------------------------------

#[test]
fn every_driver_produces_the_trace_of_the_machine_driven_by_hand() {
    let all = scenarios();
    assert!(all.len() >= 25, "{} scenarios", all.len());
    let names: BTreeSet<_> = all.iter().map(|s| s.name).collect();
    assert_eq!(names.len(), all.len(), "scenario names are unique");
    let mut reasons = BTreeSet::new();
    let mut events = BTreeSet::new();
    for s in &all {
        let expected = by_hand(s, true);
        if let End::Err { reason, .. } = &expected.end {
            reasons.insert(reason.name());
        }
        events.extend(expected.events.iter().map(|e| e.kind.name()));
        assert!(!expected.events.is_empty(), "{}: no events", s.name);
        assert_eq!(blocking(s, true), expected, "blocking: {}", s.name);
        for exec in [Executor::Tokio, Executor::Smol, Executor::AsyncStd] {
            assert_eq!(on_async(s, exec, true), expected, "{exec:?}: {}", s.name);
        }
    }
    // The table exercises most ways a call can end, and every event.
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
        "aborted",
        "deferred",
    ] {
        assert!(
            reasons.contains(r),
            "no scenario ends with {r}: {reasons:?}"
        );
    }
    for e in [
        "success",
        "retry",
        "permanent_failure",
        "circuit_opened",
        "circuit_half_open",
        "circuit_closed",
        "circuit_rejected",
    ] {
        assert!(events.contains(e), "no scenario emits {e}: {events:?}");
    }
}

#[test]
fn unobserved_calls_end_the_same_on_every_driver() {
    // Without a hook the drivers may run the first attempt bare and date successes
    // lazily; the result, the time the call ends and the attempts run must not change.
    for s in &scenarios() {
        let observed = by_hand(s, true);
        let expected = by_hand(s, false);
        assert!(expected.events.is_empty());
        assert_eq!(
            (&expected.end, expected.ended_at, expected.ops),
            (&observed.end, observed.ended_at, observed.ops),
            "hook changed the call: {}",
            s.name
        );
        assert_eq!(blocking(s, false), expected, "blocking: {}", s.name);
        for exec in [Executor::Tokio, Executor::Smol, Executor::AsyncStd] {
            assert_eq!(on_async(s, exec, false), expected, "{exec:?}: {}", s.name);
        }
    }
}

#[test]
fn the_same_scenario_twice_gives_the_same_trace() {
    for s in &scenarios() {
        assert_eq!(blocking(s, true), blocking(s, true), "{}", s.name);
    }
}

#[test]
fn the_table_means_what_its_names_say() {
    // Spot checks that the scripts exercise what they claim (the conformance test above
    // only checks that all drivers agree).
    let find = |name: &str| {
        let s = scenarios().into_iter().find(|s| s.name == name).unwrap();
        by_hand(&s, true)
    };
    let t = find("an attempt past its timeout is cut and retried");
    assert_eq!(t.end, End::Ok(200));
    assert_eq!(t.events[0].elapsed, ms(100), "cut at the attempt timeout");
    assert_eq!(t.events[0].class, Some(Transient));

    let t = find("every attempt times out");
    assert!(matches!(
        t.end,
        End::Err {
            reason: StopReason::MaxAttempts,
            attempts: 3,
            last: Last::TimedOut,
            ..
        }
    ));

    let t = find("the call's deadline cuts an attempt before its own timeout");
    assert!(matches!(
        t.end,
        End::Err {
            reason: StopReason::DeadlineExceeded,
            last: Last::TimedOut,
            ..
        }
    ));
    assert_eq!(t.ended_at, Instant::from_millis(250));

    let t = find("the last rejected value is kept");
    assert!(matches!(
        t.end,
        End::Err {
            last: Last::Value(503),
            ..
        }
    ));

    let t = find("a half-open probe that succeeds closes the breaker");
    let names: Vec<_> = t.events.iter().map(|e| e.kind.name()).collect();
    assert_eq!(names, ["circuit_half_open", "circuit_closed", "success"]);

    let t = find("before_sleep shortens every sleep");
    assert_eq!(t.ended_at, Instant::from_millis(50));

    let t = find("an abort before the call runs no attempt");
    assert_eq!(
        (t.ops, &t.end),
        (
            0,
            &End::Err {
                reason: StopReason::Aborted,
                attempts: 0,
                last_class: None,
                last: Last::Nothing,
            }
        )
    );

    let t = find("deferred and resumed until success");
    assert_eq!(t.end, End::Ok(200));
    assert_eq!(t.ops, 3);
    let deferrals = t
        .events
        .iter()
        .filter(|e| e.kind.name() == "deferred")
        .count();
    assert_eq!(deferrals, 2);

    let t = find("rolling budget with per-class costs");
    assert!(matches!(
        t.end,
        End::Err {
            reason: StopReason::BudgetExhausted,
            attempts: 4,
            ..
        }
    ));
}
