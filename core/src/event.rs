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
/// Any `Fn(&Event) + Send + Sync` is a hook. So are a tuple of up to six hooks and an
/// `Option` of one, and [`Hooks`] holds any number chosen at run time: a policy has one
/// hook, which may fan out to several. Each member of a tuple or of [`Hooks`] sees every
/// event in order, and a panic in one is contained without keeping the others from it.
///
/// ```
/// use redress::event::{Event, Recorder};
/// use redress::{ErrorClass, Instant, Outcome, Policy};
///
/// let (first, second) = (Recorder::default(), Recorder::default());
/// let policy = Policy::builder()
///     .hook((first.clone(), |_: &Event<'_>| panic!("contained"), second.clone()))
///     .build()?;
///
/// let mut m = policy.machine();
/// m.start(Instant::ZERO);
/// m.on_outcome(Instant::ZERO, Outcome::failure(ErrorClass::Permanent));
/// while let Some(e) = m.poll_event() {
///     policy.emit(&e);
/// }
/// assert_eq!(first.names(), ["permanent_failure"]);
/// assert_eq!(second.names(), ["permanent_failure"]);
/// # Ok::<(), redress::ConfigError>(())
/// ```
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

// ----- several hooks ---------------------------------------------------------------------

// Tuples of up to six hooks: each member sees every event, in order, each dispatched on
// its own so that a panic in one does not keep the others from the event.
macro_rules! tuple_hook {
    ($($name:ident . $index:tt),+) => {
        impl<$($name: Hook),+> Hook for ($($name,)+) {
            fn on_event(&self, event: &Event<'_>) {
                $(dispatch(&self.$index, event);)+
            }
        }
    };
}

tuple_hook!(A.0, B.1);
tuple_hook!(A.0, B.1, C.2);
tuple_hook!(A.0, B.1, C.2, D.3);
tuple_hook!(A.0, B.1, C.2, D.3, E.4);
tuple_hook!(A.0, B.1, C.2, D.3, E.4, F.5);

/// An optional hook: `None` observes nothing. Handy in a tuple whose members are chosen
/// by configuration, such as `(TracingHook::new(), metrics_enabled.then(MetricsHook::new))`.
impl<H: Hook> Hook for Option<H> {
    fn on_event(&self, event: &Event<'_>) {
        if let Some(h) = self {
            h.on_event(event);
        }
    }
}

/// Any number of hooks chosen at run time, called in the order they were added; a panic in
/// one is contained without keeping the others from the event. (For a fixed set, a tuple
/// of hooks is a hook too and needs no allocation.)
///
/// ```
/// use redress::event::{Hooks, Recorder};
/// let rec = Recorder::default();
/// let hooks = Hooks::new().with(rec.clone()).with(|e: &redress::Event<'_>| eprintln!("{e}"));
/// assert_eq!(hooks.len(), 2);
/// let policy = redress::Policy::builder().hook(hooks).build().unwrap();
/// # let _ = policy;
/// ```
#[derive(Clone, Default)]
pub struct Hooks {
    hooks: Vec<Arc<dyn Hook>>,
}

impl Hooks {
    /// No hooks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `hook` after the others.
    #[must_use]
    pub fn with(mut self, hook: impl Hook + 'static) -> Self {
        self.hooks.push(Arc::new(hook));
        self
    }

    /// Adds a shared hook after the others.
    #[must_use]
    pub fn with_shared(mut self, hook: Arc<dyn Hook>) -> Self {
        self.hooks.push(hook);
        self
    }

    /// Adds `hook` after the others, in place.
    pub fn push(&mut self, hook: impl Hook + 'static) {
        self.hooks.push(Arc::new(hook));
    }

    /// How many hooks there are.
    pub fn len(&self) -> usize {
        self.hooks.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("len", &self.hooks.len())
            .finish()
    }
}

impl Hook for Hooks {
    fn on_event(&self, event: &Event<'_>) {
        for h in &self.hooks {
            dispatch(h.as_ref(), event);
        }
    }
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
