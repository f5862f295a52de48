#!/usr/bin/env bash
# shiftlm vs PyTorch on the seed preset, same machine, same run, alternating.
# Usage: bash tools/bench_seed.sh PYTHON [STEPS] [THREADS...]
#   PYTHON   a python with torch installed (e.g. .venv/bin/python)
# Prints one line per framework and thread count, then the time ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:?usage: bench_seed.sh PYTHON [STEPS] [THREADS...]}
steps=${2:-300}
shift $(( $# >= 2 ? 2 : 1 ))
threads=("${@:-1 2}")
threads=(${threads[@]})
cargo build --release -q
out=$(mktemp -d)
for t in "${threads[@]}"; do
  s=$(./target/release/shiftlm --threads "$t" train --preset seed --task rotate --steps "$steps" --out "$out/run-$t" --json --show 0 2>/dev/null | tail -1)
  p=$(OMP_NUM_THREADS=$t "$py" tools/bench_seed_torch.py --steps "$steps" --threads "$t")
  echo "threads=$t shiftlm: $s"
  echo "threads=$t pytorch: $p"
  python3 - "$s" "$p" "$t" <<'PY'
import json, sys
s, p, t = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
print(f"threads={t}: shiftlm {s['tokens_per_s']:.0f} tok/s, exact match {s['exact_match']:.3f} | "
      f"pytorch {p['tokens_per_s']:.0f} tok/s, exact match {p['exact_match']:.3f} | "
      f"time ratio shiftlm/pytorch {p['tokens_per_s'] / s['tokens_per_s']:.2f}")
PY
done
rm -rf "$out"
