"""Defect 6 of issue 11: every mistake on the command line is one line naming the bad option or value and the
fix, exit 2 for usage and 1 for bad data, never "unexpected ..." or torch's multi-line advice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pedclip.cli import main


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert "unexpected" not in err and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["embed", "--dataset", "d"], ["'--model'", "pedclip embed --help"]),
        (
            ["embed", "--model", "demo:clip", "--dataset", "d", "--batch-size", "abc"],
            ["'--batch-size'", "'abc'"],
        ),
        (["zeroshot", "--model", "demo:clip", "--dataset", "d", "--resamples=x1"], ["'--resamples'", "'x1'"]),
        (["embed", "--bogus"], ["--bogus", "pedclip embed --help"]),
        (["nope"], ["'nope'", "pedclip --help"]),
    ],
)
def test_usage_errors_are_one_line_exit_2(home: Path, capsys, args: list[str], names: list[str]) -> None:
    assert main(["--home", str(home), *args]) == 2
    err = one_line(capsys)
    for name in names:
        assert name in err, err


@pytest.mark.parametrize("content", [b"", b"garbage, not a checkpoint"])
@pytest.mark.parametrize("spec", ["medclip:vit", "openclip:pedclip-tiny"])
def test_unreadable_weights_are_one_line_exit_1(home: Path, tmp_path: Path, capsys, spec, content) -> None:
    weights = tmp_path / "pytorch_model.bin"
    weights.write_bytes(content)
    assert main(["--home", str(home), "models", "show", spec, "--weights", str(weights)]) == 1
    err = one_line(capsys)
    assert str(weights) in err and "weights_only" not in err
    assert ("empty or truncated" if not content else "not a PyTorch file") in err


def test_npz_of_object_arrays_is_one_line_exit_1(home: Path, tmp_path: Path, capsys) -> None:
    npz = tmp_path / "objects.npz"
    np.savez(npz, train_images=np.array([{"a": 1}, None], dtype=object), train_labels=np.array([0, 1]))
    assert main(["--home", str(home), "data", "ingest", str(npz), "--name", "o"]) == 1
    err = one_line(capsys)
    assert "train_images" in err and "Python objects" in err
