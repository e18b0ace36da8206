"""Fine-tuning on N processes with torch.distributed: one rank per device, gloo on CPU, NCCL on CUDA.

Every rank holds the whole (in-memory) training split and draws the same seeded global batches as a single
process (`batch_indices`); each takes its contiguous shard of every batch. Image and caption features are
all-gathered WITH gradients (open_clip's `gather_features` with gather_with_grad and no local loss), so every
rank computes the loss of the global batch; DistributedDataParallel averages the parameter gradients.
Since each rank's own features receive the sum of every rank's (identical) loss gradient, the average is
exactly the single-process gradient: N ranks x B images == one process with N x B images.

Only rank 0 touches the store (reads the split, writes runs, epochs, the checkpoint, the child model and its
embeddings); what the others need from it (the splits, the run id) is broadcast.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pedclip.errors import PedclipError
from pedclip.models.base import Encoder, _to_device
from pedclip.train.data import TrainingSplit, unique_texts
from pedclip.train.losses import contrastive_logits, contrastive_loss
from pedclip.train.step import StepSettings, accumulate_gradients, autocast


@dataclass(frozen=True)
class Rank:
    """Where this process sits: global rank, world size, rank on its node (torchrun's RANK, WORLD_SIZE,
    LOCAL_RANK)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls, environ: dict | None = None) -> Rank | None:
        """The rank torchrun (or `--nproc`) set in the environment; None outside a distributed launch."""
        env = os.environ if environ is None else environ
        if int(env.get("WORLD_SIZE", "1")) <= 1:
            return None
        return cls(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", env["RANK"])))

    def device(self, requested: str | None) -> str:
        """One device per rank: cuda:LOCAL_RANK when CUDA is asked for (or present and nothing asked), else cpu."""
        wants_cuda = requested.startswith("cuda") if requested else torch.cuda.is_available()
        return f"cuda:{self.local_rank}" if wants_cuda else "cpu"


class SingleProcess:
    """The replica of an ordinary run: the whole batch here, and this process writes."""

    rank, world_size, writes = 0, 1, True

    def attach(self, encoder: Encoder) -> SingleProcess:
        return self

    def accumulate(self, encoder, data: TrainingSplit, index, settings: StepSettings, scaler) -> float:
        texts = [data.texts[i] for i in index]
        return accumulate_gradients(encoder, data.pixels[index], texts, data.labels[index], settings, scaler)

    def any_rank(self, flag: bool) -> bool:
        return flag

    def from_writer(self, make: Callable[[], Any]) -> Any:
        return make()


SINGLE = SingleProcess()


class TowerPair(torch.nn.Module):
    """Both towers and the logit scale as one module, so that DDP sees every trained parameter in one forward."""

    def __init__(self, encoder: Encoder):
        super().__init__()
        self.towers = torch.nn.ModuleList([encoder.image_tower, encoder.text_tower])
        self.logit_scale = encoder.logit_scale_param

    def forward(self, pixels: torch.Tensor, tokens: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # A copy, not the parameter itself: DDP counts a parameter returned as an output as used twice.
        return self.towers[0](pixels), self.towers[1](tokens), self.logit_scale.clone()


def shard_sizes(n: int, world_size: int) -> list[int]:
    """Images of an n-image global batch on each rank: contiguous, sizes differing by at most one."""
    return [len(part) for part in np.array_split(np.arange(n), world_size)]


def gather_rows(local: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
    """Every rank's rows in rank order; gradients flow back to this rank's own rows (autograd all_gather).
    Shards of unequal size are padded for the collective and trimmed after it."""
    import torch.distributed.nn.functional as dist_nn

    padded = F.pad(local, (0, 0, 0, max(sizes) - local.shape[0]))
    with warnings.catch_warnings():
        # Deprecated for _functional_collectives, whose backward needs reduce-scatter, which gloo lacks.
        warnings.simplefilter("ignore", FutureWarning)
        parts = dist_nn.all_gather(padded)
    return torch.cat([part[:n] for part, n in zip(parts, sizes, strict=True)])


def gather_labels(local: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
    import torch.distributed as dist

    padded = F.pad(local, (0, max(sizes) - local.shape[0]))
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return torch.cat([part[:n] for part, n in zip(parts, sizes, strict=True)])


def global_batchnorm(
    towers: torch.nn.Module, device: torch.device, world_size: int, spec: str, say: bool = True
) -> torch.nn.Module:
    """BatchNorm over the global batch, as one process computes it: SyncBatchNorm on GPUs (the layers are
    replaced inside the towers, so the encoder trains and saves them; same weights and buffers). torch has
    no SyncBatchNorm for CPU tensors: CPU ranks normalise their own shard, which it says, since N ranks then
    do not train exactly as one process does (MedCLIP's ResNet; ViTs and Swin have no BatchNorm)."""
    norms = [m for m in towers.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms or world_size < 2:
        return towers
    if device.type == "cuda":
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(towers)
    if say:  # rank 0 only: every rank would say the same
        warnings.warn(
            f"{spec} has {len(norms)} BatchNorm layers and torch syncs them on GPUs only: each of the "
            f"{world_size} CPU ranks normalises its own share of the batch, so the run is close to, not "
            "equal to, one process's; use --nproc 1 for the exact single-process result",
            stacklevel=3,
        )
    return towers


class DataParallel:
    """The replica of rank `rank.rank`: DDP over both towers, its shard of each global batch, global-batch loss."""

    def __init__(self, rank: Rank):
        self.rank_info = rank
        self.rank, self.world_size, self.writes = rank.rank, rank.world_size, rank.rank == 0
        self.model: torch.nn.Module | None = None

    def attach(self, encoder: Encoder) -> DataParallel:
        """Wrap the towers in DDP (which also broadcasts rank 0's weights, so every rank starts equal)."""
        from torch.nn.parallel import DistributedDataParallel

        device = torch.device(encoder.device)
        ids = [device.index or 0] if device.type == "cuda" else None
        towers = global_batchnorm(TowerPair(encoder), device, self.world_size, encoder.spec, self.writes)
        # static_graph: every step runs the same forward, and DDP then learns once which parameters the
        # forward skips (BERT's pooler in MedCLIP) instead of searching the graph at every step.
        self.model = DistributedDataParallel(towers, device_ids=ids, static_graph=True)
        return self

    def shard(self, index: np.ndarray) -> tuple[np.ndarray, list[int]]:
        sizes = shard_sizes(len(index), self.world_size)
        if min(sizes) == 0:
            raise PedclipError(
                f"a batch of {len(index)} images cannot be shared by {self.world_size} ranks; "
                f"use a --batch-size of at least {2 * self.world_size} or fewer processes"
            )
        start = sum(sizes[: self.rank])
        return index[start : start + sizes[self.rank]], sizes

    def accumulate(self, encoder, data: TrainingSplit, index, settings: StepSettings, scaler) -> float:
        """This rank's share of the gradient of the global batch `index`; returns the global loss."""
        if settings.micro_batch and settings.micro_batch < len(index):
            raise PedclipError("--micro-batch is not supported with several processes yet; leave it out")
        local, sizes = self.shard(np.asarray(index))
        texts = [data.texts[i] for i in local]
        distinct, inverse = unique_texts(texts)
        pixels = encoder.normalize(list(data.pixels[local])).to(settings.device)
        tokens = _to_device(_tokens(encoder, distinct, [data.texts[i] for i in index]), settings.device)
        with autocast(settings.device, settings.precision):
            images, words, log_scale = self.model(pixels, tokens)
        captions = words.float()[torch.as_tensor(inverse, device=settings.device)]
        labels = gather_labels(torch.as_tensor(data.labels[local], device=settings.device), sizes)
        logits = contrastive_logits(
            gather_rows(images.float(), sizes), gather_rows(captions, sizes), log_scale
        )
        loss = contrastive_loss(settings.loss, logits, labels, labels)
        (scaler.scale(loss) if scaler is not None else loss).backward()
        return float(loss.detach())

    def any_rank(self, flag: bool) -> bool:
        """True on every rank when any rank raised `flag` (a Ctrl-C must stop all ranks at the same step)."""
        import torch.distributed as dist

        value = torch.tensor([int(flag)], device=self._collective_device())
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def from_writer(self, make: Callable[[], Any]) -> Any:
        """`make()` run on rank 0 only, its result sent to every rank."""
        import torch.distributed as dist

        box = [make() if self.writes else None]
        dist.broadcast_object_list(box, src=0, device=self._collective_device())
        return box[0]

    def _collective_device(self) -> torch.device:
        import torch.distributed as dist

        on_gpu = dist.get_backend() == "nccl"
        return torch.device("cuda", torch.cuda.current_device()) if on_gpu else torch.device("cpu")


def _tokens(encoder: Encoder, texts: list[str], batch_texts: list[str]) -> Any:
    """Tokens of `texts` padded as the whole global batch's would be: MedCLIP pools over padding (audit
    section 3), so a rank must pad to the global batch's longest caption to match one process."""
    padded_length = getattr(encoder.tokenize, "padded_length", None)
    if padded_length is None:
        return encoder.tokenize(texts)
    return encoder.tokenize(texts, pad_to=padded_length(list(dict.fromkeys(batch_texts))))
