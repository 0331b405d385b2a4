//! A structured account of a finished call, built from its events.

use core::time::Duration;

use crate::class::ErrorClass;
use crate::decision::StopReason;
use crate::event::{Event, EventKind};

/// One attempt in a call's timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttemptRecord {
    /// The 1-based attempt number.
    pub attempt: u32,
    /// The class it failed with; `None` if it succeeded (or ended without a class).
    pub class: Option<ErrorClass>,
    /// The sleep that followed it, if the call retried.
    pub sleep_after: Option<Duration>,
    /// Time since the call started when the attempt's end was decided on.
    pub elapsed: Duration,
}

/// What happened in one call: attempts, their classes and sleeps, and why it stopped.
///
/// Drivers build one by feeding it every event of the call ([`CallReport::observe`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallReport {
    /// Attempts that ran.
    pub attempts: u32,
    /// One entry per attempt that ended, in order.
    pub timeline: Vec<AttemptRecord>,
    /// Total time slept between attempts.
    pub total_sleep: Duration,
    /// Time from the start to the end of the call.
    pub elapsed: Duration,
    /// Whether the call succeeded.
    pub succeeded: bool,
    /// Why it stopped, if it did not succeed.
    pub stop: Option<StopReason>,
}

impl CallReport {
    /// An empty report.
    pub fn new() -> Self {
        Self::default()
    }

    /// Folds one event of the call into the report.
    pub fn observe(&mut self, e: &Event<'_>) {
        self.attempts = self.attempts.max(e.attempt);
        self.elapsed = self.elapsed.max(e.elapsed);
        match e.kind {
            EventKind::Success => {
                self.succeeded = true;
                self.record(e, None);
            }
            EventKind::Retry { delay, .. } => {
                self.total_sleep = self.total_sleep.saturating_add(delay);
                self.record(e, Some(delay));
            }
            EventKind::Stopped(reason) => {
                self.stop = Some(reason);
                if let StopReason::Deferred { delay, .. } = reason {
                    self.total_sleep = self.total_sleep.saturating_add(delay);
                }
                self.record(e, None);
            }
            EventKind::CircuitRejected { until } => {
                self.stop = Some(StopReason::CircuitOpen { until });
            }
            EventKind::CircuitOpened | EventKind::CircuitHalfOpen | EventKind::CircuitClosed => {}
        }
    }

    fn record(&mut self, e: &Event<'_>, sleep_after: Option<Duration>) {
        if e.attempt == 0 || self.timeline.last().is_some_and(|r| r.attempt == e.attempt) {
            return;
        }
        self.timeline.push(AttemptRecord {
            attempt: e.attempt,
            class: e.class,
            sleep_after,
            elapsed: e.elapsed,
        });
    }
}
