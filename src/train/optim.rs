//! AdamW with parameter groups, global-norm clipping, and a warmup + cosine schedule.
//!
//! Written here (not `candle_nn::AdamW`) so that the moments can be checkpointed and restored
//! exactly, and so that groups (backbone vs head) can have their own learning-rate scale.
//!
//! Each parameter keeps its own step count for the bias correction: a parameter that gets no
//! gradient in a step (a frozen backbone, see `genolm train --freeze-backbone-steps`) is left
//! alone entirely, and when it starts training its moments are corrected as for a fresh start,
//! as in PyTorch where a parameter's step counts only the updates it received.

use std::collections::HashMap;

use candle_core::{backprop::GradStore, DType, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// AdamW hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    /// Peak learning rate.
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator epsilon.
    pub eps: f64,
    /// Decoupled weight decay, applied to parameters of rank ≥ 2 only (not biases or norms).
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

/// One trainable parameter with its optimizer state.
struct Slot {
    name: String,
    var: Var,
    m: Tensor,
    v: Tensor,
    /// Learning-rate multiplier of this parameter's group.
    lr_scale: f64,
    decay: bool,
    /// Updates this parameter has received (for the bias correction).
    t: u64,
    /// Exponential moving average of the parameter, not yet bias-corrected (with
    /// [`AdamW::enable_ema`]; zeros before the first step).
    ema: Option<Tensor>,
    /// The parameter's own value while the average is swapped in ([`AdamW::swap_ema`]).
    held: Option<Tensor>,
}

impl Slot {
    /// `ema = d·ema + (1 − d)·param` (when an average is kept).
    fn update_ema(&mut self, d: f64) -> Result<()> {
        if let Some(e) = &self.ema {
            let p = self.var.as_tensor().detach();
            self.ema = Some(((e * d)? + (p * (1.0 - d))?)?);
        }
        Ok(())
    }
}

/// AdamW over named variables.
pub struct AdamW {
    slots: Vec<Slot>,
    step: u64,
    cfg: AdamWConfig,
    /// Decay of the parameters' moving average (0: none kept).
    ema_decay: f64,
}

impl AdamW {
    /// An optimizer over `vars` (name, variable, learning-rate scale), sorted by name.
    pub fn new(mut vars: Vec<(String, Var, f64)>, cfg: AdamWConfig) -> Result<Self> {
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let slots = vars
            .into_iter()
            .map(|(name, var, lr_scale)| {
                let m = var.as_tensor().zeros_like()?;
                let v = var.as_tensor().zeros_like()?;
                let decay = var.as_tensor().rank() >= 2 && !name.contains("embed");
                Ok(Slot {
                    name,
                    var,
                    m,
                    v,
                    lr_scale,
                    decay,
                    t: 0,
                    ema: None,
                    held: None,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(AdamW {
            slots,
            step: 0,
            cfg,
            ema_decay: 0.0,
        })
    }

    /// Keep an exponential moving average of every parameter over the optimizer steps:
    /// `a_t = decay·a_{t−1} + (1 − decay)·param_t` from `a_0 = 0`, used bias-corrected as
    /// `a_t / (1 − decay^t)` (as Adam's moments are), i.e. the average of the parameter's values
    /// after each step with weights `decay^(t − i)`. `decay` must be in `[0, 1)`; 0 turns it off.
    pub fn enable_ema(&mut self, decay: f64) -> Result<()> {
        if !(0.0..1.0).contains(&decay) {
            return Err(Error::input(format!(
                "--ema must be in [0, 1) (0 = off), got {decay}"
            )));
        }
        self.ema_decay = decay;
        Ok(())
    }

    /// True when a moving average is kept.
    pub fn has_ema(&self) -> bool {
        self.ema_decay > 0.0
    }

    /// Swap the bias-corrected moving average in for the parameters' values, or (called again)
    /// the values back in, so that a validation or checkpoint sees the averaged weights. Does
    /// nothing without an average or before the first step.
    pub fn swap_ema(&mut self) -> Result<()> {
        let corr = 1.0 - self.ema_decay.powi(self.step.min(i32::MAX as u64) as i32);
        for s in &mut self.slots {
            if let Some(v) = s.held.take() {
                s.var.set(&v)?;
            } else if let (Some(e), true) = (&s.ema, self.step > 0) {
                // A copy: `Var::set` writes in place, so the held value must own its storage.
                s.held = Some(s.var.as_tensor().detach().copy()?);
                s.var.set(&(e / corr)?)?;
            }
        }
        Ok(())
    }

    /// Steps taken so far.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// The configuration.
    pub fn config(&self) -> &AdamWConfig {
        &self.cfg
    }

    /// Set the learning-rate scale of every parameter whose name starts with `prefix`.
    pub fn set_group_scale(&mut self, prefix: &str, scale: f64) {
        for s in &mut self.slots {
            if s.name.starts_with(prefix) {
                s.lr_scale = scale;
            }
        }
    }

    /// The gradients of the optimized parameters, in parameter order.
    pub fn collect(&self, grads: &GradStore) -> Vec<Option<Tensor>> {
        self.slots
            .iter()
            .map(|s| grads.get(s.var.as_tensor()).cloned())
            .collect()
    }

    /// Element-wise sum of two gradient lists (for gradient accumulation).
    pub fn add_grads(
        a: Vec<Option<Tensor>>,
        b: Vec<Option<Tensor>>,
    ) -> Result<Vec<Option<Tensor>>> {
        a.into_iter()
            .zip(b)
            .map(|(x, y)| {
                Ok(match (x, y) {
                    (Some(x), Some(y)) => Some((x + y)?),
                    (x, None) => x,
                    (None, y) => y,
                })
            })
            .collect()
    }

    /// Global L2 norm of a gradient list.
    pub fn norm_of(&self, grads: &[Option<Tensor>]) -> Result<f64> {
        let mut total = 0f64;
        for g in grads.iter().flatten() {
            total += g
                .to_dtype(DType::F64)?
                .sqr()?
                .sum_all()?
                .to_scalar::<f64>()?;
        }
        Ok(total.sqrt())
    }

    /// Global L2 norm of the gradients of the optimized parameters.
    pub fn grad_norm(&self, grads: &GradStore) -> Result<f64> {
        self.norm_of(&self.collect(grads))
    }

    /// One update at learning rate `lr`; gradients are first multiplied by `grad_scale`
    /// (for clipping and accumulation). Parameters without a gradient are left alone.
    pub fn step(&mut self, grads: &GradStore, lr: f64, grad_scale: f64) -> Result<()> {
        let g = self.collect(grads);
        self.step_grads(g, lr, grad_scale)
    }

    /// One update from a gradient list in parameter order (see [`AdamW::collect`]).
    pub fn step_grads(
        &mut self,
        grads: Vec<Option<Tensor>>,
        lr: f64,
        grad_scale: f64,
    ) -> Result<()> {
        if grads.len() != self.slots.len() {
            return Err(Error::Internal(
                "gradient list does not match parameters".into(),
            ));
        }
        if self.slots.iter().any(|s| s.held.is_some()) {
            return Err(Error::Internal(
                "optimizer step with the moving average swapped in".into(),
            ));
        }
        self.step += 1;
        let c = self.cfg;
        let ema_d = self.ema_decay;
        if self.has_ema() {
            for s in &mut self.slots {
                if s.ema.is_none() {
                    s.ema = Some(s.var.as_tensor().zeros_like()?);
                }
            }
        }
        for (s, g) in self.slots.iter_mut().zip(grads) {
            let Some(g) = g else {
                s.update_ema(ema_d)?;
                continue;
            };
            s.t += 1;
            let t = s.t.min(i32::MAX as u64) as i32;
            let bc1 = 1.0 - c.beta1.powi(t);
            let bc2 = 1.0 - c.beta2.powi(t);
            let g = if grad_scale != 1.0 {
                (g * grad_scale)?
            } else {
                g
            };
            let lr = lr * s.lr_scale;
            s.m = ((&s.m * c.beta1)? + (&g * (1.0 - c.beta1))?)?;
            s.v = ((&s.v * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let m_hat = (&s.m / bc1)?;
            let v_hat = (&s.v / bc2)?;
            let update = (m_hat / (v_hat.sqrt()? + c.eps)?)?;
            let p = s.var.as_tensor();
            let p = if s.decay && c.weight_decay > 0.0 {
                (p * (1.0 - lr * c.weight_decay))?
            } else {
                p.clone()
            };
            s.var.set(&(p - (update * lr)?)?)?;
            s.update_ema(ema_d)?;
        }
        Ok(())
    }

    /// Updates the parameter `name` has received (`None` for an unknown name).
    pub fn param_steps(&self, name: &str) -> Option<u64> {
        self.slots.iter().find(|s| s.name == name).map(|s| s.t)
    }

    /// Optimizer state as named tensors (`adam.m.NAME`, `adam.v.NAME`, the per-parameter step
    /// count `adam.t.NAME` as a one-element f64 tensor, and `adam.ema.NAME` when a moving average
    /// is kept) for checkpoints.
    pub fn state(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for s in &self.slots {
            out.insert(format!("adam.m.{}", s.name), s.m.clone());
            out.insert(format!("adam.v.{}", s.name), s.v.clone());
            if let Ok(t) = Tensor::new(&[s.t as f64], s.m.device()) {
                out.insert(format!("adam.t.{}", s.name), t);
            }
            if let Some(e) = &s.ema {
                out.insert(format!("adam.ema.{}", s.name), e.clone());
            }
        }
        out
    }

    /// Restore state saved by [`AdamW::state`] after `step` steps. A checkpoint without
    /// per-parameter step counts (written before they existed) counts `step` for every parameter.
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>, step: u64) -> Result<()> {
        for s in &mut self.slots {
            let get = |k: String| {
                state
                    .get(&k)
                    .cloned()
                    .ok_or_else(|| Error::input(format!("checkpoint has no optimizer state '{k}'")))
            };
            let dev = s.var.device().clone();
            s.m = get(format!("adam.m.{}", s.name))?.to_device(&dev)?;
            s.v = get(format!("adam.v.{}", s.name))?.to_device(&dev)?;
            s.t = match state.get(&format!("adam.t.{}", s.name)) {
                Some(t) => {
                    let v = t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
                    match v.as_slice() {
                        [x] if *x >= 0.0 && x.fract() == 0.0 && *x <= step as f64 => *x as u64,
                        _ => {
                            return Err(Error::input(format!(
                                "checkpoint has a bad step count for '{}'",
                                s.name
                            )))
                        }
                    }
                }
                None => step,
            };
            s.ema = match state.get(&format!("adam.ema.{}", s.name)) {
                Some(e) if self.ema_decay > 0.0 => Some(e.to_device(&dev)?),
                None if self.ema_decay > 0.0 && step > 0 => {
                    return Err(Error::input(format!(
                        "checkpoint has no moving average for '{}' (was it trained without --ema?)",
                        s.name
                    )))
                }
                _ => None,
            };
        }
        self.step = step;
        Ok(())
    }
}

/// Learning-rate schedule: linear warmup to the peak, then cosine decay to `min_ratio × peak`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Peak learning rate.
    pub peak: f64,
    /// Warmup steps.
    pub warmup: u64,
    /// Total steps.
    pub total: u64,
    /// Final learning rate as a fraction of the peak.
    pub min_ratio: f64,
}

impl Schedule {
    /// Learning rate for (0-based) step `step`.
    pub fn lr(&self, step: u64) -> f64 {
        if self.warmup > 0 && step < self.warmup {
            return self.peak * (step + 1) as f64 / self.warmup as f64;
        }
        let span = self.total.saturating_sub(self.warmup).max(1) as f64;
        let progress = ((step - self.warmup.min(step)) as f64 / span).min(1.0);
        let cos = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
        self.peak * (self.min_ratio + (1.0 - self.min_ratio) * cos)
    }
}

/// Factor that scales gradients so their global norm is at most `max_norm` (1 if already so).
pub fn clip_factor(norm: f64, max_norm: f64) -> f64 {
    if max_norm > 0.0 && norm > max_norm {
        max_norm / (norm + 1e-12)
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn adamw_matches_hand_computation() {
        // One scalar-matrix parameter p = [[1, -2]], grad = 2p (loss = sum p²).
        let dev = Device::Cpu;
        let var = Var::from_tensor(&Tensor::new(&[[1f64, -2.0]], &dev).unwrap()).unwrap();
        let cfg = AdamWConfig {
            lr: 0.1,
            weight_decay: 0.5,
            ..Default::default()
        };
        let mut opt = AdamW::new(vec![("w".into(), var.clone(), 1.0)], cfg).unwrap();
        let loss = var.as_tensor().sqr().unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        opt.step(&grads, 0.1, 1.0).unwrap();
        // Step 1: m̂ = g, v̂ = g², update = g/(|g|+eps) = sign(g); decay p*(1 - 0.1*0.5).
        let got = var.as_tensor().to_vec2::<f64>().unwrap();
        let want = [1.0 * 0.95 - 0.1, -2.0 * 0.95 + 0.1];
        assert!((got[0][0] - want[0]).abs() < 1e-7 && (got[0][1] - want[1]).abs() < 1e-7);
        // State round-trips.
        let st = opt.state();
        let mut opt2 = AdamW::new(vec![("w".into(), var.clone(), 1.0)], cfg).unwrap();
        opt2.load_state(&st, 1).unwrap();
        assert_eq!(opt2.step_count(), 1);
    }

    #[test]
    fn moving_average_is_bias_corrected_swaps_and_checkpoints() {
        let dev = Device::Cpu;
        let var = Var::from_tensor(&Tensor::new(&[1f64, -2.0], &dev).unwrap()).unwrap();
        let cfg = AdamWConfig {
            weight_decay: 0.0,
            ..Default::default()
        };
        let mut opt = AdamW::new(vec![("w".into(), var.clone(), 1.0)], cfg).unwrap();
        assert!(opt.enable_ema(1.0).is_err() && opt.enable_ema(-0.1).is_err());
        opt.enable_ema(0.9).unwrap();
        let g = Tensor::new(&[0.5f64, -0.5], &dev).unwrap();
        let p = |v: &Var| v.as_tensor().to_vec1::<f64>().unwrap();
        let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12);
        // A constant gradient moves each element by lr × sign(g) per step (m̂ = g, v̂ = g²).
        let p0 = p(&var);
        let mut seen: Vec<Vec<f64>> = Vec::new();
        for step in 1..=3u64 {
            opt.step_grads(vec![Some(g.clone())], 0.1, 1.0).unwrap();
            assert!((p(&var)[0] - (p0[0] - 0.1 * step as f64)).abs() < 1e-6);
            seen.push(p(&var));
        }
        // The average of the values after steps 1..3 with weights 0.9^(3 - i).
        let w = [0.81, 0.9, 1.0];
        let total: f64 = w.iter().sum();
        let want: Vec<f64> = (0..2)
            .map(|k| (0..3).map(|i| w[i] * seen[i][k]).sum::<f64>() / total)
            .collect();
        let raw = p(&var);
        opt.swap_ema().unwrap();
        assert!(close(&p(&var), &want), "{:?} {want:?}", p(&var));
        // No step while swapped.
        assert!(opt.step_grads(vec![Some(g.clone())], 0.1, 1.0).is_err());
        assert_eq!(opt.step_count(), 3);
        opt.swap_ema().unwrap();
        assert_eq!(p(&var), raw);
        // The average travels in the checkpoint; a checkpoint without one is refused.
        let st = opt.state();
        assert!(st.contains_key("adam.ema.w"));
        let mut opt2 = AdamW::new(vec![("w".into(), var.clone(), 1.0)], cfg).unwrap();
        opt2.enable_ema(0.9).unwrap();
        opt2.load_state(&st, 3).unwrap();
        opt2.swap_ema().unwrap();
        assert!(close(&p(&var), &want));
        opt2.swap_ema().unwrap();
        let mut plain = st.clone();
        plain.remove("adam.ema.w");
        let mut opt3 = AdamW::new(vec![("w".into(), var.clone(), 1.0)], cfg).unwrap();
        opt3.enable_ema(0.9).unwrap();
        assert!(opt3.load_state(&plain, 3).is_err());
        // Without an average, swapping changes nothing.
        let mut opt4 = AdamW::new(vec![("w".into(), var.clone(), 1.0)], cfg).unwrap();
        opt4.swap_ema().unwrap();
        assert_eq!(p(&var), raw);
    }

    #[test]
    fn a_parameter_without_gradients_is_untouched_and_starts_fresh() {
        let dev = Device::Cpu;
        let a = Var::from_tensor(&Tensor::new(&[[1f64, 2.0]], &dev).unwrap()).unwrap();
        let b = Var::from_tensor(&Tensor::new(&[[3f64, -4.0]], &dev).unwrap()).unwrap();
        let cfg = AdamWConfig {
            weight_decay: 0.0,
            ..Default::default()
        };
        let vars = || {
            vec![
                ("a".to_string(), a.clone(), 1.0),
                ("b".to_string(), b.clone(), 1.0),
            ]
        };
        let mut opt = AdamW::new(vars(), cfg).unwrap();
        let g = Tensor::new(&[[0.5f64, -0.5]], &dev).unwrap();
        // Step 1: only `a` has a gradient; `b` and its moments stay as they were.
        opt.step_grads(vec![Some(g.clone()), None], 0.1, 1.0)
            .unwrap();
        assert_eq!(b.as_tensor().to_vec2::<f64>().unwrap(), [[3.0, -4.0]]);
        assert_eq!(opt.param_steps("a"), Some(1));
        assert_eq!(opt.param_steps("b"), Some(0));
        // A checkpoint taken now restores the per-parameter counts.
        let st = opt.state();
        let mut opt2 = AdamW::new(vars(), cfg).unwrap();
        opt2.load_state(&st, 1).unwrap();
        assert_eq!(opt2.param_steps("b"), Some(0));
        // Step 2: `b`'s first update is bias-corrected as a first step: lr × sign(g).
        opt2.step_grads(vec![Some(g.clone()), Some(g)], 0.1, 1.0)
            .unwrap();
        let got = b.as_tensor().to_vec2::<f64>().unwrap();
        assert!((got[0][0] - 2.9).abs() < 1e-7 && (got[0][1] + 3.9).abs() < 1e-7);
        // An old checkpoint without step counts counts the global step for every parameter.
        let old: HashMap<String, Tensor> = st
            .into_iter()
            .filter(|(k, _)| !k.starts_with("adam.t."))
            .collect();
        opt2.load_state(&old, 1).unwrap();
        assert_eq!(opt2.param_steps("b"), Some(1));
    }

    #[test]
    fn schedule_warmup_then_cosine() {
        let s = Schedule {
            peak: 1.0,
            warmup: 10,
            total: 110,
            min_ratio: 0.0,
        };
        assert!((s.lr(0) - 0.1).abs() < 1e-12);
        assert!((s.lr(9) - 1.0).abs() < 1e-12);
        assert!((s.lr(10) - 1.0).abs() < 1e-12);
        assert!((s.lr(60) - 0.5).abs() < 1e-12);
        assert!(s.lr(110).abs() < 1e-12);
        assert!(s.lr(500).abs() < 1e-12);
    }

    #[test]
    fn clipping() {
        assert_eq!(clip_factor(0.5, 1.0), 1.0);
        assert!((clip_factor(4.0, 1.0) - 0.25).abs() < 1e-9);
        assert_eq!(clip_factor(4.0, 0.0), 1.0);
    }
}
