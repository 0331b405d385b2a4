//! Policy files: arbitrary text through `PolicyConfig::load` (TOML or JSON).
//!
//! Checks: loading never panics; a file that loads lints without panicking, survives a
//! round trip through its normalized TOML and JSON forms unchanged, and its policy drives a
//! machine through a run of failures without panicking or busy-looping.
#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;
use redress::config::{Format, PolicyConfig};
use redress::{Decision, ErrorClass, Instant, Outcome};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let format = if selector & 1 == 0 {
        Format::Toml
    } else {
        Format::Json
    };
    let Ok((config, policy)) = PolicyConfig::load("fuzz", text, format) else {
        return;
    };
    let _ = redress::doctor::lint(&config);

    // The normalized form is what `redress doctor` prints: it must load back unchanged.
    let normalized = config.normalized();
    if let Ok(toml) = normalized.to_toml() {
        let back = PolicyConfig::parse("fuzz.toml", &toml, Format::Toml)
            .unwrap_or_else(|e| panic!("normalized TOML does not parse: {e}\n{toml}"));
        assert_eq!(back.normalized(), normalized, "TOML round trip\n{toml}");
    }
    if let Ok(json) = normalized.to_json() {
        let back = PolicyConfig::parse("fuzz.json", &json, Format::Json)
            .unwrap_or_else(|e| panic!("normalized JSON does not parse: {e}\n{json}"));
        assert_eq!(back.normalized(), normalized, "JSON round trip\n{json}");
    }

    // Whatever the file says, the policy drives a call to its end without busy-looping.
    let mut m = policy.machine();
    let mut now = Instant::ZERO;
    let mut d = m.start(now);
    for class in ErrorClass::ALL.iter().cycle().take(64) {
        d = match d {
            Decision::Attempt { .. } => m.on_outcome(now, Outcome::failure(*class)),
            Decision::Sleep { until, .. } => {
                now = until;
                m.on_wake(now)
            }
            Decision::Rejected { .. } | Decision::Succeeded | Decision::Failed(_) => break,
        };
        while m.poll_event().is_some() {}
        assert!(
            m.is_finished()
                || matches!(d, Decision::Attempt { .. })
                || m.poll_timeout().is_some_and(|t| t > now),
            "busy loop: {d:?}"
        );
    }
    assert!(m.attempt() <= policy.retry().max_attempts());
});
