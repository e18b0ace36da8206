"""Two runs' aligned cases sorted into the four quadrants of who got each case right."""

from __future__ import annotations

import pandas as pd

from pedclip.eval.paired_runs import quadrants


def test_quadrants_sort_each_by_its_most_confident_errors():
    aligned = pd.DataFrame(
        {  # c1, c2 both right; c3, c4 only A right; c5 only B right; c6 both wrong
            "dataset": "d",
            "case_id": ["c1", "c2", "c3", "c4", "c5", "c6"],
            "label": [1, 0, 1, 0, 1, 0],
            "score_a": [0.9, 0.2, 0.7, 0.1, 0.4, 0.8],
            "predicted_a": [1, 0, 1, 0, 0, 1],
            "score_b": [0.8, 0.45, 0.3, 0.95, 0.6, 0.7],
            "predicted_b": [1, 0, 0, 1, 1, 1],
        }
    )
    out = quadrants(aligned, 0.5, 0.4)
    # both right: the closest call first (c2: B 0.05 from its threshold); only A right: B's surest error first
    assert out["case_id"].tolist() == ["c2", "c1", "c4", "c3", "c5", "c6"]
    assert out["quadrant"].tolist() == ["Both right"] * 2 + ["Only A right"] * 2 + [
        "Only B right",
        "Both wrong",
    ]
    assert out["margin_b"].round(3).tolist() == [0.05, 0.4, 0.55, 0.1, 0.2, 0.3]
    assert out["margin_a"].round(3).tolist() == [0.3, 0.4, 0.4, 0.2, 0.1, 0.3]
    assert len(quadrants(aligned.iloc[:0], 0.5, 0.5)) == 0
