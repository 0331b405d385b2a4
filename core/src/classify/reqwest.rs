//! Classifier for reqwest (feature `reqwest`).
