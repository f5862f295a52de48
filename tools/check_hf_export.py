#!/usr/bin/env python3
"""Opens shiftlm checkpoints with Hugging Face `transformers` and `tokenizers`.

For each checkpoint folder given (a GPT-2 or Llama checkpoint written by
`shiftlm train --model gpt|llama`), this loads the model with
`AutoModelForCausalLM.from_pretrained(DIR)` and the tokenizer with
`PreTrainedTokenizerFast(tokenizer_file=DIR/tokenizer.json)`, encodes a fixed
text, runs the model and writes the ids and logits next to the folder as
`DIR.hf.safetensors`. `tests/golden_export.rs` checks that shiftlm computes
the same ids and logits from the same folder. It also prints the logits'
summary, so it doubles as a manual check:

  python3 tools/check_hf_export.py tests/fixtures/export/gpt2 tests/fixtures/export/llama
  python3 tools/check_hf_export.py runs/gpt-baby-input/checkpoint-2000      # any run of yours
"""
import sys

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

TEXT = "ROMEO:\nWhat light through yonder window"

for d in sys.argv[1:]:
    d = d.rstrip("/")
    model = AutoModelForCausalLM.from_pretrained(d).eval()
    tok = PreTrainedTokenizerFast(tokenizer_file=f"{d}/tokenizer.json")
    n = model.config.max_position_embeddings if hasattr(model.config, "max_position_embeddings") else model.config.n_positions
    ids = tok(TEXT, add_special_tokens=False)["input_ids"][:n]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]
    save_file({"ids": torch.tensor(ids, dtype=torch.int64), "logits": logits.float().contiguous()}, f"{d}.hf.safetensors")
    print(f"{d}: {type(model).__name__}, {len(ids)} tokens, logits {tuple(logits.shape)}, "
          f"mean {logits.mean().item():.6f}, next token after the text: {tok.decode([int(logits[-1].argmax())])!r}")
