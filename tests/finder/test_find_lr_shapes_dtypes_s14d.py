"""Task s14d: find_lr (and lr0="auto" through it) on shapes and dtypes its first step must refuse clearly.

A user ``loss_fn`` that only *broadcasts* outputs ``(N, 1)`` against targets ``(N,)`` into ``(N, N)`` (torch only
warns), a model of one floating dtype fed inputs of another (torch's bare "mat1 and mat2 must have the same dtype"),
and targets of another floating dtype than the model's output (HuberLoss's backward: "Found dtype Float but expected
Double"): each is a ValueError naming both shapes or dtypes and the fix, chained from torch's error, with the model
and the optimizer restored bit for bit. Other errors pass through unchanged, and AMP's mixed dtypes are not refused.
"""

from __future__ import annotations

import math
import re
import warnings
from typing import Any

import pytest
import torch
from torch import nn

import lrkit
from _helpers import assert_same, finder_state
from lrkit.finder import range_test
from lrkit.train.auto import choose_lr0

W = torch.tensor([1.0, -2.0, 0.5, 3.0])


def _batches(*, x_dtype: torch.dtype = torch.float32, y_dtype: torch.dtype = torch.float32, column: bool = True,
             n: int = 64, size: int = 16) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    y = x @ W
    y = y[:, None] if column else y
    return [(x[i:i + size].to(x_dtype), y[i:i + size].to(y_dtype)) for i in range(0, n, size)]


def _model(dtype: torch.dtype = torch.float32, *, bn: bool = True) -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Linear(4, 8), nn.BatchNorm1d(8)] if bn else [nn.Linear(4, 8)]
    return nn.Sequential(*layers, nn.ReLU(), nn.Linear(8, 1)).to(dtype)


def _trained_optimizer(model: nn.Module, data: list[Any], loss_fn: Any = None) -> torch.optim.Optimizer:
    """Adam with two steps taken on well-formed batches: it holds state (exp_avg, step) that must survive."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    dtype = next(model.parameters()).dtype
    for x, y in data[:2]:
        opt.zero_grad()
        out = model(x.to(dtype))
        (loss_fn or nn.functional.mse_loss)(out, y.to(dtype).view_as(out)).backward()
        opt.step()
    return opt


def _raises_restored(model: nn.Module, opt: torch.optim.Optimizer, call: Any, match: str) -> pytest.ExceptionInfo:
    before = finder_state(model, opt)
    with pytest.raises(ValueError, match=match) as err:
        call()
    assert_same(finder_state(model, opt), before)
    return err


# --- A: a loss_fn that only broadcasts -----------------------------------------------------------------------------

LOSSES = [nn.MSELoss(), nn.functional.mse_loss, nn.L1Loss(), nn.HuberLoss()]
LOSS_IDS = ["MSELoss", "mse_loss", "L1Loss", "HuberLoss"]


@pytest.mark.parametrize("loss_fn", LOSSES, ids=LOSS_IDS)
def test_find_lr_refuses_a_loss_that_only_broadcasts_and_restores(loss_fn: Any) -> None:
    # Linear(4, 1) outputs (16, 1), the targets are (16,): torch's loss compares every output with every target,
    # (16, 16), and only warns — the whole curve and the suggestion were of that loss
    model = _model()
    opt = _trained_optimizer(model, _batches())
    data = _batches(column=False)
    err = _raises_restored(
        model, opt, lambda: lrkit.find_lr(model, opt, data, loss_fn=loss_fn, num_steps=20),
        r"\(16, 1\).*\(16,\).*broadcast.*\(16, 16\)")
    assert "view_as" in str(err.value)  # the fix
    # the same loss on targets of the output's shape runs
    assert math.isfinite(lrkit.find_lr(model, opt, _batches(), loss_fn=loss_fn, num_steps=20).suggestion)


def test_find_lr_refuses_a_broadcast_in_step_fn() -> None:
    model = _model()
    opt = _trained_optimizer(model, _batches())

    def step_fn(m: nn.Module, batch: Any) -> torch.Tensor:
        x, y = batch
        return nn.functional.mse_loss(m(x), y)

    err = _raises_restored(model, opt, lambda: lrkit.find_lr(model, opt, _batches(column=False), step_fn=step_fn,
                                                             num_steps=20),
                           r"step_fn.*\(16, 1\).*\(16,\).*broadcast.*\(16, 16\)")
    assert "view_as" in str(err.value)


def test_a_broadcast_that_keeps_the_outputs_shape_runs_and_other_warnings_still_reach_the_user() -> None:
    # a (1, K) target row against (N, K) outputs may be meant: torch's warning only, as lrkit.train does
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(16, 4, generator=g), torch.randn(16, 3, generator=g)) for _ in range(4)]
    with pytest.warns(UserWarning, match="different to the input size"):
        r = lrkit.find_lr(model, opt, data, loss_fn=lambda out, y: nn.functional.mse_loss(out, y[:1]), num_steps=20)
    assert len(r.lrs) > 0


def test_the_first_step_checks_run_once_not_on_every_step(monkeypatch: pytest.MonkeyPatch) -> None:
    # find_lr's per-step cost must match a bare loop's: the warnings are recorded on the first step only
    calls = []
    real = range_test.first_batch_loss

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(range_test, "first_batch_loss", counting)
    model = _model()
    r = lrkit.find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), _batches(), loss_fn=nn.MSELoss(),
                      num_steps=20, accumulation_steps=2)
    assert len(r.lrs) > 2 and len(calls) == 2  # the first step's two micro-batches, then none


def _choose(model: nn.Module, opt: torch.optim.Optimizer, data: list[Any], **kw: Any) -> Any:
    return choose_lr0(model, opt, data, None, total_steps=200,
                      make_scheduler=lambda o, n: torch.optim.lr_scheduler.LambdaLR(o, lambda s: 1.0),
                      log=lambda line: None, **kw)


def test_choose_lr0_gets_the_broadcast_error_and_restores() -> None:
    model = _model()
    opt = _trained_optimizer(model, _batches())
    _raises_restored(model, opt, lambda: _choose(model, opt, _batches(column=False), loss_fn=nn.MSELoss()),
                     r"\(16, 1\).*\(16,\).*broadcast.*\(16, 16\)")


# --- B: inputs of another floating dtype than the model ------------------------------------------------------------

@pytest.mark.parametrize(("model_dtype", "data_dtype"),
                         [(torch.float64, torch.float32), (torch.float32, torch.float64)])
def test_inputs_of_another_dtype_than_the_model_are_a_clear_error(model_dtype: torch.dtype,
                                                                  data_dtype: torch.dtype) -> None:
    # model.double() with float32 batches (or numpy's float64 data with a float32 model): torch's bare "mat1 and
    # mat2 must have the same dtype" from model(x), outside any lrkit message
    model = _model(model_dtype)
    opt = _trained_optimizer(model, _batches())
    data = _batches(x_dtype=data_dtype, y_dtype=model_dtype)
    m, d = str(model_dtype)[6:], str(data_dtype)[6:]
    err = _raises_restored(model, opt, lambda: lrkit.find_lr(model, opt, data, num_steps=20),
                           rf"(?s)parameters are {m}.*input.*{d}")
    text = str(err.value)
    assert f"model.to(torch.{d})" in text and f"x.to(torch.{m})" in text and "lrkit.train" in text
    assert isinstance(err.value.__cause__, RuntimeError) and "dtype" in str(err.value.__cause__)


def test_choose_lr0_gets_the_dtype_error_and_restores() -> None:
    model = _model(torch.float64)
    opt = _trained_optimizer(model, _batches())
    _raises_restored(model, opt, lambda: _choose(model, opt, _batches(), loss_fn=nn.MSELoss()),
                     r"parameters are float64.*float32")


def test_a_dict_of_inputs_of_another_dtype_is_named_too() -> None:
    class DictIn(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(4, 1)

        def forward(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
            return self.lin(x["features"])

    torch.manual_seed(0)
    model = DictIn().double()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    data = [({"features": x}, y.double()) for x, y in _batches()]
    nn.functional.mse_loss(model({"features": data[0][0]["features"].double()}), data[0][1]).backward()
    opt.step()  # a momentum buffer to restore
    _raises_restored(model, opt, lambda: lrkit.find_lr(model, opt, data, num_steps=20),
                     r"parameters are float64.*float32")


def test_other_forward_errors_pass_through_unchanged() -> None:
    # a shape error, also when the dtypes differ too (a model that casts its input itself), and a model's own error
    torch.manual_seed(0)
    wrong_width = nn.Linear(5, 1)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied") as err:
        lrkit.find_lr(wrong_width, torch.optim.SGD(wrong_width.parameters(), lr=0.1), _batches(), num_steps=20)
    assert err.type is RuntimeError

    class Casting(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(5, 1).double()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(x.double())

    model = Casting()
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied") as err:
        lrkit.find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), _batches(), num_steps=20)
    assert err.type is RuntimeError

    class Own(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(4, 1).double()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise ValueError("my model's own complaint")

    model = Own()
    with pytest.raises(ValueError, match="^my model's own complaint$"):
        lrkit.find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), _batches(), num_steps=20)


def test_under_autocast_a_dtype_error_is_not_blamed_on_the_inputs() -> None:
    # with amp the model's parameters and its activations differ in dtype by design: an error there is torch's own
    class Strict(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(4, 1).to(torch.bfloat16)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("expected scalar type BFloat16 but found Float (a kernel autocast does not cover)")

    model = Strict()
    with pytest.raises(RuntimeError, match="kernel autocast does not cover") as err:
        lrkit.find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), _batches(), amp="bf16", num_steps=20)
    assert err.type is RuntimeError
    # and amp's bf16 outputs against float32 targets train as they are
    model = _model()
    r = lrkit.find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), _batches(), loss_fn=nn.HuberLoss(),
                      amp="bf16", num_steps=20)
    assert len(r.lrs) > 0


# --- C: targets of another floating dtype than the model's output --------------------------------------------------

def test_targets_of_another_dtype_than_the_output_are_a_clear_error() -> None:
    # a float64 model on float64 inputs, float32 targets: HuberLoss's backward says "Found dtype Float but expected
    # Double" from deep inside autograd
    model = _model(torch.float64)
    opt = _trained_optimizer(model, _batches(), nn.functional.huber_loss)
    data = _batches(x_dtype=torch.float64, y_dtype=torch.float32)
    err = _raises_restored(model, opt, lambda: lrkit.find_lr(model, opt, data, loss_fn=nn.HuberLoss(), num_steps=20),
                           r"(?s)output is float64.*target.*float32")
    text = str(err.value)
    assert "y.to(torch.float64)" in text and "lrkit.train" in text
    assert isinstance(err.value.__cause__, RuntimeError) and "Found dtype Float" in str(err.value.__cause__)
    # choose_lr0 too
    _raises_restored(model, opt, lambda: _choose(model, opt, data, loss_fn=nn.HuberLoss()),
                     r"output is float64.*float32")
    # MSE promotes the two dtypes (torch >= 2.5; 2.4's backward refuses them): find_lr does what the user's own loop
    # does — it runs where one step runs, and names the cast where that step fails
    x, y = data[0]
    try:
        nn.MSELoss()(model(x), y).backward()
        own_loop_runs = True
    except RuntimeError:
        own_loop_runs = False
    model.zero_grad()
    if own_loop_runs:
        assert len(lrkit.find_lr(model, opt, data, loss_fn=nn.MSELoss(), num_steps=20).lrs) > 0
    else:
        _raises_restored(model, opt, lambda: lrkit.find_lr(model, opt, data, loss_fn=nn.MSELoss(), num_steps=20),
                         r"output is float64.*float32")


def test_a_loss_that_refuses_the_targets_dtype_says_how_to_cast() -> None:
    # BCELoss fails in its forward ("Found dtype Float but expected Double"): the loss error names both dtypes and
    # the cast, not only "pass a loss_fn that fits them"
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 1), nn.Sigmoid()).double()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    data = [(x.double(), (y > 0).float()) for x, y in _batches()]
    nn.functional.binary_cross_entropy(model(data[0][0]), data[0][1].double()).backward()
    opt.step()  # a momentum buffer to restore
    err = _raises_restored(model, opt, lambda: lrkit.find_lr(model, opt, data, loss_fn=nn.BCELoss(), num_steps=20),
                           r"dtype float64.*dtype float32")
    assert "y.to(torch.float64)" in str(err.value)


def test_the_messages_name_no_dtype_when_they_agree() -> None:
    # a loss error on matching dtypes keeps the plain loss message (no cast suggested): nll_loss wants class indices
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    # (torch 2.4 says "expected scalar type Long but found Float")
    with pytest.raises(ValueError, match="expected target dtype to be Long|expected scalar type Long") as err:
        lrkit.find_lr(model, opt, _batches(column=False), loss_fn=nn.functional.nll_loss, num_steps=20)
    assert not re.search(r"\.to\(torch\.", str(err.value))


def test_no_warning_is_lost_from_the_first_step() -> None:
    class Chatty(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(4, 1)
            self.calls = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            if self.calls == 1:
                warnings.warn("only on the first forward", RuntimeWarning, stacklevel=2)
            return self.lin(x)

    model = Chatty()
    with pytest.warns(RuntimeWarning, match="only on the first forward"):
        lrkit.find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), _batches(), loss_fn=nn.MSELoss(),
                      num_steps=20)
