//! GPT in the GPT-2 layout (Radford et al. 2019; nanoGPT's model.py):
//! learned positions, pre-LayerNorm blocks, GELU (tanh), tied input/output
//! embeddings. Parameter names and `config.json` are those of Hugging Face's
//! `GPT2LMHeadModel`, so folders move both ways.

use super::causal_lm::{Attention, Block, CausalLm, Mlp, Norm, Positions, Proj, Qkv};
use crate::error::{Error, Result};
use crate::nn::embedding::embedding_init;
use crate::nn::layer_norm::layer_norm;
use crate::nn::linear::conv1d;
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
    /// Start-of-text id, e.g. 50256; shiftlm sets it to `eos_token_id` (GPT-2 has one `<|endoftext|>`).
    pub bos_token_id: u32,
    /// End-of-text id between documents, e.g. 50256 for GPT-2 (shiftlm's `EOS`, 2, for its own tokenizers).
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

    /// Checks the shape: sizes at least 1, `n_embd` divisible by `n_head`, dropout in [0, 1).
    pub fn validate(&self) -> Result<()> {
        super::check_sizes(&[
            ("model.vocab_size", self.vocab_size),
            ("model.n_positions", self.n_positions),
            ("model.n_embd", self.n_embd),
            ("model.n_layer", self.n_layer),
            ("model.n_head", self.n_head),
        ])?;
        let (v, p, c, l) = (self.vocab_size, self.n_positions, self.n_embd, self.n_layer);
        // wte, wpe, and per block the attention (4C²) and MLP (8C²) weights.
        super::check_params(&[
            ("model.vocab_size", &[v, c]),
            ("model.n_positions", &[p, c]),
            ("model.n_layer", &[l, 12, c, c]),
        ])?;
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

/// GPT-2: the decoder-only skeleton with learned positions, LayerNorm,
/// one packed q/k/v Conv1D, a GELU MLP and the head tied to the embedding.
pub type Gpt2 = CausalLm;

/// Builds GPT-2 in `transformers`' layout (`transformer.h.{i}.attn.c_attn`, …).
/// Parameters are created (and initialised) in the order nanoGPT declares them.
pub fn gpt2(cfg: &Gpt2Config, vb: VarBuilder) -> Result<CausalLm> {
    cfg.validate()?;
    let t = vb.pp("transformer");
    let c = cfg.n_embd;
    let w = Init::Randn { mean: 0.0, stdev: 0.02 };
    // Residual projections start smaller: 0.02/√(2·n_layer) (GPT-2 paper §2.3).
    let w_proj = Init::Randn { mean: 0.0, stdev: 0.02 / (2.0 * cfg.n_layer as f64).sqrt() };
    let l = cfg.lora.as_ref();
    let wte = embedding_init(cfg.vocab_size, c, w, t.pp("wte"))?;
    let wpe = t.pp("wpe").get_with_hints((cfg.n_positions, c), "weight", w)?; // (P, C)
    let block = |vb: VarBuilder| -> candle_core::Result<Block> {
        let (a, m) = (vb.pp("attn"), vb.pp("mlp"));
        Ok(Block {
            norm_1: Norm::Layer(layer_norm(c, cfg.layer_norm_epsilon, vb.pp("ln_1"))?),
            attn: Attention {
                qkv: Qkv::Packed(Proj::Conv(conv1d(c, 3 * c, w, l, a.pp("c_attn"))?)), // (C, 3C): q, k, v
                out: Proj::Conv(conv1d(c, c, w_proj, l, a.pp("c_proj"))?),
                n_head: cfg.n_head,
                n_kv_head: cfg.n_head,
            },
            norm_2: Norm::Layer(layer_norm(c, cfg.layer_norm_epsilon, vb.pp("ln_2"))?),
            mlp: Mlp::Gelu {
                fc: Proj::Conv(conv1d(c, 4 * c, w, l, m.pp("c_fc"))?), // (C, 4C)
                proj: Proj::Conv(conv1d(4 * c, c, w_proj, l, m.pp("c_proj"))?),
                tanh: cfg.activation == GptActivation::GeluNew,
            },
            dropout: cfg.dropout,
        })
    };
    let blocks = (0..cfg.n_layer).map(|i| block(t.pp("h").pp(i))).collect::<candle_core::Result<_>>()?;
    Ok(CausalLm {
        head: wte.clone(),
        embed: wte,
        positions: Positions::Learned(wpe),
        embed_dropout: cfg.dropout,
        blocks,
        norm_f: Norm::Layer(layer_norm(c, cfg.layer_norm_epsilon, t.pp("ln_f"))?),
        max_positions: (cfg.n_positions, "model.n_positions"),
    })
}

impl super::Family for Gpt2Config {
    fn validate(&self) -> Result<()> {
        Gpt2Config::validate(self)
    }

    fn build(&self, vb: VarBuilder) -> Result<super::Model> {
        Ok(super::Model::Causal(gpt2(self, vb)?))
    }

    fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    fn set_vocab_size(&mut self, v: usize) {
        self.vocab_size = v;
    }

    /// GPT-2 starts and ends documents with the same `<|endoftext|>`.
    fn set_special_ids(&mut self, _bos: u32, eos: u32) {
        (self.bos_token_id, self.eos_token_id) = (eos, eos);
    }

    fn context(&self) -> Option<usize> {
        Some(self.n_positions)
    }

    fn lora(&self) -> Option<&crate::nn::lora::LoraConfig> {
        self.lora.as_ref()
    }

    fn set_lora(&mut self, lora: Option<crate::nn::lora::LoraConfig>) -> Result<()> {
        self.lora = lora;
        Ok(())
    }

    fn to_hf(&self) -> Option<serde_json::Value> {
        Some(Gpt2Config::to_hf(self))
    }

    /// The attention mask buffers and the tied head older `transformers` save.
    fn ignorable(&self, name: &str) -> bool {
        name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias") || name == "lm_head.weight"
    }
}
