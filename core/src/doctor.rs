//! The policy doctor: settings that are legal but wrong, found before they ship (feature
//! `serde`).
//!
//! # Why
//! Most policy mistakes build fine and fail quietly: a deadline shorter than the first
//! sleep means the policy never retries at all; retrying `Auth` hammers an identity
//! provider with a password that will not get better; a budget smaller than one call's
//! retries silently turns every call into a single attempt on a quiet service. [`lint`]
//! reads a [`PolicyConfig`] and reports each such case as a [`Finding`] with a severity, a
//! stable code, the key to change and a one-line fix. `redress doctor FILE` prints them.
//!
//! Severities: **error** — the policy does not build, or a setting can never take effect;
//! **warning** — almost certainly not what was meant; **note** — worth knowing.
//!
//! | code | severity | finds |
//! |---|---|---|
//! | `invalid-value` | error | a value the builders reject (the rule it breaks) |
//! | `max-below-base` | error | a strategy's `max` below its `base` |
//! | `deadline-before-first-sleep` | error | a deadline no longer than the first sleep: no retry can run |
//! | `unknown-cap-above-max-attempts` | error | `max_unknown_attempts` above `max_attempts` |
//! | `class-cap-above-max-attempts` | error | a `class_max_attempts` entry above `max_attempts` |
//! | `single-attempt-with-strategies` | warning | `max_attempts = 1` with strategies configured |
//! | `retries-non-retryable-class` | warning | auth, permission or permanent errors are retried |
//! | `rate-limit-ignores-retry-after` | warning | rate_limit retried by a strategy that ignores `Retry-After` |
//! | `attempt-timeout-not-below-deadline` | warning | `attempt_timeout` ≥ `deadline` |
//! | `sleeps-exceed-deadline` | warning | worst-case sleeps use up the deadline before the last attempts |
//! | `breaker-recovery-below-window` | warning | breaker `recovery` shorter than its `window` |
//! | `breaker-trips-on-unretried-class` | warning | the breaker counts a class the policy never retries |
//! | `budget-below-one-call` | warning | the budget cannot pay for one lone call's retries |
//! | `budget-window-below-max-sleep` | warning | the budget window is shorter than the largest sleep |
//! | `no-deadline` | note | no overall deadline |
//! | `unused-class-strategy` | note | a strategy for a class that is never retried |

use core::fmt;
use core::time::Duration;

use serde::Serialize;

use crate::class::ErrorClass;
use crate::config::{BudgetKindName, DurationText, OrNone, PolicyConfig, StrategyConfig};

/// How serious a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The policy does not build, or a setting can never take effect.
    Error,
    /// Almost certainly not what was meant.
    Warning,
    /// Worth knowing.
    Note,
}

impl Severity {
    /// `error`, `warning` or `note`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Note => "note",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One problem in a policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Finding {
    /// How serious it is.
    pub severity: Severity,
    /// A stable kebab-case code (see the [module docs](self) for the list).
    pub code: &'static str,
    /// The dotted path of the key to change (`retry.deadline`).
    pub field: String,
    /// What is wrong, with the numbers.
    pub message: String,
    /// A one-line fix.
    pub fix: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}[{}] {}: {} (fix: {})",
            self.severity, self.code, self.field, self.message, self.fix
        )
    }
}

/// Lints a policy. Findings come errors first, then warnings, then notes, each group in the
/// order of the table in the [module docs](self); an empty list means the doctor found
/// nothing.
pub fn lint(config: &PolicyConfig) -> Vec<Finding> {
    let mut out = Findings(Vec::new());
    let retry = &config.retry;
    let max_attempts = retry.max_attempts();
    let deadline = retry.deadline();
    let retried: Vec<ErrorClass> = ErrorClass::ALL
        .into_iter()
        .filter(|c| retry.retries(*c))
        .collect();
    // With a single attempt nothing is retried: checks of retry timing have nothing to say.
    let strategies = if max_attempts > 1 {
        used_strategies(config, &retried)
    } else {
        Vec::new()
    };

    // --- errors -----------------------------------------------------------------------
    for (path, s) in all_strategies(config) {
        if let Some((base, max)) = s.base_and_max()
            && max < base
        {
            out.push(
                Severity::Error,
                "max-below-base",
                format!("{path}.max"),
                format!(
                    "{} max {} is below its base {}: every delay is cut to max, the growth never happens",
                    s.kind(),
                    DurationText(max),
                    DurationText(base)
                ),
                format!("raise max to at least {} (or lower base)", DurationText(base)),
            );
        }
    }
    if let Some(deadline) = deadline {
        for (path, s, _) in &strategies {
            let (first, _) = s.delay_bounds(1, (Duration::ZERO, Duration::ZERO));
            if first >= deadline {
                out.push(
                    Severity::Error,
                    "deadline-before-first-sleep",
                    "retry.deadline".into(),
                    format!(
                        "deadline {} is not longer than the shortest first sleep of {path} ({}): no retry can ever run",
                        DurationText(deadline),
                        DurationText(first)
                    ),
                    format!(
                        "raise retry.deadline well above {} or shorten the strategy's delays",
                        DurationText(first)
                    ),
                );
            }
        }
    }
    if let Some(OrNone::Value(n)) = retry.max_unknown_attempts
        && n > max_attempts
    {
        out.push(
            Severity::Error,
            "unknown-cap-above-max-attempts",
            "retry.max_unknown_attempts".into(),
            format!("max_unknown_attempts {n} is above max_attempts {max_attempts}, so it can never apply"),
            format!("lower it to at most {max_attempts}, or raise max_attempts"),
        );
    }
    for (class, n) in &retry.class_max_attempts {
        if *n > max_attempts {
            out.push(
                Severity::Error,
                "class-cap-above-max-attempts",
                format!("retry.class_max_attempts.{class}"),
                format!("the cap of {n} attempts for {class} is above max_attempts {max_attempts}, so it can never apply"),
                format!("lower it to at most {max_attempts}, or remove it"),
            );
        }
    }

    // --- warnings ---------------------------------------------------------------------
    let strategies_written = !retry.strategies.is_empty()
        || retry
            .strategy
            .as_ref()
            .is_some_and(|s| !matches!(s, StrategyConfig::None));
    if max_attempts == 1 && strategies_written {
        out.push(
            Severity::Warning,
            "single-attempt-with-strategies",
            "retry.max_attempts".into(),
            "max_attempts is 1, so the configured backoff strategies are never used".into(),
            "raise max_attempts to allow retries, or remove the strategies".into(),
        );
    }
    for class in [
        ErrorClass::Auth,
        ErrorClass::Permission,
        ErrorClass::Permanent,
    ] {
        if retry.retries(class) {
            out.push(
                Severity::Warning,
                "retries-non-retryable-class",
                "retry.non_retryable".into(),
                format!("{class} errors are retried: they do not get better by asking again, and retries add load (and lockouts)"),
                format!("add \"{class}\" to retry.non_retryable"),
            );
        }
    }
    if max_attempts > 1
        && retry.retries(ErrorClass::RateLimit)
        && let Some(s) = retry.strategy_for(ErrorClass::RateLimit)
        && !s.honours_retry_after()
    {
        out.push(
            Severity::Warning,
            "rate-limit-ignores-retry-after",
            "retry.strategies.rate_limit".into(),
            format!("rate_limit errors are retried with {} which ignores the server's Retry-After", s.kind()),
            "set [retry.strategies.rate_limit] kind = \"retry_after_or\" (with your backoff as its fallback)".into(),
        );
    }
    if let (Some(timeout), Some(deadline)) = (retry.attempt_timeout, deadline)
        && timeout >= deadline
    {
        out.push(
            Severity::Warning,
            "attempt-timeout-not-below-deadline",
            "retry.attempt_timeout".into(),
            format!(
                "attempt_timeout {} is not below the deadline {}: one slow attempt uses the whole deadline and leaves no time to retry",
                DurationText(timeout),
                DurationText(deadline)
            ),
            format!("lower attempt_timeout well below {}", DurationText(deadline)),
        );
    }
    if let Some(deadline) = deadline {
        for (path, s, cap) in &strategies {
            let attempts = (*cap).min(max_attempts);
            let (first, _) = s.delay_bounds(1, (Duration::ZERO, Duration::ZERO));
            if first >= deadline {
                continue; // reported as deadline-before-first-sleep
            }
            if let Some((last, total)) = unreachable_attempt(s, attempts, deadline) {
                out.push(
                    Severity::Warning,
                    "sleeps-exceed-deadline",
                    (*path).clone(),
                    format!(
                        "in the worst case the sleeps of {path} add up to {} by attempt {last} of {attempts}, past the deadline {}: later attempts never run",
                        DurationText(total),
                        DurationText(deadline)
                    ),
                    format!(
                        "lower max_attempts to {last}, lower the strategy's max, or raise retry.deadline above {}",
                        DurationText(total)
                    ),
                );
            }
        }
    }
    if let Some(b) = &config.breaker
        && let Some(window) = b.window
        && b.recovery() < window
    {
        out.push(
            Severity::Warning,
            "breaker-recovery-below-window",
            "breaker.recovery".into(),
            format!(
                "recovery {} is shorter than the window {}: the breaker probes again before a window of evidence has passed, and flaps through a long outage",
                DurationText(b.recovery()),
                DurationText(window)
            ),
            format!("raise breaker.recovery to at least {}", DurationText(window)),
        );
    }
    if let Some(b) = &config.breaker {
        for class in b.trip_on().iter() {
            if !retry.retries(class) {
                let field = if b.class_thresholds.contains_key(&class) {
                    format!("breaker.class_thresholds.{class}")
                } else {
                    "breaker.trip_on".into()
                };
                out.push(
                    Severity::Warning,
                    "breaker-trips-on-unretried-class",
                    field,
                    format!("{class} failures open the breaker, but the policy never retries them: they blame the request, not the dependency"),
                    format!("remove \"{class}\" from the breaker's trip_on"),
                );
            }
        }
    }
    if let Some(budget) = &config.budget {
        let cost = retried
            .iter()
            .filter_map(|c| budget.cost(*c))
            .max()
            .unwrap_or(0);
        let needed = u64::from(max_attempts.saturating_sub(1)) * u64::from(cost);
        let capacity = budget.lone_call_capacity();
        if capacity < needed {
            let (field, fix) = match budget.kind {
                BudgetKindName::Rolling => (
                    "budget.max_retries",
                    format!("raise budget.max_retries to at least {needed}"),
                ),
                BudgetKindName::Ratio => (
                    "budget.min_per_second",
                    "raise budget.min_per_second so a quiet window still pays for one call's retries".to_owned(),
                ),
            };
            out.push(
                Severity::Warning,
                "budget-below-one-call",
                field.into(),
                format!(
                    "the budget allows {capacity} cost units per window to a lone call, less than the {needed} that one call's {} retries cost",
                    max_attempts.saturating_sub(1)
                ),
                fix,
            );
        }
        let largest = strategies
            .iter()
            .map(|(_, s, _)| s.max_delay())
            .max()
            .unwrap_or(Duration::ZERO);
        if let Some(window) = budget.window()
            && window < largest
        {
            out.push(
                Severity::Warning,
                "budget-window-below-max-sleep",
                "budget.window".into(),
                format!(
                    "the budget window {} is shorter than the largest sleep {}: the budget forgets a retry storm between two of its waves",
                    DurationText(window),
                    DurationText(largest)
                ),
                format!("raise budget.window to at least {}", DurationText(largest)),
            );
        }
    }

    // --- notes ------------------------------------------------------------------------
    if deadline.is_none() {
        out.push(
            Severity::Note,
            "no-deadline",
            "retry.deadline".into(),
            "calls have no overall deadline: a caller may wait through every attempt and sleep"
                .into(),
            "set retry.deadline to what the caller can wait".into(),
        );
    }
    for class in retry.strategies.keys() {
        if !retry.retries(*class) {
            out.push(
                Severity::Note,
                "unused-class-strategy",
                format!("retry.strategies.{class}"),
                format!("{class} is never retried, so its strategy is never used"),
                format!("remove it, or remove \"{class}\" from retry.non_retryable"),
            );
        }
    }

    // A value the builders reject, unless a check above already explained that key.
    if let Err(e) = config.build()
        && !out.0.iter().any(|f| f.field == e.field)
    {
        out.push(
            Severity::Error,
            "invalid-value",
            e.field.to_string(),
            format!("{} = {}: {}", e.field, e.value, e.rule),
            format!("change {} so that it {}", e.field, e.rule),
        );
    }

    let mut findings = out.0;
    findings.sort_by_key(|f| f.severity);
    findings
}

struct Findings(Vec<Finding>);

impl Findings {
    fn push(
        &mut self,
        severity: Severity,
        code: &'static str,
        field: String,
        message: String,
        fix: String,
    ) {
        self.0.push(Finding {
            severity,
            code,
            field,
            message,
            fix,
        });
    }
}

/// Every strategy written in the file, nested fallbacks included, with its path.
fn all_strategies(config: &PolicyConfig) -> Vec<(String, &StrategyConfig)> {
    fn add<'a>(
        out: &mut Vec<(String, &'a StrategyConfig)>,
        mut path: String,
        mut s: &'a StrategyConfig,
    ) {
        loop {
            out.push((path.clone(), s));
            match s.fallback() {
                Some(f) => {
                    path.push_str(".fallback");
                    s = f;
                }
                None => break,
            }
        }
    }
    let mut out = Vec::new();
    if let Some(s) = &config.retry.strategy {
        add(&mut out, "retry.strategy".into(), s);
    }
    for (class, s) in &config.retry.strategies {
        add(&mut out, format!("retry.strategies.{class}"), s);
    }
    out
}

/// The strategies retried classes actually use, with their path and the attempt cap that
/// applies to them (a class cap, else `max_attempts`): the default strategy once if any
/// retried class falls back to it, and each retried class's own.
fn used_strategies(
    config: &PolicyConfig,
    retried: &[ErrorClass],
) -> Vec<(String, StrategyConfig, u32)> {
    let retry = &config.retry;
    let max = retry.max_attempts();
    let mut out = Vec::new();
    let default = retry.default_strategy();
    let default_users: Vec<ErrorClass> = retried
        .iter()
        .copied()
        .filter(|c| !retry.strategies.contains_key(c))
        .collect();
    if !default_users.is_empty() && !matches!(default, StrategyConfig::None) {
        let cap = default_users
            .iter()
            .map(|c| retry.class_max_attempts.get(c).copied().unwrap_or(max))
            .max()
            .unwrap_or(max);
        out.push(("retry.strategy".to_owned(), default, cap));
    }
    for (class, s) in &retry.strategies {
        if retried.contains(class) {
            let cap = retry.class_max_attempts.get(class).copied().unwrap_or(max);
            out.push((format!("retry.strategies.{class}"), s.clone(), cap));
        }
    }
    out
}

/// With worst-case sleeps, the last attempt (of `attempts`) that can still start before
/// `deadline`, and the sleep total that rules out the next, if some attempt is ruled out.
fn unreachable_attempt(
    s: &StrategyConfig,
    attempts: u32,
    deadline: Duration,
) -> Option<(u32, Duration)> {
    let mut prev = (Duration::ZERO, Duration::ZERO);
    let mut total = Duration::ZERO;
    for n in 1..attempts {
        let bounds = s.delay_bounds(n, prev);
        total = total.saturating_add(bounds.1);
        if total >= deadline {
            return Some((n, total));
        }
        prev = bounds;
    }
    None
}
