#!/usr/bin/env bash
# run.sh LABEL VENV TREE: TREE's benchmark suite (all but start-up) against the fastsoftmax
# installed in VENV, into $OUT/LABEL.json (default benchmarks/results); OpenBLAS at its own kernels.
# Interleave two commits (old, new, old, new, ...) and compare with normcompare.py.
set -u
label=$1 venv=$2 tree=$3
out=$(realpath -m "${OUT:-benchmarks/results}")
mkdir -p "$out"
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
cd "$tree"
"$venv/bin/pytest" benchmarks/ --benchmark-only -p no:cacheprovider -q -k "not startup" \
  --benchmark-json="$out/$label.json" > "$out/$label.log" 2>&1
echo "$label exit $?"
