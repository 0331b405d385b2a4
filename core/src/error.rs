//! Errors: bad configuration, rejected at construction.

use std::borrow::Cow;
use std::fmt;

/// A configuration value that breaks a rule, reported when a policy, strategy, breaker or
/// budget is built.
///
/// It names the field (a dotted path such as `strategies.rate_limit.max`), the value as
/// written, and the rule it breaks, so the message alone is enough to fix the input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid `{field}` = {value}: {rule}")]
#[non_exhaustive]
pub struct ConfigError {
    /// The field, as a dotted path.
    pub field: Cow<'static, str>,
    /// The offending value, formatted for humans.
    pub value: String,
    /// The rule the value breaks.
    pub rule: Cow<'static, str>,
}

impl ConfigError {
    /// An error for `field` holding `value`, which breaks `rule`.
    pub fn new(
        field: impl Into<Cow<'static, str>>,
        value: impl fmt::Debug,
        rule: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            field: field.into(),
            value: format!("{value:?}"),
            rule: rule.into(),
        }
    }

    /// The same error with its field nested under `prefix` (`prefix.field`).
    pub fn within(mut self, prefix: &str) -> Self {
        self.field = Cow::Owned(format!("{prefix}.{}", self.field));
        self
    }
}

/// Checks a rule, returning a [`ConfigError`] for `field` when it does not hold.
pub(crate) fn ensure(
    ok: bool,
    field: &'static str,
    value: impl fmt::Debug,
    rule: &'static str,
) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(field, value, rule))
    }
}

/// What the last attempt of a failed call left behind.
#[derive(Debug)]
pub enum LastFailure<E, V> {
    /// Nothing is left: no attempt ran (the breaker refused the first, or the call was
    /// aborted first), or the last failure was a rejected value released before its retry
    /// ([`CallContext::release_rejected`](crate::CallContext::release_rejected)) and the call
    /// then stopped without another attempt (for example the breaker refused it at wake-up).
    Nothing,
    /// The last attempt returned this error.
    Error(E),
    /// The last attempt returned this value, which the result classifier called a failure.
    Value(V),
    /// The last attempt ran past its time limit.
    TimedOut,
}

/// A call that stopped without success: why, after how many attempts, and what the last
/// attempt returned.
///
/// `V` is the type of `Ok` values a result classifier may reject; it is
/// [`Infallible`](std::convert::Infallible) for calls without one.
pub struct RetryError<E, V = std::convert::Infallible> {
    pub(crate) reason: crate::StopReason,
    pub(crate) attempts: u32,
    pub(crate) last_class: Option<crate::ErrorClass>,
    pub(crate) last: LastFailure<E, V>,
    // Boxed: only deferred calls carry it, and it would double the error's size.
    pub(crate) state: Option<Box<crate::RetryState>>,
}

impl<E, V> RetryError<E, V> {
    /// Assembles an error (drivers do this).
    pub fn new(
        reason: crate::StopReason,
        attempts: u32,
        last_class: Option<crate::ErrorClass>,
        last: LastFailure<E, V>,
    ) -> Self {
        Self {
            reason,
            attempts,
            last_class,
            last,
            state: None,
        }
    }

    /// The same error carrying the call's pending state (deferred calls).
    pub fn with_state(mut self, state: crate::RetryState) -> Self {
        self.state = Some(Box::new(state));
        self
    }

    /// Why the call stopped.
    pub fn reason(&self) -> crate::StopReason {
        self.reason
    }

    /// Attempts that ran.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The class of the last failure.
    pub fn last_class(&self) -> Option<crate::ErrorClass> {
        self.last_class
    }

    /// What the last attempt left behind.
    pub fn last(&self) -> &LastFailure<E, V> {
        &self.last
    }

    /// The last error, if the last attempt returned one.
    pub fn error(&self) -> Option<&E> {
        match &self.last {
            LastFailure::Error(e) => Some(e),
            _ => None,
        }
    }

    /// The last rejected `Ok` value, if the result classifier rejected the last attempt's.
    pub fn value(&self) -> Option<&V> {
        match &self.last {
            LastFailure::Value(v) => Some(v),
            _ => None,
        }
    }

    /// The last error, by value.
    pub fn into_inner(self) -> Option<E> {
        match self.last {
            LastFailure::Error(e) => Some(e),
            _ => None,
        }
    }

    /// The last rejected `Ok` value, by value.
    pub fn into_value(self) -> Option<V> {
        match self.last {
            LastFailure::Value(v) => Some(v),
            _ => None,
        }
    }

    /// Splits off a rejected value: `Ok(value)` if the result classifier rejected the last
    /// attempt's value, otherwise the same error (reason, attempts, class, last failure,
    /// state) with no value type. A middleware returning the last response as its answer
    /// uses this.
    ///
    /// # Errors
    /// The error itself when its last failure is not a rejected value.
    pub fn take_value<W>(self) -> Result<V, RetryError<E, W>> {
        let last = match self.last {
            LastFailure::Value(v) => return Ok(v),
            LastFailure::Error(e) => LastFailure::Error(e),
            LastFailure::TimedOut => LastFailure::TimedOut,
            LastFailure::Nothing => LastFailure::Nothing,
        };
        Err(RetryError {
            reason: self.reason,
            attempts: self.attempts,
            last_class: self.last_class,
            last,
            state: self.state,
        })
    }

    /// The pending state of a deferred call, to resume it later.
    pub fn state(&self) -> Option<&crate::RetryState> {
        self.state.as_deref()
    }

    /// Whether the breaker refused the call.
    pub fn is_circuit_open(&self) -> bool {
        matches!(self.reason, crate::StopReason::CircuitOpen { .. })
    }
}

impl<E: fmt::Debug, V> fmt::Debug for RetryError<E, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryError")
            .field("reason", &self.reason)
            .field("attempts", &self.attempts)
            .field("last_class", &self.last_class)
            .field("error", &self.error())
            .finish_non_exhaustive()
    }
}

impl<E: fmt::Display, V> fmt::Display for RetryError<E, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "gave up after {} attempt", self.attempts)?;
        if self.attempts != 1 {
            f.write_str("s")?;
        }
        write!(f, ": {}", self.reason)?;
        match &self.last {
            LastFailure::Error(e) => write!(f, "; last error: {e}"),
            LastFailure::Value(_) => f.write_str("; last result was rejected"),
            LastFailure::TimedOut => f.write_str("; last attempt timed out"),
            LastFailure::Nothing => Ok(()),
        }
    }
}

impl<E: std::error::Error + 'static, V> std::error::Error for RetryError<E, V> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error().map(|e| e as _)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_errors_stay_small_enough_to_return_by_value() {
        // clippy's result_large_err fires at 128 bytes; callers return these in `Result`s.
        assert!(std::mem::size_of::<RetryError<std::io::Error>>() <= 64);
    }

    #[test]
    fn take_value_splits_off_a_rejected_value_and_keeps_everything_else() {
        use crate::{ErrorClass, StopReason};
        let class = Some(ErrorClass::ServerError);
        let e: RetryError<&str, u16> =
            RetryError::new(StopReason::MaxAttempts, 3, class, LastFailure::Value(503));
        assert_eq!(e.take_value::<()>().ok(), Some(503));

        let e: RetryError<&str, u16> = RetryError::new(
            StopReason::MaxAttempts,
            2,
            class,
            LastFailure::Error("reset"),
        );
        let e = e.take_value::<()>().unwrap_err();
        assert_eq!(
            (e.reason(), e.attempts(), e.last_class(), e.error()),
            (StopReason::MaxAttempts, 2, class, Some(&"reset"))
        );
        let e: RetryError<&str, u16> =
            RetryError::new(StopReason::MaxAttempts, 1, class, LastFailure::TimedOut);
        assert!(matches!(
            e.take_value::<()>().unwrap_err().last(),
            LastFailure::TimedOut
        ));
    }
}
