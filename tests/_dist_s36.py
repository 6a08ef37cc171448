"""Worker functions for tests/test_small_fixes_s36.py's torch.distributed tests (spawned, so importable)."""

from __future__ import annotations

import torch

from _helpers import init_gloo, leave_rank


def bad_loss_worker(rank: int, world: int, port: int, out: str, call: str) -> None:
    """A DDP loop whose monitor has ``sync_loss=True``; at the third step rank 1 passes a loss that is not a number
    (to ``after_backward`` or to ``after_validation``, per ``call``). Leaves the error each rank raised."""
    import lrkit

    init_gloo(rank, world, port, seconds=30)
    torch.manual_seed(0)
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(4, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    monitor = lrkit.Monitor(model, opt, sync_loss=True)
    error: list[str] = []
    try:
        for step in range(5):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(torch.randn(8, 4)), torch.randn(8, 1))
            loss.backward()
            bad = step == 2 and rank == 1
            monitor.after_backward("nan?" if bad and call == "after_backward" else loss)
            opt.step()
            monitor.after_step()
            monitor.after_validation(torch.ones(3) if bad and call == "after_validation" else 1.0 - step / 10)
    except Exception as e:  # the test reads what each rank raised
        error = [type(e).__name__, str(e)]
    leave_rank(out, rank, {"error": error, "step": monitor.step})
