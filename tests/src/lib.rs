//! Shared helpers of redress's scenario, property and conformance tests.

pub mod scenario;
