#!/usr/bin/env python3
"""Golden fixtures for shiftlm's image classifiers (tests/golden_image.rs).

Builds the same models in PyTorch, with parameter names equal to shiftlm's
safetensors keys:

  cnn       nn.Conv2d(3x3, padding 1) -> ReLU -> F.max_pool2d(2) per block
            (pooling skipped once a side is odd) -> flatten -> Linear -> ReLU
            -> Linear head
  row_lstm  the image's rows as a sequence (B, H, W) through nn.LSTM, the last
  row_gru   hidden state into a Linear head (nn.GRU for row_gru)

It loads fixed random weights, runs one batch whose first image has blank rows
(so 2x2 pooling windows hold tied maxima: PyTorch sends the gradient to the
first one in row-major order, and so must shiftlm), and writes:

  tests/fixtures/image_<name>.json         the model config
  tests/fixtures/image_<name>.safetensors  param.*, input.*, expected.*, grad.*

The loss is the summed cross-entropy (shiftlm sums, then divides by the
number of supervised images in the trainer). The reference runs in float64
(weights and pixels rounded to float32 first). Run from the repository root:

  python3 tools/make_image_fixtures.py       (needs torch, safetensors)
"""
import json
import pathlib

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures"
B, H, W, C = 3, 6, 10, 4


class Cnn(nn.Module):
    def __init__(self, channels, hidden, height=H, width=W, n_classes=C):
        super().__init__()
        self.convs = nn.ModuleList()
        h, w, c_in = height, width, 1
        for c in channels:
            self.convs.append(nn.Conv2d(c_in, c, 3, padding=1))
            if h % 2 == 0 and w % 2 == 0:
                h, w = h // 2, w // 2
            c_in = c
        self.hidden = nn.Linear(c_in * h * w, hidden)
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, x):
        for conv in self.convs:
            x = F.relu(conv(x))
            if x.shape[2] % 2 == 0 and x.shape[3] % 2 == 0:
                x = F.max_pool2d(x, 2)
        return self.head(F.relu(self.hidden(x.flatten(1))))


class RowRnn(nn.Module):
    def __init__(self, cell, hidden):
        super().__init__()
        self.rnn = (nn.LSTM if cell == "lstm" else nn.GRU)(W, hidden, 1, batch_first=True)
        self.head = nn.Linear(hidden, C)

    def forward(self, x):
        _, state = self.rnn(x.squeeze(1))  # rows as steps: (B, H, W)
        h = state[0] if isinstance(state, tuple) else state
        return self.head(h[-1])


def images(gen):
    x = torch.rand(B, 1, H, W, generator=gen, dtype=torch.float32)
    x[0, 0, :3] = 0.0  # blank rows: tied maxima after convolution and ReLU
    x[1, 0, :, :2] = 0.0  # a blank left margin, as in a shifted image
    return x


def make(name, model, cfg, seed):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_((torch.rand(p.shape, generator=gen) * 2 - 1) * 0.4)
    model = model.double()
    x = images(gen)
    labels = torch.tensor([2, 0, 3], dtype=torch.int64)
    logits = model(x.double())
    loss = F.cross_entropy(logits, labels, reduction="sum")
    loss.backward()
    tensors = {
        "input.images": x.contiguous(),
        "input.labels": labels.to(torch.int64),
        "expected.logits": logits.detach().float().contiguous(),
        "expected.loss": loss.detach().float().reshape(1),
    }
    for k, p in model.named_parameters():
        tensors[f"param.{k}"] = p.detach().float().contiguous()
        tensors[f"grad.{k}"] = p.grad.float().contiguous()
    save_file(tensors, OUT / f"image_{name}.safetensors")
    meta = {"generator": "tools/make_image_fixtures.py", "torch": torch.__version__, "model": cfg}
    (OUT / f"image_{name}.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"image_{name}: loss {loss.item():.6f}, {len(list(model.parameters()))} parameters")


def config(kind, channels, hidden):
    return {
        "family": "image",
        "kind": kind,
        "width": W,
        "height": H,
        "n_classes": C,
        "classes": [],
        "channels": channels,
        "hidden": hidden,
        "dropout": 0.0,
    }


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    # Three blocks: 6x10 -> pool -> 3x5 (odd: the next two blocks keep 3x5).
    make("cnn", Cnn([3, 4, 5], 7), config("cnn", [3, 4, 5], 7), 11)
    make("row_lstm", RowRnn("lstm", 6), config("row_lstm", [], 6), 12)
    make("row_gru", RowRnn("gru", 6), config("row_gru", [], 6), 13)


if __name__ == "__main__":
    main()
