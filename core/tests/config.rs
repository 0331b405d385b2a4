//! Policy files: a file and the same policy in code behave identically; malformed files give
//! located errors; random input never panics.
#![cfg(feature = "serde")]
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use redress::backoff::{
    adaptive, constant, equal_jitter, exponential, retry_after_or, token_backoff,
};
use redress::config::{Format, Location, PolicyConfig};
use redress::rng::{seeded, unit_f64};
use redress::{
    BreakerScope, Budget, CircuitBreaker, ClassSet, Classification, Decision, ErrorClass, Instant,
    Outcome, Policy, Retry,
};

const MS: Duration = Duration::from_millis(1);

/// Drives `calls` calls of `policy` through one scripted sequence of outcomes (drawn from
/// `seed`, the same for every policy) and records every decision and event.
fn trace(policy: &Policy, calls: usize, seed: u64) -> Vec<String> {
    let mut rng = seeded(seed);
    let mut now = Instant::ZERO;
    let mut out = Vec::new();
    for call in 0..calls {
        let mut m = policy.machine();
        let mut d = m.start(now);
        loop {
            out.push(format!("{call} {now:?} {d:?}"));
            while let Some(e) = m.poll_event() {
                out.push(format!("  {:?} {:?}", e.kind, e.class));
            }
            match d {
                Decision::Attempt { .. } => {
                    now = now.saturating_add(10 * MS);
                    let r = unit_f64(&mut rng);
                    let outcome = if r < 0.35 {
                        Outcome::Success
                    } else if r < 0.5 {
                        Outcome::Failure(
                            Classification::new(ErrorClass::RateLimit)
                                .with_retry_after(Duration::from_millis(700)),
                        )
                    } else if r < 0.6 {
                        Outcome::failure(ErrorClass::RateLimit)
                    } else if r < 0.7 {
                        Outcome::TimedOut
                    } else if r < 0.8 {
                        Outcome::failure(ErrorClass::Unknown)
                    } else if r < 0.9 {
                        Outcome::failure(ErrorClass::ServerError)
                    } else if r < 0.95 {
                        Outcome::failure(ErrorClass::Concurrency)
                    } else {
                        Outcome::failure(ErrorClass::Permanent)
                    };
                    d = m.on_outcome(now, outcome);
                }
                Decision::Sleep { until, .. } => {
                    now = until;
                    d = m.on_wake(now);
                }
                _ => break,
            }
        }
        now = now.saturating_add(50 * MS);
    }
    out
}

const FULL: &str = r#"
operation = "fetch_user"
seed = 7

[retry]
max_attempts = 5
max_unknown_attempts = 3
deadline = "20s"
attempt_timeout = "2s"
non_retryable = ["auth", "permanent"]
timeout_class = "server_error"
predict_deadline = true
class_max_attempts = { concurrency = 2 }

[retry.strategy]
kind = "equal_jitter"
base = "100ms"
max = "2s"

[retry.strategies.rate_limit]
kind = "retry_after_or"
max_hint = "1s"
jitter = "50ms"
fallback = { kind = "adaptive", window = "30s", target_success = 0.8, min_multiplier = 1.0, max_multiplier = 3.0, fallback = { kind = "exponential", base = "50ms", max = "1s", factor = 3.0 } }

[retry.strategies.concurrency]
kind = "token_backoff"
base = "20ms"
max = "500ms"

[retry.strategies.server_error]
kind = "constant"
delay = "300ms"

[breaker]
mode = "consecutive"
threshold = 4
window = "10s"
class_thresholds = { rate_limit = 3 }
recovery = "2s"
probes = 2
trip_on = ["server_error", "transient"]
scope = "per_attempt"

[budget]
kind = "rolling"
max_retries = 12
window = "5s"
buckets = 5
costs = { rate_limit = 0, server_error = 2 }
never = ["concurrency"]
"#;

fn full_in_code() -> Policy {
    let retry = Retry::builder()
        .max_attempts(5)
        .max_unknown_attempts(Some(3))
        .deadline(Duration::from_secs(20))
        .attempt_timeout(Duration::from_secs(2))
        .non_retryable(ClassSet::of(&[ErrorClass::Auth, ErrorClass::Permanent]))
        .timeout_class(ErrorClass::ServerError)
        .predict_deadline(true)
        .class_max_attempts(ErrorClass::Concurrency, 2)
        .strategy(equal_jitter(100 * MS, Duration::from_secs(2)))
        .class_strategy(
            ErrorClass::RateLimit,
            retry_after_or(
                adaptive(exponential(50 * MS, Duration::from_secs(1)).factor(3.0))
                    .window(Duration::from_secs(30))
                    .target_success(0.8)
                    .multipliers(1.0, 3.0),
            )
            .max_hint(Duration::from_secs(1))
            .jitter(50 * MS),
        )
        .class_strategy(ErrorClass::Concurrency, token_backoff(20 * MS, 500 * MS))
        .class_strategy(ErrorClass::ServerError, constant(300 * MS))
        .budget(Arc::new(
            Budget::rolling(12, Duration::from_secs(5))
                .buckets(5)
                .cost(ErrorClass::RateLimit, 0)
                .cost(ErrorClass::ServerError, 2)
                .never(ErrorClass::Concurrency)
                .build()
                .unwrap(),
        ));
    Policy::builder()
        .retry(retry)
        .breaker(Arc::new(
            CircuitBreaker::consecutive(4, Duration::from_secs(10))
                .recovery(Duration::from_secs(2))
                .probes(2)
                .trip_on(ClassSet::of(&[
                    ErrorClass::ServerError,
                    ErrorClass::Transient,
                ]))
                .class_threshold(ErrorClass::RateLimit, 3)
                .build()
                .unwrap(),
        ))
        .breaker_scope(BreakerScope::PerAttempt)
        .seed(7)
        .operation("fetch_user")
        .build()
        .unwrap()
}

#[test]
fn a_file_and_the_same_policy_in_code_behave_identically() {
    let (_, from_file) = PolicyConfig::load("full.toml", FULL, Format::Toml).unwrap();
    let in_code = full_in_code();
    let a = trace(&from_file, 300, 11);
    let b = trace(&in_code, 300, 11);
    assert_eq!(a, b);
    // The script exercises what it should: sleeps, breaker transitions, budget stops.
    let all = a.join("\n");
    for needle in [
        "Sleep",
        "CircuitOpened",
        "BudgetExhausted",
        "Rejected",
        "Succeeded",
    ] {
        assert!(all.contains(needle), "trace never shows {needle}");
    }
}

const RATE: &str = r#"
seed = 3
[retry]
max_attempts = 4
deadline = "none"
max_unknown_attempts = "none"
strategy = { kind = "full_jitter", base = "10ms", max = "1s" }
strategies = { rate_limit = { kind = "decorrelated_jitter", base = "50ms", max = "2s" } }
[breaker]
mode = "failure_rate"
ratio = 0.5
min_throughput = 10
window = "5s"
buckets = 5
recovery = "1s"
scope = "per_call"
[budget]
kind = "ratio"
ratio = 0.3
min_per_second = 0.5
window = "10s"
"#;

#[test]
fn failure_rate_breaker_ratio_budget_and_per_call_scope_match_code_too() {
    let (_, from_file) = PolicyConfig::load("rate.json", RATE, Format::Toml).unwrap();
    let in_code = Policy::builder()
        .retry(
            Retry::builder()
                .max_attempts(4)
                .no_deadline()
                .max_unknown_attempts(None)
                .strategy(redress::backoff::full_jitter(
                    10 * MS,
                    Duration::from_secs(1),
                ))
                .class_strategy(
                    ErrorClass::RateLimit,
                    redress::backoff::decorrelated_jitter(50 * MS, Duration::from_secs(2)),
                )
                .budget(Arc::new(
                    Budget::ratio(0.3, 0.5, Duration::from_secs(10))
                        .build()
                        .unwrap(),
                )),
        )
        .breaker(Arc::new(
            CircuitBreaker::failure_rate(0.5, 10, Duration::from_secs(5))
                .buckets(5)
                .recovery(Duration::from_secs(1))
                .build()
                .unwrap(),
        ))
        .breaker_scope(BreakerScope::PerCall)
        .seed(3)
        .build()
        .unwrap();
    assert_eq!(trace(&from_file, 300, 5), trace(&in_code, 300, 5));
}

#[test]
fn json_and_toml_load_the_same_policy() {
    let (toml_config, _) = PolicyConfig::load("full.toml", FULL, Format::Toml).unwrap();
    let json = toml_config.to_json().unwrap();
    let (json_config, from_json) = PolicyConfig::load("full.json", &json, Format::Json).unwrap();
    assert_eq!(toml_config, json_config);
    assert_eq!(trace(&from_json, 100, 2), trace(&full_in_code(), 100, 2));
}

#[test]
fn normalized_fills_every_default_and_round_trips() {
    let (config, _) =
        PolicyConfig::load("p.toml", "[retry]\nmax_attempts = 1\n", Format::Toml).unwrap();
    let n = config.normalized();
    assert_eq!(
        n.retry.max_unknown_attempts,
        Some(redress::config::OrNone::Value(1))
    );
    assert_eq!(
        n.retry.deadline,
        Some(redress::config::OrNone::Value(Duration::from_secs(60)))
    );
    assert!(n.retry.strategy.is_some() && n.retry.non_retryable.is_some());
    for config in [
        config,
        PolicyConfig::parse("f", FULL, Format::Toml).unwrap(),
    ] {
        let n = config.normalized();
        let text = n.to_toml().unwrap();
        let (again, _) = PolicyConfig::load("n.toml", &text, Format::Toml).unwrap();
        assert_eq!(again, n, "{text}");
        assert_eq!(again.normalized(), n);
    }
}

/// (input, format, expected "line:column", a part of the message)
const MALFORMED: &[(&str, Format, &str, &str)] = &[
    ("[retry\n", Format::Toml, "1:7", "unclosed table"),
    (
        "[retry]\nmax_atempts = 3\n",
        Format::Toml,
        "2:1",
        "unknown field `max_atempts`",
    ),
    (
        "[retry]\nmax_attempts = \"x\"\n",
        Format::Toml,
        "2:16",
        "expected u32",
    ),
    (
        "[retry]\nmax_attempts = 0\n",
        Format::Toml,
        "2:1",
        "`retry.max_attempts` = 0: must be at least 1",
    ),
    (
        "[retry]\ndeadline = 30\n",
        Format::Toml,
        "2:12",
        "with a unit",
    ),
    (
        "[retry]\ndeadline = \"30 parsecs\"\n",
        Format::Toml,
        "2:12",
        "unknown unit \"parsecs\"",
    ),
    (
        "[retry.strategy]\nkind = \"equal_jiter\"\n",
        Format::Toml,
        "2:8",
        "unknown variant `equal_jiter`",
    ),
    (
        "[retry.strategy]\nkind = \"equal_jitter\"\nfactor = 3.0\n",
        Format::Toml,
        "3:1",
        "`factor` is not a parameter",
    ),
    (
        "[retry.strategy]\nkind = \"equal_jitter\"\nbase = \"1s\"\nmax = \"100ms\"\n",
        Format::Toml,
        "4:1",
        "`retry.strategy.max` = 100ms: must be at least `base`",
    ),
    (
        "[retry]\nstrategy = { kind = \"exponential\", base = \"1s\", factor = 0.5 }\n",
        Format::Toml,
        "2:49",
        "`retry.strategy.factor`",
    ),
    (
        "[retry.strategies.rate_limt]\nkind = \"constant\"\n",
        Format::Toml,
        "1:19",
        "unknown variant `rate_limt`",
    ),
    (
        "[retry.strategies.rate_limit]\nkind = \"none\"\n",
        Format::Toml,
        "2:1",
        "only valid for the default strategy",
    ),
    (
        "[retry.strategies.rate_limit]\nkind = \"retry_after_or\"\n[retry.strategies.rate_limit.fallback]\nkind = \"full_jitter\"\nbase = \"2s\"\nmax = \"1s\"\n",
        Format::Toml,
        "6:1",
        "`retry.strategies.rate_limit.fallback.max`",
    ),
    (
        "[retry]\nmax_attempts = 3\nclass_max_attempts = { server_error = 9 }\n",
        Format::Toml,
        "3:24",
        "must not exceed max_attempts",
    ),
    (
        "[breaker]\nmode = \"consecutive\"\nthreshold = 5\n",
        Format::Toml,
        "1:2",
        "`breaker.window` = (missing): is required",
    ),
    (
        "[breaker]\nmode = \"consecutive\"\nthreshold = 5\nwindow = \"1s\"\nratio = 0.5\n",
        Format::Toml,
        "5:1",
        "does not apply to mode = \"consecutive\"",
    ),
    (
        "[breaker]\nmode = \"failure_rate\"\nratio = 1.5\nmin_throughput = 5\nwindow = \"1s\"\n",
        Format::Toml,
        "3:1",
        "`breaker.ratio` = 1.5: must be within (0, 1]",
    ),
    (
        "[budget]\nkind = \"rolling\"\nmax_retries = 5\nwindow = \"0s\"\n",
        Format::Toml,
        "4:1",
        "`budget.window`",
    ),
    (
        "[budget]\nkind = \"ratio\"\ncosts = { transient = 2 }\nnever = [\"transient\"]\n",
        Format::Toml,
        "3:11",
        "also listed in `never`",
    ),
    (
        "{\"retry\": {\"max_atempts\": 3}}",
        Format::Json,
        "1:24",
        "unknown field `max_atempts`",
    ),
    (
        "{\"retry\": {\n  \"max_attempts\": 0\n}}",
        Format::Json,
        "2:3",
        "must be at least 1",
    ),
    (
        "{\"retry\": {\"strategy\": {\"kind\": \"equal_jitter\", \"factor\": 2.0}}}",
        Format::Json,
        "1:49",
        "`factor` is not a parameter",
    ),
    ("{\"retry\": ", Format::Json, "1:10", "EOF"),
];

#[test]
fn malformed_files_give_located_errors() {
    for (text, format, at, part) in MALFORMED {
        let err = PolicyConfig::load("p", text, *format).unwrap_err();
        let got = format!("{}:{}", err.location.line, err.location.column);
        assert_eq!(&got, at, "{text:?}: {err}");
        assert!(err.message.contains(part), "{text:?}: {err}");
        assert_eq!(err.to_string(), format!("p:{at}: {}", err.message));
    }
    let err = PolicyConfig::load("p", "[retry]\nmax_attempts = 0\n", Format::Toml).unwrap_err();
    assert_eq!(err.field(), Some("retry.max_attempts"));
    assert_eq!(err.location, Location { line: 2, column: 1 });
}

const TOKENS: &[&str] = &[
    "[retry]",
    "[retry.strategy]",
    "[retry.strategies.rate_limit]",
    "[breaker]",
    "[budget]",
    "[retry.strategies.rate_limit.fallback]",
    "kind = ",
    "\"equal_jitter\"",
    "\"retry_after_or\"",
    "\"adaptive\"",
    "\"none\"",
    "\"constant\"",
    "\"exponential\"",
    "mode = \"consecutive\"",
    "mode = \"failure_rate\"",
    "kind = \"ratio\"",
    "kind = \"rolling\"",
    "max_attempts = ",
    "max_unknown_attempts = ",
    "deadline = ",
    "attempt_timeout = ",
    "base = ",
    "max = ",
    "delay = ",
    "factor = ",
    "fallback = ",
    "threshold = ",
    "window = ",
    "ratio = ",
    "min_throughput = ",
    "recovery = ",
    "max_retries = ",
    "buckets = ",
    "costs = ",
    "never = ",
    "trip_on = ",
    "class_thresholds = ",
    "\"1s\"",
    "\"0s\"",
    "\"250ms\"",
    "\"99999999999999999h\"",
    "\"1.5.5s\"",
    "0",
    "1",
    "4294967296",
    "-1",
    "1.5",
    "nan",
    "inf",
    "1e308",
    "true",
    "{",
    "}",
    "[",
    "]",
    "=",
    ",",
    "\n",
    "\"",
    "\"rate_limit\"",
    "\"auth\"",
    "é",
    "#",
    "seed = ",
    "\"x\"",
];

fn toml_ish() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(prop::sample::select(TOKENS), 0..48).prop_map(|v| v.join("")),
        prop::collection::vec(prop::sample::select(TOKENS), 0..48).prop_map(|v| v.join(" ")),
        "[\\[\\]a-z_=\". 0-9{},\n#é:-]{0,160}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_toml_ish_input_never_panics(text in toml_ish()) {
        for format in [Format::Toml, Format::Json] {
            match PolicyConfig::load("fuzz", &text, format) {
                Ok((config, _)) => {
                    let _ = redress::doctor::lint(&config);
                    let _ = config.normalized().to_toml();
                }
                Err(e) => {
                    prop_assert!(e.location.line >= 1 && e.location.column >= 1);
                    if let Ok(config) = PolicyConfig::parse("fuzz", &text, format) {
                        // Parsed but invalid: the doctor still lints it.
                        let _ = redress::doctor::lint(&config);
                    }
                }
            }
        }
    }

    #[test]
    fn mutations_of_a_valid_file_never_panic(at in 0usize..FULL.len(), token in prop::sample::select(TOKENS), cut in 0usize..12) {
        let mut at = at;
        while !FULL.is_char_boundary(at) { at -= 1; }
        let mut end = (at + cut).min(FULL.len());
        while !FULL.is_char_boundary(end) { end -= 1; }
        let text = format!("{}{}{}", &FULL[..at], token, &FULL[end..]);
        if let Ok(config) = PolicyConfig::parse("fuzz", &text, Format::Toml) {
            let _ = redress::doctor::lint(&config);
            let _ = config.build();
        }
    }
}
