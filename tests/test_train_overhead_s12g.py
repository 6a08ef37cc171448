"""lrkit.train's per-step device reads (benchmarks/train_overhead.py, task s12g).

Each optimizer step used to read two values off the device (``float(loss)`` and ``float(grad_norm)``): a sync per
step on a GPU. The gradient norms are now read in bulk; without a monitor or a progress callback (the only per-step
readers) the losses are too. The records must not change by a bit.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

import lrkit
import lrkit.train.trainer as trainer


def _train(tmp_path: Path, name: str, **kw: Any) -> Any:
    args: dict[str, Any] = dict(data="iris", model="mlp", epochs=2, lr0=0.05, optimizer="SGD", batch=8, nbs=8,
                                project=str(tmp_path), name=name, plots=False, verbose=False, device="cpu")
    args.update(kw)
    return lrkit.train(**args)


def test_no_device_read_per_step_without_monitor_or_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reads = {"n": 0}
    real_float, real_item = torch.Tensor.__float__, torch.Tensor.item

    def counting_float(self: torch.Tensor) -> float:
        reads["n"] += 1
        return real_float(self)

    def counting_item(self: torch.Tensor) -> Any:
        reads["n"] += 1
        return real_item(self)

    steps: list[int] = []
    per_epoch: list[int] = []
    real_epoch = trainer._Trainer._train_epoch

    def epoch(self: Any, e: int) -> Any:
        reads["n"] = 0
        monkeypatch.setattr(torch.Tensor, "__float__", counting_float)
        monkeypatch.setattr(torch.Tensor, "item", counting_item)
        try:
            return real_epoch(self, e)
        finally:
            monkeypatch.setattr(torch.Tensor, "__float__", real_float)
            monkeypatch.setattr(torch.Tensor, "item", real_item)
            steps.append(self.steps_per_epoch)
            per_epoch.append(reads["n"])

    monkeypatch.setattr(trainer._Trainer, "_train_epoch", epoch)
    _train(tmp_path, "quiet", monitor=False)
    assert len(per_epoch) == 2 and steps[0] >= 10
    # before: 2 reads per step (loss and gradient norm); now a handful per epoch, whatever its length
    assert all(n <= 4 for n in per_epoch), (per_epoch, steps)


@pytest.mark.parametrize("monitor", [False, True])
def test_records_identical_with_and_without_per_step_readers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             monitor: bool) -> None:
    """A progress callback makes every step read its loss at once; without one the losses are read in bulk (and in
    runs of 3 here, to cross the bulk boundary): the same train_loss and gradient norms to the last bit."""
    monkeypatch.setattr(trainer, "_READ_EVERY", 3)
    seen: list[float] = []
    a = _train(tmp_path, "bulk", monitor=monitor, amp=True)
    b = _train(tmp_path, "each", monitor=monitor, amp=True,
               progress=lambda **k: seen.append(k["loss"]) if k.get("event") == "step" else None)
    assert seen and all(math.isfinite(v) for v in seen)
    keys = ("train_loss", "val_loss", "grad_norm", "grad_norm_max")
    assert [[r[k] for k in keys] for r in a.history] == [[r[k] for k in keys] for r in b.history]
    assert (a.run_dir / "results.csv").read_text().splitlines()[0] == (b.run_dir / "results.csv").read_text(
    ).splitlines()[0]


def test_read_floats_is_float_of_each() -> None:
    values: list[Any] = [torch.tensor(1 / 3, dtype=torch.float64), 0.0, torch.tensor([0.1], dtype=torch.bfloat16),
                         torch.tensor(2 / 3, dtype=torch.float16), torch.tensor(math.pi), torch.tensor(math.nan)]
    got = trainer._read_floats(values)
    want = [float(v) for v in values]
    assert got[:5] == want[:5] and math.isnan(got[5])
    assert all(type(v) is float for v in got)
    assert trainer._read_floats([]) == [] and trainer._read_floats([torch.tensor(2.5)]) == [2.5]


def _old_grad_norm(optimizer: torch.optim.Optimizer) -> float:
    """The per-tensor loop _grad_norm had before its CPU fast path (the reference the records were made with)."""
    grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
    norms = torch.stack([torch.linalg.vector_norm((g.coalesce().values() if g.is_sparse else g).float())
                         for g in grads])
    return float(torch.linalg.vector_norm(norms))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_grad_norm_same_bits_as_the_per_tensor_loop(dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(0)
    for trial in range(20):
        sizes = torch.randint(1, 200, (4,), generator=gen).tolist()
        params = [torch.nn.Parameter(torch.zeros(sizes[i], sizes[i + 1], dtype=dtype)) for i in range(3)]
        params.append(torch.nn.Parameter(torch.zeros(sizes[3], dtype=dtype)))
        for p in params:
            p.grad = (torch.randn(p.shape, generator=gen) * 10.0 ** (trial % 7 - 3)).to(dtype)
        opt = torch.optim.SGD([{"params": params[:2]}, {"params": params[2:]}], lr=0.1)
        assert float(trainer._grad_norm(opt)) == _old_grad_norm(opt)
