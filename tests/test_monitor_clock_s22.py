"""The double-step warning names how many scheduler steps an optimizer step takes, also when that is not a whole
number of the moves it expects per optimizer step (accelerate's ``num_processes``): it said "called 1 times ... runs
1x too fast" for three moves where two were expected."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import lrkit
import lrkit.monitor.monitor as monitor_module


@pytest.mark.parametrize(("per", "calls", "said"), [(1, 2, "2"), (2, 3, "1.5"), (2, 6, "3")])
def test_double_step_warning_counts_fractional_moves(
    monkeypatch: pytest.MonkeyPatch, per: int, calls: int, said: str
) -> None:
    monkeypatch.setattr(monitor_module, "_clock_moves", lambda scheduler: per)
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0)
    mon = lrkit.Monitor(model, opt, sched, grad_every=1)
    x, y = torch.randn(8, 3), torch.randn(8, 1)
    with pytest.warns(UserWarning, match=rf"moved {calls} steps") as caught:
        for _ in range(3):
            loss = nn.functional.mse_loss(model(x), y)
            loss.backward()
            mon.after_backward(loss)
            opt.step()
            for _ in range(calls):
                sched.step()
            opt.zero_grad()
            mon.after_step()
    text = next(str(w.message) for w in caught if "moved" in str(w.message))
    assert f"is called {said} times per optimizer step" in text
    assert f"runs {said}x too fast" in text
