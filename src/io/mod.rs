//! Readers and writers: FASTA (plain, gzip, BGZF, stdin, indexed), GFF3 gene models, BED regions,
//! outputs.

pub mod bed;
pub mod extract;
pub mod fai;
pub mod fasta;
pub mod gff;
pub mod gffwrite;
pub mod labels;
mod open;

pub use open::{data_dir, open_bytes, open_input, shared_data, write_atomic, Compression};
