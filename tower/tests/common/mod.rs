//! What the layer's test files share.

use std::time::Duration;

use redress::backoff::constant;
use redress::event::Recorder;
use redress::{Policy, PolicyBuilder, Retry};

/// A policy builder of `attempts` attempts 1 s apart, no deadline, events to `hook`.
pub(crate) fn observed_builder(attempts: u32, hook: &Recorder) -> PolicyBuilder {
    Policy::builder()
        .retry(
            Retry::builder()
                .max_attempts(attempts)
                .no_deadline()
                .strategy(constant(Duration::from_secs(1))),
        )
        .hook(hook.clone())
}
