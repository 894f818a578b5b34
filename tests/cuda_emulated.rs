//! The CUDA kernels (`src/ops/cuda/kernels.cu`) run on the CPU through a thread-by-thread
//! emulator (`tests/cuda_emu`), against the CPU ops: the selective scan's forward and backward
//! and the FFT convolution's forward and backward, f32 and f64.
//!
//! This checks the kernels' arithmetic and indexing on a machine without a GPU. What it cannot
//! check (launch from Rust, device memory) is covered by `tests/gpu.rs` on a CUDA machine.
//! Skips with a message when no C++ compiler (`c++`, `g++` or `clang++`) is installed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use candle_core::{DType, Device, Tensor, Var};

mod common;
use common::{flat, max_rel_err, uniform_values};

/// The compiled driver, or `None` (with a message) without a C++ compiler.
fn driver() -> Option<&'static Path> {
    static DRIVER: OnceLock<Option<PathBuf>> = OnceLock::new();
    DRIVER
        .get_or_init(|| {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cuda_emu");
            let out = std::env::temp_dir().join(format!("genolm-cuda-emu-{}", std::process::id()));
            for cxx in ["c++", "g++", "clang++"] {
                let status = Command::new(cxx)
                    .args(["-O2", "-std=c++17", "-Wall", "-Werror", "-o"])
                    .arg(&out)
                    .arg(dir.join("driver.cpp"))
                    .status();
                match status {
                    Ok(s) if s.success() => return Some(out),
                    Ok(s) => panic!("{cxx} failed to compile tests/cuda_emu/driver.cpp: {s}"),
                    Err(_) => continue,
                }
            }
            eprintln!("skipping: no C++ compiler (c++, g++, clang++) to emulate the CUDA kernels");
            None
        })
        .as_deref()
}

/// Write `t` (any float dtype) as raw values of `dtype` to `dir/name.bin`.
fn write(dir: &Path, name: &str, t: &Tensor, dtype: DType) {
    let flat = t.flatten_all().unwrap().to_dtype(dtype).unwrap();
    let bytes: Vec<u8> = match dtype {
        DType::F32 => flat
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        _ => flat
            .to_vec1::<f64>()
            .unwrap()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
    };
    std::fs::write(dir.join(format!("{name}.bin")), bytes).unwrap();
}

/// Run the driver and read `out.bin` back as f64.
fn run(drv: &Path, dir: &Path, op: &str, dtype: DType, dims: &[usize]) -> Vec<f64> {
    let ty = if dtype == DType::F32 { "f32" } else { "f64" };
    let status = Command::new(drv)
        .arg(op)
        .arg(ty)
        .arg(dir)
        .args(dims.iter().map(|d| d.to_string()))
        .status()
        .unwrap();
    assert!(status.success(), "driver {op} {ty} {dims:?}: {status}");
    let bytes = std::fs::read(dir.join("out.bin")).unwrap();
    if dtype == DType::F32 {
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect()
    } else {
        bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }
}

/// [`common::max_rel_err`], naming `what` when the lengths differ or a value is not finite.
fn rel_err(what: &str, a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    let e = max_rel_err(a, b);
    assert!(e.is_finite(), "{what}: non-finite values");
    e
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("genolm-emu-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A CPU tensor of `shape` with seeded uniform values in `[lo, hi)`, as `dtype`.
fn random(shape: &[usize], seed: u64, lo: f64, hi: f64, dtype: DType) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(uniform_values(n, seed, lo, hi), shape, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

/// [`random`] as a variable, for gradients.
fn random_var(shape: &[usize], seed: u64, lo: f64, hi: f64, dtype: DType) -> Var {
    Var::from_tensor(&random(shape, seed, lo, hi, dtype)).unwrap()
}

fn check_scan(dtype: DType, b: usize, d: usize, n: usize, l: usize, chunk: usize, tol: f64) {
    let Some(drv) = driver() else { return };
    let dir = tmpdir(&format!("scan-{dtype:?}-{l}-{chunk}"));
    let u = random_var(&[b, d, l], 1, -1.0, 1.0, dtype);
    let dl = random_var(&[b, d, l], 2, 0.01, 0.5, dtype);
    let a = random_var(&[d, n], 3, -2.0, -0.1, dtype);
    let bm = random_var(&[b, n, l], 4, -1.0, 1.0, dtype);
    let cm = random_var(&[b, n, l], 5, -1.0, 1.0, dtype);
    let gy = random(&[b, d, l], 6, -1.0, 1.0, dtype);
    let y = genolm::ops::selective_scan_chunked(&u, &dl, &a, &bm, &cm, chunk).unwrap();
    let grads = (&y * &gy).unwrap().sum_all().unwrap().backward().unwrap();
    let g = |v: &Var| flat(grads.get(v).unwrap());

    let ud = Tensor::cat(&[u.as_tensor(), dl.as_tensor()], 1).unwrap();
    let bc = Tensor::cat(&[bm.as_tensor(), cm.as_tensor()], 1).unwrap();
    write(&dir, "ud", &ud, dtype);
    write(&dir, "bc", &bc, dtype);
    write(&dir, "a", a.as_tensor(), dtype);
    let dims = [b, d, n, l, chunk];
    let got = run(drv, &dir, "scan_fwd", dtype, &dims);
    let e = rel_err("scan y", &got, &flat(&y));
    assert!(
        e < tol,
        "scan forward {dtype:?} L={l}: relative error {e:.2e}"
    );

    let udg = Tensor::cat(&[u.as_tensor(), dl.as_tensor(), &gy], 1).unwrap();
    write(&dir, "udg", &udg, dtype);
    let got = run(drv, &dir, "scan_bwd", dtype, &dims);
    // Expected: [d(u, delta) (B, 2D, L) | d(Bm, Cm) (B, 2N, L) | dA (D, N)].
    let cat = |x: &Var, y: &Var| {
        let gx = grads.get(x).unwrap();
        let gy = grads.get(y).unwrap();
        flat(&Tensor::cat(&[gx, gy], 1).unwrap())
    };
    let want_ud = cat(&u, &dl);
    let want_bc = cat(&bm, &cm);
    let (gud, rest) = got.split_at(want_ud.len());
    let (gbc, ga) = rest.split_at(want_bc.len());
    for (what, x, w) in [
        ("d(u, delta)", gud, want_ud),
        ("d(Bm, Cm)", gbc, want_bc),
        ("dA", ga, g(&a)),
    ] {
        let e = rel_err(what, x, &w);
        assert!(
            e < tol,
            "scan backward {what} {dtype:?} L={l}: relative error {e:.2e}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn scan_kernels_match_the_cpu_scan_forward_and_backward() {
    // Chunk boundaries inside and at the end of the sequence; one chunk longer than L.
    check_scan(DType::F64, 2, 3, 5, 37, 8, 1e-12);
    check_scan(DType::F64, 1, 4, 16, 64, 16, 1e-12);
    check_scan(DType::F64, 3, 2, 3, 10, 64, 1e-12);
    check_scan(DType::F32, 2, 5, 16, 130, 64, 1e-4);
}

fn check_fft(dtype: DType, b: usize, d: usize, l: usize, k: usize, offset: usize, tol: f64) {
    let Some(drv) = driver() else { return };
    let dir = tmpdir(&format!("fft-{dtype:?}-{l}-{k}"));
    let u = random_var(&[b, d, l], 11, -1.0, 1.0, dtype);
    let kk = random_var(&[d, k], 12, -1.0, 1.0, dtype);
    let gy = random(&[b, d, l], 13, -1.0, 1.0, dtype);
    let y = genolm::ops::fft_conv(&u, &kk, offset).unwrap();
    let grads = (&y * &gy).unwrap().sum_all().unwrap().backward().unwrap();
    write(&dir, "u", u.as_tensor(), dtype);
    write(&dir, "k", kk.as_tensor(), dtype);
    write(&dir, "gy", &gy, dtype);
    let dims = [b, d, l, k, offset];
    let got = run(drv, &dir, "fft_fwd", dtype, &dims);
    let e = rel_err("fft y", &got, &flat(&y));
    assert!(
        e < tol,
        "fft forward {dtype:?} L={l} K={k}: relative error {e:.2e}"
    );
    let got = run(drv, &dir, "fft_bwd", dtype, &dims);
    let want_u = flat(grads.get(&u).unwrap());
    let want_k = flat(grads.get(&kk).unwrap());
    let (gu, gk) = got.split_at(want_u.len());
    let e = rel_err("du", gu, &want_u);
    assert!(
        e < tol,
        "fft backward du {dtype:?} L={l} K={k}: relative error {e:.2e}"
    );
    let e = rel_err("dk", gk, &want_k);
    assert!(
        e < tol,
        "fft backward dk {dtype:?} L={l} K={k}: relative error {e:.2e}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn fft_kernels_match_the_cpu_fft_convolution_forward_and_backward() {
    // Causal (K = L, offset 0), two-sided (K = 2L - 1, offset L - 1), a short filter with an
    // offset, offsets past the input's end, and FFT lengths from 1 to 512.
    check_fft(DType::F64, 2, 3, 50, 50, 0, 1e-10);
    check_fft(DType::F64, 3, 2, 33, 65, 32, 1e-10);
    check_fft(DType::F64, 1, 2, 1, 1, 0, 1e-10);
    check_fft(DType::F64, 2, 2, 40, 7, 3, 1e-10);
    // An offset past the input's end (offset >= L): the dk lag is negative.
    check_fft(DType::F64, 2, 3, 5, 20, 15, 1e-10);
    check_fft(DType::F64, 1, 2, 3, 8, 7, 1e-10);
    check_fft(DType::F32, 2, 4, 200, 200, 0, 1e-5);
}
