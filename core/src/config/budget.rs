//! The `[budget]` table: a shared retry budget, rolling or ratio, with per-class costs.
//!
//! ```toml
//! [budget]
//! kind = "ratio"            # or "rolling"
//! ratio = 0.1               # ratio: retries per first attempt (default 0.2)
//! min_per_second = 1.0      # ratio: retries per second always allowed (default 10)
//! window = "10s"            # default 10 s for ratio; required for rolling
//! costs = { rate_limit = 0, transient = 2 }
//! never = ["concurrency"]
//! ```
//!
//! `rolling` takes `max_retries` and `window`. Both kinds take `buckets` (default 10),
//! `costs` (class → cost units a retry withdraws, default 1) and `never` (classes this
//! budget never pays for).

use core::time::Duration;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::duration::serde_duration;
use super::{Missing, Present};
use crate::budget::Budget;
use crate::class::ErrorClass;
use crate::error::ConfigError;

/// How a budget from a file refills.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetKindName {
    /// [`Budget::rolling`].
    Rolling,
    /// [`Budget::ratio`].
    Ratio,
}

impl BudgetKindName {
    fn name(self) -> &'static str {
        match self {
            Self::Rolling => "rolling",
            Self::Ratio => "ratio",
        }
    }
}

/// The `[budget]` table of a policy file. Fields of the other kind must be left out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfigFile {
    /// How the budget refills.
    pub kind: BudgetKindName,
    /// Rolling: cost units allowed per window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// Ratio: retries per first attempt (default 0.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// Ratio: retries per second always allowed (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_per_second: Option<f64>,
    /// The window (ratio: default 10 s; rolling: required).
    #[serde(
        default,
        with = "serde_duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub window: Option<Duration>,
    /// Time buckets the window is kept in (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buckets: Option<u32>,
    /// What one retry of a class withdraws (default 1).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub costs: BTreeMap<ErrorClass, u32>,
    /// Classes this budget never pays for (their retries stop with `BudgetExhausted`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub never: Vec<ErrorClass>,
}

impl BudgetConfigFile {
    /// The window, default filled in (`None` only for a rolling budget without one).
    pub fn window(&self) -> Option<Duration> {
        match self.kind {
            BudgetKindName::Rolling => self.window,
            BudgetKindName::Ratio => Some(self.window.unwrap_or(Duration::from_secs(10))),
        }
    }

    /// What a retry of `class` costs; `None` if the budget never pays for it.
    pub fn cost(&self, class: ErrorClass) -> Option<u32> {
        if self.never.contains(&class) {
            None
        } else {
            Some(self.costs.get(&class).copied().unwrap_or(1))
        }
    }

    /// Cost units one lone call may withdraw in a quiet window: `max_retries` for rolling,
    /// `floor(ratio + min_per_second × window)` for ratio (its own deposit plus the floor).
    pub fn lone_call_capacity(&self) -> u64 {
        match self.kind {
            BudgetKindName::Rolling => u64::from(self.max_retries.unwrap_or(0)),
            BudgetKindName::Ratio => {
                let window = self.window().unwrap_or_default().as_secs_f64();
                let v = self.ratio.unwrap_or(0.2) + self.min_per_second.unwrap_or(10.0) * window;
                v.floor().clamp(0.0, u64::MAX as f64) as u64
            }
        }
    }

    /// Builds the budget. Errors name fields relative to the table.
    ///
    /// # Errors
    /// A [`ConfigError`] for a missing required field, a field of the other kind, a class
    /// both costed and in `never`, or a value the budget rejects.
    pub fn build(&self) -> Result<Budget, ConfigError> {
        let kind = self.kind;
        let misplaced = |field: &'static str, present: bool| {
            if present {
                Err(ConfigError::new(
                    field,
                    Present,
                    format!("does not apply to kind = \"{}\"", kind.name()),
                ))
            } else {
                Ok(())
            }
        };
        let mut builder = match kind {
            BudgetKindName::Rolling => {
                misplaced("ratio", self.ratio.is_some())?;
                misplaced("min_per_second", self.min_per_second.is_some())?;
                let max = self.max_retries.ok_or_else(|| {
                    ConfigError::new(
                        "max_retries",
                        Missing,
                        "is required with kind = \"rolling\"",
                    )
                })?;
                let window = self.window.ok_or_else(|| {
                    ConfigError::new("window", Missing, "is required with kind = \"rolling\"")
                })?;
                Budget::rolling(max, window)
            }
            BudgetKindName::Ratio => {
                misplaced("max_retries", self.max_retries.is_some())?;
                Budget::ratio(
                    self.ratio.unwrap_or(0.2),
                    self.min_per_second.unwrap_or(10.0),
                    self.window().unwrap_or_default(),
                )
            }
        };
        builder = builder.buckets(self.buckets.unwrap_or(10));
        for (class, cost) in &self.costs {
            if self.never.contains(class) {
                return Err(ConfigError::new(
                    format!("costs.{class}"),
                    cost,
                    "the class is also listed in `never`; keep one",
                ));
            }
            builder = builder.cost(*class, *cost);
        }
        for class in &self.never {
            builder = builder.never(*class);
        }
        builder.build()
    }

    /// The same table with every default of its kind filled in (costs of every class).
    pub fn normalized(&self) -> Self {
        let mut n = self.clone();
        n.window = self.window();
        n.buckets = Some(self.buckets.unwrap_or(10));
        if self.kind == BudgetKindName::Ratio {
            n.ratio = Some(self.ratio.unwrap_or(0.2));
            n.min_per_second = Some(self.min_per_second.unwrap_or(10.0));
        }
        n.costs = ErrorClass::ALL
            .into_iter()
            .filter_map(|c| self.cost(c).map(|cost| (c, cost)))
            .collect();
        n
    }
}
