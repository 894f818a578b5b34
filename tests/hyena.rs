//! Hyena: the FFT long convolution (`ops::fft_conv`), the implicit filter, the operator and the
//! backbone (`models::hyena`).
//!
//! Gradient checks (f64): loss = sum(out * R) for a fixed random R; every element of every input
//! and parameter is perturbed by +-1e-6 (central differences) and compared with `backward()`:
//! |analytic - numeric| <= 1e-6 * max(|analytic|, |numeric|) + 1e-8. References: naive loops
//! written here, and the PyTorch fixture from scripts/hyena_ref.py.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use genolm::models::hyena::{self, Config, Hyena, HyenaFilter, HyenaOperator};
use genolm::models::{Backbone, Ctx};
use genolm::ops;
use rand::Rng;

mod common;
use common::{flat, grad_check, rand_t, rand_vec, rng};

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

// ---------------------------------------------------------------- fft_conv

/// `y[b, d, t] = sum_j k[d, j] u[b, d, t + off - j]` by direct loops.
fn direct_conv(
    u: &[f64],
    k: &[f64],
    b: usize,
    d: usize,
    l: usize,
    kl: usize,
    off: usize,
) -> Vec<f64> {
    let mut y = vec![0.0; b * d * l];
    for bi in 0..b {
        for di in 0..d {
            for t in 0..l {
                let mut s = 0.0;
                for j in 0..kl {
                    let src = t as i64 + off as i64 - j as i64;
                    if (0..l as i64).contains(&src) {
                        s += k[di * kl + j] * u[(bi * d + di) * l + src as usize];
                    }
                }
                y[(bi * d + di) * l + t] = s;
            }
        }
    }
    y
}

/// (batch, channels, length, kernel taps, offset)
fn conv_cases() -> Vec<(usize, usize, usize, usize, usize)> {
    let mut v = Vec::new();
    for &(b, d) in &[(1, 1), (2, 3), (3, 2), (5, 4)] {
        for &l in &[1, 7, 16, 37, 64] {
            v.push((b, d, l, l, 0)); // causal
            v.push((b, d, l, 2 * l - 1, l - 1)); // two-sided
        }
    }
    // General kernel lengths and offsets.
    v.push((2, 3, 20, 5, 2));
    v.push((3, 2, 9, 30, 29));
    v.push((2, 2, 13, 4, 0));
    v
}

#[test]
fn fft_conv_matches_direct_convolution() {
    let mut r = rng(1);
    let (mut worst64, mut worst32) = (0f64, 0f64);
    for (b, d, l, kl, off) in conv_cases() {
        let u = rand_vec(&mut r, b * d * l);
        let k = rand_vec(&mut r, d * kl);
        let want = direct_conv(&u, &k, b, d, l, kl, off);
        let scale = want.iter().fold(1.0f64, |m, x| m.max(x.abs()));
        let ut = Tensor::from_vec(u, (b, d, l), &Device::Cpu).unwrap();
        let kt = Tensor::from_vec(k, (d, kl), &Device::Cpu).unwrap();
        let got = flat(&ops::fft_conv(&ut, &kt, off).unwrap());
        let e64 = max_abs_diff(&got, &want) / scale;
        assert!(
            e64 < 1e-13,
            "f64 b{b} d{d} l{l} k{kl} off{off}: rel err {e64:e}"
        );
        let (u32_, k32) = (
            ut.to_dtype(DType::F32).unwrap(),
            kt.to_dtype(DType::F32).unwrap(),
        );
        let y32 = ops::fft_conv(&u32_, &k32, off).unwrap();
        assert_eq!(y32.dtype(), DType::F32);
        assert_eq!(y32.dims(), &[b, d, l]);
        let e32 = max_abs_diff(&flat(&y32), &want) / scale;
        assert!(
            e32 < 1e-5,
            "f32 b{b} d{d} l{l} k{kl} off{off}: rel err {e32:e}"
        );
        worst64 = worst64.max(e64);
        worst32 = worst32.max(e32);
    }
    println!("fft_conv vs direct: worst rel err f64 {worst64:.2e}, f32 {worst32:.2e}");
}

#[test]
fn fft_conv_non_contiguous_inputs() {
    let mut r = rng(2);
    let u = rand_t(&mut r, &[3, 11, 4]); // (B, L, D) -> transposed view (B, D, L)
    let k = rand_t(&mut r, &[11, 4]); // (K, D) -> transposed view (D, K)
    let (ut, kt) = (u.transpose(1, 2).unwrap(), k.t().unwrap());
    let got = flat(&ops::fft_conv(&ut, &kt, 0).unwrap());
    let want = direct_conv(
        &flat(&ut.contiguous().unwrap()),
        &flat(&kt.contiguous().unwrap()),
        3,
        4,
        11,
        11,
        0,
    );
    assert!(max_abs_diff(&got, &want) < 1e-12);
}

#[test]
fn fft_conv_gradients_match_finite_differences() {
    let mut r = rng(3);
    for (b, d, l, kl, off) in [
        (3, 2, 7, 7, 0),
        (3, 2, 7, 13, 6),
        (2, 1, 8, 8, 0),
        (1, 2, 8, 15, 7),
        (2, 2, 6, 4, 1),
    ] {
        let u = rand_t(&mut r, &[b, d, l]);
        let k = rand_t(&mut r, &[d, kl]);
        grad_check(
            &format!("fft_conv b{b} d{d} l{l} k{kl} off{off}"),
            &[u, k],
            |ts| ops::fft_conv(&ts[0], &ts[1], off),
        );
    }
}

#[test]
fn fft_conv_f32_gradients_match_f64() {
    let mut r = rng(4);
    let (b, d, l) = (3, 3, 10);
    let u = rand_t(&mut r, &[b, d, l]);
    let k = rand_t(&mut r, &[d, 2 * l - 1]);
    let w = rand_t(&mut r, &[b, d, l]);
    let grads = |dt: DType| {
        let uv = Var::from_tensor(&u.to_dtype(dt).unwrap()).unwrap();
        let kv = Var::from_tensor(&k.to_dtype(dt).unwrap()).unwrap();
        let y = ops::fft_conv(uv.as_tensor(), kv.as_tensor(), l - 1).unwrap();
        let loss = (y * w.to_dtype(dt).unwrap()).unwrap().sum_all().unwrap();
        let g = loss.backward().unwrap();
        (
            flat(g.get(uv.as_tensor()).unwrap()),
            flat(g.get(kv.as_tensor()).unwrap()),
        )
    };
    let (du64, dk64) = grads(DType::F64);
    let (du32, dk32) = grads(DType::F32);
    assert!(max_abs_diff(&du64, &du32) < 1e-5);
    assert!(max_abs_diff(&dk64, &dk32) < 1e-5);
}

#[test]
fn fft_conv_bit_identical_across_thread_counts() {
    let mut r = rng(5);
    let (b, d, l) = (5, 7, 50);
    let u = rand_t(&mut r, &[b, d, l]);
    let k = rand_t(&mut r, &[d, 2 * l - 1]);
    let w = rand_t(&mut r, &[b, d, l]);
    let run = || {
        let uv = Var::from_tensor(&u).unwrap();
        let kv = Var::from_tensor(&k).unwrap();
        let y = ops::fft_conv(uv.as_tensor(), kv.as_tensor(), l - 1).unwrap();
        let g = (&y * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let bits = |t: &Tensor| -> Vec<u64> { flat(t).iter().map(|x| x.to_bits()).collect() };
        (
            bits(&y),
            bits(g.get(uv.as_tensor()).unwrap()),
            bits(g.get(kv.as_tensor()).unwrap()),
        )
    };
    let base = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(run);
    for n in [2, 3, 8] {
        let other = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
            .install(run);
        assert!(base == other, "fft_conv results differ with {n} threads");
    }
}

#[test]
fn fft_conv_rejects_bad_inputs() {
    let dev = Device::Cpu;
    let u = Tensor::zeros((2, 3, 5), DType::F64, &dev).unwrap();
    let k = Tensor::zeros((3, 5), DType::F64, &dev).unwrap();
    let cases: Vec<(&str, Tensor, Tensor, usize)> = vec![
        ("rank", u.flatten_all().unwrap(), k.clone(), 0),
        ("kernel rank", u.clone(), k.flatten_all().unwrap(), 0),
        (
            "channels",
            u.clone(),
            Tensor::zeros((2, 5), DType::F64, &dev).unwrap(),
            0,
        ),
        ("offset", u.clone(), k.clone(), 5),
        ("dtype", u.clone(), k.to_dtype(DType::F32).unwrap(), 0),
        (
            "int dtype",
            u.to_dtype(DType::U32).unwrap(),
            k.to_dtype(DType::U32).unwrap(),
            0,
        ),
        (
            "empty",
            Tensor::zeros((2, 3, 0), DType::F64, &dev).unwrap(),
            k.clone(),
            0,
        ),
    ];
    // Empty batch or channel dimensions give an empty result.
    let e = Tensor::zeros((0, 3, 5), DType::F64, &dev).unwrap();
    assert_eq!(ops::fft_conv(&e, &k, 0).unwrap().dims(), &[0, 3, 5]);
    let (e, ek) = (
        Tensor::zeros((2, 0, 5), DType::F32, &dev).unwrap(),
        Tensor::zeros((0, 9), DType::F32, &dev).unwrap(),
    );
    assert_eq!(ops::fft_conv(&e, &ek, 4).unwrap().dims(), &[2, 0, 5]);
    for (what, u, k, off) in cases {
        // candle appends a backtrace on further lines when RUST_BACKTRACE is set.
        let e = ops::fft_conv(&u, &k, off).expect_err(what).to_string();
        let first = e.lines().next().unwrap_or_default();
        assert!(first.starts_with("fft_conv: "), "{what}: {e}");
    }
}

// ---------------------------------------------------------------- layers

/// Every variable a builder creates, as (name, shape), sorted by name.
fn names_and_shapes(build: impl FnOnce(VarBuilder)) -> Vec<(String, Vec<usize>)> {
    let map = VarMap::new();
    build(VarBuilder::from_varmap(&map, DType::F64, &Device::Cpu));
    let data = map.data().lock().unwrap();
    let mut v: Vec<_> = data
        .iter()
        .map(|(k, t)| (k.clone(), t.dims().to_vec()))
        .collect();
    v.sort();
    v
}

/// Random O(1) parameter values (`freq` and norm weights around 1).
fn random_params(names: &[(String, Vec<usize>)], seed: u64) -> Vec<Tensor> {
    let mut r = rng(seed);
    names
        .iter()
        .map(|(name, shape)| {
            let t = rand_t(&mut r, shape);
            let around_one = name.ends_with("freq")
                || (name.ends_with("weight") && (name.contains("norm") || name.contains("norm_f")));
            if around_one {
                (t * 0.3).unwrap().affine(1.0, 1.0).unwrap()
            } else {
                t
            }
        })
        .collect()
}

fn vb_of(names: &[(String, Vec<usize>)], ts: &[Tensor]) -> VarBuilder<'static> {
    let map: HashMap<String, Tensor> = names
        .iter()
        .map(|(n, _)| n.clone())
        .zip(ts.iter().cloned())
        .collect();
    VarBuilder::from_tensors(map, DType::F64, &Device::Cpu)
}

fn small_cfg(bidirectional: bool) -> Config {
    Config {
        d_model: 3,
        n_layer: 1,
        filter_order: 4,
        emb_dim: 5,
        short_filter: 3,
        bidirectional,
        dropout: 0.0,
    }
}

/// `torch.linspace`-free features: lag τ → [τ/(L-1), cos(f w), -sin(f w)], t = |τ|/(L-1).
fn naive_features(len: usize, emb_dim: usize, bidir: bool) -> (Vec<Vec<f64>>, Vec<f64>) {
    let bands = (emb_dim - 1) / 2;
    let f: Vec<f64> = (0..bands)
        .map(|i| {
            if bands == 1 {
                1e-4
            } else {
                1e-4 + i as f64 * ((bands - 1) as f64 - 1e-4) / (bands - 1) as f64
            }
        })
        .collect();
    let lo = if bidir { -(len as i64 - 1) } else { 0 };
    let mut z = Vec::new();
    let mut t = Vec::new();
    for lag in lo..len as i64 {
        let s = if len > 1 {
            lag as f64 / (len - 1) as f64
        } else {
            0.0
        };
        let w = 2.0 * std::f64::consts::PI * lag as f64 / len as f64;
        let mut row = vec![s];
        row.extend(f.iter().map(|fi| (fi * w).cos()));
        row.extend(f.iter().map(|fi| -(fi * w).sin()));
        z.push(row);
        t.push(s.abs());
    }
    (z, t)
}

/// `W x + b` for a row-major `(out, in)` weight.
fn naive_linear(w: &[f64], b: Option<&[f64]>, x: &[f64], out: usize) -> Vec<f64> {
    let inp = x.len();
    (0..out)
        .map(|o| {
            let s: f64 = (0..inp).map(|i| w[o * inp + i] * x[i]).sum();
            s + b.map_or(0.0, |b| b[o])
        })
        .collect()
}

/// The long kernel `(d, K)` by loops, from the filter weights in `p`.
fn naive_kernel(
    p: &HashMap<String, Vec<f64>>,
    pre: &str,
    d: usize,
    order: usize,
    emb: usize,
    len: usize,
    bidir: bool,
) -> Vec<Vec<f64>> {
    let g = |n: &str| p[&format!("{pre}implicit_filter.{n}")].as_slice();
    let (z, t) = naive_features(len, emb, bidir);
    let ln = 1e-2f64.ln();
    let (lo, hi) = (ln / 1.5, ln / 0.3);
    let rates: Vec<f64> = (0..d)
        .map(|i| {
            let v = if d == 1 {
                lo
            } else {
                lo + (hi - lo) * i as f64 / (d - 1) as f64
            };
            v.abs()
        })
        .collect();
    let mut k = vec![vec![0.0; z.len()]; d];
    for (j, zj) in z.iter().enumerate() {
        let mut h = zj.clone();
        for (li, fi) in [("0", "1"), ("2", "3"), ("4", "5")] {
            let pre_act = naive_linear(
                g(&format!("{li}.weight")),
                Some(g(&format!("{li}.bias"))),
                &h,
                order,
            );
            let freq = g(&format!("{fi}.freq"));
            h = pre_act
                .iter()
                .zip(freq)
                .map(|(x, f)| (f * x).sin())
                .collect();
        }
        let out = naive_linear(g("6.weight"), None, &h, d);
        for c in 0..d {
            k[c][j] = out[c] * (-t[j] * rates[c]).exp();
        }
    }
    k
}

#[test]
fn implicit_filter_matches_naive_loops() {
    let (d, order, emb) = (3, 4, 5);
    let names = names_and_shapes(|vb| {
        HyenaFilter::new(vb, d, order, emb).unwrap();
    });
    let ts = random_params(&names, 10);
    let filter = HyenaFilter::new(vb_of(&names, &ts), d, order, emb).unwrap();
    let p: HashMap<String, Vec<f64>> = names
        .iter()
        .map(|(n, _)| n.clone())
        .zip(ts.iter().map(flat))
        .collect();
    let mut worst = 0f64;
    for bidir in [false, true] {
        for len in [1, 2, 9, 16] {
            let got = filter.kernel(len, bidir).unwrap();
            let kl = if bidir { 2 * len - 1 } else { len };
            assert_eq!(got.dims(), &[d, kl]);
            let want: Vec<f64> = naive_kernel(&p, "", d, order, emb, len, bidir).concat();
            let e = max_abs_diff(&flat(&got), &want);
            assert!(e < 1e-12, "filter len {len} bidir {bidir}: {e:e}");
            worst = worst.max(e);
        }
    }
    // Bidirectional: the non-negative lags are exactly the causal kernel.
    let c = flat(&filter.kernel(9, false).unwrap());
    let b = filter.kernel(9, true).unwrap().narrow(1, 8, 9).unwrap();
    assert_eq!(c, flat(&b));
    println!("implicit filter vs loops: max abs err {worst:.2e}");
}

#[test]
fn implicit_filter_gradients_match_finite_differences() {
    let (d, order, emb) = (2, 3, 3);
    let names = names_and_shapes(|vb| {
        HyenaFilter::new(vb, d, order, emb).unwrap();
    });
    // `bias` is not part of the kernel: check the MLP weights and frequencies.
    let names: Vec<_> = names.into_iter().filter(|(n, _)| n != "bias").collect();
    let ts = random_params(&names, 11);
    for bidir in [false, true] {
        grad_check(&format!("implicit filter bidir={bidir}"), &ts, |ts| {
            let mut vb_names = names.clone();
            vb_names.push(("bias".into(), vec![d]));
            let mut all = ts.to_vec();
            all.push(Tensor::zeros(d, DType::F64, &Device::Cpu)?);
            let f = HyenaFilter::new(vb_of(&vb_names, &all), d, order, emb).map_err(to_candle)?;
            f.kernel(6, bidir).map_err(to_candle)
        });
    }
}

fn to_candle(e: genolm::error::Error) -> candle_core::Error {
    candle_core::Error::Msg(e.to_string())
}

/// The operator by loops: x (B, L, d) → (B, L, d), weights in `p` (names without prefix).
fn naive_operator(
    p: &HashMap<String, Vec<f64>>,
    cfg: &Config,
    x: &[f64],
    b: usize,
    l: usize,
) -> Vec<f64> {
    let d = cfg.d_model;
    let inner = 3 * d;
    let ks = cfg.short_filter;
    let k = naive_kernel(
        p,
        "filter_fn.",
        d,
        cfg.filter_order,
        cfg.emb_dim,
        l,
        cfg.bidirectional,
    );
    let g = |n: &str| p[n].as_slice();
    let mut out = vec![0.0; b * l * d];
    for bi in 0..b {
        // in_proj: u[t][c]
        let u: Vec<Vec<f64>> = (0..l)
            .map(|t| {
                naive_linear(
                    g("in_proj.weight"),
                    Some(g("in_proj.bias")),
                    &x[(bi * l + t) * d..][..d],
                    inner,
                )
            })
            .collect();
        // short depthwise conv (cross-correlation), causal or centred
        let shift = if cfg.bidirectional {
            (ks - 1) / 2
        } else {
            ks - 1
        } as i64;
        let (sw, sb) = (g("short_filter.weight"), g("short_filter.bias"));
        let uc: Vec<Vec<f64>> = (0..l)
            .map(|t| {
                (0..inner)
                    .map(|c| {
                        let mut s = sb[c];
                        for m in 0..ks {
                            let src = t as i64 - shift + m as i64;
                            if (0..l as i64).contains(&src) {
                                s += sw[c * ks + m] * u[src as usize][c];
                            }
                        }
                        s
                    })
                    .collect()
            })
            .collect();
        let off = if cfg.bidirectional { l - 1 } else { 0 };
        let bias = g("filter_fn.bias");
        for t in 0..l {
            let mut y = vec![0.0; d];
            for (c, yc) in y.iter_mut().enumerate() {
                let v = |s: usize| uc[s][2 * d + c] * uc[s][d + c];
                let mut acc = v(t) * bias[c];
                for (j, kj) in k[c].iter().enumerate() {
                    let src = t as i64 + off as i64 - j as i64;
                    if (0..l as i64).contains(&src) {
                        acc += kj * v(src as usize);
                    }
                }
                *yc = acc * uc[t][c];
            }
            let o = naive_linear(g("out_proj.weight"), Some(g("out_proj.bias")), &y, d);
            out[(bi * l + t) * d..][..d].copy_from_slice(&o);
        }
    }
    out
}

#[test]
fn operator_matches_naive_loops() {
    for bidir in [false, true] {
        for short_filter in [3, 5] {
            let cfg = Config {
                d_model: 4,
                filter_order: 5,
                short_filter,
                bidirectional: bidir,
                ..small_cfg(bidir)
            };
            let names = names_and_shapes(|vb| {
                HyenaOperator::new(vb, &cfg).unwrap();
            });
            let ts = random_params(&names, 20);
            let op = HyenaOperator::new(vb_of(&names, &ts), &cfg).unwrap();
            let p: HashMap<String, Vec<f64>> = names
                .iter()
                .map(|(n, _)| n.clone())
                .zip(ts.iter().map(flat))
                .collect();
            for (b, l) in [(1, 1), (3, 10), (2, 16)] {
                let x = rand_t(&mut rng(21), &[b, l, cfg.d_model]);
                let got = flat(&op.forward(&x).unwrap());
                let want = naive_operator(&p, &cfg, &flat(&x), b, l);
                let e = max_abs_diff(&got, &want);
                assert!(
                    e < 1e-10,
                    "operator bidir {bidir} k{short_filter} b{b} l{l}: {e:e}"
                );
            }
        }
    }
}

#[test]
fn operator_gradients_match_finite_differences() {
    for bidir in [false, true] {
        let cfg = small_cfg(bidir);
        let names = names_and_shapes(|vb| {
            HyenaOperator::new(vb, &cfg).unwrap();
        });
        let mut inputs = vec![rand_t(&mut rng(30), &[2, 5, cfg.d_model])];
        inputs.extend(random_params(&names, 31));
        grad_check(&format!("operator bidir={bidir}"), &inputs, |ts| {
            let op = HyenaOperator::new(vb_of(&names, &ts[1..]), &cfg).map_err(to_candle)?;
            op.forward(&ts[0]).map_err(to_candle)
        });
    }
}

// ---------------------------------------------------------------- backbone

fn ids(b: usize, l: usize, vocab: u32, seed: u64) -> Tensor {
    let mut r = rng(seed);
    let v: Vec<u32> = (0..b * l).map(|_| r.random_range(0..vocab)).collect();
    Tensor::from_vec(v, (b, l), &Device::Cpu).unwrap()
}

fn eval_forward(m: &Hyena, ids: &Tensor) -> Tensor {
    let mut r = rng(0);
    let mut ctx = Ctx {
        train: false,
        rng: &mut r,
    };
    m.forward(ids, &mut ctx).unwrap()
}

#[test]
fn backbone_gradients_match_finite_differences() {
    let vocab = 5;
    for bidir in [false, true] {
        let cfg = small_cfg(bidir);
        let names = names_and_shapes(|vb| {
            Hyena::new(&cfg, vocab, vb.clone(), vb).unwrap();
        });
        let ts = random_params(&names, 40);
        let ids = ids(2, 6, vocab as u32, 41);
        let worst = grad_check(&format!("backbone bidir={bidir}"), &ts, |ts| {
            let vb = vb_of(&names, ts);
            let m = Hyena::new(&cfg, vocab, vb.clone(), vb).map_err(to_candle)?;
            let mut r = rng(0);
            let mut ctx = Ctx {
                train: true,
                rng: &mut r,
            };
            m.forward(&ids, &mut ctx).map_err(to_candle)
        });
        assert!(worst < 1e-5);
        println!("backbone bidir={bidir}: {} parameter tensors", names.len());
    }
}

#[test]
fn backbone_shapes_names_and_defaults() {
    let cfg = Config::default();
    assert_eq!(
        (
            cfg.d_model,
            cfg.n_layer,
            cfg.filter_order,
            cfg.emb_dim,
            cfg.short_filter
        ),
        (64, 4, 64, 5, 3)
    );
    assert!(cfg.bidirectional && cfg.dropout == 0.0);
    let cfg = Config {
        n_layer: 2,
        d_model: 8,
        filter_order: 8,
        ..Config::default()
    };
    let map = VarMap::new();
    let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
    let m = Hyena::new(&cfg, 10, vb.clone(), vb).unwrap();
    assert_eq!(m.out_channels(), 8);
    assert_eq!(m.out_len(300), 300);
    let y = eval_forward(&m, &ids(3, 30, 10, 1));
    assert_eq!(y.dims(), &[3, 8, 30]);
    assert_eq!(y.dtype(), DType::F32);
    let names: Vec<String> = map.data().lock().unwrap().keys().cloned().collect();
    for want in [
        "embed.weight",
        "norm_f.weight",
        "norm_f.bias",
        "layers.1.norm1.weight",
        "layers.1.norm2.bias",
        "layers.1.mixer.in_proj.weight",
        "layers.1.mixer.in_proj.bias",
        "layers.1.mixer.short_filter.weight",
        "layers.1.mixer.short_filter.bias",
        "layers.1.mixer.out_proj.weight",
        "layers.1.mixer.filter_fn.bias",
        "layers.1.mixer.filter_fn.implicit_filter.0.weight",
        "layers.1.mixer.filter_fn.implicit_filter.4.bias",
        "layers.1.mixer.filter_fn.implicit_filter.5.freq",
        "layers.1.mixer.filter_fn.implicit_filter.6.weight",
        "layers.1.mlp.fc1.weight",
        "layers.1.mlp.fc2.bias",
    ] {
        assert!(names.iter().any(|n| n == want), "missing weight {want}");
    }
    assert!(!names.iter().any(|n| n.ends_with("implicit_filter.6.bias")));
    // embed + norm_f (3), per layer: norms 4, in/out_proj 4, short_filter 2, filter bias 1,
    // implicit filter 7 + 3 freq, mlp 4.
    assert_eq!(names.len(), 3 + 2 * 25);
}

#[test]
fn causal_backbone_is_causal_and_bidirectional_is_not() {
    let vocab = 6;
    for bidir in [false, true] {
        let cfg = Config {
            d_model: 8,
            n_layer: 2,
            filter_order: 8,
            bidirectional: bidir,
            ..Config::default()
        };
        let names = names_and_shapes(|vb| {
            Hyena::new(&cfg, vocab, vb.clone(), vb).unwrap();
        });
        let ts = random_params(&names, 50);
        let vb = vb_of(&names, &ts);
        let m = Hyena::new(&cfg, vocab, vb.clone(), vb).unwrap();
        let (b, l) = (2, 24);
        let base = ids(b, l, vocab as u32, 51);
        let y0 = eval_forward(&m, &base);
        for t in [0, 5, 17, 23] {
            let mut v = base.to_vec2::<u32>().unwrap();
            for row in v.iter_mut() {
                row[t] = (row[t] + 1) % vocab as u32;
            }
            let y1 = eval_forward(&m, &Tensor::new(v, &Device::Cpu).unwrap());
            let diff = (&y1 - &y0).unwrap().abs().unwrap();
            let max_of = |t: Tensor| flat(&t).into_iter().fold(0.0, f64::max);
            let before = if t > 0 {
                max_of(diff.narrow(2, 0, t).unwrap())
            } else {
                0.0
            };
            let at_after = max_of(diff.narrow(2, t, l - t).unwrap());
            assert!(
                at_after > 1e-3,
                "bidir {bidir}: changing token {t} changed nothing after it"
            );
            if bidir {
                if t > 0 {
                    assert!(
                        before > 1e-3,
                        "bidirectional: token {t} does not reach earlier outputs"
                    );
                }
            } else {
                // FFT round-off spreads ~1e-16 everywhere; real leakage would be O(1).
                assert!(
                    before < 1e-12,
                    "causal: token {t} changed earlier outputs by {before:e}"
                );
            }
        }
    }
}

#[test]
fn f32_backbone_matches_f64() {
    let vocab = 7;
    let cfg = Config {
        d_model: 8,
        n_layer: 2,
        filter_order: 8,
        ..Config::default()
    };
    let names = names_and_shapes(|vb| {
        Hyena::new(&cfg, vocab, vb.clone(), vb).unwrap();
    });
    let ts = random_params(&names, 60);
    let ids = ids(2, 33, vocab as u32, 61);
    let run = |dt: DType| {
        let map: HashMap<String, Tensor> = names
            .iter()
            .map(|(n, _)| n.clone())
            .zip(ts.iter().map(|t| t.to_dtype(dt).unwrap()))
            .collect();
        let vb = VarBuilder::from_tensors(map, dt, &Device::Cpu);
        flat(&eval_forward(
            &Hyena::new(&cfg, vocab, vb.clone(), vb).unwrap(),
            &ids,
        ))
    };
    let e = max_abs_diff(&run(DType::F64), &run(DType::F32));
    println!("f32 vs f64 backbone: max abs diff {e:.2e}");
    assert!(e < 1e-4);
}

#[test]
fn dropout_is_seeded_and_off_in_eval() {
    let vocab = 5;
    let cfg = Config {
        d_model: 8,
        n_layer: 1,
        filter_order: 8,
        dropout: 0.3,
        ..Config::default()
    };
    let map = VarMap::new();
    let vb = VarBuilder::from_varmap(&map, DType::F64, &Device::Cpu);
    let m = Hyena::new(&cfg, vocab, vb.clone(), vb).unwrap();
    let x = ids(2, 12, vocab as u32, 70);
    let train = |seed: u64| {
        let mut r = rng(seed);
        let mut ctx = Ctx {
            train: true,
            rng: &mut r,
        };
        flat(&m.forward(&x, &mut ctx).unwrap())
    };
    assert_eq!(train(1), train(1));
    assert_ne!(train(1), train(2));
    assert_eq!(flat(&eval_forward(&m, &x)), flat(&eval_forward(&m, &x)));
    assert_ne!(train(1), flat(&eval_forward(&m, &x)));
}

#[test]
fn bad_configs_are_errors() {
    let dev = Device::Cpu;
    let good = small_cfg(true);
    let cases = [
        (
            "d_model",
            Config {
                d_model: 0,
                ..good.clone()
            },
        ),
        (
            "n_layer",
            Config {
                n_layer: 0,
                ..good.clone()
            },
        ),
        (
            "filter_order",
            Config {
                filter_order: 0,
                ..good.clone()
            },
        ),
        (
            "emb_dim",
            Config {
                emb_dim: 4,
                ..good.clone()
            },
        ),
        (
            "emb_dim",
            Config {
                emb_dim: 1,
                ..good.clone()
            },
        ),
        (
            "short_filter",
            Config {
                short_filter: 0,
                ..good.clone()
            },
        ),
        (
            "short_filter",
            Config {
                short_filter: 4,
                ..good.clone()
            },
        ),
        (
            "dropout",
            Config {
                dropout: 1.0,
                ..good.clone()
            },
        ),
        (
            "dropout",
            Config {
                dropout: -0.1,
                ..good.clone()
            },
        ),
    ];
    for (field, cfg) in cases {
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F64, &dev);
        let e = Hyena::new(&cfg, 5, vb.clone(), vb)
            .err()
            .unwrap_or_else(|| panic!("{field}: accepted"));
        let msg = e.to_string();
        assert!(msg.contains(field) && !msg.contains('\n'), "{field}: {msg}");
        assert_eq!(e.exit_code(), 2, "{field}: {msg}");
    }
    // An even short filter is fine when causal.
    let cfg = Config {
        short_filter: 4,
        bidirectional: false,
        ..good.clone()
    };
    let map = VarMap::new();
    let vb = VarBuilder::from_varmap(&map, DType::F64, &dev);
    let m = Hyena::new(&cfg, 5, vb.clone(), vb).unwrap();
    assert_eq!(eval_forward(&m, &ids(1, 4, 5, 0)).dims(), &[1, 3, 4]);
    // Zero vocabulary, empty sequences.
    let map = VarMap::new();
    let vb = VarBuilder::from_varmap(&map, DType::F64, &dev);
    assert!(Hyena::new(&good, 0, vb.clone(), vb).is_err());
    let map = VarMap::new();
    let vb = VarBuilder::from_varmap(&map, DType::F64, &dev);
    let m = Hyena::new(&good, 5, vb.clone(), vb).unwrap();
    let empty = Tensor::zeros((2, 0), DType::U32, &dev).unwrap();
    let mut r = rng(0);
    let mut ctx = Ctx {
        train: false,
        rng: &mut r,
    };
    assert!(m.forward(&empty, &mut ctx).is_err());
    assert!(hyena::positional_features(0, 5, true, DType::F64, &dev).is_err());
}

// ---------------------------------------------------------------- PyTorch reference

#[test]
fn matches_pytorch_reference() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/hyena_ref.safetensors"
    );
    if !std::path::Path::new(path).exists() {
        println!("skipping: {path} missing (run /usr/bin/python3 scripts/hyena_ref.py)");
        return;
    }
    let all = candle_core::safetensors::load(path, &Device::Cpu).unwrap();
    let (vocab, len) = (10, 48);
    for (mode, bidir) in [("causal", false), ("bidir", true)] {
        let pre = format!("{mode}.");
        let map: HashMap<String, Tensor> = all
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(&pre).map(|n| (n.to_string(), v.clone())))
            .collect();
        let cfg = Config {
            d_model: 8,
            n_layer: 2,
            filter_order: 16,
            emb_dim: 5,
            short_filter: 3,
            bidirectional: bidir,
            dropout: 0.0,
        };
        let vb = VarBuilder::from_tensors(map.clone(), DType::F64, &Device::Cpu);
        let m = Hyena::new(&cfg, vocab, vb.clone(), vb).unwrap();
        let op = m.mixer(0).unwrap();

        let k = op.filter().kernel(len, bidir).unwrap();
        let ek = max_abs_diff(&flat(&k), &flat(&map["filter_k"]));
        let eo = max_abs_diff(
            &flat(&op.forward(&map["op_in"]).unwrap()),
            &flat(&map["op_out"]),
        );
        let ids = map["ids"].to_dtype(DType::U32).unwrap();
        let y = eval_forward(&m, &ids);
        assert_eq!(y.dims(), map["out"].dims());
        let ey = max_abs_diff(&flat(&y), &flat(&map["out"]));
        println!("pytorch {mode}: filter {ek:.2e}, operator {eo:.2e}, backbone {ey:.2e}");
        assert!(
            ek <= 1e-4 && eo <= 1e-4 && ey <= 1e-4,
            "{mode}: {ek:e} {eo:e} {ey:e}"
        );
    }
}
