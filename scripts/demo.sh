#!/usr/bin/env bash
# The demo: the whole chain on the bundled argument seed pairs and corpus with the embedded model — mine criteria,
# let them label 60 corpus pairs, train the scorer, score and select the corpus — then measure the criteria and the
# scorer on the same 60 held-out human-labelled dev pairs. Prints how long each phase took. The demo goes through the
# whole chain even if the criteria carry no signal on the seeds (--without-signal): the log and the report say so.
set -euo pipefail
PY=${1:-.venv/bin/python}
RUN=${2:-runs/demo}
rm -rf "$RUN"
phase() { local name=$1; shift; local t0=$SECONDS; "$@"; echo "[demo] $name took $((SECONDS - t0)) s"; }
echo "[demo] $("$PY" eval/benchmarks/bench_backend.py --prefill-only)"  # timings below depend on it
phase "run: mine 30 seed pairs, judge 60 corpus pairs, train, score 2,152 docs, select 30%" \
    "$PY" -m critmine.cli run --pairs data/argument/seed.jsonl --corpus data/corpus/documents.jsonl --out "$RUN" \
    --n-criteria 6 --iterations 2 --kb-max-candidates 8 \
    --n-pairs 60 --group-by source --fraction 0.3 --without-signal
phase "eval criteria (60 dev pairs)" "$PY" -m critmine.cli eval --pairs data/argument/dev.jsonl --sample 60 --seed 0 \
    --criteria "$RUN/criteria.json" --out "$RUN/eval"
phase "eval scorer (same 60 dev pairs)" "$PY" -m critmine.cli eval --pairs data/argument/dev.jsonl --sample 60 \
    --seed 0 --scorer "$RUN/scorer" --out "$RUN/eval-scorer"
"$PY" -m critmine.cli report "$RUN"
echo "[demo] total $SECONDS s; results in $RUN (open $RUN/report.html)"
