//! GPT in the Llama layout (Touvron et al. 2023): RMSNorm, rotary positions,
//! SwiGLU MLP, grouped-query attention, optionally untied head. Parameter
//! names and `config.json` are those of Hugging Face's `LlamaForCausalLM`.

use super::causal_lm::{Attention, Block, CausalLm, Mlp, Norm, Positions, Proj, Qkv};
use crate::error::{Error, Result};
use crate::nn::embedding::embedding_init;
use crate::nn::layer_norm::rms_norm;
use crate::nn::linear::linear_lora;
use crate::nn::rope::Rope;
use candle_nn::{Init, VarBuilder};
use serde::{Deserialize, Serialize};

/// The shape of a Llama model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlamaConfig {
    /// Token ids, e.g. 260 (set from the tokenizer's size).
    pub vocab_size: usize,
    /// Width, e.g. 128.
    pub hidden_size: usize,
    /// SwiGLU inner width, e.g. 344 (≈ 8/3 · width, rounded).
    pub intermediate_size: usize,
    /// Blocks, e.g. 4.
    pub num_hidden_layers: usize,
    /// Query heads, e.g. 4.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention when fewer than query heads).
    pub num_key_value_heads: usize,
    /// Context length, e.g. 64.
    pub max_position_embeddings: usize,
    /// e.g. 1e-5.
    pub rms_norm_eps: f64,
    /// e.g. 10000.
    pub rope_theta: f64,
    /// Whether the output head reuses the embedding matrix.
    pub tie_word_embeddings: bool,
    /// Dropout on the residual branches, e.g. 0.0.
    pub dropout: f32,
    /// Start-of-sequence id, e.g. 1 (shiftlm's `BOS`).
    pub bos_token_id: u32,
    /// End-of-sequence id, also what generated text starts from, e.g. 2 (shiftlm's `EOS`).
    pub eos_token_id: u32,
    /// LoRA adapters on these layers (fine-tuning); none by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora: Option<crate::nn::lora::LoraConfig>,
}

impl LlamaConfig {
    /// Width of one attention head: `hidden_size / num_attention_heads`.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Checks the shape: sizes at least 1, heads of even width, `num_key_value_heads` dividing
    /// `num_attention_heads`, dropout in [0, 1).
    pub fn validate(&self) -> Result<()> {
        super::check_sizes(&[
            ("model.vocab_size", self.vocab_size),
            ("model.hidden_size", self.hidden_size),
            ("model.num_hidden_layers", self.num_hidden_layers),
            ("model.num_attention_heads", self.num_attention_heads),
            ("model.num_key_value_heads", self.num_key_value_heads),
            ("model.intermediate_size", self.intermediate_size),
            ("model.max_position_embeddings", self.max_position_embeddings),
        ])?;
        let (v, c, l, i) = (self.vocab_size, self.hidden_size, self.num_hidden_layers, self.intermediate_size);
        let heads = if self.tie_word_embeddings { 1 } else { 2 };
        let kv = self.num_key_value_heads * self.head_dim();
        // Embedding (and head), per block q and o (2C²), k and v (2·C·H_kv·D, fewer
        // with grouped-query attention) and the SwiGLU (3CI), and the rotary tables (2·P·D).
        super::check_params(&[
            ("model.vocab_size", &[heads, v, c]),
            ("model.num_hidden_layers", &[l, 2, c, c]),
            ("model.num_key_value_heads", &[l, 2, c, kv]),
            ("model.intermediate_size", &[l, 3, c, i]),
            ("model.max_position_embeddings", &[2, self.max_position_embeddings, self.head_dim()]),
        ])?;
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) || !self.head_dim().is_multiple_of(2) {
            return Err(Error::config("model.hidden_size", "must split into heads of even width"));
        }
        if !self.num_attention_heads.is_multiple_of(self.num_key_value_heads) {
            return Err(Error::config("model.num_key_value_heads", "must divide num_attention_heads"));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::config("model.dropout", "must be in [0, 1)"));
        }
        Ok(())
    }

    /// `config.json` as `transformers` writes it for `LlamaForCausalLM`.
    pub fn to_hf(&self) -> serde_json::Value {
        serde_json::json!({
            "model_type": "llama",
            "architectures": ["LlamaForCausalLM"],
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim(),
            "max_position_embeddings": self.max_position_embeddings,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "rope_parameters": {"rope_theta": self.rope_theta, "rope_type": "default"},
            "tie_word_embeddings": self.tie_word_embeddings,
            "hidden_act": "silu",
            "attention_bias": false,
            "mlp_bias": false,
            "attention_dropout": 0.0,
            "initializer_range": 0.02,
            "pretraining_tp": 1,
            "use_cache": true,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_id,
            "dtype": "float32",
        })
    }

    /// Reads a `transformers` Llama `config.json`, refusing what shiftlm
    /// cannot reproduce exactly.
    pub fn from_hf(v: &serde_json::Value) -> std::result::Result<Self, String> {
        let u = |k: &str| super::hf_usize(v, k);
        let heads = u("num_attention_heads")?;
        let hidden = u("hidden_size")?;
        if heads == 0 {
            return Err("num_attention_heads must be at least 1".into());
        }
        if let Some(hd) = v.get("head_dim").and_then(|x| x.as_u64()) {
            if hd as usize != hidden / heads {
                return Err(format!("head_dim {hd} differs from hidden_size / num_attention_heads; not supported"));
            }
        }
        if v.get("rope_scaling").is_some_and(|r| !r.is_null()) {
            return Err("rope_scaling is not supported".into());
        }
        // transformers 5 writes the base inside rope_parameters; older files at the top.
        let rope = v.get("rope_parameters").filter(|r| !r.is_null());
        if let Some(kind) = rope.and_then(|r| r.get("rope_type")).and_then(|t| t.as_str()) {
            if kind != "default" {
                return Err(format!("rope_type \"{kind}\" is not supported (default is)"));
            }
        }
        let rope_theta = rope
            .and_then(|r| r.get("rope_theta"))
            .or_else(|| v.get("rope_theta"))
            .and_then(|x| x.as_f64())
            .unwrap_or(10000.0);
        for k in ["attention_bias", "mlp_bias"] {
            if v.get(k).and_then(|x| x.as_bool()) == Some(true) {
                return Err(format!("{k} = true is not supported"));
            }
        }
        let act = v.get("hidden_act").and_then(|a| a.as_str()).unwrap_or("silu");
        if act != "silu" {
            return Err(format!("hidden_act \"{act}\" is not supported (silu is)"));
        }
        let id = |k: &str, d: u64| match v.get(k) {
            Some(serde_json::Value::Array(a)) => a.first().and_then(|x| x.as_u64()).unwrap_or(d) as u32,
            Some(x) => x.as_u64().unwrap_or(d) as u32,
            None => d as u32,
        };
        Ok(Self {
            vocab_size: u("vocab_size")?,
            hidden_size: hidden,
            intermediate_size: u("intermediate_size")?,
            num_hidden_layers: u("num_hidden_layers")?,
            num_attention_heads: heads,
            num_key_value_heads: v
                .get("num_key_value_heads")
                .and_then(|x| x.as_u64())
                .map(|x| x as usize)
                .unwrap_or(heads),
            max_position_embeddings: u("max_position_embeddings")?,
            rms_norm_eps: v.get("rms_norm_eps").and_then(|x| x.as_f64()).unwrap_or(1e-6),
            rope_theta,
            tie_word_embeddings: v.get("tie_word_embeddings").and_then(|x| x.as_bool()).unwrap_or(false),
            dropout: 0.0,
            bos_token_id: id("bos_token_id", 1),
            eos_token_id: id("eos_token_id", 2),
            lora: None,
        })
    }
}

/// Llama: the decoder-only skeleton with rotary positions, RMSNorm,
/// separate q/k/v projections over fewer key/value heads, a SwiGLU MLP and
/// a head that is tied to the embedding or its own.
pub type Llama = CausalLm;

/// Builds Llama in `transformers`' layout (`model.layers.{i}.self_attn.q_proj`, …).
pub fn llama(cfg: &LlamaConfig, vb: VarBuilder) -> Result<CausalLm> {
    cfg.validate()?;
    let m = vb.pp("model");
    let (c, hd) = (cfg.hidden_size, cfg.head_dim());
    let w = Init::Randn { mean: 0.0, stdev: 0.02 };
    let l = cfg.lora.as_ref();
    let embed_tokens = embedding_init(cfg.vocab_size, c, w, m.pp("embed_tokens"))?;
    let lin = |i: usize, o: usize, vb: VarBuilder| -> candle_core::Result<Proj> {
        Ok(Proj::Linear(linear_lora(i, o, false, w, l, vb)?))
    };
    let block = |vb: VarBuilder| -> candle_core::Result<Block> {
        let (a, mlp) = (vb.pp("self_attn"), vb.pp("mlp"));
        let (q, kv) = (cfg.num_attention_heads * hd, cfg.num_key_value_heads * hd);
        Ok(Block {
            norm_1: Norm::Rms(rms_norm(c, cfg.rms_norm_eps, vb.pp("input_layernorm"))?),
            attn: Attention {
                qkv: Qkv::Split {
                    q: lin(c, q, a.pp("q_proj"))?,
                    k: lin(c, kv, a.pp("k_proj"))?,
                    v: lin(c, kv, a.pp("v_proj"))?,
                },
                out: lin(q, c, a.pp("o_proj"))?,
                n_head: cfg.num_attention_heads,
                n_kv_head: cfg.num_key_value_heads,
            },
            norm_2: Norm::Rms(rms_norm(c, cfg.rms_norm_eps, vb.pp("post_attention_layernorm"))?),
            mlp: Mlp::SwiGlu {
                gate: lin(c, cfg.intermediate_size, mlp.pp("gate_proj"))?,
                up: lin(c, cfg.intermediate_size, mlp.pp("up_proj"))?,
                down: lin(cfg.intermediate_size, c, mlp.pp("down_proj"))?,
            },
            dropout: cfg.dropout,
        })
    };
    let blocks = (0..cfg.num_hidden_layers).map(|i| block(m.pp("layers").pp(i))).collect::<candle_core::Result<_>>()?;
    let norm = rms_norm(c, cfg.rms_norm_eps, m.pp("norm"))?;
    let head = if cfg.tie_word_embeddings {
        embed_tokens.clone()
    } else {
        embedding_init(cfg.vocab_size, c, w, vb.pp("lm_head"))?
    };
    let rope = Rope::new(hd, cfg.max_position_embeddings, cfg.rope_theta, vb.device())?;
    Ok(CausalLm {
        embed: embed_tokens,
        positions: Positions::Rotary(rope),
        embed_dropout: 0.0,
        blocks,
        norm_f: Norm::Rms(norm),
        head,
        max_positions: (cfg.max_position_embeddings, "model.max_position_embeddings"),
    })
}

impl super::Family for LlamaConfig {
    fn validate(&self) -> Result<()> {
        LlamaConfig::validate(self)
    }

    fn build(&self, vb: VarBuilder) -> Result<super::Model> {
        Ok(super::Model::Causal(llama(self, vb)?))
    }

    fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    fn set_vocab_size(&mut self, v: usize) {
        self.vocab_size = v;
    }

    fn set_special_ids(&mut self, bos: u32, eos: u32) {
        (self.bos_token_id, self.eos_token_id) = (bos, eos);
    }

    fn context(&self) -> Option<usize> {
        Some(self.max_position_embeddings)
    }

    fn lora(&self) -> Option<&crate::nn::lora::LoraConfig> {
        self.lora.as_ref()
    }

    fn set_lora(&mut self, lora: Option<crate::nn::lora::LoraConfig>) -> Result<()> {
        self.lora = lora;
        Ok(())
    }

    fn to_hf(&self) -> Option<serde_json::Value> {
        Some(LlamaConfig::to_hf(self))
    }

    /// The rotary frequencies some versions save, and a tied head.
    fn ignorable(&self, name: &str) -> bool {
        name.ends_with("rotary_emb.inv_freq") || (self.tie_word_embeddings && name == "lm_head.weight")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Meta-Llama-3-8B's shape (8.03 G parameters, grouped-query attention)
    /// is within the size limits; ten times its width is not.
    #[test]
    fn a_real_large_model_validates_and_an_absurd_one_does_not() {
        let cfg = LlamaConfig {
            vocab_size: 128_256,
            hidden_size: 4096,
            intermediate_size: 14_336,
            num_hidden_layers: 32,
            num_attention_heads: 32,
            num_key_value_heads: 8,
            max_position_embeddings: 8192,
            rms_norm_eps: 1e-5,
            rope_theta: 500_000.0,
            tie_word_embeddings: false,
            dropout: 0.0,
            bos_token_id: 128_000,
            eos_token_id: 128_001,
            lora: None,
        };
        cfg.validate().unwrap();
        let e = LlamaConfig { hidden_size: 40_960, intermediate_size: 143_360, ..cfg }.validate().unwrap_err();
        assert!(e.to_string().contains("more than"), "{e}");
    }
}
