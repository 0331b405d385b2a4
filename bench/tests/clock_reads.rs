//! How many times a successful call reads the clock, per policy (target A(b): at most once
//! with a deadline; never without one).

use std::cell::Cell;

use redress::drive::Timer;
use redress::{AbortHandle, CallContext, Instant, Policy};
use redress_bench::{Schedule, Script, policies};
use redress_blocking::{RunBlocking, Sleeper, ThreadSleeper};
use redress_tokio::{RunAsync, TokioTimer};

/// The real clocks, counting their reads.
#[derive(Default)]
struct Counting {
    reads: Cell<u32>,
}

impl Counting {
    fn tick(&self) {
        self.reads.set(self.reads.get() + 1);
    }
}

impl Sleeper for Counting {
    fn now(&self) -> Instant {
        self.tick();
        ThreadSleeper.now()
    }
    fn sleep_until(&self, until: Instant, abort: Option<&AbortHandle>) {
        ThreadSleeper.sleep_until(until, abort);
    }
}

impl Timer for Counting {
    type Sleep = tokio::time::Sleep;
    fn now(&self) -> Instant {
        self.tick();
        TokioTimer.now()
    }
    fn sleep_until(&self, until: Instant) -> Self::Sleep {
        TokioTimer.sleep_until(until)
    }
}

/// Clock reads of one successful blocking call and one successful async call.
fn reads(policy: &Policy) -> (u32, u32) {
    let ctx = CallContext::new(policy);
    let script = Script::succeed();
    let clock = Counting::default();
    assert_eq!(
        RunBlocking::run_with(&ctx, &clock, |_| script.attempt()).ok(),
        Some(1)
    );
    let sync = clock.reads.get();

    let script = Script::succeed();
    let clock = Counting::default();
    let rt = redress_bench::current_thread_runtime();
    let r = rt.block_on(RunAsync::run_with(&ctx, &clock, async |_| script.attempt()));
    assert_eq!(r.ok(), Some(1));
    (sync, clock.reads.get())
}

#[test]
fn a_retry_only_success_reads_no_clock() {
    assert_eq!(reads(&policies::retry_only(Schedule::REALISTIC)), (0, 0));
}

#[test]
fn success_paths_read_the_clock_at_most_twice() {
    // Today: once at the start (the deadline, the breaker, the budget's deposit) and once
    // at the end (the breaker's record). A regression guard; the target is below.
    for p in [
        policies::default_deadline(Schedule::REALISTIC),
        policies::full(Schedule::REALISTIC),
    ] {
        let (sync, async_) = reads(&p);
        assert!(sync <= 2 && async_ <= 2, "{p:?}: {sync} / {async_}");
    }
}

#[test]
fn b_deadline_policy_success_reads_the_clock_at_most_once() {
    let (sync, async_) = reads(&policies::default_deadline(Schedule::REALISTIC));
    assert!(sync <= 1 && async_ <= 1, "{sync} / {async_}");
}
