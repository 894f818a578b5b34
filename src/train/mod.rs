//! Training support: evaluation metrics (more to come: loops, schedules, checkpoints).

pub mod classify;
pub mod finetune;
pub mod markov;
pub mod metrics;
pub mod optim;
pub mod plot;
pub mod pretrain;
pub mod run;
pub mod segment;
pub mod step;
