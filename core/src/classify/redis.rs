//! Classifier for redis (feature `redis`).
