//! Mamba: the selective-scan op (`ops::selective_scan`), the mixer and the backbone
//! (`models::mamba`), unidirectional, bidirectional (tied and untied) and RC-equivariant.
//!
//! Gradient checks: loss = sum(out * R) for a fixed random R; every element of every input and
//! parameter is perturbed by +-1e-6 (central differences, f64) and compared with the gradient
//! from `backward()`: |analytic - numeric| <= rel * max(|analytic|, |numeric|) + abs.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use genolm::error::Error;
use genolm::models::init::SeededInit;
use genolm::models::mamba::{self, Config, Mamba, Mixer, COMPLEMENT};
use genolm::models::{Backbone, Ctx};
use genolm::ops;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const FD_EPS: f64 = 1e-6;
const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/mamba_ref.safetensors"
);

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Uniform values in `[lo, hi)`.
fn uniform(r: &mut ChaCha8Rng, shape: &[usize], lo: f64, hi: f64) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| lo + (hi - lo) * r.random::<f64>()).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn flat(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims(), "shape mismatch");
    flat(a)
        .iter()
        .zip(flat(b))
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn bits(t: &Tensor) -> Vec<u64> {
    match t.dtype() {
        DType::F64 => flat(t).iter().map(|v| v.to_bits()).collect(),
        _ => t
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits() as u64)
            .collect(),
    }
}

/// Compare `backward()` gradients of `loss(vars)` with central differences, every element of
/// every var; `loss` is re-evaluated after each `Var::set`. Returns the worst relative error.
fn fd_check(name: &str, vars: &[(String, Var)], loss: &dyn Fn() -> Tensor, rel: f64, abs: f64) {
    let grads = loss().backward().unwrap();
    let mut worst = 0f64;
    let mut count = 0usize;
    for (vname, var) in vars {
        let g = flat(
            grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{name}: {vname} got no gradient")),
        );
        let base = flat(var.as_tensor());
        for j in 0..base.len() {
            let at = |d: f64| {
                let mut v = base.clone();
                v[j] += d;
                var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap())
                    .unwrap();
                loss().to_scalar::<f64>().unwrap()
            };
            let numeric = (at(FD_EPS) - at(-FD_EPS)) / (2.0 * FD_EPS);
            let a = g[j];
            let diff = (a - numeric).abs();
            let scale = a.abs().max(numeric.abs());
            assert!(
                diff <= rel * scale + abs,
                "{name}: {vname}[{j}]: analytic {a} vs numeric {numeric}"
            );
            worst = worst.max(diff / scale.max(1e-3));
            count += 1;
        }
        var.set(&Tensor::from_vec(base, var.shape(), &Device::Cpu).unwrap())
            .unwrap();
    }
    println!("{name}: {count} elements, worst relative gradient error {worst:.2e}");
}

/// `sum(out * R)` with a fixed random `R` of `out`'s shape.
fn weighted_sum(out: &Tensor) -> Tensor {
    let r = uniform(&mut rng(0xfeed), out.dims(), -1.0, 1.0)
        .to_dtype(out.dtype())
        .unwrap();
    (out * r).unwrap().sum_all().unwrap()
}

// ---------------------------------------------------------------- selective scan

/// Random scan inputs `(u, delta, A, Bm, Cm)`; delta in [0.05, 1), A in (-2, -0.1].
fn scan_inputs(seed: u64, b: usize, d: usize, n: usize, l: usize) -> Vec<Tensor> {
    let mut r = rng(seed);
    vec![
        uniform(&mut r, &[b, d, l], -1.0, 1.0),
        uniform(&mut r, &[b, d, l], 0.05, 1.0),
        uniform(&mut r, &[d, n], -2.0, -0.1),
        uniform(&mut r, &[b, n, l], -1.0, 1.0),
        uniform(&mut r, &[b, n, l], -1.0, 1.0),
    ]
}

/// The recurrence as plain loops in f64.
fn scan_naive(x: &[Tensor]) -> Tensor {
    let (b, d, l) = x[0].dims3().unwrap();
    let n = x[2].dim(1).unwrap();
    let (u, dl, a, bm, cm) = (
        flat(&x[0]),
        flat(&x[1]),
        flat(&x[2]),
        flat(&x[3]),
        flat(&x[4]),
    );
    let mut y = vec![0.0; b * d * l];
    for bi in 0..b {
        for di in 0..d {
            let mut h = vec![0.0; n];
            for t in 0..l {
                let dt = dl[(bi * d + di) * l + t];
                let ut = u[(bi * d + di) * l + t];
                let mut acc = 0.0;
                for k in 0..n {
                    let bk = bm[(bi * n + k) * l + t];
                    let ck = cm[(bi * n + k) * l + t];
                    h[k] = (dt * a[di * n + k]).exp() * h[k] + dt * bk * ut;
                    acc += ck * h[k];
                }
                y[(bi * d + di) * l + t] = acc;
            }
        }
    }
    Tensor::from_vec(y, (b, d, l), &Device::Cpu).unwrap()
}

/// The recurrence composed from candle ops (one graph node group per step).
fn scan_composed(x: &[Tensor]) -> Tensor {
    let (u, delta, a, bm, cm) = (&x[0], &x[1], &x[2], &x[3], &x[4]);
    let (b, d, l) = u.dims3().unwrap();
    let n = a.dim(1).unwrap();
    let mut h = Tensor::zeros((b, d, n), u.dtype(), u.device()).unwrap();
    let a = a.unsqueeze(0).unwrap();
    let mut ys = Vec::new();
    for t in 0..l {
        let dt = delta.narrow(2, t, 1).unwrap();
        let ut = u.narrow(2, t, 1).unwrap();
        let bt = bm.narrow(2, t, 1).unwrap().reshape((b, 1, n)).unwrap();
        let ct = cm.narrow(2, t, 1).unwrap().reshape((b, 1, n)).unwrap();
        let decay = dt.broadcast_mul(&a).unwrap().exp().unwrap();
        let inp = (&dt * &ut).unwrap().broadcast_mul(&bt).unwrap();
        h = ((decay * &h).unwrap() + inp).unwrap();
        ys.push(h.broadcast_mul(&ct).unwrap().sum_keepdim(2).unwrap());
    }
    Tensor::cat(&ys, 2).unwrap()
}

fn scan(x: &[Tensor], chunk: usize) -> candle_core::Result<Tensor> {
    ops::selective_scan_chunked(&x[0], &x[1], &x[2], &x[3], &x[4], chunk)
}

#[test]
fn scan_forward_matches_naive_loop() {
    for (b, d, n, l) in [(2, 3, 4, 11), (1, 5, 16, 130), (3, 2, 1, 1)] {
        let x = scan_inputs(1, b, d, n, l);
        let want = scan_naive(&x);
        let got = ops::selective_scan(&x[0], &x[1], &x[2], &x[3], &x[4]).unwrap();
        let e64 = max_abs_diff(&got, &want);
        assert!(
            e64 <= 1e-12,
            "f64 ({b},{d},{n},{l}): max abs diff {e64:.2e}"
        );
        // f32: same (f32-rounded) inputs, compared with the f64 loop.
        let x32: Vec<Tensor> = x.iter().map(|t| t.to_dtype(DType::F32).unwrap()).collect();
        let x32_64: Vec<Tensor> = x32
            .iter()
            .map(|t| t.to_dtype(DType::F64).unwrap())
            .collect();
        let got32 = scan(&x32, 64).unwrap();
        assert_eq!(got32.dtype(), DType::F32);
        let e32 = max_abs_diff(&got32, &scan_naive(&x32_64));
        assert!(e32 <= 2e-5, "f32 ({b},{d},{n},{l}): max abs diff {e32:.2e}");
        println!("scan forward ({b},{d},{n},{l}): f64 {e64:.2e}, f32 {e32:.2e}");
    }
}

#[test]
fn scan_finite_difference_all_inputs() {
    // L = 11 with chunk 4: three checkpoint chunks, the last one partial.
    for chunk in [4, 64] {
        let x = scan_inputs(2, 2, 3, 4, 11);
        let vars: Vec<(String, Var)> = ["u", "delta", "A", "Bm", "Cm"]
            .iter()
            .zip(&x)
            .map(|(n, t)| (n.to_string(), Var::from_tensor(t).unwrap()))
            .collect();
        let loss = || {
            let ts: Vec<Tensor> = vars.iter().map(|(_, v)| v.as_tensor().clone()).collect();
            weighted_sum(&scan(&ts, chunk).unwrap())
        };
        fd_check(&format!("scan chunk {chunk}"), &vars, &loss, 1e-6, 1e-8);
    }
}

/// Gradients of `sum(f(x) * R)` for each of the five inputs.
fn scan_grads(x: &[Tensor], f: &dyn Fn(&[Tensor]) -> Tensor) -> (Tensor, Vec<Tensor>) {
    let vars: Vec<Var> = x.iter().map(|t| Var::from_tensor(t).unwrap()).collect();
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let y = f(&ts);
    let g = weighted_sum(&y).backward().unwrap();
    let grads = ts.iter().map(|t| g.get(t).unwrap().clone()).collect();
    (y, grads)
}

#[test]
fn scan_gradients_match_composed_ops_across_chunks() {
    // L = 70 > the default chunk (64): two chunks, the second partial.
    let x = scan_inputs(3, 2, 5, 3, 70);
    let (y_ref, g_ref) = scan_grads(&x, &scan_composed);
    let (y, g) = scan_grads(&x, &|t| scan(t, ops::SCAN_CHUNK).unwrap());
    let mut worst = max_abs_diff(&y, &y_ref);
    for (a, b) in g.iter().zip(&g_ref) {
        worst = worst.max(max_abs_diff(a, b));
    }
    assert!(
        worst <= 1e-11,
        "scan vs composed ops: max abs diff {worst:.2e}"
    );
    println!("scan vs composed candle ops (values and 5 gradients): {worst:.2e}");
    // The checkpoint interval does not change a single bit.
    for chunk in [1, 3, 7, 70, 1000] {
        let (_, gc) = scan_grads(&x, &|t| scan(t, chunk).unwrap());
        for (a, b) in gc.iter().zip(&g) {
            assert_eq!(bits(a), bits(b), "chunk {chunk} changed the gradients");
        }
    }
    // f32 kernels against the f64 ones.
    let x32: Vec<Tensor> = x.iter().map(|t| t.to_dtype(DType::F32).unwrap()).collect();
    let (_, g32) = scan_grads(&x32, &|t| scan(t, 16).unwrap());
    let mut worst32 = 0f64;
    for (a, b) in g32.iter().zip(&g) {
        let scale = flat(b).iter().fold(1.0f64, |m, v| m.max(v.abs()));
        worst32 = worst32.max(max_abs_diff(&a.to_dtype(DType::F64).unwrap(), b) / scale);
    }
    assert!(
        worst32 <= 1e-4,
        "f32 gradients: relative diff {worst32:.2e}"
    );
    println!("scan f32 gradients vs f64: {worst32:.2e} (relative to max |grad|)");
}

#[test]
fn scan_bit_identical_across_thread_counts() {
    let run = |x: &[Tensor]| {
        let (y, g) = scan_grads(x, &|t| scan(t, 16).unwrap());
        let mut all = vec![bits(&y)];
        all.extend(g.iter().map(bits));
        all
    };
    for (b, d) in [(1, 37), (3, 11), (40, 2)] {
        for dtype in [DType::F64, DType::F32] {
            let x: Vec<Tensor> = scan_inputs(4, b, d, 5, 50)
                .iter()
                .map(|t| t.to_dtype(dtype).unwrap())
                .collect();
            let reference = run(&x);
            for threads in [1, 2, 3, 5] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let got = pool.install(|| run(&x));
                assert!(
                    got == reference,
                    "({b}, {d}) {dtype:?}: {threads} threads gave different bits"
                );
            }
        }
    }
}

#[test]
fn scan_rejects_bad_shapes() {
    let x = scan_inputs(5, 2, 3, 4, 6);
    let bad_a = Tensor::zeros((4, 4), DType::F64, &Device::Cpu).unwrap();
    assert!(ops::selective_scan(&x[0], &x[1], &bad_a, &x[3], &x[4]).is_err());
    let bad_b = Tensor::zeros((2, 3, 6), DType::F64, &Device::Cpu).unwrap();
    assert!(ops::selective_scan(&x[0], &x[1], &x[2], &bad_b, &x[4]).is_err());
    let bad_delta = x[1].to_dtype(DType::F32).unwrap();
    assert!(ops::selective_scan(&x[0], &bad_delta, &x[2], &x[3], &x[4]).is_err());
    assert!(scan(&x, 0).is_err());
}

// ---------------------------------------------------------------- mixer and backbone

fn tiny(bidirectional: bool, weight_tie: bool, rc: bool) -> Config {
    Config {
        d_model: 4,
        n_layer: 2,
        d_state: 2,
        d_conv: 3,
        expand: 2,
        dt_rank: 0,
        bidirectional,
        weight_tie,
        rc_equivariant: rc,
        dropout: 0.0,
    }
}

fn sorted_vars(map: &VarMap) -> Vec<(String, Var)> {
    let d = map.data().lock().unwrap();
    let mut v: Vec<_> = d.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn random_ids(seed: u64, b: usize, l: usize, vocab: u32) -> Tensor {
    let mut r = rng(seed);
    let v: Vec<u32> = (0..b * l).map(|_| r.random_range(0..vocab)).collect();
    Tensor::from_vec(v, (b, l), &Device::Cpu).unwrap()
}

fn build(cfg: &Config, seed: u64) -> (VarMap, Mamba) {
    let map = VarMap::new();
    let vb = SeededInit::builder(&map, seed, DType::F64, &Device::Cpu);
    let m = Mamba::new(cfg, 10, vb.clone(), vb).unwrap();
    (map, m)
}

fn run(m: &Mamba, ids: &Tensor) -> Tensor {
    let mut r = rng(0);
    let mut ctx = Ctx {
        train: false,
        rng: &mut r,
    };
    m.forward(ids, &mut ctx).unwrap()
}

/// Move the parameters mamba_ssm initialises to constants (norm gains, D) off them.
fn perturb(map: &VarMap, seed: u64) {
    let mut r = rng(seed);
    for (name, var) in sorted_vars(map) {
        if name.ends_with("norm.weight") || name.ends_with("norm_f.weight") || name.ends_with(".D")
        {
            let noise = uniform(&mut r, var.dims(), -0.3, 0.3);
            var.set(&(var.as_tensor() + noise).unwrap()).unwrap();
        }
    }
}

#[test]
fn mixer_finite_difference() {
    for (bi, tie) in [(false, true), (true, true), (true, false)] {
        let cfg = Config {
            d_conv: 4,
            ..tiny(bi, tie, false)
        };
        let map = VarMap::new();
        let vb = SeededInit::builder(&map, 7, DType::F64, &Device::Cpu);
        let mixer = Mixer::load(&vb.pp("layers.0"), &cfg).unwrap();
        perturb(&map, 8);
        let mut vars = sorted_vars(&map);
        let x = Var::from_tensor(&uniform(&mut rng(9), &[2, 6, 4], -1.0, 1.0)).unwrap();
        vars.push(("x".into(), x.clone()));
        let loss = || weighted_sum(&mixer.forward(x.as_tensor()).unwrap());
        let expect_vars = if !bi {
            9
        } else if tie {
            16
        } else {
            18
        };
        assert_eq!(vars.len(), expect_vars + 1, "parameter count");
        fd_check(
            &format!("mixer bidirectional={bi} tie={tie}"),
            &vars,
            &loss,
            1e-6,
            1e-8,
        );
    }
}

/// A mixer against the recurrence written as plain loops over its own weights.
#[test]
fn mixer_matches_plain_composition() {
    let cfg = Config {
        d_model: 3,
        d_state: 2,
        d_conv: 3,
        expand: 2,
        bidirectional: false,
        ..Config::default()
    };
    let map = VarMap::new();
    let vb = SeededInit::builder(&map, 11, DType::F64, &Device::Cpu);
    let mixer = Mixer::load(&vb.pp("l"), &cfg).unwrap();
    perturb(&map, 12);
    let w: HashMap<String, Vec<f64>> = sorted_vars(&map)
        .into_iter()
        .map(|(k, v)| {
            (
                k.trim_start_matches("l.mixer.").to_string(),
                flat(v.as_tensor()),
            )
        })
        .collect();
    let (bsz, l, dm, di, n, k) = (2usize, 9usize, 3usize, 6usize, 2usize, 3usize);
    let r = cfg.resolved_dt_rank();
    let x = uniform(&mut rng(13), &[bsz, l, dm], -1.0, 1.0);
    let got = flat(&mixer.forward(&x).unwrap());
    let xv = flat(&x);
    let lin = |w: &[f64], inp: &[f64], o: usize| -> Vec<f64> {
        let i = inp.len();
        (0..o)
            .map(|r| (0..i).map(|c| w[r * i + c] * inp[c]).sum())
            .collect()
    };
    let silu = |v: f64| v / (1.0 + (-v).exp());
    let softplus = |v: f64| (1.0 + v.exp()).ln();
    let mut want = vec![0.0; bsz * l * dm];
    for b in 0..bsz {
        let xz: Vec<Vec<f64>> = (0..l)
            .map(|t| lin(&w["in_proj.weight"], &xv[(b * l + t) * dm..][..dm], 2 * di))
            .collect();
        // Causal depthwise conv + SiLU.
        let xc: Vec<Vec<f64>> = (0..l)
            .map(|t| {
                (0..di)
                    .map(|c| {
                        let mut s = w["conv1d.bias"][c];
                        for j in 0..k {
                            let src = t as isize - (k - 1 - j) as isize;
                            if src >= 0 {
                                s += w["conv1d.weight"][c * k + j] * xz[src as usize][c];
                            }
                        }
                        silu(s)
                    })
                    .collect()
            })
            .collect();
        let mut h = vec![vec![0.0; n]; di];
        for t in 0..l {
            let dbl = lin(&w["x_proj.weight"], &xc[t], r + 2 * n);
            let dt = lin(&w["dt_proj.weight"], &dbl[..r], di);
            let mut y = vec![0.0; di];
            for c in 0..di {
                let delta = softplus(dt[c] + w["dt_proj.bias"][c]);
                let mut acc = 0.0;
                for s in 0..n {
                    let a = -w["A_log"][c * n + s].exp();
                    h[c][s] = (delta * a).exp() * h[c][s] + delta * dbl[r + s] * xc[t][c];
                    acc += dbl[r + n + s] * h[c][s];
                }
                y[c] = (acc + xc[t][c] * w["D"][c]) * silu(xz[t][di + c]);
            }
            let o = lin(&w["out_proj.weight"], &y, dm);
            want[(b * l + t) * dm..][..dm].copy_from_slice(&o);
        }
    }
    let err = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(err <= 1e-12, "mixer vs plain loops: {err:.2e}");
    println!("mixer vs plain loops: max abs diff {err:.2e}");
}

#[test]
fn backbone_finite_difference() {
    for (bi, tie, rc) in [
        (false, true, false),
        (true, true, false),
        (true, false, false),
        (true, true, true),
        (false, true, true),
    ] {
        let cfg = tiny(bi, tie, rc);
        let (map, m) = build(&cfg, 21);
        perturb(&map, 22);
        let ids = random_ids(23, 2, 6, 10);
        let vars = sorted_vars(&map);
        let loss = || weighted_sum(&run(&m, &ids));
        fd_check(
            &format!("backbone bidirectional={bi} tie={tie} rc={rc}"),
            &vars,
            &loss,
            1e-6,
            1e-8,
        );
    }
}

#[test]
fn backbone_shapes_and_names() {
    let (map, m) = build(&tiny(true, true, false), 1);
    let ids = random_ids(2, 3, 7, 10);
    assert_eq!(run(&m, &ids).dims(), &[3, 4, 7]);
    assert_eq!((m.out_channels(), m.out_len(7)), (4, 7));
    let names: Vec<String> = sorted_vars(&map).into_iter().map(|(k, _)| k).collect();
    for want in [
        "embed.weight",
        "norm_f.weight",
        "layers.0.norm.weight",
        "layers.1.mixer.in_proj.weight",
        "layers.1.mixer.out_proj.weight",
        "layers.1.mixer.x_proj.weight",
        "layers.1.mixer.conv1d.weight",
        "layers.1.mixer.conv1d.bias",
        "layers.1.mixer.dt_proj.weight",
        "layers.1.mixer.dt_proj.bias",
        "layers.1.mixer.A_log",
        "layers.1.mixer.D",
        "layers.1.mixer_rev.A_log",
        "layers.1.mixer_rev.dt_proj.bias",
    ] {
        assert!(names.iter().any(|n| n == want), "missing weight {want}");
    }
    assert!(!names.iter().any(|n| n.contains("mixer_rev.in_proj")));
    // mamba_ssm initialisation of A_log and of the delta bias.
    let vars: HashMap<String, Var> = sorted_vars(&map).into_iter().collect();
    let a_log = flat(vars["layers.0.mixer.A_log"].as_tensor());
    assert!((a_log[1] - 2f64.ln()).abs() < 1e-15 && a_log[0] == 0.0 && a_log[2] == 0.0);
    for b in flat(vars["layers.0.mixer.dt_proj.bias"].as_tensor()) {
        let dt = (1.0 + b.exp()).ln();
        assert!(
            (1e-3 - 1e-12..=0.1 + 1e-12).contains(&dt),
            "initial dt {dt}"
        );
    }
    let (_, rc) = build(&tiny(false, true, true), 1);
    assert_eq!(run(&rc, &ids).dims(), &[3, 8, 7]);
    assert_eq!(rc.out_channels(), 8);
}

#[test]
fn unidirectional_backbone_is_causal() {
    let (map, m) = build(&tiny(false, true, false), 31);
    perturb(&map, 32);
    let ids = random_ids(33, 2, 12, 10);
    let base = flat(&run(&m, &ids).transpose(1, 2).unwrap().contiguous().unwrap());
    let c = 4; // channels
    for t in [0, 5, 11] {
        let mut v = ids.flatten_all().unwrap().to_vec1::<u32>().unwrap();
        v[t] = (v[t] + 3) % 10; // sequence 0
        let ids2 = Tensor::from_vec(v, (2, 12), &Device::Cpu).unwrap();
        let out = flat(
            &run(&m, &ids2)
                .transpose(1, 2)
                .unwrap()
                .contiguous()
                .unwrap(),
        );
        for p in 0..12 {
            let d = (0..c)
                .map(|ch| (out[p * c + ch] - base[p * c + ch]).abs())
                .fold(0.0, f64::max);
            if p < t {
                assert!(
                    d <= 1e-12,
                    "position {p} changed ({d:.2e}) after editing {t}"
                );
            } else if p == t {
                assert!(d > 1e-6, "position {t} did not change");
            }
        }
        // The second sequence is untouched.
        let d2 = out[12 * c..]
            .iter()
            .zip(&base[12 * c..])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(d2 <= 1e-12, "other batch element changed ({d2:.2e})");
    }
    // The bidirectional model does see the future.
    let (_, bi) = build(&tiny(true, true, false), 31);
    let mut v = ids.flatten_all().unwrap().to_vec1::<u32>().unwrap();
    v[11] = (v[11] + 3) % 10;
    let ids2 = Tensor::from_vec(v, (2, 12), &Device::Cpu).unwrap();
    let d = max_abs_diff(
        &run(&bi, &ids).narrow(2, 0, 1).unwrap(),
        &run(&bi, &ids2).narrow(2, 0, 1).unwrap(),
    );
    assert!(d > 1e-6, "bidirectional position 0 ignores the last token");
}

fn reverse_complement(ids: &Tensor) -> Tensor {
    let (b, l) = ids.dims2().unwrap();
    let v = ids.flatten_all().unwrap().to_vec1::<u32>().unwrap();
    let mut out = vec![0u32; b * l];
    for bi in 0..b {
        for t in 0..l {
            out[bi * l + t] = COMPLEMENT[v[bi * l + l - 1 - t] as usize];
        }
    }
    Tensor::from_vec(out, (b, l), &Device::Cpu).unwrap()
}

#[test]
fn rc_equivariance() {
    for bi in [false, true] {
        let cfg = Config {
            d_model: 6,
            ..tiny(bi, true, true)
        };
        let (map, m) = build(&cfg, 41);
        perturb(&map, 42);
        let ids = random_ids(43, 3, 17, 10);
        let y = run(&m, &ids);
        assert_eq!(y.dims(), &[3, 12, 17]);
        let y_rc = run(&m, &reverse_complement(&ids));
        let want = mamba::flip(&mamba::flip(&y, 1).unwrap(), 2).unwrap();
        let err = max_abs_diff(&y_rc, &want);
        assert!(
            err <= 1e-9,
            "bidirectional={bi}: RC equivariance error {err:.2e}"
        );
        // Not trivially symmetric: the output is not itself RC-invariant.
        assert!(max_abs_diff(&y_rc, &y) > 1e-3);
        println!("RC equivariance bidirectional={bi}: max abs diff {err:.2e}");
    }
}

#[test]
fn bad_configs_are_input_errors() {
    let vb = VarBuilder::zeros(DType::F64, &Device::Cpu);
    let cases: Vec<(Config, usize, &str)> = vec![
        (
            Config {
                d_model: 0,
                ..Config::default()
            },
            10,
            "d_model",
        ),
        (
            Config {
                n_layer: 0,
                ..Config::default()
            },
            10,
            "n_layer",
        ),
        (
            Config {
                d_state: 0,
                ..Config::default()
            },
            10,
            "d_state",
        ),
        (
            Config {
                d_conv: 0,
                ..Config::default()
            },
            10,
            "d_conv",
        ),
        (
            Config {
                expand: 0,
                ..Config::default()
            },
            10,
            "expand",
        ),
        (
            Config {
                dropout: 1.0,
                ..Config::default()
            },
            10,
            "dropout",
        ),
        (Config::default(), 0, "vocabulary"),
        (
            Config {
                rc_equivariant: true,
                ..Config::default()
            },
            4101,
            "rc_equivariant",
        ),
    ];
    for (cfg, vocab, word) in cases {
        match Mamba::new(&cfg, vocab, vb.clone(), vb.clone()) {
            Err(Error::Input(msg)) => {
                assert!(msg.contains(word), "message {msg:?} should mention {word}");
                assert!(!msg.contains('\n'), "message {msg:?} is not one line");
            }
            Err(e) => panic!("{word}: expected an input error, got {e}"),
            Ok(_) => panic!("{word}: config accepted"),
        }
    }
    // Defaults are valid, and serde fills missing fields with them.
    let cfg: Config = serde_json::from_str(r#"{"n_layer": 2}"#).unwrap();
    assert_eq!(
        cfg,
        Config {
            n_layer: 2,
            ..Config::default()
        }
    );
    assert!(Config::default().validate(10).is_ok());
    assert_eq!(Config::default().resolved_dt_rank(), 4);
}

#[test]
fn dropout_only_in_training() {
    let cfg = Config {
        dropout: 0.5,
        ..tiny(true, true, false)
    };
    let (_, m) = build(&cfg, 51);
    let ids = random_ids(52, 2, 8, 10);
    let eval = run(&m, &ids);
    assert_eq!(bits(&eval), bits(&run(&m, &ids)));
    let mut r = rng(1);
    let mut ctx = Ctx {
        train: true,
        rng: &mut r,
    };
    let train = m.forward(&ids, &mut ctx).unwrap();
    assert!(max_abs_diff(&train, &eval) > 1e-6);
}

// ---------------------------------------------------------------- PyTorch reference

#[test]
fn matches_pytorch_reference() {
    if !std::path::Path::new(FIXTURE).exists() {
        println!("skipping: {FIXTURE} missing (run /usr/bin/python3 scripts/mamba_ref.py)");
        return;
    }
    let all = candle_core::safetensors::load(FIXTURE, &Device::Cpu).unwrap();
    for (prefix, bi, tie, rc) in [
        ("uni.", false, true, false),
        ("bi.", true, true, false),
        ("bi_untied.", true, false, false),
        ("rc_bi.", true, true, true),
    ] {
        let mut weights = HashMap::new();
        for (k, v) in &all {
            if let Some(name) = k.strip_prefix(prefix) {
                if name != "ids" && name != "out" {
                    weights.insert(name.to_string(), v.clone());
                }
            }
        }
        let cfg = Config {
            d_model: 8,
            n_layer: 2,
            d_state: 4,
            d_conv: 4,
            expand: 2,
            dt_rank: 0,
            bidirectional: bi,
            weight_tie: tie,
            rc_equivariant: rc,
            dropout: 0.0,
        };
        let n_weights = weights.len();
        let vb = VarBuilder::from_tensors(weights, DType::F64, &Device::Cpu);
        let m = Mamba::new(&cfg, 10, vb.clone(), vb).unwrap();
        let ids = all[&format!("{prefix}ids")].to_dtype(DType::U32).unwrap();
        let want = &all[&format!("{prefix}out")];
        let got = run(&m, &ids);
        let err = max_abs_diff(&got, want);
        assert!(err <= 1e-4, "{prefix}: max abs diff {err:.2e} vs PyTorch");
        // f32 model from the same weights.
        let w32: HashMap<String, Tensor> = all
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix(prefix)
                    .filter(|n| *n != "ids" && *n != "out")
                    .map(|n| (n.to_string(), v.to_dtype(DType::F32).unwrap()))
            })
            .collect();
        let vb32 = VarBuilder::from_tensors(w32, DType::F32, &Device::Cpu);
        let m32 = Mamba::new(&cfg, 10, vb32.clone(), vb32).unwrap();
        let err32 = max_abs_diff(&run(&m32, &ids), want);
        assert!(
            err32 <= 1e-4,
            "{prefix} f32: max abs diff {err32:.2e} vs PyTorch"
        );
        println!(
            "PyTorch reference {prefix} ({n_weights} weights, out {:?}): f64 {err:.2e}, f32 {err32:.2e}",
            want.dims()
        );
    }
}
