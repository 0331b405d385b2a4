//! `redress doctor FILE`: load a policy file, report what is wrong with it, and how to fix it.
//!
//! Exit codes: 0 when nothing worse than warnings and notes was found, 1 when errors were
//! found, 2 for a file that cannot be read or parsed as a policy (or bad usage).

use std::io::Write;
use std::path::Path;

use redress::config::{Format, LoadError, Location, PolicyConfig, locate};
use redress::doctor::{Finding, Severity, lint};
use serde::Serialize;

/// How the doctor prints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// One line per finding, `file:line:column: severity[code] field: message`, then its fix.
    #[default]
    Text,
    /// One JSON document.
    Json,
}

/// A finding with its place in the file.
#[derive(Clone, Debug, Serialize)]
pub struct Located {
    /// The finding.
    #[serde(flatten)]
    pub finding: Finding,
    /// The line of the key (or of its nearest written parent table; 1 if none is written).
    pub line: usize,
    /// The column of that key.
    pub column: usize,
}

/// What the doctor found in one file.
#[derive(Clone, Debug)]
pub struct Diagnosis {
    /// The findings, located.
    pub findings: Vec<Located>,
    /// The policy with every default filled in.
    pub normalized: PolicyConfig,
}

impl Diagnosis {
    /// How many findings have `severity`.
    pub fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.finding.severity == severity)
            .count()
    }
}

/// Parses `text` and lints it.
///
/// # Errors
/// A [`LoadError`] when the text is not a policy file (syntax, unknown key, wrong type).
/// Invalid values are findings, not errors.
pub fn diagnose(origin: &str, text: &str, format: Format) -> Result<Diagnosis, LoadError> {
    let config = PolicyConfig::parse(origin, text, format)?;
    let findings = lint(&config)
        .into_iter()
        .map(|finding| {
            let at =
                locate(text, format, &finding.field).unwrap_or(Location { line: 1, column: 1 });
            Located {
                finding,
                line: at.line,
                column: at.column,
            }
        })
        .collect();
    Ok(Diagnosis {
        findings,
        normalized: config.normalized(),
    })
}

/// Runs the command; returns the exit code.
pub fn run(
    path: &Path,
    show: bool,
    format: OutputFormat,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let origin = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            let message = format!("cannot read: {e}");
            report_unreadable(&origin, None, &message, format, out, err);
            return 2;
        }
    };
    let diagnosis = match diagnose(&origin, &text, Format::from_path(path)) {
        Ok(d) => d,
        Err(e) => {
            report_unreadable(&origin, Some(e.location), &e.message, format, out, err);
            return 2;
        }
    };
    let errors = diagnosis.count(Severity::Error);
    let result = match format {
        OutputFormat::Text => write_text(&origin, &diagnosis, show, out),
        OutputFormat::Json => write_json(&origin, &diagnosis, show, out),
    };
    if let Err(e) = result {
        let _ = writeln!(err, "redress doctor: cannot write the report: {e}");
        return 2;
    }
    u8::from(errors > 0)
}

fn report_unreadable(
    origin: &str,
    at: Option<Location>,
    message: &str,
    format: OutputFormat,
    out: &mut dyn Write,
    err: &mut dyn Write,
) {
    match format {
        OutputFormat::Text => {
            let _ = match at {
                Some(l) => writeln!(err, "{origin}:{}:{}: error: {message}", l.line, l.column),
                None => writeln!(err, "{origin}: error: {message}"),
            };
        }
        OutputFormat::Json => {
            let doc = serde_json::json!({
                "file": origin,
                "error": {
                    "line": at.map(|l| l.line),
                    "column": at.map(|l| l.column),
                    "message": message,
                },
            });
            let _ = writeln!(out, "{doc:#}");
        }
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn write_text(origin: &str, d: &Diagnosis, show: bool, out: &mut dyn Write) -> std::io::Result<()> {
    for l in &d.findings {
        let f = &l.finding;
        writeln!(
            out,
            "{origin}:{}:{}: {}[{}] {}: {}",
            l.line, l.column, f.severity, f.code, f.field, f.message
        )?;
        writeln!(out, "    fix: {}", f.fix)?;
    }
    if d.findings.is_empty() {
        writeln!(out, "{origin}: no findings")?;
    } else {
        writeln!(
            out,
            "{origin}: {}, {}, {}",
            plural(d.count(Severity::Error), "error"),
            plural(d.count(Severity::Warning), "warning"),
            plural(d.count(Severity::Note), "note")
        )?;
    }
    if show {
        let toml = d
            .normalized
            .to_toml()
            .unwrap_or_else(|e| format!("# cannot print: {e}\n"));
        writeln!(
            out,
            "\n# {origin}, normalized: every default filled in\n{toml}"
        )?;
    }
    Ok(())
}

/// The `--format json` document.
#[derive(Serialize)]
struct JsonReport<'a> {
    file: &'a str,
    errors: usize,
    warnings: usize,
    notes: usize,
    findings: &'a [Located],
    #[serde(skip_serializing_if = "Option::is_none")]
    normalized: Option<&'a PolicyConfig>,
}

fn write_json(origin: &str, d: &Diagnosis, show: bool, out: &mut dyn Write) -> std::io::Result<()> {
    let doc = JsonReport {
        file: origin,
        errors: d.count(Severity::Error),
        warnings: d.count(Severity::Warning),
        notes: d.count(Severity::Note),
        findings: &d.findings,
        normalized: show.then_some(&d.normalized),
    };
    let text = serde_json::to_string_pretty(&doc).map_err(std::io::Error::other)?;
    writeln!(out, "{text}")
}
