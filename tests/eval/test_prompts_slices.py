"""Prompt sets as data, and metrics by case attribute."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pedclip.errors import PedclipError
from pedclip.eval.bootstrap import BootstrapConfig
from pedclip.eval.metrics import auroc
from pedclip.eval.prompts import builtin_names, inline_prompt_set, load_prompt_set, resolve_prompt_set
from pedclip.eval.slices import age_band, metrics_by


def test_shipped_sets_load_and_medclip_generators_match_their_sizes():
    assert {"study-clip", "medclip-covid", "medclip-rsna", "pneumonia", "report"} <= set(builtin_names())
    clip = load_prompt_set("study-clip")
    assert clip.classes == {
        "normal": ("a photo of normal lungs.",),
        "pneumonia": ("a photo of covid lungs.",),
    }
    covid = load_prompt_set("medclip-covid")
    assert covid.texts[0] == "patchy ground glass opacity in peripheral" and len(covid.texts) == 12
    assert "confluent ground glass consolidation in mid" in covid.texts
    rsna = load_prompt_set("medclip-rsna")
    assert len(rsna.texts) == 6 * 4 * 13 and "round bacterial at the mid lung zone" in rsna.texts
    assert "  " in rsna.texts  # MedCLIP's empty words kept verbatim: two spaces between three empties
    report = load_prompt_set("report")
    assert "No focal consolidation." in report.classes["normal"]
    assert "Patchy consolidation in the right lower lobe." in report.classes["pneumonia"]


def test_sampling_is_seeded():
    covid = load_prompt_set("medclip-covid")
    assert covid.sample(5).texts == covid.sample(5).texts
    assert covid.sample(5, seed=1).texts != covid.sample(5, seed=2).texts
    assert len(covid.sample(5).texts) == 5 and covid.sample(None) is covid


def test_user_file_and_inline(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('mode = "softmax"\n[classes.normal]\nprompts = ["ok"]\n[classes.pneumonia]\n'
                    'templates = ["{} here", "see {}"]\nwords = ["opacity"]\n')  # fmt: skip
    mine = load_prompt_set(str(path))
    assert mine.name == "mine" and mine.classes["pneumonia"] == ("opacity here", "see opacity")
    inline = inline_prompt_set(["normal=clear", "pneumonia=consolidation", "pneumonia=opacity"])
    assert inline.mode == "softmax" and inline.classes["pneumonia"] == ("consolidation", "opacity")
    assert resolve_prompt_set(None, ["pneumonia=x"]).mode == "sigmoid"
    assert resolve_prompt_set().name == "pneumonia"


@pytest.mark.parametrize(
    ("pairs", "match"),
    [(["normal clear"], "class=text"), (["normal=a", "covid=b"], "no class 'pneumonia'"),
     (["a=1", "b=2", "pneumonia=3"], "3 classes")],
)  # fmt: skip
def test_bad_prompts_are_user_errors(pairs, match):
    with pytest.raises(PedclipError, match=match):
        inline_prompt_set(pairs)


def test_unknown_set_and_bad_toml(tmp_path):
    with pytest.raises(PedclipError, match="known sets"):
        load_prompt_set("nope")
    bad = tmp_path / "bad.toml"
    bad.write_text("mode = [")
    with pytest.raises(PedclipError, match="not valid TOML"):
        load_prompt_set(str(bad))


def test_metrics_by_attribute_and_age_band():
    rng = np.random.default_rng(0)
    n = 90
    frame = pd.DataFrame({
        "label": np.tile([0, 1, 1], 30), "score": rng.random(n), "split": ["test"] * n,
        "patient_id": [f"p{i}" for i in range(n)],
        "attributes": [f'{{"site": "{"AB"[i % 2]}", "age": {i % 12}}}' for i in range(n)],
    })  # fmt: skip
    frame["predicted"] = (frame["score"] > 0.5).astype(int)
    by_site = metrics_by(frame, "site", BootstrapConfig(n_resamples=20))
    assert list(by_site["group"]) == ["A", "B"] and by_site["n"].sum() == n
    part = frame[[i % 2 == 1 for i in range(n)]]
    assert by_site.loc[1, "auroc"] == pytest.approx(auroc(part["label"], part["score"]).value)
    assert set(metrics_by(frame, "age_band", BootstrapConfig(n_resamples=0))["group"]) == {
        "<1",
        "1-4",
        "5-9",
        "10-18",
    }
    assert age_band(None) == "(missing)" and age_band(12) == "10-18"
    with pytest.raises(PedclipError, match="known: age, age_band"):
        metrics_by(frame, "pathogen")


def test_pathogen_slices_are_each_pathogen_against_the_normals_of_its_site():
    import json

    from sklearn.metrics import roc_auc_score

    from pedclip.eval.slices import metrics_by, pathogen_auroc

    rng = np.random.default_rng(5)
    rows = []
    for dataset in ("siteA", "siteB"):
        for i in range(60):
            pathogen = ("normal", "bacteria", "virus")[i % 3]
            label = int(pathogen != "normal")
            score = float(
                np.clip(rng.normal(0.3 + 0.4 * label + (0.1 if pathogen == "bacteria" else 0), 0.2), 0, 1)
            )
            rows.append(
                {
                    "dataset": dataset,
                    "case_id": f"{dataset}/{i}",
                    "label": label,
                    "score": score,
                    "predicted": int(score >= 0.5),
                    "patient_id": f"{dataset}-p{i // 2}",
                    "attributes": json.dumps({"pathogen": pathogen}),
                }
            )
    frame = pd.DataFrame(rows)
    table = pathogen_auroc(frame, BootstrapConfig(n_resamples=30, seed=0))
    assert list(zip(table["dataset"], table["contrast"], strict=True)) == [
        ("siteA", "bacteria vs normal"),
        ("siteA", "virus vs normal"),
        ("siteB", "bacteria vs normal"),
        ("siteB", "virus vs normal"),
    ]
    assert (table["n_normal"] == 20).all() and (table["n_pathogen"] == 20).all()  # two classes in each
    for row in table.itertuples():
        name = row.contrast.split()[0]
        part = frame[
            (frame["dataset"] == row.dataset) & frame["attributes"].str.contains(f'"{name}"|"normal"')
        ]
        assert row.auroc == pytest.approx(roc_auc_score(part["label"], part["score"]))
        assert row.auroc_lo <= row.auroc <= row.auroc_hi
    by_pathogen = metrics_by(frame, "pathogen", BootstrapConfig(n_resamples=0))
    assert by_pathogen["auroc"].isna().all()  # pathogen alone: one class per group, no AUROC
    assert pathogen_auroc(frame.assign(attributes="{}")).empty
