//! Arbitrary sequences of machine inputs — outcomes, wake-ups, aborts, reschedules, starts —
//! at arbitrary clock values (backwards jumps, huge values, `Instant::MAX`), against an
//! arbitrary policy (caps, deadline, attempt timeout, strategies including custom ones that
//! return `Duration::MAX`, breaker in either scope, budget, deferral), optionally resuming
//! an arbitrary (possibly corrupt) saved `RetryState`.
//!
//! Checks after every input (a failed check is a crash):
//! - no panic;
//! - the answer is `decision()`, and `is_finished()` agrees with it;
//! - attempt caps: at most `max_attempts` attempts, per-class and Unknown caps hold (for a
//!   resumed call, counted from its saved state);
//! - no sleep, deferral or attempt time limit past the call's deadline;
//! - **no busy loop**: finished, or an attempt is due, or `poll_timeout()` lies after the
//!   latest instant the machine has accepted;
//! - a finished machine answers every later input with its final decision;
//! - once the machine is dropped, its breaker admits a late call (no leaked permit) and
//!   can be closed.
#![no_main]
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use redress::backoff::{
    BackoffContext, adaptive, constant, decorrelated_jitter, exponential, from_fn, retry_after_or,
};
use redress::breaker::BreakerOutcome;
use redress::rng::Rng;
use redress::{
    BreakerScope, Budget, CircuitBreaker, CircuitState, Classification, Decision, ErrorClass,
    EventKind, Instant, Outcome, Policy, Retry, RetryState, StopReason,
};

#[derive(Arbitrary, Debug, Clone, Copy)]
struct Class(u8);

impl Class {
    fn get(self) -> ErrorClass {
        ErrorClass::ALL[usize::from(self.0) % ErrorClass::COUNT]
    }
}

#[derive(Arbitrary, Debug)]
enum Strategy {
    None,
    Constant(u64),
    Exponential(u32, u32),
    Decorrelated(u32, u32),
    RetryAfter {
        max_hint_ms: u32,
        jitter_ms: u16,
    },
    Adaptive(u16),
    /// Fixed delays by attempt; `u64::MAX` seconds stands for `Duration::MAX`.
    Custom(Vec<(u64, u32)>),
}

#[derive(Arbitrary, Debug)]
enum BreakerPick {
    Consecutive {
        threshold: u8,
        recovery_ms: u32,
        probes: u8,
    },
    FailureRate {
        min_throughput: u8,
        recovery_ms: u32,
        probes: u8,
    },
}

#[derive(Arbitrary, Debug)]
struct Config {
    max_attempts: u8,
    max_unknown: Option<u8>,
    class_cap: Option<(Class, u8)>,
    deadline_ms: Option<u32>,
    attempt_timeout_ms: Option<u32>,
    default_strategy: Strategy,
    class_strategy: Option<(Class, Strategy)>,
    breaker: Option<BreakerPick>,
    per_call: bool,
    budget: Option<u8>,
    predict_deadline: bool,
    defer: bool,
    timeout_class: Class,
    seed: u64,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Clock {
    Same,
    ForwardMicros(u32),
    ForwardSecs(u32),
    BackwardMillis(u32),
    Absolute(u64),
    Max,
    /// The machine's own timer (`poll_timeout`), or the same time if it has none.
    Timer,
}

#[derive(Arbitrary, Debug, Clone)]
enum Happened {
    Success,
    Failure(Class, Option<(u64, u32)>),
    TimedOut,
    Cancelled,
}

#[derive(Arbitrary, Debug, Clone)]
enum Op {
    Start(Clock),
    StartUntimed,
    Outcome(Clock, Happened),
    Wake(Clock),
    Abort(Clock),
    Reschedule(Clock, Clock),
}

/// A saved call to resume (as a job queue would hand back, possibly corrupted).
#[derive(Arbitrary, Debug)]
struct Saved {
    attempts: u32,
    elapsed: (u64, u32),
    class_attempts: [u32; ErrorClass::COUNT],
    prev_sleep: Option<(u64, u32)>,
    last_class: Option<Class>,
    total_sleep: (u64, u32),
}

impl Saved {
    fn state(&self) -> RetryState {
        let mut s = RetryState::default();
        s.attempts = self.attempts;
        s.elapsed = duration(self.elapsed.0, self.elapsed.1);
        s.class_attempts = self.class_attempts;
        s.prev_sleep = self.prev_sleep.map(|(a, b)| duration(a, b));
        s.last_class = self.last_class.map(Class::get);
        s.total_sleep = duration(self.total_sleep.0, self.total_sleep.1);
        s
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    config: Config,
    resume: Option<Saved>,
    ops: Vec<Op>,
}

fn duration(secs: u64, nanos: u32) -> Duration {
    if secs == u64::MAX {
        Duration::MAX
    } else {
        Duration::new(secs, nanos % 1_000_000_000)
    }
}

fn ms(n: u32) -> Duration {
    Duration::from_millis(u64::from(n))
}

fn strategy(s: &Strategy) -> Option<Arc<dyn redress::backoff::Backoff>> {
    Some(match s {
        Strategy::None => return None,
        Strategy::Constant(n) => Arc::new(constant(Duration::from_nanos(*n))),
        Strategy::Exponential(b, m) => Arc::new(exponential(ms(*b), ms(*m))),
        Strategy::Decorrelated(b, m) => Arc::new(decorrelated_jitter(ms(*b), ms(*m))),
        Strategy::RetryAfter {
            max_hint_ms,
            jitter_ms,
        } => Arc::new(
            retry_after_or(constant(ms(10)))
                .max_hint(ms(*max_hint_ms))
                .jitter(ms(u32::from(*jitter_ms))),
        ),
        Strategy::Adaptive(b) => Arc::new(adaptive(constant(ms(u32::from(*b))))),
        Strategy::Custom(delays) => {
            let delays: Vec<Duration> = delays.iter().map(|&(s, n)| duration(s, n)).collect();
            Arc::new(from_fn(move |ctx: &BackoffContext, _: &mut dyn Rng| {
                if delays.is_empty() {
                    Duration::MAX
                } else {
                    delays[ctx.attempt as usize % delays.len()]
                }
            }))
        }
    })
}

/// The policy, or `None` when the builders reject the configuration (that is their job).
fn policy(c: &Config) -> Option<(Policy, Option<Arc<CircuitBreaker>>)> {
    let mut r = Retry::builder()
        .max_attempts(u32::from(c.max_attempts))
        .max_unknown_attempts(c.max_unknown.map(u32::from))
        .timeout_class(c.timeout_class.get())
        .predict_deadline(c.predict_deadline);
    r = match c.deadline_ms {
        Some(d) => r.deadline(ms(d)),
        None => r.no_deadline(),
    };
    if let Some(t) = c.attempt_timeout_ms {
        r = r.attempt_timeout(ms(t));
    }
    if let Some((class, n)) = c.class_cap {
        r = r.class_max_attempts(class.get(), u32::from(n));
    }
    r = match strategy(&c.default_strategy) {
        Some(s) => r.strategy(s),
        None => r.no_default_strategy(),
    };
    if let Some((class, s)) = &c.class_strategy
        && let Some(s) = strategy(s)
    {
        r = r.class_strategy(class.get(), s);
    }
    if let Some(n) = c.budget {
        let b = Budget::rolling(u32::from(n), Duration::from_secs(10))
            .build()
            .ok()?;
        r = r.budget(Arc::new(b));
    }
    let mut p = Policy::builder().retry(r.build().ok()?).seed(c.seed);
    let breaker = match &c.breaker {
        None => None,
        Some(BreakerPick::Consecutive {
            threshold,
            recovery_ms,
            probes,
        }) => Some(
            CircuitBreaker::consecutive(u32::from(*threshold), Duration::from_secs(1))
                .recovery(ms(*recovery_ms))
                .probes(u32::from(*probes))
                .build()
                .ok()?,
        ),
        Some(BreakerPick::FailureRate {
            min_throughput,
            recovery_ms,
            probes,
        }) => Some(
            CircuitBreaker::failure_rate(0.5, u32::from(*min_throughput), Duration::from_secs(1))
                .recovery(ms(*recovery_ms))
                .probes(u32::from(*probes))
                .build()
                .ok()?,
        ),
    }
    .map(Arc::new);
    if let Some(b) = &breaker {
        p = p.breaker(b.clone()).breaker_scope(if c.per_call {
            BreakerScope::PerCall
        } else {
            BreakerScope::PerAttempt
        });
    }
    Some((p.build().ok()?, breaker))
}

fn outcome(h: &Happened) -> Outcome {
    match h {
        Happened::Success => Outcome::Success,
        Happened::Failure(class, hint) => {
            let c = Classification::new(class.get());
            Outcome::Failure(match hint {
                Some((s, n)) => c.with_retry_after(duration(*s, *n)),
                None => c,
            })
        }
        Happened::TimedOut => Outcome::TimedOut,
        Happened::Cancelled => Outcome::Cancelled,
    }
}

fuzz_target!(|input: Input| {
    let Some((policy, breaker)) = policy(&input.config) else {
        return;
    };
    let retry = policy.retry().clone();
    let saved = input.resume.as_ref().map(Saved::state);
    let mut m = match &saved {
        Some(s) => policy.resume(s),
        None => policy.machine(),
    }
    .deferring(input.config.defer);
    // A resumed call keeps its counts: caps hold from where it stood (a corrupt state past
    // a cap gets one more attempt, then stops).
    let attempt_cap = retry
        .max_attempts()
        .max(saved.as_ref().map_or(0, |s| s.attempts.saturating_add(1)));
    let elapsed_before = saved.as_ref().map_or(Duration::ZERO, |s| s.elapsed);

    let mut t = Instant::ZERO; // the fuzzer's clock: it jumps wherever it likes
    let mut seen = Instant::ZERO; // the latest instant the machine accepted
    let mut started = false;
    let mut deadline_at: Option<Instant> = None;
    let mut terminal: Option<Decision> = None;
    let mut retries = 0u32;

    for op in input.ops.iter().take(256) {
        let mut at = |c: Clock, m_timer: Option<Instant>| {
            t = match c {
                Clock::Same => t,
                Clock::ForwardMicros(n) => t.saturating_add(Duration::from_micros(u64::from(n))),
                Clock::ForwardSecs(n) => t.saturating_add(Duration::from_secs(u64::from(n))),
                Clock::BackwardMillis(n) => t.saturating_sub(ms(n)),
                Clock::Absolute(n) => Instant::from_nanos(n),
                Clock::Max => Instant::MAX,
                Clock::Timer => m_timer.unwrap_or(t),
            };
            t
        };
        let before = m.decision();
        let finished = m.is_finished();
        let timer = m.poll_timeout();
        let d = match op {
            Op::Start(c) => {
                let now = at(*c, timer);
                if !started {
                    started = true;
                    seen = now;
                    deadline_at = retry
                        .deadline()
                        .map(|d| now.saturating_add(d.saturating_sub(elapsed_before)));
                }
                m.start(now)
            }
            Op::StartUntimed => {
                if !started {
                    started = true;
                    if policy.needs_clock() {
                        seen = Instant::ZERO;
                        deadline_at = retry.deadline().map(|d| {
                            Instant::ZERO.saturating_add(d.saturating_sub(elapsed_before))
                        });
                    }
                }
                m.start_untimed()
            }
            Op::Outcome(c, h) => {
                let now = at(*c, timer);
                if matches!(before, Decision::Attempt { .. }) && started && !finished {
                    if !m.is_timed() {
                        // The first failure of an untimed call starts its clock.
                        seen = now;
                    }
                    seen = seen.max(now);
                }
                m.on_outcome(now, outcome(h))
            }
            Op::Wake(c) => {
                let now = at(*c, timer);
                if let Decision::Sleep { until, .. } = before
                    && !finished
                    && now.max(seen) >= until
                {
                    seen = seen.max(now);
                }
                m.on_wake(now)
            }
            Op::Abort(c) => {
                let now = at(*c, timer);
                if !finished {
                    seen = seen.max(now);
                }
                m.abort(now)
            }
            Op::Reschedule(c, u) => {
                let now = at(*c, timer);
                let until = at(*u, timer);
                if let Decision::Sleep { until: old, .. } = before
                    && !finished
                    && until < old
                {
                    seen = seen.max(now);
                }
                m.reschedule(now, until)
            }
        };

        // The answer is the machine's decision.
        assert_eq!(d, m.decision());
        if !started && !m.is_finished() {
            // Inputs before `start` change nothing; the placeholder decision is no promise.
            assert_eq!(m.attempt(), saved.as_ref().map_or(0, |s| s.attempts));
            assert!(m.poll_event().is_none());
            continue;
        }
        assert_eq!(m.is_finished(), d.is_terminal(), "{d:?}");
        if let Some(end) = terminal {
            assert_eq!(d, end, "a finished machine changed its answer");
        }
        if d.is_terminal() {
            terminal = Some(d);
        }

        // Caps.
        assert!(m.attempt() <= attempt_cap, "attempt {}", m.attempt());
        let before = |class: ErrorClass| saved.as_ref().map_or(0, |s| s.attempts_of(class));
        if let Some(cap) = retry.max_unknown_attempts() {
            let cap = cap.max(before(ErrorClass::Unknown).saturating_add(1));
            assert!(m.attempts_of(ErrorClass::Unknown) <= cap);
        }
        for class in ErrorClass::ALL {
            if let Some(cap) = retry.class_max_attempts(class) {
                let cap = cap.max(before(class).saturating_add(1));
                assert!(m.attempts_of(class) <= cap, "{class:?}");
            }
        }

        // Nothing is scheduled past the deadline.
        if let Some(end) = deadline_at {
            match d {
                Decision::Sleep { until, .. } => assert!(until < end, "sleep past the deadline"),
                Decision::Attempt {
                    deadline: Some(limit),
                    ..
                } => assert!(limit <= end, "attempt limit past the deadline"),
                Decision::Failed(StopReason::Deferred { retry_at, .. }) => {
                    assert!(retry_at < end, "deferred past the deadline")
                }
                _ => {}
            }
        }

        // No busy loop.
        assert!(
            m.is_finished()
                || matches!(d, Decision::Attempt { .. })
                || m.poll_timeout().is_some_and(|timer| timer > seen),
            "busy loop after {op:?}: {d:?}, poll_timeout {:?}, seen {seen:?}",
            m.poll_timeout()
        );

        let mut events = 0;
        while let Some(e) = m.poll_event() {
            events += 1;
            if let EventKind::Retry { .. } = e.kind {
                retries += 1;
            }
        }
        assert!(events <= 6);
        assert!(retries < attempt_cap.max(1), "{retries} retries");
    }
    drop(m);

    // Nothing leaked: a late call is admitted, and enough successes close the breaker.
    if let Some(b) = breaker {
        let probes = b.config().probes;
        let mut held = Vec::new();
        for _ in 0..probes {
            let p = b.try_acquire(Instant::MAX).expect("a permit leaked");
            let closed = b.state() == CircuitState::Closed;
            held.push(p);
            if closed {
                break;
            }
        }
        for p in held {
            b.record(Instant::MAX, p, BreakerOutcome::Success);
        }
        assert_eq!(b.state(), CircuitState::Closed);
    }
});
