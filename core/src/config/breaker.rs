//! The `[breaker]` table: a circuit breaker in either trip mode.
//!
//! ```toml
//! [breaker]
//! mode = "failure_rate"     # or "consecutive"
//! ratio = 0.5               # failure_rate: share of failures that opens it
//! min_throughput = 20       # failure_rate: calls needed in the window first
//! window = "10s"
//! recovery = "15s"
//! ```
//!
//! `consecutive` takes `threshold`, `window` and optional `class_thresholds`;
//! `failure_rate` takes `ratio`, `min_throughput`, `window` and optional `buckets`. Both take
//! `recovery` (default 30 s), `probes` (default 1), `trip_on` (default transient,
//! server_error, rate_limit, unknown) and `scope` (`per_attempt`, the default, or
//! `per_call`).

use core::time::Duration;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::duration::serde_duration;
use super::{Missing, Present};
use crate::breaker::{BreakerBuilder, CircuitBreaker, DEFAULT_TRIP_ON};
use crate::class::{ClassSet, ErrorClass};
use crate::error::ConfigError;
use crate::policy::BreakerScope;

/// How a breaker from a file trips.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerMode {
    /// [`CircuitBreaker::consecutive`].
    Consecutive,
    /// [`CircuitBreaker::failure_rate`].
    FailureRate,
}

impl BreakerMode {
    fn name(self) -> &'static str {
        match self {
            Self::Consecutive => "consecutive",
            Self::FailureRate => "failure_rate",
        }
    }
}

/// The `[breaker]` table of a policy file. Fields of the other mode must be left out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerConfigFile {
    /// How the breaker trips.
    pub mode: BreakerMode,
    /// Consecutive: failures in a row that open it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<u32>,
    /// Consecutive: lower thresholds for single classes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub class_thresholds: BTreeMap<ErrorClass, u32>,
    /// Failure rate: the failure share that opens it, in `(0, 1]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// Failure rate: calls that must be seen in the window before the ratio counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_throughput: Option<u32>,
    /// Failure rate: time buckets the window is kept in (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buckets: Option<u32>,
    /// The span failures are counted over (both modes; required).
    #[serde(
        default,
        with = "serde_duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub window: Option<Duration>,
    /// How long it stays open before admitting probes (default 30 s).
    #[serde(
        default,
        with = "serde_duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub recovery: Option<Duration>,
    /// Probes admitted while half-open (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probes: Option<u32>,
    /// The failure classes that count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trip_on: Option<Vec<ErrorClass>>,
    /// What the breaker sees (default `per_attempt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<BreakerScope>,
}

impl BreakerConfigFile {
    /// The recovery time, default filled in.
    pub fn recovery(&self) -> Duration {
        self.recovery.unwrap_or(Duration::from_secs(30))
    }

    /// The classes that trip it, defaults and class thresholds included.
    pub fn trip_on(&self) -> ClassSet {
        let base = self
            .trip_on
            .as_ref()
            .map_or(DEFAULT_TRIP_ON, |v| v.iter().copied().collect());
        self.class_thresholds.keys().fold(base, |s, c| s.with(*c))
    }

    /// The scope, default filled in.
    pub fn scope(&self) -> BreakerScope {
        self.scope.unwrap_or_default()
    }

    /// Builds the breaker. Errors name fields relative to the table (`window`,
    /// `class_thresholds.rate_limit`, …).
    ///
    /// # Errors
    /// A [`ConfigError`] for a missing required field, a field of the other mode, or a value
    /// the breaker rejects.
    pub fn build(&self) -> Result<CircuitBreaker, ConfigError> {
        self.builder()?.build()
    }

    fn builder(&self) -> Result<BreakerBuilder, ConfigError> {
        let mode = self.mode;
        let misplaced = |field: &'static str, present: bool| {
            if present {
                Err(ConfigError::new(
                    field,
                    Present,
                    format!("does not apply to mode = \"{}\"", mode.name()),
                ))
            } else {
                Ok(())
            }
        };
        let window = self.window.ok_or_else(|| missing("window", mode))?;
        let builder = match mode {
            BreakerMode::Consecutive => {
                misplaced("ratio", self.ratio.is_some())?;
                misplaced("min_throughput", self.min_throughput.is_some())?;
                misplaced("buckets", self.buckets.is_some())?;
                let threshold = self.threshold.ok_or_else(|| missing("threshold", mode))?;
                for (class, t) in &self.class_thresholds {
                    if !(1..=10_000).contains(t) {
                        return Err(ConfigError::new(
                            format!("class_thresholds.{class}"),
                            t,
                            "must be between 1 and 10000",
                        ));
                    }
                }
                CircuitBreaker::consecutive(threshold, window)
            }
            BreakerMode::FailureRate => {
                misplaced("threshold", self.threshold.is_some())?;
                misplaced("class_thresholds", !self.class_thresholds.is_empty())?;
                let ratio = self.ratio.ok_or_else(|| missing("ratio", mode))?;
                let min = self
                    .min_throughput
                    .ok_or_else(|| missing("min_throughput", mode))?;
                CircuitBreaker::failure_rate(ratio, min, window).buckets(self.buckets.unwrap_or(10))
            }
        };
        let mut builder = builder
            .recovery(self.recovery())
            .probes(self.probes.unwrap_or(1));
        if let Some(classes) = &self.trip_on {
            builder = builder.trip_on(classes.iter().copied().collect());
        }
        for (class, t) in &self.class_thresholds {
            builder = builder.class_threshold(*class, *t);
        }
        Ok(builder)
    }

    /// The same table with every default of its mode filled in.
    pub fn normalized(&self) -> Self {
        let mut n = self.clone();
        n.recovery = Some(self.recovery());
        n.probes = Some(self.probes.unwrap_or(1));
        n.trip_on = Some(
            self.trip_on
                .clone()
                .unwrap_or_else(|| DEFAULT_TRIP_ON.iter().collect()),
        );
        n.scope = Some(self.scope());
        if self.mode == BreakerMode::FailureRate {
            n.buckets = Some(self.buckets.unwrap_or(10));
        }
        n
    }
}

fn missing(field: &'static str, mode: BreakerMode) -> ConfigError {
    ConfigError::new(
        field,
        Missing,
        format!("is required with mode = \"{}\"", mode.name()),
    )
}
