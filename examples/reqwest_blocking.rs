//! `reqwest::blocking` with the blocking driver: errors classified with `classify_error`,
//! responses by their status and `Retry-After`, and each attempt's time limit passed on to
//! the request.
//!
//! An HTTP server on 127.0.0.1 (on a background thread, with its own tokio runtime) answers
//! the first request with `429 Too Many Requests` and `Retry-After: 1`, the second with
//! `503 Service Unavailable`, and the third with `200 OK`. The policy's `retry_after_or`
//! strategy sleeps for the server's hint when there is one and backs off on its own
//! otherwise; a `before_sleep` hook prints each sleep.
//!
//! A blocking call cannot be interrupted from outside, so the driver tells each attempt how
//! long it may take (`Attempt::time_limit`: the earlier of the per-attempt timeout and the
//! call's deadline), and the request carries that as its timeout.
//!
//! `cargo run -p redress-examples --example reqwest_blocking`
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use redress::backoff::{equal_jitter, retry_after_or};
use redress::classify::reqwest::{ResponseClassifier, classify_error};
use redress::{ErrorClass, Retry};
use redress_blocking::RunBlocking;
use redress_examples::{greeting_server, sleep_recorder};

/// Starts the server on a background thread; returns its URL and its request count. The
/// thread ends with the process.
fn start_server() -> std::io::Result<(String, Arc<AtomicU32>)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let url = format!("http://{}/greeting", listener.local_addr()?);
    let (app, hits) = greeting_server();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::spawn(move || {
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            axum::serve(listener, app).await
        })
    });
    Ok((url, hits))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (url, hits) = start_server()?;

    let policy = Retry::builder()
        .max_attempts(4)
        .deadline(Duration::from_secs(10))
        .attempt_timeout(Duration::from_secs(2))
        // The server's hint when it gives one (capped at 5 s, plus up to 50 ms of jitter),
        // else equal jitter.
        .strategy(
            retry_after_or(equal_jitter(
                Duration::from_millis(50),
                Duration::from_millis(500),
            ))
            .max_hint(Duration::from_secs(5))
            .jitter(Duration::from_millis(50)),
        )
        .policy()?;

    // `ResponseClassifier` reads a status and its headers; a blocking response hands it
    // both.
    let responses = ResponseClassifier::default();
    let (sleeps, print_and_record) = sleep_recorder();
    let ctx = policy
        .context("get_greeting")
        // Transport errors: refused, reset, timed out → Transient; a bad URL → Permanent.
        .classify(classify_error)
        // Responses: 429 → RateLimit, 5xx → ServerError, each with its Retry-After.
        .classify_result(move |r: &reqwest::blocking::Response| {
            responses.classify_parts(r.status(), r.headers())
        })
        .before_sleep(print_and_record);

    let client = reqwest::blocking::Client::new();
    let response = ctx.run(|attempt| {
        let limit = attempt.time_limit.unwrap_or(Duration::from_secs(2));
        println!("attempt {}: GET {url} (timeout {limit:?})", attempt.n);
        client.get(&url).timeout(limit).send()
    })?;
    let status = response.status();
    let body = response.text()?;
    let requests = hits.load(Ordering::SeqCst);
    println!("answer: {status} {body:?}; the server saw {requests} requests");

    let sleeps = sleeps.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_eq!(requests, 3);
    assert_eq!(body, "hello from the server");
    assert_eq!(sleeps.len(), 2);
    // The 429's Retry-After: 1 s, plus at most the 50 ms of jitter.
    let (class, delay) = sleeps[0];
    assert_eq!(class, Some(ErrorClass::RateLimit));
    assert!(delay >= Duration::from_secs(1) && delay <= Duration::from_millis(1050));
    // The 503 had no hint: the fallback's equal jitter after attempt 2 is 100-200 ms.
    let (class, delay) = sleeps[1];
    assert_eq!(class, Some(ErrorClass::ServerError));
    assert!(delay >= Duration::from_millis(100) && delay <= Duration::from_millis(200));
    Ok(())
}
