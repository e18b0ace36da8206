"""End to end in a real browser: `pedclip dashboard` on a free port, driven by Playwright with Debian's Chromium.

Fails (never skips) when Chromium cannot start. Screenshots of every page land in the test's tmp folder
and are copied to /tmp/dashboard-shots/ for people to look at.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-quic", "--no-first-run"]  # fmt: skip
SHOTS_COPY = Path("/tmp/dashboard-shots")
SETTLED = """() => {
  if (document.querySelector('[data-testid="stSkeleton"], [data-testid="stSpinner"], [data-stale="true"]')) return false;
  const status = document.querySelector('[data-testid="stStatusWidget"]');
  if (status && /running|connecting/i.test(status.innerText)) return false;
  for (const c of document.querySelectorAll('[data-testid="stPlotlyChart"]'))
    if (!c.querySelector('.main-svg')) return false;
  for (const d of document.querySelectorAll('[data-testid="stDataFrame"]'))
    if (!d.querySelector('canvas')) return false;
  for (const i of document.querySelectorAll('[data-testid="stImage"] img'))
    if (!i.complete || i.naturalWidth === 0) return false;
  return !!document.querySelector('h1');
}"""

START = [time.monotonic()]
pytestmark = [pytest.mark.browser, pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(fixture_store, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(fixture_store.home, home)
    port = free_port()
    pedclip = Path(sys.executable).with_name("pedclip")
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen([str(pedclip), "dashboard", "--home", str(home), "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.3)
        assert proc.poll() is None, (tmp_path / "server.log").read_text()
    else:
        proc.terminate()
        pytest.fail(f"the dashboard did not answer on {url}: {(tmp_path / 'server.log').read_text()}")
    yield url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture
def browser():
    from playwright.sync_api import Error, sync_playwright

    with sync_playwright() as p:
        try:
            chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except Error as exc:  # a failure, not a skip: CI must have a browser (make browser installs it)
            pytest.fail(f"Chromium could not start from {CHROMIUM} ({exc}); run `make browser`")
        yield chromium
        chromium.close()


def open_page(page, title: str, shots: Path):
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    page.wait_for_selector(f"h1:has-text('{title}')", timeout=60_000)
    settle(page)


def settle(page) -> None:
    page.wait_for_timeout(300)
    page.wait_for_function(SETTLED, timeout=60_000)


def wait_count(page, selector: str, n: int) -> None:
    page.wait_for_function(f"() => document.querySelectorAll({selector!r}).length >= {n}", timeout=60_000)


def shoot(page, name: str, shots: Path) -> None:
    """A screenshot of the whole page: the viewport is stretched to the app's own scrolling height first."""
    settle(page)
    print(f"{name}: {time.monotonic() - START[0]:.1f} s", flush=True)
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": 1400, "height": min(max(height, 1000), 6000)})
    page.wait_for_timeout(500)
    settle(page)
    page.screenshot(path=str(shots / f"{name}.png"))
    page.set_viewport_size({"width": 1400, "height": 1000})


def metric_value(page, label: str) -> str:
    card = page.locator('[data-testid="stMetric"]', has_text=label).first
    return card.locator('[data-testid="stMetricValue"]').inner_text()


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

    open_page(page, "Metrics", shots)
    wait_count(page, '[data-testid="stPlotlyChart"] .main-svg', 4)
    page.get_by_role("slider").first.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_selector("h3:has-text('At threshold 0.51')", timeout=30_000)
    shoot(page, "2-metrics", shots)

    open_page(page, "Errors", shots)
    page.get_by_text("False positives (").first.wait_for(timeout=30_000)
    shoot(page, "3-errors", shots)

    open_page(page, "Neighbours", shots)
    page.locator('[data-testid="stSelectbox"]', has_text="Case id").locator("input").fill("tiny-005.png")
    page.keyboard.press("Enter")
    page.wait_for_selector("text=Query: tiny-005.png", timeout=30_000)
    page.wait_for_selector("h3:has-text('6 nearest cases')", timeout=30_000)
    settle(page)
    assert page.locator('[data-testid="stImage"] img').count() == 7  # the query and six neighbours
    shoot(page, "4-neighbours", shots)

    open_page(page, "Prompt lab", shots)
    wait_count(page, '[data-testid="stPlotlyChart"] .main-svg', 1)
    before = metric_value(page, "AUROC")
    areas = page.locator("textarea")
    areas.nth(0).fill("an empty room")
    areas.nth(1).fill("a cat sitting on a red sofa")
    page.get_by_role("button", name="Rescore").click()
    page.wait_for_function(
        """(before) => { const v = [...document.querySelectorAll('[data-testid="stMetric"]')]
             .find(m => m.innerText.includes('AUROC'));
             return v && !v.innerText.includes(before) && v.innerText.match(/\\d\\.\\d{3}/); }""",
        arg=before, timeout=60_000,
    )  # fmt: skip
    page.get_by_text("2 prompts").first.wait_for(timeout=30_000)
    shoot(page, "5-prompt-lab", shots)

    open_page(page, "Embedding map", shots)
    wait_count(page, ".scatterlayer .point", 40)
    assert page.locator(".scatterlayer .point").count() == 40
    page.locator(".scatterlayer .point").first.click(force=True)
    page.get_by_role("button", name="Open its neighbours").click(timeout=30_000)
    page.wait_for_selector("h1:has-text('Neighbours')", timeout=30_000)
    page.go_back()
    page.wait_for_selector("h1:has-text('Embedding map')", timeout=30_000)
    shoot(page, "6-embedding-map", shots)

    open_page(page, "Data", shots)
    page.get_by_text("1 patient has images in more than one split").first.wait_for(timeout=30_000)
    shoot(page, "7-data", shots)

    SHOTS_COPY.mkdir(parents=True, exist_ok=True)
    for shot in shots.iterdir():
        shutil.copy(shot, SHOTS_COPY / shot.name)
