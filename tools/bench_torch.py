#!/usr/bin/env python3
"""PyTorch side of `shiftlm bench`: the same configurations, shapes and
initialisation scheme (normal 0.02, scaled residual projections; PyTorch's
defaults for the LSTM), timed the same way: forward + loss + backward +
clip(1.0) + AdamW per step on random tokens, median over the timed steps.

  python3 tools/bench_torch.py --config baby-gpt --threads 2 --steps 30
Prints one JSON line: config, threads, ms_per_step, tokens_per_s.
"""
import argparse
import json
import math
import pathlib
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from make_image_fixtures import Cnn as ImageCnn  # noqa: E402
from make_image_fixtures import ConvRnn  # noqa: E402
from make_seq2seq_fixtures import Seq2Seq, batch  # noqa: E402

GPT = {  # name: (vocab, layers, heads, width, context, batch)
    "baby-gpt": (65, 4, 4, 128, 64, 12),
    "gpt-6x384": (512, 6, 6, 384, 256, 16),
    "gpt2-30m": (8192, 8, 8, 512, 128, 8),
}


class Block(nn.Module):
    def __init__(self, c, h, n_layer):
        super().__init__()
        self.h = h
        self.ln_1, self.ln_2 = nn.LayerNorm(c), nn.LayerNorm(c)
        self.c_attn, self.attn_proj = nn.Linear(c, 3 * c), nn.Linear(c, c)
        self.c_fc, self.mlp_proj = nn.Linear(c, 4 * c), nn.Linear(4 * c, c)
        for p in (self.attn_proj.weight, self.mlp_proj.weight):
            nn.init.normal_(p, std=0.02 / math.sqrt(2 * n_layer))

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(c, 2)
        q, k, v = (z.view(b, t, self.h, c // self.h).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, c)
        x = x + self.attn_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))


class Gpt(nn.Module):
    def __init__(self, v, layers, heads, c, ctx):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(v, c), nn.Embedding(ctx, c)
        self.blocks = nn.ModuleList(Block(c, heads, layers) for _ in range(layers))
        self.ln_f = nn.LayerNorm(c)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)) and m.weight.std() > 0.02:
                nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, idx):
        x = self.wte(idx) + self.wpe.weight[: idx.shape[1]]
        for blk in self.blocks:
            x = blk(x)
        return self.ln_f(x) @ self.wte.weight.T


LLAMA = {  # name: (vocab, layers, heads, key/value heads, width, context, batch)
    "llama-baby": (65, 4, 4, 2, 128, 64, 12),
    "llama-6x384": (512, 6, 6, 2, 384, 256, 16),
}


def rope(x, cos, sin):
    """Rotary embedding, the halves layout of transformers' Llama."""
    h = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., h:], x[..., :h]], -1) * sin


class LlamaBlock(nn.Module):
    def __init__(self, c, h, kv, ff, n_layer):
        super().__init__()
        self.h, self.kv, self.hd = h, kv, c // h
        self.norm_1, self.norm_2 = nn.RMSNorm(c, eps=1e-5), nn.RMSNorm(c, eps=1e-5)
        self.q, self.o = nn.Linear(c, c, bias=False), nn.Linear(c, c, bias=False)
        self.k, self.v = nn.Linear(c, kv * self.hd, bias=False), nn.Linear(c, kv * self.hd, bias=False)
        self.gate, self.up = nn.Linear(c, ff, bias=False), nn.Linear(c, ff, bias=False)
        self.down = nn.Linear(ff, c, bias=False)
        for p in (self.o.weight, self.down.weight):
            nn.init.normal_(p, std=0.02 / math.sqrt(2 * n_layer))

    def forward(self, x, cos, sin):
        b, t, c = x.shape
        y = self.norm_1(x)
        q = rope(self.q(y).view(b, t, self.h, self.hd).transpose(1, 2), cos, sin)
        k = rope(self.k(y).view(b, t, self.kv, self.hd).transpose(1, 2), cos, sin)
        v = self.v(y).view(b, t, self.kv, self.hd).transpose(1, 2)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        x = x + self.o(a.transpose(1, 2).reshape(b, t, c))
        y = self.norm_2(x)
        return x + self.down(F.silu(self.gate(y)) * self.up(y))


class Llama(nn.Module):
    def __init__(self, v, layers, heads, kv, c, ctx):
        super().__init__()
        ff = (8 * c // 3 + 7) // 8 * 8
        self.wte = nn.Embedding(v, c)
        self.blocks = nn.ModuleList(LlamaBlock(c, heads, kv, ff, layers) for _ in range(layers))
        self.norm = nn.RMSNorm(c, eps=1e-5)
        hd = c // heads
        inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
        ang = torch.outer(torch.arange(ctx, dtype=torch.float32), inv)
        ang = torch.cat([ang, ang], -1)
        self.register_buffer("cos", ang.cos(), persistent=False)
        self.register_buffer("sin", ang.sin(), persistent=False)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)) and m.weight.std() > 0.02:
                nn.init.normal_(m.weight, std=0.02)

    def forward(self, idx):
        t = idx.shape[1]
        x = self.wte(idx)
        for blk in self.blocks:
            x = blk(x, self.cos[:t], self.sin[:t])
        return self.norm(x) @ self.wte.weight.T


class TorchForecaster(nn.Module):
    """shiftlm's forecasters as a PyTorch user would write them: nn.LSTM/nn.GRU encoder and
    decoder (teacher-forced, one pass) or nn.TransformerEncoder (pre-LN, GELU tanh) with
    a direct head; windows relative to their last value, as in shiftlm."""

    def __init__(self, kind, c=64, ctx=168, horizon=24, heads=4, ff=128):
        super().__init__()
        self.kind, self.h = kind, horizon
        if kind in ("lstm", "gru"):
            rnn = nn.LSTM if kind == "lstm" else nn.GRU
            self.encoder = rnn(1, c, batch_first=True)
            self.decoder = rnn(1, c, batch_first=True)
            self.head = nn.Linear(c, 1)
        else:
            self.input_proj = nn.Linear(1, c)
            self.pos = nn.Parameter(torch.randn(ctx, c) * 0.02)
            layer = nn.TransformerEncoderLayer(c, heads, ff, dropout=0.0, activation=lambda x: F.gelu(x, approximate="tanh"),
                                               batch_first=True, norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(c)
            self.head = nn.Linear(c, horizon)

    def forward(self, past, dec_in):
        last = past[:, -1:]
        x = past - last
        if self.kind in ("lstm", "gru"):
            _, state = self.encoder(x)
            d = dec_in - last
            out, _ = self.decoder(d, state)
            return d + self.head(out) + last
        z = self.norm(self.encoder(self.input_proj(x) + self.pos)[:, -1])
        return self.head(z).unsqueeze(-1) + last


class TorchTranslator(nn.Module):
    """shiftlm's Transformer encoder-decoder as PyTorch builds it: nn.Transformer
    (pre-LN, GELU-tanh feed-forward, final norms) with one shared embedding for
    source, target and output head, and learned positions."""

    def __init__(self, v, c, heads, layers, ff, ctx, dropout):
        super().__init__()
        self.emb = nn.Embedding(v, c)
        self.enc_pos = nn.Parameter(0.02 * torch.randn(ctx, c))
        self.dec_pos = nn.Parameter(0.02 * torch.randn(ctx, c))
        self.core = nn.Transformer(c, heads, layers, layers, ff, dropout, activation=lambda x: F.gelu(x, approximate="tanh"), batch_first=True, norm_first=True)
        self.drop = nn.Dropout(dropout)
        nn.init.normal_(self.emb.weight, std=0.02)

    def forward(self, src, dec_in):
        s, t = src.shape[1], dec_in.shape[1]
        x = self.drop(self.emb(src) + self.enc_pos[:s])
        y = self.drop(self.emb(dec_in) + self.dec_pos[:t])
        mask = nn.Transformer.generate_square_subsequent_mask(t)
        h = self.core(x, y, tgt_mask=mask, tgt_is_causal=True)
        return h @ self.emb.weight.T


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--precision", choices=["f32", "bf16"], default="f32",
                    help="bf16: the forward pass under torch.autocast('cpu', dtype=torch.bfloat16), "
                    "PyTorch's CPU mixed precision (f32 weights and optimizer)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(7)
    if a.config.startswith("forecast-"):
        # The built-in series (trend + daily and weekly seasons + noise), z-scored.
        ctx, hz, b = 168, 24, 32
        t = ctx
        n = 24 * 7 * 24
        tt = torch.arange(n, dtype=torch.float32)
        series = 10 + 0.002 * tt + 2 * torch.sin(2 * math.pi * tt / 24) + 0.5 * torch.sin(2 * math.pi * tt / 168) + 0.3 * torch.randn(n)
        series = ((series - series.mean()) / series.std()).unsqueeze(-1)
        model = TorchForecaster(a.config.removeprefix("forecast-"))

        def step_loss():
            ix = torch.randint(int(n * 0.7) - ctx - hz, (b,))
            w = torch.stack([series[i : i + ctx + hz] for i in ix])  # (B, L + H, 1)
            past, future = w[:, :ctx], w[:, ctx:]
            dec_in = torch.cat([past[:, -1:], future[:, :-1]], 1)  # the shift
            return F.mse_loss(model(past, dec_in), future)
    elif a.config == "cnn-28":
        # shiftlm's CNN preset at Fashion-MNIST's shapes, on random pixels
        # (tools/make_image_fixtures.py builds the same layers).
        b, t = 64, 1
        model = ImageCnn([32, 64], 128, height=28, width=28, n_classes=10)
        images, labels = torch.rand(8 * b, 1, 28, 28), torch.randint(0, 10, (8 * b,))

        def step_loss():
            ix = torch.randint(8 * b, (b,))
            return F.cross_entropy(model(images[ix]), labels[ix])
    elif a.config == "kws-conv-lstm":
        # The spoken-digits preset's keyword spotter on its features' shape: 40
        # mel bands x 176 frames (a 1.75 s canvas), random values in [0, 2).
        b, t = 64, 1
        model = ConvRnn("lstm", [32, 32], 128, height=40, width=176, n_classes=10)
        feats, labels = 2 * torch.rand(8 * b, 1, 40, 176), torch.randint(0, 10, (8 * b,))

        def step_loss():
            ix = torch.randint(8 * b, (b,))
            return F.cross_entropy(model(feats[ix]), labels[ix])
    elif a.config == "mt-transformer":
        v, b, t = 8000, 64, 24
        model = TorchTranslator(v, 256, 4, 3, 1024, 64, 0.1)
        src = torch.randint(4, v, (8 * b, t))
        tgt = torch.roll(src, -1, 1)  # rotate left by one, as shiftlm's bench pairs

        def step_loss():
            ix = torch.randint(8 * b, (b,))
            x, y = src[ix], tgt[ix]
            dec_in = torch.cat([torch.ones(b, 1, dtype=torch.long), y], 1)  # the shift: [BOS] + y
            labels = torch.cat([y, torch.full((b, 1), 2)], 1)  # y + [EOS]
            return F.cross_entropy(model(x, dec_in).reshape(-1, v), labels.reshape(-1))
    elif a.config == "seed-lstm":
        model = Seq2Seq({"vocab_size": 1004, "emb_dim": 256, "hidden": 128, "n_layer": 1, "cell": "lstm", "attention": "none"})
        b, t = 64, 10
        pairs = []
        for _ in range(b):
            x = (torch.randint(0, 1000, (t,)) + 4).tolist()
            pairs.append((x, x[1:] + x[:1]))

        def step_loss():
            src, src_len, dec_in, labels, mask = batch(pairs)
            logits = model(src, src_len, dec_in)
            return F.cross_entropy(logits.reshape(-1, 1004), labels.masked_fill(mask == 0, -100).reshape(-1), ignore_index=-100)
    else:
        if a.config in LLAMA:
            v, layers, heads, kv, c, ctx, b = LLAMA[a.config]
            model = Llama(v, layers, heads, kv, c, ctx)
        else:
            v, layers, heads, c, ctx, b = GPT[a.config]
            model = Gpt(v, layers, heads, c, ctx)
        t = ctx
        data = torch.randint(0, v, (64 * (ctx + 1),))

        def step_loss():
            ix = torch.randint(len(data) - ctx - 1, (b,))
            x = torch.stack([data[i : i + ctx] for i in ix])
            y = torch.stack([data[i + 1 : i + 1 + ctx] for i in ix])
            return F.cross_entropy(model(x).reshape(-1, v), y.reshape(-1))
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}], lr=1e-3, betas=(0.9, 0.99))
    if a.config.startswith("forecast-"):
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)  # the series preset's optimizer
    if a.config in ("cnn-28", "kws-conv-lstm"):
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)  # the cnn and spoken-digits presets' optimizer
    times = []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.precision == "bf16"):
            loss = step_loss()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    times.sort()
    s = times[len(times) // 2]
    print(json.dumps({"config": a.config, "framework": f"torch {torch.__version__}", "threads": a.threads, "precision": a.precision, "ms_per_step": 1000 * s, "tokens_per_s": b * t / s}))


if __name__ == "__main__":
    main()
