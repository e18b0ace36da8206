"""Fine-tuning resumes: a run that dies mid-epoch continues, when rerun with the same arguments, after its
last completed epoch (weights, optimizer, RNG, early stopping) and ends as an uninterrupted run does."""

from __future__ import annotations

import pytest
import torch

from pedclip.store.runs import epochs_frame, get_run, runs_frame
from pedclip.train.config import FinetuneConfig
from pedclip.train.finetune import finetune

TINY = "openclip:pedclip-tiny"
EPOCHS = 2


def config(**overrides) -> FinetuneConfig:
    fields = {"model": TINY, "dataset": "site-a", "epochs": EPOCHS, "batch_size": 8, "lr": 3e-4,
              "device": "cpu", "embed": False, "patience": 10}  # fmt: skip
    return FinetuneConfig(**{**fields, **overrides})


class Died(BaseException):
    """Stands in for the process dying: not an Exception (nothing may catch it) and not a Ctrl-C."""


def dies_at(epoch: int, step: int):
    def progress(event: dict) -> None:
        if event["event"] == "step" and (event["epoch"], event["step"]) == (epoch, step):
            raise Died

    return progress


def checkpoint_tensors(result) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(next(result.checkpoint.glob("*.safetensors"))))


def without_timing(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in record.items() if k != "seconds"} for record in history]


def curve(store, run_id: str) -> list[dict]:
    return without_timing(epochs_frame(store, run_id).to_dict("records"))


@pytest.mark.slow
def test_a_run_killed_mid_epoch_continues_and_ends_as_an_uninterrupted_one(store, site) -> None:
    whole = finetune(store, config())
    with pytest.raises(Died):
        finetune(store, config(), progress=dies_at(epoch=2, step=1))
    killed = runs_frame(store, ["finetune"]).query("status == 'failed'")["run_id"].item()
    assert len(epochs_frame(store, killed)) == 1, "one epoch completed before it died"

    seen = []
    resumed = finetune(store, config(), progress=seen.append)

    assert resumed.run_id == killed, "the rerun continues the unfinished run instead of starting another"
    assert {e["epoch"] for e in seen if e["event"] == "step"} == {2}, "epoch 1 is not trained again"
    assert get_run(store, killed)["status"] == "done"
    assert without_timing(resumed.history) == without_timing(whole.history)
    assert curve(store, killed) == curve(store, whole.run_id)
    expected, got = checkpoint_tensors(whole), checkpoint_tensors(resumed)
    assert expected.keys() == got.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(got[name], tensor, rtol=0, atol=1e-6, msg=name)
    assert not store.paths.training.exists() or not any(store.paths.training.iterdir()), "state removed"
    assert len(runs_frame(store, ["finetune"])) == 2


def test_a_rerun_with_other_arguments_starts_a_new_run(store, site) -> None:
    with pytest.raises(Died):
        finetune(store, config(epochs=1), progress=dies_at(epoch=1, step=2))
    other = finetune(store, config(epochs=1, lr=1e-4))
    runs = runs_frame(store, ["finetune"]).set_index("run_id")["status"].to_dict()
    assert runs[other.run_id] == "done" and sorted(runs.values()) == ["done", "failed"]


def test_a_run_stopped_by_patience_resumes_straight_to_saving(store, site) -> None:
    """The state is saved before the epoch is announced: dying then, the rerun trains nothing more."""
    slow = config(epochs=5, patience=1, lr=1e-9)  # the first epoch stays best: patience stops after epoch 2

    def dies_after_stop(event: dict) -> None:
        if event["event"] == "epoch" and event["epoch"] == 2:
            raise Died

    with pytest.raises(Died):
        finetune(store, slow, progress=dies_after_stop)
    seen = []
    result = finetune(store, slow, progress=seen.append)
    assert result.stopped == "patience" and len(result.history) == 2
    assert not [e for e in seen if e["event"] == "step"]


def _trained_adam() -> tuple[torch.nn.Parameter, torch.optim.Optimizer]:
    weight = torch.nn.Parameter(torch.ones(4, 4))
    optimizer = torch.optim.Adam([weight], lr=0.1)
    weight.grad = torch.full_like(weight, 0.5)
    optimizer.step()
    return weight, optimizer


def test_the_state_is_written_as_it_was_when_saved_while_training_goes_on(tmp_path) -> None:
    """The write runs in the background: the optimizer's next steps must not reach the saved moments."""
    from pedclip.train.loop import LoopResult
    from pedclip.train.resume import TrainingState

    weight, optimizer = _trained_adam()
    saved_weight, saved_moment = weight.detach().clone(), optimizer.state[weight]["exp_avg"].clone()
    state = TrainingState(tmp_path / "run", key="k")
    state.save(1, [weight], [], {"optimizer": optimizer}, LoopResult(best={"epoch": 1}), None)
    for _ in range(3):  # the next epoch, in place
        optimizer.step()
        with torch.no_grad():
            weight.add_(1.0)
    state.wait()
    document = torch.load(state.path, weights_only=True)
    assert torch.equal(document["tensors"][0], saved_weight) and not torch.equal(weight, saved_weight)
    assert torch.equal(document["stateful"]["optimizer"]["state"][0]["exp_avg"], saved_moment)


def test_a_failed_background_write_surfaces_at_the_next_wait(tmp_path) -> None:
    from pedclip.train.loop import LoopResult
    from pedclip.train.resume import TrainingState

    weight, optimizer = _trained_adam()
    (tmp_path / "file").write_text("not a folder")
    state = TrainingState(tmp_path / "file" / "run", key="k")
    state.save(1, [weight], [], {"optimizer": optimizer}, LoopResult(best={"epoch": 1}), None)
    with pytest.raises(OSError):
        state.wait()
    state.wait()  # reported once
