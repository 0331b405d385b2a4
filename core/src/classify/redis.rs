//! Classifier for redis (feature `redis`).

use std::error::Error;

use crate::class::Classification;

/// The chain classifier's probe: `Some` when `err` is this library's error type.
pub(super) fn probe(err: &(dyn Error + 'static)) -> Option<Classification> {
    let _ = err;
    None
}
