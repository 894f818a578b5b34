//! Shared helpers of the test files: seeded random tensors, the f64 finite-difference check
//! (central differences, eps 1e-6; an element passes when
//! |analytic - numeric| <= 1e-6 * max(|analytic|, |numeric|) + 1e-8), and killing a training
//! run mid-way for the resume tests, and running the `genolm` binary (with the checks that a run
//! succeeds, and that bad input fails in one line with exit code 2).
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Result, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Finite-difference step.
pub const FD_EPS: f64 = 1e-6;
/// Relative tolerance of the gradient check.
pub const REL_TOL: f64 = 1e-6;
/// Absolute tolerance of the gradient check.
pub const ABS_TOL: f64 = 1e-8;

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

pub fn rand_vec(r: &mut ChaCha8Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| r.random::<f64>() * 2.0 - 1.0).collect()
}

pub fn rand_t(r: &mut ChaCha8Rng, shape: &[usize]) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(rand_vec(r, n), shape, &Device::Cpu).unwrap()
}

/// `n` seeded values uniform in `[lo, hi)` (xorshift64, the same on every machine).
pub fn uniform_values(n: usize, seed: u64, lo: f64, hi: f64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            lo + (hi - lo) * ((s >> 11) as f64 / (1u64 << 53) as f64)
        })
        .collect()
}

/// Largest `|a - b|` relative to the largest `|b|` (at least 1e-30); the lengths must match.
pub fn max_rel_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    let scale = b.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-30);
    a.iter().zip(b).fold(0f64, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// Every value of `t` (any device, any float dtype) as f64, flattened.
pub fn flat(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

/// Check analytic against numeric gradients of `sum(f(inputs) * R)`; returns the worst
/// relative error `|a - n| / max(|a|, |n|, 1e-3)` seen.
pub fn grad_check<F>(name: &str, inputs: &[Tensor], f: F) -> f64
where
    F: Fn(&[Tensor]) -> Result<Tensor>,
{
    let vars: Vec<Var> = inputs
        .iter()
        .map(|t| Var::from_tensor(t).unwrap())
        .collect();
    let var_ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let out = f(&var_ts).unwrap();
    let weights = rand_t(&mut rng(0xfeed), out.dims());
    let loss_of = |ts: &[Tensor]| -> f64 {
        let o = f(ts).unwrap();
        (o * &weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    let loss = (out * &weights).unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    let mut worst = 0.0f64;
    for (i, v) in vars.iter().enumerate() {
        let g = grads
            .get(v.as_tensor())
            .unwrap_or_else(|| panic!("{name}: no gradient for input {i}"));
        assert_eq!(
            g.dims(),
            inputs[i].dims(),
            "{name}: gradient shape of input {i}"
        );
        let analytic = flat(g);
        let base = flat(&inputs[i]);
        for j in 0..base.len() {
            let eval = |delta: f64| {
                let mut p = base.clone();
                p[j] += delta;
                let mut ts: Vec<Tensor> = inputs.to_vec();
                ts[i] = Tensor::from_vec(p, inputs[i].dims(), &Device::Cpu).unwrap();
                loss_of(&ts)
            };
            let numeric = (eval(FD_EPS) - eval(-FD_EPS)) / (2.0 * FD_EPS);
            let a = analytic[j];
            let diff = (a - numeric).abs();
            let scale = a.abs().max(numeric.abs());
            assert!(
                diff <= REL_TOL * scale + ABS_TOL,
                "{name}: input {i} element {j}: analytic {a} vs numeric {numeric}"
            );
            worst = worst.max(diff / scale.max(1e-3));
        }
    }
    println!("{name}: worst relative gradient error {worst:.2e}");
    worst
}

/// Run `genolm args` and SIGKILL it once `dir` has a checkpoint (`state.json`) and training has
/// logged at least `min_steps` steps (moved past it); panics if it finished first.
pub fn kill_after_checkpoint<S: AsRef<OsStr>>(args: &[S], dir: &Path, min_steps: usize) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    loop {
        let log = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap_or_default();
        let steps = log.lines().filter(|l| l.contains("\"step\"")).count();
        if dir.join("state.json").exists() && steps >= min_steps {
            break;
        }
        if child.try_wait().unwrap().is_some() || t0.elapsed() > Duration::from_secs(120) {
            panic!("run finished or stalled before it could be killed");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !dir.join("report.json").exists(),
        "killed too late to test resume"
    );
}

/// Records `skip..skip + n` of each demo class as FASTA files in `dir` (created if missing);
/// returns their SPEC.
pub fn demo_slice(dir: &Path, skip: usize, n: usize) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let mut spec = Vec::new();
    for class in ["proximal", "distal"] {
        let src =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("datasets/demo/{class}.fa.gz"));
        let recs =
            genolm::io::fasta::read_records(&src.to_string_lossy(), Default::default()).unwrap();
        let path = dir.join(format!("{class}.fa"));
        let mut w = std::fs::File::create(&path).unwrap();
        for r in recs.iter().skip(skip).take(n) {
            genolm::io::fasta::write_record(&mut w, &r.name, "", &r.seq, 60).unwrap();
        }
        spec.push(format!("{class}={}", path.display()));
    }
    spec.join(",")
}

/// The `genolm` binary built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_genolm");

/// Run `genolm args` (with `RUST_BACKTRACE=1`, so a panic would show) and collect its output.
pub fn genolm<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap()
}

/// Run `genolm args`, assert that it succeeded (showing its stderr if not) and return its output.
pub fn run_ok<S: AsRef<OsStr> + std::fmt::Debug>(args: &[S]) -> Output {
    let o = genolm(args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Run `genolm args` and assert that it failed the way bad input must: exit code 2 and one
/// non-empty stderr line, containing `needle`, without a panic. Returns that line.
pub fn expect_error<S: AsRef<OsStr> + std::fmt::Debug>(args: &[S], needle: &str) -> String {
    let o = genolm(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{args:?}: want one line, got {err}");
    assert!(
        lines[0].contains(needle),
        "{args:?}: want '{needle}' in {}",
        lines[0]
    );
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    lines[0].to_string()
}
