"""Words that name classes and splits in the wild, mapped onto pedclip's labels and split names."""

from __future__ import annotations

import re

CLASS_NAMES = ("normal", "pneumonia")  # index = label

NORMAL_WORDS = frozenset(
    {
        "0",
        "normal",
        "negative",
        "neg",
        "healthy",
        "no_finding",
        "nofinding",
        "no_pneumonia",
        "clear",
        "control",
    }
)
PNEUMONIA_WORDS = frozenset(
    {
        "1",
        "pneumonia",
        "positive",
        "pos",
        "pneumonic",
        "bacteria",
        "bacterial",
        "virus",
        "viral",
        "opacity",
        "lung_opacity",
        "consolidation",
        "covid",
        "covid19",
        "covid_19",
        "abnormal",
        "sick",
    }
)
SPLIT_WORDS = {
    "train": "train",
    "training": "train",
    "trn": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
    "testing": "test",
    "tst": "test",
    "holdout": "test",
}
SPLITS = ("train", "val", "test")


def _key(word: str) -> str:
    return re.sub(r"[\s\-]+", "_", str(word).strip().lower())


def label_of(word: object) -> int | None:
    """0 for a normal word, 1 for a pneumonia word, None when the word is not known."""
    key = _key(str(word))
    if key in ("0.0", "1.0"):
        key = key[0]
    if key in NORMAL_WORDS:
        return 0
    if key in PNEUMONIA_WORDS:
        return 1
    return None


def split_of(word: object) -> str | None:
    """'Train' / 'validation' / 'valid' / 'TEST' ... -> train | val | test; None when not a split word."""
    return SPLIT_WORDS.get(_key(str(word)))
