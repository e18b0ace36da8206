"""CSV manifests whose paths are URLs: read through pyarrow's filesystems (file:// here; s3://, gs:// alike)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from pedclip.data.imaging import load_image
from pedclip.data.ingest import ingest
from pedclip.data.remote import is_url, read_url, url_name
from pedclip.embed.pipeline import EmbedConfig, embed_dataset
from pedclip.store.cases import cases_frame
from pedclip.store.embeddings import case_vectors
from tests.embed.conftest import write_images


def test_urls_are_told_from_paths():
    assert is_url("s3://bucket/a/b.png") and is_url("file:///tmp/x.jpg") and is_url("gs://b/k?x=1")
    assert not is_url("/tmp/x.png") and not is_url("C:/x.png") and not is_url("1x://b")
    assert url_name("gs://b/dir/film.jpg?generation=3") == "film.jpg"


def test_manifest_of_file_urls_ingests_and_embeds_like_paths(store, tmp_path):
    from pedclip.models import load_encoder

    tiny_encoder = load_encoder("openclip:pedclip-tiny")
    paths = write_images(tmp_path / "img", 4)
    missing = (tmp_path / "img" / "gone.png").as_uri()
    lines = [f"{p.as_uri()},{i % 2},train" for i, p in enumerate(paths)] + [f"{missing},1,train"]
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,label,split\n" + "\n".join(lines) + "\n")
    summary = ingest(store, manifest, "urls", "csv", workers=0)
    assert (summary.cases, summary.errors) == (4, 1) and summary.error_examples[0]["path"] == missing
    frame = cases_frame(store, "urls")
    assert sorted(frame["case_id"]) == sorted(p.as_uri() for p in paths)  # the URL is the case id
    assert read_url(paths[0].as_uri()) == paths[0].read_bytes()
    report = embed_dataset(
        store, tiny_encoder, "urls", EmbedConfig(batch_size=2, workers=0, use_pixel_cache=False)
    )
    assert (report.embedded, report.failed) == (4, 0)
    got, vectors = case_vectors(store, tiny_encoder.fingerprint, "urls")
    by_path = [tiny_encoder.geometry(Image.open(str(tmp_path / "img" / url_name(u)))) for u in got["path"]]
    np.testing.assert_allclose(
        vectors, tiny_encoder.encode_images(tiny_encoder.normalize(by_path)), atol=1e-6
    )
    assert np.array_equal(np.asarray(load_image(paths[1].as_uri())), np.asarray(load_image(paths[1])))
