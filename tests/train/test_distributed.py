"""Two gloo ranks on the CPU equal one process on the global batch: loss and gradients after one step, and the
checkpoint after two epochs of `pedclip finetune --nproc 2`; only rank 0 writes the store."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from pedclip.cli import main
from pedclip.store.embeddings import models_frame
from pedclip.train.data import load_split
from pedclip.train.distributed import DataParallel, Rank, shard_sizes
from pedclip.train.launch import free_port
from pedclip.train.step import StepSettings, accumulate_gradients, set_mode
from tests.train.conftest import fresh_tiny

PROMPTS = ("a photo of normal lungs.", "a photo of pneumonia lungs.")
SETTINGS = StepSettings(loss="semantic", device="cpu", precision="fp32")
GLOBAL_BATCH = np.array([3, 0, 7, 12, 5, 9, 14, 1, 2, 11, 6])  # 11 images: shards of 6 and 5


def gradients(encoder) -> dict[str, torch.Tensor]:
    roots = encoder.modules or {"image": encoder.image_tower}
    named = {n: p for root, m in roots.items() for n, p in m.named_parameters(prefix=root)}
    return {n: p.grad.detach().clone() for n, p in named.items() if p.grad is not None}


def one_step_on_rank(index: int, port: int, data, out_dir: str) -> None:
    """Spawned rank: DDP over the tiny model, one backward of the global batch; saves loss and gradients."""
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=index, world_size=2)
    try:
        encoder = fresh_tiny()
        replica = DataParallel(Rank(index, 2, index)).attach(encoder)
        set_mode(encoder, True)
        loss = replica.accumulate(encoder, data, GLOBAL_BATCH, SETTINGS, None)
        torch.save({"loss": loss, "grads": gradients(encoder)}, os.path.join(out_dir, f"rank{index}.pt"))
    finally:
        dist.destroy_process_group()


def test_shards_are_contiguous_and_cover_the_batch():
    assert shard_sizes(11, 2) == [6, 5] and shard_sizes(8, 4) == [2, 2, 2, 2]
    assert Rank.from_env({"WORLD_SIZE": "1"}) is None
    assert Rank.from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == Rank(3, 4, 1)
    assert Rank(3, 4, 1).device("cuda") == "cuda:1" and Rank(3, 4, 1).device("cpu") == "cpu"


@pytest.mark.slow
def test_two_gloo_ranks_give_the_single_process_loss_and_gradients(store, site, tmp_path):
    import torch.multiprocessing as mp

    data = load_split(store, site, "train", fresh_tiny().preprocess_config, "prompts", PROMPTS)
    mp.start_processes(
        one_step_on_rank, args=(free_port(), data, str(tmp_path)), nprocs=2, start_method="spawn"
    )
    ranks = [torch.load(tmp_path / f"rank{i}.pt") for i in range(2)]

    encoder = fresh_tiny()
    set_mode(encoder, True)
    texts = [data.texts[i] for i in GLOBAL_BATCH]
    loss = accumulate_gradients(
        encoder, data.pixels[GLOBAL_BATCH], texts, data.labels[GLOBAL_BATCH], SETTINGS
    )
    expected = gradients(encoder)
    for rank in ranks:
        assert abs(rank["loss"] - loss) < 1e-5
        assert set(rank["grads"]) == set(expected)
        for name, grad in expected.items():
            torch.testing.assert_close(rank["grads"][name], grad, atol=1e-5, rtol=1e-4, msg=name)
    assert max(float(g.abs().max()) for g in expected.values()) > 1e-3  # the gradients are not all ~0


def finetune_json(capsys, home, *extra: str) -> dict:
    args = ["--home", str(home), "finetune", "--model", "openclip:pedclip-tiny", "--dataset", "site-a",
            "--epochs", "2", "--batch-size", "6", "--lr", "1e-3", "--protocol", "paper", "--workers", "0", "--json",
            "--precision", "fp32"]  # fmt: skip
    # fp32: paper CLIP's default fp16-master rounds the weights to fp16 after each step, which turns the ranks'
    # ~1e-7 reduction differences into whole fp16 ulps; the comparison is about DDP, not that rounding.
    capsys.readouterr()
    code = main([*args, *extra])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


@pytest.mark.slow
def test_finetune_on_two_ranks_ends_with_the_single_process_checkpoint(capsys, store, home, site):
    single = finetune_json(capsys, home)
    double = finetune_json(capsys, home, "--nproc", "2")
    # Adam divides by the gradient's size, so rounding differences of ~1e-7 grow a little over the steps.
    losses = [[e["train_loss"] for e in r["history"]] for r in (single, double)]
    assert losses[1] == pytest.approx(losses[0], rel=1e-4)
    assert double["best_epoch"] == single["best_epoch"]
    parent = fresh_tiny().modules["model"].state_dict()
    weights = [
        load_file(os.path.join(r["checkpoint"], "open_clip_model.safetensors")) for r in (single, double)
    ]
    assert set(weights[0]) == set(weights[1])
    moved = sum(float((weights[0][k] - parent[k]).norm() ** 2) for k in weights[0]) ** 0.5
    apart = sum(float((weights[1][k] - weights[0][k]).norm() ** 2) for k in weights[0]) ** 0.5
    assert moved > 0.1 and apart < 1e-3 * moved  # two ranks land where one process did, to 0.1% of the step
    with store.read() as con:
        runs = con.execute(
            "SELECT run_id, status FROM runs WHERE kind = 'finetune' ORDER BY created"
        ).fetchall()
        epochs = con.execute("SELECT count(*) FROM epochs WHERE run_id = ?", [double["run_id"]]).fetchone()[0]
    assert [status for _, status in runs] == ["done", "done"] and epochs == 2  # rank 0 wrote once
    children = models_frame(store)
    assert (children["spec"] == double["spec"]).sum() == 1
    assert double["embedded"]["site-a"]["embedded"] == 32  # re-embedded once, by rank 0


@pytest.mark.slow
def test_transfer_with_seeds_on_two_ranks_links_the_runs_and_registers_one_child_each(
    capsys, store, home, site, tmp_path
):
    from tests.train.conftest import add_dataset

    add_dataset(store, tmp_path / "site-b", "site-b", seed=2)
    args = ["--home", str(home), "transfer", "--model", "openclip:pedclip-tiny", "--from", site, "--to", "site-b",
            "--epochs", "1", "--batch-size", "6", "--precision", "fp32", "--workers", "0", "--json",
            "--seeds", "0,1", "--nproc", "2"]  # fmt: skip
    capsys.readouterr()
    code = main(args)
    out = capsys.readouterr()
    assert code == 0, out.err
    runs = json.loads(out.out)["runs"]
    with store.read() as con:
        rows = con.execute(
            "SELECT run_id, kind, config FROM runs WHERE kind IN ('finetune', 'transfer') ORDER BY created"
        ).fetchall()
    configs = {run_id: (kind, json.loads(config)) for run_id, kind, config in rows}
    finetunes = [c for kind, c in configs.values() if kind == "finetune"]
    assert [r["seed"] for r in runs] == [0, 1] and len(finetunes) == 2
    assert len({c["group"]["id"] for _, c in configs.values()}) == 1  # the seed group reached rank 0's runs
    children = models_frame(store)["spec"].tolist()
    assert all(sum(s == f"local:{home}/checkpoints/{r['finetune_run']}" for s in children) == 1 for r in runs)


def test_nproc_refusals_are_one_line(capsys, home, store, site, monkeypatch):
    tune = ["--home", str(home), "finetune", "--model", "openclip:pedclip-tiny", "--dataset", site, "--tune",
            "--nproc", "2"]  # fmt: skip
    assert main(tune) == 1
    assert "--tune runs its grid in one process" in capsys.readouterr().err
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    transfer = [
        "--home",
        str(home),
        "transfer",
        "--model",
        "openclip:pedclip-tiny",
        "--from",
        site,
        "--to",
        site,
    ]
    assert main(transfer) == 1
    err = capsys.readouterr().err
    assert "transfer starts its own ranks" in err and len(err.strip().splitlines()) == 1


def _resnet_towers():
    from torchvision.models.resnet import resnet18

    return torch.nn.ModuleList([resnet18(num_classes=4)])


def test_batchnorm_is_synced_on_gpus_and_said_to_be_per_rank_on_cpus():
    from pedclip.train.distributed import global_batchnorm

    towers = _resnet_towers()
    keys = set(towers.state_dict())
    synced = global_batchnorm(towers, torch.device("cuda", 0), 2, "m")  # converting needs no GPU
    kinds = {type(m) for m in synced.modules()}
    assert torch.nn.SyncBatchNorm in kinds and torch.nn.BatchNorm2d not in kinds
    assert set(synced.state_dict()) == keys  # same checkpoint names

    with pytest.warns(UserWarning, match="each of the 2 CPU ranks normalises its own share"):
        kept = global_batchnorm(_resnet_towers(), torch.device("cpu"), 2, "m")
    assert torch.nn.SyncBatchNorm not in {type(m) for m in kept.modules()}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        global_batchnorm(_resnet_towers(), torch.device("cpu"), 1, "m")  # one process: nothing to say
        global_batchnorm(torch.nn.ModuleList([torch.nn.Linear(2, 2)]), torch.device("cpu"), 2, "m")
