"""The dashboard keeps rendering, with no lock error, while another process writes the same store."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

from dashboard_store import open_page

from pedclip.store import Store
from pedclip.store.runs import runs_frame

WRITER = """
import sys, time
from pathlib import Path
import numpy as np, pandas as pd
from pedclip.store import Store
from pedclip.store.embeddings import put_image_embeddings
from pedclip.store.runs import save_run
home, stop = sys.argv[1], Path(sys.argv[2])
store = Store.open(home)
i = 0
while not stop.exists() and i < 2000:
    predictions = pd.DataFrame({"dataset": "tiny", "case_id": [f"tiny-{j:03d}.png" for j in range(40)],
                                "score": np.linspace(0, 1, 40), "predicted": [0, 1] * 20, "label": [0, 1] * 20})
    save_run(store, {"run_id": f"writer-{i:04d}", "kind": "zeroshot", "protocol": "sound", "model": "writer",
                     "eval_dataset": "tiny", "split": "test"}, predictions)
    put_image_embeddings(store, "f" * 20, [f"{i:064x}"], np.ones((1, 8), dtype=np.float32))
    i += 1
    time.sleep(0.02)  # a writer commits in chunks; leave the two shared cores to the pages too
    if i == 1:
        (stop.parent / "started").write_text("1")
print(i)
"""


def test_pages_render_while_a_writer_commits(app, fixture_store, tmp_path, monkeypatch):
    home = tmp_path / "home"
    shutil.copytree(fixture_store.home, home)
    monkeypatch.setenv("PEDCLIP_HOME", str(home))
    stop = tmp_path / "stop"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(home), str(stop)], stdout=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "started").exists() and writer.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (tmp_path / "started").exists(), "the writer never committed"
        at = open_page(app, "runs")
        for page in ("metrics", "neighbors", "data", "runs"):
            at.switch_page(f"views/{page}.py").run()
            assert not at.exception, (page, [e.message for e in at.exception])
            assert not [e.value for e in at.error if "lock" in e.value.lower()], page
        assert writer.poll() is None, (
            "the writer stopped before the pages were rendered: no overlap was tested"
        )
    finally:
        stop.write_text("stop")
        out, _ = writer.communicate(timeout=60)
    assert writer.returncode == 0
    written = int(out.strip())
    assert written > 0
    assert len(runs_frame(Store(Store.open(home).paths), kinds=["zeroshot"])) == 2 + written
