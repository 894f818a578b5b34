//! Fine-tuning from a pretrained backbone (`genolm train --init RUN_DIR`): the backbone tensors
//! are loaded, the head is fresh, a frozen backbone does not move, the backbone learning-rate
//! scale is applied, a pretrain-style run directory (backbone tensors only) works, mismatches are
//! one-line errors, and a killed fine-tuning run resumes exactly.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::Tensor;
use genolm::train::classify::{build_model, load_tensors, save_tensors};
use genolm::train::finetune;
use genolm::train::run::RunConfig;

mod common;

use common::{demo_slice, expect_error, run_ok};

/// `genolm train` on `spec` into `out` with small settings plus `extra` (an option of `extra`
/// given a value replaces the default's).
fn train<'a>(spec: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "--threads",
        "2",
        "train",
        "--train",
        spec,
        "--out",
        out,
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--seed",
        "5",
        "--quiet",
        "--patience",
        "0",
    ];
    let mut i = 0;
    while i < extra.len() {
        let has_value = i + 1 < extra.len() && !extra[i + 1].starts_with("--");
        match v.iter().position(|x| *x == extra[i]) {
            Some(p) if has_value => {
                v[p + 1] = extra[i + 1];
                i += 2;
            }
            _ => {
                v.push(extra[i]);
                if has_value {
                    v.push(extra[i + 1]);
                }
                i += 1 + usize::from(has_value);
            }
        }
    }
    v
}

/// A trained gb-cnn classify run on demo records 0..100 per class: the backbone source.
fn source_run(tmp: &Path) -> PathBuf {
    let spec = demo_slice(&tmp.join("src_data"), 0, 100);
    let dir = tmp.join("source");
    run_ok(&train(
        &spec,
        dir.to_str().unwrap(),
        &["--model", "gb-cnn", "--seed", "1"],
    ));
    dir
}

fn tensors(path: &Path) -> HashMap<String, Tensor> {
    load_tensors(path).unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// Names of trainable backbone parameters (batch-norm running statistics excluded).
fn backbone_params(t: &HashMap<String, Tensor>) -> Vec<String> {
    let mut names: Vec<String> = t
        .keys()
        .filter(|k| k.starts_with("backbone.") && !k.contains("running"))
        .cloned()
        .collect();
    names.sort();
    names
}

fn same(a: &HashMap<String, Tensor>, b: &HashMap<String, Tensor>, names: &[String]) -> bool {
    names.iter().all(|k| values(&a[k]) == values(&b[k]))
}

fn head_names(t: &HashMap<String, Tensor>) -> Vec<String> {
    let mut names: Vec<String> = t
        .keys()
        .filter(|k| k.starts_with("head."))
        .cloned()
        .collect();
    names.sort();
    names
}

/// The initial (untrained) weights of a run directory's model, from its config and seed.
fn initial_weights(run: &Path) -> HashMap<String, Tensor> {
    let text = std::fs::read_to_string(run.join("config.toml")).unwrap();
    let cfg: RunConfig = toml::from_str(&text).unwrap();
    let (_, w) = build_model(&cfg.model, cfg.train.seed).unwrap();
    w.tensors()
}

#[test]
fn init_loads_the_backbone_adds_a_fresh_head_freezes_and_scales_the_lr() {
    let tmp = tempfile::tempdir().unwrap();
    let src = source_run(tmp.path());
    let src_t = tensors(&src.join("model.safetensors"));
    let bb = backbone_params(&src_t);
    assert!(!bb.is_empty());

    // Library level: every backbone.* tensor (parameters and buffers) equals the source's.
    let s = finetune::read_source(&src).unwrap();
    assert_eq!(s.backbone.name(), "gb-cnn");
    assert_eq!(s.weights, src.join("model.safetensors"));
    let text = std::fs::read_to_string(src.join("config.toml")).unwrap();
    let cfg: RunConfig = toml::from_str(&text).unwrap();
    let (_, w) = build_model(&cfg.model, 99).unwrap();
    let n = finetune::load_backbone(&w, &s).unwrap();
    let loaded = w.tensors();
    let all_bb: Vec<String> = loaded
        .keys()
        .filter(|k| k.starts_with("backbone."))
        .cloned()
        .collect();
    assert_eq!(n, all_bb.len());
    assert!(all_bb.iter().any(|k| k.contains("running")), "{all_bb:?}");
    assert!(same(&loaded, &src_t, &all_bb));
    // ... and the head is not the source's.
    let heads = head_names(&src_t);
    assert!(!heads.is_empty());
    assert!(heads
        .iter()
        .all(|k| values(&loaded[k]) != values(&src_t[k])));

    // Fine-tune on other records with the backbone frozen for 3 steps: after 3 steps the
    // backbone parameters are the source's and the head has moved away from its fresh init.
    let spec = demo_slice(&tmp.path().join("ft_data"), 100, 100);
    let src_s = src.to_str().unwrap();
    let f3 = tmp.path().join("frozen3");
    run_ok(&train(
        &spec,
        f3.to_str().unwrap(),
        &[
            "--init",
            src_s,
            "--freeze-backbone-steps",
            "3",
            "--max-steps",
            "3",
        ],
    ));
    let t3 = tensors(&f3.join("model.safetensors"));
    assert!(same(&t3, &src_t, &bb), "frozen backbone moved");
    let init3 = initial_weights(&f3);
    let h3 = head_names(&t3);
    assert!(!same(&t3, &init3, &h3), "head did not train");
    // The fresh head is the seed's initialisation, not the source's head.
    assert!(!same(&init3, &src_t, &h3));
    // One step more, with the backbone unfrozen: it moves.
    let f4 = tmp.path().join("frozen3_step4");
    run_ok(&train(
        &spec,
        f4.to_str().unwrap(),
        &[
            "--init",
            src_s,
            "--freeze-backbone-steps",
            "3",
            "--max-steps",
            "4",
        ],
    ));
    assert!(!same(&tensors(&f4.join("model.safetensors")), &src_t, &bb));

    // Learning-rate scale 0: one step leaves the backbone where it was, the head moves.
    let z = tmp.path().join("scale0");
    run_ok(&train(
        &spec,
        z.to_str().unwrap(),
        &[
            "--init",
            src_s,
            "--backbone-lr-scale",
            "0",
            "--max-steps",
            "1",
        ],
    ));
    let tz = tensors(&z.join("model.safetensors"));
    assert!(same(&tz, &src_t, &bb));
    assert!(!same(&tz, &initial_weights(&z), &head_names(&tz)));
    // The default scale (0.1) moves the backbone in one step, and less than scale 1 does.
    let d = tmp.path().join("scale_default");
    run_ok(&train(
        &spec,
        d.to_str().unwrap(),
        &["--init", src_s, "--max-steps", "1"],
    ));
    let one = tmp.path().join("scale1");
    run_ok(&train(
        &spec,
        one.to_str().unwrap(),
        &[
            "--init",
            src_s,
            "--backbone-lr-scale",
            "1",
            "--max-steps",
            "1",
        ],
    ));
    let dist = |t: &HashMap<String, Tensor>| -> f64 {
        bb.iter()
            .map(|k| {
                values(&t[k])
                    .iter()
                    .zip(values(&src_t[k]))
                    .map(|(a, b)| ((a - b) as f64).powi(2))
                    .sum::<f64>()
            })
            .sum::<f64>()
            .sqrt()
    };
    let (d01, d1) = (
        dist(&tensors(&d.join("model.safetensors"))),
        dist(&tensors(&one.join("model.safetensors"))),
    );
    assert!(d01 > 0.0 && d01 < d1, "scale 0.1 moved {d01}, scale 1 {d1}");
    // The run records where it came from and how.
    let cfg = std::fs::read_to_string(d.join("config.toml")).unwrap();
    assert!(cfg.contains(&format!("init = \"{src_s}\"")), "{cfg}");
    assert!(cfg.contains("backbone_lr_scale = 0.1"), "{cfg}");
    assert!(cfg.contains("freeze_backbone_steps = 0"), "{cfg}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("report.json")).unwrap()).unwrap();
    assert_eq!(r["model"], "gb-cnn");
    assert_eq!(r["init"]["backbone_lr_scale"], 0.1);
    // A fine-tuned run directory evaluates like any other.
    run_ok(&[
        "eval",
        "--model",
        d.to_str().unwrap(),
        "--data",
        &spec,
        "--json",
    ]);

    // Mismatches are one line, exit code 2.
    let out = tmp.path().join("bad");
    let out_s = out.to_str().unwrap();
    expect_error(
        &train(&spec, out_s, &["--init", src_s, "--tokenizer", "kmer:3"]),
        "trained with tokenizer 'char'",
    );
    expect_error(
        &train(&spec, out_s, &["--init", src_s, "--model", "cnn"]),
        "its backbone is gb-cnn, not --model cnn",
    );
    let mc = tmp.path().join("other.toml");
    std::fs::write(&mc, "kernel_size = 5\n").unwrap();
    expect_error(
        &train(
            &spec,
            out_s,
            &["--init", src_s, "--model-config", mc.to_str().unwrap()],
        ),
        "differs from the source's backbone",
    );
    expect_error(
        &train(&spec, out_s, &["--init", tmp.path().to_str().unwrap()]),
        "not a genolm run directory",
    );
    expect_error(
        &train(&spec, out_s, &["--init", src_s, "--backbone-lr-scale=-1"]),
        "--backbone-lr-scale",
    );
    // Restating the source's model is fine.
    run_ok(&train(
        &spec,
        out_s,
        &["--init", src_s, "--model", "gb-cnn", "--max-steps", "1"],
    ));
}

#[test]
fn a_pretrain_style_run_dir_with_backbone_tensors_only_initialises_a_classifier() {
    let tmp = tempfile::tempdir().unwrap();
    let src = source_run(tmp.path());
    let src_t = tensors(&src.join("model.safetensors"));
    // A hand-made directory like `genolm pretrain` writes: config.toml with another task,
    // seq_len and no classes or head, and last.safetensors holding only backbone.* tensors
    // (plus optimizer state).
    let cfg: toml::Table =
        toml::from_str(&std::fs::read_to_string(src.join("config.toml")).unwrap()).unwrap();
    let model = cfg["model"].as_table().unwrap();
    let mut m = toml::Table::new();
    m.insert("vocab_size".into(), model["vocab_size"].clone());
    m.insert("seq_len".into(), toml::Value::Integer(4096));
    m.insert("backbone".into(), model["backbone"].clone());
    let mut pre = toml::Table::new();
    pre.insert("task".into(), "pretrain".into());
    pre.insert("tokenizer".into(), "char".into());
    pre.insert("model".into(), toml::Value::Table(m));
    let pdir = tmp.path().join("pretrained");
    std::fs::create_dir_all(&pdir).unwrap();
    std::fs::write(pdir.join("config.toml"), toml::to_string(&pre).unwrap()).unwrap();
    let mut only_bb: HashMap<String, Tensor> = src_t
        .iter()
        .filter(|(k, _)| k.starts_with("backbone."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let extra = only_bb.values().next().unwrap().zeros_like().unwrap();
    only_bb.insert("adam.m.backbone.whatever".into(), extra);
    save_tensors(&pdir.join("last.safetensors"), &only_bb).unwrap();

    let spec = demo_slice(&tmp.path().join("ft"), 100, 60);
    let p_s = pdir.to_str().unwrap();
    let out = tmp.path().join("ft_run");
    run_ok(&train(
        &spec,
        out.to_str().unwrap(),
        &[
            "--init",
            p_s,
            "--freeze-backbone-steps",
            "2",
            "--max-steps",
            "2",
        ],
    ));
    let t = tensors(&out.join("model.safetensors"));
    assert!(same(&t, &src_t, &backbone_params(&src_t)));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(r["init"]["task"], "pretrain");

    // A missing backbone tensor, then a mis-shaped one: clear errors naming the tensor.
    let bad_out = tmp.path().join("bad").to_string_lossy().to_string();
    let mut names: Vec<String> = only_bb
        .keys()
        .filter(|k| k.starts_with("backbone."))
        .cloned()
        .collect();
    names.sort();
    let victim = names[0].clone();
    let mut missing = only_bb.clone();
    missing.remove(&victim);
    save_tensors(&pdir.join("last.safetensors"), &missing).unwrap();
    expect_error(
        &train(&spec, &bad_out, &["--init", p_s]),
        &format!("checkpoint has no tensor '{victim}'"),
    );
    let mut reshaped = only_bb.clone();
    let v = reshaped[&victim].flatten_all().unwrap();
    reshaped.insert(victim.clone(), v.narrow(0, 0, v.dims()[0] - 1).unwrap());
    save_tensors(&pdir.join("last.safetensors"), &reshaped).unwrap();
    expect_error(
        &train(&spec, &bad_out, &["--init", p_s]),
        &format!("tensor '{victim}' has shape"),
    );
    // No checkpoint at all.
    std::fs::remove_file(pdir.join("last.safetensors")).unwrap();
    expect_error(
        &train(&spec, &bad_out, &["--init", p_s]),
        "no model.safetensors or last.safetensors",
    );
}

#[test]
fn a_killed_fine_tuning_run_resumes_to_identical_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let src = source_run(tmp.path());
    let spec = demo_slice(&tmp.path().join("ft"), 100, 150);
    let src_s = src.to_str().unwrap().to_string();
    let extra = [
        "--init",
        &src_s,
        "--freeze-backbone-steps",
        "8",
        "--checkpoint-every",
        "3",
        "--epochs",
        "3",
    ];
    let full = tmp.path().join("full");
    run_ok(&train(&spec, full.to_str().unwrap(), &extra));

    let part = tmp.path().join("part");
    let part_s = part.to_string_lossy().to_string();
    // Kill (SIGKILL) once a mid-epoch checkpoint exists and training has moved past it.
    common::kill_after_checkpoint(&train(&spec, &part_s, &extra), &part, 5);
    let mut resume = extra.to_vec();
    resume.push("--resume");
    run_ok(&train(&spec, &part_s, &resume));
    assert_eq!(
        std::fs::read(full.join("model.safetensors")).unwrap(),
        std::fs::read(part.join("model.safetensors")).unwrap()
    );
    // Weights and optimizer state of the last checkpoint too (its embedded run state holds the
    // log length, which depends on the timing figures in the log).
    let (a, b) = (
        tensors(&full.join("last.safetensors")),
        tensors(&part.join("last.safetensors")),
    );
    let mut names: Vec<String> = a
        .keys()
        .filter(|k| k.as_str() != genolm::train::classify::STATE_TENSOR)
        .cloned()
        .collect();
    names.sort();
    assert!(names.iter().any(|k| k.starts_with("adam.t.")));
    assert_eq!(a.len(), b.len());
    for k in &names {
        let (x, y) = (
            a[k].flatten_all()
                .unwrap()
                .to_dtype(candle_core::DType::F64)
                .unwrap(),
            b[k].flatten_all()
                .unwrap()
                .to_dtype(candle_core::DType::F64)
                .unwrap(),
        );
        assert_eq!(
            x.to_vec1::<f64>().unwrap(),
            y.to_vec1::<f64>().unwrap(),
            "{k}"
        );
    }
    let log = std::fs::read_to_string(part.join("metrics.jsonl")).unwrap();
    let full_log = std::fs::read_to_string(full.join("metrics.jsonl")).unwrap();
    assert_eq!(log.lines().count(), full_log.lines().count());
    // Resuming with other fine-tuning options is refused.
    let mut other = extra.to_vec();
    other[3] = "2";
    other.push("--resume");
    expect_error(&train(&spec, &part_s, &other), "different configuration");
}
