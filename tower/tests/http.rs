//! The layer over HTTP services (`tower::service_fn` over `http::Request`), with
//! `RetryLayer::http`'s defaults (the core's `ResponseClassifier`): status-based retries,
//! `Retry-After`, the idempotency rule, replayable bodies, the breaker, the budget,
//! and released response bodies. Time is tokio's paused clock.
#![cfg(feature = "http")]
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::RETRY_AFTER;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use redress::backoff::{constant, retry_after_or};
use redress::event::{EventKind, Recorder};
use redress::{Budget, CircuitBreaker, ErrorClass, LastFailure, Policy, Retry, StopReason};
use redress_tower::http::{IDEMPOTENCY_KEY, Idempotent, ReplayBody};
use redress_tower::{Error, RetryLayer};
use tower::{Layer, Service, ServiceExt, service_fn};

mod common;

/// `attempts` attempts 1 s apart, no deadline, events to `hook`.
fn policy(attempts: u32, hook: &Recorder) -> Policy {
    common::observed_builder(attempts, hook).build().unwrap()
}

/// [`policy`] with 3 attempts and a consecutive breaker that opens after `threshold`
/// failures in a row and stays open for 30 s.
fn breaker_policy(threshold: u32, hook: &Recorder) -> Policy {
    let breaker = CircuitBreaker::consecutive(threshold, Duration::from_secs(60))
        .recovery(Duration::from_secs(30))
        .build()
        .unwrap();
    common::observed_builder(3, hook)
        .breaker(Arc::new(breaker))
        .build()
        .unwrap()
}

/// A response body that counts its drops (it stands for a pooled connection).
#[derive(Debug)]
struct Tracked {
    drops: Arc<AtomicUsize>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

/// Answers call n (from 0) with `statuses[n]` (the last one from then on), counting calls.
#[derive(Clone)]
struct Script {
    statuses: Arc<Vec<(u16, Option<&'static str>)>>,
    calls: Arc<AtomicUsize>,
    drops: Arc<AtomicUsize>,
    /// Drops counted when each call started.
    seen: Arc<Mutex<Vec<usize>>>,
}

impl Script {
    fn new(statuses: &[u16]) -> Self {
        Self::with_headers(&statuses.iter().map(|s| (*s, None)).collect::<Vec<_>>())
    }

    fn with_headers(statuses: &[(u16, Option<&'static str>)]) -> Self {
        Self {
            statuses: Arc::new(statuses.to_vec()),
            calls: Arc::default(),
            drops: Arc::default(),
            seen: Arc::default(),
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn drops(&self) -> usize {
        self.drops.load(Ordering::SeqCst)
    }

    fn respond(&self) -> Response<Tracked> {
        self.seen.lock().unwrap().push(self.drops());
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let (status, retry_after) = self.statuses[n.min(self.statuses.len() - 1)];
        let mut r = Response::new(Tracked {
            drops: Arc::clone(&self.drops),
        });
        *r.status_mut() = StatusCode::from_u16(status).unwrap();
        if let Some(v) = retry_after {
            r.headers_mut().insert(RETRY_AFTER, v.parse().unwrap());
        }
        r
    }

    /// A service over requests with body `B`.
    fn service<B: Send + 'static>(
        &self,
    ) -> impl Service<
        Request<B>,
        Response = Response<Tracked>,
        Error = Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static {
        let script = self.clone();
        service_fn(move |_req: Request<B>| {
            let r = script.respond();
            async move { Ok::<_, Infallible>(r) }
        })
    }
}

async fn send<S, B>(svc: &mut S, req: Request<B>) -> Result<Response<Tracked>, Error>
where
    S: Service<Request<B>, Response = Response<Tracked>, Error = Error>,
{
    svc.ready().await?.call(req).await
}

fn get() -> Request<String> {
    Request::get("http://svc/items")
        .body(String::new())
        .unwrap()
}

fn retries(rec: &Recorder) -> Vec<(Duration, Option<Duration>)> {
    rec.take()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::Retry { delay, retry_after } => Some((delay, retry_after)),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn two_503s_then_a_200_make_three_calls_and_return_the_200() {
    let rec = Recorder::default();
    let script = Script::new(&[503, 503, 200]);
    let mut svc = RetryLayer::http(policy(3, &rec)).layer(script.service());
    let r = send(&mut svc, get()).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(script.calls(), 3);
    assert_eq!(retries(&rec).len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_429s_retry_after_sets_the_sleep() {
    let rec = Recorder::default();
    let policy =
        Policy::builder()
            .retry(Retry::builder().max_attempts(3).no_deadline().strategy(
                retry_after_or(constant(Duration::from_millis(100))).jitter(Duration::ZERO),
            ))
            .hook(rec.clone())
            .build()
            .unwrap();
    let script = Script::with_headers(&[(429, Some("7")), (200, None)]);
    let mut svc = RetryLayer::http(policy).layer(script.service());
    let start = tokio::time::Instant::now();
    let r = send(&mut svc, get()).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(script.calls(), 2);
    let seven = Duration::from_secs(7);
    assert_eq!(retries(&rec), [(seven, Some(seven))]);
    // The paused clock moved by the hint (tokio rounds timers up to the millisecond).
    let slept = start.elapsed();
    assert!(
        slept >= seven && slept <= seven + Duration::from_millis(1),
        "{slept:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_404_is_not_retried_and_is_returned() {
    let rec = Recorder::default();
    let script = Script::new(&[404, 200]);
    let mut svc = RetryLayer::http(policy(3, &rec)).layer(script.service());
    let r = send(&mut svc, get()).await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(script.calls(), 1);
    let stopped: Vec<_> = rec.take().into_iter().map(|e| e.kind).collect();
    assert!(
        stopped.contains(&EventKind::Stopped(StopReason::NonRetryable(
            ErrorClass::Permanent
        )))
    );
}

#[tokio::test(start_paused = true)]
async fn the_last_rejected_response_is_returned_as_ok_with_only_its_body_alive() {
    let rec = Recorder::default();
    let script = Script::new(&[503]);
    let mut svc = RetryLayer::http(policy(3, &rec)).layer(script.service());
    let r = send(&mut svc, get()).await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(script.calls(), 3);
    // The first two bodies were released; the third is the one returned.
    assert_eq!(script.drops(), 2);
    drop(r);
    assert_eq!(script.drops(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_retried_responses_body_is_dropped_before_the_sleep_and_the_next_attempt() {
    let script = Script::new(&[503, 503, 200]);
    // The policy's hook sees the retry decided, before the sleep starts.
    let at_retry = Arc::new(Mutex::new(Vec::new()));
    let hook = {
        let drops = Arc::clone(&script.drops);
        let at_retry = Arc::clone(&at_retry);
        move |e: &redress::Event<'_>| {
            if matches!(e.kind, EventKind::Retry { .. }) {
                at_retry.lock().unwrap().push(drops.load(Ordering::SeqCst));
            }
        }
    };
    let policy = Policy::builder()
        .retry(
            Retry::builder()
                .max_attempts(3)
                .no_deadline()
                .strategy(constant(Duration::from_secs(1))),
        )
        .hook(hook)
        .build()
        .unwrap();
    let mut svc = RetryLayer::http(policy).layer(script.service());
    let r = send(&mut svc, get()).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(*at_retry.lock().unwrap(), [1, 2]);
    assert_eq!(*script.seen.lock().unwrap(), [0, 1, 2]);
}

#[tokio::test(start_paused = true)]
async fn only_idempotent_or_opted_in_requests_are_retried() {
    // (method, Idempotency-Key header, Idempotent marker, layer retries any method,
    //  inner calls against a dependency that always answers 503, with 3 attempts allowed)
    let table = [
        (Method::GET, false, false, false, 3),
        (Method::HEAD, false, false, false, 3),
        (Method::PUT, false, false, false, 3),
        (Method::DELETE, false, false, false, 3),
        (Method::POST, false, false, false, 1),
        (Method::PATCH, false, false, false, 1),
        (Method::POST, true, false, false, 3),
        (Method::PATCH, true, false, false, 3),
        (Method::POST, false, true, false, 3),
        (Method::POST, false, false, true, 3),
    ];
    for (method, key, marker, any, expected) in table {
        let rec = Recorder::default();
        let script = Script::new(&[503]);
        let mut svc = RetryLayer::http(policy(3, &rec))
            .retry_non_idempotent(any)
            .layer(script.service());
        let mut req = Request::builder()
            .method(method.clone())
            .uri("http://svc/pay");
        if key {
            req = req.header(IDEMPOTENCY_KEY, "order-42");
        }
        if marker {
            req = req.extension(Idempotent);
        }
        let r = send(&mut svc, req.body(Bytes::from_static(b"{}")).unwrap())
            .await
            .unwrap();
        assert_eq!(r.status(), 503);
        assert_eq!(
            script.calls(),
            expected,
            "{method} key={key} marker={marker} any={any}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_renamed_idempotency_header_opts_requests_in() {
    let rec = Recorder::default();
    let script = Script::new(&[503]);
    let mut svc = RetryLayer::http(policy(3, &rec))
        .idempotency_header(http::HeaderName::from_static("x-once"))
        .layer(script.service());
    let req = Request::post("http://svc/pay")
        .header("x-once", "1")
        .body(String::new())
        .unwrap();
    send(&mut svc, req).await.unwrap();
    assert_eq!(script.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_request_whose_body_cannot_be_copied_is_sent_once() {
    type Boxed = BoxBody<Bytes, Infallible>;
    assert!(Boxed::default().replay_body().is_none());
    let rec = Recorder::default();
    let script = Script::new(&[503, 200]);
    let mut svc = RetryLayer::http(policy(3, &rec)).layer(script.service::<Boxed>());
    let req = Request::get("http://svc/stream")
        .body(Boxed::default())
        .unwrap();
    let r = send(&mut svc, req).await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(script.calls(), 1);
    let kinds: Vec<_> = rec.take().into_iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&EventKind::Stopped(StopReason::MaxAttempts)));
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_rejects_without_calling_the_service() {
    let rec = Recorder::default();
    let policy = breaker_policy(3, &rec);
    // A sustained outage, then recovery on the fourth call.
    let script = Script::new(&[503, 503, 503, 200]);
    let mut svc = RetryLayer::http(policy).layer(script.service());

    // Three failures in a row open the breaker; the third 503 is the answer.
    let r = send(&mut svc, get()).await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(script.calls(), 3);
    assert!(rec.names().contains(&"circuit_opened"));

    // While open, calls fail at once and the service is not called.
    for _ in 0..5 {
        let err = send(&mut svc, get()).await.unwrap_err();
        assert!(err.is_circuit_open());
        assert_eq!(err.attempts(), 0);
        assert!(matches!(err.last(), LastFailure::Nothing));
    }
    assert_eq!(script.calls(), 3);

    // After the recovery time one probe goes through, succeeds, and closes the breaker.
    tokio::time::advance(Duration::from_secs(30)).await;
    let r = send(&mut svc, get()).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(script.calls(), 4);
    assert!(rec.names().contains(&"circuit_closed"));
}

#[tokio::test(start_paused = true)]
async fn a_breaker_opening_mid_call_still_returns_the_last_response() {
    // The second 503 opens the breaker; the machine plans a retry after 1 s, but the breaker
    // stays open for 30 s and refuses it at wake-up. The 503 is kept for the caller.
    let rec = Recorder::default();
    let policy = breaker_policy(2, &rec);
    let script = Script::new(&[503]);
    let mut svc = RetryLayer::http(policy).layer(script.service());
    let r = send(&mut svc, get()).await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(script.calls(), 2);
    assert!(rec.names().contains(&"circuit_opened"));
    // Only the returned response's body is alive: the first 503's was released.
    assert_eq!(script.drops(), 1);
    drop(r);
    assert_eq!(script.drops(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_shared_budget_caps_the_retries_of_every_call() {
    let rec = Recorder::default();
    let budget = Arc::new(Budget::rolling(2, Duration::from_secs(60)).build().unwrap());
    let policy = Policy::builder()
        .retry(
            Retry::builder()
                .max_attempts(5)
                .no_deadline()
                .strategy(constant(Duration::from_secs(1)))
                .budget(budget),
        )
        .hook(rec.clone())
        .build()
        .unwrap();
    let script = Script::new(&[503]);
    let mut svc = RetryLayer::http(policy).layer(script.service());

    // The first call gets the budget's two retries, not the policy's four.
    let r = send(&mut svc, get()).await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(script.calls(), 3);
    // The second has none left.
    send(&mut svc, get()).await.unwrap();
    assert_eq!(script.calls(), 4);
    let budget_stops = rec
        .take()
        .into_iter()
        .filter(|e| e.kind == EventKind::Stopped(StopReason::BudgetExhausted))
        .count();
    assert_eq!(budget_stops, 2);
}

#[tokio::test(start_paused = true)]
async fn the_call_future_is_send_and_static() {
    fn assert_send_static<T: Send + 'static>(_: &T) {}
    let rec = Recorder::default();
    let script = Script::new(&[200]);
    let mut svc = RetryLayer::http(policy(3, &rec)).layer(script.service());
    svc.ready().await.unwrap();
    let fut = svc.call(get());
    assert_send_static(&fut);
    // And it runs on another task.
    let r = tokio::spawn(fut).await.unwrap().unwrap();
    assert_eq!(r.status(), 200);
}
