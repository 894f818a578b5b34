//! Finite-difference gradient checks (f64) and reference comparisons (f64 and f32) for
//! `genolm::ops`.
//!
//! Gradient checks: loss = sum(op(inputs) * R) for a fixed random R; every element of every
//! input/parameter is perturbed by +-1e-6 (central differences) and compared with the gradient
//! from `backward()`: |analytic - numeric| <= 1e-6 * max(|analytic|, |numeric|) + 1e-8.

use candle_core::{DType, Device, Module, ModuleT, Result, Tensor, Var, D};
use candle_nn::{VarBuilder, VarMap};
use genolm::ops;
use rand_chacha::ChaCha8Rng;

mod common;
use common::{flat, grad_check, rand_t, rng};

fn assert_close(name: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * w.abs().max(1.0),
            "{name}: element {i}: got {g}, want {w}"
        );
    }
}

// ---------------------------------------------------------------- conv1d

#[derive(Debug, Clone, Copy)]
struct ConvCase {
    b: usize,
    cin: usize,
    l: usize,
    cout: usize,
    k: usize,
    s: usize,
    p: usize,
    d: usize,
    g: usize,
}

const CONV_CASES: &[ConvCase] = &[
    ConvCase {
        b: 3,
        cin: 4,
        l: 11,
        cout: 5,
        k: 3,
        s: 1,
        p: 0,
        d: 1,
        g: 1,
    },
    ConvCase {
        b: 2,
        cin: 3,
        l: 12,
        cout: 4,
        k: 4,
        s: 2,
        p: 1,
        d: 1,
        g: 1,
    },
    ConvCase {
        b: 2,
        cin: 4,
        l: 13,
        cout: 6,
        k: 3,
        s: 2,
        p: 1,
        d: 2,
        g: 2,
    },
    ConvCase {
        b: 2,
        cin: 3,
        l: 9,
        cout: 3,
        k: 5,
        s: 1,
        p: 2,
        d: 1,
        g: 3,
    },
    ConvCase {
        b: 3,
        cin: 3,
        l: 10,
        cout: 6,
        k: 3,
        s: 3,
        p: 2,
        d: 1,
        g: 3,
    },
    ConvCase {
        b: 2,
        cin: 4,
        l: 7,
        cout: 3,
        k: 1,
        s: 1,
        p: 0,
        d: 1,
        g: 1,
    },
    ConvCase {
        b: 2,
        cin: 4,
        l: 7,
        cout: 4,
        k: 1,
        s: 1,
        p: 0,
        d: 1,
        g: 2,
    },
    ConvCase {
        b: 2,
        cin: 2,
        l: 5,
        cout: 2,
        k: 3,
        s: 1,
        p: 4,
        d: 1,
        g: 1,
    },
    ConvCase {
        b: 2,
        cin: 2,
        l: 8,
        cout: 3,
        k: 3,
        s: 1,
        p: 0,
        d: 3,
        g: 1,
    },
    ConvCase {
        b: 1,
        cin: 2,
        l: 6,
        cout: 2,
        k: 2,
        s: 2,
        p: 1,
        d: 2,
        g: 2,
    },
    ConvCase {
        b: 33,
        cin: 2,
        l: 6,
        cout: 2,
        k: 3,
        s: 1,
        p: 1,
        d: 1,
        g: 1,
    },
    ConvCase {
        b: 20,
        cin: 2,
        l: 6,
        cout: 4,
        k: 3,
        s: 2,
        p: 1,
        d: 1,
        g: 2,
    },
    ConvCase {
        b: 17,
        cin: 3,
        l: 6,
        cout: 3,
        k: 3,
        s: 1,
        p: 1,
        d: 1,
        g: 3,
    },
    // "Same" padding with a dilation wider than the sequence (a dilated CNN on 81 bp after
    // pooling): the outer taps read only padding. This panicked in im2col once.
    ConvCase {
        b: 3,
        cin: 2,
        l: 5,
        cout: 2,
        k: 5,
        s: 1,
        p: 16,
        d: 8,
        g: 1,
    },
    ConvCase {
        b: 2,
        cin: 2,
        l: 4,
        cout: 3,
        k: 3,
        s: 2,
        p: 9,
        d: 9,
        g: 1,
    },
];

fn lout(c: &ConvCase) -> usize {
    (c.l + 2 * c.p - c.d * (c.k - 1) - 1) / c.s + 1
}

/// Textbook conv1d over plain vectors (PyTorch semantics).
fn naive_conv1d(x: &[f64], w: &[f64], bias: Option<&[f64]>, c: &ConvCase) -> Vec<f64> {
    let lo = lout(c);
    let (cin_g, cout_g) = (c.cin / c.g, c.cout / c.g);
    let mut y = vec![0.0; c.b * c.cout * lo];
    for b in 0..c.b {
        for co in 0..c.cout {
            let grp = co / cout_g;
            for t in 0..lo {
                let mut acc = bias.map_or(0.0, |bs| bs[co]);
                for cl in 0..cin_g {
                    let ci = grp * cin_g + cl;
                    for kk in 0..c.k {
                        let pos = (t * c.s + kk * c.d) as isize - c.p as isize;
                        if pos >= 0 && (pos as usize) < c.l {
                            acc += w[(co * cin_g + cl) * c.k + kk]
                                * x[(b * c.cin + ci) * c.l + pos as usize];
                        }
                    }
                }
                y[(b * c.cout + co) * lo + t] = acc;
            }
        }
    }
    y
}

fn conv_inputs(c: &ConvCase, seed: u64) -> (Tensor, Tensor, Tensor) {
    let mut r = rng(seed);
    let x = rand_t(&mut r, &[c.b, c.cin, c.l]);
    let w = rand_t(&mut r, &[c.cout, c.cin / c.g, c.k]);
    let bias = rand_t(&mut r, &[c.cout]);
    (x, w, bias)
}

#[test]
fn conv1d_forward_matches_naive_f64_and_f32() {
    for (i, c) in CONV_CASES.iter().enumerate() {
        let (x, w, bias) = conv_inputs(c, 100 + i as u64);
        let want = naive_conv1d(&flat(&x), &flat(&w), Some(&flat(&bias)), c);
        let native = ops::conv1d(&x, &w, Some(&bias), c.s, c.p, c.d, c.g).unwrap();
        assert_eq!(native.dims(), &[c.b, c.cout, lout(c)]);
        assert_close(&format!("native f64 {c:?}"), &flat(&native), &want, 1e-10);
        let composed = ops::conv1d_composed(&x, &w, Some(&bias), c.s, c.p, c.d, c.g).unwrap();
        assert_close(
            &format!("composed f64 {c:?}"),
            &flat(&composed),
            &want,
            1e-10,
        );
        let f = |t: &Tensor| t.to_dtype(DType::F32).unwrap();
        let y32 = ops::conv1d(&f(&x), &f(&w), Some(&f(&bias)), c.s, c.p, c.d, c.g).unwrap();
        assert_eq!(y32.dtype(), DType::F32);
        assert_close(&format!("native f32 {c:?}"), &flat(&y32), &want, 1e-5);
        let c32 = ops::conv1d_composed(&f(&x), &f(&w), Some(&f(&bias)), c.s, c.p, c.d, c.g);
        assert_close(
            &format!("composed f32 {c:?}"),
            &flat(&c32.unwrap()),
            &want,
            1e-5,
        );
    }
}

#[test]
fn conv1d_gradients_match_finite_differences() {
    let mut worst = 0.0f64;
    for (i, c) in CONV_CASES.iter().enumerate() {
        let (x, w, bias) = conv_inputs(c, 200 + i as u64);
        let c = *c;
        worst = worst.max(grad_check(&format!("conv1d {c:?}"), &[x, w, bias], |t| {
            ops::conv1d(&t[0], &t[1], Some(&t[2]), c.s, c.p, c.d, c.g)
        }));
    }
    println!("conv1d worst relative error {worst:.2e}");
}

#[test]
fn conv1d_composed_gradients_match_finite_differences() {
    for (i, c) in CONV_CASES.iter().enumerate().step_by(2) {
        let (x, w, bias) = conv_inputs(c, 300 + i as u64);
        let c = *c;
        grad_check(&format!("conv1d_composed {c:?}"), &[x, w, bias], |t| {
            ops::conv1d_composed(&t[0], &t[1], Some(&t[2]), c.s, c.p, c.d, c.g)
        });
    }
}

#[test]
fn conv1d_f32_gradients_match_f64() {
    let c = ConvCase {
        b: 5,
        cin: 6,
        l: 40,
        cout: 7,
        k: 5,
        s: 1,
        p: 2,
        d: 1,
        g: 1,
    };
    let (x, w, _) = conv_inputs(&c, 7);
    let grads = |dt: DType| {
        let xv = Var::from_tensor(&x.to_dtype(dt).unwrap()).unwrap();
        let wv = Var::from_tensor(&w.to_dtype(dt).unwrap()).unwrap();
        let y = ops::conv1d(xv.as_tensor(), wv.as_tensor(), None, c.s, c.p, c.d, c.g).unwrap();
        let r = rand_t(&mut rng(8), y.dims()).to_dtype(dt).unwrap();
        let g = (y * r).unwrap().sum_all().unwrap().backward().unwrap();
        (flat(g.get(&xv).unwrap()), flat(g.get(&wv).unwrap()))
    };
    let (gx64, gw64) = grads(DType::F64);
    let (gx32, gw32) = grads(DType::F32);
    assert_close("f32 grad x", &gx32, &gx64, 1e-5);
    assert_close("f32 grad w", &gw32, &gw64, 1e-4);
}

#[test]
fn conv1d_is_deterministic_across_thread_counts() {
    let c = ConvCase {
        b: 37,
        cin: 8,
        l: 50,
        cout: 6,
        k: 5,
        s: 1,
        p: 2,
        d: 1,
        g: 1,
    };
    let dw = ConvCase {
        b: 37,
        cin: 6,
        l: 50,
        cout: 6,
        k: 5,
        s: 1,
        p: 2,
        d: 1,
        g: 6,
    };
    let strided = ConvCase {
        b: 37,
        cin: 6,
        l: 50,
        cout: 8,
        k: 5,
        s: 2,
        p: 2,
        d: 1,
        g: 2,
    };
    for c in [c, dw, strided] {
        let (x, w, _) = conv_inputs(&c, 9);
        let (x, w) = (
            x.to_dtype(DType::F32).unwrap(),
            w.to_dtype(DType::F32).unwrap(),
        );
        let run = || {
            let xv = Var::from_tensor(&x).unwrap();
            let wv = Var::from_tensor(&w).unwrap();
            let y = ops::conv1d(xv.as_tensor(), wv.as_tensor(), None, c.s, c.p, c.d, c.g).unwrap();
            let g = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
            let bits = |t: &Tensor| -> Vec<u32> {
                t.flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect()
            };
            (
                bits(&y),
                bits(g.get(&xv).unwrap()),
                bits(g.get(&wv).unwrap()),
            )
        };
        let reference = run();
        for threads in [1, 2, 3, 5] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            assert_eq!(pool.install(run), reference, "{threads} threads, {c:?}");
        }
    }
}

#[test]
fn conv1d_layer_from_varbuilder() {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
    let cfg = ops::Conv1dConfig {
        stride: 1,
        padding: 1,
        dilation: 1,
        groups: 2,
    };
    let conv = ops::Conv1d::load(vb.pp("conv"), 4, 6, 3, cfg, true).unwrap();
    assert_eq!(conv.weight().dims(), &[6, 2, 3]);
    let names: Vec<String> = vm.data().lock().unwrap().keys().cloned().collect();
    assert!(names.contains(&"conv.weight".to_string()) && names.contains(&"conv.bias".to_string()));
    let x = rand_t(&mut rng(1), &[2, 4, 9]);
    let y = conv.forward(&x).unwrap();
    let c = ConvCase {
        b: 2,
        cin: 4,
        l: 9,
        cout: 6,
        k: 3,
        s: 1,
        p: 1,
        d: 1,
        g: 2,
    };
    let want = naive_conv1d(
        &flat(&x),
        &flat(conv.weight()),
        Some(&flat(conv.bias().unwrap())),
        &c,
    );
    assert_close("Conv1d layer", &flat(&y), &want, 1e-10);
}

#[test]
fn conv1d_rejects_bad_shapes() {
    let x = Tensor::zeros((2, 4, 10), DType::F32, &Device::Cpu).unwrap();
    let w = Tensor::zeros((6, 4, 3), DType::F32, &Device::Cpu).unwrap();
    let w2 = Tensor::zeros((6, 2, 3), DType::F32, &Device::Cpu).unwrap();
    let b = Tensor::zeros(5, DType::F32, &Device::Cpu).unwrap();
    assert!(ops::conv1d(&x, &w, None, 0, 0, 1, 1).is_err(), "stride 0");
    assert!(ops::conv1d(&x, &w, None, 1, 0, 0, 1).is_err(), "dilation 0");
    assert!(ops::conv1d(&x, &w, None, 1, 0, 1, 0).is_err(), "groups 0");
    assert!(
        ops::conv1d(&x, &w, None, 1, 0, 1, 2).is_err(),
        "groups mismatch"
    );
    assert!(
        ops::conv1d(&x, &w2, None, 1, 0, 1, 3).is_err(),
        "groups not dividing"
    );
    assert!(
        ops::conv1d(&x, &w, Some(&b), 1, 0, 1, 1).is_err(),
        "bias shape"
    );
    assert!(
        ops::conv1d(&x, &w, None, 1, 0, 6, 1).is_err(),
        "kernel span too long"
    );
    assert!(
        ops::conv1d(&x.flatten_all().unwrap(), &w, None, 1, 0, 1, 1).is_err(),
        "rank"
    );
    assert!(
        ops::conv1d(&x, &w.to_dtype(DType::F64).unwrap(), None, 1, 0, 1, 1).is_err(),
        "dtype"
    );
    assert!(ops::conv1d(&x, &w, None, 1, 0, 1, 1).is_ok());
    assert!(ops::conv1d(&x, &w2, None, 1, 0, 1, 2).is_ok());
}

// ---------------------------------------------------------------- linear

#[test]
fn linear_matches_reference_and_gradients() {
    let mut r = rng(11);
    let x = rand_t(&mut r, &[2, 5, 3]); // (B, C=5, L=3), used transposed as (B, L, C)
    let w = rand_t(&mut r, &[4, 5]);
    let b = rand_t(&mut r, &[4]);
    let y = ops::linear(&x.transpose(1, 2).unwrap(), &w, Some(&b)).unwrap();
    assert_eq!(y.dims(), &[2, 3, 4]);
    let (xv, wv, bv) = (flat(&x), flat(&w), flat(&b));
    let mut want = vec![0.0; 2 * 3 * 4];
    for bi in 0..2 {
        for t in 0..3 {
            for o in 0..4 {
                let mut acc = bv[o];
                for c in 0..5 {
                    acc += xv[(bi * 5 + c) * 3 + t] * wv[o * 5 + c];
                }
                want[(bi * 3 + t) * 4 + o] = acc;
            }
        }
    }
    assert_close("linear f64", &flat(&y), &want, 1e-10);
    let f = |t: &Tensor| t.to_dtype(DType::F32).unwrap();
    let y32 = ops::linear(&f(&x).transpose(1, 2).unwrap(), &f(&w), Some(&f(&b))).unwrap();
    assert_close("linear f32", &flat(&y32), &want, 1e-5);
    grad_check("linear 3-D transposed", &[x, w.clone(), b.clone()], |t| {
        ops::linear(&t[0].transpose(1, 2)?, &t[1], Some(&t[2]))
    });
    let x1 = rand_t(&mut r, &[5]);
    grad_check("linear 1-D", &[x1, w.clone()], |t| {
        ops::linear(&t[0], &t[1], None)
    });
    let x4 = rand_t(&mut r, &[2, 2, 3, 5]);
    grad_check("linear 4-D", &[x4, w, b], |t| {
        ops::linear(&t[0], &t[1], Some(&t[2]))
    });

    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
    let layer = ops::Linear::load(vb.pp("fc"), 5, 4, true).unwrap();
    assert_eq!(layer.weight().dims(), &[4, 5]);
    assert_eq!(
        layer.forward(&rand_t(&mut r, &[3, 5])).unwrap().dims(),
        &[3, 4]
    );
    assert!(ops::linear(&rand_t(&mut r, &[3, 4]), layer.weight(), None).is_err());
    assert!(ops::linear(
        &rand_t(&mut r, &[3, 5]),
        layer.weight(),
        Some(layer.weight())
    )
    .is_err());
}

// ---------------------------------------------------------------- norms

fn naive_layer_norm(
    x: &[f64],
    d: usize,
    g: &[f64],
    b: Option<&[f64]>,
    eps: f64,
    rms: bool,
) -> Vec<f64> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(d) {
        let mean = if rms {
            0.0
        } else {
            row.iter().sum::<f64>() / d as f64
        };
        let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d as f64;
        for (j, v) in row.iter().enumerate() {
            out.push((v - mean) / (var + eps).sqrt() * g[j] + b.map_or(0.0, |b| b[j]));
        }
    }
    out
}

#[test]
fn layer_norm_and_rms_norm() {
    let mut r = rng(21);
    let x = rand_t(&mut r, &[2, 3, 6]);
    let g = rand_t(&mut r, &[6]);
    let b = rand_t(&mut r, &[6]);
    let eps = 1e-5;
    let y = ops::layer_norm(&x, &g, Some(&b), eps).unwrap();
    let want = naive_layer_norm(&flat(&x), 6, &flat(&g), Some(&flat(&b)), eps, false);
    assert_close("layer_norm", &flat(&y), &want, 1e-10);
    let f = |t: &Tensor| t.to_dtype(DType::F32).unwrap();
    let y32 = ops::layer_norm(&f(&x), &f(&g), Some(&f(&b)), eps).unwrap();
    assert_close("layer_norm f32", &flat(&y32), &want, 1e-5);
    let y = ops::rms_norm(&x, &g, eps).unwrap();
    let want = naive_layer_norm(&flat(&x), 6, &flat(&g), None, eps, true);
    assert_close("rms_norm", &flat(&y), &want, 1e-10);
    assert_close(
        "rms_norm f32",
        &flat(&ops::rms_norm(&f(&x), &f(&g), eps).unwrap()),
        &want,
        1e-5,
    );

    grad_check("layer_norm", &[x.clone(), g.clone(), b.clone()], |t| {
        ops::layer_norm(&t[0], &t[1], Some(&t[2]), eps)
    });
    grad_check(
        "layer_norm transposed input",
        &[x.clone(), rand_t(&mut r, &[3])],
        |t| ops::layer_norm(&t[0].transpose(1, 2)?, &t[1], None, eps),
    );
    grad_check("rms_norm", &[x.clone(), g.clone()], |t| {
        ops::rms_norm(&t[0], &t[1], eps)
    });

    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
    let ln = ops::LayerNorm::load(vb.pp("ln"), 6, eps, true).unwrap();
    let rms = ops::RmsNorm::load(vb.pp("rms"), 6, eps).unwrap();
    let ones = vec![1.0; 6];
    let want = naive_layer_norm(&flat(&x), 6, &ones, None, eps, false);
    assert_close(
        "LayerNorm layer",
        &flat(&ln.forward(&x).unwrap()),
        &want,
        1e-10,
    );
    let want = naive_layer_norm(&flat(&x), 6, &ones, None, eps, true);
    assert_close(
        "RmsNorm layer",
        &flat(&rms.forward(&x).unwrap()),
        &want,
        1e-10,
    );
    // Gradients reach the layer parameters.
    let loss = ln.forward(&x).unwrap().sqr().unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    for (name, var) in vm.data().lock().unwrap().iter() {
        if name.starts_with("ln.") {
            assert!(
                grads.get(var.as_tensor()).is_some(),
                "{name} has no gradient"
            );
        }
    }
    assert!(ops::layer_norm(&x, &b.narrow(0, 0, 5).unwrap(), None, eps).is_err());
    assert!(ops::rms_norm(&x, &b.narrow(0, 0, 5).unwrap(), eps).is_err());
}

#[test]
fn batch_norm_train_eval_and_running_stats() {
    let mut r = rng(31);
    let (b, c, l) = (3, 4, 5);
    let x = rand_t(&mut r, &[b, c, l]);
    let xs = flat(&x);
    let eps = 1e-5;
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
    let buffers = VarMap::new();
    let bvb = VarBuilder::from_varmap(&buffers, DType::F64, &Device::Cpu);
    let cfg = ops::BatchNormConfig {
        eps,
        momentum: 0.1,
        affine: true,
    };
    let bn = ops::BatchNorm1d::load_with_buffers(vb.pp("bn"), bvb.pp("bn"), c, cfg).unwrap();
    // Trainable parameters only in `vm`; buffers only in `buffers`.
    let mut names: Vec<String> = vm.data().lock().unwrap().keys().cloned().collect();
    names.sort();
    assert_eq!(names, ["bn.bias", "bn.weight"]);
    let mut bnames: Vec<String> = buffers.data().lock().unwrap().keys().cloned().collect();
    bnames.sort();
    assert_eq!(bnames, ["bn.running_mean", "bn.running_var"]);

    let y = bn.forward_t(&x, true).unwrap();
    let n = (b * l) as f64;
    let mut want = vec![0.0; xs.len()];
    let mut means = vec![];
    let mut vars = vec![];
    for ch in 0..c {
        let vals: Vec<f64> = (0..b)
            .flat_map(|bi| (0..l).map(move |t| (bi, t)))
            .map(|(bi, t)| xs[(bi * c + ch) * l + t])
            .collect();
        let mean = vals.iter().sum::<f64>() / n;
        let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        for bi in 0..b {
            for t in 0..l {
                let i = (bi * c + ch) * l + t;
                want[i] = (xs[i] - mean) / (var + eps).sqrt();
            }
        }
        means.push(mean);
        vars.push(var);
    }
    assert_close("batch_norm train", &flat(&y), &want, 1e-10);
    let rm_want: Vec<f64> = means.iter().map(|m| 0.1 * m).collect();
    let rv_want: Vec<f64> = vars.iter().map(|v| 0.9 + 0.1 * v * n / (n - 1.0)).collect();
    assert_close("running mean", &flat(bn.running_mean()), &rm_want, 1e-12);
    assert_close("running var", &flat(bn.running_var()), &rv_want, 1e-12);
    // The buffer VarMap sees the update (shared storage).
    let stored = buffers.data().lock().unwrap()["bn.running_mean"]
        .as_tensor()
        .clone();
    assert_close("buffer varmap", &flat(&stored), &rm_want, 1e-12);
    // Eval uses the running statistics.
    let ye = bn.forward_t(&x, false).unwrap();
    let mut want = vec![0.0; xs.len()];
    for (i, v) in xs.iter().enumerate() {
        let ch = (i / l) % c;
        want[i] = (v - rm_want[ch]) / (rv_want[ch] + eps).sqrt();
    }
    assert_close("batch_norm eval", &flat(&ye), &want, 1e-10);

    // Gradients through batch statistics (train) and running statistics (eval), 3-D and 2-D.
    let gamma = rand_t(&mut r, &[c]);
    let beta = rand_t(&mut r, &[c]);
    let mk = || {
        let vb = VarBuilder::from_tensors(
            [
                ("weight".to_string(), gamma.clone()),
                ("bias".to_string(), beta.clone()),
            ]
            .into(),
            DType::F64,
            &Device::Cpu,
        );
        ops::BatchNorm1d::load(vb, c, cfg).unwrap()
    };
    let bn_plain = mk();
    // `load` keeps the running statistics out of the VarBuilder's VarMap entirely.
    let vm2 = VarMap::new();
    let vb2 = VarBuilder::from_varmap(&vm2, DType::F64, &Device::Cpu);
    let _bn2 = ops::BatchNorm1d::load(vb2.pp("bn"), c, cfg).unwrap();
    let mut names2: Vec<String> = vm2.data().lock().unwrap().keys().cloned().collect();
    names2.sort();
    assert_eq!(names2, ["bn.bias", "bn.weight"]);
    grad_check("batch_norm train (B,C,L)", std::slice::from_ref(&x), |t| {
        bn_plain.forward_t(&t[0], true)
    });
    grad_check("batch_norm train (B,C)", &[rand_t(&mut r, &[5, c])], |t| {
        bn_plain.forward_t(&t[0], true)
    });
    grad_check("batch_norm eval", std::slice::from_ref(&x), |t| {
        bn_plain.forward_t(&t[0], false)
    });
    // Parameter gradients: build the layer from the perturbed tensors each time.
    grad_check(
        "batch_norm params",
        &[x.clone(), gamma.clone(), beta.clone()],
        |t| {
            let vb = VarBuilder::from_tensors(
                [
                    ("weight".to_string(), t[1].clone()),
                    ("bias".to_string(), t[2].clone()),
                ]
                .into(),
                DType::F64,
                &Device::Cpu,
            );
            ops::BatchNorm1d::load(vb, c, cfg)?.forward_t(&t[0], true)
        },
    );
    assert!(
        bn_plain
            .forward_t(&rand_t(&mut r, &[1, c, 1]), true)
            .is_err(),
        "one value per channel"
    );
    assert!(
        bn_plain
            .forward_t(&rand_t(&mut r, &[2, c + 1, 3]), true)
            .is_err(),
        "channels"
    );
}

// ---------------------------------------------------------------- softmax / losses

fn naive_log_softmax_rows(x: &[f64], c: usize) -> Vec<f64> {
    let mut out = vec![];
    for row in x.chunks(c) {
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = row.iter().map(|v| (v - m).exp()).sum::<f64>().ln() + m;
        out.extend(row.iter().map(|v| v - lse));
    }
    out
}

#[test]
fn softmax_and_log_softmax() {
    let mut r = rng(41);
    let x = (rand_t(&mut r, &[2, 3, 4]) * 5.0).unwrap();
    let want_ls = naive_log_softmax_rows(&flat(&x), 4);
    let want_s: Vec<f64> = want_ls.iter().map(|v| v.exp()).collect();
    assert_close(
        "log_softmax",
        &flat(&ops::log_softmax(&x, D::Minus1).unwrap()),
        &want_ls,
        1e-10,
    );
    assert_close(
        "softmax",
        &flat(&ops::softmax(&x, 2).unwrap()),
        &want_s,
        1e-10,
    );
    let x32 = x.to_dtype(DType::F32).unwrap();
    assert_close(
        "softmax f32",
        &flat(&ops::softmax(&x32, 2).unwrap()),
        &want_s,
        1e-5,
    );
    assert_close(
        "log_softmax f32",
        &flat(&ops::log_softmax(&x32, 2).unwrap()),
        &want_ls,
        1e-5,
    );
    // Along a middle dim: compare against last-dim version on the transposed tensor.
    let mid = ops::softmax(&x, 1).unwrap().transpose(1, 2).unwrap();
    let want_mid = ops::softmax(&x.transpose(1, 2).unwrap().contiguous().unwrap(), 2).unwrap();
    assert_close("softmax dim 1", &flat(&mid), &flat(&want_mid), 1e-12);
    // Large logits stay finite.
    let big = Tensor::new(&[[1000.0f64, 0.0, -1000.0]], &Device::Cpu).unwrap();
    assert!(flat(&ops::log_softmax(&big, 1).unwrap())
        .iter()
        .all(|v| v.is_finite()));
    for dim in 0..3 {
        grad_check(
            &format!("softmax dim {dim}"),
            std::slice::from_ref(&x),
            |t| ops::softmax(&t[0], dim),
        );
        grad_check(
            &format!("log_softmax dim {dim}"),
            std::slice::from_ref(&x),
            |t| ops::log_softmax(&t[0], dim),
        );
    }
}

#[test]
fn cross_entropy_variants() {
    let mut r = rng(51);
    let (n, c) = (6, 4);
    let logits = (rand_t(&mut r, &[n, c]) * 3.0).unwrap();
    let tv: Vec<u32> = vec![0, 3, 1, 2, 3, 1];
    let targets = Tensor::new(tv.as_slice(), &Device::Cpu).unwrap();
    let wv = vec![0.5, 2.0, 1.0, 1.5];
    let weights = Tensor::new(wv.as_slice(), &Device::Cpu).unwrap();
    let ls = naive_log_softmax_rows(&flat(&logits), c);
    let nll: Vec<f64> = tv
        .iter()
        .enumerate()
        .map(|(i, &t)| -ls[i * c + t as usize])
        .collect();

    let plain = ops::cross_entropy(&logits, &targets, None).unwrap();
    let want = nll.iter().sum::<f64>() / n as f64;
    assert_close("ce", &flat(&plain), &[want], 1e-12);
    let cand = candle_nn::loss::cross_entropy(&logits, &targets).unwrap();
    assert_close("ce vs candle", &flat(&plain), &flat(&cand), 1e-12);
    let l32 = ops::cross_entropy(&logits.to_dtype(DType::F32).unwrap(), &targets, None).unwrap();
    assert_close("ce f32", &flat(&l32), &[want], 1e-5);

    let weighted = ops::cross_entropy(&logits, &targets, Some(&weights)).unwrap();
    let wsum: f64 = tv.iter().map(|&t| wv[t as usize]).sum();
    let want_w = tv
        .iter()
        .zip(&nll)
        .map(|(&t, l)| wv[t as usize] * l)
        .sum::<f64>()
        / wsum;
    assert_close("ce weighted", &flat(&weighted), &[want_w], 1e-12);

    let mask = Tensor::new(&[1.0f64, 0.0, 1.0, 1.0, 0.0, 1.0], &Device::Cpu).unwrap();
    let masked = ops::cross_entropy_masked(&logits, &targets, &mask).unwrap();
    let want_m = (nll[0] + nll[2] + nll[3] + nll[5]) / 4.0;
    assert_close("ce masked", &flat(&masked), &[want_m], 1e-12);
    let ig: Vec<u32> = vec![0, 99, 1, 2, 99, 1];
    let ig_t = Tensor::new(ig.as_slice(), &Device::Cpu).unwrap();
    let ignored = ops::cross_entropy_ignore_index(&logits, &ig_t, 99).unwrap();
    assert_close("ce ignore_index", &flat(&ignored), &[want_m], 1e-12);
    let ig64 = Tensor::new(&[0i64, -100, 1, 2, -100, 1], &Device::Cpu).unwrap();
    let ignored64 = ops::cross_entropy_ignore_index(&logits, &ig64, -100).unwrap();
    assert_close("ce ignore_index i64", &flat(&ignored64), &[want_m], 1e-12);
    let neg = ops::cross_entropy_ignore_index(&logits, &targets, -100).unwrap();
    assert_close("ce ignore -100 on u32", &flat(&neg), &[want], 1e-12);
    let none = ops::cross_entropy_masked(&logits, &targets, &mask.zeros_like().unwrap()).unwrap();
    assert_eq!(flat(&none), [0.0]);
    // Rank-3 logits (B, L, C) with targets (B, L).
    let l3 = logits.reshape((2, 3, c)).unwrap();
    let t3 = targets.reshape((2, 3)).unwrap();
    assert_close(
        "ce rank 3",
        &flat(&ops::cross_entropy(&l3, &t3, None).unwrap()),
        &[want],
        1e-12,
    );

    grad_check("cross_entropy", std::slice::from_ref(&logits), |t| {
        ops::cross_entropy(&t[0], &targets, None)
    });
    grad_check(
        "cross_entropy weighted",
        std::slice::from_ref(&logits),
        |t| ops::cross_entropy(&t[0], &targets, Some(&weights)),
    );
    grad_check("cross_entropy masked", std::slice::from_ref(&logits), |t| {
        ops::cross_entropy_masked(&t[0], &targets, &mask)
    });
    grad_check(
        "cross_entropy ignore_index",
        std::slice::from_ref(&logits),
        |t| ops::cross_entropy_ignore_index(&t[0], &ig_t, 99),
    );

    let bad = Tensor::new(&[0u32, 4, 1, 2, 3, 1], &Device::Cpu).unwrap();
    assert!(
        ops::cross_entropy(&logits, &bad, None).is_err(),
        "target out of range"
    );
    assert!(ops::cross_entropy(&logits, &targets.narrow(0, 0, 5).unwrap(), None).is_err());
    assert!(
        ops::cross_entropy(&logits, &logits, None).is_err(),
        "float targets"
    );
    assert!(
        ops::cross_entropy(&logits, &targets, Some(&mask)).is_err(),
        "weights shape"
    );
}

// ---------------------------------------------------------------- activations, pooling

/// erf by its Maclaurin series (accurate to ~1e-13 for |x| <= 3).
fn erf_ref(x: f64) -> f64 {
    let mut term = x;
    let mut sum = x;
    for n in 1..200 {
        term *= -x * x / n as f64;
        let add = term / (2 * n + 1) as f64;
        sum += add;
        if add.abs() < 1e-18 {
            break;
        }
    }
    sum * 2.0 / std::f64::consts::PI.sqrt()
}

#[test]
fn activations() {
    let mut r = rng(61);
    let x = (rand_t(&mut r, &[3, 7]) * 3.0).unwrap();
    let xs = flat(&x);
    let c = (2.0 / std::f64::consts::PI).sqrt();
    let gelu_want: Vec<f64> = xs
        .iter()
        .map(|v| 0.5 * v * (1.0 + erf_ref(v / 2f64.sqrt())))
        .collect();
    let tanh_want: Vec<f64> = xs
        .iter()
        .map(|v| 0.5 * v * (1.0 + (c * (v + 0.044715 * v.powi(3))).tanh()))
        .collect();
    let sig_want: Vec<f64> = xs.iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect();
    let silu_want: Vec<f64> = xs.iter().zip(&sig_want).map(|(v, s)| v * s).collect();
    let relu_want: Vec<f64> = xs.iter().map(|v| v.max(0.0)).collect();
    type Act = fn(&Tensor) -> Result<Tensor>;
    let cases: [(&str, Act, &[f64]); 5] = [
        ("gelu", ops::gelu, &gelu_want),
        ("gelu_tanh", ops::gelu_tanh, &tanh_want),
        ("sigmoid", ops::sigmoid, &sig_want),
        ("silu", ops::silu, &silu_want),
        ("relu", ops::relu, &relu_want),
    ];
    for (name, f, want) in cases {
        assert_close(name, &flat(&f(&x).unwrap()), want, 1e-10);
        let y32 = f(&x.to_dtype(DType::F32).unwrap()).unwrap();
        assert_close(&format!("{name} f32"), &flat(&y32), want, 1e-5);
        grad_check(name, std::slice::from_ref(&x), |t| f(&t[0]));
    }
}

#[test]
fn dropout_is_seeded_and_differentiable() {
    let mut r = rng(71);
    let x = rand_t(&mut r, &[4, 50]);
    let a = ops::dropout(&x, 0.3, &mut rng(5)).unwrap();
    let b = ops::dropout(&x, 0.3, &mut rng(5)).unwrap();
    let c = ops::dropout(&x, 0.3, &mut rng(6)).unwrap();
    assert_eq!(flat(&a), flat(&b));
    assert_ne!(flat(&a), flat(&c));
    let (xs, ys) = (flat(&x), flat(&a));
    let dropped = ys.iter().filter(|v| **v == 0.0).count();
    assert!((30..=90).contains(&dropped), "dropped {dropped} of 200");
    for (xv, yv) in xs.iter().zip(&ys) {
        assert!(*yv == 0.0 || (yv - xv / 0.7).abs() < 1e-12);
    }
    assert_eq!(flat(&ops::dropout(&x, 0.0, &mut rng(5)).unwrap()), xs);
    assert!(ops::dropout(&x, 1.0, &mut rng(5)).is_err());
    assert!(ops::dropout(&x, -0.1, &mut rng(5)).is_err());
    let x32 = x.to_dtype(DType::F32).unwrap();
    let y32 = ops::dropout(&x32, 0.3, &mut rng(5)).unwrap();
    assert_close("dropout f32", &flat(&y32), &ys, 1e-6);
    grad_check("dropout", &[x.narrow(1, 0, 10).unwrap()], |t| {
        ops::dropout(&t[0], 0.4, &mut rng(9))
    });
}

fn naive_max_pool(x: &[f64], rows: usize, l: usize, k: usize, s: usize) -> Vec<f64> {
    let lo = (l - k) / s + 1;
    let mut out = vec![];
    for row in x.chunks(l).take(rows) {
        for t in 0..lo {
            out.push(
                row[t * s..t * s + k]
                    .iter()
                    .cloned()
                    .fold(f64::NEG_INFINITY, f64::max),
            );
        }
    }
    out
}

#[test]
fn pooling_and_upsampling() {
    let mut r = rng(81);
    let x = rand_t(&mut r, &[2, 3, 11]);
    let xs = flat(&x);
    for (k, s) in [(2, 2), (3, 3), (3, 1), (4, 2), (11, 11), (1, 1)] {
        let y = ops::max_pool1d_strided(&x, k, s).unwrap();
        assert_eq!(y.dims(), &[2, 3, (11 - k) / s + 1]);
        assert_close(
            &format!("max_pool {k}/{s}"),
            &flat(&y),
            &naive_max_pool(&xs, 6, 11, k, s),
            0.0,
        );
        let y32 = ops::max_pool1d_strided(&x.to_dtype(DType::F32).unwrap(), k, s).unwrap();
        assert_close(
            "max_pool f32",
            &flat(&y32),
            &naive_max_pool(&xs, 6, 11, k, s),
            1e-6,
        );
        grad_check(
            &format!("max_pool1d k={k} s={s}"),
            std::slice::from_ref(&x),
            |t| ops::max_pool1d_strided(&t[0], k, s),
        );
    }
    assert_eq!(ops::max_pool1d(&x, 2).unwrap().dims(), &[2, 3, 5]);
    // Ties: the first maximum takes the whole gradient (as in PyTorch).
    let tie = Var::from_tensor(&Tensor::new(&[[[1.0f64, 1.0, 0.0, 2.0]]], &Device::Cpu).unwrap())
        .unwrap();
    let g = ops::max_pool1d(tie.as_tensor(), 2)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(flat(g.get(&tie).unwrap()), [1.0, 0.0, 0.0, 1.0]);

    let gmax = ops::global_max_pool1d(&x).unwrap();
    assert_close(
        "global max",
        &flat(&gmax),
        &naive_max_pool(&xs, 6, 11, 11, 11),
        0.0,
    );
    let gavg = ops::global_avg_pool1d(&x).unwrap();
    let want: Vec<f64> = xs
        .chunks(11)
        .map(|r| r.iter().sum::<f64>() / 11.0)
        .collect();
    assert_close("global avg", &flat(&gavg), &want, 1e-12);
    grad_check("global_max_pool1d", std::slice::from_ref(&x), |t| {
        ops::global_max_pool1d(&t[0])
    });
    grad_check("global_avg_pool1d", std::slice::from_ref(&x), |t| {
        ops::global_avg_pool1d(&t[0])
    });

    let up = ops::upsample_nearest1d(&x, 3).unwrap();
    assert_eq!(up.dims(), &[2, 3, 33]);
    let want: Vec<f64> = xs.iter().flat_map(|v| [*v, *v, *v]).collect();
    assert_close("upsample", &flat(&up), &want, 0.0);
    grad_check("upsample_nearest1d", std::slice::from_ref(&x), |t| {
        ops::upsample_nearest1d(&t[0], 3)
    });
    grad_check(
        "upsample of transposed",
        &[rand_t(&mut r, &[2, 4, 3])],
        |t| ops::upsample_nearest1d(&t[0].transpose(1, 2)?, 2),
    );

    assert!(ops::max_pool1d(&x, 0).is_err());
    assert!(ops::max_pool1d(&x, 12).is_err());
    assert!(ops::max_pool1d(&x.flatten_all().unwrap(), 2).is_err());
    assert!(ops::upsample_nearest1d(&x, 0).is_err());
    assert!(ops::global_avg_pool1d(&xs_tensor(&xs)).is_err());
}

fn xs_tensor(v: &[f64]) -> Tensor {
    Tensor::new(v, &Device::Cpu).unwrap()
}

// ---------------------------------------------------------------- a whole small model

#[test]
fn small_cnn_gradients_match_finite_differences() {
    // embedding-like input -> conv -> relu -> batchnorm -> maxpool -> depthwise conv -> gelu
    // -> upsample -> transpose -> layer_norm -> linear -> cross-entropy.
    let mut r = rng(91);
    let x = rand_t(&mut r, &[3, 4, 12]);
    let w1 = rand_t(&mut r, &[6, 4, 3]);
    let b1 = rand_t(&mut r, &[6]);
    let w2 = rand_t(&mut r, &[6, 1, 3]);
    let gamma = rand_t(&mut r, &[6]);
    let wl = rand_t(&mut r, &[5, 6]);
    let targets = Tensor::from_vec(
        (0..36).map(|i| (i * 7 % 5) as u32).collect::<Vec<_>>(),
        (3, 12),
        &Device::Cpu,
    )
    .unwrap();
    grad_check("small cnn", &[x, w1, b1, w2, gamma, wl], |t| {
        let vb = VarBuilder::from_tensors(Default::default(), DType::F64, &Device::Cpu);
        let bn = ops::BatchNorm1d::load(
            vb,
            6,
            ops::BatchNormConfig {
                affine: false,
                ..Default::default()
            },
        )?;
        let h = ops::conv1d(&t[0], &t[1], Some(&t[2]), 1, 1, 1, 1)?;
        let h = bn.forward_t(&ops::relu(&(h + 0.1)?)?, true)?;
        let h = ops::max_pool1d(&h, 2)?;
        let h = ops::gelu(&ops::conv1d(&h, &t[3], None, 1, 1, 1, 6)?)?;
        let h = ops::upsample_nearest1d(&h, 2)?.transpose(1, 2)?;
        let h = ops::layer_norm(&h, &t[4], None, 1e-5)?;
        let logits = ops::linear(&h, &t[5], None)?;
        ops::cross_entropy(&logits, &targets, None)
    });
}

// ---------------------------------------------------------------- timing (not a test)

/// CPU time of all threads of this process, in seconds (Linux `schedstat`, ns resolution).
fn process_cpu_s() -> f64 {
    let mut ns = 0u64;
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for e in dir.flatten() {
            if let Ok(s) = std::fs::read_to_string(e.path().join("schedstat")) {
                ns += s
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
            }
        }
    }
    ns as f64 * 1e-9
}

/// Mean (wall ms, CPU ms) of `f` over `n` runs after 3 warm-up runs.
fn time_it(n: usize, mut f: impl FnMut()) -> (f64, f64) {
    for _ in 0..3 {
        f();
    }
    let (t0, c0) = (std::time::Instant::now(), process_cpu_s());
    for _ in 0..n {
        f();
    }
    let wall = t0.elapsed().as_secs_f64() * 1e3 / n as f64;
    (wall, (process_cpu_s() - c0) * 1e3 / n as f64)
}

/// Forward + backward timing of the genomic-benchmarks CNN convolutions (f32, batch 64,
/// lengths after each max-pool); run with
/// `cargo test --release --test ops_grad -- --ignored --nocapture conv_timing`.
#[test]
#[ignore]
fn conv_timing() {
    let mut r = rng(1);
    let b = 64;
    let layers = [(100, 16, 8, 300), (16, 8, 8, 146), (8, 4, 8, 69)];
    let f32v = |r: &mut ChaCha8Rng, s: &[usize]| {
        Var::from_tensor(&rand_t(r, s).to_dtype(DType::F32).unwrap()).unwrap()
    };
    let (mut total_wall, mut total_cpu) = (0.0, 0.0);
    for &(cin, cout, k, l) in &layers {
        let x = f32v(&mut r, &[b, cin, l]);
        let w = f32v(&mut r, &[cout, cin, k]);
        let bias = f32v(&mut r, &[cout]);
        let (fw, fc) = time_it(20, || {
            ops::conv1d(
                x.as_tensor(),
                w.as_tensor(),
                Some(bias.as_tensor()),
                1,
                0,
                1,
                1,
            )
            .unwrap();
        });
        let (sw, sc) = time_it(20, || {
            let y = ops::conv1d(
                x.as_tensor(),
                w.as_tensor(),
                Some(bias.as_tensor()),
                1,
                0,
                1,
                1,
            )
            .unwrap();
            y.sum_all().unwrap().backward().unwrap();
        });
        let (cw, cc) = time_it(20, || {
            let y = x.as_tensor().conv1d(w.as_tensor(), 0, 1, 1, 1).unwrap();
            let y = y
                .broadcast_add(&bias.as_tensor().reshape((1, cout, 1)).unwrap())
                .unwrap();
            y.sum_all().unwrap().backward().unwrap();
        });
        total_wall += sw;
        total_cpu += sc;
        println!(
            "conv {cin}->{cout} k{k} B{b} L{l}: fwd {fw:.2} ms (cpu {fc:.2}), fwd+bwd {sw:.2} ms \
             (cpu {sc:.2}); candle's conv1d (wrong kernel grad) fwd+bwd {cw:.2} ms (cpu {cc:.2})"
        );
        let dw = f32v(&mut r, &[cin, 1, k]);
        let (dw_w, dw_c) = time_it(20, || {
            let y = ops::conv1d(x.as_tensor(), dw.as_tensor(), None, 1, 3, 1, cin).unwrap();
            y.sum_all().unwrap().backward().unwrap();
        });
        let (cdw_w, cdw_c) = time_it(5, || {
            let y = x.as_tensor().conv1d(dw.as_tensor(), 3, 1, 1, cin).unwrap();
            y.sum_all().unwrap().backward().unwrap();
        });
        println!(
            "  depthwise {cin} ch k{k}: fwd+bwd {dw_w:.2} ms (cpu {dw_c:.2}); candle per-group \
             {cdw_w:.2} ms (cpu {cdw_c:.2})"
        );
    }
    println!("three convs fwd+bwd: {total_wall:.2} ms wall, {total_cpu:.2} ms cpu");
}

#[test]
fn half_precision_falls_back_to_composed_ops() {
    let c = ConvCase {
        b: 2,
        cin: 3,
        l: 9,
        cout: 4,
        k: 3,
        s: 1,
        p: 1,
        d: 1,
        g: 1,
    };
    let (x, w, bias) = conv_inputs(&c, 5);
    let want = naive_conv1d(&flat(&x), &flat(&w), Some(&flat(&bias)), &c);
    let h = |t: &Tensor| t.to_dtype(DType::F16).unwrap();
    let y = ops::conv1d(&h(&x), &h(&w), Some(&h(&bias)), c.s, c.p, c.d, c.g).unwrap();
    assert_eq!(y.dtype(), DType::F16);
    assert_close("conv1d f16", &flat(&y), &want, 1e-2);
    let p = ops::max_pool1d(&h(&x), 2).unwrap();
    let want = naive_max_pool(&flat(&x), 6, 9, 2, 2);
    assert_close("max_pool1d f16", &flat(&p), &want, 1e-3);
}
