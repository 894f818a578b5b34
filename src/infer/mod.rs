//! Inference: decoding per-base class probabilities into gene models.

pub mod decode;
pub mod evaluate;
