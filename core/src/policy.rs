//! Policy: retry settings + optional breaker + the hook, validated, cheap to clone, shared.

use core::fmt;
use core::time::Duration;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::breaker::CircuitBreaker;
use crate::error::ConfigError;
use crate::event::{Event, Hook, dispatch};
use crate::machine::PolicyMachine;
use crate::retry::{Retry, RetryBuilder};
use crate::rng::{DefaultRng, Rng};
use crate::state::RetryState;
use crate::time::COARSE_TICK;

/// What a policy's breaker sees.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum BreakerScope {
    /// Every attempt asks the breaker for admission and reports its own result (retries go
    /// *through* the breaker, as when a retry wraps a breaker in Polly or resilience4j). A
    /// breaker that opens mid-call stops the call at its next attempt.
    #[default]
    PerAttempt,
    /// The call asks once and reports only its final result ("breakers wrap operations,
    /// not attempts").
    PerCall,
}

/// A complete failure-handling policy.
///
/// `Clone` is one reference-count increment; a policy is `Send + Sync` and meant to be
/// shared by every call to one dependency. Each call gets its own [`PolicyMachine`] from
/// [`machine`](Self::machine), which borrows the policy and allocates nothing.
///
/// ```
/// use redress::{Policy, Retry, backoff::equal_jitter};
/// use std::time::Duration;
///
/// let policy = Policy::builder()
///     .retry(
///         Retry::builder()
///             .max_attempts(4)
///             .strategy(equal_jitter(Duration::from_millis(100), Duration::from_secs(5))),
///     )
///     .operation("fetch_user")
///     .build()?;
/// assert_eq!(policy.retry().max_attempts(), 4);
/// # Ok::<(), redress::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct Policy {
    pub(crate) inner: Arc<PolicyInner>,
}

pub(crate) struct PolicyInner {
    pub(crate) retry: Retry,
    pub(crate) breaker: Option<Arc<CircuitBreaker>>,
    pub(crate) breaker_scope: BreakerScope,
    pub(crate) hook: Option<Arc<dyn Hook>>,
    pub(crate) seed: u64,
    pub(crate) calls: AtomicU64,
    /// Exponentially weighted mean attempt time in nanoseconds (deadline prediction).
    pub(crate) attempt_nanos: AtomicU64,
    pub(crate) needs_clock: bool,
    /// Whether a success must be reported with the time it happened (failure-rate buckets,
    /// learning strategies, attempt timing); otherwise the attempt's start time will do.
    pub(crate) success_needs_time: bool,
    pub(crate) precise_clock: bool,
    pub(crate) operation: Box<str>,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("Policy")
            .field("retry", &i.retry)
            .field("breaker", &i.breaker)
            .field("breaker_scope", &i.breaker_scope)
            .field("hook", &i.hook.is_some())
            .field("seed", &i.seed)
            .field("operation", &i.operation)
            .finish()
    }
}

impl Default for Policy {
    fn default() -> Self {
        Self::from(Retry::default())
    }
}

impl From<Retry> for Policy {
    fn from(retry: Retry) -> Self {
        PolicyBuilder::new().assemble(retry)
    }
}

impl Policy {
    /// A builder; with nothing set it gives the default retry settings, no breaker, no hook.
    pub fn builder() -> PolicyBuilder {
        PolicyBuilder::new()
    }

    /// A machine for one call, with a generator derived from the policy's seed (drawn only
    /// once the call first needs a random number, so successful calls never touch it).
    pub fn machine(&self) -> PolicyMachine<'_, DefaultRng> {
        PolicyMachine::new(self)
    }

    /// A machine for one call using `rng` for jitter.
    pub fn machine_with_rng<R: Rng>(&self, rng: R) -> PolicyMachine<'_, R> {
        PolicyMachine::with_rng(self, rng)
    }

    /// A machine that continues a call saved with [`PolicyMachine::state`] (for example by a
    /// job queue that deferred it). Start it with [`PolicyMachine::start`].
    pub fn resume(&self, state: &RetryState) -> PolicyMachine<'_, DefaultRng> {
        PolicyMachine::resume(self, state)
    }

    /// The retry settings.
    pub fn retry(&self) -> &Retry {
        &self.inner.retry
    }

    /// The circuit breaker, if any.
    pub fn breaker(&self) -> Option<&Arc<CircuitBreaker>> {
        self.inner.breaker.as_ref()
    }

    /// What the breaker sees.
    pub fn breaker_scope(&self) -> BreakerScope {
        self.inner.breaker_scope
    }

    /// The root seed of per-call generators.
    pub fn seed(&self) -> u64 {
        self.inner.seed
    }

    /// The default operation name of events.
    pub fn operation(&self) -> &str {
        &self.inner.operation
    }

    /// Whether the hook is installed.
    pub fn has_hook(&self) -> bool {
        self.inner.hook.is_some()
    }

    /// Hands `event` to the hook, containing a panic. Drivers call this for every event
    /// they drain.
    pub fn emit(&self, event: &Event<'_>) {
        if let Some(h) = &self.inner.hook {
            dispatch(h.as_ref(), event);
        }
    }

    /// Whether a successful call needs the time at all: true when the policy has a
    /// deadline, an attempt timeout, a breaker, a ratio budget, a strategy that learns from
    /// outcomes, or deadline prediction. When false, drivers may start machines with
    /// [`PolicyMachine::start_untimed`] and read no clock on the success path.
    pub fn needs_clock(&self) -> bool {
        self.inner.needs_clock
    }

    /// Whether the policy needs the precise time: true with a deadline, an attempt timeout,
    /// a strategy that learns from outcomes, deadline prediction, or a breaker or budget
    /// that measures time finer than 100 ms (a bucket, a consecutive window, a recovery
    /// time). When false, what the time is used for is exact enough with a reading up to one
    /// kernel tick (at most 10 ms) old, and drivers date the first attempt of a call nobody
    /// observes with the clock's cheaper [`now_coarse`](crate::Clock::now_coarse). An
    /// admission refused on the coarse reading is asked again with the precise one.
    pub fn needs_precise_clock(&self) -> bool {
        self.inner.precise_clock
    }

    /// The typical attempt time this policy has measured (deadline prediction only).
    pub fn typical_attempt_time(&self) -> core::time::Duration {
        core::time::Duration::from_nanos(self.inner.attempt_nanos.load(Ordering::Relaxed))
    }

    /// Whether two handles share one policy.
    pub fn ptr_eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

/// Either finished retry settings or a builder of them.
#[derive(Clone, Debug)]
pub enum RetrySource {
    /// Validated settings.
    Built(Retry),
    /// A builder, validated by [`PolicyBuilder::build`].
    Builder(RetryBuilder),
}

impl From<Retry> for RetrySource {
    fn from(r: Retry) -> Self {
        Self::Built(r)
    }
}

impl From<RetryBuilder> for RetrySource {
    fn from(b: RetryBuilder) -> Self {
        Self::Builder(b)
    }
}

/// A builder of a [`Policy`].
#[must_use]
pub struct PolicyBuilder {
    retry: RetrySource,
    breaker: Option<Arc<CircuitBreaker>>,
    breaker_scope: BreakerScope,
    hook: Option<Arc<dyn Hook>>,
    seed: Option<u64>,
    operation: Box<str>,
}

impl PolicyBuilder {
    fn new() -> Self {
        Self {
            retry: RetrySource::Builder(Retry::builder()),
            breaker: None,
            breaker_scope: BreakerScope::default(),
            hook: None,
            seed: None,
            operation: "".into(),
        }
    }

    /// The retry settings (a [`Retry`] or a [`RetryBuilder`]).
    pub fn retry(mut self, retry: impl Into<RetrySource>) -> Self {
        self.retry = retry.into();
        self
    }

    /// A circuit breaker (shared by `Arc`; several policies may share one).
    pub fn breaker(mut self, breaker: Arc<CircuitBreaker>) -> Self {
        self.breaker = Some(breaker);
        self
    }

    /// What the breaker sees (default [`BreakerScope::PerAttempt`]).
    pub fn breaker_scope(mut self, scope: BreakerScope) -> Self {
        self.breaker_scope = scope;
        self
    }

    /// The hook that receives every event.
    pub fn hook(mut self, hook: impl Hook + 'static) -> Self {
        self.hook = Some(Arc::new(hook));
        self
    }

    /// The hook, already shared.
    pub fn shared_hook(mut self, hook: Arc<dyn Hook>) -> Self {
        self.hook = Some(hook);
        self
    }

    /// The root seed of per-call generators (random by default). Fix it for reproducible
    /// jitter.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The operation name events carry (empty by default).
    pub fn operation(mut self, name: impl Into<Box<str>>) -> Self {
        self.operation = name.into();
        self
    }

    /// Validates and builds.
    ///
    /// # Errors
    /// A [`ConfigError`] from the retry settings.
    pub fn build(self) -> Result<Policy, ConfigError> {
        let retry = match &self.retry {
            RetrySource::Built(r) => r.clone(),
            RetrySource::Builder(b) => b.clone().build()?,
        };
        Ok(self.assemble(retry))
    }

    fn assemble(self, retry: Retry) -> Policy {
        // A consecutive breaker's closed-state success uses no time (a probe's does, which
        // the machine checks per call); a failure-rate breaker counts it in a time bucket.
        let success_needs_time = self.breaker.as_ref().is_some_and(|b| b.is_failure_rate())
            || retry.feedback
            || retry.predict_deadline;
        // What the retry settings themselves time, to the nanosecond.
        let timed_retry = retry.deadline.is_some()
            || retry.attempt_timeout.is_some()
            || retry.feedback
            || retry.predict_deadline;
        // A coarse clock lags by at most one kernel tick: exact enough for buckets and
        // recovery times at least ten ticks long.
        let fine = |grain: Duration| grain < COARSE_TICK * 10;
        let precise_clock = timed_retry
            || self.breaker.as_ref().is_some_and(|b| fine(b.time_grain()))
            || retry.budget.as_ref().is_some_and(|b| fine(b.time_grain()));
        let needs_clock = timed_retry
            || self.breaker.is_some()
            || retry.budget.as_ref().is_some_and(|b| b.wants_deposits());
        Policy {
            inner: Arc::new(PolicyInner {
                seed: self
                    .seed
                    .unwrap_or_else(|| RandomState::new().hash_one(0x5eed_u64)),
                retry,
                breaker: self.breaker,
                breaker_scope: self.breaker_scope,
                hook: self.hook,
                calls: AtomicU64::new(0),
                attempt_nanos: AtomicU64::new(0),
                needs_clock,
                success_needs_time,
                precise_clock,
                operation: self.operation,
            }),
        }
    }
}
