"""Ingest into the store: idempotent, reports what changed, one error row per bad file, splits kept."""

from __future__ import annotations

import pytest
from data_builders import save_jpeg, write_bad_files

from pedclip.data.ingest import ingest, split_dataset
from pedclip.data.splits import SplitSpec
from pedclip.errors import PedclipError
from pedclip.store.cases import cases_frame, get_dataset, ingest_errors_frame, list_datasets

PNEUMONIA = "chest_xray/train/PNEUMONIA"


def test_reingest_is_idempotent_and_changes_are_reported(store, kermany_copy):
    first = ingest(store, kermany_copy, "k", workers=1)
    assert (first.cases, first.added, first.errors, first.source_kind) == (9, 9, 0, "kermany")
    before = cases_frame(store, "k")
    again = ingest(store, kermany_copy, "k", workers=1)
    assert (again.added, again.updated, again.removed, again.unchanged) == (0, 0, 0, 9)
    assert cases_frame(store, "k").equals(before)

    (kermany_copy / PNEUMONIA / "person21_bacteria_72.jpeg").unlink()
    save_jpeg(kermany_copy / PNEUMONIA / "person99_virus_1.jpeg")
    save_jpeg(kermany_copy / PNEUMONIA / "person1441_virus_2457.jpeg", seed=9)  # same name, new pixels
    changed = ingest(store, kermany_copy, "k", workers=1)
    assert (changed.added, changed.updated, changed.removed, changed.unchanged) == (1, 1, 1, 7)
    cases = cases_frame(store, "k").set_index("case_id")
    assert cases.loc[f"{PNEUMONIA}/person99_virus_1.jpeg", "patient_id"] == "person99"
    assert f"{PNEUMONIA}/person21_bacteria_72.jpeg" not in cases.index


def test_one_error_row_per_bad_file_and_every_good_file_kept(store, tmp_path):
    pytest.importorskip("pydicom")
    bad = write_bad_files(tmp_path / "src/pneumonia")
    for i in range(3):
        save_jpeg(tmp_path / f"src/normal/{i}.jpeg", seed=i)
    summary = ingest(store, tmp_path / "src", "mixed", workers=1)
    assert (summary.cases, summary.errors) == (3, len(bad))
    errors = ingest_errors_frame(store, "mixed")
    assert sorted(errors["path"]) == sorted(str(p.resolve()) for p in bad.values())
    assert errors["reason"].str.len().min() > 10
    assert len(cases_frame(store, "mixed")) == 3


def test_nothing_usable_writes_nothing_and_keeps_an_existing_dataset(store, tmp_path, kermany_copy):
    write_bad_files(tmp_path / "bad/normal")
    (tmp_path / "bad/normal/broken.dcm").unlink()  # keep the test independent of pydicom
    summary = ingest(store, tmp_path / "bad", "k", workers=1)
    assert not summary.usable and not summary.written and summary.errors == 4
    assert list_datasets(store).empty
    ingest(store, kermany_copy, "k", workers=1)
    ingest(store, tmp_path / "bad", "k", workers=1)
    assert len(cases_frame(store, "k")) == 9


def test_made_splits_survive_an_unchanged_reingest_and_are_redone_after_a_change(store, kermany_copy):
    ingest(store, kermany_copy, "k", workers=1)
    spec = SplitSpec(ratios=(0.5, 0.25, 0.25), seed=4)
    split_dataset(store, "k", spec)
    made = dict(zip(*cases_frame(store, "k")[["case_id", "split"]].T.values, strict=True))
    again = ingest(store, kermany_copy, "k", workers=1)
    assert (again.updated, again.resplit) == (0, False)
    assert dict(zip(*cases_frame(store, "k")[["case_id", "split"]].T.values, strict=True)) == made
    assert get_dataset(store, "k")["attributes"]["splits"]["seed"] == 4
    save_jpeg(kermany_copy / PNEUMONIA / "person77_virus_1.jpeg")
    changed = ingest(store, kermany_copy, "k", workers=1)
    assert changed.added == 1 and changed.resplit
    frame = cases_frame(store, "k")
    assert frame["split"].notna().all()
    assert (frame["source_split"].isin(["train", "test"])).all()  # the source's own splits stay recorded


@pytest.mark.parametrize("name", ["", "a b", "../x", "-lead"])
def test_bad_dataset_names_are_rejected(store, kermany_copy, name):
    with pytest.raises(PedclipError, match="dataset name"):
        ingest(store, kermany_copy, name)
