"""A self-contained HTML report for runs: ROC and PR curves, calibration, confusion matrices, metric table.

plotly (the `dashboard` extra) is imported lazily; its JavaScript is inlined once so the file opens
offline. Curves are drawn from each run's stored scores (for a `paper` CLIP run that is the study's
top-1 probability, which the table labels).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pedclip.errors import require
from pedclip.eval.metrics import ALL_METRICS, ECE_BINS, Metric, calibration_bin, roc_points
from pedclip.store import Store
from pedclip.store.runs import get_run, predictions_frame


@dataclass
class RunData:
    run: dict
    predictions: pd.DataFrame

    @property
    def name(self) -> str:
        r = self.run
        return f"{r['run_id']} ({r['kind']}, {r['protocol']}, {r['eval_dataset']}:{r['split']})"


def load_runs(store: Store, run_ids: list[str]) -> list[RunData]:
    out = []
    for run_id in run_ids:
        run = get_run(store, run_id)
        preds = predictions_frame(store, run["run_id"])
        out.append(RunData(run, preds[preds["label"].notna()].reset_index(drop=True)))
    return out


def pr_points(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) at every distinct score, highest threshold first."""
    order = np.argsort(-s, kind="mergesort")
    ys, ss = y[order] == 1, s[order]
    last = np.r_[ss[1:] != ss[:-1], True]
    tp, fp = np.cumsum(ys)[last], np.cumsum(~ys)[last]
    return tp / max(int(ys.sum()), 1), tp / np.maximum(tp + fp, 1)


def calibration_points(y: np.ndarray, s: np.ndarray, n_bins: int = ECE_BINS) -> pd.DataFrame:
    """Mean score and observed positive rate per non-empty equal-width bin."""
    bins = calibration_bin(s, n_bins)
    frame = pd.DataFrame({"bin": bins, "score": s, "label": y})
    return frame.groupby("bin").agg(
        mean_score=("score", "mean"), observed=("label", "mean"), n=("label", "size")
    )


def _figures(go, runs: list[RunData]) -> list:
    roc, pr, cal = go.Figure(), go.Figure(), go.Figure()
    for rd in runs:
        y, s = rd.predictions["label"].to_numpy(int), rd.predictions["score"].to_numpy(float)
        fpr, tpr, _ = roc_points(y, s)
        roc.add_trace(go.Scatter(x=fpr, y=tpr, mode="lines", name=rd.run["run_id"]))
        rec, prec = pr_points(y, s)
        pr.add_trace(go.Scatter(x=rec, y=prec, mode="lines", name=rd.run["run_id"]))
        c = calibration_points(y, s)
        cal.add_trace(
            go.Scatter(
                x=c["mean_score"],
                y=c["observed"],
                mode="lines+markers",
                name=rd.run["run_id"],
                text=[f"n={n}" for n in c["n"]],
            )
        )
    diag = dict(type="line", x0=0, y0=0, x1=1, y1=1, line=dict(dash="dot", color="grey"))
    roc.update_layout(title="ROC", xaxis_title="1 - specificity", yaxis_title="sensitivity", shapes=[diag])
    pr.update_layout(title="Precision-recall", xaxis_title="recall", yaxis_title="precision")
    cal.update_layout(
        title="Calibration",
        xaxis_title="mean score in bin",
        yaxis_title="observed positive rate",
        shapes=[diag],
    )
    for fig in (roc, pr, cal):  # fixed sizes: plotly's autosize collapses inside a flex row
        fig.update_layout(width=640, height=460, legend=dict(font=dict(size=10)))
    return [roc, pr, cal] + [_confusion(go, rd) for rd in runs]


def _confusion(go, rd: RunData):
    y, p = rd.predictions["label"].to_numpy(int), rd.predictions["predicted"].to_numpy(int)
    counts = [[int(((y == t) & (p == q)).sum()) for q in (0, 1)] for t in (0, 1)]
    fig = go.Figure(
        go.Heatmap(
            z=counts,
            x=["pred normal", "pred pneumonia"],
            y=["normal", "pneumonia"],
            text=counts,
            texttemplate="%{text}",
            colorscale="Blues",
            showscale=False,
        )
    )
    threshold = rd.run["config"].get("threshold", {})
    fig.update_layout(
        title=dict(
            text=f"{rd.run['run_id']}<br><sub>threshold {threshold.get('rule', '?')}</sub>",
            font=dict(size=13),
        ),
        yaxis_title="label",
        width=520,
        height=400,
    )
    return fig


def metrics_table_html(runs: list[RunData]) -> str:
    head = "".join(f"<th>{m}</th>" for m in ("run", "model", "n", "threshold", "score", *ALL_METRICS))
    rows = []
    for rd in runs:
        cfg = rd.run["config"]
        cells = [
            rd.name,
            rd.run["model"],
            cfg.get("n", len(rd.predictions)),
            cfg.get("threshold", {}).get("rule", ""),
            cfg.get("score", ""),
        ]
        cells += [Metric.from_dict(rd.run["metrics"].get(m)).format(3) for m in ALL_METRICS]
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:4px 6px;text-align:left}
.figs{display:flex;flex-wrap:wrap;gap:12px}.note{color:#555;font-size:13px}"""


def tables_html(tables: Sequence) -> str:
    """Paper-style tables (anything with .title, .frame() and .notes) as HTML sections, cells escaped."""
    parts = []
    for table in tables:
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in table.notes)
        frame = table.frame()
        frame = frame.astype(object).where(frame.notna(), "")
        parts.append(
            f"<h2>{html.escape(table.title)}</h2>{frame.to_html(index=False, escape=True)}"
            f"<ul class='note'>{notes}</ul>"
        )
    return "".join(parts)


def report_html(runs: list[RunData], title: str = "pedclip report", tables: Sequence = ()) -> str:
    """The whole report as one HTML string (plotly JS inlined once); `tables` go first."""
    go = require("plotly.graph_objects", "dashboard")
    figures = _figures(go, runs)
    parts = [fig.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, fig in enumerate(figures)]
    note = (
        "Metrics: 95% bootstrap CIs (patients resampled when ids exist). Curves use each run's stored score; "
        "the threshold rule is given per run."
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        f"{tables_html(tables)}<h2>Runs</h2><p class='note'>{note}</p>{metrics_table_html(runs)}"
        f"<div class='figs'>{''.join(f'<div>{p}</div>' for p in parts)}</div></body></html>"
    )


def write_report(
    store: Store, run_ids: list[str], out_path, title: str = "pedclip report", tables: Sequence = ()
):
    """Write the report for `run_ids` (after `tables`, e.g. the paper's) to `out_path`; returns the path."""
    from pathlib import Path

    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report_html(load_runs(store, run_ids), title, tables), encoding="utf-8")
    return path
