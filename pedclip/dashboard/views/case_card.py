"""Case: one film at full resolution (window/level for 16-bit sources), its attributes and report, every
run's verdict, its neighbors under each model side by side, and the runs between which it flipped."""

from __future__ import annotations

import numpy as np
import streamlit as st
from PIL import Image

from pedclip.dashboard import access, ui
from pedclip.eval.casecard import case_card

SEEN_PARAMS = "_card_seen_params"


def take_focus() -> None:
    ui.take_focus(ui.CASE_FOCUS_KEY, SEEN_PARAMS, lambda d: ("card_dataset", f"card_case_{d}"))


def windowed(image: Image.Image, key: str) -> Image.Image:
    """8-bit films as they are; 16-bit ones through window centre/width sliders."""
    pixels = np.asarray(image)
    if image.mode not in ("I;16", "I", "F") and pixels.dtype == np.uint8:
        return image
    lo, hi = float(pixels.min()), float(pixels.max())
    left, right = st.columns(2)
    centre = left.slider("Window centre", lo, hi, (lo + hi) / 2, key=f"{key}_centre")
    width = right.slider("Window width", 1.0, max(hi - lo, 1.0), max(hi - lo, 1.0), key=f"{key}_width")
    scaled = np.clip((pixels.astype(np.float32) - (centre - width / 2)) / width, 0.0, 1.0)
    return Image.fromarray((scaled * 255).astype(np.uint8))


def pick_case() -> tuple[str, str] | None:
    datasets = ui.datasets_table()["name"].tolist()
    dataset = st.selectbox("Dataset", datasets, index=datasets.index(ui.kept("card_dataset", datasets, datasets[0])),
                           key="card_dataset")  # fmt: skip
    ui.keep("card_dataset", dataset)
    case_ids = ui.dataset_cases(dataset)["case_id"].tolist()
    if not case_ids:
        st.info("This dataset has no cases.")
        return None
    key = f"card_case_{dataset}"
    case_id = st.selectbox(
        "Case id", case_ids, index=case_ids.index(ui.kept(key, case_ids, case_ids[0])), key=key
    )
    ui.keep(key, case_id)
    return dataset, case_id


def render() -> None:
    st.title("Case")
    take_focus()
    picked = pick_case()
    if picked is None:
        return
    dataset, case_id = picked
    card = case_card(ui.store(), dataset, case_id, k=6)
    film, facts = st.columns([3, 2])
    with film:
        image = access.load_case_image(card.case["path"], card.case.get("member"))
        st.image(windowed(image, "card"), caption=f"{case_id} · {image.width}x{image.height} {image.mode}")
    with facts:
        n_wrong = int(card.verdicts["wrong"].dropna().astype(bool).sum())
        st.markdown(f"**{card.class_name or 'unlabelled'}** · split {card.case.get('split')} · "
                    f"patient {card.case.get('patient_id')} · {len(card.verdicts)} runs, {n_wrong} wrong")  # fmt: skip
        st.json(card.attributes, expanded=True)
        st.markdown(f"**Report:** {card.case.get('report') or '(none)'}")
    st.subheader("Every run's verdict")
    columns = ["run", "model", "protocol", "prompts", "threshold", "score", "predicted", "wrong"]
    ui.table(card.verdicts[columns], key="case_verdicts")
    st.subheader("Neighbors under each model")
    if not card.neighbors:
        st.caption("No model has embedded this case.")
    cases = ui.dataset_cases(dataset).set_index("case_id")
    for col, (name, frame) in zip(
        st.columns(max(len(card.neighbors), 1)), card.neighbors.items(), strict=False
    ):
        col.markdown(f"**{ui.model_label(name)}**")
        for case in frame.head(4).to_dict("records"):
            thumb = ui.thumbnail(
                cases.loc[case["case_id"]].to_dict() | {"case_id": case["case_id"], "dataset": dataset}
            )
            if thumb is not None:
                col.image(thumb, width=120)
            col.caption(f"#{case['rank']} {case['case_id']} · cosine {case['similarity']:.4f}")
    st.subheader("Runs between which its prediction flipped")
    if card.flips.empty:
        st.caption("Every run predicted the same.")
    else:
        ui.table(card.flips, key="case_flips")


if __name__ == "__main__":
    ui.guard(render)
