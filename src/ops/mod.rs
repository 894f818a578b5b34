//! Differentiable tensor ops that route around known candle 0.11.1 CPU bugs.
//!
//! Every op here either runs our own kernel with a hand-written backward (a candle `CustomOp`,
//! CPU f32/f64) or is composed from candle primitives whose backward is correct. Nothing here
//! uses candle's no-backward fast paths (`candle_nn::ops::softmax_last_dim`, the fused
//! layer/rms norms, `rope`, `sdpa`), candle's `conv1d` (wrong kernel gradient when batch > 1,
//! wrong values with a non-contiguous kernel) or a batched matmul whose left operand is a
//! transposed view (wrong batch folding).
//!
//! Determinism: on CPU the same inputs give the same bits on every run. Our own kernels
//! (conv1d, max_pool1d) also give the same bits for every rayon thread count (tested): conv1d
//! runs one rayon task per batch element (forward) or per batch chunk (backward) with chunk
//! boundaries that depend only on the shapes, every output element is written by one thread,
//! and per-chunk partial kernel gradients are summed in chunk order. Ops composed from candle
//! primitives inherit candle's behaviour: its elementwise ops and reductions run in a fixed
//! order, and its matmul (gemm) splits work over output tiles for a fixed thread count.

mod activation;
mod block_attention;
mod bn_fused;
mod channel;
mod conv1d;
#[cfg(feature = "cuda")]
pub(crate) mod cuda;
mod embed_conv;
mod fftconv;
mod fused_unary;
mod linear;
mod norm;
mod pool;
mod rope;
mod scan;
mod softmax;

pub use activation::{dropout, gelu, gelu_tanh, relu, sigmoid, silu, softplus};
pub use block_attention::{
    block_sparse_attention, dense_attention, BlockPattern, SparseAttentionConfig, MASK_VALUE,
};
pub use bn_fused::batch_norm_train;
pub use channel::{channel_add, channel_mul};
pub use conv1d::{conv1d, conv1d_composed, Conv1d, Conv1dConfig};
pub use embed_conv::embed_conv1d;
pub use fftconv::fft_conv;
pub use fused_unary::{gelu_fused, silu_fused, softplus_fused};
pub use linear::{linear, Linear};
pub use norm::{layer_norm, rms_norm, BatchNorm1d, BatchNormConfig, LayerNorm, RmsNorm};
pub use pool::{
    global_avg_pool1d, global_max_pool1d, max_pool1d, max_pool1d_strided, upsample_nearest1d,
};
pub use rope::{rope, Rope};
pub use scan::{selective_scan, selective_scan_chunked, SCAN_CHUNK};
pub use softmax::{
    cross_entropy, cross_entropy_ignore_index, cross_entropy_masked, log_softmax, softmax,
};

/// Float element types our CPU kernels are generic over (f32 and f64).
pub(crate) trait Elem:
    Copy
    + Send
    + Sync
    + 'static
    + PartialOrd
    + std::ops::Add<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::AddAssign
{
    /// Additive identity.
    const ZERO: Self;
    /// Multiplicative identity.
    const ONE: Self;
    /// True for NaN.
    fn is_nan(self) -> bool;
}

impl Elem for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
}

impl Elem for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
}

/// True where our CPU kernels run (CPU, f32 or f64); elsewhere each op falls back to its
/// composition from candle ops.
pub(crate) fn has_cpu_kernels(x: &candle_core::Tensor) -> bool {
    x.device().is_cpu() && matches!(x.dtype(), candle_core::DType::F32 | candle_core::DType::F64)
}

/// The contiguous window of `data` described by `layout`, or an error for a strided layout.
pub(crate) fn contiguous_slice<'a, T>(
    data: &'a [T],
    layout: &candle_core::Layout,
    op: &'static str,
) -> candle_core::Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) if end <= data.len() => Ok(&data[start..end]),
        _ => candle_core::bail!("{op}: internal error, expected a contiguous input"),
    }
}
