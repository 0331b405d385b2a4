//! Abstract time: the core never reads a clock.
//!
//! Every input to the core carries a `now: Instant` supplied by the caller. [`Instant`] is
//! redress's own `Copy` type, nanoseconds since an epoch the caller picks (a driver maps its
//! runtime's clock onto it; a test starts at [`Instant::ZERO`]). Arithmetic on it saturates
//! and never panics, so a hostile or buggy clock cannot crash a policy.

use core::fmt;
use core::ops::{Add, Sub};
use core::time::Duration;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A point in time, as nanoseconds since the epoch of the clock that produced it.
///
/// Instants from different clocks are not comparable; instants from one clock are.
/// All arithmetic saturates: adding past [`Instant::MAX`] gives `MAX`, and subtracting a
/// later instant from an earlier one gives [`Duration::ZERO`].
#[derive(Copy, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Instant {
    nanos: u64,
}

impl Instant {
    /// The clock's epoch.
    pub const ZERO: Self = Self { nanos: 0 };
    /// The largest representable instant (about 584 years after the epoch).
    pub const MAX: Self = Self { nanos: u64::MAX };

    /// An instant `nanos` nanoseconds after the epoch.
    pub const fn from_nanos(nanos: u64) -> Self {
        Self { nanos }
    }

    /// An instant `micros` microseconds after the epoch (saturating).
    pub const fn from_micros(micros: u64) -> Self {
        Self {
            nanos: micros.saturating_mul(1_000),
        }
    }

    /// An instant `millis` milliseconds after the epoch (saturating).
    pub const fn from_millis(millis: u64) -> Self {
        Self {
            nanos: millis.saturating_mul(1_000_000),
        }
    }

    /// An instant `secs` seconds after the epoch (saturating).
    pub const fn from_secs(secs: u64) -> Self {
        Self {
            nanos: secs.saturating_mul(1_000_000_000),
        }
    }

    /// Nanoseconds since the epoch.
    pub const fn as_nanos(self) -> u64 {
        self.nanos
    }

    /// The time since the epoch.
    pub const fn since_epoch(self) -> Duration {
        Duration::from_nanos(self.nanos)
    }

    /// `self + d`, saturating at [`Instant::MAX`].
    pub const fn saturating_add(self, d: Duration) -> Self {
        Self {
            nanos: self.nanos.saturating_add(duration_nanos(d)),
        }
    }

    /// `self - d`, saturating at [`Instant::ZERO`].
    pub const fn saturating_sub(self, d: Duration) -> Self {
        Self {
            nanos: self.nanos.saturating_sub(duration_nanos(d)),
        }
    }

    /// The time from `earlier` to `self`, or zero if `earlier` is later.
    pub const fn saturating_duration_since(self, earlier: Self) -> Duration {
        Duration::from_nanos(self.nanos.saturating_sub(earlier.nanos))
    }

    /// `self + d`, or `None` on overflow.
    pub const fn checked_add(self, d: Duration) -> Option<Self> {
        let d = d.as_nanos();
        if d > u64::MAX as u128 {
            return None;
        }
        match self.nanos.checked_add(d as u64) {
            Some(nanos) => Some(Self { nanos }),
            None => None,
        }
    }
}

/// A duration in nanoseconds, saturating at `u64::MAX` (584 years).
pub(crate) const fn duration_nanos(d: Duration) -> u64 {
    let n = d.as_nanos();
    if n > u64::MAX as u128 {
        u64::MAX
    } else {
        n as u64
    }
}

impl Add<Duration> for Instant {
    type Output = Self;
    fn add(self, d: Duration) -> Self {
        self.saturating_add(d)
    }
}

impl Sub<Duration> for Instant {
    type Output = Self;
    fn sub(self, d: Duration) -> Self {
        self.saturating_sub(d)
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Instant({:?})", self.since_epoch())
    }
}

/// A source of [`Instant`]s.
///
/// The core never calls this; drivers do, and tests hand them a [`ManualClock`].
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> Instant;

    /// The current time as a cheaper reading that may lag [`now`](Self::now) by up to one
    /// tick of a coarse clock (a few milliseconds) and never runs ahead of it. Drivers use
    /// it for calls whose time is only counted in buckets and recovery times (no deadline,
    /// no attempt timeout; see [`Policy::needs_precise_clock`](crate::Policy::needs_precise_clock)).
    ///
    /// The default is [`now`](Self::now); [`SystemClock`] reads the kernel's coarse
    /// monotonic clock on Linux.
    fn now_coarse(&self) -> Instant {
        self.now()
    }
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> Instant {
        (**self).now()
    }
    fn now_coarse(&self) -> Instant {
        (**self).now_coarse()
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Instant {
        (**self).now()
    }
    fn now_coarse(&self) -> Instant {
        (**self).now_coarse()
    }
}

/// A clock that only moves when told to: the fake clock of tests and simulations.
///
/// Cloning gives a handle to the same clock.
///
/// ```
/// use redress::{Clock, Instant, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::new(Instant::ZERO);
/// clock.advance(Duration::from_millis(250));
/// assert_eq!(clock.now(), Instant::from_millis(250));
/// ```
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock that reads `start` until moved.
    pub fn new(start: Instant) -> Self {
        Self {
            nanos: Arc::new(AtomicU64::new(start.nanos)),
        }
    }

    /// Moves the clock forward by `d` (saturating).
    pub fn advance(&self, d: Duration) {
        let d = duration_nanos(d);
        // fetch_update never fails here: the closure always returns Some.
        let _ = self
            .nanos
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_add(d))
            });
    }

    /// Sets the clock to `t`, which may be earlier than now (to test clocks that go back).
    pub fn set(&self, t: Instant) {
        self.nanos.store(t.nanos, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        Instant::from_nanos(self.nanos.load(Ordering::SeqCst))
    }
}

/// The most a coarse clock reading lags the precise one: one kernel tick at the slowest
/// common tick rate (100 Hz). The drivers' use of [`Clock::now_coarse`] is bounded by it.
pub(crate) const COARSE_TICK: Duration = Duration::from_millis(10);

/// The process's monotonic clock, mapped onto [`Instant`] with one process-wide epoch.
///
/// Every `SystemClock` in a process shares the epoch (the first time any of them is read),
/// so breakers and budgets shared between threads and drivers see comparable instants.
///
/// [`now`](Clock::now) reads `std::time::Instant`. On Linux,
/// [`now_coarse`](Clock::now_coarse) reads `CLOCK_MONOTONIC_COARSE`, which costs no
/// timestamp-counter read (about half of `now` here) and lags by at most one kernel tick
/// (1–10 ms); elsewhere it is `now`.
#[derive(Copy, Clone, Debug, Default)]
pub struct SystemClock;

impl SystemClock {
    /// Maps a `std::time::Instant` onto redress's time line.
    pub fn instant_from_std(t: std::time::Instant) -> Instant {
        Instant::from_nanos(duration_nanos(t.saturating_duration_since(epoch().std)))
    }

    /// Maps a redress [`Instant`] back onto `std::time::Instant`.
    ///
    /// Instants too far in the future to represent (for example [`Instant::MAX`]) map to
    /// about thirty years from the epoch, which every caller treats as "never".
    pub fn std_from_instant(t: Instant) -> std::time::Instant {
        let far = Duration::from_secs(30 * 365 * 24 * 3600);
        let e = epoch().std;
        e.checked_add(t.since_epoch().min(far)).unwrap_or(e)
    }
}

/// The process-wide epoch: a `std::time::Instant` and, on Linux, a reading of the
/// monotonic clock taken right after it.
struct Epoch {
    std: std::time::Instant,
    #[cfg(any(target_os = "linux", target_os = "android"))]
    mono: Option<u64>,
}

#[inline]
fn epoch() -> &'static Epoch {
    static EPOCH: std::sync::OnceLock<Epoch> = std::sync::OnceLock::new();
    EPOCH.get_or_init(pair_clocks)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn pair_clocks() -> Epoch {
    Epoch {
        std: std::time::Instant::now(),
    }
}

/// Reads std's clock (which is `CLOCK_MONOTONIC`) and the monotonic clock right after it,
/// keeping the tightest of a few pairings. The monotonic reading is taken *after* std's,
/// so an instant of the coarse clock never runs ahead of `now` (it may lag by the pairing's
/// spread, tens of nanoseconds, on top of its tick).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn pair_clocks() -> Epoch {
    let read = || mono_nanos(ClockId::CLOCK_MONOTONIC);
    let mut best: Option<(u64, Epoch)> = None;
    for _ in 0..8 {
        let (Some(before), std, Some(after)) = (read(), std::time::Instant::now(), read()) else {
            break;
        };
        let spread = after.saturating_sub(before);
        if best.as_ref().is_none_or(|(s, _)| spread < *s) {
            let mono = Some(after);
            best = Some((spread, Epoch { std, mono }));
        }
    }
    best.map_or_else(
        || Epoch {
            std: std::time::Instant::now(),
            mono: None,
        },
        |(_, e)| e,
    )
}

#[cfg(any(target_os = "linux", target_os = "android"))]
use nix::time::ClockId;

/// A monotonic clock's reading in nanoseconds (saturating; these clocks start at boot).
#[cfg(any(target_os = "linux", target_os = "android"))]
#[inline]
fn mono_nanos(id: ClockId) -> Option<u64> {
    let t = nix::time::clock_gettime(id).ok()?;
    let secs = u64::try_from(t.tv_sec()).unwrap_or(0);
    let nanos = u64::try_from(t.tv_nsec()).unwrap_or(0);
    Some(secs.saturating_mul(1_000_000_000).saturating_add(nanos))
}

impl Clock for SystemClock {
    #[inline]
    fn now(&self) -> Instant {
        Self::instant_from_std(std::time::Instant::now())
    }

    /// `CLOCK_MONOTONIC_COARSE` on Linux (or `now`, should it ever fail to read).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[inline]
    fn now_coarse(&self) -> Instant {
        match (epoch().mono, mono_nanos(ClockId::CLOCK_MONOTONIC_COARSE)) {
            (Some(e), Some(t)) => Instant::from_nanos(t.saturating_sub(e)),
            _ => self.now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_instead_of_panicking() {
        assert_eq!(Instant::MAX + Duration::from_secs(1), Instant::MAX);
        assert_eq!(Instant::ZERO - Duration::from_secs(1), Instant::ZERO);
        assert_eq!(Instant::ZERO - Instant::MAX, Duration::ZERO);
        assert_eq!(Instant::ZERO + Duration::MAX, Instant::MAX);
        assert_eq!(Instant::from_secs(u64::MAX), Instant::MAX);
        assert_eq!(Instant::ZERO.checked_add(Duration::MAX), None);
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(Instant::from_secs(5));
        assert_eq!(c.now(), Instant::from_secs(5));
        c.advance(Duration::from_secs(1));
        assert_eq!(c.now(), Instant::from_secs(6));
        c.set(Instant::from_secs(1));
        assert_eq!(c.now(), Instant::from_secs(1));
    }

    #[test]
    fn the_coarse_system_clock_lags_by_at_most_a_tick_and_never_leads() {
        for _ in 0..1000 {
            let coarse = SystemClock.now_coarse();
            let now = SystemClock.now();
            assert!(coarse <= now, "{coarse:?} > {now:?}");
            assert!(
                now - coarse < Duration::from_millis(100),
                "{now:?} - {coarse:?}"
            );
        }
        // `now` is the mapping of std's clock.
        let a = SystemClock.now();
        let b = SystemClock::instant_from_std(std::time::Instant::now());
        let c = SystemClock.now();
        assert!(a <= b && b <= c, "{a:?} {b:?} {c:?}");
    }

    #[test]
    fn system_clock_round_trips() {
        let now = SystemClock.now();
        let std = SystemClock::std_from_instant(now);
        assert_eq!(SystemClock::instant_from_std(std), now);
        let _ = SystemClock::std_from_instant(Instant::MAX);
    }
}
