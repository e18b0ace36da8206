"""Find cases and the Case card under AppTest on the fixture store."""

from __future__ import annotations

import pandas as pd
from dashboard_store import open_page

from pedclip.store import Store
from pedclip.store.runs import predictions_frame


def test_find_cases_ranks_films_and_shows_precision(app, fixture_store):
    at = open_page(app, "find_cases")
    assert not at.error, [e.value for e in at.error]
    assert any(m.label.startswith("Precision at 24") for m in at.metric)
    hits = at.dataframe[0].value
    assert len(hits) == 24 and hits["similarity"].is_monotonic_decreasing
    assert hits["rank"].tolist() == list(range(1, 25))
    at.text_input(key="fc_text").set_value("clear lungs").run()
    at.selectbox(key="fc_about").set_value("normal").run()
    assert any(m.label == "Precision at 24 for normal" for m in at.metric)


def test_case_card_from_query_params_shows_verdicts_and_flips(app, fixture_store):
    store = Store.open(fixture_store.home)
    zs, probe = predictions_frame(store, "zeroshot-tiny"), predictions_frame(store, "probe-tiny")
    both = zs.merge(probe, on="case_id", suffixes=("_z", "_p"))
    flipped = both[both["predicted_z"] != both["predicted_p"]]["case_id"].iloc[0]
    app.query_params["dataset"] = "tiny"
    app.query_params["case"] = flipped
    at = open_page(app, "case_card")
    assert not at.error, [e.value for e in at.error]
    assert at.selectbox(key="card_case_tiny").value == flipped
    verdicts, flips = at.dataframe[0].value, at.dataframe[1].value
    assert set(verdicts["run"]) == {"zeroshot-tiny", "probe-tiny"}
    assert len(flips) == 1 and flips["now"].iloc[0] in ("fixed", "broken")
    assert any("Neighbors under each model" in s.value for s in at.subheader)
    assert len(at.get("download_button")) == 4  # CSV and Parquet of both tables


def test_case_card_of_a_case_no_run_scored(app, fixture_store):
    store = Store.open(fixture_store.home)
    scored = set(pd.concat([predictions_frame(store, r) for r in fixture_store.runs])["case_id"])
    with store.read() as con:
        cases = [r[0] for r in con.execute("SELECT case_id FROM cases WHERE dataset = 'tiny'").fetchall()]
    unscored = next(c for c in cases if c not in scored)
    app.query_params["dataset"] = "tiny"
    app.query_params["case"] = unscored
    at = open_page(app, "case_card")
    assert any("Every run predicted the same" in c.value for c in at.caption)
