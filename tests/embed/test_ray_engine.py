"""`--engine ray`: the local engine's vectors, failures and plan; a SIGKILLed run resumes; unreadable sources.

All tests share one local Ray instance (the session fixture `ray_address`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from pedclip.embed.pipeline import EmbedConfig, embed_dataset
from pedclip.embed.ray_engine import RayConfig, embed_dataset_ray
from pedclip.embed.ray_stages import EncoderSpec
from pedclip.errors import PedclipError
from pedclip.store import Store
from pedclip.store.cases import replace_cases, upsert_dataset
from pedclip.store.embeddings import case_vectors, count_embedded
from tests.embed.conftest import case_row, insert_dataset, write_images
from tests.embed.test_resume import assert_complete_without_duplicates, wait_for_first_chunk

TINY = "openclip:pedclip-tiny"


def tiny_spec(encoder, home) -> EncoderSpec:
    return EncoderSpec(TINY, encoder.fingerprint, home=str(home))


def test_ray_engine_gives_the_local_engines_vectors_and_failures(ray_address, tmp_path, tiny_encoder):
    paths = write_images(tmp_path / "img", 9, size=(90, 70), fmt="JPEG")
    broken = tmp_path / "img" / "broken.jpg"
    broken.write_bytes(paths[0].read_bytes()[:-400])  # a truncated JPEG: recorded and skipped by both engines
    gone = write_images(tmp_path / "img", 1, start=99)[0]
    paths += [broken, gone]
    stores = {name: Store.open(tmp_path / name) for name in ("local", "ray")}
    for store in stores.values():
        insert_dataset(store, "ds", paths)
    gone.unlink()  # missing everywhere: a failure like a bad file, not a sharing problem
    config = EmbedConfig(batch_size=4, chunk_size=4, workers=0)
    local = embed_dataset(stores["local"], tiny_encoder, "ds", config)
    ray = embed_dataset_ray(stores["ray"], tiny_encoder, tiny_spec(tiny_encoder, tmp_path), "ds", config)
    assert (ray.engine, ray.fingerprint, ray.embedded, ray.failed) == ("ray", local.fingerprint, 9, 2)
    reasons = {
        engine: {f.path: f.reason for f in r.failures} for engine, r in (("local", local), ("ray", ray))
    }
    assert reasons["ray"] == reasons["local"] and set(reasons["ray"]) == {str(broken), str(gone)}
    assert {"plan", "start", "read", "encode", "wait", "write", "total"} <= set(ray.seconds)
    assert ray.seconds["encode"] > 0 and ray.seconds["read"] > 0
    local_frame, local_vectors = case_vectors(stores["local"], tiny_encoder.fingerprint, "ds")
    ray_frame, ray_vectors = case_vectors(stores["ray"], tiny_encoder.fingerprint, "ds")
    assert list(ray_frame["case_id"]) == list(local_frame["case_id"])
    cosine = np.sum(local_vectors * ray_vectors, axis=1)
    assert cosine.min() >= 0.9999
    np.testing.assert_allclose(ray_vectors, local_vectors, atol=1e-5)


def ray_embed_command(home, address: str) -> list[str]:
    code = "import sys; from pedclip.cli import main; sys.exit(main())"
    return [sys.executable, "-c", code, "--home", str(home), "embed", "--model", TINY, "--dataset", "ds",
            "--engine", "ray", "--address", address, "--batch-size", "2", "--chunk-size", "4", "--json"]  # fmt: skip


@pytest.mark.slow
def test_killed_ray_run_resumes_without_duplicates(ray_address, store, home, tmp_path, tiny_encoder):
    n_images = 60
    paths = write_images(tmp_path / "img", n_images, size=(120, 100), fmt="JPEG")
    insert_dataset(store, "ds", paths)
    fingerprint = tiny_encoder.fingerprint
    process = subprocess.Popen(ray_embed_command(home, ray_address), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": os.getcwd()})  # fmt: skip
    try:
        wait_for_first_chunk(store, fingerprint, process, timeout_s=480)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    killed_at, total = count_embedded(store, fingerprint, "ds")
    assert 0 < killed_at < total == n_images, "the run must be killed part-way for this test to mean anything"
    config = EmbedConfig(batch_size=16, chunk_size=32, workers=0)
    report = embed_dataset_ray(store, tiny_encoder, tiny_spec(tiny_encoder, home), "ds", config)
    assert report.already_embedded == killed_at and report.embedded == n_images - killed_at
    assert_complete_without_duplicates(store, fingerprint, tiny_encoder, n_images, every=23)


def test_paths_the_workers_cannot_see_stop_the_run_with_a_clear_error(
    ray_address, store, tmp_path, tiny_encoder, monkeypatch
):
    """A relative path resolves on the driver (its working folder) but not on a Ray worker (another folder):
    the same failure a path on a disk only the driver mounts gives."""
    paths = write_images(tmp_path / "img", 3)
    monkeypatch.chdir(tmp_path)
    rows = [case_row(p) for p in paths]
    rows = [r.__class__(**{**r.__dict__, "path": os.path.relpath(r.path)}) for r in rows]
    upsert_dataset(store, "ds", "folders", str(tmp_path), ["normal", "pneumonia"])
    replace_cases(store, "ds", rows)
    config = EmbedConfig(batch_size=4, workers=0)
    with pytest.raises(
        PedclipError,
        match=r"Ray worker on .* cannot read img/img_000\d.png, which the driver can; sources must be on",
    ):
        embed_dataset_ray(store, tiny_encoder, tiny_spec(tiny_encoder, tmp_path), "ds", config)


def test_ray_config_rejects_settings_that_cannot_run():
    with pytest.raises(PedclipError, match="--actors must be at least 1; got 0"):
        RayConfig(actors=0)
    with pytest.raises(PedclipError, match="--workers 1 leaves no CPU for decoding"):
        RayConfig(cpus=1)
    assert RayConfig().gpus("cuda:1") == 1.0 and RayConfig().gpus("cpu") == 0.0
    assert RayConfig(gpus_per_actor=0.5).gpus("cuda") == 0.5


def test_a_user_error_raised_on_a_worker_comes_back_as_its_own_message():
    from pedclip.embed.ray_engine import user_error_message

    text = "ray::MapBatches(decode_rows)()\n  File ...\npedclip.errors.PedclipError: workers cannot read x.png\n\nmore"
    assert user_error_message(RuntimeError(text)) == "workers cannot read x.png"
    assert user_error_message(ValueError("something else")) is None
