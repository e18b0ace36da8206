"""`openclip:NAME[/TAG]`, `openclip:hf-hub:ORG/REPO`: any open_clip model, through open_clip's public API."""

from __future__ import annotations

import difflib
import json
import pickle
import warnings
from pathlib import Path

import torch

from pedclip.errors import PedclipError
from pedclip.models.base import Encoder, PreprocessConfig, torch_dtype
from pedclip.models.checkpoint import (
    cached_hub_file,
    cast_module,
    file_sha256,
    is_torchscript,
    quiet_root_logger,
    read_state_dict,
    unreadable_weights,
)
from pedclip.models.openclip_config import (
    CONFIG_DIR,
    DEFAULT_PREPROCESS,
    HUB_WEIGHT_FILES,
    hf_hub_dir,
    hub_tag_file,
    preprocess_from_cfg,
    weights_file,
)
from pedclip.models.registry import LoadOptions, register
from pedclip.models.spec import HF_HUB_PREFIX, ModelSpec
from pedclip.models.text_trim import TextTower

STUDY_SPECS = ("openclip:ViT-B-32-quickgelu/openai", "openclip:pedclip-tiny", "openclip:ViT-B-32-quickgelu")
QUIET_UNTRAINED = (
    "pedclip-tiny",
    "pedclip-demo",
)  # test and demo starting points: random weights are the point


def open_clip_module():
    """open_clip with pedclip's own model configs (pedclip-tiny) registered once."""
    import open_clip

    if "pedclip-tiny" not in open_clip.list_models():
        open_clip.add_model_config(CONFIG_DIR)
    return open_clip


class ImageTower(torch.nn.Module):
    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels)


def resolve_name(name: str, tag: str | None) -> tuple[str, dict]:
    """Check NAME and TAG against open_clip (unknown model vs invalid tag); map to the -quickgelu
    config when the tag was trained with QuickGELU (plain ViT-B-32 + openai would build GELU: audit section 4)."""
    oc = open_clip_module()
    known = oc.list_models()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=3)
        hint = (
            f"; did you mean {', '.join(close)}?"
            if close
            else "; run `pedclip models list` or see open_clip.list_models()"
        )
        raise PedclipError(f"unknown open_clip model {name!r}{hint}")
    if tag is None:
        return name, {}
    cfg = oc.get_pretrained_cfg(name, tag)
    if not cfg:
        tags = oc.list_pretrained_tags_by_model(name)
        raise PedclipError(
            f"invalid weights tag {tag!r} for open_clip model {name!r}; valid tags: {', '.join(tags) or 'none'}"
            " (or pass --weights FILE)"
        )
    quick = f"{name}-quickgelu"
    if cfg.get("quick_gelu") and not (oc.get_model_config(name) or {}).get("quick_gelu") and quick in known:
        warnings.warn(
            f"{name}/{tag} was trained with QuickGELU; building {quick} (plain {name} uses GELU)",
            stacklevel=3,
        )
        return quick, oc.get_pretrained_cfg(quick, tag) or cfg
    return name, cfg


def preprocess_from_model(model: torch.nn.Module) -> PreprocessConfig:
    """The model's own open_clip preprocess cfg as a PreprocessConfig (val transform)."""
    return preprocess_from_cfg(dict(model.visual.preprocess_cfg))


def apply_tag_preprocess(model: torch.nn.Module, tag_cfg: dict) -> None:
    """What create_model(name, pretrained=tag) does and building with pretrained=None skips: the tag's mean,
    std, resize mode and interpolation overlay the defaults (SigLIP: 0.5 and squash); size stays the tower's."""
    overlay = {k: v for k, v in tag_cfg.items() if k in DEFAULT_PREPROCESS and k != "size" and v is not None}
    model.visual.preprocess_cfg = {**model.visual.preprocess_cfg, **overlay}


def build_untrained(name: str, seed: int) -> torch.nn.Module:
    """The architecture with seeded random weights; the global RNG is left untouched."""
    oc = open_clip_module()
    with torch.random.fork_rng(devices=[]), quiet_root_logger():
        torch.manual_seed(seed)
        return oc.create_model(name, pretrained=None, precision="fp32", device="cpu")


def load_weights_file(model: torch.nn.Module, path: Path, trust_torchscript: bool = False) -> None:
    """State dict (.pt/.bin/.pth, maybe {'state_dict'} or 'module.'), safetensors or OpenAI's JIT file; strict."""
    oc = open_clip_module()
    jit = is_torchscript(path)
    if jit and not any(type(m).__name__ == "QuickGELU" for m in model.modules()):
        warnings.warn(
            f"{path.name} is an OpenAI JIT file (QuickGELU) but the architecture uses GELU;"
            " use the -quickgelu model name",
            stacklevel=3,
        )
    try:
        if jit:  # OpenAI's JIT file: read with torch.jit.load, never unpickled with weights_only=False
            model.load_state_dict(jit_state_dict(path, model, trust_torchscript), strict=True)
        else:
            oc.load_checkpoint(model, str(path), strict=True, weights_only=True)
    except (EOFError, pickle.UnpicklingError) as exc:
        raise unreadable_weights(str(path), exc, "a state dict, safetensors or OpenAI JIT file") from exc
    except (RuntimeError, KeyError, ValueError) as exc:
        first = " ".join(str(exc).split())[:300]
        raise PedclipError(
            f"weights file {str(path)!r} does not fit this open_clip architecture: {first}"
        ) from exc


def jit_state_dict(path: Path, model: torch.nn.Module, trust: bool = False) -> dict[str, torch.Tensor]:
    """A TorchScript CLIP's weights without its scalar attributes and the buffers open_clip does not persist."""
    state = read_state_dict(path, trust_torchscript=trust)
    persistent = set(model.state_dict())
    dropped = {"input_resolution", "context_length", "vocab_size"} | {
        n for n, _ in model.named_buffers()
    } - persistent
    return {k: v for k, v in state.items() if k not in dropped}


class OpenClipTokenize:
    """open_clip's tokenizer for `source` (a model name or local-dir:), as a callable over a list of texts."""

    def __init__(self, source: str):
        self.source = source
        try:
            self.tokenizer = open_clip_module().get_tokenizer(source)
        except (OSError, RuntimeError, ValueError) as exc:  # an HF tokenizer that is not cached, offline
            raise PedclipError(
                f"cannot build the tokenizer of {source!r} ({' '.join(str(exc).split())[:200]}); run once online"
                " so the Hugging Face cache holds it"
            ) from exc

    def __call__(self, texts) -> torch.Tensor:
        return self.tokenizer(list(texts))


def tokenizer_for(source: str) -> OpenClipTokenize:
    return OpenClipTokenize(source)


@register("openclip", lister=lambda options: list_openclip(options))
def load_openclip(spec: ModelSpec, options: LoadOptions) -> Encoder:
    """Build, load weights (file, hub tag, or seeded random), cast, and wrap as an Encoder."""
    if spec.is_hf_hub:
        return _load_hf_hub(spec, options)
    name, cfg = resolve_name(spec.name, spec.tag)
    path, weights_id = weights_for(spec, name, cfg, options)  # before building: a missing file fails fast
    model = build_untrained(name, options.seed)
    apply_tag_preprocess(model, cfg)
    if path is not None:
        load_weights_file(model, path, options.trust_torchscript)
    elif name not in QUIET_UNTRAINED:
        warnings.warn(
            f"{spec} has no weights tag: random weights (seed {options.seed}), for tests and benchmarks only",
            stacklevel=3,
        )
    arch = {"open_clip": name}
    return wrap_model(str(spec), model, arch, weights_id, options, tokenizer_for(name))


def weights_for(spec: ModelSpec, name: str, cfg: dict, options: LoadOptions) -> tuple[Path | None, str]:
    """(file to load or None, weights identity): --weights file sha256, hub tag revision, or the seed."""
    if options.weights is not None:
        path = weights_file(options.weights)
        return path, file_sha256(path)
    if spec.tag is not None:
        return hub_tag_file(name, spec.tag, cfg)
    return None, f"untrained:seed={options.seed}"


def _load_hf_hub(spec: ModelSpec, options: LoadOptions) -> Encoder:
    repo_id = spec.name[len(HF_HUB_PREFIX) :]
    folder = hf_hub_dir(repo_id)
    oc = open_clip_module()
    model = oc.create_model(f"local-dir:{folder}", precision="fp32", device="cpu")
    config = json.loads((folder / "open_clip_config.json").read_text())
    arch = {"open_clip_config": config.get("model_cfg", {})}
    weights_id = f"hf:{repo_id}@{folder.name}"
    if options.weights is not None:  # the hub gave the architecture; the file gives the weights
        path = weights_file(options.weights)
        load_weights_file(model, path, options.trust_torchscript)
        weights_id = file_sha256(path)
    return wrap_model(str(spec), model, arch, weights_id, options, tokenizer_for(f"local-dir:{folder}"))


def wrap_model(
    spec: str,
    model: torch.nn.Module,
    arch: dict,
    weights_id: str,
    options: LoadOptions,
    tokenize,
    untrained: bool | None = None,
    parent: str | None = None,
    preprocess: PreprocessConfig | None = None,
) -> Encoder:
    """An open_clip CLIP as an Encoder: preprocess from the model's own cfg, weights cast to the dtype."""
    preprocess = preprocess or preprocess_from_model(model)
    model = cast_module(model, options.device, torch_dtype(options.dtype))
    return Encoder(
        spec=spec,
        family="openclip",
        image_tower=ImageTower(model) if hasattr(model, "visual") else None,
        text_tower=TextTower(model),
        tokenize=tokenize,
        logit_scale_param=model.logit_scale,
        preprocess_config=preprocess,
        weights_id=weights_id,
        arch=arch,
        dtype=options.dtype,
        device=options.device,
        untrained=weights_id.startswith("untrained:") if untrained is None else untrained,
        parent_fingerprint=parent,
        modules={"model": model},
    )


def list_openclip(options: LoadOptions) -> list[dict]:
    rows = []
    for spec in STUDY_SPECS:
        name, _, tag = spec.partition(":")[2].partition("/")
        row = {
            "spec": spec,
            "family": "openclip",
            "needs": "nothing (random weights)",
            "weights_present": True,
            "weights_at": "untrained",
        }
        if tag:
            cfg = open_clip_module().get_pretrained_cfg(name, tag)
            repo = cfg.get("hf_hub", "").rstrip("/")
            found = cached_hub_file(repo, HUB_WEIGHT_FILES) if repo else None
            hint = options.weights if options.weights and options.weights.exists() else None
            row.update(
                needs=f"hub {repo} or --weights FILE",
                weights_present=bool(found or hint),
                weights_at=str(found or hint or ""),
            )
        rows.append(row)
    rows.append(
        {
            "spec": "openclip:NAME/TAG | openclip:hf-hub:ORG/REPO",
            "family": "openclip",
            "needs": "hub (cached) or --weights FILE",
            "weights_present": None,
            "weights_at": "",
        }
    )
    return rows
