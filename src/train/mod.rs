//! Training support: evaluation metrics (more to come: loops, schedules, checkpoints).

pub mod metrics;
pub mod optim;
