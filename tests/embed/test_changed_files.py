"""Issue 11, defect 3: a file changed on disk after ingest is never embedded (nor pixel-cached, nor trained on)
under the sha256 ingest recorded; it is skipped, counted and named with the fix."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from pedclip.data.imaging import ImageChangedError, load_image
from pedclip.embed.pipeline import EmbedConfig, embed_dataset
from pedclip.embed.pixels import PixelCache, load_pixels
from pedclip.store.cases import cases_frame
from pedclip.store.embeddings import case_vectors, missing_images
from tests.embed.conftest import draw_image, insert_dataset, write_images

SERIAL = EmbedConfig(batch_size=4, workers=0, chunk_size=8)


def direct_vector(encoder, path) -> np.ndarray:
    return encoder.encode_images(encoder.preprocess(Image.open(path))[None])[0]


@pytest.fixture
def changed_copy(store, tmp_path):
    """Dataset `a` (3 images) whose first file is redrawn after ingest; dataset `b` holds a true copy of the
    original first image. Returns (changed sha, path of the copy)."""
    paths = write_images(tmp_path / "a", 3)
    copy = tmp_path / "b" / "copy.png"
    copy.parent.mkdir()
    shutil.copyfile(paths[0], copy)
    insert_dataset(store, "a", paths)
    insert_dataset(store, "b", [copy])
    draw_image(99, (80, 64), "L").save(paths[0])  # new pixels, same path, stale sha256 in `cases`
    sha = cases_frame(store, "a").set_index("path").loc[str(paths[0]), "image_sha256"]
    return sha, copy


def test_changed_file_is_skipped_counted_and_never_stored(store, tiny_encoder, changed_copy) -> None:
    sha, copy = changed_copy
    report = embed_dataset(store, tiny_encoder, "a", SERIAL)
    assert (report.embedded, report.failed, report.changed) == (2, 1, 1)
    assert (
        "changed since ingest" in report.failures[0].reason
        and "pedclip data ingest" in report.failures[0].reason
    )
    assert missing_images(store, tiny_encoder.fingerprint, [sha]) == [sha]  # no vector under the stale sha
    assert not PixelCache(store.paths.pixels, tiny_encoder.preprocess_config).contains(sha)
    # the true copy elsewhere gets the original's vector, not the changed file's
    embed_dataset(store, tiny_encoder, "b", SERIAL)
    _, vectors = case_vectors(store, tiny_encoder.fingerprint, "b")
    np.testing.assert_allclose(vectors[0], direct_vector(tiny_encoder, copy), atol=1e-5)


def test_embed_command_says_what_changed_and_the_fix(store, home, changed_copy, capsys) -> None:
    from pedclip.cli import main

    args = [
        "--home",
        str(home),
        "embed",
        "--model",
        "openclip:pedclip-tiny",
        "--dataset",
        "a",
        "--workers",
        "0",
    ]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "1 image(s) of a changed since ingest" in err and "`pedclip data ingest ...` again" in err


def test_training_reads_skip_changed_files(store, tiny_encoder, changed_copy) -> None:
    sha, _ = changed_copy
    cases = cases_frame(store, "a").sort_values("case_id").reset_index(drop=True)
    config = tiny_encoder.preprocess_config
    with pytest.raises(ImageChangedError, match="changed since ingest"):
        load_pixels(store.paths.pixels, config, cases)
    changed: list[int] = []
    arrays = load_pixels(store.paths.pixels, config, cases, changed=changed)
    assert len(arrays) == 2 and changed == [int(np.flatnonzero(cases["image_sha256"] == sha)[0])]


def test_npz_member_bytes_are_checked(tmp_path) -> None:
    images = np.arange(2 * 8 * 8, dtype=np.uint8).reshape(2, 8, 8)
    np.savez(tmp_path / "x.npz", train_images=images, train_labels=np.array([[0], [1]]))
    import hashlib

    good = hashlib.sha256(images[1].tobytes()).hexdigest()
    assert load_image(tmp_path / "x.npz", "train:1", expected_sha256=good).size == (8, 8)
    with pytest.raises(ImageChangedError):
        load_image(tmp_path / "x.npz", "train:0", expected_sha256=good)
