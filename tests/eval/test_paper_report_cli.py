"""The study's tables, the HTML report and the evaluation commands end to end on a store built directly."""

from __future__ import annotations

import json

import pytest

from pedclip.cli import main
from pedclip.errors import PedclipError
from pedclip.eval.bootstrap import BootstrapConfig
from pedclip.eval.headtohead import REGIMES
from pedclip.eval.paper import PUBLISHED, SITES, PaperConfig, paper_tables, write_tables
from pedclip.eval.report import write_report
from pedclip.store.runs import save_run
from tests.eval.conftest import add_dataset

TINY = "openclip:pedclip-tiny"


@pytest.fixture
def sites(store, tiny_encoder, pneumonia_direction):
    add_dataset(store, "ucsd", tiny_encoder.fingerprint, pneumonia_direction, n=80, seed=5)
    add_dataset(store, "ori", tiny_encoder.fingerprint, pneumonia_direction, n=60, seed=6, signal=0.15)
    return store


def _loader(tiny_encoder):
    def load(spec):
        if spec != TINY:
            raise PedclipError(f"unknown model {spec}")
        return tiny_encoder

    return load


def _rows(table, source):
    return [r for r in table.rows if r["source"] == source]


def test_paper_tables_both_protocols(sites, tiny_encoder, tmp_path):
    config = PaperConfig(
        ucsd="ucsd", ori="ori", clip=TINY, medclip=TINY, bootstrap=BootstrapConfig(n_resamples=20)
    )
    save_run(
        sites,
        {
            "run_id": "finetune-x",
            "kind": "finetune",
            "protocol": "sound",
            "model": TINY,
            "fingerprint": "child",
            "train_dataset": "ori",
            "eval_dataset": "ori",
            "split": "test",
            "config": {
                "parent_fingerprint": tiny_encoder.fingerprint,
                "evaluation": {"n": 12},
                "resolved": {"loss": "semantic", "seed": 0, "lr": 1e-5},
            },
            "metrics": {"auroc": {"value": 0.75, "lo": 0.6, "hi": 0.9}, "accuracy": {"value": 0.7}},
        },
    )
    result = paper_tables(sites, config, _loader(tiny_encoder))
    t1, t2, t3, t4, t5 = result.tables[:5]  # then i10b's prompt-search and pathogen tables, when they exist
    store_counts = {r["dataset"]: r for r in t1.rows if r["source"] == "store"}
    assert store_counts["ucsd".upper()]["pneumonia"] + store_counts["UCSD"]["normal"] == 80
    assert len(t2.rows) == 12 and len(_rows(t2, "published")) == 4
    for row in _rows(t2, "paper") + _rows(t2, "sound"):
        assert row["AUC"] is not None and row["run_id"], row
    assert {r["split"] for r in _rows(t2, "paper")} == {"all"} and {
        r["split"] for r in _rows(t2, "sound")
    } == {"test"}
    ori_clip = next(r for r in _rows(t2, "published") if r["dataset"] == "ORI" and r["method"] == "CLIP")
    assert ori_clip["AUC"] == PUBLISHED["table2"][("ORI", "CLIP")][3]
    assert all("AUC 95% CI" in r for r in t2.rows) and _rows(t2, "sound")[0]["AUC 95% CI"]
    filled = [r for r in _rows(t3, "sound") if r["run_id"] == "finetune-x"]
    assert len(filled) == 2 and filled[0]["AUC"] == 0.75  # CLIP and MedCLIP share the tiny parent here
    assert all("not run" in r["note"] for r in _rows(t3, "paper") + _rows(t4, "sound"))
    assert len(result.run_ids) == 8
    # Table 5: 2 sites x 4 regimes; CLIP and MedCLIP are the same tiny model here, so zero-shot ties exactly
    assert [(r["dataset"], r["regime"]) for r in t5.rows] == [(s, g) for s in SITES for g in REGIMES]
    zs5 = [r for r in t5.rows if r["regime"] == "zero-shot"]
    assert all(r["p"] == 1.0 and r["n"] and r["test"] == "DeLong" for r in zs5)
    ft5 = next(r for r in t5.rows if r["regime"] == "fine-tuned" and r["dataset"] == "ORI")
    assert ft5["p"] is None and "no stored predictions" in ft5["note"]  # finetune-x saved no predictions
    # the study's Table 4 MedCLIP quirk: the UCSD-fine-tuned (paper) model scored on both targets
    save_run(sites, {"run_id": "finetune-ucsd", "kind": "finetune", "protocol": "paper", "model": TINY,
                     "fingerprint": "child2", "train_dataset": "ucsd", "eval_dataset": "ucsd", "split": "test",
                     "config": {"parent_fingerprint": tiny_encoder.fingerprint, "child_spec": TINY,
                                "resolved": {"loss": "clip", "seed": 0}},
                     "metrics": {"auroc": {"value": 0.9}}})  # fmt: skip
    t4 = paper_tables(sites, config, _loader(tiny_encoder)).tables[3]
    quirk = [r for r in _rows(t4, "paper") if r["method"] == "MedCLIP"]
    assert len(quirk) == 2 and all("bug reproduced" in r["note"] and r["split"] == "all" for r in quirk)
    assert all(r["AUC"] is not None for r in quirk)
    paths = write_tables(result, tmp_path / "out")
    text = (tmp_path / "out" / "tables.md").read_text()
    assert "### Table 2: zero-shot" in text and "| ORI | CLIP | published |" in text
    assert {p.name for p in paths} == {f"table{i}.csv" for i in range(1, 6)} | {
        "tables.md",
        "prompt_search.csv",
    }


def test_paper_tables_without_models(sites, tiny_encoder):
    config = PaperConfig(ucsd="ucsd", ori="ori", clip="nope:clip", medclip=TINY, bootstrap=BootstrapConfig(0))
    result = paper_tables(sites, config, _loader(tiny_encoder))
    clip_rows = [r for r in result.tables[1].rows if r["method"] == "CLIP" and r["source"] != "published"]
    assert all(r["AUC"] is None and "not loaded" in r["note"] for r in clip_rows)


def test_report_is_self_contained(sites, tiny_encoder, tmp_path):
    from pedclip.eval.evaluation import save
    from pedclip.eval.prompts import load_prompt_set
    from pedclip.eval.zeroshot import ZeroShotConfig, zeroshot_eval

    ids = []
    for protocol in ("sound", "paper"):
        result = zeroshot_eval(sites, tiny_encoder, "ucsd", load_prompt_set("study-clip"),
                               ZeroShotConfig(protocol=protocol, bootstrap=BootstrapConfig(20)))  # fmt: skip
        ids.append(save(sites, result))
    path = write_report(sites, ids, tmp_path / "r.html")
    html = path.read_text()
    assert html.count("Plotly.newPlot") == 3 + 2  # ROC, PR, calibration + one confusion matrix per run
    assert (
        "<script src=" not in html and html.count("plotly.js v") >= 1 and len(html) > 1_000_000
    )  # JS inlined
    assert "top1_probability" in html and "youden on val" in html


def _cli(capsys, home, *args) -> dict | list:
    code = main(["--home", str(home), *args, "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def test_cli_zeroshot_rescore_runs(sites, home, capsys):
    zs = _cli(capsys, home, "zeroshot", "--model", TINY, "--dataset", "ucsd", "--resamples", "20")
    assert zs["saved"] and zs["metrics"]["auroc"]["value"] > 0.5 and zs["split"] == "test"
    rs = _cli(capsys, home, "rescore", "--model", TINY, "--dataset", "ucsd", "--prompt", "normal=No focal consolidation.",
              "--prompt", "pneumonia=Patchy consolidation in the right lower lobe.", "--against", zs["run_id"],
              "--split", "test", "--resamples", "20", "--save")  # fmt: skip
    assert rs["comparison"]["n_common"] == zs["config"]["n"] and "auroc" in rs["comparison"]["deltas"]
    listed = _cli(capsys, home, "runs", "list")
    assert {r["run_id"] for r in listed} == {zs["run_id"], rs["run_id"]}
    shown = _cli(capsys, home, "runs", "show", zs["run_id"], "--by", "site")
    assert [s["group"] for s in shown["slices"]] == ["A", "B"]
    compared = _cli(capsys, home, "compare", zs["run_id"], rs["run_id"], "--resamples", "50")
    assert compared["n_flipped"] == compared["n_a_right"] + compared["n_b_right"]
    assert compared["n"] == zs["config"]["n"] and set(compared["dropped"].values()) == {0}
    probe = _cli(
        capsys, home, "probe", "--model", TINY, "--train", "ucsd", "--eval", "ori", "--resamples", "0"
    )
    assert probe["eval_dataset"] == "ori" and probe["config"]["C"] > 0
    knn = _cli(capsys, home, "knn", "--model", TINY, "--train", "ucsd", "-k", "3", "--resamples", "0")
    assert knn["kind"] == "knn"
    sets = _cli(capsys, home, "prompts", "list")
    assert "medclip-covid" in {s["name"] for s in sets}
    rep = _cli(capsys, home, "report", zs["run_id"], "--out", str(home / "rep.html"))
    assert (home / "rep.html").stat().st_size > 100_000 and rep["runs"] == [zs["run_id"]]


def test_cli_user_errors_are_one_line(sites, home, capsys):
    code = main(["--home", str(home), "rescore", "--model", TINY, "--dataset", "ucsd", "--prompt", "oops"])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: prompt 'oops' is not class=text") and "Traceback" not in err


def test_a_ci_from_resampled_cases_says_so():
    from pedclip.eval.metrics import Metric
    from pedclip.eval.paper import metric_row

    metrics = {"auroc": Metric(0.8, lo=0.7, hi=0.9)}
    row = metric_row("s", "CLIP", "sound", metrics, resampled="case")
    assert row["AUC 95% CI"] == "0.700-0.900 (resampled by case)"
    assert metric_row("s", "CLIP", "sound", metrics, resampled="patient")["AUC 95% CI"] == "0.700-0.900"
