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

/// One planned round trip: the remote buckets of the window and this instance's own
/// counts in each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The first remote bucket of the window; the window is `first..first + own.len()`.
    pub(crate) first: u64,
    /// This instance's own counts in each remote bucket of the window, oldest first: absolute
    /// values, so pushing the same plan twice changes nothing.
    pub(crate) own: Vec<[u64; 2]>,
}

/// Which remote bucket each local bucket's counts go to.
#[derive(Clone, Debug, Default)]
pub(crate) struct Ledger {
    remote_of: BTreeMap<Instant, u64>,
}

impl Ledger {
    /// Forgets every mapping: the local counts restarted (a breaker transition) or the remote
    /// keys changed (a new breaker sequence number).
    pub(crate) fn reset(&mut self) {
        self.remote_of.clear();
    }

    /// Plans the push of `buckets` (`(start, counts)` from a snapshot) into remote buckets of
    /// `width_ms`, over a window of `len` remote buckets ending at now's.
    pub(crate) fn plan(
        &mut self,
        clocks: Clocks,
        buckets: &[(Instant, [u64; 2])],
        width_ms: u64,
        len: u64,
    ) -> Plan {
        let width_ms = width_ms.max(1);
        let len = len.max(1);
        let newest = clocks.wall_ms / width_ms;
        let first = newest.saturating_sub(len - 1);
        let mut own = vec![[0u64; 2]; usize::try_from(newest - first + 1).unwrap_or(1)];
        for &(start, counts) in buckets {
            let remote = *self
                .remote_of
                .entry(start)
                .or_insert_with(|| clocks.to_wall_ms(start) / width_ms);
            if remote < first || remote > newest {
                // Left the fleet's window (or from a clock that jumped): nobody counts it.
                continue;
            }
            let slot = &mut own[usize::try_from(remote - first).unwrap_or(0)];
            slot[0] += counts[0];
            slot[1] += counts[1];
        }
        self.remote_of.retain(|_, r| *r >= first);
        Plan { first, own }
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
    fn own_counts_are_absolute_and_each_local_bucket_keeps_its_remote_bucket() {
        let mut l = Ledger::default();
        // Local bucket at 4 s maps to wall 999 s → remote bucket 999 (1 s wide).
        let c = clocks(5_000, 1_000_000);
        let b = [(Instant::from_millis(4_000), [3, 10])];
        let p = l.plan(c, &b, 1_000, 3);
        assert_eq!(p.first, 998);
        assert_eq!(p.own, vec![[0, 0], [3, 10], [0, 0]]);
        // The same counts give the same plan: pushing it again changes nothing.
        assert_eq!(l.plan(c, &b, 1_000, 3), p);
        // The bucket grew; the wall clock drifted so it would now map to bucket 998, but
        // it still goes to 999.
        let c2 = clocks(5_500, 999_000 + 1_400);
        let p2 = l.plan(c2, &[(Instant::from_millis(4_000), [4, 12])], 1_000, 3);
        assert_eq!(p2.own, vec![[0, 0], [4, 12], [0, 0]]);
        // Two local buckets in one remote bucket add up.
        let p3 = l.plan(
            c2,
            &[
                (Instant::from_millis(4_000), [4, 12]),
                (Instant::from_millis(4_600), [1, 1]),
            ],
            1_000,
            3,
        );
        assert_eq!(p3.own[1], [5, 13]);
    }

    #[test]
    fn buckets_that_left_the_window_are_neither_pushed_nor_remembered() {
        let mut l = Ledger::default();
        let c = clocks(10_000, 100_000);
        l.plan(c, &[(Instant::from_millis(9_000), [1, 1])], 1_000, 2);
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
        assert_eq!(p.own, vec![[1, 1], [0, 0]]);
        assert_eq!(l.remote_of.len(), 1);
        l.reset();
        assert!(l.remote_of.is_empty());
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
}
