"""Prompt embeddings, cached by (fingerprint, text): only texts never seen by this model are encoded."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pedclip.models.base import Encoder
from pedclip.store import Store
from pedclip.store.embeddings import put_text_embeddings, register_model, text_vectors


def embed_texts(store: Store, encoder: Encoder, texts: Sequence[str]) -> np.ndarray:
    """(len(texts), d) normalised vectors for `texts`, encoding and caching only the missing ones."""
    texts = list(texts)
    cached = text_vectors(store, encoder.fingerprint, texts)
    missing = [t for t in dict.fromkeys(texts) if t not in cached]
    if missing:
        vectors = encoder.encode_texts(missing)
        register_model(store, encoder.describe())
        put_text_embeddings(store, encoder.fingerprint, missing, vectors)
        cached.update(zip(missing, vectors, strict=True))
    return np.stack([cached[t] for t in texts]) if texts else np.zeros((0, 0), dtype=np.float32)
