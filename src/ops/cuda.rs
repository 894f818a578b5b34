//! Launching genolm's own CUDA kernels (`src/ops/cuda/kernels.cu`, compiled to PTX by
//! `build.rs` with the `cuda` feature). The kernels' arithmetic is tested on the CPU through an
//! emulator (`tests/cuda_emulated.rs`); the launches themselves by `tests/gpu.rs` on a GPU.

use candle_core::cuda_backend::cudarc::driver::{
    CudaSlice, CudaView, DeviceRepr, LaunchArgs, LaunchConfig, ValidAsZeroBits,
};
use candle_core::cuda_backend::{CudaDType, WrapErr};
use candle_core::{bail, CudaDevice, CudaStorage, Layout, Result};

/// The kernels as PTX.
pub(crate) const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/genolm_kernels.ptx"));
/// The module name the PTX is cached under on each device.
pub(crate) const MODULE: &str = "genolm_kernels";
/// Threads per block of every launch (one-dimensional).
const BLOCK: u32 = 128;

/// Element types the typed kernels exist for, with their name suffix.
pub(crate) trait GpuElem: CudaDType + DeviceRepr + ValidAsZeroBits + Copy {
    /// `f32` or `f64`, the suffix of the kernel names.
    const SUFFIX: &'static str;
}

impl GpuElem for f32 {
    const SUFFIX: &'static str = "f32";
}

impl GpuElem for f64 {
    const SUFFIX: &'static str = "f64";
}

/// A launch of one thread per work item, `BLOCK` threads per block.
pub(crate) fn items(n: usize) -> Result<LaunchConfig> {
    let blocks = n.div_ceil(BLOCK as usize).max(1);
    if blocks > i32::MAX as usize {
        bail!("cuda launch: {n} work items exceed the grid size")
    }
    Ok(LaunchConfig {
        grid_dim: (blocks as u32, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    })
}

/// `v` as a kernel's `int` argument.
pub(crate) fn int(v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| candle_core::Error::Msg(format!("cuda: size {v} exceeds i32")))
}

/// The contiguous window of `s` described by `l`, as a device view of `T`.
pub(crate) fn view<'a, T: GpuElem>(s: &'a CudaStorage, l: &Layout) -> Result<CudaView<'a, T>> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(s.as_cuda_slice::<T>()?.slice(a..b)),
        None => bail!("cuda op: internal error, expected a contiguous input"),
    }
}

/// [`view`] of each `(storage, layout)` input of an op, in order.
pub(crate) fn views<'a, T: GpuElem, const K: usize>(
    s: [(&'a CudaStorage, &Layout); K],
) -> Result<[CudaView<'a, T>; K]> {
    let v = s
        .iter()
        .map(|&(st, l)| view::<T>(st, l))
        .collect::<Result<Vec<_>>>()?;
    v.try_into()
        .map_err(|_| candle_core::Error::Msg("cuda op: internal error, view count".into()))
}

/// A zeroed device buffer of `n` values.
pub(crate) fn zeros<T: DeviceRepr + ValidAsZeroBits>(
    dev: &CudaDevice,
    n: usize,
) -> Result<CudaSlice<T>> {
    dev.alloc_zeros::<T>(n.max(1))
}

/// Kernel `genolm_<name>` (`genolm_<name>_<T::SUFFIX>` with a type) on a `&CudaDevice`, loaded
/// once per device; `.builder()` starts its argument list.
macro_rules! kernel {
    ($dev:expr, $name:literal) => {
        $dev.get_or_load_custom_func(
            concat!("genolm_", $name),
            $crate::ops::cuda::MODULE,
            $crate::ops::cuda::PTX,
        )?
    };
    ($dev:expr, $name:literal, $t:ty) => {
        $dev.get_or_load_custom_func(
            &format!(
                concat!("genolm_", $name, "_{}"),
                <$t as $crate::ops::cuda::GpuElem>::SUFFIX
            ),
            $crate::ops::cuda::MODULE,
            $crate::ops::cuda::PTX,
        )?
    };
}
pub(crate) use kernel;

/// Launch a kernel whose arguments are pushed, one thread per each of `n` work items.
pub(crate) fn go(mut args: LaunchArgs<'_>, n: usize) -> Result<()> {
    // SAFETY: every kernel checks its work-item index against its sizes, and the callers pass
    // buffers of the sizes that kernels.cu documents for each argument.
    unsafe { args.launch(items(n)?) }.w()?;
    Ok(())
}

/// Wrap a result buffer as storage on `dev`.
pub(crate) fn storage<T: GpuElem>(dev: &CudaDevice, s: CudaSlice<T>) -> CudaStorage {
    CudaStorage::wrap_cuda_slice(s, dev.clone())
}
