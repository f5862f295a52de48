"""Generate golden fixtures for the causal language models (GPT-2, Llama).

Run from the repository root:

    /root/pyenv-tools/bin/python tools/make_causal_fixtures.py

Requires torch, safetensors, numpy and transformers. No network access is
needed: both models are built from in-script configs (nothing is downloaded
from the Hugging Face hub).

For each fixture it writes, under ``tests/fixtures/<name>/``:

* ``config.json`` and ``model.safetensors`` -- exactly as
  ``PreTrainedModel.save_pretrained(dir, safe_serialization=True)`` writes
  them, with float32 weights.  GPT-2 ties ``lm_head.weight`` to
  ``transformer.wte.weight``; transformers stores only the latter, so the
  GPT-2 ``model.safetensors`` has no ``lm_head.weight`` entry (the loader must
  re-tie it).  Llama is untied and stores ``lm_head.weight`` explicitly.
* ``golden.safetensors`` -- reference tensors, all computed with the model
  converted to float64 (from the same float32 weights) and cast to float32.
  For Llama, HF's hard-wired float32 casts (RMSNorm, rotary tables, eager
  softmax) are patched out during this computation; see
  ``llama_full_precision``:

  - ``input_ids``      int64   (2, 9)   uniform in [0, vocab) from a fixed
                                        ``torch.Generator`` seed
  - ``logits``         float32 (2, 8, vocab)  logits for ``input_ids[:, :8]``
                                        (no attention mask, no padding,
                                        position ids 0..7)
  - ``loss``           float32 (1,)     mean cross-entropy of ``logits``
                                        against ``input_ids[:, 1:9]`` over all
                                        16 positions (explicit shift; we do not
                                        pass ``labels=`` to the model)
  - ``grad.<name>``    float32          d loss / d param for every entry of
                                        ``model.named_parameters()`` (HF names;
                                        tied parameters appear once, under the
                                        embedding's name)
  - ``greedy_prompt``  int64   (1, 4)   ``input_ids[0:1, :4]``
  - ``greedy``         int64   (1, 8)   the 8 new tokens from
                                        ``model.generate(..., do_sample=False)``
                                        (float64 model); cross-checked against a
                                        hand-written greedy loop of full forward
                                        passes (argmax of the last position)
* ``golden.json`` -- generator script, library versions and notes.

Weights: after construction (``torch.manual_seed``) every parameter is
re-initialised with ``uniform_(-0.3, 0.3)``, except LayerNorm / RMSNorm
weights which are set to ``1 + uniform(-0.1, 0.1)``, so that no parameter is
trivially zero / one yet activations stay in a sane range.

The script finishes by reloading each folder with ``from_pretrained(dir)``
(float32), checking its logits against the float64 reference, and printing the
names and shapes stored in each ``model.safetensors``.
"""

import contextlib
import json
import os
import sys

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import transformers
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
)
from transformers.models.llama import modeling_llama
from transformers.models.llama.modeling_llama import LlamaRMSNorm

FIXTURES = os.path.join("tests", "fixtures")
SEQ = 9  # input_ids length; logits cover the first SEQ - 1 positions
BATCH = 2
PROMPT_LEN = 4
NEW_TOKENS = 8


def reinit_(model, norm_types):
    """Re-initialise every parameter in place (see module docstring)."""
    norm_weights = set()
    for module in model.modules():
        if isinstance(module, norm_types) and getattr(module, "weight", None) is not None:
            norm_weights.add(id(module.weight))
    with torch.no_grad():
        # named_parameters() de-duplicates tied parameters, so a tied
        # embedding/lm_head pair is initialised once.
        for _, p in model.named_parameters():
            if id(p) in norm_weights:
                p.uniform_(-0.1, 0.1).add_(1.0)
            else:
                p.uniform_(-0.3, 0.3)
    return len(norm_weights)


@contextlib.contextmanager
def llama_full_precision():
    """Make the Llama forward pass honour float64 end to end.

    transformers' Llama deliberately computes three things in float32
    whatever the model dtype: RMSNorm (``hidden.to(float32)``), the rotary
    cos/sin tables (float32 ``inv_freq`` and angles) and the eager softmax
    (``softmax(..., dtype=float32)``).  For a float64 *reference* those casts
    would cap accuracy at float32 level, so while this context is active they
    are replaced by the same formulas evaluated in the input dtype.  The maths
    is unchanged (a float32 model computes exactly what HF computes); only the
    precision of the float64 reference improves.  GPT-2 needs no such patch:
    its LayerNorm, gelu_new and attention all run in the model dtype.
    """

    def rms_forward(self, hidden_states):
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        return self.weight * (hidden_states * torch.rsqrt(variance + self.variance_epsilon))

    def rope_forward(self, x, position_ids):
        assert self.rope_type == "default"
        dim = 2 * self.inv_freq.shape[-1]
        base = self.config.rope_parameters["rope_theta"]
        inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
        freqs = position_ids[..., None].to(torch.float64) * inv_freq.to(x.device)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos = emb.cos() * self.attention_scaling
        sin = emb.sin() * self.attention_scaling
        return cos.to(dtype=x.dtype), sin.to(dtype=x.dtype)

    def eager_attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
        key_states = modeling_llama.repeat_kv(key, module.num_key_value_groups)
        value_states = modeling_llama.repeat_kv(value, module.num_key_value_groups)
        attn_weights = torch.matmul(query, key_states.transpose(2, 3)) * scaling
        if attention_mask is not None:
            attn_weights = attn_weights + attention_mask
        attn_weights = torch.softmax(attn_weights, dim=-1)  # in query.dtype
        attn_weights = F.dropout(attn_weights, p=dropout, training=module.training)
        attn_output = torch.matmul(attn_weights, value_states)
        return attn_output.transpose(1, 2).contiguous(), attn_weights

    saved = (
        modeling_llama.LlamaRMSNorm.forward,
        modeling_llama.LlamaRotaryEmbedding.forward,
        modeling_llama.eager_attention_forward,
    )
    modeling_llama.LlamaRMSNorm.forward = rms_forward
    modeling_llama.LlamaRotaryEmbedding.forward = rope_forward
    modeling_llama.eager_attention_forward = eager_attention
    try:
        yield
    finally:
        (
            modeling_llama.LlamaRMSNorm.forward,
            modeling_llama.LlamaRotaryEmbedding.forward,
            modeling_llama.eager_attention_forward,
        ) = saved


def manual_greedy(model, prompt, steps):
    """Greedy decoding with full forward passes (no KV cache)."""
    ids = prompt
    with torch.no_grad():
        for _ in range(steps):
            logits = model(input_ids=ids, use_cache=False).logits
            nxt = logits[:, -1, :].argmax(dim=-1, keepdim=True)
            ids = torch.cat([ids, nxt], dim=1)
    return ids[:, prompt.shape[1]:]


def make_fixture(name, model, vocab, ids_seed, notes, precision=contextlib.nullcontext):
    out_dir = os.path.join(FIXTURES, name)
    os.makedirs(out_dir, exist_ok=True)
    model.eval()
    model.save_pretrained(out_dir, safe_serialization=True)

    # Reference computation in float64 from the float32 weights just saved.
    model = model.double()
    model.eval()

    gen = torch.Generator().manual_seed(ids_seed)
    input_ids = torch.randint(0, vocab, (BATCH, SEQ), generator=gen, dtype=torch.int64)

    print(f"[{name}] attention implementation: {model.config._attn_implementation}")
    with precision():
        return _reference(name, model, vocab, input_ids, notes, out_dir)


def _reference(name, model, vocab, input_ids, notes, out_dir):
    """Compute and write golden.safetensors / golden.json (float64 model)."""
    inputs = input_ids[:, : SEQ - 1]
    labels = input_ids[:, 1:]
    model.zero_grad(set_to_none=True)
    logits = model(input_ids=inputs, use_cache=False).logits  # (B, SEQ-1, V)
    loss = F.cross_entropy(logits.reshape(-1, vocab), labels.reshape(-1))
    loss.backward()

    tensors = {
        "input_ids": input_ids.contiguous(),
        "logits": logits.detach().float().contiguous(),
        "loss": loss.detach().float().reshape(1).contiguous(),
    }
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"no gradient for {pname}"
        tensors[f"grad.{pname}"] = p.grad.detach().float().contiguous()

    prompt = input_ids[0:1, :PROMPT_LEN].clone()  # own storage (save_file rejects shared memory)
    with torch.no_grad():
        out = model.generate(
            prompt,
            max_new_tokens=NEW_TOKENS,
            min_new_tokens=NEW_TOKENS,
            do_sample=False,
            eos_token_id=None,
            pad_token_id=0,
        )
    greedy = out[:, PROMPT_LEN:].contiguous()
    manual = manual_greedy(model, prompt, NEW_TOKENS)
    assert greedy.shape == (1, NEW_TOKENS), greedy.shape
    assert torch.equal(greedy, manual), (greedy, manual)
    tensors["greedy_prompt"] = prompt
    tensors["greedy"] = greedy.to(torch.int64)

    save_file(tensors, os.path.join(out_dir, "golden.safetensors"))
    with open(os.path.join(out_dir, "golden.json"), "w") as f:
        json.dump(
            {
                "generator": "tools/make_causal_fixtures.py",
                "transformers": transformers.__version__,
                "torch": torch.__version__,
                "notes": notes,
            },
            f,
            indent=2,
        )
        f.write("\n")
    return out_dir


def verify(name, cls, out_dir):
    golden = load_file(os.path.join(out_dir, "golden.safetensors"))
    model = cls.from_pretrained(out_dir).float().eval()
    with torch.no_grad():
        logits = model(input_ids=golden["input_ids"][:, : SEQ - 1], use_cache=False).logits
    ref = golden["logits"]
    max_abs = (logits - ref).abs().max().item()
    rel = max_abs / ref.abs().max().item()
    print(f"[{name}] reload: max|dlogits|={max_abs:.3e} rel={rel:.3e} loss={golden['loss'].item():.6f}")
    assert rel < 1e-5, f"{name}: logits mismatch (rel {rel})"

    print(f"[{name}] model.safetensors:")
    with safe_open(os.path.join(out_dir, "model.safetensors"), framework="pt") as f:
        for k in sorted(f.keys()):
            t = f.get_slice(k)
            print(f"  {k} {t.get_dtype()} {tuple(t.get_shape())}")
    print(f"[{name}] golden.safetensors:")
    for k in sorted(golden):
        print(f"  {k} {golden[k].dtype} {tuple(golden[k].shape)}")
    size = sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir))
    print(f"[{name}] folder size {size} bytes")


def main():
    torch.set_num_threads(1)

    # --- GPT-2 -------------------------------------------------------------
    torch.manual_seed(0)
    gpt2_cfg = GPT2Config(
        vocab_size=50,
        n_positions=16,
        n_embd=32,
        n_layer=2,
        n_head=4,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        activation_function="gelu_new",
        bos_token_id=0,
        eos_token_id=0,
    )
    gpt2 = GPT2LMHeadModel(gpt2_cfg)
    n_norm = reinit_(gpt2, (torch.nn.LayerNorm,))
    assert n_norm == 2 * gpt2_cfg.n_layer + 1
    assert gpt2.lm_head.weight is gpt2.transformer.wte.weight, "expected tied lm_head"
    gpt2_dir = make_fixture(
        "gpt2_tiny",
        gpt2,
        50,
        ids_seed=1234,
        notes=(
            "GPT2LMHeadModel, torch.manual_seed(0); params uniform(-0.3,0.3), "
            "LayerNorm weights 1+uniform(-0.1,0.1). lm_head.weight is tied to "
            "transformer.wte.weight and not stored in model.safetensors; its "
            "gradient is included in grad.transformer.wte.weight. Golden values "
            "computed in float64, stored as float32. input_ids from "
            "torch.Generator seed 1234. greedy = model.generate(do_sample=False), "
            "checked equal to a manual full-forward argmax loop."
        ),
    )

    # --- Llama -------------------------------------------------------------
    torch.manual_seed(1)
    llama_cfg = LlamaConfig(
        vocab_size=50,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=16,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        attention_bias=False,
        mlp_bias=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=None,
        attn_implementation="eager",
    )
    llama_cfg._attn_implementation = "eager"
    llama = LlamaForCausalLM(llama_cfg)
    n_norm = reinit_(llama, (LlamaRMSNorm,))
    assert n_norm == 2 * llama_cfg.num_hidden_layers + 1
    assert llama.lm_head.weight is not llama.model.embed_tokens.weight
    llama_dir = make_fixture(
        "llama_tiny",
        llama,
        50,
        ids_seed=4321,
        precision=llama_full_precision,
        notes=(
            "LlamaForCausalLM (eager attention, GQA 4 q heads / 2 kv heads), "
            "torch.manual_seed(1); params uniform(-0.3,0.3), RMSNorm weights "
            "1+uniform(-0.1,0.1). Untied: lm_head.weight stored. Golden values "
            "computed in float64 (HF's internal float32 casts in RMSNorm, rotary "
            "cos/sin and eager softmax patched to stay float64 for the reference), "
            "stored as float32. input_ids from torch.Generator seed 4321. greedy = model.generate(do_sample=False), "
            "checked equal to a manual full-forward argmax loop."
        ),
    )

    verify("gpt2_tiny", GPT2LMHeadModel, gpt2_dir)
    verify("llama_tiny", LlamaForCausalLM, llama_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
