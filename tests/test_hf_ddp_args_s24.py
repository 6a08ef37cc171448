"""The DistributedDataParallel that find_trainer_lr / choose_trainer_lr test under is built with the arguments
accelerate's ``prepare_model`` gives train()'s (session 24). The GPU branch (device ids) cannot run on this CPU
machine, so the wrapper's constructor is replaced by a recorder and each branch's arguments are checked."""

from __future__ import annotations

import inspect
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
import torch
from torch import nn

accelerate_utils = pytest.importorskip("accelerate.utils")

from lrkit.integrations.transformers import _data_parallel  # noqa: E402


class Recorder(nn.Module):
    """Stands in for DistributedDataParallel: keeps what it was built with, and the comm hooks registered on it."""

    made: ClassVar[list[Recorder]] = []

    def __init__(self, module: nn.Module, **kwargs: Any) -> None:
        super().__init__()
        self.module, self.kwargs, self.hooks = module, kwargs, []
        Recorder.made.append(self)

    def register_comm_hook(self, state: Any, hook: Any) -> None:
        self.hooks.append(hook)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> type[Recorder]:
    Recorder.made = []
    # the recorder answers inspect.signature as torch's class does (lrkit asks it whether init_sync exists)
    monkeypatch.setattr(Recorder, "__signature__", inspect.signature(torch.nn.parallel.DistributedDataParallel),
                        raising=False)
    monkeypatch.setattr(torch.nn.parallel, "DistributedDataParallel", Recorder)
    monkeypatch.delenv("ACCELERATE_BYPASS_DEVICE_MAP", raising=False)
    return Recorder


def _trainer(kind: str, *, device: str = "cuda:1", index: int = 1, world: int = 2, **ddp: Any) -> Any:
    handler = accelerate_utils.DistributedDataParallelKwargs(**ddp) if ddp else None
    accelerator = SimpleNamespace(distributed_type=accelerate_utils.DistributedType(kind), ddp_handler=handler,
                                  device=torch.device(device), local_process_index=index)
    return SimpleNamespace(args=SimpleNamespace(world_size=world), accelerator=accelerator)


def test_on_gpus_the_wrapper_gets_the_local_device_and_the_trainers_ddp_settings(recorder: type[Recorder]) -> None:
    model = nn.Linear(2, 1)
    wrapped = _data_parallel(_trainer("MULTI_GPU", find_unused_parameters=True, bucket_cap_mb=10,
                                      comm_hook=accelerate_utils.DDPCommunicationHookType.FP16), model)
    assert isinstance(wrapped, Recorder) and wrapped.module is model
    assert wrapped.kwargs == {"device_ids": [1], "output_device": 1, "find_unused_parameters": True,
                              "bucket_cap_mb": 10, "init_sync": False}
    assert len(wrapped.hooks) == 1  # the fp16 compression hook train() registers too


def test_on_cpus_and_with_the_device_map_bypassed_no_device_ids(recorder: type[Recorder],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    assert _data_parallel(_trainer("MULTI_CPU", device="cpu", index=0), nn.Linear(2, 1)).kwargs == \
        {"init_sync": False}
    monkeypatch.setenv("ACCELERATE_BYPASS_DEVICE_MAP", "true")
    assert _data_parallel(_trainer("MULTI_GPU"), nn.Linear(2, 1)).kwargs == {"init_sync": False}


def test_on_hpus_the_devices_own_index(recorder: type[Recorder]) -> None:
    trainer = _trainer("MULTI_HPU", index=0)
    trainer.accelerator.device = SimpleNamespace(type="hpu", index=3)
    assert _data_parallel(trainer, nn.Linear(2, 1)).kwargs["device_ids"] == [3]


def test_one_process_or_nothing_to_train_is_not_wrapped(recorder: type[Recorder]) -> None:
    model = nn.Linear(2, 1)
    assert _data_parallel(_trainer("MULTI_GPU", world=1), model) is model
    frozen = nn.Linear(2, 1).requires_grad_(False)
    assert _data_parallel(_trainer("MULTI_GPU"), frozen) is frozen
    assert recorder.made == []
