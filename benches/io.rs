//! Criterion benchmarks for reading and encoding, on the E. coli genome from the data directory.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use genolm::cli::stats::file_stats;
use genolm::io::fasta::read_records;
use genolm::seq::SeqPolicy;
use genolm::tokenize::kmer::{Kmer, Tail};
use genolm::tokenize::onehot;

fn bench(c: &mut Criterion) {
    let Some(path) = genolm::io::shared_data("genomes/ecoli_k12_mg1655/genome.fna.gz") else {
        return;
    };
    let path = path.to_string_lossy().to_string();
    let recs = read_records(&path, SeqPolicy::default()).expect("read E. coli");
    let seq = &recs[0].seq;
    let mut g = c.benchmark_group("io");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(seq.len() as u64));
    g.bench_function("stats_gzip_ecoli", |b| {
        b.iter(|| file_stats(&path).unwrap())
    });
    let mut buf = vec![0f32; 4 * seq.len()];
    g.bench_function("onehot_encode", |b| {
        b.iter(|| onehot::encode_into(seq, &mut buf))
    });
    let kmer = Kmer::new(6, 1, Tail::Bases).unwrap();
    let mut ids = Vec::with_capacity(seq.len());
    g.bench_function("kmer6_encode", |b| {
        b.iter(|| {
            ids.clear();
            kmer.encode_ids_into(seq, &mut ids).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
