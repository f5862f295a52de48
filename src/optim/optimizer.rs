//! Adam, AdamW and SGD with momentum, with their state in plain vectors that
//! can be saved and restored (candle's AdamW keeps its moments private).
//! Each parameter is updated in place by one fused pass over its data,
//! gradient and moments (`FusedUpdate`), spread over rayon's threads.
//! Weight decay skips biases, norms and embeddings, as is customary
//! (nanoGPT's `configure_optimizers`, Loshchilov & Hutter 2019).

use crate::error::{Error, Result};
use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, InplaceOp1, Layout, Tensor, Var};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;

/// The update rule of an [`Optimizer`].
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

/// An optimizer and its hyper-parameters: the `train.optimizer` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerConfig {
    /// The update rule, e.g. `adam`.
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
    /// An error naming the first field out of range: `lr` must be positive and finite, the
    /// betas in [0, 1), `eps` positive and `weight_decay` not negative.
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
    m: Vec<f32>,
    v: Vec<f32>,
}

/// An optimizer over a fixed, name-sorted list of variables.
pub struct Optimizer {
    cfg: OptimizerConfig,
    slots: Vec<Slot>,
    step: usize,
}

impl Optimizer {
    /// An optimizer over `vars` with zeroed moments; an error if `cfg` is invalid.
    pub fn new(vars: Vec<(String, Var)>, cfg: OptimizerConfig) -> Result<Self> {
        cfg.validate()?;
        let slots = vars
            .into_iter()
            .map(|(name, var)| {
                let n = var.as_tensor().elem_count();
                Ok(Slot { decay: decays(&name), name, m: vec![0.0; n], v: vec![0.0; n], var })
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
                sq += crate::ops::with_f32(g, "grad_norm", |g| crate::ops::dot(g, g))? as f64;
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
            let wd = if s.decay { c.weight_decay } else { 0.0 };
            let h = Hyper {
                kind: c.kind,
                lr: lr as f32,
                beta1: c.beta1 as f32,
                beta2: c.beta2 as f32,
                one_minus_beta1: (1.0 - c.beta1) as f32,
                one_minus_beta2: (1.0 - c.beta2) as f32,
                decay_factor: (1.0 - lr * wd) as f32,
                eps: c.eps as f32,
                wd: wd as f32,
                grad_scale: grad_scale as f32,
                step_size: (lr / bc1) as f32,
                inv_sqrt_bc2: (1.0 / bc2.sqrt()) as f32,
            };
            let (var, m, v) = (&s.var, &mut s.m, &mut s.v);
            // The gradient is read in place, not copied.
            crate::ops::with_f32(g, "optimizer", |g| {
                var.as_tensor().inplace_op1(&FusedUpdate { h, g, m: RefCell::new(m), v: RefCell::new(v) })
            })??;
        }
        Ok(())
    }

    /// The moments by name (`m.<param>`, `v.<param>`), for saving.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        self.slots
            .iter()
            .flat_map(|s| {
                let t = s.var.as_tensor();
                let as_tensor =
                    |x: &[f32]| Tensor::from_slice(x, t.shape(), t.device()).expect("moment has its var's shape");
                [(format!("m.{}", s.name), as_tensor(&s.m)), (format!("v.{}", s.name), as_tensor(&s.v))]
            })
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
            s.m = pair[0].1.flatten_all()?.to_vec1::<f32>()?;
            s.v = pair[1].1.flatten_all()?.to_vec1::<f32>()?;
        }
        self.step = step;
        Ok(())
    }
}

/// One optimizer step for one parameter: reads the gradient, updates the
/// moments and the parameter in place, element by element (so results do
/// not depend on the thread count). The arithmetic is PyTorch's.
struct FusedUpdate<'a> {
    h: Hyper,
    g: &'a [f32],
    m: RefCell<&'a mut Vec<f32>>,
    v: RefCell<&'a mut Vec<f32>>,
}

/// The scalars of one step.
#[derive(Clone, Copy)]
struct Hyper {
    kind: OptimizerKind,
    lr: f32,
    beta1: f32,
    beta2: f32,
    /// 1 − β₁ and 1 − β₂, taken in f64 as PyTorch does.
    one_minus_beta1: f32,
    one_minus_beta2: f32,
    /// 1 − lr · wd (AdamW's decoupled decay), in f64.
    decay_factor: f32,
    eps: f32,
    wd: f32,
    grad_scale: f32,
    /// lr / (1 − β₁ᵗ)
    step_size: f32,
    /// 1 / √(1 − β₂ᵗ)
    inv_sqrt_bc2: f32,
}

/// Elements handed to one parallel task.
const BLOCK: usize = 16 * 1024;

impl Hyper {
    #[inline(always)]
    fn one(&self, theta: &mut f32, g: f32, m: &mut f32, v: &mut f32) {
        let mut g = if self.grad_scale != 1.0 { g * self.grad_scale } else { g };
        match self.kind {
            OptimizerKind::Sgd => {
                if self.wd > 0.0 {
                    g += *theta * self.wd;
                }
                *m = *m * self.beta1 + g;
                *theta -= *m * self.lr;
            }
            OptimizerKind::Adam | OptimizerKind::Adamw => {
                if self.wd > 0.0 {
                    if self.kind == OptimizerKind::Adamw {
                        *theta *= self.decay_factor;
                    } else {
                        g += *theta * self.wd;
                    }
                }
                *m = *m * self.beta1 + g * self.one_minus_beta1;
                *v = *v * self.beta2 + g * g * self.one_minus_beta2;
                // θ ← θ − (lr/bc1) · m / (√v/√bc2 + ε), as PyTorch computes it.
                *theta -= *m / (v.sqrt() * self.inv_sqrt_bc2 + self.eps) * self.step_size;
            }
        }
    }
}

impl InplaceOp1 for FusedUpdate<'_> {
    fn name(&self) -> &'static str {
        "shiftlm-optimizer-step"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let CpuStorage::F32(data) = storage else { candle_core::bail!("optimizer: parameters must be f32") };
        let Some((a, b)) = layout.contiguous_offsets() else { candle_core::bail!("optimizer: strided parameter") };
        let theta = &mut data[a..b];
        let (mut m, mut v) = (self.m.borrow_mut(), self.v.borrow_mut());
        if theta.len() != self.g.len() || m.len() != self.g.len() {
            candle_core::bail!("optimizer: gradient of {} for a parameter of {}", self.g.len(), theta.len());
        }
        let h = self.h;
        theta
            .par_chunks_mut(BLOCK)
            .zip(self.g.par_chunks(BLOCK))
            .zip(m.par_chunks_mut(BLOCK).zip(v.par_chunks_mut(BLOCK)))
            .for_each(|((tb, gb), (mb, vb))| {
                for (((t, &g), m), v) in tb.iter_mut().zip(gb).zip(mb.iter_mut()).zip(vb.iter_mut()) {
                    h.one(t, g, m, v);
                }
            });
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

    /// The fused update against the same arithmetic in composite candle ops,
    /// for every kind, with weight decay and a clipping scale, over 5 steps.
    #[test]
    fn fused_update_matches_composite_ops() {
        let dev = Device::Cpu;
        let init: Vec<f32> = (0..37).map(|i| ((i * 7919) % 23) as f32 / 7.0 - 1.5).collect();
        for kind in [OptimizerKind::Adam, OptimizerKind::Adamw, OptimizerKind::Sgd] {
            let cfg = OptimizerConfig { kind, lr: 0.05, weight_decay: 0.1, ..Default::default() };
            let p = Var::from_vec(init.clone(), 37, &dev).unwrap();
            let mut opt = Optimizer::new(vec![("w".into(), p.clone())], cfg.clone()).unwrap();
            let mut theta = Tensor::from_vec(init.clone(), 37, &dev).unwrap();
            let (mut m, mut v) = (theta.zeros_like().unwrap(), theta.zeros_like().unwrap());
            let (lr, scale) = (0.05, 0.7);
            for t in 1..=5 {
                let loss = |x: &Tensor| x.sqr().unwrap().sin().unwrap().sum_all().unwrap();
                let grads = loss(p.as_tensor()).backward().unwrap();
                opt.step(&grads, lr, scale).unwrap();
                // Reference: PyTorch's formulas in candle ops.
                let th = Var::from_tensor(&theta).unwrap();
                let g =
                    loss(th.as_tensor()).backward().unwrap().get(th.as_tensor()).unwrap().affine(scale, 0.0).unwrap();
                let (bc1, bc2) = (1.0 - cfg.beta1.powi(t), 1.0 - cfg.beta2.powi(t));
                theta = match kind {
                    OptimizerKind::Sgd => {
                        let g = (g + theta.affine(cfg.weight_decay, 0.0).unwrap()).unwrap();
                        m = (m.affine(cfg.beta1, 0.0).unwrap() + g).unwrap();
                        (&theta - m.affine(lr, 0.0).unwrap()).unwrap()
                    }
                    _ => {
                        let (th, g) = if kind == OptimizerKind::Adamw {
                            (theta.affine(1.0 - lr * cfg.weight_decay, 0.0).unwrap(), g)
                        } else {
                            (theta.clone(), (g + theta.affine(cfg.weight_decay, 0.0).unwrap()).unwrap())
                        };
                        m = (m.affine(cfg.beta1, 0.0).unwrap() + g.affine(1.0 - cfg.beta1, 0.0).unwrap()).unwrap();
                        v = (v.affine(cfg.beta2, 0.0).unwrap()
                            + g.sqr().unwrap().affine(1.0 - cfg.beta2, 0.0).unwrap())
                        .unwrap();
                        let denom = v.sqrt().unwrap().affine(1.0 / bc2.sqrt(), cfg.eps).unwrap();
                        (th - m.div(&denom).unwrap().affine(lr / bc1, 0.0).unwrap()).unwrap()
                    }
                };
            }
            let (a, b) = (p.as_tensor().to_vec1::<f32>().unwrap(), theta.to_vec1::<f32>().unwrap());
            for (x, y) in a.iter().zip(&b) {
                assert!((x - y).abs() <= 1e-6 * y.abs().max(1.0), "{kind:?}: fused {x} vs composite {y}");
            }
        }
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
