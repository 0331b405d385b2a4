//! Policy files: a whole [`Policy`] as TOML (or JSON), reviewable and lintable before it
//! ships (feature `serde`).
//!
//! # Why files
//! Failure handling is policy, and policy is reviewed: a file shows every cap, every
//! backoff and the breaker in one place, diffs cleanly, can be linted
//! ([`doctor`](crate::doctor)) in CI, and can be run against a simulated outage before
//! production runs it against a real one.
//!
//! # The format
//! ```toml
//! operation = "fetch_user"          # names events (optional)
//! seed = 42                         # fixes jitter (optional; random by default)
//!
//! [retry]
//! max_attempts = 4                  # attempts per call, the first included (default 6)
//! max_unknown_attempts = 2          # or "none" (default 2, at most max_attempts)
//! deadline = "10s"                  # or "none" (default 60s)
//! attempt_timeout = "2s"            # (default none)
//! non_retryable = ["auth", "permission", "permanent"]
//! timeout_class = "transient"
//! predict_deadline = false
//! class_max_attempts = { rate_limit = 3 }
//!
//! [retry.strategy]                  # the default strategy; kind = "none" for none
//! kind = "decorrelated_jitter"
//! base = "100ms"
//! max = "5s"
//!
//! [retry.strategies.rate_limit]     # one class's own strategy
//! kind = "retry_after_or"
//! fallback = { kind = "equal_jitter", base = "1s", max = "30s" }
//!
//! [breaker]                         # see config::breaker
//! mode = "failure_rate"
//! ratio = 0.5
//! min_throughput = 20
//! window = "10s"
//! recovery = "15s"
//!
//! [budget]                          # see config::budget
//! kind = "ratio"
//! ratio = 0.1
//! ```
//! Durations are strings with a unit ([`parse_duration`]); classes are snake_case names.
//! Every table rejects unknown keys. Keys left out take the builders' defaults, which
//! [`PolicyConfig::normalized`] fills in for display.
//!
//! # Loading
//! [`PolicyConfig::load`] parses a file and builds the policy in one step; every error
//! — syntax, unknown key, wrong type, invalid value — is a [`LoadError`] with the file,
//! line and column of the offending key and the rule it breaks. Building goes through the
//! same builders as code ([`Retry::builder`], [`CircuitBreaker::consecutive`], …), so a
//! file and the same policy written in code validate and behave identically.
//!
//! ```
//! use redress::config::{Format, PolicyConfig};
//!
//! let text = r#"
//! [retry]
//! max_attempts = 3
//! strategy = { kind = "exponential", base = "100ms", max = "1s" }
//! "#;
//! let (config, policy) = PolicyConfig::load("policy.toml", text, Format::Toml)?;
//! assert_eq!(policy.retry().max_attempts(), 3);
//! assert_eq!(config.retry.max_attempts, Some(3));
//!
//! let bad = "[retry]\nmax_attempts = 0\n";
//! let err = PolicyConfig::load("bad.toml", bad, Format::Toml).unwrap_err();
//! assert_eq!(err.to_string(), "bad.toml:2:1: invalid `retry.max_attempts` = 0: must be at least 1");
//! # Ok::<(), redress::config::LoadError>(())
//! ```

use core::time::Duration;
use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::breaker::CircuitBreaker;
use crate::class::ErrorClass;
use crate::error::ConfigError;
use crate::policy::Policy;
use crate::retry::{DEFAULT_NON_RETRYABLE, Retry, RetryBuilder};

mod breaker;
mod budget;
mod duration;
mod load;
mod locate;
mod or_none;
mod strategy;

pub use breaker::{BreakerConfigFile, BreakerMode};
pub use budget::{BudgetConfigFile, BudgetKindName};
pub use duration::{DurationText, format_duration, parse_duration};
pub use load::{Format, LoadError};
pub use locate::{Location, locate};
pub use or_none::OrNone;
pub use strategy::StrategyConfig;

use duration::serde_duration;

const DEFAULT_MAX_ATTEMPTS: u32 = 6;
const DEFAULT_MAX_UNKNOWN: u32 = 2;
const DEFAULT_DEADLINE: Duration = Duration::from_secs(60);

/// A whole policy as written in a file. Every field is optional; see the [module
/// docs](self) for the format and [`PolicyConfig::normalized`] for the defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PolicyConfig {
    /// The operation name events carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// The root seed of per-call generators (random when left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Retry settings.
    #[serde(default)]
    pub retry: RetryConfig,
    /// A circuit breaker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker: Option<BreakerConfigFile>,
    /// A retry budget (a new one per [`build`](PolicyConfig::build)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetConfigFile>,
}

/// The `[retry]` table: every knob of [`RetryBuilder`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RetryConfig {
    /// Attempts per call, the first included (default 6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Attempts that may end in `Unknown`, or `"none"` (default 2, lowered to
    /// `max_attempts` when that is smaller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unknown_attempts: Option<OrNone<u32>>,
    /// Attempts that may end in one class.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub class_max_attempts: BTreeMap<ErrorClass, u32>,
    /// The overall deadline of a call, or `"none"` (default 60 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<OrNone<Duration>>,
    /// The time limit of one attempt (default none).
    #[serde(
        default,
        with = "serde_duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub attempt_timeout: Option<Duration>,
    /// Classes never retried (default auth, permission, permanent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub non_retryable: Option<Vec<ErrorClass>>,
    /// The class a timed-out attempt counts as (default transient).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_class: Option<ErrorClass>,
    /// Refuse retries that cannot finish before the deadline (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predict_deadline: Option<bool>,
    /// The strategy of classes without their own (default `decorrelated_jitter(250ms, 30s)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<StrategyConfig>,
    /// Strategies of single classes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub strategies: BTreeMap<ErrorClass, StrategyConfig>,
}

impl RetryConfig {
    /// `max_attempts`, default filled in.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS)
    }

    /// `max_unknown_attempts`, default filled in (`None`: no cap).
    pub fn max_unknown_attempts(&self) -> Option<u32> {
        match self.max_unknown_attempts {
            Some(v) => v.value(),
            None => Some(DEFAULT_MAX_UNKNOWN.min(self.max_attempts().max(1))),
        }
    }

    /// The deadline, default filled in (`None`: no deadline).
    pub fn deadline(&self) -> Option<Duration> {
        match self.deadline {
            Some(v) => v.value(),
            None => Some(DEFAULT_DEADLINE),
        }
    }

    /// The non-retryable classes, default filled in.
    pub fn non_retryable(&self) -> Vec<ErrorClass> {
        self.non_retryable
            .clone()
            .unwrap_or_else(|| DEFAULT_NON_RETRYABLE.iter().collect())
    }

    /// Whether `class` is retried at all (not listed as non-retryable).
    pub fn retries(&self, class: ErrorClass) -> bool {
        !self.non_retryable().contains(&class)
    }

    /// The default strategy, default filled in ([`StrategyConfig::None`] when switched off).
    pub fn default_strategy(&self) -> StrategyConfig {
        self.strategy.clone().unwrap_or_default()
    }

    /// The strategy `class` uses: its own, else the default; `None` when neither exists.
    pub fn strategy_for(&self, class: ErrorClass) -> Option<StrategyConfig> {
        match self.strategies.get(&class) {
            Some(s) => Some(s.clone()),
            None => match self.default_strategy() {
                StrategyConfig::None => None,
                s => Some(s),
            },
        }
    }

    /// A [`RetryBuilder`] with these settings (no budget). Errors name the field relative
    /// to the `[retry]` table.
    ///
    /// # Errors
    /// A [`ConfigError`] for `kind = "none"` anywhere but the default strategy.
    pub fn builder(&self) -> Result<RetryBuilder, ConfigError> {
        let mut b = Retry::builder()
            .max_attempts(self.max_attempts())
            .max_unknown_attempts(self.max_unknown_attempts())
            .non_retryable(self.non_retryable().into_iter().collect())
            .timeout_class(self.timeout_class.unwrap_or(ErrorClass::Transient))
            .predict_deadline(self.predict_deadline.unwrap_or(false));
        b = match self.deadline() {
            Some(d) => b.deadline(d),
            None => b.no_deadline(),
        };
        if let Some(d) = self.attempt_timeout {
            b = b.attempt_timeout(d);
        }
        for (class, n) in &self.class_max_attempts {
            b = b.class_max_attempts(*class, *n);
        }
        match &self.strategy {
            None => {}
            Some(StrategyConfig::None) => b = b.no_default_strategy(),
            Some(s) => b = b.strategy(backoff_of(s, "strategy")?),
        }
        for (class, s) in &self.strategies {
            b = b.class_strategy(*class, backoff_of(s, &format!("strategies.{class}"))?);
        }
        Ok(b)
    }

    fn normalized(&self) -> Self {
        Self {
            max_attempts: Some(self.max_attempts()),
            max_unknown_attempts: Some(self.max_unknown_attempts().into()),
            class_max_attempts: self.class_max_attempts.clone(),
            deadline: Some(self.deadline().into()),
            attempt_timeout: self.attempt_timeout,
            non_retryable: Some(self.non_retryable()),
            timeout_class: Some(self.timeout_class.unwrap_or(ErrorClass::Transient)),
            predict_deadline: Some(self.predict_deadline.unwrap_or(false)),
            strategy: Some(self.default_strategy()),
            strategies: self.strategies.clone(),
        }
    }
}

/// A strategy as a shared [`Backoff`](crate::backoff::Backoff); `kind = "none"` is refused
/// here (at `path` or in a nested fallback).
fn backoff_of(
    s: &StrategyConfig,
    path: &str,
) -> Result<Arc<dyn crate::backoff::Backoff>, ConfigError> {
    let mut field = path.to_owned();
    let mut cur = s;
    while let Some(f) = cur.fallback() {
        field.push_str(".fallback");
        if matches!(f, StrategyConfig::None) {
            return Err(ConfigError::new(
                format!("{field}.kind"),
                "none",
                "a fallback must be a strategy",
            ));
        }
        cur = f;
    }
    s.to_backoff().ok_or_else(|| {
        ConfigError::new(
            format!("{path}.kind"),
            "none",
            "\"none\" is only valid for the default strategy (retry.strategy)",
        )
    })
}

impl PolicyConfig {
    /// Builds the policy through the same builders as code. [`ConfigError::field`] is the
    /// dotted path of the offending key in the file (`retry.strategies.rate_limit.max`,
    /// `breaker.window`, …); [`locate`] finds it in the text.
    ///
    /// # Errors
    /// A [`ConfigError`] for any value the builders reject, a missing required key of the
    /// breaker or budget, or a key that does not apply to the chosen mode or kind.
    pub fn build(&self) -> Result<Policy, ConfigError> {
        let mut retry = self.retry.builder().map_err(|e| e.within("retry"))?;
        if let Some(budget) = &self.budget {
            retry = retry.budget(Arc::new(budget.build().map_err(|e| e.within("budget"))?));
        }
        let retry = retry.build().map_err(|e| e.within("retry"))?;
        let mut builder = Policy::builder().retry(retry);
        if let Some(b) = &self.breaker {
            let breaker: CircuitBreaker = b.build().map_err(|e| e.within("breaker"))?;
            builder = builder.breaker(Arc::new(breaker)).breaker_scope(b.scope());
        }
        if let Some(seed) = self.seed {
            builder = builder.seed(seed);
        }
        if let Some(op) = &self.operation {
            builder = builder.operation(op.as_str());
        }
        builder.build()
    }

    /// The same policy with every default filled in, as `redress doctor --show` prints it.
    /// The seed stays unset when it was (a random seed is drawn per build).
    pub fn normalized(&self) -> Self {
        Self {
            operation: Some(self.operation.clone().unwrap_or_default()),
            seed: self.seed,
            retry: self.retry.normalized(),
            breaker: self.breaker.as_ref().map(BreakerConfigFile::normalized),
            budget: self.budget.as_ref().map(BudgetConfigFile::normalized),
        }
    }

    /// Parses a policy from `text` without building it. Errors carry `origin` (a file
    /// name), line and column.
    ///
    /// # Errors
    /// A [`LoadError`] for malformed syntax, an unknown key or a value of the wrong type.
    pub fn parse(origin: &str, text: &str, format: Format) -> Result<Self, LoadError> {
        load::parse(origin, text, format)
    }

    /// Parses and builds, locating validation errors at their key in `text`.
    ///
    /// # Errors
    /// As [`parse`](Self::parse), and a [`LoadError`] carrying the [`ConfigError`] for a value
    /// the builders reject.
    pub fn load(origin: &str, text: &str, format: Format) -> Result<(Self, Policy), LoadError> {
        let config = Self::parse(origin, text, format)?;
        match config.build() {
            Ok(policy) => Ok((config, policy)),
            Err(e) => Err(LoadError::from_config_error(origin, text, format, e)),
        }
    }

    /// The policy as TOML.
    ///
    /// # Errors
    /// Only for values TOML cannot hold (a seed above `i64::MAX`).
    pub fn to_toml(&self) -> Result<String, String> {
        toml::to_string(self).map_err(|e| e.to_string())
    }

    /// The policy as pretty-printed JSON.
    ///
    /// # Errors
    /// Only for values JSON cannot hold (a non-finite ratio).
    pub fn to_json(&self) -> Result<String, String> {
        serde_json::to_string_pretty(self).map_err(|e| e.to_string())
    }
}

/// Shown as the value of a field that is present where it does not belong.
pub(crate) struct Present;

impl core::fmt::Debug for Present {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("(set)")
    }
}

/// Shown as the value of a required field that is missing.
pub(crate) struct Missing;

impl core::fmt::Debug for Missing {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("(missing)")
    }
}
