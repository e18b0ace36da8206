"""The one surface every model family returns: an `Encoder`.

Preprocessing is split in two so the pixel cache can sit between them:
`geometry` (decode-side: mode, resize, crop or pad -> a small uint8/float32 array, cacheable) and
`normalize` (a batch of those arrays -> the model's input tensor). `preprocess = normalize . geometry`,
so a cached array gives exactly the tensor a direct call would.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from pedclip.errors import PedclipError

if TYPE_CHECKING:  # torch is imported on first use, so fingerprints and the embed plan never pay for it
    import torch

INTERPOLATIONS = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}


def torch_dtype(name: str) -> torch.dtype:
    """fp32 | bf16 | fp16 | int8 -> the torch dtype of the weights and inputs. int8 is ONNX Runtime's dynamic
    quantisation of an fp32 model: the torch model it is exported from, and its inputs, stay float32."""
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "int8": torch.float32}[name]


def fingerprint_of(family: str, arch: dict, weights_id: str, preprocess: dict, dtype: str) -> str:
    """Hash of what determines a model's outputs: family, architecture, weights identity, preprocess, dtype.
    `Encoder.fingerprint` and `fingerprint_for` (no model built) both call this, so they cannot drift."""
    identity = {
        "family": family,
        "arch": arch,
        "weights": weights_id,
        "preprocess": preprocess,
        "dtype": dtype,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:20]


@dataclass(frozen=True)
class PreprocessConfig:
    """How an image becomes model input. Part of the fingerprint: change it and vectors are recomputed."""

    # resize_crop: shortest side to size, centre crop (CLIP); pad_square: MedCLIP; squash: both sides to size
    kind: str = "resize_crop"
    size: int = 224
    mean: tuple[float, ...] = (0.48145466, 0.4578275, 0.40821073)
    std: tuple[float, ...] = (0.26862954, 0.26130258, 0.27577711)
    channels: int = 3  # what the model's first layer takes; grayscale is replicated to 3
    grayscale: bool = False  # force mode L before resizing (MedCLIP pads in mode L)
    interpolation: str = "bicubic"

    def key(self) -> str:
        """A short stable hash of this config (names pixel-cache folders)."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]

    def as_dict(self) -> dict:
        return asdict(self)


def _to_working_mode(img: Image.Image, grayscale: bool) -> Image.Image:
    """L or RGB for 8-bit images; F (float32, 0-255 scale) for deeper ones so no depth is lost early."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(img, dtype=np.float32)
        top = 65535.0 if img.mode.startswith("I;16") else max(float(array.max()), 1.0)
        return Image.fromarray(array * (255.0 / top), mode="F")
    if grayscale or img.mode in ("L", "1", "LA"):
        return img.convert("L")
    return img.convert("RGB")


def _resize_crop(img: Image.Image, size: int, resample: Image.Resampling) -> Image.Image:
    """torchvision Resize(size) on the shortest side, then CenterCrop(size): open_clip's val transform."""
    w, h = img.size
    if w <= h:
        new_w, new_h = size, int(size * h / w)
    else:
        new_w, new_h = int(size * w / h), size
    if (new_w, new_h) != (w, h):
        img = img.resize((new_w, new_h), resample)
    left = int(round((new_w - size) / 2.0))
    top = int(round((new_h - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


def _pad_square_resize(img: Image.Image, size: int, resample: Image.Resampling) -> Image.Image:
    """MedCLIP: pad centred onto a black square of side max(size, w, h), then resize to size x size."""
    w, h = img.size
    side = max(size, w, h)
    canvas = Image.new(img.mode, (side, side), 0)
    canvas.paste(img, ((side - w) // 2, (side - h) // 2))
    return canvas.resize((size, size), resample) if side != size else canvas


def geometry(img: Image.Image, config: PreprocessConfig) -> np.ndarray:
    """Decode-side preprocessing: (size, size) or (size, size, 3), uint8 (8-bit) or float32 (deeper)."""
    work = _to_working_mode(img, config.grayscale)
    resample = INTERPOLATIONS[config.interpolation]
    if config.kind == "resize_crop":
        work = _resize_crop(work, config.size, resample)
    elif config.kind == "pad_square":
        work = _pad_square_resize(work, config.size, resample)
    elif config.kind == "squash":  # open_clip resize_mode="squash" (SigLIP-style): both sides to size
        work = work.resize((config.size, config.size), resample) if work.size != (config.size,) * 2 else work
    else:
        raise ValueError(f"unknown preprocess kind {config.kind!r}; expected resize_crop, pad_square, squash")
    array = np.asarray(work)
    return array if array.dtype == np.uint8 else np.clip(array, 0, 255).astype(np.float32)


DRAFT_MARGIN = 2  # a JPEG is decoded at a reduced scale only while it stays >= 2x the size it is resized to


def draft_floor(width: int, height: int, config: PreprocessConfig) -> tuple[int, int]:
    """The smallest (width, height) an image may be decoded at before `geometry`: DRAFT_MARGIN times the size
    its resize produces, so the bicubic resize still antialiases from well above the output grid."""
    if config.kind == "pad_square":
        scale = config.size / max(config.size, width, height)
    elif config.kind == "squash":
        scale = config.size / min(width, height)
    else:  # resize_crop: the shortest side goes to size
        scale = config.size / min(width, height)
    scale = min(1.0, DRAFT_MARGIN * scale)
    return max(1, int(np.ceil(width * scale - 1e-6))), max(1, int(np.ceil(height * scale - 1e-6)))


def normalize(arrays: Sequence[np.ndarray] | np.ndarray, config: PreprocessConfig) -> torch.Tensor:
    """A batch of `geometry` outputs -> (B, channels, size, size) float32, scaled to [0,1] and standardised."""
    import torch

    batch = [np.asarray(a) for a in arrays]
    if config.channels == 1:
        batch = [a if a.ndim == 2 else _luma(a) for a in batch]
    if batch and all(a.dtype == np.uint8 for a in batch):
        return torch.from_numpy(_normalize_8bit(batch, config))
    if config.channels == 1:
        stacked = torch.from_numpy(np.stack(batch).astype(np.float32))[:, None]
    else:
        batch = [np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a for a in batch]
        stacked = torch.from_numpy(np.stack(batch).astype(np.float32)).permute(0, 3, 1, 2)
    return _standardise(stacked / 255.0, config).contiguous()


def _standardise(unit: torch.Tensor, config: PreprocessConfig) -> torch.Tensor:
    import torch

    mean = torch.tensor(config.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(config.std, dtype=torch.float32).view(1, -1, 1, 1)
    return (unit - mean) / std


def _normalize_8bit(batch: list[np.ndarray], config: PreprocessConfig) -> np.ndarray:
    """`normalize` for 8-bit films by table lookup, written straight into the (B, C, H, W) output: the same
    float32 arithmetic on each of the 256 levels, so the same values, without the float copies, the
    channel repeat and the transpose (4x less time a batch: it ran once per training step)."""
    import torch

    levels = torch.arange(256, dtype=torch.float32).view(1, 1, 1, 256) / 255.0
    table = _standardise(levels, config).view(-1, 256).numpy()  # (channels, 256)
    out = np.empty((len(batch), config.channels, *batch[0].shape[:2]), dtype=np.float32)
    for i, image in enumerate(batch):
        for c in range(config.channels):
            np.take(table[c], image if image.ndim == 2 else image[..., c], out=out[i, c], mode="clip")
    return out


def _luma(rgb: np.ndarray) -> np.ndarray:
    """PIL's L conversion (ITU-R 601-2) for an RGB array that reached a 1-channel model."""
    out = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    return np.round(out).astype(np.uint8) if rgb.dtype == np.uint8 else out.astype(np.float32)


def l2_normalize(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


@dataclass
class Encoder:
    """A vision-language model behind one surface, whatever family it came from.

    `image_tower(pixels)` and `text_tower(tokens)` return unnormalised features with gradients (for
    training); `encode_images` / `encode_texts` return L2-normalised float32 numpy arrays (for the cache).
    """

    spec: str
    family: str
    image_tower: torch.nn.Module | None  # None when loaded with towers="text"
    text_tower: torch.nn.Module
    tokenize: Callable[[Sequence[str]], object]  # texts -> what text_tower takes
    logit_scale_param: torch.nn.Parameter  # log of the scale, as CLIP and MedCLIP store it
    preprocess_config: PreprocessConfig
    weights_id: str  # file sha256, hub revision, or "untrained:seed=N"
    arch: dict = field(default_factory=dict)  # what builds the architecture (name or config)
    dtype: str = "fp32"
    device: str = "cpu"
    untrained: bool = False
    parent_fingerprint: str | None = None
    text_batch_size: int = 256
    runtime: str = "torch"  # what runs the towers: torch, or onnx (ONNX Runtime; see models/onnx_towers.py)
    modules: dict = field(default_factory=dict)  # the underlying nn.Modules by name, for training/saving

    @property
    def fingerprint(self) -> str:
        """Hash of what determines the outputs: family, architecture, weights identity, preprocess, dtype."""
        return fingerprint_of(
            self.family, self.arch, self.weights_id, self.preprocess_config.as_dict(), self.dtype
        )

    @property
    def logit_scale(self) -> float:
        return float(self.logit_scale_param.detach().float().exp())

    @functools.cached_property
    def dim(self) -> int:
        return int(self.encode_texts(["a chest radiograph"]).shape[1])

    @property
    def torch_dtype(self) -> torch.dtype:
        return torch_dtype(self.dtype)

    def preprocess(self, img: Image.Image) -> torch.Tensor:
        """The model's own transform: PIL image -> (C, H, W) float tensor."""
        return normalize([geometry(img, self.preprocess_config)], self.preprocess_config)[0]

    def geometry(self, img: Image.Image) -> np.ndarray:
        return geometry(img, self.preprocess_config)

    def normalize(self, arrays: Sequence[np.ndarray]) -> torch.Tensor:
        return normalize(arrays, self.preprocess_config)

    def encode_images(self, pixels: torch.Tensor) -> np.ndarray:
        import torch

        if self.image_tower is None:
            raise PedclipError(
                f"{self.spec} was loaded for text only; load it with towers='both' to encode images"
            )

        with torch.inference_mode():
            features = self.image_tower(pixels.to(self.device, self.torch_dtype))
            return l2_normalize(features.float()).cpu().numpy()

    def text_context(self, texts: Sequence[str]) -> str:
        """What besides a text decides its vector when `texts` are encoded in one call: '' for CLIP;
        the padded length for MedCLIP, whose pooling averages over padding (audit section 3)."""
        padded_length = getattr(self.tokenize, "padded_length", None)
        return f"pad={padded_length(texts)}" if padded_length else ""

    def _tokenize_group(self, chunk: Sequence[str], group: Sequence[str]) -> object:
        # Pad every chunk to the group's padded length, so chunking never changes a vector.
        if getattr(self.tokenize, "padded_length", None):
            return self.tokenize(chunk, pad_to=self.tokenize.padded_length(group))
        return self.tokenize(chunk)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) normalised vectors, encoded as one call (as MedCLIP's classifier does per class)."""
        import torch

        texts = list(texts)
        chunks = [texts[i : i + self.text_batch_size] for i in range(0, len(texts), self.text_batch_size)]
        with torch.inference_mode(), _one_thread_on_cpu(self.device, len(texts) <= FEW_TEXTS):
            out = [
                l2_normalize(self.text_tower(_to_device(self._tokenize_group(c, texts), self.device)).float())
                for c in chunks
            ]
            return torch.cat(out).cpu().numpy() if out else np.zeros((0, 0), dtype=np.float32)

    def describe(self) -> dict:
        """The `models` table row for this encoder."""
        return {
            "fingerprint": self.fingerprint,
            "spec": self.spec,
            "family": self.family,
            "dim": self.dim,
            "preprocess": self.preprocess_config.as_dict(),
            "dtype": self.dtype,
            "weights": self.weights_id,
            "untrained": self.untrained,
            "parent_fingerprint": self.parent_fingerprint,
            # logit_scale: so a rescore whose prompts are all cached needs no model (embed/text.py)
            "config": {"arch": self.arch, "logit_scale": self.logit_scale},
        }


FEW_TEXTS = 16  # up to this many prompts (a rescore, a prompt-lab edit) are encoded on one CPU thread


@contextlib.contextmanager
def _one_thread_on_cpu(device: str, wanted: bool):
    """A handful of prompts is latency-bound: a second intra-op thread gains ~nothing on a quiet CPU and
    costs 10x when another process holds the other core (measured: 55 ms vs 540-750 ms for 2 ViT-B-32
    prompts). Restores the thread count when the last concurrent caller leaves."""
    from pedclip.threads import thread_count

    if not wanted or not str(device).startswith("cpu"):
        yield
        return
    with thread_count("torch").limit(1):  # shared by concurrent dashboard sessions: set and restored once
        yield


def _to_device(tokens: object, device: str) -> object:
    import torch

    if isinstance(tokens, torch.Tensor):
        return tokens.to(device)
    if isinstance(tokens, dict):
        return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in tokens.items()}
    return tokens
