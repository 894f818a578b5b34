//! Seeded parameter initialisation: a `VarBuilder` backend that creates each missing variable
//! from a RNG seeded by `(seed, variable name)`, so that initial weights depend on the seed only
//! (candle's CPU device cannot be seeded, and creation order does not matter here).

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A `VarBuilder` backend over a [`VarMap`] whose new variables are drawn from seeded RNGs.
pub struct SeededInit {
    map: VarMap,
    seed: u64,
}

/// FNV-1a hash of a name, mixed with the seed.
fn name_seed(seed: u64, name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in name.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Draw `n` values for `init` on a tensor of `shape`.
fn draw(init: &Init, shape: &Shape, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let n = shape.elem_count();
    let normal = |rng: &mut ChaCha8Rng, mean: f64, std: f64| {
        // Box–Muller.
        let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = rng.random();
        mean + std * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    };
    match *init {
        Init::Const(v) => vec![v; n],
        Init::Randn { mean, stdev } => (0..n).map(|_| normal(rng, mean, stdev)).collect(),
        Init::Uniform { lo, up } => (0..n)
            .map(|_| lo + (up - lo) * rng.random::<f64>())
            .collect(),
        Init::Kaiming {
            dist,
            fan,
            non_linearity,
        } => {
            let std = non_linearity.gain() / (fan.for_shape(shape) as f64).sqrt();
            match dist {
                candle_nn::init::NormalOrUniform::Normal => {
                    (0..n).map(|_| normal(rng, 0.0, std)).collect()
                }
                candle_nn::init::NormalOrUniform::Uniform => {
                    let b = 3f64.sqrt() * std;
                    (0..n).map(|_| -b + 2.0 * b * rng.random::<f64>()).collect()
                }
            }
        }
    }
}

impl SeededInit {
    /// A builder over `map` with new variables seeded by `seed`.
    pub fn builder(map: &VarMap, seed: u64, dtype: DType, dev: &Device) -> VarBuilder<'static> {
        let backend: Box<dyn SimpleBackend> = Box::new(SeededInit {
            map: map.clone(),
            seed,
        });
        VarBuilder::from_backend(backend, dtype, dev.clone())
    }
}

impl SimpleBackend for SeededInit {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut data = self.map.data().lock().expect("var map lock");
        if let Some(v) = data.get(name) {
            if v.shape() != &s {
                candle_core::bail!(
                    "variable '{name}' has shape {:?}, requested {:?}",
                    v.dims(),
                    s.dims()
                )
            }
            return Ok(v.as_tensor().clone());
        }
        let mut rng = ChaCha8Rng::seed_from_u64(name_seed(self.seed, name));
        let values = draw(&h, &s, &mut rng);
        let t = Tensor::from_vec(values, s, dev)?.to_dtype(dtype)?;
        let var = Var::from_tensor(&t)?;
        let out = var.as_tensor().clone();
        data.insert(name.to_string(), var);
        Ok(out)
    }

    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let data = self.map.data().lock().expect("var map lock");
        match data.get(name) {
            Some(v) => Ok(v.as_tensor().clone()),
            None => candle_core::bail!("no variable named '{name}'"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.map
            .data()
            .lock()
            .expect("var map lock")
            .contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_weights_any_order() {
        let dev = Device::Cpu;
        let (a, b) = (VarMap::new(), VarMap::new());
        let va = SeededInit::builder(&a, 7, DType::F32, &dev);
        let vb = SeededInit::builder(&b, 7, DType::F32, &dev);
        let init = Init::Randn {
            mean: 0.0,
            stdev: 1.0,
        };
        let x1 = va.get_with_hints((3, 4), "x", init).unwrap();
        let _ = va.get_with_hints(5, "y", init).unwrap();
        let _ = vb.get_with_hints(5, "y", init).unwrap();
        let x2 = vb.get_with_hints((3, 4), "x", init).unwrap();
        assert_eq!(x1.to_vec2::<f32>().unwrap(), x2.to_vec2::<f32>().unwrap());
        let vc = SeededInit::builder(&VarMap::new(), 8, DType::F32, &dev);
        let x3 = vc.get_with_hints((3, 4), "x", init).unwrap();
        assert_ne!(x1.to_vec2::<f32>().unwrap(), x3.to_vec2::<f32>().unwrap());
        // The statistics are right.
        let big = va
            .get_with_hints(20_000, "big", init)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let mean = big.iter().sum::<f32>() / big.len() as f32;
        let var = big.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / big.len() as f32;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
    }
}
