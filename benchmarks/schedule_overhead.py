"""Schedule overhead: ``scheduler.step()`` cost per optimizer step, lrkit's adapter vs torch's own schedulers.

Four param groups (SGD with momentum, one scalar parameter each, so the optimizer itself costs nothing here), N
steps per measurement, the median of ``--repeats`` interleaved repeats, one thread.

    python benchmarks/schedule_overhead.py            # prints a Markdown table
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch.optim import lr_scheduler as tls

from lrkit.schedules import from_spec

Make = Callable[[torch.optim.Optimizer, int], object]


def _optimizer() -> torch.optim.Optimizer:
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.1} for _ in range(4)]
    return torch.optim.SGD(groups, lr=0.1, momentum=0.9)


def us_per_step(make: Make, steps: int) -> float:
    """Microseconds per ``scheduler.step()`` over ``steps`` steps."""
    opt = _optimizer()
    sched = make(opt, steps)
    opt._opt_called = True  # type: ignore[attr-defined]  # silence torch's "step before optimizer.step" warning
    t0 = time.perf_counter()
    for _ in range(steps):
        sched.step()  # type: ignore[attr-defined]
    return (time.perf_counter() - t0) / steps * 1e6


CASES: list[tuple[str, Make | None, Make]] = [
    ("cosine", lambda o, n: tls.CosineAnnealingLR(o, T_max=n),
     lambda o, n: from_spec("cosine lrf=0", total_steps=n).to_torch(o)),
    ("onecycle", lambda o, n: tls.OneCycleLR(o, max_lr=0.1, total_steps=n + 1),
     lambda o, n: from_spec("onecycle max_lr=0.1", total_steps=n).to_torch(o)),
    ("Ultralytics cosine + warmup + bias + momentum", None,
     lambda o, n: from_spec("ultralytics lr0=0.1 cos_lr=true", epochs=100, steps_per_epoch=n // 100).to_torch(o)),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"scheduler.step() cost, 4 param groups, {args.steps} steps, median of {args.repeats} repeats, 1 thread\n")
    print("| schedule | torch µs/step | lrkit µs/step |\n|---|---|---|")
    for name, torch_make, lrkit_make in CASES:
        t_torch, t_lrkit = [], []
        for _ in range(args.repeats):
            if torch_make is not None:
                t_torch.append(us_per_step(torch_make, args.steps))
            t_lrkit.append(us_per_step(lrkit_make, args.steps))
        torch_cell = f"{statistics.median(t_torch):.1f}" if t_torch else "—"
        print(f"| {name} | {torch_cell} | {statistics.median(t_lrkit):.1f} |")


if __name__ == "__main__":
    main()
