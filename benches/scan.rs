//! Criterion benchmark of the selective-scan op (`ops::selective_scan`) at the shape one Mamba
//! mixer direction sees in the promoter benchmark: batch 64, 128 inner channels, state 16,
//! 300 tokens, f32, on random inputs (the kernel's cost does not depend on the values).

use candle_core::{Device, Tensor, Var};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use genolm::ops::selective_scan;

fn bench(c: &mut Criterion) {
    let dev = Device::Cpu;
    let (b, d, n, l) = (64, 128, 16, 300);
    let var = |t: Tensor| Var::from_tensor(&t).expect("var");
    let u = var(Tensor::randn(0f32, 1.0, (b, d, l), &dev).expect("u"));
    let delta =
        var((Tensor::rand(0f32, 1.0, (b, d, l), &dev).expect("delta") * 0.1).expect("scale"));
    let a = var((Tensor::rand(0f32, 1.0, (d, n), &dev)
        .expect("A")
        .neg()
        .expect("neg")
        - 0.5)
        .expect("shift"));
    let bm = var(Tensor::randn(0f32, 1.0, (b, n, l), &dev).expect("Bm"));
    let cm = var(Tensor::randn(0f32, 1.0, (b, n, l), &dev).expect("Cm"));
    let mut g = c.benchmark_group("scan");
    g.sample_size(10);
    g.throughput(Throughput::Elements((b * d * l) as u64));
    g.bench_function("forward_64x128x16x300", |bench| {
        bench.iter(|| selective_scan(&u, &delta, &a, &bm, &cm).expect("scan"))
    });
    g.bench_function("forward_backward_64x128x16x300", |bench| {
        bench.iter(|| {
            let y = selective_scan(&u, &delta, &a, &bm, &cm).expect("scan");
            y.sum_all().expect("sum").backward().expect("backward")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
