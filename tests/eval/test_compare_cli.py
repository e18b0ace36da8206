"""`pedclip compare`: two stored runs on the same films, paired, against an independent DeLong."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pedclip.cli import main
from pedclip.store.cases import CaseRow, replace_cases, upsert_dataset
from pedclip.store.runs import predictions_frame, save_run
from tests.eval.test_paired import _independent_delong


def _cases(store, name: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.45).astype(int)
    rows = [
        CaseRow(case_id=f"{i:03d}", path=f"/nowhere/{i}.png", image_sha256=f"{name}{i}", width=8, height=8,
                mode="L", label=int(y[i]), patient_id=f"p{i // 2}", split="test")
        for i in range(n)
    ]  # fmt: skip
    upsert_dataset(store, name, "synth", "/nowhere", ["normal", "pneumonia"])
    replace_cases(store, name, rows)
    return y


def _run(store, run_id: str, dataset: str, y: np.ndarray, score: np.ndarray, keep=None) -> str:
    keep = np.arange(len(y)) if keep is None else keep
    frame = pd.DataFrame(
        {"dataset": dataset, "case_id": [f"{i:03d}" for i in keep], "score": score[keep],
         "predicted": (score[keep] >= 0.5).astype(int), "label": y[keep]}
    )  # fmt: skip
    run = {"run_id": run_id, "kind": "zeroshot", "protocol": "sound", "model": run_id, "eval_dataset": dataset,
           "split": "test", "config": {}, "metrics": {}}  # fmt: skip
    return save_run(store, run, frame)


@pytest.fixture
def two_runs(store):
    y = _cases(store, "site", 120, 0)
    rng = np.random.default_rng(1)
    a = np.round(np.clip(0.3 * y + rng.normal(0.4, 0.2, len(y)), 0, 1), 2)
    b = np.round(np.clip(0.15 * y + 0.5 * a + rng.normal(0.2, 0.2, len(y)), 0, 1), 2)
    _run(store, "run-a", "site", y, a)
    _run(store, "run-b", "site", y, b, keep=np.arange(5, len(y)))  # B never scored 5 films
    _cases(store, "other", 30, 2)
    _run(store, "run-c", "other", np.zeros(30, int), np.linspace(0, 1, 30))
    return store


def _compare(capsys, home, *args) -> tuple[int, str, str]:
    code = main(["--home", str(home), "compare", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_compare_json_matches_independent_delong(two_runs, home, capsys):
    code, out, err = _compare(capsys, home, "run-a", "run-b", "--json", "--resamples", "200", "--seed", "4")
    assert code == 0, err
    doc = json.loads(out)
    for key in ("n", "auroc_a", "auroc_b", "delta_auroc", "ci", "delong_z", "delong_p", "mcnemar_p"):
        assert key in doc
    assert doc["n"] == 115 and doc["dropped"]["only_in_a"] == 5 and doc["resampled"] == "patient"
    a = predictions_frame(two_runs, "run-a").set_index("case_id")
    b = predictions_frame(two_runs, "run-b").set_index("case_id")
    common = a.loc[b.index]
    aucs, var, z, p = _independent_delong(common["label"].to_numpy(), common["score"].to_numpy(),
                                          b["score"].to_numpy())  # fmt: skip
    assert doc["delong_p"] == pytest.approx(p, abs=1e-6) and doc["delong_z"] == pytest.approx(z, abs=1e-6)
    assert doc["delta_auroc"] == pytest.approx(aucs[0] - aucs[1], abs=1e-12)
    assert doc["ci"][0] <= doc["delta_auroc"] <= doc["ci"][1]
    _, again, _ = _compare(capsys, home, "run-a", "run-b", "--json", "--resamples", "200", "--seed", "4")
    _, other, _ = _compare(capsys, home, "run-a", "run-b", "--json", "--resamples", "200", "--seed", "5")
    assert json.loads(again)["ci"] == doc["ci"] != json.loads(other)["ci"]


def test_compare_human_output(two_runs, home, capsys):
    code, out, err = _compare(capsys, home, "run-a", "run-b", "--resamples", "50")
    assert code == 0, err
    assert "DeLong" in out and "McNemar" in out and "115 cases both scored" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [(("run-a", "nope"), "unknown run 'nope'"), (("run-a", "run-c"), "different eval datasets")],
)
def test_compare_errors_are_one_line(two_runs, home, capsys, args, message):
    code, _, err = _compare(capsys, home, *args)
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1
