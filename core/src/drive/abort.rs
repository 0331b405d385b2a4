//! Abort handles: stop calls between attempts, from anywhere.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use core::time::Duration;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// A shareable switch that stops calls with [`StopReason::Aborted`](crate::StopReason::Aborted).
///
/// Once [`abort`](Self::abort)ed, every call using the handle stops before its next attempt,
/// and a call that is sleeping wakes at once. A running attempt is not interrupted. Clones
/// share the switch. Waiting tasks register and unregister themselves, so a long-lived
/// handle holds no memory for calls that ended.
#[derive(Clone, Debug, Default)]
pub struct AbortHandle {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    aborted: AtomicBool,
    next_id: AtomicU64,
    waiters: Mutex<Vec<(u64, Waker)>>,
    cv: Condvar,
}

impl AbortHandle {
    /// A handle that has not fired.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fires the handle: calls stop at their next step, sleeping calls wake.
    pub fn abort(&self) {
        self.inner.aborted.store(true, Ordering::SeqCst);
        let waiters = std::mem::take(&mut *self.lock());
        self.inner.cv.notify_all();
        for (_, w) in waiters {
            w.wake();
        }
    }

    /// Whether the handle has fired.
    pub fn is_aborted(&self) -> bool {
        self.inner.aborted.load(Ordering::SeqCst)
    }

    /// Blocks the thread for up to `timeout` or until the handle fires; true if it fired.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let guard = self.lock();
        let (_guard, _) = self
            .inner
            .cv
            .wait_timeout_while(guard, timeout, |_| !self.is_aborted())
            .unwrap_or_else(|e| e.into_inner());
        self.is_aborted()
    }

    /// A future that completes once the handle fires.
    pub fn aborted(&self) -> Aborted<'_> {
        Aborted {
            handle: self,
            id: None,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<(u64, Waker)>> {
        self.inner.waiters.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The future of [`AbortHandle::aborted`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct Aborted<'a> {
    handle: &'a AbortHandle,
    id: Option<u64>,
}

impl Future for Aborted<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.handle.is_aborted() {
            return Poll::Ready(());
        }
        let id = match self.id {
            Some(id) => id,
            None => {
                let id = self.handle.inner.next_id.fetch_add(1, Ordering::Relaxed);
                self.id = Some(id);
                id
            }
        };
        {
            let mut waiters = self.handle.lock();
            match waiters.iter_mut().find(|(i, _)| *i == id) {
                Some((_, w)) => w.clone_from(cx.waker()),
                None => waiters.push((id, cx.waker().clone())),
            }
        }
        // Checked again under registration so an abort in between is not missed.
        if self.handle.is_aborted() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for Aborted<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.handle.lock().retain(|(i, _)| *i != id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiters_unregister_when_dropped() {
        let h = AbortHandle::new();
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        for _ in 0..100 {
            let mut f = h.aborted();
            assert!(Pin::new(&mut f).poll(&mut cx).is_pending());
        }
        assert!(h.lock().is_empty());
        let mut f = h.aborted();
        assert!(Pin::new(&mut f).poll(&mut cx).is_pending());
        h.abort();
        assert!(Pin::new(&mut f).poll(&mut cx).is_ready());
        assert!(h.wait_timeout(Duration::from_secs(5)));
    }
}
