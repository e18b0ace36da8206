"""What the pages share: the store they read, cached reads, pickers, galleries and the encoder cache.

Reads are cached for a few seconds only (`READ_TTL_S`), so a page shows the store's last committed
state while a writer runs, without hitting DuckDB on every widget change.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pandas as pd
import streamlit as st

from pedclip.config import HOME_ENV, RUNTIME_ENV, Paths
from pedclip.dashboard import access, analysis, labels, thumbs
from pedclip.errors import PedclipError
from pedclip.eval.metrics import Metric
from pedclip.eval.record import RunRecord
from pedclip.eval.workspace import Workspace

READ_TTL_S = 5
NEIGHBORS_PAGE = "views/neighbors.py"
CASE_PAGE = "views/case_card.py"
FOCUS_KEY = "focus_case"
CASE_FOCUS_KEY = "focus_card"


def home() -> str:
    """The PEDCLIP_HOME this dashboard serves (set by `pedclip dashboard --home`)."""
    return str(Paths.at(os.environ.get(HOME_ENV)).home)


def paths() -> Paths:
    return Paths.at(home())


def store():
    return access.open_store(home())


@st.cache_data(ttl=READ_TTL_S, show_spinner=False, max_entries=256)
def _read(name: str, home_dir: str, *args):
    # One cached function for every read: streamlit keys a cache by function, and the name is in the key.
    return getattr(access, name)(access.open_store(home_dir), *args)


def _cached(fn: Callable) -> Callable:
    """`access.fn(store, *args)` as a cached `f(*args)` keyed by the home and the arguments."""

    def call(*args):
        return _read(fn.__name__, home(), *args)

    call.__name__ = fn.__name__
    return call


summary = _cached(access.summary)
runs_table = _cached(access.runs_table)
run_cases = _cached(access.run_cases)
run_info = _cached(access.run_info)
datasets_table = _cached(access.datasets_table)
dataset_cases = _cached(access.dataset_cases)
class_names = _cached(access.class_names)
ingest_errors = _cached(access.ingest_errors)
embedded_models = _cached(access.embedded_models)
case_vectors = _cached(access.case_vectors)
predictions_for_cases = _cached(access.predictions_for_cases)
model_labels = _cached(access.model_labels)
paired_comparison = _cached(access.paired_comparison)


def model_label(spec_or_fingerprint: str) -> str:
    """`demo:clip · fine-tuned on peds-a · sound · finetune-…-e8194a` for a checkpoint spec; plain specs as is."""
    return model_labels().get(spec_or_fingerprint, str(spec_or_fingerprint))


@st.cache_resource(max_entries=2, show_spinner="loading the model once for this dashboard ...")
def encoder(spec: str, home_dir: str, runtime: str = "auto"):
    """The model for uploads and prompts, loaded once per process and spec."""
    return access.load_encoder(spec, home_dir, runtime)


@st.cache_resource(max_entries=4, show_spinner=False)
def workspace(home_dir: str) -> Workspace:
    """The dashboard's caches for this home (image matrices, prompt vectors), kept for the process."""
    return Workspace(access.open_store(home_dir))


def loadable_spec(spec: str) -> str:
    """A `local:` checkpoint of a store copied elsewhere is loaded from its copy under this home."""
    prefix = "local:"
    return prefix + thumbs.relocated(paths(), spec[len(prefix) :]) if spec.startswith(prefix) else spec


def model_encoder(model: dict):
    """The encoder of a model row, checked to be the one that made the cached embeddings."""
    loaded = encoder(loadable_spec(model["spec"]), home(), os.environ.get(RUNTIME_ENV) or "auto")
    if loaded.fingerprint != model["fingerprint"]:
        raise PedclipError(
            f"model {model['spec']} loads here with fingerprint {loaded.fingerprint}, not {model['fingerprint']} "
            "that these embeddings were made with; pick a model whose weights are on this machine"
        )
    return loaded


def guard(render: Callable[[], None]) -> None:
    """Run a page; a user-fixable error is shown as one line, not a traceback."""
    try:
        render()
    except PedclipError as exc:
        st.error(str(exc))


SCORE_NOTE = "score = the run's P(pneumonia)"


def decision_threshold(run: dict, key: str, runs_word: str = "the run's") -> float | None:
    """A threshold slider that starts at the run's own threshold: None (the stored predictions) until the
    user moves it, then the chosen threshold on P(pneumonia); a caption says which is shown."""
    own = RunRecord.from_row(run).threshold
    chosen = st.slider("Decision threshold on P(pneumonia)", 0.0, 1.0, own, 0.01, key=key)
    if abs(chosen - own) < 1e-9:
        st.caption(
            f"Showing {runs_word} stored predictions at {runs_word} own threshold ({own:.2f}) · {SCORE_NOTE}"
        )
        return None
    st.caption(
        f"Re-decided at P(pneumonia) >= {chosen:.2f}; {runs_word} own threshold is {own:.2f} · {SCORE_NOTE}"
    )
    return chosen


def run_label(runs: pd.DataFrame) -> Callable[[str], str]:
    by_id = runs.set_index("run_id")

    def label(run_id: str) -> str:
        row = by_id.loc[run_id]
        return f"{run_id} · {model_label(row['model'])} · {row['eval_dataset']}/{row['split']} · {row['protocol']}"

    return label


def runs_with_predictions() -> pd.DataFrame:
    runs = runs_table()
    return runs[runs["kind"].notna()].reset_index(drop=True)


KEPT = "_kept_"  # prefix of the session keys that remember a choice across pages (widget state is dropped)


def kept(key: str, options: list, default):
    """The choice remembered under `key` if it is still an option, else `default`."""
    value = st.session_state.get(KEPT + key)
    if isinstance(default, list):
        value = [v for v in value if v in options] if isinstance(value, list) else None
        return value or default
    return value if value in options else default


def keep(key: str, value) -> None:
    st.session_state[KEPT + key] = value


def pick_run(runs: pd.DataFrame, key: str, label: str = "Run") -> str:
    """A run picker that opens on the most informative run (`labels.default_run`) and remembers the choice."""
    options = runs["run_id"].tolist()
    start = kept(key, options, labels.default_run(runs))
    run_id = st.selectbox(label, options, index=options.index(start), format_func=run_label(runs), key=key)
    keep(key, run_id)
    return run_id


def pick_model_dataset(key: str) -> tuple[dict, str] | None:
    """A model with cached image embeddings and one of its datasets; None (with a note) when there is none.

    The options are the models' specs, shown by their readable labels (a fine-tuned checkpoint by what it is).
    """
    models = embedded_models()
    if models.empty:
        st.info("No image embeddings yet: run `pedclip embed` (or `pedclip demo`).")
        return None
    # one option per fingerprint, by the name a user typed when a checkpoint has one (demo:clip's weights are
    # also the checkpoint of the run that trained them)
    typed_first = models.sort_values("spec", key=lambda s: s.str.startswith("local:"), kind="stable")
    specs = typed_first.drop_duplicates("fingerprint").drop_duplicates("spec", keep="last")["spec"].tolist()
    left, right = st.columns(2)
    start = kept(f"{key}_model", specs, specs[0])
    spec = left.selectbox(
        "Model", specs, index=specs.index(start), format_func=model_label, key=f"{key}_model"
    )
    keep(f"{key}_model", spec)
    mine = models[models["spec"] == spec]
    mine = mine[mine["fingerprint"] == mine["fingerprint"].iat[-1]]
    datasets = mine["dataset"].tolist()
    start = kept(f"{key}_dataset", datasets, datasets[0])
    dataset = right.selectbox("Dataset", datasets, index=datasets.index(start), key=f"{key}_dataset")
    keep(f"{key}_dataset", dataset)
    row = mine[mine["dataset"] == dataset].iloc[0].to_dict()
    st.caption(f"{row['embedded']} of {row['cases']} cases embedded · dimension {row['dim']} · `{spec}`")
    return row, dataset


def thumbnail(case: dict) -> bytes | None:
    try:
        return thumbs.case_thumbnail(paths(), case, access.load_case_image)
    except PedclipError:
        return None


def selected_cases(event, cases: pd.DataFrame) -> pd.DataFrame:
    """The cases a click, box or lasso selected, in the order they were picked (each once)."""
    points = (event or {}).get("selection", {}).get("points", []) if event else []
    keys = list(dict.fromkeys(tuple(p["customdata"][:2]) for p in points if p.get("customdata")))
    if not keys:
        return cases.iloc[0:0]
    wanted = pd.DataFrame(keys, columns=["dataset", "case_id"])
    return wanted.merge(cases, on=["dataset", "case_id"], how="inner")


def film_beside(case: dict, text: str):
    """A case's thumbnail with `text` to its right; returns that right-hand column (for the case's buttons)."""
    left, right = st.columns([1, 4])
    image = thumbnail(case)
    if image is not None:
        left.image(image)
    right.markdown(text)
    return right


def gallery(cases: pd.DataFrame, caption: Callable[[dict], str], key: str, columns: int = 6) -> None:
    """Thumbnails in a grid, each with a caption and a button that opens its neighbors."""
    rows = cases.to_dict("records")
    for start in range(0, len(rows), columns):
        cols = st.columns(columns)
        for col, case in zip(cols, rows[start : start + columns], strict=False):
            image = thumbnail(case)
            if image is None:
                col.warning(f"{case['case_id']}: image unreadable")
            else:
                col.image(image, width="stretch")
            col.caption(caption(case))
            left, right = col.columns(2)
            if left.button("neighbors", key=f"{key}_{case['dataset']}_{case['case_id']}"):
                open_neighbors(case["dataset"], case["case_id"])
            if right.button("case", key=f"{key}_card_{case['dataset']}_{case['case_id']}"):
                open_case(case["dataset"], case["case_id"])


def open_neighbors(dataset: str, case_id: str) -> None:
    st.session_state[FOCUS_KEY] = {"dataset": dataset, "case_id": case_id}
    st.switch_page(NEIGHBORS_PAGE, query_params={"dataset": dataset, "case": case_id})


def take_focus(focus_key: str, seen_key: str, widget_keys) -> None:
    """A case another page asked for (session state, or ?dataset=&case= on a fresh load) becomes the choice
    of the page's dataset and case widgets, `widget_keys(dataset)` -> (dataset key, case key)."""
    focus = st.session_state.pop(focus_key, None)
    asked = (st.query_params.get("dataset"), st.query_params.get("case"))
    if focus is None and all(asked) and st.session_state.get(seen_key) != asked:
        focus = {"dataset": asked[0], "case_id": asked[1]}
    st.session_state[seen_key] = asked  # a link is followed once; the user's later choices then stand
    if focus:
        dataset_key, case_key = widget_keys(focus["dataset"])
        for key, value in ((dataset_key, focus["dataset"]), (case_key, focus["case_id"])):
            keep(key, value)
            # a widget still on screen (this page's own gallery asked) must start afresh from the kept choice
            st.session_state.pop(key, None)


def open_case(dataset: str, case_id: str) -> None:
    st.session_state[CASE_FOCUS_KEY] = {"dataset": dataset, "case_id": case_id}
    st.switch_page(CASE_PAGE, query_params={"dataset": dataset, "case": case_id})


def table(frame: pd.DataFrame, key: str, **dataframe_options) -> None:
    """A table with CSV and Parquet downloads of exactly what it shows."""
    st.dataframe(frame, hide_index=True, **dataframe_options)
    csv, parquet = st.columns(2)
    csv.download_button("CSV", frame.to_csv(index=False).encode(), f"{key}.csv", "text/csv", key=f"{key}_csv")
    parquet.download_button(
        "Parquet", _parquet_bytes(frame), f"{key}.parquet", "application/octet-stream", key=f"{key}_parquet"
    )


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    import io

    buffer = io.BytesIO()
    # object columns of mixed types (a verdict list, None beside floats) are written as their text
    safe = frame.apply(lambda c: c.map(lambda v: None if v is None else str(v)) if c.dtype == object else c)
    safe.to_parquet(buffer, index=False)
    return buffer.getvalue()


def case_caption(case: dict) -> str:
    names = dict(enumerate(class_names(case["dataset"])))
    label = names.get(case.get("label"), "unlabelled")
    patient = case.get("patient_id") or "?"
    text = f"{case['case_id']} · {label} · patient {patient}"
    return (
        f"{text} · score {case['score']:.3f}" if "score" in case and case["score"] == case["score"] else text
    )


def metric_cards(
    metrics: dict[str, Metric], names: tuple[str, ...] = ("auroc", "recall", "specificity", "accuracy")
) -> None:
    titles = {
        "auroc": "AUROC",
        "recall": "Sensitivity",
        "specificity": "Specificity",
        "accuracy": "Accuracy",
        "auprc": "AUPRC",
        "f1": "F1",
        "precision": "Precision",
    }
    for col, name in zip(st.columns(len(names)), names, strict=True):
        metric = metrics.get(name) or Metric(None, "not computed")
        col.metric(titles.get(name, name), analysis.format_rate(metric.value))
        if metric.lo is not None and metric.hi is not None:
            col.caption(f"95% CI [{metric.lo:.3f}, {metric.hi:.3f}]")
        elif metric.value is None:
            col.caption(metric.reason or "undefined")
