"""A `paper`-protocol zero-shot run through the Errors, Metrics and Map pages.

The study's CLIP AUC is taken on the top-1 probability, which is >= 0.5 for every film; a page that
re-thresholded that score at the run's 0.5 called every film pneumonia (20 false positives, 0 false
negatives on 20 + 20 films) while the run itself predicted 10 false positives and 1 false negative.
"""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
from dashboard_store import TINY_SPEC, _cases, open_page

from pedclip.eval.bootstrap import BootstrapConfig
from pedclip.eval.evaluation import labelled_vectors, save
from pedclip.eval.prompts import prompt_set_from_dict
from pedclip.eval.zeroshot import PromptVectors, ZeroShotConfig, evaluate_prompts
from pedclip.store import Store
from pedclip.store.cases import replace_cases, upsert_dataset
from pedclip.store.embeddings import put_image_embeddings
from pedclip.store.runs import predictions_frame

# degrees past 45 (P(pneumonia) > 0.5) or short of it, per film; labels alternate normal, pneumonia
NORMAL_OFFSETS = [0.1 * (i + 1) for i in range(10)] + [
    -0.1 * (i + 1) for i in range(10)
]  # 10 false positives
PNEUMONIA_OFFSETS = [0.05 + 0.1 * i for i in range(19)] + [-0.35]  # 1 false negative


def _film_vectors(labels: np.ndarray, dim: int) -> np.ndarray:
    """Unit vectors in the plane of the two prompt vectors (axes 0 and 1), at 45 degrees +- the offsets."""
    offsets = iter(NORMAL_OFFSETS), iter(PNEUMONIA_OFFSETS)
    angles = np.radians([45 + next(offsets[label]) for label in labels])
    vectors = np.zeros((len(labels), dim), dtype=np.float32)
    vectors[:, 0], vectors[:, 1] = np.cos(angles), np.sin(angles)
    return vectors


@pytest.fixture(scope="module")
def paper_store(fixture_store, tmp_path_factory):
    """The fixture store plus 40 films (20 normal, 20 pneumonia) and one paper zero-shot run on them."""
    home = tmp_path_factory.mktemp("paper") / "home"
    shutil.copytree(fixture_store.home, home)
    store = Store.open(home)
    splits = ["train"] * 24 + ["val"] * 8 + ["test"] * 8
    rows = _cases(home / "datasets" / "films", "films", 40, 3, splits, "C")
    upsert_dataset(store, "films", "synth", str(home / "datasets" / "films"), ["normal", "pneumonia"])
    replace_cases(store, "films", rows)
    labels = np.array([r.label for r in rows])
    put_image_embeddings(
        store,
        fixture_store.fingerprint,
        [r.image_sha256 for r in rows],
        _film_vectors(labels, fixture_store.dim),
    )
    prompt_vectors = np.eye(2, fixture_store.dim, dtype=np.float32)
    prompts = PromptVectors(
        prompt_vectors, np.array([0, 1]), prompt_set_from_dict({"normal": ["clear"], "pneumonia": ["cloudy"]})
    )
    encoder = SimpleNamespace(spec=TINY_SPEC, fingerprint=fixture_store.fingerprint, logit_scale=100.0)

    def load(split_names):
        return labelled_vectors(store, encoder.fingerprint, encoder.spec, "films", split_names)

    config = ZeroShotConfig(protocol="paper", bootstrap=BootstrapConfig(n_resamples=0))
    run_id = save(store, evaluate_prompts(load, encoder, "films", prompts, config))
    predictions = predictions_frame(store, run_id)
    y, p = predictions["label"].to_numpy(), predictions["predicted"].to_numpy()
    assert (np.sum((p == 1) & (y == 0)), np.sum((p == 0) & (y == 1))) == (10, 1)  # what the run stored
    return SimpleNamespace(home=home, run_id=run_id, predictions=predictions)


@pytest.fixture
def paper_app(paper_store, monkeypatch):
    from dashboard_store import APP
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("PEDCLIP_HOME", str(paper_store.home))
    return AppTest.from_file(str(APP), default_timeout=60)


def test_stored_scores_are_p_pneumonia_and_the_auc_keeps_the_studys_score(paper_store):
    predictions = paper_store.predictions
    assert ((predictions["score"] >= 0.5) == (predictions["predicted"] == 1)).all()
    # top-1 in the study's fp16 arithmetic: within one fp16 ulp below 1 of max(p, 1 - p)
    top1 = np.maximum(predictions["score"], 1 - predictions["score"])
    assert np.allclose(predictions["auc_score"], top1, rtol=0, atol=2**-11)


def test_errors_page_shows_the_runs_own_false_positives_and_negatives(paper_app, paper_store):
    at = open_page(paper_app, "errors")
    at.selectbox(key="errors_run").set_value(paper_store.run_id).run()
    headers = [h.value for h in at.subheader]
    assert headers[0].startswith("False positives (10)") and headers[1].startswith("False negatives (1)")
    assert any("stored predictions" in c.value and "P(pneumonia)" in c.value for c in at.caption)
    at.slider(key=f"errors_threshold_{paper_store.run_id}").set_value(0.9).run()
    scores, labels = paper_store.predictions["score"], paper_store.predictions["label"]
    fp, fn = int(((scores >= 0.9) & (labels == 0)).sum()), int(((scores < 0.9) & (labels == 1)).sum())
    headers = [h.value for h in at.subheader]
    assert headers[0].startswith(f"False positives ({fp})") and headers[1].startswith(
        f"False negatives ({fn})"
    )
    assert any(c.value.startswith("Re-decided at P(pneumonia) >= 0.90") for c in at.caption)


def test_metrics_page_shows_the_runs_own_operating_point(paper_app, paper_store):
    at = open_page(paper_app, "metrics")
    at.multiselect(key="metrics_runs").set_value([paper_store.run_id]).run()
    assert not at.exception
    rates = {m.label: m.value for m in at.metric}
    assert (rates["Sensitivity"], rates["Specificity"]) == ("0.950", "0.500")


def test_map_colours_each_film_by_the_runs_own_prediction(paper_app, paper_store):
    at = open_page(paper_app, "embedding_map")
    at.selectbox(key="map_dataset").set_value("films").run()
    at.selectbox(key="map_colour").set_value("correctness").run()
    at.selectbox(key="map_run").set_value(paper_store.run_id).run()
    assert not at.exception
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    points = {trace["name"]: len(trace["customdata"]) for trace in figure["data"]}  # one row per film
    assert points == {"correct": 29, "wrong": 11}
