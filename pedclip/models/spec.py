"""Model spec strings (`family:name[/tag]`) -> `ModelSpec`. Pure: no imports of torch or open_clip."""

from __future__ import annotations

from dataclasses import dataclass

from pedclip.errors import PedclipError

FAMILIES = ("openclip", "medclip", "local", "demo")
MEDCLIP_NAMES = ("vit", "resnet")
DEMO_NAMES = ("clip", "medclip")
HF_HUB_PREFIX = "hf-hub:"
EXAMPLES = (
    "e.g. openclip:ViT-B-32-quickgelu/openai, openclip:hf-hub:ORG/REPO, medclip:vit, local:DIR, demo:clip"
)


@dataclass(frozen=True)
class ModelSpec:
    """A parsed spec: `family` picks the loader, `name` the architecture (or folder), `tag` the weights."""

    family: str
    name: str
    tag: str | None = None

    def __str__(self) -> str:
        return f"{self.family}:{self.name}" + (f"/{self.tag}" if self.tag else "")

    @property
    def is_hf_hub(self) -> bool:
        return self.family == "openclip" and self.name.startswith(HF_HUB_PREFIX)


def parse_spec(spec: str) -> ModelSpec:
    """Split `family:name[/tag]`; checks syntax and the closed name sets (medclip, demo), nothing on disk."""
    text = (spec or "").strip()
    family, sep, rest = text.partition(":")
    family = family.strip().lower()
    if not sep or not family:
        raise PedclipError(f"model spec {spec!r} has no family; write family:name ({EXAMPLES})")
    if family not in FAMILIES:
        raise PedclipError(
            f"unknown model family {family!r} in {spec!r}; known families: {', '.join(FAMILIES)}"
        )
    rest = rest.strip()
    if not rest:
        raise PedclipError(f"model spec {spec!r} names no model after '{family}:' ({EXAMPLES})")
    return _PARSERS[family](spec, rest)


def _parse_openclip(spec: str, rest: str) -> ModelSpec:
    if rest.startswith(HF_HUB_PREFIX):
        repo = rest[len(HF_HUB_PREFIX) :].strip("/")
        parts = repo.split("/")
        if len(parts) != 2 or not all(p.strip() for p in parts):
            raise PedclipError(f"model spec {spec!r} needs a hub repo as hf-hub:ORG/REPO")
        return ModelSpec("openclip", HF_HUB_PREFIX + repo)
    name, sep, tag = rest.partition("/")
    if not name:
        raise PedclipError(f"model spec {spec!r} names no architecture before the '/'")
    if sep and (not tag or "/" in tag):
        raise PedclipError(f"model spec {spec!r} has an invalid weights tag {tag!r}; write NAME/TAG or NAME")
    return ModelSpec("openclip", name, tag or None)


def _parse_medclip(spec: str, rest: str) -> ModelSpec:
    name = rest.lower()
    if name not in MEDCLIP_NAMES:
        raise PedclipError(
            f"unknown MedCLIP variant {rest!r} in {spec!r}; expected one of: medclip:vit, medclip:resnet"
        )
    return ModelSpec("medclip", name)


def _parse_local(spec: str, rest: str) -> ModelSpec:
    return ModelSpec("local", rest)


def _parse_demo(spec: str, rest: str) -> ModelSpec:
    name = rest.lower()
    if name not in DEMO_NAMES:
        raise PedclipError(f"unknown demo model {rest!r} in {spec!r}; expected demo:clip or demo:medclip")
    return ModelSpec("demo", name)


_PARSERS = {
    "openclip": _parse_openclip,
    "medclip": _parse_medclip,
    "local": _parse_local,
    "demo": _parse_demo,
}
