"""No test peeking by default: rescore on validation, prompts tuned on test marked, leaking splits refused,
and zero-shot on another site thresholded on the source site's validation split."""

from __future__ import annotations

import numpy as np
import pytest

from pedclip.errors import PedclipError
from pedclip.eval.bootstrap import BootstrapConfig
from pedclip.eval.evaluation import choose_threshold
from pedclip.eval.prompts import load_prompt_set, prompt_set_from_dict
from pedclip.eval.protocols import SOUND
from pedclip.eval.rescore import ImageMatrixCache, rescore
from pedclip.eval.zeroshot import ZeroShotConfig, classifier_for, prompt_vectors, zeroshot_eval
from pedclip.store.cases import cases_frame, set_splits
from tests.eval.conftest import add_dataset

FAST = BootstrapConfig(n_resamples=20, seed=1)
LAB = {"normal": ["a chest x-ray with clear lungs"], "pneumonia": ["a chest x-ray with pneumonia"]}


@pytest.fixture
def guarded(store, tiny_encoder, pneumonia_direction):
    add_dataset(store, "siteA", tiny_encoder.fingerprint, pneumonia_direction, n=100, seed=3)
    add_dataset(store, "siteB", tiny_encoder.fingerprint, pneumonia_direction, n=100, seed=4, signal=0.2)
    return store


def test_rescore_defaults_to_the_validation_split(guarded, tiny_encoder):
    out = rescore(guarded, tiny_encoder, "siteA", LAB, bootstrap=FAST, cache=ImageMatrixCache())
    assert out.result.run["split"] == "val" and set(out.result.predictions["split"]) == {"val"}


def test_prompts_developed_on_test_are_marked_on_every_later_test_run(guarded, tiny_encoder):
    lab = prompt_set_from_dict(LAB)
    other = load_prompt_set("pneumonia")
    on_val = rescore(guarded, tiny_encoder, "siteA", lab, bootstrap=FAST, development=True)
    test_run = zeroshot_eval(guarded, tiny_encoder, "siteA", lab, ZeroShotConfig(bootstrap=FAST))
    assert "prompts_tuned_on_test" not in on_val.result.run["config"]  # tuning on val is fine
    assert "prompts_tuned_on_test" not in test_run.run["config"]
    rescore(guarded, tiny_encoder, "siteA", lab, split="test", bootstrap=FAST, development=True)  # peeking
    again = zeroshot_eval(guarded, tiny_encoder, "siteA", lab, ZeroShotConfig(bootstrap=FAST))
    assert again.run["config"]["prompts_tuned_on_test"] is True
    assert "prompts tuned on test" in again.run["config"]["note"]
    untouched = zeroshot_eval(guarded, tiny_encoder, "siteA", other, ZeroShotConfig(bootstrap=FAST))
    elsewhere = zeroshot_eval(guarded, tiny_encoder, "siteB", lab, ZeroShotConfig(bootstrap=FAST))
    val_only = zeroshot_eval(guarded, tiny_encoder, "siteA", lab, ZeroShotConfig(split="val", bootstrap=FAST))
    for run in (untouched, elsewhere, val_only):
        assert "prompts_tuned_on_test" not in run.run["config"]


def test_a_sound_run_refuses_leaking_splits_unless_allowed(guarded, tiny_encoder):
    frame = cases_frame(guarded, "siteA")
    first = frame["case_id"].iat[0]  # patient siteA-p0's first film moves to test: the patient now leaks
    set_splits(guarded, "siteA", {first: "test" if frame["split"].iat[0] != "test" else "train"})
    pset = load_prompt_set("pneumonia")
    with pytest.raises(PedclipError, match=r"leaks across splits: 1 shared patient.*--allow-leakage"):
        zeroshot_eval(guarded, tiny_encoder, "siteA", pset, ZeroShotConfig(bootstrap=FAST))
    with pytest.raises(PedclipError, match="leaks across splits"):
        rescore(guarded, tiny_encoder, "siteA", pset, bootstrap=FAST)
    allowed = zeroshot_eval(
        guarded, tiny_encoder, "siteA", pset, ZeroShotConfig(bootstrap=FAST, allow_leakage=True)
    )
    assert allowed.run["config"]["leakage_allowed"]["shared_patients"] == 1
    paper = ZeroShotConfig(
        protocol="paper", bootstrap=FAST
    )  # the study's pooled protocol has no splits to leak
    assert (
        zeroshot_eval(guarded, tiny_encoder, "siteA", load_prompt_set("study-clip"), paper).run["split"]
        == "all"
    )


def test_zero_shot_on_another_site_takes_the_source_sites_validation_threshold(guarded, tiny_encoder):
    from pedclip.embed.text import embed_texts

    pset = load_prompt_set("pneumonia")
    strict = zeroshot_eval(
        guarded, tiny_encoder, "siteB", pset, ZeroShotConfig(bootstrap=FAST, threshold_dataset="siteA")
    )
    own = zeroshot_eval(guarded, tiny_encoder, "siteB", pset, ZeroShotConfig(bootstrap=FAST))
    vectors = prompt_vectors(pset, lambda texts: embed_texts(guarded, tiny_encoder, texts))
    clf = classifier_for(vectors, SOUND, float(tiny_encoder.logit_scale))
    from pedclip.eval.evaluation import labelled_vectors

    val, Xv = labelled_vectors(guarded, tiny_encoder.fingerprint, "test", "siteA", ("val",))
    expected = choose_threshold("youden", val["label"].to_numpy(), clf.positive_score(Xv), 0.5)
    assert strict.threshold.value == pytest.approx(expected.value)
    assert (
        strict.threshold.rule.startswith("youden on val of siteA")
        and strict.run["config"]["threshold_dataset"] == "siteA"
    )
    assert own.run["config"]["threshold_dataset"] == "siteB" and own.threshold.value != pytest.approx(
        expected.value
    )
    np.testing.assert_array_equal(
        strict.predictions["score"], own.predictions["score"]
    )  # same scores, other cut
