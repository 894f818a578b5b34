//! With the `cuda` feature, compile `src/ops/cuda/kernels.cu` to PTX with `nvcc` (found through
//! `CUDA_HOME` / `CUDA_PATH`, else on `PATH`) for `CUDA_COMPUTE_CAP` (default: the first GPU's,
//! from `nvidia-smi`, else 70; PTX for an older architecture also runs on newer GPUs). Without
//! the feature it does nothing.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/ops/cuda/kernels.cu");
    println!("cargo:rerun-if-env-changed=CUDA_COMPUTE_CAP");
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    println!("cargo:rerun-if-env-changed=CUDA_PATH");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("genolm_kernels.ptx");
    let nvcc = ["CUDA_HOME", "CUDA_PATH"]
        .iter()
        .filter_map(std::env::var_os)
        .map(|h| PathBuf::from(h).join("bin/nvcc"))
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("nvcc"));
    let cap = std::env::var("CUDA_COMPUTE_CAP")
        .ok()
        .map(|c| c.replace('.', ""))
        .or_else(|| {
            let o = Command::new("nvidia-smi")
                .args(["--query-gpu=compute_cap", "--format=csv,noheader"])
                .output()
                .ok()?;
            let s = String::from_utf8(o.stdout).ok()?;
            Some(s.lines().next()?.trim().replace('.', ""))
        })
        .filter(|c| !c.is_empty() && c.chars().all(|ch| ch.is_ascii_digit()))
        .unwrap_or_else(|| "70".to_string());
    let status = Command::new(&nvcc)
        .args(["--ptx", "-O3", "-std=c++17"])
        .arg(format!("-arch=compute_{cap}"))
        .arg("-o")
        .arg(&out)
        .arg("src/ops/cuda/kernels.cu")
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("{} failed on src/ops/cuda/kernels.cu: {s}", nvcc.display()),
        Err(e) => panic!(
            "the cuda feature needs nvcc ({}): {e}; set CUDA_HOME (scripts/cuda_toolchain.sh builds one)",
            nvcc.display()
        ),
    }
}
