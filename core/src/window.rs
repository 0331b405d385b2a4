//! Time-bucketed counters: fixed memory for "how many in the last window", shared by the
//! breaker's failure-rate mode and the budgets.
//!
//! Each slot holds `epoch << 24 | count`, where the epoch is `now / width` (saturating at
//! 2⁴⁰ − 1, so epochs never wrap). Adding to a slot that holds an older epoch restarts it; a
//! count for an epoch older than the slot's is dropped (it arrived after its bucket was
//! reused). Counts saturate at 2²⁴ − 1 per bucket.

use crate::sync::{AtomicU64, Ordering};
use crate::time::Instant;

const EPOCH_SHIFT: u32 = 24;
const COUNT_MASK: u64 = (1 << EPOCH_SHIFT) - 1;
const EPOCH_MASK: u64 = (1 << (64 - EPOCH_SHIFT)) - 1;

/// The largest ring whose slot index fits the epoch cache beside the epoch.
const CACHED_LEN: u64 = 1 << EPOCH_SHIFT;

/// A ring of `len` time buckets, each `width` nanoseconds wide.
#[derive(Debug)]
pub(crate) struct Buckets {
    slots: Box<[AtomicU64]>,
    width: u64,
    /// The last epoch computed and its slot, as `epoch << 24 | slot`: while `now` stays in
    /// that epoch (most calls, with buckets of a second), no division is needed. A hint
    /// only: every value stored is a correct pair, and a reader checks it against its own
    /// `now` with one multiplication.
    last: AtomicU64,
}

impl Buckets {
    /// `len` buckets of `width_nanos` each (both at least 1).
    pub(crate) fn new(len: usize, width_nanos: u64) -> Self {
        Self {
            slots: (0..len.max(1)).map(|_| AtomicU64::new(0)).collect(),
            width: width_nanos.max(1),
            // Epoch 0, slot 0: correct for any `now` below one width.
            last: AtomicU64::new(0),
        }
    }

    /// The epoch of `now` and its slot.
    #[inline]
    fn locate(&self, now: Instant) -> (u64, usize) {
        let now = now.as_nanos();
        let last = self.last.load(Ordering::Relaxed);
        let epoch = last >> EPOCH_SHIFT;
        if let Some(start) = epoch.checked_mul(self.width)
            && now >= start
            && now - start < self.width
        {
            return (epoch, (last & COUNT_MASK) as usize);
        }
        self.locate_slow(now)
    }

    #[cold]
    fn locate_slow(&self, now: u64) -> (u64, usize) {
        // Saturate, never wrap: a wrapped epoch would look older than the slots it should
        // replace, so its counts would be dropped and a budget would stop counting.
        let epoch = (now / self.width).min(EPOCH_MASK);
        let len = self.slots.len() as u64;
        let slot = epoch % len;
        if len <= CACHED_LEN {
            self.last
                .store(epoch << EPOCH_SHIFT | slot, Ordering::Relaxed);
        }
        (epoch, slot as usize)
    }

    /// Adds `n` to the bucket of `now`.
    pub(crate) fn add(&self, now: Instant, n: u64) {
        let (epoch, index) = self.locate(now);
        let slot = &self.slots[index];
        let mut cur = slot.load(Ordering::Relaxed);
        loop {
            let slot_epoch = cur >> EPOCH_SHIFT;
            let new = if slot_epoch == epoch {
                epoch << EPOCH_SHIFT | ((cur & COUNT_MASK) + n).min(COUNT_MASK)
            } else if slot_epoch > epoch {
                return;
            } else {
                epoch << EPOCH_SHIFT | n.min(COUNT_MASK)
            };
            if new == cur {
                return;
            }
            match slot.compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(v) => cur = v,
            }
        }
    }

    /// The sum of the buckets of the last `len` epochs up to and including `now`'s.
    pub(crate) fn sum(&self, now: Instant) -> u64 {
        let (epoch, _) = self.locate(now);
        let len = self.slots.len() as u64;
        // Branch-free: a slot of a later epoch wraps to a huge distance and counts as 0,
        // like one older than the ring.
        self.slots
            .iter()
            .map(|s| {
                let v = s.load(Ordering::Relaxed);
                let live = epoch.wrapping_sub(v >> EPOCH_SHIFT) < len;
                (v & COUNT_MASK) * u64::from(live)
            })
            .sum()
    }

    /// The width of one bucket, in nanoseconds.
    pub(crate) fn width(&self) -> u64 {
        self.width
    }

    /// The non-empty buckets that [`sum`](Self::sum) at `now` counts, as
    /// `(start of the bucket in nanos, count)`, oldest first.
    pub(crate) fn live(&self, now: Instant) -> Vec<(u64, u64)> {
        let (epoch, _) = self.locate(now);
        let len = self.slots.len() as u64;
        let mut out: Vec<(u64, u64)> = self
            .slots
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .filter(|v| {
                let e = v >> EPOCH_SHIFT;
                e <= epoch && epoch - e < len && v & COUNT_MASK > 0
            })
            .map(|v| {
                (
                    (v >> EPOCH_SHIFT).saturating_mul(self.width),
                    v & COUNT_MASK,
                )
            })
            .collect();
        out.sort_unstable_by_key(|&(start, _)| start);
        out
    }

    /// Empties every bucket.
    pub(crate) fn clear(&self) {
        for s in self.slots.iter() {
            s.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_within_the_ring_and_forgets_older_epochs() {
        let b = Buckets::new(4, 10);
        b.add(Instant::from_nanos(0), 1);
        b.add(Instant::from_nanos(15), 2);
        b.add(Instant::from_nanos(35), 3);
        assert_eq!(b.sum(Instant::from_nanos(39)), 6);
        assert_eq!(b.sum(Instant::from_nanos(40)), 5, "epoch 0 left the ring");
        // A late add for an epoch whose slot was reused is dropped.
        b.add(Instant::from_nanos(45), 1);
        b.add(Instant::from_nanos(5), 100);
        assert_eq!(b.sum(Instant::from_nanos(45)), 6);
        b.clear();
        assert_eq!(b.sum(Instant::from_nanos(45)), 0);
    }

    proptest::proptest! {
        /// The cached epoch is only a shortcut: any sequence of instants (forwards,
        /// backwards, huge) locates every one exactly as the division does.
        #[test]
        fn the_epoch_cache_agrees_with_division(
            len in 1usize..40,
            width in proptest::prop_oneof![1u64..5, 1u64..2_000_000_000, proptest::prelude::any::<u64>()],
            nows in proptest::collection::vec(
                proptest::prop_oneof![0u64..10_000_000_000, proptest::prelude::any::<u64>()],
                1..60,
            ),
        ) {
            let b = Buckets::new(len, width);
            for now in nows {
                let epoch = (now / width).min(EPOCH_MASK);
                let want = (epoch, (epoch % len as u64) as usize);
                proptest::prop_assert_eq!(b.locate(Instant::from_nanos(now)), want);
            }
        }
    }

    #[test]
    fn counts_saturate_instead_of_overflowing_into_the_epoch() {
        let b = Buckets::new(1, 10);
        b.add(Instant::ZERO, u64::MAX);
        b.add(Instant::ZERO, 5);
        assert_eq!(b.sum(Instant::ZERO), COUNT_MASK);
        b.add(Instant::MAX, 1);
        assert_eq!(b.sum(Instant::MAX), 1);
    }
}
