"""A self-contained HTML report for runs: metric table, ROC, PR and calibration small multiples, confusions.

The figures come from `pedclip.eval.figures` (the dashboard's Metrics page draws the same); plotly's
JavaScript is inlined once so the file opens offline.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from pedclip.data.labels import CLASS_NAMES
from pedclip.eval.figures import ScoredRun, calibration_figure, confusion_figure, pr_figure, roc_figure
from pedclip.eval.metrics import ALL_METRICS
from pedclip.eval.record import RunRecord, short_run_id
from pedclip.store import Store
from pedclip.store.cases import get_dataset
from pedclip.store.runs import get_run, predictions_frame


def load_runs(store: Store, run_ids: list[str]) -> list[ScoredRun]:
    """The runs with their labelled predictions, each named by `RunRecord.model_name`."""
    out = []
    for run_id in run_ids:
        run = RunRecord.from_row(get_run(store, run_id))
        preds = predictions_frame(store, run.run_id)
        labelled = preds[preds["label"].notna()].reset_index(drop=True)
        names = (
            tuple(get_dataset(store, run.eval_dataset)["class_names"]) if run.eval_dataset else CLASS_NAMES
        )
        out.append(ScoredRun(run, labelled, run.model_name(), names))
    return out


def _figures(runs: list[ScoredRun]) -> list:
    confusions = [
        confusion_figure(
            rd.point(),
            rd.class_names,
            f"{rd.name} · {rd.run.eval_dataset}:{rd.run.split}"
            f"<br><sub>{short_run_id(rd.run.run_id)} · threshold {rd.run.threshold_rule or '?'}</sub>",
        )
        for rd in runs
    ]
    for fig in confusions:  # fixed sizes: plotly's autosize collapses inside a flex row
        fig.update_layout(width=340, height=300, margin={"t": 60})
    return [roc_figure(runs), pr_figure(runs), calibration_figure(runs)], confusions


def metrics_table_html(runs: list[ScoredRun]) -> str:
    head = "".join(
        f"<th>{m}</th>" for m in ("run", "model", "data", "n", "threshold", "AUC on", *ALL_METRICS)
    )
    rows = []
    for rd in runs:
        run = rd.run
        cells = [
            short_run_id(run.run_id),
            rd.name,
            f"{run.eval_dataset}:{run.split} ({run.protocol})",
            run.config.get("n", len(rd.predictions)),
            run.threshold_rule,
            run.auc_score_kind,
        ]
        cells += [run.metric(m).format(3) for m in ALL_METRICS]
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


def report_html(runs: list[ScoredRun], title: str = "pedclip report", tables: Sequence = ()) -> str:
    """The whole report as one HTML string (plotly JS inlined once); `tables` go first."""
    panels, confusions = _figures(runs)
    html_of = [
        fig.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, fig in enumerate(panels + confusions)
    ]
    wide, small = html_of[: len(panels)], html_of[len(panels) :]
    note = (
        "Metrics: 95% bootstrap CIs (patients resampled when ids exist). One panel per dataset and regime; "
        "ROC and PR on the score each run's AUC is on (P(pneumonia), or the study's top-1 probability where "
        "the legend says so); calibration on P(pneumonia); the dot is the run's operating point at its "
        "own threshold."
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        f"{tables_html(tables)}<h2>Runs</h2><p class='note'>{note}</p>{metrics_table_html(runs)}"
        f"{''.join(f'<div>{p}</div>' for p in wide)}<h2>Confusion matrices</h2>"
        f"<div class='figs'>{''.join(f'<div>{p}</div>' for p in small)}</div></body></html>"
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
