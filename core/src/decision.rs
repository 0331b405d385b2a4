//! The driver protocol: what goes into the machine ([`Outcome`]) and what comes out
//! ([`Decision`]), and why a call stopped ([`StopReason`]).

use core::fmt;
use core::time::Duration;

use crate::class::{Classification, ErrorClass};
use crate::time::Instant;

/// How an attempt ended, as the driver reports it to the machine.
///
/// The driver classifies errors (and, for result-based retries, `Ok` values) *before*
/// reporting them. This enum is exhaustive: it is the driver protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The attempt succeeded.
    Success,
    /// The attempt failed with this classification.
    Failure(Classification),
    /// The attempt ran past the time limit of its [`Decision::Attempt`]; the policy treats it
    /// as a failure of its configured timeout class (Transient by default).
    TimedOut,
    /// The attempt was abandoned (its future dropped, the caller gone). The call ends with
    /// [`StopReason::Cancelled`]; a breaker permit is released without counting.
    Cancelled,
}

impl Outcome {
    /// A failure of `class` with no hints.
    pub const fn failure(class: ErrorClass) -> Self {
        Self::Failure(Classification::new(class))
    }
}

impl From<Classification> for Outcome {
    fn from(c: Classification) -> Self {
        Self::Failure(c)
    }
}

impl From<ErrorClass> for Outcome {
    fn from(c: ErrorClass) -> Self {
        Self::failure(c)
    }
}

/// What the driver must do next.
///
/// Exhaustive: it is the driver protocol, and a driver matches every variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Run attempt number `n` (1-based). If `deadline` is set, the attempt must be abandoned
    /// at that instant and reported as [`Outcome::TimedOut`]; it is the earlier of the
    /// per-attempt timeout and the call's overall deadline.
    Attempt {
        /// The 1-based attempt number.
        n: u32,
        /// When the attempt must be given up, if ever.
        deadline: Option<Instant>,
    },
    /// Wait until `until`, then call [`on_wake`](crate::PolicyMachine::on_wake). `delay` is
    /// the backoff that was chosen; drivers sleep *until* the instant so time already spent
    /// in the driver is not added twice.
    Sleep {
        /// When to wake.
        until: Instant,
        /// The chosen delay (for hooks and logs).
        delay: Duration,
    },
    /// The call is over: the circuit breaker refused an attempt. It may admit again at
    /// `until`. The stop reason is [`StopReason::CircuitOpen`].
    Rejected {
        /// When the breaker may next admit an attempt.
        until: Instant,
    },
    /// The call is over: the last attempt succeeded.
    Succeeded,
    /// The call is over without success, for this reason.
    Failed(StopReason),
}

impl Decision {
    /// Whether the call is over.
    pub const fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Rejected { .. } | Self::Succeeded | Self::Failed(_)
        )
    }
}

/// Why a call stopped without success.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum StopReason {
    /// The failure's class is not retried by this policy (Auth, Permission, Permanent by
    /// default).
    NonRetryable(ErrorClass),
    /// The policy's `max_attempts` attempts have all run.
    MaxAttempts,
    /// The per-class cap of attempts ending in this class was reached.
    MaxAttemptsForClass(ErrorClass),
    /// The cap of attempts ending in [`ErrorClass::Unknown`] was reached.
    MaxUnknownAttempts,
    /// The call's deadline has passed, or the next sleep would end past it.
    DeadlineExceeded,
    /// The next sleep plus the expected duration of an attempt would end past the deadline,
    /// so the retry was not started (only with deadline prediction on).
    DeadlineUnreachable,
    /// No backoff strategy is configured for the failure's class.
    NoStrategy(ErrorClass),
    /// The retry budget refused the retry.
    BudgetExhausted,
    /// The circuit breaker refused an attempt; it may admit again at `until`.
    CircuitOpen {
        /// When the breaker may next admit an attempt.
        until: Instant,
    },
    /// The call was aborted on request (abort handle, `before_sleep` veto).
    Aborted,
    /// The attempt in flight was abandoned (future dropped).
    Cancelled,
    /// The machine was asked to defer: the next attempt should run at `retry_at`, from the
    /// saved [`RetryState`](crate::RetryState).
    Deferred {
        /// When the next attempt should run.
        retry_at: Instant,
        /// The delay that was chosen.
        delay: Duration,
    },
}

impl StopReason {
    /// The stable snake_case name used in events and metrics.
    pub const fn name(&self) -> &'static str {
        match self {
            Self::NonRetryable(_) => "non_retryable",
            Self::MaxAttempts => "max_attempts",
            Self::MaxAttemptsForClass(_) => "max_attempts_for_class",
            Self::MaxUnknownAttempts => "max_unknown_attempts",
            Self::DeadlineExceeded => "deadline_exceeded",
            Self::DeadlineUnreachable => "deadline_unreachable",
            Self::NoStrategy(_) => "no_strategy",
            Self::BudgetExhausted => "budget_exhausted",
            Self::CircuitOpen { .. } => "circuit_open",
            Self::Aborted => "aborted",
            Self::Cancelled => "cancelled",
            Self::Deferred { .. } => "deferred",
        }
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NonRetryable(c) => write!(f, "{c} errors are not retried"),
            Self::MaxAttempts => f.write_str("max attempts reached"),
            Self::MaxAttemptsForClass(c) => write!(f, "max attempts for {c} errors reached"),
            Self::MaxUnknownAttempts => f.write_str("max attempts for unknown errors reached"),
            Self::DeadlineExceeded => f.write_str("deadline exceeded"),
            Self::DeadlineUnreachable => {
                f.write_str("another attempt cannot finish before the deadline")
            }
            Self::NoStrategy(c) => write!(f, "no backoff strategy for {c} errors"),
            Self::BudgetExhausted => f.write_str("retry budget exhausted"),
            Self::CircuitOpen { .. } => f.write_str("circuit breaker is open"),
            Self::Aborted => f.write_str("aborted"),
            Self::Cancelled => f.write_str("cancelled"),
            Self::Deferred { delay, .. } => write!(f, "deferred: retry in {delay:?}"),
        }
    }
}
