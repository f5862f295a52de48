//! A fully connected layer, `y = x Wᵀ + b`, with PyTorch's names
//! (`weight` (out, in), `bias` (out)) and PyTorch's default initialisation
//! (uniform in ±1/√in for both).

use super::lora::{lora, Lora, LoraConfig};
use crate::ops::linear::{linear as linear_op, WeightLayout};
use candle_core::{Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};

/// A fully connected layer, `y = x Wᵀ + b` with W (out, in), plus a LoRA adapter's update if it has one.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,       // (out, in)
    bias: Option<Tensor>, // (out)
    lora: Option<Lora>,
}

/// A linear layer from `in_dim` to `out_dim`, with or without bias.
pub fn linear(in_dim: usize, out_dim: usize, bias: bool, vb: VarBuilder) -> Result<Linear> {
    let bound = 1.0 / (in_dim as f64).sqrt();
    let init = Init::Uniform { lo: -bound, up: bound };
    let weight = vb.get_with_hints((out_dim, in_dim), "weight", init)?;
    let bias = if bias { Some(vb.get_with_hints(out_dim, "bias", init)?) } else { None };
    Ok(Linear { weight, bias, lora: None })
}

/// A linear layer with an explicit initialisation for the weight (the
/// bias, if any, starts at zero), e.g. GPT-style normal(0, 0.02).
pub fn linear_init(in_dim: usize, out_dim: usize, bias: bool, init: Init, vb: VarBuilder) -> Result<Linear> {
    let weight = vb.get_with_hints((out_dim, in_dim), "weight", init)?;
    let bias = if bias { Some(vb.get_with_hints(out_dim, "bias", Init::Const(0.0))?) } else { None };
    Ok(Linear { weight, bias, lora: None })
}

/// [`linear_init`] with a LoRA adapter where `lora` targets this module.
pub fn linear_lora(
    in_dim: usize,
    out_dim: usize,
    bias: bool,
    init: Init,
    lora_cfg: Option<&LoraConfig>,
    vb: VarBuilder,
) -> Result<Linear> {
    let adapter = lora(in_dim, out_dim, lora_cfg, &vb)?;
    Ok(Linear { lora: adapter, ..linear_init(in_dim, out_dim, bias, init, vb)? })
}

/// GPT-2's `Conv1D`: a linear layer whose weight is stored (in, out), as in
/// the original TensorFlow checkpoints, so `y = x W + b`.
#[derive(Debug, Clone)]
pub struct Conv1D {
    weight: Tensor, // (in, out)
    bias: Tensor,   // (out)
    lora: Option<Lora>,
}

/// A Conv1D, with a LoRA adapter where `lora_cfg` targets this module.
pub fn conv1d(
    in_dim: usize,
    out_dim: usize,
    init: Init,
    lora_cfg: Option<&LoraConfig>,
    vb: VarBuilder,
) -> Result<Conv1D> {
    Ok(Conv1D {
        lora: lora(in_dim, out_dim, lora_cfg, &vb)?,
        weight: vb.get_with_hints((in_dim, out_dim), "weight", init)?,
        bias: vb.get_with_hints(out_dim, "bias", Init::Const(0.0))?,
    })
}

/// `x W (+ b)` plus the LoRA adapter's update, if any; `rng` enables the
/// adapter's dropout (training). Both layer kinds forward through it.
fn adapted(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    layout: WeightLayout,
    adapter: Option<&Lora>,
    rng: Option<&mut crate::rng::Rng>,
) -> Result<Tensor> {
    let y = linear_op(x, w, b, layout)?;
    match adapter {
        Some(l) => y + l.delta(x, rng)?,
        None => Ok(y),
    }
}

impl Conv1D {
    /// The layer with its LoRA adapter, if any; `rng` enables the adapter's
    /// dropout (training).
    pub fn forward_t(&self, x: &Tensor, rng: Option<&mut crate::rng::Rng>) -> Result<Tensor> {
        adapted(x, &self.weight, Some(&self.bias), WeightLayout::InOut, self.lora.as_ref(), rng)
    }
}

impl Module for Conv1D {
    /// (..., in) → (..., out)
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_t(x, None)
    }
}

impl Linear {
    /// The weight, (out, in).
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias, (out), if the layer has one.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// Whether a LoRA adapter is attached.
    pub fn has_lora(&self) -> bool {
        self.lora.is_some()
    }

    /// The layer with its LoRA adapter, if any; `rng` enables the adapter's
    /// dropout (training).
    pub fn forward_t(&self, x: &Tensor, rng: Option<&mut crate::rng::Rng>) -> Result<Tensor> {
        adapted(x, &self.weight, self.bias.as_ref(), WeightLayout::OutIn, self.lora.as_ref(), rng)
    }
}

impl Module for Linear {
    /// (..., in) → (..., out)
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_t(x, None)
    }
}
