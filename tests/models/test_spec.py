"""Spec parsing edge cases, registry coverage, and open_clip name/tag validation."""

from __future__ import annotations

import warnings

import pytest

from pedclip.errors import PedclipError
from pedclip.models import parse_spec
from pedclip.models.registry import family_loader
from pedclip.models.spec import FAMILIES, ModelSpec


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("openclip:ViT-B-32-quickgelu/openai", ModelSpec("openclip", "ViT-B-32-quickgelu", "openai")),
        ("openclip:pedclip-tiny", ModelSpec("openclip", "pedclip-tiny", None)),
        ("  openclip:ViT-B-32  ", ModelSpec("openclip", "ViT-B-32", None)),
        ("OpenCLIP:ViT-B-32/openai", ModelSpec("openclip", "ViT-B-32", "openai")),
        ("openclip:hf-hub:microsoft/BiomedCLIP", ModelSpec("openclip", "hf-hub:microsoft/BiomedCLIP", None)),
        ("medclip:vit", ModelSpec("medclip", "vit")),
        ("medclip:ResNet", ModelSpec("medclip", "resnet")),
        ("local:/tmp/run-1", ModelSpec("local", "/tmp/run-1")),
        ("local:relative/dir/with/slashes", ModelSpec("local", "relative/dir/with/slashes")),
        ("demo:clip", ModelSpec("demo", "clip")),
        ("demo:medclip", ModelSpec("demo", "medclip")),
    ],
)
def test_parse_spec_accepts(spec: str, expected: ModelSpec) -> None:
    assert parse_spec(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "no family"),
        ("   ", "no family"),
        ("ViT-B-32", "no family"),
        (":ViT-B-32", "no family"),
        ("clip:ViT-B-32", "known families: openclip, medclip, local, demo"),
        ("openclip:", "names no model"),
        ("openclip:   ", "names no model"),
        ("local:", "names no model"),
        ("openclip:/openai", "no architecture"),
        ("openclip:ViT-B-32/", "invalid weights tag"),
        ("openclip:ViT-B-32/a/b", "invalid weights tag"),
        ("openclip:hf-hub:", "hf-hub:ORG/REPO"),
        ("openclip:hf-hub:justorg", "hf-hub:ORG/REPO"),
        ("openclip:hf-hub:a/b/c", "hf-hub:ORG/REPO"),
        ("medclip:swin", "medclip:vit, medclip:resnet"),
        ("demo:bert", "demo:clip or demo:medclip"),
    ],
)
def test_parse_spec_rejects(spec: str, message: str) -> None:
    with pytest.raises(PedclipError, match=message):
        parse_spec(spec)


def test_spec_round_trips_to_string() -> None:
    for text in ("openclip:ViT-B-32-quickgelu/openai", "medclip:vit", "local:/x/y", "openclip:hf-hub:a/b"):
        assert str(parse_spec(text)) == text


def test_every_family_has_a_loader() -> None:
    for family in FAMILIES:
        assert callable(family_loader(family).loader)


def test_unknown_model_and_invalid_tag_are_different_errors() -> None:
    from pedclip.models.openclip import resolve_name

    with pytest.raises(PedclipError, match="unknown open_clip model 'ViT-B-33'.*ViT-B-32"):
        resolve_name("ViT-B-33", None)
    with pytest.raises(
        PedclipError, match="invalid weights tag 'opnai' for open_clip model 'ViT-B-32-quickgelu'.*openai"
    ):
        resolve_name("ViT-B-32-quickgelu", "opnai")


def test_plain_vit_b_32_with_openai_tag_builds_quickgelu() -> None:
    from pedclip.models.openclip import resolve_name

    with pytest.warns(UserWarning, match="QuickGELU"):
        name, cfg = resolve_name("ViT-B-32", "openai")
    assert name == "ViT-B-32-quickgelu" and cfg["quick_gelu"] is True
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_name("ViT-B-32-quickgelu", "openai")[0] == "ViT-B-32-quickgelu"
        assert resolve_name("ViT-B-32", None) == ("ViT-B-32", {})  # untrained: GELU as its config says
