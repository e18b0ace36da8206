"""A tiny store for the dashboard, built with the store API directly (no ingest, no embedding run).

Two datasets of small PIL-drawn radiograph-like PNGs, one leaking patient, one duplicated image, one
ingest error, the tiny model registered with seeded unit vectors that separate the classes a little,
a second (unloadable) model, three runs with predictions and one paper table under reports/.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from pedclip.eval.bootstrap import BootstrapConfig, metrics_with_ci
from pedclip.store import Store
from pedclip.store.cases import CaseRow, IngestError, replace_cases, replace_ingest_errors, upsert_dataset
from pedclip.store.embeddings import case_vectors, put_image_embeddings, register_model
from pedclip.store.runs import save_run

TINY_SPEC = "openclip:pedclip-tiny"
OTHER = {"fingerprint": "0" * 20, "spec": "openclip:not-on-this-machine", "family": "openclip", "dim": 8,
         "preprocess": {}, "dtype": "fp32", "weights": "none"}  # fmt: skip


@dataclass(frozen=True)
class FixtureInfo:
    home: Path
    fingerprint: str
    dim: int
    runs: tuple[str, ...]
    leaking_patient: str = "p03"


def draw(label: int, seed: int, size: int = 64) -> Image.Image:
    """A grey thorax with two dark lungs; pneumonia adds a bright blob in one lung."""
    rng = np.random.default_rng(seed)
    img = Image.new("L", (size, size), 20)
    pen = ImageDraw.Draw(img)
    pen.ellipse((6, 4, size - 6, size - 2), fill=120)
    pen.ellipse((12, 10, size // 2 - 2, size - 10), fill=50)
    pen.ellipse((size // 2 + 2, 10, size - 12, size - 10), fill=50)
    if label:
        x, y = int(rng.integers(14, size - 24)), int(rng.integers(14, size - 24))
        pen.ellipse((x, y, x + 10, y + 12), fill=200)
    noise = rng.integers(-12, 12, (size, size))
    return Image.fromarray(np.clip(np.asarray(img, dtype=int) + noise, 0, 255).astype(np.uint8))


def _cases(root: Path, dataset: str, n: int, seed: int, splits: list[str], site: str) -> list[CaseRow]:
    rows = []
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        label = i % 2
        path = root / f"{dataset}-{i:03d}.png"
        draw(label, seed * 1000 + i).save(path)
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        pathogen = ("bacterial", "viral")[i % 4 // 2] if label else "none"
        rows.append(CaseRow(case_id=path.name, path=str(path), image_sha256=sha, width=64, height=64, mode="L",
                            label=label, patient_id=f"p{i // 2:02d}" if dataset == "tiny" else f"q{i:02d}",
                            split=splits[i], attributes={"site": site, "pathogen": pathogen}))  # fmt: skip
    return rows


def _vectors(labels: np.ndarray, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=dim)
    vectors = rng.normal(size=(len(labels), dim)) + np.outer(labels * 2 - 1, direction) * 0.6
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def _run(store: Store, run_id: str, kind: str, made_by: dict, dataset: str, frame: pd.DataFrame, scores,
         **fields) -> str:  # fmt: skip
    y = frame["label"].to_numpy()
    predicted = (scores >= fields.pop("threshold", 0.5)).astype(int)
    metrics, _ = metrics_with_ci(
        y, scores, predicted, frame["patient_id"].to_numpy(), BootstrapConfig(n_resamples=50)
    )
    predictions = pd.DataFrame({"dataset": dataset, "case_id": frame["case_id"], "score": scores,
                                "predicted": predicted, "label": y})  # fmt: skip
    run = {"run_id": run_id, "kind": kind, "protocol": "sound", "model": made_by["spec"],
           "fingerprint": made_by["fingerprint"], "eval_dataset": dataset, "split": "test",
           "config": {"threshold": {"value": 0.5, "rule": "fixed 0.5"}},
           "metrics": {k: m.as_dict() for k, m in metrics.items()}} | fields  # fmt: skip
    return save_run(store, run, predictions)


def build_fixture_store(home: Path, encoder, n: int = 40) -> FixtureInfo:
    """Fill an empty PEDCLIP_HOME; `encoder` is the tiny Encoder whose fingerprint keys the vectors."""
    store = Store.open(home)
    splits = ["train"] * (n * 2 // 5) + ["val"] * (n // 5)
    splits += ["test"] * (n - len(splits))
    splits[6] = "test"  # patient p03 (cases 6, 7) now sits in train and test: the leak the audit must show
    tiny = _cases(home / "datasets" / "tiny", "tiny", n, 1, splits, "A")
    other = _cases(home / "datasets" / "tiny-b", "tiny-b", 12, 2, ["test"] * 12, "B")
    other[0] = CaseRow(**{**other[0].__dict__, "image_sha256": tiny[0].image_sha256})  # a duplicated image
    for name, rows in (("tiny", tiny), ("tiny-b", other)):
        upsert_dataset(store, name, "synth", str(home / "datasets" / name), ["normal", "pneumonia"])
        replace_cases(store, name, rows)
    replace_ingest_errors(
        store, "tiny", [IngestError(path=str(home / "broken.png"), reason="truncated file")]
    )
    model = encoder.describe()
    register_model(store, model)
    register_model(store, OTHER)
    runs = []
    for offset, (name, rows) in enumerate((("tiny", tiny), ("tiny-b", other))):
        labels = np.array([r.label for r in rows])
        vectors = _vectors(labels, model["dim"], seed=10 + offset)
        put_image_embeddings(store, model["fingerprint"], [r.image_sha256 for r in rows], vectors)
        put_image_embeddings(store, OTHER["fingerprint"], [r.image_sha256 for r in rows],
                             _vectors(labels, OTHER["dim"], seed=20 + offset))  # fmt: skip
        frame = pd.DataFrame([r.__dict__ for r in rows])
        test = frame[frame["split"] == "test"].reset_index(drop=True)
        rng = np.random.default_rng(offset)
        scores = np.clip(0.5 + (test["label"] * 2 - 1) * 0.2 + rng.normal(0, 0.25, len(test)), 0.01, 0.99)
        runs.append(_run(store, f"zeroshot-{name}", "zeroshot", model, name, test, scores))
    test = pd.DataFrame([r.__dict__ for r in tiny if r.split == "test"])
    probe_scores = np.clip(0.5 + (test["label"] * 2 - 1) * 0.3 + np.random.default_rng(5).normal(0, 0.3, len(test)),
                           0.01, 0.99)  # fmt: skip
    runs.append(_run(store, "probe-tiny", "probe", model, "tiny", test, probe_scores))
    reports = store.paths.reports / "paper"
    reports.mkdir(parents=True, exist_ok=True)
    # like `pedclip paper`'s tables: the published row has no CI and no run (blank cells)
    pd.DataFrame({"dataset": ["UCSD", "UCSD"], "method": ["CLIP", "CLIP"], "source": ["published", "sound"],
                  "AUC": [0.4645, 0.51], "AUC 95% CI": [None, "0.402-0.618"], "n": ["", 21]}
                 ).to_csv(reports / "table2_zeroshot.csv", index=False)  # fmt: skip
    return FixtureInfo(home=home, fingerprint=model["fingerprint"], dim=model["dim"], runs=tuple(runs))


FINETUNE_RUN = "finetune-20260101-120000-abc123"


def add_finetuned_model(home: Path, info: FixtureInfo) -> str:
    """A fine-tuned child of the tiny model (checkpoint spec, embeddings of `tiny`, the finetune run that made
    it) and, newest of all, an uninformative paper run on every split that predicts everything negative.
    Returns the child's spec."""
    store = Store.open(home)
    child = {"fingerprint": "c" * 20, "spec": f"local:{home}/checkpoints/{FINETUNE_RUN}", "family": "openclip",
             "dim": info.dim, "preprocess": {}, "dtype": "fp32", "weights": "none",
             "parent_fingerprint": info.fingerprint}  # fmt: skip
    register_model(store, child)
    frame, _ = case_vectors(store, info.fingerprint, "tiny")
    labels = frame["label"].to_numpy()
    put_image_embeddings(
        store, child["fingerprint"], frame["image_sha256"].tolist(), _vectors(labels, info.dim, 7)
    )
    test = frame[frame["split"] == "test"].reset_index(drop=True)
    scores = np.clip(0.5 + (test["label"] * 2 - 1) * 0.25, 0.01, 0.99)
    _run(store, FINETUNE_RUN, "finetune", child, "tiny", test, scores, model=TINY_SPEC, train_dataset="tiny",
         config={"child_spec": child["spec"], "parent_fingerprint": info.fingerprint})  # fmt: skip
    _run(store, "zeroshot-20991231-000000-ffffff", "zeroshot", {"spec": TINY_SPEC, "fingerprint": info.fingerprint},
         "tiny", frame, np.full(len(frame), 0.2), protocol="paper", split="all")  # fmt: skip
    return child["spec"]


def build_cases_only(home: Path) -> None:
    """A store with one ingested dataset and nothing embedded or evaluated yet."""
    store = Store.open(home)
    upsert_dataset(store, "tiny", "synth", str(home / "datasets" / "tiny"), ["normal", "pneumonia"])
    replace_cases(
        store,
        "tiny",
        _cases(
            home / "datasets" / "tiny", "tiny", 6, 1, ["train", "train", "val", "val", "test", "test"], "A"
        ),
    )


APP = Path(__file__).resolve().parents[2] / "pedclip" / "dashboard" / "app.py"


def open_page(at, page: str):
    """Run the app, switch to views/<page>.py, run it, and fail on any exception shown."""
    at.run()
    at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at
