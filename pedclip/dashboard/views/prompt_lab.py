"""Prompt lab: edit each class's prompts and rescore every cached image of a split at once.

Rescoring goes through the same function as `pedclip rescore`; only prompts never seen by the model
are encoded, image embeddings are read from the store.
"""

from __future__ import annotations

import streamlit as st

from pedclip.dashboard import access, analysis, door, labels, ui
from pedclip.errors import PedclipError
from pedclip.eval import figures
from pedclip.eval.metrics import Metric
from pedclip.eval.record import RunRecord, short_run_id

RESULT_KEY = "prompt_lab_result"


def prompt_editor(start: dict[str, list[str]], key: str) -> tuple[dict[str, list[str]], bool]:
    """A form with one text area per class (one prompt per line); returns (prompts, submitted)."""
    with st.form(f"prompt_form_{key}"):
        cols = st.columns(len(start))
        prompts = {}
        for col, (name, texts) in zip(cols, start.items(), strict=True):
            text = col.text_area(
                f"Prompts for “{name}” (one per line)",
                "\n".join(texts),
                height=200,
                key=f"pl_text_{key}_{name}",
            )
            prompts[name] = [line.strip() for line in text.splitlines() if line.strip()]
        submitted = st.form_submit_button("Rescore", type="primary")
    return prompts, submitted


def pick_baseline(dataset: str, split: str, fingerprint: str) -> str | None:
    """A run to compare flips against: by default the most informative one of this model and split."""
    runs = ui.runs_with_predictions()
    runs = runs[(runs["eval_dataset"] == dataset)].reset_index(drop=True)
    same = runs[(runs["fingerprint"] == fingerprint) & (runs["split"] == split)]
    options = ["(none)", *runs["run_id"].tolist()]
    # by default only a run of the same split (one of another split shares no cases); a choice is kept per
    # split, so moving to another split opens on that split's own default
    key = f"pl_baseline_{split}"
    start = ui.kept(key, options, (labels.default_run(same) if len(same) else None) or "(none)")
    chosen = st.selectbox(
        "Compare flips against",
        options,
        index=options.index(start),
        key=key,
        format_func=lambda r: r if r == "(none)" else ui.run_label(runs)(r),
    )
    ui.keep(key, chosen)
    return None if chosen == "(none)" else chosen


def show_result(result: access.Rescored, baseline: str | None) -> None:
    ui.metric_cards(result.metrics)
    runs = [figures.ScoredRun(RunRecord.from_row(result.run), result.predictions, "these prompts")]
    if baseline:
        base = RunRecord.from_row(ui.run_info(baseline))
        base_cases = ui.run_cases(baseline).dropna(subset=["label"])
        runs.append(figures.ScoredRun(base, base_cases, f"baseline {short_run_id(baseline)}"))
    fig = figures.roc_figure(runs)
    left, right = st.columns([1, 1])
    left.plotly_chart(fig, width="stretch")
    with right:
        flipped = result.flipped
        if baseline is None or flipped is None:
            st.caption("Choose a baseline run to see which cases flip.")
        else:
            counts = flipped["now"].value_counts().to_dict() if len(flipped) else {}
            delta = analysis.format_metric((result.deltas or {}).get("auroc") or Metric(None))
            st.markdown(
                f"**{len(flipped)} flipped cases** vs the baseline: {counts.get('fixed', 0)} fixed, "
                f"{counts.get('broken', 0)} broken · AUROC change {delta}"
            )
            flipped = flipped.rename(
                columns={
                    "score_a": "baseline score",
                    "predicted_a": "baseline predicted",
                    "score_b": "score",
                    "predicted_b": "predicted",
                }
            )
            st.dataframe(flipped.round(3), hide_index=True, height=300)


def save_form(result: access.Rescored, encoder) -> None:
    if door.read_only():
        st.caption("Read-only dashboard: saving prompt sets as runs is off.")
        return
    with st.form("pl_save"):
        name = st.text_input("Name of this prompt set", "my prompts", key="pl_save_name")
        if st.form_submit_button("Save as a run"):
            run_id = access.save_rescore(ui.workspace(ui.home()), encoder, result, name)
            st.cache_data.clear()  # the new run must show on the other pages at once
            st.success(f"Saved as run {run_id}")


def render() -> None:
    st.title("Prompt lab")
    picked = ui.pick_model_dataset("pl")
    if picked is None:
        return
    model, dataset = picked
    sets = access.prompt_sets()
    left, right = st.columns(2)
    set_name = left.selectbox("Start from prompt set", list(sets), key="pl_set")
    splits = sorted(ui.dataset_cases(dataset)["split"].dropna().unique()) or ["test"]
    split = right.selectbox(  # validation by default: tuning prompts on test is peeking
        "Split", splits, index=splits.index("val") if "val" in splits else 0, key="pl_split"
    )
    if split == "test":
        st.warning("Scoring on test: prompts developed here are recorded as “prompts tuned on test”.")
    baseline = pick_baseline(dataset, split, model["fingerprint"])
    prompts, submitted = prompt_editor(sets[set_name], key=set_name)
    if any(not texts for texts in prompts.values()):
        raise PedclipError("every class needs at least one prompt; write one per line")
    encoder = ui.model_encoder(model)
    state = (model["fingerprint"], dataset, split, repr(prompts), baseline)
    cached = st.session_state.get(RESULT_KEY)
    if submitted or cached is None or cached[0] != state:
        result = access.rescore(ui.workspace(ui.home()), encoder, dataset, prompts, split, baseline)
        st.session_state[RESULT_KEY] = (state, result)
    result = st.session_state[RESULT_KEY][1]
    st.caption(
        f"{len(result.predictions)} cached images of {dataset}/{split} rescored with "
        f"{sum(len(v) for v in prompts.values())} prompts"
    )
    leak = result.run["config"].get("leakage_allowed")
    if leak:
        st.warning(
            f"{dataset}'s splits leak: {leak['shared_patients']} shared patient(s), "
            f"{leak['cross_split_duplicates']} identical image(s); re-split it with `pedclip data split`."
        )
    if result.run["config"].get("prompts_tuned_on_test"):
        st.caption("These prompts were developed on test: their test runs say “prompts tuned on test”.")
    show_result(result, baseline)
    save_form(result, encoder)


if __name__ == "__main__":
    ui.guard(render)
