"""What :class:`lrkit.Monitor` costs per optimizer step, in microseconds, on models small enough for it to matter.

``benchmarks/monitor_recovery.py`` reports the overhead as a fraction of whole training steps, which on
sub-millisecond CPU steps is within a couple of points of run-to-run noise. This script isolates the monitor's own
calls: a healthy loop (fixed batch, constant LR, torch ``LambdaLR``) runs ``--steps`` optimizer steps, and only the
time spent inside ``after_backward`` and ``after_step`` is counted (``time.perf_counter_ns`` around each call, the first
``--warmup`` steps excluded). Fast-path calls and full steps (gradient norms + checks, snapshot, update-ratio
sample) are told apart by whether the call recorded a gradient norm (``monitor.record.seen["grad_norm"]``). Every 100
steps a falling validation loss goes to ``after_validation`` (a new best each time, so the best-validation snapshot
is refreshed: its worst case); those calls are timed on their own, per call.

On a GPU (``--device cuda`` or ``cuda:N``) the model and its fixed batch live on the device, and
``torch.cuda.synchronize()`` runs before every clock read, so each call's time includes the kernels it launched (the
gradient norms, the snapshot copies) and not the backward pass still queued before it; the ``--warmup`` steps (CUDA
context, cuBLAS init, the monitor's first snapshot) are left out as on the CPU. Those syncs (four per step, five on a
validation step) are the same with or without the monitor and make the loop synchronous, so "step µs" is a
synchronous step's time: the monitor's share is of a step that waits for the device, as a loop that reads its loss
every step (the monitor itself reads the loss in ``after_backward``) nearly does. The default models are tiny: on a
GPU their steps are bound by kernel launches; ``--width`` (the hidden width of the MLP and of the deep stack) and
``--batch`` give each step more arithmetic.

Run (one thread; prints a Markdown table):

    python benchmarks/monitor_cost.py                     # 3 models, 20 000 steps, 5 repeats (median)
    python benchmarks/monitor_cost.py --steps 5000 --repeats 1
    python benchmarks/monitor_cost.py --device cuda --steps 5000 --repeats 3 --width 1024 --batch 512   # on a GPU
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable

import torch

from _suite import device_arg, device_label, synchronize
from lrkit import Monitor

_CPU = torch.device("cpu")
#: builds a model and its fixed batch (x, y)
_Build = Callable[[], tuple[torch.nn.Module, torch.Tensor, torch.Tensor]]


def _models(width: int | None = None, batch: int = 64) -> dict[str, _Build]:
    """The three models and their fixed batches; ``width`` (default: 128 for the MLP, 64 for the deep stack) sets
    the hidden width of the MLP and of the deep stack, ``batch`` the batch size (default 64)."""
    mlp_w, deep_w = (128, 64) if width is None else (width, width)

    def logreg() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
        return torch.nn.Linear(30, 1), torch.randn(batch, 30), torch.randn(batch, 1)

    def mlp() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
        net = torch.nn.Sequential(torch.nn.Linear(64, mlp_w), torch.nn.ReLU(), torch.nn.Linear(mlp_w, 10))
        return net, torch.randn(batch, 64), torch.randn(batch, 10)

    def deep() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
        layers: list[torch.nn.Module] = []
        for i in range(8):
            layers += [torch.nn.Linear(64 if i == 0 else deep_w, deep_w), torch.nn.LayerNorm(deep_w), torch.nn.GELU()]
        return torch.nn.Sequential(*layers, torch.nn.Linear(deep_w, 1)), torch.randn(batch, 64), torch.randn(batch, 1)

    return {"Linear(30,1)": logreg, f"MLP 64-{mlp_w}-10": mlp, f"8x(Linear+LayerNorm) {deep_w}": deep}


def measure(build: _Build, steps: int, warmup: int, epoch: int = 100, device: torch.device = _CPU) -> dict[str, float]:
    """One run: time inside the monitor's calls, split into fast-path calls and full steps; every ``epoch`` steps a
    falling validation loss goes to ``after_validation`` (a new best each time: the snapshot is refreshed), timed on
    its own and not counted in the per-step figures. Model and batch on ``device``; on CUDA every clock read waits
    for the device first."""
    torch.manual_seed(0)
    model, x, y = build()
    model, x, y = model.to(device), x.to(device), y.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    mon = Monitor(model, opt, sched)
    clock = time.perf_counter_ns
    if device.type == "cuda":

        def clock() -> int:
            synchronize(device)
            return time.perf_counter_ns()
    loop_ns = monitor_ns = 0
    fast: list[int] = []
    full: list[int] = []
    val: list[int] = []
    seen = mon.record.seen
    start = 0
    for i in range(steps + warmup):
        if i == warmup:
            start = clock()
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        norms = seen["grad_norm"]
        t0 = clock()
        mon.after_backward(loss)
        t1 = clock()
        opt.step()
        t2 = clock()
        mon.after_step()
        t3 = clock()
        sched.step()
        if i >= warmup:
            monitor_ns += (t1 - t0) + (t3 - t2)
            (full if seen["grad_norm"] > norms else fast).append(t1 - t0)
        if (i + 1) % epoch == 0:
            t4 = clock()
            mon.after_validation(1.0 / (i + 1))
            t5 = clock()
            start += t5 - t4  # left out of the loop's time
            if i >= warmup:
                val.append(t5 - t4)
    loop_ns = clock() - start
    if mon.events:
        raise RuntimeError(f"the timing run raised monitor events: {mon.events[:3]}")
    return {
        "step_us": loop_ns / steps / 1e3,
        "monitor_us": monitor_ns / steps / 1e3,
        "fast_us": statistics.median(fast) / 1e3 if fast else float("nan"),
        "full_us": statistics.median(full) / 1e3 if full else float("nan"),
        "full_every": steps / len(full) if full else float("nan"),  # none seen: no interval to report
        "val_us": statistics.median(val) / 1e3 if val else float("nan"),
    }


def _cell(value: float, spec: str) -> str:
    """A table cell: the number, or "—" when the run saw none (a run shorter than the interval it measures)."""
    return format(value, spec) if math.isfinite(value) else "—"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20_000, help="timed optimizer steps per run")
    parser.add_argument("--warmup", type=int, default=500, help="untimed steps first")
    parser.add_argument("--repeats", type=int, default=5, help="runs per model; the table shows medians")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N: where model and batch live")
    parser.add_argument("--width", type=int, default=None,
                        help="hidden width of the MLP and the deep stack (default 128 and 64)")
    parser.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.repeats < 1 or args.warmup < 0:
        parser.error(f"need --steps >= 1, --repeats >= 1, --warmup >= 0 (got {args.steps}, {args.repeats}, "
                     f"{args.warmup})")
    if (args.width is not None and args.width < 1) or args.batch < 1:
        parser.error(f"need --width >= 1 and --batch >= 1 (got {args.width}, {args.batch})")
    device = device_arg(parser, args.device)
    torch.set_num_threads(1)
    extra = "".join(f" {flag} {value}" for flag, value, default in (
        ("--warmup", args.warmup, 500), ("--device", args.device, "cpu"), ("--width", args.width, None),
        ("--batch", args.batch, 64))
        if value != default)
    print(f"Command: `python benchmarks/monitor_cost.py --steps {args.steps} --repeats {args.repeats}{extra}` "
          f"(torch {torch.__version__}, device {device_label(device)}, 1 thread, median of repeats)\n")
    print("| model | step µs (with monitor) | monitor µs/step | share of step | fast path µs (median) "
          "| full step µs (median, after_backward) | one full step every | after_validation µs (median, new best) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, build in _models(args.width, args.batch).items():
        runs = [measure(build, args.steps, args.warmup, device=device) for _ in range(args.repeats)]
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        every = f"{med['full_every']:.0f} steps" if math.isfinite(med["full_every"]) else f"none in {args.steps} steps"
        print(f"| {name} | {med['step_us']:.1f} | {med['monitor_us']:.2f} | {med['monitor_us'] / med['step_us']:.1%} "
              f"| {_cell(med['fast_us'], '.2f')} | {_cell(med['full_us'], '.1f')} | {every} "
              f"| {_cell(med['val_us'], '.1f')} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
