//! Element-wise activations as one op each with an exact hand-written derivative, instead of the
//! chains of candle ops (and their backward graphs) they take composed: tanh-GELU (8 ops), SiLU
//! (3) and softplus (7). Each equals its composition in `activation` (tested in
//! `tests/ops_fused.rs` against it and against central differences).

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::contiguous_slice;

const C: f64 = 0.797_884_560_802_865_4; // sqrt(2/pi)
const A: f64 = 0.044_715;

/// Value and derivative of each activation, for one float type.
macro_rules! unary_impl {
    ($m:ident, $t:ty) => {
        mod $m {
            use super::{A, C};

            /// `0.5·(1 + tanh(u)) = σ(2u)`: one `exp` instead of a `tanh` (measured 3× faster).
            #[inline]
            pub fn gelu(x: $t) -> $t {
                let u = (C as $t) * (x + (A as $t) * x * x * x);
                x / (1.0 + (-2.0 * u).exp())
            }

            #[inline]
            pub fn gelu_grad(x: $t) -> $t {
                let u = (C as $t) * (x + (A as $t) * x * x * x);
                let s = 1.0 / (1.0 + (-2.0 * u).exp());
                s + 2.0 * x * s * (1.0 - s) * (C as $t) * (1.0 + 3.0 * (A as $t) * x * x)
            }

            #[inline]
            pub fn silu(x: $t) -> $t {
                x / (1.0 + (-x).exp())
            }

            #[inline]
            pub fn silu_grad(x: $t) -> $t {
                let s = 1.0 / (1.0 + (-x).exp());
                s + x * s * (1.0 - s)
            }

            /// `max(x, 0) + ln(1 + e^{-|x|})`: no overflow for large `|x|`.
            #[inline]
            pub fn softplus(x: $t) -> $t {
                x.max(0.0) + (-x.abs()).exp().ln_1p()
            }

            /// `σ(x)`.
            #[inline]
            pub fn softplus_grad(x: $t) -> $t {
                1.0 / (1.0 + (-x).exp())
            }
        }
    };
}
unary_impl!(f32s, f32);
unary_impl!(f64s, f64);

/// Which activation.
#[derive(Clone, Copy, Debug)]
enum Kind {
    GeluTanh,
    Silu,
    Softplus,
}

fn map<T: Copy + Send + Sync>(x: &[T], f: fn(T) -> T) -> Vec<T> {
    let mut out: Vec<T> = x.to_vec();
    out.par_chunks_mut(1 << 14)
        .for_each(|c| c.iter_mut().for_each(|v| *v = f(*v)));
    out
}

/// The activation (`grad = false`) or its derivative (`grad = true`) of `kind`.
struct Unary {
    kind: Kind,
    grad: bool,
}

/// `Unary::$name(&self) -> fn($t) -> $t`: the kernel of the op for one float type.
macro_rules! kernel_for {
    ($name:ident, $m:ident, $t:ty) => {
        fn $name(&self) -> fn($t) -> $t {
            match (self.kind, self.grad) {
                (Kind::GeluTanh, false) => $m::gelu,
                (Kind::GeluTanh, true) => $m::gelu_grad,
                (Kind::Silu, false) => $m::silu,
                (Kind::Silu, true) => $m::silu_grad,
                (Kind::Softplus, false) => $m::softplus,
                (Kind::Softplus, true) => $m::softplus_grad,
            }
        }
    };
}

impl Unary {
    kernel_for!(f32, f32s, f32);
    kernel_for!(f64, f64s, f64);
}

impl CustomOp1 for Unary {
    fn name(&self) -> &'static str {
        match (self.kind, self.grad) {
            (Kind::GeluTanh, false) => "genolm-gelu-tanh",
            (Kind::GeluTanh, true) => "genolm-gelu-tanh-grad",
            (Kind::Silu, false) => "genolm-silu",
            (Kind::Silu, true) => "genolm-silu-grad",
            (Kind::Softplus, false) => "genolm-softplus",
            (Kind::Softplus, true) => "genolm-softplus-grad",
        }
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = match s {
            CpuStorage::F32(x) => {
                CpuStorage::F32(map(contiguous_slice(x, l, self.name())?, self.f32()))
            }
            CpuStorage::F64(x) => {
                CpuStorage::F64(map(contiguous_slice(x, l, self.name())?, self.f64()))
            }
            other => bail!("{}: unsupported dtype {:?}", self.name(), other.dtype()),
        };
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        if self.grad {
            bail!("{}: no second derivative", self.name());
        }
        let d = arg.apply_op1_no_bwd(&Unary {
            kind: self.kind,
            grad: true,
        })?;
        Ok(Some((grad_res * d)?))
    }
}

/// The fused `kind` on CPU in f32/f64; elsewhere (other devices, half precision) `composed`.
fn fused_or(x: &Tensor, kind: Kind, composed: fn(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
    if !super::has_cpu_kernels(x) {
        return composed(x);
    }
    x.contiguous()?.apply_op1(Unary { kind, grad: false })
}

/// GELU with the tanh approximation, fused: `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
pub fn gelu_fused(x: &Tensor) -> Result<Tensor> {
    fused_or(x, Kind::GeluTanh, super::gelu_tanh)
}

/// SiLU `x·σ(x)`, fused.
pub fn silu_fused(x: &Tensor) -> Result<Tensor> {
    fused_or(x, Kind::Silu, super::silu)
}

/// Softplus `ln(1 + eˣ)`, fused; the gradient is `σ(x)`.
pub fn softplus_fused(x: &Tensor) -> Result<Tensor> {
    fused_or(x, Kind::Softplus, super::softplus)
}
