"""`local:DIR` (checkpoints pedclip writes) and `demo:clip|medclip` (the demo's local checkpoints).

A checkpoint folder holds safetensors weights plus `pedclip_model.json` naming the family, the
architecture, the preprocess config, the parent's fingerprint and the training run. open_clip ones
also hold open_clip's own `open_clip_config.json`; MedCLIP ones hold the released key layout with
`vision/config.json` and `text/` (BERT config and tokenizer), so the original package can read them too.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pedclip.config import Paths
from pedclip.errors import PedclipError
from pedclip.models.base import Encoder, PreprocessConfig, fingerprint_of
from pedclip.models.checkpoint import file_sha256
from pedclip.models.registry import LoadOptions, register, register_fingerprint
from pedclip.models.spec import ModelSpec

MANIFEST = "pedclip_model.json"
OPENCLIP_WEIGHTS = "open_clip_model.safetensors"
MEDCLIP_WEIGHTS = "model.safetensors"
FORMAT_VERSION = 1


def save_local(
    encoder: Encoder, out_dir: str | Path, run_id: str | None = None, extra: dict | None = None
) -> Path:
    """Write `encoder`'s current weights as a `local:` checkpoint; the saved model's parent is `encoder`."""
    from safetensors.torch import save_file

    out = Path(out_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    model = encoder.modules["model"]
    if encoder.family == "openclip":
        weights, tokenizer = out / OPENCLIP_WEIGHTS, _save_openclip_config(encoder, out)
        state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    elif encoder.family == "medclip":
        from pedclip.models import medclip
        from pedclip.models.medclip_layout import to_released_layout

        weights = out / MEDCLIP_WEIGHTS
        tokenizer = {
            **medclip.save_configs(model, encoder.tokenize, encoder.arch["medclip"], out),
            **medclip.describe_tokenizer(encoder.tokenize),
        }
        state = to_released_layout(model)
    else:
        raise PedclipError(
            f"cannot save an encoder of family {encoder.family!r}; expected openclip or medclip"
        )
    save_file(state, str(weights), metadata={"format": "pt"})
    manifest = {
        "format": FORMAT_VERSION,
        "family": encoder.family,
        "arch": encoder.arch,
        "weights_file": weights.name,
        "weights_sha256": file_sha256(weights),
        "preprocess": encoder.preprocess_config.as_dict(),
        "saved_dtype": encoder.dtype,
        "parent_fingerprint": encoder.fingerprint,
        "parent_spec": encoder.spec,
        "training_run": run_id,
        "tokenizer": tokenizer,
        "extra": extra or {},
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
    return out


def _save_openclip_config(encoder: Encoder, out: Path) -> dict:
    from pedclip.models.openclip import open_clip_module

    model = encoder.modules["model"]
    name = encoder.arch.get("open_clip")
    model_cfg = encoder.arch.get("open_clip_config") or open_clip_module().get_model_config(name)
    if not model_cfg:
        raise PedclipError(f"cannot find the open_clip config of {encoder.spec!r} to save beside its weights")
    config = {"model_cfg": model_cfg, "preprocess_cfg": dict(model.visual.preprocess_cfg)}
    (out / "open_clip_config.json").write_text(json.dumps(config, indent=2, default=list))
    return {"kind": "open_clip", "source": getattr(encoder.tokenize, "source", name), "model_cfg_name": name}


def read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not path.is_file():
        raise PedclipError(
            f"{str(folder)!r} is not a pedclip checkpoint (no {MANIFEST}); pass a folder written by `pedclip finetune`"
        )
    return json.loads(path.read_text())


def weights_path(folder: Path, manifest: dict) -> Path:
    weights = folder / manifest["weights_file"]
    if not weights.is_file():
        raise PedclipError(
            f"checkpoint {str(folder)!r} lacks its weights file {manifest['weights_file']}; rewrite it"
        )
    return weights


CONFIG_SUFFIXES = (
    ".json",
    ".txt",
    ".model",
)  # open_clip_config.json, MedCLIP's vision/ and text/ configs, vocab


def folder_weights_id(folder: Path, manifest: dict) -> str:
    """The identity of everything in the folder the loaders read: the weights file's sha256 and, by content,
    every config and tokenizer file beside it (open_clip_config.json's quick_gelu changes the vectors too).
    The manifest is not hashed here: its arch and preprocess enter the fingerprint themselves."""
    weights = weights_path(folder, manifest)
    digest = hashlib.sha256()
    configs = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix in CONFIG_SUFFIXES and p.name != MANIFEST and p != weights
    )
    for path in configs:
        digest.update(f"{path.relative_to(folder).as_posix()}\0{file_sha256(path)}\n".encode())
    return f"{file_sha256(weights)}+configs:{digest.hexdigest()[:16]}"


def manifest_preprocess(manifest: dict) -> PreprocessConfig:
    return PreprocessConfig(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in manifest["preprocess"].items()}
    )


def load_folder(folder: Path, spec: str, options: LoadOptions) -> Encoder:
    """A checkpoint folder -> Encoder; weights identity is the sha256 of its safetensors file."""
    manifest = read_manifest(folder)
    weights = weights_path(folder, manifest)
    weights_id, parent = folder_weights_id(folder, manifest), manifest.get("parent_fingerprint")
    preprocess = manifest_preprocess(manifest)
    if manifest["family"] == "openclip":
        from pedclip.models.openclip import open_clip_module, tokenizer_for, wrap_model

        model = _text_only_openclip(folder, weights) if options.towers == "text" else None
        if model is None:
            model = open_clip_module().create_model(f"local-dir:{folder}", precision="fp32", device="cpu")
        return wrap_model(
            spec,
            model,
            manifest["arch"],
            weights_id,
            options,
            tokenizer_for(f"local-dir:{folder}"),
            untrained=False,
            parent=parent,
            preprocess=preprocess,
        )
    if manifest["family"] == "medclip":
        from pedclip.models.medclip import WeightsSource, build_from_source, wrap_medclip

        model, tokenize, arch = build_from_source(
            manifest["arch"]["medclip"],
            WeightsSource(weights, folder=folder),
            text_only=options.towers == "text",
        )
        return wrap_medclip(spec, model, tokenize, arch, weights_id, options, parent=parent)
    raise unknown_family(folder, manifest)


def _text_only_openclip(folder: Path, weights: Path):
    """The folder's CLIP text tower alone (TextOnlyCLIP), or None when its config needs the whole model."""
    from pedclip.models.text_only import TextOnlyCLIP, builds_text_alone, load_text_state

    model_cfg = json.loads((folder / "open_clip_config.json").read_text()).get("model_cfg", {})
    if not builds_text_alone(model_cfg):
        return None
    model = TextOnlyCLIP(model_cfg)
    load_text_state(model, weights)
    return model.eval()


def unknown_family(folder: Path, manifest: dict) -> PedclipError:
    return PedclipError(
        f"checkpoint {str(folder)!r} has unknown family {manifest['family']!r}; expected openclip or medclip"
    )


def folder_fingerprint(folder: Path, options: LoadOptions) -> str:
    """Manifest + safetensors sha256, no model built. open_clip: arch and preprocess from the manifest (as the
    loader takes them); MedCLIP: arch from the folder's vision/ and text/ configs (as the loader derives it)."""
    manifest = read_manifest(folder)
    weights_id = folder_weights_id(folder, manifest)
    if manifest["family"] == "openclip":
        preprocess = manifest_preprocess(manifest).as_dict()
        return fingerprint_of("openclip", manifest["arch"], weights_id, preprocess, options.dtype)
    if manifest["family"] == "medclip":
        from pedclip.models.medclip import WeightsSource, source_fingerprint

        source = WeightsSource(weights_path(folder, manifest), folder=folder)
        return source_fingerprint(manifest["arch"]["medclip"], source, weights_id, options.dtype)
    raise unknown_family(folder, manifest)


def local_folder(spec: ModelSpec) -> Path:
    folder = Path(spec.name).expanduser()
    if not folder.is_dir():
        raise PedclipError(
            f"local checkpoint folder {spec.name!r} does not exist; pass a folder written by `pedclip finetune`"
        )
    return folder.resolve()


@register("local", lister=lambda options: list_local(options))
def load_local(spec: ModelSpec, options: LoadOptions) -> Encoder:
    folder = local_folder(spec)
    return load_folder(folder, f"local:{folder}", options)


@register_fingerprint("local")
def local_fingerprint(spec: ModelSpec, options: LoadOptions) -> str:
    return folder_fingerprint(local_folder(spec), options)


def demo_folder(name: str, home: Path | None) -> Path:
    return Paths.at(home).checkpoints / f"demo-{name}"


def built_demo_folder(spec: ModelSpec, options: LoadOptions) -> Path:
    folder = demo_folder(spec.name, options.home)
    if not (folder / MANIFEST).is_file():
        raise PedclipError(
            f"demo model {spec} is not built yet ({folder} is missing); run `pedclip demo` first"
        )
    return folder


@register("demo", lister=lambda options: list_demo(options))
def load_demo(spec: ModelSpec, options: LoadOptions) -> Encoder:
    return load_folder(built_demo_folder(spec, options), str(spec), options)


@register_fingerprint("demo")
def demo_fingerprint(spec: ModelSpec, options: LoadOptions) -> str:
    return folder_fingerprint(built_demo_folder(spec, options), options)


def list_local(options: LoadOptions) -> list[dict]:
    root = Paths.at(options.home).checkpoints
    folders = sorted(p.parent for p in root.glob(f"*/{MANIFEST}")) if root.is_dir() else []
    rows = [
        {
            "spec": f"local:{p}",
            "family": "local",
            "needs": "nothing",
            "weights_present": True,
            "weights_at": str(p),
        }
        for p in folders
        if not p.name.startswith("demo-")
    ]
    return rows or [
        {
            "spec": "local:DIR",
            "family": "local",
            "needs": "a folder written by `pedclip finetune`",
            "weights_present": None,
            "weights_at": "",
        }
    ]


def list_demo(options: LoadOptions) -> list[dict]:
    rows = []
    for name in ("clip", "medclip"):
        folder = demo_folder(name, options.home)
        present = (folder / MANIFEST).is_file()
        rows.append(
            {
                "spec": f"demo:{name}",
                "family": "demo",
                "needs": "run `pedclip demo` once",
                "weights_present": present,
                "weights_at": str(folder) if present else "",
            }
        )
    return rows
