"""The dashboard's entry script: `pedclip dashboard` runs it with `streamlit run` (PEDCLIP_HOME set).

An empty or missing store gets one page saying what to run first instead of the dashboard's pages.
"""

from __future__ import annotations

import streamlit as st

from pedclip.dashboard import door, ui

PAGES = (
    ("views/runs.py", "Runs", ":material/table_chart:"),
    ("views/metrics.py", "Metrics", ":material/monitoring:"),
    ("views/errors.py", "Errors", ":material/error:"),
    ("views/neighbors.py", "Neighbors", ":material/hub:"),
    ("views/find_cases.py", "Find cases", ":material/search:"),
    ("views/case_card.py", "Case", ":material/radiology:"),
    ("views/side_by_side.py", "Models side by side", ":material/compare:"),
    ("views/prompt_lab.py", "Prompt lab", ":material/edit_note:"),
    ("views/embedding_map.py", "Embedding map", ":material/scatter_plot:"),
    ("views/data.py", "Data", ":material/database:"),
)


def empty_store_page() -> None:
    st.title("pedclip")
    st.warning("This store has no cases yet.")
    st.markdown(
        f"The dashboard reads the store at `{ui.paths().db}`, and there is nothing in it to show.\n\n"
        "Run **`pedclip demo`** first (it builds a small synthetic study offline), or ingest and embed a "
        "dataset with `pedclip data ingest` and `pedclip embed`, then reload this page."
    )


ADMITTED_KEY = "door_admitted"


def admitted() -> bool:
    """The door: with a token set (`pedclip dashboard` off loopback or with --token), nothing renders and no
    widget exists (no upload, no save) until this session has shown it once as `?token=...`."""
    if st.session_state.get(ADMITTED_KEY):
        return True
    if door.admits(door.expected_token(), st.query_params.get("token")):
        st.session_state[ADMITTED_KEY] = True
        return True
    st.title("pedclip")
    st.error(
        "This dashboard needs its access token: open the address `pedclip dashboard` printed (?token=...)."
    )
    return False


def main() -> None:
    st.set_page_config(page_title="pedclip", page_icon=":material/pulmonology:", layout="wide")
    if not admitted():
        return
    summary = ui.summary()
    if summary.empty:
        st.navigation([st.Page(empty_store_page, title="Start here", url_path="start")]).run()
        return
    st.sidebar.caption(
        f"`{ui.paths().home}` · {summary.datasets} datasets · {summary.cases} cases · {summary.runs} runs"
    )
    st.navigation([st.Page(path, title=title, icon=icon) for path, title, icon in PAGES]).run()


main()
