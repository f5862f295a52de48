//! Adam, AdamW and SGD with momentum, with their state in plain tensors that
//! can be saved and restored (candle's AdamW keeps its moments private).
//! Weight decay skips biases, norms and embeddings, as is customary
//! (nanoGPT's `configure_optimizers`, Loshchilov & Hutter 2019).

use crate::error::{Error, Result};
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// Adam with L2 weight decay added to the gradient (PyTorch's `Adam`).
    Adam,
    /// Adam with decoupled weight decay (PyTorch's `AdamW`).
    Adamw,
    /// SGD with momentum `beta1`.
    Sgd,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerConfig {
    pub kind: OptimizerKind,
    /// Base learning rate, e.g. 1e-3.
    pub lr: f64,
    /// First-moment decay (momentum for SGD), e.g. 0.9.
    pub beta1: f64,
    /// Second-moment decay, e.g. 0.999.
    pub beta2: f64,
    /// Added to the denominator, e.g. 1e-8.
    pub eps: f64,
    /// Weight decay on matrices (never biases, norms, embeddings), e.g. 0.0.
    pub weight_decay: f64,
}

impl Default for OptimizerConfig {
    /// Keras' and PyTorch's Adam defaults: lr 1e-3, β = (0.9, 0.999).
    fn default() -> Self {
        Self { kind: OptimizerKind::Adam, lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 }
    }
}

impl OptimizerConfig {
    pub fn validate(&self) -> Result<()> {
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(Error::config("train.optimizer.lr", format!("must be positive and finite, got {}", self.lr)));
        }
        for (f, v) in [("train.optimizer.beta1", self.beta1), ("train.optimizer.beta2", self.beta2)] {
            if !(0.0..1.0).contains(&v) {
                return Err(Error::config(f, format!("must be in [0, 1), got {v}")));
            }
        }
        if self.eps.is_nan() || self.eps <= 0.0 || self.weight_decay.is_nan() || self.weight_decay < 0.0 {
            return Err(Error::config("train.optimizer", "eps must be > 0 and weight_decay >= 0"));
        }
        Ok(())
    }
}

/// Whether a parameter gets weight decay, by its name.
pub fn decays(name: &str) -> bool {
    let embedding =
        ["embedding", "embed_", "transformer.wte.", "transformer.wpe.", "shared."].iter().any(|k| name.contains(k));
    !(name.ends_with("bias") || name.contains("bias_") || embedding || name.contains("norm") || name.contains("ln_"))
}

struct Slot {
    name: String,
    var: Var,
    decay: bool,
    m: Tensor,
    v: Tensor,
}

/// An optimizer over a fixed, name-sorted list of variables.
pub struct Optimizer {
    cfg: OptimizerConfig,
    slots: Vec<Slot>,
    step: usize,
}

impl Optimizer {
    pub fn new(vars: Vec<(String, Var)>, cfg: OptimizerConfig) -> Result<Self> {
        cfg.validate()?;
        let slots = vars
            .into_iter()
            .map(|(name, var)| {
                let z = var.as_tensor().zeros_like()?;
                Ok(Slot { decay: decays(&name), name, m: z.clone(), v: z, var })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { cfg, slots, step: 0 })
    }

    /// Steps taken so far.
    pub fn steps(&self) -> usize {
        self.step
    }

    /// The global L2 norm of all gradients.
    pub fn grad_norm(&self, grads: &GradStore) -> Result<f32> {
        let mut sq = 0f64;
        for s in &self.slots {
            if let Some(g) = grads.get(s.var.as_tensor()) {
                sq += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
            }
        }
        Ok(sq.sqrt() as f32)
    }

    /// One update at rate `lr`, with gradients multiplied by `grad_scale`
    /// (the clipping factor). Parameters without a gradient are left alone.
    pub fn step(&mut self, grads: &GradStore, lr: f64, grad_scale: f64) -> Result<()> {
        self.step += 1;
        let c = &self.cfg;
        let t = self.step as i32;
        let (bc1, bc2) = (1.0 - c.beta1.powi(t), 1.0 - c.beta2.powi(t));
        for s in &mut self.slots {
            let Some(g) = grads.get(s.var.as_tensor()) else { continue };
            let theta = &s.var.as_tensor().detach();
            // Gradients (and so the moments) would otherwise keep this step's
            // whole autograd graph alive, and the moments chain every step's.
            let g = g.detach();
            let mut g = if grad_scale != 1.0 { g.affine(grad_scale, 0.0)? } else { g };
            let wd = if s.decay { c.weight_decay } else { 0.0 };
            let new = match c.kind {
                OptimizerKind::Sgd => {
                    if wd > 0.0 {
                        g = (g + theta.affine(wd, 0.0)?)?;
                    }
                    s.m = (s.m.affine(c.beta1, 0.0)? + &g)?.detach();
                    (theta - s.m.affine(lr, 0.0)?)?
                }
                OptimizerKind::Adam | OptimizerKind::Adamw => {
                    let theta = if c.kind == OptimizerKind::Adamw && wd > 0.0 {
                        theta.affine(1.0 - lr * wd, 0.0)?
                    } else {
                        theta.clone()
                    };
                    if c.kind == OptimizerKind::Adam && wd > 0.0 {
                        g = (g + theta.affine(wd, 0.0)?)?;
                    }
                    s.m = (s.m.affine(c.beta1, 0.0)? + g.affine(1.0 - c.beta1, 0.0)?)?.detach();
                    s.v = (s.v.affine(c.beta2, 0.0)? + g.sqr()?.affine(1.0 - c.beta2, 0.0)?)?.detach();
                    // θ ← θ − (lr/bc1) · m / (√v/√bc2 + ε), as PyTorch computes it.
                    let denom = s.v.sqrt()?.affine(1.0 / bc2.sqrt(), c.eps)?;
                    (theta - s.m.div(&denom)?.affine(lr / bc1, 0.0)?)?
                }
            };
            s.var.set(&new)?;
        }
        Ok(())
    }

    /// The moments by name (`m.<param>`, `v.<param>`), for saving.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        self.slots
            .iter()
            .flat_map(|s| [(format!("m.{}", s.name), s.m.clone()), (format!("v.{}", s.name), s.v.clone())])
            .collect()
    }

    /// `optimizer.safetensors`: the moments (the step count goes in the
    /// trainer state).
    pub fn state_bytes(&self) -> Result<Vec<u8>> {
        crate::nn::params::safetensors_bytes(&self.state_tensors())
    }

    /// Restores moments saved by [`Optimizer::state_bytes`] and the step
    /// count. Names and shapes must match exactly; the error names the tensor.
    pub fn load_state(&mut self, bytes: &[u8], path: &std::path::Path, step: usize) -> Result<()> {
        let loaded = crate::nn::params::read_safetensors(bytes, path)?;
        let assigned = crate::nn::params::assign_strict(&self.state_tensors(), &loaded, path)?;
        for (s, pair) in self.slots.iter_mut().zip(assigned.chunks(2)) {
            s.m = pair[0].1.clone();
            s.v = pair[1].1.clone();
        }
        self.step = step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// PyTorch 2.15: p = torch.tensor([1., -2.], requires_grad=True);
    /// opt = torch.optim.Adam([p], lr=0.1)  (or AdamW(..., weight_decay=0.1));
    /// for _ in range(3): loss = (p**2).sum(); opt.zero_grad(); loss.backward(); opt.step()
    fn three_steps(kind: OptimizerKind, weight_decay: f64) -> Vec<f32> {
        let p = Var::from_vec(vec![1f32, -2.0], 2, &Device::Cpu).unwrap();
        let cfg = OptimizerConfig { kind, lr: 0.1, weight_decay, ..Default::default() };
        let mut opt = Optimizer::new(vec![("w".into(), p.clone())], cfg).unwrap();
        for _ in 0..3 {
            let grads = p.as_tensor().sqr().unwrap().sum_all().unwrap().backward().unwrap();
            opt.step(&grads, 0.1, 1.0).unwrap();
        }
        p.as_tensor().to_vec1::<f32>().unwrap()
    }

    #[test]
    fn adam_and_adamw_match_pytorch_on_a_quadratic() {
        let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
        let adam = three_steps(OptimizerKind::Adam, 0.0);
        assert!(close(&adam, &[0.701_586_3, -1.700_623_4]), "{adam:?}");
        let adamw = three_steps(OptimizerKind::Adamw, 0.1);
        assert!(close(&adamw, &[0.675_101_3, -1.644_368_6]), "{adamw:?}");
    }

    /// Regression: moments built from gradients used to keep every step's
    /// autograd graph alive (21 GB after 100 steps of the baby GPT).
    #[test]
    fn moments_hold_no_autograd_graph() {
        let p = Var::from_vec(vec![1f32, -2.0], 2, &Device::Cpu).unwrap();
        for kind in [OptimizerKind::Adam, OptimizerKind::Adamw, OptimizerKind::Sgd] {
            let cfg = OptimizerConfig { kind, weight_decay: 0.1, ..Default::default() };
            let mut opt = Optimizer::new(vec![("w".into(), p.clone())], cfg).unwrap();
            for _ in 0..2 {
                let grads = p.as_tensor().sqr().unwrap().exp().unwrap().sum_all().unwrap().backward().unwrap();
                opt.step(&grads, 0.01, 0.5).unwrap();
            }
            assert!(opt.state_tensors().iter().all(|(_, t)| !t.track_op()), "{kind:?}");
        }
    }

    #[test]
    fn decay_skips_biases_and_embeddings() {
        assert!(decays("decoder.out.weight"));
        assert!(!decays("decoder.out.bias"));
        assert!(!decays("encoder.rnn.bias_ih_l0"));
        assert!(!decays("encoder.embedding.weight"));
        for name in [
            "transformer.wte.weight",
            "transformer.wpe.weight",
            "model.embed_tokens.weight",
            "shared.weight",
            "decoder.embed_positions.weight",
            "transformer.h.0.ln_1.weight",
            "model.norm.weight",
        ] {
            assert!(!decays(name), "{name}");
        }
        for name in ["transformer.h.0.attn.c_attn.weight", "model.layers.0.mlp.up_proj.weight", "lm_head.weight"] {
            assert!(decays(name), "{name}");
        }
    }
}
