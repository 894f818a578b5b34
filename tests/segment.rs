//! Per-base segmentation: label / reverse-complement consistency, U-Net gradients (f64 finite
//! differences) and agreement with a plain composition, a small end-to-end `train --task
//! segment` + `annotate` on the SARS-CoV-2 genome, and clear errors.

mod common;

use std::path::Path;

use candle_core::{DType, Device, Tensor, D};
use genolm::augment::StrandTracks;
use genolm::io::labels::{LabelTracks, CDS, INTERGENIC, INTRON, NUM_CLASSES, UTR3, UTR5};
use genolm::models::{cnn, BackboneConfig, Ctx, SegmentModelConfig, UNetConfig, Weights};
use genolm::train::segment::{self, Example, GenomeData, LabeledRecord, TileOptions};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use common::{expect_error, run_ok};

const GFF: &str = "##gff-version 3
s1\tt\tgene\t11\t60\t.\t+\t.\tID=g1
s1\tt\tmRNA\t11\t60\t.\t+\t.\tID=t1;Parent=g1
s1\tt\texon\t11\t30\t.\t+\t.\tParent=t1
s1\tt\texon\t41\t60\t.\t+\t.\tParent=t1
s1\tt\tCDS\t16\t30\t.\t+\t0\tParent=t1
s1\tt\tCDS\t41\t55\t.\t+\t0\tParent=t1
s1\tt\tgene\t71\t90\t.\t-\t.\tID=g2
s1\tt\tmRNA\t71\t90\t.\t-\t.\tID=t2;Parent=g2
s1\tt\texon\t71\t90\t.\t-\t.\tParent=t2
s1\tt\tCDS\t76\t90\t.\t-\t0\tParent=t2
";

fn random_dna(n: usize, seed: u64) -> Vec<u8> {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| b"ACGT"[r.random_range(0..4)]).collect()
}

fn synthetic_genome() -> GenomeData {
    let ann = genolm::io::gff::parse_str(GFF, "t.gff3").unwrap();
    let t = LabelTracks::from_genes(100, &ann.genes);
    GenomeData {
        records: vec![LabeledRecord {
            name: "s1".into(),
            seq: random_dna(100, 1),
            tracks: StrandTracks {
                plus: t.plus,
                minus: t.minus,
            },
        }],
        train: vec![(0, 0, 100)],
        valid: vec![],
        test: vec![],
        genes: 2,
        warnings: vec![],
        reference: ann,
    }
}

/// The one 100-base window of the synthetic genome's record.
fn whole_record() -> Example {
    Example {
        record: 0,
        lo: 0,
        hi: 100,
        start: 0,
    }
}

#[test]
fn labels_follow_the_gene_models_and_flip_with_the_reverse_complement() {
    let data = synthetic_genome();
    let t = &data.records[0].tracks;
    // Plus gene: exon 10..30 (UTR5 10..15, CDS 15..30), intron 30..40, CDS 40..55, UTR3 55..60.
    assert_eq!(t.plus[9], INTERGENIC);
    assert_eq!(t.plus[10], UTR5);
    assert_eq!(t.plus[15], CDS);
    assert_eq!(t.plus[35], INTRON);
    assert_eq!(t.plus[54], CDS);
    assert_eq!(t.plus[57], UTR3);
    // Minus gene: CDS 75..90, 5' UTR is at the right end on the minus strand... here the CDS
    // reaches the exon end, so 70..75 (left, 3' end of a minus gene) is UTR3.
    assert_eq!(t.minus[72], UTR3);
    assert_eq!(t.minus[80], CDS);
    assert_eq!(t.plus[80], INTERGENIC);

    let ex = whole_record();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let (s, f) = segment::example_window(&data, &ex, 100, 0, false, &mut rng);
    let (rs, r) = segment::example_window(&data, &ex, 100, 0, true, &mut rng);
    assert_eq!(s, data.records[0].seq);
    assert_eq!(rs, genolm::seq::revcomp(&s));
    for i in 0..100 {
        // The plus-strand gene is a minus-strand gene of the reverse complement, mirrored.
        assert_eq!(r.minus[99 - i], f.plus[i], "position {i}");
        assert_eq!(r.plus[99 - i], f.minus[i], "position {i}");
    }
    // Shifted windows keep labels aligned with the bases they came from.
    let ex = Example {
        record: 0,
        lo: 0,
        hi: 100,
        start: 20,
    };
    for seed in 0..20 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (w, wt) = segment::example_window(&data, &ex, 50, 15, false, &mut rng);
        let off = (0..=50)
            .find(|&o| data.records[0].seq[o..o + 50] == w[..])
            .unwrap();
        assert!((5..=35).contains(&off), "shift out of range: {off}");
        assert_eq!(wt.plus[..], t.plus[off..off + 50]);
        assert_eq!(wt.minus[..], t.minus[off..off + 50]);
    }
    // Targets and weights: padding past a short window has weight 0.
    let tok = genolm::tokenize::from_spec("char").unwrap();
    let w = segment::class_weights(&[100, 0, 10, 50, 1, 0], 5.0);
    assert_eq!(w, vec![1.0, 1.0, 5.0, 2.0, 5.0, 1.0]);
    let (ids, y, wt) =
        segment::batch_tensors(tok.as_ref(), &[(s[..60].to_vec(), f)], 64, &w).unwrap();
    assert_eq!(ids.dims(), &[1, 64]);
    let y: Vec<u32> = y.flatten_all().unwrap().to_vec1().unwrap();
    let wt: Vec<f32> = wt.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(y[2 * 15], u32::from(CDS));
    assert_eq!(wt[2 * 15], 5.0);
    assert_eq!(wt[2 * 60], 0.0);
    assert_eq!(wt[2 * 63 + 1], 0.0);
}

fn tiny_model_config(levels: usize, shuffle: bool) -> SegmentModelConfig {
    SegmentModelConfig {
        vocab_size: 10,
        num_classes: NUM_CLASSES,
        backbone: BackboneConfig::Cnn(cnn::Config {
            embedding_dim: 3,
            width: 4,
            depth: 2,
            stem_kernel: 3,
            kernel_size: 3,
            pool: 2,
            dilation_rate: 2,
            max_dilation: 2,
            dropout: 0.0,
        }),
        unet: UNetConfig {
            width: 3,
            levels,
            kernel_size: 3,
            embedding_dim: 2,
            skip_kernel: 3,
            shuffle,
        },
    }
}

#[test]
fn rc_averaged_prediction_is_strand_equivariant_and_tiles_blend() {
    let (model, _w) = segment::build_model(&tiny_model_config(2, true), 4).unwrap();
    let tok = genolm::tokenize::from_spec("char").unwrap();
    let s = random_dna(90, 3);
    let one = TileOptions {
        tile: 128,
        overlap: 0,
        rc_average: true,
    };
    let (p, m) = segment::predict_region(&model, tok.as_ref(), &s, &one, &|_| {}).unwrap();
    let (rp, rm) = segment::predict_region(
        &model,
        tok.as_ref(),
        &genolm::seq::revcomp(&s),
        &one,
        &|_| {},
    )
    .unwrap();
    let k = NUM_CLASSES;
    let n = s.len();
    for i in 0..n {
        for c in 0..k {
            let j = n - 1 - i;
            assert!((p[i * k + c] - rm[j * k + c]).abs() < 1e-5);
            assert!((m[i * k + c] - rp[j * k + c]).abs() < 1e-5);
        }
        let sum: f32 = p[i * k..(i + 1) * k].iter().sum();
        assert!((sum - 1.0).abs() < 1e-4);
    }
    // Tiled with overlap: every base is covered once per tile, and where a base is far (more
    // than the receptive field) from the edges of the only tile covering it, the tiled value
    // equals the whole-sequence value. Tile starts are multiples of 8 so pooling grids align.
    let s = random_dna(704, 5);
    let whole = TileOptions {
        tile: 1024,
        overlap: 0,
        rc_average: false,
    };
    let tiled = TileOptions {
        tile: 256,
        overlap: 32,
        rc_average: false,
    };
    assert_eq!(segment::window_starts(704, 256, 224), vec![0, 224, 448]);
    let (a, _) = segment::predict_region(&model, tok.as_ref(), &s, &whole, &|_| {}).unwrap();
    let counted = std::sync::atomic::AtomicU64::new(0);
    let (b, bm) = segment::predict_region(&model, tok.as_ref(), &s, &tiled, &|n| {
        counted.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    })
    .unwrap();
    assert_eq!(counted.into_inner(), 3 * 256);
    for i in (100..124).chain(324..380).chain(548..604) {
        for c in 0..k {
            let (x, y) = (a[i * k + c], b[i * k + c]);
            assert!((x - y).abs() < 1e-5, "base {i} class {c}: {x} vs {y}");
        }
    }
    let mut blended_differs = false;
    for i in 0..704 {
        let sum: f32 = b[i * k..(i + 1) * k].iter().sum();
        let msum: f32 = bm[i * k..(i + 1) * k].iter().sum();
        assert!((sum - 1.0).abs() < 1e-4 && (msum - 1.0).abs() < 1e-4);
        blended_differs |= (a[i * k] - b[i * k]).abs() > 1e-6;
    }
    // Near tile edges the context differs, so some values do (the check above is not vacuous).
    assert!(blended_differs);
}

#[test]
fn unet_segment_model_gradients_match_finite_differences() {
    check_segment_gradients(false);
}

#[test]
fn sub_pixel_unet_segment_model_gradients_match_finite_differences() {
    check_segment_gradients(true);
}

fn check_segment_gradients(shuffle: bool) {
    let dev = Device::Cpu;
    let cfg = tiny_model_config(2, shuffle);
    let w = Weights::new();
    let (p, b) = w.builders(9, DType::F64, &dev);
    let model = genolm::models::SegmentModel::new(&cfg, p, b).unwrap();
    let (bsz, len) = (2, 19); // odd length: exercises the crop / repeat of upsampling
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let ids: Vec<u32> = (0..bsz * len).map(|_| rng.random_range(5..10)).collect();
    let ids = Tensor::from_vec(ids, (bsz, len), &dev).unwrap();
    let y: Vec<u32> = (0..bsz * len * 2)
        .map(|_| rng.random_range(0..NUM_CLASSES as u32))
        .collect();
    let y = Tensor::from_vec(y, (bsz, len, 2), &dev).unwrap();
    let wts: Vec<f64> = (0..bsz * len * 2).map(|i| (i % 3) as f64).collect();
    let wts = Tensor::from_vec(wts, (bsz, len, 2), &dev).unwrap();
    let loss_of = || {
        let mut r = ChaCha8Rng::seed_from_u64(0);
        let mut ctx = Ctx {
            train: true,
            rng: &mut r,
        };
        let logits = model.forward(&ids, &mut ctx).unwrap();
        assert_eq!(logits.dims(), &[bsz, len, 2, NUM_CLASSES]);
        genolm::ops::cross_entropy_masked(&logits, &y, &wts).unwrap()
    };
    let grads = loss_of().backward().unwrap();
    let d = w.params.data().lock().unwrap();
    let mut names: Vec<_> = d.keys().cloned().collect();
    names.sort();
    assert!(names.iter().filter(|n| n.starts_with("head.")).count() >= 16);
    let eps = 1e-6;
    let mut checked = 0;
    for name in &names {
        let var = &d[name];
        let g = common::flat(
            grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{name}: no gradient")),
        );
        let base = common::flat(var.as_tensor());
        for i in [0, base.len() / 2, base.len() - 1] {
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
            let err = (num - g[i]).abs() / num.abs().max(g[i].abs()).max(1e-4);
            assert!(
                err < 1e-4,
                "{name}[{i}]: analytic {} numeric {num} (rel err {err:.2e})",
                g[i]
            );
            checked += 1;
        }
    }
    assert!(checked > 40);
}

/// The U-Net head written out with plain candle ops (candle's own conv via the composed
/// im2col path, max via reshape, nearest upsampling via index_select, exact GELU on tanh form).
#[test]
fn unet_head_matches_a_plain_composition() {
    check_head_composition(false);
}

/// Sub-pixel upsampling against an interleave written with `narrow` and `cat`.
#[test]
fn sub_pixel_unet_head_matches_a_plain_composition() {
    check_head_composition(true);
}

fn check_head_composition(shuffle: bool) {
    let dev = Device::Cpu;
    let cfg = tiny_model_config(2, shuffle);
    let w = Weights::new();
    let (p, b) = w.builders(21, DType::F64, &dev);
    let model = genolm::models::SegmentModel::new(&cfg, p, b).unwrap();
    let (bsz, len) = (2, 22);
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let ids: Vec<u32> = (0..bsz * len).map(|_| rng.random_range(0..10)).collect();
    let ids = Tensor::from_vec(ids, (bsz, len), &dev).unwrap();
    let mut r = ChaCha8Rng::seed_from_u64(0);
    let mut ctx = Ctx {
        train: false,
        rng: &mut r,
    };
    let feats = model.backbone.forward(&ids, &mut ctx).unwrap();
    let got = model.head.forward(&feats, &ids).unwrap();

    let t = w.tensors();
    let get = |n: &str| t[&format!("head.{n}")].clone();
    let conv = |x: &Tensor, n: &str| {
        let wt = get(&format!("{n}.weight"));
        let k = wt.dim(2).unwrap();
        genolm::ops::conv1d_composed(
            x,
            &wt,
            Some(&get(&format!("{n}.bias"))),
            1,
            (k - 1) / 2,
            1,
            1,
        )
        .unwrap()
    };
    let gelu = |x: &Tensor| {
        // tanh approximation, as ops::gelu_fused
        let c = (2.0f64 / std::f64::consts::PI).sqrt();
        let inner = ((x + (x.powf(3.0).unwrap() * 0.044715).unwrap()).unwrap() * c).unwrap();
        ((x * 0.5).unwrap() * (inner.tanh().unwrap() + 1.0).unwrap()).unwrap()
    };
    let pool2 = |x: &Tensor| {
        let (b, c, l) = x.dims3().unwrap();
        x.narrow(2, 0, l / 2 * 2)
            .unwrap()
            .reshape((b, c, l / 2, 2))
            .unwrap()
            .max(D::Minus1)
            .unwrap()
    };
    let up = |x: &Tensor, f: usize, to: usize| {
        let l = x.dim(2).unwrap();
        let idx: Vec<u32> = (0..to).map(|i| ((i / f).min(l - 1)) as u32).collect();
        x.index_select(&Tensor::from_vec(idx, to, &dev).unwrap(), 2)
            .unwrap()
    };
    let mut h = gelu(&conv(&feats, "proj"));
    let mut skips = vec![];
    for i in 0..2 {
        skips.push(h.clone());
        h = gelu(&conv(&pool2(&h), &format!("down{i}")));
    }
    for i in 0..2 {
        let s = &skips[1 - i];
        h = (gelu(&conv(&up(&h, 2, s.dim(2).unwrap()), &format!("up{i}"))) + s).unwrap();
    }
    let x = if shuffle {
        // Channel c * f + r at block j goes to channel c, base j * f + r (f = 2 here).
        let y = conv(&h, "lift");
        let (b, cf, l) = y.dims3().unwrap();
        let f = 2;
        let rows: Vec<Tensor> = (0..cf / f)
            .map(|c| {
                let mut cols = Vec::new();
                for j in 0..l {
                    for r in 0..f {
                        cols.push(y.narrow(1, c * f + r, 1).unwrap().narrow(2, j, 1).unwrap());
                    }
                }
                Tensor::cat(&cols, 2).unwrap()
            })
            .collect();
        let x = Tensor::cat(&rows, 1).unwrap();
        assert_eq!(x.dims(), &[b, cf / f, l * f]);
        genolm::models::unet::fit_len(&x, len).unwrap()
    } else {
        conv(&up(&h, 2, len), "lift")
    };
    let e = get("embed.weight")
        .index_select(&ids.flatten_all().unwrap(), 0)
        .unwrap()
        .reshape((bsz, len, 2))
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .contiguous()
        .unwrap();
    let h = gelu(&(x + conv(&e, "skip")).unwrap());
    let h = (gelu(&conv(&h, "refine")) + h).unwrap();
    let want = conv(&h, "out").transpose(1, 2).unwrap();
    let diff = (got - want)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert!(
        diff < 1e-10,
        "U-Net head differs from the plain composition by {diff}"
    );
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn segment_errors_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let fa = write(
        tmp.path(),
        "g.fa",
        &format!(">s1\n{}\n", String::from_utf8(random_dna(100, 2)).unwrap()),
    );
    let bad_gff = write(tmp.path(), "bad.gff3", &GFF.replace("s1\t", "chrX\t"));
    let out = tmp.path().join("run");
    let out_s = out.to_string_lossy().to_string();
    // `train --task segment` on `fa` with annotation `gff` and the extra arguments.
    let train = |gff: &str, extra: &[&str]| -> Vec<String> {
        let mut args = vec!["train", "--task", "segment", "--genome", &fa, "--gff", gff];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--out", &out_s]);
        args.into_iter().map(String::from).collect()
    };
    expect_error(&train(&bad_gff, &[]), "seqid 'chrX' is not a sequence of");
    let gff = write(tmp.path(), "ok.gff3", GFF);
    expect_error(
        &train(&gff, &["--holdout", "chr9"]),
        "--holdout chr9: not a record",
    );
    expect_error(
        &train(&gff, &["--tokenizer", "kmer:3"]),
        "one token per base",
    );
    expect_error(
        &train(&gff, &["--ema", "0.99"]),
        "--ema is for --task classify",
    );
    expect_error(
        &train(&gff, &["--model", "kmer-lr"]),
        "kmer-lr has one feature vector per sequence",
    );
    // A classification run given to annotate.
    let cls = tmp.path().join("cls");
    std::fs::create_dir_all(&cls).unwrap();
    write(
        &cls,
        "config.toml",
        "task = \"classify\"\ntokenizer = \"char\"\n",
    );
    expect_error(
        &[
            "annotate",
            "--model",
            &cls.to_string_lossy(),
            &fa,
            "--out",
            &tmp.path().join("p.gff3").to_string_lossy(),
        ],
        "trained for task 'classify'",
    );
}

#[test]
fn segment_runs_fine_tune_from_a_pretrained_backbone() {
    use genolm::train::classify::load_tensors;
    let tmp = tempfile::tempdir().unwrap();
    let fa = write(
        tmp.path(),
        "g.fa",
        &format!(">s1\n{}\n", String::from_utf8(random_dna(6000, 4)).unwrap()),
    );
    let gff = write(tmp.path(), "g.gff3", GFF);
    let cnn = write(tmp.path(), "cnn.toml", "width = 16\ndepth = 2\npool = 1\n");
    let unet = write(tmp.path(), "unet.toml", "width = 8\nlevels = 1\n");
    let pre = tmp.path().join("pre");
    run_ok(&[
        "pretrain",
        "--objective",
        "mlm",
        "--model",
        "cnn",
        "--model-config",
        &cnn,
        "--tokenizer",
        "char",
        "--genome",
        &fa,
        "--out",
        &pre.to_string_lossy(),
        "--seq-len",
        "256",
        "--batch",
        "4",
        "--max-steps",
        "3",
        "--seed",
        "2",
        "--quiet",
    ]);
    let source = load_tensors(&pre.join("model.safetensors"))
        .or_else(|_| load_tensors(&pre.join("last.safetensors")))
        .unwrap();
    let params = |t: &std::collections::HashMap<String, candle_core::Tensor>| {
        let mut v: Vec<(String, Vec<f32>)> = t
            .iter()
            .filter(|(k, _)| k.starts_with("backbone.") && !k.contains("running"))
            .map(|(k, x)| {
                (
                    k.clone(),
                    x.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                )
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let want = params(&source);
    assert!(!want.is_empty());
    // The arguments of a segment fine-tune run into `tmp/name`, and that directory.
    let seg = |name: &str, extra: &[&str]| {
        let out = tmp.path().join(name);
        let args = vec![
            "train",
            "--task",
            "segment",
            "--genome",
            &fa,
            "--gff",
            &gff,
            "--window",
            "512",
            "--batch-size",
            "4",
            "--epochs",
            "1",
            "--max-steps",
            "3",
            "--seed",
            "5",
            "--unet-config",
            &unet,
            "--signal-order",
            "2",
            "--quiet",
            "--init",
        ];
        let mut args: Vec<String> = args.into_iter().map(String::from).collect();
        args.push(pre.to_string_lossy().into_owned());
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(["--out".to_string(), out.to_string_lossy().into_owned()]);
        (args, out)
    };
    // Backbone learning rate 0: the trained backbone is the pretrained one, the head is not.
    let (args, run) = seg("lr0", &["--backbone-lr-scale", "0"]);
    run_ok(&args);
    let got = load_tensors(&run.join("model.safetensors")).unwrap();
    assert_eq!(
        params(&got),
        want,
        "backbone changed with --backbone-lr-scale 0"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["init"]["backbone_lr_scale"], 0.0);
    assert_eq!(report["model"], "cnn");
    // Frozen for every step: the same; unfrozen with the default scale (0.1): it moves.
    let (args, run) = seg(
        "frozen",
        &["--freeze-backbone-steps", "100", "--backbone-lr-scale", "1"],
    );
    run_ok(&args);
    assert_eq!(
        params(&load_tensors(&run.join("model.safetensors")).unwrap()),
        want
    );
    let (args, run) = seg("tuned", &[]);
    run_ok(&args);
    assert_ne!(
        params(&load_tensors(&run.join("model.safetensors")).unwrap()),
        want
    );
    // A different backbone named next to --init is refused in one line.
    expect_error(&seg("bad", &["--model", "hyena"]).0, "its backbone is cnn");
}

/// SARS-CoV-2 from the shared data with a small model config in `tmp`; `None` (the test skips)
/// when the data is missing.
struct Sars {
    fa: String,
    gff: String,
    unet: String,
    cnn: String,
}

impl Sars {
    fn new(tmp: &Path) -> Option<Self> {
        let dir = genolm::io::shared_data("genomes/sars_cov_2")?;
        Some(Sars {
            fa: dir.join("genome.fasta").to_string_lossy().into_owned(),
            gff: dir.join("annotation.gff3").to_string_lossy().into_owned(),
            unet: write(tmp, "unet.toml", "width = 16\nlevels = 1\n"),
            cnn: write(tmp, "cnn.toml", "width = 16\ndepth = 2\n"),
        })
    }

    /// `genolm --threads 2 train --task segment` on 1 kb windows, seed 3, then `extra`.
    fn train_args(&self, out: &Path, extra: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = [
            "--threads",
            "2",
            "train",
            "--task",
            "segment",
            "--genome",
            &self.fa,
            "--gff",
            &self.gff,
            "--window",
            "1024",
            "--seed",
            "3",
            "--quiet",
            "--unet-config",
            &self.unet,
            "--model-config",
            &self.cnn,
        ]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect();
        a.extend(["--out".to_string(), out.to_string_lossy().into_owned()]);
        a
    }
}

#[test]
fn train_segment_and_annotate_sars_cov_2() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(sars) = Sars::new(tmp.path()) else {
        return;
    };
    let fa = sars.fa.clone();
    let run_a = tmp.path().join("a");
    let run_b = tmp.path().join("b");
    let train = |out: &Path| run_ok(&sars.train_args(out, &["--batch-size", "8", "--epochs", "2"]));
    train(&run_a);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_a.join("report.json")).unwrap()).unwrap();
    let cds = &report["per_base"]["per_class"]["cds"];
    assert!(cds["support"].as_u64().unwrap() > 0);
    assert!(cds["f1"].as_f64().unwrap() >= 0.0);
    let log = std::fs::read_to_string(run_a.join("metrics.jsonl")).unwrap();
    let epochs: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "epoch")
        .collect();
    assert_eq!(epochs.len(), 2);
    assert!(epochs[1]["valid"]["per_class"]["cds"]["f1"].is_number());
    // Same seed and threads: the same numbers.
    train(&run_b);
    let rb: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_b.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["per_base"], rb["per_base"]);
    // The decoder's signals and settings, chosen on the validation region, deterministically.
    assert!(run_a.join("signals.json").exists());
    assert!(run_a.join("decoder.json").exists());
    let last = genolm::train::classify::load_tensors(&run_a.join("last.safetensors")).unwrap();
    assert!(last.contains_key(genolm::train::classify::STATE_TENSOR));
    let ann = &report["annotation"];
    assert!(ann["decoder"]["nn_weight"].as_f64().unwrap() > 0.0, "{ann}");
    assert!([2, 3, 4, 5].contains(&ann["signal_order"].as_u64().unwrap()));
    assert!(
        ann["valid"]["objective"].as_f64().unwrap()
            >= ann["valid_network_only"]["objective"].as_f64().unwrap()
    );
    assert_eq!(report["annotation"], rb["annotation"]);
    // Signal weights without signals are refused.
    expect_error(
        &[
            "annotate",
            "--model",
            &run_a.to_string_lossy(),
            &fa,
            "--out",
            &tmp.path().join("x.gff3").to_string_lossy(),
            "--no-signals",
            "--content-weight",
            "1",
        ],
        "signals.json",
    );
    assert!(!tmp.path().join("x.gff3").exists());
    // Classification tools refuse the run.
    expect_error(
        &["predict", "--model", &run_a.to_string_lossy(), &fa],
        "genolm annotate",
    );

    // Annotate in small decode chunks (exercises the streaming), with a bedGraph.
    let gff_out = tmp.path().join("pred.gff3");
    let bed = tmp.path().join("cds.bedgraph");
    run_ok(&[
        "--threads",
        "2",
        "annotate",
        "--model",
        &run_a.to_string_lossy(),
        &fa,
        "--out",
        &gff_out.to_string_lossy(),
        "--bed",
        &bed.to_string_lossy(),
        "--mode",
        "prokaryote",
        "--chunk",
        "7000",
        "--chunk-overlap",
        "1500",
        "--tile",
        "2048",
        "--overlap",
        "256",
        "--quiet",
    ]);
    let text = std::fs::read_to_string(&bed).unwrap();
    let mut covered = 0usize;
    let mut next = 0usize;
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 4, "{line}");
        let (s, e): (usize, usize) = (f[1].parse().unwrap(), f[2].parse().unwrap());
        assert_eq!(s, next, "bedGraph intervals must tile the sequence");
        next = e;
        covered += e - s;
        let v: f64 = f[3].parse().unwrap();
        assert!((0.0..=1.0).contains(&v));
    }
    assert_eq!(covered, 29903);
    let ann = genolm::io::gff::read(&gff_out.to_string_lossy()).unwrap();
    let recs = genolm::io::fasta::read_records(&fa, Default::default()).unwrap();
    ann.resolve_records(&fa, &recs).unwrap();
    for g in &ann.genes {
        assert_eq!(g.seqid, "NC_045512.2");
        assert!(g.span.end <= 29903);
    }
}

/// A segment run killed (SIGKILL) mid-epoch and resumed ends with the same weights, report and
/// metrics log as an uninterrupted run.
#[test]
fn killed_segment_run_resumes_to_identical_weights_and_report() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(sars) = Sars::new(tmp.path()) else {
        return;
    };
    let args = |out: &Path, resume: bool| {
        let mut extra = vec![
            "--batch-size",
            "4",
            "--epochs",
            "3",
            "--checkpoint-every",
            "2",
        ];
        if resume {
            extra.push("--resume");
        }
        sars.train_args(out, &extra)
    };
    let full = tmp.path().join("full");
    run_ok(&args(&full, false));
    let part = tmp.path().join("part");
    // 13 steps per epoch: killed in the second epoch, after a checkpoint.
    common::kill_after_checkpoint(&args(&part, false), &part, 18);
    let o = run_ok(&args(&part, true));
    // It continued from the checkpoint rather than starting again.
    let said = String::from_utf8_lossy(&o.stderr);
    let at: u64 = said
        .split("at step ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no resume message: {said}"));
    assert!((16..39).contains(&at), "resumed at step {at}");
    let read = |d: &Path, f: &str| std::fs::read(d.join(f)).unwrap();
    assert_eq!(
        read(&full, "model.safetensors"),
        read(&part, "model.safetensors")
    );
    let report = |d: &Path| {
        let mut v: serde_json::Value = serde_json::from_slice(&read(d, "report.json")).unwrap();
        // Wall-clock figures differ between runs.
        v.as_object_mut().unwrap().remove("seconds");
        v
    };
    assert_eq!(report(&full)["per_base"], report(&part)["per_base"]);
    assert_eq!(report(&full)["annotation"], report(&part)["annotation"]);
    let steps = |d: &Path| {
        String::from_utf8(read(d, "metrics.jsonl"))
            .unwrap()
            .lines()
            .filter(|l| l.contains("\"kind\":\"step\""))
            .count()
    };
    assert_eq!(steps(&full), 39);
    assert_eq!(steps(&part), 39, "the resumed log repeats or skips steps");
}

/// A GFF3 mirrored on a sequence of `len` bases: every feature reverse-complemented.
fn mirrored(gff: &str, len: usize) -> String {
    gff.lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            if f.len() < 9 {
                return l.to_string();
            }
            let (s, e): (usize, usize) = (f[3].parse().unwrap(), f[4].parse().unwrap());
            let strand = if f[6] == "+" { "-" } else { "+" };
            let (ns, ne) = ((len + 1 - e).to_string(), (len + 1 - s).to_string());
            let mut g = f.clone();
            g[3] = &ns;
            g[4] = &ne;
            g[6] = strand;
            g.join("\t")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn framed_labels_give_codon_positions_that_survive_the_reverse_complement() {
    use genolm::io::labels::{coarse, CDS1, CDS2, NUM_FRAMED};
    // A third gene whose second CDS part starts mid-codon (phase 2 after a 10-base part), once
    // with its phase and once without (then the count of CDS bases before it decides).
    let extra = "s1\tt\tgene\t92\t99\t.\t+\t.\tID=g3\n";
    let phased = format!(
        "{GFF}s1\tt\tmRNA\t1\t9\t.\t+\t.\tID=t3\ns1\tt\tCDS\t1\t4\t.\t+\t0\tParent=t3\n\
         s1\tt\tCDS\t7\t9\t.\t+\t2\tParent=t3\n{extra}"
    );
    for gff in [
        phased.clone(),
        phased.replace("+\t2\tParent=t3", "+\t.\tParent=t3"),
    ] {
        let ann = genolm::io::gff::parse_str(&gff, "t.gff3").unwrap();
        let t = LabelTracks::from_genes_framed(100, &ann.genes);
        // Plus gene: CDS 15..30 then 40..55, codon positions counted across the intron.
        assert_eq!(t.plus[15], CDS);
        assert_eq!(t.plus[16], CDS1);
        assert_eq!(t.plus[17], CDS2);
        assert_eq!(t.plus[29], CDS2);
        assert_eq!(t.plus[40], CDS);
        assert_eq!(t.plus[35], INTRON);
        // Minus gene: CDS 75..90, read from its 5' end at 89.
        assert_eq!(t.minus[89], CDS);
        assert_eq!(t.minus[88], CDS1);
        assert_eq!(t.minus[75], CDS2);
        // Mid-codon part: 4 bases (0, 1, 2, 0), then the part starts at position 1.
        assert_eq!(&t.plus[0..4], &[CDS, CDS1, CDS2, CDS]);
        assert_eq!(&t.plus[6..9], &[CDS1, CDS2, CDS]);
        // Only CDS changes.
        let c = LabelTracks::from_genes(100, &ann.genes);
        assert!(t.plus.iter().zip(&c.plus).all(|(a, b)| coarse(*a) == *b));
        assert!(t.minus.iter().zip(&c.minus).all(|(a, b)| coarse(*a) == *b));
    }
    // The reverse complement of a window (bases, tracks reversed and swapped) has the framed
    // tracks of the mirrored annotation: codon positions are in the gene's direction.
    let ann = genolm::io::gff::parse_str(&phased, "t.gff3").unwrap();
    let t = LabelTracks::from_genes_framed(100, &ann.genes);
    let mut data = synthetic_genome();
    data.records[0].tracks = StrandTracks {
        plus: t.plus.clone(),
        minus: t.minus.clone(),
    };
    let ex = whole_record();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let (_, r) = segment::example_window(&data, &ex, 100, 0, true, &mut rng);
    let m = genolm::io::gff::parse_str(&mirrored(&phased, 100), "m.gff3").unwrap();
    let mt = LabelTracks::from_genes_framed(100, &m.genes);
    assert_eq!(r.plus, mt.plus);
    assert_eq!(r.minus, mt.minus);
    // Loss weights: each codon position takes the CDS weight.
    let w = vec![1.0, 2.0, 5.0, 3.0, 4.0, 1.5];
    let fw = segment::model_class_weights(&w, NUM_FRAMED);
    assert_eq!(fw, vec![1.0, 2.0, 5.0, 3.0, 4.0, 1.5, 5.0, 5.0]);
    assert_eq!(segment::model_class_weights(&w, NUM_CLASSES), w);
    // Confusion counts of framed rows: classes summed, codon positions scored apart.
    let mut conf = segment::BaseConfusion::new();
    let mut row = vec![0.0f32; NUM_FRAMED];
    row[usize::from(CDS1)] = 0.4;
    row[usize::from(CDS2)] = 0.3;
    row[usize::from(INTRON)] = 0.3;
    conf.add(&row, &[CDS2], NUM_FRAMED);
    assert_eq!(conf.counts[usize::from(CDS)][usize::from(CDS)], 1);
    assert_eq!((conf.frame_bases, conf.frame_correct), (1, 0));
    assert!((conf.nll - (-(0.3f64).ln())).abs() < 1e-6);
}

/// A held-out record gets decoded-gene figures in the report, in full and in the coding view.
#[test]
fn held_out_record_is_scored_in_full_and_coding_views() {
    let tmp = tempfile::tempdir().unwrap();
    let seq = |seed| String::from_utf8(random_dna(3000, seed)).unwrap();
    let fa = write(
        tmp.path(),
        "g.fa",
        &format!(">s1\n{}\n>s2\n{}\n", seq(6), seq(7)),
    );
    let gff = write(
        tmp.path(),
        "g.gff3",
        &format!(
            "{GFF}{}",
            GFF.replace("##gff-version 3\n", "")
                .replace("s1\t", "s2\t")
                .replace("=g", "=h")
                .replace("=t", "=u")
        ),
    );
    let cnn = write(tmp.path(), "cnn.toml", "width = 8\ndepth = 1\npool = 1\n");
    let unet = write(tmp.path(), "unet.toml", "width = 8\nlevels = 1\n");
    let out = tmp.path().join("run");
    let base: Vec<String> = [
        "train",
        "--task",
        "segment",
        "--genome",
        &fa,
        "--gff",
        &gff,
        "--holdout",
        "s2",
        "--window",
        "512",
        "--batch-size",
        "4",
        "--epochs",
        "1",
        "--max-steps",
        "2",
        "--seed",
        "1",
        "--model-config",
        &cnn,
        "--unet-config",
        &unet,
        "--signal-order",
        "2",
        "--quiet",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    let mut a = base.clone();
    a.extend(["--out".to_string(), out.to_string_lossy().into_owned()]);
    run_ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let (full, coding) = (
        &report["annotation"]["test"],
        &report["annotation"]["test_coding"],
    );
    assert!(coding["exon"]["cds_unique"]["f1"].is_number(), "{coding}");
    // The coding view keeps every CDS base: base.cds is the same; exon bases are CDS bases.
    assert_eq!(full["base"]["cds"], coding["base"]["cds"]);
    assert_eq!(coding["base"]["exon"], coding["base"]["cds"]);
    // Reference exons on s2: 3 in full (two UTR-bounded), 3 CDS parts.
    let refs = |v: &serde_json::Value, f: &str| {
        v["exon"][f]["tp"].as_u64().unwrap() + v["exon"][f]["fn"].as_u64().unwrap()
    };
    assert_eq!(refs(full, "all"), 3);
    assert_eq!(refs(coding, "all"), 3);
    assert_eq!(refs(coding, "all"), refs(full, "cds"));
    assert_eq!(report["annotation"]["mode"], "eukaryote");
    let trials = |run: &Path| {
        let d: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("decoder.json")).unwrap())
                .unwrap();
        d["trials"].as_array().unwrap().len()
    };
    // 121 weight mixes × 5 gene × 5 intron penalties, then 25 × 5 frame weights.
    assert_eq!(trials(&out), 3150);

    // Prokaryote grammar: tuned without intron penalties, stored, and annotate's default.
    let prok = tmp.path().join("prok");
    let mut a = base;
    a.extend([
        "--mode".to_string(),
        "prokaryote".to_string(),
        "--out".to_string(),
        prok.to_string_lossy().into_owned(),
    ]);
    run_ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let cfg = std::fs::read_to_string(prok.join("config.toml")).unwrap();
    assert!(cfg.contains("mode = \"prokaryote\""), "{cfg}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(prok.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["annotation"]["mode"], "prokaryote");
    // 121 mixes × 5 gene penalties, one intron penalty; then 25 × 5 frame weights.
    assert_eq!(trials(&prok), 605 + 125);
    let gff_out = tmp.path().join("p.gff3");
    run_ok(&[
        "annotate",
        "--model",
        &prok.to_string_lossy(),
        &fa,
        "--out",
        &gff_out.to_string_lossy(),
        "--nn-weight",
        "1",
        "--content-weight",
        "0",
        "--site-weight",
        "0",
        "--gene-penalty",
        "0",
    ]);
    let ann = genolm::io::gff::read(&gff_out.to_string_lossy()).unwrap();
    assert!(!ann.genes.is_empty());
    for g in &ann.genes {
        for t in &g.transcripts {
            assert_eq!(t.exons.len(), 1, "a spliced gene in prokaryote mode: {g:?}");
        }
    }
}
