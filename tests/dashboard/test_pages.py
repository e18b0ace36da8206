"""Every page under streamlit's AppTest on the fixture store: no exception, the right widgets and numbers."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from dashboard_store import draw, open_page

from pedclip.dashboard import access
from pedclip.eval.rescore import rescore
from pedclip.store import Store
from pedclip.store.embeddings import case_vectors, text_vectors
from pedclip.store.runs import get_run, predictions_frame, runs_frame


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_empty_store_says_to_run_the_demo(home, monkeypatch):
    from dashboard_store import APP
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("PEDCLIP_HOME", str(home))
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    assert not at.exception
    assert any("pedclip demo" in m.value for m in at.markdown)
    assert not (home / "pedclip.duckdb").exists()  # the dashboard never creates a store


def test_a_store_with_cases_but_no_embeddings_or_runs_renders_every_page(home, monkeypatch):
    from dashboard_store import APP, build_cases_only
    from streamlit.testing.v1 import AppTest

    build_cases_only(home)
    monkeypatch.setenv("PEDCLIP_HOME", str(home))
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    for page in ("runs", "metrics", "errors", "neighbors", "prompt_lab", "embedding_map", "data"):
        at.switch_page(f"views/{page}.py").run()
        assert not at.exception, (page, [e.message for e in at.exception])
        assert not at.error, (page, [e.value for e in at.error])
    assert any("pedclip embed" in i.value for i in at.switch_page("views/neighbors.py").run().info)


def test_runs_page_lists_runs_with_cis_and_the_paper_tables(app, fixture_store):
    at = open_page(app, "runs")
    table = at.dataframe[0].value
    assert set(table["run"]) == set(fixture_store.runs)
    auroc = get_run(Store.open(fixture_store.home), "probe-tiny")["metrics"]["auroc"]
    row = table.set_index("run").loc["probe-tiny"]
    assert row["AUROC"] == f"{auroc['value']:.3f} [{auroc['lo']:.3f}, {auroc['hi']:.3f}]"
    paper = at.dataframe[1].value  # the paper table as written: blank cells blank, not "None" or NaN
    assert list(paper["AUC"]) == ["0.4645", "0.51"] and list(paper["AUC 95% CI"]) == ["", "0.402-0.618"]
    assert list(paper["n"]) == ["", "21"]
    at.multiselect(key="runs_kind").set_value(["probe"]).run()
    assert list(at.dataframe[0].value["run"]) == ["probe-tiny"]
    assert any("1 of 3 runs" in c.value for c in at.caption)


def test_runs_table_shows_key_columns_and_the_rest_on_demand(app):
    at = open_page(app, "runs")
    assert list(at.dataframe[0].value.columns) == ["run", "kind", "model", "dataset", "protocol", "split", "n",
                                                   "AUROC", "sensitivity", "specificity", "created"]  # fmt: skip
    at.multiselect(key="runs_more").set_value(["accuracy", "train dataset"]).run()
    assert list(at.dataframe[0].value.columns)[-2:] == ["train dataset", "accuracy"]
    at.switch_page("views/metrics.py").run()
    at.switch_page("views/runs.py").run()  # the picked columns stay picked
    assert "accuracy" in at.dataframe[0].value.columns


@pytest.fixture
def finetuned(fixture_store, tmp_path, monkeypatch):
    """A copy of the fixture store with a fine-tuned child model and a newer, uninformative paper run."""
    import shutil

    from dashboard_store import add_finetuned_model

    home = tmp_path / "ft"
    shutil.copytree(fixture_store.home, home)
    monkeypatch.setenv("PEDCLIP_HOME", str(home))
    return add_finetuned_model(home, fixture_store)


FT_LABEL = "openclip:pedclip-tiny · fine-tuned on tiny · sound · finetune-…-abc123"


def test_model_pickers_show_what_a_checkpoint_is_and_keep_its_spec(app, finetuned):
    for page, key in (("neighbors", "nb_model"), ("prompt_lab", "pl_model"), ("embedding_map", "map_model")):
        at = open_page(app, page)
        picker = at.selectbox(key=key)
        assert FT_LABEL in picker.options and "openclip:pedclip-tiny" in picker.options, picker.options
        assert not any(o.startswith("local:") for o in picker.options)
        picker.set_value(finetuned).run()
        assert not at.exception
        assert at.selectbox(key=key).value == finetuned  # the value is still the spec
    at = open_page(app, "runs")
    table = at.dataframe[0].value.set_index("run")
    assert (
        table.loc["finetune-…-abc123", "model"] == "openclip:pedclip-tiny"
    )  # the finetune run names its parent
    assert table.loc["zeroshot-tiny", "model"] == "openclip:pedclip-tiny"


def test_undefined_metrics_say_na_and_why(app, finetuned):
    at = open_page(app, "runs")
    at.multiselect(key="runs_more").set_value(["run id", "precision"]).run()
    row = at.dataframe[0].value.set_index("run id").loc["zeroshot-20991231-000000-ffffff"]
    assert row["precision"] == "n/a (no case predicted positive)"
    assert row["run"] == "zeroshot-…-ffffff" and row["sensitivity"] == "0.000"
    at.switch_page("views/metrics.py").run()
    at.slider(key="metrics_threshold").set_value(1.0).run()  # nothing scores >= 1: nothing predicted positive
    assert metric(at, "Precision") == "n/a"
    assert any("undefined: no case predicted positive" in c.value for c in at.caption)
    shown = [m.value for m in at.metric] + [c.value for c in at.caption]
    assert not any("nan" in str(v) for v in shown), shown


def test_metrics_and_errors_open_on_an_informative_run_and_keep_the_choice(app, finetuned):
    # newest first: the all-negative paper run, then the finetune run, then the fixture's probe, ...
    at = open_page(app, "metrics")
    assert at.multiselect(key="metrics_runs").value == ["finetune-20260101-120000-abc123"]
    at.switch_page("views/errors.py").run()
    assert at.selectbox(key="errors_run").value == "finetune-20260101-120000-abc123"
    at.selectbox(key="errors_run").set_value("zeroshot-tiny").run()
    at.switch_page("views/runs.py").run()
    at.switch_page("views/errors.py").run()
    assert at.selectbox(key="errors_run").value == "zeroshot-tiny"


def test_metrics_default_skips_a_newer_probe(app):
    at = open_page(app, "metrics")  # probe-tiny is the newest run of the fixture store
    assert at.multiselect(key="metrics_runs").value == ["zeroshot-tiny-b"]


def test_metrics_page_threshold_updates_sensitivity_and_specificity(app, fixture_store):
    at = open_page(app, "metrics")
    at.multiselect(key="metrics_runs").set_value(["zeroshot-tiny"]).run()
    predictions = predictions_frame(Store.open(fixture_store.home), "zeroshot-tiny")
    y, s = predictions["label"].to_numpy(), predictions["score"].to_numpy()
    for threshold in (0.5, 0.7):
        at.slider(key="metrics_threshold").set_value(threshold).run()
        assert not at.exception
        sens = np.mean(s[y == 1] >= threshold)
        spec = np.mean(s[y == 0] < threshold)
        assert metric(at, "Sensitivity") == f"{sens:.3f}"
        assert metric(at, "Specificity") == f"{spec:.3f}"
    slices = at.dataframe[0].value  # by split: every test case in one row
    assert slices["n"].sum() == len(predictions)
    at.selectbox(key="metrics_slice").set_value("attr:pathogen").run()
    assert set(at.dataframe[0].value["attr:pathogen"]) == {"none", "bacterial", "viral"}
    assert len(at.get("plotly_chart")) >= 4  # ROC, PR, calibration, confusion


def test_errors_page_galleries_are_most_confident_first_and_link_to_neighbors(app, fixture_store):
    at = open_page(app, "errors")
    at.selectbox(key="errors_run").set_value("zeroshot-tiny").run()
    predictions = predictions_frame(Store.open(fixture_store.home), "zeroshot-tiny")
    fp = predictions[(predictions["score"] >= 0.5) & (predictions["label"] == 0)].sort_values(
        "score", ascending=False
    )
    fn = predictions[(predictions["score"] < 0.5) & (predictions["label"] == 1)]
    headers = [h.value for h in at.subheader]
    assert headers[0].startswith(f"False positives ({len(fp)})") and headers[1].startswith(
        f"False negatives ({len(fn)})"
    )
    assert len(fp) > 0
    first_caption = next(c.value for c in at.caption if c.value.startswith(fp["case_id"].iat[0]))
    assert f"score {fp['score'].iat[0]:.3f}" in first_caption
    at.button(key=f"fp_tiny_{fp['case_id'].iat[0]}").click().run()
    assert not at.exception
    assert at.title[0].value == "Neighbors"
    assert at.selectbox(key="nb_case_tiny").value == fp["case_id"].iat[0]


def test_neighbors_page_matches_brute_force_and_shows_every_runs_prediction(app, fixture_store):
    at = open_page(app, "neighbors")
    query = "tiny-005.png"
    at.selectbox(key="nb_case_tiny").set_value(query).run()
    at.slider(key="nb_k").set_value(5).run()
    frame, vectors = case_vectors(Store.open(fixture_store.home), fixture_store.fingerprint, "tiny")
    sims = vectors @ vectors[frame["case_id"].tolist().index(query)]
    ranked = np.argsort(-sims, kind="stable")
    order = [c for c in frame["case_id"].to_numpy()[ranked] if c != query][:5]
    table = at.dataframe[0].value
    assert list(table["case_id"]) == order
    assert list(table["rank"]) == [1, 2, 3, 4, 5]  # as the gallery numbers them
    nearest = 1 - sims[ranked[1]]
    assert any(
        c.value.startswith(f"#1 · {order[0]}") and f"distance {nearest:.4f}" in c.value for c in at.caption
    )
    assert {"zeroshot-tiny", "probe-tiny"} & set(table.columns)  # each run's score beside each neighbor
    assert len(at.get("image")) == 1 + 5  # the query and its neighbors


def test_neighbors_of_an_uploaded_image_use_the_models_encoder(app, fixture_store, tiny_encoder):
    at = open_page(app, "neighbors")
    at.radio(key="nb_source").set_value("An uploaded image").run()
    buffer = io.BytesIO()
    draw(1, seed=999).save(buffer, format="PNG")
    at.file_uploader(key="nb_upload").upload("query.png", buffer.getvalue(), "image/png")
    at.slider(key="nb_k").set_value(4).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    query = access.encode_image(tiny_encoder, access.decode_upload(buffer.getvalue(), "query.png"))[0]
    frame, vectors = case_vectors(Store.open(fixture_store.home), fixture_store.fingerprint, "tiny")
    expected = frame["case_id"].to_numpy()[np.argsort(-(vectors @ query), kind="stable")][:4]
    assert list(at.dataframe[0].value["case_id"]) == list(expected)


def test_an_oversized_upload_is_refused_with_one_line(app):
    at = open_page(app, "neighbors")
    at.radio(key="nb_source").set_value("An uploaded image").run()
    at.file_uploader(key="nb_upload").upload("big.png", b"\0" * (11 * 2**20), "image/png").run()
    assert not at.exception
    assert any("up to 10 MB" in e.value for e in at.error)


def test_an_upload_that_is_not_an_image_is_refused_with_one_line(app):
    at = open_page(app, "neighbors")
    at.radio(key="nb_source").set_value("An uploaded image").run()
    at.file_uploader(key="nb_upload").upload("fake.png", b"not a png at all", "image/png").run()
    assert not at.exception
    assert len(at.error) == 1 and "fake.png" in at.error[0].value


def test_prompt_lab_rescores_with_the_same_function_as_the_cli(
    app, fixture_store, tiny_encoder, tmp_path, monkeypatch
):
    import shutil

    home = tmp_path / "copy"  # scoring on test below records the prompts as developed there
    shutil.copytree(fixture_store.home, home)
    monkeypatch.setenv("PEDCLIP_HOME", str(home))
    store = Store.open(home)
    start = access.prompt_sets()["study-clip"]
    at = open_page(app, "prompt_lab")
    at.selectbox(key="pl_set").set_value("study-clip").run()
    # validation by default (no baseline of that split, so none is picked); a leaking dataset gets a warning
    assert at.selectbox(key="pl_split").value == "val"
    assert not at.error and any("splits leak" in w.value for w in at.warning)
    on_val = rescore(store, tiny_encoder, "tiny", start, split="val", allow_leakage=True)
    assert metric(at, "AUROC") == f"{on_val.metrics['auroc'].value:.3f}"
    at.selectbox(key="pl_split").set_value("test").run()
    assert any("prompts tuned on test" in w.value for w in at.warning)
    same = {"split": "test", "allow_leakage": True}
    expected = rescore(store, tiny_encoder, "tiny", start, **same).metrics["auroc"].value
    assert metric(at, "AUROC") == f"{expected:.3f}"
    edited = {"normal": ["an empty room"], "pneumonia": ["a cat sitting on a red sofa"]}
    for name, texts in edited.items():
        at.text_area(key=f"pl_text_study-clip_{name}").set_value("\n".join(texts))
    at.button[0].click().run()  # the form's Rescore button
    assert not at.exception
    changed = rescore(store, tiny_encoder, "tiny", edited, **same)
    assert changed.metrics["auroc"].value != pytest.approx(expected)
    assert metric(at, "AUROC") == f"{changed.metrics['auroc'].value:.3f}"
    assert any("flipped cases" in m.value for m in at.markdown)
    # scored on test in the lab, so a later test run of these prompts says so
    assert changed.result.run["config"].get("prompts_tuned_on_test") is True


def test_prompt_lab_with_a_model_not_on_this_machine_says_so_in_one_line(app):
    at = open_page(app, "prompt_lab")
    at.selectbox(key="pl_model").set_value(
        next(o for o in at.selectbox(key="pl_model").options if "not-on" in o)
    )
    at.run()
    assert not at.exception
    assert len(at.error) == 1 and "not-on-this-machine" in at.error[0].value


def test_prompt_lab_saves_a_run(app, fixture_store, tmp_path, monkeypatch):
    import shutil

    home = tmp_path / "copy"
    shutil.copytree(fixture_store.home, home)
    monkeypatch.setenv("PEDCLIP_HOME", str(home))
    at = open_page(app, "prompt_lab")
    at.text_input(key="pl_save_name").set_value("lab test")
    next(b for b in at.button if b.label == "Save as a run").click().run()
    assert not at.exception
    saved = runs_frame(Store.open(home), kinds=["rescore"])
    assert len(saved) == 1 and "lab test" in saved["config"].iat[0]
    classes = json.loads(saved["config"].iat[0])["prompts"]["classes"]
    texts = [t for prompts in classes.values() for t in prompts]
    stored = text_vectors(Store.open(home), fixture_store.fingerprint, texts)
    assert texts and set(stored) == set(texts)  # Save keeps the prompts' vectors too
    assert any(saved["run_id"].iat[0] in s.value for s in at.success)


def test_embedding_map_colours_and_selects(app, fixture_store):
    from pedclip.dashboard.views.embedding_map import selected_case

    at = open_page(app, "embedding_map")
    assert len(at.get("plotly_chart")) == 1
    for colour in ("label", "split", "attr:site", "correctness", "prediction"):
        at.selectbox(key="map_colour").set_value(colour).run()
        assert not at.exception, colour
    at.multiselect(key="map_datasets").set_value(["tiny", "tiny-b"]).run()
    assert any("52 cases" in c.value for c in at.caption)
    cases = pd.DataFrame({"dataset": ["tiny"], "case_id": ["tiny-001.png"]})
    event = {"selection": {"points": [{"customdata": ["tiny", "tiny-001.png"]}]}}
    assert selected_case(event, cases)["case_id"] == "tiny-001.png"
    assert selected_case({"selection": {"points": []}}, cases) is None


def test_data_page_shows_splits_leaks_duplicates_and_ingest_errors(app, fixture_store):
    at = open_page(app, "data")
    assert set(at.dataframe[0].value["name"]) == {"tiny", "tiny-b"}
    splits = at.dataframe[1].value.set_index("split")
    assert splits.loc["total", "total"] == 40 and splits.loc["test", "total"] == 17
    assert any("1 patient has" in e.value for e in at.error)
    assert at.dataframe[2].value["patient_id"].tolist() == [fixture_store.leaking_patient]
    # tiny-b holds a copy of one tiny image: information about the two datasets, not a leak of either
    assert not at.warning, [w.value for w in at.warning]
    assert any("No image appears in more than one split" in s.value for s in at.success)
    assert any(i.value.startswith("Shares 1 image with tiny-b") for i in at.info)
    assert "truncated file" in at.dataframe[-1].value["reason"].tolist()


def test_neighbor_buttons_recentre_the_page_and_follow_the_dataset(app, fixture_store):
    at = open_page(app, "neighbors")
    at.selectbox(key="nb_case_tiny").set_value("tiny-005.png").run()
    nearest = at.dataframe[0].value["case_id"].iat[0]
    at.button(key=f"nb_tiny_{nearest}").click().run()  # the gallery's own button: its widgets are on screen
    assert at.selectbox(key="nb_case_tiny").value == nearest
    at.switch_page("views/errors.py").run()
    at.selectbox(key="errors_run").set_value("zeroshot-tiny-b").run()
    case = next(b.key for b in at.button if (b.key or "").startswith(("fp_tiny-b_", "fn_tiny-b_")))
    at.button(key=case).click().run()
    assert at.selectbox(key="nb_dataset").value == "tiny-b"
    assert at.selectbox(key="nb_case_tiny-b").value == case.split("_", 2)[2]
