//! Cross-checks against the `bio` crate (rust-bio) as an independent reference: FASTA parsing of
//! real genomes (A. thaliana's IUPAC codes K, S, Y become N under genolm's default policy) and
//! IUPAC reverse complement.

use std::io::Read;

use genolm::io::fasta::read_records;
use genolm::seq::{revcomp, SeqPolicy};
use proptest::prelude::*;

/// Records of a (possibly gzip-compressed) FASTA file read with `bio::io::fasta`.
fn bio_records(path: &std::path::Path) -> Vec<(String, String, Vec<u8>)> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    let text: Box<dyn Read> = if bytes.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(&bytes[..]))
    } else {
        Box::new(&bytes[..])
    };
    bio::io::fasta::Reader::new(text)
        .records()
        .map(|r| {
            let r = r.unwrap();
            (
                r.id().to_string(),
                r.desc().unwrap_or("").to_string(),
                // genolm's default policy: upper-case, IUPAC ambiguity codes become N.
                r.seq()
                    .iter()
                    .map(|&b| match b.to_ascii_uppercase() {
                        c @ (b'A' | b'C' | b'G' | b'T') => c,
                        b'U' => b'T',
                        _ => b'N',
                    })
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn fasta_reader_agrees_with_rust_bio_on_real_genomes() {
    let mut checked = 0;
    for rel in [
        "genomes/ecoli_k12_mg1655/genome.fna.gz",
        "genomes/yeast_chrI_II/genome.fa.gz",
        "genomes/athaliana_1pct/genome.fa.gz",
        "genomes/sars_cov_2/genome.fasta",
        "promoters/cnnprom/Ecoli_prom.fa.gz",
    ] {
        let Some(path) = genolm::io::shared_data(rel) else {
            eprintln!("SKIP {rel}: not under the data directory");
            continue;
        };
        let ours = read_records(&path.to_string_lossy(), SeqPolicy::default()).unwrap();
        let theirs = bio_records(&path);
        assert_eq!(ours.len(), theirs.len(), "{rel}: record count");
        for (a, (id, desc, seq)) in ours.iter().zip(&theirs) {
            assert_eq!(&a.name, id, "{rel}");
            assert_eq!(a.description.trim(), desc.trim(), "{rel}: {id}");
            assert!(a.seq == *seq, "{rel}: {id}: sequences differ");
        }
        checked += 1;
    }
    eprintln!("{checked} files agree with rust-bio");
}

proptest! {
    #[test]
    fn revcomp_agrees_with_rust_bio(s in "[ACGTNRYKMSWBDHVacgtnrykmswbdhv]{0,200}") {
        let s = s.into_bytes();
        prop_assert_eq!(revcomp(&s), bio::alphabets::dna::revcomp(&s));
    }
}
