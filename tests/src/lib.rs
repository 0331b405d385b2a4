//! Shared helpers of redress's scenario, property and conformance tests.
#![forbid(unsafe_code)]

pub mod scenario;
