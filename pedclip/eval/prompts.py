"""Prompt sets as data: TOML files under pedclip/eval/prompts/, a user's file, or inline `class=text` pairs.

A set names its classes; each class has literal `prompts`, `templates` x `words`, and/or a `generator`
(a template filled with the product of word lists, in MedCLIP's order). `mode` says how scores are made:
`softmax` over two classes (P(positive) = softmax(scale * cos)[positive]) or `sigmoid` over one class
(MedCLIP: max over prompts of scale * cos, then sigmoid and a threshold).
"""

from __future__ import annotations

import itertools
import json
import random
import re
import tomllib
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

from pedclip.errors import PedclipError

MODES = ("softmax", "sigmoid")
REDUCTIONS = ("mean", "max")
DEFAULT_SET = "pneumonia"


@dataclass(frozen=True)
class PromptSet:
    """Prompts per class. Softmax sets have two classes, sigmoid sets one (the positive class)."""

    name: str
    classes: dict[str, tuple[str, ...]]  # class name -> prompts, in file order
    mode: str = "softmax"
    positive: str = "pneumonia"  # the class whose probability is P(positive)
    reduce: str = "mean"  # how prompts of a class combine: mean embedding (CLIP) or max score (MedCLIP)
    threshold: float | None = None  # the set's own decision threshold, if it has one (MedCLIP: 0.6)
    seed: int = 0  # for `sample`
    description: str = ""
    source: str = ""
    extra: dict = field(default_factory=dict)

    def label_of(self, class_name: str) -> int:
        return 1 if class_name == self.positive else 0

    @property
    def texts(self) -> list[str]:
        """Every prompt once, in class order."""
        return list(dict.fromkeys(t for prompts in self.classes.values() for t in prompts))

    def sample(self, n: int | None, seed: int | None = None) -> PromptSet:
        """At most n prompts per class, drawn with a seeded random.sample (MedCLIP drew them unseeded)."""
        if n is None:
            return self
        rng = random.Random(self.seed if seed is None else seed)
        classes = {k: tuple(rng.sample(list(v), n)) if n < len(v) else v for k, v in self.classes.items()}
        return replace(self, classes=classes, extra={**self.extra, "sampled": n})

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "mode": self.mode,
            "positive": self.positive,
            "reduce": self.reduce,
            "threshold": self.threshold,
            "seed": self.seed,
            "description": self.description,
            "source": self.source,
            "classes": {k: list(v) for k, v in self.classes.items()},
        }


def _expand_class(name: str, spec: dict) -> tuple[str, ...]:
    prompts = list(spec.get("prompts", []))
    for template in spec.get("templates", []):
        prompts += [template.replace("{}", word) for word in spec.get("words", [])]
    generator = spec.get("generator")
    if generator:
        fields = generator.get("fields", {})
        for combo in itertools.product(*fields.values()):
            prompts.append(generator["template"].format(**dict(zip(fields, combo, strict=True))))
    if not prompts:
        raise PedclipError(
            f"prompt class {name!r} has no prompts; give it prompts, templates+words or a generator"
        )
    return tuple(dict.fromkeys(prompts))


def _validate(prompt_set: PromptSet) -> PromptSet:
    if prompt_set.mode not in MODES:
        raise PedclipError(
            f"prompt set {prompt_set.name!r} has mode {prompt_set.mode!r}; expected one of {MODES}"
        )
    if prompt_set.reduce not in REDUCTIONS:
        raise PedclipError(
            f"prompt set {prompt_set.name!r} has reduce {prompt_set.reduce!r}; expected {REDUCTIONS}"
        )
    want = 2 if prompt_set.mode == "softmax" else 1
    if len(prompt_set.classes) != want:
        raise PedclipError(
            f"prompt set {prompt_set.name!r} has {len(prompt_set.classes)} classes "
            f"({', '.join(prompt_set.classes)}); {prompt_set.mode} mode needs {want}"
        )
    if prompt_set.positive not in prompt_set.classes:
        raise PedclipError(
            f"prompt set {prompt_set.name!r} has no class {prompt_set.positive!r} (its positive class); "
            f"classes: {', '.join(prompt_set.classes)}"
        )
    return prompt_set


def parse_prompt_set(document: dict, default_name: str) -> PromptSet:
    """A PromptSet from a parsed TOML document."""
    classes = document.get("classes")
    if not isinstance(classes, dict) or not classes:
        raise PedclipError(f"prompt set {default_name!r} has no [classes.<name>] tables")
    known = {"name", "description", "mode", "positive", "reduce", "threshold", "seed", "source", "classes"}
    return _validate(
        PromptSet(
            name=str(document.get("name", default_name)),
            classes={k: _expand_class(k, v) for k, v in classes.items()},
            mode=str(document.get("mode", "softmax")),
            positive=str(document.get("positive", "pneumonia")),
            reduce=str(
                document.get("reduce", "mean" if document.get("mode", "softmax") == "softmax" else "max")
            ),
            threshold=document.get("threshold"),
            seed=int(document.get("seed", 0)),
            description=str(document.get("description", "")),
            source=str(document.get("source", "")),
            extra={k: v for k, v in document.items() if k not in known},
        )
    )


def _builtin_dir():
    return resources.files("pedclip.eval") / "prompts"


def builtin_names() -> list[str]:
    return sorted(p.name[: -len(".toml")] for p in _builtin_dir().iterdir() if p.name.endswith(".toml"))


def saved_dir(home: str | Path | None = None) -> Path:
    """Where the prompt lab saves named sets: prompts/ under `home` (the PEDCLIP_HOME in use by default)."""
    from pedclip.config import Paths

    return Paths.at(home).prompts


def saved_names(home: str | Path | None = None) -> list[str]:
    folder = saved_dir(home)
    return sorted(p.stem for p in folder.glob("*.toml")) if folder.is_dir() else []


def load_prompt_set(name_or_path: str, home: str | Path | None = None) -> PromptSet:
    """A shipped set by name (see `pedclip prompts list`), a set saved from the prompt lab under `home` by
    name, or a TOML file by path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise PedclipError(f"prompt file {name_or_path!r} does not exist; give a TOML file or a set name")
        text, default = path.read_text(), path.stem
    else:
        entry = _builtin_dir() / f"{name_or_path}.toml"
        if not entry.is_file():
            entry = saved_dir(home) / f"{name_or_path}.toml"
        if not entry.is_file():
            known = ", ".join(builtin_names() + [f"{n} (saved)" for n in saved_names(home)])
            raise PedclipError(f"unknown prompt set {name_or_path!r}; known sets: {known}")
        text, default = entry.read_text(), name_or_path
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PedclipError(f"prompt file {name_or_path!r} is not valid TOML ({exc}); fix the file") from exc
    return parse_prompt_set(document, default)


def list_prompt_sets(home: str | Path | None = None, saved: bool = False) -> list[PromptSet]:
    """The shipped sets, then (with `saved`) those saved under `home` that parse (a broken file is skipped)."""
    out = [load_prompt_set(name) for name in builtin_names()]
    for name in saved_names(home) if saved else []:
        try:
            out.append(load_prompt_set(str(saved_dir(home) / f"{name}.toml")))
        except PedclipError:
            continue
    return out


SAVED_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}")


def prompt_set_toml(prompt_set: PromptSet) -> str:
    """The set as a TOML document `load_prompt_set` reads back to the same classes, mode and positive class."""

    def text(value: str) -> str:  # a JSON string is a valid TOML basic string
        return json.dumps(value, ensure_ascii=False)

    lines = [f"name = {text(prompt_set.name)}"]
    if prompt_set.description:
        lines.append(f"description = {text(prompt_set.description)}")
    lines += [f"mode = {text(prompt_set.mode)}", f"reduce = {text(prompt_set.reduce)}"]
    lines.append(f"positive = {text(prompt_set.positive)}")
    if prompt_set.threshold is not None:
        lines.append(f"threshold = {float(prompt_set.threshold)!r}")
    for name, prompts in prompt_set.classes.items():
        lines += ["", f"[classes.{text(name)}]", "prompts = ["]
        lines += [f"  {text(p)}," for p in prompts]
        lines.append("]")
    return "\n".join(lines) + "\n"


def save_prompt_set(prompt_set: PromptSet, name: str, home: str | Path | None = None) -> Path:
    """Write the set as prompts/<name>.toml under `home`, usable as `--prompts NAME` there."""
    if not SAVED_NAME.fullmatch(name) or name in builtin_names():
        raise PedclipError(
            f"prompt set name {name!r} is not usable; use letters, digits, spaces, '_', '.' or '-' "
            f"(at most 64) and not a shipped set's name ({', '.join(builtin_names())})"
        )
    folder = saved_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    named = replace(prompt_set, name=name, description=prompt_set.description or "saved from the prompt lab")
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(prompt_set_toml(named))
    tmp.replace(path)
    return path


def inline_prompt_set(pairs: list[str], positive: str = "pneumonia", name: str = "inline") -> PromptSet:
    """A set from `class=prompt` strings (repeat a class to give it several prompts)."""
    return _validate(prompt_set_from_dict(_parse_pairs(pairs), positive=positive, name=name))


def _parse_pairs(pairs: list[str]) -> dict[str, list[str]]:
    classes: dict[str, list[str]] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip() or not text.strip():
            raise PedclipError(
                f"prompt {pair!r} is not class=text; write e.g. --prompt 'pneumonia=lung consolidation'"
            )
        classes.setdefault(key.strip(), []).append(text.strip())
    return classes


def prompt_set_from_dict(
    prompts: dict[str, list[str]], positive: str = "pneumonia", name: str = "inline"
) -> PromptSet:
    """A set from {class: [prompts]}: two classes make a softmax set, one class a sigmoid set."""
    classes = {k: tuple(dict.fromkeys(v)) for k, v in prompts.items() if v}
    mode = "sigmoid" if len(classes) == 1 else "softmax"
    return _validate(
        PromptSet(
            name=name,
            classes=classes,
            mode=mode,
            positive=positive,
            reduce="mean" if mode == "softmax" else "max",
        )
    )


def resolve_prompt_set(
    prompts: str | None = None, inline: list[str] | None = None, home: str | Path | None = None
) -> PromptSet:
    """Inline pairs when given, else a named set (shipped, or saved under `home`) or file, else the default."""
    if inline:
        return inline_prompt_set(inline)
    return load_prompt_set(prompts or DEFAULT_SET, home)
