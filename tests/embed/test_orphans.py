"""Issue 11, defect 5: decoding workers exit within seconds when their `pedclip embed` is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pedclip.store import Store
from tests.embed.conftest import insert_dataset, write_images

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")


def children(pid: int) -> list[int]:
    """Live (not zombie) processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat and int(stat[1]) == pid and stat[0] != "Z":
                found.append(int(entry.name))
    return found


def processes_naming(text: str) -> list[int]:
    """Live processes whose command line contains `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(entry.name))
        except OSError:
            continue
    return [pid for pid in found if alive(pid)]


def alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"  # a zombie has exited (init may be slow to reap it)


def _stat(pid: int) -> tuple[str, str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    state, ppid = text.rsplit(")", 1)[1].split()[:2]
    return state, ppid


def test_sigkilled_embed_leaves_no_worker(tmp_path: Path) -> None:
    home = tmp_path / "home"
    insert_dataset(Store.open(home), "big", write_images(tmp_path / "img", 160, size=(640, 560), fmt="JPEG"))
    entry = "import sys; from pedclip.cli import main; sys.exit(main(sys.argv[1:]))"
    command = [sys.executable, "-c", entry, "--home", str(home), "embed", "--model", "openclip:pedclip-tiny"]
    command += ["--dataset", "big", "--reader", "processes", "--workers", "2", "--batch-size", "2"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    embed = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, workers = time.monotonic() + 120, []
        while len(workers) < 2 and embed.poll() is None and time.monotonic() < deadline:
            workers = children(embed.pid)  # both decoding workers (fork starts the whole pool at once)
            time.sleep(0.01)
        assert workers, "embed finished or stalled before its decoding workers were seen"
        embed.send_signal(signal.SIGKILL)
        embed.wait()
        deadline = time.monotonic() + 5
        while any(alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        orphans = [w for w in workers if alive(w)]
    finally:
        embed.kill()
        for pid in processes_naming(str(home)):  # never leave a process of this test behind, even on failure
            os.kill(pid, signal.SIGKILL)
    assert not orphans, f"workers {orphans} outlived their SIGKILLed parent by 5 s"
