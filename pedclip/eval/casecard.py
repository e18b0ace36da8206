"""One case on one card: its attributes and report, every run's verdict, its nearest neighbors under each
model that embedded it, and the pairs of runs between which its prediction flipped.

`pedclip case` prints it and the dashboard's Case page lays it out; both read it from `case_card`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from itertools import combinations

import pandas as pd

from pedclip.errors import PedclipError
from pedclip.eval.compare import flip_direction
from pedclip.eval.record import model_name
from pedclip.eval.verdicts import case_verdicts
from pedclip.store import Store
from pedclip.store.cases import cases_by_id, get_dataset
from pedclip.store.embeddings import models_frame

NEIGHBOR_COLUMNS = ["rank", "case_id", "label", "split", "similarity"]
FLIP_PAIR_COLUMNS = ["run_a", "model_a", "predicted_a", "run_b", "model_b", "predicted_b", "now"]


@dataclass
class CaseCard:
    dataset: str
    case: dict  # the cases row: case_id, path, member, label, patient_id, split, report, width, height ...
    attributes: dict
    class_name: str | None
    verdicts: pd.DataFrame  # eval.verdicts.VERDICT_COLUMNS, newest run first
    neighbors: dict[str, pd.DataFrame] = field(default_factory=dict)  # model name -> NEIGHBOR_COLUMNS
    flips: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=FLIP_PAIR_COLUMNS))

    def as_dict(self) -> dict:
        def records(frame: pd.DataFrame) -> list[dict]:
            frame = frame.astype(object)
            return frame.where(frame.notna(), None).to_dict(orient="records")

        case = {k: (None if _missing(v) else v) for k, v in self.case.items() if k != "attributes"}
        return {
            "dataset": self.dataset,
            "case": case,
            "class": self.class_name,
            "attributes": self.attributes,
            "verdicts": records(self.verdicts),
            "n_wrong": int(self.verdicts["wrong"].dropna().astype(bool).sum()),
            "neighbors": {name: records(frame) for name, frame in self.neighbors.items()},
            "flips": records(self.flips),
        }


def _missing(value) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def flip_pairs(verdicts: pd.DataFrame) -> pd.DataFrame:
    """Pairs of runs (A older, B newer) whose predictions for the case differ, and whether B fixed or broke it
    (`eval.compare.flip_direction`); `verdicts` are one case's, newest first."""
    rows = list(verdicts.iloc[::-1].itertuples(index=False))
    pairs = [(a, b) for a, b in combinations(rows, 2) if a.predicted != b.predicted]
    if not pairs:
        return pd.DataFrame(columns=FLIP_PAIR_COLUMNS)
    label = verdicts["label"].dropna()
    frame = pd.DataFrame(
        [
            {
                "run_a": a.run_id,
                "model_a": a.model,
                "predicted_a": a.predicted,
                "run_b": b.run_id,
                "model_b": b.model,
                "predicted_b": b.predicted,
            }  # fmt: skip
            for a, b in pairs
        ]
    )
    frame["now"] = flip_direction(frame["predicted_b"], int(label.iloc[0])) if len(label) else None
    return frame[FLIP_PAIR_COLUMNS]


def case_neighbors(store: Store, dataset: str, case_id: str, k: int) -> dict[str, pd.DataFrame]:
    """Nearest cases of the same dataset under each model that embedded this case (FAISS, itself excluded)."""
    from pedclip.store.index import case_query, neighbors

    out: dict[str, pd.DataFrame] = {}
    for model in models_frame(store).itertuples(index=False):
        try:
            uid, vector = case_query(store, model.fingerprint, dataset, case_id)
        except PedclipError:  # this model did not embed the case
            continue
        found = neighbors(store, model.fingerprint, dataset, vector[None], k=k, exclude_uids=[uid])
        found = found.assign(rank=found["rank"] + 1)
        name = model_name(model.spec)
        out[name if name not in out else f"{name} ({model.fingerprint[:8]})"] = found[NEIGHBOR_COLUMNS]
    return out


def case_card(store: Store, dataset: str, case_id: str, k: int = 6) -> CaseCard:
    """The card of `case_id` in `dataset`; a clear error when the case is not there. Its ~100 small queries
    go through one read-only connection (a connection costs ~12 ms to open, the queries ~1 ms each)."""
    with store.reading():
        return _case_card(store, dataset, case_id, k)


def _case_card(store: Store, dataset: str, case_id: str, k: int) -> CaseCard:
    found = cases_by_id(store, dataset, [case_id])
    if found.empty:
        raise PedclipError(
            f"dataset {dataset!r} has no case {case_id!r}; check the id (as `pedclip search` prints it)"
        )
    case = found.iloc[0].to_dict()
    classes = get_dataset(store, dataset)["class_names"]
    label = case.get("label")
    class_name = classes[int(label)] if not _missing(label) and int(label) < len(classes) else None
    verdicts = case_verdicts(store, dataset, [case_id])
    return CaseCard(
        dataset=dataset,
        case=case,
        attributes=json.loads(case.get("attributes") or "{}"),
        class_name=class_name,
        verdicts=verdicts,
        neighbors=case_neighbors(store, dataset, case_id, k),
        flips=flip_pairs(verdicts),
    )
