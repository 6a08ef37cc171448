"""Cost of recording a built schedule for ``lr0="auto"``'s trials (``ChooseLRCallback``, ``choose_trainer_lr`` with
your own scheduler): :func:`lrkit.integrations._common.record_schedule` steps the scheduler once per optimizer step
of the whole run, reading every group's LR, then puts it back. One-off, before the range test; this prints its
seconds per run length and scheduler, and the memory the record takes (8 bytes per step and param group).

Four param groups (SGD with momentum, one scalar parameter each), the median of ``--repeats`` repeats, one thread.

    python benchmarks/record_cost.py                  # prints a Markdown table
    python benchmarks/record_cost.py --steps 10000 100000 1000000
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch.optim import lr_scheduler as tls

from _suite import positive_int
from lrkit.integrations._common import record_schedule
from lrkit.schedules import from_spec

Make = Callable[[torch.optim.Optimizer, int], tls.LRScheduler]


def _optimizer() -> torch.optim.Optimizer:
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.1} for _ in range(4)]
    return torch.optim.SGD(groups, lr=0.1, momentum=0.9)


def _warmup_cosine(opt: torch.optim.Optimizer, n: int) -> tls.LRScheduler:
    warm = max(n // 20, 1)
    return tls.SequentialLR(opt, [tls.LinearLR(opt, start_factor=0.01, total_iters=warm),
                                  tls.CosineAnnealingLR(opt, T_max=n - warm)], milestones=[warm])


SCHEDULERS: dict[str, Make] = {
    "CosineAnnealingLR": lambda opt, n: tls.CosineAnnealingLR(opt, T_max=n),
    "OneCycleLR (momentum cycled)": lambda opt, n: tls.OneCycleLR(opt, max_lr=0.1, total_steps=n),
    "SequentialLR (warmup + cosine)": _warmup_cosine,
    "lrkit `cosine lrf=0.01 warmup_steps=5%`": lambda opt, n: from_spec(
        f"cosine lrf=0.01 warmup_steps={max(n // 20, 1)}", total_steps=n).to_torch(opt),
}


def seconds(make: Make, steps: int) -> float:
    opt = _optimizer()
    sched = make(opt, steps)
    start = time.perf_counter()
    lrs, _ = record_schedule(opt, [sched], steps, lambda t: sched.step())
    elapsed = time.perf_counter() - start
    assert lrs.shape == (steps, 4)
    return elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=positive_int, nargs="+", default=[10_000, 100_000],
                        help="run lengths to record (default 10000 100000)")
    parser.add_argument("--repeats", type=positive_int, default=3, help="repeats per cell; the median (default 3)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 4 param groups, median of {args.repeats}\n")
    print("| scheduler | " + " | ".join(f"{n:,} steps" for n in args.steps) + " |")
    print("|---|" + "---|" * len(args.steps))
    for name, make in SCHEDULERS.items():
        cells = []
        for n in args.steps:
            t = statistics.median(seconds(make, n) for _ in range(args.repeats))
            cells.append(f"{t:.2f} s ({t / n * 1e6:.1f} µs/step)")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"\nRecord memory: 8 bytes x steps x groups ({max(args.steps) * 4 * 8 / 2**20:.1f} MiB for "
          f"{max(args.steps):,} steps x 4 groups), plus the same again for a cycled momentum.")


if __name__ == "__main__":
    main()
