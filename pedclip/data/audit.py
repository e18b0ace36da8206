"""Leakage and balance audit of a dataset's splits: a pure function of its cases frame."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

from pedclip.data.labels import CLASS_NAMES

NO_SPLIT = "(none)"


@dataclass(frozen=True)
class AuditReport:
    """Class balance per split, patients in several splits, identical images in several splits."""

    n_cases: int
    balance: dict  # split -> {class name: n, "unlabelled": n, "total": n}
    shared_patients: dict  # patient_id -> sorted splits it appears in (only those in 2+)
    cross_split_duplicates: list  # [{"image_sha256", "splits", "case_ids", "labels"}] spanning 2+ splits
    within_split_duplicate_cases: int  # cases whose identical image sits in the same split (beyond the first)
    conflicting_label_duplicates: int  # identical-image groups carrying different labels

    @property
    def leakage(self) -> bool:
        return bool(self.shared_patients) or bool(self.cross_split_duplicates)

    def as_dict(self, limit: int | None = None) -> dict:
        data = asdict(self)
        data["leakage"] = self.leakage
        data["n_shared_patients"] = len(self.shared_patients)
        data["n_cross_split_duplicates"] = len(self.cross_split_duplicates)
        if limit is not None:
            data["shared_patients"] = dict(list(self.shared_patients.items())[:limit])
            data["cross_split_duplicates"] = self.cross_split_duplicates[:limit]
        return data


def _split_names(cases: pd.DataFrame) -> pd.Series:
    return cases["split"].where(cases["split"].notna(), NO_SPLIT).astype(str)


def class_balance(cases: pd.DataFrame, class_names: tuple[str, ...] = CLASS_NAMES) -> dict:
    """{split: {class name: n, unlabelled: n, total: n}} in train/val/test order, then any others."""
    splits = _split_names(cases)
    order = [s for s in ("train", "val", "test") if s in set(splits)] + sorted(
        set(splits) - {"train", "val", "test"}
    )
    balance = {}
    for split in order:
        labels = cases.loc[splits == split, "label"]
        counts = {name: int((labels == index).sum()) for index, name in enumerate(class_names)}
        balance[split] = {**counts, "unlabelled": int(labels.isna().sum()), "total": int(len(labels))}
    return balance


def shared_patients(cases: pd.DataFrame) -> dict[str, list[str]]:
    """Patients whose cases sit in more than one assigned split."""
    frame = cases.loc[cases["patient_id"].notna() & cases["split"].notna(), ["patient_id", "split"]]
    spans = frame.groupby("patient_id")["split"].agg(lambda s: sorted(set(s)))
    return {str(p): splits for p, splits in spans.items() if len(splits) > 1}


def _duplicate_groups(cases: pd.DataFrame) -> list[pd.DataFrame]:
    counts = cases["image_sha256"].value_counts()
    repeated = cases[cases["image_sha256"].isin(counts[counts > 1].index)]
    return [group for _, group in repeated.groupby("image_sha256", sort=True)]


def audit_cases(cases: pd.DataFrame, class_names: tuple[str, ...] = CLASS_NAMES) -> AuditReport:
    """The audit of a cases frame (columns case_id, label, patient_id, split, image_sha256)."""
    cross, within, conflicting = [], 0, 0
    for group in _duplicate_groups(cases):
        splits = sorted(set(group["split"].dropna()))
        labels = sorted({int(v) for v in group["label"].dropna()})
        conflicting += len(labels) > 1
        within += len(group) - group["split"].fillna(NO_SPLIT).nunique()
        if len(splits) > 1:
            cross.append(
                {
                    "image_sha256": group["image_sha256"].iat[0],
                    "splits": splits,
                    "case_ids": sorted(group["case_id"]),
                    "labels": labels,
                }
            )
    return AuditReport(
        n_cases=int(len(cases)),
        balance=class_balance(cases, class_names),
        shared_patients=shared_patients(cases),
        cross_split_duplicates=cross,
        within_split_duplicate_cases=int(within),
        conflicting_label_duplicates=int(conflicting),
    )
