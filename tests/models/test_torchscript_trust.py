"""Defect 1 of issue 11: a TorchScript weights file runs its own code (`__setstate__`) when loaded, so pedclip
loads one only when it is one of OpenAI's published CLIP files (by sha256) or the user trusts it explicitly."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from pedclip.errors import PedclipError
from pedclip.models import load_encoder

MARKER_BYTES = 4


class Planted(torch.nn.Module):
    """A scripted module whose `__setstate__` writes into the file named by its `marker` attribute."""

    def __init__(self, marker: str):
        super().__init__()
        self.marker = marker
        self.w = torch.nn.Parameter(torch.zeros(2))

    @torch.jit.export
    def __getstate__(self):
        return (self.marker, self.w, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, torch.Tensor, bool]):
        self.marker = state[0]
        self.training = state[2]
        mapped = torch.from_file(self.marker, shared=True, size=4, dtype=torch.uint8)
        mapped.fill_(65)  # writes b"AAAA" through a shared mapping of the marker file
        self.w = state[1] + mapped.float().sum() * 0  # used, so the write survives dead-code elimination

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


@pytest.fixture()
def planted(tmp_path: Path) -> tuple[Path, Path]:
    """(crafted TorchScript archive, marker file holding four zero bytes)."""
    marker = tmp_path / "marker"
    marker.write_bytes(b"\0" * MARKER_BYTES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(Planted(str(marker)))
    archive = tmp_path / "ViT-B-32.pt"
    scripted.save(str(archive))
    return archive, marker


def test_crafted_torchscript_is_refused_before_its_code_runs(planted) -> None:
    from pedclip.models.checkpoint import read_state_dict

    archive, marker = planted
    with pytest.raises(PedclipError, match="TorchScript archive.*not one of OpenAI's.*state dict"):
        load_encoder("openclip:pedclip-tiny", weights=archive)
    with pytest.raises(PedclipError, match="--trust-torchscript"):
        read_state_dict(archive)
    assert marker.read_bytes() == b"\0" * MARKER_BYTES, "the archive's __setstate__ ran"


def test_cli_refuses_in_one_line_and_trust_flag_loads(planted, home: Path, capsys) -> None:
    from pedclip.cli import main

    archive, marker = planted
    args = ["models", "show", "openclip:pedclip-tiny", "--weights", str(archive)]
    assert main(["--home", str(home), *args]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "TorchScript" in err and "--trust-torchscript" in err, err
    assert marker.read_bytes() == b"\0" * MARKER_BYTES
    # trusted on request: the archive's code runs (that is what trusting means), then its keys do not fit
    assert main(["--home", str(home), "--trust-torchscript", *args]) == 1
    assert "does not fit" in capsys.readouterr().err
    assert marker.read_bytes() == b"A" * MARKER_BYTES


def test_openai_checkpoints_are_known_by_sha256() -> None:
    from pedclip.models.checkpoint import openai_torchscript_sha256s

    digests = openai_torchscript_sha256s()
    # ViT-B/32 and RN50 as published at openaipublic.azureedge.net/clip/models/<sha256>/<name>.pt
    assert "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af" in digests
    assert "afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762" in digests
    assert all(len(d) == 64 for d in digests)
