"""Real browser: lasso a group of films on the map and see them as a gallery; restore a prompt set from the
prompt lab's history."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_helpers import copy_shots, open_page, settle, shoot, start_page, wait_count

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def lasso(page, chart) -> None:
    """Pick the lasso in the chart's toolbar, then drag it around the whole plotting area."""
    chart.hover()
    chart.locator('.modebar-btn[data-title="Lasso Select"]').click()
    box = chart.locator(".nsewdrag").first.bounding_box()
    x0, y0, x1, y1 = box["x"] + 3, box["y"] + 3, box["x"] + box["width"] - 3, box["y"] + box["height"] - 3
    page.mouse.move(x0, y0)
    page.mouse.down()
    for x, y in ((x1, y0), (x1, y1), (x0, y1), (x0, y0 + 5)):
        page.mouse.move(x, y, steps=8)
    page.mouse.up()


def test_lasso_on_the_map_opens_a_gallery_and_history_restores_prompts(server, browser, tmp_path):
    shots = tmp_path / "shots"
    shots.mkdir()
    page = start_page(browser, server, 1200)

    open_page(page, "Embedding map")
    wait_count(page, ".scatterlayer .point", 40)
    lasso(page, page.locator('[data-testid="stPlotlyChart"]').first)
    page.get_by_text("40 selected films").first.wait_for(timeout=60_000)
    settle(page)
    wait_count(page, '[data-testid="stImage"] img', 40)
    shoot(page, "map-lasso", shots)

    open_page(page, "Prompt lab")
    page.get_by_text("What each prompt does").first.wait_for(timeout=60_000)
    area = page.locator("textarea").nth(1)
    original = area.input_value()
    area.fill("lobar consolidation\nair bronchograms")
    page.get_by_role("button", name="Rescore").click()
    page.get_by_text("2 prompt sets tried").first.wait_for(timeout=60_000)
    settle(page)
    assert page.locator("textarea").nth(1).input_value() == "lobar consolidation\nair bronchograms"
    sizes = (
        f"{len(page.locator('textarea').nth(0).input_value().splitlines())} + {len(original.splitlines())}"
    )
    # the older trial (newest first): the set as the page opened; by keyboard, as typed text is matched fuzzily
    picker = page.locator('[data-testid="stSelectbox"]', has_text="Prompt set to restore")
    picker.locator("input").click()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    settle(page)
    assert f" · {sizes} prompts · " in picker.locator("input").input_value()
    page.get_by_role("button", name="Restore").click()
    page.wait_for_function(
        "(text) => document.querySelectorAll('textarea')[1]?.value === text", arg=original, timeout=60_000
    )
    settle(page)
    shoot(page, "prompt-lab-history", shots)
    copy_shots(shots, Path("/tmp/i15-shots"))
