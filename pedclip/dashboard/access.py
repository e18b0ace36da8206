"""The dashboard's one door to the store and the library. No streamlit here, so every function is testable.

Reads go through `pedclip.store` functions (parameterised queries, short-lived read connections), so a
page sees the last committed state while `pedclip embed` or `pedclip finetune` writes. Each call into
another part of pedclip (rescoring, neighbors, encoders, decoding, metrics) sits behind one small
function below, so that the pages never import those modules themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pedclip.config import Paths
from pedclip.dashboard import door
from pedclip.errors import PedclipError
from pedclip.eval.prompts import PromptSet, prompt_set_from_dict
from pedclip.eval.workspace import Workspace
from pedclip.store import Store
from pedclip.store import cases as store_cases
from pedclip.store import embeddings as store_embeddings
from pedclip.store import runs as store_runs


def open_store(home: str | Path | None) -> Store:
    """The store under `home` without creating or migrating it: the dashboard never writes the schema."""
    return Store(Paths.at(home))


@dataclass(frozen=True)
class StoreSummary:
    exists: bool
    datasets: int = 0
    cases: int = 0
    runs: int = 0
    models: int = 0

    @property
    def empty(self) -> bool:
        return not self.exists or self.cases == 0


def summary(store: Store) -> StoreSummary:
    if not store.exists:
        return StoreSummary(exists=False)
    try:
        store.schema_version()
    except Exception:  # noqa: BLE001 - a file no pedclip command has migrated yet holds nothing to show
        return StoreSummary(exists=False)
    frame = store_cases.list_datasets(store)
    return StoreSummary(
        exists=True,
        datasets=len(frame),
        cases=int(frame["n_cases"].sum()) if len(frame) else 0,
        runs=len(store_runs.runs_frame(store)),
        models=len(store_embeddings.models_frame(store)),
    )


def runs_table(store: Store) -> pd.DataFrame:
    """Every run, newest first (config and metrics as JSON text)."""
    return store_runs.runs_frame(store)


def run_info(store: Store, run_id: str) -> dict:
    return store_runs.get_run(store, run_id)


def datasets_table(store: Store) -> pd.DataFrame:
    return store_cases.list_datasets(store)


def class_names(store: Store, dataset: str) -> list[str]:
    """The dataset's class names, index = label: the one source of what a label is called."""
    return list(store_cases.get_dataset(store, dataset)["class_names"])


def dataset_cases(store: Store, dataset: str) -> pd.DataFrame:
    return store_cases.cases_frame(store, dataset)


def ingest_errors(store: Store) -> pd.DataFrame:
    return store_cases.ingest_errors_frame(store)


def run_cases(store: Store, run_id: str) -> pd.DataFrame:
    """A run's predictions joined to their cases (patient, split, attributes, image address)."""
    return store_runs.run_cases_frame(store, run_id)


def predictions_for_cases(store: Store, dataset: str, case_ids: Sequence[str]) -> pd.DataFrame:
    """Every run's prediction for these cases: case_id, run_id, kind, model, score, predicted."""
    return store_runs.case_predictions_frame(store, dataset, case_ids)


def embedded_models(store: Store) -> pd.DataFrame:
    """Models with image embeddings: fingerprint, spec, family, dim, dataset, embedded, cases."""
    models = store_embeddings.models_frame(store)
    datasets = store_cases.list_datasets(store)["name"].tolist()
    rows = []
    for model in models.itertuples():
        for dataset in datasets:
            embedded, total = store_embeddings.count_embedded(store, model.fingerprint, dataset)
            if embedded:
                rows.append(
                    {
                        "fingerprint": model.fingerprint,
                        "spec": model.spec,
                        "family": model.family,
                        "dim": model.dim,
                        "dataset": dataset,
                        "embedded": embedded,
                        "cases": total,
                    }
                )
    return pd.DataFrame(
        rows, columns=["fingerprint", "spec", "family", "dim", "dataset", "embedded", "cases"]
    )


def model_labels(store: Store) -> dict[str, str]:
    """Readable model labels keyed by fingerprint and by spec (see `labels.model_labels`)."""
    from pedclip.dashboard.labels import model_labels as labels_of

    return labels_of(store_embeddings.models_frame(store), store_runs.runs_frame(store))


def case_vectors(store: Store, fingerprint: str, dataset: str, splits: Sequence[str] | None = None):
    """(cases frame, (n, d) vectors) of the cached image embeddings; never encodes an image."""
    return store_embeddings.case_vectors(store, fingerprint, dataset, splits)


def paper_tables(paths: Paths) -> list[Path]:
    """The tables `pedclip paper` wrote under reports/ (CSV, Markdown, JSON), sorted by name."""
    if not paths.reports.is_dir():
        return []
    found = [
        p for p in paths.reports.rglob("*") if p.suffix.lower() in (".csv", ".md", ".json") and p.is_file()
    ]
    return sorted(found)


# ---- calls into the rest of pedclip: one function each ------------------------------------------------


def neighbors(
    store: Store,
    fingerprint: str,
    dataset: str,
    queries: np.ndarray,
    k: int,
    exclude_uids: Sequence[int] = (),
) -> pd.DataFrame:
    """The k nearest embedded cases of `dataset` per query row: query, rank, case_id, label, similarity, distance."""
    from pedclip.store.index import neighbors

    return neighbors(store, fingerprint, dataset, queries, k, exclude_uids)


def served_by(info: dict) -> str:
    """The line that names the index which served a neighbour query and its measured recall."""
    from pedclip.store.index import served_by as index_served_by

    return index_served_by(info)


def case_query(store: Store, fingerprint: str, dataset: str, case_id: str) -> tuple[int, np.ndarray]:
    """(uid, cached vector) of one case, to ask for its neighbors."""
    from pedclip.store.index import case_query as index_case_query

    return index_case_query(store, fingerprint, dataset, case_id)


def load_encoder(spec: str, home: str | Path | None = None, runtime: str = "auto"):
    """The model registry's Encoder for `spec`, run by `runtime` (the caller caches it once per process)."""
    from pedclip.models import load_encoder as registry_load

    return registry_load(spec, home=home, runtime=runtime)


def decode_upload(data: bytes, name: str):
    """An uploaded file decoded with ingest's guarded decoder (size, pixel and format limits)."""
    from pedclip.data.imaging import load_image_bytes

    return load_image_bytes(data, name)


def encode_image(encoder, image) -> np.ndarray:
    """(1, d) normalised vector for one PIL image, with the model's own preprocessing."""
    return encoder.encode_images(encoder.preprocess(image)[None])


def prompt_sets(home: str | Path | None = None) -> dict[str, dict[str, list[str]]]:
    """Prompt sets that score two classes, shipped then saved under `home`: name -> {class: [prompts]}."""
    from pedclip.eval.prompts import list_prompt_sets

    sets = list_prompt_sets(home, saved=True)
    return {p.name: {k: list(v) for k, v in p.classes.items()} for p in sets if len(p.classes) == 2}


def save_prompt_set(home: str | Path, prompts: dict[str, list[str]], name: str) -> Path:
    """The prompt lab's set saved by name under the home (`--prompts NAME` on the command line)."""
    from pedclip.eval.prompts import save_prompt_set as save

    if door.read_only():
        raise PedclipError("this dashboard is read-only (--read-only); prompt sets are not saved here")
    return save(prompt_set_from_dict(prompts), name, home)


def prompt_trials(store: Store, fingerprint: str, dataset: str) -> pd.DataFrame:
    """The prompt lab's history on (model, dataset), newest first (store/prompt_trials.py)."""
    from pedclip.store.prompt_trials import trials_frame

    return trials_frame(store, fingerprint, dataset)


def case_map(
    store: Store, fingerprint: str, datasets: Sequence[str], method: str
) -> tuple[pd.DataFrame, bool]:
    """(cases with x, y of their map, served from the store?): `pedclip.eval.projection.case_map` (a
    read-only dashboard computes a missing map without keeping it)."""
    from pedclip.eval.projection import case_map as build

    def load(dataset: str):
        return case_vectors(store, fingerprint, dataset)

    return build(store, fingerprint, datasets, method, load, keep=not door.read_only())


@dataclass(frozen=True)
class Rescored:
    """What the prompt lab shows: predictions, metrics and run row, and flips/deltas against a baseline."""

    predictions: pd.DataFrame  # dataset, case_id, score, predicted, label, split, patient_id, attributes
    metrics: dict  # name -> Metric
    run: dict
    prompt_set: PromptSet
    flipped: pd.DataFrame | None = None  # dataset, case_id, label, score_a, score_b, predicted_a/_b, now
    deltas: dict | None = None  # name -> Metric: these prompts minus the baseline


def rescore(
    workspace: Workspace,
    encoder,
    dataset: str,
    prompts: dict[str, list[str]],
    split: str,
    baseline_run: str | None,
) -> Rescored:
    """Every cached image of the split rescored with these prompts: the same function as `pedclip rescore`,
    with the dashboard's workspace caches, as prompt development (prompts scored here on test are marked
    "prompts tuned on test"). Leaking splits do not block the page: the run records them and the page says so."""
    pset = prompt_set_from_dict(prompts)
    out = workspace.rescore(
        encoder,
        dataset,
        pset,
        split=split,
        baseline_run=baseline_run,
        development=True,
        allow_leakage=True,
        history=not door.read_only(),
    )
    comparison = out.comparison
    return Rescored(
        predictions=out.result.predictions,
        metrics=dict(out.metrics),
        run=out.result.run,
        prompt_set=pset,
        flipped=None if comparison is None else comparison.flipped,
        deltas=None if comparison is None else dict(comparison.deltas),
    )


def prompt_effects(workspace: Workspace, encoder, dataset: str, prompts: dict[str, list[str]]):
    """Each prompt's leave-one-out effect on validation AUROC and the prompts' map (`Workspace.prompt_effects`)."""
    return workspace.prompt_effects(encoder, dataset, prompt_set_from_dict(prompts), split="val")


def save_rescore(workspace: Workspace, encoder, rescored: Rescored, name: str) -> str:
    """Save a prompt-lab result as a run (kind rescore), with its prompts' vectors, and return its id."""
    if door.read_only():
        raise PedclipError("this dashboard is read-only (--read-only); runs are saved with `pedclip rescore`")
    store = workspace.store
    workspace.persist_prompts(encoder, rescored.prompt_set)
    run = dict(rescored.run)
    run["run_id"] = store_runs.new_run_id("rescore")
    run["config"] = {**run.get("config", {}), "name": name, "source": "dashboard prompt lab"}
    return store_runs.save_run(store, run, rescored.predictions)


def load_case_image(path: str, member: str | None):
    """A case's image through the one guarded decoder (only called with a path read from `cases`)."""
    from pedclip.data.imaging import load_image

    return load_image(path, member)


def paired_comparison(store: Store, run_a: str, run_b: str, resamples: int):
    """Run A minus run B on the films both scored, by `pedclip compare`'s own `paired_runs`: the AUROC
    difference with a paired bootstrap CI (`resamples` draws, seed 0), DeLong's test, McNemar's exact tests
    at each run's own threshold, and the aligned cases (`.aligned.frame`, `.aligned.dropped`)."""
    from pedclip.eval.bootstrap import BootstrapConfig
    from pedclip.eval.paired_runs import paired_runs

    return paired_runs(store, run_a, run_b, BootstrapConfig(n_resamples=resamples, seed=0))
