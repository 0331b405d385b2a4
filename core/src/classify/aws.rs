//! Classifier for aws (feature `aws`).
