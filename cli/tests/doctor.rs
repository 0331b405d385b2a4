//! `redress doctor` on the example policies: the exact findings of each, and exit codes.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};

use redress::config::Format;
use redress_cli::doctor::diagnose;

mod common;
use common::redress;

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/policies")
        .join(name)
}

/// `line severity[code] field` of every finding of an example file.
fn findings(name: &str) -> Vec<String> {
    let path = example(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let d = diagnose(name, &text, Format::from_path(&path)).unwrap();
    d.findings
        .iter()
        .map(|l| {
            format!(
                "{} {}[{}] {}",
                l.line, l.finding.severity, l.finding.code, l.finding.field
            )
        })
        .collect()
}

#[test]
fn good_examples_are_clean() {
    for name in ["good.toml", "good.json", "rate-limited-api.toml"] {
        assert_eq!(findings(name), Vec::<String>::new(), "{name}");
    }
}

#[test]
fn the_simulators_policies_are_clean() {
    for (name, text) in redress_cli::sim::EMBEDDED_POLICIES {
        let d = diagnose(name, text, Format::Toml).unwrap();
        assert!(d.findings.is_empty(), "{name}: {:#?}", d.findings);
    }
}

#[test]
fn bad_backoff() {
    assert_eq!(
        findings("bad-backoff.toml"),
        [
            "10 error[max-below-base] retry.strategy.max",
            "4 error[deadline-before-first-sleep] retry.deadline",
            "13 warning[rate-limit-ignores-retry-after] retry.strategies.rate_limit",
            "18 warning[sleeps-exceed-deadline] retry.strategies.transient",
        ]
    );
}

#[test]
fn bad_caps() {
    assert_eq!(
        findings("bad-caps.toml"),
        [
            "4 error[unknown-cap-above-max-attempts] retry.max_unknown_attempts",
            "5 error[class-cap-above-max-attempts] retry.class_max_attempts.rate_limit",
            "6 warning[retries-non-retryable-class] retry.non_retryable",
            "6 warning[retries-non-retryable-class] retry.non_retryable",
        ]
    );
}

#[test]
fn bad_timeouts() {
    assert_eq!(
        findings("bad-timeouts.toml"),
        [
            "3 warning[single-attempt-with-strategies] retry.max_attempts",
            "5 warning[attempt-timeout-not-below-deadline] retry.attempt_timeout",
        ]
    );
}

#[test]
fn bad_breaker_and_budget() {
    assert_eq!(
        findings("bad-breaker-budget.toml"),
        [
            "11 warning[sleeps-exceed-deadline] retry.strategies.rate_limit",
            "19 warning[breaker-recovery-below-window] breaker.recovery",
            "20 warning[breaker-trips-on-unretried-class] breaker.trip_on",
            "24 warning[budget-below-one-call] budget.max_retries",
            "25 warning[budget-window-below-max-sleep] budget.window",
        ]
    );
}

#[test]
fn notes() {
    assert_eq!(
        findings("notes.toml"),
        [
            "3 note[no-deadline] retry.deadline",
            "8 note[unused-class-strategy] retry.strategies.permanent",
        ]
    );
}

#[test]
fn a_broken_file_is_a_located_error() {
    let path = example("broken.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let err = diagnose("broken.toml", &text, Format::Toml).unwrap_err();
    assert_eq!((err.location.line, err.location.column), (4, 1), "{err}");
    assert!(err.message.contains("unknown field `deadlin`"));
}

#[test]
fn exit_codes() {
    let path = |n: &str| example(n).display().to_string();
    assert_eq!(redress(&["doctor", &path("good.toml")]).0, 0);
    assert_eq!(redress(&["doctor", &path("notes.toml")]).0, 0, "notes only");
    assert_eq!(
        redress(&["doctor", &path("bad-timeouts.toml")]).0,
        0,
        "warnings only"
    );
    assert_eq!(redress(&["doctor", &path("bad-caps.toml")]).0, 1);
    let (code, _, err) = redress(&["doctor", &path("broken.toml")]);
    assert_eq!(code, 2);
    assert!(
        err.contains("broken.toml:4:1: error: unknown field `deadlin`"),
        "{err}"
    );
    assert_eq!(redress(&["doctor", "/no/such/policy.toml"]).0, 2);
    assert_eq!(redress(&["doctor"]).0, 2, "usage error");
    assert_eq!(
        redress(&["doctor", &path("good.toml"), "--format", "yaml"]).0,
        2
    );
}

#[test]
fn text_output_names_place_code_and_fix() {
    let (code, out, _) = redress(&["doctor", &example("bad-caps.toml").display().to_string()]);
    assert_eq!(code, 1);
    let first = out.lines().next().unwrap();
    assert!(
        first.ends_with("bad-caps.toml:4:1: error[unknown-cap-above-max-attempts] retry.max_unknown_attempts: max_unknown_attempts 5 is above max_attempts 3, so it can never apply"),
        "{first}"
    );
    assert_eq!(
        out.lines().nth(1).unwrap(),
        "    fix: lower it to at most 3, or raise max_attempts"
    );
    assert!(
        out.trim_end()
            .ends_with("bad-caps.toml: 2 errors, 2 warnings, 0 notes"),
        "{out}"
    );
}

#[test]
fn json_output_and_show() {
    let (code, out, _) = redress(&[
        "doctor",
        &example("bad-caps.toml").display().to_string(),
        "--format",
        "json",
        "--show",
    ]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["errors"], 2);
    assert_eq!(v["warnings"], 2);
    assert_eq!(v["findings"][0]["code"], "unknown-cap-above-max-attempts");
    assert_eq!(v["findings"][0]["severity"], "error");
    assert_eq!(v["findings"][0]["line"], 4);
    assert!(
        v["findings"][0]["fix"]
            .as_str()
            .unwrap()
            .starts_with("lower it")
    );
    // --show: every default filled in.
    assert_eq!(v["normalized"]["retry"]["deadline"], "1m");
    assert_eq!(v["normalized"]["retry"]["timeout_class"], "transient");
    assert_eq!(
        v["normalized"]["retry"]["strategy"]["kind"],
        "decorrelated_jitter"
    );

    let (code, out, _) = redress(&[
        "doctor",
        &example("good.toml").display().to_string(),
        "--show",
    ]);
    assert_eq!(code, 0);
    assert!(out.contains("good.toml: no findings"), "{out}");
    assert!(out.contains("max_unknown_attempts = 2"), "{out}");
    assert!(
        out.contains("non_retryable = [\"auth\", \"permission\", \"permanent\"]"),
        "{out}"
    );
    let (code, out, _) = redress(&[
        "doctor",
        &example("broken.toml").display().to_string(),
        "--format",
        "json",
    ]);
    assert_eq!(code, 2);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["error"]["line"], 4);
}
