//! The `redress` command: lint policy files before they ship, and watch what a policy does to
//! a dependency through an outage before production finds out.
//!
//! ```text
//! redress doctor policy.toml [--show] [--format json]
//! redress simulate [SCENARIO] [--policy FILE ...] [--svg OUT] [--seed N] [--bench]
//! redress simulate --builtin fleet   # per-instance vs synced vs shared budgets and breakers
//! redress                     # = redress simulate: the embedded outage scenario
//! ```
//!
//! The binary is a thin shell over this library: [`doctor`] and [`sim`] hold the logic, so
//! tests call them directly.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

pub mod doctor;
pub mod sim;

/// Policy files, linted and simulated.
#[derive(Debug, Parser)]
#[command(name = "redress", version, about, long_about = None)]
pub struct Cli {
    /// What to do (default: `simulate` the embedded outage scenario).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a policy file: report findings with a severity and a fix each.
    ///
    /// Exit codes: 0 clean (warnings and notes allowed), 1 errors found, 2 unreadable file or
    /// bad usage.
    Doctor(DoctorArgs),
    /// Simulate a fleet calling a dependency through each policy, side by side.
    Simulate(SimulateArgs),
}

/// Arguments of `redress doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The policy file (`.toml`, or `.json`).
    pub file: PathBuf,
    /// Also print the policy with every default filled in.
    #[arg(long)]
    pub show: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = doctor::OutputFormat::Text)]
    pub format: doctor::OutputFormat,
}

/// Arguments of `redress simulate`.
#[derive(Debug, Default, Args)]
pub struct SimulateArgs {
    /// A scenario file (default: the embedded outage of a rate-limited dependency).
    pub scenario: Option<PathBuf>,
    /// An embedded scenario instead of a file: `default` (the outage of a rate-limited
    /// dependency, three policies) or `fleet` (100 instances through an outage, the same
    /// budget and breaker per instance, synced every second through a store, and shared:
    /// policy scopes `client`, `synced` and `fleet` side by side).
    #[arg(long, value_name = "NAME", conflicts_with = "scenario")]
    pub builtin: Option<String>,
    /// Policy files to compare, instead of the scenario's own.
    #[arg(long = "policy", value_name = "FILE", num_args = 1..)]
    pub policies: Vec<PathBuf>,
    /// Write a chart of the load on the dependency over time to this SVG file.
    #[arg(long, value_name = "OUT")]
    pub svg: Option<PathBuf>,
    /// The seed (default: the scenario's). The same seed gives a byte-identical report.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Override the number of clients.
    #[arg(long)]
    pub clients: Option<u32>,
    /// Override how long calls arrive (for example `1h`).
    #[arg(long, value_parser = parse_duration_arg)]
    pub duration: Option<Duration>,
    /// Print how many logical calls per second of wall time the simulator ran.
    #[arg(long)]
    pub bench: bool,
}

fn parse_duration_arg(s: &str) -> Result<Duration, String> {
    redress::config::parse_duration(s)
}

/// Runs the command line; returns the process exit code.
pub fn run(cli: Cli, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    match cli.command {
        Some(Command::Doctor(a)) => doctor::run(&a.file, a.show, a.format, out, err),
        Some(Command::Simulate(a)) => simulate(&a, out, err),
        None => simulate(&SimulateArgs::default(), out, err),
    }
}

/// Runs `redress simulate`; returns the exit code (2 for unreadable input).
pub fn simulate(args: &SimulateArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let loaded = match &args.builtin {
        Some(name) => sim::load_builtin(name, &args.policies),
        None => sim::load(args.scenario.as_deref(), &args.policies),
    };
    let (mut scenario, policies) = match loaded {
        Ok(v) => v,
        Err(e) => {
            let _ = writeln!(err, "redress simulate: {e}");
            return 2;
        }
    };
    if let Some(c) = args.clients {
        scenario.clients = c;
    }
    if let Some(d) = args.duration {
        scenario.duration = d;
    }
    if let Err(e) = scenario.validate() {
        let _ = writeln!(err, "redress simulate: {e}");
        return 2;
    }

    // A progress bar on a terminal for runs long enough to wait for.
    let expected_calls =
        scenario.load.rate * f64::from(scenario.clients) * scenario.duration.as_secs_f64();
    let secs = scenario.duration.as_secs();
    let bar = if std::io::stdout().is_terminal() && expected_calls * policies.len() as f64 > 2e6 {
        let bar = indicatif::ProgressBar::new(secs.max(1) * policies.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} simulated s  {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let names: Vec<String> = policies.iter().map(|p| p.name.clone()).collect();
    let mut progress = |i: usize, s: u64| {
        bar.set_message(names[i].clone());
        bar.set_position(i as u64 * secs + s.min(secs));
    };
    let outcome = match sim::simulate(
        &scenario,
        &policies,
        sim::Options {
            seed: args.seed,
            progress: &mut progress,
        },
    ) {
        Ok(o) => o,
        Err(e) => {
            bar.finish_and_clear();
            let _ = writeln!(err, "redress simulate: {e}");
            return 2;
        }
    };
    bar.finish_and_clear();

    let _ = write!(out, "{}", outcome.report.render());
    if let Some(path) = &args.svg {
        let written = sim::svg::render(&outcome.report)
            .and_then(|svg| std::fs::write(path, svg).map_err(|e| e.to_string()));
        match written {
            Ok(()) => {
                let _ = writeln!(out, "\nchart: {}", path.display());
            }
            Err(e) => {
                let _ = writeln!(err, "redress simulate: {}: {e}", path.display());
                return 2;
            }
        }
    }
    if args.bench {
        let _ = writeln!(out, "\nbench:");
        let mut total_calls = 0u64;
        let mut total_wall = Duration::ZERO;
        for (p, wall) in outcome.report.policies.iter().zip(&outcome.wall) {
            total_calls += p.calls;
            total_wall += *wall;
            let _ = writeln!(
                out,
                "  {:<32} {:>10} calls in {:>8.3}s = {:>12.0} calls/s",
                p.name,
                p.calls,
                wall.as_secs_f64(),
                p.calls as f64 / wall.as_secs_f64().max(1e-9)
            );
        }
        let _ = writeln!(
            out,
            "  {:<32} {:>10} calls in {:>8.3}s = {:>12.0} calls/s",
            "all",
            total_calls,
            total_wall.as_secs_f64(),
            total_calls as f64 / total_wall.as_secs_f64().max(1e-9)
        );
    }
    0
}
