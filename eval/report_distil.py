"""The distillation part of a run report: agent labels, the scorer's accuracy, the corpus scores and the selection."""

from __future__ import annotations

import json
from itertools import islice
from pathlib import Path

from critmine.agents.annotate import SUMMARY
from critmine.artifacts import JudgeSummary, RunLayout, RunRecord, ScorerMeta, ScoreSummary, SelectSummary
from critmine.scorer.output import SCORE, SUCCESS, read_scored


def load(run_dir: Path) -> dict:
    """What `critmine run` left in the run directory (any part may be missing)."""
    d: dict = {}
    run = RunLayout(run_dir)
    judge = run.labelled_parts / SUMMARY
    if judge.exists():
        d["judge"] = JudgeSummary.read(judge).model_dump(exclude_unset=True)
    scorer = run.scorer_meta
    if scorer.exists():
        d["scorer"] = ScorerMeta.read(scorer).model_dump(exclude_unset=True)
    scored = run.scored
    if (scored / SUCCESS).exists():
        d["scores"] = read_scored(scored, columns=[SCORE])[SCORE].to_numpy()
        d["score_summary"] = ScoreSummary.read(scored / SUCCESS).model_dump(exclude_unset=True)
    sel = run.selected_summary
    if sel.exists():
        d["select"] = SelectSummary.read(sel).model_dump(exclude_unset=True)
        with open(run.selected, encoding="utf-8") as fh:
            kept = [json.loads(x) for x in islice(fh, 200_000)]
        d["kept_scores"] = [k[SCORE] for k in kept]
        settings = RunRecord.read(run.run).settings if run.run.exists() else {}  # the corpus's own column names
        id_col, text_col = settings.get("id_column", "id"), settings.get("text_column", "text")
        d["examples"] = [{"id": k.get(id_col, "?"), "text": str(k.get(text_col, "")), SCORE: k[SCORE]}
                         for k in sorted(kept, key=lambda k: -k[SCORE])[:3]]
    return d


def plots(d: dict, plt, png) -> dict[str, str]:
    out = {}
    if "scores" in d:
        fig, ax = plt.subplots(figsize=(7, 3))
        ax.hist(d["scores"], bins=40, color="#c9d6ea", label="all documents")
        if d.get("kept_scores"):
            ax.hist(d["kept_scores"], bins=40, range=(float(d["scores"].min()), float(d["scores"].max())),
                    color="#3b7ddd", alpha=0.8, label="selected")
        ax.set(xlabel="scorer score", ylabel="documents", title="Scores on the corpus and what the selection kept")
        ax.legend(fontsize=8)
        out["scores"] = png(fig)
        plt.close(fig)
    return out


def _snippet(text: str, width: int = 90) -> str:
    return text if len(text) <= 2 * width else f"{text[:width]} … {text[-width:]}"


def _acc(s: dict | None) -> str:
    if not s or s.get("accuracy") is None:
        return "| - | - | - |"
    return f"| {s['accuracy']:.3f} | [{s['ci_low']:.2f}, {s['ci_high']:.2f}] | {s['n_judged']} |"


def markdown(d: dict) -> list[str]:
    lines: list[str] = []
    if "judge" in d:
        j = d["judge"]
        lines += ["", "## Agent labels", "",
                  f"{j['judged']} corpus pairs judged under {', '.join(j['criteria'])}; {j['labelled']} labelled "
                  f"({j['dropped_no_vote']} without a vote, {j['dropped_low_confidence']} below confidence "
                  f"{j['min_confidence']}); {j['llm_calls']} paid LLM calls."]
    if "scorer" in d:
        m = d["scorer"]
        lines += ["", f"## Scorer ({m['features']}, Bradley–Terry)", "", "| measured on | accuracy | 95% CI | n |",
                  "|---|---|---|---|", f"| training pairs (fit) {_acc(m.get('train_fit'))}",
                  f"| held-out agent labels {_acc(m.get('holdout'))}"]
        if "human" in m:
            lines.append(f"| human labels ({m['human']['pairs']}) {_acc(m['human'])}")
        lines.append(f"\nTrained on {m['n_train']} pairs in {m['train_s']:.1f} s.")
    if "score_summary" in d:
        s = d["score_summary"]
        lines += ["", "## Corpus scoring", "",
                  f"{s['rows']:,} documents scored ({s['engine']} engine, {s['docs_per_s']} docs/s)."]
    if "select" in d:
        s = d["select"]
        how = f"fraction {s['fraction']}" if s["fraction"] is not None else f"budget {s['budget_tokens']:,} tokens"
        lines += ["", "## Selection", "",
                  f"Kept {s['kept']:,} of {s['documents']:,} documents and {s['kept_tokens']:,} of {s['tokens']:,} "
                  f"tokens ({how}, tau {s['tau']}); mean z-score of the kept documents {s['mean_z_kept']:+.2f}.", "",
                  "Highest-scoring kept documents:", ""]
        lines += [f"- `{e['id']}` (score {e[SCORE]:.3f}): {_snippet(e['text'])!r}"
                  for e in d.get("examples", [])]
    return lines
