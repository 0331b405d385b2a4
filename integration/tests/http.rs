//! A reqwest client through `redress_tokio` against a scripted HTTP server (hyper, HTTP/1.1 on
//! 127.0.0.1).
//!
//! The server serves a script per path: a list of steps (a response, or a connection reset
//! without any response), one per request, repeating the last step forever. It counts the
//! requests of each path itself, and every test asserts that count exactly.
//!
//! | Test | Script | Expected |
//! |------|--------|----------|
//! | `server_errors_are_retried_until_success` | 503, 503, 200 | `Ok(200)`, 3 requests |
//! | `retry_after_seconds_sets_the_sleep` | 429 `Retry-After: 1`, 200 | one sleep of exactly 1 s (backoff 1 ms), 2 requests |
//! | `retry_after_date_sets_the_sleep` | 429 `Retry-After: <HTTP-date 2 s ahead>`, 200 | one sleep of 1–2 s, 2 requests |
//! | `reset_connection_is_transient` | reset, 200 | the failure is `Transient`, `Ok(200)`, 2 requests |
//! | `not_found_is_not_retried` | 404 | `NonRetryable(Permanent)` after 1 attempt, 1 request |
//! | `unauthorized_is_not_retried` | 401 | `NonRetryable(Auth)` after 1 attempt, 1 request |
//! | `breaker_opens_under_a_sustained_outage` | 503 forever | the breaker opens after exactly its threshold of requests; rejected calls send none |
//! | `scripted_server_repeats_its_last_step` | 500, 201 / 204 (no redress) | steps in order, the last repeated; counts per path |

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use redress::backoff::{constant, retry_after_or};
use redress::classify::reqwest::{ResponseClassifier, classify_error};
use redress::drive::SleepVerdict;
use redress::event::{EventRecord, Recorder};
use redress::{CircuitBreaker, CircuitState, ErrorClass, EventKind, Policy, Retry, StopReason};
use redress_tokio::RunAsync as _;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

// ----- the scripted server -----------------------------------------------------------------

/// What the server does with one request.
#[derive(Clone, Debug)]
enum Step {
    /// Answers with this status and these headers (empty body).
    Respond {
        status: u16,
        headers: Vec<(&'static str, String)>,
        /// Adds `Retry-After: <HTTP-date>` for a date about this far ahead (see
        /// [`http_date_ahead`]).
        retry_after_date: Option<Duration>,
    },
    /// Fails the request: hyper drops the connection without writing a response.
    Reset,
}

impl Step {
    fn status(status: u16) -> Self {
        Self::Respond {
            status,
            headers: Vec::new(),
            retry_after_date: None,
        }
    }

    fn header(mut self, name: &'static str, value: &str) -> Self {
        if let Self::Respond { headers, .. } = &mut self {
            headers.push((name, value.to_owned()));
        }
        self
    }

    fn retry_after_date(mut self, ahead: Duration) -> Self {
        if let Self::Respond {
            retry_after_date, ..
        } = &mut self
        {
            *retry_after_date = Some(ahead);
        }
        self
    }
}

struct Script {
    steps: Vec<Step>,
    served: AtomicUsize,
}

type Scripts = Arc<HashMap<&'static str, Script>>;

/// An HTTP/1.1 server on 127.0.0.1 serving per-path scripts; stopped on drop.
struct ScriptedServer {
    addr: SocketAddr,
    scripts: Scripts,
    accept: JoinHandle<()>,
}

impl ScriptedServer {
    async fn start(scripts: &[(&'static str, Vec<Step>)]) -> std::io::Result<Self> {
        let scripts: Scripts = Arc::new(
            scripts
                .iter()
                .map(|(path, steps)| {
                    assert!(!steps.is_empty(), "a script needs a step");
                    let script = Script {
                        steps: steps.clone(),
                        served: AtomicUsize::new(0),
                    };
                    (*path, script)
                })
                .collect(),
        );
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::clone(&scripts);
        let accept = tokio::spawn(async move {
            // Dropping the set (when the accept task is aborted) aborts every connection.
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                while connections.try_join_next().is_some() {}
                let scripts = Arc::clone(&shared);
                connections.spawn(async move {
                    let service = service_fn(move |req| serve(Arc::clone(&scripts), req));
                    // A scripted reset ends the connection with the service's error.
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self {
            addr,
            scripts,
            accept,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The requests the server has received on `path`.
    fn count(&self, path: &str) -> usize {
        self.scripts
            .get(path)
            .map_or(0, |s| s.served.load(Ordering::SeqCst))
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn serve(
    scripts: Scripts,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let Some(script) = scripts.get(req.uri().path()) else {
        return Ok(empty(StatusCode::NOT_FOUND));
    };
    let n = script.served.fetch_add(1, Ordering::SeqCst);
    let step = &script.steps[n.min(script.steps.len() - 1)];
    match step {
        Step::Reset => Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "scripted reset",
        )),
        Step::Respond {
            status,
            headers,
            retry_after_date,
        } => {
            let mut response = empty(StatusCode::from_u16(*status).map_err(std::io::Error::other)?);
            for (name, value) in headers {
                response
                    .headers_mut()
                    .insert(*name, value.parse().map_err(std::io::Error::other)?);
            }
            if let Some(ahead) = retry_after_date {
                let date = http_date_ahead(*ahead).await;
                response
                    .headers_mut()
                    .insert("retry-after", date.parse().map_err(std::io::Error::other)?);
            }
            Ok(response)
        }
    }
}

fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// An HTTP-date `ahead` (whole seconds) after the current second. Dates have one-second
/// resolution, so the date is `floor(now) + ahead`; answering only in the first half of a
/// second (waiting for the next one if needed) keeps it between `ahead - 0.5 s` and `ahead`
/// from the moment of the answer.
async fn http_date_ahead(ahead: Duration) -> String {
    let since_epoch = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
    };
    let now = since_epoch();
    if now.subsec_millis() >= 500 {
        tokio::time::sleep(Duration::from_nanos(
            u64::from(1_000_000_000 - now.subsec_nanos()) + 1_000_000,
        ))
        .await;
    }
    let second = Duration::from_secs(since_epoch().as_secs());
    httpdate::fmt_http_date(UNIX_EPOCH + second + ahead)
}

// ----- the client side -------------------------------------------------------------------

/// A plain-HTTP client that never retries on its own: every retry is redress's.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .retry(reqwest::retry::never())
        .build()
        .unwrap()
}

/// Up to `attempts` attempts, a 1 ms backoff, and any `Retry-After` hint slept exactly.
fn policy(attempts: u32, recorder: &Recorder, breaker: Option<Arc<CircuitBreaker>>) -> Policy {
    let retry = Retry::builder()
        .max_attempts(attempts)
        .strategy(retry_after_or(constant(Duration::from_millis(1))).jitter(Duration::ZERO))
        .deadline(Duration::from_secs(30));
    let mut builder = Policy::builder().retry(retry).hook(recorder.clone());
    if let Some(breaker) = breaker {
        builder = builder.breaker(breaker);
    }
    builder.build().unwrap()
}

type CallResult = Result<reqwest::Response, redress::RetryError<reqwest::Error, reqwest::Response>>;

/// One GET of `url` under `policy`, classified by the reqwest classifiers; also returns the
/// sleeps its `before_sleep` hook saw.
async fn get(policy: &Policy, client: &reqwest::Client, url: &str) -> (CallResult, Vec<Duration>) {
    let sleeps = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&sleeps);
    let result = policy
        .context("get")
        .classify(classify_error)
        .classify_result(ResponseClassifier::default())
        .before_sleep(move |info| {
            seen.lock().unwrap().push(info.delay);
            SleepVerdict::Sleep
        })
        .run(async |_| client.get(url).send().await)
        .await;
    let sleeps = sleeps.lock().unwrap().clone();
    (result, sleeps)
}

/// The `Retry` events recorded: (class, delay, hint).
fn retries(events: &[EventRecord]) -> Vec<(Option<ErrorClass>, Duration, Option<Duration>)> {
    events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::Retry { delay, retry_after } => Some((e.class, delay, retry_after)),
            _ => None,
        })
        .collect()
}

// ----- tests -----------------------------------------------------------------------------

#[tokio::test]
async fn server_errors_are_retried_until_success() -> Result<(), BoxError> {
    let server = ScriptedServer::start(&[(
        "/flaky",
        vec![Step::status(503), Step::status(503), Step::status(200)],
    )])
    .await?;
    let recorder = Recorder::default();
    let policy = policy(5, &recorder, None);

    let (result, sleeps) = get(&policy, &client(), &server.url("/flaky")).await;

    assert_eq!(result.map(|r| r.status())?, StatusCode::OK);
    assert_eq!(server.count("/flaky"), 3);
    let ms = Duration::from_millis(1);
    assert_eq!(sleeps, [ms, ms]);
    let server_error = Some(ErrorClass::ServerError);
    assert_eq!(
        retries(&recorder.take()),
        [(server_error, ms, None), (server_error, ms, None)]
    );
    Ok(())
}

#[tokio::test]
async fn retry_after_seconds_sets_the_sleep() -> Result<(), BoxError> {
    let server = ScriptedServer::start(&[(
        "/limited",
        vec![
            Step::status(429).header("retry-after", "1"),
            Step::status(200),
        ],
    )])
    .await?;
    let recorder = Recorder::default();
    let policy = policy(5, &recorder, None);

    let (result, sleeps) = get(&policy, &client(), &server.url("/limited")).await;

    assert_eq!(result.map(|r| r.status())?, StatusCode::OK);
    assert_eq!(server.count("/limited"), 2);
    // The hint, not the 1 ms backoff.
    let second = Duration::from_secs(1);
    assert_eq!(sleeps, [second]);
    assert_eq!(
        retries(&recorder.take()),
        [(Some(ErrorClass::RateLimit), second, Some(second))]
    );
    Ok(())
}

#[tokio::test]
async fn retry_after_date_sets_the_sleep() -> Result<(), BoxError> {
    let server = ScriptedServer::start(&[(
        "/limited",
        vec![
            Step::status(429).retry_after_date(Duration::from_secs(2)),
            Step::status(200),
        ],
    )])
    .await?;
    let recorder = Recorder::default();
    let policy = policy(5, &recorder, None);

    let (result, sleeps) = get(&policy, &client(), &server.url("/limited")).await;

    assert_eq!(result.map(|r| r.status())?, StatusCode::OK);
    assert_eq!(server.count("/limited"), 2);
    let [sleep] = sleeps[..] else {
        panic!("one sleep expected, got {sleeps:?}");
    };
    assert!(
        // At most the 2 s the date is ahead; at least half a second, so the date was read
        // (the backoff alone is 1 ms), with room for a slow answer on a loaded machine.
        (Duration::from_millis(500)..=Duration::from_secs(2)).contains(&sleep),
        "sleep {sleep:?} is not between 0.5 s and 2 s"
    );
    assert_eq!(
        retries(&recorder.take()),
        [(Some(ErrorClass::RateLimit), sleep, Some(sleep))]
    );
    Ok(())
}

#[tokio::test]
async fn reset_connection_is_transient() -> Result<(), BoxError> {
    let server = ScriptedServer::start(&[("/reset", vec![Step::Reset, Step::status(200)])]).await?;
    let recorder = Recorder::default();
    let policy = policy(5, &recorder, None);

    let (result, sleeps) = get(&policy, &client(), &server.url("/reset")).await;

    assert_eq!(result.map(|r| r.status())?, StatusCode::OK);
    assert_eq!(server.count("/reset"), 2);
    assert_eq!(sleeps, [Duration::from_millis(1)]);
    assert_eq!(
        retries(&recorder.take()),
        [(Some(ErrorClass::Transient), Duration::from_millis(1), None)]
    );
    Ok(())
}

#[tokio::test]
async fn not_found_is_not_retried() -> Result<(), BoxError> {
    non_retryable(404, ErrorClass::Permanent).await
}

#[tokio::test]
async fn unauthorized_is_not_retried() -> Result<(), BoxError> {
    non_retryable(401, ErrorClass::Auth).await
}

async fn non_retryable(status: u16, class: ErrorClass) -> Result<(), BoxError> {
    let server = ScriptedServer::start(&[("/refused", vec![Step::status(status)])]).await?;
    let recorder = Recorder::default();
    let policy = policy(5, &recorder, None);

    let (result, sleeps) = get(&policy, &client(), &server.url("/refused")).await;

    let Err(err) = result else {
        panic!("status {status} succeeded");
    };
    assert_eq!(err.reason(), StopReason::NonRetryable(class));
    assert_eq!(err.attempts(), 1);
    assert_eq!(err.value().map(|r| r.status().as_u16()), Some(status));
    assert_eq!(server.count("/refused"), 1);
    assert!(sleeps.is_empty());
    let kinds: Vec<EventKind> = recorder.take().iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [EventKind::Stopped(StopReason::NonRetryable(class))]);
    Ok(())
}

#[tokio::test]
async fn breaker_opens_under_a_sustained_outage() -> Result<(), BoxError> {
    const THRESHOLD: u32 = 4;
    let server = ScriptedServer::start(&[("/down", vec![Step::status(503)])]).await?;
    let breaker = Arc::new(
        CircuitBreaker::consecutive(THRESHOLD, Duration::from_secs(60))
            .recovery(Duration::from_secs(600))
            .build()?,
    );
    let recorder = Recorder::default();
    // Three attempts per call: the breaker opens during the second call.
    let policy = policy(3, &recorder, Some(Arc::clone(&breaker)));
    let client = client();
    let url = server.url("/down");

    let attempts = Arc::new(AtomicUsize::new(0));
    let call = async || {
        policy
            .context("outage")
            .classify(classify_error)
            .classify_result(ResponseClassifier::default())
            .run(async |_| {
                attempts.fetch_add(1, Ordering::SeqCst);
                client.get(&url).send().await
            })
            .await
    };

    let mut calls = 0;
    while breaker.state() != CircuitState::Open {
        calls += 1;
        assert!(calls <= 10, "the breaker never opened");
        let err = call().await.err().ok_or("an outage call succeeded")?;
        assert!(err.attempts() >= 1);
    }
    let made = attempts.load(Ordering::SeqCst);
    assert_eq!(made, THRESHOLD as usize);
    assert_eq!(server.count("/down"), made);
    assert_eq!(calls, 2);

    // Rejected without reaching the server.
    for _ in 0..5 {
        let err = call()
            .await
            .err()
            .ok_or("a call went through an open breaker")?;
        assert!(err.is_circuit_open(), "{err}");
        assert_eq!(err.attempts(), 0);
    }
    assert_eq!(attempts.load(Ordering::SeqCst), made);
    assert_eq!(server.count("/down"), made);

    let events = recorder.take();
    let opened = events
        .iter()
        .filter(|e| e.kind == EventKind::CircuitOpened)
        .count();
    assert_eq!(opened, 1);
    let rejected = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::CircuitRejected { .. }))
        .count();
    // The second call, stopped at its next attempt, and the five rejected calls.
    assert_eq!(rejected, 6);
    Ok(())
}

/// The scripted server itself: steps in order, the last one repeated, counts per path.
#[tokio::test]
async fn scripted_server_repeats_its_last_step() -> Result<(), BoxError> {
    let server = ScriptedServer::start(&[
        ("/a", vec![Step::status(500), Step::status(201)]),
        ("/b", vec![Step::status(204)]),
    ])
    .await?;
    let client = client();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(client.get(server.url("/a")).send().await?.status().as_u16());
    }
    assert_eq!(statuses, [500, 201, 201, 201]);
    assert_eq!(client.get(server.url("/b")).send().await?.status(), 204);
    assert_eq!((server.count("/a"), server.count("/b")), (4, 1));
    Ok(())
}
