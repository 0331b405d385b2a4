//! Classifier for tonic (feature `tonic`).
