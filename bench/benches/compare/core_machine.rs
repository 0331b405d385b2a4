//! Group F: the sans-IO core alone, on a fake clock: what a simulator pays per call.

use std::hint::black_box;

use criterion::Criterion;
use redress::{Decision, ErrorClass, Instant, Outcome, Policy, PolicyMachine};
use redress_bench::{MAX_ATTEMPTS, Schedule, policies};

fn drain(m: &mut PolicyMachine<'_>) {
    while let Some(e) = m.poll_event() {
        black_box(e);
    }
}

/// start → success, draining events after each input.
fn start_success(p: &Policy, now: Instant) -> Decision {
    let mut m = p.machine();
    black_box(m.start(now));
    drain(&mut m);
    let d = m.on_outcome(now, Outcome::Success);
    drain(&mut m);
    d
}

/// start → fail → sleep → wake → success.
fn start_fail_success(p: &Policy, now: Instant) -> Decision {
    let mut m = p.machine();
    black_box(m.start(now));
    drain(&mut m);
    let until = match m.on_outcome(now, Outcome::failure(ErrorClass::Transient)) {
        Decision::Sleep { until, .. } => until,
        d => return d,
    };
    drain(&mut m);
    black_box(m.on_wake(until));
    drain(&mut m);
    let d = m.on_outcome(until, Outcome::Success);
    drain(&mut m);
    d
}

/// The baseline: the decisions of start → fail → sleep → success written by hand (an
/// attempt counter and a doubling delay).
#[derive(Debug)]
struct HandMachine {
    attempt: u32,
    schedule: Schedule,
}

impl HandMachine {
    #[inline]
    fn on_failure(&mut self, now: Instant) -> Option<Instant> {
        if self.attempt >= MAX_ATTEMPTS {
            return None;
        }
        let until = now.saturating_add(self.schedule.delay(self.attempt));
        self.attempt += 1;
        Some(until)
    }
}

/// F. The policy machine on a fake clock.
pub(crate) fn f_machine(c: &mut Criterion) {
    let s = Schedule::REALISTIC;
    let now = Instant::from_secs(1);
    let retry_only = policies::retry_only(s);
    let deadline = policies::default_deadline(s);
    let full = policies::full(s);
    let jitter = Policy::default();

    let mut g = c.benchmark_group("F core machine, fake clock");
    g.bench_function(
        "baseline: hand-written start→fail→sleep→success",
        |b| {
            b.iter(|| {
                let mut m = HandMachine {
                    attempt: 1,
                    schedule: black_box(s),
                };
                black_box(m.on_failure(black_box(now)))
            })
        },
    );
    g.bench_function("redress start→success, retry only", |b| {
        b.iter(|| start_success(&retry_only, black_box(now)))
    });
    g.bench_function("redress start→success, 60 s deadline", |b| {
        b.iter(|| start_success(&deadline, black_box(now)))
    });
    g.bench_function("redress start→success, breaker + budget", |b| {
        b.iter(|| start_success(&full, black_box(now)))
    });
    g.bench_function("redress start→fail→sleep→success, exponential", |b| {
        b.iter(|| start_fail_success(&retry_only, black_box(now)))
    });
    g.bench_function(
        "redress start→fail→sleep→success, default policy (jitter, deadline)",
        |b| b.iter(|| start_fail_success(&jitter, black_box(now))),
    );
    g.finish();
}
