//! Pending retry state: what a job queue saves to resume a deferred call later.

use core::time::Duration;

use crate::class::{ClassTable, ErrorClass};

/// Where a call stands between attempts, detached from any clock or policy instance.
///
/// Read it with [`PolicyMachine::state`](crate::PolicyMachine::state) (typically after the
/// call stopped with [`StopReason::Deferred`](crate::StopReason::Deferred)), store it (it is
/// serde-serialisable with the `serde` feature), and continue the call later, in any
/// process, with [`Policy::resume`](crate::Policy::resume). Counts and the deadline carry
/// over, so a re-delivered job does not start again at attempt 1 with a fresh deadline.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct RetryState {
    /// Attempts already run.
    pub attempts: u32,
    /// Time the call has used, including a planned deferral delay.
    pub elapsed: Duration,
    /// Attempts that ended in each class, in [`ErrorClass::ALL`] order.
    pub class_attempts: [u32; ErrorClass::COUNT],
    /// The previous sleep (decorrelated jitter grows from it).
    pub prev_sleep: Option<Duration>,
    /// The class of the last failure.
    pub last_class: Option<ErrorClass>,
    /// Total time slept or deferred so far.
    pub total_sleep: Duration,
}

impl RetryState {
    /// Attempts that ended in `class`.
    pub fn attempts_of(&self, class: ErrorClass) -> u32 {
        self.class_attempts[class.index()]
    }

    pub(crate) fn class_table(&self) -> ClassTable<u32> {
        ClassTable(self.class_attempts)
    }
}
