//! RoPE, block-sparse attention and the transformer backbone: references (naive loops, dense
//! attention under the pattern's dense mask, a PyTorch fixture) and finite-difference gradient
//! checks (f64).
//!
//! Gradient checks: loss = sum(f(inputs) * R) for a fixed random R; every element of every
//! input/parameter is perturbed by +-1e-6 (central differences) and compared with the gradient
//! from `backward()`: |analytic - numeric| <= 1e-6 * max(|analytic|, |numeric|) + 1e-8.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use genolm::models::transformer::{Block, Config, Transformer};
use genolm::models::{Backbone, Ctx, Weights};
use genolm::ops::{self, BlockPattern, Rope, SparseAttentionConfig, MASK_VALUE};
use rand_chacha::ChaCha8Rng;

mod common;
use common::{flat, grad_check, rand_t, rng};

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    flat(a)
        .iter()
        .zip(flat(b))
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn sparse_cfg(
    block: usize,
    window: usize,
    global: usize,
    random: usize,
    causal: bool,
) -> SparseAttentionConfig {
    SparseAttentionConfig {
        block,
        window,
        global_blocks: global,
        random_blocks: random,
        causal,
        dense: false,
    }
}

/// Additive `(L, L)` mask built by plain loops from the pattern's public key-block lists.
fn loop_mask(p: &BlockPattern) -> Tensor {
    let (l, bs) = (p.len(), p.block());
    let mut m = vec![MASK_VALUE; l * l];
    for q in 0..l {
        for k in 0..l {
            if p.causal() && k > q {
                continue;
            }
            let ok = match p.key_blocks(q / bs) {
                None => true,
                Some(row) => row.iter().any(|s| *s == Some(k / bs)),
            };
            if ok {
                m[q * l + k] = 0.0;
            }
        }
    }
    Tensor::from_vec(m, (l, l), &Device::Cpu).unwrap()
}

/// Causal additive `(L, L)` mask by plain loops.
fn causal_mask(l: usize) -> Tensor {
    let m: Vec<f64> = (0..l * l)
        .map(|i| if i % l > i / l { MASK_VALUE } else { 0.0 })
        .collect();
    Tensor::from_vec(m, (l, l), &Device::Cpu).unwrap()
}

fn qkv(seed: u64, b: usize, h: usize, l: usize, d: usize) -> (Tensor, Tensor, Tensor) {
    let mut r = rng(seed);
    (
        rand_t(&mut r, &[b, h, l, d]),
        rand_t(&mut r, &[b, h, l, d]),
        rand_t(&mut r, &[b, h, l, d]),
    )
}

// ---------------------------------------------------------------- RoPE

fn naive_rope(x: &Tensor, offset: usize, theta: f64) -> Vec<f64> {
    let (b, h, l, d) = x.dims4().unwrap();
    let xs = flat(x);
    let half = d / 2;
    let mut out = vec![0.0; xs.len()];
    for bh in 0..b * h {
        for t in 0..l {
            let base = (bh * l + t) * d;
            for i in 0..half {
                let a = (t + offset) as f64 * theta.powf(-2.0 * i as f64 / d as f64);
                let (x1, x2) = (xs[base + i], xs[base + i + half]);
                out[base + i] = x1 * a.cos() - x2 * a.sin();
                out[base + i + half] = x2 * a.cos() + x1 * a.sin();
            }
        }
    }
    out
}

#[test]
fn rope_matches_naive_loop() {
    let mut worst = 0.0f64;
    for &(shape, offset, theta) in &[
        ([2, 3, 7, 8], 0, 10000.0),
        ([1, 2, 5, 4], 3, 10000.0),
        ([2, 1, 9, 6], 11, 500.0),
    ] {
        let x = rand_t(&mut rng(1), &shape);
        let want = naive_rope(&x, offset, theta);
        let got = flat(&ops::rope(&x, offset, theta).unwrap());
        let tables = Rope::new(
            shape[3],
            offset + shape[2] + 4,
            theta,
            DType::F64,
            &Device::Cpu,
        )
        .unwrap();
        let got2 = flat(&tables.apply(&x, offset).unwrap());
        for ((g, g2), w) in got.iter().zip(&got2).zip(&want) {
            worst = worst.max((g - w).abs()).max((g2 - w).abs());
        }
        // f32 agrees with the f64 loop to f32 rounding.
        let got32 = flat(&ops::rope(&x.to_dtype(DType::F32).unwrap(), offset, theta).unwrap());
        let e32 = got32
            .iter()
            .zip(&want)
            .map(|(g, w)| (g - w).abs())
            .fold(0.0, f64::max);
        assert!(e32 < 1e-5, "rope f32: {e32}");
    }
    println!("rope vs naive loop: max abs diff {worst:.2e}");
    assert!(worst < 1e-12, "rope: {worst}");
}

#[test]
fn rope_gradients_match_finite_differences() {
    let x = rand_t(&mut rng(2), &[2, 2, 5, 4]);
    grad_check("rope", &[x], |t| ops::rope(&t[0], 2, 10000.0));
}

// ---------------------------------------------------------------- attention

#[test]
fn full_window_equals_dense_attention() {
    let mut worst = 0.0f64;
    for &l in &[1usize, 5, 16, 20, 37, 48] {
        let (q, k, v) = qkv(10 + l as u64, 2, 3, l, 4);
        let nb = l.div_ceil(8);
        for causal in [false, true] {
            let mask = causal.then(|| causal_mask(l));
            let want = ops::dense_attention(&q, &k, &v, mask.as_ref()).unwrap();
            let mut cfgs = vec![
                SparseAttentionConfig {
                    dense: true,
                    ..sparse_cfg(8, 1, 1, 1, causal)
                },
                sparse_cfg(8, usize::MAX, 1, 1, causal),
            ];
            if nb >= 3 {
                // Window nb - 2 plus one global block covers every key through the gathered
                // (sparse) path; the random slot finds no candidate and is masked.
                cfgs.push(sparse_cfg(8, nb - 2, 1, 1, causal));
            }
            for cfg in cfgs {
                let p = BlockPattern::new(&cfg, l, 0, 0).unwrap();
                // The full-window configs are all dense rows; window nb - 2 is the gathered path.
                assert_eq!(p.slots() > 0, !cfg.dense && nb >= 3 && cfg.window == nb - 2);
                let got = ops::block_sparse_attention(&q, &k, &v, &p).unwrap();
                let e = max_abs_diff(&got, &want);
                assert!(e <= 1e-10, "L {l} {cfg:?}: {e}");
                worst = worst.max(e);
            }
        }
    }
    println!("full window vs dense: max abs diff {worst:.2e}");
}

#[test]
fn sparse_equals_dense_with_pattern_mask() {
    let mut worst = 0.0f64;
    let cases = [(1, 1, 1), (0, 2, 2), (1, 0, 2), (2, 1, 3), (0, 0, 0)];
    for &l in &[37usize, 64, 90, 100] {
        let (q, k, v) = qkv(20 + l as u64, 2, 2, l, 6);
        for &(w, g, r) in &cases {
            for causal in [false, true] {
                let cfg = sparse_cfg(8, w, g, r, causal);
                let p = BlockPattern::new(&cfg, l, 7, 1).unwrap();
                assert!(p.slots() > 0, "L {l} {cfg:?} should be sparse");
                let mask = loop_mask(&p);
                // The library's own dense mask agrees with the plain-loop one.
                let lib_mask = p.dense_mask(DType::F64, &Device::Cpu).unwrap();
                assert_eq!(max_abs_diff(&lib_mask, &mask), 0.0);
                let want = ops::dense_attention(&q, &k, &v, Some(&mask)).unwrap();
                let got = ops::block_sparse_attention(&q, &k, &v, &p).unwrap();
                let e = max_abs_diff(&got, &want);
                assert!(e <= 1e-10, "L {l} {cfg:?}: {e}");
                worst = worst.max(e);
            }
        }
    }
    println!("sparse vs dense under the pattern mask (f64): max abs diff {worst:.2e}");
    // f32.
    let (q, k, v) = qkv(99, 2, 2, 45, 8);
    let to32 = |t: &Tensor| t.to_dtype(DType::F32).unwrap();
    let p = BlockPattern::new(&sparse_cfg(8, 1, 1, 1, false), 45, 3, 0).unwrap();
    let want = ops::dense_attention(&q, &k, &v, Some(&loop_mask(&p))).unwrap();
    let got = ops::block_sparse_attention(&to32(&q), &to32(&k), &to32(&v), &p).unwrap();
    let e = max_abs_diff(&got, &want);
    println!("sparse f32 vs dense f64: max abs diff {e:.2e}");
    assert!(e < 1e-5, "f32: {e}");
}

#[test]
fn block_sparse_attention_gradients_match_finite_differences() {
    for (name, cfg) in [
        ("attn sparse", sparse_cfg(4, 0, 1, 1, false)),
        ("attn sparse causal", sparse_cfg(4, 0, 1, 1, true)),
        ("attn window+random", sparse_cfg(3, 1, 0, 1, false)),
        (
            "attn dense",
            SparseAttentionConfig {
                dense: true,
                ..sparse_cfg(4, 0, 0, 0, false)
            },
        ),
    ] {
        let (q, k, v) = qkv(30, 2, 1, 14, 4);
        let p = BlockPattern::new(&cfg, 14, 5, 0).unwrap();
        grad_check(name, &[q, k, v], |t| {
            ops::block_sparse_attention(&t[0], &t[1], &t[2], &p)
        });
    }
}

#[test]
fn pattern_is_deterministic_and_well_formed() {
    let cfg = sparse_cfg(8, 1, 2, 3, false);
    let a = BlockPattern::new(&cfg, 1000, 42, 3).unwrap();
    let b = BlockPattern::new(&cfg, 1000, 42, 3).unwrap();
    assert_eq!(a, b, "same seed, layer and length give the same pattern");
    assert_ne!(a, BlockPattern::new(&cfg, 1000, 43, 3).unwrap(), "seed");
    assert_ne!(a, BlockPattern::new(&cfg, 1000, 42, 4).unwrap(), "layer");
    // Same number of blocks: same pattern (it is fixed for a given block count).
    let c = BlockPattern::new(&cfg, 999, 42, 3).unwrap();
    assert_eq!(a.key_blocks(10), c.key_blocks(10));
    // Slots per query block do not grow with L (linear cost).
    let big = BlockPattern::new(&cfg, 1 << 16, 0, 0).unwrap();
    assert_eq!(a.slots(), big.slots());
    assert_eq!(a.slots(), 2 + 3 + 3);
    for causal in [false, true] {
        for &(l, w, g, r) in &[(1000, 1, 2, 3), (40, 1, 1, 4), (200, 2, 0, 2)] {
            let cfg = sparse_cfg(8, w, g, r, causal);
            let p = BlockPattern::new(&cfg, l, 9, 0).unwrap();
            let nb = p.n_blocks();
            for qb in 0..nb {
                let Some(row) = p.key_blocks(qb) else {
                    assert!(qb < g, "only global query blocks are dense rows");
                    continue;
                };
                let valid: Vec<usize> = row.iter().flatten().copied().collect();
                let mut dedup = valid.clone();
                dedup.sort_unstable();
                dedup.dedup();
                assert_eq!(dedup.len(), valid.len(), "duplicate block in row {qb}");
                let lo = qb.saturating_sub(w);
                let hi = if causal { qb } else { (qb + w).min(nb - 1) };
                let fixed = |j: usize| j < g || (lo..=hi).contains(&j);
                for j in 0..nb {
                    if fixed(j) {
                        assert!(valid.contains(&j), "row {qb} misses block {j}");
                    }
                }
                let random: Vec<usize> = valid.iter().copied().filter(|&j| !fixed(j)).collect();
                let cands = (0..nb)
                    .filter(|&j| !fixed(j) && (!causal || j < qb))
                    .count();
                assert_eq!(random.len(), r.min(cands), "row {qb}: random blocks");
                if causal {
                    assert!(valid.iter().all(|&j| j <= qb), "row {qb} looks ahead");
                }
            }
        }
    }
}

// ---------------------------------------------------------------- model

fn tiny_cfg(causal: bool) -> Config {
    Config {
        d_model: 8,
        n_layer: 2,
        n_heads: 2,
        mlp_hidden: 8,
        block: 4,
        window: 0,
        global_blocks: 1,
        random_blocks: 1,
        dense: false,
        causal,
        rope_theta: 10000.0,
        dropout: 0.0,
        seed: 3,
    }
}

/// Parameter names and shapes of a block (`prefix` = "" or "layers.{i}.").
fn block_params(cfg: &Config, prefix: &str) -> Vec<(String, Vec<usize>)> {
    let (d, h) = (cfg.d_model, cfg.mlp_hidden_size());
    let mut v = vec![(format!("{prefix}attn_norm.weight"), vec![d])];
    for n in ["q_proj", "k_proj", "v_proj", "o_proj"] {
        v.push((format!("{prefix}attn.{n}.weight"), vec![d, d]));
    }
    v.push((format!("{prefix}mlp_norm.weight"), vec![d]));
    v.push((format!("{prefix}mlp.gate_proj.weight"), vec![h, d]));
    v.push((format!("{prefix}mlp.up_proj.weight"), vec![h, d]));
    v.push((format!("{prefix}mlp.down_proj.weight"), vec![d, h]));
    v
}

fn init_params(names: &[(String, Vec<usize>)], seed: u64) -> Vec<Tensor> {
    let mut r = rng(seed);
    names
        .iter()
        .map(|(n, s)| {
            let t = rand_t(&mut r, s);
            if n.ends_with("norm.weight") || n.ends_with("norm_f.weight") {
                t.affine(0.2, 1.0).unwrap()
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

fn eval_ctx(r: &mut ChaCha8Rng) -> Ctx<'_> {
    Ctx {
        train: false,
        rng: r,
    }
}

#[test]
fn block_gradients_match_finite_differences() {
    for causal in [false, true] {
        let cfg = tiny_cfg(causal);
        let names = block_params(&cfg, "");
        let (b, l) = (2, 11);
        let mut inputs = vec![rand_t(&mut rng(40), &[b, l, cfg.d_model])];
        inputs.extend(init_params(&names, 41));
        let rope = Rope::new(cfg.head_dim(), l, cfg.rope_theta, DType::F64, &Device::Cpu).unwrap();
        let pattern = cfg.pattern(l, 0).unwrap();
        assert!(pattern.slots() > 0);
        let name = if causal { "block causal" } else { "block" };
        grad_check(name, &inputs, |t| {
            let block = Block::new(&cfg, vb_of(&names, &t[1..])).unwrap();
            let mut r = rng(0);
            Ok(block
                .forward(&t[0], &rope, &pattern, &mut eval_ctx(&mut r))
                .unwrap())
        });
    }
}

fn backbone_params(cfg: &Config, vocab: usize) -> Vec<(String, Vec<usize>)> {
    let mut v = vec![("embed.weight".to_string(), vec![vocab, cfg.d_model])];
    for i in 0..cfg.n_layer {
        v.extend(block_params(cfg, &format!("layers.{i}.")));
    }
    v.push(("norm_f.weight".to_string(), vec![cfg.d_model]));
    v
}

#[test]
fn backbone_gradients_match_finite_differences() {
    let vocab = 5;
    for causal in [false, true] {
        let cfg = tiny_cfg(causal);
        let names = backbone_params(&cfg, vocab);
        let params = init_params(&names, 50);
        let ids: Vec<u32> = (0..18).map(|i| (i * 7 + 3) % vocab as u32).collect();
        let ids = Tensor::from_vec(ids, (2, 9), &Device::Cpu).unwrap();
        let name = if causal {
            "backbone causal"
        } else {
            "backbone"
        };
        grad_check(name, &params, |t| {
            let vb = vb_of(&names, t);
            let m = Transformer::new(&cfg, vocab, vb.clone(), vb).unwrap();
            let mut r = rng(0);
            Ok(Backbone::forward(&m, &ids, &mut eval_ctx(&mut r)).unwrap())
        });
    }
}

fn seeded_model(cfg: &Config, vocab: usize, dtype: DType) -> (Weights, Transformer) {
    let w = Weights::new();
    let (p, b) = w.builders(11, dtype, &Device::Cpu);
    let m = Transformer::new(cfg, vocab, p, b).unwrap();
    (w, m)
}

fn run(m: &Transformer, ids: &Tensor) -> Tensor {
    let mut r = rng(0);
    Backbone::forward(m, ids, &mut eval_ctx(&mut r)).unwrap()
}

#[test]
fn causal_backbone_does_not_look_ahead() {
    let cfg = Config {
        d_model: 16,
        n_layer: 2,
        n_heads: 2,
        block: 4,
        causal: true,
        random_blocks: 2,
        ..Config::default()
    };
    let (_w, m) = seeded_model(&cfg, 6, DType::F64);
    let l = 23;
    let base: Vec<u32> = (0..2 * l as u32).map(|i| (i * 5 + 1) % 6).collect();
    let ids = Tensor::from_vec(base.clone(), (2, l), &Device::Cpu).unwrap();
    let out = run(&m, &ids);
    let mut worst = 0.0f64;
    for t in [0usize, 3, 4, 9, 16, 22] {
        let mut changed = base.clone();
        for row in 0..2 {
            changed[row * l + t] = (changed[row * l + t] + 1) % 6;
        }
        let ids2 = Tensor::from_vec(changed, (2, l), &Device::Cpu).unwrap();
        let out2 = run(&m, &ids2);
        if t > 0 {
            let e = max_abs_diff(
                &out.narrow(2, 0, t).unwrap(),
                &out2.narrow(2, 0, t).unwrap(),
            );
            worst = worst.max(e);
            assert!(e <= 1e-12, "t {t}: earlier outputs changed by {e}");
        }
        let after = max_abs_diff(
            &out.narrow(2, t, l - t).unwrap(),
            &out2.narrow(2, t, l - t).unwrap(),
        );
        assert!(after > 1e-6, "t {t}: outputs from t on should change");
    }
    println!("causal backbone: max change before the edited token {worst:.2e}");
    // The non-causal model does look ahead.
    let (_w, m) = seeded_model(
        &Config {
            causal: false,
            ..cfg
        },
        6,
        DType::F64,
    );
    let out = run(&m, &ids);
    let mut changed = base.clone();
    changed[l - 1] = (changed[l - 1] + 1) % 6;
    let out2 = run(
        &m,
        &Tensor::from_vec(changed, (2, l), &Device::Cpu).unwrap(),
    );
    assert!(
        max_abs_diff(
            &out.narrow(2, 0, 1).unwrap(),
            &out2.narrow(2, 0, 1).unwrap()
        ) > 1e-9
    );
}

#[test]
fn bad_configs_give_errors() {
    let good = Config::default();
    for (what, cfg) in [
        (
            "d_model not divisible by n_heads",
            Config {
                d_model: 10,
                n_heads: 3,
                ..good.clone()
            },
        ),
        (
            "odd head size",
            Config {
                d_model: 12,
                n_heads: 4,
                ..good.clone()
            },
        ),
        (
            "block 0",
            Config {
                block: 0,
                ..good.clone()
            },
        ),
        (
            "zero heads",
            Config {
                n_heads: 0,
                ..good.clone()
            },
        ),
        (
            "dropout 1",
            Config {
                dropout: 1.0,
                ..good.clone()
            },
        ),
        (
            "rope_theta 0",
            Config {
                rope_theta: 0.0,
                ..good.clone()
            },
        ),
    ] {
        let w = Weights::new();
        let (p, b) = w.builders(0, DType::F32, &Device::Cpu);
        let err = Transformer::new(&cfg, 8, p, b)
            .err()
            .unwrap_or_else(|| panic!("{what}: expected an error"));
        let msg = err.to_string();
        assert!(!msg.contains('\n'), "{what}: one line: {msg}");
        assert_eq!(err.exit_code(), 2, "{what}: input error: {msg}");
        println!("{what}: {msg}");
    }
    // Ops-level errors.
    assert!(BlockPattern::new(&sparse_cfg(0, 1, 1, 1, false), 10, 0, 0).is_err());
    assert!(BlockPattern::new(&sparse_cfg(4, 1, 1, 1, false), 0, 0, 0).is_err());
    assert!(Rope::new(5, 10, 10000.0, DType::F64, &Device::Cpu).is_err());
    let x = rand_t(&mut rng(1), &[1, 1, 4, 3]);
    assert!(ops::rope(&x, 0, 10000.0).is_err());
    let (q, k, v) = qkv(1, 1, 1, 10, 4);
    let p = BlockPattern::new(&sparse_cfg(4, 1, 1, 1, false), 12, 0, 0).unwrap();
    assert!(ops::block_sparse_attention(&q, &k, &v, &p).is_err());
}

#[test]
fn default_backbone_shapes_f32_and_dropout() {
    let cfg = Config::default();
    assert_eq!(cfg.mlp_hidden_size(), 176);
    let vocab = 10;
    let (_w64, m64) = seeded_model(&cfg, vocab, DType::F64);
    let (_w32, m32) = seeded_model(&cfg, vocab, DType::F32);
    assert_eq!(m32.out_channels(), 64);
    for l in [300usize, 37] {
        let ids: Vec<u32> = (0..2 * l as u32)
            .map(|i| (i * 13 + 7) % vocab as u32)
            .collect();
        let ids = Tensor::from_vec(ids, (2, l), &Device::Cpu).unwrap();
        let o32 = run(&m32, &ids);
        assert_eq!(o32.dims(), &[2, 64, m32.out_len(l)]);
        let o64 = run(&m64, &ids);
        let e = max_abs_diff(&o32, &o64);
        println!("default backbone L {l}: f32 vs f64 max abs diff {e:.2e}");
        assert!(e < 1e-3, "f32 vs f64: {e}");
    }
    // Dense option: same weights, same shape; differs from the sparse output.
    let dense_cfg = Config {
        dense: true,
        ..cfg.clone()
    };
    let (_wd, md) = seeded_model(&dense_cfg, vocab, DType::F64);
    let ids = Tensor::from_vec(
        (0..300u32).map(|i| i % 10).collect(),
        (1, 300),
        &Device::Cpu,
    )
    .unwrap();
    let od = run(&md, &ids);
    assert_eq!(od.dims(), &[1, 64, 300]);
    assert!(max_abs_diff(&od, &run(&m64, &ids)) > 1e-6);
    // Dropout: active in training only, reproducible for a seeded RNG.
    let drop_cfg = Config {
        dropout: 0.2,
        n_layer: 1,
        ..cfg
    };
    let (_wp, mp) = seeded_model(&drop_cfg, vocab, DType::F32);
    let ids = ids.narrow(1, 0, 40).unwrap();
    let train = |seed: u64| {
        let mut r = rng(seed);
        let mut ctx = Ctx {
            train: true,
            rng: &mut r,
        };
        Backbone::forward(&mp, &ids, &mut ctx).unwrap()
    };
    let eval = run(&mp, &ids);
    assert_eq!(max_abs_diff(&train(1), &train(1)), 0.0);
    assert!(max_abs_diff(&train(1), &eval) > 1e-3);
}

#[test]
fn pytorch_fixture_matches() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/transformer_ref.safetensors"
    );
    if !std::path::Path::new(path).exists() {
        println!("skipping: {path} is missing (run scripts/transformer_ref.py)");
        return;
    }
    let map = candle_core::safetensors::load(path, &Device::Cpu).unwrap();
    let ids = map["ids"].to_dtype(DType::U32).unwrap();
    let (b, l) = ids.dims2().unwrap();
    assert_eq!((b, l), (2, 50));
    let vocab = map["embed.weight"].dim(0).unwrap();
    for (causal, key) in [(false, "out"), (true, "out_causal")] {
        let cfg = Config {
            d_model: 16,
            n_layer: 2,
            n_heads: 2,
            mlp_hidden: 0,
            block: 8,
            window: 1,
            global_blocks: 1,
            random_blocks: 0,
            dense: false,
            causal,
            rope_theta: 10000.0,
            dropout: 0.0,
            seed: 0,
        };
        let vb = VarBuilder::from_tensors(map.clone(), DType::F64, &Device::Cpu);
        let m = Transformer::new(&cfg, vocab, vb.clone(), vb).unwrap();
        let got = run(&m, &ids);
        let e = max_abs_diff(&got, &map[key]);
        println!("PyTorch fixture ({key}): max abs diff {e:.2e}");
        assert!(e <= 1e-4, "{key}: {e}");
    }
}
