"""Review of lrkit.integrations.transformers.MonitorCallback (session 20i) against transformers' real Trainer loop."""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from _helpers import transformers_or_skip

transformers = transformers_or_skip()

from lrkit.integrations.transformers import MonitorCallback  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from _helpers import free_port  # noqa: E402
from test_hf_monitor_s20h import Reg, SummedReg, _data, _train  # noqa: E402

transformers.logging.set_verbosity_error()
pytestmark = pytest.mark.filterwarnings("ignore:.*pin_memory.*", "ignore::FutureWarning")


# ------------------------------------------------------------------ several evaluation datasets
def _metric_warnings(callback: Any, tmp: Path) -> tuple[list[str], Any]:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        _train(Reg(), tmp, [callback], eval_data={"val": _data(64, seed=1), "test": _data(64, seed=2)},
               max_steps=40, eval_strategy="steps", eval_steps=10)
    return [str(w.message) for w in record if "monitor_metric" in str(w.message)], callback


def test_monitor_metric_of_one_of_several_eval_datasets_is_used_without_a_missing_metric_warning(
        tmp_path: Path) -> None:
    # the docstring's own advice ("eval_<name>_loss" with several eval datasets): the Trainer evaluates each dataset
    # in turn and calls on_evaluate once per dataset, so the other dataset's metrics never hold the key
    messages, callback = _metric_warnings(MonitorCallback(monitor_metric="eval_val_loss"), tmp_path)
    assert callback.monitor.state_dict()["evals"] == 4  # the "val" loss reached the monitor at every evaluation
    assert messages == []  # and nothing claims it "gets no validation loss"


def test_a_metric_no_eval_dataset_has_is_still_warned_about_once_naming_every_datasets_metrics(
        tmp_path: Path) -> None:
    messages, callback = _metric_warnings(MonitorCallback(monitor_metric="eval_train_loss"), tmp_path)
    assert callback.monitor.state_dict()["evals"] == 0
    assert len(messages) == 1
    assert "'eval_val_loss'" in messages[0] and "'eval_test_loss'" in messages[0]


# ------------------------------------------------------------------ DataParallel replicas (n_gpu > 1)
class _Square(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": (x * x).mean()}


def _started(model: nn.Module) -> tuple[Any, list[torch.Tensor]]:
    callback = MonitorCallback()
    args = SimpleNamespace(world_size=1, output_dir="unused")
    state, control = SimpleNamespace(global_step=0), SimpleNamespace(should_training_stop=False)
    callback.on_train_begin(args, state, control, model=model,
                            optimizer=torch.optim.SGD(model.parameters(), lr=0.1), lr_scheduler=None)
    given: list[torch.Tensor] = []
    callback.monitor.after_backward = lambda loss: given.append(loss) or True  # type: ignore[union-attr]
    return (callback, args, state, control), given


def test_losses_of_dataparallel_replicas_on_several_devices_are_combined_on_one_device() -> None:
    # With more than one visible GPU and no torchrun the Trainer wraps the model in nn.DataParallel: each replica
    # (Module._replicate_for_data_parallel shares the module's forward hooks) runs the hook with its own device's
    # loss. Two replicas here: one on the meta device, one on the CPU (as cuda:0 and cuda:1 would be).
    model = _Square()
    (callback, args, state, control), given = _started(model)
    first, second = model._replicate_for_data_parallel(), model._replicate_for_data_parallel()
    first(torch.ones(4, device="meta"))
    second(torch.full((4,), 3.0))
    callback.on_pre_optimizer_step(args, state, control)  # torch.stack of a meta and a CPU loss failed here
    assert len(given) == 1 and given[0].shape == () and given[0].device == torch.device("meta")


def test_losses_of_dataparallel_replicas_on_one_device_are_averaged_as_the_trainer_averages_them() -> None:
    model = _Square()
    (callback, args, state, control), given = _started(model)
    for value in (1.0, 3.0):
        model._replicate_for_data_parallel()(torch.full((4,), value))
    callback.on_pre_optimizer_step(args, state, control)
    assert [float(x) for x in given] == [pytest.approx(5.0)]  # mean(1, 9), as DataParallel's loss.mean()


# ------------------------------------------------------------------ DistributedDataParallel (world_size > 1)
def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    from transformers import Trainer, TrainingArguments

    transformers.logging.set_verbosity_error()
    callback = MonitorCallback()
    args = TrainingArguments(output_dir=str(Path(out) / "run"), max_steps=3, per_device_train_batch_size=8,
                             learning_rate=0.01, report_to=[], use_cpu=True, disable_tqdm=True, save_strategy="no",
                             logging_strategy="steps", logging_steps=1, max_grad_norm=0.0, seed=0,
                             ddp_backend="gloo")
    trainer = Trainer(model=SummedReg(), args=args, train_dataset=_data(64), callbacks=[callback])
    trainer.train()
    monitor = callback.monitor
    monitor._flush(monitor.step)
    record = {"world": args.world_size, "monitor": monitor.record.window("loss", 3),
              "logged": [e["loss"] for e in trainer.state.log_history if "loss" in e]}
    (Path(out) / f"rank{rank}.json").write_text(json.dumps(record))
    # leave without the process group's teardown: torch 2.13's gloo aborts at interpreter exit about half the time
    # ("terminate called without an active exception"), as tests/test_ddp_walk_s20c.py's workers do
    torch.distributed.barrier()
    os._exit(0)


def test_under_ddp_a_loss_normalised_by_every_ranks_items_reaches_the_monitor_as_the_trainer_logs_it(
        tmp_path: Path) -> None:
    # average_tokens_across_devices (the default): num_items_in_batch counts both ranks' items, the model's loss is
    # its rank's share and compute_loss multiplies it by the 2 ranks; the monitor got half the loss on every step
    mp.spawn(_ddp_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    for rank in (0, 1):
        got = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert got["world"] == 2 and len(got["logged"]) == 3
        assert got["monitor"] == pytest.approx(got["logged"], rel=1e-5)
