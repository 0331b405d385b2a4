//! An axum service calling a flaky downstream through `redress-tower`'s `RetryLayer`, with a
//! policy per route and a Prometheus `/metrics` route fed by `MetricsHook`.
//!
//! Two servers run in-process on 127.0.0.1:
//!
//! - the **downstream** (a plain axum app) answers `GET /profile` with `503`, then `200`,
//!   then hangs for three seconds, then `200`; and `POST /orders` with `503` twice, then
//!   `201`;
//! - the **service** (the part to copy) has three routes:
//!   - `GET /profile` calls the downstream through a `reqwest::Client` wrapped in
//!     `RetryLayer::http`: 3 attempts, 300 ms per attempt, 1 s in all. A `503` is retried, a
//!     hung attempt is cut off and retried;
//!   - `POST /orders` goes through its own layer and policy. `RetryLayer::http` never sends a
//!     `POST` twice unless it carries an `Idempotency-Key`, so the handler forwards the
//!     caller's key, and only keyed orders are retried: a repeated order could charge twice;
//!   - `GET /metrics` renders what `MetricsHook` recorded, through
//!     `metrics-exporter-prometheus`.
//!
//! The example then calls its own service with reqwest, prints the answers and the metrics,
//! and checks both.
//!
//! `cargo run -p redress-examples --example axum_service`
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use redress::backoff::{constant, equal_jitter};
use redress::classify::http::ResponseClassifier;
use redress::observe::MetricsHook;
use redress::{ChainClassifier, LastFailure, Policy, Retry};
use redress_tower::http::{HttpReplay, IDEMPOTENCY_KEY};
use redress_tower::{RetryLayer, RetryService};
use tower::{Layer, ServiceExt};

// ----- the flaky downstream --------------------------------------------------------------

#[derive(Clone, Default)]
struct Downstream {
    profile_calls: Arc<AtomicU32>,
    order_calls: Arc<AtomicU32>,
}

async fn downstream_profile(State(d): State<Downstream>) -> Response {
    match d.profile_calls.fetch_add(1, Ordering::SeqCst) + 1 {
        1 => (StatusCode::SERVICE_UNAVAILABLE, "restarting").into_response(),
        3 => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            "too late".into_response()
        }
        _ => "ada lovelace, analyst".into_response(),
    }
}

async fn downstream_orders(State(d): State<Downstream>, body: String) -> Response {
    match d.order_calls.fetch_add(1, Ordering::SeqCst) + 1 {
        1 | 2 => (StatusCode::SERVICE_UNAVAILABLE, "overloaded").into_response(),
        _ => (StatusCode::CREATED, format!("order placed: {body}")).into_response(),
    }
}

// ----- the service ------------------------------------------------------------------------

/// A `reqwest::Client` under a policy, with the safe HTTP defaults.
type Client = RetryService<reqwest::Client, ChainClassifier, ResponseClassifier, HttpReplay>;

#[derive(Clone)]
struct App {
    profile_url: reqwest::Url,
    orders_url: reqwest::Url,
    profile: Client,
    orders: Client,
    metrics: PrometheusHandle,
}

async fn profile(State(app): State<App>) -> Response {
    let request = reqwest::Request::new(reqwest::Method::GET, app.profile_url);
    relay(app.profile.oneshot(request).await).await
}

async fn orders(State(app): State<App>, headers: HeaderMap, body: String) -> Response {
    let mut request = reqwest::Request::new(reqwest::Method::POST, app.orders_url);
    *request.body_mut() = Some(body.into());
    // The caller's key makes the order safe to send again, so the layer may retry it.
    if let Some(key) = headers.get(&IDEMPOTENCY_KEY) {
        request.headers_mut().insert(IDEMPOTENCY_KEY, key.clone());
    }
    relay(app.orders.oneshot(request).await).await
}

async fn metrics(State(app): State<App>) -> String {
    app.metrics.render()
}

/// The downstream's answer (the last one, if retries ran out), or 504 / 502 when there was
/// none.
async fn relay(result: Result<reqwest::Response, redress_tower::Error>) -> Response {
    match result {
        Ok(response) => {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            (status, body).into_response()
        }
        Err(e) => {
            let status = match e.last() {
                LastFailure::TimedOut => StatusCode::GATEWAY_TIMEOUT,
                _ => StatusCode::BAD_GATEWAY,
            };
            (status, e.to_string()).into_response()
        }
    }
}

/// Serves `app` on a free port of 127.0.0.1; returns its base URL.
async fn serve(app: Router) -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Histograms with buckets (the exporter's default is a summary of quantiles).
    let prometheus = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("redress_retry_sleep_seconds".into()),
            &[0.01, 0.1, 1.0],
        )?
        .set_buckets_for_metric(
            Matcher::Full("redress_call_attempts".into()),
            &[1.0, 2.0, 3.0],
        )?
        .install_recorder()?;
    let hook = MetricsHook::new();
    hook.describe();

    let downstream = Downstream::default();
    let downstream_url = serve(
        Router::new()
            .route("/profile", get(downstream_profile))
            .route("/orders", post(downstream_orders))
            .with_state(downstream.clone()),
    )
    .await?;

    // Reads: a few quick attempts, each cut off after 300 ms, all within a second.
    let read_policy = Policy::builder()
        .retry(
            Retry::builder()
                .max_attempts(3)
                .attempt_timeout(Duration::from_millis(300))
                .deadline(Duration::from_secs(1))
                .strategy(constant(Duration::from_millis(20))),
        )
        .hook(hook.clone())
        .build()?;
    // Orders: more patience, jittered backoff.
    let order_policy = Policy::builder()
        .retry(
            Retry::builder()
                .max_attempts(4)
                .attempt_timeout(Duration::from_secs(1))
                .deadline(Duration::from_secs(5))
                .strategy(equal_jitter(
                    Duration::from_millis(20),
                    Duration::from_millis(200),
                )),
        )
        .hook(hook)
        .build()?;
    let http = reqwest::Client::new();
    let app = App {
        profile_url: format!("{downstream_url}/profile").parse()?,
        orders_url: format!("{downstream_url}/orders").parse()?,
        profile: RetryLayer::http(read_policy)
            .operation("profile")
            .layer(http.clone()),
        orders: RetryLayer::http(order_policy)
            .operation("orders")
            .layer(http),
        metrics: prometheus,
    };
    let service = serve(
        Router::new()
            .route("/profile", get(profile))
            .route("/orders", post(orders))
            .route("/metrics", get(metrics))
            .with_state(app),
    )
    .await?;

    // A caller of the service.
    let caller = reqwest::Client::new();
    let mut answers = Vec::new();
    let requests = [
        ("GET /profile", caller.get(format!("{service}/profile"))),
        ("GET /profile", caller.get(format!("{service}/profile"))),
        (
            "POST /orders",
            caller.post(format!("{service}/orders")).body("1 tea"),
        ),
        (
            "POST /orders (Idempotency-Key)",
            caller
                .post(format!("{service}/orders"))
                .header("idempotency-key", "order-7")
                .body("2 coffees"),
        ),
    ];
    for (what, request) in requests {
        let response = request.send().await?;
        let status = response.status();
        let body = response.text().await?;
        println!("{what} -> {status}: {body}");
        answers.push(status.as_u16());
    }
    let text = caller
        .get(format!("{service}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    println!("\nGET /metrics:\n{text}");

    // The first read: a 503, then the answer. The second: a hung attempt cut off (timed
    // out, which is Transient), then the answer. The unkeyed order: sent once, its 503
    // relayed. The keyed order: a 503, then placed.
    assert_eq!(answers, [200, 200, 503, 201]);
    assert_eq!(downstream.profile_calls.load(Ordering::SeqCst), 4);
    assert_eq!(downstream.order_calls.load(Ordering::SeqCst), 3);
    for series in [
        r#"redress_calls_total{operation="profile",outcome="success"} 2"#,
        r#"redress_retries_total{operation="profile",class="server_error"} 1"#,
        r#"redress_retries_total{operation="profile",class="transient"} 1"#,
        r#"redress_attempts_total{operation="profile"} 4"#,
        r#"redress_calls_total{operation="orders",outcome="max_attempts"} 1"#,
        r#"redress_calls_total{operation="orders",outcome="success"} 1"#,
        r#"redress_retries_total{operation="orders",class="server_error"} 1"#,
        r#"redress_attempts_total{operation="orders"} 3"#,
        r#"redress_call_attempts_bucket{operation="orders",le="1"} 1"#,
    ] {
        assert!(text.contains(series), "missing from /metrics: {series}");
    }
    Ok(())
}
