#!/usr/bin/env bash
# shiftlm vs PyTorch, per configuration and thread count, alternating the two
# programs in one run. Usage: bash tools/bench_compare.sh PYTHON [STEPS] [CONFIG...]
#   PYTHON  a python with torch (e.g. .venv/bin/python; see README)
# Prints ms/step of both and the time ratio shiftlm/PyTorch (< 1 means shiftlm is faster).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:?usage: bench_compare.sh PYTHON [STEPS] [CONFIG...]}
steps=${2:-20}
shift $(( $# >= 2 ? 2 : 1 ))
configs=("$@")
[ ${#configs[@]} -gt 0 ] || configs=(baby-gpt seed-lstm gpt-6x384 gpt2-30m)
cargo build --release -q
printf '%-10s %7s %14s %14s %8s\n' config threads shiftlm_ms pytorch_ms ratio
for c in "${configs[@]}"; do
  for t in 1 2; do
    s=$(./target/release/shiftlm --threads "$t" bench --config "$c" --steps "$steps" --json 2>/dev/null | tail -1)
    p=$(OMP_NUM_THREADS=$t "$py" tools/bench_torch.py --config "$c" --threads "$t" --steps "$steps" | tail -1)
    python3 - "$s" "$p" "$c" "$t" <<'PY'
import json, sys
s, p, c, t = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
print(f"{c:<10} {t:>7} {s['ms_per_step']:>14.1f} {p['ms_per_step']:>14.1f} {s['ms_per_step'] / p['ms_per_step']:>8.2f}")
PY
  done
done
