"""Zero-shot estimator, protocols and rescoring over a store built directly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from pedclip.errors import PedclipError
from pedclip.eval.bootstrap import BootstrapConfig
from pedclip.eval.evaluation import save
from pedclip.eval.metrics import auroc
from pedclip.eval.prompts import load_prompt_set
from pedclip.eval.protocols import PAPER, SOUND, auc_scores
from pedclip.eval.rescore import ImageMatrixCache, rescore
from pedclip.eval.zeroshot import ZeroShotClassifier, ZeroShotConfig, zeroshot_eval
from pedclip.store.runs import get_run, predictions_frame
from tests.eval.conftest import add_dataset, unit

FAST = BootstrapConfig(n_resamples=50, seed=1)


def test_softmax_classifier_matches_formula():
    rng = np.random.default_rng(0)
    prompts = unit(rng.normal(size=(5, 8)))
    labels = np.array([0, 0, 1, 1, 1])
    X = unit(rng.normal(size=(20, 8)))
    clf = ZeroShotClassifier("softmax", "mean", logit_scale=50.0).fit(prompts, labels)
    c0, c1 = unit(prompts[:2].mean(0)), unit(prompts[2:].mean(0))
    logits = 50.0 * np.stack([X @ c0, X @ c1], 1)
    expected = np.exp(logits[:, 1]) / np.exp(logits).sum(1)
    np.testing.assert_allclose(clf.predict_proba(X)[:, 1], expected, rtol=1e-5)
    np.testing.assert_array_equal(clf.predict(X), (expected >= 0.5).astype(int))
    assert list(clf.classes_) == [0, 1]


def test_sigmoid_classifier_takes_max_over_prompts():
    rng = np.random.default_rng(1)
    prompts = unit(rng.normal(size=(4, 8)))
    X = unit(rng.normal(size=(10, 8)))
    clf = ZeroShotClassifier("sigmoid", "max", logit_scale=10.0, threshold=0.6).fit(prompts, np.ones(4))
    expected = 1 / (1 + np.exp(-10.0 * (X @ prompts.T).max(1)))
    np.testing.assert_allclose(clf.positive_score(X), expected, rtol=1e-5)
    np.testing.assert_array_equal(clf.predict(X), (expected >= 0.6).astype(int))
    with pytest.raises(PedclipError, match="needs 1 prompt class"):
        ZeroShotClassifier("sigmoid", "max").fit(prompts, np.array([0, 1, 0, 1]))


def test_top1_auc_hand_computed():
    y = np.array([0, 0, 1, 1])
    p = np.array([0.05, 0.3, 0.7, 0.99])  # perfect ranking on P(positive)
    top1, kind = auc_scores(PAPER, "softmax", p)
    np.testing.assert_allclose(top1, [0.95, 0.7, 0.7, 0.99])
    # pos {0.7, 0.99} vs neg {0.95, 0.7}: 0 + 0.5 + 1 + 1 = 2.5 of 4 pairs
    assert kind == "top1_probability" and auroc(y, top1).value == pytest.approx(0.625)
    assert auroc(y, auc_scores(SOUND, "softmax", p)[0]).value == pytest.approx(1.0)
    same, _ = auc_scores(PAPER, "sigmoid", p)  # the study's MedCLIP score was already positive-class
    np.testing.assert_array_equal(same, p)


@pytest.fixture
def zs_store(store, tiny_encoder, pneumonia_direction):
    add_dataset(store, "siteA", tiny_encoder.fingerprint, pneumonia_direction, n=120, seed=3)
    return store


def test_sound_zeroshot_uses_test_split_and_validation_threshold(zs_store, tiny_encoder):
    pset = load_prompt_set("pneumonia")
    result = zeroshot_eval(zs_store, tiny_encoder, "siteA", pset, ZeroShotConfig(bootstrap=FAST))
    preds = result.predictions
    assert set(preds["split"]) == {"test"} and result.run["split"] == "test"
    assert result.threshold.rule.startswith("youden on val")
    y, s = preds["label"].to_numpy(), preds["score"].to_numpy()
    assert result.metrics["auroc"].value == pytest.approx(roc_auc_score(y, s))
    assert result.metrics["auroc"].value > 0.8  # vectors lean along the prompt direction
    np.testing.assert_array_equal(preds["predicted"], (s >= result.threshold.value).astype(int))
    assert result.run["config"]["resampled"] == "patient"
    assert result.run["config"]["logit_scale"] == pytest.approx(tiny_encoder.logit_scale)
    run_id = save(zs_store, result)
    stored = predictions_frame(zs_store, run_id)
    assert len(stored) == len(preds) and get_run(zs_store, run_id)["metrics"]["auroc"]["value"] > 0.8


def test_paper_and_sound_differ_for_the_same_predictions(zs_store, tiny_encoder):
    pset = load_prompt_set("study-clip")
    paper = zeroshot_eval(
        zs_store, tiny_encoder, "siteA", pset, ZeroShotConfig(protocol="paper", bootstrap=FAST)
    )
    assert set(paper.predictions["split"]) == {"train", "val", "test"} and paper.run["split"] == "all"
    assert paper.run["config"]["logit_scale"] == 100.0 and paper.threshold.value == 0.5
    pooled = zeroshot_eval(
        zs_store, tiny_encoder, "siteA", pset, ZeroShotConfig(protocol="sound", split="all", bootstrap=FAST)
    )
    y = pooled.predictions["label"].to_numpy()
    # same embeddings, same prompts: the paper's AUC is on the top-1 probability of softmax(100 cos), stored
    # beside P(positive), which is what every run's `score` is
    p100 = ZeroShotClassifier("softmax", "mean", 100.0)
    assert paper.metrics["auroc"].value == pytest.approx(roc_auc_score(y, paper.predictions["auc_score"]))
    assert paper.metrics["auroc"].value != pytest.approx(pooled.metrics["auroc"].value, abs=1e-3)
    assert p100.logit_scale == paper.run["config"]["logit_scale"]
    p_pos = paper.predictions["score"].to_numpy()
    np.testing.assert_array_equal(p_pos >= 0.5, paper.predictions["predicted"].to_numpy() == 1)
    # the study's fp16 arithmetic: each softmax column rounded to float16 on its own, so the top-1 score is
    # an fp16 value within one fp16 ulp below 1 (2**-11) of max(p, 1 - p), not exactly equal to it
    top1 = paper.predictions["auc_score"].to_numpy()
    assert paper.run["config"]["score_dtype"] == "float16"
    np.testing.assert_array_equal(top1.astype(np.float16).astype(np.float64), top1)
    np.testing.assert_allclose(np.maximum(p_pos, 1 - p_pos), top1, rtol=0, atol=2**-11)


def test_paper_medclip_prompt_count_search(zs_store, tiny_encoder):
    pset = load_prompt_set("medclip-covid")
    assert len(pset.texts) == 12 and pset.mode == "sigmoid" and pset.threshold == 0.6
    result = zeroshot_eval(
        zs_store, tiny_encoder, "siteA", pset, ZeroShotConfig(protocol="paper", bootstrap=FAST)
    )
    config = result.run["config"]
    assert [t["n"] for t in config["prompt_search"]] == list(range(1, 13))
    assert len(config["prompts"]["classes"]["pneumonia"]) == config["prompt_count"]
    assert result.threshold.value == 0.6 and config["score"] == "p_positive"
    again = zeroshot_eval(
        zs_store, tiny_encoder, "siteA", pset, ZeroShotConfig(protocol="paper", bootstrap=FAST)
    )
    assert again.metrics == result.metrics  # seeded: no run-to-run prompt noise


def test_one_class_dataset_reports_undefined(store, tiny_encoder, pneumonia_direction):
    add_dataset(store, "allsick", tiny_encoder.fingerprint, pneumonia_direction, n=40, prevalence=1.1)
    result = zeroshot_eval(
        store, tiny_encoder, "allsick", load_prompt_set("pneumonia"), ZeroShotConfig(bootstrap=FAST)
    )
    assert result.metrics["auroc"].value is None and "one class" in result.metrics["auroc"].reason
    assert result.metrics["accuracy"].value is not None
    assert "youden impossible" in result.threshold.rule


def test_missing_embeddings_is_a_clear_error(store, tiny_encoder, pneumonia_direction):
    add_dataset(store, "other", "another-model", pneumonia_direction, n=10)
    with pytest.raises(PedclipError, match="pedclip embed"):
        zeroshot_eval(store, tiny_encoder, "other", load_prompt_set("pneumonia"), ZeroShotConfig())


def test_rescore_equals_zeroshot_and_compares(zs_store, tiny_encoder):
    pset = load_prompt_set("pneumonia")
    base = zeroshot_eval(zs_store, tiny_encoder, "siteA", pset, ZeroShotConfig(bootstrap=FAST))
    save(zs_store, base)
    cache = ImageMatrixCache()
    prompts = {k: list(v) for k, v in pset.classes.items()}
    # the zero-shot run scored test; rescore scores validation unless told otherwise
    again = rescore(zs_store, tiny_encoder, "siteA", prompts, split="test", bootstrap=FAST, cache=cache)
    assert again.metrics == base.metrics
    np.testing.assert_allclose(again.result.predictions["score"], base.predictions["score"], rtol=1e-6)
    new = {
        "normal": ["No focal consolidation."],
        "pneumonia": ["Patchy consolidation in the right lower lobe."],
    }
    other = rescore(
        zs_store, tiny_encoder, "siteA", new, "test", baseline_run=base.run_id, bootstrap=FAST, cache=cache
    )
    assert len(cache._items) == 2  # (test, val) matrices reused across calls
    flips = other.comparison.flipped
    changed = (
        base.predictions["predicted"].to_numpy() != other.result.predictions["predicted"].to_numpy()
    ).sum()
    assert len(flips) == changed
    delta = other.comparison.deltas["auroc"]
    assert delta.value == pytest.approx(other.metrics["auroc"].value - base.metrics["auroc"].value)
    assert delta.lo <= delta.value <= delta.hi
    assert other.roc[0][0] == 0 and other.roc[1][-1] == 1


def test_rescore_cache_follows_new_embeddings_and_save_persists_prompts(
    zs_store, tiny_encoder, pneumonia_direction
):
    from pedclip.embed.text import TextVectorCache
    from pedclip.store.embeddings import text_vectors

    class Counting:  # the tiny encoder, counting the texts it encodes
        def __init__(self, encoder):
            self.encoder, self.encoded = encoder, 0

        def __getattr__(self, name):
            return getattr(self.encoder, name)

        def encode_texts(self, group):
            self.encoded += len(group)
            return self.encoder.encode_texts(group)

    encoder = Counting(tiny_encoder)
    cache, texts = ImageMatrixCache(), TextVectorCache()
    prompts = {"normal": ["clear lungs"], "pneumonia": ["lobar pneumonia"]}
    first = rescore(zs_store, encoder, "siteA", prompts, bootstrap=FAST, cache=cache, text_cache=texts)
    assert encoder.encoded == 2
    assert (
        text_vectors(zs_store, tiny_encoder.fingerprint, ["clear lungs"]) == {}
    )  # trial prompts stay in memory
    add_dataset(
        zs_store, "siteA", tiny_encoder.fingerprint, pneumonia_direction, n=140, seed=3
    )  # 20 more cases
    second = rescore(
        zs_store, encoder, "siteA", prompts, bootstrap=FAST, cache=cache, text_cache=texts, save_run=True
    )
    assert second.result.run["config"]["n"] > first.result.run["config"]["n"]
    assert encoder.encoded == 2  # saving writes the vectors already encoded; nothing is encoded again
    stored = text_vectors(zs_store, tiny_encoder.fingerprint, ["clear lungs", "lobar pneumonia"])
    assert set(stored) == {"clear lungs", "lobar pneumonia"}
    np.testing.assert_allclose(
        stored["clear lungs"], tiny_encoder.encode_texts(["clear lungs"])[0], rtol=1e-5
    )
    assert get_run(zs_store, second.result.run_id)["kind"] == "rescore"


def test_youden_threshold_comes_from_validation(zs_store, tiny_encoder):
    from pedclip.eval.metrics import youden_threshold

    pset = load_prompt_set("pneumonia")
    result = zeroshot_eval(zs_store, tiny_encoder, "siteA", pset, ZeroShotConfig(bootstrap=FAST))
    val = zeroshot_eval(zs_store, tiny_encoder, "siteA", pset, ZeroShotConfig(split="val", threshold="0.5",
                                                                              bootstrap=FAST))  # fmt: skip
    expected = youden_threshold(val.predictions["label"], val.predictions["score"])
    assert result.threshold.value == pytest.approx(expected) and val.threshold.rule == "fixed 0.5"


def test_rescore_cache_follows_a_resplit(zs_store, tiny_encoder):
    from pedclip.store.cases import cases_frame, set_splits

    cache = ImageMatrixCache()
    prompts = {"normal": ["clear lungs"], "pneumonia": ["lobar pneumonia"]}
    before = rescore(zs_store, tiny_encoder, "siteA", prompts, "test", bootstrap=FAST, cache=cache)
    cases = cases_frame(zs_store, "siteA")
    set_splits(zs_store, "siteA", {c: "test" for c in cases["case_id"]})
    after = rescore(zs_store, tiny_encoder, "siteA", prompts, "test", bootstrap=FAST, cache=cache)
    assert after.result.run["config"]["n"] == len(cases) > before.result.run["config"]["n"]


class _GroupEncoder:
    """A MedCLIP-like stand-in: a text's vector depends on the longest text encoded with it."""

    fingerprint, spec, logit_scale = "fp-group", "test:group", 10.0

    def text_context(self, texts):
        return f"pad={max(len(t) for t in texts)}"

    def encode_texts(self, texts):
        pad = max(len(t) for t in texts)
        return unit(np.array([[len(t), pad, 1.0] for t in texts], dtype=np.float32))


def test_text_cache_respects_the_encoding_context():
    from pedclip.embed.text import TextVectorCache

    enc, cache = _GroupEncoder(), TextVectorCache()
    for group in (["ab", "abcd"], ["ab"], ["ab", "abcdef"], ["ab", "abcd"]):
        np.testing.assert_allclose(cache.vectors(enc, group), enc.encode_texts(group))
    assert len(cache._items) == 5  # ab in three contexts, abcd once, abcdef once


def vectors_with_gaps(gaps: list[float], scale: float = 100.0) -> np.ndarray:
    """Unit image vectors whose scaled cosine with class 1 exceeds that with class 0 (the axes e0, e1) by
    each gap: x = (b, a, rest) with scale * (a - b) = gap."""
    rows = []
    for gap in gaps:
        b = 0.2
        a = b + gap / scale
        rows.append([b, a, np.sqrt(1 - a * a - b * b)])
    return np.array(rows)


CLASS_AXES = np.eye(3)[:2]  # normal = e0, pneumonia = e1


def test_paper_clip_scores_are_fp16_and_tie_at_one_from_a_gap_of_8_5():
    from pedclip.eval.protocols import score_dtype
    from pedclip.eval.zeroshot import PromptVectors, classifier_for

    pset = load_prompt_set("study-clip")
    prompts = PromptVectors(CLASS_AXES, np.array([0, 1]), pset)
    X = vectors_with_gaps([4.0, 8.0, 8.5, 9.0, 12.0])
    assert score_dtype(PAPER, "softmax", "zeroshot") == score_dtype(PAPER, "softmax", "finetune") == "float16"
    paper = classifier_for(prompts, PAPER, learned_scale=30.0)
    p = paper.positive_score(X)
    assert (p[2:] == 1.0).all() and (p[:2] < 1.0).all()  # >= 8.5: exactly 1.0, as on the study's GPU
    assert set(p.astype(np.float16).astype(np.float64)) == set(p)  # every value is an fp16 number
    top1, _ = auc_scores(PAPER, "softmax", p, paper.class_probabilities(X)[:, 0])
    assert len(set(top1[2:])) == 1  # three confident cases tie in the study's top-1 "AUC"
    sound = classifier_for(prompts, SOUND, learned_scale=100.0)
    exact = sound.positive_score(X)
    assert sound.dtype == "float64" and (exact < 1.0).all() and len(set(exact)) == len(exact)
    np.testing.assert_allclose(exact, 1 / (1 + np.exp(-np.array([4.0, 8.0, 8.5, 9.0, 12.0]))), rtol=1e-5)


def test_paper_medclip_sigmoid_is_fp32_zero_shot_and_fp16_fine_tuned():
    from pedclip.eval.protocols import score_dtype

    X = vectors_with_gaps([0.0] * 4)
    X[:, 1] = [0.05, 0.085, 0.18, 0.3]  # cos with the one prompt; scale 100 -> logits 5, 8.5, 18, 30
    X = unit(X)
    logits = 100.0 * X[:, 1]
    prompt = CLASS_AXES[1:]

    def scores(dtype):
        clf = ZeroShotClassifier("sigmoid", "max", logit_scale=100.0, dtype=dtype).fit(prompt, np.ones(1))
        return clf.positive_score(X)

    assert score_dtype(PAPER, "sigmoid", "zeroshot") == score_dtype(PAPER, "sigmoid", "transfer") == "float32"
    assert score_dtype(PAPER, "sigmoid", "finetune") == "float16"
    assert score_dtype(SOUND, "sigmoid", "finetune") == "float64"
    fp32, fp16, exact = scores("float32"), scores("float16"), scores("float64")
    assert (fp32[2:] == 1.0).all() and (fp32[:2] < 1.0).all()  # float32 saturates above ~17.3
    assert (fp16[1:] == 1.0).all() and fp16[0] < 1.0  # float16 above ~8.3
    np.testing.assert_allclose(exact, 1 / (1 + np.exp(-logits)), rtol=1e-6)
    assert (exact < 1.0).all()


def test_paper_reads_the_source_splits_and_sound_the_assigned_ones_from_one_store(zs_store, tiny_encoder):
    """The source's folders (source_split) and a patient-grouped re-split (split) side by side, no re-ingest."""
    from dataclasses import replace

    from pedclip.store.cases import CASE_COLUMNS, CaseRow, cases_frame, replace_cases, set_splits

    frame = cases_frame(zs_store, "siteA")
    folders = {cid: ("test" if i % 4 == 0 else "train") for i, cid in enumerate(frame["case_id"])}
    rows = [
        replace(
            CaseRow(**{c: (None if pd.isna(r[c]) else r[c]) for c in CASE_COLUMNS if c != "attributes"}),
            source_split=folders[r["case_id"]],
        )
        for _, r in frame.iterrows()
    ]
    replace_cases(zs_store, "siteA", rows)
    set_splits(zs_store, "siteA", dict(zip(frame["case_id"], frame["split"], strict=True)))  # the re-split
    pset = load_prompt_set("pneumonia")
    for protocol, column, expected in (("paper", "source_split", folders), ("sound", "split", None)):
        config = ZeroShotConfig(protocol=protocol, split="test", threshold=0.5, bootstrap=FAST)
        result = zeroshot_eval(zs_store, tiny_encoder, "siteA", pset, config)
        expected = expected or dict(zip(frame["case_id"], frame["split"], strict=True))
        assert set(result.predictions["case_id"]) == {c for c, s in expected.items() if s == "test"}
        assert result.run["config"]["split_column"] == column
