#!/bin/bash
# The profiler's cost (BENCHMARKS.md, "The profiler (issue 14)"): alternates
# three binaries on baby-gpt and prints ms/step per round:
#   compiled out: cargo build --release --no-default-features --features cli
#   off:          the default build, no --profile
#   on:           the default build profiling every timed step
# Usage: tools/profiler_overhead.sh COMPILED_OUT_BINARY DEFAULT_BINARY [ROUNDS]
set -euo pipefail
out=$1 def=$2 rounds=${3:-10}
ms() { tail -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["ms_per_step"])'; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
grep -m1 "model name" /proc/cpuinfo
echo "round compiled_out off on"
for r in $(seq 1 "$rounds"); do
  a=$("$out" bench --config baby-gpt --steps 60 --warmup 5 --json 2>/dev/null | ms)
  b=$("$def" bench --config baby-gpt --steps 60 --warmup 5 --json 2>/dev/null | ms)
  rm -rf "$dir/p"
  c=$("$def" bench --config baby-gpt --steps 60 --warmup 5 --json --profile "$dir/p" --profile-steps 6..65 2>/dev/null | ms)
  echo "$r $a $b $c"
done
