"""Session 18: an optimizer.step() that raised (its post-hook never ran) does not stop the scheduler's count of
optimizer steps: the per-epoch stepping warning still fires afterwards."""
from __future__ import annotations

import pytest
import torch

from lrkit.schedules import from_spec


class _FailsOnce(torch.optim.SGD):
    failed = False

    def step(self, closure=None):  # type: ignore[no-untyped-def, override]
        if not self.failed:
            self.failed = True
            raise RuntimeError("out of memory (simulated)")
        return super().step(closure)


def test_a_step_that_raised_does_not_stop_the_count() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = _FailsOnce(model.parameters(), lr=0.1)
    sched = from_spec("step lr0=0.1 step_size=2 gamma=0.1", epochs=6, steps_per_epoch=10).to_torch(opt)
    opt.zero_grad()
    model(torch.ones(2, 3)).sum().backward()
    with pytest.raises(RuntimeError, match="simulated"):
        opt.step()
    sched.step()  # the loop recovers and steps its scheduler (one optimizer step: nothing to warn)
    with pytest.warns(UserWarning, match=r"once per 10 optimizer steps"):
        for _ in range(10):
            opt.zero_grad()
            model(torch.ones(2, 3)).sum().backward()
            opt.step()
        sched.step()
