//! redress's adapters and the hand-written baselines.
//!
//! Each adapter runs one call of a [`Script`]: the redress ones through the public driver
//! API a user would call (`redress_blocking::call`, `redress_tokio::call`, default
//! classifier), the baselines with no library at all.

use core::future::Future;

use redress::Policy;

use crate::{AsyncAdapter, GaveUp, MAX_ATTEMPTS, Schedule, Script, SyncAdapter};

/// `redress_blocking::call(&policy, op)`.
#[derive(Clone, Debug)]
pub struct RedressSync(pub Policy);

impl SyncAdapter for RedressSync {
    #[inline]
    fn run_sync(&self, script: &Script) -> Result<u64, GaveUp> {
        redress_blocking::call(&self.0, |_| script.attempt()).map_err(|_| GaveUp)
    }
}

/// `redress_tokio::call(&policy, async |_| op().await)`.
#[derive(Clone, Debug)]
pub struct RedressAsync(pub Policy);

impl AsyncAdapter for RedressAsync {
    async fn run_async(&self, script: &Script) -> Result<u64, GaveUp> {
        redress_tokio::call(&self.0, async |_| op(script).await)
            .await
            .map_err(|_| GaveUp)
    }
}

/// The operation as an `async fn`, as the async adapters await it.
#[inline]
pub async fn op(script: &Script) -> Result<u64, std::io::Error> {
    script.attempt()
}

/// Baseline: the operation called directly, once, with no retry at all.
#[derive(Clone, Copy, Debug, Default)]
pub struct Direct;

impl SyncAdapter for Direct {
    #[inline]
    fn run_sync(&self, script: &Script) -> Result<u64, GaveUp> {
        script.attempt().map_err(|_| GaveUp)
    }
}

impl AsyncAdapter for Direct {
    async fn run_async(&self, script: &Script) -> Result<u64, GaveUp> {
        op(script).await.map_err(|_| GaveUp)
    }
}

/// Baseline: the retry loop one would write by hand (3 attempts, the [`Schedule`]'s delays,
/// every error retried, a zero delay not slept).
#[derive(Clone, Copy, Debug)]
pub struct HandLoop(pub Schedule);

impl SyncAdapter for HandLoop {
    #[inline]
    fn run_sync(&self, script: &Script) -> Result<u64, GaveUp> {
        let mut n = 1;
        loop {
            match script.attempt() {
                Ok(v) => return Ok(v),
                Err(_) if n < MAX_ATTEMPTS => {
                    let d = self.0.delay(n);
                    if !d.is_zero() {
                        std::thread::sleep(d);
                    }
                    n += 1;
                }
                Err(_) => return Err(GaveUp),
            }
        }
    }
}

impl AsyncAdapter for HandLoop {
    async fn run_async(&self, script: &Script) -> Result<u64, GaveUp> {
        let mut n = 1;
        loop {
            match op(script).await {
                Ok(v) => return Ok(v),
                Err(_) if n < MAX_ATTEMPTS => {
                    let d = self.0.delay(n);
                    if !d.is_zero() {
                        tokio::time::sleep(d).await;
                    }
                    n += 1;
                }
                Err(_) => return Err(GaveUp),
            }
        }
    }
}

/// A backoff sleep that never touches the timer for a zero delay (the rule redress's
/// drivers follow), for the peers whose sleep is pluggable (backon's sleeper, a tower
/// policy's future). `Unpin`; allocates only for a non-zero delay.
#[derive(Debug)]
pub struct Delay(Option<core::pin::Pin<Box<tokio::time::Sleep>>>);

impl Delay {
    /// A sleep of `d`: ready at once when `d` is zero.
    pub fn after(d: core::time::Duration) -> Self {
        if d.is_zero() {
            Self(None)
        } else {
            Self(Some(Box::pin(tokio::time::sleep(d))))
        }
    }
}

impl Future for Delay {
    type Output = ();

    fn poll(
        mut self: core::pin::Pin<&mut Self>,
        cx: &mut core::task::Context<'_>,
    ) -> core::task::Poll<()> {
        match &mut self.0 {
            None => core::task::Poll::Ready(()),
            Some(s) => s.as_mut().poll(cx),
        }
    }
}

/// A bare circuit-breaker call through redress's breaker: admission, the operation, and
/// the report of its result, all at `now`. `Err(None)` when the breaker refused the call.
///
/// # Errors
/// `Some(e)` with the operation's error, `None` when the breaker is open.
#[inline]
pub fn breaker_call<T, E>(
    breaker: &redress::CircuitBreaker,
    now: redress::Instant,
    f: impl FnOnce() -> Result<T, E>,
) -> Result<T, Option<E>> {
    use redress::breaker::BreakerOutcome;
    let permit = breaker.try_acquire(now).map_err(|_| None)?;
    match f() {
        Ok(v) => {
            breaker.record(now, permit, BreakerOutcome::Success);
            Ok(v)
        }
        Err(e) => {
            breaker.record(
                now,
                permit,
                BreakerOutcome::Failure(redress::ErrorClass::Transient),
            );
            Err(Some(e))
        }
    }
}
