"""Prompt lab: edit each class's prompts and rescore every cached image of a split at once; see what each
prompt does (leave-one-out on validation, the prompts' own map) and every set tried before (restorable,
saveable by name).

Rescoring goes through the same function as `pedclip rescore`; only prompts never seen by the model
are encoded, image embeddings are read from the store.
"""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from pedclip.dashboard import access, analysis, door, labels, ui
from pedclip.errors import PedclipError
from pedclip.eval import figures
from pedclip.eval.metrics import Metric
from pedclip.eval.prompt_effects import PromptEffects
from pedclip.eval.record import RunRecord, short_run_id

RESULT_KEY = "prompt_lab_result"
EFFECTS_KEY = "prompt_lab_effects"
RESTORED_KEY = "pl_restored"  # the classes of a history entry the editor opens with
RESTORED_FROM = "pl_restored_from"  # the set chosen when it was restored: choosing another drops it
RESTORE_COUNT = "pl_restore_count"  # a fresh editor key per restore, so its text areas take the new text


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
            ui.table(flipped.round(3), "flipped", height=300)


def save_form(result: access.Rescored, encoder, prompts: dict[str, list[str]]) -> None:
    if door.read_only():
        st.caption("Read-only dashboard: saving prompt sets and runs is off.")
        return
    with st.form("pl_save"):
        name = st.text_input("Name of this prompt set", "my prompts", key="pl_save_name")
        as_run, as_set = st.columns(2)
        if as_run.form_submit_button("Save as a run"):
            run_id = access.save_rescore(ui.workspace(ui.home()), encoder, result, name)
            st.cache_data.clear()  # the new run must show on the other pages at once
            st.success(f"Saved as run {run_id}")
        if as_set.form_submit_button("Save as a named set"):
            path = access.save_prompt_set(ui.home(), prompts, name)
            st.success(f"Saved as prompt set “{name}” ({path}); use it with `--prompts '{name}'`")


def show_effects(effects: PromptEffects) -> None:
    """Each prompt's leave-one-out effect on validation AUROC, and the prompts' own map."""
    st.subheader("What each prompt does")
    full = analysis.format_rate(effects.auroc)
    st.caption(
        f"AUROC on {effects.split} ({effects.n_cases} films) is {full} with every prompt; each row is the AUROC "
        "without that prompt, and its effect (positive: the prompt helps)"
    )
    table = effects.effects.sort_values("effect", ascending=False, na_position="last")
    table = table.rename(columns={"auroc_without": "AUROC without"})
    if not table["note"].astype(bool).any():
        table = table.drop(columns=["note"])
    config = {"prompt": st.column_config.TextColumn(width="large")}
    ui.table(table.round(4), "prompt_effects", height=260, column_config=config)
    left, _ = st.columns([3, 2])
    with left:
        st.caption(
            "The prompts' own map: each prompt, and each class's centroid (x), on their two principal axes"
        )
        fig = px.scatter(
            effects.prompt_map,
            x="x",
            y="y",
            color="class",
            symbol="kind",
            hover_data={"text": True, "x": False, "y": False},
            height=320,
            symbol_map={"prompt": "circle", "centroid": "x"},
            color_discrete_sequence=px.colors.qualitative.D3,
            labels={"x": "PC 1", "y": "PC 2"},
        )
        fig.update_traces(marker={"size": 10})
        fig.update_layout(margin={"l": 10, "r": 10, "t": 10, "b": 10})
        st.plotly_chart(fig, width="stretch", key="pl_prompt_map")


def trial_label(row: dict) -> str:
    sizes = " + ".join(str(len(v)) for v in row["prompts"]["classes"].values())
    when = pd.Timestamp(row["last_tried"]).strftime("%H:%M:%S")
    return f"AUROC {analysis.format_rate(row['auroc'])} on {row['split']} · {sizes} prompts · {when}"


def history_table(trials: pd.DataFrame) -> pd.DataFrame:
    def brief(doc: dict) -> str:
        return " | ".join(f"{k}: " + "; ".join(v) for k, v in doc["classes"].items())

    return pd.DataFrame(
        {
            "AUROC": trials["auroc"].round(3),
            "95% CI": [
                analysis.format_ci(v, lo, hi)
                for v, lo, hi in trials[["auroc", "auroc_lo", "auroc_hi"]].values
            ],
            "split": trials["split"],
            "films": trials["n_cases"],
            "tries": trials["tries"],
            "last tried": trials["last_tried"],
            "prompts": trials["prompts"].map(brief),
        }
    )


def show_history(fingerprint: str, dataset: str) -> None:
    """Every prompt set tried here on this model and dataset: sortable, and any one restorable."""
    st.subheader("History")
    trials = access.prompt_trials(ui.store(), fingerprint, dataset)  # uncached: the rescore just added one
    if trials.empty:
        st.caption("No prompt set tried yet on this model and dataset.")
        return
    st.caption(f"{len(trials)} prompt sets tried on this model and {dataset}; click a column to sort")
    ui.table(history_table(trials), "prompt_history", height=240)
    rows = trials.to_dict("records")
    left, right = st.columns([4, 1])
    index = left.selectbox(
        "Prompt set to restore",
        range(len(rows)),
        format_func=lambda i: trial_label(rows[i]),
        key="pl_restore_pick",
    )
    if right.button("Restore", key="pl_restore"):
        st.session_state[RESTORED_KEY] = rows[index]["prompts"]["classes"]
        st.session_state[RESTORE_COUNT] = st.session_state.get(RESTORE_COUNT, 0) + 1
        st.rerun()


def editor_start(sets: dict, set_name: str) -> tuple[dict[str, list[str]], str]:
    """The prompts the editor opens with, and the editor's key: a restored history entry (until another set
    is chosen), else the chosen set."""
    if st.session_state.get(RESTORED_FROM) != set_name:
        st.session_state.pop(RESTORED_KEY, None)
    restored = st.session_state.get(RESTORED_KEY)
    st.session_state[RESTORED_FROM] = set_name
    if restored:
        return restored, f"restored{st.session_state.get(RESTORE_COUNT, 0)}"
    return sets[set_name], set_name


def render() -> None:
    st.title("Prompt lab")
    picked = ui.pick_model_dataset("pl")
    if picked is None:
        return
    model, dataset = picked
    sets = access.prompt_sets(ui.home())
    left, right = st.columns(2)
    set_name = left.selectbox("Start from prompt set", list(sets), key="pl_set")
    splits = sorted(ui.dataset_cases(dataset)["split"].dropna().unique()) or ["test"]
    split = right.selectbox(  # validation by default: tuning prompts on test is peeking
        "Split", splits, index=splits.index("val") if "val" in splits else 0, key="pl_split"
    )
    if split == "test":
        st.warning("Scoring on test: prompts developed here are recorded as “prompts tuned on test”.")
    baseline = pick_baseline(dataset, split, model["fingerprint"])
    start, editor_key = editor_start(sets, set_name)
    prompts, submitted = prompt_editor(start, key=editor_key)
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
    save_form(result, encoder, prompts)
    if "val" in splits:
        effects_state = (model["fingerprint"], dataset, repr(prompts))
        kept = st.session_state.get(EFFECTS_KEY)
        if kept is None or kept[0] != effects_state:
            effects = access.prompt_effects(ui.workspace(ui.home()), encoder, dataset, prompts)
            st.session_state[EFFECTS_KEY] = kept = (effects_state, effects)
        show_effects(kept[1])
    else:
        st.caption(f"{dataset} has no validation split: the prompts' leave-one-out effects are not shown.")
    show_history(model["fingerprint"], dataset)


if __name__ == "__main__":
    ui.guard(render)
