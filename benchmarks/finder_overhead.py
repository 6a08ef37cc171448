"""Finder overhead: lrkit.find_lr's wall time per step against a bare training loop on the same model and data.

The bare loop does what any scheduled, logged training loop does — fetch a batch from the same DataLoader, set the
LR (the finder's own log-spaced sequence, so both do the same arithmetic), forward, loss, backward, optimizer step,
read the loss — and nothing else. ``find_lr`` adds: snapshot and exact restore of model/optimizer/RNG state, the
divergence check, the record and its quality checks. The ratio is

    ratio = median over repeats of (find_lr wall seconds / steps run) / median of (bare loop seconds / steps)

and the interquartile range of the per-repeat ratios (each finder run over the bare run of the same repeat), to show
how far one measurement moves on a shared machine.

Repeats alternate bare/finder so a busy machine slows both alike. Target: ratio <= 1.05.

On a GPU (``--device cuda`` or ``cuda:N``) the model lives on the device and the batches still come from the same CPU
DataLoader: the bare loop moves each batch to the device (``non_blocking`` as ``find_lr``'s ``move_to`` does), and
``find_lr`` moves them itself, so both do the same copies. ``torch.cuda.synchronize()`` runs before every timer read
(queued kernels are counted), and the discarded first repeat warms up both sides alike (CUDA context, cuBLAS/cuDNN).
The bare loop still reads the loss every step (``loss.item()``: one host-device sync per step, as any loop that logs
its loss does), and so does the finder (its divergence check needs the loss): the ratio compares two loops with one
sync per step each. These tasks are small: on a GPU each step is bound by kernel launches, not arithmetic, so the ratio
is the finder's Python per step against the launch cost of a small model's step — the worst case for a fixed per-step
cost; ``--batch`` gives each step more arithmetic (the same task and model, a larger batch).

Usage::

    python benchmarks/finder_overhead.py                   # digits MLP and BatchNorm CNN, 200 steps, 7 repeats
    python benchmarks/finder_overhead.py --steps 100 --repeats 3
    python benchmarks/finder_overhead.py --device cuda --batch 512    # on a GPU
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import statistics
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from _suite import TASKS, Task, device_arg, device_label, make_loaders, synchronize, task_names

_CPU = torch.device("cpu")
#: ``lrkit.find_lr``'s default ``start_lr``, where both loops start their sweep.
START_LR = 1e-7


def _batches(loader: Any) -> Iterator[Any]:
    while True:
        yield from loader


def bare_loop(task: Task, model: torch.nn.Module, loader: Any, steps: int, end_lr: float,
              device: torch.device = _CPU) -> float:
    """Seconds for ``steps`` plain training steps: batch fetch (and, off the CPU, its copy to ``device``), set the LR
    (as any scheduler does), forward, loss, backward, step, and read the loss (as any loop that logs it does: on a
    GPU one sync per step).

    The LR follows the finder's own sequence (1e-7 → ``end_lr``, log-spaced), so both loops do the same arithmetic
    and the ratio isolates the finder's machinery.
    """
    optimizer = task.build_optimizer(model.parameters(), task.default_lr)
    lrs = np.geomspace(START_LR, end_lr, steps).tolist()
    move = device.type != "cpu"
    model.train()
    synchronize(device)
    t0 = time.perf_counter()
    batches = _batches(loader)
    for lr in lrs:
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = next(batches)
        if move:  # as find_lr's move_to: non-blocking towards an accelerator
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        loss = task.loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        loss.item()
    synchronize(device)
    return time.perf_counter() - t0


def finder_run(task: Task, model: torch.nn.Module, loader: Any, steps: int, end_lr: float,
               device: torch.device = _CPU) -> tuple[float, int]:
    """Wall seconds of one ``lrkit.find_lr`` call (snapshot and restore included; it moves each batch to the model's
    device itself) and the steps it ran."""
    import lrkit

    optimizer = task.build_optimizer(model.parameters(), task.default_lr)
    synchronize(device)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = lrkit.find_lr(model, optimizer, loader, loss_fn=task.loss_fn, num_steps=steps, end_lr=end_lr)
    synchronize(device)
    return time.perf_counter() - t0, res.num_steps_run


def measure(task: Task, steps: int, repeats: int, end_lr: float,
            device: torch.device = _CPU) -> dict[str, float]:
    """Median per-step seconds of the bare loop and of the finder, interleaved over ``repeats`` (model on
    ``device``)."""
    torch.manual_seed(0)
    model = task.build_model(0).to(device)
    initial = copy.deepcopy(model.state_dict())
    loader = make_loaders(task, 0)[0]
    bare, finder = [], []
    for r in range(repeats + 1):  # repeat 0 warms up both and is discarded
        order = ("bare", "finder") if r % 2 == 0 else ("finder", "bare")
        for which in order:
            model.load_state_dict(initial)
            if which == "bare":
                seconds = bare_loop(task, model, loader, steps, end_lr, device)
                per_step = seconds / steps
                if r:
                    bare.append(per_step)
            else:
                seconds, ran = finder_run(task, model, loader, steps, end_lr, device)
                if ran < steps:
                    raise RuntimeError(f"{task.name}: the range test stopped at {ran}/{steps} steps; lower --end-lr")
                if r:
                    finder.append(seconds / ran)
    b, f = statistics.median(bare), statistics.median(finder)
    # the spread of the per-repeat ratios (each repeat's finder run over its own bare run): how far one number moves
    paired = sorted(fi / bi for fi, bi in zip(finder, bare))
    q = statistics.quantiles(paired, n=4) if len(paired) >= 2 else [paired[0], paired[0], paired[0]]
    return {"bare_ms": 1e3 * b, "finder_ms": 1e3 * f, "ratio": f / b, "q1": q[0], "q3": q[2]}


def main(argv: Sequence[str] | None = None) -> int:
    """Print the overhead table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="digits_mlp,digits_cnn", help="comma-separated suite task names")
    parser.add_argument("--steps", type=int, default=200, help="steps per measurement (default 200)")
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats after one warm-up (default 7)")
    parser.add_argument("--end-lr", type=float, default=1e-2, help="finder's end_lr, low enough not to diverge")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N: where the model runs")
    parser.add_argument("--batch", type=int, default=None,
                        help="batch size for every task (default: each task's own); more arithmetic per step on a GPU")
    args = parser.parse_args(argv)
    names = task_names(parser, args.tasks)
    if args.steps < 10 or args.repeats < 1:
        parser.error(f"--steps={args.steps} must be >= 10 and --repeats={args.repeats} >= 1")
    if args.batch is not None and args.batch < 1:
        parser.error(f"--batch={args.batch} must be >= 1")
    if not (math.isfinite(args.end_lr) and args.end_lr > START_LR):
        parser.error(f"--end-lr {args.end_lr:g} must be a finite number above the finder's start_lr {START_LR:g} "
                     f"(default 1e-2)")
    device = device_arg(parser, args.device)
    torch.set_num_threads(1)
    print(f"find_lr vs bare loop, {args.steps} steps, median of {args.repeats} interleaved repeats, 1 thread, "
          f"device {device_label(device)} (torch {torch.__version__})\n")
    print("| task | model | batch | bare loop ms/step | find_lr ms/step | ratio | per-repeat ratios, IQR |")
    print("|---|---|---|---|---|---|---|")
    for n in names:
        task = TASKS[n]
        if args.batch is not None:
            task = dataclasses.replace(task, batch_size=args.batch)
            if task.steps_per_epoch() < 1:
                parser.error(f"--batch={args.batch} is larger than {n}'s {len(task.data().x_train)} training samples")
        m = measure(task, args.steps, args.repeats, args.end_lr, device)
        print(f"| {n} | {task.description.split(', ')[-1]} | {task.batch_size} | {m['bare_ms']:.3f} "
              f"| {m['finder_ms']:.3f} | {m['ratio']:.3f} | {m['q1']:.3f}–{m['q3']:.3f} |", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
