#!/usr/bin/env python3
"""Golden fixtures for shiftlm's image classifiers (tests/golden_image.rs).

Builds the same models in PyTorch, with parameter names equal to shiftlm's
safetensors keys:

  cnn       nn.Conv2d(3x3, padding 1) -> ReLU -> F.max_pool2d(2) per block
            (pooling skipped once a side is odd) -> flatten -> Linear -> ReLU
            -> Linear head
  row_lstm  the image's rows as a sequence (B, H, W) through nn.LSTM, the last
  row_gru   hidden state into a Linear head (nn.GRU for row_gru)
  mlp       the pixels flattened -> Linear -> ReLU -> Linear head
  conv_lstm the CNN's conv blocks, then the feature map's columns (B, W', C*H')
  conv_gru  as a sequence through nn.LSTM (nn.GRU), the outputs averaged over
            time into a Linear head: the keyword spotter of speech
  strips2   the spoken-strings reader: as strips, with both conv blocks pooled
            (an odd width gets a zero column before each pooling)
  strips    the digit-strings reader: a strip (B, 1, H, W) through Conv2d + ReLU
            + max_pool2d(2), Conv2d + ReLU, each column's C*H' features through
            a Linear into an nn.LSTM encoder, then the seq2seq decoder
            (tools/make_seq2seq_fixtures.py: embedding, LSTM from the encoder's
            final state, Luong dot attention, Linear to the vocabulary) reading
            [BOS] + digits and scored on digits + [EOS]

It loads fixed random weights, runs one batch whose first image has blank rows
(so 2x2 pooling windows hold tied maxima: PyTorch sends the gradient to the
first one in row-major order, and so must shiftlm), and writes:

  tests/fixtures/image_<name>.json         the model config
  tests/fixtures/image_<name>.safetensors  param.*, input.*, expected.*, grad.*
  (strips: the decoder input and labels too, and the loss is the mean over
  supervised tokens, as for text pairs)

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


class Mlp(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.hidden = nn.Linear(H * W, hidden)
        self.head = nn.Linear(hidden, C)

    def forward(self, x):
        return self.head(F.relu(self.hidden(x.flatten(1))))


class ConvRnn(nn.Module):
    def __init__(self, cell, channels, hidden, height=H, width=W, n_classes=C):
        super().__init__()
        self.convs = nn.ModuleList()
        h, w, c_in = height, width, 1
        for c in channels:
            self.convs.append(nn.Conv2d(c_in, c, 3, padding=1))
            if h % 2 == 0 and w % 2 == 0:
                h, w = h // 2, w // 2
            c_in = c
        self.rnn = (nn.LSTM if cell == "lstm" else nn.GRU)(c_in * h, hidden, 1, batch_first=True)
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, x):
        for conv in self.convs:
            x = F.relu(conv(x))
            if x.shape[2] % 2 == 0 and x.shape[3] % 2 == 0:
                x = F.max_pool2d(x, 2)
        b, c, h, w = x.shape
        out, _ = self.rnn(x.permute(0, 3, 1, 2).reshape(b, w, c * h))  # columns as steps
        return self.head(out.mean(1))


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


class StripReader(nn.Module):
    def __init__(self, height, channels, proj, hidden, vocab, emb, pools=1):
        super().__init__()
        self.pools = pools
        self.encoder = nn.Module()
        self.encoder.input_proj = nn.Module()
        self.encoder.input_proj.convs = nn.ModuleList()
        c_in = 1
        for c in channels:
            self.encoder.input_proj.convs.append(nn.Conv2d(c_in, c, 3, padding=1))
            c_in = c
        # The projection's weight and bias sit under input_proj itself, as in shiftlm.
        self.encoder.input_proj.weight = nn.Parameter(torch.empty(proj, c_in * (height >> pools)))
        self.encoder.input_proj.bias = nn.Parameter(torch.empty(proj))
        self.encoder.rnn = nn.LSTM(proj, hidden, 1, batch_first=True)
        self.decoder = nn.Module()
        self.decoder.embedding = nn.Embedding(vocab, emb)
        self.decoder.rnn = nn.LSTM(emb, hidden, 1, batch_first=True)
        self.decoder.attn_combine = nn.Linear(2 * hidden, hidden, bias=False)
        self.decoder.out = nn.Linear(hidden, vocab)

    def forward(self, strips, dec_in):
        x = strips.unsqueeze(1)  # (B, 1, H, W)
        for i, conv in enumerate(self.encoder.input_proj.convs):
            if i < self.pools and x.shape[3] % 2 == 1:
                x = F.pad(x, (0, 1))  # an even width to pool
            x = F.relu(conv(x))
            if i < self.pools:
                x = F.max_pool2d(x, 2)
        b, c, h, w = x.shape
        cols = x.permute(0, 3, 1, 2).reshape(b, w, c * h)  # (B, W', C*H')
        frames = F.linear(cols, self.encoder.input_proj.weight, self.encoder.input_proj.bias)
        enc_out, state = self.encoder.rnn(frames)
        dec_out, _ = self.decoder.rnn(self.decoder.embedding(dec_in), state)
        ctx = torch.softmax(dec_out @ enc_out.transpose(1, 2), -1) @ enc_out
        h = torch.tanh(self.decoder.attn_combine(torch.cat([ctx, dec_out], -1)))
        return self.decoder.out(h)


def make_strips(seed, name="strips", height=6, width=10, pools=1):
    """Three strips reading "12", "3" and "405" (ids 4 + digit)."""
    gen = torch.Generator().manual_seed(seed)
    vocab = 14
    model = StripReader(height, [3, 4], 5, 6, vocab, 4, pools)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_((torch.rand(p.shape, generator=gen) * 2 - 1) * 0.5)
    model = model.double()
    strips = torch.rand(3, height, width, generator=gen, dtype=torch.float32)
    strips[0, :2] = 0.0  # blank rows: tied pooling windows
    texts = [[1, 2], [3], [4, 0, 5]]
    t = max(len(y) for y in texts) + 1
    dec_in = torch.zeros(3, t, dtype=torch.int64)
    labels = torch.zeros(3, t, dtype=torch.int64)
    mask = torch.zeros(3, t)
    for i, y in enumerate(texts):
        ids = [4 + d for d in y]
        dec_in[i, : len(ids) + 1] = torch.tensor([1] + ids)  # [BOS] + y
        labels[i, : len(ids) + 1] = torch.tensor(ids + [2])  # y + [EOS]
        mask[i, : len(ids) + 1] = 1
    logits = model(strips.double(), dec_in)
    target = labels.masked_fill(mask == 0, -100)
    loss = F.cross_entropy(logits.reshape(-1, vocab), target.reshape(-1), ignore_index=-100, reduction="sum")
    loss.backward()
    tensors = {
        "input.strips": strips.contiguous(),
        "input.dec_in": dec_in,
        "input.labels": labels,
        "input.label_mask": mask,
        "expected.logits": logits.detach().float().contiguous(),
        "expected.loss": loss.detach().float().reshape(1),
    }
    for k, p in model.named_parameters():
        tensors[f"param.{k}"] = p.detach().float().contiguous()
        tensors[f"grad.{k}"] = p.grad.float().contiguous()
    save_file(tensors, OUT / f"image_{name}.safetensors")
    cfg = {
        "family": "seq2seq",
        "vocab_size": vocab,
        "emb_dim": 4,
        "hidden": 6,
        "n_layer": 1,
        "cell": "lstm",
        "attention": "dot",
        "dropout": 0.0,
        "forget_bias": 0.0,
        "input": {"kind": "columns", "height": height, "channels": [3, 4], "proj": 5, "pool": True},
    }
    if pools != 1:
        cfg["input"]["pool_blocks"] = pools
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
    make_strips(14)
    make("mlp", Mlp(7), config("mlp", [], 7), 15)
    # 6x10 -> pool -> 3x5 (odd: the second block keeps 3x5): 5 steps of 4*3 features.
    make("conv_lstm", ConvRnn("lstm", [3, 4], 6), config("conv_lstm", [3, 4], 6), 16)
    make("conv_gru", ConvRnn("gru", [3, 4], 6), config("conv_gru", [3, 4], 6), 17)
    # 8x11 strips: padded to 8x12, pooled to 4x6, pooled again to 2x3: 3 encoder steps.
    make_strips(18, "strips2", height=8, width=11, pools=2)


if __name__ == "__main__":
    main()
