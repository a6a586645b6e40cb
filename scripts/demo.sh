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
probe=$("$PY" eval/benchmarks/bench_backend.py --prefill-only)  # timings below depend on it
echo "[demo] $probe"
# The reference run (README): 4,478 s at 47 prompt tokens/s; time here scales about inversely with the speed.
speed=$(grep -o '[0-9]\+ prompt tokens/s' <<<"$probe" | grep -o '^[0-9]\+' || true)
if [ -n "$speed" ] && [ "$speed" -gt 0 ]; then
    echo "[demo] expect about $(( (4478 * 47 / speed + 59) / 60 )) minutes here (18 minutes at 196 prompt tokens/s)"
fi
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
