//! Fused ops (embedding + convolution, training-mode batch norm) equal their plain
//! compositions, in values and gradients, and match central differences.

use candle_core::{DType, Device, Tensor, Var};
use genolm::ops::{conv1d, embed_conv1d};

/// Largest absolute element-wise difference of two f64 tensors.
fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

#[test]
fn embed_conv_matches_embedding_then_conv() {
    let dev = Device::Cpu;
    for (pad, dil, k) in [(0, 1, 8), (3, 1, 7), (2, 2, 3), (0, 3, 2)] {
        let (b, l, v, d, o) = (3, 20, 10, 5, 4);
        let ids: Vec<u32> = (0..b * l).map(|i| ((i * 7 + i / 3) % v) as u32).collect();
        let ids = Tensor::from_vec(ids, (b, l), &dev).unwrap();
        let e = Var::randn(0f64, 1.0, (v, d), &dev).unwrap();
        let w = Var::randn(0f64, 1.0, (o, d, k), &dev).unwrap();
        let bias = Var::randn(0f64, 1.0, o, &dev).unwrap();
        let fused = embed_conv1d(&ids, &e, &w, &bias, pad, dil).unwrap();
        let emb = e
            .as_tensor()
            .index_select(&ids.flatten_all().unwrap(), 0)
            .unwrap()
            .reshape((b, l, d))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .contiguous()
            .unwrap();
        let plain = conv1d(&emb, &w, Some(&bias), 1, pad, dil, 1).unwrap();
        assert_eq!(fused.dims(), plain.dims());
        assert!(max_abs_diff(&fused, &plain) < 1e-10);
        // Same gradients for embedding, kernel and bias under a non-trivial loss.
        let probe = Tensor::randn(0f64, 1.0, fused.dims(), &dev).unwrap();
        let gf = (&fused * &probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let gp = (&plain * &probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for var in [&e, &w, &bias] {
            let a = gf.get(var.as_tensor()).unwrap();
            let c = gp.get(var.as_tensor()).unwrap();
            let diff = max_abs_diff(a, c);
            assert!(
                diff < 1e-9,
                "pad {pad} dil {dil} k {k}: gradient differs by {diff}"
            );
        }
    }
    let ids = Tensor::from_vec(vec![0u32, 11], (1, 2), &dev).unwrap();
    let e = Tensor::zeros((10, 2), DType::F32, &dev).unwrap();
    let w = Tensor::zeros((1, 2, 1), DType::F32, &dev).unwrap();
    let b = Tensor::zeros(1, DType::F32, &dev).unwrap();
    assert!(
        embed_conv1d(&ids, &e, &w, &b, 0, 1).is_err(),
        "out-of-range id must be an error"
    );
}

#[test]
fn fused_batch_norm_matches_composition_and_finite_differences() {
    use genolm::ops::batch_norm_train;
    let dev = Device::Cpu;
    let x = Var::randn(0.5f64, 2.0, (4, 3, 7), &dev).unwrap();
    let gamma = Var::randn(1f64, 0.3, 3, &dev).unwrap();
    let beta = Var::randn(0f64, 0.3, 3, &dev).unwrap();
    let eps = 1e-5;
    let (y, mean, var) = batch_norm_train(&x, &gamma, &beta, eps).unwrap();
    // Plain composition.
    let m = x.as_tensor().mean_keepdim(&[0usize, 2][..]).unwrap();
    let xc = x.as_tensor().broadcast_sub(&m).unwrap();
    let v = xc.sqr().unwrap().mean_keepdim(&[0usize, 2][..]).unwrap();
    let xn = xc
        .broadcast_div(&(v.clone() + eps).unwrap().sqrt().unwrap())
        .unwrap();
    let reference = xn
        .broadcast_mul(&gamma.as_tensor().reshape((1, 3, 1)).unwrap())
        .unwrap()
        .broadcast_add(&beta.as_tensor().reshape((1, 3, 1)).unwrap())
        .unwrap();
    let diff = max_abs_diff(&y, &reference);
    assert!(diff < 1e-12, "{diff}");
    let mv = m.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let vv = v.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    for c in 0..3 {
        assert!((mean[c] - mv[c]).abs() < 1e-12 && (var[c] - vv[c]).abs() < 1e-12);
    }
    // Gradients: fused vs composed, and vs central differences, under a non-trivial loss.
    let probe = Tensor::randn(0f64, 1.0, (4, 3, 7), &dev).unwrap();
    let g1 = (&y * &probe)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let g2 = (&reference * &probe)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    for var in [&x, &gamma, &beta] {
        let a = g1.get(var.as_tensor()).unwrap();
        let b = g2.get(var.as_tensor()).unwrap();
        let d = max_abs_diff(a, b);
        assert!(d < 1e-10, "gradient differs by {d}");
    }
    let loss = |xv: &Tensor| {
        let (y, _, _) = batch_norm_train(xv, &gamma, &beta, eps).unwrap();
        (y * &probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    let base = x
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let gx = g1
        .get(x.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    for i in [0usize, 17, 40, 83] {
        let at = |d: f64| {
            let mut v = base.clone();
            v[i] += d;
            loss(&Tensor::from_vec(v, (4, 3, 7), &dev).unwrap())
        };
        let num = (at(1e-6) - at(-1e-6)) / 2e-6;
        assert!(
            (num - gx[i]).abs() < 1e-6 * num.abs().max(1.0),
            "x[{i}]: {num} vs {}",
            gx[i]
        );
    }
}

type Act = fn(&Tensor) -> candle_core::Result<Tensor>;

/// Each fused activation equals its composition (values and gradients, f64, values spread
/// over ±9 so the tails are reached) and its gradient matches central differences.
#[test]
fn fused_activations_match_their_compositions_and_central_differences() {
    use genolm::ops;
    let dev = Device::Cpu;
    let pairs: [(&str, Act, Act); 3] = [
        ("gelu_tanh", ops::gelu_fused, ops::gelu_tanh),
        ("silu", ops::silu_fused, ops::silu),
        ("softplus", ops::softplus_fused, ops::softplus),
    ];
    for (name, fused, composed) in pairs {
        let x = Var::randn(0f64, 3.0, (5, 40), &dev).unwrap();
        let a = fused(&x).unwrap();
        let b = composed(&x).unwrap();
        let d = max_abs_diff(&a, &b);
        assert!(d < 1e-12, "{name}: values differ by {d}");
        let probe = Tensor::randn(0f64, 1.0, (5, 40), &dev).unwrap();
        let loss = |t: &Tensor| (t * &probe).unwrap().sum_all().unwrap();
        let ga = loss(&a).backward().unwrap();
        let gb = loss(&b).backward().unwrap();
        let ga = ga.get(&x).unwrap();
        let d = max_abs_diff(ga, gb.get(&x).unwrap());
        assert!(d < 1e-10, "{name}: gradient differs by {d}");
        let g: Vec<f64> = ga.flatten_all().unwrap().to_vec1().unwrap();
        let base: Vec<f64> = x.flatten_all().unwrap().to_vec1().unwrap();
        for i in [0, 17, 63, 128, 199] {
            let at = |h: f64| {
                let mut v = base.clone();
                v[i] += h;
                let t = Tensor::from_vec(v, (5, 40), &dev).unwrap();
                loss(&fused(&t).unwrap()).to_scalar::<f64>().unwrap()
            };
            let num = (at(1e-6) - at(-1e-6)) / 2e-6;
            assert!(
                (num - g[i]).abs() < 1e-7 * num.abs().max(1.0),
                "{name} x[{i}]: {num} vs {}",
                g[i]
            );
        }
    }
    // f32 agrees with f64 to f32 precision, including far tails (no overflow to NaN).
    let v: Vec<f64> = vec![-200.0, -30.0, -1e-3, 0.0, 1e-3, 0.7, 30.0, 200.0];
    let x64 = Tensor::new(v.as_slice(), &dev).unwrap();
    let x32 = x64.to_dtype(DType::F32).unwrap();
    for (name, fused, _) in pairs {
        let a: Vec<f64> = fused(&x64).unwrap().to_vec1().unwrap();
        let b: Vec<f32> = fused(&x32).unwrap().to_vec1().unwrap();
        for (p, q) in a.iter().zip(&b) {
            assert!(q.is_finite(), "{name}: f32 gave {q}");
            assert!(
                (p - *q as f64).abs() <= 1e-6 * p.abs().max(1.0),
                "{name}: {p} vs {q}"
            );
        }
    }
}

/// Per-channel add and multiply give the bits of candle's broadcast ops, values and both
/// gradients, in f32 (the parameter gradient sums in candle's order), and match central
/// differences in f64.
#[test]
fn channel_ops_equal_broadcast_ops_bit_for_bit_and_central_differences() {
    use genolm::ops::{channel_add, channel_mul};
    let dev = Device::Cpu;
    let bits = |t: &Tensor| -> Vec<u32> {
        let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        v.iter().map(|x| x.to_bits()).collect()
    };
    let shapes: [(&[usize], usize); 6] = [
        (&[7, 33], 1),
        (&[4, 5, 6], 1),
        (&[3, 4, 130], 2),
        (&[2, 3, 4, 5], 2),
        (&[64, 300, 16], 2),
        (&[5, 7], 0),
    ];
    for (shape, dim) in shapes {
        let c = shape[dim];
        let mut view = vec![1; shape.len()];
        view[dim] = c;
        for mul in [false, true] {
            let x = Var::randn(0f32, 1.0, shape, &dev).unwrap();
            let p = Var::randn(0f32, 1.0, c, &dev).unwrap();
            let probe = Tensor::randn(0f32, 1.0, shape, &dev).unwrap();
            let ours = if mul {
                channel_mul(&x, &p, dim).unwrap()
            } else {
                channel_add(&x, &p, dim).unwrap()
            };
            let pv = p.as_tensor().reshape(view.as_slice()).unwrap();
            let theirs = if mul {
                x.broadcast_mul(&pv).unwrap()
            } else {
                x.broadcast_add(&pv).unwrap()
            };
            assert_eq!(bits(&ours), bits(&theirs), "{shape:?} dim {dim} mul {mul}");
            let g1 = (&ours * &probe)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let g2 = (&theirs * &probe)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            for (what, v) in [("x", x.as_tensor()), ("p", p.as_tensor())] {
                assert_eq!(
                    bits(g1.get(v).unwrap()),
                    bits(g2.get(v).unwrap()),
                    "{shape:?} dim {dim} mul {mul}: gradient of {what}"
                );
            }
        }
    }
    // f64 central differences of a non-linear loss through both ops.
    let x = Var::randn(0f64, 1.0, (3, 4, 5), &dev).unwrap();
    let w = Var::randn(0f64, 1.0, 4, &dev).unwrap();
    let b = Var::randn(0f64, 1.0, 4, &dev).unwrap();
    let loss = |x: &Tensor, w: &Tensor, b: &Tensor| {
        channel_add(&channel_mul(x, w, 1).unwrap(), b, 1)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
    };
    let grads = loss(&x, &w, &b).backward().unwrap();
    for (name, var) in [("x", &x), ("w", &w), ("b", &b)] {
        let g: Vec<f64> = grads
            .get(var)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let base: Vec<f64> = var.flatten_all().unwrap().to_vec1().unwrap();
        for i in [0, base.len() / 2, base.len() - 1] {
            let at = |h: f64| {
                let mut v = base.clone();
                v[i] += h;
                let t = Tensor::from_vec(v, var.shape(), &dev).unwrap();
                let (xx, ww, bb) = match name {
                    "x" => (t, w.as_tensor().clone(), b.as_tensor().clone()),
                    "w" => (x.as_tensor().clone(), t, b.as_tensor().clone()),
                    _ => (x.as_tensor().clone(), w.as_tensor().clone(), t),
                };
                loss(&xx, &ww, &bb).to_scalar::<f64>().unwrap()
            };
            let num = (at(1e-6) - at(-1e-6)) / 2e-6;
            assert!(
                (num - g[i]).abs() < 1e-6 * num.abs().max(1.0),
                "{name}[{i}]: {num} vs {}",
                g[i]
            );
        }
    }
    // A parameter that does not fit the dimension is an error, not a panic.
    let x = Tensor::zeros((2, 3), DType::F32, &dev).unwrap();
    let p = Tensor::zeros(4, DType::F32, &dev).unwrap();
    assert!(channel_add(&x, &p, 1).is_err());
    assert!(channel_mul(&x, &p, 2).is_err());
}

/// Half precision takes the composed path of every fused activation and channel op (no error).
#[test]
fn fused_ops_fall_back_to_compositions_in_half_precision() {
    use genolm::ops;
    let dev = Device::Cpu;
    let x = Tensor::randn(0f32, 1.0, (2, 3, 4), &dev).unwrap();
    let p = Tensor::randn(0f32, 1.0, 3, &dev).unwrap();
    let (xh, ph) = (
        x.to_dtype(DType::F16).unwrap(),
        p.to_dtype(DType::F16).unwrap(),
    );
    let pairs: [(&str, Act, Act); 3] = [
        ("gelu_tanh", ops::gelu_fused, ops::gelu_tanh),
        ("silu", ops::silu_fused, ops::silu),
        ("softplus", ops::softplus_fused, ops::softplus),
    ];
    for (name, fused, composed) in pairs {
        let a = fused(&xh).unwrap().to_dtype(DType::F32).unwrap();
        let b = composed(&xh).unwrap().to_dtype(DType::F32).unwrap();
        let d: f32 = (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert_eq!(d, 0.0, "{name}");
    }
    let a = ops::channel_add(&xh, &ph, 1).unwrap();
    let m = ops::channel_mul(&xh, &ph, 1).unwrap();
    assert_eq!(a.dtype(), DType::F16);
    assert_eq!(m.dims(), &[2, 3, 4]);
}
