"""The trimmed CLIP text forward (up to the batch's last EOT) gives the 77-token run's vectors and gradients;
every text tower it cannot prove exact for runs the full forward."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pedclip.models import load_encoder
from pedclip.models.text_trim import TextTower, can_trim, is_causal_mask

LONG = " ".join(["bilateral patchy airspace opacities in the lower lobes"] * 12)  # > 77 tokens: truncated
PROMPTS = ["", "pneumonia", "a chest x-ray of a child with pneumonia in the right lower lobe", LONG]


def _tokens(encoder, prompts=PROMPTS) -> torch.Tensor:
    return encoder.tokenize(prompts)


@pytest.fixture(scope="module")
def tiny():
    return load_encoder("openclip:pedclip-tiny")


@pytest.fixture(scope="module")
def vit_b32():
    with pytest.warns(UserWarning, match="random weights"):
        return load_encoder("openclip:ViT-B-32-quickgelu")


@pytest.mark.parametrize("prompts", [PROMPTS, PROMPTS[:3], PROMPTS[1:2]], ids=["with-long", "short", "one"])
@pytest.mark.parametrize("which", ["tiny", "vit_b32"])
def test_trimmed_equals_full_forward(which: str, prompts, request) -> None:
    encoder = request.getfixturevalue(which)
    model, tower = encoder.modules["model"], encoder.text_tower
    tokens = _tokens(encoder, prompts)
    assert tower.trim and tokens.shape[1] == 77
    with torch.inference_mode():
        full, trimmed = model.encode_text(tokens), tower(tokens)
    torch.testing.assert_close(trimmed, full, atol=1e-5, rtol=1e-5)
    assert len(prompts) == 1 or not torch.equal(full[0], full[-1])  # distinct vectors: the check can fail


def test_trim_really_cuts_the_padding(tiny, monkeypatch) -> None:
    seen = []
    transformer = tiny.modules["model"].transformer
    original = type(transformer).forward
    monkeypatch.setattr(type(transformer), "forward", lambda self, x, attn_mask=None: seen.append(x.shape[1])
                        or original(self, x, attn_mask=attn_mask))  # fmt: skip
    tiny.encode_texts(PROMPTS[:3])
    tiny.encode_texts(PROMPTS)
    tokens = _tokens(tiny, PROMPTS[:3])
    assert seen == [int(tokens.argmax(dim=-1).max()) + 1, 77]


def test_encoder_vectors_match_the_full_run(tiny) -> None:
    model = tiny.modules["model"]
    with torch.inference_mode():
        full = torch.nn.functional.normalize(model.encode_text(_tokens(tiny)), dim=-1).numpy()
    np.testing.assert_allclose(tiny.encode_texts(PROMPTS), full, atol=1e-5)


def test_gradients_are_the_full_runs() -> None:
    encoder = load_encoder("openclip:pedclip-tiny", seed=2)
    model = encoder.modules["model"].train()
    tokens = _tokens(encoder)
    weights = torch.randn(
        len(PROMPTS), model.text_projection.shape[1], generator=torch.Generator().manual_seed(0)
    )

    def grads(forward) -> dict[str, torch.Tensor]:
        model.zero_grad()
        (forward(tokens) * weights).sum().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    full, trimmed = grads(model.encode_text), grads(encoder.text_tower)
    assert set(full) == set(trimmed) and "positional_embedding" in full
    for name in full:
        torch.testing.assert_close(trimmed[name], full[name], atol=1e-5, rtol=1e-4, msg=name)


def _clip(model_class, **text_overrides) -> torch.nn.Module:
    from open_clip.model import CLIPTextCfg, CLIPVisionCfg

    text = CLIPTextCfg(context_length=77, vocab_size=49408, width=32, heads=2, layers=1, **text_overrides)
    vision = CLIPVisionCfg(image_size=32, layers=1, width=32, patch_size=16, head_width=16)
    return model_class(embed_dim=16, vision_cfg=vision, text_cfg=text).eval()


def test_towers_it_cannot_prove_exact_run_the_full_forward(tiny) -> None:
    from open_clip.model import CLIP, CustomTextCLIP

    class OwnEncodeText(CLIP):
        def encode_text(self, text, normalize: bool = False):
            return super().encode_text(text, normalize)

    assert can_trim(_clip(CLIP)) and can_trim(_clip(CLIP, pool_type="eos", eos_id=49407))
    others = [_clip(CLIP, no_causal_mask=True), _clip(CLIP, pool_type="last"), _clip(CustomTextCLIP),
              _clip(OwnEncodeText)]  # fmt: skip
    tokens = _tokens(tiny)
    for model in others:
        tower = TextTower(model)
        assert not tower.trim
        with torch.inference_mode():
            torch.testing.assert_close(tower(tokens), model.encode_text(tokens), atol=0, rtol=0)
    mask = torch.full((5, 5), float("-inf")).triu(1)
    assert is_causal_mask(mask) and not is_causal_mask(mask.T) and not is_causal_mask(None)


def test_few_prompts_run_on_one_thread_and_the_thread_count_is_restored() -> None:
    import torch

    from pedclip.models import load_encoder
    from pedclip.models.base import FEW_TEXTS

    encoder = load_encoder("openclip:pedclip-tiny")
    before = torch.get_num_threads()
    few = encoder.encode_texts(["clear lungs", "pneumonia"])
    many = encoder.encode_texts(["clear lungs", "pneumonia"] + ["x"] * FEW_TEXTS)
    assert torch.get_num_threads() == before
    np.testing.assert_allclose(few, many[:2], atol=1e-6)
