//! The compute device of a run (`--device cpu|cuda|cuda:N`), set once at start-up.
//!
//! Models, batches and optimizer state are created on [`current`]; the ops in [`crate::ops`]
//! follow their inputs' device. CUDA needs a build with the `cuda` feature.

use std::sync::OnceLock;

use candle_core::Device;

use crate::{Error, Result};

static CURRENT: OnceLock<Device> = OnceLock::new();

/// Parse a device name: `cpu`, `cuda` (GPU 0) or `cuda:N`.
pub fn parse(spec: &str) -> Result<Device> {
    let spec = spec.trim().to_ascii_lowercase();
    let ordinal = match spec.as_str() {
        "cpu" => return Ok(Device::Cpu),
        "cuda" | "gpu" => 0,
        s => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => n,
            _ => {
                return Err(Error::input(format!(
                    "--device: unknown device '{spec}' (cpu, cuda or cuda:N)"
                )))
            }
        },
    };
    if !cfg!(feature = "cuda") {
        return Err(Error::input(format!(
            "--device {spec}: this genolm was built without CUDA (cargo build --release --features cuda)"
        )));
    }
    Device::new_cuda(ordinal).map_err(|e| {
        // candle appends a backtrace to driver errors: keep the error line only.
        let why = e.to_string();
        let why = why.lines().next().unwrap_or("").trim().to_string();
        Error::input(format!("--device {spec}: cannot open the GPU: {why}"))
    })
}

/// Make `dev` the device of this process's runs (the first call wins).
pub fn set(dev: Device) -> Result<()> {
    CURRENT
        .set(dev)
        .map_err(|_| Error::input("the compute device is already set"))
}

/// The device runs compute on: the one [`set`] at start-up, else the CPU.
pub fn current() -> Device {
    CURRENT.get().cloned().unwrap_or(Device::Cpu)
}

/// `dev` as [`parse`] spells it (`cpu`, `cuda:N`), for reports.
pub fn name(dev: &Device) -> String {
    match dev.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_unknown_names_are_input_errors() {
        assert!(parse("cpu").unwrap().is_cpu());
        assert!(parse(" CPU ").unwrap().is_cpu());
        for bad in ["tpu", "cuda:", "cuda:x", "cuda:-1", ""] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}");
            assert!(e.to_string().contains("unknown device"), "{bad}: {e}");
        }
        if !cfg!(feature = "cuda") {
            let e = parse("cuda:1").unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().contains("built without CUDA"), "{e}");
        }
        assert!(current().is_cpu());
        assert_eq!(name(&parse("cpu").unwrap()), "cpu");
    }
}
