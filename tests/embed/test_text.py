"""Prompt embeddings: cached per model, and for MedCLIP per padded length, never mixed up."""

from __future__ import annotations

import numpy as np

from pedclip.embed.text import cache_key, embed_texts
from pedclip.models import load_encoder
from pedclip.store.embeddings import text_vectors


def test_prompt_vectors_are_cached_and_equal_a_direct_encode(store) -> None:
    encoder = load_encoder("openclip:pedclip-tiny")
    texts = ["a photo of normal lungs.", "a photo of pneumonia lungs."]
    first = embed_texts(store, encoder, texts)
    np.testing.assert_allclose(first, encoder.encode_texts(texts), atol=1e-6)
    assert set(text_vectors(store, encoder.fingerprint, texts)) == set(texts)
    np.testing.assert_array_equal(embed_texts(store, encoder, texts[::-1]), first[::-1])


def test_a_padding_dependent_encoder_keys_vectors_by_their_group(store, tiny_medclip) -> None:
    encoder = tiny_medclip
    short, long = ["lungs"], ["lungs", "patchy consolidation in the right lower lobe of the lung"]
    assert encoder.text_context(short) != encoder.text_context(long)
    alone = embed_texts(store, encoder, short)[0]
    in_group = embed_texts(store, encoder, long)[0]
    assert not np.allclose(alone, in_group)  # MedCLIP pools over padding: the group matters
    np.testing.assert_allclose(in_group, encoder.encode_texts(long)[0], atol=1e-6)
    np.testing.assert_allclose(alone, encoder.encode_texts(short)[0], atol=1e-6)
    keys = {cache_key("lungs", encoder.text_context(short)), cache_key("lungs", encoder.text_context(long))}
    assert set(text_vectors(store, encoder.fingerprint, list(keys))) == keys


def test_chunking_never_changes_a_padding_dependent_vector(tiny_medclip) -> None:
    texts = ["lungs", "clear lungs", "patchy consolidation in the right lower lobe"]
    whole = tiny_medclip.encode_texts(texts)
    tiny_medclip.text_batch_size = 1
    np.testing.assert_allclose(tiny_medclip.encode_texts(texts), whole, atol=1e-6)
