"""The study's MedCLIP prompt-count search replayed per seed, and its spread over seeds."""

from __future__ import annotations

import numpy as np
import pytest

from pedclip.eval.prompt_search import (
    PAPER_MEDCLIP_PROMPTS,
    _batch_scores,
    replay_search,
    search_distribution,
)
from pedclip.eval.prompts import load_prompt_set
from pedclip.eval.protocols import PAPER
from pedclip.eval.zeroshot import PromptVectors
from tests.eval.conftest import unit


@pytest.fixture(scope="module")
def problem():
    """12 one-class prompt vectors of unequal quality and 300 cases that lean towards the good ones."""
    rng = np.random.default_rng(0)
    pset = load_prompt_set(PAPER_MEDCLIP_PROMPTS)
    assert pset.mode == "sigmoid" and len(pset.texts) == 12
    direction = unit(rng.normal(size=16))
    quality = np.linspace(-0.5, 1.0, 12)[:, None]
    prompts = unit(quality * direction + rng.normal(size=(12, 16)) * 0.6)
    y = (rng.random(300) < 0.5).astype(int)
    X = unit(rng.normal(size=(300, 16)) + 0.6 * np.where(y[:, None] == 1, 1.0, -1.0) * direction)
    return PromptVectors(prompts, np.ones(12, dtype=int), pset), X, y


def test_a_replay_is_reproducible_by_seed_and_seeds_differ(problem):
    prompts, X, y = problem
    one = replay_search(prompts, X, y, PAPER, 10.0, seed=3)
    assert one == replay_search(prompts, X, y, PAPER, 10.0, seed=3)
    assert 1 <= one.prompt_count <= 12 and one.search_auroc is not None
    others = {replay_search(prompts, X, y, PAPER, 10.0, seed=s).auroc for s in range(4)}
    assert len(others) > 1  # unseeded in the study: each run a different draw


def test_each_batch_draws_its_own_prompts(problem):
    prompts, X, y = problem
    batches = [np.arange(0, 150), np.arange(150, 300)]
    scores = _batch_scores(prompts, X, batches, 2, np.random.default_rng(1), PAPER, 10.0, "zeroshot", None)
    whole = _batch_scores(
        prompts, X, [np.arange(300)], 2, np.random.default_rng(1), PAPER, 10.0, "zeroshot", None
    )
    assert np.array_equal(scores[:150], whole[:150]) and not np.array_equal(scores[150:], whole[150:])


def test_distribution_reports_median_range_and_chosen_counts(problem):
    prompts, X, y = problem
    found = search_distribution(prompts, X, y, PAPER, 10.0, n_seeds=5)
    values = [d["auroc"] for d in found["draws"]]
    assert found["n_seeds"] == 5 and len(values) == 5 and sum(found["prompt_counts"].values()) == 5
    assert found["min"] == min(values) and found["max"] == max(values)
    assert found["median"] == pytest.approx(float(np.median(values)))
