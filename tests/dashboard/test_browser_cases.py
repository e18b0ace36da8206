"""Real browser: search the films for words, then open a hit's case card."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_helpers import copy_shots, open_page, settle, shoot, start_page, wait_count

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_search_for_words_and_open_a_hits_case_card(server, browser, tmp_path):
    shots = tmp_path / "shots"
    shots.mkdir()
    page = start_page(browser, server, 1200)
    open_page(page, "Find cases")
    box = page.get_by_label("Words", exact=True)
    box.fill("patchy consolidation")
    box.press("Enter")
    page.get_by_text("Precision at 24 for pneumonia").first.wait_for(timeout=60_000)
    settle(page)
    wait_count(page, '[data-testid="stImage"] img', 24)
    shoot(page, "find-cases", shots)
    first = page.locator('[data-testid="stCaptionContainer"]', has_text="#1 ·").first.inner_text()
    case_id = first.split(" · ")[1]
    page.get_by_role("button", name="case").first.click()
    page.get_by_text("Every run's verdict").first.wait_for(timeout=60_000)
    settle(page)
    page.get_by_text(f"{case_id} · 64x64").first.wait_for(timeout=30_000)  # the film's own caption
    assert "case=" in page.url
    shoot(page, "case-card", shots)
    copy_shots(shots, Path("/tmp/i15-shots"))
