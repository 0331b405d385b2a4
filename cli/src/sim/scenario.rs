//! Scenario files: a fleet of clients, its offered load, and a dependency that changes over
//! time.
//!
//! ```toml
//! name = "outage of a rate-limited dependency"
//! duration = "10m"              # simulated time during which calls arrive
//! seed = 1
//! clients = 1000
//! policy_scope = "client"       # each client its own policy (breaker, budget); "fleet": one
//!                               # shared by all; "synced": each its own, exchanging counts
//! sync = "1s"                   # "synced" only: how often each instance exchanges (default 1 s)
//! sample = "1s"                 # resolution of the load series
//! after = "1m"                  # how long "after an outage" lasts in the report
//!
//! [load]
//! rate = 1.0                    # calls per second per client
//! arrivals = "poisson"          # or "uniform"
//! phases = [{ at = "8m", rate = 2.0 }]   # rate changes over time
//!
//! [dependency]
//! latency = { kind = "lognormal", median = "20ms", p99 = "150ms" }
//! failure = { transient = 0.01 }         # background failure probability per class
//! capacity = 2500.0                      # attempts per second before it fails them
//! overload_class = "server_error"
//! rate_limit = { limit = 1500.0, retry_after = "2s" }
//!
//! [[dependency.outages]]
//! start = "3m"
//! end = "5m"
//! failure = { server_error = 1.0 }       # replaces the background failures
//! latency = { kind = "constant", value = "5ms" }
//!
//! [[policies]]
//! name = "naive retries"
//! file = "naive.toml"                    # relative to the scenario file
//! [[policies]]
//! name = "inline"
//! policy = { retry = { max_attempts = 2 } }
//! scope = "synced"                       # overrides `policy_scope` for this column
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use redress::ErrorClass;
use redress::config::PolicyConfig;
use serde::Deserialize;

use super::de_duration;

/// A whole scenario.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// A title for the report.
    #[serde(default)]
    pub name: String,
    /// How long calls keep arriving (calls in flight then still finish).
    #[serde(with = "de_duration")]
    pub duration: Duration,
    /// The seed of every random draw (overridden by `--seed`).
    #[serde(default = "one")]
    pub seed: u64,
    /// How many clients call the dependency.
    pub clients: u32,
    /// Whether each client has its own policy instance (breaker, budget), all share one, or
    /// each has its own and they exchange counts every `sync`. A policy's `scope` overrides it.
    #[serde(default)]
    pub policy_scope: PolicyScope,
    /// How often each instance of a `synced` policy exchanges with the fleet's store
    /// (default 1 s; at least 10 ms). The fleet's counts it merges stay valid for three
    /// intervals, as in `redress-redis`.
    #[serde(default = "one_second", with = "de_duration")]
    pub sync: Duration,
    /// The resolution of the load series (default 1 s).
    #[serde(default = "one_second", with = "de_duration")]
    pub sample: Duration,
    /// How long the report's "after the outage" period lasts (default 1 min).
    #[serde(default = "one_minute", with = "de_duration")]
    pub after: Duration,
    /// Offered load.
    pub load: Load,
    /// The dependency.
    pub dependency: Dependency,
    /// The policies to compare.
    #[serde(default)]
    pub policies: Vec<PolicyRef>,
}

fn one() -> u64 {
    1
}
fn one_second() -> Duration {
    Duration::from_secs(1)
}
fn one_minute() -> Duration {
    Duration::from_secs(60)
}

/// Who shares a policy instance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyScope {
    /// Every client builds its own policy: its own breaker and budget (a fleet of processes
    /// that share nothing).
    #[default]
    Client,
    /// One policy instance serves every client (one process with many callers, or perfect
    /// sharing).
    Fleet,
    /// Every client builds its own policy, and every `sync` interval each instance exchanges
    /// its breaker's and budget's counts with an in-simulation store, as `redress-redis`
    /// does through Redis (see [`redress::fleet`]): it pushes its own counts, merges what the
    /// others pushed over the window, publishes its breaker's own transitions and follows
    /// the others'. Instances exchange in turn, spread evenly over the interval.
    Synced,
}

impl PolicyScope {
    /// The name used in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Fleet => "fleet",
            Self::Synced => "synced",
        }
    }
}

/// Offered load: logical calls started per second per client, over time.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Load {
    /// Calls per second per client from the start.
    pub rate: f64,
    /// How calls are spaced.
    #[serde(default)]
    pub arrivals: Arrivals,
    /// Later changes of the rate.
    #[serde(default)]
    pub phases: Vec<LoadPhase>,
}

/// How calls are spaced in time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arrivals {
    /// Independent arrivals (a Poisson process): bursts and lulls, as from many users.
    #[default]
    Poisson,
    /// Evenly spaced arrivals, clients in turn.
    Uniform,
}

/// From `at` on, the rate is `rate`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadPhase {
    /// When the phase starts.
    #[serde(with = "de_duration")]
    pub at: Duration,
    /// Calls per second per client.
    pub rate: f64,
}

/// How the dependency answers.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dependency {
    /// How long an attempt takes.
    pub latency: Latency,
    /// Background failure probability per class.
    #[serde(default)]
    pub failure: BTreeMap<ErrorClass, f64>,
    /// Attempts per second it can serve; attempts beyond fail with `overload_class`.
    #[serde(default)]
    pub capacity: Option<f64>,
    /// The class of overload failures (default server_error).
    #[serde(default = "server_error")]
    pub overload_class: ErrorClass,
    /// A rate limit in front of it.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// Periods when it misbehaves.
    #[serde(default)]
    pub outages: Vec<Outage>,
}

fn server_error() -> ErrorClass {
    ErrorClass::ServerError
}

/// A rate limit: a token bucket of `limit` attempts per second (bursts up to one second's
/// worth); refused attempts fail fast with `rate_limit` and a `Retry-After` hint.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Attempts per second.
    pub limit: f64,
    /// The hint sent with refusals.
    #[serde(with = "de_duration")]
    pub retry_after: Duration,
}

/// A period when the dependency behaves differently.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outage {
    /// When it starts.
    #[serde(with = "de_duration")]
    pub start: Duration,
    /// When it ends.
    #[serde(with = "de_duration")]
    pub end: Duration,
    /// Failure probabilities per class during the outage (default: every attempt fails
    /// with server_error); they replace the background ones.
    #[serde(default)]
    pub failure: Option<BTreeMap<ErrorClass, f64>>,
    /// Latency during the outage (default: the usual).
    #[serde(default)]
    pub latency: Option<Latency>,
    /// Capacity during the outage (default: the usual).
    #[serde(default)]
    pub capacity: Option<f64>,
}

/// A latency distribution.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Latency {
    /// Always `value`.
    Constant {
        /// The latency.
        #[serde(with = "de_duration")]
        value: Duration,
    },
    /// Uniform between `min` and `max`.
    Uniform {
        /// The smallest latency.
        #[serde(with = "de_duration")]
        min: Duration,
        /// The largest latency.
        #[serde(with = "de_duration")]
        max: Duration,
    },
    /// Exponential with mean `mean`.
    Exponential {
        /// The mean.
        #[serde(with = "de_duration")]
        mean: Duration,
    },
    /// Log-normal with the given median and 99th percentile: a long tail.
    Lognormal {
        /// The median.
        #[serde(with = "de_duration")]
        median: Duration,
        /// The 99th percentile.
        #[serde(with = "de_duration")]
        p99: Duration,
    },
}

/// A policy to compare: from a file, or inline.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRef {
    /// The column title.
    pub name: String,
    /// A policy file, relative to the scenario file.
    #[serde(default)]
    pub file: Option<String>,
    /// The policy, inline.
    #[serde(default)]
    pub policy: Option<PolicyConfig>,
    /// Who shares this policy's instances (default: the scenario's `policy_scope`), so one
    /// report can compare the same policy per client, synced and shared.
    #[serde(default)]
    pub scope: Option<PolicyScope>,
}

impl Scenario {
    /// Parses a scenario.
    ///
    /// # Errors
    /// A message with line and column for malformed input, or naming the rule a value
    /// breaks.
    pub fn parse(origin: &str, text: &str) -> Result<Self, String> {
        let s: Self = toml::from_str(text).map_err(|e| {
            let at = e.span().map_or((1, 1), |span| line_col(text, span.start));
            format!("{origin}:{}:{}: {}", at.0, at.1, e.message().trim_end())
        })?;
        s.validate().map_err(|e| format!("{origin}: {e}"))?;
        Ok(s)
    }

    /// Checks the values serde cannot.
    ///
    /// # Errors
    /// A message naming the field and the rule.
    pub fn validate(&self) -> Result<(), String> {
        if self.duration.is_zero() {
            return Err("`duration` must be greater than zero".into());
        }
        if self.clients == 0 {
            return Err("`clients` must be at least 1".into());
        }
        if self.sample < Duration::from_millis(1) {
            return Err("`sample` must be at least 1ms".into());
        }
        if self.sync < Duration::from_millis(10) {
            return Err("`sync` must be at least 10ms".into());
        }
        if self.duration.as_nanos() / self.sample.as_nanos() > 10_000_000 {
            return Err("`sample` is too fine for `duration` (over 10 million samples)".into());
        }
        let rate_ok = |r: f64| r.is_finite() && (0.0..=1e9).contains(&r);
        if !rate_ok(self.load.rate) {
            return Err("`load.rate` must be a number within [0, 1e9]".into());
        }
        for (i, p) in self.load.phases.iter().enumerate() {
            if !rate_ok(p.rate) {
                return Err(format!("`load.phases[{i}].rate` must be within [0, 1e9]"));
            }
        }
        let d = &self.dependency;
        check_failure("dependency.failure", &d.failure)?;
        d.latency.validate("dependency.latency")?;
        if let Some(c) = d.capacity
            && !(c.is_finite() && c > 0.0)
        {
            return Err("`dependency.capacity` must be a positive number".into());
        }
        if let Some(r) = &d.rate_limit
            && !(r.limit.is_finite() && r.limit > 0.0)
        {
            return Err("`dependency.rate_limit.limit` must be a positive number".into());
        }
        for (i, o) in d.outages.iter().enumerate() {
            if o.end <= o.start {
                return Err(format!(
                    "`dependency.outages[{i}].end` must be after its start"
                ));
            }
            if let Some(f) = &o.failure {
                check_failure(&format!("dependency.outages[{i}].failure"), f)?;
            }
            if let Some(l) = &o.latency {
                l.validate(&format!("dependency.outages[{i}].latency"))?;
            }
            if let Some(c) = o.capacity
                && !(c.is_finite() && c >= 0.0)
            {
                return Err(format!(
                    "`dependency.outages[{i}].capacity` must be a non-negative number"
                ));
            }
        }
        for (i, p) in self.policies.iter().enumerate() {
            if p.file.is_some() == p.policy.is_some() {
                return Err(format!(
                    "`policies[{i}]` ({}) needs exactly one of `file` and `policy`",
                    p.name
                ));
            }
        }
        Ok(())
    }

    /// The first outage, which the report's during/after figures describe.
    pub fn main_outage(&self) -> Option<&Outage> {
        self.dependency.outages.iter().min_by_key(|o| o.start)
    }
}

fn check_failure(field: &str, f: &BTreeMap<ErrorClass, f64>) -> Result<(), String> {
    let mut sum = 0.0;
    for (class, p) in f {
        if !(p.is_finite() && (0.0..=1.0).contains(p)) {
            return Err(format!(
                "`{field}.{class}` must be a probability within [0, 1]"
            ));
        }
        sum += p;
    }
    if sum > 1.0 + 1e-9 {
        return Err(format!(
            "the probabilities of `{field}` add up to more than 1"
        ));
    }
    Ok(())
}

impl Latency {
    fn validate(&self, field: &str) -> Result<(), String> {
        match self {
            Self::Uniform { min, max } if max < min => {
                Err(format!("`{field}.max` must be at least `min`"))
            }
            Self::Lognormal { median, p99 } if median.is_zero() || p99 < median => Err(format!(
                "`{field}`: `median` must be positive and `p99` at least the median"
            )),
            _ => Ok(()),
        }
    }
}

/// 1-based line and column of byte `offset`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let l = redress::config::Location::of_offset(text, offset);
    (l.line, l.column)
}
