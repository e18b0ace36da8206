"""`pedclip data ...` end to end through `pedclip.cli.main`: JSON output, exit codes, one-line errors."""

from __future__ import annotations

import json

import pytest
from data_builders import save_jpeg, write_bad_files

from pedclip.cli import main


def _run(capsys, home, *args) -> tuple[int, str, str]:
    code = main(["--home", str(home), "data", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(err: str) -> None:
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_ingest_list_show_split_audit_as_json(capsys, home, kermany_copy):
    code, out, _ = _run(capsys, home, "ingest", str(kermany_copy), "--name", "k", "--json")
    assert code == 0 and json.loads(out)["cases"] == 9 and json.loads(out)["source_kind"] == "kermany"
    code, out, _ = _run(capsys, home, "list", "--json")
    assert code == 0 and [d["name"] for d in json.loads(out)] == ["k"]
    code, out, _ = _run(capsys, home, "show", "k", "--json")
    shown = json.loads(out)
    assert {row["split"]: row["total"] for row in shown["counts"]} == {"train": 4, "test": 5}
    assert shown["patients"] == {"n_patients": 7, "n_with_several_images": 2, "cases_without_patient": 0}
    assert shown["attributes"]["pathogen"] == {"normal": 4, "virus": 3, "bacteria": 2}
    code, out, _ = _run(capsys, home, "split", "k", "--ratios", "50/25/25", "--seed", "2", "--json")
    assert code == 0 and sum(json.loads(out)["counts"].values()) == 9
    code, out, _ = _run(capsys, home, "audit", "k", "--strict", "--json")
    audit = json.loads(out)
    assert code == 0 and not audit["leakage"] and set(audit["balance"]) <= {"train", "val", "test"}


def test_human_output_runs(capsys, home, kermany_copy):
    assert _run(capsys, home, "ingest", str(kermany_copy), "--name", "k")[0] == 0
    for args in (("show", "k"), ("audit", "k"), ("list",), ("split", "k", "--keep-source")):
        code, out, err = _run(capsys, home, *args)
        assert code == 0 and out and not err


def test_strict_audit_fails_on_leakage(capsys, home, tmp_path):
    save_jpeg(tmp_path / "src/train/normal/a.png")
    save_jpeg(tmp_path / "src/test/normal/a_copy.png")  # byte-identical image in another split
    save_jpeg(tmp_path / "src/test/pneumonia/b.png", seed=3)
    assert _run(capsys, home, "ingest", str(tmp_path / "src"), "--name", "dup")[0] == 0
    code, out, err = _run(capsys, home, "audit", "dup", "--strict", "--json")
    assert code == 1 and json.loads(out)["n_cross_split_duplicates"] == 1
    _one_line_error(err)


def test_nothing_usable_prints_the_summary_and_exits_non_zero(capsys, home, tmp_path):
    write_bad_files(tmp_path / "bad/normal")
    (tmp_path / "bad/normal/broken.dcm").unlink()
    code, out, err = _run(capsys, home, "ingest", str(tmp_path / "bad"), "--name", "bad", "--json")
    assert code == 1 and json.loads(out)["errors"] == 4 and not json.loads(out)["usable"]
    _one_line_error(err)


@pytest.mark.parametrize("args, words", [
    (("ingest", "/no/such/folder", "--name", "x"), "does not exist"),
    (("ingest", ".", "--name", "x", "--format", "tiff"), "unknown format"),
    (("show", "nope"), "unknown dataset"),
    (("split", "nope", "--ratios", "1/2"), "--ratios"),
    (("split", "nope", "--balance", "many"), "--balance"),
    (("audit", "nope"), "unknown dataset"),
])  # fmt: skip
def test_errors_are_one_line_without_traceback(capsys, home, store, args, words):
    code, _, err = _run(capsys, home, *args)  # `store` exists, so every error is about the argument
    assert code == 1 and words in err
    _one_line_error(err)


def test_unknown_class_folders_error_names_them(capsys, home, tmp_path):
    save_jpeg(tmp_path / "src/dogs/a.png")
    code, _, err = _run(capsys, home, "ingest", str(tmp_path / "src"), "--name", "x")
    assert code == 1 and "'dogs'" in err and "--format csv" in err
    _one_line_error(err)


def test_stands_for_is_set_at_ingest_or_by_data_set_and_kept_on_reingest(capsys, home, kermany_copy):
    from pedclip.store import Store
    from pedclip.store.cases import get_dataset
    from pedclip.train.config import is_ucsd_like, study_defaults

    assert _run(capsys, home, "ingest", str(kermany_copy), "--name", "ucsd")[0] == 0
    store = Store.open(home)
    assert not is_ucsd_like(get_dataset(store, "ucsd"))  # its name plays no part
    assert _run(capsys, home, "ingest", str(kermany_copy), "--name", "site9", "--stands-for", "UCSD")[0] == 0
    assert get_dataset(store, "site9")["attributes"]["stands_for"] == "ucsd" and is_ucsd_like(
        get_dataset(store, "site9")
    )
    code, out, _ = _run(capsys, home, "set", "site9", "--stands-for", "ori", "--json")
    assert code == 0 and json.loads(out) == {"dataset": "site9", "stands_for": "ori"}
    assert (
        _run(capsys, home, "ingest", str(kermany_copy), "--name", "site9")[0] == 0
    )  # re-ingest keeps the role
    role = get_dataset(store, "site9")
    assert role["attributes"]["stands_for"] == "ori" and not is_ucsd_like(role)
    assert study_defaults(False, is_ucsd_like(role), "paper")["weight_decay"] == 1e-5  # ORI's, as the study
    code, _, err = _run(capsys, home, "set", "site9", "--stands-for", "kermany")
    assert code != 0 and "ucsd, ori, none" in err
    _one_line_error(err)
