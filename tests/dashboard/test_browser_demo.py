"""End to end in a real browser on the quick demo's store: every page shows the demo's runs, tables and data.

Same machinery as test_browser.py (browser_helpers): `pedclip dashboard` on a copy of the session's demo home,
driven by Playwright with Debian's Chromium; fails (never skips) when Chromium cannot start. Screenshots of
every page land in the test's tmp folder and are copied to /tmp/dashboard-demo-shots/.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from browser_helpers import (
    START,
    choose,
    copy_shots,
    dashboard_server,
    metric_value,
    open_page,
    rescored_auroc_differs,
    settle,
    shoot,
    wait_count,
)

from pedclip.store import Store
from pedclip.store.cases import cases_frame
from pedclip.store.runs import runs_frame

SHOTS_COPY = Path("/tmp/dashboard-demo-shots")
DEMO_KINDS = {"finetune", "transfer", "zeroshot", "probe"}
pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def demo_home(quick_demo_home, tmp_path) -> Path:
    home = tmp_path / "home"
    shutil.copytree(quick_demo_home, home)
    return home


@pytest.fixture
def server(demo_home, tmp_path):
    with dashboard_server(demo_home, tmp_path / "server.log") as url:
        yield url


def no_exception(page, where: str) -> None:
    shown = page.locator('[data-testid="stException"]')
    assert shown.count() == 0, f"{where}: {shown.first.inner_text()}"


def options_of(page, widget: str, label: str) -> list[str]:
    """The options a select/multiselect widget offers (its dropdown opened, read, closed)."""
    page.locator(f'[data-testid="{widget}"]', has_text=label).first.click()
    listbox = page.locator('[role="listbox"] [role="option"]')
    listbox.first.wait_for(timeout=30_000)
    texts = [t.strip() for t in listbox.all_inner_texts()]
    page.keyboard.press("Escape")
    return [t for t in texts if t != "Select all"]  # the multiselect's own first entry


def check_runs(page, runs, tables: list[str], shots: Path) -> None:
    page.wait_for_selector("h1:has-text('Runs')", timeout=90_000)
    wait_count(page, '[data-testid="stDataFrame"] canvas', 2)
    settle(page)
    page.get_by_text(f"{len(runs)} of {len(runs)} runs").first.wait_for(timeout=30_000)
    assert set(options_of(page, "stMultiSelect", "Kind")) == set(runs["kind"]) >= DEMO_KINDS
    assert {"demo:clip", "demo:medclip"} <= set(options_of(page, "stMultiSelect", "Model"))
    for name in tables:  # every table the demo wrote is an expander of the Runs page
        page.get_by_text(f"demo/{name}", exact=True).first.wait_for(timeout=30_000)
    # tables.md is rendered as Markdown inside a folded expander
    page.get_by_text("Table 2: zero-shot").first.wait_for(state="attached", timeout=30_000)
    no_exception(page, "Runs")
    shoot(page, "1-runs", shots)


def check_prompt_lab(page, shots: Path) -> None:
    open_page(page, "Prompt lab")
    wait_count(page, '[data-testid="stPlotlyChart"] .main-svg', 1)
    page.get_by_text("cached images of peds-a/val rescored").first.wait_for(timeout=30_000)
    before = metric_value(page, "AUROC")
    areas = page.locator("textarea")
    areas.nth(0).fill("an empty room")
    areas.nth(1).fill("a cat sitting on a red sofa")
    page.get_by_role("button", name="Rescore").click()
    rescored_auroc_differs(page, before)
    page.get_by_text("with 2 prompts").first.wait_for(timeout=30_000)
    no_exception(page, "Prompt lab")
    shoot(page, "5-prompt-lab", shots)


def test_every_page_on_the_demo_store(server, browser, demo_home, tmp_path):
    store = Store.open(demo_home)
    runs = runs_frame(store)
    tables = sorted(p.name for p in (demo_home / "reports" / "demo").iterdir() if p.suffix in (".csv", ".md"))
    query = cases_frame(store, "peds-a")["case_id"].sort_values().iloc[3]
    shots = tmp_path / "shots"
    shots.mkdir()
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    START[0] = time.monotonic()
    page.goto(server)
    check_runs(page, runs, tables, shots)

    open_page(page, "Metrics")
    wait_count(page, '[data-testid="stPlotlyChart"] .main-svg', 4)
    page.get_by_text("Decision threshold on P(pneumonia)").first.wait_for(timeout=30_000)
    no_exception(page, "Metrics")
    shoot(page, "2-metrics", shots)

    open_page(page, "Errors")
    page.get_by_text("False positives (").first.wait_for(timeout=30_000)
    page.get_by_text("False negatives (").first.wait_for(timeout=30_000)
    no_exception(page, "Errors")
    shoot(page, "3-errors", shots)

    open_page(page, "Neighbors")
    models = options_of(page, "stSelectbox", "Model")  # checkpoints by what they are, not by their paths
    assert {"demo:clip", "demo:medclip"} <= set(models) and any(" fine-tuned on " in m for m in models), (
        models
    )
    assert not any(m.startswith("local:") for m in models), models
    choose(page, "Dataset", "peds-a")
    choose(page, "Case id", query)
    page.wait_for_selector(f"text=Query: {query}", timeout=30_000)
    page.wait_for_selector("h3:has-text('6 nearest cases')", timeout=30_000)
    wait_count(page, '[data-testid="stImage"] img', 7)  # the gallery can render a moment after its header
    settle(page)
    assert page.locator('[data-testid="stImage"] img').count() == 7  # the query and six neighbors
    assert page.get_by_text("#1 · ").count() == 1 and page.get_by_text("distance 0.000 ").count() == 0
    no_exception(page, "Neighbors")
    shoot(page, "4-neighbors", shots)

    check_prompt_lab(page, shots)

    open_page(page, "Embedding map")
    choose(page, "Dataset", "peds-a")
    n_cases = len(cases_frame(store, "peds-a"))
    wait_count(page, ".scatterlayer .point", n_cases)
    assert page.locator(".scatterlayer .point").count() == n_cases
    page.get_by_text(f"{n_cases} cases · PCA of").first.wait_for(timeout=30_000)
    no_exception(page, "Embedding map")
    shoot(page, "6-embedding-map", shots)

    open_page(page, "Data")
    assert {"peds-a", "peds-b"} <= set(options_of(page, "stSelectbox", "Dataset"))
    choose(page, "Dataset", "peds-b")
    page.get_by_text("Split sizes by label").first.wait_for(timeout=30_000)
    page.get_by_text("No patient has images in more than one split").first.wait_for(timeout=30_000)
    page.get_by_text("No image appears in more than one split.").first.wait_for(timeout=30_000)
    no_exception(page, "Data")
    if "adult" in options_of(page, "stSelectbox", "Dataset"):  # the same films as adult-captions, by design
        choose(page, "Dataset", "adult")
        page.get_by_text("Shares ").first.wait_for(timeout=30_000)
        assert page.get_by_text("appear more than once").count() == 0
    shoot(page, "7-data", shots)

    copy_shots(shots, SHOTS_COPY)
