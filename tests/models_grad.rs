//! Finite-difference gradient checks (f64) of whole models: embedding, every convolution,
//! batch norm, pooling and head parameter gets the gradient that central differences give.

use candle_core::{DType, Device, Tensor};
use genolm::models::{
    cnn, gb_cnn, kmer, BackboneConfig, Classifier, Ctx, HeadConfig, ModelConfig, Pooling, Weights,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A tensor's values, flattened, as f64.
fn flat(t: &Tensor) -> Vec<f64> {
    t.flatten_all().unwrap().to_vec1::<f64>().unwrap()
}

fn check(cfg: ModelConfig, batch: usize) {
    check_at_least(cfg, batch, 8)
}

fn check_at_least(cfg: ModelConfig, batch: usize, min_vars: usize) {
    let dev = Device::Cpu;
    let w = Weights::new();
    let (p, b) = w.builders(3, DType::F64, &dev);
    let model = Classifier::new(&cfg, p, b).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let ids: Vec<u32> = (0..batch * cfg.seq_len)
        .map(|_| rng.random_range(0..cfg.vocab_size as u32))
        .collect();
    let ids = Tensor::from_vec(ids, (batch, cfg.seq_len), &dev).unwrap();
    let y: Vec<u32> = (0..batch).map(|i| (i % cfg.num_classes) as u32).collect();
    let y = Tensor::from_vec(y, batch, &dev).unwrap();
    let loss_of = || {
        let mut r = ChaCha8Rng::seed_from_u64(0);
        let mut ctx = Ctx {
            train: true,
            rng: &mut r,
        };
        genolm::ops::cross_entropy(&model.forward(&ids, &mut ctx).unwrap(), &y, None).unwrap()
    };
    let grads = loss_of().backward().unwrap();
    let vars: Vec<(String, candle_core::Var)> = {
        let d = w.params.data().lock().unwrap();
        let mut v: Vec<_> = d.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    assert!(vars.len() >= min_vars, "too few parameters: {}", vars.len());
    let eps = 1e-6;
    let mut worst = 0f64;
    for (name, var) in &vars {
        let g = flat(
            grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("parameter {name} got no gradient")),
        );
        let base = flat(var.as_tensor());
        let n = base.len();
        for _ in 0..4.min(n) {
            let i = rng.random_range(0..n);
            let at = |delta: f64| {
                let mut v = base.clone();
                v[i] += delta;
                var.set(&Tensor::from_vec(v, var.shape(), &dev).unwrap())
                    .unwrap();
                loss_of().to_scalar::<f64>().unwrap()
            };
            let num = (at(eps) - at(-eps)) / (2.0 * eps);
            var.set(&Tensor::from_vec(base.clone(), var.shape(), &dev).unwrap())
                .unwrap();
            let err = (num - g[i]).abs() / (num.abs().max(g[i].abs()).max(1e-4));
            worst = worst.max(err);
            assert!(
                err < 1e-4,
                "{name}[{i}]: analytic {} numeric {num} (rel err {err:.2e})",
                g[i]
            );
        }
    }
    eprintln!(
        "worst relative error {worst:.2e} over {} parameters",
        vars.len()
    );
}

#[test]
fn gb_cnn_gradients_match_finite_differences() {
    let backbone = BackboneConfig::GbCnn(gb_cnn::Config {
        embedding_dim: 3,
        channels: vec![4, 3, 2],
        kernel_size: 3,
        dropout: 0.0,
    });
    let head = HeadConfig {
        pooling: Pooling::Flatten,
        hidden: 5,
        hidden_activation: false,
        dropout: 0.0,
    };
    check(
        ModelConfig {
            vocab_size: 10,
            seq_len: 40,
            num_classes: 2,
            backbone,
            head,
        },
        3,
    );
}

#[test]
fn kmer_lr_gradients_match_finite_differences() {
    // The spectrum has no weights; the head (with and without feature dropout, and with a hidden
    // layer) gets the gradients central differences give.
    for (dropout, hidden) in [(0.0, 0), (0.3, 0), (0.0, 3)] {
        let backbone = BackboneConfig::KmerLr(kmer::Config { k_max: 3, dropout });
        let head = HeadConfig {
            pooling: Pooling::Flatten,
            hidden,
            hidden_activation: hidden > 0,
            dropout: 0.0,
        };
        let cfg = ModelConfig {
            vocab_size: 10,
            seq_len: 20,
            num_classes: 2,
            backbone,
            head,
        };
        check_at_least(cfg, 4, if hidden > 0 { 4 } else { 2 });
    }
}

#[test]
fn kmer_lr_logits_are_the_spectrum_times_the_weights() {
    // Reference composition: logits = spectrum(ids) · Wᵀ + b, with the spectrum from
    // `kmer::spectrum` and the weights read back from the model.
    let dev = Device::Cpu;
    let w = Weights::new();
    let (p, b) = w.builders(7, DType::F64, &dev);
    let cfg = ModelConfig {
        vocab_size: 10,
        seq_len: 30,
        num_classes: 3,
        backbone: BackboneConfig::KmerLr(kmer::Config {
            k_max: 4,
            dropout: 0.0,
        }),
        head: BackboneConfig::by_name("kmer-lr").unwrap().default_head(),
    };
    let model = Classifier::new(&cfg, p, b).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    // Ids 1..=9: bases (5..=8) mixed with N and special tokens.
    let rows: Vec<Vec<u32>> = (0..3)
        .map(|_| (0..30).map(|_| rng.random_range(1..10u32)).collect())
        .collect();
    let ids = Tensor::from_vec(rows.concat(), (3, 30), &dev).unwrap();
    let mut r = ChaCha8Rng::seed_from_u64(0);
    let mut ctx = Ctx {
        train: false,
        rng: &mut r,
    };
    let logits = model
        .forward(&ids, &mut ctx)
        .unwrap()
        .to_vec2::<f64>()
        .unwrap();
    let t = w.tensors();
    let wt = t["head.out.weight"].to_vec2::<f64>().unwrap();
    let bias = t["head.out.bias"].to_vec1::<f64>().unwrap();
    assert_eq!(wt[0].len(), 4 + 16 + 64 + 256);
    for (row, got) in rows.iter().zip(&logits) {
        let f = kmer::spectrum(row, 4);
        for c in 0..3 {
            let want: f64 = f.iter().zip(&wt[c]).map(|(x, w)| x * w).sum::<f64>() + bias[c];
            assert!(
                (want - got[c]).abs() < 1e-9,
                "class {c}: {want} vs {}",
                got[c]
            );
        }
    }
}

#[test]
fn dilated_cnn_gradients_match_finite_differences() {
    for (pooling, depth, max_dilation) in [
        (Pooling::Attention, 3, 4),
        (Pooling::Mean, 3, 4),
        (Pooling::Max, 3, 4),
        // The default head; dilations 1..16 on 12 pooled positions (taps that read only padding).
        (Pooling::Flatten, 5, 16),
    ] {
        let backbone = BackboneConfig::Cnn(cnn::Config {
            embedding_dim: 3,
            width: 4,
            depth,
            stem_kernel: 5,
            kernel_size: 3,
            pool: 2,
            dilation_rate: 2,
            max_dilation,
            dropout: 0.0,
        });
        let head = HeadConfig {
            pooling,
            hidden: 3,
            hidden_activation: true,
            dropout: 0.0,
        };
        check(
            ModelConfig {
                vocab_size: 10,
                seq_len: 24,
                num_classes: 3,
                backbone,
                head,
            },
            4,
        );
    }
}

#[test]
fn segment_head_on_dilated_cnn_gradients_match_finite_differences() {
    use genolm::models::{Backbone, SegmentHead};
    let dev = Device::Cpu;
    let cfg = cnn::Config {
        embedding_dim: 3,
        width: 4,
        depth: 2,
        stem_kernel: 3,
        kernel_size: 3,
        pool: 3,
        dilation_rate: 2,
        max_dilation: 2,
        dropout: 0.0,
    };
    let w = Weights::new();
    let (p, b) = w.builders(9, DType::F64, &dev);
    let backbone = cnn::DilatedCnn::new(&cfg, 10, p.pp("backbone"), b.pp("backbone")).unwrap();
    let head = SegmentHead::new(4, 3, 5, cfg.pool, p.pp("head")).unwrap();
    let (bsz, len) = (2, 20); // 20 / 3 = 6 positions → upsampled to 18, last repeated to 20
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let ids: Vec<u32> = (0..bsz * len).map(|_| rng.random_range(0..10)).collect();
    let ids = Tensor::from_vec(ids, (bsz, len), &dev).unwrap();
    let y: Vec<u32> = (0..bsz * len).map(|i| (i % 5) as u32).collect();
    let y = Tensor::from_vec(y, (bsz, len), &dev).unwrap();
    let loss_of = || {
        let mut r = ChaCha8Rng::seed_from_u64(0);
        let mut ctx = Ctx {
            train: true,
            rng: &mut r,
        };
        let f = backbone.forward(&ids, &mut ctx).unwrap();
        let logits = head.forward(&f, len).unwrap();
        assert_eq!(logits.dims(), &[bsz, len, 5]);
        genolm::ops::cross_entropy(&logits, &y, None).unwrap()
    };
    let grads = loss_of().backward().unwrap();
    let d = w.params.data().lock().unwrap();
    let mut names: Vec<_> = d.keys().cloned().collect();
    names.sort();
    for name in names
        .iter()
        .filter(|n| n.starts_with("head") || n.contains("stem"))
    {
        let var = &d[name];
        let g = flat(grads.get(var.as_tensor()).unwrap());
        let base = flat(var.as_tensor());
        let i = base.len() / 2;
        let at = |delta: f64| {
            let mut v = base.clone();
            v[i] += delta;
            var.set(&Tensor::from_vec(v, var.shape(), &dev).unwrap())
                .unwrap();
            loss_of().to_scalar::<f64>().unwrap()
        };
        let num = (at(1e-6) - at(-1e-6)) / 2e-6;
        var.set(&Tensor::from_vec(base.clone(), var.shape(), &dev).unwrap())
            .unwrap();
        let err = (num - g[i]).abs() / num.abs().max(g[i].abs()).max(1e-4);
        assert!(err < 1e-4, "{name}[{i}]: analytic {} numeric {num}", g[i]);
    }
}

/// The frozen (prediction) model gives the trainable model's outputs bit for bit, records no
/// autograd graph, and sees later in-place weight changes (optimizer steps, checkpoint loads).
#[test]
fn frozen_model_predicts_the_same_bits_without_a_graph() {
    use genolm::models::mamba;
    let dev = Device::Cpu;
    let gb = BackboneConfig::GbCnn(gb_cnn::Config {
        embedding_dim: 3,
        channels: vec![4, 3, 2],
        kernel_size: 3,
        dropout: 0.1,
    });
    let mb = BackboneConfig::Mamba(mamba::Config {
        d_model: 8,
        n_layer: 2,
        d_state: 4,
        ..Default::default()
    });
    for backbone in [gb, mb] {
        let cfg = ModelConfig {
            vocab_size: 10,
            seq_len: 40,
            num_classes: 2,
            backbone,
            head: HeadConfig {
                pooling: Pooling::Flatten,
                hidden: 5,
                hidden_activation: false,
                dropout: 0.1,
            },
        };
        let w = Weights::new();
        let (p, b) = w.builders(3, DType::F32, &dev);
        let model = Classifier::new(&cfg, p, b).unwrap();
        let frozen = model.frozen(&w).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let ids: Vec<u32> = (0..3 * cfg.seq_len)
            .map(|_| rng.random_range(0..10))
            .collect();
        let ids = Tensor::from_vec(ids, (3, cfg.seq_len), &dev).unwrap();
        let run = |m: &Classifier| {
            let mut r = ChaCha8Rng::seed_from_u64(0);
            let mut ctx = Ctx {
                train: false,
                rng: &mut r,
            };
            m.forward(&ids, &mut ctx).unwrap()
        };
        let (a, f) = (run(&model), run(&frozen));
        assert!(a.track_op(), "the trainable model should record a graph");
        assert!(!f.track_op(), "the frozen model recorded a graph");
        let bits = |t: &Tensor| -> Vec<u32> {
            let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
            v.iter().map(|x| x.to_bits()).collect()
        };
        assert_eq!(bits(&a), bits(&f), "{}", cfg.backbone.name());
        // Scale one parameter in place, as an optimizer step would: the frozen model follows.
        let d = w.params.data().lock().unwrap();
        let mut names: Vec<&String> = d.keys().filter(|k| k.ends_with("weight")).collect();
        names.sort();
        let var = &d[*names.last().unwrap()];
        var.set(&(var.as_tensor() * 1.5).unwrap()).unwrap();
        drop(d);
        let (a2, f2) = (run(&model), run(&frozen));
        assert_ne!(bits(&a), bits(&a2), "the weight change did nothing");
        assert_eq!(bits(&a2), bits(&f2), "{}", cfg.backbone.name());
    }
}
