"""Training data: the cases of one split as preprocessed pixels (from the pixel cache), labels and captions,
and the seeded order they are batched in. Epochs read arrays from memory, never JPEGs.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pedclip.embed.pixels import Decoder, default_decoder, load_pixels
from pedclip.errors import PedclipError
from pedclip.models.base import PreprocessConfig
from pedclip.store import Store
from pedclip.store.cases import cases_frame


@dataclass(frozen=True)
class TrainingSplit:
    """One split ready for training: (n, H, W[, C]) `geometry` arrays, (n,) 0/1 labels, n captions."""

    split: str
    case_ids: tuple[str, ...]
    pixels: np.ndarray
    labels: np.ndarray
    texts: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.case_ids)

    @property
    def n_positive(self) -> int:
        return int(self.labels.sum())


def labelled_cases(store: Store, dataset: str, split: str, split_column: str = "split") -> pd.DataFrame:
    """The split's cases that have a 0/1 label (unlabelled ones cannot be paired with a class caption);
    `split_column` says whose split: as assigned (split) or as the source gave it (source_split)."""
    frame = cases_frame(store, dataset, splits=[split], split_column=split_column)
    frame = frame[frame["label"].notna()].reset_index(drop=True)
    if frame.empty:
        raise PedclipError(
            f"dataset {dataset!r} has no labelled cases in {split_column} {split!r}; "
            "give it splits with `pedclip data split` or choose another dataset"
        )
    frame["label"] = frame["label"].astype(int)
    return frame


def captions(cases: pd.DataFrame, text: str, prompts: tuple[str, str]) -> tuple[str, ...]:
    """The caption of each case: its class prompt (`prompts[label]`) or its report."""
    if text == "prompts":
        return tuple(prompts[int(label)] for label in cases["label"])
    reports = cases["report"] if "report" in cases else pd.Series([None] * len(cases))
    missing = int((reports.fillna("").astype(str).str.strip() == "").sum())
    if missing:
        raise PedclipError(
            f"{missing} of {len(cases)} cases have no report, so --text reports cannot caption them; "
            "use --text prompts"
        )
    return tuple(str(r) for r in reports)


def load_split(
    store: Store,
    dataset: str,
    split: str,
    preprocess: PreprocessConfig,
    text: str,
    prompts: tuple[str, str],
    decoder: Decoder = default_decoder,
    split_column: str = "split",
) -> TrainingSplit:
    """Read a split's pixels through the pixel cache (decoding and caching misses) with labels and captions."""
    cases = labelled_cases(store, dataset, split, split_column)
    changed: list[int] = []
    arrays = load_pixels(store.paths.pixels, preprocess, cases, True, decoder, changed)
    if changed:  # skipped, counted and said: their pixels are not the ones ingest recorded
        warnings.warn(
            f"{len(changed)} image(s) of {dataset} {split} changed since ingest and were left out of training:"
            " run `pedclip data ingest ...` again for this dataset",
            stacklevel=2,
        )
        cases = cases.drop(index=cases.index[changed]).reset_index(drop=True)
    return TrainingSplit(
        split=split,
        case_ids=tuple(cases["case_id"]),
        pixels=np.stack(arrays),
        labels=cases["label"].to_numpy(dtype=np.int64),
        texts=captions(cases, text, prompts),
    )


def batch_indices(n: int, batch_size: int, seed: int, epoch: int | None) -> list[np.ndarray]:
    """Index batches covering 0..n-1: shuffled by (seed, epoch), or in order when epoch is None.

    The last partial batch is kept (as the study's Keras iterator did) unless it would hold a single item,
    which a contrastive loss cannot use; that one joins the batch before it.
    """
    order = np.arange(n) if epoch is None else np.random.default_rng([seed, epoch]).permutation(n)
    batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    if len(batches) > 1 and len(batches[-1]) == 1:
        last = batches.pop()
        batches[-1] = np.concatenate([batches[-1], last])
    return batches


def unique_texts(texts: list[str] | tuple[str, ...]) -> tuple[list[str], np.ndarray]:
    """(distinct texts in first-seen order, index of each input text in that list): class prompts are
    encoded once per batch instead of once per image."""
    distinct = list(dict.fromkeys(texts))
    position = {t: i for i, t in enumerate(distinct)}
    return distinct, np.array([position[t] for t in texts], dtype=np.int64)
