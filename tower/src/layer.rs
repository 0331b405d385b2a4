//! The layer and the service it produces.

use core::fmt;
use core::future::{Future, poll_fn};
use core::pin::Pin;
use core::task::{Context, Poll};
use std::borrow::Cow;
use std::sync::Arc;

use redress::classify::Classified;
use redress::drive::run_async;
use redress::{
    AcceptAll, Attempt, CallContext, ChainClassifier, Classification, ClassifyResult, ErrorClass,
    LastFailure, Policy, RetryError, StopReason,
};
use redress_tokio::TokioTimer;
use tower_layer::Layer;
use tower_service::Service;

use crate::classify::ClassifyServiceError;
use crate::replay::{CloneReplay, Replay};

/// The error of a [`RetryService`] call: why it stopped, after how many attempts, and the
/// last error of the inner service (boxed, with its class) if the last attempt returned
/// one.
///
/// | The call ended because | [`reason()`](RetryError::reason) | [`attempts()`](RetryError::attempts) | [`last()`](RetryError::last) |
/// |---|---|---|---|
/// | the breaker refused it before any attempt | [`CircuitOpen`](StopReason::CircuitOpen) ([`is_circuit_open()`](RetryError::is_circuit_open)) | 0 | [`Nothing`](LastFailure::Nothing) |
/// | the last attempt ran past its time limit | the policy's reason (`MaxAttempts`, `DeadlineExceeded`, …) | n | [`TimedOut`](LastFailure::TimedOut) |
/// | the inner service failed and the policy stopped retrying | the policy's reason | n | [`Error`](LastFailure::Error) with the [`Classified`] error |
/// | the inner service's `poll_ready` failed | [`NonRetryable`](StopReason::NonRetryable) | 0 | [`Error`](LastFailure::Error) |
/// | a released response was retried, and the call stopped while waiting (an abort, or a breaker that opened later) — a breaker that opened with that failure and stays open past the sleep keeps the response, which is returned as `Ok` | the policy's reason | n | [`Nothing`](LastFailure::Nothing), with [`last_class()`](RetryError::last_class) |
///
/// A response rejected by the response classifier on the last attempt is not an error:
/// the service returns it as `Ok`. The inner error is reached with
/// `err.error().map(Classified::inner)` and downcast from there.
pub type Error = RetryError<Classified>;

/// The future of a [`RetryService`] call.
pub type ResponseFuture<T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'static>>;

/// A [`tower_layer::Layer`] that runs every call of the wrapped service under a redress
/// [`Policy`]: retries with per-class backoff, the circuit breaker, the retry budget, the
/// per-attempt timeout and the call's deadline.
///
/// Built from a policy with [`new`](Self::new) (`Clone` requests, any service) or, with
/// the `http` feature, `http` (safe defaults for HTTP requests). The type parameters are
/// the error classifier `C`, the response classifier `R` and the request replay `P`.
#[derive(Clone, Debug)]
#[must_use]
pub struct RetryLayer<C = ChainClassifier, R = AcceptAll, P = CloneReplay> {
    pub(crate) policy: Policy,
    pub(crate) operation: Option<Cow<'static, str>>,
    pub(crate) classifier: C,
    pub(crate) responses: R,
    pub(crate) replay: P,
}

impl RetryLayer {
    /// A layer running calls under `policy`, classifying errors with
    /// [`ChainClassifier::new`], accepting every response, and replaying `Clone` requests
    /// with [`CloneReplay`].
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            operation: None,
            classifier: ChainClassifier::new(),
            responses: AcceptAll,
            replay: CloneReplay,
        }
    }
}

impl<C, R, P> RetryLayer<C, R, P> {
    /// The operation name the policy's events carry (default: the policy's own).
    pub fn operation(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.operation = Some(name.into());
        self
    }

    /// The classifier of the inner service's errors: a [`ChainClassifier`] or a closure
    /// `Fn(&S::Error) -> impl Into<Classification>` (see [`ClassifyServiceError`]).
    pub fn classify<C2>(self, classifier: C2) -> RetryLayer<C2, R, P> {
        RetryLayer {
            policy: self.policy,
            operation: self.operation,
            classifier,
            responses: self.responses,
            replay: self.replay,
        }
    }

    /// The classifier of the inner service's responses: any
    /// [`ClassifyResult<S::Response>`](ClassifyResult), such as a closure
    /// `Fn(&S::Response) -> Option<impl Into<Classification>>`. `Some` marks a response as a
    /// failure to retry (an HTTP 503); `None` accepts it.
    ///
    /// A rejected response is dropped as soon as the policy decides to retry, so its body
    /// (and the connection under it) is released before the sleep. The rejected response
    /// of the last attempt is returned as `Ok`: when retries run out the caller sees the
    /// real answer.
    pub fn classify_response<R2>(self, classifier: R2) -> RetryLayer<C, R2, P> {
        RetryLayer {
            policy: self.policy,
            operation: self.operation,
            classifier: self.classifier,
            responses: classifier,
            replay: self.replay,
        }
    }

    /// How requests are copied for retries (see [`Replay`]).
    pub fn replay<P2>(self, replay: P2) -> RetryLayer<C, R, P2> {
        RetryLayer {
            policy: self.policy,
            operation: self.operation,
            classifier: self.classifier,
            responses: self.responses,
            replay,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }
}

impl<S, C: Clone, R: Clone, P: Clone> Layer<S> for RetryLayer<C, R, P> {
    type Service = RetryService<S, C, R, P>;

    fn layer(&self, inner: S) -> Self::Service {
        RetryService {
            inner,
            shared: Arc::new(Shared {
                policy: self.policy.clone(),
                operation: self.operation.clone(),
                classifier: self.classifier.clone(),
                responses: self.responses.clone(),
                replay: self.replay.clone(),
            }),
        }
    }
}

struct Shared<C, R, P> {
    policy: Policy,
    operation: Option<Cow<'static, str>>,
    classifier: C,
    responses: R,
    replay: P,
}

/// A service whose calls run under a redress [`Policy`]; built by [`RetryLayer`].
///
/// `poll_ready` is the inner service's. `call` takes the inner service that was just
/// polled ready (leaving a clone in its place, the usual pattern of tower middleware) and
/// runs the call on tokio's timer:
///
/// 1. The [`Replay`] is asked for a copy of the request. Without one, the call is capped at
///    one attempt.
/// 2. Each attempt sends a copy (waiting first for the inner service to be ready again,
///    from the second attempt on), within the attempt's time limit: the earlier of the
///    policy's attempt timeout and the call's deadline. A timed-out attempt's future is
///    dropped.
/// 3. Errors are classified by `C`, responses by `R`; the policy decides whether and when
///    to retry, and its breaker and budget may refuse.
///
/// The call ends with the first accepted response, the rejected response of the last
/// attempt (as `Ok`), or an [`Error`]. An error of the inner service's `poll_ready` is
/// returned classified, with 0 attempts and [`StopReason::NonRetryable`]: a service that
/// cannot become ready cannot take the call.
pub struct RetryService<S, C = ChainClassifier, R = AcceptAll, P = CloneReplay> {
    inner: S,
    shared: Arc<Shared<C, R, P>>,
}

impl<S: Clone, C, R, P> Clone for RetryService<S, C, R, P> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: fmt::Debug, C, R, P> fmt::Debug for RetryService<S, C, R, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryService")
            .field("inner", &self.inner)
            .field("policy", &self.shared.policy)
            .field("operation", &self.shared.operation)
            .finish_non_exhaustive()
    }
}

impl<S, C, R, P> RetryService<S, C, R, P> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, by value.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.shared.policy
    }
}

impl<S, Req, C, R, P> Service<Req> for RetryService<S, C, R, P>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send,
    S::Response: Send + 'static,
    Req: Send + 'static,
    C: ClassifyServiceError<S::Error> + Send + Sync + 'static,
    R: ClassifyResult<S::Response> + Send + Sync + 'static,
    P: Replay<Req> + Send + Sync + 'static,
{
    type Response = S::Response;
    type Error = Error;
    type Future = ResponseFuture<S::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        match self.inner.poll_ready(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(e)) => {
                let e = self.shared.classifier.classify_service_error(e);
                let class = e.classification().class;
                let reason = StopReason::NonRetryable(class);
                Poll::Ready(Err(Error::new(
                    reason,
                    0,
                    Some(class),
                    LastFailure::Error(e),
                )))
            }
        }
    }

    fn call(&mut self, request: Req) -> Self::Future {
        // The service polled ready goes with the call; the clone waits for the next one.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(run(Arc::clone(&self.shared), inner, request))
    }
}

/// One call: the request, the inner service that was polled ready, and the shared settings.
async fn run<S, Req, C, R, P>(
    shared: Arc<Shared<C, R, P>>,
    mut service: S,
    request: Req,
) -> Result<S::Response, Error>
where
    S: Service<Req>,
    C: ClassifyServiceError<S::Error>,
    R: ClassifyResult<S::Response>,
    P: Replay<Req>,
{
    // Copies are made from the original, which is sent itself only when no copy can be.
    let mut first = shared.replay.replay(&request);
    let replayable = first.is_some();
    let mut original = Some(request);

    // The attempt owns what it uses (no borrows of this future's locals), so the call's
    // future is `Send` whenever its parts are.
    let attempt_shared = Arc::clone(&shared);
    let op = async move |a: Attempt| {
        let shared = &*attempt_shared;
        if a.is_retry() {
            poll_fn(|cx| service.poll_ready(cx))
                .await
                .map_err(|e| shared.classifier.classify_service_error(e))?;
        }
        let request = match first.take() {
            Some(copy) => Some(copy),
            None if !replayable => original.take(),
            None => original
                .as_ref()
                .and_then(|r| shared.replay.replay(r))
                .or_else(|| original.take()),
        };
        let Some(request) = request else {
            return Err(not_replayable());
        };
        service
            .call(request)
            .await
            .map_err(|e| shared.classifier.classify_service_error(e))
    };

    let ctx = CallContext::new(&shared.policy)
        .classify(|e: &Classified| e.classification().clone())
        .classify_result(|r: &S::Response| shared.responses.classify_result(r))
        .release_rejected();
    let ctx = match &shared.operation {
        Some(name) => ctx.operation(&**name),
        None => ctx,
    };
    let ctx = if replayable { ctx } else { ctx.max_attempts(1) };
    let result = run_async(ctx, &TokioTimer, None, None, op).await;
    // A call that ended on a rejected response returns that response; any other ending is
    // the error.
    result.or_else(RetryError::take_value)
}

/// The error of a retry left with nothing to send (a [`Replay`] that changed its mind).
fn not_replayable() -> Classified {
    let class = Classification::new(ErrorClass::Permanent).with_details("request not replayable");
    Classified::new(class, "the request cannot be sent again")
}
