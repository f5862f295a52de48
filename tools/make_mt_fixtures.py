#!/usr/bin/env python3
"""BLEU and chrF fixtures for src/eval/translation.rs, from sacreBLEU.

Writes tests/fixtures/mt_metrics.json: several systems (hypothesis lists) of
invented sentences with the punctuation, numbers, entities and non-ASCII
text that 13a tokenisation treats specially, each scored against one and two
reference sets by sacreBLEU's defaults (BLEU: 13a, exp smoothing; chrF2).
Deterministic (seeded). Run from the repository root:

  python3 tools/make_mt_fixtures.py      (needs sacrebleu)
"""
import json
import pathlib
import random

import sacrebleu

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "mt_metrics.json"

REFS = [
    "Two young, White males are outside near many bushes.",
    "A man in a blue shirt is standing on a ladder cleaning windows.",
    "Ein Mann mit einem orangefarbenen Hut, der etwas anstarrt.",
    "The price rose 3.5% to $1,000 in 2019-2020 (or so).",
    "She said: \"It's fine\" &amp; left at 10:30 -- quickly.",
    "Zwei Hunde spielen im Schnee; einer trägt ein rotes Halsband!",
    "A group of people stand in front of an igloo.",
    "Les enfants jouent au football à côté de l'école.",
    "Numbers like 1.5, 2,5 and -7 should stay whole-ish.",
    "A dog runs.",
]
ALT = [
    "Two young white men are outside near a lot of bushes.",
    "A man wearing a blue shirt stands on a ladder and cleans windows.",
    "Ein Mann mit orangem Hut starrt auf etwas.",
    "The price went up 3.5 % to $1,000 in 2019-2020, roughly.",
    "She said \"it is fine\" & left at 10:30, quickly.",
    "Zwei Hunde spielen im Schnee, einer mit rotem Halsband.",
    "Some people are standing in front of an igloo.",
    "Des enfants jouent au foot près de l'école.",
    "Numbers such as 1.5, 2,5 and -7 stay whole.",
    "The dog is running.",
]


def perturb(s, rng, rate):
    words = s.split()
    out = []
    for w in words:
        r = rng.random()
        if r < rate / 3:
            continue  # drop
        if r < 2 * rate / 3:
            out.append(rng.choice(words))  # substitute
        else:
            out.append(w)
        if rng.random() < rate / 4:
            out.append(rng.choice(["the", "a", ",", "."]))  # insert
    return " ".join(out)


def main():
    rng = random.Random(7)
    cases = []
    systems = {
        "exact": list(REFS),
        "alternative": list(ALT),
        "light": [perturb(s, rng, 0.2) for s in REFS],
        "heavy": [perturb(s, rng, 0.6) for s in REFS],
        "short": [" ".join(s.split()[:2]) for s in REFS],
        "with_empty": [s if i % 3 else "" for i, s in enumerate(ALT)],
        "trailing_space": [s + "   " for s in REFS[:5]] + ALT[5:],
    }
    for name, hyps in systems.items():
        for refs in ([REFS], [REFS, ALT]):
            b = sacrebleu.corpus_bleu(hyps, refs)
            c = sacrebleu.corpus_chrf(hyps, refs)
            cases.append({
                "system": name,
                "hyps": hyps,
                "refs": refs,
                "bleu": b.score,
                "counts": b.counts,
                "totals": b.totals,
                "sys_len": b.sys_len,
                "ref_len": b.ref_len,
                "chrf": c.score,
            })
    tok = sacrebleu.tokenizers.tokenizer_13a.Tokenizer13a()
    meta = {
        "generator": "tools/make_mt_fixtures.py",
        "sacrebleu": sacrebleu.__version__,
        "cases": cases,
        "tokenized": [[s, tok(s)] for s in REFS + ALT],
    }
    OUT.write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    for c in cases:
        print(f"{c['system']:>15} refs={len(c['refs'])} BLEU {c['bleu']:.2f} chrF {c['chrf']:.2f}")


if __name__ == "__main__":
    main()
