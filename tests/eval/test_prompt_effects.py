"""Leave-one-out prompt effects against a direct re-scoring, the prompts' map, the lab's history and
prompt sets saved by name."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from pedclip.errors import PedclipError
from pedclip.eval.bootstrap import BootstrapConfig
from pedclip.eval.prompt_effects import leave_one_out, prompt_map
from pedclip.eval.prompts import load_prompt_set, prompt_set_from_dict, save_prompt_set
from pedclip.eval.protocols import SOUND
from pedclip.eval.rescore import rescore
from pedclip.eval.workspace import Workspace
from pedclip.eval.zeroshot import PromptVectors, ZeroShotClassifier
from pedclip.store.prompt_trials import trials_frame
from tests.eval.conftest import add_dataset, unit

FAST = BootstrapConfig(n_resamples=50, seed=1)
PROMPTS = {
    "normal": ["clear lungs", "a normal chest x-ray", "no opacity"],
    "pneumonia": ["lobar pneumonia", "patchy consolidation"],
}


def test_leave_one_out_equals_scoring_each_smaller_set_directly():
    rng = np.random.default_rng(0)
    pset = prompt_set_from_dict(
        {
            "normal": ["a", "b", "c"],
            "pneumonia": ["d", "e"],
        }
    )
    vectors = PromptVectors(unit(rng.normal(size=(5, 8))).astype(np.float32), np.array([0, 0, 0, 1, 1]), pset)
    X = unit(rng.normal(size=(60, 8)))
    y = (X @ (vectors.vectors[3] - vectors.vectors[0]) > 0).astype(int)
    full, effects = leave_one_out(vectors, X, y, SOUND, 100.0)

    def direct(rows):  # a classifier fitted on the kept prompts only, AUROC by scikit-learn
        clf = ZeroShotClassifier("softmax", "mean", 100.0).fit(vectors.vectors[rows], vectors.labels[rows])
        return roc_auc_score(y, clf.positive_score(X))

    assert full == pytest.approx(direct([0, 1, 2, 3, 4]))
    for i, row in effects.iterrows():
        kept = [j for j in range(5) if j != i]
        assert row["prompt"] == "abcde"[i]
        assert row["auroc_without"] == pytest.approx(direct(kept))
        assert row["effect"] == pytest.approx(full - direct(kept))


def test_the_only_prompt_of_a_class_has_no_effect_to_measure():
    pset = prompt_set_from_dict({"normal": ["a"], "pneumonia": ["d", "e"]})
    vectors = PromptVectors(unit(np.eye(3, dtype=np.float32)), np.array([0, 1, 1]), pset)
    X, y = unit(np.random.default_rng(1).normal(size=(20, 3))), np.arange(20) % 2
    _, effects = leave_one_out(vectors, X, y, SOUND, 100.0)
    only = effects.set_index("prompt").loc["a"]
    assert only["note"] == "the only prompt of its class" and np.isnan(only["effect"])


def test_prompt_map_places_each_centroid_at_the_mean_of_its_prompts():
    pset = prompt_set_from_dict({"normal": ["a", "b"], "pneumonia": ["c", "d", "e"]})
    vectors = PromptVectors(
        unit(np.random.default_rng(2).normal(size=(5, 6))), np.array([0, 0, 1, 1, 1]), pset
    )
    points = prompt_map(vectors)
    assert points["kind"].tolist() == ["prompt"] * 5 + ["centroid"] * 2
    for name in ("normal", "pneumonia"):  # PCA is linear: the centroid's point is its prompts' mean point
        mine = points[(points["class"] == name) & (points["kind"] == "prompt")][["x", "y"]].mean().to_numpy()
        centroid = points[points["text"] == f"centroid of {name}"][["x", "y"]].to_numpy()[0]
        np.testing.assert_allclose(centroid, mine, atol=1e-9)


@pytest.fixture
def lab(store, tiny_encoder, pneumonia_direction):
    add_dataset(store, "siteA", tiny_encoder.fingerprint, pneumonia_direction, n=120, seed=3)
    return store


def test_workspace_effects_score_the_validation_split(lab, tiny_encoder):
    effects = Workspace(lab).prompt_effects(tiny_encoder, "siteA", prompt_set_from_dict(PROMPTS))
    val = rescore(lab, tiny_encoder, "siteA", PROMPTS, "val", bootstrap=FAST)
    assert effects.split == "val" and effects.n_cases == len(val.result.predictions)
    assert effects.auroc == pytest.approx(val.metrics["auroc"].value)
    assert len(effects.effects) == 5 and effects.effects["effect"].notna().all()


def test_the_lab_history_counts_repeats_and_only_records_when_asked(lab, tiny_encoder):
    fp = tiny_encoder.fingerprint
    rescore(lab, tiny_encoder, "siteA", PROMPTS, "val", bootstrap=FAST)  # `pedclip rescore`: no history
    assert trials_frame(lab, fp, "siteA").empty
    first = rescore(lab, tiny_encoder, "siteA", PROMPTS, "val", bootstrap=FAST, history=True)
    rescore(lab, tiny_encoder, "siteA", PROMPTS, "val", bootstrap=FAST, history=True)
    other = {**PROMPTS, "pneumonia": ["lobar pneumonia"]}
    rescore(lab, tiny_encoder, "siteA", other, "val", bootstrap=FAST, history=True)
    trials = trials_frame(lab, fp, "siteA")
    assert len(trials) == 2
    newest, oldest = trials.iloc[0], trials.iloc[1]
    assert newest["prompts"]["classes"] == other and newest["tries"] == 1
    assert oldest["prompts"]["classes"] == PROMPTS and oldest["tries"] == 2
    assert oldest["auroc"] == pytest.approx(first.metrics["auroc"].value)
    assert oldest["n_cases"] == len(first.result.predictions) and oldest["split"] == "val"


def test_a_saved_set_loads_back_by_name_under_its_home(home):
    odd = {
        "normal": ['clear "lungs"', "poumons clairs — sans opacité"],
        "pneumonia": ["a\\\\b consolidation"],
    }
    path = save_prompt_set(prompt_set_from_dict(odd), "my set-1", home)
    assert path == home / "prompts" / "my set-1.toml"
    loaded = load_prompt_set("my set-1", home)
    assert {k: list(v) for k, v in loaded.classes.items()} == odd
    assert (loaded.name, loaded.mode, loaded.positive) == ("my set-1", "softmax", "pneumonia")
    with pytest.raises(PedclipError, match="unknown prompt set 'my set-1'"):
        load_prompt_set("my set-1", home / "elsewhere")


@pytest.mark.parametrize("name", ["../escape", "", "pneumonia", "a/b"])
def test_unusable_names_are_refused(home, name):
    with pytest.raises(PedclipError, match="is not usable"):
        save_prompt_set(prompt_set_from_dict(PROMPTS), name, home)
