//! Classifier for http (feature `http`).
