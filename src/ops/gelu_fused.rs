//! GELU (tanh approximation, as PyTorch's `approximate="tanh"`) as one element-wise op with its
//! exact derivative, instead of the eight candle ops (and their backward graph) it takes composed.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::contiguous_slice;

const C: f64 = 0.797_884_560_802_865_4; // sqrt(2/pi)
const A: f64 = 0.044_715;

/// `0.5·(1 + tanh(u)) = σ(2u)`: one `exp` instead of a `tanh` (measured 3× faster).
macro_rules! gelu_impl {
    ($value:ident, $deriv:ident, $t:ty) => {
        #[inline]
        fn $value(x: $t) -> $t {
            let u = (C as $t) * (x + (A as $t) * x * x * x);
            x / (1.0 + (-2.0 * u).exp())
        }

        #[inline]
        fn $deriv(x: $t) -> $t {
            let u = (C as $t) * (x + (A as $t) * x * x * x);
            let s = 1.0 / (1.0 + (-2.0 * u).exp());
            s + 2.0 * x * s * (1.0 - s) * (C as $t) * (1.0 + 3.0 * (A as $t) * x * x)
        }
    };
}
gelu_impl!(value32, derivative32, f32);
gelu_impl!(value64, derivative64, f64);

fn map<T: Copy + Send + Sync>(x: &[T], f: impl Fn(T) -> T + Sync) -> Vec<T> {
    let mut out: Vec<T> = x.to_vec();
    out.par_chunks_mut(1 << 14)
        .for_each(|c| c.iter_mut().for_each(|v| *v = f(*v)));
    out
}

struct Gelu;
struct GeluGrad;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "genolm-gelu-tanh"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = match s {
            CpuStorage::F32(x) => {
                CpuStorage::F32(map(contiguous_slice(x, l, self.name())?, value32))
            }
            CpuStorage::F64(x) => {
                CpuStorage::F64(map(contiguous_slice(x, l, self.name())?, value64))
            }
            other => bail!("gelu: unsupported dtype {:?}", other.dtype()),
        };
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let d = arg.apply_op1_no_bwd(&GeluGrad)?;
        Ok(Some((grad_res * d)?))
    }
}

impl CustomOp1 for GeluGrad {
    fn name(&self) -> &'static str {
        "genolm-gelu-tanh-grad"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = match s {
            CpuStorage::F32(x) => {
                CpuStorage::F32(map(contiguous_slice(x, l, self.name())?, derivative32))
            }
            CpuStorage::F64(x) => {
                CpuStorage::F64(map(contiguous_slice(x, l, self.name())?, derivative64))
            }
            other => bail!("gelu: unsupported dtype {:?}", other.dtype()),
        };
        Ok((out, l.shape().clone()))
    }
}

/// GELU with the tanh approximation, fused: `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
pub fn gelu_fused(x: &Tensor) -> Result<Tensor> {
    if !x.device().is_cpu() {
        return super::gelu_tanh(x);
    }
    x.contiguous()?.apply_op1(Gelu)
}
