//! LoRA (Hu et al. 2021): a frozen weight W plus a trainable low-rank update,
//! `y = x W' + (α/r) · x Aᵀ Bᵀ`, with A (r, in) and B (out, r). B starts at
//! zero, so an untrained adapter leaves the model's output unchanged. The
//! names follow PEFT: `<module>.lora_A.weight`, `<module>.lora_B.weight`.

use crate::ops::linear::{linear, WeightLayout};
use candle_core::{Result, Tensor};
use candle_nn::{Init, VarBuilder};
use serde::{Deserialize, Serialize};

/// Which linear layers get adapters, and their shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraConfig {
    /// Rank, e.g. 8.
    pub r: usize,
    /// Scale numerator: the update is multiplied by alpha / r, e.g. 16.
    pub alpha: f64,
    /// Modules to adapt, as PEFT's `target_modules` list: a name matches a
    /// module whose dotted path ends with it (["c_attn"], ["attn.c_proj"],
    /// ["q_proj", "v_proj"]); a name with `*` is a pattern over the whole
    /// path (["transformer.h.1.*"]).
    pub targets: Vec<String>,
    /// Dropout on the adapter's input during training, e.g. 0.05.
    #[serde(default)]
    pub dropout: f32,
}

impl LoraConfig {
    /// The update's scale, alpha / r (e.g. 16 / 8 = 2).
    pub fn scale(&self) -> f64 {
        self.alpha / self.r.max(1) as f64
    }

    /// Whether the module at dotted `path` gets an adapter.
    pub fn applies_to(&self, path: &str) -> bool {
        self.targets.iter().any(|t| {
            if t.contains('*') {
                glob(t, path)
            } else {
                path == t || path.ends_with(&format!(".{t}"))
            }
        })
    }

    /// Checks the config: r at least 1, alpha positive, dropout in [0, 1), at least one target.
    pub fn validate(&self) -> crate::Result<()> {
        if self.r == 0 {
            return Err(crate::Error::config("lora.r", "must be at least 1"));
        }
        if !(self.alpha > 0.0 && self.alpha.is_finite()) {
            return Err(crate::Error::config("lora.alpha", "must be positive"));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(crate::Error::config("lora.dropout", "must be in [0, 1)"));
        }
        if self.targets.is_empty() {
            return Err(crate::Error::config("lora.targets", "name at least one module, e.g. c_attn"));
        }
        Ok(())
    }
}

/// `*` matches any run of characters (dots included); the rest literally.
fn glob(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !s.starts_with(first) || s.len() < first.len() + last.len() || !s.ends_with(last) {
        return false;
    }
    let mut rest = &s[first.len()..s.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// One adapter.
#[derive(Debug, Clone)]
pub struct Lora {
    a: Tensor, // (r, in)
    b: Tensor, // (out, r)
    scale: f64,
    dropout: f32,
}

/// The adapter of the module at `vb` (in → out), if `cfg` targets it.
/// A starts as PEFT's (uniform in ±1/√in), B at zero.
pub fn lora(in_dim: usize, out_dim: usize, cfg: Option<&LoraConfig>, vb: &VarBuilder) -> Result<Option<Lora>> {
    let Some(cfg) = cfg.filter(|c| c.applies_to(&vb.prefix())) else { return Ok(None) };
    let bound = 1.0 / (in_dim as f64).sqrt();
    Ok(Some(Lora {
        a: vb.pp("lora_A").get_with_hints((cfg.r, in_dim), "weight", Init::Uniform { lo: -bound, up: bound })?,
        b: vb.pp("lora_B").get_with_hints((out_dim, cfg.r), "weight", Init::Const(0.0))?,
        scale: cfg.scale(),
        dropout: cfg.dropout,
    }))
}

impl Lora {
    /// (α/r) · dropout(x) Aᵀ Bᵀ: (..., in) → (..., out). `rng` enables
    /// dropout (training).
    pub fn delta(&self, x: &Tensor, rng: Option<&mut crate::rng::Rng>) -> Result<Tensor> {
        let x = super::dropout::dropout(x, self.dropout, rng)?;
        let h = linear(&x, &self.a, None, WeightLayout::OutIn)?;
        linear(&h, &self.b, None, WeightLayout::OutIn)? * self.scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_match_like_peft_lists_and_globs() {
        let c = |t: &[&str]| LoraConfig {
            r: 1,
            alpha: 1.0,
            targets: t.iter().map(|s| s.to_string()).collect(),
            dropout: 0.0,
        };
        assert!(c(&["c_attn"]).applies_to("transformer.h.0.attn.c_attn"));
        assert!(!c(&["c_attn"]).applies_to("transformer.h.0.attn.xc_attn"));
        assert!(c(&["attn.c_proj"]).applies_to("transformer.h.3.attn.c_proj"));
        assert!(!c(&["attn.c_proj"]).applies_to("transformer.h.3.mlp.c_proj"));
        assert!(c(&["transformer.h.1.*"]).applies_to("transformer.h.1.mlp.c_fc"));
        assert!(!c(&["transformer.h.1.*"]).applies_to("transformer.h.11.mlp.c_fc"));
        assert!(c(&["*.mlp.*"]).applies_to("model.layers.0.mlp.down_proj"));
        assert!(!c(&["*.mlp.*"]).applies_to("model.layers.0.self_attn.q_proj"));
    }
}
