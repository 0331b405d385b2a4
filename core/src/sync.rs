//! The synchronisation primitives of the shared state (breaker, budget, time buckets).
//!
//! Normally `std`'s; under `--cfg loom` the model checker's, so `core/tests/loom.rs` can
//! explore every interleaving of concurrent `try_acquire` / `record` / `withdraw` calls.
//! Only the shared state imports from here; everything else uses `std::sync` directly.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};

/// A value on cache lines of its own (128 bytes: Intel's adjacent-line prefetcher pairs
/// lines), for state that every call writes, so reading the shared object's settings on
/// another core does not miss because of it.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Contended<T>(pub(crate) T);

impl<T> core::ops::Deref for Contended<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}
