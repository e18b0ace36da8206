"""Leakage findings: patients and identical images across splits (a dataset's audit), and identical images
shared with other datasets. Pure functions of cases frames; `pedclip data audit` and the dashboard call them."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

from pedclip.data.describe import NO_SPLIT, class_balance
from pedclip.data.labels import CLASS_NAMES


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


def shared_patients(cases: pd.DataFrame) -> dict[str, list[str]]:
    """Patients whose cases sit in more than one assigned split."""
    frame = cases.loc[cases["patient_id"].notna() & cases["split"].notna(), ["patient_id", "split"]]
    counts = frame.groupby("patient_id")["split"].nunique()  # vectorised: sound runs check this every call
    shared = frame[frame["patient_id"].isin(counts[counts > 1].index)]
    return {str(p): sorted(set(s)) for p, s in shared.groupby("patient_id")["split"]}


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


def leakage_message(name: str, report: AuditReport) -> str:
    """One sentence: how the dataset's splits leak, and the fix."""
    return (
        f"dataset {name!r} leaks across splits: {len(report.shared_patients)} shared patient(s), "
        f"{len(report.cross_split_duplicates)} identical image(s); re-split with `pedclip data split {name}`"
    )


def shared_images(cases: pd.DataFrame, all_cases: pd.DataFrame) -> pd.DataFrame:
    """Other datasets holding identical images (same sha256) as `cases`: dataset, images (distinct shas).

    Information, not leakage: two datasets may hold the same films on purpose (e.g. with other texts).
    """
    name = cases["dataset"].iat[0] if len(cases) else None
    others = all_cases[
        (all_cases["dataset"] != name) & all_cases["image_sha256"].isin(set(cases["image_sha256"]))
    ]
    counts = others.groupby("dataset")["image_sha256"].nunique()
    return counts.rename("images").reset_index().sort_values(["images", "dataset"], ascending=[False, True])
