"""Shared by the real-browser tests: start `pedclip dashboard` on a free port, launch Debian's Chromium,
wait for Streamlit to settle, take full-page screenshots.

A uniquely named module (not conftest) so both browser test files can import it under pytest's default
import mode.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-quic", "--no-first-run"]  # fmt: skip
SETTLED = """() => {
  if (document.querySelector('[data-testid="stSkeleton"], [data-testid="stSpinner"], [data-stale="true"]')) return false;
  const status = document.querySelector('[data-testid="stStatusWidget"]');
  if (status && /running|connecting/i.test(status.innerText)) return false;
  // charts and tables in a hidden tab never draw: only the visible ones must have
  for (const c of document.querySelectorAll('[data-testid="stPlotlyChart"]'))
    if (c.getClientRects().length && !c.querySelector('.main-svg')) return false;
  for (const d of document.querySelectorAll('[data-testid="stDataFrame"]'))
    if (d.getClientRects().length && !d.querySelector('canvas')) return false;
  for (const i of document.querySelectorAll('[data-testid="stImage"] img'))
    if (!i.complete || i.naturalWidth === 0) return false;
  return !!document.querySelector('h1');
}"""

START = [time.monotonic()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def dashboard_server(home: Path, log_path: Path, extra: tuple[str, ...] = ()) -> Iterator[str]:
    """`pedclip dashboard --home HOME [extra]` on a free port; yields its URL once /_stcore/health answers."""
    port = free_port()
    pedclip = Path(sys.executable).with_name("pedclip")
    log = log_path.open("w")
    proc = subprocess.Popen([str(pedclip), "dashboard", "--home", str(home), "--port", str(port), *extra],
                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.3)
            assert proc.poll() is None, log_path.read_text()
        else:
            pytest.fail(f"the dashboard did not answer on {url}: {log_path.read_text()}")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@contextmanager
def chromium() -> Iterator:
    """Debian's Chromium through Playwright; a failure, not a skip, when it cannot start."""
    from playwright.sync_api import Error, sync_playwright

    with sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except Error as exc:  # CI must have a browser (make browser installs it)
            pytest.fail(f"Chromium could not start from {CHROMIUM} ({exc}); run `make browser`")
        try:
            yield browser
        finally:
            browser.close()


def start_page(browser, server: str, height: int = 1000):
    """A new page on the dashboard at `server`, once its first page (Runs) has rendered; the clock for the
    screenshots' timings starts here."""
    page = browser.new_page(viewport={"width": 1400, "height": height})
    START[0] = time.monotonic()
    page.goto(server)
    page.wait_for_selector("h1:has-text('Runs')", timeout=90_000)
    return page


def open_page(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    page.wait_for_selector(f"h1:has-text('{title}')", timeout=60_000)
    settle(page)


def settle(page) -> None:
    page.wait_for_timeout(300)
    page.wait_for_function(SETTLED, timeout=60_000)


def choose(page, label: str, value: str) -> None:
    """Pick `value` in the select box labelled `label` (typed into its search box, then Enter)."""
    page.locator('[data-testid="stSelectbox"]', has_text=label).locator("input").fill(value)
    page.keyboard.press("Enter")
    settle(page)


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


def rescored_auroc_differs(page, before: str) -> None:
    """Wait until the AUROC card shows a value other than `before`."""
    page.wait_for_function(
        """(before) => { const v = [...document.querySelectorAll('[data-testid="stMetric"]')]
             .find(m => m.innerText.includes('AUROC'));
             return v && !v.innerText.includes(before) && v.innerText.match(/\\d\\.\\d{3}/); }""",
        arg=before, timeout=60_000,
    )  # fmt: skip


def copy_shots(shots: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for shot in shots.iterdir():
        shutil.copy(shot, target / shot.name)
