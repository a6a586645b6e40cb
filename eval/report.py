"""`critmine report RUN_DIR`: report.md and a self-contained report.html (plots inlined) for a run directory.

Shows what a run directory holds: the evolution of each criterion's accuracy across iterations, the final criteria
with 95% intervals, the distribution of the flow's vote margins on the seeds, and any evaluations beside the run
(eval*/eval.json), flow and baselines side by side; after `critmine run`, also the agent labels, the scorer's
accuracy, the corpus score histogram and what the selection kept.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
from markdown_it import MarkdownIt

from critmine.artifacts import CriteriaSet, EvalResult, RunLayout
from critmine.eval import report_distil
from critmine.io import InputError


def _load(run_dir: Path) -> dict:
    run = RunLayout(run_dir)
    if not run.criteria.exists():
        raise InputError(f"{run_dir}: no criteria.json (not a finished mining run)")
    criteria = CriteriaSet.read(run.criteria, allow_empty=True).model_dump()
    snaps = run.snapshots()
    preds = run.predictions
    evals = {name: EvalResult.read(f).model_dump(exclude_unset=True) for name, f in run.evaluations().items()}
    return {"criteria": criteria, "snapshots": [json.loads(f.read_text()) for f in snaps],
            "predictions": [json.loads(x) for x in preds.read_text().splitlines()] if preds.exists() else [],
            "evals": evals, "distil": report_distil.load(run_dir)}


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _plots(d: dict) -> dict[str, str]:
    matplotlib.use("Agg")

    out = {}
    if d["snapshots"]:
        fig, ax = plt.subplots(figsize=(7, 3.6))
        names = sorted({c["name"] for s in d["snapshots"] for c in s["criteria"]})
        for name in names:
            pts = [(s["iteration"], c["seed_accuracy"]) for s in d["snapshots"] for c in s["criteria"]
                   if c["name"] == name and c["seed_accuracy"] is not None]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", label=name[:28])
        flow = [(s["iteration"], s["flow_soft_accuracy"]) for s in d["snapshots"]
                if s["flow_soft_accuracy"] is not None]
        if flow:
            ax.plot(*zip(*flow, strict=True), color="black", linewidth=3, marker="s", label="FLOW (soft vote)")
        th = d["criteria"].get("thresholds", {})
        for y in (th.get("low"), th.get("good")):
            if y is not None:
                ax.axhline(y, color="grey", linestyle=":", linewidth=1)
        ax.set(xlabel="iteration", ylabel="accuracy on seed pairs", ylim=(0, 1.02), title="Evolution of the criteria")
        ax.set_xticks(sorted({s["iteration"] for s in d["snapshots"]}))
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1, 0.5))
        out["evolution"] = _png(fig)
        plt.close(fig)
    final = d["criteria"]["criteria"]
    if final:
        fig, ax = plt.subplots(figsize=(7, 0.45 * len(final) + 1.2))
        ys = range(len(final))
        acc = [c["accuracy"] or 0 for c in final]
        err = [[max(0.0, a - (c["ci_low"] or 0)) for a, c in zip(acc, final, strict=True)],
               [max(0.0, (c["ci_high"] or 0) - a) for a, c in zip(acc, final, strict=True)]]
        ax.errorbar(acc, ys, xerr=err, fmt="o", capsize=4)
        ax.set_yticks(list(ys), [f"{c['name'][:30]} v{c['version']}" for c in final])
        ax.axvline(0.5, color="grey", linestyle=":")
        ax.set(xlim=(0, 1), xlabel="accuracy (95% Wilson interval)", title="Final criteria on the seed pairs")
        out["final"] = _png(fig)
        plt.close(fig)
    if d["predictions"]:
        fig, ax = plt.subplots(figsize=(7, 3))
        right = [p["margin"] if p["human"] == "a" else -p["margin"] for p in d["predictions"]]
        ax.hist(right, bins=15, color="#3b7ddd")
        ax.axvline(0, color="black")
        ax.set(xlabel="vote margin toward the human choice (Σ p_human − p_other)", ylabel="seed pairs",
               title="How decisively the criteria vote")
        out["margins"] = _png(fig)
        plt.close(fig)
    if d["evals"]:
        fig, ax = plt.subplots(figsize=(7, 0.5 * len(d["evals"]) + 1.2))
        items = list(d["evals"].items())
        accs = [e["flow_soft"]["accuracy"] or 0 for _, e in items]
        err = [[max(0.0, a - e["flow_soft"]["ci_low"]) for a, (_, e) in zip(accs, items, strict=True)],
               [max(0.0, e["flow_soft"]["ci_high"] - a) for a, (_, e) in zip(accs, items, strict=True)]]
        ax.barh(range(len(items)), accs, xerr=err, color="#7aa6e8", capsize=4)
        ax.set_yticks(range(len(items)), [e.get("method", k) for k, e in items])
        ax.set(xlim=(0, 1), xlabel="accuracy on held-out human pairs (soft vote, 95% CI)", title="Evaluation")
        out["evals"] = _png(fig)
        plt.close(fig)
    out.update(report_distil.plots(d["distil"], plt, _png))
    return out


def _markdown(d: dict) -> str:
    c = d["criteria"]
    lines = ["# critmine run report", ""]
    if c.get("no_signal"):
        lines += [f"> **NO SIGNAL**: {c['no_signal']}", ""]
    lines += ["## Final criteria", "",
             "| criterion | version | origin | accuracy | 95% CI | coverage | n |", "|---|---|---|---|---|---|---|"]
    for x in c["criteria"]:
        acc = "-" if x["accuracy"] is None else f"{x['accuracy']:.3f}"
        lines.append(f"| {x['name']} | {x['version']} | {x['origin']} | {acc} "
                     f"| [{x['ci_low']:.2f}, {x['ci_high']:.2f}] "
                     f"| {x['coverage']:.2f} | {x['n_judged']} |")
    lines += ["", "Descriptions:", ""] + [f"- **{x['name']}**: {x['description']}" for x in c["criteria"]]
    for kind, f in c.get("flow_on_seeds", {}).items():
        if f["accuracy"] is not None:
            lines.append(f"\nFlow ({kind} vote) on the seed pairs: {f['accuracy']:.3f} "
                         f"[{f['ci_low']:.2f}, {f['ci_high']:.2f}], coverage {f['coverage']:.2f}")
    if e := c.get("ensemble"):
        weights = ", ".join(f"{n} {w:.2f}" for n, w in e["weights"].items())
        if e["forward_steps"]:
            steps = ", ".join(f"+{s['added']} {s['cv_accuracy']:.3f}" for s in e["forward_steps"])
            how = f"chosen by forward selection ({e['folds']}-fold cross-validated seed accuracy: {steps})"
        else:
            by_rule = ", ".join(f"{r} {a:.3f}" for r, a in sorted(e["cv_by_rule"].items()))
            how = (f"weighed on the seed pairs ({e['folds']}-fold cross-validated seed accuracy by rule: {by_rule}; "
                   "fitted weights only when they beat equal ones by more than one standard error; a criterion "
                   "fitted to weight 0 does not vote)")
        lines += ["", f"Voting criteria {how}; {e['rule']} rule, weights {weights}. The choice saw these figures, so "
                  "they are optimistic: the held-out evaluation is the honest one."]
    if c.get("refused"):
        lines += ["", "## Refused before judging", "", "The manager's proposals and rewrites that were not quality "
                  "criteria (never judged):", ""]
        lines += [f"- {r['name']}: {r['why']}" for r in c["refused"]]
    if d["evals"]:
        lines += ["", "## Evaluation on held-out pairs", "", "| method | accuracy | 95% CI | coverage | kappa | n |",
                  "|---|---|---|---|---|---|"]
        for k, e in d["evals"].items():
            s = e["flow_soft"]
            kappa = "-" if s["kappa"] is None else f"{s['kappa']:.2f}"
            acc = "-" if s["accuracy"] is None else f"{s['accuracy']:.3f}"
            lines.append(f"| {e.get('method', k)} | {acc} | [{s['ci_low']:.2f}, {s['ci_high']:.2f}] | "
                         f"{s['coverage']:.2f} | {kappa} | {s['n_judged']} |")
            m = e.get("flow_majority") or {}
            if len(e.get("criteria") or []) > 1 and m.get("accuracy") is not None:
                m_kappa = "-" if m["kappa"] is None else f"{m['kappa']:.2f}"
                lines.append(f"| {e.get('method', k)} (majority vote) | {m['accuracy']:.3f} | "
                             f"[{m['ci_low']:.2f}, {m['ci_high']:.2f}] | {m['coverage']:.2f} | {m_kappa} | "
                             f"{m['n_judged']} |")
            if "injection" in e and e["injection"]["flip_rate"] is not None:
                lines.append(f"| {e.get('method', k)} + injection | flip rate {e['injection']['flip_rate']:.3f} "
                             "| | | | |")
    audits = [("the seed pairs", len(c.get("seed_pair_ids") or []), c.get("seed_audit"))] + [
        (f"{e.get('method', k)}, held-out", e["n_pairs"], e.get("audit")) for k, e in d["evals"].items()]
    for where, n, a in audits:
        if a:
            lines += ["", f"## Shortcut audit ({where}, {n} pairs)", "",
                      "Simple signals alone: " + ", ".join(f"{m} {v:.3f}" for m, v in a["simple_signals"].items()
                                                           if v is not None) + "."]
            fl = a["flow_length_matched"]
            if fl["accuracy"] is not None:
                lines.append(f"On the {a['length_matched_pairs']} length-matched pairs (length ratio ≤ 1.3): "
                             f"flow {fl['accuracy']:.3f} [{fl['ci_low']:.2f}, {fl['ci_high']:.2f}]; " + ", ".join(
                                 f"{m} {v:.3f}" for m, v in a["criteria_length_matched"].items() if v is not None))
            if (w := a.get("flow_without_computed")) and w["accuracy"] is not None:
                lines.append(f"Flow without its computed criteria: {w['accuracy']:.3f} "
                             f"[{w['ci_low']:.2f}, {w['ci_high']:.2f}].")
    lines += report_distil.markdown(d["distil"])
    return "\n".join(lines) + "\n"


def _html(md: str) -> str:
    """The report's markdown as HTML; raw HTML in it (criterion descriptions, document texts) stays escaped text."""
    return MarkdownIt("commonmark", {"html": False}).enable("table").render(md)


def write_report(run_dir: str | Path) -> tuple[Path, Path]:
    run_dir = Path(run_dir)
    d = _load(run_dir)
    md = _markdown(d)
    plots = _plots(d)
    titles = {"evolution": "Accuracy of each criterion across iterations", "final": "Final criteria",
              "margins": "Vote margins on the seeds", "evals": "Held-out evaluation",
              "scores": "Corpus scores and selection"}
    figures = "".join(f'<h2>{titles[k]}</h2><img alt="{k}" src="data:image/png;base64,{v}">' for k, v in plots.items())
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>critmine report</title><style>"
            "body{font-family:system-ui,sans-serif;max-width:1000px;margin:24px auto;color:#1d2330;line-height:1.4}"
            "table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #d5d9e0;padding:3px 9px}"
            "th{background:#f0f2f5}tr:nth-child(even) td{background:#fafbfc}img{max-width:100%}"
            f"</style></head><body>{_html(md)}{figures}</body></html>")
    run = RunLayout(run_dir)
    run.report_md.write_text(md, encoding="utf-8")
    run.report_html.write_text(page, encoding="utf-8")
    return run.report_md, run.report_html
