"""Benchmark :class:`lrkit.Monitor`: does it rescue runs at a too-high LR, stay quiet on healthy ones, and cost little?

For every task of ``benchmarks/_suite.py`` (one fixed schedule: 5% linear warmup then cosine to zero, stepped per
optimizer step), train at the oracle's best peak LR, at 10x and at 30x it, each with and without a default
``lrkit.Monitor`` (3 seeds, median), and score the validation loss against the oracle's:

    regret = median_seeds(val_loss) / oracle best median val_loss - 1        (inf when the run diverged)

The monitor also gets each epoch's validation loss (``monitor.after_validation``, as ``lrkit.train`` gives it), so
its ``val_rising`` check can return a run that memorises its training data to the best epoch at a lower LR;
``--monitor '{"on_overfit": null}'`` measures the training-signal checks alone.
A run counts as diverged when its loss is non-finite or above 100x its first loss (the suite's rule) and the
optimizer steps on it: the monitor sees the loss first, and a step it skips or rolls back does not end the run.
Step-time overhead is measured on healthy runs (oracle LR, seed 0): monitored and plain runs are timed in interleaved
pairs, as thread CPU time per optimizer step between the first and the last step (setup and evaluation excluded: both
sides validate every epoch, as ``lrkit.train`` does, and that time is left out; CPU time keeps other processes on a
shared machine out of it), and the overhead is the median over pairs of ``t_monitor / t_plain - 1``.

Targets (issue 5): with the monitor, 10x/30x runs end finite and within 10% of the oracle's loss; zero events on
oracle-LR runs; <= 3% step-time overhead.

Run (prints Markdown tables; the record is written to benchmarks/results/monitor_recovery.json):

    python benchmarks/monitor_recovery.py                 # every task, seeds 0 1 2, 7 timing pairs
    python benchmarks/monitor_recovery.py --quick         # seed 0 only, 3 timing pairs: a smoke test (not saved)
    python benchmarks/monitor_recovery.py --tasks wine_mlp,teacher_student --monitor '{"backoff": 0.3}'
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _suite import (
    RESULTS_DIR,
    SUITE,
    TASKS,
    Task,
    _evaluate,
    format_regret,
    geometric_regret,
    make_loaders,
    non_negative_int,
    oracle,
    output_file,
    positive_numbers,
    regret,
    run_main,
    seed_list,
    task_names,
    train_run,
)
from lrkit._utils import atomic_write_text
from lrkit.monitor import Monitor, MonitorEvent, MonitorWarning

RESULT_PATH = RESULTS_DIR / "monitor_recovery.json"


class EpochValidation:
    """A :class:`lrkit.Monitor` as :func:`_suite.train_run` drives it, plus what ``lrkit.train`` adds: after the last
    step of every epoch the validation loss goes to ``monitor.after_validation``. With ``monitor=None`` it only
    validates (the plain runs of the overhead timing: a loop that validates every epoch, as most do). The thread CPU
    time spent validating is kept per step (``eval_seconds``) so that the timing can leave it out."""

    def __init__(self, monitor: Monitor | None, model: torch.nn.Module, task: Task) -> None:
        self.monitor, self.model, self.task = monitor, model, task
        self.val_loader = make_loaders(task, 0)[1]
        self.steps_per_epoch = task.steps_per_epoch()
        self.steps = 0
        self.eval_seconds: dict[int, float] = {}

    @property
    def events(self) -> list[MonitorEvent]:
        return self.monitor.events if self.monitor is not None else []

    def after_backward(self, loss: torch.Tensor) -> bool:
        return self.monitor.after_backward(loss) if self.monitor is not None else True

    def after_step(self) -> bool:
        stop = self.monitor.after_step() if self.monitor is not None else False
        self.steps += 1
        if not stop and self.steps % self.steps_per_epoch == 0:
            t0 = time.thread_time()
            # iterating a DataLoader draws its base seed from the global RNG: forked, so a monitored run's dropout
            # masks (and any other draw) are the plain run's, and a monitor that raises no event changes nothing
            with torch.random.fork_rng(devices=[]):
                val = _evaluate(self.model, self.val_loader, self.task.loss_fn)
            self.eval_seconds[self.steps] = time.thread_time() - t0
            if self.monitor is not None:
                stop = self.monitor.after_validation(val)
        return stop


def monitor_factory(options: dict[str, Any] | None, sink: list[EpochValidation], task: Task) -> Any:
    """A ``monitor_factory`` for :func:`_suite.train_run` that keeps what it builds in ``sink`` (``options=None``: no
    monitor, only the per-epoch validation)."""

    def make(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any) -> EpochValidation:
        monitor = Monitor(model, optimizer, scheduler, **options) if options is not None else None
        mon = EpochValidation(monitor, model, task)
        sink.append(mon)
        return mon

    return make


def one_run(task: Task, lr: float, seed: int, options: dict[str, Any] | None) -> dict[str, Any]:
    """Train one run (with a monitor when ``options`` is not None) and summarise it."""
    sink: list[EpochValidation] = []
    factory = monitor_factory(options, sink, task) if options is not None else None
    out = train_run(task, lr, seed, monitor_factory=factory)
    mon = sink[0].monitor if sink else None
    events = [e for e in out.events if isinstance(e, MonitorEvent)]
    return {
        "seed": seed,
        "val_loss": out.val_loss,
        "diverged": out.diverged,
        "steps": out.steps,
        "events": len(events),
        "event_list": [e.to_dict() for e in events],
        "rollbacks": mon.rollbacks if mon else 0,
        "lr_scale": mon.lr_scale if mon else 1.0,
        "stopped": bool(mon.should_stop) if mon else False,
    }


class NotHealthy(RuntimeError):
    """The timing run was not a healthy one (it diverged or the monitor raised an event), so it cannot be timed."""


def step_time(task: Task, lr: float, options: dict[str, Any] | None) -> float:
    """Seconds per optimizer step of one full run, between the first and the last step (setup/eval excluded)."""
    stamps: list[float] = []

    def on_step(step: int, loss: float, lr_now: float) -> None:
        if step == 1 or step == total:
            stamps.append(time.thread_time())  # CPU time of this thread: robust to other processes on the machine

    total = task.total_steps()
    sink: list[EpochValidation] = []
    out = train_run(task, lr, 0, on_step=on_step, monitor_factory=monitor_factory(options, sink, task))
    if out.diverged or len(stamps) != 2 or sink[0].events:
        raise NotHealthy(f"{task.name}: the timing run at lr={lr:g} was not healthy; overhead needs a healthy run")
    validating = sum(s for step, s in sink[0].eval_seconds.items() if step < total)
    return (stamps[1] - stamps[0] - validating) / (total - 1)


def overhead(task: Task, lr: float, options: dict[str, Any], pairs: int) -> dict[str, float]:
    """Median step time with/without the monitor and the median paired overhead, over ``pairs`` interleaved pairs."""
    step_time(task, lr, None)  # warm-up: data, allocator, kernels
    plain, monitored, ratios = [], [], []
    for i in range(pairs):
        if i % 2 == 0:  # alternate the order so drift in machine load does not favour one side
            a = step_time(task, lr, None)
            b = step_time(task, lr, options)
        else:
            b = step_time(task, lr, options)
            a = step_time(task, lr, None)
        plain.append(a)
        monitored.append(b)
        ratios.append(b / a - 1.0)
    return {
        "step_ms_plain": 1e3 * statistics.median(plain),
        "step_ms_monitor": 1e3 * statistics.median(monitored),
        "overhead": statistics.median(ratios),
    }


def _plain(obj: Any) -> Any:
    """JSON-ready copy: non-finite floats become None."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def monitor_options(parser: argparse.ArgumentParser, text: str) -> dict[str, Any]:
    """``--monitor``'s JSON as ``Monitor`` keyword arguments, checked by building a ``Monitor`` on a tiny model now —
    a typo or a bad value is an argparse error naming it, not a traceback from the first training run."""
    import difflib
    import inspect

    try:
        options = json.loads(text)
    except ValueError as e:
        parser.error(f"--monitor: not JSON ({e}); give an object like '{{\"spike_grace\": 0}}'")
    if not isinstance(options, dict):
        parser.error("--monitor must be a JSON object of Monitor keyword arguments")
    valid = [p.name for p in inspect.signature(Monitor).parameters.values() if p.kind is p.KEYWORD_ONLY]
    for key in options:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1)
            parser.error(f"--monitor: Monitor has no setting {key!r}"
                         + (f" (did you mean {close[0]!r}?)" if close else "") + f"; valid: {', '.join(valid)}")
    model = torch.nn.Linear(1, 1)
    try:
        Monitor(model, torch.optim.SGD(model.parameters(), lr=0.1), **options)
    except (TypeError, ValueError) as e:
        parser.error(f"--monitor: {e}")
    return options


def _fmt_loss(v: float) -> str:
    return f"{v:.4f}" if math.isfinite(v) else "inf"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--tasks", default=",".join(SUITE), help="comma-separated task names")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--mults", default="1,10,30", help="multiples of the oracle LR to train at")
    parser.add_argument("--pairs", type=non_negative_int, default=7,
                        help="interleaved timing pairs per task (0: skip timing)")  # fmt: skip
    parser.add_argument("--monitor", default="{}", help="Monitor keyword arguments as JSON (default: the defaults)")
    parser.add_argument("--quick", action="store_true", help="seed 0 only and 3 timing pairs (implies --no-save)")
    parser.add_argument("--no-save", action="store_true", help="do not write benchmarks/results/monitor_recovery.json")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    warnings.simplefilter("ignore", MonitorWarning)
    names = task_names(parser, args.tasks)
    seeds = [0] if args.quick else seed_list(parser, args.seeds)
    pairs = min(args.pairs, 3) if args.quick else args.pairs
    mults = positive_numbers(parser, args.mults, "--mults")
    options = monitor_options(parser, args.monitor)
    if not (args.no_save or args.quick):  # found now, not after the whole run
        output_file(parser, RESULT_PATH, "the record", hint="; or pass --no-save")
    command = "python benchmarks/monitor_recovery.py " + " ".join(argv if argv is not None else sys.argv[1:])

    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    timings: dict[str, dict[str, float]] = {}
    untimed: dict[str, str] = {}  # task -> why its timing was refused (a healthy run that raised an event)
    for name in names:
        task = TASKS[name]
        orc = oracle(task, progress=lambda msg: print(f"<!-- {msg} -->", file=sys.stderr))
        for mult in mults:
            lr = orc.best_lr * mult
            for monitored in (False, True):
                runs = [one_run(task, lr, s, options if monitored else None) for s in seeds]
                med = statistics.median(r["val_loss"] for r in runs)
                rows.append({
                    "task": name, "mult": mult, "lr": lr, "monitor": monitored, "val_loss": med,
                    "oracle_loss": orc.best_loss, "regret": regret(med, orc.best_loss),
                    "diverged": sum(r["diverged"] for r in runs), "runs": runs,
                    "events": statistics.median(r["events"] for r in runs),
                    "rollbacks": statistics.median(r["rollbacks"] for r in runs),
                })  # fmt: skip
            print(f"<!-- {name} x{mult:g} done ({time.perf_counter() - started:.0f}s) -->", file=sys.stderr)
        if pairs > 0:
            try:
                timings[name] = overhead(task, orc.best_lr, options, pairs)
            except NotHealthy as e:  # keep every row measured so far; the table says which task was not timed
                untimed[name] = str(e).removeprefix(f"{name}: ")
                print(f"<!-- {name}: not timed: {untimed[name]} -->", file=sys.stderr)

    print(f"Command: `{command.strip()}`  (seeds {seeds}, torch {torch.__version__}, 1 thread)\n")
    print("| task | peak LR | monitor | val loss (median) | regret vs oracle | diverged | events (median) "
          "| rollbacks (median) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['task']} | {r['mult']:g}x = {r['lr']:.3g} | {'on' if r['monitor'] else 'off'} "
              f"| {_fmt_loss(r['val_loss'])} | {format_regret(r['regret'])} | {r['diverged']}/{len(seeds)} "
              f"| {r['events']:g} | {r['rollbacks']:g} |")  # fmt: skip
    if timings or untimed:
        print("\n| task | step ms, plain | step ms, monitor | overhead (median of pairs) |")
        print("|---|---|---|---|")
        for name in names:
            if name in untimed:
                print(f"| {name} | not timed: {untimed[name]} | | |")
            elif name in timings:
                t = timings[name]
                print(f"| {name} | {t['step_ms_plain']:.3f} | {t['step_ms_monitor']:.3f} | {t['overhead']:+.1%} |")

    on = [r for r in rows if r["monitor"]]
    healthy = [run for r in on if r["mult"] == 1 for run in r["runs"]]
    high = [r for r in on if r["mult"] > 1]
    high_runs = [run for r in high for run in r["runs"]]
    print("\nTargets:")
    print(f"- oracle-LR runs with any monitor event: {sum(run['events'] > 0 for run in healthy)}/{len(healthy)} "
          "(target 0)")
    print(f"- high-LR monitored runs ending finite: {sum(not run['diverged'] for run in high_runs)}/{len(high_runs)}")
    print(f"- high-LR settings (task x LR, median of seeds) within 10% of the oracle: "
          f"{sum(r['regret'] <= 0.10 for r in high)}/{len(high)} with the monitor, "
          f"{sum(r['regret'] <= 0.10 for r in rows if not r['monitor'] and r['mult'] > 1)}/{len(high)} without")
    oracle_lr = [r["regret"] for r in on if r["mult"] == 1]
    print(f"- geometric-mean regret with the monitor (settings, median of seeds): oracle LR "
          f"{format_regret(geometric_regret(oracle_lr), 2)} over {len(oracle_lr)}, high LR "
          f"{format_regret(geometric_regret([r['regret'] for r in high]), 2)} over {len(high)}")
    if timings:
        worst = max(timings.values(), key=lambda t: t["overhead"])
        med = statistics.median(t["overhead"] for t in timings.values())
        print(f"- step-time overhead: median over tasks {med:+.1%}, worst {worst['overhead']:+.1%} (target <= 3%)"
              + (f"; not timed: {', '.join(untimed)}" if untimed else ""))
    elif untimed:
        print(f"- step-time overhead: not timed ({', '.join(untimed)}: a healthy run raised an event)")
    print(f"\n({time.perf_counter() - started:.0f}s)")

    if not (args.no_save or args.quick):  # a smoke test never replaces the recorded result
        record = {"command": command.strip(), "seeds": seeds, "monitor": options, "rows": rows, "timings": timings,
                  "untimed": untimed, "torch": torch.__version__}  # fmt: skip
        atomic_write_text(RESULT_PATH, json.dumps(_plain(record), indent=1))
    return 0


if __name__ == "__main__":
    run_main(main)  # Ctrl-C: one line, status 130; finished runs stay cached
