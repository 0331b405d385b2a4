//! Classifier for sqlstate (feature `sqlstate`).
