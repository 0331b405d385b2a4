//! The async loop, shared by every async driver.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::borrow::Borrow;

use crate::class::Classify;
use crate::decision::Outcome;
use crate::drive::blocking::ManualSleeper;
use crate::drive::step::{
    FIRST, Next, Run, admit_first, check, first_attempt_is_admitted, first_attempt_is_light,
    light_call_is_precise, rejected, succeed_first,
};
use crate::drive::{Attempt, CallContext, ResultCheck};
use crate::error::LastFailure;
use crate::error::RetryError;
use crate::machine::First;
use crate::report::CallReport;
use crate::state::RetryState;
use crate::time::{Clock, Instant};

/// A runtime's clock and timer, for [`run_async`].
pub trait Timer {
    /// The future of a sleep.
    type Sleep: Future<Output = ()>;
    /// The current time.
    fn now(&self) -> Instant;
    /// The current time, possibly a few milliseconds behind [`now`](Self::now) but never
    /// ahead of it (see [`Clock::now_coarse`]). Defaults to `now`.
    fn now_coarse(&self) -> Instant {
        self.now()
    }
    /// A future that completes at `until`.
    fn sleep_until(&self, until: Instant) -> Self::Sleep;
}

impl Timer for ManualSleeper {
    type Sleep = ManualSleep;
    fn now(&self) -> Instant {
        self.clock.now()
    }
    fn sleep_until(&self, until: Instant) -> Self::Sleep {
        ManualSleep {
            sleeper: self.clone(),
            until,
        }
    }
}

/// The sleep of a [`ManualSleeper`]: its first poll moves the clock to the sleep's end and
/// completes. A sleep never polled leaves the clock alone, so an attempt that finishes
/// before its time limit does not age the clock to that limit.
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct ManualSleep {
    sleeper: ManualSleeper,
    until: Instant,
}

impl Future for ManualSleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        self.sleeper.skip_to(self.until);
        Poll::Ready(())
    }
}

pin_project_lite::pin_project! {
    /// Polls `a` and a timer together: `Some` with `a`'s output if it finished first. The
    /// timer is built only if `a` is not ready at its first poll, so an attempt that
    /// completes at once never creates (nor drops) a runtime timer. Hand-written rather than
    /// an `async fn`, which would hold its arguments twice.
    struct RaceTimer<A, B, M> {
        #[pin]
        a: A,
        #[pin]
        timer: Option<B>,
        make: Option<M>,
    }
}

impl<A: Future, B: Future<Output = ()>, M: FnOnce() -> B> Future for RaceTimer<A, B, M> {
    type Output = Option<A::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(v) = this.a.poll(cx) {
            return Poll::Ready(Some(v));
        }
        if let Some(make) = this.make.take() {
            this.timer.set(Some(make()));
        }
        match this.timer.as_pin_mut().map(|t| t.poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(None),
            _ => Poll::Pending,
        }
    }
}

/// Races `a` against the timer `make` builds when first needed.
fn race_timer<A: Future, B: Future<Output = ()>, M: FnOnce() -> B>(
    a: A,
    make: M,
) -> RaceTimer<A, B, M> {
    RaceTimer {
        a,
        timer: None,
        make: Some(make),
    }
}

/// Polls `a` and `b` together; `Some` with `a`'s output if it finished first.
fn race<A: Future, B: Future<Output = ()>>(a: A, b: B) -> impl Future<Output = Option<A::Output>> {
    race_timer(a, || b)
}

/// Runs one call of the async operation `op` through `ctx` (owned or borrowed) on `timer`.
///
/// Each attempt is raced against its time limit (a timed-out attempt is dropped and
/// reported as [`Outcome::TimedOut`](crate::Outcome::TimedOut)); sleeps are raced against
/// the context's abort handle. Dropping the returned future at any await point drops the
/// machine (or, during the first attempt, its admission), which releases its breaker
/// permit: nothing is counted twice and no probe slot is lost.
///
/// The first attempt of a new call runs without a machine: its success or rejection
/// allocates nothing (a [`CallReport`] may grow its timeline), and the returned future
/// holds little more than that attempt. A call that goes on (a failure, a resumed call, an
/// abort before the start) boxes its machine and retry loop once (one allocation of about
/// 1.5 KB), so the future stays small for the common case.
///
/// # Errors
/// A [`RetryError`] saying why the call stopped without success.
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn moves its arguments into a second copy inside its future"
)]
pub fn run_async<'p, T, E, F, C, R, Tm, X>(
    ctx: X,
    timer: &Tm,
    resume: Option<&RetryState>,
    report: Option<&mut CallReport>,
    mut op: F,
) -> impl Future<Output = Result<T, RetryError<E, R::Kept>>>
where
    F: AsyncFnMut(Attempt) -> Result<T, E>,
    C: Classify<E>,
    R: ResultCheck<T>,
    Tm: Timer + ?Sized,
    X: Borrow<CallContext<'p, C, R>>,
{
    // Taking the context by value or by reference lets `call` return this future directly,
    // without a wrapper future that would copy it once more per call. An async block (not
    // an `async fn`, which moves its arguments into a second copy) holds each argument once.
    async move {
        let ctx: &CallContext<'p, C, R> = ctx.borrow();
        let mut report = report;
        if !first_attempt_is_light(ctx, resume) {
            return Box::pin(retry_loop(ctx, timer, Begin::Start(resume), report, op)).await;
        }
        let reporting = report.is_some();
        // A function, not a closure kept across the awaits: the future stays smaller.
        let now = || light_now(ctx, timer, reporting);
        // The first attempt's failure, or `None` if it ran out of time.
        let (first, failure) = if first_attempt_is_admitted(ctx, reporting) {
            let recheck = || (!light_call_is_precise(ctx, reporting)).then(|| timer.now());
            let mut first = match admit_first(ctx, &mut report, now, recheck) {
                Ok(first) => first,
                Err(until) => return Err(rejected(ctx, &mut report, until)),
            };
            let (attempt, deadline) = {
                let a = first.attempt(ctx.policy);
                ctx.run_on_attempt(&a);
                (op(a), a.deadline)
            };
            let result = match deadline {
                None => Some(attempt.await),
                Some(t) => race_timer(attempt, move || timer.sleep_until(t)).await,
            };
            match result.map(|r| check(ctx, r)) {
                Some(Ok(v)) => {
                    succeed_first(ctx, &mut first, &mut report, || {
                        light_now(ctx, timer, reporting)
                    });
                    return Ok(v);
                }
                Some(Err(failure)) => (first, Some(failure)),
                None => (first, None),
            }
        } else {
            // Nothing to admit, date or tell: the attempt alone.
            ctx.run_on_attempt(&FIRST);
            match check(ctx, op(FIRST).await) {
                Ok(v) => return Ok(v),
                Err(failure) => (First::UNTIMED, Some(failure)),
            }
        };
        Box::pin(retry_loop(
            ctx,
            timer,
            Begin::After(first, failure),
            report,
            op,
        ))
        .await
    }
}

/// The time for a light call's first attempt: precise or coarse (see
/// [`light_call_is_precise`]).
fn light_now<C, R, Tm: Timer + ?Sized>(
    ctx: &CallContext<'_, C, R>,
    timer: &Tm,
    reporting: bool,
) -> Instant {
    if light_call_is_precise(ctx, reporting) {
        timer.now()
    } else {
        timer.now_coarse()
    }
}

/// How the machine's loop begins: with a fresh (or resumed) start, or after a light first
/// attempt that failed (`None`: it ran out of time).
enum Begin<'a, 's, E, V> {
    Start(Option<&'s RetryState>),
    After(First<'a>, Option<(Outcome, LastFailure<E, V>)>),
}

/// The machine's loop: every attempt after a light first one, or the whole call.
async fn retry_loop<'a, 'p, T, E, F, C, R, Tm>(
    ctx: &'a CallContext<'p, C, R>,
    timer: &Tm,
    begin: Begin<'a, '_, E, R::Kept>,
    report: Option<&'a mut CallReport>,
    mut op: F,
) -> Result<T, RetryError<E, R::Kept>>
where
    F: AsyncFnMut(Attempt) -> Result<T, E>,
    C: Classify<E>,
    R: ResultCheck<T>,
    Tm: Timer + ?Sized,
{
    let (mut run, mut next) = match begin {
        Begin::Start(resume) => {
            let mut run = Run::new(ctx, resume, report);
            let next = run.start(|| timer.now());
            (run, next)
        }
        Begin::After(first, failure) => {
            // The machine takes over the attempt that just failed.
            let mut run = Run::from_first(ctx, first, report);
            let next = match failure {
                Some(failure) => match run.finish_checked(|| timer.now(), Err::<T, _>(failure)) {
                    Ok(v) => return Ok(v),
                    Err(next) => next,
                },
                None => run.timed_out(timer.now()),
            };
            (run, next)
        }
    };
    loop {
        next = match next {
            Next::Attempt(a) => {
                let result = match a.deadline {
                    None => Some(op(a).await),
                    Some(t) => race_timer(op(a), || timer.sleep_until(t)).await,
                };
                match result {
                    Some(r) => match run.finish(|| timer.now(), r) {
                        Ok(v) => return Ok(v),
                        Err(next) => next,
                    },
                    None => run.timed_out(timer.now()),
                }
            }
            Next::Sleep(until) => {
                match &ctx.abort {
                    Some(h) => {
                        race(timer.sleep_until(until), h.aborted()).await;
                    }
                    None => timer.sleep_until(until).await,
                }
                run.wake(timer.now())
            }
            Next::Done => return Err(run.into_error()),
        };
    }
}
