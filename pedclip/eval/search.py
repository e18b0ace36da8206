"""Search films by words: a text vector ranked against a dataset's cached image vectors.

The ranking is one pure function over the image matrix (`rank_by_text`, the exact cosine top-k of
`pedclip.eval.knn`); `search_cases` serves it from the store's FAISS index for the dataset when that works
and falls back to the matrix. A query is free words, one class of a prompt set (the mean of its prompts'
vectors, as CLIP's zero-shot classifier uses them) or a case's report. The hits' precision at k against
the labels says how well the model reads the words.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pedclip.errors import PedclipError
from pedclip.eval.knn import exact_neighbors
from pedclip.eval.prompts import PromptSet
from pedclip.eval.verdicts import case_verdicts
from pedclip.store import Store
from pedclip.store.cases import cases_by_id, get_dataset
from pedclip.store.embeddings import case_vectors

HIT_COLUMNS = [
    "rank",
    "case_id",
    "similarity",
    "label",
    "class",
    "split",
    "patient_id",
    "path",
    "member",
    "image_sha256",
]


@dataclass(frozen=True)
class Query:
    """What to search for: `texts` whose mean vector is the query, and the class they describe (if known)."""

    texts: tuple[str, ...]
    describes: str | None = None  # class name the query is about: precision at k counts this class
    source: str = "words"  # words | prompts:<set>/<class> | report:<case id>

    def as_dict(self) -> dict:
        return {"texts": list(self.texts), "describes": self.describes, "source": self.source}


def words_query(text: str, describes: str | None = None) -> Query:
    if not text or not text.strip():
        raise PedclipError(
            "the search query is empty; give some words, e.g. 'right lower lobe consolidation'"
        )
    return Query((text.strip(),), describes, "words")


def prompt_set_query(prompt_set: PromptSet, class_name: str | None = None) -> Query:
    """The mean of one class's prompts (default: the set's positive class)."""
    name = class_name or prompt_set.positive
    if name not in prompt_set.classes:
        raise PedclipError(
            f"prompt set {prompt_set.name!r} has no class {name!r}; its classes: {', '.join(prompt_set.classes)}"
        )
    return Query(tuple(prompt_set.classes[name]), name, f"prompts:{prompt_set.name}/{name}")


def report_query(store: Store, dataset: str, case_id: str) -> Query:
    """A case's report as the query; it describes the case's own class."""
    found = cases_by_id(store, dataset, [case_id])
    if found.empty:
        raise PedclipError(
            f"dataset {dataset!r} has no case {case_id!r}; check the id (case ids as `pedclip search` prints them)"
        )
    report = found["report"].iloc[0]
    if not isinstance(report, str) or not report.strip():
        raise PedclipError(f"case {case_id!r} has no report to search with; give words instead")
    label = found["label"].iloc[0]
    classes = get_dataset(store, dataset)["class_names"]
    describes = classes[int(label)] if pd.notna(label) and int(label) < len(classes) else None
    return Query((report.strip(),), describes, f"report:{case_id}")


def query_vector(text_vectors: np.ndarray) -> np.ndarray:
    """(d,) unit mean of the query texts' unit vectors."""
    mean = np.asarray(text_vectors, np.float32).mean(0)
    norm = float(np.linalg.norm(mean))
    if norm == 0.0:
        raise PedclipError("the query's text vectors cancel out; use fewer or different texts")
    return mean / norm


def rank_by_text(image_vectors: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(k,) positions into `image_vectors` and their cosine similarities to `query`, best first."""
    idx, sims = exact_neighbors(image_vectors, np.asarray(query, np.float32)[None], k)
    return idx[0], sims[0]


def precision_at_k(labels: pd.Series, relevant: int, k: int) -> float | None:
    """Share of the first k hits whose label is `relevant` (hits without a label count as not relevant);
    None when there are no hits."""
    top = pd.Series(labels).head(k)
    return float((top == relevant).sum() / len(top)) if len(top) else None


@dataclass
class SearchResult:
    query: Query
    dataset: str
    hits: pd.DataFrame  # HIT_COLUMNS + verdicts (list of dicts per hit)
    relevant: int | None  # the label precision counts, from the query's class
    precision: float | None
    base_rate: float | None  # share of `relevant` among the dataset's labelled embedded cases
    n_searched: int
    source: str  # faiss | exact

    def as_dict(self) -> dict:
        hits = self.hits.astype(object).where(self.hits.notna(), None)
        return {
            "dataset": self.dataset,
            "query": self.query.as_dict(),
            "source": self.source,
            "n_searched": self.n_searched,
            "k": len(self.hits),
            "relevant_label": self.relevant,
            "precision_at_k": self.precision,
            "base_rate": self.base_rate,
            "hits": hits.to_dict(orient="records"),
        }


def _faiss_hits(
    store: Store, fingerprint: str, dataset: str, query: np.ndarray, k: int
) -> pd.DataFrame | None:
    try:
        from pedclip.store.index import neighbors
    except ImportError:
        return None
    found = neighbors(store, fingerprint, dataset, query[None], k=k)
    return found[["case_id", "similarity"]]


def _exact_hits(frame: pd.DataFrame, vectors: np.ndarray, query: np.ndarray, k: int) -> pd.DataFrame:
    idx, sims = rank_by_text(vectors, query, k)
    return pd.DataFrame({"case_id": frame["case_id"].to_numpy()[idx], "similarity": sims})


def search_cases(
    store: Store,
    fingerprint: str,
    dataset: str,
    query: Query,
    query_vec: np.ndarray,
    k: int = 24,
    use_index: bool = True,
    matrix: tuple[pd.DataFrame, np.ndarray] | None = None,
) -> SearchResult:
    """The k cases of `dataset` nearest to `query_vec`, with their labels, splits, patients and every run's
    verdict; `matrix` (cases, vectors of all embedded cases) is the caller's cached image matrix."""
    if k < 1:
        raise PedclipError(f"--k must be at least 1; got {k}")
    frame, vectors = matrix if matrix is not None else case_vectors(store, fingerprint, dataset)
    if frame.empty:
        raise PedclipError(f"dataset {dataset!r} has no embeddings for this model; run `pedclip embed` first")
    found = _faiss_hits(store, fingerprint, dataset, query_vec, k) if use_index else None
    source = "faiss" if found is not None else "exact"
    if found is None:
        found = _exact_hits(frame, vectors, query_vec, k)
    hits = _describe_hits(store, dataset, found)
    classes = get_dataset(store, dataset)["class_names"]
    relevant = classes.index(query.describes) if query.describes in classes else None
    labels = frame["label"].dropna()
    return SearchResult(
        query=query,
        dataset=dataset,
        hits=hits,
        relevant=relevant,
        precision=None if relevant is None else precision_at_k(hits["label"], relevant, k),
        base_rate=None if relevant is None or labels.empty else float((labels == relevant).mean()),
        n_searched=len(frame),
        source=source,
    )


def _describe_hits(store: Store, dataset: str, found: pd.DataFrame) -> pd.DataFrame:
    cases = cases_by_id(store, dataset, found["case_id"].tolist())
    hits = found.reset_index(drop=True).assign(rank=np.arange(1, len(found) + 1))
    hits = hits.merge(cases.drop(columns=["dataset"]), on="case_id", how="left")
    hits["label"] = hits["label"].astype("Int64")
    classes = get_dataset(store, dataset)["class_names"]
    hits["class"] = hits["label"].map(
        lambda v: classes[int(v)] if pd.notna(v) and int(v) < len(classes) else None
    )
    verdicts = case_verdicts(store, dataset, hits["case_id"].tolist())
    by_case = {
        cid: group.drop(columns=["case_id"]).to_dict(orient="records")
        for cid, group in verdicts.groupby("case_id", sort=False)
    }
    hits["verdicts"] = hits["case_id"].map(lambda c: by_case.get(c, []))
    return hits[HIT_COLUMNS + ["verdicts"]]
