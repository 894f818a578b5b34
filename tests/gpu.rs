//! GPU checks, built with `--features cuda` and run on a machine with a CUDA GPU
//! (`scripts/gpu_check.sh`): our CUDA kernels and every backbone against the CPU, and the CLI
//! training, predicting and benchmarking with `--device cuda`. Without a usable GPU each test
//! skips with a message. Not part of the default build (no `cuda` feature, no test).
#![cfg(feature = "cuda")]

use candle_core::{DType, Device, Tensor, Var};
use genolm::models::{BackboneConfig, Classifier, Ctx, ModelConfig, Weights};
use rand::SeedableRng;

mod common;
use common::{flat, max_rel_err, uniform_values};

/// GPU 0, or `None` with a message.
fn gpu() -> Option<Device> {
    match Device::new_cuda(0) {
        Ok(d) => Some(d),
        Err(e) => {
            let why = e.to_string();
            eprintln!(
                "skipping: no usable CUDA device ({})",
                why.lines().next().unwrap_or("")
            );
            None
        }
    }
}

/// Largest |a - b| relative to the largest |b|.
fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    max_rel_err(&flat(a), &flat(b))
}

/// Inputs as variables on `dev`, from the same seeded values.
fn vars(dev: &Device, dtype: DType, specs: &[(&[usize], u64, f64, f64)]) -> Vec<Var> {
    specs
        .iter()
        .map(|(shape, seed, lo, hi)| {
            let n = shape.iter().product();
            let t = Tensor::from_vec(uniform_values(n, *seed, *lo, *hi), *shape, &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap()
                .to_device(dev)
                .unwrap();
            Var::from_tensor(&t).unwrap()
        })
        .collect()
}

/// Output and input gradients of `f` under the loss `sum(f(x) * w)`.
fn run_with_grads(x: &[Var], w: &Tensor, f: &dyn Fn(&[Tensor]) -> Tensor) -> (Tensor, Vec<Tensor>) {
    let ts: Vec<Tensor> = x.iter().map(|v| v.as_tensor().clone()).collect();
    let y = f(&ts);
    let w = w.to_device(y.device()).unwrap();
    let g = (&y * &w).unwrap().sum_all().unwrap().backward().unwrap();
    let grads = x.iter().map(|v| g.get(v).unwrap().clone()).collect();
    (y, grads)
}

fn compare(
    what: &str,
    dtype: DType,
    specs: &[(&[usize], u64, f64, f64)],
    out: &[usize],
    f: &dyn Fn(&[Tensor]) -> Tensor,
) {
    let Some(dev) = gpu() else { return };
    let tol = if dtype == DType::F64 { 1e-10 } else { 1e-4 };
    let n: usize = out.iter().product();
    let w = Tensor::from_vec(uniform_values(n, 99, -1.0, 1.0), out, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap();
    let (yc, gc) = run_with_grads(&vars(&Device::Cpu, dtype, specs), &w, f);
    let (yg, gg) = run_with_grads(&vars(&dev, dtype, specs), &w, f);
    assert!(yg.device().is_cuda(), "{what}: the result left the GPU");
    let e = rel_err(&yg, &yc);
    println!("{what} {dtype:?}: forward relative error {e:.2e}");
    assert!(e < tol, "{what} {dtype:?}: forward relative error {e:.2e}");
    for (i, (a, b)) in gg.iter().zip(&gc).enumerate() {
        let e = rel_err(a, b);
        println!("{what} {dtype:?}: gradient {i} relative error {e:.2e}");
        assert!(
            e < tol,
            "{what} {dtype:?}: gradient {i} relative error {e:.2e}"
        );
    }
}

#[test]
fn scan_kernels_on_the_gpu_match_the_cpu() {
    for (dtype, (b, d, n, l)) in [
        (DType::F64, (2, 3, 5, 37)),
        (DType::F32, (2, 8, 16, 300)),
        (DType::F32, (1, 4, 16, 4099)),
    ] {
        let specs: [(&[usize], u64, f64, f64); 5] = [
            (&[b, d, l], 1, -1.0, 1.0),
            (&[b, d, l], 2, 0.01, 0.5),
            (&[d, n], 3, -2.0, -0.1),
            (&[b, n, l], 4, -1.0, 1.0),
            (&[b, n, l], 5, -1.0, 1.0),
        ];
        compare("selective_scan", dtype, &specs, &[b, d, l], &|x| {
            genolm::ops::selective_scan(&x[0], &x[1], &x[2], &x[3], &x[4]).unwrap()
        });
    }
}

#[test]
fn fft_conv_kernels_on_the_gpu_match_the_cpu() {
    for (dtype, (b, d, l, k, off)) in [
        (DType::F64, (2, 3, 50, 50, 0)),
        (DType::F64, (2, 2, 33, 65, 32)),
        (DType::F64, (2, 3, 5, 20, 15)),
        (DType::F32, (2, 8, 1000, 1000, 0)),
        (DType::F32, (1, 4, 1000, 1999, 999)),
    ] {
        let specs: [(&[usize], u64, f64, f64); 2] =
            [(&[b, d, l], 11, -1.0, 1.0), (&[d, k], 12, -1.0, 1.0)];
        compare("fft_conv", dtype, &specs, &[b, d, l], &|x| {
            genolm::ops::fft_conv(&x[0], &x[1], off).unwrap()
        });
    }
}

/// Loss and parameter gradients of one training-mode pass of `name` on `dev`.
fn model_pass(name: &str, dev: &Device) -> (f64, Vec<(String, Vec<f64>)>) {
    let backbone = BackboneConfig::by_name(name).unwrap();
    let cfg = ModelConfig {
        vocab_size: 10,
        seq_len: 256,
        num_classes: 2,
        head: backbone.default_head(),
        backbone,
    };
    let weights = Weights::new();
    let (p, b) = weights.builders(7, DType::F32, dev);
    let model = Classifier::new(&cfg, p, b).unwrap();
    let ids: Vec<u32> = uniform_values(4 * 256, 21, 5.0, 9.99)
        .iter()
        .map(|v| *v as u32)
        .collect();
    let x = Tensor::from_vec(ids, (4, 256), dev).unwrap();
    let y = Tensor::from_vec(vec![0u32, 1, 1, 0], 4, dev).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let mut ctx = Ctx {
        train: true,
        rng: &mut rng,
    };
    let loss = genolm::ops::cross_entropy(&model.forward(&x, &mut ctx).unwrap(), &y, None).unwrap();
    let g = loss.backward().unwrap();
    let data = weights.params.data().lock().unwrap();
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let grads = names
        .into_iter()
        .map(|k| {
            (
                k.clone(),
                g.get(data[k].as_tensor()).map(flat).unwrap_or_default(),
            )
        })
        .collect();
    (flat(&loss)[0], grads)
}

#[test]
fn every_backbone_trains_on_the_gpu_as_on_the_cpu() {
    let Some(dev) = gpu() else { return };
    for name in ["gb-cnn", "cnn", "transformer", "mamba", "caduceus", "hyena"] {
        let (lc, gc) = model_pass(name, &Device::Cpu);
        let (lg, gg) = model_pass(name, &dev);
        println!("{name}: loss cpu {lc:.6} gpu {lg:.6}");
        assert!(
            (lc - lg).abs() < 1e-4 * lc.abs().max(1.0),
            "{name}: loss {lc} vs {lg}"
        );
        for ((k, a), (_, b)) in gg.iter().zip(&gc) {
            assert_eq!(
                a.len(),
                b.len(),
                "{name} {k}: gradient missing on one device"
            );
            let scale = b.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-6);
            let e = a.iter().zip(b).fold(0f64, |m, (x, y)| m.max((x - y).abs())) / scale;
            assert!(e < 2e-3, "{name} {k}: gradient relative error {e:.2e}");
        }
    }
}

#[test]
fn the_cli_trains_and_benchmarks_on_the_gpu() {
    if gpu().is_none() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("genolm-gpu-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let demo = |out: &str, device: &str| {
        common::run_ok(&[
            "--device",
            device,
            "demo",
            "--model",
            "mamba",
            "--epochs",
            "2",
            "--out",
            dir.join(out).to_str().unwrap(),
        ]);
        let r: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(out).join("demo.json")).unwrap())
                .unwrap();
        r
    };
    let g = demo("gpu", "cuda");
    let c = demo("cpu", "cpu");
    println!("demo mamba: gpu {g}\ncpu {c}");
    let auc = |r: &serde_json::Value| r["test"]["auroc"].as_f64().unwrap();
    assert!(
        (auc(&g) - auc(&c)).abs() < 0.05,
        "GPU and CPU runs disagree: {g} vs {c}"
    );
    let o = common::run_ok(&[
        "--device",
        "cuda",
        "bench",
        "models",
        "--models",
        "mamba,hyena,transformer",
        "--min-length",
        "1024",
        "--max-length",
        "4096",
        "--json",
    ]);
    println!("{}", String::from_utf8_lossy(&o.stdout));
    std::fs::remove_dir_all(&dir).ok();
}
