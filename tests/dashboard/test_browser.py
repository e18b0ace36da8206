"""End to end in a real browser: `pedclip dashboard` on a free port, driven by Playwright with Debian's Chromium.

Fails (never skips) when Chromium cannot start. Screenshots of every page land in the test's tmp folder
and are copied to /tmp/dashboard-shots/ for people to look at.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from browser_helpers import (
    START,
    choose,
    copy_shots,
    metric_value,
    open_page,
    rescored_auroc_differs,
    settle,
    shoot,
    wait_count,
)

SHOTS_COPY = Path("/tmp/dashboard-shots")
pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_every_page_in_a_real_browser(server, browser, tmp_path):
    shots = tmp_path / "shots"
    shots.mkdir()
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    START[0] = time.monotonic()
    page.goto(server)
    page.wait_for_selector("h1:has-text('Runs')", timeout=90_000)
    wait_count(page, '[data-testid="stDataFrame"] canvas', 2)
    settle(page)
    page.get_by_text("3 of 3 runs").first.wait_for(timeout=30_000)
    page.get_by_text("paper/table2_zeroshot.csv").first.wait_for(timeout=30_000)
    shoot(page, "1-runs", shots)

    open_page(page, "Metrics")
    wait_count(page, '[data-testid="stPlotlyChart"] .main-svg', 4)
    page.get_by_role("slider").first.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_selector("h3:has-text('At threshold 0.51')", timeout=30_000)
    shoot(page, "2-metrics", shots)

    open_page(page, "Errors")
    page.get_by_text("False positives (").first.wait_for(timeout=30_000)
    shoot(page, "3-errors", shots)

    open_page(page, "Neighbors")
    page.locator('[data-testid="stSelectbox"]', has_text="Case id").locator("input").fill("tiny-005.png")
    page.keyboard.press("Enter")
    page.wait_for_selector("text=Query: tiny-005.png", timeout=30_000)
    page.wait_for_selector("h3:has-text('6 nearest cases')", timeout=30_000)
    settle(page)
    assert page.locator('[data-testid="stImage"] img').count() == 7  # the query and six neighbors
    shoot(page, "4-neighbors", shots)

    open_page(page, "Prompt lab")
    wait_count(page, '[data-testid="stPlotlyChart"] .main-svg', 1)
    page.get_by_text("cached images of tiny/val rescored").first.wait_for(timeout=30_000)  # val by default
    choose(page, "Split", "test")  # the fixture's few validation films rank alike under any prompts
    page.get_by_text("prompts tuned on test").first.wait_for(timeout=30_000)
    page.get_by_text("cached images of tiny/test rescored").first.wait_for(timeout=30_000)
    before = metric_value(page, "AUROC")
    areas = page.locator("textarea")
    areas.nth(0).fill("an empty room")
    areas.nth(1).fill("a cat sitting on a red sofa")
    page.get_by_role("button", name="Rescore").click()
    rescored_auroc_differs(page, before)
    page.get_by_text("2 prompts").first.wait_for(timeout=30_000)
    shoot(page, "5-prompt-lab", shots)

    open_page(page, "Embedding map")
    wait_count(page, ".scatterlayer .point", 40)
    assert page.locator(".scatterlayer .point").count() == 40
    page.locator(".scatterlayer .point").first.click(force=True)
    picked = page.locator('[data-testid="stMarkdownContainer"]', has_text=" · split ").first.inner_text(
        timeout=30_000
    )
    assert " · normal · " in picked or " · pneumonia · " in picked, picked  # the clicked film's class, named
    page.get_by_role("button", name="Open its neighbors").click(timeout=30_000)
    page.wait_for_selector("h1:has-text('Neighbors')", timeout=30_000)
    page.go_back()
    page.wait_for_selector("h1:has-text('Embedding map')", timeout=30_000)
    shoot(page, "6-embedding-map", shots)

    open_page(page, "Data")
    page.get_by_text("1 patient has images in more than one split").first.wait_for(timeout=30_000)
    shoot(page, "7-data", shots)

    copy_shots(shots, SHOTS_COPY)
