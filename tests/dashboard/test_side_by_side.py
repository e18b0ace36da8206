"""Models side by side under AppTest on the fixture store: the numbers are `pedclip compare`'s own."""

from __future__ import annotations

from dashboard_store import open_page

from pedclip.dashboard.views.side_by_side import RESAMPLES
from pedclip.eval.bootstrap import BootstrapConfig
from pedclip.eval.paired_runs import paired_runs
from pedclip.store import Store


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_side_by_side_shows_the_paired_comparison_and_its_quadrants(app, fixture_store):
    at = open_page(app, "side_by_side")
    at.selectbox(key="sbs_a").set_value("zeroshot-tiny").run()
    run_b = at.selectbox(key="sbs_b")
    assert run_b.value == "probe-tiny" and len(run_b.options) == 1  # the only other run on tiny/test
    assert not at.exception and not at.error, [e.value for e in at.error]
    expected = paired_runs(
        Store.open(fixture_store.home), "zeroshot-tiny", "probe-tiny", BootstrapConfig(RESAMPLES, seed=0)
    )
    doc = expected.as_dict()
    assert metric(at, "ΔAUROC (A − B)") == f"{doc['delta_auroc']:+.3f}"
    assert metric(at, "AUROC A") == f"{doc['auroc_a']:.3f}"
    assert metric(at, "AUROC B") == f"{doc['auroc_b']:.3f}"
    assert int(metric(at, "Cases compared")) == doc["n"] == len(expected.aligned.frame) > 0
    lo, hi = doc["ci"]
    assert any(f"paired 95% CI [{lo:+.3f}, {hi:+.3f}]" in c.value for c in at.caption)
    assert any(f"{RESAMPLES} paired bootstrap resamples" in c.value for c in at.caption)
    counts = {t.label.rsplit(" (", 1)[0]: int(t.label.rsplit("(", 1)[1].rstrip(")")) for t in at.tabs}
    assert list(counts) == ["Both right", "Only A right", "Only B right", "Both wrong"]
    assert sum(counts.values()) == doc["n"]
    assert counts["Only A right"] + counts["Only B right"] == doc["n_flipped"]
    assert counts["Only A right"] == doc["n_a_right"]
    assert len(at.get("plotly_chart")) == 1
    table = at.dataframe[1].value  # "Only A right": the cases where B erred, B's surest error first
    assert len(table) == counts["Only A right"] and set(table["class"]) <= {"normal", "pneumonia"}
    margins = (table["score_b"] - 0.5).abs()
    assert margins.is_monotonic_decreasing


def test_side_by_side_swaps_and_says_when_no_run_shares_the_films(app):
    at = open_page(app, "side_by_side")
    at.selectbox(key="sbs_a").set_value("probe-tiny").run()
    assert at.selectbox(key="sbs_b").value == "zeroshot-tiny"
    first = metric(at, "ΔAUROC (A − B)")
    at.selectbox(key="sbs_a").set_value("zeroshot-tiny").run()
    assert metric(at, "ΔAUROC (A − B)") == f"{-float(first):+.3f}"  # A - B the other way round
    at.selectbox(key="sbs_a").set_value("zeroshot-tiny-b").run()
    assert not at.exception
    assert any("No other run scored the films of zeroshot-tiny-b" in i.value for i in at.info)
    assert not at.metric


def test_side_by_side_without_runs_says_what_to_run(home, monkeypatch):
    from dashboard_store import APP, build_cases_only
    from streamlit.testing.v1 import AppTest

    build_cases_only(home)
    monkeypatch.setenv("PEDCLIP_HOME", str(home))
    at = open_page(AppTest.from_file(str(APP), default_timeout=30), "side_by_side")
    assert not at.error and any("pedclip zeroshot" in i.value for i in at.info)
