//! What the command-line tests share.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use redress_cli::sim::{self, NamedPolicy, PolicyReport, Report, Scenario};

/// Runs the `redress` binary with `args`: its exit code, stdout and stderr.
pub(crate) fn redress(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_redress"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Simulates `scenario` with `policies` (seed: the scenario's unless given) and returns the
/// report.
#[allow(dead_code)] // not every test file simulates
pub(crate) fn run(scenario: &Scenario, policies: &[NamedPolicy], seed: Option<u64>) -> Report {
    sim::simulate(
        scenario,
        policies,
        sim::Options {
            seed,
            progress: &mut |_, _| {},
        },
    )
    .unwrap()
    .report
}

/// The column of the policy titled `name`.
#[allow(dead_code)] // not every test file simulates
pub(crate) fn by_name<'a>(r: &'a Report, name: &str) -> &'a PolicyReport {
    r.policies.iter().find(|p| p.name == name).unwrap()
}
