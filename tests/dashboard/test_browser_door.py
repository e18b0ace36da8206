"""Issue 11, defect 8 in a real browser: a served dashboard with a token shows nothing without it, admits the
printed address, and keeps the session admitted across pages."""

from __future__ import annotations

import re
import shutil

import pytest
from browser_helpers import dashboard_server, open_page, settle

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_token_door_in_a_real_browser(fixture_store, browser, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(fixture_store.home, home)
    log = tmp_path / "server.log"
    with dashboard_server(home, log, ("--token", "door-test-token")) as url:
        printed = re.search(r"on (http://\S+)", log.read_text())
        assert printed and printed.group(1).endswith("/?token=door-test-token"), log.read_text()
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.get_by_text("needs its access token").first.wait_for(timeout=90_000)
        assert page.locator('[data-testid="stSidebarNav"]').count() == 0
        assert page.locator('[data-testid="stFileUploader"], [data-testid="stDataFrame"]').count() == 0
        page.goto(f"{url}/?token=wrong")
        page.get_by_text("needs its access token").first.wait_for(timeout=60_000)
        page.goto(f"{url}/?token=door-test-token")
        page.wait_for_selector("h1:has-text('Runs')", timeout=90_000)
        settle(page)
        open_page(page, "Data")  # the session stays admitted when the page (and its URL) changes
        assert page.get_by_text("needs its access token").count() == 0
