"""`pedclip embed`, `embed-text` and `neighbors` end to end on a few drawn images."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from pedclip.cli import main
from pedclip.store.embeddings import case_vectors
from tests.embed.conftest import insert_dataset, write_images

TINY = "openclip:pedclip-tiny"


def run_json(capsys, home, *args: str) -> dict:
    capsys.readouterr()
    code = main(["--home", str(home), *args, "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def test_embed_then_neighbors_by_case_and_by_image(capsys, store, home, tmp_path, tiny_encoder):
    paths = write_images(tmp_path / "img", 8)
    insert_dataset(store, "ds", paths)
    first = run_json(capsys, home, "embed", "--model", TINY, "--dataset", "ds", "--workers", "0")
    assert (first["embedded"], first["failed"], first["fingerprint"]) == (8, 0, tiny_encoder.fingerprint)
    assert set(first["seconds"]) >= {"plan", "read", "encode", "write", "total"}
    again = run_json(capsys, home, "embed", "--model", TINY, "--dataset", "ds")
    assert (again["embedded"], again["already_embedded"]) == (0, 8)

    frame, vectors = case_vectors(store, tiny_encoder.fingerprint, "ds")
    by_case = run_json(
        capsys, home, "neighbors", "--model", TINY, "--dataset", "ds", "--case", paths[2].name, "-k", "3"
    )
    order = np.argsort(-(vectors @ vectors[frame["case_id"] == paths[2].name][0]), kind="stable")
    expected = [frame["case_id"][i] for i in order if frame["case_id"][i] != paths[2].name][:3]
    assert [n["case_id"] for n in by_case["neighbors"]] == expected
    assert {"rank", "label", "split", "distance", "path"} <= set(by_case["neighbors"][0])

    outside = tmp_path / "outside.png"
    Image.open(paths[5]).save(outside)  # same pixels as case 5, not in the store
    by_image = run_json(
        capsys, home, "neighbors", "--model", TINY, "--dataset", "ds", "--image", str(outside), "-k", "2"
    )
    assert by_image["neighbors"][0]["case_id"] == paths[5].name
    assert abs(by_image["neighbors"][0]["distance"]) < 1e-5


def test_embed_text_caches_prompt_vectors(capsys, store, home, tiny_encoder):
    doc = run_json(capsys, home, "embed-text", "--model", TINY, "a chest x-ray", "pneumonia")
    vectors = np.array([t["vector"] for t in doc["texts"]], dtype=np.float32)
    np.testing.assert_allclose(vectors, tiny_encoder.encode_texts(["a chest x-ray", "pneumonia"]), atol=1e-5)
    assert doc["dim"] == vectors.shape[1]


def test_neighbors_needs_exactly_one_query(capsys, store, home):
    assert main(["--home", str(home), "neighbors", "--model", TINY, "--dataset", "ds"]) == 1
    assert "exactly one of --case ID or --image FILE" in capsys.readouterr().err


def test_real_kermany_sample_embeds_completely(capsys, store, home, shared_data):
    sample = shared_data / "kermany-sample"
    capsys.readouterr()
    assert main(["--home", str(home), "data", "ingest", str(sample), "--name", "kermany", "--json"]) == 0
    report = run_json(capsys, home, "embed", "--model", TINY, "--dataset", "kermany", "--workers", "1")
    assert report["failed"] == 0 and report["embedded"] == report["distinct_images"] > 0
    frame, vectors = case_vectors(store, report["fingerprint"], "kermany")
    assert len(frame) == report["cases"]
    case = frame["case_id"].iloc[0]
    found = run_json(
        capsys, home, "neighbors", "--model", TINY, "--dataset", "kermany", "--case", case, "-k", "5"
    )
    sims = vectors @ vectors[0]
    others = [i for i in np.argsort(-sims, kind="stable") if frame["case_id"][i] != case][:5]
    np.testing.assert_allclose([n["similarity"] for n in found["neighbors"]], sims[others], atol=1e-5)
