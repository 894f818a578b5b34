//! Criterion benchmarks for the homology search kernels on EPDnew promoters (300 bp) from the
//! data directory: the LCS bound over a query's candidates, one alignment identity, and the
//! candidate search of an all-against-all index.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use genolm::data::homology::{identity_above, KmerIndex, LaneScratch, LcsPattern, Params, Scratch};
use genolm::data::split::Input;

fn bench(c: &mut Criterion) {
    let Some(path) = genolm::io::shared_data("promoters/epdnew_human_300/fold_1.csv.gz") else {
        return;
    };
    let input = Input::load_any(&path.to_string_lossy(), None).expect("read EPDnew fold 1");
    let seqs: Vec<&[u8]> = input.seq_refs().into_iter().take(4000).collect();
    let mut g = c.benchmark_group("homology");
    g.sample_size(10);
    // The LCS bound of one query against 1,000 unrelated promoters at 80 % of 300 bp.
    let pat = LcsPattern::new(seqs[0]);
    let texts: Vec<(&[u8], bool)> = seqs[1..1001].iter().map(|&s| (s, false)).collect();
    let need = vec![240; texts.len()];
    let (mut lanes, mut out) = (LaneScratch::default(), Vec::new());
    g.throughput(Throughput::Elements(texts.len() as u64));
    g.bench_function("lcs_bound_1000_pairs", |b| {
        b.iter(|| pat.lcs_reaching_many(&texts, &need, &mut lanes, &mut out))
    });
    // Alignment identity: without a floor (both passes) and with the 0.8 floor.
    let mut scratch = Scratch::default();
    g.throughput(Throughput::Elements(20));
    g.bench_function("identity_20_pairs", |b| {
        b.iter(|| {
            (1..21)
                .map(|j| identity_above(seqs[0], seqs[j], false, 0.0, &mut scratch))
                .count()
        })
    });
    g.bench_function("identity_above_0.8_20_pairs", |b| {
        b.iter(|| {
            (1..21)
                .map(|j| identity_above(seqs[0], seqs[j], false, 0.8, &mut scratch))
                .count()
        })
    });
    // Candidates of 4,000 promoters against each other.
    let params = Params::default();
    let index = KmerIndex::build_min(&seqs, params.k, 2).expect("index");
    g.throughput(Throughput::Elements(seqs.len() as u64));
    g.bench_function("candidates_all_4000", |b| {
        b.iter(|| {
            index
                .map_candidates(&seqs, |i| i + 1, &params, || (), |_, _, _, c| c.len())
                .into_iter()
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
