"""Fine-tuned vs zero-shot: the paired comparison table in `pedclip paper`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from pedclip.eval.bootstrap import BootstrapConfig
from pedclip.eval.gain import verdict
from pedclip.eval.metrics import Metric
from pedclip.eval.paper import PaperConfig, paper_tables
from pedclip.eval.report import write_report
from pedclip.store.runs import predictions_frame, save_run
from tests.eval.conftest import add_dataset

TINY = "openclip:pedclip-tiny"


@pytest.fixture
def sites(store, tiny_encoder, pneumonia_direction):
    add_dataset(store, "ucsd", tiny_encoder.fingerprint, pneumonia_direction, n=120, seed=5, signal=0.05)
    add_dataset(store, "ori", tiny_encoder.fingerprint, pneumonia_direction, n=60, seed=6, signal=0.05)
    return store


def _finetune_run(
    store, parent: str, run_id: str, dataset: str, scores: dict[str, float], labels: dict
) -> None:
    frame = {"dataset": dataset, "case_id": list(scores), "score": list(scores.values())}
    frame["label"] = [labels[c] for c in scores]
    frame["predicted"] = [int(s >= 0.5) for s in scores.values()]
    y, s = np.array(frame["label"]), np.array(frame["score"])
    save_run(store, {"run_id": run_id, "kind": "finetune", "protocol": "sound", "model": TINY, "fingerprint": run_id,
                     "train_dataset": dataset, "eval_dataset": dataset, "split": "test",
                     "config": {"parent_fingerprint": parent, "resolved": {"loss": "semantic", "seed": 0}},
                     "metrics": {"auroc": {"value": roc_auc_score(y, s), "lo": 0.0, "hi": 1.0}}},
             pd.DataFrame(frame))  # fmt: skip


def _gain(store, tiny_encoder):
    config = PaperConfig(ucsd="ucsd", ori="ori", clip=TINY, medclip=TINY, bootstrap=BootstrapConfig(300))
    result = paper_tables(store, config, lambda spec: tiny_encoder)
    return result, {t.key: t for t in result.tables}.get("gain")


def test_gain_table_pairs_each_model_with_its_zero_shot_self(sites, tiny_encoder, tmp_path):
    result, gain = _gain(sites, tiny_encoder)
    assert gain is None  # no fine-tuning runs yet: no comparison table
    zero_shot = {
        r["dataset"]: r for r in result.tables[1].rows if r["source"] == "sound" and r["method"] == "CLIP"
    }
    ucsd = predictions_frame(sites, zero_shot["UCSD"]["run_id"])
    labels = dict(zip(ucsd["case_id"], ucsd["label"], strict=True))
    # UCSD: a fine-tuned model that ranks every test case right; ORI: one that scores exactly as zero-shot did
    _finetune_run(sites, tiny_encoder.fingerprint, "ft-ucsd", "ucsd",
                  {c: 0.2 + 0.6 * y for c, y in labels.items()}, labels)  # fmt: skip
    ori = predictions_frame(sites, zero_shot["ORI"]["run_id"])
    _finetune_run(sites, tiny_encoder.fingerprint, "ft-ori", "ori", dict(zip(ori["case_id"], ori["score"], strict=True)),
                  dict(zip(ori["case_id"], ori["label"], strict=True)))  # fmt: skip
    _, gain = _gain(sites, tiny_encoder)
    rows = {(r["dataset"], r["method"]): r for r in gain.rows}
    assert set(rows) == {("UCSD", "CLIP"), ("UCSD", "MedCLIP"), ("ORI", "CLIP"), ("ORI", "MedCLIP")}
    better, same = rows[("UCSD", "CLIP")], rows[("ORI", "CLIP")]
    expected = 1.0 - roc_auc_score(ucsd["label"], ucsd["score"])
    assert better["difference [paired 95% CI]"].startswith(f"{expected:+.3f}")
    assert better["verdict"] == "fine-tuned higher" and better["n"] == len(ucsd)
    assert same["difference [paired 95% CI]"] == "+0.000 [+0.000, +0.000]"
    assert same["verdict"].startswith("no clear difference")
    html = write_report(sites, [better["fine-tuning run"]], tmp_path / "r.html", tables=[gain]).read_text()
    assert (
        "<h2>Fine-tuned vs zero-shot" in html and html.count("fine-tuned higher") == 2
    )  # CLIP and MedCLIP share the tiny parent


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (Metric(0.1, lo=0.02, hi=0.2), "fine-tuned higher"),
        (Metric(-0.1, lo=-0.2, hi=-0.01), "fine-tuned lower"),
        (Metric(0.05, lo=-0.01, hi=0.1), "no clear difference (CI of the difference includes 0)"),
        (Metric(None, reason="one class"), "undefined: one class"),
    ],
)
def test_verdict_reads_the_paired_interval(delta, expected):
    assert verdict(delta) == expected
