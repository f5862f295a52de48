#!/usr/bin/env python3
"""PEFT adapters for the tiny random GPT-2 and Llama fixtures, made with
`peft` itself, and the logits PEFT computes with them.

  python3 tools/make_peft_fixture.py          (needs torch, transformers, peft)

For each of tests/fixtures/{gpt2_tiny,llama_tiny} it builds
`get_peft_model(AutoModelForCausalLM.from_pretrained(dir), LoraConfig(...))`,
sets every lora_A and lora_B to seeded random values (PEFT starts B at zero,
which would test nothing), saves the adapter with `save_pretrained` to
tests/fixtures/peft_<name>/ (adapter_config.json, adapter_model.safetensors)
and writes peft_<name>/golden.safetensors with the input ids and PEFT's
logits. tests/peft.rs loads base + adapter in shiftlm and compares.
It also checks the other direction when given an adapter folder written by
`shiftlm finetune --lora`: PeftModel.from_pretrained(base, ADAPTER) must
compute the same logits as the folder `shiftlm merge` wrote:

  python3 tools/make_peft_fixture.py --check BASE ADAPTER MERGED
"""
import sys

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

if len(sys.argv) == 5 and sys.argv[1] == "--check":
    base, adapter, merged = sys.argv[2:]
    ids = torch.tensor([[5, 9, 3, 17, 2, 44, 8, 1]]) % AutoModelForCausalLM.from_pretrained(base).config.vocab_size
    with torch.no_grad():
        a = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter).eval()(ids).logits
        m = AutoModelForCausalLM.from_pretrained(merged).eval()(ids).logits
    err = (a - m).abs().max().item() / m.abs().max().item()
    print(f"PEFT(base + shiftlm adapter) vs shiftlm merge: max rel diff {err:.2e}")
    sys.exit(0 if err < 1e-5 else 1)

for name, targets in [("gpt2_tiny", ["c_attn", "c_fc"]), ("llama_tiny", ["q_proj", "v_proj", "down_proj"])]:
    src = f"tests/fixtures/{name}"
    model = AutoModelForCausalLM.from_pretrained(src).eval()
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=targets, lora_dropout=0.0, task_type="CAUSAL_LM",
                     fan_in_fan_out=name.startswith("gpt2"))
    model = get_peft_model(model, cfg)
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_" in n:
                p.copy_(torch.empty(p.shape).uniform_(-0.3, 0.3, generator=g))
    out = f"tests/fixtures/peft_{name}"
    model.save_pretrained(out)
    ids = torch.randint(0, model.config.vocab_size, (2, 8), generator=g)
    with torch.no_grad():
        logits = model(ids).logits
    save_file({"input_ids": ids, "logits": logits.float().contiguous()}, f"{out}/golden.safetensors")
    print(out, "logits", tuple(logits.shape), "mean", float(logits.mean()))
