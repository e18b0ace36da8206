"""Dashboard speed with the real app (streamlit AppTest): each page's render time after the first load, and
the prompt lab's rescoring latency (button press to new metrics, and the rescore call alone); then the
explorers' work (issue 15): search by words with the model loaded, a case card, and a map of 5,856 films
(the study's size) computed once and then served from the store.

Targets (issue 6): every page within 2 s after the first load; a prompt-lab rescoring within 0.5 s.
Targets (issue 15): search < 0.3 s, case card < 1 s, UMAP of 5,856 vectors < 30 s, then served < 0.5 s.
Usage: python bench/bench_dashboard.py [--cases 1000] [--repeats 3]
       python bench/bench_dashboard.py --home DIR [--model demo:medclip --dataset peds-a]
           (an existing store, e.g. the demo's: pages, prompt lab, search and case card)
       python bench/bench_dashboard.py --map-only   (the 5,856-film map alone)
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

PAGES = ("runs", "metrics", "errors", "neighbors", "find_cases", "case_card", "side_by_side", "prompt_lab",
         "embedding_map", "data")  # fmt: skip
MAP_FILMS, MAP_DIM = 5856, 512


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
    from pedclip.eval.workspace import Workspace

    workspace = Workspace(access.open_store(os.environ["PEDCLIP_HOME"]))
    encoder = access.load_encoder("openclip:pedclip-tiny")
    prompts = access.prompt_sets()["pneumonia"]
    calls = []
    for i in range(repeats):
        edited = {**prompts, "pneumonia": [*prompts["pneumonia"], f"new prompt {i}"]}
        calls.append(
            timed(lambda e=edited: access.rescore(workspace, encoder, "tiny", e, "test", "probe-tiny"))
        )
    return statistics.median(presses), statistics.median(calls)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=1000, help="cases in the main dataset")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--home", type=Path, help="time an existing store (e.g. the demo's) instead")
    parser.add_argument("--model", default="demo:medclip", help="with --home: the model searched with")
    parser.add_argument("--dataset", default="peds-a", help="with --home: the dataset searched")
    parser.add_argument("--map-only", action="store_true", help="only the 5,856-film map")
    args = parser.parse_args()
    if args.map_only:
        return map_times()
    if args.home:
        bench_home(args.home, args.repeats)
        explore_times(args.home, args.model, args.dataset, args.repeats)
        return map_times()
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
    explore_times(home, TINY_SPEC, "tiny", args.repeats)
    map_times()


def explore_times(home: Path, spec: str, dataset: str, repeats: int) -> None:
    """Search by words (new words each time: the text tower runs) and a case card, on an existing store."""
    from pedclip.eval.casecard import case_card
    from pedclip.eval.search import query_vector, search_cases, words_query
    from pedclip.models import load_encoder
    from pedclip.store import Store
    from pedclip.store.embeddings import case_vectors

    store = Store.open(home, create=False)
    encoder = load_encoder(spec, home=home, runtime="torch")
    matrix = case_vectors(store, encoder.fingerprint, dataset)  # the dashboard's workspace keeps it loaded

    def search(i: int):
        text = f"right lower lobe consolidation, film {i}"
        vec = query_vector(encoder.encode_texts([text]))
        return search_cases(store, encoder.fingerprint, dataset, words_query(text, "pneumonia"), vec, 24,
                            matrix=matrix)  # fmt: skip

    search(-1)  # first call: imports and FAISS sidecar checks
    searches = [timed(lambda i=i: search(i)) for i in range(repeats * 3)]
    result = search(0)
    cards = [
        timed(lambda i=i: case_card(store, dataset, str(matrix[0]["case_id"].iat[i])))
        for i in range(repeats * 3)
    ]
    print(f"search ({spec}, {dataset}, {result.n_searched} films, k=24, {result.source}): "
          f"{statistics.median(searches):.3f} s median (target < 0.3 s); precision at 24 {result.precision:.3f} "
          f"vs base rate {result.base_rate:.3f}")  # fmt: skip
    print(f"case card: {statistics.median(cards):.3f} s median (target < 1 s)")


def map_times() -> None:
    """A map of 5,856 clustered 512-d vectors: UMAP and PCA computed once, then served from the store."""
    import numpy as np

    from pedclip.eval.projection import case_map
    from pedclip.store import Store
    from pedclip.store.cases import CaseRow, replace_cases, upsert_dataset
    from pedclip.store.embeddings import case_vectors, put_image_embeddings, register_model

    home = Path(tempfile.mkdtemp(prefix="bench-map-"))
    store = Store.open(home)
    rng = np.random.default_rng(0)
    labels = rng.random(MAP_FILMS) < 0.6
    centres = rng.normal(size=(8, MAP_DIM))
    vectors = centres[rng.integers(0, 8, MAP_FILMS)] + 0.8 * rng.normal(size=(MAP_FILMS, MAP_DIM))
    vectors += np.outer(labels * 2 - 1, rng.normal(size=MAP_DIM)) * 0.3
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    rows = [CaseRow(f"c{i:05d}", f"/nowhere/{i}.png", f"sha{i:05d}", 64, 64, "L", int(labels[i]), f"p{i // 2}",
                    "test") for i in range(MAP_FILMS)]  # fmt: skip
    upsert_dataset(store, "films", "synth", "/nowhere", ["normal", "pneumonia"])
    replace_cases(store, "films", rows)
    register_model(store, {"fingerprint": "fp-map", "spec": "bench", "family": "openclip", "dim": MAP_DIM,
                           "preprocess": {}, "dtype": "fp32"})  # fmt: skip
    put_image_embeddings(store, "fp-map", [r.image_sha256 for r in rows], vectors)

    def load(dataset):
        return case_vectors(store, "fp-map", dataset)

    for method in ("pca", "umap"):
        computed = timed(lambda m=method: case_map(store, "fp-map", ["films"], m, load))
        served = statistics.median(timed(lambda m=method: case_map(store, "fp-map", ["films"], m, load))
                                   for _ in range(3))  # fmt: skip
        target = " (target < 30 s, then < 0.5 s served)" if method == "umap" else ""
        print(f"map of {MAP_FILMS} x {MAP_DIM} by {method.upper()}: computed and kept {computed:.2f} s, "
              f"served from the store {served:.3f} s{target}")  # fmt: skip


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
