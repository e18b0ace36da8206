"""Plotly figures of runs, shared by `report.html` and the dashboard's Metrics page.

Small multiples: one panel per evaluation dataset and regime (zero-shot, probe, fine-tuned, transferred),
a handful of curves in each, every curve named by `RunRecord.model_name` with its AUROC and CI in the
panel's own legend, and each run's operating point marked. ROC and PR curves are drawn on the score the
run's AUC is computed on (P(pneumonia); the study's top-1 probability for `paper` CLIP runs, said in the
legend); calibration on P(pneumonia). plotly (the `dashboard` extra) is imported lazily.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pedclip.data.labels import CLASS_NAMES
from pedclip.errors import require
from pedclip.eval import curves
from pedclip.eval.evaluation import auc_score_of
from pedclip.eval.record import REGIME_ORDER, RunRecord

COLUMNS = 3
PANEL_PX = 380
GAP_PX = 140  # between rows of panels: room for the x-axis title above and the panel title below
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
GRID = {"dash": "dot", "color": "grey", "width": 1}


@dataclass(frozen=True)
class ScoredRun:
    """A run with its labelled predictions, as the figures draw it."""

    run: RunRecord
    predictions: pd.DataFrame  # labelled rows: label, score (P(positive)), predicted [, auc_score]
    name: str  # the run's model for people (`RunRecord.model_name`)
    class_names: tuple[str, ...] = CLASS_NAMES  # the evaluated dataset's, index = label

    @property
    def panel(self) -> str:
        return f"{self.run.eval_dataset} · {self.run.regime}"

    @property
    def labels(self) -> np.ndarray:
        return self.predictions["label"].to_numpy().astype(int)

    def point(self, threshold: float | None = None) -> curves.OperatingPoint:
        """The run's stored decisions (threshold None) or P(positive) >= threshold."""
        return curves.operating_point(self.labels, curves.decisions(self.predictions, threshold), threshold)

    @property
    def label(self) -> str:
        """The model's name, the protocol (unless the name says it) and the evaluated split."""
        protocol = "" if self.name.endswith(f" · {self.run.protocol}") else f" · {self.run.protocol}"
        return f"{self.name}{protocol} · {self.run.split}"

    def legend(self) -> str:
        auroc = self.run.metric("auroc")
        text = "AUROC n/a" if auroc.value is None else f"AUROC {auroc.value:.3f}"
        if auroc.lo is not None and auroc.hi is not None:
            text += f" [{auroc.lo:.3f}, {auroc.hi:.3f}]"
        if self.run.auc_score_kind != "p_positive":
            text += " on top-1 prob."
        return f"{self.label} · {text}"


def panels(runs: Sequence[ScoredRun]) -> dict[str, list[ScoredRun]]:
    """Runs grouped by panel, panels ordered by dataset then regime (zero-shot, probe, fine-tuned, ...)."""

    def order(run: ScoredRun) -> tuple:
        regime = run.run.regime
        return (str(run.run.eval_dataset), REGIME_ORDER.index(regime) if regime in REGIME_ORDER else 9)

    grouped: dict[str, list[ScoredRun]] = {}
    for run in sorted(runs, key=order):
        grouped.setdefault(run.panel, []).append(run)
    return grouped


def _grid(go_subplots, titles: list[str]):
    cols = min(COLUMNS, max(len(titles), 1))
    rows = max(math.ceil(len(titles) / cols), 1)
    plot_px = (PANEL_PX + GAP_PX) * rows - GAP_PX
    fig = go_subplots.make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=titles,
        horizontal_spacing=0.06,
        vertical_spacing=GAP_PX / plot_px,
    )
    fig.update_layout(height=plot_px + 100, margin={"l": 40, "r": 10, "t": 60, "b": 40}, showlegend=True)
    return fig, cols


def _legend_at(fig, index: int, corner: str) -> str:
    """A legend inside panel `index` (0-based) at `corner` ("lower right", "lower left", "upper left")."""
    axis = "" if index == 0 else str(index + 1)
    x0, x1 = fig.layout[f"xaxis{axis}"].domain
    y0, y1 = fig.layout[f"yaxis{axis}"].domain
    vertical, horizontal = corner.split()
    name = "legend" if index == 0 else f"legend{index + 1}"
    fig.update_layout(
        {
            name: {
                "x": x1 if horizontal == "right" else x0,
                "y": y0 if vertical == "lower" else y1,
                "xanchor": horizontal,
                "yanchor": "bottom" if vertical == "lower" else "top",
                "bgcolor": "rgba(255,255,255,0.8)",
                "font": {"size": 10},
            }
        }
    )
    return name


def _colours(runs: Sequence[ScoredRun]) -> dict[str, str]:
    """One colour per model, protocol and split, the same in every panel."""
    labels = list(dict.fromkeys(r.label for r in runs))
    return {label: COLOURS[i % len(COLOURS)] for i, label in enumerate(labels)}


def _small_multiples(runs: Sequence[ScoredRun], title: str, corner: str, draw, diagonal: bool = False):
    """One panel per dataset x regime; `draw(fig, run, row, col, colour, legend)` adds a run's traces."""
    subplots = require("plotly.subplots", "dashboard")
    grouped = panels(runs)
    fig, cols = _grid(subplots, list(grouped) or ["no runs"])
    colours = _colours(runs)
    for index, members in enumerate(grouped.values()):
        row, col = index // cols + 1, index % cols + 1
        legend = _legend_at(fig, index, corner)
        if diagonal:
            fig.add_scatter(
                x=[0, 1],
                y=[0, 1],
                mode="lines",
                line=GRID,
                showlegend=False,
                hoverinfo="skip",
                row=row,
                col=col,
            )
        for run in members:
            draw(fig, run, row, col, colours[run.label], legend)
    fig.update_layout(title=title)
    return fig


def _curve_with_point(
    fig, xy: tuple, dot: tuple, name: str, colour: str, legend: str, point, at: dict
) -> None:
    """A run's curve (x, y) and its operating point `dot` in one panel (`at`: row and col)."""
    fig.add_scatter(x=xy[0], y=xy[1], mode="lines", line={"color": colour}, name=name, legend=legend, **at)
    marker = {"color": colour, "size": 10, "line": {"color": "black", "width": 1}}
    fig.add_scatter(
        x=[dot[0]],
        y=[dot[1]],
        mode="markers",
        showlegend=False,
        marker=marker,
        hovertext=_point_text(point),
        hoverinfo="text",
        **at,
    )


def _axes(fig, x_title: str, y_title: str, at: dict) -> None:
    fig.update_xaxes(title_text=x_title, range=[0, 1], **at)
    fig.update_yaxes(title_text=y_title, range=[0, 1.02], **at)


def roc_figure(runs: Sequence[ScoredRun], threshold: float | None = None):
    """ROC small multiples with each run's operating point (stored, or at `threshold` on P(positive))."""

    def draw(fig, run, row, col, colour, legend):
        at, point = {"row": row, "col": col}, run.point(threshold)
        roc = curves.roc_curve(run.labels, auc_score_of(run.predictions))
        dot = (1 - point.specificity, point.sensitivity)
        _curve_with_point(fig, (roc["fpr"], roc["tpr"]), dot, run.legend(), colour, legend, point, at)
        _axes(fig, "1 - specificity", "sensitivity", at)

    return _small_multiples(runs, "ROC (dot: the run's operating point)", "lower right", draw, diagonal=True)


def pr_figure(runs: Sequence[ScoredRun], threshold: float | None = None):
    """Precision-recall small multiples with each run's operating point."""

    def draw(fig, run, row, col, colour, legend):
        at, point = {"row": row, "col": col}, run.point(threshold)
        pr = curves.pr_curve(run.labels, auc_score_of(run.predictions))
        dot = (point.sensitivity, point.precision)
        _curve_with_point(fig, (pr["recall"], pr["precision"]), dot, run.label, colour, legend, point, at)
        _axes(fig, "recall", "precision", at)

    return _small_multiples(runs, "Precision-recall (dot: the run's operating point)", "lower left", draw)


def calibration_figure(runs: Sequence[ScoredRun]):
    """Reliability small multiples of P(pneumonia): mean predicted vs observed rate per bin."""

    def draw(fig, run, row, col, colour, legend):
        bins = curves.calibration_curve(run.labels, run.predictions["score"].to_numpy())
        fig.add_scatter(
            x=bins["predicted"],
            y=bins["observed"],
            mode="lines+markers",
            line={"color": colour},
            name=run.label,
            legend=legend,
            text=[f"n={n}" for n in bins["n"]],
            row=row,
            col=col,
        )
        _axes(fig, "mean predicted P(pneumonia)", "observed rate", {"row": row, "col": col})

    return _small_multiples(runs, "Calibration of P(pneumonia)", "upper left", draw, diagonal=True)


def confusion_figure(point: curves.OperatingPoint, class_names: Sequence[str], title: str | None = None):
    """One confusion matrix: rows the true class, columns the decision."""
    go = require("plotly.graph_objects", "dashboard")
    fig = go.Figure(
        go.Heatmap(
            z=point.matrix(),
            x=[f"predicted {c}" for c in class_names],
            y=list(class_names),
            text=point.matrix(),
            texttemplate="%{text}",
            colorscale="Blues",
            showscale=False,
        )
    )
    fig.update_layout(
        height=240,
        margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10},
        yaxis={"autorange": "reversed"},
        title={"text": title or "", "font": {"size": 12}},
    )
    return fig


def _point_text(point: curves.OperatingPoint) -> str:
    where = "stored predictions" if point.threshold is None else f"P(pneumonia) >= {point.threshold:.2f}"
    return f"{where}: sensitivity {point.sensitivity:.3f}, specificity {point.specificity:.3f}"
