"""A rescore whose prompts are all cached needs no model: CachedPrompts stands in for the text tower."""

from __future__ import annotations

import numpy as np

from pedclip.embed.text import cached_prompts
from pedclip.store.embeddings import put_text_embeddings, register_model

FP = "c" * 16


def _register(store, family: str = "openclip", logit_scale: float | None = 42.0) -> None:
    config = {"arch": {"open_clip": "tiny"}} | ({"logit_scale": logit_scale} if logit_scale else {})
    register_model(store, {"fingerprint": FP, "spec": "demo:clip", "family": family, "dim": 4,
                           "preprocess": {}, "dtype": "fp32", "config": config})  # fmt: skip


def test_all_cached_prompts_need_no_model(store) -> None:
    _register(store)
    vectors = np.eye(4, dtype=np.float32)[:2]
    put_text_embeddings(store, FP, ["normal", "pneumonia"], vectors)
    cached = cached_prompts(store, "demo:clip", FP, ["pneumonia", "normal", "pneumonia"])
    assert cached is not None and cached.logit_scale == 42.0 and cached.fingerprint == FP
    np.testing.assert_array_equal(cached.encode_texts(["pneumonia", "normal"]), vectors[::-1])
    assert cached.text_context(["normal"]) == ""


def test_a_missing_prompt_a_medclip_model_or_no_logit_scale_loads_the_model(store, home) -> None:
    _register(store, logit_scale=None)
    put_text_embeddings(store, FP, ["normal"], np.ones((1, 4), dtype=np.float32))
    assert cached_prompts(store, "demo:clip", FP, ["normal"]) is None  # registered before the scale was kept
    _register(store)  # registering again records the scale on the old row
    assert cached_prompts(store, "demo:clip", FP, ["normal"]) is not None
    assert cached_prompts(store, "demo:clip", FP, ["normal", "pneumonia"]) is None
    with store.write() as con:
        con.execute("UPDATE models SET family = 'medclip'")  # MedCLIP's vectors depend on the group
    assert cached_prompts(store, "demo:clip", FP, ["normal"]) is None
