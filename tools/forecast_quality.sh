#!/usr/bin/env bash
# Forecast quality on the built-in series and on the Mauna Loa CO2 series:
# trains each forecaster (LSTM, GRU, Transformer) with three seeds and prints
# the test-split MASE beside the naive and seasonal-naive baselines, and the
# training time. Figures: BENCHMARKS.md ("Forecasting").
#
# Usage: bash tools/forecast_quality.sh [SEEDS...]      (default seeds: 1 2 3)
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(1 2 3)
cargo build --release -q
bin=$PWD/target/release/shiftlm
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '%-8s %-12s %5s %8s %8s %8s %7s %8s\n' data model seed mase naive s_naive season train_s
for data in synthetic co2; do
  for model in lstm gru transformer; do
    case $model in
      lstm) flags=() ;;
      gru) flags=(--cell gru) ;;
      transformer) flags=(--model transformer) ;;
    esac
    if [ $data = synthetic ]; then
      src=(--task series)
    else
      src=(--data data/co2_mauna_loa_weekly.csv --target co2 --timestamp date --fill forward --context 104 --horizon 26)
    fi
    for s in "${seeds[@]}"; do
      t0=$(date +%s.%N)
      json=$("$bin" train "${src[@]}" "${flags[@]}" --seed "$s" --out "$tmp/$data-$model-$s" --json 2>/dev/null | tail -1)
      t1=$(date +%s.%N)
      python3 - "$json" "$data" "$model" "$s" "$t0" "$t1" <<'PY'
import json, sys
v = json.loads(sys.argv[1])
b = v["baselines"]
print(f"{sys.argv[2]:<8} {sys.argv[3]:<12} {sys.argv[4]:>5} {v['mase']:>8.3f} {b['naive']['mase']:>8.3f} "
      f"{b['seasonal_naive']['mase']:>8.3f} {v['season']:>7} {float(sys.argv[6]) - float(sys.argv[5]):>8.1f}")
PY
    done
  done
done
