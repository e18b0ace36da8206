"""Frozen configuration dataclasses and the working-directory layout (PEDCLIP_HOME, default ./data)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HOME_ENV = "PEDCLIP_HOME"
RUNTIME_ENV = "PEDCLIP_RUNTIME"  # default --runtime of every command that encodes, and of the dashboard
DEFAULT_HOME = "data"


def resolve_home(home: str | os.PathLike | None = None) -> Path:
    """The working directory: the explicit argument, else $PEDCLIP_HOME, else ./data."""
    chosen = home if home is not None else os.environ.get(HOME_ENV) or DEFAULT_HOME
    return Path(chosen).expanduser().resolve()


@dataclass(frozen=True)
class Paths:
    """Where everything under one PEDCLIP_HOME lives."""

    home: Path

    @classmethod
    def at(cls, home: str | os.PathLike | None = None) -> Paths:
        return cls(resolve_home(home))

    @property
    def db(self) -> Path:  # the DuckDB store
        return self.home / "pedclip.duckdb"

    @property
    def indexes(self) -> Path:  # FAISS indexes: indexes/<fingerprint>/<dataset>.faiss
        return self.home / "indexes"

    @property
    def vectors(self) -> Path:  # scanning matrices: vectors/<fingerprint>/ (store/matrix.py)
        return self.home / "vectors"

    @property
    def pixels(self) -> Path:  # preprocessed-pixel cache keyed by (image sha256, preprocess key)
        return self.home / "pixels"

    @property
    def datasets(self) -> Path:  # synthesised or copied source data
        return self.home / "datasets"

    @property
    def checkpoints(self) -> Path:  # fine-tuned `local:` models and the demo models
        return self.home / "checkpoints"

    @property
    def training(self) -> Path:  # per-epoch resume state of unfinished fine-tune runs: training/<run_id>/
        return self.home / "training"

    @property
    def reports(self) -> Path:  # tables and HTML reports
        return self.home / "reports"

    @property
    def onnx(
        self,
    ) -> Path:  # ONNX Runtime graphs exported from torch: onnx/<fingerprint>/<tower>-<size>-<dtype>.onnx
        return self.home / "onnx"

    @property
    def thumbnails(self) -> Path:  # dashboard thumbnails, made on demand
        return self.home / "thumbnails"

    @property
    def prompts(self) -> Path:  # prompt sets saved from the prompt lab: prompts/<name>.toml
        return self.home / "prompts"

    def ensure(self) -> Paths:
        self.home.mkdir(parents=True, exist_ok=True)
        return self
