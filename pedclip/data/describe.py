"""What `pedclip data show` prints: a dataset's counts, patients, attributes and errors as plain data."""

from __future__ import annotations

import pandas as pd

from pedclip.data.labels import CLASS_NAMES
from pedclip.store import Store
from pedclip.store.cases import attributes_frame, cases_frame, get_dataset, ingest_errors_frame

TOP_VALUES = 8
NO_SPLIT = "(none)"
MAX_ERRORS = 20


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


def patient_summary(cases: pd.DataFrame) -> dict:
    per_patient = cases["patient_id"].dropna().value_counts()
    return {
        "n_patients": int(len(per_patient)),
        "n_with_several_images": int((per_patient > 1).sum()),
        "cases_without_patient": int(cases["patient_id"].isna().sum()),
    }


def attribute_summary(cases: pd.DataFrame) -> dict:
    """{attribute: {value: count}} for the most common values of each attribute."""
    frame = attributes_frame(cases)
    summary = {}
    for column in sorted(frame.columns):
        counts = frame[column].dropna().astype(str).value_counts().head(TOP_VALUES)
        summary[column] = {str(k): int(v) for k, v in counts.items()}
    return summary


def describe_dataset(store: Store, name: str) -> dict:
    info = get_dataset(store, name)
    cases = cases_frame(store, name)
    errors = ingest_errors_frame(store, name)
    return {
        "name": name,
        "source_kind": info["source_kind"],
        "root": info["root"],
        "class_names": info["class_names"],
        "split_spec": info["attributes"].get("splits", {}),
        "n_cases": int(len(cases)),
        "n_errors": int(len(errors)),
        "counts": [{"split": s, **c} for s, c in class_balance(cases, tuple(info["class_names"])).items()],
        "patients": patient_summary(cases),
        "attributes": attribute_summary(cases),
        "errors": _plain_records(errors[["path", "member", "reason"]].head(MAX_ERRORS)),
        "modes": {str(k): int(v) for k, v in cases["mode"].value_counts().items()},
    }


def _plain_records(frame: pd.DataFrame) -> list[dict]:
    """Records with missing values as None (valid JSON, unlike NaN)."""
    return frame.astype(object).where(frame.notna(), None).to_dict("records")
