"""The synthetic generator: determinism, layout, manifest, patient-grouped splits and reports."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pedclip.cli import main
from pedclip.data.synth import MANIFEST_COLUMNS, SITES, SynthConfig, make_preview, synthesize
from pedclip.data.synth_reports import lobe_name, write_report
from pedclip.data.synth_sites import SPLIT_RATIOS, plan_site
from pedclip.errors import PedclipError

SMALL = {"n": 6, "size": 64}


def file_hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def read_manifest(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def small_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    out = tmp_path_factory.mktemp("synth")
    return out, synthesize(SynthConfig(out=out, seed=3, **SMALL))


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path: Path, small_set) -> None:
    out, _ = small_set
    again = synthesize(SynthConfig(out=tmp_path / "again", seed=3, **SMALL))
    other = synthesize(SynthConfig(out=tmp_path / "other", seed=4, **SMALL))
    assert len(again) == len(other) == len(SITES)
    first, second = file_hashes(out), file_hashes(tmp_path / "again")
    assert first == second and len(first) == len(SITES) * (SMALL["n"] + 2)  # films + manifest + synth.json
    third = file_hashes(tmp_path / "other")
    images = [k for k in first if k.endswith((".png", ".jpeg"))]
    shared = [k for k in images if k in third]
    assert not shared or any(first[k] != third[k] for k in shared)
    assert sum(first[k] != third.get(k) for k in images) >= len(images) // 2


def test_earlier_images_do_not_depend_on_n(tmp_path: Path) -> None:
    few = synthesize(SynthConfig(out=tmp_path / "few", sites=("peds-a",), n=3, size=64, seed=1))[0]
    more = synthesize(SynthConfig(out=tmp_path / "more", sites=("peds-a",), n=7, size=64, seed=1))[0]
    small, large = file_hashes(few.path), file_hashes(more.path)
    films = {k: v for k, v in small.items() if k.endswith(".jpeg")}
    assert len(films) == 3 and all(large.get(k) == v for k, v in films.items())


def test_layouts_and_manifest_columns(small_set) -> None:
    out, summaries = small_set
    expected_dirs = {
        "kermany": ({"train", "val", "test"}, {"NORMAL", "PNEUMONIA"}),
        "study": ({"Train", "Validation", "Test"}, {"Positive", "Negative"}),
    }
    for summary in summaries:
        assert summary.manifest == out / summary.site / "manifest.csv"
        rows = read_manifest(summary.manifest)
        assert tuple(rows[0]) == MANIFEST_COLUMNS and len(rows) == SMALL["n"] == summary.images
        split_dirs, class_dirs = expected_dirs[SITES[summary.site].layout]
        for row in rows:
            path = Path(row["path"])
            assert (summary.path / path).is_file() and not path.is_absolute()
            parts = path.parts[1:] if path.parts[0] == "chest_xray" else path.parts
            assert parts[0] in split_dirs and parts[1] in class_dirs
            assert (parts[1] in ("PNEUMONIA", "Positive")) == (row["label"] == "1")
            assert parts[0].lower()[:3] == row["split"][:3]  # train/Train, val/Validation, test/Test
            assert row["label"] == str(int(row["finding"] in ("consolidation", "interstitial")))
            assert row["site"] == summary.site and row["sex"] in ("F", "M") and row["view"] in ("PA", "AP")
        with Image.open(summary.path / rows[0]["path"]) as image:
            assert image.mode == "L" and max(image.size) == round(64 * SITES[summary.site].scale)
        counts = sum(c for split in summary.counts.values() for c in split.values())
        assert counts == summary.images


def test_kermany_names_carry_patient_and_pathogen(small_set) -> None:
    out, _ = small_set
    for row in read_manifest(out / "peds-a" / "manifest.csv"):
        name = Path(row["path"]).name
        if row["label"] == "1":
            assert name.startswith(f"{row['patient_id']}_{row['pathogen']}_") and row["pathogen"] in (
                "bacteria",
                "virus",
            )
        else:
            assert name.startswith(f"{row['patient_id']}-") and row["patient_id"].startswith("IM-")


@pytest.mark.parametrize("site", list(SITES))
def test_patients_stay_in_one_split_and_balance_follows_the_site(site: str) -> None:
    plans = plan_site(SITES[site], seed=0, n=400, size=64)
    splits, labels = {}, {}
    for plan in plans:
        pid = plan.patient.patient_id
        assert splits.setdefault(pid, plan.patient.split) == plan.patient.split
        assert labels.setdefault(pid, plan.patient.finding.label) == plan.patient.finding.label
    patients = len(splits)
    for split, ratio in SPLIT_RATIOS:
        share = sum(s == split for s in splits.values()) / patients
        assert abs(share - ratio) < 0.03, (split, share)
    positive = sum(labels.values()) / patients
    assert abs(positive - SITES[site].positive_fraction) < 0.03
    repeated = sum(plan.film > 1 for plan in plans)
    assert repeated > 0  # every site has a few patients with several films


def test_pediatric_sites_differ_from_each_other() -> None:
    a, b = SITES["peds-a"], SITES["peds-b"]
    assert a.layout != b.layout and a.positive_fraction != b.positive_fraction
    assert a.noise < b.noise and a.scale > b.scale and a.aspect[0] > 1 > b.aspect[1]
    assert not a.labels and b.labels and b.collimation > 0


def test_reports_name_the_drawn_finding_lobe_and_side(small_set) -> None:
    out, _ = small_set
    rows = [row for site in SITES for row in read_manifest(out / site / "manifest.csv")]
    plans = [p for site in ("peds-a", "adult") for p in plan_site(SITES[site], seed=5, n=300, size=64)]
    for plan in plans:
        finding = plan.patient.finding
        rows.append(
            {
                "report": write_report(finding, True, np.random.default_rng(plan.index)),
                "finding": finding.kind, "lobe": finding.lobe, "side": finding.side, "pattern": finding.pattern,
            }
        )  # fmt: skip
    kinds = set()
    for row in rows:
        report, kind = row["report"].lower(), row["finding"]
        kinds.add((kind, row["lobe"], row["pattern"]))
        assert 1 <= report.count(". ") + 1 <= 2 and report.endswith(".")
        if kind == "consolidation":
            assert lobe_name(row["side"], row["lobe"]) in report
            assert "consolidation" in report or "opacity" in report
        elif kind == "interstitial":
            assert "interstitial" in report and "bilateral" in report
            assert row["side"] == "bilateral" or f"worse on the {row['side']}" in report
        elif kind == "effusion":
            assert "effusion" in report and row["side"] in report
        elif kind == "cardiomegaly":
            assert "cardiomegaly" in report
        else:
            assert "consolidation" in report or "clear" in report
            assert "opacit" not in report
    lobes = {lobe for kind, lobe, _ in kinds if kind == "consolidation"}
    assert lobes == {"upper", "middle", "lingula", "lower"}


def test_cli_writes_sites_and_one_json_document(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "cli"
    sheet = tmp_path / "sheet.png"
    argv = ["data", "synth", "--out", str(out), "--site", "peds-b", "--n", "4", "--size", "48"]
    assert main([*argv, "--seed", "2", "--preview", str(sheet), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [s["site"] for s in document["sites"]] == ["peds-b"] and document["sites"][0]["images"] == 4
    assert Path(document["sites"][0]["manifest"]).is_file() and document["preview"] == str(sheet)
    with Image.open(sheet) as image:
        assert image.format == "PNG" and image.size[0] == 6 * 200
    assert main([*argv, "--json"]) == 0  # a previous synthetic set is replaced
    assert main(["data", "synth", "--out", str(out), "--site", "nowhere"]) == 1
    assert "unknown synthetic site 'nowhere'" in capsys.readouterr().err


def test_refuses_to_overwrite_a_folder_it_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "adult").mkdir()
    (tmp_path / "adult" / "mine.txt").write_text("keep me")
    with pytest.raises(PedclipError, match="did not synthesise"):
        synthesize(SynthConfig(out=tmp_path, sites=("adult",), n=2, size=48))
    assert (tmp_path / "adult" / "mine.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"n": 0}, "--n"), ({"size": 8}, "--size"), ({"sites": ()}, "no synthetic site")]
)
def test_bad_config_is_a_user_error(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(PedclipError, match=message):
        SynthConfig(out=tmp_path, **kwargs)


def test_preview_alternates_classes(small_set, tmp_path: Path) -> None:
    out, _ = small_set
    sheet = make_preview(out, tmp_path / "p.png", rows=2, columns=6, tile=64)
    with Image.open(sheet) as image:
        assert image.size == (6 * 64, 26 + 2 * (64 + 34))
    with pytest.raises(PedclipError, match="no synthetic set"):
        make_preview(tmp_path / "empty", tmp_path / "q.png")


def test_burned_in_labels_agree_with_the_view() -> None:
    for site in ("peds-b", "adult"):
        for plan in plan_site(SITES[site], seed=0, n=60, size=64):
            assert plan.label_text in dict(SITES[site].labels)[plan.view]
