//! Backoff strategies in a file: `kind` plus the strategy's own parameters.
//!
//! ```toml
//! [retry.strategy]
//! kind = "equal_jitter"
//! base = "100ms"
//! max = "5s"
//!
//! [retry.strategies.rate_limit]
//! kind = "retry_after_or"
//! max_hint = "30s"
//! fallback = { kind = "equal_jitter", base = "1s", max = "30s" }
//! ```
//!
//! Parameters left out take the defaults of the strategy's `Default` impl (`base` 250 ms,
//! `max` 30 s, or 20 s for `token_backoff`; `factor` 2; `max_hint` 60 s; `jitter` 250 ms;
//! adaptive `window` 60 s, `target_success` 0.9, multipliers 1 and 5; a missing `fallback`
//! is `decorrelated_jitter` with its defaults). `constant` needs its `delay`.

use core::fmt;
use core::time::Duration;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize};

use super::duration::serde_duration;
use crate::backoff::{self, Backoff, scale};

const DEFAULT_BASE: Duration = Duration::from_millis(250);
const DEFAULT_MAX: Duration = Duration::from_secs(30);
const DEFAULT_TOKEN_MAX: Duration = Duration::from_secs(20);
const DEFAULT_MAX_HINT: Duration = Duration::from_secs(60);
const DEFAULT_HINT_JITTER: Duration = Duration::from_millis(250);
const DEFAULT_ADAPTIVE_WINDOW: Duration = Duration::from_secs(60);

/// A backoff strategy as written in a policy file, with every parameter filled in.
///
/// Deserializing fills left-out parameters with their defaults (see the [module
/// docs](self)) and rejects parameters that do not belong to the `kind`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StrategyConfig {
    /// No strategy: only valid as the default strategy (`retry.strategy`); classes without
    /// their own then stop with `NoStrategy`.
    None,
    /// [`backoff::decorrelated_jitter`].
    DecorrelatedJitter {
        /// The smallest delay.
        #[serde(with = "serde_duration")]
        base: Duration,
        /// The largest delay.
        #[serde(with = "serde_duration")]
        max: Duration,
    },
    /// [`backoff::equal_jitter`].
    EqualJitter {
        /// The delay of the first retry, doubled per attempt.
        #[serde(with = "serde_duration")]
        base: Duration,
        /// The largest delay.
        #[serde(with = "serde_duration")]
        max: Duration,
    },
    /// [`backoff::full_jitter`].
    FullJitter {
        /// The cap of the first retry, doubled per attempt.
        #[serde(with = "serde_duration")]
        base: Duration,
        /// The largest delay.
        #[serde(with = "serde_duration")]
        max: Duration,
    },
    /// [`backoff::exponential`].
    Exponential {
        /// The first delay.
        #[serde(with = "serde_duration")]
        base: Duration,
        /// The largest delay.
        #[serde(with = "serde_duration")]
        max: Duration,
        /// Growth per attempt.
        factor: f64,
    },
    /// [`backoff::constant`].
    Constant {
        /// The delay.
        #[serde(with = "serde_duration")]
        delay: Duration,
    },
    /// [`backoff::token_backoff`].
    TokenBackoff {
        /// The cap of the first retry, grown by 1.5 per attempt.
        #[serde(with = "serde_duration")]
        base: Duration,
        /// The largest delay.
        #[serde(with = "serde_duration")]
        max: Duration,
    },
    /// [`backoff::retry_after_or`]: the server's hint when there is one.
    RetryAfterOr {
        /// The cap on a hint.
        #[serde(with = "serde_duration")]
        max_hint: Duration,
        /// Random spread added to a hint.
        #[serde(with = "serde_duration")]
        jitter: Duration,
        /// The strategy without a hint.
        fallback: Box<StrategyConfig>,
    },
    /// [`backoff::adaptive()`]: stretches its fallback while failures persist.
    Adaptive {
        /// The span the failure rate is measured over.
        #[serde(with = "serde_duration")]
        window: Duration,
        /// The success share at or above which delays are not stretched.
        target_success: f64,
        /// The smallest multiplier.
        min_multiplier: f64,
        /// The largest multiplier.
        max_multiplier: f64,
        /// The strategy whose delays are stretched.
        fallback: Box<StrategyConfig>,
    },
}

impl Default for StrategyConfig {
    /// `decorrelated_jitter(250ms, 30s)`, the default strategy of a `Retry`.
    fn default() -> Self {
        Self::DecorrelatedJitter {
            base: DEFAULT_BASE,
            max: DEFAULT_MAX,
        }
    }
}

impl StrategyConfig {
    /// The `kind` name as written in files.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::DecorrelatedJitter { .. } => "decorrelated_jitter",
            Self::EqualJitter { .. } => "equal_jitter",
            Self::FullJitter { .. } => "full_jitter",
            Self::Exponential { .. } => "exponential",
            Self::Constant { .. } => "constant",
            Self::TokenBackoff { .. } => "token_backoff",
            Self::RetryAfterOr { .. } => "retry_after_or",
            Self::Adaptive { .. } => "adaptive",
        }
    }

    /// The `(base, max)` pair of strategies that have one.
    pub fn base_and_max(&self) -> Option<(Duration, Duration)> {
        match *self {
            Self::DecorrelatedJitter { base, max }
            | Self::EqualJitter { base, max }
            | Self::FullJitter { base, max }
            | Self::Exponential { base, max, .. }
            | Self::TokenBackoff { base, max } => Some((base, max)),
            _ => None,
        }
    }

    /// The nested fallback, if any.
    pub fn fallback(&self) -> Option<&StrategyConfig> {
        match self {
            Self::RetryAfterOr { fallback, .. } | Self::Adaptive { fallback, .. } => Some(fallback),
            _ => None,
        }
    }

    /// Whether the strategy honours a server's `Retry-After` hint (directly, or through an
    /// adaptive wrapper around one).
    pub fn honours_retry_after(&self) -> bool {
        match self {
            Self::RetryAfterOr { .. } => true,
            Self::Adaptive { fallback, .. } => fallback.honours_retry_after(),
            _ => false,
        }
    }

    /// The strategy as a [`Backoff`]; `None` for [`StrategyConfig::None`] (or a `none`
    /// fallback, which validation rejects).
    pub fn to_backoff(&self) -> Option<Arc<dyn Backoff>> {
        Some(match *self {
            Self::None => return None,
            Self::DecorrelatedJitter { base, max } => {
                Arc::new(backoff::decorrelated_jitter(base, max))
            }
            Self::EqualJitter { base, max } => Arc::new(backoff::equal_jitter(base, max)),
            Self::FullJitter { base, max } => Arc::new(backoff::full_jitter(base, max)),
            Self::Exponential { base, max, factor } => {
                Arc::new(backoff::exponential(base, max).factor(factor))
            }
            Self::Constant { delay } => Arc::new(backoff::constant(delay)),
            Self::TokenBackoff { base, max } => Arc::new(backoff::token_backoff(base, max)),
            Self::RetryAfterOr {
                max_hint,
                jitter,
                ref fallback,
            } => Arc::new(
                backoff::retry_after_or(fallback.to_backoff()?)
                    .max_hint(max_hint)
                    .jitter(jitter),
            ),
            Self::Adaptive {
                window,
                target_success,
                min_multiplier,
                max_multiplier,
                ref fallback,
            } => Arc::new(
                backoff::adaptive(fallback.to_backoff()?)
                    .window(window)
                    .target_success(target_success)
                    .multipliers(min_multiplier, max_multiplier),
            ),
        })
    }

    /// The largest delay the strategy may return ([`Backoff::max_delay`]); zero for `none`.
    pub fn max_delay(&self) -> Duration {
        self.to_backoff().map_or(Duration::ZERO, |b| b.max_delay())
    }

    /// The shortest and the longest delay the strategy can choose after attempt `n` failed,
    /// given the bounds of the previous sleep (decorrelated jitter grows from it), without a
    /// `Retry-After` hint for the shortest and with the largest allowed hint for the longest.
    pub fn delay_bounds(&self, n: u32, prev: (Duration, Duration)) -> (Duration, Duration) {
        let pow = |base: Duration, factor: f64, exp: u32, cap: Duration| -> Duration {
            let secs = base.as_secs_f64() * factor.powi(i32::try_from(exp).unwrap_or(i32::MAX));
            if !secs.is_finite() || secs >= cap.as_secs_f64() {
                cap
            } else {
                Duration::try_from_secs_f64(secs).map_or(cap, |d| d.min(cap))
            }
        };
        match *self {
            Self::None => (Duration::ZERO, Duration::ZERO),
            Self::DecorrelatedJitter { base, max } => {
                let prev_max = if prev.1.is_zero() { base } else { prev.1 };
                (base.min(max), prev_max.saturating_mul(3).min(max))
            }
            Self::EqualJitter { base, max } => {
                let cap = pow(base, 2.0, n, max);
                (cap / 2, cap)
            }
            Self::FullJitter { base, max } => {
                (Duration::ZERO, pow(base, 2.0, n.saturating_sub(1), max))
            }
            Self::Exponential { base, max, factor } => {
                let d = pow(base, factor, n.saturating_sub(1), max);
                (d, d)
            }
            Self::Constant { delay } => (delay, delay),
            Self::TokenBackoff { base, max } => {
                let cap = pow(base, 1.5, n, max);
                (cap / 2, cap)
            }
            Self::RetryAfterOr {
                max_hint,
                jitter,
                ref fallback,
            } => {
                let (lo, hi) = fallback.delay_bounds(n, prev);
                (lo, hi.max(max_hint.saturating_add(jitter)))
            }
            Self::Adaptive {
                min_multiplier,
                max_multiplier,
                ref fallback,
                ..
            } => {
                let (lo, hi) = fallback.delay_bounds(n, prev);
                let cap = self.max_delay();
                (
                    scale(lo, min_multiplier, cap),
                    scale(hi, max_multiplier, cap),
                )
            }
        }
    }
}

impl fmt::Display for StrategyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_backoff() {
            Some(b) => b.describe(f),
            None => f.write_str("none"),
        }
    }
}

/// Every parameter any strategy has, as read; converted to [`StrategyConfig`] by `kind`.
/// Reading into a plain struct first (rather than serde's buffered tagged enums) keeps
/// the file position of every type error.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStrategy {
    kind: Kind,
    #[serde(default, with = "serde_duration::option")]
    base: Option<Duration>,
    #[serde(default, with = "serde_duration::option")]
    max: Option<Duration>,
    #[serde(default)]
    factor: Option<f64>,
    #[serde(default, with = "serde_duration::option")]
    delay: Option<Duration>,
    #[serde(default, with = "serde_duration::option")]
    max_hint: Option<Duration>,
    #[serde(default, with = "serde_duration::option")]
    jitter: Option<Duration>,
    #[serde(default)]
    fallback: Option<Box<StrategyConfig>>,
    #[serde(default, with = "serde_duration::option")]
    window: Option<Duration>,
    #[serde(default)]
    target_success: Option<f64>,
    #[serde(default)]
    min_multiplier: Option<f64>,
    #[serde(default)]
    max_multiplier: Option<f64>,
}

#[derive(Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    None,
    DecorrelatedJitter,
    EqualJitter,
    FullJitter,
    Exponential,
    Constant,
    TokenBackoff,
    RetryAfterOr,
    Adaptive,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::DecorrelatedJitter => "decorrelated_jitter",
            Self::EqualJitter => "equal_jitter",
            Self::FullJitter => "full_jitter",
            Self::Exponential => "exponential",
            Self::Constant => "constant",
            Self::TokenBackoff => "token_backoff",
            Self::RetryAfterOr => "retry_after_or",
            Self::Adaptive => "adaptive",
        }
    }

    fn params(self) -> &'static [&'static str] {
        match self {
            Self::None => &[],
            Self::DecorrelatedJitter
            | Self::EqualJitter
            | Self::FullJitter
            | Self::TokenBackoff => &["base", "max"],
            Self::Exponential => &["base", "max", "factor"],
            Self::Constant => &["delay"],
            Self::RetryAfterOr => &["max_hint", "jitter", "fallback"],
            Self::Adaptive => &[
                "window",
                "target_success",
                "min_multiplier",
                "max_multiplier",
                "fallback",
            ],
        }
    }
}

impl RawStrategy {
    fn present(&self) -> [(&'static str, bool); 11] {
        [
            ("base", self.base.is_some()),
            ("max", self.max.is_some()),
            ("factor", self.factor.is_some()),
            ("delay", self.delay.is_some()),
            ("max_hint", self.max_hint.is_some()),
            ("jitter", self.jitter.is_some()),
            ("fallback", self.fallback.is_some()),
            ("window", self.window.is_some()),
            ("target_success", self.target_success.is_some()),
            ("min_multiplier", self.min_multiplier.is_some()),
            ("max_multiplier", self.max_multiplier.is_some()),
        ]
    }

    fn into_config(self) -> Result<StrategyConfig, String> {
        let kind = self.kind;
        for (name, present) in self.present() {
            if present && !kind.params().contains(&name) {
                let params = kind.params();
                return Err(if params.is_empty() {
                    format!(
                        "`{name}` is not a parameter of kind \"{}\" (it takes none)",
                        kind.name()
                    )
                } else {
                    format!(
                        "`{name}` is not a parameter of kind \"{}\" (its parameters: {})",
                        kind.name(),
                        params.join(", ")
                    )
                });
            }
        }
        let base = self.base.unwrap_or(DEFAULT_BASE);
        let max = self.max.unwrap_or(DEFAULT_MAX);
        let fallback = || self.fallback.clone().unwrap_or_default();
        Ok(match kind {
            Kind::None => StrategyConfig::None,
            Kind::DecorrelatedJitter => StrategyConfig::DecorrelatedJitter { base, max },
            Kind::EqualJitter => StrategyConfig::EqualJitter { base, max },
            Kind::FullJitter => StrategyConfig::FullJitter { base, max },
            Kind::Exponential => StrategyConfig::Exponential {
                base,
                max,
                factor: self.factor.unwrap_or(2.0),
            },
            Kind::Constant => StrategyConfig::Constant {
                delay: self.delay.ok_or_else(|| {
                    "`delay`: kind \"constant\" needs its delay, as in delay = \"1s\"".to_owned()
                })?,
            },
            Kind::TokenBackoff => StrategyConfig::TokenBackoff {
                base,
                max: self.max.unwrap_or(DEFAULT_TOKEN_MAX),
            },
            Kind::RetryAfterOr => StrategyConfig::RetryAfterOr {
                max_hint: self.max_hint.unwrap_or(DEFAULT_MAX_HINT),
                jitter: self.jitter.unwrap_or(DEFAULT_HINT_JITTER),
                fallback: fallback(),
            },
            Kind::Adaptive => StrategyConfig::Adaptive {
                window: self.window.unwrap_or(DEFAULT_ADAPTIVE_WINDOW),
                target_success: self.target_success.unwrap_or(0.9),
                min_multiplier: self.min_multiplier.unwrap_or(1.0),
                max_multiplier: self.max_multiplier.unwrap_or(5.0),
                fallback: fallback(),
            },
        })
    }
}

impl<'de> Deserialize<'de> for StrategyConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        RawStrategy::deserialize(d)?
            .into_config()
            .map_err(serde::de::Error::custom)
    }
}
