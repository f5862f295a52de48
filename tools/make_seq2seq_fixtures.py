#!/usr/bin/env python3
"""Golden fixtures for shiftlm's RNN encoder-decoder (tests/golden_seq2seq.rs).

Builds the same model in PyTorch -- nn.Embedding -> nn.LSTM/nn.GRU encoder whose
final state starts the decoder, optional Luong dot attention
(h~ = tanh(W_c [ctx; h])), and a Linear to the vocabulary -- with parameter
names equal to shiftlm's safetensors keys. It loads fixed random weights, runs a
teacher-forced batch with padding in both source and target, and writes:

  tests/fixtures/seq2seq_<name>.json         config + the pairs of the batch
  tests/fixtures/seq2seq_<name>.safetensors  param.*, input.*, expected.*, grad.*

The reference runs in float64 (weights rounded to float32 first), so the
fixture is exact to float32 precision. Run from the repository root:

  python3 tools/make_seq2seq_fixtures.py       (needs torch, safetensors, numpy)
"""
import json
import pathlib

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

PAD, BOS, EOS = 0, 1, 2
OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures"


class Encoder(nn.Module):
    def __init__(self, v, e, h, layers, cell):
        super().__init__()
        self.embedding = nn.Embedding(v, e)
        self.rnn = (nn.LSTM if cell == "lstm" else nn.GRU)(e, h, layers, batch_first=True)


class Decoder(nn.Module):
    def __init__(self, v, e, h, layers, cell, attention):
        super().__init__()
        self.embedding = nn.Embedding(v, e)
        self.rnn = (nn.LSTM if cell == "lstm" else nn.GRU)(e, h, layers, batch_first=True)
        if attention == "dot":
            self.attn_combine = nn.Linear(2 * h, h, bias=False)
        self.out = nn.Linear(h, v)


class Seq2Seq(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        args = (cfg["vocab_size"], cfg["emb_dim"], cfg["hidden"], cfg["n_layer"], cfg["cell"])
        self.encoder = Encoder(*args)
        self.decoder = Decoder(*args, cfg["attention"])
        self.attention = cfg["attention"]

    def forward(self, src, src_len, dec_in):
        b, s = src.shape
        if int(src_len.min()) == s:  # no padding: the plain (faster) path
            enc_out, state = self.encoder.rnn(self.encoder.embedding(src))
        else:
            packed = nn.utils.rnn.pack_padded_sequence(
                self.encoder.embedding(src), src_len, batch_first=True, enforce_sorted=False
            )
            enc_out, state = self.encoder.rnn(packed)
            enc_out, _ = nn.utils.rnn.pad_packed_sequence(enc_out, batch_first=True, total_length=s)
        dec_out, _ = self.decoder.rnn(self.decoder.embedding(dec_in), state)
        h = dec_out
        if self.attention == "dot":
            scores = dec_out @ enc_out.transpose(1, 2)  # (B, T, S)
            pad = torch.arange(s)[None, :] >= src_len[:, None]
            scores = scores.masked_fill(pad[:, None, :], float("-inf"))
            ctx = torch.softmax(scores, -1) @ enc_out
            h = torch.tanh(self.decoder.attn_combine(torch.cat([ctx, dec_out], -1)))
        return self.decoder.out(h)


def batch(pairs):
    """The teacher-forcing shift: decoder input [BOS]+y, labels y+[EOS], padded."""
    b = len(pairs)
    s = max(len(p[0]) for p in pairs)
    t = max(len(p[1]) + 1 for p in pairs)
    src = torch.full((b, s), PAD, dtype=torch.long)
    dec_in = torch.full((b, t), PAD, dtype=torch.long)
    labels = torch.full((b, t), PAD, dtype=torch.long)
    mask = torch.zeros((b, t))
    for i, (x, y) in enumerate(pairs):
        src[i, : len(x)] = torch.tensor(x)
        dec_in[i, : len(y) + 1] = torch.tensor([BOS] + y)
        labels[i, : len(y) + 1] = torch.tensor(y + [EOS])
        mask[i, : len(y) + 1] = 1
    src_len = torch.tensor([len(p[0]) for p in pairs])
    return src, src_len, dec_in, labels, mask


def make(name, cfg, pairs, seed):
    torch.manual_seed(seed)
    model = Seq2Seq(cfg)
    with torch.no_grad():
        for p in model.parameters():  # wider than the default init: exercise saturation too
            p.uniform_(-0.5, 0.5)
    params = {k: v.detach().float().clone() for k, v in model.state_dict().items()}
    model = model.double()
    src, src_len, dec_in, labels, mask = batch(pairs)
    logits = model(src, src_len, dec_in)
    v = cfg["vocab_size"]
    target = labels.masked_fill(mask == 0, -100)
    loss = F.cross_entropy(logits.reshape(-1, v), target.reshape(-1), ignore_index=-100, reduction="sum")
    loss = loss / mask.sum()
    loss.backward()
    tensors = {f"param.{k}": v.contiguous() for k, v in params.items()}
    tensors.update(
        {
            "input.src": src,
            "input.dec_in": dec_in,
            "input.labels": labels,
            "input.label_mask": mask,
            "expected.logits": logits.detach().float(),
            "expected.loss": loss.detach().float().reshape(1),
        }
    )
    for k, p in model.named_parameters():
        tensors[f"grad.{k}"] = p.grad.float().contiguous()
    OUT.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(OUT / f"seq2seq_{name}.safetensors"))
    meta = {
        "generator": "tools/make_seq2seq_fixtures.py",
        "torch": torch.__version__,
        "model": {**cfg, "dropout": 0.0, "forget_bias": 0.0},
        "pairs": [{"source": x, "target": y} for x, y in pairs],
    }
    (OUT / f"seq2seq_{name}.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"{name}: loss {loss.item():.6f}, {len(params)} tensors")


PAIRS = [
    ([4, 5, 6, 7, 8], [5, 6, 7, 8, 4]),
    ([9, 10, 4], [10, 4]),
    ([11, 12, 5, 6], [12, 5, 6]),
]

if __name__ == "__main__":
    base = {"vocab_size": 13, "emb_dim": 8, "hidden": 6}
    make("seed_lstm", {**base, "n_layer": 1, "cell": "lstm", "attention": "none"}, PAIRS, 1)
    make("lstm2_attn", {**base, "n_layer": 2, "cell": "lstm", "attention": "dot"}, PAIRS, 2)
    make("gru_attn", {**base, "n_layer": 1, "cell": "gru", "attention": "dot"}, PAIRS, 3)
