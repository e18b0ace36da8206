"""Table 5 on a small store: CLIP vs MedCLIP per regime, single runs (DeLong) and seeds (bootstrap)."""

from __future__ import annotations

import numpy as np
import pytest

from pedclip.eval.bootstrap import BootstrapConfig
from pedclip.eval.headtohead import DELTA, Cell, table5_rows
from pedclip.eval.paired import delong_test, holm_adjust
from pedclip.store.runs import get_run, predictions_frame, save_run
from tests.eval.test_compare_cli import _cases, _run


def _seeded(store, run_id, y, score, seed):
    _run(store, run_id, "site", y, score)
    run = get_run(store, run_id)
    run["config"] = {"resolved": {"seed": seed, "loss": "semantic"}}
    save_run(store, run)  # predictions kept: save_run without a frame leaves them
    return get_run(store, run_id)


@pytest.fixture
def cells(store):
    y = _cases(store, "site", 100, 3)
    rng = np.random.default_rng(4)
    clip_zs = np.clip(0.1 * y + rng.normal(0.5, 0.2, len(y)), 0, 1)
    med_zs = np.clip(0.4 * y + rng.normal(0.4, 0.2, len(y)), 0, 1)
    _run(store, "zs-clip", "site", y, clip_zs)
    _run(store, "zs-med", "site", y, med_zs, keep=np.arange(2, len(y)))
    clip_ft = [_seeded(store, f"ft-clip-{s}", y, np.clip(0.3 * y + rng.normal(0.4, 0.2, len(y)), 0, 1), s)
               for s in (0, 1, 2)]  # fmt: skip
    med_ft = [_seeded(store, f"ft-med-{s}", y, np.clip(0.5 * y + rng.normal(0.3, 0.2, len(y)), 0, 1), s)
              for s in (0, 1)]  # fmt: skip
    return (
        [
            Cell("UCSD", "zero-shot", [get_run(store, "zs-clip")], [get_run(store, "zs-med")]),
            Cell("UCSD", "linear probe", [], [get_run(store, "zs-med")]),
            Cell("UCSD", "fine-tuned", clip_ft, med_ft),
        ],
        y,
        clip_zs,
        med_zs,
    )


def test_table5_rows(store, cells):
    cell_list, y, clip_zs, med_zs = cells
    rows = table5_rows(store, cell_list, BootstrapConfig(n_resamples=200, seed=0))
    zs, probe, ft = rows
    expected = delong_test(y[2:], med_zs[2:], clip_zs[2:])  # MedCLIP never scored films 0 and 1
    assert zs["n"] == 98 and zs["p"] == pytest.approx(expected.p) and zs["test"] == "DeLong"
    assert zs[DELTA].startswith(f"{expected.delta:+.3f}")
    assert probe["p"] is None and "no run of CLIP" in probe["note"]
    # seeds: paired seed by seed on the seeds both models have; bootstrap over patients and seeds
    assert ft["seeds"] == "0,1" and "CLIP had [0, 1, 2]" in ft["note"]
    deltas = [
        delong_test(y, _scores(store, f"ft-med-{s}"), _scores(store, f"ft-clip-{s}")).delta for s in (0, 1)
    ]
    assert ft[DELTA].startswith(f"{np.mean(deltas):+.3f}")
    assert (
        ft["seeds favouring MedCLIP / CLIP"] == f"{sum(d > 0 for d in deltas)} / {sum(d < 0 for d in deltas)}"
    )
    assert "bootstrap over patients and 2 seeds" in ft["test"] and 0 <= ft["p"] <= 1
    assert [r["Holm p"] for r in rows] == pytest.approx(holm_adjust([zs["p"], None, ft["p"]]))
    again = table5_rows(store, cell_list, BootstrapConfig(n_resamples=200, seed=0))
    assert again == rows  # reproducible by the bootstrap seed


def _scores(store, run_id):
    return predictions_frame(store, run_id).sort_values("case_id")["score"].to_numpy()
