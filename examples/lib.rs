//! Runnable examples of redress; see the `[[example]]` entries of this package.
#![forbid(unsafe_code)]
