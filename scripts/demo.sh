#!/usr/bin/env bash
# The demo: mine criteria on the bundled argument seed pairs with the embedded model, then measure them on
# held-out human-labelled dev pairs. Prints how long each phase took.
set -euo pipefail
PY=${1:-.venv/bin/python}
RUN=${2:-runs/demo}
rm -rf "$RUN"
phase() { local name=$1; shift; local t0=$SECONDS; "$@"; echo "[demo] $name took $((SECONDS - t0)) s"; }
phase "mine (30 seed pairs)" "$PY" -m critmine.cli mine --pairs data/argument/seed.jsonl --out "$RUN" \
    --n-criteria 6 --iterations 2 --kb-domains argument,fluency --kb-max-candidates 8
phase "eval (60 dev pairs)" "$PY" -m critmine.cli eval --pairs data/argument/dev.jsonl --sample 60 --seed 0 \
    --criteria "$RUN/criteria.json" --out "$RUN/eval"
echo "[demo] total $SECONDS s; results in $RUN (open $RUN/report.html)"
