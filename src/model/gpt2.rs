//! GPT in the GPT-2 layout (Radford et al. 2019; nanoGPT's model.py):
//! learned positions, pre-LayerNorm blocks, GELU (tanh), tied input/output
//! embeddings. Parameter names and `config.json` are those of Hugging Face's
//! `GPT2LMHeadModel`, so folders move both ways.

use crate::error::{Error, Result};
use crate::nn::causal_attention::{attend, split_heads, KvCache};
use crate::nn::dropout::dropout;
use crate::nn::embedding::{embedding_init, Embedding};
use crate::nn::layer_norm::{layer_norm, LayerNorm};
use crate::nn::linear::{conv1d, Conv1D};
use crate::rng::Rng;
use candle_core::Tensor;
use candle_nn::{Init, VarBuilder};
use serde::{Deserialize, Serialize};

/// The MLP's activation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GptActivation {
    /// GELU, tanh approximation: GPT-2's own (`gelu_new` in transformers).
    #[default]
    GeluNew,
    /// Exact GELU (erf), as nanoGPT's `nn.GELU()` (`gelu` in transformers).
    Gelu,
}

/// The shape of a GPT-2 model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gpt2Config {
    /// Token ids, e.g. 65 for characters of tiny Shakespeare, 50257 for GPT-2.
    pub vocab_size: usize,
    /// Context length (positions), e.g. 64.
    pub n_positions: usize,
    /// Width, e.g. 128.
    pub n_embd: usize,
    /// Blocks, e.g. 4.
    pub n_layer: usize,
    /// Attention heads, e.g. 4.
    pub n_head: usize,
    /// e.g. 1e-5.
    pub layer_norm_epsilon: f64,
    /// Dropout on embeddings, attention output and MLP output, e.g. 0.0.
    pub dropout: f32,
    /// `gelu_new` (GPT-2) or `gelu` (exact; nanoGPT).
    #[serde(default)]
    pub activation: GptActivation,
    pub bos_token_id: u32,
    pub eos_token_id: u32,
    /// LoRA adapters on these layers (fine-tuning); none by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora: Option<crate::nn::lora::LoraConfig>,
}

impl Gpt2Config {
    /// A nanoGPT-style model: exact GELU (nanoGPT's `nn.GELU()`, "gelu" in
    /// transformers), no dropout, shiftlm's end-of-text id for bos and eos.
    pub fn nano(vocab_size: usize, n_layer: usize, n_head: usize, n_embd: usize, n_positions: usize) -> Self {
        Self {
            vocab_size,
            n_positions,
            n_embd,
            n_layer,
            n_head,
            layer_norm_epsilon: 1e-5,
            dropout: 0.0,
            activation: GptActivation::Gelu,
            bos_token_id: crate::data::tokenizer::EOS,
            eos_token_id: crate::data::tokenizer::EOS,
            lora: None,
        }
    }

    pub fn validate(&self) -> Result<()> {
        for (f, v) in [
            ("model.vocab_size", self.vocab_size),
            ("model.n_positions", self.n_positions),
            ("model.n_embd", self.n_embd),
            ("model.n_layer", self.n_layer),
            ("model.n_head", self.n_head),
        ] {
            if v == 0 {
                return Err(Error::config(f, "must be at least 1"));
            }
        }
        if !self.n_embd.is_multiple_of(self.n_head) {
            return Err(Error::config(
                "model.n_embd",
                format!("{} is not divisible by n_head {}", self.n_embd, self.n_head),
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::config("model.dropout", "must be in [0, 1)"));
        }
        Ok(())
    }

    /// `config.json` as `transformers` writes it for `GPT2LMHeadModel`.
    pub fn to_hf(&self) -> serde_json::Value {
        serde_json::json!({
            "model_type": "gpt2",
            "architectures": ["GPT2LMHeadModel"],
            "vocab_size": self.vocab_size,
            "n_positions": self.n_positions,
            "n_ctx": self.n_positions,
            "n_embd": self.n_embd,
            "n_layer": self.n_layer,
            "n_head": self.n_head,
            "n_inner": null,
            "activation_function": match self.activation {
                GptActivation::GeluNew => "gelu_new",
                GptActivation::Gelu => "gelu",
            },
            "resid_pdrop": self.dropout,
            "embd_pdrop": self.dropout,
            "attn_pdrop": 0.0, // shiftlm applies no dropout to attention probabilities
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "initializer_range": 0.02,
            "scale_attn_weights": true,
            "tie_word_embeddings": true,
            "use_cache": true,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_id,
            "dtype": "float32",
        })
    }

    /// Reads a `transformers` GPT-2 `config.json`, refusing what shiftlm
    /// cannot reproduce exactly.
    pub fn from_hf(v: &serde_json::Value) -> std::result::Result<Self, String> {
        let u = |k: &str| super::hf_usize(v, k);
        let activation = match v.get("activation_function").and_then(|a| a.as_str()).unwrap_or("gelu_new") {
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => GptActivation::GeluNew,
            "gelu" => GptActivation::Gelu,
            act => return Err(format!("activation_function \"{act}\" is not supported (gelu_new and gelu are)")),
        };
        let n_embd = u("n_embd")?;
        if let Some(inner) = v.get("n_inner").and_then(|x| x.as_u64()) {
            if inner as usize != 4 * n_embd {
                return Err(format!("n_inner {inner} is not supported (only 4 × n_embd)"));
            }
        }
        let flag = |k: &str| v.get(k).and_then(|x| x.as_bool());
        if flag("scale_attn_weights") == Some(false) || flag("scale_attn_by_inverse_layer_idx") == Some(true) {
            return Err(
                "scale_attn_weights = false and scale_attn_by_inverse_layer_idx = true are not supported".into()
            );
        }
        if flag("add_cross_attention") == Some(true) {
            return Err("add_cross_attention = true is not supported".into());
        }
        if v.get("tie_word_embeddings").and_then(|x| x.as_bool()) == Some(false) {
            return Err("untied GPT-2 heads are not supported".into());
        }
        Ok(Self {
            vocab_size: u("vocab_size")?,
            n_positions: u("n_positions")?,
            n_embd,
            n_layer: u("n_layer")?,
            n_head: u("n_head")?,
            layer_norm_epsilon: v.get("layer_norm_epsilon").and_then(|x| x.as_f64()).unwrap_or(1e-5),
            dropout: v.get("resid_pdrop").and_then(|x| x.as_f64()).unwrap_or(0.0) as f32,
            activation,
            // GPT-2's own <|endoftext|> when the config does not say.
            bos_token_id: v.get("bos_token_id").and_then(|x| x.as_u64()).unwrap_or(50256) as u32,
            eos_token_id: v.get("eos_token_id").and_then(|x| x.as_u64()).unwrap_or(50256) as u32,
            lora: None,
        })
    }
}

#[derive(Debug, Clone)]
struct Block {
    ln_1: LayerNorm,
    c_attn: Conv1D, // (C, 3C): q, k, v along the output
    attn_proj: Conv1D,
    ln_2: LayerNorm,
    c_fc: Conv1D, // (C, 4C)
    mlp_proj: Conv1D,
    n_head: usize,
    dropout: f32,
    activation: GptActivation,
}

impl Block {
    fn new(cfg: &Gpt2Config, vb: VarBuilder) -> candle_core::Result<Self> {
        let c = cfg.n_embd;
        let w = Init::Randn { mean: 0.0, stdev: 0.02 };
        // Residual projections start smaller: 0.02/√(2·n_layer) (GPT-2 paper §2.3).
        let w_proj = Init::Randn { mean: 0.0, stdev: 0.02 / (2.0 * cfg.n_layer as f64).sqrt() };
        let l = cfg.lora.as_ref();
        Ok(Self {
            ln_1: layer_norm(c, cfg.layer_norm_epsilon, vb.pp("ln_1"))?,
            c_attn: conv1d(c, 3 * c, w, l, vb.pp("attn").pp("c_attn"))?,
            attn_proj: conv1d(c, c, w_proj, l, vb.pp("attn").pp("c_proj"))?,
            ln_2: layer_norm(c, cfg.layer_norm_epsilon, vb.pp("ln_2"))?,
            c_fc: conv1d(c, 4 * c, w, l, vb.pp("mlp").pp("c_fc"))?,
            mlp_proj: conv1d(4 * c, c, w_proj, l, vb.pp("mlp").pp("c_proj"))?,
            n_head: cfg.n_head,
            dropout: cfg.dropout,
            activation: cfg.activation,
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        cache: Option<&mut KvCache>,
        mut rng: Option<&mut Rng>,
    ) -> candle_core::Result<Tensor> {
        let c = x.dim(2)?;
        let qkv = self.c_attn.forward_t(&self.ln_1.forward(x)?, rng.as_deref_mut())?; // (B, T, 3C)
        let att = match cache {
            // Training and whole-sequence scoring: one fused op.
            None => crate::ops::attention::causal_self_attention(&qkv, self.n_head)?,
            Some(cache) => {
                let q = split_heads(&qkv.narrow(2, 0, c)?, self.n_head)?;
                let k = split_heads(&qkv.narrow(2, c, c)?, self.n_head)?;
                let v = split_heads(&qkv.narrow(2, 2 * c, c)?, self.n_head)?;
                let offset = cache.len();
                let (k, v) = cache.append(k.contiguous()?, v.contiguous()?)?;
                attend(&q, &k, &v, offset)?
            }
        }; // (B, T, C)
        let y = self.attn_proj.forward_t(&att, rng.as_deref_mut())?;
        let x = (x + dropout(&y, self.dropout, rng.as_deref_mut())?)?;
        let h = self.c_fc.forward_t(&self.ln_2.forward(&x)?, rng.as_deref_mut())?;
        let h = match self.activation {
            GptActivation::GeluNew => crate::ops::gelu::gelu_tanh(&h)?,
            GptActivation::Gelu => crate::ops::gelu::gelu_erf(&h)?,
        };
        let h = self.mlp_proj.forward_t(&h, rng.as_deref_mut())?;
        x + dropout(&h, self.dropout, rng)?
    }
}

/// GPT-2.
#[derive(Debug, Clone)]
pub struct Gpt2 {
    cfg: Gpt2Config,
    wte: Embedding, // (V, C), also the output head
    wpe: Tensor,    // (P, C)
    blocks: Vec<Block>,
    ln_f: LayerNorm,
}

impl Gpt2 {
    pub fn new(cfg: &Gpt2Config, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let t = vb.pp("transformer");
        let w = Init::Randn { mean: 0.0, stdev: 0.02 };
        Ok(Self {
            cfg: cfg.clone(),
            wte: embedding_init(cfg.vocab_size, cfg.n_embd, w, t.pp("wte"))?,
            wpe: t.pp("wpe").get_with_hints((cfg.n_positions, cfg.n_embd), "weight", w)?,
            blocks: (0..cfg.n_layer).map(|i| Block::new(cfg, t.pp("h").pp(i))).collect::<candle_core::Result<_>>()?,
            ln_f: layer_norm(cfg.n_embd, cfg.layer_norm_epsilon, t.pp("ln_f"))?,
        })
    }

    pub fn config(&self) -> &Gpt2Config {
        &self.cfg
    }

    /// `ids` (B, T) → logits (B, T, V). With `cache` (one per block), the
    /// ids continue the cached positions.
    pub fn forward(
        &self,
        ids: &Tensor,
        mut cache: Option<&mut [KvCache]>,
        mut rng: Option<&mut Rng>,
    ) -> Result<Tensor> {
        let (_b, t) = ids.dims2()?;
        let offset = cache.as_ref().map_or(0, |c| c[0].len());
        super::check_positions("model.n_positions", offset + t, self.cfg.n_positions)?;
        let tok = self.wte.forward(ids)?;
        let pos = self.wpe.narrow(0, offset, t)?.unsqueeze(0)?;
        let mut x = dropout(&tok.broadcast_add(&pos)?, self.cfg.dropout, rng.as_deref_mut())?; // (B, T, C)
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(&x, cache.as_deref_mut().map(|c| &mut c[i]), rng.as_deref_mut())?;
        }
        let x = self.ln_f.forward(&x)?;
        Ok(self.wte.project(&x)?)
    }

    pub fn n_layer(&self) -> usize {
        self.cfg.n_layer
    }
}
