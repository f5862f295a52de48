#!/usr/bin/env bash
# Rewrites tests/fixtures/export/gpt2_lora_merged{,.hf.safetensors}: LoRA
# fine-tuning of the gpt2 export fixture on a slice of tiny Shakespeare,
# merged with `shiftlm merge`, then opened in transformers by
# tools/check_hf_export.py (which writes the .hf.safetensors logits that
# tests/golden_export.rs compares with shiftlm's).
# Usage: bash tools/make_lora_fixture.sh PYTHON SHAKESPEARE_TXT
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:?usage: make_lora_fixture.sh PYTHON tinyshakespeare.txt}
text=${2:?usage: make_lora_fixture.sh PYTHON tinyshakespeare.txt}
cargo build --release -q
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tail -c 20000 "$text" > "$tmp/ft.txt"
out=tests/fixtures/export/gpt2_lora_merged
rm -rf "$out" "$out.hf.safetensors"
./target/release/shiftlm finetune --from tests/fixtures/export/gpt2 --data "$tmp/ft.txt" --lora --lora-r 4 \
  --lora-targets c_attn,c_fc --steps 20 --lr 1e-2 --out "$tmp/run"
./target/release/shiftlm merge --from "$tmp/run" --out "$out"
"$py" tools/check_hf_export.py "$out"
