#!/usr/bin/env python3
"""PyTorch reference for the seed preset: the same LSTM encoder-decoder
(Embedding 256 -> LSTM 128, no attention, vocabulary 1000 symbols + 4 specials),
the same task (rotate left by 1, length 10), batch 64, Adam lr 1e-3, gradient
clipping at 1.0, loss averaged over supervised tokens (decoder input [BOS]+y,
labels y+[EOS]). Prints one JSON line: ms/step, supervised tokens/s, final
training loss and the free-running (greedy) exact match on 1000 held-out pairs.

  python3 tools/bench_seed_torch.py --steps 3000 --threads 2
"""
import argparse
import json
import sys
import time
import pathlib

import torch
import torch.nn.functional as F

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from make_seq2seq_fixtures import Seq2Seq, batch, BOS, EOS  # noqa: E402

N_SPECIAL = 4


def rotate_pairs(n, vocab, length, gen, exclude=None):
    out, seen = [], set() if exclude is None else exclude
    while len(out) < n:
        x = tuple((torch.randint(0, vocab, (length,), generator=gen) + N_SPECIAL).tolist())
        if x in seen:
            continue
        if exclude is None:
            seen.add(x)
        out.append((list(x), list(x[1:] + x[:1])))
    return out, seen


@torch.no_grad()
def greedy(model, pairs, max_len):
    src, src_len, _, _, _ = batch(pairs)
    b, s = src.shape
    packed = torch.nn.utils.rnn.pack_padded_sequence(model.encoder.embedding(src), src_len, batch_first=True, enforce_sorted=False)
    _, state = model.encoder.rnn(packed)
    tok = torch.full((b, 1), BOS, dtype=torch.long)
    outs = [[] for _ in range(b)]
    done = [False] * b
    for _ in range(max_len + 1):
        h, state = model.decoder.rnn(model.decoder.embedding(tok), state)
        nxt = model.decoder.out(h).argmax(-1)
        for i in range(b):
            t = nxt[i, 0].item()
            if not done[i]:
                if t == EOS or len(outs[i]) == max_len:
                    done[i] = True
                else:
                    outs[i].append(t)
        tok = nxt
        if all(done):
            break
    return outs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1337)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    valid, seen = rotate_pairs(1000, 1000, 10, gen)
    train, _ = rotate_pairs(50_000, 1000, 10, gen, exclude=seen)
    cfg = {"vocab_size": 1004, "emb_dim": 256, "hidden": 128, "n_layer": 1, "cell": "lstm", "attention": "none"}
    model = Seq2Seq(cfg)
    with torch.no_grad():  # forget-gate bias 1, as shiftlm (and Keras) initialise it
        for rnn in (model.encoder.rnn, model.decoder.rnn):
            rnn.bias_ih_l0[128:256] += 1.0
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = torch.randperm(len(train), generator=gen).tolist()
    cursor, times, tokens, loss_v = 0, [], 0, float("nan")
    start = time.perf_counter()
    for step in range(a.steps):
        if cursor + 64 > len(order):
            order = torch.randperm(len(train), generator=gen).tolist()
            cursor = 0
        pairs = [train[i] for i in order[cursor : cursor + 64]]
        cursor += 64
        t0 = time.perf_counter()
        src, src_len, dec_in, labels, mask = batch(pairs)
        logits = model(src, src_len, dec_in)
        target = labels.masked_fill(mask == 0, -100)
        loss = F.cross_entropy(logits.reshape(-1, 1004), target.reshape(-1), ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss_v = loss.item()
        times.append(time.perf_counter() - t0)
        tokens += int(mask.sum().item())
    elapsed = time.perf_counter() - start
    model.eval()
    outs = []
    for i in range(0, len(valid), 256):
        outs += greedy(model, valid[i : i + 256], 22)
    em = sum(o == y for o, (_, y) in zip(outs, valid)) / len(valid)
    times.sort()
    print(json.dumps({
        "framework": f"torch {torch.__version__}",
        "threads": a.threads,
        "steps": a.steps,
        "ms_per_step_median": 1000 * times[len(times) // 2],
        "tokens_per_s": tokens / elapsed,
        "elapsed_s": elapsed,
        "train_loss": loss_v,
        "exact_match": em,
    }))


if __name__ == "__main__":
    main()
