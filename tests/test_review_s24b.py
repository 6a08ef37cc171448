"""Review of session 24's multi-process find_trainer_lr / choose_trainer_lr (helper b): setups train() does not wrap
in DistributedDataParallel are refused before any work, one it does wrap (MULTI_NEURON) is not; the error of a model
with parameters unused in its forward under ddp_find_unused_parameters=False is said in the Trainer's terms (on
every rank, no hang); and what a torchrun user meets (unused, frozen parameters, BatchNorm buffers, a NaN loss at the
first step, your optimizer and scheduler replayed under gradient accumulation with an eval_dataset dict,
set_lr=False) leaves train() the run it would have been (2 CPU ranks on gloo, as tests/test_hf_ddp_s24.py)."""

from __future__ import annotations

import gc
import json
import os
import sys
import time
import types
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from _helpers import transformers_or_skip

transformers = transformers_or_skip()

sys.path.insert(0, str(Path(__file__).parent))
from _helpers import free_port, leave_rank  # noqa: E402
from test_hf_monitor_s20h import _data  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*pin_memory.*", "ignore::FutureWarning", "ignore::UserWarning")


class Odd(nn.Module):
    """A regression MLP with what DDP treats apart: a parameter unused in the forward, a frozen one, BatchNorm
    buffers (``bn``); ``nan``: every training loss is NaN."""

    def __init__(self, *, bn: bool = True, nan: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(8, 32), nn.BatchNorm1d(32) if bn else nn.Identity(), nn.Tanh(),
                                 nn.Linear(32, 1))
        self.unused = nn.Linear(8, 8)
        self.frozen = nn.Linear(8, 8).requires_grad_(False)
        self.nan = nan

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        out = self.net(self.frozen(x) + x).squeeze(-1)
        loss = nn.functional.mse_loss(out, labels)
        return {"loss": loss * float("nan") if self.nan and self.training else loss, "logits": out}


def _trainer(out: str, lr: float = 0.01, model: nn.Module | None = None, optimizers: Any = (None, None),
             eval_dataset: Any = None, **kw: Any) -> Any:
    from transformers import Trainer, TrainingArguments

    settings: dict[str, Any] = dict(max_steps=24, per_device_train_batch_size=8, learning_rate=lr,
                                    lr_scheduler_type="cosine", warmup_steps=2)
    if "RANK" in os.environ:  # a spawned rank (a short timeout: a rank left waiting fails rather than hangs)
        settings.update(ddp_backend="gloo", ddp_timeout=60)
    settings.update(kw)
    args = TrainingArguments(output_dir=str(Path(out) / "run"), report_to=[], use_cpu=True, disable_tqdm=True,
                             save_strategy="no", logging_strategy="no", seed=0, **settings)
    return Trainer(model=model or Odd(), args=args, train_dataset=_data(256), eval_dataset=eval_dataset,
                   optimizers=optimizers)


def _state(model: nn.Module) -> list[list[float]]:
    return [t.detach().flatten().tolist() for t in [*model.parameters(), *model.buffers()]]


def _two_processes(trainer: Any, kind: str) -> Any:
    """``trainer`` as a rank of 2 under accelerate's ``distributed_type`` ``kind`` would look to the setup checks
    (which run before anything else is touched), in this one process."""
    from accelerate.utils import DistributedType

    trainer.args.__class__ = type("TwoRanks", (type(trainer.args),), {"world_size": property(lambda self: 2)})
    trainer.accelerator = types.SimpleNamespace(distributed_type=DistributedType[kind])
    return trainer


@pytest.mark.parametrize("call", ["find", "choose"])
def test_a_model_sharded_at_load_time_is_refused_under_several_processes(tmp_path: Path, call: str) -> None:
    # from_pretrained(..., tp_plan=...) / a DistributedConfig: train() prepares it without DistributedDataParallel
    # (its DTensor parameters reduce their own gradients); wrapping it would test another run, or fail inside torch
    from lrkit.integrations.transformers import choose_trainer_lr, find_trainer_lr

    trainer = _two_processes(_trainer(str(tmp_path)), "MULTI_GPU")
    trainer.is_distributed_loading_by_transformers = True
    with pytest.raises(ValueError, match=r"2 processes \(args.world_size=2\) with a model sharded at load time") as e:
        find_trainer_lr(trainer) if call == "find" else choose_trainer_lr(trainer)
    assert "DistributedDataParallel" in str(e.value) and "on every rank" in str(e.value)  # what to do instead
    assert trainer.optimizer is None and trainer.args.learning_rate == 0.01  # refused before any work


def test_multi_neuron_is_plain_data_parallel_and_other_types_are_refused_by_name(tmp_path: Path) -> None:
    # accelerate 1.15's prepare_model wraps MULTI_NEURON in DistributedDataParallel (Accelerator.multi_device): not
    # refused for its type (here it gets as far as the process-group check, there being none in this process)
    from lrkit.integrations.transformers import find_trainer_lr

    with pytest.raises(ValueError, match="torch.distributed is not initialised") as e:
        find_trainer_lr(_two_processes(_trainer(str(tmp_path)), "MULTI_NEURON"))
    assert "distributed_type" not in str(e.value)
    for kind in ("NO", "XLA", "MEGATRON_LM"):
        with pytest.raises(ValueError, match=f"under accelerate's distributed_type {kind}: ") as e:
            find_trainer_lr(_two_processes(_trainer(str(tmp_path)), kind))
        assert "lrkit.find_lr(model, optimizer, loader, step_fn=...) on every rank" in str(e.value)


def _worker(rank: int, world: int, port: int, out: str, which: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    import warnings

    warnings.simplefilter("ignore")
    import lrkit.integrations.transformers as hf

    record: dict[str, Any] = {}
    if which == "unused":
        for call in ("find", "choose"):
            trainer = _trainer(out, model=Odd(bn=False), ddp_find_unused_parameters=False, max_steps=100)
            before = _state(trainer.model)
            try:
                hf.find_trainer_lr(trainer, num_steps=20) if call == "find" else hf.choose_trainer_lr(trainer)
                record[call] = "no error"
            except Exception as e:  # the test reads which error it was
                record[call] = f"{type(e).__name__}: {e}"
            record[call + "_restored"] = _state(trainer.model) == before and trainer.optimizer is None
    else:
        # unused, frozen parameters and BatchNorm buffers under DDP's defaults (find_unused_parameters=True for a
        # model that is not a PreTrainedModel, broadcast_buffers): train() afterwards is the run at the LR set by hand
        trainer = _trainer(out)
        lr = hf.find_trainer_lr(trainer, num_steps=20).suggestion
        trainer.train()
        by_hand = _trainer(out, lr)
        by_hand.train()
        record["odd"] = _state(trainer.model) == _state(by_hand.model)
        # a NaN loss at the first step on every rank: the error, and no DDP reducer left to disturb train() after it
        trainer = _trainer(out, model=Odd(nan=True))
        try:
            hf.find_trainer_lr(trainer, num_steps=20)
            record["nan"] = "no error"
        except ValueError as e:
            record["nan"] = str(e)
        gc.collect()
        trainer.model.nan = False
        trainer.train()
        plain = _trainer(out)
        plain.train()
        record["nan_then_train"] = _state(trainer.model) == _state(plain.model)

        # your optimizer and scheduler (recorded, replayed in the trials), gradient accumulation, an eval_dataset
        # dict (its first set scores the trials), set_lr=False: train() afterwards as without the call
        def yours() -> Any:
            model = Odd(bn=False)
            optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
            scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.01, total_steps=160)
            return _trainer(out, model=model, optimizers=(optimizer, scheduler), gradient_accumulation_steps=2,
                            max_steps=160, eval_dataset={"a": _data(32, seed=1), "b": _data(32, seed=2)})

        trainer = yours()
        auto = hf.choose_trainer_lr(trainer, set_lr=False, budget=0.5)
        record.update(lr=auto.lr, trials=[t.lr for t in auto.trials], set=trainer.args.learning_rate)
        trainer.train()
        untouched = yours()
        untouched.train()
        record["set_lr_false"] = _state(trainer.model) == _state(untouched.model)
        record["after"] = _state(trainer.model)
    leave_rank(out, rank, record)


def _run(tmp: Path, which: str, seconds: float = 120) -> list[dict[str, Any]]:
    """Both ranks' records; a rank left waiting (a hang) is killed at ``seconds`` and fails the test."""
    context = mp.spawn(_worker, args=(2, free_port(), str(tmp), which), nprocs=2, join=False)
    deadline = time.monotonic() + seconds
    while not context.join(timeout=2):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the ranks did not finish within {seconds} s (a hang)")
    return [json.loads((tmp / f"rank{rank}.json").read_text()) for rank in (0, 1)]


def test_unused_parameters_without_find_unused_fail_on_every_rank_in_the_trainers_terms(tmp_path: Path) -> None:
    ranks = _run(tmp_path, "unused")
    for rank, got in enumerate(ranks):
        for call in ("find", "choose"):
            assert got[call].startswith(f"ValueError: {call}_trainer_lr: the model has parameters that get no "
                                        "gradient"), got[call]
            assert f"Parameter indices which did not receive grad for rank {rank}: 4 5" in got[call]
            assert "ddp_find_unused_parameters=True" in got[call] and "train() would fail" in got[call]
            assert got[call + "_restored"]


def test_unused_frozen_batchnorm_nan_and_your_replayed_scheduler_under_ddp(tmp_path: Path) -> None:
    ranks = _run(tmp_path, "train")
    for got in ranks:
        assert got["odd"]
        assert got["nan"].startswith("the loss is nan at the very first step")
        assert got["nan_then_train"]
        assert got["set_lr_false"] and got["set"] == 0.01
    assert ranks[0]["lr"] == ranks[1]["lr"] and ranks[0]["trials"] == ranks[1]["trials"]
    assert ranks[0]["trials"]  # the trials ran, replaying your OneCycleLR
    assert ranks[0]["after"] == ranks[1]["after"]
