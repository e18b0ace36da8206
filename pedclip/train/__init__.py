"""pedclip.train: contrastive fine-tuning, losses, early stopping, checkpoint + registration + re-embed, transfer."""

from pedclip.train.config import FinetuneConfig
from pedclip.train.finetune import FinetuneResult, finetune
from pedclip.train.transfer import TransferResult, transfer

__all__ = ["FinetuneConfig", "FinetuneResult", "TransferResult", "finetune", "transfer"]
