//! The bookkeeping of one exchange, without I/O: which counts are new since the last push,
//! which remote buckets they go to, and what the others did.
//!
//! Local buckets are keyed by their start on the process's time line. Each is mapped once,
//! when first pushed, to the remote bucket holding that instant on the wall clock, and its
//! later growth goes to the same remote bucket, so a drifting offset between the two clocks
//! never pushes a count twice.

use std::collections::BTreeMap;
use std::time::Duration;

use redress::Instant;

/// One instant on both time lines: the process's (`redress::Instant`) and the wall clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Clocks {
    /// Now on the process's time line.
    pub(crate) local: Instant,
    /// Now on the wall clock, in milliseconds since the Unix epoch.
    pub(crate) wall_ms: u64,
}

impl Clocks {
    /// An instant of the process's time line on the wall clock.
    pub(crate) fn to_wall_ms(self, t: Instant) -> u64 {
        if t >= self.local {
            self.wall_ms.saturating_add(millis(t - self.local))
        } else {
            self.wall_ms.saturating_sub(millis(self.local - t))
        }
    }

    /// A wall-clock instant on the process's time line.
    pub(crate) fn to_local(self, wall_ms: u64) -> Instant {
        if wall_ms >= self.wall_ms {
            self.local + Duration::from_millis(wall_ms - self.wall_ms)
        } else {
            self.local - Duration::from_millis(self.wall_ms - wall_ms)
        }
    }
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What was pushed for one local bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pushed {
    remote: u64,
    counts: [u64; 2],
}

/// One planned round trip: the remote buckets of the window and what to add to each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The first remote bucket of the window; the window is `first..first + add.len()`.
    pub(crate) first: u64,
    /// What to add to each remote bucket of the window, oldest first.
    pub(crate) add: Vec<[u64; 2]>,
    updates: Vec<(Instant, Pushed)>,
}

/// The own counts pushed so far, per local bucket.
#[derive(Clone, Debug, Default)]
pub(crate) struct Ledger {
    pushed: BTreeMap<Instant, Pushed>,
}

impl Ledger {
    /// Forgets every push: the local counts restarted (a breaker transition) or the store
    /// lost what it held (a new incarnation), so what is counted now is pushed again in full.
    pub(crate) fn reset(&mut self) {
        self.pushed.clear();
    }

    /// Starts over after the store lost what it held, in the round whose push (`plan`) went
    /// into the new store: what was pushed before is gone, so the ledger keeps only the
    /// deltas `plan` added, and the rest of each bucket goes again next time.
    pub(crate) fn restart_from(&mut self, plan: &Plan) {
        let before = std::mem::take(&mut self.pushed);
        for &(start, p) in &plan.updates {
            let old = before.get(&start).map_or([0, 0], |b| b.counts);
            self.pushed.insert(
                start,
                Pushed {
                    remote: p.remote,
                    counts: [
                        p.counts[0].saturating_sub(old[0]),
                        p.counts[1].saturating_sub(old[1]),
                    ],
                },
            );
        }
    }

    /// Plans the push of `buckets` (`(start, counts)` from a snapshot) into remote buckets of
    /// `width_ms`, over a window of `len` remote buckets ending at now's.
    pub(crate) fn plan(
        &self,
        clocks: Clocks,
        buckets: &[(Instant, [u64; 2])],
        width_ms: u64,
        len: u64,
    ) -> Plan {
        let width_ms = width_ms.max(1);
        let len = len.max(1);
        let newest = clocks.wall_ms / width_ms;
        let first = newest.saturating_sub(len - 1);
        let mut add = vec![[0u64; 2]; usize::try_from(newest - first + 1).unwrap_or(1)];
        let mut updates = Vec::new();
        for &(start, counts) in buckets {
            let before = self.pushed.get(&start).copied().unwrap_or(Pushed {
                remote: clocks.to_wall_ms(start) / width_ms,
                counts: [0, 0],
            });
            if before.remote < first || before.remote > newest {
                // Left the fleet's window (or from a clock that jumped): nobody counts it.
                continue;
            }
            let delta = [
                counts[0].saturating_sub(before.counts[0]),
                counts[1].saturating_sub(before.counts[1]),
            ];
            if delta == [0, 0] {
                continue;
            }
            let slot = &mut add[usize::try_from(before.remote - first).unwrap_or(0)];
            slot[0] += delta[0];
            slot[1] += delta[1];
            updates.push((
                start,
                Pushed {
                    remote: before.remote,
                    counts: [
                        counts[0].max(before.counts[0]),
                        counts[1].max(before.counts[1]),
                    ],
                },
            ));
        }
        Plan {
            first,
            add,
            updates,
        }
    }

    /// Records that `plan` was pushed, and forgets buckets that left its window.
    pub(crate) fn commit(&mut self, plan: &Plan) {
        for &(start, p) in &plan.updates {
            self.pushed.insert(start, p);
        }
        self.pushed.retain(|_, p| p.remote >= plan.first);
    }

    /// What the others did: the fleet's counts per remote bucket of `plan`'s window minus
    /// what this instance pushed into each (after [`commit`](Self::commit)).
    pub(crate) fn others(&self, plan: &Plan, fleet: &[[u64; 2]]) -> [u64; 2] {
        let mut out = [0u64; 2];
        for (i, f) in fleet.iter().enumerate() {
            let id = plan.first + i as u64;
            let own = self
                .pushed
                .values()
                .filter(|p| p.remote == id)
                .fold([0u64; 2], |a, p| [a[0] + p.counts[0], a[1] + p.counts[1]]);
            out[0] += f[0].saturating_sub(own[0]);
            out[1] += f[1].saturating_sub(own[1]);
        }
        out
    }
}

/// The state a breaker publishes for the fleet, as stored (after the format version and the
/// sequence number).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Published {
    /// Open until a wall-clock instant (ms since the Unix epoch).
    Open { until_ms: u64, by: String },
    /// Closed.
    Close { by: String },
}

/// The format version of what this crate writes.
pub(crate) const FORMAT: &str = "1";

impl Published {
    /// The stored form without the sequence number, which the script prepends:
    /// `open <until_ms> <by>` or `close <by>`.
    pub(crate) fn encode(&self) -> String {
        match self {
            Self::Open { until_ms, by } => format!("open {until_ms} {by}"),
            Self::Close { by } => format!("close {by}"),
        }
    }
}

/// A stored state that could be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Read {
    /// Nothing was ever published (or it expired).
    Nothing,
    /// A state in this crate's format, with its sequence number.
    State { seq: u64, state: Published },
    /// A state in another format version, ignored.
    UnknownVersion(String),
    /// A state that does not parse, ignored.
    Garbled(String),
}

/// Parses a stored state: `<version> <seq> open <until_ms> <by>` or
/// `<version> <seq> close <by>`.
pub(crate) fn parse(stored: &str) -> Read {
    if stored.is_empty() {
        return Read::Nothing;
    }
    let mut parts = stored.split(' ');
    let version = parts.next().unwrap_or_default();
    if version != FORMAT {
        return Read::UnknownVersion(version.chars().take(32).collect());
    }
    let garbled = || Read::Garbled(stored.chars().take(120).collect());
    let Some(seq) = parts.next().and_then(|s| s.parse::<u64>().ok()) else {
        return garbled();
    };
    let state = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("open"), Some(until), Some(by), None) => match until.parse::<u64>() {
            Ok(until_ms) => Published::Open {
                until_ms,
                by: by.to_owned(),
            },
            Err(_) => return garbled(),
        },
        (Some("close"), Some(by), None, None) => Published::Close { by: by.to_owned() },
        _ => return garbled(),
    };
    Read::State { seq, state }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clocks(local_ms: u64, wall_ms: u64) -> Clocks {
        Clocks {
            local: Instant::from_millis(local_ms),
            wall_ms,
        }
    }

    #[test]
    fn clocks_map_both_ways_and_saturate() {
        let c = clocks(5_000, 1_000_000);
        assert_eq!(c.to_wall_ms(Instant::from_millis(4_000)), 999_000);
        assert_eq!(c.to_local(1_002_000), Instant::from_millis(7_000));
        assert_eq!(c.to_local(0), Instant::ZERO);
        assert_eq!(clocks(5_000, 10).to_wall_ms(Instant::ZERO), 0);
        assert_eq!(c.to_wall_ms(Instant::from_millis(6_500)), 1_001_500);
        assert!(
            c.to_wall_ms(Instant::MAX) > 1_000_000_000_000,
            "no overflow"
        );
    }

    #[test]
    fn only_growth_is_pushed_and_each_local_bucket_keeps_its_remote_bucket() {
        let mut l = Ledger::default();
        // Local bucket at 4 s maps to wall 999 s → remote bucket 999 (1 s wide).
        let c = clocks(5_000, 1_000_000);
        let b = [(Instant::from_millis(4_000), [3, 10])];
        let p = l.plan(c, &b, 1_000, 3);
        assert_eq!(p.first, 998);
        assert_eq!(p.add, vec![[0, 0], [3, 10], [0, 0]]);
        // Not committed (the push failed): the same is planned again.
        assert_eq!(l.plan(c, &b, 1_000, 3).add, p.add);
        l.commit(&p);
        assert_eq!(l.others(&p, &[[0, 0], [5, 20], [1, 1]]), [3, 11]);
        // The bucket grew; the wall clock drifted so it would now map to bucket 998, but
        // the growth still goes to 999.
        let c2 = clocks(5_500, 999_000 + 1_400);
        let p2 = l.plan(c2, &[(Instant::from_millis(4_000), [4, 12])], 1_000, 3);
        assert_eq!(p2.add, vec![[0, 0], [1, 2], [0, 0]]);
        l.commit(&p2);
        // Nothing new: nothing to push.
        let p3 = l.plan(c2, &[(Instant::from_millis(4_000), [4, 12])], 1_000, 3);
        assert_eq!(p3.add, vec![[0, 0]; 3]);
    }

    #[test]
    fn buckets_that_left_the_window_are_neither_pushed_nor_remembered() {
        let mut l = Ledger::default();
        let c = clocks(10_000, 100_000);
        let p = l.plan(c, &[(Instant::from_millis(9_000), [1, 1])], 1_000, 2);
        l.commit(&p);
        // 5 s later the window is 104..=105: the old bucket (99) is gone.
        let c = clocks(15_000, 105_000);
        let p = l.plan(
            c,
            &[
                (Instant::from_millis(9_000), [2, 2]),
                (Instant::from_millis(14_000), [1, 1]),
            ],
            1_000,
            2,
        );
        assert_eq!(p.first, 104);
        assert_eq!(p.add, vec![[1, 1], [0, 0]]);
        l.commit(&p);
        assert_eq!(l.pushed.len(), 1);
        l.reset();
        assert!(l.pushed.is_empty());
    }

    /// The round that meets a store that lost its data pushes only the deltas into it; the
    /// next round must push the rest of each bucket, not all of it again.
    #[test]
    fn after_a_store_reset_each_bucket_reaches_the_new_store_exactly_once() {
        let mut l = Ledger::default();
        let c = clocks(5_000, 1_000_000);
        let at = |ms| Instant::from_millis(ms);
        let p = l.plan(c, &[(at(3_000), [2, 2]), (at(4_000), [5, 5])], 1_000, 3);
        l.commit(&p);
        // The store is flushed; meanwhile the 4 s bucket grew by 3. This round pushes only
        // that growth into the empty store, then learns of the flush.
        let p = l.plan(c, &[(at(3_000), [2, 2]), (at(4_000), [8, 8])], 1_000, 3);
        assert_eq!(p.add, vec![[0, 0], [3, 3], [0, 0]]);
        l.restart_from(&p);
        // The next round brings the new store up to the local counts, no further.
        let p = l.plan(c, &[(at(3_000), [2, 2]), (at(4_000), [9, 9])], 1_000, 3);
        assert_eq!(
            p.add,
            vec![[2, 2], [6, 6], [0, 0]],
            "2 again, 8 - 3 + 1 more"
        );
        l.commit(&p);
        assert_eq!(l.others(&p, &[[2, 2], [9, 9], [0, 0]]), [0, 0]);
    }

    #[test]
    fn others_never_go_negative_when_the_store_lost_counts() {
        let mut l = Ledger::default();
        let c = clocks(1_000, 10_000);
        let p = l.plan(c, &[(Instant::from_millis(1_000), [5, 5])], 1_000, 1);
        l.commit(&p);
        assert_eq!(l.others(&p, &[[2, 7]]), [0, 2]);
    }

    #[test]
    fn states_parse_and_unknown_or_garbled_ones_are_recognised() {
        let open = Published::Open {
            until_ms: 1234,
            by: "a1".into(),
        };
        assert_eq!(open.encode(), "open 1234 a1");
        assert_eq!(
            parse("1 7 open 1234 a1"),
            Read::State {
                seq: 7,
                state: open
            }
        );
        assert_eq!(
            parse("1 8 close b2"),
            Read::State {
                seq: 8,
                state: Published::Close { by: "b2".into() }
            }
        );
        assert_eq!(parse(""), Read::Nothing);
        assert_eq!(parse("2 9 half_open x"), Read::UnknownVersion("2".into()));
        for bad in [
            "1",
            "1 x open 1 a",
            "1 3 open never a",
            "1 3 open 5",
            "1 3 shut a",
            "1 3 close a b",
        ] {
            assert!(matches!(parse(bad), Read::Garbled(_)), "{bad}");
        }
    }

    proptest::proptest! {
        /// Whatever the local counts do (grow, or restart after a reset) and whichever
        /// pushes fail, what was pushed for a bucket never exceeds its count, and after a
        /// successful push it equals it: nothing is pushed twice, nothing is lost.
        #[test]
        fn pushes_add_up_to_the_local_counts(
            steps in proptest::collection::vec((0u64..3, 0u64..4, proptest::bool::ANY), 1..40),
        ) {
            let mut l = Ledger::default();
            let mut local = [[0u64; 2]; 3];
            let mut remote = std::collections::BTreeMap::<u64, [u64; 2]>::new();
            let c = clocks(10_000, 1_000_000);
            for (bucket, grow, ok) in steps {
                let b = bucket as usize;
                local[b][0] += grow;
                local[b][1] += grow * 2;
                let buckets: Vec<(Instant, [u64; 2])> = (0..3)
                    .map(|i| (Instant::from_millis(8_000 + i * 1_000), local[i as usize]))
                    .collect();
                let plan = l.plan(c, &buckets, 1_000, 3);
                if ok {
                    for (i, add) in plan.add.iter().enumerate() {
                        let r = remote.entry(plan.first + i as u64).or_default();
                        r[0] += add[0];
                        r[1] += add[1];
                    }
                    l.commit(&plan);
                    let fleet: Vec<[u64; 2]> = (0..plan.add.len() as u64)
                        .map(|i| remote.get(&(plan.first + i)).copied().unwrap_or_default())
                        .collect();
                    proptest::prop_assert_eq!(l.others(&plan, &fleet), [0, 0]);
                    for (i, counts) in local.iter().enumerate() {
                        let id = 998 + i as u64;
                        proptest::prop_assert_eq!(remote.get(&id).copied().unwrap_or_default(), *counts);
                    }
                }
            }
        }
    }
}
