#!/usr/bin/env python3
"""Beam-search decoding speed of a shiftlm Transformer checkpoint in PyTorch,
to set beside `shiftlm eval --beam K` on the same checkpoint and sources.

The reference is a PyTorch loop with the same weights and the same search:
the pre-LN encoder-decoder of make_transformer_fixture.py, run
incrementally (decoder self-attention keys and values cached,
cross-attention keys and values computed once per source, attention by
F.scaled_dot_product_attention), and shiftlm's batched beam search (per
source: the best 2*K candidates, finished hypotheses ranked by
log p / ((5 + len) / 6)^alpha, stop once no alive hypothesis can win).
Sources are decoded 256 at a time in order of length, as shiftlm does.
One difference in shiftlm's favour: reordering the beam here copies the
cross-attention keys and values of every hypothesis, which shiftlm reads
by reference instead (PyTorch's attention takes no row map).
It times the decoding only (not tokenizing), writes the detokenised
outputs, and reports how many equal shiftlm's (--compare FILE).

  python3 tools/bench_decode.py --checkpoint runs/mt/checkpoint-6000 \\
      --source test_2016_flickr.en.gz --beam 5 --threads 1 --out torch.de --compare shiftlm.de

Needs torch, safetensors and tokenizers (pip install tokenizers).
"""
import argparse
import gzip
import json
import math
import pathlib
import sys
import time

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from tokenizers import Tokenizer

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from make_transformer_fixture import Model  # noqa: E402

BOS, EOS = 1, 2


def read_lines(path):
    raw = pathlib.Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return raw.decode("utf-8").splitlines()


def load(ck):
    ck = pathlib.Path(ck)
    raw = json.loads((ck / "config.json").read_text())
    cfg = raw.get("shiftlm", raw)
    m = cfg["model"]
    if m["family"] != "transformer" or not m["share_embeddings"]:
        sys.exit("a Transformer checkpoint with one shared vocabulary is needed")
    model = Model(m)
    model.load_state_dict(load_file(str(ck / "model.safetensors")))
    model.eval()
    return cfg, model, Tokenizer.from_file(str(ck / "tokenizer.json"))


def heads(x, h):
    b, t, c = x.shape
    return x.view(b, t, h, c // h).transpose(1, 2)  # (B, H, T, D)


def merge(x):
    b, h, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d)


def encode(model, h, src, lens):
    b, s = src.shape
    real = torch.arange(s)[None, :] < lens[:, None]
    # -1e9 as shiftlm's composite path: an empty source then attends to every key.
    bias = torch.zeros(b, 1, 1, s).masked_fill(~real[:, None, None, :], -1e9)
    x = model.shared(src) + model.encoder.embed_positions.weight[:s]
    for l in model.encoder.layers:
        y = l.self_attn_layer_norm(x)
        a = l.self_attn
        att = F.scaled_dot_product_attention(heads(a.q_proj(y), h), heads(a.k_proj(y), h), heads(a.v_proj(y), h), attn_mask=bias)
        x = x + a.out_proj(merge(att))
        x = x + l.ffn(x)
    mem = model.encoder.layer_norm(x)
    cross = [(heads(l.encoder_attn.k_proj(mem), h), heads(l.encoder_attn.v_proj(mem), h)) for l in model.decoder.layers]
    return cross, bias


def step(model, h, tokens, pos, cache, cross, bias):
    """Logits (N, V) of the next token after `tokens` (N,) at position `pos`."""
    y = model.shared(tokens)[:, None, :] + model.decoder.embed_positions.weight[pos]
    for i, l in enumerate(model.decoder.layers):
        a = l.self_attn
        z = l.self_attn_layer_norm(y)
        k, v = heads(a.k_proj(z), h), heads(a.v_proj(z), h)
        if cache[i] is not None:
            k, v = torch.cat([cache[i][0], k], 2), torch.cat([cache[i][1], v], 2)
        cache[i] = (k, v)
        y = y + a.out_proj(merge(F.scaled_dot_product_attention(heads(a.q_proj(z), h), k, v)))
        e = l.encoder_attn
        q = heads(e.q_proj(l.encoder_attn_layer_norm(y)), h)
        y = y + e.out_proj(merge(F.scaled_dot_product_attention(q, cross[i][0], cross[i][1], attn_mask=bias)))
        y = y + l.ffn(y)
    return (model.decoder.layer_norm(y) @ model.shared.weight.T)[:, 0]


def beam(model, h, sources, width, alpha, max_len):
    """shiftlm's batched beam search (src/decode/mod.rs), in PyTorch."""
    penalty = lambda n: ((5.0 + n) / 6.0) ** alpha  # noqa: E731
    lens = torch.tensor([len(s) for s in sources])
    src = torch.zeros(len(sources), int(lens.max()), dtype=torch.long)
    for i, s in enumerate(sources):
        src[i, : len(s)] = torch.tensor(s)
    cross, bias = encode(model, h, src, lens)
    cache = [None] * len(model.decoder.layers)
    searches = [{"alive": [([], 0.0)], "finished": [], "done": False} for _ in sources]
    for t in range(max_len + 1):
        live = [s for s in searches if not s["done"]]
        last = torch.tensor([toks[-1] if toks else BOS for s in live for toks, _ in s["alive"]])
        lp = torch.log_softmax(step(model, h, last, t, cache, cross, bias).double(), -1).float()
        parents, off = [], 0
        for s in live:
            n = len(s["alive"])
            rows = lp[off : off + n]
            if t == max_len:
                for i, (toks, sc) in enumerate(s["alive"]):
                    s["finished"].append((toks, (sc + rows[i, EOS].item()) / penalty(len(toks) + 1)))
                s["done"] = True
                off += n
                continue
            scores = torch.tensor([sc for _, sc in s["alive"]])[:, None] + rows
            top = torch.topk(scores.flatten(), min(2 * width, scores.numel()))
            alive, kept = [], []
            for sc, flat in zip(top.values.tolist(), top.indices.tolist()):
                if len(alive) == width:
                    break
                i, v = divmod(flat, rows.shape[1])
                toks = s["alive"][i][0]
                if v == EOS:
                    if len(s["finished"]) < width:
                        s["finished"].append((toks, sc / penalty(len(toks) + 1)))
                else:
                    alive.append((toks + [v], sc))
                    kept.append(off + i)
            best_done = max((f[1] for f in s["finished"]), default=-math.inf)
            best_alive = max((a[1] / penalty(max_len + 1) for a in alive), default=-math.inf)
            if not alive or len(s["finished"]) >= width or best_done > best_alive:
                s["done"] = True
            else:
                s["alive"] = alive
                parents += kept
            off += n
        if not parents:
            break
        idx = torch.tensor(parents)
        cache = [(k[idx], v[idx]) for k, v in cache]
        cross = [(k[idx], v[idx]) for k, v in cross]
        bias = bias[idx]
    out = []
    for s in searches:
        best = max(s["finished"], key=lambda f: f[1], default=None)
        out.append(best[0] if best else (s["alive"][0][0] if s["alive"] else []))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--source", required=True)
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--length-penalty", type=float, default=0.6)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--out")
    p.add_argument("--compare", help="shiftlm's outputs for the same sources (eval --output)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    cfg, model, tok = load(a.checkpoint)
    h = cfg["model"]["n_head"]
    max_len = 2 * cfg["max_target_len"] + 2
    lines = read_lines(a.source)
    ids = [tok.encode(s, add_special_tokens=False).ids for s in lines]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    outputs = [None] * len(ids)
    start = time.perf_counter()
    with torch.inference_mode():
        for c in range(0, len(order), a.batch):
            chunk = order[c : c + a.batch]
            for i, out in zip(chunk, beam(model, h, [ids[i] for i in chunk], a.beam, a.length_penalty, max_len)):
                outputs[i] = out
    took = time.perf_counter() - start
    hyps = [tok.decode(o, skip_special_tokens=True).replace("\n", " ") for o in outputs]
    if a.out:
        pathlib.Path(a.out).write_text("\n".join(hyps) + "\n")
    result = {"sentences": len(lines), "decode_s": took, "sentences_per_s": len(lines) / took, "beam": a.beam,
              "threads": a.threads, "torch": torch.__version__}
    if a.compare:
        theirs = read_lines(a.compare)
        result["same_as_compare"] = sum(x == y for x, y in zip(hyps, theirs)) / max(1, len(hyps))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
