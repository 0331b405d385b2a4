//! reqwest (async) on tokio: errors classified with `classify_error`, responses with
//! `ResponseClassifier`, and the server's `Retry-After` honoured.
//!
//! An in-process HTTP server on 127.0.0.1 answers the first request with
//! `429 Too Many Requests` and `Retry-After: 1`, the second with `503 Service Unavailable`,
//! and the third with `200 OK`. The policy's `retry_after_or` strategy sleeps for the
//! server's hint when there is one (1 s, plus a little jitter so that clients told the same
//! thing do not return in the same instant) and backs off on its own otherwise. A
//! `before_sleep` hook prints each sleep.
//!
//! `cargo run -p redress-examples --example reqwest_async`
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use redress::backoff::{equal_jitter, retry_after_or};
use redress::classify::reqwest::{ResponseClassifier, classify_error};
use redress::{ErrorClass, Retry};
use redress_examples::{greeting_server, sleep_recorder};
use redress_tokio::RunAsync;

/// Starts the server on a free port of 127.0.0.1; returns its URL and its request count.
async fn start_server() -> std::io::Result<(String, Arc<AtomicU32>)> {
    let (app, hits) = greeting_server();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/greeting", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, hits))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (url, hits) = start_server().await?;

    let policy = Retry::builder()
        .max_attempts(4)
        .deadline(Duration::from_secs(10))
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

    let (sleeps, print_and_record) = sleep_recorder();
    let ctx = policy
        .context("get_greeting")
        // Transport errors: refused, reset, timed out → Transient; a bad URL → Permanent.
        .classify(classify_error)
        // Responses: 429 → RateLimit, 5xx → ServerError, each with its Retry-After.
        .classify_result(ResponseClassifier::default())
        .before_sleep(print_and_record);

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let response = ctx
        .run(async |attempt| {
            println!("attempt {}: GET {url}", attempt.n);
            client.get(&url).send().await
        })
        .await?;
    let status = response.status();
    let body = response.text().await?;
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
