"""`pedclip embed` killed with SIGKILL mid-run, then rerun: complete, no duplicates, same vectors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from pedclip.embed.pipeline import EmbedConfig, embed_dataset
from pedclip.store.embeddings import case_vectors, count_embedded
from tests.embed.conftest import insert_dataset, write_images

N_IMAGES = 200


def embed_command(home) -> list[str]:
    code = "import sys; from pedclip.cli import main; sys.exit(main())"
    return [sys.executable, "-c", code, "--home", str(home), "embed", "--model", "openclip:pedclip-tiny",
            "--dataset", "ds", "--batch-size", "2", "--chunk-size", "4", "--workers", "0", "--json"]  # fmt: skip


def wait_for_first_chunk(store, fingerprint: str, process: subprocess.Popen, timeout_s: float = 120) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        done, _ = count_embedded(store, fingerprint, "ds")
        if done > 0:
            return done
        time.sleep(0.1)
    pytest.fail(f"no chunk committed before the deadline (exit code {process.poll()})")


@pytest.mark.slow
def test_killed_run_resumes_without_duplicates(store, home, tmp_path, tiny_encoder):
    paths = write_images(tmp_path / "img", N_IMAGES, size=(240, 200), fmt="JPEG")
    insert_dataset(store, "ds", paths)
    fingerprint = tiny_encoder.fingerprint
    process = subprocess.Popen(embed_command(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={**os.environ, "PYTHONPATH": os.getcwd()})  # fmt: skip
    try:
        wait_for_first_chunk(store, fingerprint, process)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    killed_at, total = count_embedded(store, fingerprint, "ds")
    assert 0 < killed_at < total == N_IMAGES, "the run must be killed part-way for this test to mean anything"
    report = embed_dataset(store, tiny_encoder, "ds", EmbedConfig(batch_size=32, workers=0, chunk_size=64))
    assert report.already_embedded == killed_at and report.embedded == N_IMAGES - killed_at
    assert_complete_without_duplicates(store, fingerprint, tiny_encoder, N_IMAGES, every=37)


def assert_complete_without_duplicates(store, fingerprint: str, encoder, n_images: int, every: int) -> None:
    """One row per image, whole unit vectors, and every `every`-th equal to the encoder's own vector."""
    with store.read() as con:
        rows, distinct = con.execute(
            "SELECT count(*), count(DISTINCT image_sha256) FROM image_embeddings WHERE fingerprint = ?",
            [fingerprint],
        ).fetchone()
    assert rows == distinct == n_images
    frame, vectors = case_vectors(store, fingerprint, "ds")
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)  # no partial rows
    sample = list(range(0, n_images, every))
    expected = np.concatenate([encoder.encode_images(encoder.preprocess(Image.open(frame["path"][i]))[None])
                               for i in sample])  # fmt: skip
    np.testing.assert_allclose(vectors[sample], expected, atol=1e-5)
