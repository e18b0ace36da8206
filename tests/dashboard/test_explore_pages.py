"""The explorers (AppTest): the prompt lab's leave-one-out effects, history, restore and named sets; the map
kept in the store, its group selection and a second model beside it."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from dashboard_store import open_page

from pedclip.eval.prompts import load_prompt_set
from pedclip.eval.rescore import rescore
from pedclip.store import Store
from pedclip.store.prompt_trials import trials_frame


@pytest.fixture
def own_home(fixture_store, tmp_path, monkeypatch):
    """A copy of the fixture store (these tests write trials, maps and prompt sets)."""
    home = tmp_path / "copy"
    shutil.copytree(fixture_store.home, home)
    monkeypatch.setenv("PEDCLIP_HOME", str(home))
    return home


def lab_texts(at) -> dict[str, str]:
    return {a.label: a.value for a in at.text_area}


def test_prompt_lab_shows_each_prompts_effect_on_validation(app, own_home, fixture_store, tiny_encoder):
    at = open_page(app, "prompt_lab")
    assert any("What each prompt does" in h.value for h in at.subheader)
    effects = next(d.value for d in at.dataframe if "AUROC without" in d.value.columns)
    prompts = load_prompt_set("pneumonia")
    assert len(effects) == len(prompts.texts)
    classes = {k: list(v) for k, v in prompts.classes.items()}
    val = rescore(Store.open(own_home), tiny_encoder, "tiny", classes, "val", allow_leakage=True)
    full = val.metrics["auroc"].value
    assert any(f"is {full:.3f} with every prompt" in c.value for c in at.caption)
    assert len(at.get("plotly_chart")) == 2  # the ROC and the prompts' own map


def test_prompt_lab_history_restores_an_earlier_set_and_saves_it_by_name(app, own_home, fixture_store):
    at = open_page(app, "prompt_lab")
    first = lab_texts(at)
    pneumonia_area = next(a for a in at.text_area if "pneumonia" in a.label)
    pneumonia_area.set_value("lobar consolidation\nair bronchograms")
    next(b for b in at.button if b.label == "Rescore").click().run()
    assert not at.exception
    trials = trials_frame(Store.open(own_home), fixture_store.fingerprint, "tiny")
    assert len(trials) == 2 and trials["prompts"].iat[0]["classes"]["pneumonia"] == [
        "lobar consolidation",
        "air bronchograms",
    ]
    picker = at.selectbox(key="pl_restore_pick")
    picker.set_value(1).run()  # the older trial: the shipped set as it opened
    at.button(key="pl_restore").click().run()
    assert not at.exception
    assert lab_texts(at) == first
    at.text_input(key="pl_save_name").set_value("restored set")  # a form: sent with its submit button
    next(b for b in at.button if b.label == "Save as a named set").click().run()
    assert not at.exception and any("restored set" in s.value for s in at.success)
    saved = load_prompt_set("restored set", own_home)
    assert {k: "\n".join(v) for k, v in saved.classes.items()} == {
        label.split("“")[1].split("”")[0]: text for label, text in first.items()
    }
    assert "restored set" in at.run().selectbox(key="pl_set").options  # the set picker offers it now


def test_map_is_kept_in_the_store_and_a_second_model_sits_beside_it(app, own_home, fixture_store):
    at = open_page(app, "embedding_map")
    assert any("computed in" in c.value and "kept in the store" in c.value for c in at.caption)
    with Store.open(own_home).read() as con:
        kept = con.execute(
            "SELECT count(*) FROM projections WHERE fingerprint = ?", [fixture_store.fingerprint]
        )
        assert kept.fetchone()[0] == 40
    at.toggle(key="map_pair").set_value(True).run()
    assert not at.exception and len(at.get("plotly_chart")) == 2


def test_a_box_or_lasso_selection_is_every_picked_film_once():
    from pedclip.dashboard.ui import selected_cases

    cases = pd.DataFrame({"dataset": ["t"] * 4, "case_id": list("abcd"), "label": [0, 1, 1, 0]})
    points = [{"customdata": ["t", c]} for c in ("c", "a", "c", "z")]  # z is not on this map
    chosen = selected_cases({"selection": {"points": points}}, cases)
    assert chosen["case_id"].tolist() == ["c", "a"] and chosen["label"].tolist() == [1, 0]
