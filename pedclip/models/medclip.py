"""`medclip:vit`, `medclip:resnet`: MedCLIP on transformers + torchvision, loading the released checkpoint.

Weights: `--weights` (the released zip, a folder holding pytorch_model.bin or model.safetensors, or the
file itself), else `<checkpoints>/medclip-<variant>[.zip]`. Configs and tokenizer: the folder's
`vision/config.json` and `text/` first, then the local HF cache, then the hub when online.
The architecture part of the fingerprint comes from those configs alone (`medclip_arch`), so
`fingerprint_for` needs no network built.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from pedclip.config import Paths
from pedclip.errors import PedclipError
from pedclip.models.base import Encoder, PreprocessConfig, fingerprint_of, torch_dtype
from pedclip.models.checkpoint import (
    UNREADABLE_WEIGHTS,
    cached_hub_file,
    cast_module,
    file_sha256,
    hf_offline,
    unreadable_weights,
)
from pedclip.models.medclip_arch import RESNET_WIDTH, MedCLIP, Text, VisionResNet, VisionViT
from pedclip.models.medclip_layout import load_released
from pedclip.models.registry import LoadOptions, register, register_fingerprint
from pedclip.models.spec import ModelSpec

SWIN_HUB = "microsoft/swin-tiny-patch4-window7-224"
BERT_HUB = "emilyalsentzer/Bio_ClinicalBERT"
RELEASED_ZIPS = {"vit": "medclip-vit-pretrained.zip", "resnet": "medclip-pretrained.zip"}
WEIGHT_POINTERS = {"vit": "medclip/medclip_vit_weight.txt", "resnet": "medclip/medclip_resnet_weight.txt"}
WEIGHT_FILES = ("pytorch_model.bin", "model.safetensors", "pytorch_model.safetensors")
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json")
MAX_TOKENS = 77
PREPROCESS = PreprocessConfig(
    kind="pad_square",
    size=224,
    mean=(0.5862785803043838,),
    std=(0.27950088968644304,),
    channels=1,
    grayscale=True,
    interpolation="bicubic",
)
UNSTABLE_CONFIG_KEYS = (
    "transformers_version",
    "architectures",
    "id2label",
    "label2id",
    "torch_dtype",
    "dtype",
)


@dataclass(frozen=True)
class WeightsSource:
    """Where the weights are: a file, or a member of a zip; `folder` may hold vision/ and text/ configs."""

    path: Path
    member: str | None = None
    folder: Path | None = None


class MedCLIPTokenize:
    """Bio_ClinicalBERT tokenization as MedCLIP calls it: pad to the longest text in the call, truncate at 77."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, texts, pad_to: int | None = None) -> dict:
        """Token ids padded to the longest of `texts`, or to `pad_to` (the longest of a larger group)."""
        padding = {"padding": "max_length", "max_length": pad_to} if pad_to else {"padding": True}
        tokens = self.tokenizer(
            list(texts), truncation=True, return_tensors="pt", **{"max_length": MAX_TOKENS, **padding}
        )
        return {"input_ids": tokens["input_ids"], "attention_mask": tokens["attention_mask"]}

    def padded_length(self, texts) -> int:
        """The length MedCLIP pads a call with these texts to. Its pooling averages over padding too, so a
        text's vector depends on this number: it is part of the text-cache key."""
        ids = self.tokenizer(list(texts), truncation=True, max_length=MAX_TOKENS)["input_ids"]
        return max((len(i) for i in ids), default=0)


def missing_weights_error(variant: str, looked: list[Path]) -> PedclipError:
    return PedclipError(
        f"MedCLIP {variant} weights are not on disk (looked in {', '.join(map(str, looked))}); download"
        f" {RELEASED_ZIPS[variant]} from the URL in RyanWangZf/MedCLIP's {WEIGHT_POINTERS[variant]}"
        f" (.../pytrial/{RELEASED_ZIPS[variant]}) and pass it with --weights FILE_OR_DIR"
    )


def find_weights(variant: str, options: LoadOptions) -> WeightsSource:
    """The released zip, a folder with pytorch_model.bin / model.safetensors, or the file itself."""
    default = Paths.at(options.home).checkpoints / f"medclip-{variant}"
    candidates = [options.weights] if options.weights is not None else [default, default.with_suffix(".zip")]
    for candidate in candidates:
        if candidate.is_dir():
            for name in WEIGHT_FILES:
                if (candidate / name).is_file():
                    return WeightsSource(candidate / name, folder=candidate)
        elif candidate.is_file() and zipfile.is_zipfile(candidate) and not _is_torch_zip(candidate):
            return WeightsSource(candidate, member=_zip_member(candidate))
        elif candidate.is_file():
            return WeightsSource(candidate, folder=candidate.parent)
    raise missing_weights_error(variant, candidates)


def _is_torch_zip(path: Path) -> bool:
    with zipfile.ZipFile(path) as archive:
        return any(n.endswith("data.pkl") for n in archive.namelist())


def _zip_member(path: Path) -> str:
    with zipfile.ZipFile(path) as archive:
        members = [n for n in archive.namelist() if Path(n).name in WEIGHT_FILES]
    if not members:
        raise PedclipError(
            f"zip {str(path)!r} holds no {' or '.join(WEIGHT_FILES)}; pass the released MedCLIP zip"
        )
    return sorted(members, key=len)[0]


def read_weights(source: WeightsSource) -> dict[str, torch.Tensor]:
    """The released state dict (torch pickle read with weights_only=True, or safetensors); an unreadable or
    empty file is one line."""
    label = f"{source.path}:{source.member}" if source.member else str(source.path)
    try:
        state = _read_weights(source)
    except UNREADABLE_WEIGHTS as exc:
        raise unreadable_weights(label, exc, "MedCLIP's released pytorch_model.bin (or its zip)") from exc
    except Exception as exc:  # safetensors raises its own SafetensorError (an Exception) on a corrupt file
        if type(exc).__name__ != "SafetensorError":
            raise
        raise unreadable_weights(label, exc, "MedCLIP's released pytorch_model.bin (or its zip)") from exc
    if not isinstance(state, dict) or not state:
        raise PedclipError(
            f"weights file {label!r} holds no state dict; pass MedCLIP's released pytorch_model.bin"
        )
    return state


def _read_weights(source: WeightsSource):
    name = source.member or source.path.name
    if source.member is not None:
        with zipfile.ZipFile(source.path) as archive:
            data = archive.read(source.member)
        if name.endswith(".safetensors"):
            from safetensors.torch import load

            return load(data)
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if name.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(str(source.path), device="cpu")
    state = torch.load(source.path, map_location="cpu", weights_only=True)
    return state.get("state_dict", state) if isinstance(state, dict) else state


def hub_folder(repo_id: str, needed: tuple[str, ...], what: str, local: Path | None) -> Path:
    """A folder holding any of `needed`: `local` if it has one, else the HF cache, else the hub when online."""
    if local is not None and any((local / n).is_file() for n in needed):
        return local
    found = cached_hub_file(repo_id, needed)
    if found is None and not hf_offline():
        try:
            from huggingface_hub import snapshot_download

            snapshot = Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.txt"]))
            found = next((snapshot / n for n in needed if (snapshot / n).is_file()), None)
        except Exception:  # noqa: BLE001 - no network: the error below says what to get
            found = None
    if found is None:
        place = f"{local}/" if local is not None else "the --weights folder's vision/ or text/"
        raise PedclipError(
            f"the MedCLIP {what} is neither in {place} nor in the local Hugging Face cache and the hub is"
            f" unreachable; put {needed[0]} from the hub repo {repo_id} there (or run once online) and pass --weights"
        )
    return found.parent


def projection_dim(state: dict) -> int:
    return int(state["text_model.projection_head.weight"].shape[0])


def resnet_layers(state: dict) -> tuple[int, ...]:
    """Block counts read from the checkpoint keys, so tiny test ResNets load too."""
    return tuple(
        1 + max(int(k.split(".")[3]) for k in state if k.startswith(f"vision_model.model.layer{i}."))
        for i in range(1, 5)
    )


def resnet_width(state: dict) -> int:
    """Stem channels read from the checkpoint (64 in every released MedCLIP; smaller in demo models)."""
    return int(state["vision_model.model.conv1.weight"].shape[0])


def resnet_vision_arch(state: dict) -> dict:
    vision = {"resnet_layers": list(resnet_layers(state)), "projection_dim": projection_dim(state)}
    width = resnet_width(state)
    return vision if width == RESNET_WIDTH else {**vision, "width": width}  # released fingerprints unchanged


def swin_config(folder: Path | None):
    from transformers import SwinConfig

    sub = folder / "vision" if folder is not None else None
    return SwinConfig.from_json_file(
        str(hub_folder(SWIN_HUB, ("config.json",), "Swin config", sub) / "config.json")
    )


def bert_config(folder: Path | None):
    from transformers import BertConfig

    sub = folder / "text" if folder is not None else None
    return BertConfig.from_json_file(
        str(hub_folder(BERT_HUB, ("config.json",), "BERT config", sub) / "config.json")
    )


def medclip_arch(variant: str, folder: Path | None, state: dict | None) -> dict:
    """The fingerprint's architecture: the configs (Swin from JSON; ResNet blocks from `state`'s keys)."""
    vision = resnet_vision_arch(state) if variant == "resnet" else stable_config(swin_config(folder))
    return {"medclip": variant, "vision": vision, "text": stable_config(bert_config(folder))}


def vision_module(variant: str, folder: Path | None, state: dict) -> torch.nn.Module:
    if variant == "resnet":
        return VisionResNet(resnet_layers(state), projection_dim(state), resnet_width(state))
    return VisionViT(swin_config(folder), projection_dim(state))


def text_module(folder: Path | None, state: dict) -> tuple[Text, object]:
    from transformers import BertTokenizerFast

    sub = folder / "text" if folder is not None else None
    token_dir = hub_folder(BERT_HUB, TOKENIZER_FILES, "tokenizer (vocab.txt)", sub)
    config = bert_config(folder)
    tokenizer = BertTokenizerFast.from_pretrained(str(token_dir), local_files_only=True)
    tokenizer.model_max_length = MAX_TOKENS
    return Text(config, projection_dim(state)), tokenizer


def stable_config(config) -> dict:
    """A config as fingerprint input: without version stamps and label maps."""
    return {
        k: v
        for k, v in sorted(config.to_dict().items())
        if k not in UNSTABLE_CONFIG_KEYS and not k.startswith("_")
    }


def build_from_source(
    variant: str, source: WeightsSource, text_only: bool = False
) -> tuple[MedCLIP, MedCLIPTokenize, dict]:
    """Architecture from the configs, weights strictly loaded from the released layout. `text_only`: BERT +
    projection + logit scale, with an empty vision module and no vision tensor loaded."""
    state = read_weights(source)
    if not isinstance(state, dict) or "text_model.projection_head.weight" not in state:
        raise PedclipError(
            f"weights {str(source.path)!r} are not a MedCLIP state dict (no text_model.projection_head)"
        )
    arch = medclip_arch(variant, source.folder, state)
    if text_only:
        state = {k: v for k, v in state.items() if not k.startswith("vision_model.")}
    vision = torch.nn.Module() if text_only else vision_module(variant, source.folder, state)
    text, tokenizer = text_module(source.folder, state)
    model = MedCLIP(vision, text)
    load_released(model, state, str(source.path))
    model.clamp_logit_scale()
    return model, MedCLIPTokenize(tokenizer), arch


def wrap_medclip(
    spec: str,
    model: MedCLIP,
    tokenize: MedCLIPTokenize,
    arch: dict,
    weights_id: str,
    options: LoadOptions,
    parent: str | None = None,
) -> Encoder:
    model = cast_module(model, options.device, torch_dtype(options.dtype))
    return Encoder(
        spec=spec,
        family="medclip",
        image_tower=model.vision_model if any(True for _ in model.vision_model.parameters()) else None,
        text_tower=model.text_model,
        tokenize=tokenize,
        logit_scale_param=model.logit_scale,
        preprocess_config=PREPROCESS,
        weights_id=weights_id,
        arch=arch,
        dtype=options.dtype,
        device=options.device,
        parent_fingerprint=parent,
        modules={"model": model},
    )


@register("medclip", lister=lambda options: list_medclip(options))
def load_medclip(spec: ModelSpec, options: LoadOptions) -> Encoder:
    source = find_weights(spec.name, options)
    model, tokenize, arch = build_from_source(spec.name, source, text_only=options.towers == "text")
    return wrap_medclip(str(spec), model, tokenize, arch, file_sha256(source.path), options)


@register_fingerprint("medclip")
def medclip_fingerprint(spec: ModelSpec, options: LoadOptions) -> str:
    """Weights file sha256 plus the configs read from JSON; no network built. medclip:resnet takes its block
    counts from the checkpoint's keys, so it reads the state dict (still builds and loads nothing)."""
    source = find_weights(spec.name, options)
    return source_fingerprint(spec.name, source, file_sha256(source.path), options.dtype)


def source_fingerprint(variant: str, source: WeightsSource, weights_id: str, dtype: str) -> str:
    state = read_weights(source) if variant == "resnet" else None
    arch = medclip_arch(variant, source.folder, state)
    return fingerprint_of("medclip", arch, weights_id, PREPROCESS.as_dict(), dtype)


def list_medclip(options: LoadOptions) -> list[dict]:
    rows = []
    for variant in ("vit", "resnet"):
        try:
            found = str(find_weights(variant, options).path)
        except PedclipError:
            found = ""
        configs = "Swin + BERT configs" if variant == "vit" else "BERT config"
        rows.append(
            {
                "spec": f"medclip:{variant}",
                "family": "medclip",
                "needs": f"{RELEASED_ZIPS[variant]} via --weights; {configs} and tokenizer (folder or HF cache)",
                "weights_present": bool(found),
                "weights_at": found,
            }
        )
    return rows


def save_configs(model: MedCLIP, tokenize: MedCLIPTokenize, variant: str, out_dir: Path) -> dict:
    """vision/config.json (Swin) and text/ (BERT config + tokenizer files) beside a saved checkpoint."""
    text_dir = out_dir / "text"
    text_dir.mkdir(parents=True, exist_ok=True)
    model.text_model.model.config.to_json_file(str(text_dir / "config.json"))
    tokenize.tokenizer.save_pretrained(str(text_dir))
    if variant == "vit":
        (out_dir / "vision").mkdir(exist_ok=True)
        model.vision_model.model.config.to_json_file(str(out_dir / "vision" / "config.json"))
    return {"tokenizer": "text/", "vision_config": "vision/config.json" if variant == "vit" else None}


def describe_tokenizer(tokenize: MedCLIPTokenize) -> dict:
    return {
        "kind": "bert-wordpiece",
        "vocab_size": tokenize.tokenizer.vocab_size,
        "max_length": MAX_TOKENS,
        "padding": "longest",
    }
