"""A full disk: the chunk write fails with one line, the store stays consistent, and the rerun completes once
space is freed. The disk is a small tmpfs when this process may mount one (root); elsewhere (a CI container)
the chunk write is made to fail as DuckDB fails on a full disk."""

from __future__ import annotations

import contextlib
import os
import subprocess

import duckdb
import pytest

from pedclip.cli import main
from pedclip.embed import pipeline
from pedclip.embed.pipeline import EmbedConfig, embed_dataset
from pedclip.store import Store
from pedclip.store.check import check_store
from pedclip.store.embeddings import case_vectors, count_embedded
from tests.embed.conftest import insert_dataset, write_images

DISK_MB = 24


@pytest.fixture
def small_disk(tmp_path):
    """A mounted tmpfs of DISK_MB, or None when mounting is not allowed here."""
    mount = tmp_path / "disk"
    mount.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m", "tmpfs", str(mount)]
    if os.geteuid() != 0 or subprocess.run(command, capture_output=True).returncode != 0:
        yield None
        return
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder) -> object:
    """Write a file until the disk refuses more; returns its path."""
    path = folder / "filler"
    block = b"\0" * (64 * 1024)
    with open(path, "wb") as handle, contextlib.suppress(OSError):
        while True:
            handle.write(block)
            handle.flush()
    return path


def failing_writes(store: Store):
    """Stands in for a full disk where none can be mounted: the chunk's transaction fails as DuckDB's does."""

    def put(*args, **kwargs):
        with store.write():
            raise duckdb.IOException('Could not write file "pedclip.duckdb.wal": No space left on device')

    return put


def test_a_full_disk_fails_the_chunk_with_one_line_and_the_rerun_completes(
    small_disk, tmp_path, tiny_encoder, capsys, monkeypatch
) -> None:
    home = (small_disk or tmp_path) / "home"
    store = Store.open(home)
    insert_dataset(store, "kept", write_images(tmp_path / "kept", 6))
    insert_dataset(store, "ds", write_images(tmp_path / "img", 12, start=100))
    embed_dataset(store, tiny_encoder, "kept", EmbedConfig(workers=0, chunk_size=2))
    kept_frame, kept_vectors = case_vectors(store, tiny_encoder.fingerprint, "kept")

    if small_disk is not None:
        filler = fill(small_disk)
    else:
        monkeypatch.setattr(pipeline, "put_image_embeddings", failing_writes(store))
    argv = ["--home", str(home), "embed", "--model", "openclip:pedclip-tiny", "--dataset", "ds",
            "--chunk-size", "4", "--workers", "0"]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("error: the disk holding") and "is full" in err and "rerun the same command" in err

    assert check_store(store).ok, [f.line() for f in check_store(store).findings]
    _, vectors = case_vectors(store, tiny_encoder.fingerprint, "kept")
    assert (vectors == kept_vectors).all(), "what was committed before the disk filled is intact"

    if small_disk is not None:
        filler.unlink()
    else:
        monkeypatch.undo()
    assert main(argv) == 0
    assert count_embedded(store, tiny_encoder.fingerprint, "ds") == (12, 12)
    assert check_store(store).ok
