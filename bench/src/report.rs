//! Markdown tables from criterion's saved estimates.
//!
//! Criterion writes, for every benchmark, `<dir>/…/new/benchmark.json` (its group and
//! function names) and `new/estimates.json` (the statistics, in nanoseconds per iteration).
//! [`load`] reads them all; [`render`] prints one table per group with:
//!
//! - **ns/op**: the median of the samples' time per iteration (robust against the odd slow
//!   sample on a shared 2-core machine);
//! - **Mops/s**: its inverse (for the multi-threaded groups, the aggregate throughput);
//! - **× baseline** and **+ns**: relative to the group's first baseline;
//! - **× best peer**: relative to the fastest peer in the group (below 1: faster than it).
//!
//! Rows are told apart by the function name: `baseline…`, `redress…`, `ref…` (a reference
//! point that is not a competitor), anything else is a peer.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One benchmark's result.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Criterion's group name, such as `A sync success`.
    pub group: String,
    /// The benchmark's name within the group, such as `redress: (a) retry only`.
    pub function: String,
    /// Median time per iteration, in nanoseconds.
    pub ns: f64,
}

/// What a row is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A direct call or a hand-written loop.
    Baseline,
    /// One of redress's configurations.
    Redress,
    /// A peer library.
    Peer,
    /// A reference point that is not a competitor in this group (a bare breaker call next
    /// to full retry stacks): shown, but not counted as the best peer.
    Reference,
}

impl Kind {
    /// The kind of a row, from its function name.
    pub fn of(function: &str) -> Self {
        if function.starts_with("baseline") {
            Self::Baseline
        } else if function.starts_with("redress") {
            Self::Redress
        } else if function.starts_with("ref") {
            Self::Reference
        } else {
            Self::Peer
        }
    }
}

/// Reads every benchmark under `dir` (criterion's output directory, usually
/// `target/criterion`). Benchmarks without both files are skipped.
///
/// # Errors
/// An I/O error if `dir` cannot be read.
pub fn load(dir: &Path) -> std::io::Result<Vec<Entry>> {
    let mut found = Vec::new();
    collect(dir, &mut found)?;
    let mut entries: Vec<Entry> = found.iter().filter_map(|d| read_entry(d)).collect();
    entries.sort_by(|a, b| {
        (&a.group, Kind::of(&a.function), &a.function).cmp(&(
            &b.group,
            Kind::of(&b.function),
            &b.function,
        ))
    });
    Ok(entries)
}

/// Every `new` directory below `dir`.
fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let path = e?.path();
        if !path.is_dir() {
            continue;
        }
        if path.file_name().is_some_and(|n| n == "new") {
            out.push(path);
        } else if path.file_name().is_some_and(|n| n != "report") {
            collect(&path, out)?;
        }
    }
    Ok(())
}

fn read_json(path: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

fn read_entry(new_dir: &Path) -> Option<Entry> {
    let meta = read_json(&new_dir.join("benchmark.json"))?;
    let est = read_json(&new_dir.join("estimates.json"))?;
    let group = meta.get("group_id")?.as_str()?.to_owned();
    let mut function = meta
        .get("function_id")
        .and_then(|f| f.as_str())
        .unwrap_or_default()
        .to_owned();
    if let Some(v) = meta.get("value_str").and_then(|v| v.as_str()) {
        function = format!("{function}/{v}");
    }
    let ns = est.get("median")?.get("point_estimate")?.as_f64()?;
    Some(Entry {
        group,
        function,
        ns,
    })
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 100_000.0 {
        format!("{:.1} µs", ns / 1000.0)
    } else if ns >= 100.0 {
        format!("{ns:.0}")
    } else {
        format!("{ns:.2}")
    }
}

fn fmt_ratio(r: f64) -> String {
    if r >= 100.0 {
        format!("{r:.0}×")
    } else {
        format!("{r:.2}×")
    }
}

/// One markdown table per group, in group order, with a heading each.
pub fn render(entries: &[Entry]) -> String {
    let mut groups: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
    for e in entries {
        groups.entry(&e.group).or_default().push(e);
    }
    let mut out = String::new();
    for (group, rows) in groups {
        let baseline = rows
            .iter()
            .find(|e| Kind::of(&e.function) == Kind::Baseline)
            .map(|e| e.ns);
        let best_peer = rows
            .iter()
            .filter(|e| Kind::of(&e.function) == Kind::Peer)
            .map(|e| e.ns)
            .reduce(f64::min);
        let _ = writeln!(out, "### {group}\n");
        let _ = writeln!(
            out,
            "| benchmark | ns/op | Mops/s | × baseline | +ns vs baseline | × best peer |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
        for e in rows {
            let vs_base = baseline.map_or("".into(), |b| fmt_ratio(e.ns / b));
            let over = baseline.map_or("".into(), |b| format!("{:+.1}", e.ns - b));
            let vs_peer = best_peer.map_or("".into(), |p| fmt_ratio(e.ns / p));
            let name = match Kind::of(&e.function) {
                Kind::Redress => format!("**{}**", e.function),
                _ => e.function.clone(),
            };
            let _ = writeln!(
                out,
                "| {name} | {} | {:.2} | {vs_base} | {over} | {vs_peer} |",
                fmt_ns(e.ns),
                1000.0 / e.ns,
            );
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, group: &str, function: &str, median: f64) {
        let d = dir
            .join(group.replace(' ', "_"))
            .join(function.replace([' ', ':'], "_"));
        let new = d.join("new");
        std::fs::create_dir_all(&new).unwrap();
        std::fs::write(
            new.join("benchmark.json"),
            serde_json::json!({"group_id": group, "function_id": function, "value_str": null})
                .to_string(),
        )
        .unwrap();
        std::fs::write(
            new.join("estimates.json"),
            serde_json::json!({"median": {"point_estimate": median}}).to_string(),
        )
        .unwrap();
        // Criterion's HTML report directories are skipped.
        std::fs::create_dir_all(d.join("report")).unwrap();
    }

    #[test]
    fn tables_have_ratios_to_baseline_and_best_peer() {
        let dir = std::env::temp_dir().join(format!("redress-bench-report-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        write(&dir, "A sync", "baseline: direct", 2.0);
        write(&dir, "A sync", "redress: (a)", 4.0);
        write(&dir, "A sync", "backon", 8.0);
        write(&dir, "A sync", "other", 16.0);
        write(&dir, "A sync", "ref: bare breaker", 4.0);
        write(&dir, "G floor", "baseline: empty", 0.5);
        let entries = load(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(entries.len(), 6);
        assert_eq!(entries[0].function, "baseline: direct");
        assert_eq!(entries[1].function, "redress: (a)");
        let text = render(&entries);
        assert!(text.contains("### A sync"), "{text}");
        assert!(
            text.contains("| **redress: (a)** | 4.00 | 250.00 | 2.00× | +2.0 | 0.50× |"),
            "{text}"
        );
        assert!(text.contains("| other | 16.00 | 62.50 | 8.00× | +14.0 | 2.00× |"));
        assert!(text.contains("| ref: bare breaker | 4.00 | 250.00 | 2.00× | +2.0 | 0.50× |"));
        assert!(text.contains("### G floor"));
    }
}
