"""Schedule overhead: ``scheduler.step()`` cost per optimizer step, lrkit's adapter vs torch's own schedulers.

Four param groups (SGD with momentum, one scalar parameter each, so the optimizer itself costs nothing here), N
steps per measurement, the median of ``--repeats`` interleaved repeats, one thread.

A second table (``--phases``) measures schedules with millions of *phases* (a short cycle over a long run): the time
and the memory of building the schedule, counting its phases, reading the last one, a value at the last step, a
``state_dict()`` round trip of its torch scheduler, and the bounded ``sampled_record`` the CLI draws, each case in a
fresh process (memory is the peak RSS above the process's RSS after the imports).

    python benchmarks/schedule_overhead.py            # prints a Markdown table
    python benchmarks/schedule_overhead.py --phases   # the many-phase table (--phase-steps 100000 for a quick run)
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch
from torch.optim import lr_scheduler as tls

from _suite import positive_int
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


#: (label, spec) of schedules whose phase count grows with the run: one or two phases per cycle or level
PHASE_CASES: list[tuple[str, str]] = [
    ("cyclic, 2-step cycle", "cyclic base_lr=0.001 max_lr=0.1 step_size_up=1"),
    ("cyclic triangular2 + warmup + cooldown", "cyclic base_lr=0.001 max_lr=0.1 step_size_up=3 mode=triangular2 "
     "warmup_steps=100 cooldown_steps=100"),
    ("step, every step", "step lr0=0.1 step_size=1 gamma=0.9999999 unit=step"),
    ("cosine_restarts, T_0=2", "cosine_restarts lr0=0.1 T_0=2 unit=step"),
]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def measure_phases(spec: str, steps: int) -> dict[str, float]:
    """One many-phase case, in this process: seconds per operation and the peak RSS it added (MB)."""
    from lrkit.schedules.report import sampled_record

    torch.set_num_threads(1)
    base = _rss_mb()
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    s = from_spec(spec, total_steps=steps)
    out["build_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    phases = s.phases
    out["phases"] = float(len(phases))
    _ = phases[-1]
    out["phases_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    s.lr(steps - 1)
    out["lr_s"] = time.perf_counter() - t0
    opt = _optimizer()
    sched = s.to_torch(opt)
    t0 = time.perf_counter()
    sched.seek(steps // 2)
    state = sched.state_dict()
    fresh = from_spec(spec, total_steps=steps).to_torch(_optimizer())
    fresh.load_state_dict(state)
    out["resume_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    sampled_record(s)
    out["record_s"] = time.perf_counter() - t0
    out["rss_mb"] = _rss_mb() - base
    return out


def phases_table(steps: int) -> None:
    print(f"schedules with one or two phases per cycle, {steps} steps, each case in a fresh process, 1 thread\n")
    print("| schedule | phases | build s | phases + last s | lr(T-1) s | seek + state_dict + load s | "
          "sampled_record s | peak RSS added MB |\n|---|---|---|---|---|---|---|---|")
    for label, spec in PHASE_CASES:
        res = subprocess.run([sys.executable, __file__, "--one", spec, "--phase-steps", str(steps)],
                             capture_output=True, text=True, check=True)
        r = json.loads(res.stdout.strip().splitlines()[-1])
        print(f"| {label} (`{spec}`) | {int(r['phases'])} | {r['build_s']:.4f} | {r['phases_s']:.4f} | "
              f"{r['lr_s']:.6f} | {r['resume_s']:.4f} | {r['record_s']:.2f} | {r['rss_mb']:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=positive_int, default=20_000, help="steps per timing (default 20000)")
    parser.add_argument("--repeats", type=positive_int, default=5, help="timings per cell; the median (default 5)")
    parser.add_argument("--phases", action="store_true", help="the many-phase table instead of the step() table")
    parser.add_argument("--phase-steps", type=positive_int, default=1_000_000,
                        help="run length of the many-phase cases")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # one many-phase case, in a fresh process
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.one:
        print(json.dumps(measure_phases(args.one, args.phase_steps)))
        return
    if args.phases:
        phases_table(args.phase_steps)
        return
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
