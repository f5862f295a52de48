#!/usr/bin/env python3
"""Golden fixtures for shiftlm's forecasters (tests/golden_forecast.rs).

Plain PyTorch forecasters with the parameter names shiftlm uses:

- lstm / gru: nn.LSTM/nn.GRU encoder (batch_first) over the past, read
  relative to its last target value (covariates as they are); its final
  state starts an nn.LSTM/nn.GRU decoder; nn.Linear head; each step predicts
  previous + head(h). Teacher-forced: the decoder reads [x_last, y0, ...]
  (the targets shifted right by one). Free-running: it reads its own output.
- transformer: nn.Linear input projection + learned positions, pre-LN
  encoder blocks (BART names, GELU tanh), final LayerNorm, and a direct head
  on the last position: last + head(z).reshape(H, N).
- nlinear / dlinear: one nn.Linear over the flattened relative window; for
  DLinear two, over the moving-average trend (kernel 5, replicate padding,
  avg_pool1d) and the remainder, summed.
- nbeats: N-BEATS' generic stack over the flattened relative window: each
  block's ReLU nn.Linear layers read the residual window, its backcast is
  subtracted from it and its forecast added to the sum (2 blocks of 2 layers;
  the last block has no backcast, which nothing would read).
- gru_revin: the GRU forecaster behind RevIN (per-window standardisation,
  undone on the forecast; no affine map).
- lstm_quantiles: the LSTM forecaster with a head of 3 quantiles (0.1, 0.5,
  0.9) per target and step, the median read back when free-running;
  gradients of the pinball loss.

Each runs one batch (2 targets + 1 covariate) in float64 and writes
tests/fixtures/forecast_<kind>.{json,safetensors} with param.*, input.*,
expected.* (forced and free forecasts; MSE, MAE and Huber sums) and grad.*
(of the MSE sum of the teacher-forced forecast, and for the transformer of
its direct forecast).

  python3 tools/make_forecast_fixtures.py       (needs torch, safetensors)
"""
import json
import pathlib

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

from make_transformer_fixture import Layer

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures"
B, L, H, FEAT, N = 3, 6, 4, 3, 2


def base_cfg(kind, layers):
    return {"family": "forecaster", "kind": kind, "n_inputs": FEAT, "n_targets": N, "context": L, "horizon": H,
            "hidden": 8, "n_layer": layers, "n_head": 2, "d_ff": 12, "dropout": 0.0, "loss": "mse",
            "scheduled_sampling": 0.0, "scaler": None}


def relative(past):
    last = past[:, -1:, :N]
    off = torch.cat([last, torch.zeros_like(past[:, -1:, N:])], 2)
    return past - off, last


class RnnForecaster(nn.Module):
    def __init__(self, cell, c, layers):
        super().__init__()
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.encoder = rnn(FEAT, c, layers, batch_first=True)
        self.decoder = rnn(N, c, layers, batch_first=True)
        self.head = nn.Linear(c, N)

    def forward(self, past, dec_in=None):
        x, last = relative(past)
        _, state = self.encoder(x)
        if dec_in is not None:
            d = dec_in - last
            out, _ = self.decoder(d, state)
            return d + self.head(out) + last
        prev, steps = torch.zeros_like(last), []
        for _ in range(H):
            out, state = self.decoder(prev, state)
            prev = prev + self.head(out)
            steps.append(prev)
        return torch.cat(steps, 1) + last


class TransformerForecaster(nn.Module):
    def __init__(self, c, layers, heads, ff):
        super().__init__()
        self.input_proj = nn.Linear(FEAT, c)
        self.embed_positions = nn.Embedding(L, c)
        self.encoder = nn.Module()
        self.encoder.layers = nn.ModuleList(Layer(c, heads, ff, False) for _ in range(layers))
        self.layer_norm = nn.LayerNorm(c)
        self.head = nn.Linear(c, H * N)

    def forward(self, past, dec_in=None):
        x, last = relative(past)
        x = self.input_proj(x) + self.embed_positions.weight
        nobias = torch.zeros(1, dtype=x.dtype)
        for l in self.encoder.layers:
            h = l.self_attn_layer_norm(x)
            x = x + l.self_attn(h, h, nobias)
            x = x + l.ffn(x)
        z = self.layer_norm(x[:, -1:])
        return self.head(z).reshape(-1, H, N) + last


class LinearForecaster(nn.Module):
    """NLinear (kernel None) or DLinear (a centred moving average of `kernel`
    steps, ends padded with the first and last values, as the paper's code)."""

    def __init__(self, kernel=None):
        super().__init__()
        self.kernel = kernel
        if kernel is None:
            self.linear = nn.Linear(L * FEAT, H * N)
        else:
            self.linear_seasonal = nn.Linear(L * FEAT, H * N)
            self.linear_trend = nn.Linear(L * FEAT, H * N)

    def forward(self, past, dec_in=None):
        x, last = relative(past)
        b = x.shape[0]
        if self.kernel is None:
            return self.linear(x.reshape(b, -1)).reshape(b, H, N) + last
        pad = (self.kernel - 1) // 2
        padded = torch.cat([x[:, :1].repeat(1, pad, 1), x, x[:, -1:].repeat(1, pad, 1)], 1)
        trend = F.avg_pool1d(padded.transpose(1, 2), self.kernel, stride=1).transpose(1, 2)
        rest = x - trend
        y = self.linear_seasonal(rest.reshape(b, -1)) + self.linear_trend(trend.reshape(b, -1))
        return y.reshape(b, H, N) + last


class NBeatsForecaster(nn.Module):
    """N-BEATS' generic stack (Oreshkin et al. 2020) on the relative window."""

    def __init__(self, hidden, layers, blocks):
        super().__init__()
        self.blocks = nn.ModuleList()
        for i in range(blocks):
            block = nn.Module()
            block.layers = nn.ModuleList([nn.Linear(L * FEAT if j == 0 else hidden, hidden) for j in range(layers)])
            if i + 1 < blocks:  # no block reads the last one's backcast: it has none
                block.backcast = nn.Linear(hidden, L * FEAT)
            block.forecast = nn.Linear(hidden, H * N)
            self.blocks.append(block)

    def forward(self, past, dec_in=None):
        x, last = relative(past)
        b = x.shape[0]
        r, y = x.reshape(b, -1), 0
        for block in self.blocks:
            z = r
            for layer in block.layers:
                z = torch.relu(layer(z))
            if hasattr(block, "backcast"):
                r = r - block.backcast(z)
            y = y + block.forecast(z)
        return y.reshape(b, H, N) + last


class RevinGru(RnnForecaster):
    """The GRU forecaster behind RevIN without its affine map: each window's
    columns standardised by their own mean and spread (variance + 1e-5), the
    forecast mapped back with the targets' statistics."""

    def __init__(self):
        super().__init__("gru", 8, 1)

    def forward(self, past, dec_in=None):
        mean = past.mean(1, keepdim=True)
        std = torch.sqrt(past.var(1, keepdim=True, unbiased=False) + 1e-5)
        x = (past - mean) / std
        d = None if dec_in is None else (dec_in - mean[..., :N]) / std[..., :N]
        return super().forward(x, d) * std[..., :N] + mean[..., :N]


class QuantileLstm(RnnForecaster):
    """The LSTM forecaster with a quantile head: Q outputs per target and
    step; free-running, the decoder reads back the median."""

    def __init__(self, levels):
        super().__init__("lstm", 8, 1)
        self.levels = levels
        self.head = nn.Linear(8, N * len(levels))

    def forward_all(self, past, dec_in=None):
        x, last = relative(past)
        q, mid = len(self.levels), self.levels.index(0.5)
        _, state = self.encoder(x)
        if dec_in is not None:
            d = dec_in - last
            out, _ = self.decoder(d, state)
            return d.unsqueeze(3) + self.head(out).reshape(*out.shape[:2], N, q) + last.unsqueeze(3)
        prev, steps = torch.zeros_like(last), []
        for _ in range(H):
            out, state = self.decoder(prev, state)
            yq = prev.unsqueeze(3) + self.head(out).reshape(-1, 1, N, q)
            prev = yq[..., mid]
            steps.append(yq)
        return torch.cat(steps, 1) + last.unsqueeze(3)

    def forward(self, past, dec_in=None):
        return self.forward_all(past, dec_in)[..., self.levels.index(0.5)]


def pinball(all_q, labels, levels):
    e = labels.unsqueeze(3) - all_q
    q = torch.tensor(levels, dtype=all_q.dtype)
    return torch.maximum(q * e, (q - 1) * e).sum()


def make_quantiles(name, cfg, model):
    """As make(), but the gradients are of the pinball loss of the forced quantiles."""
    torch.manual_seed(5)
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-0.5, 0.5)
    params = {k: v.detach().float().clone() for k, v in model.state_dict().items()}
    model = model.double()
    past, dec_in, labels = batch()
    forced = model.forward_all(past, dec_in)
    with torch.no_grad():
        free = model.forward_all(past)
    loss = pinball(forced, labels, model.levels)
    loss.backward()
    tensors = {f"param.{k}": v.contiguous() for k, v in params.items()}
    tensors.update({
        "input.past": past.float(), "input.dec_in": dec_in.float(), "input.labels": labels.float(),
        "expected.forced_quantiles": forced.detach().float(), "expected.free_quantiles": free.float(),
        "expected.pinball": loss.detach().float().reshape(1),
    })
    for k, p in model.named_parameters():
        tensors[f"grad.{k}"] = p.grad.float().contiguous()
    save_file(tensors, str(OUT / f"forecast_{name}.safetensors"))
    meta = {"generator": "tools/make_forecast_fixtures.py", "torch": torch.__version__, "model": cfg}
    (OUT / f"forecast_{name}.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"{name}: pinball {loss.item():.6f}, {len(params)} tensors")


def batch():
    g = torch.Generator().manual_seed(11)
    series = torch.randn(B, L + H, FEAT, generator=g, dtype=torch.float64).cumsum(1) * 0.5
    past, future = series[:, :L], series[:, L:, :N]
    # The shift: the decoder reads the last observed value, then the targets shifted right by one.
    dec_in = torch.cat([past[:, -1:, :N], future[:, :-1]], 1)
    return past, dec_in, future


def make(name, cfg, model):
    torch.manual_seed(5)
    with torch.no_grad():
        for k, p in model.named_parameters():
            if "layer_norm" in k and k.endswith("weight"):
                p.uniform_(0.8, 1.2)
            else:
                p.uniform_(-0.5, 0.5)
    params = {k: v.detach().float().clone() for k, v in model.state_dict().items()}
    model = model.double()
    past, dec_in, labels = batch()
    forced = model(past, dec_in)
    with torch.no_grad():
        free = model(past)
    mse = F.mse_loss(forced, labels, reduction="sum")
    mse.backward()
    tensors = {f"param.{k}": v.contiguous() for k, v in params.items()}
    tensors.update({
        "input.past": past.float(), "input.dec_in": dec_in.float(), "input.labels": labels.float(),
        "expected.forced": forced.detach().float(), "expected.free": free.float(),
        "expected.mse": mse.detach().float().reshape(1),
        "expected.mae": F.l1_loss(forced, labels, reduction="sum").detach().float().reshape(1),
        "expected.huber": F.huber_loss(forced, labels, reduction="sum", delta=0.5).detach().float().reshape(1),
    })
    for k, p in model.named_parameters():
        tensors[f"grad.{k}"] = p.grad.float().contiguous()
    save_file(tensors, str(OUT / f"forecast_{name}.safetensors"))
    meta = {"generator": "tools/make_forecast_fixtures.py", "torch": torch.__version__, "model": cfg, "huber_delta": 0.5}
    (OUT / f"forecast_{name}.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"{name}: mse {mse.item():.6f}, {len(params)} tensors")


if __name__ == "__main__":
    make("lstm", base_cfg("lstm", 2), RnnForecaster("lstm", 8, 2))
    make("gru", base_cfg("gru", 1), RnnForecaster("gru", 8, 1))
    make("transformer", base_cfg("transformer", 2), TransformerForecaster(8, 2, 2, 12))
    make("nlinear", base_cfg("nlinear", 1), LinearForecaster())
    make("dlinear", {**base_cfg("dlinear", 1), "ma_kernel": 5}, LinearForecaster(5))
    make("nbeats", {**base_cfg("nbeats", 2), "blocks": 2}, NBeatsForecaster(8, 2, 2))
    make("gru_revin", {**base_cfg("gru", 1), "revin": True}, RevinGru())
    make_quantiles("lstm_quantiles", {**base_cfg("lstm", 1), "quantiles": [0.1, 0.5, 0.9]}, QuantileLstm([0.1, 0.5, 0.9]))
