"""What :class:`lrkit.Monitor` costs per optimizer step, in microseconds, on models small enough for it to matter.

``benchmarks/monitor_recovery.py`` reports the overhead as a fraction of whole training steps, which on
sub-millisecond CPU steps is within a couple of points of run-to-run noise. This script isolates the monitor's own
calls: a healthy loop (fixed batch, constant LR, torch ``LambdaLR``) runs ``--steps`` optimizer steps, and only the
time spent inside ``after_backward`` and ``after_step`` is counted (``time.perf_counter_ns`` around each call, the first
``--warmup`` steps excluded). Fast-path calls and full steps (gradient norms + checks, snapshot, update-ratio
sample) are told apart by whether the call recorded a gradient norm (``monitor.record.seen["grad_norm"]``). Every 100
steps a falling validation loss goes to ``after_validation`` (a new best each time, so the best-validation snapshot
is refreshed: its worst case); those calls are timed on their own, per call.

Run (one thread; prints a Markdown table):

    python benchmarks/monitor_cost.py                     # 3 models, 20 000 steps, 5 repeats (median)
    python benchmarks/monitor_cost.py --steps 5000 --repeats 1
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from lrkit import Monitor


def _models() -> dict[str, Callable[[], tuple[torch.nn.Module, torch.Tensor, torch.Tensor]]]:
    def logreg() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
        return torch.nn.Linear(30, 1), torch.randn(64, 30), torch.randn(64, 1)

    def mlp() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
        net = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
        return net, torch.randn(64, 64), torch.randn(64, 10)

    def deep() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
        layers: list[torch.nn.Module] = []
        for _ in range(8):
            layers += [torch.nn.Linear(64, 64), torch.nn.LayerNorm(64), torch.nn.GELU()]
        return torch.nn.Sequential(*layers, torch.nn.Linear(64, 1)), torch.randn(64, 64), torch.randn(64, 1)

    return {"Linear(30,1)": logreg, "MLP 64-128-10": mlp, "8x(Linear+LayerNorm) 64": deep}


def measure(build: Callable[[], tuple[torch.nn.Module, torch.Tensor, torch.Tensor]], steps: int,
            warmup: int, epoch: int = 100) -> dict[str, float]:
    """One run: time inside the monitor's calls, split into fast-path calls and full steps; every ``epoch`` steps a
    falling validation loss goes to ``after_validation`` (a new best each time: the snapshot is refreshed), timed on
    its own and not counted in the per-step figures."""
    torch.manual_seed(0)
    model, x, y = build()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    mon = Monitor(model, opt, sched)
    clock = time.perf_counter_ns
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
        "full_every": steps / max(1, len(full)),
        "val_us": statistics.median(val) / 1e3 if val else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20_000, help="timed optimizer steps per run")
    parser.add_argument("--warmup", type=int, default=500, help="untimed steps first")
    parser.add_argument("--repeats", type=int, default=5, help="runs per model; the table shows medians")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.repeats < 1 or args.warmup < 0:
        parser.error(f"need --steps >= 1, --repeats >= 1, --warmup >= 0 (got {args.steps}, {args.repeats}, "
                     f"{args.warmup})")
    torch.set_num_threads(1)
    print(f"Command: `python benchmarks/monitor_cost.py --steps {args.steps} --repeats {args.repeats}` "
          f"(torch {torch.__version__}, 1 thread, median of repeats)\n")
    print("| model | step µs (with monitor) | monitor µs/step | share of step | fast path µs (median) "
          "| full step µs (median, after_backward) | one full step every | after_validation µs (median, new best) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, build in _models().items():
        runs = [measure(build, args.steps, args.warmup) for _ in range(args.repeats)]
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"| {name} | {med['step_us']:.1f} | {med['monitor_us']:.2f} | {med['monitor_us'] / med['step_us']:.1%} "
              f"| {med['fast_us']:.2f} | {med['full_us']:.1f} | {med['full_every']:.0f} steps | {med['val_us']:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
