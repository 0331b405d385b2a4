//! The blocking loop.

use crate::class::Classify;
use crate::drive::step::{
    FIRST, Next, Run, admit_first, check, first_attempt_is_admitted, first_attempt_is_light,
    light_call_is_precise, rejected, succeed_first,
};
use crate::drive::{AbortHandle, Attempt, CallContext, ResultCheck};
use crate::error::RetryError;
use crate::machine::First;
use crate::report::CallReport;
use crate::state::RetryState;
use crate::time::{Clock, Instant, ManualClock, SystemClock};

/// A clock and a way to wait on it, for [`run_blocking`].
pub trait Sleeper {
    /// The current time.
    fn now(&self) -> Instant;
    /// The current time, possibly a few milliseconds behind [`now`](Self::now) but never
    /// ahead of it (see [`Clock::now_coarse`]). Defaults to `now`.
    fn now_coarse(&self) -> Instant {
        self.now()
    }
    /// Blocks until `until`, or until `abort` fires.
    fn sleep_until(&self, until: Instant, abort: Option<&AbortHandle>);
}

/// The real clock and `std::thread::sleep`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ThreadSleeper;

impl Sleeper for ThreadSleeper {
    fn now(&self) -> Instant {
        SystemClock.now()
    }

    fn now_coarse(&self) -> Instant {
        SystemClock.now_coarse()
    }

    fn sleep_until(&self, until: Instant, abort: Option<&AbortHandle>) {
        let d = until.saturating_duration_since(self.now());
        match abort {
            Some(h) => {
                h.wait_timeout(d);
            }
            None => std::thread::sleep(d),
        }
    }
}

/// A fake clock whose sleeps return at once, moving the clock to the sleep's end: tests
/// run a whole retry schedule without waiting. Also an async [`Timer`](crate::drive::Timer).
#[derive(Clone, Debug, Default)]
pub struct ManualSleeper {
    /// The clock it moves.
    pub clock: ManualClock,
}

impl ManualSleeper {
    /// A sleeper over `clock`.
    pub fn new(clock: ManualClock) -> Self {
        Self { clock }
    }

    pub(crate) fn skip_to(&self, until: Instant) {
        if until > self.clock.now() {
            self.clock.set(until);
        }
    }
}

impl Sleeper for ManualSleeper {
    fn now(&self) -> Instant {
        self.clock.now()
    }

    fn sleep_until(&self, until: Instant, _abort: Option<&AbortHandle>) {
        self.skip_to(until);
    }
}

/// Runs one call of `op` through `ctx`, sleeping with `sleeper`.
///
/// `resume` continues a deferred call; `report`, if given, receives every event.
///
/// # Errors
/// A [`RetryError`] saying why the call stopped without success.
pub fn run_blocking<T, E, F, C, R, S>(
    ctx: &CallContext<'_, C, R>,
    sleeper: &S,
    resume: Option<&RetryState>,
    report: Option<&mut CallReport>,
    mut op: F,
) -> Result<T, RetryError<E, R::Kept>>
where
    F: FnMut(Attempt) -> Result<T, E>,
    C: Classify<E>,
    R: ResultCheck<T>,
    S: Sleeper + ?Sized,
{
    let mut report = report;
    // Assigned in place rather than returned from the branches: the run is large.
    let mut run;
    let mut next;
    if first_attempt_is_light(ctx, resume) {
        let reporting = report.is_some();
        let failure = if first_attempt_is_admitted(ctx, reporting) {
            let precise = light_call_is_precise(ctx, reporting);
            let now = || {
                if precise {
                    sleeper.now()
                } else {
                    sleeper.now_coarse()
                }
            };
            let recheck = || (!precise).then(|| sleeper.now());
            let mut first = match admit_first(ctx, &mut report, now, recheck) {
                Ok(first) => first,
                Err(until) => return Err(rejected(ctx, &mut report, until)),
            };
            let a = first.attempt(ctx.policy);
            ctx.run_on_attempt(&a);
            match check(ctx, op(a)) {
                Ok(v) => {
                    succeed_first(ctx, &mut first, &mut report, now);
                    return Ok(v);
                }
                Err(failure) => (first, failure),
            }
        } else {
            // Nothing to admit, date or tell: the attempt alone.
            ctx.run_on_attempt(&FIRST);
            match check(ctx, op(FIRST)) {
                Ok(v) => return Ok(v),
                Err(failure) => (First::UNTIMED, failure),
            }
        };
        let (first, failure) = failure;
        // The machine takes over the attempt that just failed.
        run = Run::from_first(ctx, first, report);
        next = match run.finish_checked(|| sleeper.now(), Err::<T, _>(failure)) {
            Ok(v) => return Ok(v),
            Err(next) => next,
        };
    } else {
        run = Run::new(ctx, resume, report);
        next = run.start(|| sleeper.now());
    }
    loop {
        next = match next {
            Next::Attempt(a) => match run.finish(|| sleeper.now(), op(a)) {
                Ok(v) => return Ok(v),
                Err(next) => next,
            },
            Next::Sleep(until) => {
                sleeper.sleep_until(until, ctx.abort.as_ref());
                run.wake(sleeper.now())
            }
            Next::Done => return Err(run.into_error()),
        };
    }
}
