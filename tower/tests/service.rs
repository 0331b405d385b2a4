//! The layer over any service: boxed errors, per-attempt timeouts, readiness, replay
//! strategies and the shape of errors. Time is tokio's paused clock.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use redress::backoff::constant;
use redress::classify::Classified;
use redress::event::Recorder;
use redress::{ErrorClass, LastFailure, Policy, Retry, StopReason};
use redress_tower::{BoxError, Error, NoReplay, RetryLayer, RetryService};
use tower::{Layer, Service, ServiceExt, service_fn};

mod common;

fn policy(attempts: u32) -> Policy {
    Retry::builder()
        .max_attempts(attempts)
        .max_unknown_attempts(None)
        .no_deadline()
        .strategy(constant(Duration::from_secs(1)))
        .policy()
        .unwrap()
}

/// `attempts` attempts 1 s apart, no deadline, events to `hook`.
fn observed_policy(attempts: u32, hook: &Recorder) -> Policy {
    common::observed_builder(attempts, hook).build().unwrap()
}

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

async fn send<S, Req, T>(svc: &mut S, req: Req) -> Result<T, Error>
where
    S: Service<Req, Response = T, Error = Error>,
{
    svc.ready().await?.call(req).await
}

/// A service failing with boxed errors of `kinds[n]` on call n, then answering "ok".
fn boxed_failures(
    kinds: &'static [io::ErrorKind],
    calls: &Arc<AtomicUsize>,
) -> impl Service<&'static str, Response = &'static str, Error = BoxError, Future: Send + 'static>
+ Clone
+ Send
+ 'static {
    let calls = Arc::clone(calls);
    service_fn(move |_: &'static str| {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        async move {
            match kinds.get(n) {
                Some(kind) => Err(BoxError::from(io::Error::from(*kind))),
                None => Ok("ok"),
            }
        }
    })
}

#[tokio::test(start_paused = true)]
async fn boxed_errors_are_classified_through_their_chain() {
    use io::ErrorKind::{ConnectionReset, NotFound, PermissionDenied};
    // (errors the service returns in turn, inner calls, result: Ok or the stop reason)
    let table: [(&'static [io::ErrorKind], usize, Result<(), StopReason>); 4] = [
        (&[ConnectionReset, ConnectionReset], 3, Ok(())),
        (&[ConnectionReset; 3], 3, Err(StopReason::MaxAttempts)),
        (
            &[PermissionDenied],
            1,
            Err(StopReason::NonRetryable(ErrorClass::Permission)),
        ),
        (
            &[NotFound],
            1,
            Err(StopReason::NonRetryable(ErrorClass::Permanent)),
        ),
    ];
    for (kinds, expected_calls, expected) in table {
        let calls = counter();
        let mut svc = RetryLayer::new(policy(3)).layer(boxed_failures(kinds, &calls));
        let r = send(&mut svc, "req").await;
        assert_eq!(calls.load(Ordering::SeqCst), expected_calls, "{kinds:?}");
        match (r, expected) {
            (Ok(v), Ok(())) => assert_eq!(v, "ok"),
            (Err(e), Err(reason)) => {
                assert_eq!(e.reason(), reason, "{kinds:?}");
                // The inner error is kept, boxed, and can be downcast.
                let inner = e.error().map(Classified::inner).unwrap();
                let io = inner.downcast_ref::<io::Error>().unwrap();
                assert_eq!(io.kind(), *kinds.last().unwrap());
                // And the error is a `BoxError` like any tower middleware's.
                let _: BoxError = e.into();
            }
            (r, expected) => panic!("{kinds:?}: got {:?}, expected {expected:?}", r.err()),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_typed_error_closure_classifies_before_boxing() {
    let calls = counter();
    let inner = {
        let calls = Arc::clone(&calls);
        service_fn(move |_: ()| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(io::Error::other("busy")) }
        })
    };
    let mut svc = RetryLayer::new(policy(4))
        .classify(|e: &io::Error| {
            if e.to_string() == "busy" {
                ErrorClass::RateLimit
            } else {
                ErrorClass::Permanent
            }
        })
        .layer(inner);
    let err = send(&mut svc, ()).await.unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert_eq!(err.last_class(), Some(ErrorClass::RateLimit));
    assert_eq!(err.reason(), StopReason::MaxAttempts);
}

/// Sets its flag when dropped: proves a timed-out attempt's future was dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn a_hanging_attempt_is_cut_at_the_attempt_timeout_and_dropped() {
    let policy = Retry::builder()
        .max_attempts(3)
        .no_deadline()
        .attempt_timeout(Duration::from_secs(2))
        .strategy(constant(Duration::from_secs(1)))
        .policy()
        .unwrap();
    let calls = counter();
    let dropped = Arc::new(AtomicBool::new(false));
    let inner = {
        let calls = Arc::clone(&calls);
        let dropped = Arc::clone(&dropped);
        service_fn(move |_: ()| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            let flag = DropFlag(Arc::clone(&dropped));
            async move {
                let _flag = flag;
                if n == 0 {
                    std::future::pending::<()>().await;
                }
                Ok::<_, io::Error>("answered")
            }
        })
    };
    let mut svc = RetryLayer::new(policy).layer(inner);
    let start = tokio::time::Instant::now();
    let r = send(&mut svc, ()).await.unwrap();
    assert_eq!(r, "answered");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(dropped.load(Ordering::SeqCst));
    // 2 s of timeout, 1 s of backoff, on the paused clock (tokio rounds timers up to 1 ms).
    assert!(start.elapsed() >= Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn a_service_that_always_hangs_ends_with_a_timed_out_error() {
    let policy = Retry::builder()
        .max_attempts(3)
        .no_deadline()
        .attempt_timeout(Duration::from_secs(2))
        .strategy(constant(Duration::from_secs(1)))
        .policy()
        .unwrap();
    let calls = counter();
    let inner = {
        let calls = Arc::clone(&calls);
        service_fn(move |_: ()| {
            calls.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<Result<(), io::Error>>()
        })
    };
    let mut svc = RetryLayer::new(policy).layer(inner);
    let err = send(&mut svc, ()).await.unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(err.attempts(), 3);
    assert_eq!(err.reason(), StopReason::MaxAttempts);
    assert!(matches!(err.last(), LastFailure::TimedOut));
    assert_eq!(err.last_class(), Some(ErrorClass::Transient));
}

#[tokio::test(start_paused = true)]
async fn a_request_that_cannot_be_replayed_gets_exactly_one_attempt() {
    let rec = Recorder::default();
    let policy = observed_policy(5, &rec);
    let calls = counter();
    let kinds = &[io::ErrorKind::ConnectionReset; 20];
    // `NoReplay`, and a closure that refuses one request but not another.
    let mut never = RetryLayer::new(policy.clone())
        .replay(NoReplay)
        .layer(boxed_failures(kinds, &calls));
    let err = send(&mut never, "once").await.unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(err.reason(), StopReason::MaxAttempts);
    assert_eq!(err.attempts(), 1);
    assert_eq!(rec.names(), ["max_attempts"]);

    let calls = counter();
    let mut some = RetryLayer::new(policy)
        .replay(|r: &&'static str| (*r != "once").then_some(*r))
        .layer(boxed_failures(kinds, &calls));
    send(&mut some, "once").await.unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    send(&mut some, "again").await.unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 1 + 5);
}

#[tokio::test(start_paused = true)]
async fn a_replay_that_changes_its_mind_sends_the_original_then_stops() {
    let calls = counter();
    let asked = counter();
    // Copies the request for the first attempt only.
    let fickle = {
        let asked = Arc::clone(&asked);
        move |r: &&'static str| (asked.fetch_add(1, Ordering::SeqCst) == 0).then_some(*r)
    };
    let mut svc = RetryLayer::new(policy(5))
        .replay(fickle)
        .layer(boxed_failures(
            &[io::ErrorKind::ConnectionReset; 20],
            &calls,
        ));
    let err = send(&mut svc, "req").await.unwrap_err();
    // The copy, then the original itself; the third attempt had nothing to send.
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(err.attempts(), 3);
    assert_eq!(
        err.reason(),
        StopReason::NonRetryable(ErrorClass::Permanent)
    );
    let last = err.error().unwrap();
    assert_eq!(last.to_string(), "the request cannot be sent again");
}

/// Ready on every second poll; counts polls and calls. `fail_ready` makes readiness fail.
#[derive(Clone, Default)]
struct Gate {
    polls: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
    fail_ready: bool,
}

impl Service<()> for Gate {
    type Response = usize;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<usize, io::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        if self.fail_ready {
            return Poll::Ready(Err(io::Error::from(io::ErrorKind::BrokenPipe)));
        }
        let n = self.polls.fetch_add(1, Ordering::SeqCst);
        if n.is_multiple_of(2) {
            cx.waker().wake_by_ref();
            Poll::Pending
        } else {
            Poll::Ready(Ok(()))
        }
    }

    fn call(&mut self, _: ()) -> Self::Future {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        Box::pin(async move {
            if n < 3 {
                Err(io::Error::from(io::ErrorKind::ConnectionReset))
            } else {
                Ok(n)
            }
        })
    }
}

#[tokio::test(start_paused = true)]
async fn every_retry_waits_for_the_inner_service_to_be_ready() {
    let gate = Gate::default();
    let mut svc = RetryLayer::new(policy(3)).layer(gate.clone());
    assert_eq!(send(&mut svc, ()).await.unwrap(), 3);
    assert_eq!(gate.calls.load(Ordering::SeqCst), 3);
    // Two polls (pending, ready) by the caller, then two before each of the two retries.
    assert_eq!(gate.polls.load(Ordering::SeqCst), 6);
}

#[tokio::test(start_paused = true)]
async fn a_readiness_error_is_returned_classified_with_no_attempt() {
    let gate = Gate {
        fail_ready: true,
        ..Gate::default()
    };
    let mut svc = RetryLayer::new(policy(3)).layer(gate.clone());
    let err = send(&mut svc, ()).await.unwrap_err();
    assert_eq!(err.attempts(), 0);
    assert_eq!(
        err.reason(),
        StopReason::NonRetryable(ErrorClass::Transient)
    );
    assert_eq!(err.last_class(), Some(ErrorClass::Transient));
    assert_eq!(gate.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn events_carry_the_layers_operation_name() {
    let rec = Recorder::default();
    let policy = observed_policy(2, &rec);
    let calls = counter();
    let mut svc = RetryLayer::new(policy)
        .operation("fetch_user")
        .layer(boxed_failures(&[io::ErrorKind::ConnectionReset], &calls));
    send(&mut svc, "r").await.unwrap();
    let events = rec.take();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| &*e.operation == "fetch_user"));
}

// ----- compile-time guarantees ------------------------------------------------------------

/// The layer's service is a `Service` whose future is `Send + 'static` for any inner
/// service that is `Send` with a `Send` future.
#[allow(dead_code)]
fn the_service_future_is_send<S, Req>(svc: &mut RetryService<S>, req: Req)
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send,
    S::Response: Send + 'static,
    S::Error: Into<BoxError>,
    Req: Clone + Send + 'static,
{
    fn assert_send_static<T: Send + 'static>(_: T) {}
    assert_send_static(svc.call(req));
}

#[tokio::test(start_paused = true)]
async fn the_service_is_cloneable_and_the_clones_share_the_settings() {
    let calls = counter();
    let svc =
        RetryLayer::new(policy(3)).layer(boxed_failures(&[io::ErrorKind::ConnectionReset], &calls));
    let mut a = svc.clone();
    let mut b = svc;
    assert!(a.policy().ptr_eq(b.policy()));
    assert_eq!(send(&mut a, "x").await.unwrap(), "ok");
    assert_eq!(send(&mut b, "y").await.unwrap(), "ok");
    // The first call failed once and was retried; the second succeeded at once.
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}
