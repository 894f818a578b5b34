use candle_core::{DType, Device, Tensor, Var};
use genolm::ops;
use std::sync::atomic::Ordering::Relaxed;
#[test]
fn bench() {
    for &(cin, cout, k, l) in &[
        (100usize, 16usize, 8usize, 300usize),
        (16, 8, 8, 146),
        (8, 4, 8, 69),
    ] {
        let x = Var::from_tensor(&Tensor::randn(0f32, 1., (64, cin, l), &Device::Cpu).unwrap())
            .unwrap();
        let w = Var::from_tensor(&Tensor::randn(0f32, 1., (cout, cin, k), &Device::Cpu).unwrap())
            .unwrap();
        let n = 30;
        for c in [
            &ops::T_IM2COL,
            &ops::T_GW,
            &ops::T_GCOL,
            &ops::T_COL2IM,
            &ops::T_FWD,
            &ops::T_BWD,
        ] {
            c.store(0, Relaxed);
        }
        let t0 = std::time::Instant::now();
        for _ in 0..n {
            let y = ops::conv1d(x.as_tensor(), w.as_tensor(), None, 1, 0, 1, 1).unwrap();
            let _ = y.sum_all().unwrap().backward().unwrap();
        }
        let tot = t0.elapsed().as_secs_f64() * 1e3 / n as f64;
        let ms = |c: &std::sync::atomic::AtomicU64| c.load(Relaxed) as f64 / 1e6 / n as f64;
        println!("{cin}->{cout} L{l}: total {tot:.2} fwd {:.2} bwd {:.2} | thread-sum: im2col {:.2} gw {:.2} gcol {:.2} col2im {:.2}", ms(&ops::T_FWD), ms(&ops::T_BWD), ms(&ops::T_IM2COL), ms(&ops::T_GW), ms(&ops::T_GCOL), ms(&ops::T_COL2IM));
        let _ = DType::F32;
    }
}
