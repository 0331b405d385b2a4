//! The manual: reading that belongs to no single type.
//!
//! - [`bad_input`]: every input a user controls, what redress does with a hostile or absurd
//!   value of it, and the test that shows it.

#[doc = include_str!("bad_input.md")]
pub mod bad_input {}
