//! Randomness: the only module that names `rand_core`.
//!
//! Jittered backoff needs random numbers, and tests need them to be reproducible. The core
//! takes an injected generator implementing [`Rng`] (rand_core's trait, re-exported here so
//! that a rename upstream touches one file). By default each call gets a [`DefaultRng`]
//! (`rand_pcg::Pcg64Mcg`) seeded from the policy's root seed and a per-policy counter, as
//! quinn derives per-connection seeds from its endpoint: the same seed, policy and outcomes
//! give the same decisions on every driver.

use core::time::Duration;

pub use rand_core::Rng;
use rand_core::SeedableRng;

/// The generator a policy uses when none is injected.
pub type DefaultRng = rand_pcg::Pcg64Mcg;

/// A generator for call number `index` of a policy whose root seed is `root`.
///
/// Seeds are mixed with SplitMix64 so neighbouring indices give unrelated streams.
pub fn derive_rng(root: u64, index: u64) -> DefaultRng {
    DefaultRng::seed_from_u64(splitmix64(root ^ splitmix64(index)))
}

/// A generator seeded directly from `seed`.
pub fn seeded(seed: u64) -> DefaultRng {
    DefaultRng::seed_from_u64(seed)
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform `f64` in `[0, 1)` (53 random bits).
pub fn unit_f64(rng: &mut dyn Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A duration uniform in `[lo, hi]` (nanosecond resolution); `lo` if `hi <= lo`.
pub fn uniform_duration(rng: &mut dyn Rng, lo: Duration, hi: Duration) -> Duration {
    if hi <= lo {
        return lo;
    }
    let lo_n = crate::time::duration_nanos(lo);
    let span = crate::time::duration_nanos(hi).saturating_sub(lo_n);
    // Lemire's multiply-shift: unbiased enough for jitter and free of division.
    let r = ((u128::from(rng.next_u64()) * (u128::from(span) + 1)) >> 64) as u64;
    Duration::from_nanos(lo_n.saturating_add(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_root_and_index_give_same_stream() {
        let mut a = derive_rng(7, 3);
        let mut b = derive_rng(7, 3);
        let mut c = derive_rng(7, 4);
        let (x, y, z) = (a.next_u64(), b.next_u64(), c.next_u64());
        assert_eq!(x, y);
        assert_ne!(x, z);
    }

    #[test]
    fn uniform_duration_stays_in_bounds() {
        let mut r = seeded(1);
        let lo = Duration::from_millis(10);
        let hi = Duration::from_millis(20);
        for _ in 0..10_000 {
            let d = uniform_duration(&mut r, lo, hi);
            assert!(d >= lo && d <= hi);
        }
        assert_eq!(uniform_duration(&mut r, hi, lo), hi);
        let f = unit_f64(&mut r);
        assert!((0.0..1.0).contains(&f));
    }
}
