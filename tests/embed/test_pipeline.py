"""The embedding pipeline: equal to direct encoding, cached, content-addressed, tolerant of bad files."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from pedclip.embed.pipeline import ChunkWriter, EmbedConfig, embed_dataset, plan_missing
from pedclip.embed.pixels import PixelCache, load_pixels
from pedclip.embed.reader import ImageRef, read_batches, read_batches_between
from pedclip.errors import PedclipError
from pedclip.models.base import geometry
from pedclip.store.cases import cases_frame
from pedclip.store.embeddings import case_vectors, count_embedded, models_frame
from tests.embed.conftest import case_row, insert_dataset, write_images

SERIAL = EmbedConfig(batch_size=4, workers=0, chunk_size=8)


def direct_vectors(encoder, paths) -> np.ndarray:
    return np.concatenate([encoder.encode_images(encoder.preprocess(Image.open(p))[None]) for p in paths])


def stored_by_path(store, fingerprint, dataset) -> dict[str, np.ndarray]:
    frame, vectors = case_vectors(store, fingerprint, dataset)
    return dict(zip(frame["path"], vectors, strict=True))


@pytest.mark.parametrize(("reader", "workers"), [("threads", 0), ("threads", 2), ("processes", 2)])
def test_pipeline_equals_direct_encoding(store, tmp_path, tiny_encoder, reader, workers):
    paths = write_images(tmp_path / "img", 11)
    insert_dataset(store, "ds", paths)
    config = EmbedConfig(batch_size=4, reader=reader, workers=workers, chunk_size=5)
    report = embed_dataset(store, tiny_encoder, "ds", config)
    assert (report.embedded, report.failed, report.cases) == (11, 0, 11)
    stored = stored_by_path(store, tiny_encoder.fingerprint, "ds")
    expected = direct_vectors(tiny_encoder, paths)
    np.testing.assert_allclose(np.stack([stored[str(p)] for p in paths]), expected, atol=1e-5)
    assert tiny_encoder.fingerprint in set(models_frame(store)["fingerprint"])


def test_rerun_encodes_nothing_and_duplicates_once(store, tmp_path, tiny_encoder):
    paths = write_images(tmp_path / "img", 6)
    copy = tmp_path / "img" / "copy_of_0.png"
    shutil.copy(paths[0], copy)  # same bytes, same sha: one embedding for two cases
    insert_dataset(store, "ds", [*paths, copy])
    first = embed_dataset(store, tiny_encoder, "ds", SERIAL)
    assert (first.cases, first.distinct_images, first.embedded) == (7, 6, 6)
    second = embed_dataset(store, tiny_encoder, "ds", SERIAL)
    assert (second.embedded, second.already_embedded, second.seconds["encode"]) == (0, 6, 0.0)
    assert count_embedded(store, tiny_encoder.fingerprint, "ds") == (7, 7)


def test_new_fingerprint_gets_new_vectors_and_old_stay(store, tmp_path, tiny_encoder, tiny_encoder_seed1):
    assert tiny_encoder.fingerprint != tiny_encoder_seed1.fingerprint
    paths = write_images(tmp_path / "img", 5)
    insert_dataset(store, "ds", paths)
    embed_dataset(store, tiny_encoder, "ds", SERIAL)
    _, before = case_vectors(store, tiny_encoder.fingerprint, "ds")
    report = embed_dataset(store, tiny_encoder_seed1, "ds", SERIAL)
    assert report.embedded == 5
    _, after = case_vectors(store, tiny_encoder.fingerprint, "ds")
    _, other = case_vectors(store, tiny_encoder_seed1.fingerprint, "ds")
    np.testing.assert_array_equal(before, after)
    np.testing.assert_allclose(other, direct_vectors(tiny_encoder_seed1, paths), atol=1e-5)
    assert np.abs(other - before).max() > 1e-3


def test_second_model_reads_pixel_cache_without_decoding(store, tmp_path, tiny_encoder, tiny_encoder_seed1):
    paths = write_images(tmp_path / "img", 6)
    insert_dataset(store, "ds", paths)
    expected = direct_vectors(tiny_encoder_seed1, paths)
    first = embed_dataset(store, tiny_encoder, "ds", SERIAL)
    assert (first.pixel_cache_hits, first.decoded) == (0, 6)
    shutil.move(tmp_path / "img", tmp_path / "gone")  # decoding now would fail
    calls = []
    second = embed_dataset(
        store, tiny_encoder_seed1, "ds", SERIAL, decoder=lambda p, m=None, s=None: calls.append(p)
    )
    assert (second.embedded, second.pixel_cache_hits, second.failed, calls) == (6, 6, 0, [])
    stored = stored_by_path(store, tiny_encoder_seed1.fingerprint, "ds")
    np.testing.assert_allclose(np.stack([stored[str(p)] for p in paths]), expected, atol=1e-5)


def test_corrupt_file_is_skipped_and_reported(store, tmp_path, tiny_encoder):
    paths = write_images(tmp_path / "img", 6)
    insert_dataset(store, "ds", paths)
    paths[3].write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")  # broken after ingest
    report = embed_dataset(store, tiny_encoder, "ds", EmbedConfig(batch_size=2, workers=1, chunk_size=2))
    assert (report.embedded, report.failed) == (5, 1)
    assert report.failures[0].case_ids == (paths[3].name,)
    assert (
        "changed since ingest" in report.failures[0].reason and report.changed == 1
    )  # hashed before decoding
    assert report.as_dict()["failures"][0]["path"] == str(paths[3])
    assert count_embedded(store, tiny_encoder.fingerprint, "ds") == (5, 6)


def test_unknown_dataset_is_a_user_error(store, tiny_encoder):
    with pytest.raises(PedclipError, match="unknown dataset"):
        embed_dataset(store, tiny_encoder, "nope", SERIAL)


def test_reader_stage_keeps_order_across_workers(tmp_path, tiny_encoder):
    paths = write_images(tmp_path / "img", 9)
    refs = [ImageRef(case_row(p).image_sha256, str(p)) for p in paths]
    cfg = tiny_encoder.preprocess_config
    serial = [b for b in read_batches(refs, cfg, None, batch_size=2, workers=0)]
    pooled = [b for b in read_batches(refs, cfg, tmp_path / "px", batch_size=2, workers=2)]
    assert (
        [b.shas for b in serial]
        == [b.shas for b in pooled]
        == [[r.sha256 for r in refs[i : i + 2]] for i in range(0, 9, 2)]
    )
    for a, b in zip(serial, pooled, strict=True):
        for x, y in zip(a.arrays, b.arrays, strict=True):
            np.testing.assert_array_equal(x, y)
    assert sum(b.cache_hits for b in read_batches(refs, cfg, tmp_path / "px", batch_size=4, workers=0)) == 9
    between = list(read_batches_between(refs, cfg, None, batch_size=2, threads=3))
    assert [b.shas for b in between] == [b.shas for b in serial]
    for a, b in zip(serial, between, strict=True):
        for x, y in zip(a.arrays, b.arrays, strict=True):
            np.testing.assert_array_equal(x, y)


def test_reader_between_forwards_decodes_nothing_ahead(tmp_path, tiny_encoder):
    """The CPU schedule: a batch is decoded (by several threads) only when the consumer asks for it, so no
    decoder competes with the model's forward on the previous batch; a bad file is a failure, in order."""
    import threading

    paths = write_images(tmp_path / "img", 7)
    paths[2].write_bytes(b"not an image")
    refs = [ImageRef(f"sha{i}", str(p), case_ids=(p.name,)) for i, p in enumerate(paths)]
    decoded, threads = [], set()

    def decoder(path, member=None, sha=None):
        decoded.append(path)
        threads.add(threading.get_ident())
        return Image.open(path)

    batches = read_batches_between(refs, tiny_encoder.preprocess_config, None, 3, threads=3, decoder=decoder)
    first = next(batches)
    assert (len(decoded), first.shas, [f.case_ids for f in first.failures]) == (
        3,
        ["sha0", "sha1"],
        [("img_0002.png",)],
    )
    assert threading.get_ident() not in threads  # decoded by the pool's threads, not the consumer's
    assert [b.shas for b in batches] == [["sha3", "sha4", "sha5"], ["sha6"]]
    assert len(decoded) == 7


def test_reader_follows_the_model_device():
    assert EmbedConfig().reader_for("cpu") == "threads"
    assert EmbedConfig().reader_for("cuda:0") == "processes"
    assert EmbedConfig(reader="processes").reader_for("cpu") == "processes"
    assert EmbedConfig(workers=3).decode_threads == 3


def test_chunk_writer_commits_whole_chunks(store):
    writer = ChunkWriter(store, "fp", chunk_size=4)
    vectors = np.eye(5, 3, dtype=np.float32)
    writer.add([f"s{i}" for i in range(3)], vectors[:3])
    assert writer.written == 0
    writer.add(["s3", "s4"], vectors[3:])
    assert writer.written == 5  # 5 >= 4: one transaction with all buffered rows
    writer.flush()
    assert writer.written == 5


def test_plan_lists_only_missing_distinct_images(store, tmp_path, tiny_encoder):
    paths = write_images(tmp_path / "img", 4)
    insert_dataset(store, "ds", paths)
    cases, distinct, refs = plan_missing(store, tiny_encoder.fingerprint, "ds")
    assert (cases, distinct, len(refs)) == (4, 4, 4)
    embed_dataset(store, tiny_encoder, "ds", SERIAL)
    assert plan_missing(store, tiny_encoder.fingerprint, "ds")[2] == []


def test_load_pixels_reads_cache_and_decodes_misses(store, tmp_path, tiny_encoder):
    paths = write_images(tmp_path / "img", 4)
    insert_dataset(store, "ds", paths)
    frame = cases_frame(store, "ds")
    cfg = tiny_encoder.preprocess_config
    with pytest.raises(PedclipError, match="not in the pixel cache"):
        load_pixels(store.paths.pixels, cfg, frame, decode_missing=False)
    arrays = load_pixels(store.paths.pixels, cfg, frame)
    cached = load_pixels(store.paths.pixels, cfg, frame, decode_missing=False)
    for path, a, b in zip(frame["path"], arrays, cached, strict=True):
        np.testing.assert_array_equal(a, geometry(Image.open(path), cfg))
        np.testing.assert_array_equal(a, b)
    assert PixelCache(store.paths.pixels, cfg).path_for(frame["image_sha256"].iloc[0]).exists()


def test_config_rejects_bad_values():
    with pytest.raises(PedclipError, match="batch_size"):
        EmbedConfig(batch_size=0)
    with pytest.raises(PedclipError, match="workers"):
        EmbedConfig(workers=-1)
    with pytest.raises(PedclipError, match="reader 'gpu' is not valid"):
        EmbedConfig(reader="gpu")
