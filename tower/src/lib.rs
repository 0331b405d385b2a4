//! A tower `Layer` applying a redress policy to any `Service`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
