//! Ready-made observers of a policy's events (features `tracing` and `metrics`).
