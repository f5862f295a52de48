#!/usr/bin/env python3
"""The English ChatterBot corpus as shiftlm conversations (JSONL).

The corpus (chatterbot-corpus 1.3.3 on PyPI, BSD licence, by Gunther Cox) holds
YAML files of short dialogues, each a list of utterances that alternate between a
person and the bot. Each becomes one line {"messages": [{"role": "user", …},
{"role": "assistant", …}, …]}; a trailing unanswered utterance is dropped, as
are dialogues of one utterance. Run from the repository root:

  .venv/bin/pip download chatterbot-corpus==1.3.3 --no-deps -d /tmp/cbc
  .venv/bin/python tools/make_chat_corpus.py /tmp/cbc/chatterbot_corpus-1.3.3-py2.py3-none-any.whl chatterbot.jsonl

(needs PyYAML). The data is not committed: it is read by path, like Multi30k.
"""
import json
import sys
import zipfile

import yaml


def main():
    wheel, out = sys.argv[1], sys.argv[2]
    z = zipfile.ZipFile(wheel)
    names = sorted(n for n in z.namelist() if "/data/english/" in n and n.endswith(".yml"))
    lines = []
    for name in names:
        doc = yaml.safe_load(z.read(name).decode("utf-8"))
        for conv in doc.get("conversations", []):
            turns = [str(t).strip() for t in conv if t is not None and str(t).strip()]
            if len(turns) % 2 == 1:
                turns = turns[:-1]
            if len(turns) < 2:
                continue
            roles = ["user", "assistant"] * (len(turns) // 2)
            msgs = [{"role": r, "content": t} for r, t in zip(roles, turns)]
            lines.append(json.dumps({"messages": msgs}, ensure_ascii=False))
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    turns = sum(len(json.loads(l)["messages"]) for l in lines)
    print(f"wrote {out}: {len(lines)} conversations, {turns} turns, from {len(names)} files")


if __name__ == "__main__":
    main()
