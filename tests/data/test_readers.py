"""Every source format: what each reader makes of its layout, and the errors it reports."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest
from data_builders import KERMANY_FIXTURE, gradient, save_jpeg, write_bad_files, write_dicom

from pedclip.data.imaging import load_image
from pedclip.data.readers import detect_format, inspect_items, open_source
from pedclip.data.readers_tree import SourceItem, kermany_patient
from pedclip.errors import PedclipError
from pedclip.store.cases import CaseRow, IngestError


def _read(source, fmt="auto", **kwargs) -> tuple[str, list[CaseRow], list[IngestError]]:
    opened = open_source(source, fmt, workers=1, **kwargs)
    records = list(opened.records)
    assert len(records) == opened.total
    return (
        opened.kind,
        [r for r in records if isinstance(r, CaseRow)],
        [r for r in records if isinstance(r, IngestError)],
    )


@pytest.mark.parametrize("name, patient, pathogen", [
    ("person123_bacteria_456.jpeg", "person123", "bacteria"),
    ("person1_virus_13.jpeg", "person1", "virus"),
    ("IM-0115-0001.jpeg", "IM-0115", None),
    ("IM-0011-0001-0002.jpeg", "IM-0011", None),
    ("NORMAL2-IM-1427-0001.jpeg", "NORMAL2-IM-1427", None),
    ("scan.jpeg", None, None),
])  # fmt: skip
def test_kermany_patient_ids_from_file_names(name, patient, pathogen):
    assert kermany_patient(name) == (patient, pathogen)


def test_kermany_fixture_matches_its_file_list():
    kind, rows, errors = _read(KERMANY_FIXTURE)
    expected = {r["path"]: r for r in csv.DictReader((KERMANY_FIXTURE / "files.csv").open())}
    assert kind == "kermany" and not errors
    assert {r.case_id for r in rows} == set(expected)
    for row in rows:
        truth = expected[row.case_id]
        assert row.label == (truth["label"] == "PNEUMONIA")
        assert (row.patient_id, row.split, row.mode) == (truth["patient_id"], truth["split"], truth["mode"])
        assert row.attributes["pathogen"] == truth["subtype"]
        data = Path(row.path).read_bytes()
        assert row.image_sha256 == hashlib.sha256(data).hexdigest()
        img = load_image(row.path)  # the fast (draft) inspection agrees with a full decode
        assert (row.width, row.height, row.mode) == (img.width, img.height, img.mode)


def test_kermany_layout_below_a_wrapper_folder_ignoring_macosx_and_nested_copies(tmp_path):
    save_jpeg(tmp_path / "dl/chest_xray/val/NORMAL/IM-0001-0001.jpeg")
    save_jpeg(tmp_path / "dl/chest_xray/val/PNEUMONIA/person9_virus_1.jpeg")
    save_jpeg(tmp_path / "dl/__MACOSX/chest_xray/val/NORMAL/IM-0001-0001.jpeg")
    save_jpeg(tmp_path / "dl/chest_xray/chest_xray/val/NORMAL/IM-0001-0001.jpeg")  # Kaggle's nested copy
    opened = open_source(tmp_path / "dl", workers=1)
    assert opened.attributes["images_outside_layout"] == 1
    kind, rows, errors = _read(tmp_path / "dl")
    assert kind == "kermany" and not errors
    assert sorted(r.case_id for r in rows) == ["chest_xray/val/NORMAL/IM-0001-0001.jpeg",
                                                "chest_xray/val/PNEUMONIA/person9_virus_1.jpeg"]  # fmt: skip
    assert {r.split for r in rows} == {"val"}


def test_study_layout(tmp_path):
    for i, (split, cls) in enumerate([("Train", "Positive"), ("Train", "Negative"), ("Validation", "Negative"),
                                      ("Test", "Positive")]):  # fmt: skip
        save_jpeg(tmp_path / "ori" / split / cls / f"img{i}.png", seed=i)
    kind, rows, errors = _read(tmp_path / "ori")
    assert kind == "study" and not errors
    got = {(r.split, r.label) for r in rows}
    assert got == {("train", 1), ("train", 0), ("val", 0), ("test", 1)}
    assert all(r.patient_id is None for r in rows)  # no ids in the names: CIs will resample cases


def test_study_layout_takes_patient_ids_from_kermany_file_names(tmp_path):
    names = [
        ("Train", "Positive", "person7_bacteria_30.jpeg"),
        ("Test", "Positive", "person7_bacteria_31.jpeg"),
        ("Train", "Negative", "IM-0115-0001.jpeg"),
        ("Validation", "Positive", "person8_virus_2.jpeg"),
    ]
    for i, (split, cls, name) in enumerate(names):
        save_jpeg(tmp_path / "ucsd" / split / cls / name, seed=i)
    kind, rows, _ = _read(tmp_path / "ucsd")
    got = {Path(r.case_id).name: (r.patient_id, r.attributes.get("pathogen")) for r in rows}
    assert kind == "study"
    assert got == {
        "person7_bacteria_30.jpeg": ("person7", "bacteria"),
        "person7_bacteria_31.jpeg": ("person7", "bacteria"),
        "IM-0115-0001.jpeg": ("IM-0115", "normal"),
        "person8_virus_2.jpeg": ("person8", "virus"),
    }


def test_class_folders_with_and_without_split_folders(tmp_path):
    save_jpeg(tmp_path / "src/healthy/a.png")
    save_jpeg(tmp_path / "src/site1/Pneumonia/b.png", seed=1)
    save_jpeg(tmp_path / "src/valid/negative/c.jpg", seed=2)
    save_jpeg(tmp_path / "src/loose.png", seed=3)
    (tmp_path / "src/notes.txt").write_text("not an image")
    kind, rows, errors = _read(tmp_path / "src")
    assert kind == "folders"
    assert {(r.case_id, r.label, r.split) for r in rows} == {
        ("healthy/a.png", 0, None), ("site1/Pneumonia/b.png", 1, None), ("valid/negative/c.jpg", 0, "val")}  # fmt: skip
    assert [Path(e.path).name for e in errors] == ["loose.png"]
    assert "class folder" in errors[0].reason


def test_unknown_class_folders_name_them_and_suggest_csv(tmp_path):
    save_jpeg(tmp_path / "src/cats/a.png")
    save_jpeg(tmp_path / "src/normal/b.png")
    with pytest.raises(PedclipError, match=r"'cats'.*--format csv"):
        _read(tmp_path / "src")


def test_bad_files_become_one_error_each_and_nothing_valid_is_dropped(tmp_path):
    pytest.importorskip("pydicom")
    bad = write_bad_files(tmp_path / "src/normal")
    save_jpeg(tmp_path / "src/normal/good.jpeg")
    save_jpeg(tmp_path / "src/pneumonia/good.jpeg", seed=5)
    kind, rows, errors = _read(tmp_path / "src", fmt="folders")
    assert sorted(r.case_id for r in rows) == ["normal/good.jpeg", "pneumonia/good.jpeg"]
    assert sorted(e.path for e in errors) == sorted(str(p.resolve()) for p in bad.values())
    assert all(e.reason and not e.reason.startswith(Path(e.path).name) for e in errors)


def test_csv_manifest_paths_labels_splits_and_attributes(tmp_path):
    root = tmp_path / "data"
    save_jpeg(root / "imgs/a.jpeg")
    save_jpeg(root / "imgs/b.jpeg", seed=1)
    outside = save_jpeg(tmp_path / "elsewhere/c.jpeg", seed=2)
    save_jpeg(root / "imgs/d.jpeg", seed=3)
    manifest = root / "manifest.csv"
    manifest.write_text(
        "path,label,patient_id,split,report,site,age_years\n"
        "imgs/a.jpeg,0,P1,Train,No focal consolidation.,north,4.5\n"
        "imgs/b.jpeg,Pneumonia,P2,validation,Consolidation in the right lower lobe.,south,7\n"
        f"{outside},1,,test,,south,\n"
        "imgs/missing.jpeg,0,P3,train,,north,3\n"
        "imgs/d.jpeg,maybe,P4,train,,north,3\n"
        "imgs/a.jpeg,0,P1,train,,north,3\n"
    )
    kind, rows, errors = _read(root)
    assert kind == "csv"
    by_id = {r.case_id: r for r in rows}
    assert set(by_id) == {"imgs/a.jpeg", "imgs/b.jpeg", str(outside.resolve())}
    a, b, c = by_id["imgs/a.jpeg"], by_id["imgs/b.jpeg"], by_id[str(outside.resolve())]
    assert (a.label, a.split, a.patient_id, a.report) == (0, "train", "P1", "No focal consolidation.")
    assert a.attributes == {"site": "north", "age_years": 4.5}
    assert (b.label, b.split) == (1, "val")
    assert (c.patient_id, c.report, c.attributes) == (None, None, {"site": "south"})
    reasons = sorted(e.reason for e in errors)
    assert len(errors) == 3
    assert any("does not exist" in r for r in reasons) and any("'maybe'" in r for r in reasons)
    assert any("more than once" in r for r in reasons)


def test_csv_without_required_columns_is_a_clear_error(tmp_path):
    (tmp_path / "m.csv").write_text("file,diagnosis\na.png,0\n")
    with pytest.raises(PedclipError, match="lacks the column"):
        _read(tmp_path / "m.csv")


def _write_npz(path: Path, labels: dict[str, list[int]]) -> dict[str, np.ndarray]:
    arrays = {}
    for split, values in labels.items():
        arrays[f"{split}_images"] = np.stack(
            [gradient(6, 5, seed=hash(split) % 97 + i) for i in range(len(values))]
        )
        arrays[f"{split}_labels"] = np.array(values, dtype=np.uint8).reshape(-1, 1)
    np.savez_compressed(path, **arrays)
    return arrays


def test_npz_cases_are_members_with_array_hashes(tmp_path):
    path = tmp_path / "pneumoniamnist_64.npz"
    arrays = _write_npz(path, {"train": [0, 1, 1], "val": [0], "test": [1, 7]})
    kind, rows, errors = _read(path)
    assert kind == "npz"
    assert [r.case_id for r in rows] == ["train:0", "train:1", "train:2", "val:0", "test:0"]
    assert [(e.member, "label 7" in e.reason) for e in errors] == [("test:1", True)]
    for row in rows:
        split, index = row.member.split(":")
        image = arrays[f"{split}_images"][int(index)]
        assert row.image_sha256 == hashlib.sha256(image.tobytes()).hexdigest()
        assert (row.width, row.height, row.mode, row.split) == (6, 5, "L", split)
        assert row.label == arrays[f"{split}_labels"][int(index), 0]
        np.testing.assert_array_equal(np.asarray(load_image(row.path, row.member)), image)


def test_npz_without_medmnist_arrays_is_rejected(tmp_path):
    np.savez(tmp_path / "x.npz", images=np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(PedclipError, match="MedMNIST"):
        _read(tmp_path / "x.npz")


def test_dicom_tree_labels_from_folders_and_tags_as_attributes(tmp_path):
    pytest.importorskip("pydicom")
    ramp = np.tile(np.arange(0, 4096, 64, dtype=np.uint16), (8, 1))
    write_dicom(tmp_path / "src/normal/a.dcm", ramp, PatientID="P1", PatientSex="M", ViewPosition="PA",
                PatientAge="004Y", StudyDate="20230101")  # fmt: skip
    write_dicom(
        tmp_path / "src/pneumonia/b.dcm", ramp, "MONOCHROME1", window=(2000.0, 1500.0), PatientID="P2"
    )
    assert detect_format(tmp_path / "src") == "dicom"
    kind, rows, errors = _read(tmp_path / "src")
    assert kind == "dicom" and not errors
    a, b = sorted(rows, key=lambda r: r.case_id)
    assert (a.label, a.patient_id, a.mode, a.width, a.height) == (0, "P1", "I;16", 64, 8)
    assert a.attributes["sex"] == "M" and a.attributes["view"] == "PA" and a.attributes["age_years"] == 4.0
    assert (b.label, b.patient_id, b.attributes["photometric"]) == (1, "P2", "MONOCHROME1")


def test_process_pool_gives_the_same_rows_as_one_process(tmp_path):
    items = [
        SourceItem(save_jpeg(tmp_path / f"{i}.jpeg", seed=i).resolve(), f"{i}.jpeg", i % 2) for i in range(6)
    ]
    items.append(SourceItem((tmp_path / "empty.jpeg").resolve(), "empty.jpeg", 0))
    (tmp_path / "empty.jpeg").write_bytes(b"")
    serial = list(inspect_items(items, workers=1))
    pooled = list(inspect_items(items, workers=2, pool_min_files=1))
    assert serial == pooled
    assert isinstance(serial[-1], IngestError) and sum(isinstance(r, CaseRow) for r in serial) == 6


@pytest.mark.parametrize("fmt, message", [("bogus", "unknown format"), ("npz", "not a readable npz")])
def test_bad_format_choices(tmp_path, fmt, message):
    save_jpeg(tmp_path / "normal/a.png")
    (tmp_path / "fake.npz").write_text("no")
    with pytest.raises(PedclipError, match=message):
        open_source(tmp_path / "fake.npz" if fmt == "npz" else tmp_path, fmt)


def test_csv_manifest_can_list_dicoms_with_labels_and_tags(tmp_path):
    pytest.importorskip("pydicom")
    ramp = np.tile(np.arange(0, 4096, 64, dtype=np.uint16), (8, 1))
    write_dicom(tmp_path / "scans/x.dcm", ramp, PatientID="D1", ViewPosition="AP")
    (tmp_path / "labels.csv").write_text("path,label,split\nscans/x.dcm,pneumonia,test\n")
    kind, rows, errors = _read(tmp_path / "labels.csv")
    assert kind == "csv" and not errors
    row = rows[0]
    assert (row.label, row.split, row.patient_id, row.attributes["view"]) == (1, "test", "D1", "AP")
