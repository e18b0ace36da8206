"""Dashboard speed with the real app (streamlit AppTest): each page's render time after the first load, and
the prompt lab's rescoring latency (button press to new metrics, and the rescore call alone).

Targets (issue 6): every page within 2 s after the first load; a prompt-lab rescoring within 0.5 s.
Usage: python bench/bench_dashboard.py [--cases 1000] [--repeats 3]
       python bench/bench_dashboard.py --home DIR   (an existing store, e.g. the demo's: pages and prompt lab)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "dashboard"))  # the fixture-store builder the tests use

PAGES = ("runs", "metrics", "errors", "neighbors", "prompt_lab", "embedding_map", "data")


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def page_times(app_path: Path, repeats: int) -> dict[str, tuple[float, float]]:
    """page -> (first load s, median of later renders s), each page in a fresh session."""
    from streamlit.testing.v1 import AppTest

    out = {}
    for page in PAGES:
        at = AppTest.from_file(str(app_path), default_timeout=300).run()
        at.switch_page(f"views/{page}.py")
        first = timed(at.run)
        assert not at.exception, (page, [e.message for e in at.exception])
        later = [timed(at.run) for _ in range(repeats)]
        out[page] = (first, statistics.median(later))
    return out


def press_times(app_path: Path, repeats: int) -> list[float]:
    """Seconds from pressing the prompt lab's rescore button to new metrics, with new prompts each time."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(app_path), default_timeout=300).run()
    at.switch_page("views/prompt_lab.py").run()
    presses = []
    for i in range(repeats):
        at.text_area(key="pl_text_pneumonia_pneumonia").set_value(f"a chest x-ray with pneumonia, take {i}")
        presses.append(timed(at.button[0].click().run))
        assert not at.exception, [e.message for e in at.exception]
    return presses


def rescore_times(app_path: Path, repeats: int) -> tuple[float, float]:
    """(median press-to-metrics s in the app, median `access.rescore` call s) with new prompts each time."""
    from pedclip.dashboard import access

    presses = press_times(app_path, repeats)
    store = access.open_store(os.environ["PEDCLIP_HOME"])
    encoder = access.load_encoder("openclip:pedclip-tiny")
    prompts = access.prompt_sets()["pneumonia"]
    calls = []
    for i in range(repeats):
        edited = {**prompts, "pneumonia": [*prompts["pneumonia"], f"new prompt {i}"]}
        calls.append(timed(lambda e=edited: access.rescore(store, encoder, "tiny", e, "test", "probe-tiny")))
    return statistics.median(presses), statistics.median(calls)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=1000, help="cases in the main dataset")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--home", type=Path, help="time an existing store (e.g. the demo's) instead")
    args = parser.parse_args()
    if args.home:
        return bench_home(args.home, args.repeats)
    from dashboard_store import TINY_SPEC, build_fixture_store

    from pedclip.models import load_encoder

    home = Path(tempfile.mkdtemp(prefix="bench-dash-")) / "home"
    home.mkdir()
    build_s = timed(lambda: build_fixture_store(home, load_encoder(TINY_SPEC), n=args.cases))
    os.environ["PEDCLIP_HOME"] = str(home)
    app = REPO / "pedclip" / "dashboard" / "app.py"
    print(f"store: {args.cases} + 12 cases, 2 models, 3 runs (built in {build_s:.1f} s); tiny model")
    print_pages(page_times(app, args.repeats))
    press, call = rescore_times(app, args.repeats)
    print(
        f"prompt-lab rescoring: {press:.3f} s press-to-metrics (whole page rerun), {call:.3f} s rescore call"
    )


def print_pages(times: dict[str, tuple[float, float]]) -> None:
    print(f"{'page':<15}{'first load s':>14}{'later render s':>16}")
    for page, (first, later) in times.items():
        flag = "" if later <= 2.0 else "  over the 2 s target"
        print(f"{page:<15}{first:>14.3f}{later:>16.3f}{flag}")


def bench_home(home: Path, repeats: int) -> None:
    """Pages and prompt-lab presses on an existing store, as the dashboard opens it (read only)."""
    os.environ["PEDCLIP_HOME"] = str(home)
    app = REPO / "pedclip" / "dashboard" / "app.py"
    print(f"store: {home}")
    print_pages(page_times(app, repeats))
    presses = press_times(app, repeats + 1)[1:]  # the first press loads the model for the whole process
    print(
        f"prompt-lab rescoring: {statistics.median(presses):.3f} s press-to-metrics (median of {len(presses)})"
    )


if __name__ == "__main__":
    main()
