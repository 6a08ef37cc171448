"""CUDA-only branches checked on a CPU-only machine, with torch.cuda faked where a GPU would be needed."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
import torch

import lrkit
from lrkit._state import RNGState
from lrkit._step import autocast_context, move_to
from lrkit.train import run as _run
from lrkit.train.trainer import _resolve_device


def _fake_cuda(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


# ------------------------------------------------------------------------------------------ device placement
def test_train_device_index_beyond_the_machine_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_cuda(monkeypatch, 2)
    with pytest.raises(ValueError, match=r"device='cuda:7'.*2 CUDA device\(s\) \(cuda:0 to cuda:1\)"):
        _resolve_device("cuda:7")
    assert _resolve_device("cuda:1") == torch.device("cuda", 1)  # an index the machine has is kept
    assert _resolve_device("cuda") == torch.device("cuda")  # no index: torch's current device


def test_train_cuda_on_a_cpu_only_machine_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"device='cuda' but CUDA is not available here; use device='cpu'"):
        _resolve_device("cuda")


def test_find_lr_cuda_device_on_cpu_build_is_a_clear_error() -> None:
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = [(torch.randn(4, 3), torch.randn(4, 1))] * 3
    with pytest.raises(ValueError, match=r"device='cuda:7' cannot be used: .*\(CUDA available: (True|False)\)"):
        lrkit.find_lr(model, opt, loader, num_steps=10, device="cuda:7")


def test_move_to_cpu_is_blocking_and_to_an_accelerator_is_not(monkeypatch: pytest.MonkeyPatch) -> None:
    # A non-blocking device->host copy may be read before it has landed (torch's pin_memory/non_blocking guide):
    # towards the CPU the copy must block; towards an accelerator it may overlap with compute.
    calls: list[tuple[torch.device, bool]] = []

    def fake_to(self: torch.Tensor, device: Any, non_blocking: bool = False, **_: Any) -> torch.Tensor:
        calls.append((torch.device(device), non_blocking))
        return torch.zeros(self.shape)

    monkeypatch.setattr(torch.Tensor, "to", fake_to)
    batch = (torch.empty(2, 3, device="meta"), torch.empty(2, device="meta"))  # stands in for a CUDA batch
    moved = move_to(batch, torch.device("cpu"))
    assert type(moved) is tuple and len(moved) == 2
    assert calls == [(torch.device("cpu"), False)] * 2
    calls.clear()
    move_to(torch.empty(2, device="meta"), torch.device("cuda", 1))
    assert calls == [(torch.device("cuda", 1), True)]


# ------------------------------------------------------------------------------------------------ amp choice
def _autocast_takes(device_type: str) -> bool:
    """Whether this torch builds an autocast context for ``device_type`` here (torch <= 2.9 refuses 'mps' off a Mac)."""
    try:
        torch.autocast(device_type, dtype=torch.bfloat16)
    except RuntimeError:
        return False
    return True


@pytest.mark.parametrize(
    ("amp", "device", "dtype", "scaler"),
    [
        (True, "cuda", torch.float16, True),
        (True, "cuda:1", torch.float16, True),
        (True, "cpu", torch.bfloat16, False),
        pytest.param(True, "mps", torch.bfloat16, False, marks=pytest.mark.skipif(
            not _autocast_takes("mps"), reason=f"torch {torch.__version__} has no autocast for 'mps' on this machine")),
        ("fp16", "cpu", torch.float16, False),
        ("BF16", "cuda", torch.bfloat16, False),
        (torch.float16, "cuda", torch.float16, True),
    ],
)
@pytest.mark.filterwarnings("ignore:CUDA is not available")
def test_amp_true_is_fp16_with_scaler_on_cuda_only(amp: Any, device: str, dtype: torch.dtype, scaler: bool) -> None:
    ctx, use_scaler = autocast_context(amp, torch.device(device))
    assert use_scaler is scaler
    assert ctx._ctx.fast_dtype == dtype and ctx._ctx.device == torch.device(device).type


# ----------------------------------------------------------------------------------------------- RNG states
def test_resume_rng_with_more_cuda_states_than_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    # A checkpoint written on a machine with 2 GPUs holds 2 CUDA RNG states; resumed where 1 is visible
    # (CUDA_VISIBLE_DEVICES=0), torch's set_rng_state_all would index default_generators[1] and fail.
    _fake_cuda(monkeypatch, 1)
    got: list[list[torch.Tensor]] = []

    def set_all(states: list[torch.Tensor]) -> None:
        if len(states) > torch.cuda.device_count():
            raise IndexError("tuple index out of range")  # what torch.cuda.default_generators[1] raises
        got.append(list(states))

    monkeypatch.setattr(torch.cuda, "set_rng_state_all", set_all)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)  # get_rng_state() must not read CUDA
    state = _run.get_rng_state()
    assert "cuda" not in state
    saved = [torch.full((16,), 1, dtype=torch.uint8), torch.full((16,), 2, dtype=torch.uint8)]
    before = torch.get_rng_state()
    torch.rand(3)
    _run.set_rng_state({**state, "cuda": saved})
    assert torch.equal(torch.get_rng_state(), before)  # the CPU state is restored too
    assert len(got) == 1 and len(got[0]) == 1 and torch.equal(got[0][0], saved[0])


def test_rng_snapshot_reads_cuda_only_when_initialised(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[str] = []
    cuda_state = [torch.arange(8, dtype=torch.uint8)]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: reads.append("get") or cuda_state)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda s: reads.append("set"))
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    snap = RNGState.capture()
    snap.restore()
    assert snap.torch_cuda is None and reads == []  # no CUDA init, no CUDA call
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    np.random.seed(3)
    random.seed(3)
    snap = RNGState.capture()
    a = (np.random.rand(), random.random(), torch.rand(1))
    snap.restore()
    assert snap.torch_cuda is cuda_state and reads == ["get", "set"]
    assert (np.random.rand(), random.random(), torch.rand(1)) == a
