"""Prompt embeddings, cached by (fingerprint, text, encoding context): only texts never seen are encoded.

Two caches, one key (`cache_key`) and one way to encode a group (`_encode_in_context`): the store's
`text_embeddings` table (`embed_texts`), and `TextVectorCache`, an in-memory cache owned by whoever runs
interactive rescoring (a `Workspace`), whose vectors are written to the store only when asked (`persist`).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pedclip.models.base import Encoder
from pedclip.store import Store
from pedclip.store.embeddings import put_text_embeddings, register_model, text_vectors


def embed_texts(store: Store, encoder: Encoder, texts: Sequence[str]) -> np.ndarray:
    """(len(texts), d) normalised vectors for `texts` encoded as one group, computing only the missing ones.

    The cache key is the text plus the encoder's `text_context` for this group (empty for CLIP; the padded
    length for MedCLIP), so a vector is only reused where the model would give exactly the same one.
    """
    texts = list(texts)
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    context = encoder.text_context(texts)
    keys = [cache_key(t, context) for t in texts]
    cached = text_vectors(store, encoder.fingerprint, keys)
    missing = [k for k in dict.fromkeys(keys) if k not in cached]
    if missing:
        by_key = dict(zip(keys, texts, strict=True))
        vectors = _encode_in_context(encoder, [by_key[k] for k in missing], texts)
        register_model(store, encoder.describe())
        put_text_embeddings(store, encoder.fingerprint, missing, vectors)
        cached.update(zip(missing, vectors, strict=True))
    return np.stack([cached[k] for k in keys])


def cache_key(text: str, context: str) -> str:
    """The `text_embeddings.text` key: the text itself, with the encoding context after a unit separator."""
    return f"{text}\x1f{context}" if context else text


def _encode_in_context(encoder: Encoder, missing: list[str], group: list[str]) -> np.ndarray:
    if not encoder.text_context(group):  # CLIP: a text's vector does not depend on the others
        return encoder.encode_texts(missing)
    vectors = encoder.encode_texts(group)  # MedCLIP: encode the group exactly as it will be used
    position = {text: i for i, text in enumerate(group)}
    return vectors[[position[text] for text in missing]]


class TextVectorCache:
    """(fingerprint, cache key) -> unit vector in memory: a prompt is encoded once per owner.

    Trial prompts stay here (an hour in the prompt lab should not fill the store); `persist` writes the
    vectors of chosen texts to the store's cache without encoding them again.
    """

    def __init__(self, size: int = 4096):
        self.size = size
        self._items: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()

    def vectors(self, encoder: Encoder, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), d) vectors of `texts` encoded as one group, encoding only what is not cached."""
        texts = list(texts)
        keys = self._keys(encoder, texts)
        missing = [k for k in dict.fromkeys(keys) if k not in self._items]
        if missing:
            by_key = dict(zip(keys, texts, strict=True))
            vectors = _encode_in_context(encoder, [by_key[k] for k in missing], texts)
            self._items.update(zip(missing, vectors, strict=True))
        out = np.stack([self._items[k] for k in keys])
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return out

    def persist(self, store: Store, encoder: Encoder, texts: Sequence[str]) -> None:
        """Write the vectors of `texts` (one group, as encoded by `vectors`) to the store's text cache."""
        texts = list(texts)
        vectors = self.vectors(encoder, texts)  # cached: no encoding unless evicted meanwhile
        keys = [k[1] for k in self._keys(encoder, texts)]
        unique = dict(zip(keys, vectors, strict=True))
        register_model(store, encoder.describe())
        put_text_embeddings(store, encoder.fingerprint, list(unique), np.stack(list(unique.values())))

    @staticmethod
    def _keys(encoder: Encoder, texts: list[str]) -> list[tuple[str, str]]:
        context = encoder.text_context(texts)
        return [(encoder.fingerprint, cache_key(t, context)) for t in texts]


@dataclass(frozen=True)
class CachedPrompts:
    """The text side of an encoder when every prompt it will be asked for is in the store's text cache:
    fingerprint, spec, learned logit scale and those vectors, with no model built or imported. Only for
    families whose prompt vectors do not depend on the group (CLIP: `text_context` is '')."""

    spec: str
    fingerprint: str
    family: str
    logit_scale: float
    vectors: dict
    model_row: dict  # the `models` row, so saving a run registers the model as the encoder would

    def describe(self) -> dict:
        return dict(self.model_row)

    def text_context(self, texts: Sequence[str]) -> str:
        return ""

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self.vectors[t] for t in texts])


def cached_prompts(store: Store, spec: str, fingerprint: str, texts: Sequence[str]) -> CachedPrompts | None:
    """A `CachedPrompts` when the model is registered with its logit scale, is a CLIP-family model, and
    every text is cached for it; else None (load the text tower)."""
    from pedclip.store.embeddings import models_frame

    models = models_frame(store)
    row = models[models["fingerprint"] == fingerprint]
    if row.empty or row.iloc[0]["family"] != "openclip":
        return None
    scale = json.loads(row.iloc[0]["config"] or "{}").get("logit_scale")
    texts = list(dict.fromkeys(texts))
    found = text_vectors(store, fingerprint, texts)
    if scale is None or len(found) != len(texts):
        return None
    return CachedPrompts(spec, fingerprint, "openclip", float(scale), found, row.iloc[0].to_dict())
