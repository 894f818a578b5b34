//! Pretraining: MLM masking statistics, masked loss against a plain reference, NTP causality,
//! the window sampler (N cap, held-out exclusion), and `genolm pretrain` end to end on a slice of
//! a real genome (report, determinism, exact resume after SIGKILL, clear errors).

use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use genolm::data::windows::{n_fraction, Genome, SoftMask, WindowOptions};
use genolm::models::{hyena, mamba, transformer, BackboneConfig, Ctx};
use genolm::tokenize;
use genolm::train::pretrain::{self, mlm_mask, LmConfig, TokenInfo};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod common;

use common::{expect_error, genolm, run_ok};

/// Random base-token ids of the character tokenizer (A C G T = 5..=8), with some N (9).
fn char_ids(n: usize, seed: u64) -> Vec<u32> {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            if r.random_bool(0.05) {
                9
            } else {
                r.random_range(5..9)
            }
        })
        .collect()
}

#[test]
fn mlm_masking_statistics_token_level() {
    let tok = tokenize::from_spec("char").unwrap();
    let info = TokenInfo::new(tok.as_ref()).unwrap();
    assert_eq!(info.mask_id, tokenize::MASK);
    assert!(!info.mask_added);
    let len = 500;
    let ids = char_ids(400 * len, 1);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let m = mlm_mask(&ids, len, &info, 0.15, 1, &mut rng);
    let bases = ids.iter().filter(|&&i| i != 9).count() as f64;
    let sel: Vec<usize> = (0..ids.len()).filter(|&i| m.weights[i] > 0.0).collect();
    let frac = sel.len() as f64 / bases;
    assert!((frac - 0.15).abs() < 0.004, "selected fraction {frac}");
    // Only base tokens are selected; unselected inputs are untouched.
    for (i, &id) in ids.iter().enumerate() {
        if m.weights[i] == 0.0 {
            assert_eq!(m.inputs[i], id);
        } else {
            assert_ne!(id, 9);
        }
        assert_eq!(m.targets[i], id);
    }
    let n = sel.len() as f64;
    let masked = sel.iter().filter(|&&i| m.inputs[i] == info.mask_id).count() as f64 / n;
    let kept = sel.iter().filter(|&&i| m.inputs[i] == ids[i]).count() as f64 / n;
    let random = sel
        .iter()
        .filter(|&&i| m.inputs[i] != ids[i] && m.inputs[i] != info.mask_id)
        .count() as f64
        / n;
    // 10 % random base tokens, a quarter of which equal the original: 7.5 % changed, 12.5 % kept.
    assert!((masked - 0.8).abs() < 0.01, "mask {masked}");
    assert!((random - 0.075).abs() < 0.01, "random {random}");
    assert!((kept - 0.125).abs() < 0.01, "kept {kept}");
    for &i in &sel {
        assert!((5..9).contains(&m.inputs[i]) || m.inputs[i] == info.mask_id);
    }
}

#[test]
fn mlm_span_masking_for_overlapping_kmers() {
    let tok = tokenize::from_spec("kmer:6:1").unwrap();
    let info = TokenInfo::new(tok.as_ref()).unwrap();
    let mut r = ChaCha8Rng::seed_from_u64(3);
    let seq: Vec<u8> = (0..60_005).map(|_| b"ACGT"[r.random_range(0..4)]).collect();
    let len = 1000;
    let mut ids = tok.encode(&seq).unwrap();
    ids.truncate(60 * len);
    assert_eq!(
        info.bases[ids[0] as usize], 1.0,
        "a stride-1 6-mer adds one base"
    );
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let m = mlm_mask(&ids, len, &info, 0.15, 6, &mut rng);
    let frac = m.weights.iter().filter(|&&w| w > 0.0).count() as f64 / ids.len() as f64;
    let want = 1.0 - (1.0 - 0.15f64 / 6.0).powi(6);
    assert!((frac - want).abs() < 0.01, "span fraction {frac} vs {want}");
    // Every run of selected tokens is at least one span long (except where a row ends).
    for row in 0..60 {
        let w = &m.weights[row * len..(row + 1) * len];
        let mut i = 0;
        while i < len {
            if w[i] > 0.0 {
                let start = i;
                while i < len && w[i] > 0.0 {
                    i += 1;
                }
                assert!(
                    i - start >= 6 || i == len,
                    "run of {} at {start}",
                    i - start
                );
            } else {
                i += 1;
            }
        }
    }
    // Token-level masking of the same ids has many isolated selections.
    let t = mlm_mask(&ids, len, &info, 0.15, 1, &mut rng);
    let isolated = (1..ids.len() - 1)
        .filter(|&i| t.weights[i] > 0.0 && t.weights[i - 1] == 0.0 && t.weights[i + 1] == 0.0)
        .count();
    assert!(isolated > 1000);
}

#[test]
fn onehot_gets_an_added_mask_row() {
    let tok = tokenize::from_spec("onehot").unwrap();
    let info = TokenInfo::new(tok.as_ref()).unwrap();
    assert!(info.mask_added);
    assert_eq!(info.mask_id, 5);
    assert_eq!(info.vocab, 6);
    assert_eq!(info.base_ids, vec![0, 1, 2, 3]);
}

/// Plain reference: mean over weighted positions of -log softmax(logits)[target].
fn reference_masked_ce(logits: &[f64], targets: &[u32], weights: &[f32], v: usize) -> f64 {
    let (mut num, mut den) = (0.0, 0.0);
    for (i, (&t, &w)) in targets.iter().zip(weights).enumerate() {
        if w == 0.0 {
            continue;
        }
        let row = &logits[i * v..(i + 1) * v];
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + row.iter().map(|x| (x - m).exp()).sum::<f64>().ln();
        num += w as f64 * (lse - row[t as usize]);
        den += w as f64;
    }
    num / den
}

#[test]
fn masked_loss_matches_reference_and_ignores_unmasked_positions() {
    let tok = tokenize::from_spec("char").unwrap();
    let info = TokenInfo::new(tok.as_ref()).unwrap();
    let (b, l, v) = (3, 40, 10);
    let ids = char_ids(b * l, 5);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let m = mlm_mask(&ids, l, &info, 0.3, 1, &mut rng);
    let mut r = ChaCha8Rng::seed_from_u64(2);
    let logits: Vec<f64> = (0..b * l * v)
        .map(|_| r.random::<f64>() * 6.0 - 3.0)
        .collect();
    let lt = Var::from_tensor(&Tensor::from_vec(logits.clone(), (b, l, v), &Device::Cpu).unwrap())
        .unwrap();
    let tt = Tensor::from_vec(m.targets.clone(), (b, l), &Device::Cpu).unwrap();
    let wt = Tensor::from_vec(m.weights.clone(), (b, l), &Device::Cpu).unwrap();
    let loss = genolm::ops::cross_entropy_masked(lt.as_tensor(), &tt, &wt).unwrap();
    let got = loss.to_scalar::<f64>().unwrap();
    let want = reference_masked_ce(&logits, &m.targets, &m.weights, v);
    assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    // Unmasked positions get exactly zero gradient; masked ones do not.
    let g = loss.backward().unwrap();
    let g: Vec<f64> = g
        .get(lt.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    for i in 0..b * l {
        let row_abs: f64 = g[i * v..(i + 1) * v].iter().map(|x| x.abs()).sum();
        if m.weights[i] == 0.0 {
            assert_eq!(row_abs, 0.0, "position {i}");
        } else {
            assert!(row_abs > 0.0, "position {i}");
        }
    }
    // Changing logits at unmasked positions does not change the loss.
    let mut changed = logits.clone();
    for i in 0..b * l {
        if m.weights[i] == 0.0 {
            for x in &mut changed[i * v..(i + 1) * v] {
                *x += 5.0 * (*x).sin();
            }
        }
    }
    let ct = Tensor::from_vec(changed, (b, l, v), &Device::Cpu).unwrap();
    let again = genolm::ops::cross_entropy_masked(&ct, &tt, &wt)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert!((again - got).abs() < 1e-12);
}

#[test]
fn ntp_prepare_shifts_targets_and_skips_n() {
    let tok = tokenize::from_spec("char").unwrap();
    let info = TokenInfo::new(tok.as_ref()).unwrap();
    let ids = vec![5, 6, 9, 7, 8, 5, 5, 6];
    let opts = pretrain::PretrainOptions::default();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let p = pretrain::prepare(&ids, 4, pretrain::Objective::Ntp, &opts, &info, &mut rng).unwrap();
    assert_eq!(
        p.targets.to_vec2::<u32>().unwrap(),
        vec![vec![6, 9, 7], vec![5, 5, 6]]
    );
    assert_eq!(
        p.weights.to_vec2::<f32>().unwrap(),
        vec![vec![1.0, 0.0, 1.0], vec![1.0, 1.0, 1.0]]
    );
    assert_eq!((p.count, p.bases), (5.0, 5.0));
}

fn lm_logits(cfg: &LmConfig, ids: &[u32]) -> Vec<f32> {
    let (model, _w) = pretrain::build_lm(cfg, 4).unwrap();
    let t = Tensor::from_vec(ids.to_vec(), (1, ids.len()), &Device::Cpu).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut ctx = Ctx {
        train: false,
        rng: &mut rng,
    };
    model
        .forward(&t, &mut ctx)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn ntp_backbones_are_causal() {
    let small_hyena = hyena::Config {
        d_model: 16,
        n_layer: 2,
        filter_order: 16,
        ..Default::default()
    };
    let small_mamba = mamba::Config {
        d_model: 16,
        n_layer: 2,
        ..Default::default()
    };
    let small_tf = transformer::Config {
        d_model: 16,
        n_layer: 2,
        n_heads: 2,
        block: 8,
        ..Default::default()
    };
    let mut configs = [
        BackboneConfig::Hyena(small_hyena),
        BackboneConfig::Mamba(small_mamba),
        BackboneConfig::Transformer(small_tf.clone()),
        BackboneConfig::Transformer(transformer::Config {
            dense: true,
            ..small_tf
        }),
    ];
    let (len, v, cut) = (48, 10, 30);
    let ids = char_ids(len, 11);
    let mut later = ids.clone();
    for x in &mut later[cut..] {
        *x = if *x == 5 { 8 } else { 5 };
    }
    for cfg in configs.iter_mut() {
        // Bidirectional: a later change reaches earlier positions.
        assert!(!pretrain::is_causal(cfg));
        let lm = |b: &BackboneConfig| LmConfig {
            vocab_size: v,
            tokenizer_vocab: v,
            mask_id: 4,
            seq_len: len,
            backbone: b.clone(),
        };
        let (a, b) = (lm_logits(&lm(cfg), &ids), lm_logits(&lm(cfg), &later));
        let diff = |a: &[f32], b: &[f32]| -> f32 {
            a[..cut * v]
                .iter()
                .zip(&b[..cut * v])
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max)
        };
        assert!(
            diff(&a, &b) > 1e-4,
            "{}: bidirectional not sensitive",
            cfg.name()
        );
        pretrain::make_causal(cfg).unwrap();
        assert!(pretrain::is_causal(cfg));
        let (a, b) = (lm_logits(&lm(cfg), &ids), lm_logits(&lm(cfg), &later));
        assert_eq!(diff(&a, &b), 0.0, "{}: earlier logits changed", cfg.name());
        // Positions from the change on do differ.
        assert!(a[cut * v..] != b[cut * v..]);
    }
    let mut cnn = BackboneConfig::by_name("cnn").unwrap();
    assert!(pretrain::make_causal(&mut cnn).is_err());
}

fn write_fasta(path: &Path, recs: &[(&str, Vec<u8>)]) {
    let mut f = std::fs::File::create(path).unwrap();
    for (name, seq) in recs {
        genolm::io::fasta::write_record(&mut f, name, "", seq, 60).unwrap();
    }
}

#[test]
fn sampler_caps_n_and_never_draws_held_out_sequences() {
    let tmp = tempfile::tempdir().unwrap();
    let mut r = ChaCha8Rng::seed_from_u64(1);
    // Training records are A/T only (so are their reverse complements); the held-out one is
    // C/G only: any C or G in a training window would be a leak.
    let at = |r: &mut ChaCha8Rng, n| -> Vec<u8> {
        (0..n).map(|_| b"AT"[r.random_range(0..2)]).collect()
    };
    let mut with_n = at(&mut r, 3000);
    for b in &mut with_n[1000..2000] {
        *b = b'N';
    }
    let held: Vec<u8> = (0..5000).map(|_| b"CG"[r.random_range(0..2)]).collect();
    let path = tmp.path().join("g.fa");
    write_fasta(
        &path,
        &[
            ("a", at(&mut r, 4000)),
            ("h", held),
            ("b", with_n),
            ("tiny", b"AT".to_vec()),
        ],
    );
    let paths = vec![path.to_string_lossy().to_string()];
    let g = Genome::load(&paths, &["h".to_string()], SoftMask::Keep).unwrap();
    assert_eq!(g.train.len(), 3);
    assert_eq!(g.holdout_bases(), 5000);
    assert_eq!(g.holdout_tiles(300).len(), 16);
    let sample = |cap: f64| -> Vec<Vec<u8>> {
        let s = g
            .sampler(WindowOptions {
                len: 200,
                max_n_frac: cap,
                rc: true,
                max_shift: None,
            })
            .unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        (0..3000).map(|_| s.sample(&mut rng).unwrap()).collect()
    };
    let capped = sample(0.1);
    for w in &capped {
        assert_eq!(w.len(), 200);
        assert!(n_fraction(w) <= 0.1, "N fraction {}", n_fraction(w));
        assert!(
            !w.iter().any(|&b| b == b'C' || b == b'G'),
            "held-out bases leaked"
        );
    }
    let free = sample(1.0);
    assert!(
        free.iter().any(|w| n_fraction(w) > 0.5),
        "N-rich windows exist uncapped"
    );
    // Grid starts with a shift stay inside the sequences.
    let s = g
        .sampler(WindowOptions {
            len: 200,
            max_n_frac: 1.0,
            rc: false,
            max_shift: Some(10),
        })
        .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for _ in 0..200 {
        assert_eq!(s.sample(&mut rng).unwrap().len(), 200);
    }
    // Unknown held-out names and all-held-out genomes are input errors.
    let e = Genome::load(&paths, &["chrZ".to_string()], SoftMask::Keep).unwrap_err();
    assert!(e.to_string().contains("chrZ"), "{e}");
    assert_eq!(e.exit_code(), 2);
    let all: Vec<String> = ["a", "h", "b", "tiny"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert!(Genome::load(&paths, &all, SoftMask::Keep).is_err());
}

#[test]
fn softmask_as_n_masks_lower_case() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("g.fa");
    write_fasta(&path, &[("a", b"ACGTacgtNNAC".to_vec())]);
    let paths = vec![path.to_string_lossy().to_string()];
    let keep = Genome::load(&paths, &[], SoftMask::Keep).unwrap();
    assert_eq!(keep.train[0].seq, b"ACGTACGTNNAC");
    let n = Genome::load(&paths, &[], SoftMask::N).unwrap();
    assert_eq!(n.train[0].seq, b"ACGTNNNNNNAC");
}

/// A slice of SARS-CoV-2 as two records: `train` (first 24 kb) and `held` (the rest).
fn sars_slice(dir: &Path) -> Option<String> {
    let src = genolm::io::shared_data("genomes/sars_cov_2/genome.fasta")?;
    let recs = genolm::io::fasta::read_records(&src.to_string_lossy(), Default::default()).unwrap();
    let s = &recs[0].seq;
    let path = dir.join("sars.fa");
    write_fasta(
        &path,
        &[
            ("train", s[..24_000].to_vec()),
            ("held", s[24_000..].to_vec()),
        ],
    );
    Some(path.to_string_lossy().to_string())
}

fn tiny_args<'a>(genome: &'a str, out: &'a str, cfg: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "--threads",
        "2",
        "pretrain",
        "--objective",
        "ntp",
        "--model",
        "hyena",
        "--model-config",
        cfg,
        "--causal",
        "--tokenizer",
        "char",
        "--genome",
        genome,
        "--holdout",
        "held",
        "--out",
        out,
        "--seq-len",
        "128",
        "--batch",
        "8",
        "--lr",
        "3e-3",
        "--eval-every",
        "20",
        "--eval-windows",
        "8",
        "--seed",
        "5",
        "--quiet",
    ];
    v.extend_from_slice(extra);
    v
}

fn small_hyena_toml(dir: &Path) -> String {
    let p = dir.join("hyena.toml");
    std::fs::write(&p, "d_model = 16\nn_layer = 2\nfilter_order = 16\n").unwrap();
    p.to_string_lossy().to_string()
}

fn report(dir: &Path) -> serde_json::Value {
    // The run state travels inside the resumable checkpoint (one atomic rename).
    let last = genolm::train::classify::load_tensors(&dir.join("last.safetensors")).unwrap();
    assert!(last.contains_key(genolm::train::classify::STATE_TENSOR));
    let text = std::fs::read_to_string(dir.join("report.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let o = v.as_object_mut().unwrap();
    o.remove("seconds");
    o.remove("tokens_per_s");
    v
}

/// (step, loss) of every training step in a run's log.
fn loss_curve(dir: &Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "step")
        .map(|v| (v["step"].as_u64().unwrap(), v["loss"].as_f64().unwrap()))
        .collect()
}

#[test]
fn tiny_pretrain_run_writes_report_and_is_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(genome) = sars_slice(tmp.path()) else {
        return;
    };
    let cfg = small_hyena_toml(tmp.path());
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for d in [&a, &b] {
        run_ok(&tiny_args(
            &genome,
            &d.to_string_lossy(),
            &cfg,
            &["--max-steps", "40"],
        ));
    }
    let r = report(&a);
    assert_eq!(r, report(&b), "same seed, same report");
    assert_eq!(
        std::fs::read(a.join("model.safetensors")).unwrap(),
        std::fs::read(b.join("model.safetensors")).unwrap()
    );
    let bpb = r["bits_per_base"].as_f64().unwrap();
    assert!(
        bpb.is_finite() && bpb > 1.0 && bpb < 2.3,
        "bits per base {bpb}"
    );
    let loss = r["loss"].as_f64().unwrap();
    assert!((r["perplexity"].as_f64().unwrap() - loss.exp()).abs() < 1e-9);
    // Char tokens: one base per scored token; 5,903 held-out bases tile into 46 windows.
    assert_eq!(r["eval_windows"], 46);
    assert_eq!(r["scored_tokens"].as_f64(), r["scored_bases"].as_f64());
    assert!(r["scored_tokens"].as_u64().unwrap() > 46 * 120);
    assert_eq!(r["steps"], 40);
    // Training reduced the loss from the uniform 10-way guess.
    let curve = loss_curve(&a);
    assert_eq!(curve.len(), 40);
    assert!(
        curve[39].1 < curve[0].1 - 0.5,
        "{:?}",
        (curve[0], curve[39])
    );
    // Run dir: config with [model.backbone], weights with backbone.* and lm_head.*.
    let text = std::fs::read_to_string(a.join("config.toml")).unwrap();
    let cfg_v: toml::Value = toml::from_str(&text).unwrap();
    assert_eq!(cfg_v["model"]["backbone"]["kind"].as_str(), Some("hyena"));
    assert_eq!(
        cfg_v["model"]["backbone"]["bidirectional"].as_bool(),
        Some(false)
    );
    assert_eq!(cfg_v["model"]["vocab_size"].as_integer(), Some(10));
    assert_eq!(cfg_v["tokenizer"].as_str(), Some("char"));
    let t = candle_core::safetensors::load(a.join("model.safetensors"), &Device::Cpu).unwrap();
    assert!(t.contains_key("backbone.embed.weight"), "{:?}", t.keys());
    assert!(t.contains_key("lm_head.weight"));
    assert!(t
        .keys()
        .all(|k| k.starts_with("backbone.") || k.starts_with("lm_head.")));
    for f in [
        "metrics.jsonl",
        "command.txt",
        "tokenizer.txt",
        "last.safetensors",
        "state.json",
    ] {
        assert!(a.join(f).exists(), "{f}");
    }
    let log = std::fs::read_to_string(a.join("metrics.jsonl")).unwrap();
    assert!(log.contains("\"tokens_per_s\""));
    assert_eq!(log.matches("\"kind\":\"eval\"").count(), 2);
}

#[test]
fn killed_run_resumes_to_the_same_loss_curve() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(genome) = sars_slice(tmp.path()) else {
        return;
    };
    let cfg = small_hyena_toml(tmp.path());
    let extra = ["--max-steps", "120", "--checkpoint-every", "5"];
    let full = tmp.path().join("full");
    run_ok(&tiny_args(&genome, &full.to_string_lossy(), &cfg, &extra));

    let part = tmp.path().join("part");
    let part_s = part.to_string_lossy().to_string();
    common::kill_after_checkpoint(&tiny_args(&genome, &part_s, &cfg, &extra), &part, 13);
    let mut resume = extra.to_vec();
    resume.push("--resume");
    run_ok(&tiny_args(&genome, &part_s, &cfg, &resume));
    assert_eq!(loss_curve(&full), loss_curve(&part));
    assert_eq!(report(&full), report(&part));
    assert_eq!(
        std::fs::read(full.join("model.safetensors")).unwrap(),
        std::fs::read(part.join("model.safetensors")).unwrap()
    );
    // Resuming with other options is refused.
    let o = genolm(&tiny_args(
        &genome,
        &part_s,
        &cfg,
        &["--max-steps", "7", "--resume"],
    ));
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn bad_models_give_one_line_and_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let g = tmp.path().join("g.fa");
    write_fasta(
        &g,
        &[("a", b"ACGT".repeat(200)), ("b", b"ACGT".repeat(200))],
    );
    let gs = g.to_string_lossy().to_string();
    let out = tmp.path().join("o").to_string_lossy().to_string();
    let base = |model: &'static str, obj: &'static str| -> Vec<String> {
        [
            "pretrain",
            "--objective",
            obj,
            "--model",
            model,
            "--genome",
            &gs,
            "--out",
            &out,
            "--seq-len",
            "64",
            "--max-steps",
            "1",
            "--quiet",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let as_ref = |v: &[String]| -> Vec<String> { v.to_vec() };
    let v = base("gb-cnn", "mlm");
    expect_error(&as_ref(&v), "per-token features");
    let v = base("hyena", "ntp");
    expect_error(&as_ref(&v), "causal");
    let mut v = base("cnn", "ntp");
    v.push("--causal".into());
    expect_error(&as_ref(&v), "no causal form");
    let mut v = base("hyena", "mlm");
    v.extend(["--holdout".into(), "chrQ".into()]);
    expect_error(&as_ref(&v), "chrQ");
}

#[test]
fn mlm_runs_end_to_end_with_an_added_mask_row() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(genome) = sars_slice(tmp.path()) else {
        return;
    };
    let cfg = small_hyena_toml(tmp.path());
    let out = tmp.path().join("mlm");
    run_ok(&[
        "--threads",
        "2",
        "pretrain",
        "--objective",
        "mlm",
        "--model",
        "hyena",
        "--model-config",
        &cfg,
        "--tokenizer",
        "onehot",
        "--genome",
        &genome,
        "--holdout",
        "held",
        "--out",
        &out.to_string_lossy(),
        "--seq-len",
        "128",
        "--batch",
        "8",
        "--max-steps",
        "10",
        "--quiet",
    ]);
    let r = report(&out);
    assert_eq!(r["objective"], "mlm");
    assert_eq!(r["mask_token"], "added row");
    assert_eq!(r["bits_per_base_over"], "masked tokens");
    // About 15 % of the 46 × 128 held-out tokens are scored.
    let scored = r["scored_tokens"].as_f64().unwrap() / (46.0 * 128.0);
    assert!((scored - 0.15).abs() < 0.03, "scored fraction {scored}");
    assert!(r["bits_per_base"].as_f64().unwrap().is_finite());
    let text = std::fs::read_to_string(out.join("config.toml")).unwrap();
    let v: toml::Value = toml::from_str(&text).unwrap();
    assert_eq!(v["model"]["vocab_size"].as_integer(), Some(6));
    assert_eq!(v["model"]["mask_id"].as_integer(), Some(5));
    assert_eq!(
        v["model"]["backbone"]["bidirectional"].as_bool(),
        Some(true)
    );
}
