//! `redress simulate`: a deterministic discrete-event simulation of a fleet of clients
//! calling one dependency through each policy, on a fake clock.
//!
//! The simulation drives the core's own [`PolicyMachine`](redress::PolicyMachine)s — the
//! same code a driver runs in production — with [`Instant`](redress::Instant)s from a fake
//! clock and seeded generators, so a seed replays byte for byte. A [scenario](scenario)
//! describes the fleet and the dependency; each policy runs against the same arrivals.
//!
//! Who shares a policy instance is the scenario's `policy_scope`, or a policy's own `scope`:
//! `client` (a fleet of processes that share nothing), `fleet` (one instance for all: perfect
//! sharing) or `synced` (one instance per client, exchanging counts with a store every
//! `sync` interval through the core's exchange API, [`redress::fleet`], as `redress-redis`
//! does through Redis).
//!
//! Embedded scenarios, by name ([`SCENARIOS`], `redress simulate --builtin NAME`): `default`
//! (an outage seen through naive retries, a budget and a breaker) and `fleet` (one budget and
//! one breaker policy per client, synced and shared, through an outage).

use std::path::{Path, PathBuf};
use std::time::Duration;

use redress::Policy;
use redress::config::{Format, PolicyConfig};

mod engine;
mod histogram;
mod model;
pub mod report;
pub mod scenario;
pub mod svg;
mod sync;

pub use engine::{RunStats, run};
pub use histogram::Histogram;
pub use report::{Openings, PolicyReport, Report};
pub use scenario::{PolicyScope, Scenario};

/// The embedded default scenario: an outage of a rate-limited dependency, seen through
/// naive retries, retries with a budget, and retries with a budget and a breaker.
pub const DEFAULT_SCENARIO: &str = include_str!("../../scenarios/default.toml");

/// The embedded fleet scenario: 100 instances through an outage, the same budget and
/// breaker per instance, synced through a store, and shared.
pub const FLEET_SCENARIO: &str = include_str!("../../scenarios/fleet.toml");

/// The embedded scenarios, by the name `--builtin` takes.
pub const SCENARIOS: [(&str, &str); 2] = [("default", DEFAULT_SCENARIO), ("fleet", FLEET_SCENARIO)];

/// Policy files the embedded scenarios refer to, by name.
pub const EMBEDDED_POLICIES: [(&str, &str); 5] = [
    ("naive.toml", include_str!("../../scenarios/naive.toml")),
    ("budget.toml", include_str!("../../scenarios/budget.toml")),
    ("breaker.toml", include_str!("../../scenarios/breaker.toml")),
    (
        "fleet-budget.toml",
        include_str!("../../scenarios/fleet-budget.toml"),
    ),
    (
        "fleet-breaker.toml",
        include_str!("../../scenarios/fleet-breaker.toml"),
    ),
];

/// A policy to simulate, with its column title.
#[derive(Clone, Debug)]
pub struct NamedPolicy {
    /// The column title.
    pub name: String,
    /// The policy.
    pub config: PolicyConfig,
    /// Who shares its instances (`None`: the scenario's `policy_scope`).
    pub scope: Option<PolicyScope>,
}

/// Reads the scenario at `path` (the embedded default when `None`) and its policies;
/// `policy_files`, when not empty, replace the scenario's policies (titled by file stem).
///
/// # Errors
/// A located message for an unreadable or invalid scenario or policy file.
pub fn load(
    path: Option<&Path>,
    policy_files: &[PathBuf],
) -> Result<(Scenario, Vec<NamedPolicy>), String> {
    match path {
        None => load_builtin("default", policy_files),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| format!("{}: cannot read: {e}", p.display()))?;
            let scenario = Scenario::parse(&p.display().to_string(), &text)?;
            let base = p.parent().unwrap_or(Path::new(".")).to_path_buf();
            policies_of(scenario, Some(base), policy_files)
        }
    }
}

/// Reads the embedded scenario `name` (one of [`SCENARIOS`]) and its policies, as
/// [`load`] does.
///
/// # Errors
/// A message listing the names for an unknown one.
pub fn load_builtin(
    name: &str,
    policy_files: &[PathBuf],
) -> Result<(Scenario, Vec<NamedPolicy>), String> {
    let text = SCENARIOS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            let names: Vec<&str> = SCENARIOS.iter().map(|(n, _)| *n).collect();
            format!(
                "no embedded scenario `{name}` (there are: {})",
                names.join(", ")
            )
        })?;
    let scenario = Scenario::parse(&format!("<{name} scenario>"), text)?;
    policies_of(scenario, None, policy_files)
}

/// The scenario's policies (from `base`, or embedded when `None`), or `policy_files`.
fn policies_of(
    scenario: Scenario,
    base: Option<PathBuf>,
    policy_files: &[PathBuf],
) -> Result<(Scenario, Vec<NamedPolicy>), String> {
    let mut policies = Vec::new();
    if policy_files.is_empty() {
        for p in &scenario.policies {
            let config = match (&p.file, &p.policy) {
                (_, Some(inline)) => {
                    inline
                        .build()
                        .map_err(|e| format!("policy `{}`: {e}", p.name))?;
                    inline.clone()
                }
                (Some(file), None) => match &base {
                    None => {
                        let text = EMBEDDED_POLICIES
                            .iter()
                            .find(|(n, _)| n == file)
                            .map(|(_, t)| *t)
                            .ok_or_else(|| format!("no embedded policy file `{file}`"))?;
                        load_policy(file, text, Format::Toml)?
                    }
                    Some(dir) => read_policy(&dir.join(file))?,
                },
                (None, None) => return Err(format!("policy `{}` has no file or policy", p.name)),
            };
            policies.push(NamedPolicy {
                name: p.name.clone(),
                config,
                scope: p.scope,
            });
        }
    } else {
        for file in policy_files {
            policies.push(NamedPolicy {
                name: file.file_stem().map_or_else(
                    || file.display().to_string(),
                    |s| s.to_string_lossy().into_owned(),
                ),
                config: read_policy(file)?,
                scope: None,
            });
        }
    }
    if policies.is_empty() {
        return Err(
            "no policies to simulate: add [[policies]] to the scenario or pass --policy FILE"
                .into(),
        );
    }
    Ok((scenario, policies))
}

/// Reads and validates one policy file.
///
/// # Errors
/// The located message of the file's first problem.
pub fn read_policy(path: &Path) -> Result<PolicyConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    load_policy(&path.display().to_string(), &text, Format::from_path(path))
}

fn load_policy(origin: &str, text: &str, format: Format) -> Result<PolicyConfig, String> {
    PolicyConfig::load(origin, text, format)
        .map(|(c, _)| c)
        .map_err(|e| e.to_string())
}

/// How a simulation is run.
pub struct Options<'a> {
    /// The seed (default: the scenario's).
    pub seed: Option<u64>,
    /// Called with (policy index, simulated seconds) now and then.
    pub progress: &'a mut dyn FnMut(usize, u64),
}

/// The report, and the wall time each policy's run took (for `--bench`; never part of the
/// report, which depends on the seed alone).
pub struct Outcome {
    /// The report.
    pub report: Report,
    /// Wall time per policy.
    pub wall: Vec<Duration>,
}

/// Simulates every policy through the scenario.
///
/// # Errors
/// A message when a policy does not build.
pub fn simulate(
    scenario: &Scenario,
    policies: &[NamedPolicy],
    options: Options<'_>,
) -> Result<Outcome, String> {
    let seed = options.seed.unwrap_or(scenario.seed);
    let mut reports = Vec::with_capacity(policies.len());
    let mut wall = Vec::with_capacity(policies.len());
    for (i, p) in policies.iter().enumerate() {
        let scope = p.scope.unwrap_or(scenario.policy_scope);
        let instances = match scope {
            PolicyScope::Client | PolicyScope::Synced => scenario.clients,
            PolicyScope::Fleet => 1,
        };
        let sync = (scope == PolicyScope::Synced).then_some(scenario.sync);
        let built = (0..instances)
            .map(|c| {
                let mut config = p.config.clone();
                // The same jitter streams for every policy: differences are the policy's.
                config.seed = Some(mix(seed, u64::from(c)));
                config.build()
            })
            .collect::<Result<Vec<Policy>, _>>()
            .map_err(|e| format!("policy `{}`: {e}", p.name))?;
        let started = std::time::Instant::now();
        let stats = run(scenario, &built, sync, seed, &mut |s| {
            (options.progress)(i, s)
        });
        wall.push(started.elapsed());
        reports.push(PolicyReport::new(
            &p.name,
            scenario,
            &stats,
            p.config.breaker.is_some(),
            scope,
        ));
    }
    Ok(Outcome {
        report: Report::new(scenario, seed, reports),
        wall,
    })
}

/// Mixes a seed with a stream number (SplitMix64), for independent generators.
pub fn mix(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Serde helper: durations as strings with a unit (`"250ms"`).
pub(crate) mod de_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        redress::config::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}
