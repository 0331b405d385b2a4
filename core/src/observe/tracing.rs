//! [`TracingHook`]: one structured `tracing` event per redress event.
//!
//! Every event has the target `redress` and these fields:
//!
//! | Field | Value |
//! |---|---|
//! | `message` | a short sentence (`call succeeded`, `retrying`, `call stopped: max attempts reached`, ...) |
//! | `event` | the stable name of the event ([`Event::name`]: `success`, `retry`, `permanent_failure`, `max_attempts`, `circuit_opened`, ...) |
//! | `operation` | the operation name (empty if none) |
//! | `attempt` | the attempt it concerns (1-based; 0 before the first attempt ran) |
//! | `class` | the failure's class in snake_case (`transient`, `rate_limit`, ...), empty if none |
//! | `elapsed_ms` | milliseconds since the call started (whole milliseconds, rounded down) |
//!
//! and, by kind of event:
//!
//! | Event | Level | Extra fields |
//! |---|---|---|
//! | success | DEBUG ([`success_level`](TracingHook::success_level)) | — |
//! | retry | INFO ([`retry_level`](TracingHook::retry_level)) | `sleep_ms`: the chosen delay; `retry_after_ms`: the dependency's hint, only when it gave one |
//! | stopped by a failure (every [`StopReason`] but the three below) | WARN ([`failure_level`](TracingHook::failure_level)) | `reason`: [`StopReason::name`] (`non_retryable`, `max_attempts`, `budget_exhausted`, ...) |
//! | stopped on request: aborted, cancelled, deferred | INFO ([`interrupt_level`](TracingHook::interrupt_level)) | `reason`; for `deferred` also `sleep_ms`, the delay until the deferred retry |
//! | circuit opened | WARN | `state = "open"` |
//! | circuit half-open | INFO | `state = "half_open"` |
//! | circuit closed | INFO | `state = "closed"` |
//! | circuit rejected | DEBUG | — (a half-open breaker whose probes are taken rejects too, so no state is claimed; the instant it may admit again is on the policy's clock, not the wall clock) |
//!
//! A stop's details are in its fields and message: the class of `non_retryable`,
//! `max_attempts_for_class` and `no_strategy` is the `class` field, and the message is the
//! reason's [`Display`](core::fmt::Display) (`call stopped: transient errors are not retried`).
//! The levels of circuit events are fixed.
//!
//! # Cost
//! Each event goes through `tracing`'s ordinary macros: when no subscriber is interested
//! in the target and level, the hook returns after the callsite's cached interest check,
//! with no allocation and no formatting. The message's `Display` runs only in a
//! subscriber that records it.

use ::tracing::{Level, event};

use crate::class::ErrorClass;
use crate::decision::StopReason;
use crate::event::{Event, EventKind, Hook};

/// Emits `event!` at a level chosen at run time (each level is its own callsite).
macro_rules! event_at {
    ($level:expr, $($rest:tt)+) => {
        match $level {
            Level::ERROR => event!(target: "redress", Level::ERROR, $($rest)+),
            Level::WARN => event!(target: "redress", Level::WARN, $($rest)+),
            Level::INFO => event!(target: "redress", Level::INFO, $($rest)+),
            Level::DEBUG => event!(target: "redress", Level::DEBUG, $($rest)+),
            _ => event!(target: "redress", Level::TRACE, $($rest)+),
        }
    };
}

/// A [`Hook`] that emits one `tracing` event per redress event, with target `redress` and
/// structured fields (see the [module docs](self) for the fields and levels).
///
/// ```
/// use redress::observe::TracingHook;
/// use tracing::Level;
///
/// let hook = TracingHook::new().retry_level(Level::DEBUG);
/// let policy = redress::Policy::builder().hook(hook).build()?;
/// # let _ = policy;
/// # Ok::<(), redress::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TracingHook {
    success: Level,
    retry: Level,
    failure: Level,
    interrupt: Level,
}

impl Default for TracingHook {
    fn default() -> Self {
        Self::new()
    }
}

impl TracingHook {
    /// A hook with the default levels: success DEBUG, retry INFO, failure WARN, stops on
    /// request INFO.
    pub const fn new() -> Self {
        Self {
            success: Level::DEBUG,
            retry: Level::INFO,
            failure: Level::WARN,
            interrupt: Level::INFO,
        }
    }

    /// The level of `success` events (DEBUG by default).
    #[must_use]
    pub const fn success_level(mut self, level: Level) -> Self {
        self.success = level;
        self
    }

    /// The level of `retry` events (INFO by default).
    #[must_use]
    pub const fn retry_level(mut self, level: Level) -> Self {
        self.retry = level;
        self
    }

    /// The level of calls stopped by a failure: every stop but aborted, cancelled and
    /// deferred (WARN by default).
    #[must_use]
    pub const fn failure_level(mut self, level: Level) -> Self {
        self.failure = level;
        self
    }

    /// The level of calls stopped on request: aborted, cancelled and deferred (INFO by
    /// default).
    #[must_use]
    pub const fn interrupt_level(mut self, level: Level) -> Self {
        self.interrupt = level;
        self
    }
}

/// Whole milliseconds, saturating.
fn millis(d: core::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Hook for TracingHook {
    fn on_event(&self, e: &Event<'_>) {
        let name = e.name();
        let operation = e.operation;
        let attempt = e.attempt;
        let class = e.class.map_or("", ErrorClass::name);
        let elapsed_ms = millis(e.elapsed);
        match e.kind {
            EventKind::Success => event_at!(
                self.success,
                event = name,
                operation,
                attempt,
                class,
                elapsed_ms,
                "call succeeded"
            ),
            EventKind::Retry { delay, retry_after } => event_at!(
                self.retry,
                event = name,
                operation,
                attempt,
                class,
                elapsed_ms,
                sleep_ms = millis(delay),
                retry_after_ms = retry_after.map(millis),
                "retrying"
            ),
            EventKind::Stopped(reason @ StopReason::Deferred { delay, .. }) => event_at!(
                self.interrupt,
                event = name,
                operation,
                attempt,
                class,
                elapsed_ms,
                reason = reason.name(),
                sleep_ms = millis(delay),
                "call stopped: {reason}"
            ),
            EventKind::Stopped(reason) => {
                let level = match reason {
                    StopReason::Aborted | StopReason::Cancelled => self.interrupt,
                    _ => self.failure,
                };
                event_at!(
                    level,
                    event = name,
                    operation,
                    attempt,
                    class,
                    elapsed_ms,
                    reason = reason.name(),
                    "call stopped: {reason}"
                );
            }
            EventKind::CircuitOpened => event!(
                target: "redress",
                Level::WARN,
                event = name,
                operation,
                attempt,
                class,
                elapsed_ms,
                state = "open",
                "circuit breaker opened"
            ),
            EventKind::CircuitHalfOpen => event!(
                target: "redress",
                Level::INFO,
                event = name,
                operation,
                attempt,
                class,
                elapsed_ms,
                state = "half_open",
                "circuit breaker half-open: admitting a probe"
            ),
            EventKind::CircuitClosed => event!(
                target: "redress",
                Level::INFO,
                event = name,
                operation,
                attempt,
                class,
                elapsed_ms,
                state = "closed",
                "circuit breaker closed"
            ),
            EventKind::CircuitRejected { .. } => event!(
                target: "redress",
                Level::DEBUG,
                event = name,
                operation,
                attempt,
                class,
                elapsed_ms,
                "circuit breaker rejected the call"
            ),
        }
    }
}
