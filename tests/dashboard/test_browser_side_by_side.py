"""Real browser: two runs side by side, a point of the scatter opened, a quadrant's gallery."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from browser_helpers import choose, copy_shots, metric_value, open_page, settle, shoot, start_page, wait_count

pytestmark = [pytest.mark.browser, pytest.mark.slow]
VISIBLE_IMAGES = '[role="tabpanel"]:not([hidden]) [data-testid="stImage"] img'


def test_two_runs_side_by_side_in_a_real_browser(server, browser, tmp_path):
    shots = tmp_path / "shots"
    shots.mkdir()
    page = start_page(browser, server)
    open_page(page, "Models side by side")
    choose(page, "Run A", "probe-tiny")
    choose(page, "Run B", "zeroshot-tiny")  # the only other run on tiny/test
    page.get_by_text("ΔAUROC (A − B)").first.wait_for(timeout=60_000)
    wait_count(page, '[data-testid="stPlotlyChart"] .main-svg', 1)
    assert re.fullmatch(r"[+-]\d\.\d{3}", metric_value(page, "ΔAUROC"))
    point = page.locator('[data-testid="stPlotlyChart"] .scatterlayer .point').first
    point.scroll_into_view_if_needed()
    point = point.bounding_box()
    page.mouse.click(
        point["x"] + point["width"] / 2, point["y"] + point["height"] / 2
    )  # under plotly's drag layer
    page.get_by_role("button", name="Open its case card").wait_for(timeout=30_000)
    settle(page)
    tabs = page.get_by_role("tab")
    counts = {t.split(" (")[0]: int(t.split("(")[1].rstrip(")")) for t in tabs.all_inner_texts()}
    assert list(counts) == ["Both right", "Only A right", "Only B right", "Both wrong"]
    assert sum(counts.values()) == int(metric_value(page, "Cases compared"))
    name = next(q for q in ("Only B right", "Only A right", "Both wrong") if counts[q])
    tabs.filter(has_text=name).click()
    wait_count(page, VISIBLE_IMAGES, min(counts[name], 24))
    settle(page)
    shoot(page, "side-by-side", shots)
    copy_shots(shots, Path("/tmp/i15-shots"))
