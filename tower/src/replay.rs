//! Request replay: whether, and how, a request is sent again.
//!
//! A tower service consumes its request, so a retry needs a copy made *before* the
//! attempt. A [`Replay`] makes that copy, or says the request cannot be sent twice. The
//! answer for the first attempt decides the call:
//!
//! | `replay(&request)` before the first attempt | The call |
//! |---|---|
//! | `Some(copy)` | retried as the policy allows; every attempt sends a fresh copy of the original |
//! | `None` | exactly one attempt (still under the breaker, the attempt timeout, the deadline and the policy's hook), never retried; a failure ends with the policy's reason ([`StopReason::MaxAttempts`](redress::StopReason::MaxAttempts) for a class that would have been retried), and a response classified as a failure is returned as `Ok` |
//!
//! Implementations: [`CloneReplay`] (any `Clone` request; the default of
//! [`RetryLayer::new`](crate::RetryLayer::new)), [`NoReplay`] (never: a layer for its
//! breaker and timeouts only), any closure `Fn(&Req) -> Option<Req>`, and with the `http`
//! feature `HttpReplay` (idempotent HTTP requests with replayable bodies).

/// Makes the copy of a request that a retry sends.
///
/// # Contract
/// `replay` should give the same answer for the same request. It is asked once before the
/// first attempt and once before each retry, always with the original request; if it
/// returns `None` for a retry after `Some` for the first attempt, that retry sends the
/// original itself, and a further retry (with nothing left to send) fails at once with a
/// [`Permanent`](redress::ErrorClass::Permanent) error "the request cannot be sent again".
pub trait Replay<Req> {
    /// A copy of `request` to send, or `None` if it must not or cannot be sent again.
    fn replay(&self, request: &Req) -> Option<Req>;
}

impl<Req, F> Replay<Req> for F
where
    F: Fn(&Req) -> Option<Req>,
{
    fn replay(&self, request: &Req) -> Option<Req> {
        self(request)
    }
}

/// Replays any `Clone` request by cloning it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CloneReplay;

impl<Req: Clone> Replay<Req> for CloneReplay {
    fn replay(&self, request: &Req) -> Option<Req> {
        Some(request.clone())
    }
}

/// Never replays: every call makes exactly one attempt (the layer then adds the breaker,
/// the attempt timeout and the deadline, but no retries).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoReplay;

impl<Req> Replay<Req> for NoReplay {
    fn replay(&self, _request: &Req) -> Option<Req> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_strategy_answers_as_documented() {
        assert_eq!(
            CloneReplay.replay(&"GET /".to_string()),
            Some("GET /".into())
        );
        assert_eq!(Replay::<String>::replay(&NoReplay, &"GET /".into()), None);
        let small = |n: &u32| (*n < 4).then_some(*n);
        assert_eq!(small.replay(&3), Some(3));
        assert_eq!(small.replay(&4), None);
    }
}
