"""open_clip configs read as data (no torch, no open_clip import): architectures, preprocess, weights files.

open_clip takes seconds to import, so `fingerprint_for("openclip:...")` reads the same JSON files
open_clip's registry reads. Weights tags live in open_clip's Python tables: the first time a NAME/TAG is
fingerprinted, open_clip is imported for `resolve_name` (still no model built) and the answer is kept in
PEDCLIP_HOME/cache/ per open_clip version, so later calls skip the import. An unknown name imports
open_clip for its error message.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import json
import os
import warnings
from pathlib import Path

from pedclip.config import Paths
from pedclip.errors import PedclipError
from pedclip.models.base import PreprocessConfig, fingerprint_of
from pedclip.models.checkpoint import cached_hub_file, file_sha256, hf_offline
from pedclip.models.registry import LoadOptions, register_fingerprint
from pedclip.models.spec import HF_HUB_PREFIX, ModelSpec

CONFIG_DIR = Path(__file__).parent / "configs"
HUB_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
FOLDER_WEIGHT_FILES = (
    *HUB_WEIGHT_FILES,
    "open_clip_pytorch_model.safetensors",
    "model.safetensors",
    "pytorch_model.bin",
)
RESIZE_KINDS = {"shortest": "resize_crop", "squash": "squash"}
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
# open_clip.transform.PreprocessCfg's defaults: what create_model starts from before a tag or config overlays it
DEFAULT_PREPROCESS = {
    "size": 224,
    "mode": "RGB",
    "mean": OPENAI_MEAN,
    "std": OPENAI_STD,
    "interpolation": "bicubic",
    "resize_mode": "shortest",
    "fill_color": 0,
}
ARCH_KEYS = ("embed_dim", "vision_cfg", "text_cfg")  # a JSON without them is not an architecture to open_clip
TOWER_IMAGE_SIZE = 224  # open_clip CLIPVisionCfg.image_size default, when a config leaves it out
TAG_MEMO_VERSION = 1  # bump when resolve_name's answer for the same open_clip changes


@functools.cache
def model_configs() -> dict[str, dict]:
    """name -> architecture config, from open_clip's model_configs/ and pedclip's configs/ (as open_clip lists them)."""
    found = importlib.util.find_spec("open_clip")
    folders = [Path(p) / "model_configs" for p in (found.submodule_search_locations or [])] if found else []
    configs: dict[str, dict] = {}
    for folder in [*folders, CONFIG_DIR]:
        for path in sorted(folder.glob("*.json")):
            config = json.loads(path.read_text())
            if all(k in config for k in ARCH_KEYS):
                configs[path.stem] = config
    return configs


def merged_preprocess(model_cfg: dict, overlay: dict) -> dict:
    """open_clip's final preprocess cfg: defaults, then the tag or config file's non-None values, then the
    vision tower's image size (create_model sets `size` from the built tower last)."""
    merged = {
        **DEFAULT_PREPROCESS,
        **{k: v for k, v in overlay.items() if k in DEFAULT_PREPROCESS and v is not None},
    }
    merged["size"] = model_cfg.get("vision_cfg", {}).get("image_size", TOWER_IMAGE_SIZE)
    return merged


def preprocess_from_cfg(cfg: dict) -> PreprocessConfig:
    """An open_clip preprocess cfg (val transform) as a PreprocessConfig."""
    size = cfg["size"] if isinstance(cfg["size"], int) else cfg["size"][0]
    if not isinstance(cfg["size"], int) and len(set(cfg["size"])) != 1:
        raise PedclipError(
            f"open_clip image size {cfg['size']} is not square; pedclip supports square inputs only"
        )
    kind = RESIZE_KINDS.get(cfg.get("resize_mode", "shortest"))
    if kind is None or cfg.get("mode", "RGB") != "RGB":
        raise PedclipError(
            f"open_clip preprocess {cfg} is not supported (resize_mode shortest or squash, mode RGB)"
        )
    return PreprocessConfig(
        kind=kind,
        size=int(size),
        mean=tuple(map(float, cfg["mean"])),
        std=tuple(map(float, cfg["std"])),
        channels=3,
        grayscale=False,
        interpolation=cfg.get("interpolation", "bicubic"),
    )


def weights_file(path: Path) -> Path:
    """--weights as a file, or the open_clip weights file inside a folder."""
    if path.is_file():
        return path
    for name in FOLDER_WEIGHT_FILES:
        if (path / name).is_file():
            return path / name
    raise PedclipError(
        f"no open_clip weights file in folder {str(path)!r}; pass the .pt/.bin/.safetensors file itself"
    )


def hf_hub_dir(repo_id: str) -> Path:
    """A cached snapshot of an open_clip hf-hub repo (config + weights), fetched only when online."""
    found = cached_hub_file(repo_id, ("open_clip_config.json",))
    if found is None and not hf_offline():
        try:
            from huggingface_hub import snapshot_download

            found = Path(snapshot_download(repo_id)) / "open_clip_config.json"
        except Exception:  # noqa: BLE001 - no network: the error below says what to get
            found = None
    if found is None or not found.is_file():
        raise PedclipError(
            f"openclip:hf-hub:{repo_id} is not in the local Hugging Face cache and the hub is unreachable; download"
            f" the repo {repo_id} (open_clip_config.json and its weights) when online, or pass --weights FILE"
        )
    return found.parent


def hub_tag_file(name: str, tag: str, cfg: dict) -> tuple[Path, str]:
    """The tag's weights from the local HF cache, downloading through open_clip only when online."""
    repo = cfg.get("hf_hub", "").rstrip("/")
    repo_id, filename = (repo, None) if repo.count("/") <= 1 else repo.rsplit("/", 1)
    names = (filename,) if filename else HUB_WEIGHT_FILES
    found = cached_hub_file(repo_id, names) if repo_id else None
    if found is None and not hf_offline():
        try:
            from pedclip.models.openclip import open_clip_module

            found = Path(open_clip_module().download_pretrained(cfg))
        except Exception:  # noqa: BLE001 - no network or no such file: the error below says what to get
            found = None
    if found is None or not found.is_file():
        where = f"the Hugging Face repo {repo_id}" if repo_id else cfg.get("url", "?")
        also = f" or {cfg['url']}" if cfg.get("url") else ""
        raise PedclipError(
            f"weights for openclip:{name}/{tag} are not on disk and the hub is unreachable; get {' or '.join(names)}"
            f" from {where}{also} and pass it with --weights FILE"
        )
    if found.parent.parent.name != "snapshots":  # fetched from the URL fallback: no hub revision to name
        return found, file_sha256(found)
    return found, f"hf:{repo_id}@{found.parent.name}/{found.name}"


@register_fingerprint("openclip")
def openclip_fingerprint(spec: ModelSpec, options: LoadOptions) -> str:
    """Untrained (seed), --weights file (sha256), hub tag (cached revision) or hf-hub repo; no model built."""
    if spec.is_hf_hub:
        return _hf_hub_fingerprint(spec, options)
    if spec.tag is None and spec.name in model_configs():
        name, tag_cfg, model_cfg = spec.name, {}, model_configs()[spec.name]
        path = weights_file(options.weights) if options.weights is not None else None
        weights_id = file_sha256(path) if path is not None else f"untrained:seed={options.seed}"
    else:
        name, tag_cfg = resolved_name(spec.name, spec.tag, options.home)
        model_cfg = model_configs().get(name) or _open_clip_config(name)
        if options.weights is not None:
            weights_id = file_sha256(weights_file(options.weights))
        else:
            weights_id = hub_tag_file(name, spec.tag, tag_cfg)[1]
    preprocess = preprocess_from_cfg(merged_preprocess(model_cfg, tag_cfg))
    return fingerprint_of("openclip", {"open_clip": name}, weights_id, preprocess.as_dict(), options.dtype)


def resolved_name(name: str, tag: str | None, home: Path | None) -> tuple[str, dict]:
    """`openclip.resolve_name(name, tag)` (the -quickgelu swap, the tag's cfg), remembered per open_clip version."""
    memo_path = (
        Paths.at(home).home / "cache" / f"open_clip-{_open_clip_version()}-tags-v{TAG_MEMO_VERSION}.json"
    )
    key = f"{name}/{tag}"
    memo = _read_memo(memo_path)
    if key in memo and memo[key]["name"] in model_configs():
        return memo[key]["name"], memo[key]["cfg"]
    from pedclip.models import openclip  # the tag table (and the unknown-name error) live in open_clip

    with warnings.catch_warnings():  # the loader warns about the QuickGELU swap; once is enough
        warnings.simplefilter("ignore")
        resolved, cfg = openclip.resolve_name(name, tag)
    if tag is not None and resolved in model_configs():
        _write_memo(memo_path, {**memo, key: {"name": resolved, "cfg": cfg}})
    return resolved, cfg


def _open_clip_config(name: str) -> dict:
    """A config registered with open_clip at run time rather than shipped as a JSON file."""
    from pedclip.models.openclip import open_clip_module

    return open_clip_module().get_model_config(name)


def _open_clip_version() -> str:
    try:
        return importlib.metadata.version("open_clip_torch")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _read_memo(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_memo(path: Path, memo: dict) -> None:
    """Best effort and atomic (a read-only home or a racing writer costs an open_clip import, nothing more)."""
    try:
        text = json.dumps(memo, indent=1, sort_keys=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_suffix(f".{os.getpid()}.tmp")
        scratch.write_text(text)
        os.replace(scratch, path)
    except (OSError, TypeError, ValueError):
        pass


def _hf_hub_fingerprint(spec: ModelSpec, options: LoadOptions) -> str:
    repo_id = spec.name[len(HF_HUB_PREFIX) :]
    folder = hf_hub_dir(repo_id)
    config = json.loads((folder / "open_clip_config.json").read_text())
    model_cfg = config.get("model_cfg", {})
    weights_id = f"hf:{repo_id}@{folder.name}"
    if options.weights is not None:
        weights_id = file_sha256(weights_file(options.weights))
    preprocess = preprocess_from_cfg(merged_preprocess(model_cfg, config.get("preprocess_cfg", {})))
    return fingerprint_of(
        "openclip", {"open_clip_config": model_cfg}, weights_id, preprocess.as_dict(), options.dtype
    )
