//! Events: every decision the policy takes, observable through one hook.
//!
//! The machine queues [`Event`]s as it decides; drivers drain them with
//! [`poll_event`](crate::PolicyMachine::poll_event) and hand each to the policy's [`Hook`].
//! Observers never change control flow: a hook that panics is contained (the call's result
//! is the same as without it), and with no hook installed an event costs a few stores into
//! a fixed array, with no allocation and no formatting.

use core::fmt;
use core::time::Duration;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

use crate::class::ErrorClass;
use crate::decision::StopReason;
use crate::time::Instant;

/// One observable decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event<'a> {
    /// What happened.
    pub kind: EventKind,
    /// The attempt it concerns (1-based; 0 before the first attempt ran).
    pub attempt: u32,
    /// The class of the failure that led to it, where there was one.
    pub class: Option<ErrorClass>,
    /// Time since the call started.
    pub elapsed: Duration,
    /// The operation name given to the call (empty if none).
    pub operation: &'a str,
}

impl Event<'_> {
    /// The stable snake_case name of the event, for logs and metric labels.
    pub const fn name(&self) -> &'static str {
        self.kind.name()
    }

    /// A copy that owns its operation name (allocates; for recording and tests).
    pub fn to_record(&self) -> EventRecord {
        EventRecord {
            kind: self.kind,
            attempt: self.attempt,
            class: self.class,
            elapsed: self.elapsed,
            operation: self.operation.into(),
        }
    }
}

impl fmt::Display for Event<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} attempt={}", self.name(), self.attempt)?;
        if let Some(c) = self.class {
            write!(f, " class={c}")?;
        }
        if let EventKind::Retry { delay, .. } = self.kind {
            write!(f, " sleep={delay:?}")?;
        }
        if !self.operation.is_empty() {
            write!(f, " operation={}", self.operation)?;
        }
        write!(f, " elapsed={:?}", self.elapsed)
    }
}

/// What an [`Event`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventKind {
    /// The call succeeded.
    Success,
    /// A failed attempt will be retried after `delay`.
    Retry {
        /// The sleep before the next attempt.
        delay: Duration,
        /// The dependency's hint, if the classifier found one.
        retry_after: Option<Duration>,
    },
    /// The call stopped without success. [`StopReason::NonRetryable`] is the "permanent
    /// failure" event; [`StopReason::Deferred`] the "deferred" one.
    Stopped(StopReason),
    /// The breaker opened (closed → open, or a failed probe: half-open → open).
    CircuitOpened,
    /// The breaker admitted a probe after its recovery time (open → half-open).
    CircuitHalfOpen,
    /// Enough probes succeeded: the breaker closed.
    CircuitClosed,
    /// The breaker refused an attempt; it may admit again at `until`.
    CircuitRejected {
        /// When the breaker may next admit an attempt.
        until: Instant,
    },
}

impl EventKind {
    /// The stable snake_case name.
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Retry { .. } => "retry",
            Self::Stopped(StopReason::NonRetryable(_)) => "permanent_failure",
            Self::Stopped(r) => r.name(),
            Self::CircuitOpened => "circuit_opened",
            Self::CircuitHalfOpen => "circuit_half_open",
            Self::CircuitClosed => "circuit_closed",
            Self::CircuitRejected { .. } => "circuit_rejected",
        }
    }
}

/// An [`Event`] that owns its operation name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRecord {
    /// What happened.
    pub kind: EventKind,
    /// The attempt it concerns.
    pub attempt: u32,
    /// The failure class, where there was one.
    pub class: Option<ErrorClass>,
    /// Time since the call started.
    pub elapsed: Duration,
    /// The operation name.
    pub operation: Box<str>,
}

/// The one observer of a policy's decisions.
///
/// Any `Fn(&Event) + Send + Sync` is a hook.
pub trait Hook: Send + Sync {
    /// Called once per event, in order.
    fn on_event(&self, event: &Event<'_>);
}

impl<F> Hook for F
where
    F: Fn(&Event<'_>) + Send + Sync,
{
    fn on_event(&self, event: &Event<'_>) {
        self(event)
    }
}

/// Calls `hook` with `event`, containing any panic so an observer cannot change the call.
pub fn dispatch(hook: &dyn Hook, event: &Event<'_>) {
    let _ = catch_unwind(AssertUnwindSafe(|| hook.on_event(event)));
}

/// A hook that records every event; cloning shares the record.
///
/// ```
/// use redress::event::Recorder;
/// let rec = Recorder::default();
/// let policy = redress::Policy::builder().hook(rec.clone()).build().unwrap();
/// # let _ = policy;
/// assert!(rec.take().is_empty());
/// ```
#[derive(Clone, Default, Debug)]
pub struct Recorder {
    events: Arc<Mutex<Vec<EventRecord>>>,
}

impl Recorder {
    /// Removes and returns everything recorded so far.
    pub fn take(&self) -> Vec<EventRecord> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The names of everything recorded so far (keeps the record).
    pub fn names(&self) -> Vec<&'static str> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|e| e.kind.name())
            .collect()
    }
}

impl Hook for Recorder {
    fn on_event(&self, event: &Event<'_>) {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event.to_record());
    }
}
