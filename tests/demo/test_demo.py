"""`pedclip demo --quick` end to end: the study's four tables filled in both protocols, a report, reuse."""

from __future__ import annotations

import pandas as pd
import pytest

from pedclip.demo.data import generic_caption, write_captioned_manifest
from pedclip.demo.models import corpus_vocab
from pedclip.store import Store
from pedclip.store.runs import runs_frame

pytestmark = pytest.mark.slow


def test_generic_captions_never_name_a_finding() -> None:
    row = {"path": "Train/Positive/A-01.png", "view": "PA", "age_years": "64", "sex": "F",
           "report": "Patchy consolidation in the right lower lobe."}  # fmt: skip
    caption = generic_caption(row)
    assert "woman" in caption and "PA" in caption
    assert not any(word in caption for word in ("consolidation", "opacity", "pneumonia", "lobe"))
    assert generic_caption({**row, "age_years": "7", "sex": "M"}).count("boy") == 1


def test_captioned_manifest_keeps_every_row_but_the_report(tmp_path) -> None:
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame({"path": ["a.png", "b.png"], "label": [0, 1], "report": ["No focal consolidation.", "Patchy."],
                  "view": ["PA", "AP"], "age_years": [30, 40], "sex": ["M", "F"]}).to_csv(manifest, index=False)  # fmt: skip
    out = pd.read_csv(write_captioned_manifest(manifest))
    assert list(out["path"]) == ["a.png", "b.png"] and list(out["label"]) == [0, 1]
    assert not out["report"].str.contains("consolidation|Patchy").any()


def test_vocabulary_keeps_corpus_words_whole_and_can_spell_anything() -> None:
    vocab = corpus_vocab(["Patchy consolidation in the right lower lobe."])
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert {"patchy", "consolidation", "lobe", "##q", "q", "."} <= set(vocab)
    assert len(vocab) == len(set(vocab))


def test_quick_demo_fills_tables_1_to_4_in_both_protocols(quick_demo_home) -> None:
    out = quick_demo_home / "reports" / "demo"
    assert (out / "tables.md").is_file() and (out / "report.html").stat().st_size > 100_000  # plotly inlined
    counts = pd.read_csv(out / "table1.csv")
    assert set(counts[counts["source"] == "store"]["name"]) == {"peds-a", "peds-b"}
    for table in ("table2", "table3", "table4"):
        frame = pd.read_csv(out / f"{table}.csv")
        ours = frame[frame["source"].isin(["paper", "sound"])]
        assert len(ours) == 8, table  # 2 sites x 2 methods x 2 protocols
        assert ours["AUC"].notna().all(), ours[["dataset", "method", "source", "note"]]
    head = pd.read_csv(out / "table5.csv")  # CLIP vs MedCLIP: 2 sites x 4 regimes, sound cells over 2 seeds
    assert len(head) == 8 and head["p"].notna().all(), head[["dataset", "regime", "note"]]
    trained = head[head["regime"].isin(["fine-tuned", "transferred"])]
    assert (trained["seeds"] == "0,1").all() and trained["test"].str.contains("2 seeds").all()
    assert head["Holm p"].ge(head["p"]).all()
    probes = runs_frame(Store.open(quick_demo_home), ["probe"])
    assert set(probes["model"]) == {"demo:clip", "demo:medclip"}  # the two pretrained demo models
