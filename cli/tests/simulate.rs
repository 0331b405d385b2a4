//! `redress simulate`: the default scenario's promised result, determinism, statistical
//! stability across seeds, and a well-formed SVG.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};

use redress_cli::sim::{self, PolicyReport, Report, Scenario};

mod common;
use common::{by_name, redress, run};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// The README's main command: the embedded scenario, unchanged.
#[test]
fn the_default_scenario_shows_what_budgets_and_breakers_promise() {
    let (scenario, policies) = sim::load(None, &[]).unwrap();
    let report = run(&scenario, &policies, None);
    let naive = by_name(&report, "naive retries");
    let budget = by_name(&report, "retries + budget");
    let breaker = by_name(&report, "retries + budget + breaker");
    // The same traffic for every policy.
    assert_eq!(naive.calls, budget.calls);
    assert_eq!(naive.calls, breaker.calls);
    assert!((590_000..610_000).contains(&naive.calls), "{}", naive.calls);

    // Naive retries: every call of the outage makes all 4 of its attempts.
    let naive_ampl = naive.outage_amplification.unwrap();
    assert!((3.7..=4.0).contains(&naive_ampl), "naive: {naive_ampl}");
    assert!(naive.outage_mean.unwrap() > 3.5 * naive.before_mean.unwrap());

    // The budget caps amplification near its ratio: 1 + 0.1 (ratio) + 0.1/s floor ÷ 1 call/s.
    let budget_ampl = budget.outage_amplification.unwrap();
    assert!(
        (1.15..=1.25).contains(&budget_ampl),
        "budget: {budget_ampl}"
    );
    assert!(budget.budget_denials > 100_000, "{}", budget.budget_denials);
    assert_eq!(naive.budget_denials, 0);

    // The breaker cuts the load during the outage to probes: under 20% of normal.
    let before = breaker.before_mean.unwrap();
    let during = breaker.outage_mean.unwrap();
    assert!((950.0..1080.0).contains(&before), "{before}");
    assert!(during < 0.2 * before, "breaker: {during} vs {before}");
    assert!(during < 0.2 * budget.outage_mean.unwrap());
    let open = breaker.breaker_open.unwrap().as_secs_f64();
    assert!(
        (110.0..=140.0).contains(&open),
        "open {open}s of a 120s outage"
    );
    assert!(
        breaker
            .stops
            .iter()
            .any(|(r, n)| *r == "circuit_open" && *n > 100_000)
    );

    // Afterwards every policy returns to the offered load.
    for p in [budget, breaker] {
        let after = p.after_mean.unwrap();
        assert!(
            (after / before - 1.0).abs() < 0.1,
            "{}: {after} vs {before}",
            p.name
        );
    }
    // Fewer retries also means shorter tails.
    assert!(breaker.p99 < naive.p99 && budget.p99 < naive.p99);
}

#[test]
fn the_same_seed_gives_a_byte_identical_report() {
    let (mut scenario, policies) = sim::load(None, &[]).unwrap();
    scenario.clients = 150;
    let a = run(&scenario, &policies, Some(9)).render();
    let b = run(&scenario, &policies, Some(9)).render();
    assert_eq!(a, b);
    let c = run(&scenario, &policies, Some(10)).render();
    assert_ne!(a, c, "another seed, another sample");
}

/// Stated tolerance: across 5 seeds, each policy's amplification (over the run and during
/// the outage) stays within ±5% of its mean.
#[test]
fn different_seeds_give_statistically_similar_amplification() {
    let (mut scenario, policies) = sim::load(None, &[]).unwrap();
    scenario.clients = 200;
    let reports: Vec<Report> = (1..=5)
        .map(|s| run(&scenario, &policies, Some(s)))
        .collect();
    for p in &policies {
        for metric in [
            (|r: &PolicyReport| r.amplification) as fn(&PolicyReport) -> f64,
            |r: &PolicyReport| r.outage_amplification.unwrap(),
        ] {
            let values: Vec<f64> = reports
                .iter()
                .map(|r| metric(by_name(r, &p.name)))
                .collect();
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            for v in &values {
                assert!((v / mean - 1.0).abs() <= 0.05, "{}: {values:?}", p.name);
            }
        }
    }
}

#[test]
fn the_svg_is_well_formed_with_a_line_per_policy_and_the_outage_shaded() {
    let (scenario, policies) = sim::load(Some(&data("small.toml")), &[]).unwrap();
    let report = run(&scenario, &policies, None);
    let svg = sim::svg::render(&report).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    let texts: Vec<String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(|t| t.trim().to_owned())
        .collect();
    for name in ["naive", "budget & <breaker>", "inline", "outage"] {
        assert!(
            texts.iter().any(|t| t == name),
            "legend lacks {name}: {texts:?}"
        );
    }
    let lines = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .count();
    assert!(lines >= 3, "{lines} polylines");
    let shaded = doc
        .descendants()
        .filter(|n| n.has_tag_name("rect") && n.attribute("fill") == Some("#FFC8C8"))
        .count();
    assert!(shaded >= 1, "no outage shading");
}

#[test]
fn scenario_files_load_inline_and_file_policies_and_report_side_by_side() {
    let (scenario, policies) = sim::load(Some(&data("small.toml")), &[]).unwrap();
    assert_eq!(policies.len(), 3);
    let text = run(&scenario, &policies, None).render();
    let header = text
        .lines()
        .find(|l| l.contains("naive") && l.contains("inline"))
        .unwrap();
    assert!(header.contains("budget & <breaker>"), "{header}");
    for row in [
        "logical calls",
        "amplification",
        "load during outage, peak/s",
        "call latency p99",
        "breaker open",
        "budget denials",
        "stopped: max_attempts",
    ] {
        assert!(text.contains(row), "missing {row}:\n{text}");
    }
    // --policy replaces the scenario's policies, titled by file stem.
    let naive = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/naive.toml");
    let (_, policies) = sim::load(Some(&data("small.toml")), &[naive]).unwrap();
    assert_eq!(policies.len(), 1);
    assert_eq!(policies[0].name, "naive");
}

#[test]
fn bad_scenarios_are_located_errors() {
    let bad = [
        (
            "duration = \"2m\"\nclients = 0\n[load]\nrate = 1.0\n[dependency]\nlatency = { kind = \"constant\", value = \"1ms\" }\n",
            "`clients` must be at least 1",
        ),
        (
            "duration = \"2m\"\nclients = 1\n[load]\nrate = 1.0\nburst = 2\n",
            "s.toml:5:1: unknown field `burst`",
        ),
        ("duration = 5\n", "s.toml:1:12"),
        (
            "duration = \"2m\"\nclients = 1\n[load]\nrate = 1.0\n[dependency]\nlatency = { kind = \"constant\", value = \"1ms\" }\nfailure = { transient = 0.7, server_error = 0.6 }\n",
            "add up to more than 1",
        ),
    ];
    for (text, want) in bad {
        let err = Scenario::parse("s.toml", text).unwrap_err();
        assert!(err.contains(want), "{err}");
    }
}

#[test]
fn the_command_writes_the_report_the_svg_and_the_rate() {
    let scenario = data("small.toml").display().to_string();
    let svg = std::env::temp_dir().join(format!("redress-test-{}.svg", std::process::id()));
    let (code, out, err) = redress(&[
        "simulate",
        &scenario,
        "--seed",
        "3",
        "--svg",
        &svg.display().to_string(),
        "--bench",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("small outage\n"), "{out}");
    assert!(out.contains("calls/s"), "{out}");
    roxmltree::Document::parse(&std::fs::read_to_string(&svg).unwrap()).unwrap();
    std::fs::remove_file(&svg).unwrap();
    // The report alone is reproducible byte for byte.
    let (_, a, _) = redress(&["simulate", &scenario, "--seed", "3"]);
    let (_, b, _) = redress(&["simulate", &scenario, "--seed", "3"]);
    assert_eq!(a, b);
    assert!(
        out.starts_with(&a),
        "the bench lines come after the same report"
    );
    let (code, _, err) = redress(&["simulate", "/no/such/scenario.toml"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read"), "{err}");
}

const TOKENS: &[&str] = &[
    "duration = ",
    "clients = ",
    "seed = ",
    "sample = ",
    "after = ",
    "[load]",
    "rate = ",
    "[dependency]",
    "latency = ",
    "{ kind = \"constant\", value = \"1ms\" }",
    "{ kind = \"lognormal\", median = \"0s\", p99 = \"1s\" }",
    "[[dependency.outages]]",
    "start = ",
    "end = ",
    "capacity = ",
    "failure = ",
    "{ transient = 2.0 }",
    "\"2m\"",
    "\"0s\"",
    "\"1ns\"",
    "\"9999999999d\"",
    "0",
    "1",
    "-1",
    "1e308",
    "nan",
    "\n",
    "=",
    "\"",
    "[[policies]]",
    "name = \"p\"",
    "file = \"nope.toml\"",
    "policy = { retry = { max_attempts = 0 } }",
];

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    #[test]
    fn random_scenario_text_never_panics(
        parts in proptest::collection::vec(proptest::sample::select(TOKENS), 0..40)
    ) {
        let text = parts.join("");
        if let Ok(s) = Scenario::parse("fuzz.toml", &text) {
            let _ = s.validate();
        }
    }
}
