//! Retry settings: strategies, caps, deadline, per-attempt timeout, budget.
//!
//! # What each cap counts
//!
//! Every cap counts *attempts* (runs of the operation, the first one included), never
//! "retries", so the numbers mean the same thing everywhere:
//!
//! | setting | default | the call stops when… | stop reason |
//! |---|---|---|---|
//! | `non_retryable` | Auth, Permission, Permanent | an attempt ends in one of these classes | `NonRetryable(c)` |
//! | `class_max_attempts(c, n)` | none | `n` attempts have ended in class `c` | `MaxAttemptsForClass(c)` |
//! | `max_unknown_attempts` | 2 (at most `max_attempts`) | this many attempts have ended in `Unknown` | `MaxUnknownAttempts` |
//! | `max_attempts` | 6 | this many attempts have run and the last failed | `MaxAttempts` |
//! | strategies | `decorrelated_jitter` for every class | the failure's class has no strategy | `NoStrategy(c)` |
//! | `deadline` | 60 s | the deadline has passed, or the next sleep would end at or past it | `DeadlineExceeded` |
//! | `predict_deadline` | off | the next sleep plus the typical attempt time would end past the deadline | `DeadlineUnreachable` |
//! | budget | none | the shared budget cannot afford the retry | `BudgetExhausted` |
//!
//! So `max_attempts(3)` means the operation runs at most three times (two retries), and
//! `max_unknown_attempts(2)` means a second `Unknown` failure ends the call. The checks run
//! in the table's order and the first that fails names the stop reason (so a Permanent
//! failure of the only allowed attempt stops with `NonRetryable`, the more specific
//! reason). The first five run before any delay is computed; the deadline checks need the
//! delay (computed, never announced); the budget is charged last. So the last allowed
//! failure never emits a retry event, spends budget, feeds adaptive state or sleeps.

use core::time::Duration;
use std::sync::Arc;

use crate::backoff::{Backoff, DecorrelatedJitter};
use crate::budget::Budget;
use crate::class::{ClassSet, ClassTable, ErrorClass};
use crate::error::{ConfigError, ensure};

/// The classes no policy retries unless configured otherwise.
pub const DEFAULT_NON_RETRYABLE: ClassSet = ClassSet::of(&[
    ErrorClass::Auth,
    ErrorClass::Permission,
    ErrorClass::Permanent,
]);

/// Validated retry settings; build with [`Retry::builder`].
#[derive(Clone)]
pub struct Retry {
    pub(crate) default_strategy: Option<Arc<dyn Backoff>>,
    pub(crate) strategies: ClassTable<Option<Arc<dyn Backoff>>>,
    pub(crate) deadline: Option<Duration>,
    pub(crate) max_attempts: u32,
    pub(crate) max_unknown_attempts: Option<u32>,
    pub(crate) class_max_attempts: ClassTable<Option<u32>>,
    pub(crate) attempt_timeout: Option<Duration>,
    pub(crate) non_retryable: ClassSet,
    pub(crate) timeout_class: ErrorClass,
    pub(crate) budget: Option<Arc<Budget>>,
    pub(crate) predict_deadline: bool,
    pub(crate) feedback: bool,
}

impl core::fmt::Debug for Retry {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Retry")
            .field("default_strategy", &self.default_strategy)
            .field("strategies", &self.strategies)
            .field("deadline", &self.deadline)
            .field("max_attempts", &self.max_attempts)
            .field("max_unknown_attempts", &self.max_unknown_attempts)
            .field("class_max_attempts", &self.class_max_attempts)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("non_retryable", &self.non_retryable)
            .field("timeout_class", &self.timeout_class)
            .field("budget", &self.budget)
            .field("predict_deadline", &self.predict_deadline)
            .finish()
    }
}

impl Default for Retry {
    fn default() -> Self {
        Self::builder().valid()
    }
}

impl Retry {
    /// A builder with the defaults of the table in the [module docs](self) and
    /// `decorrelated_jitter(250ms, 30s)` as the default strategy.
    pub fn builder() -> RetryBuilder {
        RetryBuilder {
            retry: Self {
                default_strategy: Some(Arc::new(DecorrelatedJitter::default())),
                strategies: ClassTable::default(),
                deadline: Some(Duration::from_secs(60)),
                max_attempts: 6,
                max_unknown_attempts: Some(2),
                class_max_attempts: ClassTable::default(),
                attempt_timeout: None,
                non_retryable: DEFAULT_NON_RETRYABLE,
                timeout_class: ErrorClass::Transient,
                budget: None,
                predict_deadline: false,
                feedback: false,
            },
            unknown_set: false,
        }
    }

    /// The strategy used for `class`: its own, else the default.
    pub fn strategy_for(&self, class: ErrorClass) -> Option<&dyn Backoff> {
        self.strategies[class]
            .as_deref()
            .or(self.default_strategy.as_deref())
    }

    /// The default strategy.
    pub fn default_strategy(&self) -> Option<&dyn Backoff> {
        self.default_strategy.as_deref()
    }

    /// The strategy configured for `class` itself (not the default).
    pub fn class_strategy(&self, class: ErrorClass) -> Option<&dyn Backoff> {
        self.strategies[class].as_deref()
    }

    /// The overall deadline of a call.
    pub fn deadline(&self) -> Option<Duration> {
        self.deadline
    }

    /// Attempts allowed per call, the first included.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Attempts that may end in `Unknown`.
    pub fn max_unknown_attempts(&self) -> Option<u32> {
        self.max_unknown_attempts
    }

    /// Attempts that may end in `class`.
    pub fn class_max_attempts(&self, class: ErrorClass) -> Option<u32> {
        self.class_max_attempts[class]
    }

    /// The time limit of one attempt.
    pub fn attempt_timeout(&self) -> Option<Duration> {
        self.attempt_timeout
    }

    /// Classes that are never retried.
    pub fn non_retryable(&self) -> ClassSet {
        self.non_retryable
    }

    /// The class a timed-out attempt counts as.
    pub fn timeout_class(&self) -> ErrorClass {
        self.timeout_class
    }

    /// The shared retry budget.
    pub fn budget(&self) -> Option<&Arc<Budget>> {
        self.budget.as_ref()
    }

    /// Whether retries that cannot finish before the deadline are refused up front.
    pub fn predicts_deadline(&self) -> bool {
        self.predict_deadline
    }

    /// Every configured strategy, as `(Some(class) or None for the default, strategy)`.
    pub fn strategies(&self) -> impl Iterator<Item = (Option<ErrorClass>, &dyn Backoff)> {
        self.default_strategy
            .as_deref()
            .map(|s| (None, s))
            .into_iter()
            .chain(
                self.strategies
                    .iter()
                    .filter_map(|(c, s)| s.as_deref().map(|s| (Some(c), s))),
            )
    }
}

/// A builder of [`Retry`] settings.
#[derive(Clone, Debug)]
#[must_use]
pub struct RetryBuilder {
    retry: Retry,
    /// Whether `max_unknown_attempts` was set; unset, it is `min(2, max_attempts)`.
    unknown_set: bool,
}

impl RetryBuilder {
    /// The strategy for classes without their own (default `decorrelated_jitter(250ms,
    /// 30s)`).
    pub fn strategy(mut self, s: impl Backoff + 'static) -> Self {
        self.retry.default_strategy = Some(Arc::new(s));
        self
    }

    /// No default strategy: classes without their own stop with `NoStrategy`.
    pub fn no_default_strategy(mut self) -> Self {
        self.retry.default_strategy = None;
        self
    }

    /// The strategy for one class.
    pub fn class_strategy(mut self, class: ErrorClass, s: impl Backoff + 'static) -> Self {
        self.retry.strategies[class] = Some(Arc::new(s));
        self
    }

    /// The overall deadline of a call (default 60 s), measured from its start.
    pub fn deadline(mut self, d: Duration) -> Self {
        self.retry.deadline = Some(d);
        self
    }

    /// No overall deadline.
    pub fn no_deadline(mut self) -> Self {
        self.retry.deadline = None;
        self
    }

    /// Attempts per call, the first included (default 6).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.retry.max_attempts = n;
        self
    }

    /// Attempts that may end in `Unknown` (default 2, or `max_attempts` if that is smaller);
    /// `None` removes the cap.
    pub fn max_unknown_attempts(mut self, n: Option<u32>) -> Self {
        self.retry.max_unknown_attempts = n;
        self.unknown_set = true;
        self
    }

    /// Attempts that may end in `class`.
    pub fn class_max_attempts(mut self, class: ErrorClass, n: u32) -> Self {
        self.retry.class_max_attempts[class] = Some(n);
        self
    }

    /// The time limit of one attempt (none by default). The driver enforces the earlier of
    /// this and the deadline.
    pub fn attempt_timeout(mut self, d: Duration) -> Self {
        self.retry.attempt_timeout = Some(d);
        self
    }

    /// The classes that are never retried (default Auth, Permission, Permanent).
    pub fn non_retryable(mut self, classes: ClassSet) -> Self {
        self.retry.non_retryable = classes;
        self
    }

    /// The class a timed-out attempt counts as (default Transient).
    pub fn timeout_class(mut self, class: ErrorClass) -> Self {
        self.retry.timeout_class = class;
        self
    }

    /// A shared retry budget every retry must withdraw from.
    pub fn budget(mut self, budget: Arc<Budget>) -> Self {
        self.retry.budget = Some(budget);
        self
    }

    /// Refuse a retry when its sleep plus the typical attempt time (a moving average of
    /// recent attempts of this policy) would end past the deadline.
    pub fn predict_deadline(mut self, on: bool) -> Self {
        self.retry.predict_deadline = on;
        self
    }

    /// Validates and builds.
    ///
    /// # Errors
    /// A [`ConfigError`] when `max_attempts` is 0; `max_unknown_attempts` or a class cap is
    /// 0 or above `max_attempts`; `deadline` or `attempt_timeout` is zero; or a strategy's
    /// own parameters are invalid (field `strategy.…` or `strategies.<class>.…`).
    pub fn build(self) -> Result<Retry, ConfigError> {
        let mut r = self.retry;
        ensure(
            r.max_attempts >= 1,
            "max_attempts",
            r.max_attempts,
            "must be at least 1",
        )?;
        if !self.unknown_set {
            r.max_unknown_attempts = Some(2.min(r.max_attempts));
        }
        if let Some(n) = r.max_unknown_attempts {
            ensure(
                n >= 1,
                "max_unknown_attempts",
                n,
                "must be at least 1 (or unset)",
            )?;
            ensure(
                n <= r.max_attempts,
                "max_unknown_attempts",
                n,
                "must not exceed max_attempts",
            )?;
        }
        for (class, cap) in r.class_max_attempts.iter() {
            if let Some(n) = *cap {
                let field = || format!("class_max_attempts.{class}");
                if n == 0 {
                    return Err(ConfigError::new(field(), n, "must be at least 1"));
                }
                if n > r.max_attempts {
                    return Err(ConfigError::new(field(), n, "must not exceed max_attempts"));
                }
            }
        }
        if let Some(d) = r.deadline {
            ensure(!d.is_zero(), "deadline", d, "must be greater than zero")?;
        }
        if let Some(d) = r.attempt_timeout {
            ensure(
                !d.is_zero(),
                "attempt_timeout",
                d,
                "must be greater than zero",
            )?;
        }
        if let Some(s) = &r.default_strategy {
            s.validate().map_err(|e| e.within("strategy"))?;
        }
        for (class, s) in r.strategies.iter() {
            if let Some(s) = s {
                s.validate()
                    .map_err(|e| e.within(&format!("strategies.{class}")))?;
            }
        }
        let feedback = r.strategies().any(|(_, s)| s.wants_feedback());
        r.feedback = feedback;
        Ok(r)
    }

    /// Builds a retry-only [`Policy`](crate::Policy) (no breaker, no hook).
    ///
    /// # Errors
    /// As [`build`](Self::build).
    pub fn policy(self) -> Result<crate::Policy, ConfigError> {
        crate::Policy::builder().retry(self.build()?).build()
    }

    /// The defaults are valid; used by `Retry::default`.
    fn valid(self) -> Retry {
        let mut r = self.retry;
        r.feedback = false;
        r
    }
}
