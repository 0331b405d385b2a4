//! Runnable examples of redress; see the `[[example]]` entries of this package.
//!
//! This library holds what several examples share and none is about: the scripted HTTP
//! server of the reqwest examples and a `before_sleep` hook that prints and records sleeps.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::RETRY_AFTER;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use redress::ErrorClass;
use redress::drive::{SleepInfo, SleepVerdict};

/// The server's script: 429 with `Retry-After: 1`, then 503, then 200.
async fn flaky(State(hits): State<Arc<AtomicU32>>) -> Response {
    match hits.fetch_add(1, Ordering::SeqCst) + 1 {
        1 => (
            StatusCode::TOO_MANY_REQUESTS,
            [(RETRY_AFTER, "1")],
            "slow down",
        )
            .into_response(),
        2 => (StatusCode::SERVICE_UNAVAILABLE, "restarting").into_response(),
        _ => "hello from the server".into_response(),
    }
}

/// The reqwest examples' server at `/greeting`: it answers the first request with
/// `429 Too Many Requests` and `Retry-After: 1`, the second with `503 Service Unavailable`,
/// and later ones with `200 OK` and `hello from the server`. Also returns its request count.
pub fn greeting_server() -> (Router, Arc<AtomicU32>) {
    let hits = Arc::new(AtomicU32::new(0));
    let app = Router::new()
        .route("/greeting", get(flaky))
        .with_state(Arc::clone(&hits));
    (app, hits)
}

/// The sleeps a [`sleep_recorder`] saw: the class of the failure and the delay, in order.
pub type Sleeps = Arc<Mutex<Vec<(Option<ErrorClass>, Duration)>>>;

/// A `before_sleep` hook that prints each sleep, records it in the returned [`Sleeps`], and
/// lets it go ahead.
pub fn sleep_recorder() -> (
    Sleeps,
    impl Fn(&SleepInfo) -> SleepVerdict + Send + Sync + 'static,
) {
    let sleeps = Sleeps::default();
    let hook = {
        let sleeps = Arc::clone(&sleeps);
        move |s: &SleepInfo| {
            let class = s.class.map_or("-", ErrorClass::name);
            println!(
                "attempt {} failed ({class}): sleeping {:?}",
                s.attempt, s.delay
            );
            sleeps
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((s.class, s.delay));
            SleepVerdict::Sleep
        }
    };
    (sleeps, hook)
}
