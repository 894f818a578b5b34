//! Inference: decoding per-base class probabilities into gene models.

pub mod decode;
pub mod evaluate;
pub mod signals;
pub mod tune;
