//! [`MetricsHook`]: counters, histograms and a gauge through the `metrics` facade.
//!
//! The names follow Prometheus conventions: counters end in `_total`, durations are in
//! seconds. All carry the label `operation` (the event's operation name, empty if none).
//!
//! | Name | Kind | Labels | Unit | Updated on |
//! |---|---|---|---|---|
//! | `redress_calls_total` | counter | `operation`, `outcome` | count | the end of a call: `outcome` is `success`, or the [`StopReason::name`] (`non_retryable`, `max_attempts`, `deadline_exceeded`, `budget_exhausted`, `circuit_open` for a call the breaker rejected, `deferred`, ...) |
//! | `redress_attempts_total` | counter | `operation` | count | the end of a call: increased by the number of attempts it made |
//! | `redress_call_attempts` | histogram | `operation` | count | the end of a call: the number of attempts it made (0 for a call the breaker rejected at once) |
//! | `redress_retries_total` | counter | `operation`, `class` | count | every retry |
//! | `redress_retry_sleep_seconds` | histogram | `operation`, `class` | seconds | every retry: the sleep before it |
//! | `redress_stops_total` | counter | `operation`, `reason`, `class` | count | every call stopped without success (not rejections) |
//! | `redress_circuit_rejections_total` | counter | `operation` | count | every call the breaker rejected |
//! | `redress_circuit_transitions_total` | counter | `operation`, `to` | count | every breaker transition: `to` is `open`, `half_open` or `closed` |
//! | `redress_circuit_state` | gauge | `operation` | — | every breaker transition: 0 closed, 1 half-open, 2 open |
//!
//! `class` is the failure's class in snake_case (`transient`, `rate_limit`, ...), or `none`
//! for a stop with no failure (an abort before any attempt failed).
//!
//! So `redress_calls_total` summed over `outcome` counts every call; its non-`success`
//! part is `redress_stops_total` summed over `reason` and `class`, plus
//! `redress_circuit_rejections_total`.
//!
//! A deferred call ([`StopReason::Deferred`]) counts in `redress_calls_total` and
//! `redress_stops_total`, but its attempts are counted when the call resumed from its
//! saved state ends, because that call carries the attempts made before it: a call
//! deferred twice and then successful adds each attempt once to `redress_attempts_total`.
//!
//! # Prefix and descriptions
//! [`MetricsHook::with_prefix`] replaces `redress` in every name. [`MetricsHook::describe`]
//! registers each metric's description and unit with the recorder in place (call it once
//! the recorder is installed; exporters use it for `# HELP` lines).
//!
//! # Cost
//! Each event builds the metric keys it updates, as the `metrics` macros do with dynamic
//! labels: the operation name is copied once per event, and the class, reason and outcome
//! labels and the names are shared, not copied, whatever the prefix. With no recorder
//! installed the updates go to the facade's no-op recorder.

use std::sync::Arc;

use ::metrics::{Key, KeyName, Label, Level, Metadata, Recorder, SharedString, Unit};

use crate::class::ErrorClass;
use crate::decision::StopReason;
use crate::event::{Event, EventKind, Hook};

/// The metadata every update carries: target `redress`, level INFO.
static METADATA: Metadata<'static> = Metadata::new("redress", Level::INFO, Some(module_path!()));

/// The metric names, in the order of the table.
#[derive(Clone, Debug)]
struct Names {
    calls: KeyName,
    attempts: KeyName,
    call_attempts: KeyName,
    retries: KeyName,
    retry_sleep: KeyName,
    stops: KeyName,
    rejections: KeyName,
    transitions: KeyName,
    state: KeyName,
}

/// Each metric's name without the prefix and its separator.
const SUFFIXES: [&str; 9] = [
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

impl Names {
    const DEFAULT: Self = Self {
        calls: KeyName::from_const_str("redress_calls_total"),
        attempts: KeyName::from_const_str("redress_attempts_total"),
        call_attempts: KeyName::from_const_str("redress_call_attempts"),
        retries: KeyName::from_const_str("redress_retries_total"),
        retry_sleep: KeyName::from_const_str("redress_retry_sleep_seconds"),
        stops: KeyName::from_const_str("redress_stops_total"),
        rejections: KeyName::from_const_str("redress_circuit_rejections_total"),
        transitions: KeyName::from_const_str("redress_circuit_transitions_total"),
        state: KeyName::from_const_str("redress_circuit_state"),
    };

    fn prefixed(prefix: &str) -> Self {
        let [
            calls,
            attempts,
            call_attempts,
            retries,
            retry_sleep,
            stops,
            rejections,
            transitions,
            state,
        ] = SUFFIXES.map(|suffix| {
            let name: Arc<str> = if prefix.is_empty() {
                Arc::from(suffix)
            } else {
                Arc::from(format!("{prefix}_{suffix}"))
            };
            KeyName::from(SharedString::from(name))
        });
        Self {
            calls,
            attempts,
            call_attempts,
            retries,
            retry_sleep,
            stops,
            rejections,
            transitions,
            state,
        }
    }
}

/// A [`Hook`] that records calls, attempts, retries, stops and breaker transitions through
/// the `metrics` facade, into whichever recorder is installed (see the
/// [module docs](self) for the metrics).
///
/// ```
/// use redress::observe::MetricsHook;
///
/// let hook = MetricsHook::new();
/// hook.describe(); // once the recorder is installed
/// let policy = redress::Policy::builder().hook(hook).build()?;
/// # let _ = policy;
/// # Ok::<(), redress::ConfigError>(())
/// ```
#[derive(Clone, Debug)]
pub struct MetricsHook {
    names: Names,
}

impl Default for MetricsHook {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricsHook {
    /// A hook recording the metrics named `redress_*`.
    pub const fn new() -> Self {
        Self {
            names: Names::DEFAULT,
        }
    }

    /// A hook recording the same metrics named `<prefix>_*` instead of `redress_*`
    /// (`calls_total`, ... if `prefix` is empty). The names are built once, here.
    pub fn with_prefix(prefix: &str) -> Self {
        if prefix == "redress" {
            return Self::new();
        }
        Self {
            names: Names::prefixed(prefix),
        }
    }

    /// Registers every metric's description and unit with the current recorder (the
    /// thread's local recorder if one is set, else the global one).
    pub fn describe(&self) {
        let n = &self.names;
        ::metrics::with_recorder(|r| {
            let count = Some(Unit::Count);
            r.describe_counter(
                n.calls.clone(),
                count,
                SharedString::const_str("Calls ended, by outcome: success or the stop reason"),
            );
            r.describe_counter(
                n.attempts.clone(),
                count,
                SharedString::const_str("Attempts made by ended calls"),
            );
            r.describe_histogram(
                n.call_attempts.clone(),
                count,
                SharedString::const_str("Attempts per ended call"),
            );
            r.describe_counter(
                n.retries.clone(),
                count,
                SharedString::const_str("Retries, by the class of the failure retried"),
            );
            r.describe_histogram(
                n.retry_sleep.clone(),
                Some(Unit::Seconds),
                SharedString::const_str("Sleep before each retry"),
            );
            r.describe_counter(
                n.stops.clone(),
                count,
                SharedString::const_str("Calls stopped without success, by reason and class"),
            );
            r.describe_counter(
                n.rejections.clone(),
                count,
                SharedString::const_str("Calls rejected by an open circuit breaker"),
            );
            r.describe_counter(
                n.transitions.clone(),
                count,
                SharedString::const_str("Circuit breaker transitions, by the state entered"),
            );
            r.describe_gauge(
                n.state.clone(),
                None,
                SharedString::const_str(
                    "Circuit breaker state after its last transition: 0 closed, 1 half-open, 2 open",
                ),
            );
        });
    }

    fn record(&self, r: &dyn Recorder, e: &Event<'_>) {
        let n = &self.names;
        let op = SharedString::from(Arc::<str>::from(e.operation));
        let labels = |extra: &[(&'static str, &'static str)]| {
            let mut v = Vec::with_capacity(1 + extra.len());
            v.push(Label::new("operation", op.clone()));
            v.extend(
                extra
                    .iter()
                    .map(|&(k, val)| Label::from_static_parts(k, val)),
            );
            v
        };
        let key = |name: &KeyName, extra: &[(&'static str, &'static str)]| {
            Key::from_parts(name.clone(), labels(extra))
        };
        let class = e.class.map_or("none", ErrorClass::name);
        let ended = |outcome: &'static str, count_attempts: bool| {
            r.register_counter(&key(&n.calls, &[("outcome", outcome)]), &METADATA)
                .increment(1);
            if count_attempts {
                r.register_counter(&key(&n.attempts, &[]), &METADATA)
                    .increment(u64::from(e.attempt));
                r.register_histogram(&key(&n.call_attempts, &[]), &METADATA)
                    .record(f64::from(e.attempt));
            }
        };
        let transition = |to: &'static str, state: f64| {
            r.register_counter(&key(&n.transitions, &[("to", to)]), &METADATA)
                .increment(1);
            r.register_gauge(&key(&n.state, &[]), &METADATA).set(state);
        };
        match e.kind {
            EventKind::Success => ended("success", true),
            EventKind::Retry { delay, .. } => {
                r.register_counter(&key(&n.retries, &[("class", class)]), &METADATA)
                    .increment(1);
                r.register_histogram(&key(&n.retry_sleep, &[("class", class)]), &METADATA)
                    .record(delay.as_secs_f64());
            }
            EventKind::Stopped(reason) => {
                let name = reason.name();
                ended(name, !matches!(reason, StopReason::Deferred { .. }));
                r.register_counter(
                    &key(&n.stops, &[("reason", name), ("class", class)]),
                    &METADATA,
                )
                .increment(1);
            }
            EventKind::CircuitRejected { until } => {
                ended(StopReason::CircuitOpen { until }.name(), true);
                r.register_counter(&key(&n.rejections, &[]), &METADATA)
                    .increment(1);
            }
            EventKind::CircuitOpened => transition("open", 2.0),
            EventKind::CircuitHalfOpen => transition("half_open", 1.0),
            EventKind::CircuitClosed => transition("closed", 0.0),
        }
    }
}

impl Hook for MetricsHook {
    fn on_event(&self, event: &Event<'_>) {
        ::metrics::with_recorder(|r| self.record(r, event));
    }
}
