//! Observers of a policy's events: several hooks at once (tuples, `Option`, `Hooks`), the
//! `tracing` hook (feature `tracing`) and the `metrics` hook (feature `metrics`), each
//! driven by scripted calls on a fake clock.
#![allow(clippy::unwrap_used)]
#![forbid(unsafe_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use redress::backoff::constant;
use redress::drive::{ManualSleeper, run_blocking};
use redress::event::{Hooks, Recorder};
use redress::{Classification, ErrorClass, Event, Policy, PolicyBuilder, Retry, RetryError};

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// One scripted attempt: `Ok` succeeds, `Err` fails with that classification.
type Step = Result<(), Classification>;

fn fail(class: ErrorClass) -> Step {
    Err(Classification::new(class))
}

/// Runs one call of `script` under `policy` as operation `op` with the real blocking loop,
/// on `sleeper`'s fake clock. Returns the number of the attempt that succeeded.
fn run(
    policy: &Policy,
    op: &str,
    sleeper: &ManualSleeper,
    script: &[Step],
) -> Result<u32, RetryError<Classification>> {
    let ctx = policy.context(op).classify(|c: &Classification| c.clone());
    let mut steps = script.iter();
    run_blocking(&ctx, sleeper, None, None, |a| match steps.next() {
        Some(Ok(())) => Ok(a.n),
        Some(Err(c)) => Err(c.clone()),
        None => panic!("the script ran out at attempt {}", a.n),
    })
}

/// A policy of up to `max_attempts` attempts, `backoff` between them, no deadline.
fn retrying(max_attempts: u32, backoff: impl redress::backoff::Backoff + 'static) -> PolicyBuilder {
    Policy::builder().retry(
        Retry::builder()
            .no_deadline()
            .max_attempts(max_attempts)
            .strategy(backoff),
    )
}

#[cfg(any(feature = "tracing", feature = "metrics"))]
/// One attempt per call through a breaker that opens after 2 failures in a row and may
/// admit a probe 1 s later.
fn breaker_policy(hook: impl redress::Hook + 'static) -> Policy {
    use redress::CircuitBreaker;
    let breaker = CircuitBreaker::consecutive(2, Duration::from_secs(10))
        .recovery(Duration::from_secs(1))
        .build()
        .unwrap();
    retrying(1, constant(ms(100)))
        .breaker(Arc::new(breaker))
        .hook(hook)
        .build()
        .unwrap()
}

#[cfg(any(feature = "tracing", feature = "metrics"))]
/// Drives the breaker scenario: fail, fail (the breaker opens), a call it rejects, then
/// 1 s later a probe that succeeds (half-open, then closed). `between` runs after each call.
fn breaker_scenario(policy: &Policy, mut between: impl FnMut(usize)) {
    let sleeper = ManualSleeper::default();
    let transient = [fail(ErrorClass::Transient)];
    let e = run(policy, "db", &sleeper, &transient).unwrap_err();
    assert_eq!(e.reason().name(), "max_attempts");
    between(1);
    let e = run(policy, "db", &sleeper, &transient).unwrap_err();
    assert_eq!(e.reason().name(), "max_attempts");
    between(2);
    let e = run(policy, "db", &sleeper, &[]).unwrap_err();
    assert!(e.is_circuit_open());
    between(3);
    sleeper.clock.advance(Duration::from_secs(1));
    assert_eq!(run(policy, "db", &sleeper, &[Ok(())]).unwrap(), 1);
    between(4);
}

// ----- several hooks ---------------------------------------------------------------------

fn boom(_: &Event<'_>) {
    panic!("a broken observer");
}

/// fail (Transient), fail (Transient), succeed: the event names every hook must see.
const THREE_ATTEMPTS: [&str; 3] = ["retry", "retry", "success"];

fn three_attempts(policy: &Policy) {
    let script = [
        fail(ErrorClass::Transient),
        fail(ErrorClass::Transient),
        Ok(()),
    ];
    let n = run(policy, "op", &ManualSleeper::default(), &script).unwrap();
    assert_eq!(n, 3, "observers must not change the call");
}

#[test]
fn a_tuple_of_hooks_gives_every_event_to_each_despite_a_panicking_member() {
    let (a, b, c) = (
        Recorder::default(),
        Recorder::default(),
        Recorder::default(),
    );
    let policy = retrying(3, constant(ms(10)))
        .hook((a.clone(), boom, b.clone(), (boom, c.clone())))
        .build()
        .unwrap();
    three_attempts(&policy);
    for rec in [&a, &b, &c] {
        assert_eq!(rec.names(), THREE_ATTEMPTS);
    }
}

#[test]
fn tuple_members_see_each_event_in_tuple_order() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let tag = |t: &'static str| {
        let log = Arc::clone(&log);
        move |e: &Event<'_>| log.lock().unwrap().push((t, e.name()))
    };
    let policy = retrying(2, constant(ms(10)))
        .hook((
            tag("first"),
            tag("second"),
            tag("third"),
            tag("fourth"),
            tag("fifth"),
            tag("sixth"),
        ))
        .build()
        .unwrap();
    let script = [fail(ErrorClass::ServerError), Ok(())];
    run(&policy, "op", &ManualSleeper::default(), &script).unwrap();
    let order = ["first", "second", "third", "fourth", "fifth", "sixth"];
    let expected: Vec<_> = ["retry", "success"]
        .into_iter()
        .flat_map(|name| order.map(|t| (t, name)))
        .collect();
    assert_eq!(*log.lock().unwrap(), expected);
}

#[test]
fn an_optional_hook_observes_only_when_present() {
    let (on, off) = (Recorder::default(), Recorder::default());
    let policy = retrying(3, constant(ms(10)))
        .hook((Some(on.clone()), None::<Recorder>))
        .build()
        .unwrap();
    three_attempts(&policy);
    assert_eq!(on.names(), THREE_ATTEMPTS);
    assert!(off.names().is_empty());
}

#[test]
fn hooks_chosen_at_run_time_each_see_every_event_in_order_despite_a_panic() {
    let (a, b, c) = (
        Recorder::default(),
        Recorder::default(),
        Recorder::default(),
    );
    let log = Arc::new(Mutex::new(Vec::new()));
    let (l1, l2) = (Arc::clone(&log), Arc::clone(&log));
    let mut hooks = Hooks::new()
        .with(move |e: &Event<'_>| l1.lock().unwrap().push(("first", e.name())))
        .with(a.clone())
        .with(boom)
        .with_shared(Arc::new(b.clone()));
    hooks.push(move |e: &Event<'_>| l2.lock().unwrap().push(("last", e.name())));
    hooks.push(c.clone());
    assert_eq!(hooks.len(), 6);
    assert!(!hooks.is_empty());
    assert!(Hooks::new().is_empty());
    assert_eq!(format!("{:?}", Hooks::new().with(boom)), "Hooks { len: 1 }");

    let policy = retrying(3, constant(ms(10))).hook(hooks).build().unwrap();
    three_attempts(&policy);
    for rec in [&a, &b, &c] {
        assert_eq!(rec.names(), THREE_ATTEMPTS);
    }
    assert_eq!(
        *log.lock().unwrap(),
        [
            ("first", "retry"),
            ("last", "retry"),
            ("first", "retry"),
            ("last", "retry"),
            ("first", "success"),
            ("last", "success"),
        ]
    );
}

#[test]
fn an_empty_set_of_hooks_changes_nothing() {
    let policy = retrying(3, constant(ms(10)))
        .hook(Hooks::new())
        .build()
        .unwrap();
    three_attempts(&policy);
}

// ----- tracing ---------------------------------------------------------------------------

#[cfg(feature = "tracing")]
mod tracing_hook {
    use std::collections::BTreeMap;
    use std::fmt;

    use redress::observe::TracingHook;
    use redress::{Decision, Instant, Outcome, StopReason};
    use tracing::field::{Field, Visit};
    use tracing::{Level, Subscriber};
    use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

    use super::*;

    /// One captured `tracing` event.
    #[derive(Debug, PartialEq, Eq)]
    struct Captured {
        level: Level,
        target: String,
        fields: BTreeMap<String, String>,
    }

    /// A layer that keeps every event it sees.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<Captured>>>);

    struct Fields<'a>(&'a mut BTreeMap<String, String>);

    impl Visit for Fields<'_> {
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.insert(field.name().into(), value.into());
        }
        fn record_u64(&mut self, field: &Field, value: u64) {
            self.0.insert(field.name().into(), value.to_string());
        }
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            self.0.insert(field.name().into(), format!("{value:?}"));
        }
    }

    impl<S: Subscriber> Layer<S> for Capture {
        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            let mut fields = BTreeMap::new();
            event.record(&mut Fields(&mut fields));
            self.0.lock().unwrap().push(Captured {
                level: *event.metadata().level(),
                target: event.metadata().target().into(),
                fields,
            });
        }
    }

    /// Runs `f` with a subscriber capturing every event; returns what it captured.
    fn capture(f: impl FnOnce()) -> Vec<Captured> {
        let cap = Capture::default();
        let subscriber = tracing_subscriber::registry().with(cap.clone());
        tracing::subscriber::with_default(subscriber, f);
        std::mem::take(&mut *cap.0.lock().unwrap())
    }

    /// The expected event: `level`, target `redress`, exactly `fields`.
    fn ev(level: Level, fields: &[(&str, &str)]) -> Captured {
        Captured {
            level,
            target: "redress".into(),
            fields: fields
                .iter()
                .map(|&(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }

    #[test]
    fn retries_then_success_with_every_field() {
        let policy = retrying(3, constant(ms(100)))
            .hook(TracingHook::new())
            .build()
            .unwrap();
        let script = [
            fail(ErrorClass::Transient),
            Err(Classification::new(ErrorClass::RateLimit).with_retry_after(ms(250))),
            Ok(()),
        ];
        let got = capture(|| {
            let n = run(&policy, "fetch", &ManualSleeper::default(), &script).unwrap();
            assert_eq!(n, 3);
        });
        let expected = [
            ev(
                Level::INFO,
                &[
                    ("message", "retrying"),
                    ("event", "retry"),
                    ("operation", "fetch"),
                    ("attempt", "1"),
                    ("class", "transient"),
                    ("elapsed_ms", "0"),
                    ("sleep_ms", "100"),
                ],
            ),
            ev(
                Level::INFO,
                &[
                    ("message", "retrying"),
                    ("event", "retry"),
                    ("operation", "fetch"),
                    ("attempt", "2"),
                    ("class", "rate_limit"),
                    ("elapsed_ms", "100"),
                    ("sleep_ms", "100"),
                    ("retry_after_ms", "250"),
                ],
            ),
            ev(
                Level::DEBUG,
                &[
                    ("message", "call succeeded"),
                    ("event", "success"),
                    ("operation", "fetch"),
                    ("attempt", "3"),
                    ("class", ""),
                    ("elapsed_ms", "200"),
                ],
            ),
        ];
        assert_eq!(got, expected);
    }

    #[test]
    fn failures_stop_at_warn_with_their_reason() {
        let policy = retrying(2, constant(ms(100)))
            .hook(TracingHook::new())
            .build()
            .unwrap();
        let got = capture(|| {
            let sleeper = ManualSleeper::default();
            run(&policy, "save", &sleeper, &[fail(ErrorClass::Permanent)]).unwrap_err();
            let script = [fail(ErrorClass::ServerError), fail(ErrorClass::ServerError)];
            run(&policy, "", &sleeper, &script).unwrap_err();
        });
        let expected = [
            ev(
                Level::WARN,
                &[
                    ("message", "call stopped: permanent errors are not retried"),
                    ("event", "permanent_failure"),
                    ("operation", "save"),
                    ("attempt", "1"),
                    ("class", "permanent"),
                    ("elapsed_ms", "0"),
                    ("reason", "non_retryable"),
                ],
            ),
            ev(
                Level::INFO,
                &[
                    ("message", "retrying"),
                    ("event", "retry"),
                    ("operation", ""),
                    ("attempt", "1"),
                    ("class", "server_error"),
                    ("elapsed_ms", "0"),
                    ("sleep_ms", "100"),
                ],
            ),
            ev(
                Level::WARN,
                &[
                    ("message", "call stopped: max attempts reached"),
                    ("event", "max_attempts"),
                    ("operation", ""),
                    ("attempt", "2"),
                    ("class", "server_error"),
                    ("elapsed_ms", "100"),
                    ("reason", "max_attempts"),
                ],
            ),
        ];
        assert_eq!(got, expected);
    }

    /// Drives a machine of `policy` by hand: one Transient failure at 0 ms, then `then`;
    /// every event goes to the policy's hook.
    fn by_hand(
        policy: &Policy,
        deferring: bool,
        then: impl FnOnce(&mut redress::PolicyMachine<'_>) -> Decision,
    ) -> Decision {
        let mut m = policy.machine().with_operation("job").deferring(deferring);
        let emit = |m: &mut redress::PolicyMachine<'_>| {
            while let Some(e) = m.poll_event() {
                policy.emit(&e);
            }
        };
        m.start(Instant::ZERO);
        m.on_outcome(Instant::ZERO, Outcome::failure(ErrorClass::Transient));
        emit(&mut m);
        let d = then(&mut m);
        emit(&mut m);
        d
    }

    #[test]
    fn stops_on_request_are_info_and_a_deferral_carries_its_delay() {
        let policy = retrying(3, constant(ms(100)))
            .hook(TracingHook::new())
            .build()
            .unwrap();
        let got = capture(|| {
            let d = by_hand(&policy, false, |m| m.abort(Instant::from_millis(40)));
            assert_eq!(d, Decision::Failed(StopReason::Aborted));
            let d = by_hand(&policy, true, |m| m.decision());
            assert!(matches!(d, Decision::Failed(StopReason::Deferred { .. })));
        });
        let expected = [
            ev(
                Level::INFO,
                &[
                    ("message", "retrying"),
                    ("event", "retry"),
                    ("operation", "job"),
                    ("attempt", "1"),
                    ("class", "transient"),
                    ("elapsed_ms", "0"),
                    ("sleep_ms", "100"),
                ],
            ),
            ev(
                Level::INFO,
                &[
                    ("message", "call stopped: aborted"),
                    ("event", "aborted"),
                    ("operation", "job"),
                    ("attempt", "1"),
                    ("class", ""),
                    ("elapsed_ms", "40"),
                    ("reason", "aborted"),
                ],
            ),
            ev(
                Level::INFO,
                &[
                    ("message", "call stopped: deferred: retry in 100ms"),
                    ("event", "deferred"),
                    ("operation", "job"),
                    ("attempt", "1"),
                    ("class", "transient"),
                    ("elapsed_ms", "0"),
                    ("reason", "deferred"),
                    ("sleep_ms", "100"),
                ],
            ),
        ];
        assert_eq!(got, expected);
    }

    #[test]
    fn levels_are_configurable() {
        let hook = TracingHook::new()
            .success_level(Level::TRACE)
            .retry_level(Level::DEBUG)
            .failure_level(Level::ERROR)
            .interrupt_level(Level::WARN);
        assert_ne!(hook, TracingHook::default());
        assert_eq!(TracingHook::new(), TracingHook::default());
        let policy = retrying(2, constant(ms(10))).hook(hook).build().unwrap();
        let got = capture(|| {
            let sleeper = ManualSleeper::default();
            run(
                &policy,
                "a",
                &sleeper,
                &[fail(ErrorClass::Transient), Ok(())],
            )
            .unwrap();
            run(&policy, "b", &sleeper, &[fail(ErrorClass::Auth)]).unwrap_err();
            by_hand(&policy, false, |m| m.abort(Instant::ZERO));
        });
        let summary: Vec<_> = got
            .iter()
            .map(|c| (c.level, c.fields["event"].as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                (Level::DEBUG, "retry"),
                (Level::TRACE, "success"),
                (Level::ERROR, "permanent_failure"),
                (Level::DEBUG, "retry"),
                (Level::WARN, "aborted"),
            ]
        );
    }

    #[test]
    fn breaker_events_carry_the_state_entered() {
        let policy = breaker_policy(TracingHook::new());
        let got = capture(|| breaker_scenario(&policy, |_| {}));
        let common = |attempt: &'static str, class: &'static str| {
            [
                ("operation", "db"),
                ("attempt", attempt),
                ("class", class),
                ("elapsed_ms", "0"),
            ]
        };
        let with = |level, extra: &[(&str, &str)], attempt, class| {
            let mut fields = extra.to_vec();
            fields.extend(common(attempt, class));
            ev(level, &fields)
        };
        let max_attempts = [
            ("message", "call stopped: max attempts reached"),
            ("event", "max_attempts"),
            ("reason", "max_attempts"),
        ];
        let expected = [
            with(Level::WARN, &max_attempts, "1", "transient"),
            with(
                Level::WARN,
                &[
                    ("message", "circuit breaker opened"),
                    ("event", "circuit_opened"),
                    ("state", "open"),
                ],
                "1",
                "transient",
            ),
            with(Level::WARN, &max_attempts, "1", "transient"),
            with(
                Level::DEBUG,
                &[
                    ("message", "circuit breaker rejected the call"),
                    ("event", "circuit_rejected"),
                ],
                "0",
                "",
            ),
            with(
                Level::INFO,
                &[
                    ("message", "circuit breaker half-open: admitting a probe"),
                    ("event", "circuit_half_open"),
                    ("state", "half_open"),
                ],
                // The probe is admitted before its attempt runs.
                "0",
                "",
            ),
            with(
                Level::INFO,
                &[
                    ("message", "circuit breaker closed"),
                    ("event", "circuit_closed"),
                    ("state", "closed"),
                ],
                "1",
                "",
            ),
            with(
                Level::DEBUG,
                &[("message", "call succeeded"), ("event", "success")],
                "1",
                "",
            ),
        ];
        assert_eq!(got, expected);
    }

    #[test]
    fn nothing_is_recorded_when_the_subscriber_is_not_interested() {
        let policy = retrying(2, constant(ms(10)))
            .hook(TracingHook::new())
            .build()
            .unwrap();
        let cap = Capture::default();
        let subscriber = tracing_subscriber::registry().with(cap.clone().with_filter(
            tracing_subscriber::filter::filter_fn(|meta| meta.target() != "redress"),
        ));
        tracing::subscriber::with_default(subscriber, || {
            let script = [fail(ErrorClass::Transient), Ok(())];
            run(&policy, "quiet", &ManualSleeper::default(), &script).unwrap();
        });
        assert!(cap.0.lock().unwrap().is_empty());
    }
}

// ----- metrics ---------------------------------------------------------------------------

#[cfg(feature = "metrics")]
mod metrics_hook {
    use std::collections::BTreeMap;

    use metrics::Unit;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
    use redress::backoff::exponential;
    use redress::observe::MetricsHook;
    use redress::{Hook, Instant, Outcome};

    use super::*;

    /// A metric's value, without the recorder's float wrapper.
    #[derive(Debug, PartialEq)]
    enum V {
        Counter(u64),
        Gauge(f64),
        Histogram(Vec<f64>),
    }

    /// The snapshot as `name{k=v,...}` → value, labels in the order given.
    fn take(s: &Snapshotter) -> BTreeMap<String, V> {
        s.snapshot()
            .into_vec()
            .into_iter()
            .map(|(ck, _, _, value)| {
                let key = ck.key();
                let labels: Vec<String> = key
                    .labels()
                    .map(|l| format!("{}={}", l.key(), l.value()))
                    .collect();
                let v = match value {
                    DebugValue::Counter(n) => V::Counter(n),
                    DebugValue::Gauge(g) => V::Gauge(g.into_inner()),
                    DebugValue::Histogram(h) => {
                        V::Histogram(h.into_iter().map(|x| x.into_inner()).collect())
                    }
                };
                (format!("{}{{{}}}", key.name(), labels.join(",")), v)
            })
            .collect()
    }

    fn expect(entries: impl IntoIterator<Item = (&'static str, V)>) -> BTreeMap<String, V> {
        entries
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect()
    }

    #[test]
    fn two_transient_failures_then_success() {
        let recorder = DebuggingRecorder::new();
        let snap = recorder.snapshotter();
        let policy = retrying(5, exponential(ms(100), Duration::from_secs(1)))
            .hook(MetricsHook::new())
            .build()
            .unwrap();
        metrics::with_local_recorder(&recorder, || {
            let script = [
                fail(ErrorClass::Transient),
                fail(ErrorClass::Transient),
                Ok(()),
            ];
            assert_eq!(
                run(&policy, "fetch", &ManualSleeper::default(), &script).unwrap(),
                3
            );
        });
        assert_eq!(
            take(&snap),
            expect([
                (
                    "redress_retries_total{operation=fetch,class=transient}",
                    V::Counter(2)
                ),
                (
                    "redress_retry_sleep_seconds{operation=fetch,class=transient}",
                    V::Histogram(vec![0.1, 0.2])
                ),
                (
                    "redress_calls_total{operation=fetch,outcome=success}",
                    V::Counter(1)
                ),
                ("redress_attempts_total{operation=fetch}", V::Counter(3)),
                (
                    "redress_call_attempts{operation=fetch}",
                    V::Histogram(vec![3.0])
                ),
            ])
        );
    }

    #[test]
    fn a_permanent_failure_stops_at_once() {
        let recorder = DebuggingRecorder::new();
        let snap = recorder.snapshotter();
        let policy = retrying(5, constant(ms(100)))
            .hook(MetricsHook::new())
            .build()
            .unwrap();
        metrics::with_local_recorder(&recorder, || {
            let e = run(
                &policy,
                "save",
                &ManualSleeper::default(),
                &[fail(ErrorClass::Permanent)],
            )
            .unwrap_err();
            assert_eq!(e.attempts(), 1);
        });
        assert_eq!(
            take(&snap),
            expect([
                (
                    "redress_calls_total{operation=save,outcome=non_retryable}",
                    V::Counter(1)
                ),
                ("redress_attempts_total{operation=save}", V::Counter(1)),
                (
                    "redress_call_attempts{operation=save}",
                    V::Histogram(vec![1.0])
                ),
                (
                    "redress_stops_total{operation=save,reason=non_retryable,class=permanent}",
                    V::Counter(1)
                ),
            ])
        );
    }

    #[test]
    fn a_breaker_that_opens_rejects_half_opens_and_closes() {
        let recorder = DebuggingRecorder::new();
        let snap = recorder.snapshotter();
        let policy = breaker_policy(MetricsHook::new());
        let mut steps = Vec::new();
        metrics::with_local_recorder(&recorder, || {
            breaker_scenario(&policy, |_| steps.push(take(&snap)));
        });
        let failed = || {
            [
                (
                    "redress_calls_total{operation=db,outcome=max_attempts}",
                    V::Counter(1),
                ),
                ("redress_attempts_total{operation=db}", V::Counter(1)),
                (
                    "redress_call_attempts{operation=db}",
                    V::Histogram(vec![1.0]),
                ),
                (
                    "redress_stops_total{operation=db,reason=max_attempts,class=transient}",
                    V::Counter(1),
                ),
            ]
        };
        // Each snapshot holds what changed since the one before; the debugging recorder
        // also lists every series seen before, with counters and gauges read back to 0.
        let mut after_open = expect(failed());
        after_open.extend(expect([
            (
                "redress_circuit_transitions_total{operation=db,to=open}",
                V::Counter(1),
            ),
            ("redress_circuit_state{operation=db}", V::Gauge(2.0)),
        ]));
        let expected = [
            expect(failed()),
            after_open,
            expect([
                (
                    "redress_calls_total{operation=db,outcome=max_attempts}",
                    V::Counter(0),
                ),
                (
                    "redress_calls_total{operation=db,outcome=circuit_open}",
                    V::Counter(1),
                ),
                ("redress_attempts_total{operation=db}", V::Counter(0)),
                (
                    "redress_call_attempts{operation=db}",
                    V::Histogram(vec![0.0]),
                ),
                (
                    "redress_stops_total{operation=db,reason=max_attempts,class=transient}",
                    V::Counter(0),
                ),
                (
                    "redress_circuit_transitions_total{operation=db,to=open}",
                    V::Counter(0),
                ),
                ("redress_circuit_state{operation=db}", V::Gauge(0.0)),
                (
                    "redress_circuit_rejections_total{operation=db}",
                    V::Counter(1),
                ),
            ]),
            expect([
                (
                    "redress_calls_total{operation=db,outcome=max_attempts}",
                    V::Counter(0),
                ),
                (
                    "redress_calls_total{operation=db,outcome=circuit_open}",
                    V::Counter(0),
                ),
                (
                    "redress_calls_total{operation=db,outcome=success}",
                    V::Counter(1),
                ),
                ("redress_attempts_total{operation=db}", V::Counter(1)),
                (
                    "redress_call_attempts{operation=db}",
                    V::Histogram(vec![1.0]),
                ),
                (
                    "redress_stops_total{operation=db,reason=max_attempts,class=transient}",
                    V::Counter(0),
                ),
                (
                    "redress_circuit_transitions_total{operation=db,to=open}",
                    V::Counter(0),
                ),
                (
                    "redress_circuit_transitions_total{operation=db,to=half_open}",
                    V::Counter(1),
                ),
                (
                    "redress_circuit_transitions_total{operation=db,to=closed}",
                    V::Counter(1),
                ),
                ("redress_circuit_state{operation=db}", V::Gauge(0.0)),
                (
                    "redress_circuit_rejections_total{operation=db}",
                    V::Counter(0),
                ),
            ]),
        ];
        assert_eq!(steps, expected);
    }

    #[test]
    fn the_gauge_follows_each_transition() {
        // Event by event, so the half-open value is seen before the probe's result.
        let recorder = DebuggingRecorder::new();
        let snap = recorder.snapshotter();
        let hook = MetricsHook::new();
        let gauge = |snap: &Snapshotter| take(snap).remove("redress_circuit_state{operation=db}");
        let mut seen = Vec::new();
        metrics::with_local_recorder(&recorder, || {
            for kind in [
                redress::EventKind::CircuitOpened,
                redress::EventKind::CircuitHalfOpen,
                redress::EventKind::CircuitOpened,
                redress::EventKind::CircuitHalfOpen,
                redress::EventKind::CircuitClosed,
            ] {
                hook.on_event(&Event {
                    kind,
                    attempt: 1,
                    class: Some(ErrorClass::Transient),
                    elapsed: Duration::ZERO,
                    operation: "db",
                });
                seen.push(gauge(&snap));
            }
        });
        let g = |x| Some(V::Gauge(x));
        assert_eq!(seen, [g(2.0), g(1.0), g(2.0), g(1.0), g(0.0)]);
    }

    #[test]
    fn a_deferred_call_counts_its_attempts_once_when_resumed() {
        let recorder = DebuggingRecorder::new();
        let snap = recorder.snapshotter();
        let policy = retrying(5, constant(ms(100)))
            .hook(MetricsHook::new())
            .build()
            .unwrap();
        metrics::with_local_recorder(&recorder, || {
            // Attempt 1 fails and the call is deferred; its resumption succeeds at attempt 2.
            let mut m = policy.machine().with_operation("job").deferring(true);
            m.start(Instant::ZERO);
            m.on_outcome(Instant::ZERO, Outcome::failure(ErrorClass::Transient));
            while let Some(e) = m.poll_event() {
                policy.emit(&e);
            }
            let state = m.state();
            let mut m = policy.resume(&state).with_operation("job");
            m.start(Instant::from_millis(100));
            m.on_outcome(Instant::from_millis(100), Outcome::Success);
            while let Some(e) = m.poll_event() {
                policy.emit(&e);
            }
        });
        assert_eq!(
            take(&snap),
            expect([
                (
                    "redress_calls_total{operation=job,outcome=deferred}",
                    V::Counter(1)
                ),
                (
                    "redress_stops_total{operation=job,reason=deferred,class=transient}",
                    V::Counter(1)
                ),
                (
                    "redress_calls_total{operation=job,outcome=success}",
                    V::Counter(1)
                ),
                ("redress_attempts_total{operation=job}", V::Counter(2)),
                (
                    "redress_call_attempts{operation=job}",
                    V::Histogram(vec![2.0])
                ),
            ])
        );
    }

    #[test]
    fn an_abort_before_any_failure_has_class_none() {
        let recorder = DebuggingRecorder::new();
        let snap = recorder.snapshotter();
        let policy = retrying(5, constant(ms(100)))
            .hook(MetricsHook::new())
            .build()
            .unwrap();
        metrics::with_local_recorder(&recorder, || {
            let mut m = policy.machine().with_operation("job");
            m.start(Instant::ZERO);
            m.abort(Instant::ZERO);
            while let Some(e) = m.poll_event() {
                policy.emit(&e);
            }
        });
        let got = take(&snap);
        assert_eq!(
            got.get("redress_stops_total{operation=job,reason=aborted,class=none}"),
            Some(&V::Counter(1))
        );
        assert_eq!(
            got.get("redress_calls_total{operation=job,outcome=aborted}"),
            Some(&V::Counter(1))
        );
    }

    /// Every name, in the order of the module's table.
    const NAMES: [&str; 9] = [
        "calls_total",
        "attempts_total",
        "call_attempts",
        "retries_total",
        "retry_sleep_seconds",
        "stops_total",
        "circuit_rejections_total",
        "circuit_transitions_total",
        "circuit_state",
    ];

    /// Records one event of every kind that touches a distinct metric, so every name is seen.
    fn every_metric(hook: &MetricsHook) {
        let e = |kind| Event {
            kind,
            attempt: 1,
            class: Some(ErrorClass::Transient),
            elapsed: Duration::ZERO,
            operation: "x",
        };
        for kind in [
            redress::EventKind::Retry {
                delay: ms(5),
                retry_after: None,
            },
            redress::EventKind::Stopped(redress::StopReason::MaxAttempts),
            redress::EventKind::CircuitRejected {
                until: Instant::ZERO,
            },
            redress::EventKind::CircuitClosed,
        ] {
            hook.on_event(&e(kind));
        }
    }

    #[test]
    fn a_prefix_replaces_redress_in_every_name() {
        for (prefix, expected) in [("app", "app_"), ("", ""), ("redress", "redress_")] {
            let recorder = DebuggingRecorder::new();
            let snap = recorder.snapshotter();
            metrics::with_local_recorder(&recorder, || {
                every_metric(&MetricsHook::with_prefix(prefix))
            });
            let mut names: Vec<String> = snap
                .snapshot()
                .into_vec()
                .into_iter()
                .map(|(ck, ..)| ck.key().name().to_owned())
                .collect();
            names.sort();
            names.dedup();
            let mut want: Vec<String> = NAMES.iter().map(|n| format!("{expected}{n}")).collect();
            want.sort();
            assert_eq!(names, want, "prefix {prefix:?}");
        }
    }

    #[test]
    fn describe_registers_a_unit_and_a_description_for_every_metric() {
        let recorder = DebuggingRecorder::new();
        let snap = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            let hook = MetricsHook::default();
            hook.describe();
            every_metric(&hook);
        });
        let mut units: BTreeMap<String, Option<Unit>> = BTreeMap::new();
        for (ck, unit, description, _) in snap.snapshot().into_vec() {
            let name = ck.key().name().to_owned();
            assert!(
                description.is_some_and(|d| !d.is_empty()),
                "{name} has no description"
            );
            units.insert(name, unit);
        }
        let expected: BTreeMap<String, Option<Unit>> = [
            ("calls_total", Some(Unit::Count)),
            ("attempts_total", Some(Unit::Count)),
            ("call_attempts", Some(Unit::Count)),
            ("retries_total", Some(Unit::Count)),
            ("retry_sleep_seconds", Some(Unit::Seconds)),
            ("stops_total", Some(Unit::Count)),
            ("circuit_rejections_total", Some(Unit::Count)),
            ("circuit_transitions_total", Some(Unit::Count)),
            ("circuit_state", None),
        ]
        .into_iter()
        .map(|(n, u)| (format!("redress_{n}"), u))
        .collect();
        assert_eq!(units, expected);
    }

    #[test]
    fn with_no_recorder_installed_the_hook_is_harmless() {
        let policy = retrying(3, constant(ms(10)))
            .hook(MetricsHook::new())
            .build()
            .unwrap();
        three_attempts(&policy);
    }
}
