//! A fake-clock driver for scenario tests: run a [`PolicyMachine`] against a script of
//! attempt outcomes and get back everything it decided, as owned values.
//!
//! The driver is the loop of the crate docs, with a clock that never waits:
//! 1. `start(now)`;
//! 2. on `Attempt`, take the next [`Step`] of the script, move the clock by how long that
//!    attempt runs, and report its outcome with `on_outcome(now, outcome)`;
//! 3. on `Sleep { until, .. }`, jump the clock to `until` and call `on_wake(now)`;
//! 4. stop at a terminal decision, or when the script runs out while an attempt is due.
//!
//! After every input it drains the machine's events, hands each to [`Policy::emit`] (so a
//! policy's hook sees exactly what a real driver would give it) and checks the machine's
//! guarantees: *no busy loop* (the call is finished, or an attempt is due, or
//! `poll_timeout()` lies in the future), `poll_timeout()` is the decision's own timer, and
//! `decision()`/`is_finished()` agree with the answer.
//!
//! ```
//! use redress::{Decision, ErrorClass, Retry, StopReason, backoff::constant};
//! use redress_tests::scenario::{drive, fail, ms};
//!
//! let policy = Retry::builder().max_attempts(2).strategy(constant(ms(10))).policy().unwrap();
//! let trace = drive(&policy, [fail(ErrorClass::Transient), fail(ErrorClass::Transient)]);
//! assert_eq!(trace.sleeps(), [ms(10)]);
//! assert_eq!(trace.last(), Decision::Failed(StopReason::MaxAttempts));
//! ```

use core::time::Duration;

use redress::event::{Event, EventRecord};
use redress::rng::Rng;
use redress::{
    CallReport, Classification, Decision, ErrorClass, Instant, Outcome, Policy, PolicyMachine,
    RetryState, StopReason,
};

/// `n` milliseconds.
pub const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `n` seconds.
pub const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// The instant `n` milliseconds after the fake clock's epoch.
pub const fn at(n: u64) -> Instant {
    Instant::from_millis(n)
}

/// How long a scripted attempt runs before it ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runs {
    /// It ends after this long.
    For(Duration),
    /// It runs until the time limit of its [`Decision::Attempt`] (no time passes if the
    /// attempt has none).
    UntilDeadline,
}

/// One scripted attempt: how long it runs and how it ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// How it ends, as reported to [`PolicyMachine::on_outcome`].
    pub outcome: Outcome,
    /// How long it runs.
    pub runs: Runs,
}

impl Step {
    /// The same step, running for `d` before it ends.
    #[must_use]
    pub fn after(mut self, d: Duration) -> Self {
        self.runs = Runs::For(d);
        self
    }
}

/// An attempt that ends at once with `outcome`.
pub fn step(outcome: Outcome) -> Step {
    Step {
        outcome,
        runs: Runs::For(Duration::ZERO),
    }
}

/// An attempt that succeeds at once.
pub fn ok() -> Step {
    step(Outcome::Success)
}

/// An attempt that fails at once with `class`, without hints.
pub fn fail(class: ErrorClass) -> Step {
    step(Outcome::failure(class))
}

/// An attempt that fails at once with `class` and a `Retry-After` hint of `hint`.
pub fn fail_hinted(class: ErrorClass, hint: Duration) -> Step {
    step(Outcome::Failure(
        Classification::new(class).with_retry_after(hint),
    ))
}

/// An attempt that runs until its time limit and is reported as [`Outcome::TimedOut`].
pub fn times_out() -> Step {
    Step {
        outcome: Outcome::TimedOut,
        runs: Runs::UntilDeadline,
    }
}

/// An attempt that is abandoned at once ([`Outcome::Cancelled`]).
pub fn cancelled() -> Step {
    step(Outcome::Cancelled)
}

/// What the driver handed the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// [`PolicyMachine::start`].
    Start,
    /// [`PolicyMachine::on_outcome`] with this outcome.
    Outcome(Outcome),
    /// [`PolicyMachine::on_wake`].
    Wake,
}

/// One input of a driven call and everything it produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The input.
    pub input: Input,
    /// The fake clock when it was given.
    pub now: Instant,
    /// The machine's answer.
    pub decision: Decision,
    /// The events the input queued, oldest first.
    pub events: Vec<EventRecord>,
}

/// Everything one driven call did, as owned values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trace {
    /// One entry per input, in order.
    pub entries: Vec<Entry>,
    /// Scripted steps that were never needed because the call ended first.
    pub unused: usize,
    /// The fake clock when the driver stopped.
    pub end: Instant,
    /// The machine's [`PolicyMachine::state`] when the driver stopped.
    pub state: RetryState,
    /// The machine's [`PolicyMachine::stop_reason`] when the driver stopped.
    pub stop_reason: Option<StopReason>,
}

impl Trace {
    /// Every decision, in order (the first is `start`'s).
    pub fn decisions(&self) -> Vec<Decision> {
        self.entries.iter().map(|e| e.decision).collect()
    }

    /// The last decision.
    ///
    /// # Panics
    /// Never for a trace made by this module: every trace has at least `start`'s entry.
    pub fn last(&self) -> Decision {
        self.entries
            .last()
            .map(|e| e.decision)
            .expect("a trace has at least the start entry")
    }

    /// Every event of the call, in order.
    pub fn events(&self) -> Vec<EventRecord> {
        self.entries
            .iter()
            .flat_map(|e| e.events.iter().cloned())
            .collect()
    }

    /// The stable names of every event, in order.
    pub fn event_names(&self) -> Vec<&'static str> {
        self.entries
            .iter()
            .flat_map(|e| e.events.iter().map(|r| r.kind.name()))
            .collect()
    }

    /// The delays of every `Sleep` decision, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.entries
            .iter()
            .filter_map(|e| match e.decision {
                Decision::Sleep { delay, .. } => Some(delay),
                _ => None,
            })
            .collect()
    }

    /// How many `Attempt` decisions the call made.
    pub fn attempts(&self) -> u32 {
        let n = self
            .entries
            .iter()
            .filter(|e| matches!(e.decision, Decision::Attempt { .. }))
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// A [`CallReport`] folded from the call's events, as a driver builds it.
    pub fn report(&self) -> CallReport {
        let mut report = CallReport::new();
        for e in self.entries.iter().flat_map(|e| &e.events) {
            report.observe(&as_event(e));
        }
        report
    }
}

/// The borrowed [`Event`] an [`EventRecord`] was made from.
pub fn as_event(r: &EventRecord) -> Event<'_> {
    Event {
        kind: r.kind,
        attempt: r.attempt,
        class: r.class,
        elapsed: r.elapsed,
        operation: &r.operation,
    }
}

/// Drains the events of the machine's last input as owned records.
pub fn drain<R: Rng>(m: &mut PolicyMachine<'_, R>) -> Vec<EventRecord> {
    std::iter::from_fn(|| m.poll_event())
        .map(|e| e.to_record())
        .collect()
}

/// Runs a fresh machine of `policy` against `script`, starting the clock at
/// [`Instant::ZERO`].
pub fn drive(policy: &Policy, script: impl IntoIterator<Item = Step>) -> Trace {
    drive_at(policy, Instant::ZERO, script)
}

/// Runs a fresh machine of `policy` against `script`, starting the clock at `start`.
pub fn drive_at(policy: &Policy, start: Instant, script: impl IntoIterator<Item = Step>) -> Trace {
    drive_machine(policy, policy.machine(), start, script)
}

/// Runs an already configured machine of `policy` (renamed, deferring, resumed, with its own
/// generator…) against `script`, starting the clock at `start`.
///
/// # Panics
/// If the machine breaks one of the guarantees checked after every input (see the
/// [module docs](self)), or does not finish within 10 000 inputs.
pub fn drive_machine<R: Rng>(
    policy: &Policy,
    mut m: PolicyMachine<'_, R>,
    start: Instant,
    script: impl IntoIterator<Item = Step>,
) -> Trace {
    let mut script = script.into_iter();
    let mut now = start;
    let mut entries = Vec::new();
    let mut decision = m.start(now);
    entries.push(record(policy, &mut m, Input::Start, now, decision));
    for _ in 0..10_000 {
        match decision {
            Decision::Attempt { deadline, .. } => {
                let Some(step) = script.next() else { break };
                now = match step.runs {
                    Runs::For(d) => now.saturating_add(d),
                    Runs::UntilDeadline => deadline.unwrap_or(now).max(now),
                };
                decision = m.on_outcome(now, step.outcome.clone());
                entries.push(record(
                    policy,
                    &mut m,
                    Input::Outcome(step.outcome),
                    now,
                    decision,
                ));
            }
            Decision::Sleep { until, .. } => {
                now = until.max(now);
                decision = m.on_wake(now);
                entries.push(record(policy, &mut m, Input::Wake, now, decision));
            }
            Decision::Rejected { .. } | Decision::Succeeded | Decision::Failed(_) => break,
        }
    }
    assert!(
        decision.is_terminal() || matches!(decision, Decision::Attempt { .. }),
        "the call did not finish within 10 000 inputs: {decision:?}"
    );
    Trace {
        entries,
        unused: script.count(),
        end: now,
        state: m.state(),
        stop_reason: m.stop_reason(),
    }
}

/// Drains the input's events into an [`Entry`], emitting each through the policy's hook, and
/// checks the machine's guarantees: no busy loop, and `poll_timeout` is the decision's timer
/// (the sleep's end, the attempt's time limit, or none once finished).
fn record<R: Rng>(
    policy: &Policy,
    m: &mut PolicyMachine<'_, R>,
    input: Input,
    now: Instant,
    decision: Decision,
) -> Entry {
    assert_eq!(
        m.decision(),
        decision,
        "decision() disagrees with the answer"
    );
    assert!(
        m.is_finished()
            || matches!(decision, Decision::Attempt { .. })
            || m.poll_timeout().is_some_and(|t| t > now),
        "busy loop after {input:?} at {now:?}: {decision:?}, poll_timeout {:?}",
        m.poll_timeout()
    );
    assert_eq!(m.is_finished(), decision.is_terminal());
    let timer = match decision {
        Decision::Attempt { deadline, .. } => deadline,
        Decision::Sleep { until, .. } => Some(until),
        Decision::Rejected { .. } | Decision::Succeeded | Decision::Failed(_) => None,
    };
    assert_eq!(
        m.poll_timeout(),
        timer,
        "poll_timeout is not the decision's timer after {input:?}"
    );
    let mut events = Vec::new();
    while let Some(e) = m.poll_event() {
        policy.emit(&e);
        events.push(e.to_record());
    }
    Entry {
        input,
        now,
        decision,
        events,
    }
}
