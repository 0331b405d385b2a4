//! One call in progress: the machine plus what the driver loop needs around it.

use core::time::Duration;

use crate::class::Classify;
use crate::decision::{Decision, Outcome, StopReason};
use crate::drive::{AbortHandle, Attempt, CallContext, ResultCheck, SleepInfo, SleepVerdict};
use crate::error::{LastFailure, RetryError};
use crate::event::{Event, EventKind};
use crate::machine::{First, PolicyMachine, transition_kind};
use crate::report::CallReport;
use crate::state::RetryState;
use crate::time::Instant;

/// What the loop does next.
pub(crate) enum Next {
    Attempt(Attempt),
    Sleep(Instant),
    Done,
}

/// An attempt's result, classified: the value of a success, or the failure's outcome and
/// what the error keeps of it.
pub(crate) type Checked<T, E, V> = Result<T, (Outcome, LastFailure<E, V>)>;

/// Classifies an attempt's result with the context's classifiers.
pub(crate) fn check<C, R, T, E>(
    ctx: &CallContext<'_, C, R>,
    result: Result<T, E>,
) -> Checked<T, E, R::Kept>
where
    C: Classify<E>,
    R: ResultCheck<T>,
{
    match result {
        Ok(v) => ctx
            .result
            .check(v)
            .map_err(|(c, v)| (Outcome::Failure(c), LastFailure::Value(v))),
        Err(e) => Err((
            Outcome::Failure(ctx.classifier.classify(&e)),
            LastFailure::Error(e),
        )),
    }
}

/// Whether a call may run its first attempt before any machine exists (see [`First`]): a
/// new call (not a resumed one) whose abort handle has not fired. Its first attempt costs
/// an admission and one call; only a failure builds the machine.
pub(crate) fn first_attempt_is_light<C, R>(
    ctx: &CallContext<'_, C, R>,
    resume: Option<&RetryState>,
) -> bool {
    resume.is_none() && !ctx.abort.as_ref().is_some_and(AbortHandle::is_aborted)
}

/// Whether someone observes the call: the policy's hook or a report.
pub(crate) fn observed<C, R>(ctx: &CallContext<'_, C, R>, reporting: bool) -> bool {
    reporting || ctx.policy.has_hook()
}

/// Whether a light call reads the precise clock: when the policy needs it (a deadline, an
/// attempt timeout, learning, prediction) or someone observes the call (events carry
/// elapsed times); otherwise the coarse clock dates buckets well enough.
pub(crate) fn light_call_is_precise<C, R>(ctx: &CallContext<'_, C, R>, reporting: bool) -> bool {
    ctx.policy.needs_precise_clock() || observed(ctx, reporting)
}

/// Whether a light call's first attempt needs an admission (and its success recording):
/// when the policy needs a clock or someone observes the call. Otherwise the attempt alone
/// runs.
pub(crate) fn first_attempt_is_admitted<C, R>(
    ctx: &CallContext<'_, C, R>,
    reporting: bool,
) -> bool {
    ctx.policy.needs_clock() || observed(ctx, reporting)
}

/// Admits the first attempt of a light call at `now()` (read only if the policy needs a
/// clock) and reports the admission's breaker transition. `precise()` is the precise time
/// when `now()` is a coarse reading (see [`First::admit`]). `Err` is the end of the
/// breaker's open state, for [`rejected`].
#[inline(always)]
pub(crate) fn admit_first<'p, C, R>(
    ctx: &CallContext<'p, C, R>,
    report: &mut Option<&mut CallReport>,
    now: impl FnOnce() -> Instant,
    precise: impl FnOnce() -> Option<Instant>,
) -> Result<First<'p>, Instant> {
    if !ctx.policy.needs_clock() {
        return Ok(First::UNTIMED);
    }
    let first = First::admit(ctx.policy, now(), precise)?;
    if let Some(tr) = first.transition() {
        emit_first(ctx, report, transition_kind(tr), 0, Duration::ZERO);
    }
    Ok(first)
}

/// Records the success of a light call's first attempt, dated by `now()` only if something
/// uses the date, and reports it.
#[inline]
pub(crate) fn succeed_first<C, R>(
    ctx: &CallContext<'_, C, R>,
    first: &mut First<'_>,
    report: &mut Option<&mut CallReport>,
    now: impl FnOnce() -> Instant,
) {
    if observed(ctx, report.is_some()) {
        return succeed_first_observed(ctx, first, report, now);
    }
    if first.is_timed() {
        // Any instant will do unless the success is dated: the admission dates it.
        let t = if first.needs_time_on_success(ctx.policy) {
            now()
        } else {
            Instant::ZERO
        };
        let _ = first.succeed(ctx.policy, t);
    }
}

/// [`succeed_first`] for an observed call: dated when timed, and reported.
#[inline(never)]
fn succeed_first_observed<C, R>(
    ctx: &CallContext<'_, C, R>,
    first: &mut First<'_>,
    report: &mut Option<&mut CallReport>,
    now: impl FnOnce() -> Instant,
) {
    let t = if first.is_timed() {
        now()
    } else {
        Instant::ZERO
    };
    let elapsed = first.elapsed(t);
    if let Some(tr) = first.succeed(ctx.policy, t) {
        emit_first(ctx, report, transition_kind(tr), 1, elapsed);
    }
    emit_first(ctx, report, EventKind::Success, 1, elapsed);
}

/// Hands an event of a light call's first attempt to the hook and the report, as the
/// machine would have queued it.
fn emit_first<C, R>(
    ctx: &CallContext<'_, C, R>,
    report: &mut Option<&mut CallReport>,
    kind: EventKind,
    attempt: u32,
    elapsed: Duration,
) {
    let e = Event {
        kind,
        attempt,
        class: None,
        elapsed,
        operation: ctx.operation.as_deref().unwrap_or(ctx.policy.operation()),
    };
    ctx.policy.emit(&e);
    if let Some(r) = report.as_deref_mut() {
        r.observe(&e);
    }
}

/// The first attempt of an untimed call.
pub(crate) const FIRST: Attempt = Attempt {
    n: 1,
    deadline: None,
    time_limit: None,
};

/// The error of a call rejected by an open breaker before its first attempt, reported.
#[cold]
pub(crate) fn rejected<C, R, E, V>(
    ctx: &CallContext<'_, C, R>,
    report: &mut Option<&mut CallReport>,
    until: Instant,
) -> RetryError<E, V> {
    emit_first(
        ctx,
        report,
        EventKind::CircuitRejected { until },
        0,
        Duration::ZERO,
    );
    RetryError::new(
        StopReason::CircuitOpen { until },
        0,
        None,
        LastFailure::Nothing,
    )
}

pub(crate) struct Run<'a, 'p, C, R, E, V> {
    ctx: &'a CallContext<'p, C, R>,
    m: PolicyMachine<'a>,
    last: LastFailure<E, V>,
    report: Option<&'a mut CallReport>,
    announced_sleep: Option<Instant>,
    observe: bool,
}

impl<'a, 'p, C, R, E, V> Run<'a, 'p, C, R, E, V> {
    pub(crate) fn new(
        ctx: &'a CallContext<'p, C, R>,
        resume: Option<&RetryState>,
        report: Option<&'a mut CallReport>,
    ) -> Self {
        let m = match resume {
            Some(s) => PolicyMachine::resume(ctx.policy, s),
            None => PolicyMachine::new(ctx.policy),
        };
        Self::with_machine(ctx, m, report)
    }

    /// The run of a light call whose first attempt failed: the machine takes over that
    /// attempt, and the next input is [`finish_checked`](Self::finish_checked) or
    /// [`timed_out`](Self::timed_out).
    pub(crate) fn from_first(
        ctx: &'a CallContext<'p, C, R>,
        first: First<'a>,
        report: Option<&'a mut CallReport>,
    ) -> Self
    where
        'p: 'a,
    {
        Self::with_machine(ctx, PolicyMachine::from_first(ctx.policy, first), report)
    }

    #[inline(always)]
    fn with_machine(
        ctx: &'a CallContext<'p, C, R>,
        m: PolicyMachine<'a>,
        report: Option<&'a mut CallReport>,
    ) -> Self {
        let mut run = Self {
            observe: observed(ctx, report.is_some()),
            m,
            ctx,
            last: LastFailure::Nothing,
            report,
            announced_sleep: None,
        };
        // In place: the machine is large, and each by-value builder call would move it.
        run.m.configure(
            ctx.operation.as_deref(),
            ctx.max_attempts,
            ctx.defer,
            run.observe,
        );
        run
    }

    /// Starts the call, reading the clock only if the policy needs it.
    pub(crate) fn start(&mut self, now: impl Fn() -> Instant) -> Next {
        if self.aborted() {
            // Before the machine admits an attempt, so no attempt is counted.
            let t = now();
            let d = self.m.abort(t);
            return self.handle(d, t);
        }
        let (d, t) = if self.ctx.policy.needs_clock() {
            let t = now();
            (self.m.start(t), t)
        } else {
            (self.m.start_untimed(), Instant::ZERO)
        };
        self.handle(d, t)
    }

    /// Reports an attempt's result; `Ok(value)` ends the call with success.
    pub(crate) fn finish<T>(
        &mut self,
        now: impl Fn() -> Instant,
        result: Result<T, E>,
    ) -> Result<T, Next>
    where
        C: Classify<E>,
        R: ResultCheck<T, Kept = V>,
    {
        let checked = check(self.ctx, result);
        self.finish_checked(now, checked)
    }

    /// Reports an attempt's result already passed through [`check`].
    pub(crate) fn finish_checked<T>(
        &mut self,
        now: impl Fn() -> Instant,
        checked: Checked<T, E, V>,
    ) -> Result<T, Next>
    where
        R: ResultCheck<T, Kept = V>,
    {
        let (outcome, kept) = match checked {
            Ok(v) => {
                // A success is dated only if something uses the date: the breaker's buckets,
                // a learning strategy, attempt timing, or an observer (event elapsed times).
                // Otherwise the last time read (the attempt's start) is as good, and a
                // deadline-only policy reads the clock once per successful call.
                let t = if !self.m.is_timed() {
                    Instant::ZERO
                } else if self.observe || self.m.needs_time_on_success() {
                    now()
                } else {
                    self.m.last_now()
                };
                let d = self.m.on_outcome(t, Outcome::Success);
                self.handle(d, t);
                return Ok(v);
            }
            Err(failure) => failure,
        };
        let t = now();
        let d = self.m.on_outcome(t, outcome);
        // A retry the breaker will refuse at wake-up (it just opened, and stays open past the
        // sleep) is no retry: keep the value, so the call still ends with it.
        let retrying = match d {
            Decision::Attempt { .. } => true,
            Decision::Sleep { until, .. } => {
                let policy = self.ctx.policy;
                policy.breaker_scope() != crate::policy::BreakerScope::PerAttempt
                    || policy.breaker().is_none_or(|b| b.would_admit(until))
            }
            _ => false,
        };
        self.last = match kept {
            // Released before the sleep and the hooks: the next attempt replaces it anyway.
            LastFailure::Value(v) if retrying && self.ctx.result.release_before_retry() => {
                drop(v);
                LastFailure::Nothing
            }
            kept => kept,
        };
        Err(self.handle(d, t))
    }

    /// Reports that the running attempt passed its time limit.
    pub(crate) fn timed_out(&mut self, now: Instant) -> Next {
        self.last = LastFailure::TimedOut;
        let d = self.m.on_outcome(now, Outcome::TimedOut);
        self.handle(d, now)
    }

    /// Wakes after a sleep (early wake-ups just ask to sleep again).
    pub(crate) fn wake(&mut self, now: Instant) -> Next {
        if self.aborted() {
            let d = self.m.abort(now);
            return self.handle(d, now);
        }
        let d = self.m.on_wake(now);
        self.handle(d, now)
    }

    /// The error of a call that ended without success.
    pub(crate) fn into_error(self) -> RetryError<E, V> {
        let reason = self.m.stop_reason().unwrap_or(StopReason::Aborted);
        let err = RetryError::new(reason, self.m.attempt(), self.m.last_class(), self.last);
        match reason {
            StopReason::Deferred { .. } => err.with_state(self.m.state()),
            _ => err,
        }
    }

    fn aborted(&self) -> bool {
        self.ctx.abort.as_ref().is_some_and(|a| a.is_aborted())
    }

    fn drain(&mut self) {
        if !self.observe {
            return;
        }
        while let Some(e) = self.m.poll_event() {
            self.ctx.policy.emit(&e);
            if let Some(r) = self.report.as_deref_mut() {
                r.observe(&e);
            }
        }
    }

    fn handle(&mut self, mut d: Decision, now: Instant) -> Next {
        loop {
            self.drain();
            match d {
                Decision::Attempt { n, deadline } => {
                    if self.aborted() {
                        d = self.m.abort_before_attempt(now);
                        continue;
                    }
                    let a = Attempt {
                        n,
                        deadline,
                        time_limit: deadline.map(|t| t.saturating_duration_since(now)),
                    };
                    self.ctx.run_on_attempt(&a);
                    return Next::Attempt(a);
                }
                Decision::Sleep { until, delay } => {
                    if self.announced_sleep == Some(until) {
                        return Next::Sleep(until);
                    }
                    let info = SleepInfo {
                        attempt: self.m.attempt(),
                        class: self.m.last_class(),
                        delay,
                        until,
                    };
                    match self.ctx.run_before_sleep(&info) {
                        SleepVerdict::Sleep => {}
                        SleepVerdict::Shorten(max) => {
                            d = self.m.reschedule(now, now.saturating_add(max));
                            if !matches!(d, Decision::Sleep { .. }) {
                                continue;
                            }
                        }
                        SleepVerdict::Abort => {
                            d = self.m.abort(now);
                            continue;
                        }
                    }
                    let Decision::Sleep { until, .. } = d else {
                        continue;
                    };
                    self.announced_sleep = Some(until);
                    return Next::Sleep(until);
                }
                Decision::Rejected { .. } | Decision::Succeeded | Decision::Failed(_) => {
                    return Next::Done;
                }
            }
        }
    }
}
