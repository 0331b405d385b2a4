//! A blocking call with a per-class policy, an operation name and a tracing-style hook.
//!
//! `cargo run -p redress-examples --example blocking`
#![forbid(unsafe_code)]

use std::io;
use std::time::Duration;

use redress::backoff::{constant, exponential};
use redress::{ErrorClass, Event, Policy, Retry};
use redress_blocking::RunBlocking;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let policy = Policy::builder()
        .retry(
            Retry::builder()
                .max_attempts(4)
                .strategy(exponential(
                    Duration::from_millis(20),
                    Duration::from_millis(200),
                ))
                .class_strategy(ErrorClass::Concurrency, constant(Duration::from_millis(5))),
        )
        .hook(|e: &Event<'_>| println!("  event: {e}"))
        .build()?;

    // A flaky operation: reset, deadlock-ish conflict, then success.
    let mut script = vec![
        Err(io::Error::from(io::ErrorKind::ConnectionReset)),
        Err(io::Error::other(
            "could not serialize access due to concurrent update",
        )),
        Ok("row 42"),
    ]
    .into_iter();
    let (result, report) = policy.context("load_row").run_with_report(|attempt| {
        println!(
            "attempt {} (time limit {:?})",
            attempt.n, attempt.time_limit
        );
        script.next().unwrap_or(Ok("row 42"))
    });
    println!("result: {:?}", result.map_err(|e| e.to_string()));
    println!(
        "attempts: {}, slept: {:?}, timeline: {:?}",
        report.attempts, report.total_sleep, report.timeline
    );
    Ok(())
}
