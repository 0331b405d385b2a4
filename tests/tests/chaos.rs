//! Chaos: every driver against operations that fail, panic, hang past their time limit or
//! are dropped mid-call; hooks (`on_attempt`, `before_sleep`, the event hook) that panic;
//! clocks that jump backwards and forwards. Everything is drawn from seeded generators
//! (`redress::rng::seeded`), so a failure names the seed that reproduces it.
//!
//! Many calls share one breaker and one budget per run. After every run:
//! - **the breaker's state is the one its events say**: the transitions the hook saw form a
//!   valid path (closed → open → half-open → closed or open) ending in the breaker's state;
//! - **the budget balances**: what it has left is its capacity minus one unit per retry
//!   event;
//! - **every call is accounted for**: successes, stop reasons and rejections seen by the hook
//!   match the calls' results one for one (calls that panicked or were dropped end without
//!   a terminal event);
//! - **no permit leaked**: a late caller is admitted by the breaker as many times as it has
//!   probe slots, and enough successes close it;
//! - **nothing is left running**: every operation future was dropped, and the runtimes have
//!   no task left.
//!
//! On the drivers with a fake clock the same run is repeated with well-behaved hooks, and
//! must give exactly the same results and events: a panicking hook is contained.
#![allow(clippy::unwrap_used)]
#![forbid(unsafe_code)]

use std::future::Future;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_lite::FutureExt as _;
use redress::backoff::constant;
use redress::breaker::BreakerOutcome;
use redress::drive::{ManualSleeper, SleepVerdict, Timer};
use redress::event::Event;
use redress::rng::{DefaultRng, Rng, seeded};
use redress::{
    Attempt, BreakerScope, Budget, CallContext, CircuitBreaker, CircuitState, Clock, EventKind,
    Hook, Instant, ManualClock, Policy, Retry, RetryError, StopReason,
};

const THRESHOLD: u32 = 3;
const RECOVERY: Duration = Duration::from_millis(30);
const PROBES: u32 = 2;
const BUDGET: u64 = 25;
/// Long enough that every withdrawal of a run stays in the budget's window.
const BUDGET_WINDOW: Duration = Duration::from_secs(3600);
const MAX_ATTEMPTS: u32 = 4;

// ----- what can happen --------------------------------------------------------------------

/// What one attempt does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Succeed,
    /// `ConnectionReset`: Transient, retried.
    Transient,
    /// `NotFound`: Permanent, not retried.
    Permanent,
    Panic,
    /// Runs past its time limit (async: never finishes; blocking: returns late).
    Hang,
}

/// What a `before_sleep` hook answers.
#[derive(Clone, Copy, Debug)]
enum Verdict {
    Sleep,
    Shorten(Duration),
    Abort,
    /// Panics when the run's hooks misbehave; sleeps as planned otherwise.
    Panic,
}

/// How one call goes, drawn from the run's generator.
#[derive(Clone, Debug)]
struct Plan {
    actions: [Action; MAX_ATTEMPTS as usize],
    verdicts: [Verdict; MAX_ATTEMPTS as usize],
    /// Clock jumps (milliseconds, either way) made by `on_attempt` before each attempt.
    jumps: [i64; MAX_ATTEMPTS as usize],
    /// Polls the operation stays pending before it ends.
    yields: u32,
    /// Polls (or, on real timers, milliseconds) after which the call is dropped.
    drop_after: Option<u32>,
    /// Time between the previous call's start and this one's (so open breakers recover).
    gap: Duration,
}

fn below(rng: &mut DefaultRng, n: u64) -> u64 {
    rng.next_u64() % n
}

impl Plan {
    fn draw(rng: &mut DefaultRng, jumps: bool) -> Self {
        let mut action = || match below(rng, 20) {
            0..=5 => Action::Succeed,
            6..=13 => Action::Transient,
            14 => Action::Permanent,
            15..=16 => Action::Panic,
            _ => Action::Hang,
        };
        let actions = [action(), action(), action(), action()];
        let mut verdict = || match below(rng, 10) {
            0..=5 => Verdict::Sleep,
            6 => Verdict::Shorten(Duration::from_millis(below(rng, 3))),
            7 => Verdict::Abort,
            _ => Verdict::Panic,
        };
        let verdicts = [verdict(), verdict(), verdict(), verdict()];
        let mut jump = || match (jumps, below(rng, 4)) {
            (false, _) | (true, 0 | 1) => 0,
            (true, 2) => -(below(rng, 2000) as i64),
            (true, _) => below(rng, 2000) as i64,
        };
        let jumps = [jump(), jump(), jump(), jump()];
        let yields = below(rng, 4) as u32;
        let drop_after = (below(rng, 4) == 0).then(|| below(rng, 12) as u32);
        let gap = Duration::from_millis(below(rng, 12));
        Self {
            actions,
            verdicts,
            jumps,
            yields,
            drop_after,
            gap,
        }
    }

    fn action(&self, a: &Attempt) -> Action {
        self.actions[(a.n as usize - 1) % self.actions.len()]
    }
}

/// How a call ended, as the caller saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Ok,
    Err(StopReason),
    Panicked,
    Dropped,
}

type CallResult = Result<u32, RetryError<io::Error>>;

impl From<CallResult> for End {
    fn from(r: CallResult) -> Self {
        match r {
            Ok(_) => End::Ok,
            Err(e) => End::Err(e.reason()),
        }
    }
}

fn error(action: Action) -> io::Error {
    io::Error::from(match action {
        Action::Permanent => io::ErrorKind::NotFound,
        Action::Hang => io::ErrorKind::TimedOut,
        _ => io::ErrorKind::ConnectionReset,
    })
}

/// Chaos panics carry this prefix; the panic hook keeps them quiet.
const CHAOS: &str = "chaos:";

fn quiet_chaos_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = info
                .payload()
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str));
            if !msg.is_some_and(|m| m.starts_with(CHAOS)) {
                default(info);
            }
        }));
    });
}

// ----- the shared state of a run ------------------------------------------------------------

/// The event hook: records every event kind in order, then panics every `panic_every`-th
/// event when the run's hooks misbehave.
struct Log {
    kinds: Mutex<Vec<EventKind>>,
    seen: AtomicU64,
    panic_every: u64,
    misbehave: bool,
}

impl Hook for Log {
    fn on_event(&self, event: &Event<'_>) {
        self.kinds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event.kind);
        let n = self.seen.fetch_add(1, Ordering::Relaxed) + 1;
        if self.misbehave && n.is_multiple_of(self.panic_every) {
            panic!("{CHAOS} event hook");
        }
    }
}

/// Counts operation futures (or closures) that are running; each decrements on drop.
struct Live(Arc<AtomicUsize>);

impl Live {
    fn enter(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Rig {
    policy: Policy,
    breaker: Arc<CircuitBreaker>,
    budget: Arc<Budget>,
    log: Arc<Log>,
    live: Arc<AtomicUsize>,
    /// The fake clock, for drivers that take one.
    clock: Option<ManualClock>,
    /// Whether hooks panic (on_attempt on odd attempts, before_sleep on `Verdict::Panic`).
    misbehave: bool,
}

impl Rig {
    fn new(seed: u64, clock: Option<ManualClock>, misbehave: bool, timeout: Duration) -> Self {
        let mut rng = seeded(seed ^ 0x5ca1_ab1e);
        let breaker = Arc::new(
            CircuitBreaker::consecutive(THRESHOLD, Duration::from_secs(1))
                .recovery(RECOVERY)
                .probes(PROBES)
                .build()
                .unwrap(),
        );
        let budget = Arc::new(
            Budget::rolling(BUDGET as u32, BUDGET_WINDOW)
                .build()
                .unwrap(),
        );
        // Drawn whether or not the hook panics, so a tame rig matches its wild twin.
        let log = Arc::new(Log {
            kinds: Mutex::new(Vec::new()),
            seen: AtomicU64::new(0),
            panic_every: 2 + below(&mut rng, 5),
            misbehave,
        });
        let delay = Duration::from_millis([0, 1, 2][below(&mut rng, 3) as usize]);
        let scope = if below(&mut rng, 3) == 0 {
            BreakerScope::PerCall
        } else {
            BreakerScope::PerAttempt
        };
        let policy = Policy::builder()
            .retry(
                Retry::builder()
                    .max_attempts(MAX_ATTEMPTS)
                    .attempt_timeout(timeout)
                    .deadline(Duration::from_secs(10))
                    .strategy(constant(delay))
                    .budget(budget.clone()),
            )
            .breaker(breaker.clone())
            .breaker_scope(scope)
            .shared_hook(log.clone())
            .seed(seed)
            .build()
            .unwrap();
        Self {
            policy,
            breaker,
            budget,
            log,
            live: Arc::new(AtomicUsize::new(0)),
            clock,
            misbehave,
        }
    }

    /// A context for one call: `on_attempt` jumps the fake clock (and may panic),
    /// `before_sleep` follows the plan (and may panic).
    fn context(&self, plan: &Plan) -> CallContext<'_> {
        let jumps = plan.jumps;
        let verdicts = plan.verdicts;
        let clock = self.clock.clone();
        let misbehave = self.misbehave;
        self.policy
            .context("chaos")
            .on_attempt(move |a| {
                if let Some(c) = &clock {
                    let jump = jumps[(a.n as usize - 1) % jumps.len()];
                    let d = Duration::from_millis(jump.unsigned_abs());
                    c.set(if jump < 0 { c.now() - d } else { c.now() + d });
                }
                if misbehave && a.n % 2 == 1 {
                    panic!("{CHAOS} on_attempt");
                }
            })
            .before_sleep(move |s| {
                match verdicts[(s.attempt as usize).saturating_sub(1) % verdicts.len()] {
                    Verdict::Sleep => SleepVerdict::Sleep,
                    Verdict::Shorten(d) => SleepVerdict::Shorten(d),
                    Verdict::Abort => SleepVerdict::Abort,
                    Verdict::Panic if misbehave => panic!("{CHAOS} before_sleep"),
                    Verdict::Panic => SleepVerdict::Sleep,
                }
            })
    }

    fn events(&self) -> Vec<EventKind> {
        self.log
            .kinds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Every promise of the module docs, after a run whose calls ended as `ends`. With
    /// `ordered`, the calls ran on one thread, so the hook saw transitions in the order the
    /// breaker made them.
    fn check(&self, label: &str, ends: &[End], ordered: bool) {
        let events = self.events();

        // The breaker's state is the one its events say.
        let mut state = CircuitState::Closed;
        let (mut opened, mut half_opened, mut closed) = (0, 0, 0);
        for kind in &events {
            let next = match kind {
                EventKind::CircuitOpened => {
                    opened += 1;
                    assert!(
                        !ordered || state != CircuitState::Open,
                        "{label}: opened twice"
                    );
                    CircuitState::Open
                }
                EventKind::CircuitHalfOpen => {
                    half_opened += 1;
                    assert!(
                        !ordered || state == CircuitState::Open,
                        "{label}: {events:?}"
                    );
                    CircuitState::HalfOpen
                }
                EventKind::CircuitClosed => {
                    closed += 1;
                    assert!(!ordered || state == CircuitState::HalfOpen, "{label}");
                    CircuitState::Closed
                }
                _ => continue,
            };
            state = next;
        }
        if ordered {
            assert_eq!(self.breaker.state(), state, "{label}: {events:?}");
        }
        assert!(closed <= half_opened && half_opened <= opened, "{label}");

        // The budget balances: one unit per retry event.
        let retries = events
            .iter()
            .filter(|k| matches!(k, EventKind::Retry { .. }))
            .count() as u64;
        assert!(retries <= BUDGET, "{label}: {retries} retries");
        assert_eq!(
            self.budget.remaining(Instant::ZERO),
            BUDGET - retries,
            "{label}: budget out of balance"
        );

        // Every call is accounted for.
        let count = |f: &dyn Fn(&End) -> bool| ends.iter().filter(|e| f(e)).count();
        let successes = events.iter().filter(|k| **k == EventKind::Success).count();
        assert_eq!(successes, count(&|e| *e == End::Ok), "{label}: successes");
        let rejected = events
            .iter()
            .filter(|k| matches!(k, EventKind::CircuitRejected { .. }))
            .count();
        assert_eq!(
            rejected,
            count(&|e| matches!(e, End::Err(StopReason::CircuitOpen { .. }))),
            "{label}: rejections"
        );
        let mut stopped: Vec<StopReason> = events
            .iter()
            .filter_map(|k| match k {
                EventKind::Stopped(r) => Some(*r),
                _ => None,
            })
            .collect();
        let mut failed: Vec<StopReason> = ends
            .iter()
            .filter_map(|e| match e {
                End::Err(StopReason::CircuitOpen { .. }) => None,
                End::Err(r) => Some(*r),
                _ => None,
            })
            .collect();
        stopped.sort_by_key(|r| r.name());
        failed.sort_by_key(|r| r.name());
        assert_eq!(stopped, failed, "{label}: stop reasons");

        // Nothing is left running.
        assert_eq!(
            self.live.load(Ordering::SeqCst),
            0,
            "{label}: operations alive"
        );

        // No permit leaked: a late caller gets every probe slot, and successes close it.
        let late = Instant::MAX;
        let mut held = Vec::new();
        for i in 0..PROBES {
            let p = self
                .breaker
                .try_acquire(late)
                .unwrap_or_else(|e| panic!("{label}: probe {i} refused ({e:?}): a permit leaked"));
            let is_closed = self.breaker.state() == CircuitState::Closed;
            held.push(p);
            if is_closed {
                break;
            }
        }
        if self.breaker.state() == CircuitState::HalfOpen {
            assert!(
                self.breaker.try_acquire(late).is_err(),
                "{label}: extra probe"
            );
        }
        for p in held {
            self.breaker.record(late, p, BreakerOutcome::Success);
        }
        assert_eq!(self.breaker.state(), CircuitState::Closed, "{label}");
    }
}

// ----- operations ---------------------------------------------------------------------------

/// Pending for `n` polls (waking itself each time), then ready: an await point.
struct Yield(u32);

impl Future for Yield {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 == 0 {
            return Poll::Ready(());
        }
        self.0 -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// The blocking operation of `plan`. A hang returns only after its time limit has passed.
fn blocking_op<'a>(
    rig: &'a Rig,
    plan: &'a Plan,
) -> impl FnMut(Attempt) -> Result<u32, io::Error> + 'a {
    move |a| {
        let _live = Live::enter(&rig.live);
        match plan.action(&a) {
            Action::Succeed => Ok(a.n),
            Action::Panic => panic!("{CHAOS} operation"),
            Action::Hang => {
                if let (Some(c), Some(limit)) = (&rig.clock, a.deadline) {
                    c.set(limit + Duration::from_millis(1));
                }
                Err(error(Action::Hang))
            }
            other => Err(error(other)),
        }
    }
}

/// The async operation of `plan` (a macro, so the closure's future stays `Send` where the
/// runtime needs it): pending for `plan.yields` polls, then it acts; a hang never finishes
/// (the driver's time limit must end it).
macro_rules! async_op {
    ($rig:expr, $plan:expr) => {{
        let (rig, plan): (&Rig, &Plan) = ($rig, $plan);
        async move |a: Attempt| -> Result<u32, io::Error> {
            let _live = Live::enter(&rig.live);
            Yield(plan.yields).await;
            match plan.action(&a) {
                Action::Succeed => Ok(a.n),
                Action::Panic => panic!("{CHAOS} operation"),
                Action::Hang => std::future::pending().await,
                other => Err(error(other)),
            }
        }
    }};
}

// ----- a fake timer with await points ---------------------------------------------------------

/// A fake clock whose sleeps stay pending for a few polls before moving the clock to their
/// end: every sleep and time limit is an await point where a call can be dropped.
struct StepTimer {
    clock: ManualClock,
    polls: u32,
}

struct StepSleep {
    clock: ManualClock,
    until: Instant,
    left: u32,
}

impl Future for StepSleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.left == 0 {
            if self.until > self.clock.now() {
                self.clock.set(self.until);
            }
            return Poll::Ready(());
        }
        self.left -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl Timer for StepTimer {
    type Sleep = StepSleep;
    fn now(&self) -> Instant {
        self.clock.now()
    }
    fn sleep_until(&self, until: Instant) -> StepSleep {
        StepSleep {
            clock: self.clock.clone(),
            until,
            left: self.polls,
        }
    }
}

type BoxedCall<'a> = Pin<Box<dyn Future<Output = CallResult> + 'a>>;

/// Polls every call in turn on this thread (a no-op waker: every await point here wakes
/// itself), catching panics, and drops each call once its poll allowance is spent.
fn interleave(calls: Vec<(BoxedCall<'_>, Option<u32>)>) -> Vec<End> {
    let mut cx = Context::from_waker(Waker::noop());
    let mut ends = vec![End::Dropped; calls.len()];
    let mut slots: Vec<Option<(BoxedCall<'_>, u32)>> = calls
        .into_iter()
        .map(|(f, allowance)| Some((f, allowance.unwrap_or(100_000))))
        .collect();
    while slots.iter().any(Option::is_some) {
        for (i, slot) in slots.iter_mut().enumerate() {
            let Some((call, left)) = slot else { continue };
            if *left == 0 {
                *slot = None; // dropped mid-call
                continue;
            }
            *left -= 1;
            match catch_unwind(AssertUnwindSafe(|| call.as_mut().poll(&mut cx))) {
                Ok(Poll::Pending) => {}
                Ok(Poll::Ready(r)) => {
                    ends[i] = r.into();
                    *slot = None;
                }
                Err(_) => {
                    ends[i] = End::Panicked;
                    *slot = None;
                }
            }
        }
    }
    ends
}

// ----- one run per driver ---------------------------------------------------------------------

const CALLS: usize = 24;

fn plans(seed: u64, jumps: bool) -> Vec<Plan> {
    let mut rng = seeded(seed);
    (0..CALLS).map(|_| Plan::draw(&mut rng, jumps)).collect()
}

fn fake_clock() -> ManualClock {
    ManualClock::new(Instant::from_secs(1))
}

/// Blocking driver, one thread, fake clock: calls in a row.
fn blocking_run(seed: u64, misbehave: bool) -> (Vec<End>, Vec<EventKind>) {
    use redress_blocking::RunBlocking;
    let clock = fake_clock();
    let rig = Rig::new(
        seed,
        Some(clock.clone()),
        misbehave,
        Duration::from_millis(20),
    );
    let sleeper = ManualSleeper::new(clock);
    let ends: Vec<End> = plans(seed, true)
        .iter()
        .map(|plan| {
            sleeper.clock.advance(plan.gap);
            let ctx = rig.context(plan);
            catch_unwind(AssertUnwindSafe(|| {
                End::from(ctx.run_with(&sleeper, blocking_op(&rig, plan)))
            }))
            .unwrap_or(End::Panicked)
        })
        .collect();
    rig.check(&format!("blocking seed {seed}"), &ends, true);
    (ends, rig.events())
}

/// The shared async loop through a driver crate's `run_with`, on [`StepTimer`]: calls
/// interleaved on one thread, each dropped at a random await point or run to its end.
fn stepped_run(seed: u64, misbehave: bool, tokio_crate: bool) -> (Vec<End>, Vec<EventKind>) {
    let clock = fake_clock();
    let rig = Rig::new(
        seed,
        Some(clock.clone()),
        misbehave,
        Duration::from_millis(20),
    );
    let timer = StepTimer {
        clock,
        polls: 1 + (seed % 4) as u32,
    };
    let plans = plans(seed, true);
    let ctxs: Vec<_> = plans.iter().map(|p| rig.context(p)).collect();
    let calls: Vec<(BoxedCall<'_>, Option<u32>)> = ctxs
        .iter()
        .zip(&plans)
        .enumerate()
        .map(|(i, (ctx, plan))| {
            let op = async_op!(&rig, plan);
            // Each call starts `gap` after the previous one started.
            let start = Instant::from_secs(1) + plans[..i].iter().map(|p| p.gap).sum::<Duration>();
            let starting = timer.sleep_until(start);
            let timer = &timer;
            let call: BoxedCall<'_> = if tokio_crate {
                Box::pin(async move {
                    starting.await;
                    redress_tokio::RunAsync::run_with(ctx, timer, op).await
                })
            } else {
                Box::pin(async move {
                    starting.await;
                    redress_smol::RunAsync::run_with(ctx, timer, op).await
                })
            };
            (call, plan.drop_after)
        })
        .collect();
    let ends = interleave(calls);
    drop(ctxs);
    rig.check(&format!("stepped seed {seed}"), &ends, true);
    (ends, rig.events())
}

/// Two threads of blocking calls on one fake clock (their sleeps move it for both).
fn blocking_threads_run(seed: u64) {
    use redress_blocking::RunBlocking;
    let clock = fake_clock();
    let rig = Rig::new(seed, Some(clock.clone()), true, Duration::from_millis(20));
    let sleeper = ManualSleeper::new(clock);
    let ends: Vec<End> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2u64)
            .map(|t| {
                let (rig, sleeper) = (&rig, &sleeper);
                s.spawn(move || {
                    plans(seed.wrapping_add(t), true)
                        .iter()
                        .map(|plan| {
                            sleeper.clock.advance(plan.gap);
                            let ctx = rig.context(plan);
                            catch_unwind(AssertUnwindSafe(|| {
                                End::from(ctx.run_with(sleeper, blocking_op(rig, plan)))
                            }))
                            .unwrap_or(End::Panicked)
                        })
                        .collect::<Vec<End>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    rig.check(&format!("blocking threads seed {seed}"), &ends, false);
}

/// Tokio's own timer on a paused clock: each call is a task (local, as the operation
/// borrows its plan); some are wrapped in a timeout that drops them, some are aborted from
/// outside.
fn tokio_run(seed: u64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let rig = Arc::new(Rig::new(seed, None, true, Duration::from_millis(20)));
    let tasks = Arc::new(AtomicUsize::new(0));
    let plans = plans(seed, false);
    let local = tokio::task::LocalSet::new();
    let ends = rt.block_on(local.run_until(async {
        let mut handles = Vec::new();
        for (i, plan) in plans.iter().cloned().enumerate() {
            let rig = rig.clone();
            let live_task = Live::enter(&tasks);
            let aborted_later = i % 2 == 1;
            let abort_after = plan.drop_after.filter(|_| aborted_later);
            let start = plans[..i].iter().map(|p| p.gap).sum::<Duration>();
            let task = tokio::task::spawn_local(async move {
                let _live_task = live_task;
                tokio::time::sleep(start).await;
                let ctx = rig.context(&plan);
                let call =
                    AssertUnwindSafe(redress_tokio::RunAsync::run(&ctx, async_op!(&rig, &plan)))
                        .catch_unwind();
                let end = match plan.drop_after {
                    Some(ms) if !aborted_later => {
                        let limit = Duration::from_millis(u64::from(ms) * 3);
                        match tokio::time::timeout(limit, call).await {
                            Ok(r) => r,
                            Err(_) => return End::Dropped,
                        }
                    }
                    _ => call.await,
                };
                end.map_or(End::Panicked, End::from)
            });
            handles.push((task, abort_after));
        }
        let mut ends = Vec::new();
        for (task, abort_after) in handles {
            if let Some(ms) = abort_after {
                tokio::time::sleep(Duration::from_millis(u64::from(ms))).await;
                task.abort();
            }
            ends.push(match task.await {
                Ok(end) => end,
                Err(e) if e.is_cancelled() => End::Dropped,
                Err(_) => End::Panicked,
            });
        }
        ends
    }));
    drop(local);
    assert_eq!(
        tasks.load(Ordering::SeqCst),
        0,
        "tokio seed {seed}: tasks left"
    );
    assert_eq!(
        rt.metrics().num_alive_tasks(),
        0,
        "tokio seed {seed}: tasks left"
    );
    drop(rt);
    rig.check(&format!("tokio seed {seed}"), &ends, true);
}

/// smol's own timer (real time, so short limits): calls as tasks of a local executor,
/// some raced against a timer that drops them.
fn smol_run(seed: u64) {
    let rig = Rig::new(seed, None, true, Duration::from_millis(3));
    let plans = plans(seed, false);
    let ctxs: Vec<_> = plans.iter().map(|p| rig.context(p)).collect();
    let ex = smol::LocalExecutor::new();
    let tasks: Vec<_> = ctxs
        .iter()
        .zip(&plans)
        .enumerate()
        .map(|(i, (ctx, plan))| {
            let call = AssertUnwindSafe(redress_smol::RunAsync::run(ctx, async_op!(&rig, plan)))
                .catch_unwind();
            let drop_after = plan.drop_after;
            let start = plans[..i].iter().map(|p| p.gap).sum::<Duration>();
            ex.spawn(async move {
                smol::Timer::after(start).await;
                let call = async move { call.await.map_or(End::Panicked, End::from) };
                match drop_after {
                    Some(ms) => {
                        let give_up = async move {
                            smol::Timer::after(Duration::from_millis(u64::from(ms))).await;
                            End::Dropped
                        };
                        call.or(give_up).await
                    }
                    None => call.await,
                }
            })
        })
        .collect();
    let ends = smol::block_on(ex.run(async {
        let mut ends = Vec::new();
        for t in tasks {
            ends.push(t.await);
        }
        ends
    }));
    assert!(ex.is_empty(), "smol seed {seed}: tasks left");
    rig.check(&format!("smol seed {seed}"), &ends, true);
}

/// The smol driver under async-std's executor: calls in a row, some cut short by
/// `async_std::future::timeout`.
fn async_std_run(seed: u64) {
    let rig = Rig::new(seed, None, true, Duration::from_millis(3));
    let plans = plans(seed, false);
    let ends = async_std::task::block_on(async {
        let mut ends = Vec::new();
        for plan in &plans {
            async_std::task::sleep(plan.gap).await;
            let ctx = rig.context(plan);
            let call = AssertUnwindSafe(redress_smol::RunAsync::run(&ctx, async_op!(&rig, plan)))
                .catch_unwind();
            let end = match plan.drop_after {
                Some(ms) => {
                    let limit = Duration::from_millis(u64::from(ms));
                    match async_std::future::timeout(limit, call).await {
                        Ok(r) => r.map_or(End::Panicked, End::from),
                        Err(_) => End::Dropped,
                    }
                }
                None => call.await.map_or(End::Panicked, End::from),
            };
            ends.push(end);
        }
        ends
    });
    rig.check(&format!("async-std seed {seed}"), &ends, true);
}

// ----- the tests ----------------------------------------------------------------------------

const SEEDS: std::ops::Range<u64> = 0..40;

#[test]
fn blocking_calls_survive_chaos_and_panicking_hooks_change_nothing() {
    quiet_chaos_panics();
    for seed in SEEDS {
        let wild = blocking_run(seed, true);
        let tame = blocking_run(seed, false);
        assert_eq!(
            wild, tame,
            "seed {seed}: a panicking hook changed the calls"
        );
    }
}

#[test]
fn blocking_calls_on_two_threads_survive_chaos() {
    quiet_chaos_panics();
    for seed in 0..10 {
        blocking_threads_run(seed);
    }
}

#[test]
fn async_calls_dropped_at_any_await_point_leave_nothing_behind() {
    quiet_chaos_panics();
    for seed in SEEDS {
        for tokio_crate in [true, false] {
            let wild = stepped_run(seed, true, tokio_crate);
            let tame = stepped_run(seed, false, tokio_crate);
            assert_eq!(
                wild, tame,
                "seed {seed}: a panicking hook changed the calls"
            );
        }
    }
}

#[test]
fn tokio_tasks_timed_out_or_aborted_leave_nothing_behind() {
    quiet_chaos_panics();
    for seed in SEEDS {
        tokio_run(seed);
    }
}

#[test]
fn smol_tasks_survive_chaos_on_real_timers() {
    quiet_chaos_panics();
    for seed in 0..8 {
        smol_run(seed);
    }
}

#[test]
fn async_std_calls_survive_chaos_on_real_timers() {
    quiet_chaos_panics();
    for seed in 0..8 {
        async_std_run(seed);
    }
}
