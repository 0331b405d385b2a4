//! The doctor: one test per check, each with a policy that triggers it and one that does not.
#![cfg(feature = "serde")]
#![allow(clippy::unwrap_used, missing_docs)]

use redress::config::{Format, PolicyConfig};
use redress::doctor::{Finding, Severity, lint};

fn lint_text(text: &str) -> Vec<Finding> {
    lint(&PolicyConfig::parse("t.toml", text, Format::Toml).unwrap())
}

/// `triggers` yields a finding `code` of `severity` at `field`; `clean` yields no `code`.
fn check(code: &str, severity: Severity, field: &str, triggers: &str, clean: &str) {
    let found = lint_text(triggers);
    let hit = found.iter().find(|f| f.code == code);
    let hit = hit.unwrap_or_else(|| panic!("{code} not found in {found:#?}"));
    assert_eq!(hit.severity, severity, "{hit:?}");
    assert_eq!(hit.field, field, "{hit:?}");
    assert!(!hit.message.is_empty() && !hit.fix.is_empty());
    assert!(!hit.fix.contains('\n'), "a fix is one line: {hit:?}");
    let found = lint_text(clean);
    assert!(
        found.iter().all(|f| f.code != code),
        "{code} reported for the clean policy: {found:#?}"
    );
}

#[test]
fn the_crate_defaults_get_two_warnings() {
    // decorrelated_jitter(250ms, 30s) ignores Retry-After, and its worst case (each sleep
    // three times the last, capped at 30 s) uses the whole 60 s deadline by attempt 5.
    let codes: Vec<&str> = lint_text("").iter().map(|f| f.code).collect();
    assert_eq!(
        codes,
        ["rate-limit-ignores-retry-after", "sleeps-exceed-deadline"]
    );
}

#[test]
fn a_careful_policy_is_clean() {
    let text = "[retry]\nmax_attempts = 4\ndeadline = \"10s\"\nattempt_timeout = \"2s\"\n\
                strategy = { kind = \"equal_jitter\", base = \"100ms\", max = \"2s\" }\n\
                strategies = { rate_limit = { kind = \"retry_after_or\", max_hint = \"3s\", \
                fallback = { kind = \"equal_jitter\", base = \"200ms\", max = \"2s\" } } }\n";
    assert_eq!(lint_text(text), vec![]);
}

#[test]
fn backoff_max_below_base() {
    check(
        "max-below-base",
        Severity::Error,
        "retry.strategies.rate_limit.fallback.max",
        "[retry.strategies.rate_limit]\nkind = \"retry_after_or\"\nfallback = { kind = \"equal_jitter\", base = \"2s\", max = \"1s\" }\n",
        "[retry.strategies.rate_limit]\nkind = \"retry_after_or\"\nfallback = { kind = \"equal_jitter\", base = \"1s\", max = \"2s\" }\n",
    );
}

#[test]
fn deadline_shorter_than_the_first_sleep() {
    check(
        "deadline-before-first-sleep",
        Severity::Error,
        "retry.deadline",
        "[retry]\ndeadline = \"1s\"\nstrategy = { kind = \"constant\", delay = \"2s\" }\n",
        "[retry]\ndeadline = \"10s\"\nstrategy = { kind = \"constant\", delay = \"2s\" }\n",
    );
}

#[test]
fn single_attempt_with_strategies() {
    check(
        "single-attempt-with-strategies",
        Severity::Warning,
        "retry.max_attempts",
        "[retry]\nmax_attempts = 1\nstrategy = { kind = \"constant\", delay = \"1s\" }\n",
        "[retry]\nmax_attempts = 1\n",
    );
}

#[test]
fn max_unknown_attempts_above_max_attempts() {
    check(
        "unknown-cap-above-max-attempts",
        Severity::Error,
        "retry.max_unknown_attempts",
        "[retry]\nmax_attempts = 3\nmax_unknown_attempts = 4\n",
        "[retry]\nmax_attempts = 3\nmax_unknown_attempts = 3\n",
    );
}

#[test]
fn class_cap_above_max_attempts() {
    check(
        "class-cap-above-max-attempts",
        Severity::Error,
        "retry.class_max_attempts.concurrency",
        "[retry]\nmax_attempts = 3\nclass_max_attempts = { concurrency = 5 }\n",
        "[retry]\nmax_attempts = 3\nclass_max_attempts = { concurrency = 2 }\n",
    );
}

#[test]
fn retrying_auth_permission_or_permanent() {
    check(
        "retries-non-retryable-class",
        Severity::Warning,
        "retry.non_retryable",
        "[retry]\nnon_retryable = [\"auth\", \"permission\"]\n",
        "[retry]\nnon_retryable = [\"auth\", \"permission\", \"permanent\", \"concurrency\"]\n",
    );
    let all = lint_text("[retry]\nnon_retryable = []\n");
    assert_eq!(
        all.iter()
            .filter(|f| f.code == "retries-non-retryable-class")
            .count(),
        3
    );
}

#[test]
fn rate_limit_without_a_retry_after_aware_strategy() {
    check(
        "rate-limit-ignores-retry-after",
        Severity::Warning,
        "retry.strategies.rate_limit",
        "[retry]\nstrategy = { kind = \"equal_jitter\" }\n",
        "[retry]\nstrategy = { kind = \"adaptive\", fallback = { kind = \"retry_after_or\", max_hint = \"20s\" } }\n",
    );
    // Rate limits that are never retried need no strategy.
    assert!(
        lint_text("[retry]\nstrategy = { kind = \"equal_jitter\" }\nnon_retryable = [\"auth\", \"permission\", \"permanent\", \"rate_limit\"]\n")
            .iter()
            .all(|f| f.code != "rate-limit-ignores-retry-after")
    );
}

#[test]
fn attempt_timeout_not_below_the_deadline() {
    check(
        "attempt-timeout-not-below-deadline",
        Severity::Warning,
        "retry.attempt_timeout",
        "[retry]\ndeadline = \"5s\"\nattempt_timeout = \"5s\"\n",
        "[retry]\ndeadline = \"5s\"\nattempt_timeout = \"1s\"\n",
    );
}

#[test]
fn worst_case_sleeps_exceed_the_deadline() {
    // Worst case 100ms·2ⁿ: 0.2 + 0.4 + 0.8 + 1.6 + 3.2 = 6.2 s > 5 s by attempt 5.
    check(
        "sleeps-exceed-deadline",
        Severity::Warning,
        "retry.strategy",
        "[retry]\nmax_attempts = 6\ndeadline = \"5s\"\nstrategy = { kind = \"equal_jitter\", base = \"100ms\", max = \"10s\" }\n",
        "[retry]\nmax_attempts = 5\ndeadline = \"5s\"\nstrategy = { kind = \"equal_jitter\", base = \"100ms\", max = \"10s\" }\n",
    );
    let f = lint_text(
        "[retry]\nmax_attempts = 6\ndeadline = \"5s\"\nstrategy = { kind = \"equal_jitter\", base = \"100ms\", max = \"10s\" }\n",
    );
    let f = f
        .iter()
        .find(|f| f.code == "sleeps-exceed-deadline")
        .unwrap();
    assert!(
        f.message.contains("6.2s by attempt 5 of 6"),
        "{}",
        f.message
    );
}

#[test]
fn breaker_recovery_shorter_than_its_window() {
    check(
        "breaker-recovery-below-window",
        Severity::Warning,
        "breaker.recovery",
        "[breaker]\nmode = \"consecutive\"\nthreshold = 5\nwindow = \"30s\"\nrecovery = \"10s\"\n",
        "[breaker]\nmode = \"consecutive\"\nthreshold = 5\nwindow = \"30s\"\nrecovery = \"30s\"\n",
    );
}

#[test]
fn breaker_tripping_on_a_class_never_retried() {
    check(
        "breaker-trips-on-unretried-class",
        Severity::Warning,
        "breaker.trip_on",
        "[breaker]\nmode = \"failure_rate\"\nratio = 0.5\nmin_throughput = 10\nwindow = \"10s\"\nrecovery = \"10s\"\ntrip_on = [\"server_error\", \"permanent\"]\n",
        "[breaker]\nmode = \"failure_rate\"\nratio = 0.5\nmin_throughput = 10\nwindow = \"10s\"\nrecovery = \"10s\"\ntrip_on = [\"server_error\", \"transient\"]\n",
    );
    check(
        "breaker-trips-on-unretried-class",
        Severity::Warning,
        "breaker.class_thresholds.auth",
        "[breaker]\nmode = \"consecutive\"\nthreshold = 5\nwindow = \"10s\"\nrecovery = \"10s\"\nclass_thresholds = { auth = 2 }\n",
        "[breaker]\nmode = \"consecutive\"\nthreshold = 5\nwindow = \"10s\"\nrecovery = \"10s\"\nclass_thresholds = { rate_limit = 2 }\n",
    );
}

#[test]
fn budget_cap_smaller_than_one_calls_retries() {
    check(
        "budget-below-one-call",
        Severity::Warning,
        "budget.max_retries",
        "[retry]\nmax_attempts = 6\n[budget]\nkind = \"rolling\"\nmax_retries = 4\nwindow = \"1m\"\n",
        "[retry]\nmax_attempts = 6\n[budget]\nkind = \"rolling\"\nmax_retries = 5\nwindow = \"1m\"\n",
    );
    check(
        "budget-below-one-call",
        Severity::Warning,
        "budget.min_per_second",
        "[retry]\nmax_attempts = 4\n[budget]\nkind = \"ratio\"\nratio = 0.5\nmin_per_second = 0.0\nwindow = \"30s\"\n",
        "[retry]\nmax_attempts = 4\n[budget]\nkind = \"ratio\"\nratio = 0.5\nmin_per_second = 0.1\nwindow = \"30s\"\n",
    );
}

#[test]
fn budget_window_shorter_than_the_largest_sleep() {
    check(
        "budget-window-below-max-sleep",
        Severity::Warning,
        "budget.window",
        "[retry.strategy]\nkind = \"decorrelated_jitter\"\nmax = \"30s\"\n[budget]\nkind = \"ratio\"\nwindow = \"10s\"\n",
        "[retry.strategy]\nkind = \"decorrelated_jitter\"\nmax = \"30s\"\n[budget]\nkind = \"ratio\"\nwindow = \"30s\"\n",
    );
}

#[test]
fn no_deadline_is_a_note() {
    check(
        "no-deadline",
        Severity::Note,
        "retry.deadline",
        "[retry]\ndeadline = \"none\"\n",
        "[retry]\ndeadline = \"30s\"\n",
    );
}

#[test]
fn a_strategy_for_a_class_never_retried_is_a_note() {
    check(
        "unused-class-strategy",
        Severity::Note,
        "retry.strategies.auth",
        "[retry.strategies.auth]\nkind = \"constant\"\ndelay = \"1s\"\n",
        "[retry.strategies.transient]\nkind = \"constant\"\ndelay = \"1s\"\n",
    );
}

#[test]
fn values_the_builders_reject_are_errors_with_their_rule() {
    check(
        "invalid-value",
        Severity::Error,
        "breaker.probes",
        "[breaker]\nmode = \"consecutive\"\nthreshold = 5\nwindow = \"10s\"\nrecovery = \"10s\"\nprobes = 0\n",
        "[breaker]\nmode = \"consecutive\"\nthreshold = 5\nwindow = \"10s\"\nrecovery = \"10s\"\nprobes = 1\n",
    );
    // A check that already explains the key is not repeated as a bare rule.
    let f = lint_text("[retry]\nmax_attempts = 3\nmax_unknown_attempts = 4\n");
    let errors: Vec<&str> = f
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| f.code)
        .collect();
    assert_eq!(errors, ["unknown-cap-above-max-attempts"], "{f:#?}");
}

#[test]
fn findings_come_errors_first() {
    let f = lint_text(
        "[retry]\ndeadline = \"none\"\nnon_retryable = []\nmax_attempts = 3\nclass_max_attempts = { transient = 4 }\n",
    );
    let severities: Vec<Severity> = f.iter().map(|f| f.severity).collect();
    let mut sorted = severities.clone();
    sorted.sort();
    assert_eq!(severities, sorted);
    assert_eq!(severities.first(), Some(&Severity::Error));
    assert_eq!(severities.last(), Some(&Severity::Note));
}
