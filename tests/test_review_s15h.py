"""Review s15h of the session's diff (684d61a..af669dd): the bugs it found, each with the test that failed before
its fix."""

from __future__ import annotations

import sys
import uuid
import warnings
from pathlib import Path

import pytest
import torch

import lrkit
from lrkit.finder.demo import load_task_file
from lrkit.monitor.monitor import _moved

_TASK = """
import torch
{imports}
def model():
{model_body}
def optimizer(params):
    return torch.optim.SGD(params, lr=1e-3)
def train_loader():
    x = torch.ones(8, 3)
    return [(x, x.sum(1, keepdim=True))]
def loss_fn():
    return torch.nn.functional.mse_loss
"""


def test_a_neighbour_of_the_task_file_does_not_shadow_a_module_lrkit_imports_later(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `lrkit find my_task.py` with a profile.py (a profiling script) beside the task file ran that script when torch
    # lazily imported the stdlib's `profile` (building the optimizer): the task's folder stayed first on sys.path
    # for the whole process, ahead of the stdlib and site-packages. Here an "installed" module stands for it.
    monkeypatch.setattr(sys, "path", list(sys.path))
    name = f"s15h_lib_{uuid.uuid4().hex[:8]}"
    site = tmp_path / "site"
    site.mkdir()
    (site / f"{name}.py").write_text("WHO = 'installed'\n")
    sys.path.append(str(site))
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / f"{name}.py").write_text("raise SystemExit('the user script beside the task file ran')\n")
    lazy = f"s15h_net_{uuid.uuid4().hex[:8]}"  # imported inside model(): still found beside the task file
    (folder / f"{lazy}.py").write_text("import torch\ndef build():\n    return torch.nn.Linear(3, 1)\n")
    early = f"s15h_early_{uuid.uuid4().hex[:8]}"  # imported by the module body: found as `python my_task.py` finds it
    (folder / f"{early}.py").write_text("VALUE = 3\n")
    task = folder / "my_task.py"
    task.write_text(_TASK.format(imports=f"from {early} import VALUE",
                                 model_body=f"    from {lazy} import build\n    return build()"))
    monkeypatch.delitem(sys.modules, name, raising=False)
    t = load_task_file(task)
    assert isinstance(t.model, torch.nn.Linear)
    mod = __import__(name)  # as torch imports `profile` after the task is loaded
    assert mod.WHO == "installed"
    for m in (name, lazy, early):
        sys.modules.pop(m, None)


# ---------------------------------------------------------------------------------------------------------------
# the rebuilt-optimizer warning (s15e's rounding tolerance): judged per element, not on the whole tensor's norm


def _rebuilt_optimizer_warnings(dtype: torch.dtype, lr: float) -> list[str]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).to(dtype)
    x = torch.randn(64, 8, dtype=dtype)
    y = x.sum(1, keepdim=True).float()
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    monitor = lrkit.Monitor(model, opt, grad_every=1, sample_every=5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(30):
            if i == 12:
                opt = torch.optim.AdamW(model.parameters(), lr=lr)  # rebuilt: the monitor still holds the first one
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x).float(), y)
            loss.backward()
            monitor.after_backward(loss)
            opt.step()
            monitor.after_step()
    return [str(w.message) for w in caught if "optimizer.step()" in str(w.message)]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_an_optimizer_rebuilt_mid_run_is_named_as_such_for_a_bfloat16_model(dtype: torch.dtype) -> None:
    # Bug: s15e's tolerance (16 units of the dtype's eps, on the whole tensor's relative L2 change) is 12.5% for
    # bfloat16: an AdamW step at lr=1e-3 moves a bf16 weight matrix by well under that, so a bf16 model's rebuilt
    # optimizer (the case the warning is for) got the gradient-accumulation warning ("Call after_backward() and
    # after_step() once per optimizer step ... micro-batch") instead. Judged per element, Adam's step moves the
    # small weights by many units in their last place, a projection's rounding moves none by more than a few.
    found = _rebuilt_optimizer_warnings(dtype, 1e-3)
    assert len(found) == 1 and "another optimizer" in found[0] and "micro-batch" not in found[0], found


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_a_skipped_step_with_a_projection_is_still_not_another_optimizer_in_half_precision(
        dtype: torch.dtype) -> None:
    # s15e's case, in every floating dtype: rows projected onto the unit sphere after each step, a sampled step
    # skipped by the loop; the projection's rounding is no optimizer's step
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).to(dtype)
    x = torch.randn(64, 8, dtype=dtype)
    y = x.sum(1, keepdim=True).float()
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    monitor = lrkit.Monitor(model, opt, grad_every=1, sample_every=5)
    weight = model[0].weight
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for i in range(12):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x).float(), y)
            loss.backward()
            monitor.after_backward(loss)
            if i != 5:
                opt.step()
            with torch.no_grad():
                weight.div_(weight.norm(dim=1, keepdim=True))
            monitor.after_step()
    assert monitor.events == []


def test_a_parameter_another_optimizer_made_non_finite_has_moved() -> None:
    # a finite weight that became NaN moved (the NaN difference compared as "not moved"); a copy that was already
    # non-finite tells nothing
    before = torch.tensor([1.0, 2.0, 3.0])
    assert _moved(torch.tensor([1.0, float("nan"), 3.0]), before)
    assert _moved(torch.tensor([1.0, float("inf"), 3.0]), before)
    assert not _moved(torch.tensor([1.0, float("nan"), 3.0]), torch.tensor([1.0, float("nan"), 3.0]))
    assert not _moved(before.clone(), before)
    assert _moved(torch.tensor([1.0, 2.0, 3.5]), before)
