//! Labelled data for training and evaluation: sequence classification sets and their splits.

pub mod classify;
pub mod folds;
pub mod homology;
pub mod split;
pub mod windows;

pub use classify::{promoter_benchmarks, BenchmarkSet, LabeledSet};
pub use folds::Split;
