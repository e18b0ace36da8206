"""Stores built directly through the store API: cases and vectors inserted, no ingest or embed code."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from pedclip.store.cases import CaseRow, replace_cases, upsert_dataset
from pedclip.store.embeddings import put_image_embeddings, register_model

SPLIT_CYCLE = ("train", "train", "train", "val", "test")


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def add_dataset(
    store,
    name: str,
    fingerprint: str,
    direction: np.ndarray,
    n: int = 100,
    seed: int = 0,
    signal: float = 0.3,
    prevalence: float = 0.45,
    patients: bool = True,
    base: np.ndarray | None = None,
) -> np.ndarray:
    """A dataset of n cases (2 per patient) whose vectors lean along +direction when positive.

    Splits go by patient; attributes carry site and view. Returns the (n, d) vectors inserted.
    """
    rng = np.random.default_rng(seed)
    d = len(direction)
    labels = (rng.random(n) < prevalence).astype(int)
    base = unit(rng.normal(size=d)) if base is None else base
    noise = rng.normal(size=(n, d)) / np.sqrt(d)
    vectors = unit(base + noise + signal * np.where(labels[:, None] == 1, 1.0, -1.0) * unit(direction))
    rows = []
    for i in range(n):
        pid = i // 2
        rows.append(
            CaseRow(
                case_id=f"{name}/{i:04d}.png",
                path=f"/nowhere/{name}/{i:04d}.png",
                image_sha256=f"{name}-{i:04d}",
                width=64,
                height=64,
                mode="L",
                label=int(labels[i]),
                patient_id=f"{name}-p{pid}" if patients else None,
                split=SPLIT_CYCLE[pid % len(SPLIT_CYCLE)],
                attributes={"site": "A" if i % 3 else "B", "view": "PA" if i % 2 else "AP"},
            )
        )
    upsert_dataset(store, name, "synth", f"/nowhere/{name}", ["normal", "pneumonia"])
    replace_cases(store, name, rows)
    register_model(store, {"fingerprint": fingerprint, "spec": "test", "family": "openclip", "dim": d,
                           "preprocess": {}, "dtype": "fp32"})  # fmt: skip
    put_image_embeddings(store, fingerprint, [r.image_sha256 for r in rows], vectors.astype(np.float32))
    return vectors


@pytest.fixture(scope="session")
def tiny_encoder():
    from pedclip.models import load_encoder

    logging.getLogger().setLevel(logging.ERROR)  # open_clip warns that the tiny model is untrained
    return load_encoder("openclip:pedclip-tiny")


@pytest.fixture(scope="session")
def pneumonia_direction(tiny_encoder) -> np.ndarray:
    """pneumonia-minus-normal direction of the tiny model under the default `pneumonia` prompt set."""
    from pedclip.eval.prompts import load_prompt_set

    pset = load_prompt_set("pneumonia")
    pos = unit(unit(tiny_encoder.encode_texts(list(pset.classes["pneumonia"]))).mean(0))
    neg = unit(unit(tiny_encoder.encode_texts(list(pset.classes["normal"]))).mean(0))
    return pos - neg
