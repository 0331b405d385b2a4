//! Several threads hammering one shared object, timed as a whole.
//!
//! Criterion times one thread; a breaker or budget shared by two threads needs the wall time
//! of both. [`run`] splits `iters` operations over `threads` threads that start together
//! (behind a barrier, so spawning is not timed) and returns the span from the first start to
//! the last end: divided by `iters`, that is the inverse of the aggregate throughput.

use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Runs `op` `iters` times in total, split evenly over `threads` threads, and returns the
/// wall time from the first thread's start to the last thread's end.
///
/// `op` receives the index of the thread running it.
pub fn run<F>(threads: usize, iters: u64, op: F) -> Duration
where
    F: Fn(usize) + Sync,
{
    let threads = threads.max(1);
    let barrier = Barrier::new(threads);
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let share = iters / threads as u64 + u64::from((i as u64) < iters % threads as u64);
                let (barrier, op) = (&barrier, &op);
                s.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..share {
                        op(i);
                    }
                    (start, Instant::now())
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let first = spans.iter().map(|s| s.0).min();
    let last = spans.iter().map(|s| s.1).max();
    match (first, last) {
        (Some(a), Some(b)) => b.saturating_duration_since(a),
        _ => Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    #[test]
    fn every_operation_runs_once() {
        let n = AtomicU64::new(0);
        let seen = [AtomicU64::new(0), AtomicU64::new(0)];
        run(2, 1001, |t| {
            n.fetch_add(1, Ordering::Relaxed);
            seen[t].fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(n.load(Ordering::Relaxed), 1001);
        assert_eq!(seen[0].load(Ordering::Relaxed), 501);
        assert_eq!(seen[1].load(Ordering::Relaxed), 500);
    }
}
