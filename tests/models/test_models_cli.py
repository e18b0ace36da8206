"""`pedclip models list|show` print one JSON document; errors are one line."""

from __future__ import annotations

import json
from pathlib import Path

from pedclip.cli import main


def test_models_list_json(home: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "no-cache"))
    assert main(["--home", str(home), "models", "list", "--json"]) == 0
    specs = {row["spec"]: row for row in json.loads(capsys.readouterr().out)["specs"]}
    assert {"openclip:ViT-B-32-quickgelu/openai", "medclip:vit", "medclip:resnet", "demo:clip"} <= set(specs)


def test_models_show_json_and_error(home: Path, capsys) -> None:
    assert main(["--home", str(home), "models", "show", "openclip:pedclip-tiny", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["dim"] == 32 and document["dtype"] == "fp32" and document["weights"] == "untrained:seed=0"
    assert document["preprocess"]["size"] == 64 and len(document["fingerprint"]) == 20
    assert main(["--home", str(home), "models", "show", "clip:nope"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: unknown model family 'clip'") and err.count("\n") == 1
