//! genolm: a genomic language-model toolkit.
//!
//! Data flows one way: [`io`] → [`tokenize`] + [`augment`] → models → train → infer, with the
//! command line ([`cli`]) on top.
#![warn(missing_docs)]

pub mod augment;
pub mod cli;
pub mod data;
pub mod device;
pub mod error;
pub mod infer;
pub mod io;
pub mod mem;
pub mod models;
pub mod ops;
pub mod seq;
pub mod tokenize;
pub mod train;

pub use error::{Error, Result};
