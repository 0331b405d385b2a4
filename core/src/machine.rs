//! The policy machine: one call's decisions, as a pure state machine.

use core::time::Duration;
use std::sync::atomic::Ordering;

use crate::backoff::{BackoffContext, bounded_delay};
use crate::breaker::{BreakerOutcome, Permit, Transition};
use crate::class::{ClassTable, Classification, ErrorClass};
use crate::decision::{Decision, Outcome, StopReason};
use crate::event::{Event, EventKind};
use crate::policy::{BreakerScope, Policy, PolicyInner};
use crate::rng::{DefaultRng, Rng, derive_rng};
use crate::state::RetryState;
use crate::time::{COARSE_TICK, Instant};

// At most three events follow one input (a breaker transition, a retry, and the next
// attempt's admission after a zero delay); one slot to spare.
const QUEUE: usize = 4;

/// Where the machine stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Idle,
    Attempting,
    Sleeping,
    Finished,
}

enum RngSlot<R> {
    Ready(R),
    /// Derived from the policy's seed on first use (the default generator only).
    Lazy(fn(u64, u64) -> R),
}

/// The decisions of one call, as a pure state machine.
///
/// It never reads a clock, sleeps, spawns or does I/O: every input carries `now`, and the
/// machine answers with the next [`Decision`]. Drivers (blocking, tokio, smol) execute those
/// decisions; tests and simulators drive it by hand with a fake clock.
///
/// # Call order
/// 1. [`start(now)`](Self::start) → `Attempt`, `Rejected` or `Failed`.
/// 2. Run the attempt; classify its result; [`on_outcome(now, outcome)`](Self::on_outcome)
///    → `Succeeded`, `Sleep`, `Attempt` (after a zero delay), `Rejected` or `Failed`.
/// 3. On `Sleep { until, .. }`: wait until `until`, then [`on_wake(now)`](Self::on_wake)
///    → `Attempt`, `Rejected` or `Failed`. Go to 2.
/// 4. After every input, drain [`poll_event`](Self::poll_event) and hand each event to
///    [`Policy::emit`]; events not drained are dropped at the next input.
///
/// # Guarantees
/// - **[`poll_timeout`](Self::poll_timeout) is the one timer a driver needs**: the sleep's
///   end, or the running attempt's time limit.
/// - **No busy loops**: after any input the machine is finished, or the decision is
///   `Attempt`, or `poll_timeout() > now`.
/// - **Misuse is harmless**: an early or repeated `on_wake` returns the same `Sleep` with
///   no state change and no event; any other out-of-order input returns the current
///   decision unchanged.
/// - **Time never goes backwards**: a `now` earlier than one already seen is clamped to it.
/// - Dropping the machine mid-call releases its breaker permit (a half-open probe slot is
///   given back); nothing shared can wedge.
///
/// # Getters, inputs, outputs
/// Getters: [`attempt`](Self::attempt), [`elapsed`](Self::elapsed),
/// [`last_class`](Self::last_class), [`is_finished`](Self::is_finished),
/// [`decision`](Self::decision), [`stop_reason`](Self::stop_reason),
/// [`state`](Self::state). Inputs: `start`, `start_untimed`, `on_outcome`, `on_wake`,
/// `abort`, `reschedule`. Outputs: `poll_timeout`, `poll_event`.
pub struct PolicyMachine<'p, R = DefaultRng> {
    policy: &'p PolicyInner,
    operation: &'p str,
    rng: RngSlot<R>,
    phase: Phase,
    decision: Decision,
    defer: bool,
    resumed: bool,
    attempt_cap: u32,
    attempt: u32,
    start: Option<Instant>,
    deadline_at: Option<Instant>,
    elapsed_offset: Duration,
    last_now: Instant,
    attempt_started: Option<Instant>,
    attempt_deadline: Option<Instant>,
    counts: ClassTable<u32>,
    prev_sleep: Option<Duration>,
    total_sleep: Duration,
    last_class: Option<ErrorClass>,
    permit: Option<Permit<'p>>,
    call_permit: Option<Permit<'p>>,
    events: [Option<Event<'p>>; QUEUE],
    ev_head: u8,
    ev_len: u8,
    /// Nobody drains the events: [`push`](Self::push) builds none.
    quiet: bool,
}

impl<'p> PolicyMachine<'p, DefaultRng> {
    /// A machine for one call of `policy`, with the policy-derived generator.
    pub fn new(policy: &'p Policy) -> Self {
        Self::build(policy, RngSlot::Lazy(derive_rng))
    }

    /// A machine whose first attempt was admitted without it (see [`First`]) and is
    /// running: the next input is [`on_outcome`](Self::on_outcome) for that attempt.
    pub(crate) fn from_first(policy: &'p Policy, first: First<'p>) -> Self {
        let mut m = Self::new(policy);
        m.attempt = 1;
        m.phase = Phase::Attempting;
        if let Some(now) = first.start {
            m.start = Some(now);
            m.last_now = now;
            m.attempt_started = Some(now);
        }
        let (deadline_at, attempt_deadline) = first.deadlines(m.policy);
        m.deadline_at = deadline_at;
        m.attempt_deadline = attempt_deadline;
        match m.policy.breaker_scope {
            BreakerScope::PerCall => m.call_permit = first.permit,
            BreakerScope::PerAttempt => m.permit = first.permit,
        }
        m.decision = Decision::Attempt {
            n: 1,
            deadline: attempt_deadline,
        };
        m
    }

    /// A machine continuing a saved call; see [`Policy::resume`].
    pub fn resume(policy: &'p Policy, state: &RetryState) -> Self {
        let mut m = Self::new(policy);
        m.resumed = true;
        m.attempt = state.attempts;
        m.elapsed_offset = state.elapsed;
        m.counts = state.class_table();
        m.prev_sleep = state.prev_sleep;
        m.total_sleep = state.total_sleep;
        m.last_class = state.last_class;
        m
    }
}

impl<'p, R: Rng> PolicyMachine<'p, R> {
    /// A machine for one call of `policy` drawing jitter from `rng`.
    pub fn with_rng(policy: &'p Policy, rng: R) -> Self {
        Self::build(policy, RngSlot::Ready(rng))
    }

    fn build(policy: &'p Policy, rng: RngSlot<R>) -> Self {
        let inner = &*policy.inner;
        Self {
            policy: inner,
            operation: &inner.operation,
            rng,
            phase: Phase::Idle,
            decision: Decision::Failed(StopReason::Aborted),
            defer: false,
            resumed: false,
            attempt_cap: u32::MAX,
            attempt: 0,
            start: None,
            deadline_at: None,
            elapsed_offset: Duration::ZERO,
            last_now: Instant::ZERO,
            attempt_started: None,
            attempt_deadline: None,
            counts: ClassTable::default(),
            prev_sleep: None,
            total_sleep: Duration::ZERO,
            last_class: None,
            permit: None,
            call_permit: None,
            events: [None; QUEUE],
            ev_head: 0,
            ev_len: 0,
            quiet: false,
        }
    }

    /// Names the operation in this call's events (default: the policy's).
    pub fn with_operation(mut self, name: &'p str) -> Self {
        self.operation = name;
        self
    }

    /// [`with_operation`](Self::with_operation), [`with_max_attempts`](Self::with_max_attempts)
    /// and [`deferring`](Self::deferring) in place, without moving the machine; `observed:
    /// false` (a driver that will not drain events) skips building them.
    pub(crate) fn configure(
        &mut self,
        operation: Option<&'p str>,
        cap: Option<u32>,
        defer: bool,
        observed: bool,
    ) {
        if let Some(name) = operation {
            self.operation = name;
        }
        if let Some(n) = cap {
            self.attempt_cap = n;
        }
        self.defer = defer;
        self.quiet = !observed;
    }

    /// Asks the machine to *defer* instead of sleeping: a retry ends the call with
    /// [`StopReason::Deferred`] ("retry at t"), and [`state`](Self::state) holds what a job
    /// queue needs to resume it with [`Policy::resume`].
    pub fn deferring(mut self, on: bool) -> Self {
        self.defer = on;
        self
    }

    /// Caps this call at `n` attempts, below the policy's `max_attempts` (a larger `n`
    /// changes nothing; `0` counts as `1`, since the first attempt always runs). A call
    /// stopped by the cap ends with [`StopReason::MaxAttempts`]. The cap is not part of
    /// [`state`](Self::state): a resumed call sets it again.
    pub fn with_max_attempts(mut self, n: u32) -> Self {
        self.attempt_cap = n;
        self
    }

    // ----- getters -------------------------------------------------------------------

    /// Attempts started so far (the number of the current or last attempt).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Time since the call started, as of `now` (zero before a timed input).
    pub fn elapsed(&self, now: Instant) -> Duration {
        match self.start {
            Some(s) => self
                .elapsed_offset
                .saturating_add(now.max(self.last_now).saturating_duration_since(s)),
            None => self.elapsed_offset,
        }
    }

    /// The class of the last failure.
    pub fn last_class(&self) -> Option<ErrorClass> {
        self.last_class
    }

    /// The latest instant the machine has seen.
    pub fn last_now(&self) -> Instant {
        self.last_now
    }

    /// Whether the call is over.
    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Finished
    }

    /// The last decision returned.
    pub fn decision(&self) -> Decision {
        self.decision
    }

    /// Why the call stopped, once it has stopped without success.
    pub fn stop_reason(&self) -> Option<StopReason> {
        match self.decision {
            Decision::Failed(r) if self.is_finished() => Some(r),
            Decision::Rejected { until } => Some(StopReason::CircuitOpen { until }),
            _ => None,
        }
    }

    /// Total time slept (or deferred) so far.
    pub fn total_sleep(&self) -> Duration {
        self.total_sleep
    }

    /// Attempts that ended in `class` so far.
    pub fn attempts_of(&self, class: ErrorClass) -> u32 {
        self.counts[class]
    }

    /// Whether the machine measures time: false only after
    /// [`start_untimed`](Self::start_untimed) and before the first failure, when a driver
    /// may pass any instant (such as [`Instant::ZERO`]) with a success.
    pub fn is_timed(&self) -> bool {
        self.start.is_some()
    }

    /// Whether a success must be reported with the time it happened. When false, a driver
    /// may report it with [`last_now`](Self::last_now) (the running attempt's start) and
    /// read no clock: nothing the success updates is dated (a consecutive breaker's closed
    /// state, the budget's deposit made at the start, an unobserved call).
    ///
    /// Never true for an untimed machine (any instant will do); otherwise true when the
    /// policy has a failure-rate breaker, a learning strategy or deadline prediction, or
    /// when the call holds a half-open probe (its success may close the breaker). Events
    /// carry elapsed times, so a driver that drains them reads the clock anyway.
    pub fn needs_time_on_success(&self) -> bool {
        self.start.is_some()
            && (self.policy.success_needs_time
                || self.permit.as_ref().is_some_and(Permit::is_probe)
                || self.call_permit.as_ref().is_some_and(Permit::is_probe))
    }

    /// The pending state, for saving and resuming the call later.
    pub fn state(&self) -> RetryState {
        let mut elapsed = self.elapsed(self.last_now);
        if let Decision::Failed(StopReason::Deferred { delay, .. }) = self.decision {
            elapsed = elapsed.saturating_add(delay);
        }
        RetryState {
            attempts: self.attempt,
            elapsed,
            class_attempts: self.counts.0,
            prev_sleep: self.prev_sleep,
            last_class: self.last_class,
            total_sleep: self.total_sleep,
        }
    }

    // ----- outputs -------------------------------------------------------------------

    /// The next instant the driver must act at: the end of the sleep, or the time limit of
    /// the running attempt. `None` when nothing is timed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Sleeping => match self.decision {
                Decision::Sleep { until, .. } => Some(until),
                _ => None,
            },
            Phase::Attempting => self.attempt_deadline,
            Phase::Idle | Phase::Finished => None,
        }
    }

    /// The next queued event of the last input, oldest first.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event<'p>> {
        if self.ev_len == 0 {
            return None;
        }
        let e = self.events[usize::from(self.ev_head)].take();
        self.ev_head = (self.ev_head + 1) % QUEUE as u8;
        self.ev_len -= 1;
        e
    }

    // ----- inputs --------------------------------------------------------------------

    /// Starts the call at `now`: the first attempt, or a rejection by an open breaker.
    pub fn start(&mut self, now: Instant) -> Decision {
        if self.phase != Phase::Idle {
            return self.decision;
        }
        self.clear_events();
        self.last_now = now;
        self.start = Some(now);
        self.deadline_at = call_deadline(self.policy, now, self.elapsed_offset);
        if self.resumed {
            // A resumed call whose deadline passed while it waited stops at once.
            if let Some(d) = self.deadline_at
                && now >= d
            {
                return self.stop(now, StopReason::DeadlineExceeded);
            }
        } else if let Some(b) = &self.policy.retry.budget {
            b.deposit(now);
        }
        if self.policy.breaker_scope == BreakerScope::PerCall
            && let Some(b) = &self.policy.breaker
        {
            match b.try_acquire(now) {
                Ok(p) => {
                    self.transition_event(p.transition(), now);
                    self.call_permit = Some(p);
                }
                Err(r) => return self.reject(now, r.until),
            }
        }
        self.begin_attempt(now)
    }

    /// Starts the call without reading a clock, for policies whose
    /// [`needs_clock`](Policy::needs_clock) is false. Time is then measured from the first
    /// failure; a success may be reported with any instant.
    pub fn start_untimed(&mut self) -> Decision {
        if self.phase != Phase::Idle {
            return self.decision;
        }
        if self.policy.needs_clock {
            return self.start(Instant::ZERO);
        }
        self.clear_events();
        // Saturating: a resumed state may already hold any count.
        self.attempt = self.attempt.saturating_add(1);
        self.phase = Phase::Attempting;
        self.decision = Decision::Attempt {
            n: self.attempt,
            deadline: None,
        };
        self.decision
    }

    /// Reports how the running attempt ended, at `now`.
    pub fn on_outcome(&mut self, now: Instant, outcome: Outcome) -> Decision {
        if self.phase != Phase::Attempting {
            return self.decision;
        }
        self.clear_events();
        if self.start.is_none() {
            if matches!(outcome, Outcome::Success) {
                return self.succeed(now);
            }
            self.start = Some(now);
            self.last_now = now;
        }
        let now = self.advance(now);
        self.measure_attempt(now);
        match outcome {
            Outcome::Success => self.succeed(now),
            Outcome::Cancelled => {
                self.permit = None;
                self.stop(now, StopReason::Cancelled)
            }
            Outcome::TimedOut => {
                let c = Classification::new(self.policy.retry.timeout_class);
                self.fail(now, &c)
            }
            Outcome::Failure(c) => self.fail(now, &c),
        }
    }

    /// Wakes the machine after a `Sleep`. Early or repeated calls return the same `Sleep`.
    pub fn on_wake(&mut self, now: Instant) -> Decision {
        if self.phase != Phase::Sleeping {
            return self.decision;
        }
        let Decision::Sleep { until, .. } = self.decision else {
            return self.decision;
        };
        // An early wake-up is not recorded as the latest time seen: it changes nothing.
        if now.max(self.last_now) < until {
            return self.decision;
        }
        let now = self.advance(now);
        self.clear_events();
        self.wake(now)
    }

    /// Stops the call at `now` with [`StopReason::Aborted`] (an abort handle fired, or a
    /// `before_sleep` hook vetoed the sleep). A running attempt is abandoned; its breaker
    /// permit is released without counting. No effect once finished.
    pub fn abort(&mut self, now: Instant) -> Decision {
        if self.phase == Phase::Finished {
            return self.decision;
        }
        self.clear_events();
        let now = self.advance(now);
        self.permit = None;
        self.stop(now, StopReason::Aborted)
    }

    /// Stops the call like [`abort`](Self::abort), for a driver that has not started the
    /// attempt the machine just asked for (an abort noticed right after a zero-delay retry):
    /// that attempt is not counted, and its breaker permit is released without counting.
    pub fn abort_before_attempt(&mut self, now: Instant) -> Decision {
        if self.phase == Phase::Attempting && self.attempt > 0 {
            self.attempt -= 1;
            self.permit = None;
        }
        self.abort(now)
    }

    /// Moves the end of the current sleep to `until` if that is earlier (a `before_sleep`
    /// hook shortening a sleep). A new end at or before `now` ends the sleep at once (the
    /// result is then that of [`on_wake`](Self::on_wake)). No effect unless sleeping.
    pub fn reschedule(&mut self, now: Instant, until: Instant) -> Decision {
        let (Phase::Sleeping, Decision::Sleep { until: old, delay }) = (self.phase, self.decision)
        else {
            return self.decision;
        };
        if until >= old {
            return self.decision;
        }
        let now = self.advance(now);
        let until = until.max(now);
        let shortened = old.saturating_duration_since(until);
        self.total_sleep = self.total_sleep.saturating_sub(shortened);
        self.prev_sleep = Some(delay.saturating_sub(shortened));
        self.decision = Decision::Sleep {
            until,
            delay: delay.saturating_sub(shortened),
        };
        if until <= now {
            self.clear_events();
            return self.wake(now);
        }
        self.decision
    }

    // ----- internals -----------------------------------------------------------------

    fn advance(&mut self, now: Instant) -> Instant {
        self.last_now = self.last_now.max(now);
        self.last_now
    }

    fn begin_attempt(&mut self, now: Instant) -> Decision {
        if self.policy.breaker_scope == BreakerScope::PerAttempt
            && let Some(b) = &self.policy.breaker
        {
            match b.try_acquire(now) {
                Ok(p) => {
                    self.transition_event(p.transition(), now);
                    self.permit = Some(p);
                }
                Err(r) => return self.reject(now, r.until),
            }
        }
        // Saturating: a resumed state may already hold any count.
        self.attempt = self.attempt.saturating_add(1);
        self.attempt_started = Some(now);
        self.attempt_deadline = attempt_deadline(self.policy, now, self.deadline_at);
        self.phase = Phase::Attempting;
        self.decision = Decision::Attempt {
            n: self.attempt,
            deadline: self.attempt_deadline,
        };
        self.decision
    }

    fn wake(&mut self, now: Instant) -> Decision {
        if let Some(d) = self.deadline_at
            && now >= d
        {
            return self.stop(now, StopReason::DeadlineExceeded);
        }
        self.begin_attempt(now)
    }

    fn succeed(&mut self, now: Instant) -> Decision {
        let timed = self.start.is_some();
        if timed {
            if let Some(b) = &self.policy.breaker
                && let Some(p) = self.permit.take()
            {
                let t = b.record(now, p, BreakerOutcome::Success);
                self.transition_event(t, now);
            }
            feed_success(self.policy, now);
        }
        self.finish_call_permit(now, BreakerOutcome::Success);
        self.phase = Phase::Finished;
        self.decision = Decision::Succeeded;
        self.push(EventKind::Success, None, now);
        self.decision
    }

    fn fail(&mut self, now: Instant, c: &Classification) -> Decision {
        let class = c.class;
        self.last_class = Some(class);
        self.counts[class] = self.counts[class].saturating_add(1);
        if let Some(b) = &self.policy.breaker
            && let Some(p) = self.permit.take()
        {
            let t = b.record(now, p, BreakerOutcome::Failure(class));
            self.transition_event(t, now);
        }
        let delay = match self.next_delay(now, c) {
            Ok(d) => d,
            Err(reason) => return self.stop(now, reason),
        };
        let until = now.saturating_add(delay);
        self.prev_sleep = Some(delay);
        self.total_sleep = self.total_sleep.saturating_add(delay);
        if self.defer {
            return self.stop(
                now,
                StopReason::Deferred {
                    retry_at: until,
                    delay,
                },
            );
        }
        self.push(
            EventKind::Retry {
                delay,
                retry_after: c.retry_after,
            },
            Some(class),
            now,
        );
        if delay.is_zero() || until <= now {
            // A zero delay never reaches the driver's timer, nor does one the clock cannot
            // express (`now` is already `Instant::MAX`): a sleep must end after `now`.
            return self.wake(now);
        }
        self.phase = Phase::Sleeping;
        self.decision = Decision::Sleep { until, delay };
        self.decision
    }

    /// Decides whether another attempt may run and, if so, after which delay. Every check
    /// that can end the call runs before the delay is announced or budget is spent.
    fn next_delay(&mut self, now: Instant, c: &Classification) -> Result<Duration, StopReason> {
        let r = &self.policy.retry;
        let class = c.class;
        if r.non_retryable.contains(class) {
            return Err(StopReason::NonRetryable(class));
        }
        if r.class_max_attempts[class].is_some_and(|cap| self.counts[class] >= cap) {
            return Err(StopReason::MaxAttemptsForClass(class));
        }
        if class == ErrorClass::Unknown
            && r.max_unknown_attempts
                .is_some_and(|cap| self.counts[class] >= cap)
        {
            return Err(StopReason::MaxUnknownAttempts);
        }
        if self.attempt >= r.max_attempts.min(self.attempt_cap) {
            return Err(StopReason::MaxAttempts);
        }
        let Some(strategy) = r.strategy_for(class) else {
            return Err(StopReason::NoStrategy(class));
        };
        let remaining = self.deadline_at.map(|d| d.saturating_duration_since(now));
        if remaining.is_some_and(|left| left.is_zero()) {
            return Err(StopReason::DeadlineExceeded);
        }
        let ctx = BackoffContext {
            attempt: self.attempt,
            class,
            retry_after: c.retry_after,
            prev_sleep: self.prev_sleep,
            elapsed: self.elapsed(now),
            remaining,
            now,
        };
        let delay = {
            // Seeded on its first draw: strategies without jitter never derive a generator
            // (nor touch the policy's shared call counter).
            let mut rng = LazyRng {
                slot: &mut self.rng,
                policy: self.policy,
            };
            bounded_delay(strategy, &ctx, &mut rng)
        };
        if let Some(left) = remaining {
            if delay >= left {
                return Err(StopReason::DeadlineExceeded);
            }
            if r.predict_deadline {
                let typical =
                    Duration::from_nanos(self.policy.attempt_nanos.load(Ordering::Relaxed));
                if !typical.is_zero() && delay.saturating_add(typical) > left {
                    return Err(StopReason::DeadlineUnreachable);
                }
            }
        }
        if let Some(b) = &r.budget
            && !b.withdraw(now, class)
        {
            return Err(StopReason::BudgetExhausted);
        }
        if strategy.wants_feedback() {
            strategy.observe(now, true);
        }
        Ok(delay)
    }

    fn measure_attempt(&mut self, now: Instant) {
        if let Some(started) = self.attempt_started {
            measure_attempt(self.policy, started, now);
        }
    }

    fn stop(&mut self, now: Instant, reason: StopReason) -> Decision {
        let breaker_outcome = match reason {
            StopReason::Aborted | StopReason::Cancelled | StopReason::Deferred { .. } => {
                BreakerOutcome::Ignored
            }
            _ => match self.last_class {
                Some(c) => BreakerOutcome::Failure(c),
                None => BreakerOutcome::Ignored,
            },
        };
        self.permit = None;
        self.finish_call_permit(now, breaker_outcome);
        self.phase = Phase::Finished;
        self.decision = Decision::Failed(reason);
        let class = match reason {
            StopReason::Aborted => None,
            _ => self.last_class,
        };
        self.push(EventKind::Stopped(reason), class, now);
        self.decision
    }

    fn reject(&mut self, now: Instant, until: Instant) -> Decision {
        self.permit = None;
        // The call's own permit (per-call scope) never exists when the call is rejected at
        // admission; mid-call rejections only happen per attempt.
        self.call_permit = None;
        self.phase = Phase::Finished;
        self.decision = Decision::Rejected { until };
        self.push(EventKind::CircuitRejected { until }, self.last_class, now);
        self.decision
    }

    fn finish_call_permit(&mut self, now: Instant, outcome: BreakerOutcome) {
        if let Some(p) = self.call_permit.take()
            && let Some(b) = &self.policy.breaker
        {
            let t = b.record(now, p, outcome);
            self.transition_event(t, now);
        }
    }

    fn transition_event(&mut self, t: Option<Transition>, now: Instant) {
        if let Some(t) = t {
            self.push(transition_kind(t), self.last_class, now);
        }
    }

    fn clear_events(&mut self) {
        // Stale entries stay in the array; only the indices say what is queued.
        self.ev_head = 0;
        self.ev_len = 0;
    }

    fn push(&mut self, kind: EventKind, class: Option<ErrorClass>, now: Instant) {
        if self.quiet || usize::from(self.ev_len) == QUEUE {
            return;
        }
        let e = Event {
            kind,
            attempt: self.attempt,
            class,
            elapsed: self.elapsed(now),
            operation: self.operation,
        };
        let slot = (usize::from(self.ev_head) + usize::from(self.ev_len)) % QUEUE;
        self.events[slot] = Some(e);
        self.ev_len += 1;
    }
}

/// A call's generator, derived from the policy's seed on its first draw.
struct LazyRng<'a, R> {
    slot: &'a mut RngSlot<R>,
    policy: &'a PolicyInner,
}

impl<R: Rng> LazyRng<'_, R> {
    fn get(&mut self) -> &mut R {
        if let RngSlot::Lazy(make) = *self.slot {
            let index = self.policy.calls.fetch_add(1, Ordering::Relaxed);
            *self.slot = RngSlot::Ready(make(self.policy.seed, index));
        }
        match self.slot {
            RngSlot::Ready(r) => r,
            // Just replaced above.
            RngSlot::Lazy(_) => unreachable!("generator initialised above"),
        }
    }
}

impl<R: Rng> rand_core::TryRng for LazyRng<'_, R> {
    type Error = core::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(self.get().next_u32())
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(self.get().next_u64())
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        self.get().fill_bytes(dst);
        Ok(())
    }
}

/// The event of a breaker transition.
pub(crate) const fn transition_kind(t: Transition) -> EventKind {
    match t {
        Transition::Opened => EventKind::CircuitOpened,
        Transition::HalfOpened => EventKind::CircuitHalfOpen,
        Transition::Closed => EventKind::CircuitClosed,
    }
}

/// Tells the policy's learning strategies that an attempt succeeded at `now`.
#[inline]
fn feed_success(policy: &PolicyInner, now: Instant) {
    if policy.retry.feedback {
        for (_, s) in policy.retry.strategies() {
            if s.wants_feedback() {
                s.observe(now, false);
            }
        }
    }
}

/// Folds the time of an attempt that started at `started` and ended at `now` into the
/// policy's typical attempt time (deadline prediction only).
fn measure_attempt(policy: &PolicyInner, started: Instant, now: Instant) {
    if !policy.retry.predict_deadline {
        return;
    }
    let took = crate::time::duration_nanos(now.saturating_duration_since(started));
    let old = policy.attempt_nanos.load(Ordering::Relaxed);
    // EWMA with weight 1/8: new = old + (took - old) / 8, seeded by the first sample.
    let new = if old == 0 {
        took
    } else {
        (old - old / 8).saturating_add(took / 8)
    };
    policy.attempt_nanos.store(new.max(1), Ordering::Relaxed);
}

/// The deadline of a call started at `now` that already ran for `offset`.
#[inline]
fn call_deadline(policy: &PolicyInner, now: Instant, offset: Duration) -> Option<Instant> {
    let d = policy.retry.deadline?;
    Some(if offset.is_zero() {
        now.saturating_add(d)
    } else {
        now.saturating_add(d.saturating_sub(offset))
    })
}

/// The time limit of an attempt started at `now`: the earlier of its own timeout and the
/// call's deadline.
fn attempt_deadline(
    policy: &PolicyInner,
    now: Instant,
    deadline_at: Option<Instant>,
) -> Option<Instant> {
    let timeout = policy.retry.attempt_timeout.map(|t| now.saturating_add(t));
    match (timeout, deadline_at) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A call's first attempt, admitted without building a machine: the drivers' fast path.
/// Admission does what [`PolicyMachine::start`] does (deadline, budget deposit, breaker
/// permit); a success is recorded by [`succeed`](Self::succeed) as the machine would
/// (breaker, learning strategies, attempt timing), and a failure hands the attempt to
/// [`PolicyMachine::from_first`], which goes on exactly as if it had started the call.
/// The driver emits the events the machine would have queued ([`transition`](Self::transition)
/// after admission, then what `succeed` returns).
pub(crate) struct First<'p> {
    start: Option<Instant>,
    permit: Option<Permit<'p>>,
}

impl<'p> First<'p> {
    /// The first attempt of a call whose policy needs no clock.
    pub(crate) const UNTIMED: Self = Self {
        start: None,
        permit: None,
    };

    /// Admits the first attempt of a new call of `policy` at `now`, or returns the end of
    /// the breaker's open state. `precise` gives the precise time when `now` is a coarse
    /// reading: a coarse `now` may lag the end of the open state by a tick, so a refusal is
    /// checked again at the precise time (the refusal then names an `until` still ahead).
    #[inline(always)]
    pub(crate) fn admit(
        policy: &'p Policy,
        mut now: Instant,
        precise: impl FnOnce() -> Option<Instant>,
    ) -> Result<Self, Instant> {
        let inner = &*policy.inner;
        if let Some(b) = &inner.retry.budget {
            b.deposit(now);
        }
        let permit = match &inner.breaker {
            Some(b) => match b.try_acquire(now) {
                Ok(p) => Some(p),
                // Only an open state ending within a coarse clock's lag of `now` (five ticks:
                // room for a late one) can have ended already; a refusal further off stands
                // without a second read.
                Err(r) if r.until.saturating_duration_since(now) <= COARSE_TICK * 5 => {
                    match precise() {
                        Some(t) if t > now => {
                            now = t;
                            Some(b.try_acquire(t).map_err(|r| r.until)?)
                        }
                        _ => return Err(r.until),
                    }
                }
                Err(r) => return Err(r.until),
            },
            None => None,
        };
        Ok(Self {
            start: Some(now),
            permit,
        })
    }

    /// The call's deadline and the attempt's time limit (computed, not stored: the
    /// admission stays small, and it is moved on every call).
    fn deadlines(&self, policy: &PolicyInner) -> (Option<Instant>, Option<Instant>) {
        let Some(start) = self.start else {
            return (None, None);
        };
        let deadline_at = call_deadline(policy, start, Duration::ZERO);
        (deadline_at, attempt_deadline(policy, start, deadline_at))
    }

    /// The attempt this admission runs.
    pub(crate) fn attempt(&self, policy: &Policy) -> crate::drive::Attempt {
        let (_, deadline) = self.deadlines(&policy.inner);
        crate::drive::Attempt {
            n: 1,
            deadline,
            time_limit: deadline
                .zip(self.start)
                .map(|(d, s)| d.saturating_duration_since(s)),
        }
    }

    /// Whether the attempt is timed (its policy needs a clock).
    pub(crate) fn is_timed(&self) -> bool {
        self.start.is_some()
    }

    /// The breaker transition the admission caused (the first probe after the recovery
    /// time half-opens the breaker).
    pub(crate) fn transition(&self) -> Option<Transition> {
        self.permit.as_ref().and_then(Permit::transition)
    }

    /// Whether [`succeed`](Self::succeed) needs the time of the success; see
    /// [`PolicyMachine::needs_time_on_success`].
    pub(crate) fn needs_time_on_success(&self, policy: &Policy) -> bool {
        self.start.is_some()
            && (policy.inner.success_needs_time
                || self.permit.as_ref().is_some_and(Permit::is_probe))
    }

    /// The time since admission at `now` (zero when untimed).
    pub(crate) fn elapsed(&self, now: Instant) -> Duration {
        self.start
            .map_or(Duration::ZERO, |s| now.saturating_duration_since(s))
    }

    /// Records the attempt's success at `now`, which is any instant unless
    /// [`needs_time_on_success`](Self::needs_time_on_success); returns the breaker
    /// transition it caused (a probe closing the breaker).
    #[inline]
    pub(crate) fn succeed(&mut self, policy: &Policy, now: Instant) -> Option<Transition> {
        let start = self.start?;
        let inner = &*policy.inner;
        let now = now.max(start);
        measure_attempt(inner, start, now);
        let transition = match (&inner.breaker, self.permit.take()) {
            (Some(b), Some(p)) => b.record(now, p, BreakerOutcome::Success),
            _ => None,
        };
        feed_success(inner, now);
        transition
    }
}

impl<R> core::fmt::Debug for PolicyMachine<'_, R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PolicyMachine")
            .field("phase", &self.phase)
            .field("decision", &self.decision)
            .field("attempt", &self.attempt)
            .field("start", &self.start)
            .field("deadline_at", &self.deadline_at)
            .field("last_class", &self.last_class)
            .field("prev_sleep", &self.prev_sleep)
            .finish_non_exhaustive()
    }
}
