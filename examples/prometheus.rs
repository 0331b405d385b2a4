//! Metrics of retries and a circuit breaker, exported in the Prometheus text format.
//!
//! `MetricsHook` records through the `metrics` facade; here the recorder is
//! metrics-exporter-prometheus, installed without an HTTP listener: `handle.render()` is
//! what a `/metrics` endpoint would serve. Three operations run: one that recovers after
//! two passing faults, one that fails permanently, and one whose dependency is down long
//! enough to open the breaker, which then rejects a call, admits a probe and closes.
//!
//! `cargo run -p redress-examples --example prometheus`
#![forbid(unsafe_code)]

use std::io;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use redress::backoff::constant;
use redress::observe::MetricsHook;
use redress::{CircuitBreaker, Policy, Retry};
use redress_blocking::RunBlocking;

const RECOVERY: Duration = Duration::from_millis(100);

/// A call's result, for printing.
fn show<T: std::fmt::Debug, E: std::fmt::Display>(r: &Result<T, E>) -> String {
    match r {
        Ok(v) => format!("{v:?}"),
        Err(e) => e.to_string(),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Histograms with buckets (the exporter's default is a summary of quantiles).
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("redress_retry_sleep_seconds".into()),
            &[0.001, 0.01, 0.1, 1.0, 10.0],
        )?
        .set_buckets_for_metric(
            Matcher::Full("redress_call_attempts".into()),
            &[0.0, 1.0, 2.0, 3.0, 5.0, 10.0],
        )?
        .install_recorder()?;
    let metrics = MetricsHook::new();
    // After the recorder is installed: the descriptions become `# HELP` lines.
    metrics.describe();

    let retry = || {
        Retry::builder()
            .max_attempts(3)
            .strategy(constant(Duration::from_millis(1)))
    };
    let api = Policy::builder()
        .retry(retry())
        .hook(metrics.clone())
        .build()?;
    let breaker = CircuitBreaker::consecutive(3, Duration::from_secs(10))
        .recovery(RECOVERY)
        .build()?;
    let db = Policy::builder()
        .retry(retry())
        .breaker(Arc::new(breaker))
        .hook(metrics)
        .build()?;

    // Two connection resets (Transient), then an answer.
    let mut resets = 2;
    let user = api.context("fetch").run(|_| {
        if resets > 0 {
            resets -= 1;
            return Err(io::Error::from(io::ErrorKind::ConnectionReset));
        }
        Ok("user 7")
    })?;
    println!("fetch: {user}");

    // Not found is Permanent: one attempt, no retry.
    let missing = api
        .context("save")
        .run(|_| Err::<(), _>(io::Error::from(io::ErrorKind::NotFound)));
    println!("save: {}", show(&missing));

    // The database is down: three refused connections open the breaker, which rejects the
    // next call at once; after its recovery time a probe succeeds and it closes again.
    let refused = || Err::<(), _>(io::Error::from(io::ErrorKind::ConnectionRefused));
    let outage = db.context("db").run(|_| refused());
    println!("db: {}", show(&outage));
    let rejected = db.context("db").run(|_| refused());
    println!("db: {}", show(&rejected));
    std::thread::sleep(RECOVERY);
    db.context("db").run(|_| Ok::<_, io::Error>(()))?;
    println!("db: recovered");

    let text = handle.render();
    println!("\n{text}");

    for series in [
        "# HELP redress_calls_total Calls ended, by outcome: success or the stop reason",
        "# TYPE redress_calls_total counter",
        r#"redress_calls_total{operation="fetch",outcome="success"} 1"#,
        r#"redress_retries_total{operation="fetch",class="transient"} 2"#,
        r#"redress_retry_sleep_seconds_bucket{operation="fetch",class="transient",le="0.001"} 2"#,
        r#"redress_retry_sleep_seconds_count{operation="fetch",class="transient"} 2"#,
        r#"redress_attempts_total{operation="fetch"} 3"#,
        r#"redress_calls_total{operation="save",outcome="non_retryable"} 1"#,
        r#"redress_stops_total{operation="save",reason="non_retryable",class="permanent"} 1"#,
        r#"redress_calls_total{operation="db",outcome="max_attempts"} 1"#,
        r#"redress_calls_total{operation="db",outcome="circuit_open"} 1"#,
        r#"redress_calls_total{operation="db",outcome="success"} 1"#,
        r#"redress_circuit_rejections_total{operation="db"} 1"#,
        r#"redress_circuit_transitions_total{operation="db",to="open"} 1"#,
        r#"redress_circuit_transitions_total{operation="db",to="half_open"} 1"#,
        r#"redress_circuit_transitions_total{operation="db",to="closed"} 1"#,
        r#"redress_circuit_state{operation="db"} 0"#,
        r#"redress_attempts_total{operation="db"} 4"#,
        r#"redress_call_attempts_bucket{operation="db",le="0"} 1"#,
        r#"redress_call_attempts_bucket{operation="db",le="1"} 2"#,
        r#"redress_call_attempts_count{operation="db"} 3"#,
    ] {
        assert!(text.contains(series), "missing from the export: {series}");
    }
    Ok(())
}
