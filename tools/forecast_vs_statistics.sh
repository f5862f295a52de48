#!/bin/bash
# Every forecaster family on one CSV series beside the classical baselines
# (BENCHMARKS.md, "Forecasting against classical statistics"): one line per
# model with its test MASE, the checkpoint step evaluated, the wall time, and
# the baselines' MASE and chosen models; then `--model auto` (one seed, and
# ensembles of 3 unless NO_ENSEMBLE=1) with its choice and the coverage of its
# 80% interval (ONLY_AUTO=1: just auto). Run folders go to the current directory.
#
#   bash tools/forecast_vs_statistics.sh CSV TARGET CONTEXT HORIZON SEASON [EXTRA FLAGS…]
#   bash tools/forecast_vs_statistics.sh data/sunspots_yearly.csv sunspots 40 10 11
set -euo pipefail
B=${SHIFTLM:-$(cd "$(dirname "$0")/.." && pwd)/target/release/shiftlm}
csv=$1; t=$2; L=$3; H=$4; m=$5; shift 5; extra=("$@"); name=$(basename $csv .csv)
models=("seq2seq" "seq2seq --cell gru" "transformer" "nlinear" "dlinear" "nbeats" "nlinear --revin" "seq2seq --revin" "auto")
[ "${NO_ENSEMBLE:-0}" = 1 ] || models+=("auto --ensemble 3")
# ONLY_AUTO=1 runs just `--model auto` (e.g. after a change to its intervals).
[ "${ONLY_AUTO:-0}" = 1 ] && models=("auto")
for model in "${models[@]}"; do
  tag=$(echo $model | tr ' ' '_' | tr -d '-')
  out=$name-$tag
  rm -rf $out
  s=$(date +%s.%N)
  $B train --data $csv --target $t --context $L --horizon $H --season $m --model $model "${extra[@]}" --out $out --json > $out.log 2> $out.err
  e=$(date +%s.%N)
  tail -1 $out.log | python3 -c "
import json,sys
d=json.loads(sys.stdin.read()); b=d['baselines']
f=lambda x: '-' if x is None else f'{x:.3f}'
auto = d.get('auto')
what = ('chose ' + auto['chosen'] + ' ' + ','.join(auto.get('members', []))) if auto else 'best_step %s' % d.get('best_step')
cov = ' '.join('cov%.0f %.1f%%' % (100*i['level'], 100*i['coverage']) for i in d.get('intervals') or [])
print('$name', '$tag'.ljust(18), 'MASE', f(d['mase']), what, cov, 'time %.1fs' % ($e-$s),
      '| naive', f(b['naive']['mase']), 'snaive', f(b['seasonal_naive']['mase']),
      'ar', f(b['ar']['mase']) if b['ar'] else '-', (b['ar'] or {}).get('model'),
      'ets', f(b['ets']['mase']) if b['ets'] else '-', (b['ets'] or {}).get('model'),
      'theta', f(b['theta']['mase']) if b['theta'] else '-', (b['theta'] or {}).get('model'))
"
done
