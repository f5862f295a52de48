#!/usr/bin/env python3
"""Generation speed of Hugging Face transformers on a folder written by
`shiftlm bench --config NAME --generate N --save DIR` (the same weights):
KV-cached sampling (temperature 1, no top-k/top-p) of N new tokens from a
one-token prompt, batch 1, the median of REPEATS runs after one warmup.
Prints one JSON line like `shiftlm bench --generate --json`.

  python3 tools/bench_generate_torch.py DIR N [THREADS] [REPEATS]
"""
import json
import sys
import time

import torch
from transformers import AutoModelForCausalLM

d, n = sys.argv[1], int(sys.argv[2])
threads = int(sys.argv[3]) if len(sys.argv) > 3 else 1
repeats = int(sys.argv[4]) if len(sys.argv) > 4 else 5
torch.set_num_threads(threads)
model = AutoModelForCausalLM.from_pretrained(d).eval()
ids = torch.tensor([[0]])
times = []
with torch.inference_mode():
    for r in range(repeats + 1):
        torch.manual_seed(r)
        t0 = time.perf_counter()
        out = model.generate(
            ids, max_new_tokens=n, min_new_tokens=n, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
            use_cache=True, pad_token_id=0,
        )
        dt = time.perf_counter() - t0
        if r > 0:
            times.append(dt / (out.shape[1] - 1))
times.sort()
s = times[len(times) // 2]
print(json.dumps({"config": d, "framework": f"transformers {__import__('transformers').__version__}", "threads": threads,
                  "new_tokens": n, "ms_per_token": 1000 * s, "tokens_per_s": 1 / s}))
