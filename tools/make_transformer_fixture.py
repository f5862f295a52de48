#!/usr/bin/env python3
"""Golden fixture for shiftlm's Transformer encoder-decoder (tests/golden_seq2seq.rs).

A plain PyTorch pre-LN encoder-decoder with the parameter names shiftlm uses
(BART's layout: shared.weight, encoder.layers.0.self_attn.q_proj.weight, ...):
learned positions, bidirectional encoder with source-padding mask, decoder with
causal self-attention and cross-attention, GELU (tanh) feed-forward, a final
LayerNorm on each side and the output head tied to the shared embedding. It runs
one teacher-forced batch with padding in source and target (decoder input
[BOS]+y, labels y+[EOS]) in float64 and writes:

  tests/fixtures/seq2seq_transformer.json         config + the batch's pairs
  tests/fixtures/seq2seq_transformer.safetensors  param.*, input.*, expected.*, grad.*

  python3 tools/make_transformer_fixture.py       (needs torch, safetensors)
"""
import json
import math
import pathlib

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

from make_seq2seq_fixtures import PAIRS, batch

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures"
CFG = {"family": "transformer", "vocab_size": 13, "d_model": 16, "n_head": 2, "n_encoder_layer": 2,
       "n_decoder_layer": 2, "d_ff": 24, "max_positions": 8, "dropout": 0.0, "share_embeddings": True}


class Attention(nn.Module):
    def __init__(self, c, h):
        super().__init__()
        self.h = h
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(c, c) for _ in range(4))

    def forward(self, xq, xkv, bias):
        b, t, c = xq.shape
        s = xkv.shape[1]
        d = c // self.h
        q = self.q_proj(xq).view(b, t, self.h, d).transpose(1, 2)
        k = self.k_proj(xkv).view(b, s, self.h, d).transpose(1, 2)
        v = self.v_proj(xkv).view(b, s, self.h, d).transpose(1, 2)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + bias, -1)
        return self.out_proj((att @ v).transpose(1, 2).reshape(b, t, c))


class Layer(nn.Module):
    def __init__(self, c, h, ff, cross):
        super().__init__()
        self.self_attn = Attention(c, h)
        self.self_attn_layer_norm = nn.LayerNorm(c)
        if cross:
            self.encoder_attn = Attention(c, h)
            self.encoder_attn_layer_norm = nn.LayerNorm(c)
        self.fc1 = nn.Linear(c, ff)
        self.fc2 = nn.Linear(ff, c)
        self.final_layer_norm = nn.LayerNorm(c)

    def ffn(self, x):
        return self.fc2(F.gelu(self.fc1(self.final_layer_norm(x)), approximate="tanh"))


class Stack(nn.Module):
    def __init__(self, cfg, n, cross):
        super().__init__()
        self.embed_positions = nn.Embedding(cfg["max_positions"], cfg["d_model"])
        self.layers = nn.ModuleList(Layer(cfg["d_model"], cfg["n_head"], cfg["d_ff"], cross) for _ in range(n))
        self.layer_norm = nn.LayerNorm(cfg["d_model"])


class Model(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.shared = nn.Embedding(cfg["vocab_size"], cfg["d_model"])
        self.encoder = Stack(cfg, cfg["n_encoder_layer"], False)
        self.decoder = Stack(cfg, cfg["n_decoder_layer"], True)

    def forward(self, src, src_len, dec_in):
        (b, s), t = src.shape, dec_in.shape[1]
        real = (torch.arange(s)[None, :] < src_len[:, None]).to(self.shared.weight.dtype)
        src_bias = (real * 1e9 - 1e9)[:, None, None, :]  # 0 real, -1e9 padding
        x = self.shared(src) + self.encoder.embed_positions.weight[:s]
        for l in self.encoder.layers:
            h = l.self_attn_layer_norm(x)
            x = x + l.self_attn(h, h, src_bias)
            x = x + l.ffn(x)
        mem = self.encoder.layer_norm(x)
        causal = torch.full((t, t), float("-inf"), dtype=mem.dtype).triu(1)
        y = self.shared(dec_in) + self.decoder.embed_positions.weight[:t]
        for l in self.decoder.layers:
            h = l.self_attn_layer_norm(y)
            y = y + l.self_attn(h, h, causal)
            y = y + l.encoder_attn(l.encoder_attn_layer_norm(y), mem, src_bias)
            y = y + l.ffn(y)
        return self.decoder.layer_norm(y) @ self.shared.weight.T


if __name__ == "__main__":
    torch.manual_seed(4)
    model = Model(CFG)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name and name.endswith("weight"):
                p.uniform_(0.8, 1.2)
            else:
                p.uniform_(-0.5, 0.5)
    params = {k: v.detach().float().clone() for k, v in model.state_dict().items()}
    model = model.double()
    src, src_len, dec_in, labels, mask = batch(PAIRS)
    logits = model(src, src_len, dec_in)
    target = labels.masked_fill(mask == 0, -100)
    loss = F.cross_entropy(logits.reshape(-1, CFG["vocab_size"]), target.reshape(-1), ignore_index=-100, reduction="sum") / mask.sum()
    loss.backward()
    tensors = {f"param.{k}": v.contiguous() for k, v in params.items()}
    tensors.update({"input.src": src, "input.dec_in": dec_in, "input.labels": labels, "input.label_mask": mask,
                    "expected.logits": logits.detach().float(), "expected.loss": loss.detach().float().reshape(1)})
    for k, p in model.named_parameters():
        tensors[f"grad.{k}"] = p.grad.float().contiguous()
    save_file(tensors, str(OUT / "seq2seq_transformer.safetensors"))
    meta = {"generator": "tools/make_transformer_fixture.py", "torch": torch.__version__, "model": CFG,
            "pairs": [{"source": x, "target": y} for x, y in PAIRS]}
    (OUT / "seq2seq_transformer.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"transformer: loss {loss.item():.6f}, {len(params)} tensors")
