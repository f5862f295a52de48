#!/usr/bin/env bash
# shiftlm vs PyTorch on this machine, in one run, alternating the two programs:
# training (ms/step) per configuration at 1 and 2 threads, then generation
# (ms/token, KV-cached sampling) of the language models beside transformers'
# `generate` on the same weights. Prints each pair and the time ratio
# shiftlm/PyTorch (< 1 means shiftlm is faster).
#
# Usage: bash tools/bench_compare.sh --setup [STEPS] [CONFIG...]
#        bash tools/bench_compare.sh PYTHON [STEPS] [CONFIG...]
#   --setup  create .venv with torch and transformers first (about 1 GB from PyPI)
#            and use it
#   PYTHON   a python with torch and transformers
#   STEPS    timed training steps per run (default 20)
#   CONFIG   configurations (default: all; see `shiftlm bench --list`)
# With KERAS_PY set to a python with tensorflow-cpu, seed-lstm is also timed in
# Keras (tools/bench_seed_keras.py). NO_GENERATE=1 skips the generation half.
#
# The AVX2-only path: SHIFTLM_ISA=avx2 keeps shiftlm's kernels on AVX2, and this
# script then holds PyTorch to AVX2 as an AVX2-only CPU would: its own kernels
# (ATEN_CPU_CAPABILITY=avx2), MKL's (MKL_ENABLE_INSTRUCTIONS=AVX2) and oneDNN's
# (ONEDNN_MAX_CPU_ISA=AVX2). Without the last two, MKL and oneDNN still choose
# AVX-512 for themselves (PyTorch's LSTM, for one, runs in oneDNN).
#
# PRECISION=bf16 times training in mixed precision: shiftlm's --precision bf16
# against PyTorch's CPU autocast to bf16 (generation stays f32).
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
if [ "${1:-}" = "--setup" ]; then
  shift
  python3 -m venv .venv
  .venv/bin/pip install --quiet torch transformers safetensors numpy
elif [ $# -gt 0 ]; then
  py=$1
  shift
fi
steps=${1:-20}
[ $# -gt 0 ] && shift
configs=("$@")
[ ${#configs[@]} -gt 0 ] || configs=(baby-gpt seed-lstm gpt-6x384 gpt2-30m llama-baby llama-6x384 forecast-lstm forecast-gru forecast-transformer cnn-28 kws-conv-lstm)
[ -x "$py" ] || { echo "no python at $py: run with --setup, or give one with torch" >&2; exit 2; }
cargo build --release -q
bin=./target/release/shiftlm
torch_env=()
if [ "${SHIFTLM_ISA:-}" = avx2 ]; then
  torch_env=(ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2)
fi
ratio() {  # JSON of shiftlm, JSON of PyTorch, key, label
  python3 - "$1" "$2" "$3" "$4" <<'PY'
import json, sys
s, p, k, label = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
print(f"{label:<22} {s[k]:>12.3f} {p[k]:>12.3f} {s[k] / p[k]:>8.2f}")
PY
}
printf '%-22s %12s %12s %8s\n' "training (threads)" shiftlm_ms pytorch_ms ratio
for c in "${configs[@]}"; do
  for t in 1 2; do
    s=$($bin --threads "$t" bench --config "$c" --steps "$steps" --precision "${PRECISION:-f32}" --json 2>/dev/null | tail -1) ||
      { echo "shiftlm bench --config $c failed: run it alone to see why" >&2; exit 2; }
    p=$(env ${torch_env[@]+"${torch_env[@]}"} OMP_NUM_THREADS=$t "$py" tools/bench_torch.py --config "$c" --threads "$t" --steps "$steps" --precision "${PRECISION:-f32}" | tail -1)
    ratio "$s" "$p" ms_per_step "$c ($t)"
    if [ "$c" = seed-lstm ] && [ -n "${KERAS_PY:-}" ]; then
      k=$("$KERAS_PY" tools/bench_seed_keras.py --threads "$t" --steps "$steps" 2>/dev/null | tail -1)
      ratio "$s" "$k" ms_per_step "$c vs Keras ($t)"
    fi
  done
done
[ "${NO_GENERATE:-}" = 1 ] && exit 0
printf '\n%-22s %12s %12s %8s\n' "generation (threads)" shiftlm_ms/tok hf_ms/tok ratio
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for c in "${configs[@]}"; do
  case "$c" in seed-lstm | forecast-* | cnn-* | kws-*) continue ;; esac
  for t in 1 2; do
    s=$($bin --threads "$t" bench --config "$c" --generate 1000 --save "$tmp/$c" --steps 5 --json 2>/dev/null | tail -1)
    n=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["new_tokens"])' "$s")
    p=$(env ${torch_env[@]+"${torch_env[@]}"} OMP_NUM_THREADS=$t "$py" tools/bench_generate_torch.py "$tmp/$c" "$n" "$t" 5 2>/dev/null | tail -1)
    ratio "$s" "$p" ms_per_token "$c ($t)"
  done
done
