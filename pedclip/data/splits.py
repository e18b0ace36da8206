"""Train/val/test splits: keep the source's, or make stratified, patient-grouped, seeded ones.

Pure functions over a cases frame (columns case_id, label, patient_id, source_split) returning
{case_id: split}. A split of `None` means the case is left out (class balancing subsamples).

Grouping: every patient's cases land in one split (a case without a patient id is its own group).
Stratification: each stratum (the label, or the set of labels of a mixed patient) is apportioned to
the splits by largest remainder, so every split is within one case of its ratio per stratum; groups
are placed largest first into a split they fit, chosen at random weighted by the room left, which
hits the targets exactly whenever the group sizes allow it.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from pedclip.data.labels import CLASS_NAMES, SPLITS, label_of
from pedclip.errors import PedclipError

UNUSED = "unused"
DEFAULT_RATIOS = (0.64, 0.16, 0.20)  # the study's 64/16/20
# The study's Table 1 (seed-audit section 1): per label, per split. Totals and test supports are the
# published ones; how train+val divides between the classes is not published, so it is apportioned 80/20.
STUDY_COUNTS = {
    "study-ucsd": {0: {"train": 1013, "val": 253, "test": 317}, 1: {"train": 954, "val": 240, "test": 299}},
    "study-ori": {0: {"train": 268, "val": 67, "test": 84}, 1: {"train": 258, "val": 65, "test": 81}},
}


@dataclass(frozen=True)
class SplitSpec:
    """How a dataset's splits were made; stored with the dataset so a re-ingest can redo them."""

    ratios: tuple[float, float, float] = DEFAULT_RATIOS  # train/val/test, normalised to sum 1
    seed: int = 0
    balance: str | None = None  # None | equal | study-ucsd | study-ori | normal=N,pneumonia=M
    keep_source: bool = False  # use the source's own splits instead

    def as_dict(self) -> dict:
        return {**asdict(self), "ratios": list(self.ratios)}

    @classmethod
    def from_dict(cls, data: dict) -> SplitSpec:
        return cls(
            tuple(data.get("ratios", DEFAULT_RATIOS)),
            int(data.get("seed", 0)),
            data.get("balance"),
            bool(data.get("keep_source", False)),
        )


def parse_ratios(text: str) -> tuple[float, float, float]:
    """'64/16/20' or '0.7,0.1,0.2' -> normalised (train, val, test)."""
    parts = [p for p in re.split(r"[/,:\s]+", str(text).strip()) if p]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 3 or min(values) < 0 or sum(values) <= 0 or values[0] == 0:
        raise PedclipError(
            f"--ratios {text!r} is not three non-negative train/val/test shares; use e.g. 64/16/20"
        )
    total = sum(values)
    return (values[0] / total, values[1] / total, values[2] / total)


def parse_balance(text: str | None) -> dict | None:
    """Per-label totals {label: n}, per-label-per-split counts {label: {split: n}}, 'equal', or None."""
    if text is None or str(text).strip() == "":
        return None
    key = str(text).strip().lower()
    if key in STUDY_COUNTS:
        return STUDY_COUNTS[key]
    if key == "equal":
        return {"equal": True}
    counts = {}
    for part in filter(None, re.split(r"[,\s]+", key)):
        name, _, number = part.partition("=")
        label = label_of(name)
        if label is None or not number.isdigit():
            counts = None
            break
        counts[label] = int(number)
    if not counts:
        raise PedclipError(
            f"--balance {text!r} is not understood; use study-ucsd, study-ori, equal, or counts like normal=1583,pneumonia=1493"
        )
    return counts


def apportion(n: int, ratios: tuple[float, ...]) -> list[int]:
    """Integers summing to n, each within one of n * ratio (largest remainder; ties go to the earlier split)."""
    exact = [n * r for r in ratios]
    counts = [int(np.floor(x)) for x in exact]
    order = sorted(range(len(ratios)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return counts


def _groups(cases: pd.DataFrame) -> dict[str, list[tuple[str, list[str]]]]:
    """{stratum: [(group key, case ids)]} with groups sorted by key; stratum = the group's sorted labels."""
    members: dict[str, list[str]] = {}
    labels: dict[str, set[str]] = {}
    for case_id, label, patient in zip(cases["case_id"], cases["label"], cases["patient_id"], strict=True):
        key = f"p:{patient}" if isinstance(patient, str) and patient else f"c:{case_id}"
        members.setdefault(key, []).append(str(case_id))
        labels.setdefault(key, set()).add("none" if pd.isna(label) else str(int(label)))
    strata: dict[str, list[tuple[str, list[str]]]] = {}
    for key in sorted(members):
        strata.setdefault("+".join(sorted(labels[key])), []).append((key, members[key]))
    return strata


def _place(sizes: np.ndarray, targets: dict[str, int], rng: np.random.Generator) -> list[str]:
    """The bin of each group, filling bins to their targets: largest groups first, then a random bin
    among those the group fits, weighted by the room left."""
    order = rng.permutation(len(sizes))
    ranked = order[np.argsort(-sizes[order], kind="stable")]
    draws = rng.random(len(sizes)).tolist()
    remaining = dict(targets)
    bins = list(targets)
    placed = [""] * len(sizes)
    for index, draw in zip(ranked, draws, strict=True):
        size = int(sizes[index])
        fits = [b for b in bins if remaining[b] >= size]
        if fits:
            chosen = _weighted_pick(fits, [remaining[b] for b in fits], float(draw))
        else:  # no room anywhere: the bin with most room left overshoots least
            chosen = max(bins, key=lambda b: (remaining[b], -bins.index(b)))
        remaining[chosen] -= size
        placed[index] = chosen
    return placed


def _weighted_pick(options: list[str], weights: list[int], draw: float) -> str:
    """The option whose cumulative-weight interval holds draw * total (draw uniform in [0, 1))."""
    threshold, cumulative = draw * sum(weights), 0
    for option, weight in zip(options, weights, strict=True):
        cumulative += weight
        if threshold < cumulative:
            return option
    return options[-1]


def _stratum_targets(
    available: dict[str, int], spec: SplitSpec, balance: dict | None
) -> dict[str, dict[str, int]]:
    """{stratum: {bin: cases}} for every stratum present, from {stratum: cases available}."""
    if balance is None:
        return {
            s: dict(zip(SPLITS, apportion(int(n), spec.ratios), strict=True)) for s, n in available.items()
        }
    wanted = _balanced_totals(available, balance)
    targets = {}
    for stratum, n in available.items():
        label = int(stratum) if stratum in ("0", "1") else None
        per_split = wanted.get(label) if label is not None else None
        if per_split is None:  # unlabelled or mixed-label patients are left out of a balanced set
            targets[stratum] = {**dict.fromkeys(SPLITS, 0), UNUSED: int(n)}
            continue
        if isinstance(per_split, int):
            per_split = dict(zip(SPLITS, apportion(per_split, spec.ratios), strict=True))
        need = sum(per_split.values())
        if need > n:
            raise PedclipError(
                f"--balance wants {need} {CLASS_NAMES[label]} cases but the dataset has {int(n)} "
                "(counting only single-label patients); ask for fewer"
            )
        targets[stratum] = {**{s: int(per_split.get(s, 0)) for s in SPLITS}, UNUSED: int(n) - need}
    return targets


def _balanced_totals(available: dict, balance: dict) -> dict:
    if balance.get("equal"):
        smallest = min(int(available.get("0", 0)), int(available.get("1", 0)))
        return {0: smallest, 1: smallest}
    return balance


def make_splits(cases: pd.DataFrame, spec: SplitSpec = SplitSpec()) -> dict[str, str | None]:
    """{case_id: train|val|test|None}; the same cases and spec always give the same answer."""
    if spec.keep_source:
        return keep_source_splits(cases)
    if cases.empty:
        return {}
    strata = _groups(cases)
    available = {s: sum(len(ids) for _, ids in groups) for s, groups in strata.items()}
    targets = _stratum_targets(available, spec, parse_balance(spec.balance))
    assignment: dict[str, str | None] = {}
    for index, stratum in enumerate(sorted(strata)):
        groups = strata[stratum]
        sizes = np.array([len(ids) for _, ids in groups])
        bins = _place(sizes, targets[stratum], np.random.default_rng([spec.seed, index]))
        for (_, case_ids), chosen in zip(groups, bins, strict=True):
            assignment.update(dict.fromkeys(case_ids, None if chosen == UNUSED else chosen))
    return assignment


def keep_source_splits(cases: pd.DataFrame) -> dict[str, str | None]:
    """The source's own split for every case."""
    missing = cases["source_split"].isna().sum()
    if missing == len(cases) and len(cases):
        raise PedclipError(
            "this dataset's source gave no splits; make new ones with `pedclip data split NAME`"
        )
    return {
        cid: (None if pd.isna(s) else s)
        for cid, s in zip(cases["case_id"], cases["source_split"], strict=True)
    }
