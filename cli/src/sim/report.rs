//! The report: each policy's figures side by side, as plain text that depends on the seed
//! alone (same seed, byte-identical report).
//!
//! A report whose columns differ in scope, or that has a `synced` one, adds rows that
//! compare scopes: the scope, the retries per second sent during the outage, and how many
//! instances' breakers opened during it and how far apart.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Duration;

use redress::config::DurationText;

use super::engine::RunStats;
use super::scenario::{Latency, PolicyScope, Scenario};

/// One policy's figures.
#[derive(Clone, Debug)]
pub struct PolicyReport {
    /// The column title.
    pub name: String,
    /// Who shared the policy's instances.
    pub scope: PolicyScope,
    /// Logical calls started.
    pub calls: u64,
    /// Calls that succeeded.
    pub successes: u64,
    /// Attempts sent to the dependency.
    pub attempts: u64,
    /// Attempts per logical call, over the whole run.
    pub amplification: f64,
    /// Attempts per logical call started during the main outage.
    pub outage_amplification: Option<f64>,
    /// Retries (attempts after a call's first) per second during the main outage.
    pub outage_retry_rate: Option<f64>,
    /// How the policy instances' breakers opened during the main outage (`None` without a
    /// breaker or an outage).
    pub outage_openings: Option<Openings>,
    /// Mean attempts per second before the main outage.
    pub before_mean: Option<f64>,
    /// Peak attempts per second (per sample) during the main outage.
    pub outage_peak: Option<f64>,
    /// Mean attempts per second during the main outage.
    pub outage_mean: Option<f64>,
    /// Peak attempts per second in the `after` period following the main outage.
    pub after_peak: Option<f64>,
    /// Mean attempts per second in the `after` period following the main outage.
    pub after_mean: Option<f64>,
    /// Median call latency.
    pub p50: Duration,
    /// 99th percentile call latency.
    pub p99: Duration,
    /// Longest call.
    pub max: Duration,
    /// Mean time a policy instance's breaker was not closed (`None` without a breaker).
    pub breaker_open: Option<Duration>,
    /// Calls stopped by the budget.
    pub budget_denials: u64,
    /// Stop reasons of calls that did not succeed.
    pub stops: Vec<(&'static str, u64)>,
    /// Attempts per second, one value per sample.
    pub load: Vec<f64>,
}

/// How many policy instances' breakers opened during the main outage, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Openings {
    /// Instances whose breaker opened during the outage.
    pub opened: u64,
    /// Policy instances.
    pub instances: u64,
    /// When the first opened, from the outage's start (`None` if none did).
    pub first: Option<Duration>,
    /// When the last of them opened, from the outage's start.
    pub last: Option<Duration>,
}

impl PolicyReport {
    /// Figures of one run of a policy whose instances were shared as `scope`.
    pub fn new(
        name: &str,
        scenario: &Scenario,
        s: &RunStats,
        has_breaker: bool,
        scope: PolicyScope,
    ) -> Self {
        let per_sec = scenario.sample.as_secs_f64();
        let load: Vec<f64> = s.series.iter().map(|&n| n as f64 / per_sec).collect();
        let idx = |d: Duration| (d.as_nanos() / scenario.sample.as_nanos().max(1)) as usize;
        let window = |from: usize, to: usize| -> Option<(f64, f64)> {
            let to = to.min(load.len());
            if from >= to {
                return None;
            }
            let part = &load[from..to];
            let peak = part.iter().copied().fold(0.0, f64::max);
            Some((peak, part.iter().sum::<f64>() / part.len() as f64))
        };
        let outage = scenario.main_outage();
        let during = outage.and_then(|o| window(idx(o.start), idx(o.end)));
        let after =
            outage.and_then(|o| window(idx(o.end), idx(o.end.saturating_add(scenario.after))));
        let before = outage.and_then(|o| window(0, idx(o.start)));
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let since_start = |t: &Duration| outage.map_or(*t, |o| t.saturating_sub(o.start));
        Self {
            name: name.to_owned(),
            scope,
            calls: s.calls,
            successes: s.successes,
            attempts: s.attempts,
            amplification: ratio(s.attempts, s.calls),
            outage_amplification: outage.map(|_| ratio(s.outage_attempts, s.outage_calls)),
            outage_retry_rate: outage
                .map(|o| s.outage_retries as f64 / (o.end - o.start).as_secs_f64().max(1e-9)),
            outage_openings: (has_breaker && outage.is_some()).then(|| Openings {
                opened: s.outage_openings.len() as u64,
                instances: s.instances,
                first: s.outage_openings.first().map(since_start),
                last: s.outage_openings.last().map(since_start),
            }),
            before_mean: before.map(|w| w.1),
            outage_peak: during.map(|w| w.0),
            outage_mean: during.map(|w| w.1),
            after_peak: after.map(|w| w.0),
            after_mean: after.map(|w| w.1),
            p50: Duration::from_micros(s.latency.quantile(0.5)),
            p99: Duration::from_micros(s.latency.quantile(0.99)),
            max: Duration::from_micros(s.latency.max()),
            breaker_open: has_breaker
                .then(|| s.breaker_open / u32::try_from(s.instances.max(1)).unwrap_or(u32::MAX)),
            budget_denials: s.budget_denials,
            stops: s.stops.iter().map(|(k, v)| (*k, *v)).collect(),
            load,
        }
    }
}

/// The whole report.
#[derive(Clone, Debug)]
pub struct Report {
    /// The scenario's name.
    pub title: String,
    /// What was simulated, in a few lines.
    pub summary: Vec<String>,
    /// The width of one load sample.
    pub sample: Duration,
    /// How long calls arrived.
    pub duration: Duration,
    /// Outage windows.
    pub outages: Vec<(Duration, Duration)>,
    /// How often `synced` instances exchanged.
    pub sync: Duration,
    /// The policies, in order.
    pub policies: Vec<PolicyReport>,
}

impl Report {
    /// A report of `policies` run through `scenario` with `seed`.
    pub fn new(scenario: &Scenario, seed: u64, policies: Vec<PolicyReport>) -> Self {
        let mut summary = Vec::new();
        let sync = format!(
            "each with its own policy instance, synced every {}",
            DurationText(scenario.sync)
        );
        let scope = if policies.iter().any(|p| p.scope != scenario.policy_scope) {
            "policy scope per column"
        } else {
            match scenario.policy_scope {
                PolicyScope::Client => "each with its own policy instance",
                PolicyScope::Fleet => "sharing one policy instance",
                PolicyScope::Synced => &sync,
            }
        };
        let mut load = format!(
            "{} clients ({scope}), {} call{}/s each",
            scenario.clients,
            num(scenario.load.rate),
            if scenario.load.rate == 1.0 { "" } else { "s" }
        );
        for p in &scenario.load.phases {
            let _ = write!(load, ", {}/s from {}", num(p.rate), DurationText(p.at));
        }
        summary.push(format!(
            "{load}, for {}; seed {seed}",
            DurationText(scenario.duration)
        ));
        let d = &scenario.dependency;
        let mut dep = format!("dependency: latency {}", latency(&d.latency));
        if !d.failure.is_empty() {
            let parts: Vec<String> = d
                .failure
                .iter()
                .map(|(c, p)| format!("{c} {}%", num(p * 100.0)))
                .collect();
            let _ = write!(dep, ", fails {}", parts.join(", "));
        }
        if let Some(r) = &d.rate_limit {
            let _ = write!(
                dep,
                ", rate limit {}/s (Retry-After {})",
                num(r.limit),
                DurationText(r.retry_after)
            );
        }
        if let Some(c) = d.capacity {
            let _ = write!(dep, ", capacity {}/s", num(c));
        }
        summary.push(dep);
        for o in &d.outages {
            let what = match &o.failure {
                None => "every attempt fails with server_error".to_owned(),
                Some(f) => f
                    .iter()
                    .map(|(c, p)| format!("{c} {}%", num(p * 100.0)))
                    .collect::<Vec<_>>()
                    .join(", "),
            };
            summary.push(format!(
                "outage {}–{}: {what}",
                DurationText(o.start),
                DurationText(o.end)
            ));
        }
        Self {
            title: if scenario.name.is_empty() {
                "simulation".into()
            } else {
                scenario.name.clone()
            },
            summary,
            sample: scenario.sample,
            duration: scenario.duration,
            outages: d.outages.iter().map(|o| (o.start, o.end)).collect(),
            sync: scenario.sync,
            policies,
        }
    }

    /// Whether the columns differ in scope or one is synced: then the report compares scopes.
    pub fn compares_scopes(&self) -> bool {
        self.policies.iter().any(|p| {
            p.scope == PolicyScope::Synced
                || Some(p.scope) != self.policies.first().map(|f| f.scope)
        })
    }

    /// The report as a text table, policies side by side.
    pub fn render(&self) -> String {
        let mut rows: Vec<(String, Vec<String>)> = Vec::new();
        let mut row = |label: &str, f: &dyn Fn(&PolicyReport) -> String| {
            rows.push((label.to_owned(), self.policies.iter().map(f).collect()));
        };
        let opt = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
        let scopes = self.compares_scopes();
        if scopes {
            row("policy scope", &|p| match p.scope {
                PolicyScope::Synced => format!("synced {}", DurationText(self.sync)),
                other => other.name().to_owned(),
            });
        }
        row("logical calls", &|p| p.calls.to_string());
        row("successes", &|p| {
            format!("{} ({:.1}%)", p.successes, pct(p.successes, p.calls))
        });
        row("attempts sent", &|p| p.attempts.to_string());
        row("amplification (attempts/call)", &|p| {
            format!("{:.2}", p.amplification)
        });
        row("  during the outage", &|p| {
            p.outage_amplification
                .map_or_else(|| "-".into(), |v| format!("{v:.2}"))
        });
        if scopes {
            row("  retries during the outage, /s", &|p| {
                opt(p.outage_retry_rate)
            });
        }
        row("load before outage, mean/s", &|p| opt(p.before_mean));
        row("load during outage, peak/s", &|p| opt(p.outage_peak));
        row("load during outage, mean/s", &|p| opt(p.outage_mean));
        row("load after outage, peak/s", &|p| opt(p.after_peak));
        row("load after outage, mean/s", &|p| opt(p.after_mean));
        row("call latency p50", &|p| short(p.p50));
        row("call latency p99", &|p| short(p.p99));
        row("call latency max", &|p| short(p.max));
        row("breaker open, mean per instance", &|p| {
            p.breaker_open.map_or_else(|| "-".into(), short)
        });
        if scopes {
            row("breakers opened in the outage", &|p| {
                p.outage_openings
                    .map_or_else(|| "-".into(), |o| format!("{}/{}", o.opened, o.instances))
            });
            row("  first, after it began", &|p| {
                p.outage_openings
                    .and_then(|o| o.first)
                    .map_or_else(|| "-".into(), short)
            });
            row("  last minus first", &|p| {
                p.outage_openings
                    .and_then(|o| Some(o.last? - o.first?))
                    .map_or_else(|| "-".into(), short)
            });
        }
        row("budget denials", &|p| p.budget_denials.to_string());
        let reasons: BTreeSet<&str> = self
            .policies
            .iter()
            .flat_map(|p| p.stops.iter().map(|(r, _)| *r))
            .collect();
        for r in reasons {
            rows.push((
                format!("stopped: {r}"),
                self.policies
                    .iter()
                    .map(|p| {
                        p.stops
                            .iter()
                            .find(|(k, _)| *k == r)
                            .map_or(0, |(_, v)| *v)
                            .to_string()
                    })
                    .collect(),
            ));
        }

        let label_w = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0) + 2;
        let widths: Vec<usize> = (0..self.policies.len())
            .map(|i| {
                rows.iter()
                    .map(|r| r.1[i].chars().count())
                    .chain([self.policies[i].name.chars().count()])
                    .max()
                    .unwrap_or(0)
                    + 3
            })
            .collect();
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.title);
        for s in &self.summary {
            let _ = writeln!(out, "  {s}");
        }
        out.push('\n');
        let _ = write!(out, "{:label_w$}", "");
        for (p, w) in self.policies.iter().zip(&widths) {
            let _ = write!(out, "{:>w$}", p.name);
        }
        out.push('\n');
        for (label, values) in &rows {
            let _ = write!(out, "{label:label_w$}");
            for (v, w) in values.iter().zip(&widths) {
                let _ = write!(out, "{v:>w$}");
            }
            out.push('\n');
        }
        out
    }
}

fn pct(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 * 100.0 / b as f64
    }
}

/// A number without trailing zeros (`1`, `0.5`, `1500`).
fn num(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// A duration to about three significant digits.
pub(crate) fn short(d: Duration) -> String {
    let s = d.as_secs_f64();
    if d.is_zero() {
        "0".into()
    } else if s < 1e-3 {
        format!("{:.0}us", s * 1e6)
    } else if s < 1.0 {
        format!("{:.1}ms", s * 1e3)
    } else if s < 600.0 {
        format!("{s:.2}s")
    } else if s < 7200.0 {
        format!("{:.1}m", s / 60.0)
    } else if s < 172_800.0 {
        format!("{:.1}h", s / 3600.0)
    } else {
        format!("{:.1}d", s / 86_400.0)
    }
}

fn latency(l: &Latency) -> String {
    match l {
        Latency::Constant { value } => DurationText(*value).to_string(),
        Latency::Uniform { min, max } => {
            format!("uniform {}–{}", DurationText(*min), DurationText(*max))
        }
        Latency::Exponential { mean } => format!("exponential, mean {}", DurationText(*mean)),
        Latency::Lognormal { median, p99 } => format!(
            "log-normal, median {}, p99 {}",
            DurationText(*median),
            DurationText(*p99)
        ),
    }
}
