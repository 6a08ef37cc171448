"""What ``lrkit.train`` costs over a hand-written training loop doing the same work, per epoch and at start-up.

Both sides train the same suite model (``benchmarks/_suite.py``) from the same initial weights on the same
DataLoaders (``make_loaders``: same split, batch size, shuffling generator), with the same optimizer over the same
parameter groups (``lrkit.param_groups``: no decay on biases/norms), the same loss and the same LR schedule stepped
per batch (5% linear warmup, then cosine; lrkit via ``schedule="cosine ... warmup_steps=W"``, the hand loop via
torch's ``LambdaLR``). Per epoch the hand loop also reads every step's loss (``loss.item()``, for the epoch's train
loss), runs one validation pass (loss and, for classification, accuracy) and saves a checkpoint
(``torch.save`` of model + optimizer state). So the difference is lrkit's own machinery: config checks, the model
check, run directory and ``args.yaml``, per-step gradient norm and LR reads, the health monitor, ``results.csv``,
``last.pt``/``best.pt`` (atomic writes with the full resumable state), ``events.json``.

Method. Each call's training loader marks the moment each epoch starts drawing batches; a steady-state epoch is

    epoch_s = (start of the last epoch - start of epoch 2) / (epochs - 2)

(a full cycle: training, validation, records, checkpoints; the first epoch and the final records are left out), and

    start-up_s = call wall time - epochs * epoch_s

``ratio = lrkit epoch_s / hand epoch_s`` is the median over repeats of each side's epoch_s; the IQR is that of the
per-repeat ratios (each lrkit run over the hand run of the same repeat). Repeats alternate A/B/B/A (hand, lrkit,
lrkit, hand, ...) so a busy machine slows both alike; one untimed warm-up repeat goes first. ``lrkit.train`` runs
with ``plots=False, verbose=False``, monitor on (its default) and off (``monitor=False``). One thread, seeds fixed.

On a GPU (``--device cuda`` or ``cuda:N``) both sides train on the device from the same CPU DataLoaders: the hand loop
moves each batch there (``non_blocking``, as lrkit's ``move_to`` does) in training and validation, and
``lrkit.train(device=...)`` moves them itself. ``torch.cuda.synchronize()`` runs before every clock read (the call's
start and end and each epoch mark), so queued kernels are counted; the untimed warm-up repeat initialises CUDA,
cuBLAS and cuDNN for every side alike. What the ratio means there: the hand loop reads every step's loss
(``loss.item()``, one host-device sync per step, as a loop that logs its loss does), and so does ``lrkit.train`` with
its monitor (the monitor checks each loss); with ``monitor=False`` and no progress callback lrkit reads the step
values in bulk, without a sync per step, so that column can read below 1. The suite's models are small: a GPU step
is bound by kernel launches, so lrkit's per-step Python is measured against the launch cost of a small step and its
fixed per-epoch cost (records, checkpoints) against very short epochs — the worst case for both.

Run (prints a Markdown table; about a minute):

    python benchmarks/train_overhead.py
    python benchmarks/train_overhead.py --tasks digits_mlp --epochs 20 --repeats 9
    python benchmarks/train_overhead.py --device cuda                 # on a GPU
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from _suite import TASKS, Task, device_arg, device_label, make_loaders, synchronize, task_names, warmup_cosine

_CPU = torch.device("cpu")


class _MarkedLoader(DataLoader):
    """A DataLoader that notes the time each pass over it starts (the start of an epoch), once ``device`` has
    finished the work queued before it."""

    marks: list[float]
    device: torch.device

    def __iter__(self) -> Any:
        synchronize(self.device)
        self.marks.append(time.perf_counter())
        return super().__iter__()


def _loaders(task: Task, device: torch.device = _CPU) -> tuple[_MarkedLoader, DataLoader]:
    train, val = make_loaders(task, seed=0)
    marked = _MarkedLoader(train.dataset, batch_size=train.batch_size, shuffle=True, drop_last=train.drop_last,
                           generator=torch.Generator().manual_seed(0))
    marked.marks = []
    marked.device = device
    return marked, val


def _optimizer_args(task: Task, model: torch.nn.Module) -> dict[str, Any]:
    """The task's optimizer as lrkit.train keys (``optimizer``, ``momentum``, ``weight_decay``), read off the task's
    own optimizer so both sides build the same one."""
    probe = task.build_optimizer(model.parameters(), task.default_lr)
    group = probe.param_groups[0]
    kind = type(probe)
    if kind is torch.optim.SGD:
        momentum = float(group["momentum"])
        if momentum > 0 and not group["nesterov"]:
            # lrkit's "SGD" is Nesterov when momentum > 0; the class itself keeps torch's plain momentum
            return {"optimizer": torch.optim.SGD, "momentum": momentum, "weight_decay": float(group["weight_decay"])}
        return {"optimizer": "SGD", "momentum": momentum, "weight_decay": float(group["weight_decay"])}
    if kind in (torch.optim.Adam, torch.optim.AdamW):
        return {"optimizer": kind.__name__, "momentum": float(group["betas"][0]),
                "weight_decay": float(group["weight_decay"])}
    raise SystemExit(f"task {task.name!r} uses {kind.__name__}; this script handles SGD, Adam and AdamW tasks")


def _build_hand_optimizer(opt_args: dict[str, Any], groups: list[dict[str, Any]], lr: float) -> torch.optim.Optimizer:
    from lrkit.train.optim import build_optimizer

    spec = opt_args["optimizer"]
    return build_optimizer(spec, groups, lr=lr, momentum=opt_args["momentum"])


def hand_loop(task: Task, initial: dict[str, torch.Tensor], epochs: int, out: Path,
              device: torch.device = _CPU) -> tuple[float, list[float]]:
    """A plain loop: per step (off the CPU: the batch's copy to ``device``) forward, loss, backward, optimizer and
    scheduler step, ``loss.item()`` (one sync per step on a GPU); per epoch one validation pass and a ``torch.save``
    of model + optimizer state. Returns (wall seconds, epoch start marks)."""
    from lrkit.scaling import param_groups

    synchronize(device)
    t_call = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = task.build_model(0)
    model.load_state_dict(initial)
    move = device.type != "cpu"
    if move:
        model = model.to(device)
    train, val = _loaders(task, device)
    opt_args = _optimizer_args(task, model)
    groups = param_groups(model, task.default_lr, weight_decay=opt_args["weight_decay"])
    optimizer = _build_hand_optimizer(opt_args, groups, task.default_lr)
    total = epochs * len(train)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total))
    loss_fn = task.loss_fn
    classify = isinstance(loss_fn, torch.nn.CrossEntropyLoss)
    for epoch in range(epochs):
        model.train()
        loss_sum, n_sum = 0.0, 0
        for x, y in train:
            if move:  # as lrkit's move_to: non-blocking towards an accelerator
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += loss.item() * len(x)
            n_sum += len(x)
        model.eval()
        v_sum, v_n, correct = 0.0, 0, 0
        with torch.no_grad():
            for x, y in val:
                if move:
                    x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                out_ = model(x)
                v_sum += float(loss_fn(out_, y)) * len(x)
                v_n += len(x)
                if classify:
                    correct += int((out_.argmax(1) == y).sum())
        torch.save({"epoch": epoch + 1, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "train_loss": loss_sum / n_sum, "val_loss": v_sum / v_n}, out / "last.pt")
    synchronize(device)
    return time.perf_counter() - t_call, train.marks


def lrkit_run(task: Task, initial: dict[str, torch.Tensor], epochs: int, out: Path,
              monitor: bool, device: torch.device = _CPU) -> tuple[float, list[float]]:
    """One ``lrkit.train`` call on the same model, data, optimizer and schedule (``device=`` passed on: lrkit moves
    the model and each batch itself); (wall seconds, epoch marks)."""
    import lrkit

    synchronize(device)
    t_call = time.perf_counter()
    torch.manual_seed(0)
    model = task.build_model(0)
    model.load_state_dict(initial)
    train, val = _loaders(task, device)
    opt_args = _optimizer_args(task, model)
    total = epochs * len(train)
    warm = max(1, round(0.05 * total))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = lrkit.train(model, data=(train, val), epochs=epochs, lr0=task.default_lr, batch=task.batch_size,
                          nbs=task.batch_size, loss_fn=task.loss_fn, **opt_args,
                          schedule=f"cosine lrf=0 warmup_steps={warm} warmup_start_factor={1 / warm}",
                          patience=None, monitor=monitor, project=str(out), name="run", exist_ok=True,
                          plots=False, verbose=False, device=str(device))
    synchronize(device)
    wall = time.perf_counter() - t_call
    if res.epochs_run != epochs:
        raise RuntimeError(f"{task.name}: lrkit.train ran {res.epochs_run}/{epochs} epochs ({res.stop_reason})")
    return wall, train.marks[-epochs:]  # lrkit's up-front model check draws one batch first


def _epoch_s(marks: list[float]) -> float:
    return (marks[-1] - marks[1]) / (len(marks) - 2)


def measure(task: Task, epochs: int, repeats: int, device: torch.device = _CPU) -> dict[str, float]:
    """Medians over interleaved repeats: seconds per steady-state epoch and start-up seconds for each side."""
    initial = copy.deepcopy(task.build_model(0).state_dict())
    runners: dict[str, Callable[[Path], tuple[float, list[float]]]] = {
        "hand": lambda d: hand_loop(task, initial, epochs, d, device),
        "lrkit": lambda d: lrkit_run(task, initial, epochs, d, monitor=True, device=device),
        "lrkit_nomon": lambda d: lrkit_run(task, initial, epochs, d, monitor=False, device=device),
    }
    epoch_s: dict[str, list[float]] = {k: [] for k in runners}
    start_s: dict[str, list[float]] = {k: [] for k in runners}
    names = list(runners)
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats + 1):  # repeat 0 warms everything up and is discarded
            for which in (names if r % 2 == 0 else names[::-1]):  # A/B/B/A
                wall, marks = runners[which](Path(tmp) / which)
                if len(marks) != epochs:
                    raise RuntimeError(f"{which}: {len(marks)} epoch marks, expected {epochs}")
                if r:
                    e = _epoch_s(marks)
                    epoch_s[which].append(e)
                    start_s[which].append(wall - epochs * e)
    out: dict[str, float] = {"steps": len(_loaders(task)[0])}
    for k in names:
        out[f"{k}_epoch"] = statistics.median(epoch_s[k])
        out[f"{k}_start"] = statistics.median(start_s[k])
        if k != "hand":
            paired = sorted(a / b for a, b in zip(epoch_s[k], epoch_s["hand"]))
            q = statistics.quantiles(paired, n=4) if len(paired) >= 2 else [paired[0]] * 3
            out[f"{k}_ratio"] = out[f"{k}_epoch"] / out["hand_epoch"]
            out[f"{k}_q1"], out[f"{k}_q3"] = q[0], q[2]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Print the overhead table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="digits_mlp,digits_cnn,breast_cancer_logreg",
                        help="comma-separated suite task names (SGD, Adam or AdamW tasks)")
    parser.add_argument("--epochs", type=int, default=12, help="epochs per call (default 12; at least 4)")
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats after one warm-up (default 7)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N: where both sides train")
    args = parser.parse_args(argv)
    names = task_names(parser, args.tasks)
    for n in names:  # every task's optimizer checked before the table starts, not halfway through it
        kind = type(TASKS[n].build_optimizer(TASKS[n].build_model(0).parameters(), TASKS[n].default_lr))
        if kind not in (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW):
            parser.error(f"--tasks: {n} uses {kind.__name__}; this script handles SGD, Adam and AdamW tasks")
    if args.epochs < 4 or args.repeats < 1:
        parser.error(f"--epochs={args.epochs} must be >= 4 and --repeats={args.repeats} >= 1")
    device = device_arg(parser, args.device)
    torch.set_num_threads(1)
    on = "" if args.device == "cpu" else f" --device {args.device}"
    print(f"Command: `python benchmarks/train_overhead.py --tasks {','.join(names)} --epochs {args.epochs} "
          f"--repeats {args.repeats}{on}` (torch {torch.__version__}, device {device_label(device)}, 1 thread, "
          f"median of interleaved repeats)\n")
    print("| task | steps/epoch | hand loop ms/epoch | lrkit.train ms/epoch | ratio (IQR) | lrkit − hand ms/epoch "
          "| monitor=False ms/epoch | ratio (IQR) | start-up ms: hand / lrkit / monitor=False |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in names:
        m = measure(TASKS[n], args.epochs, args.repeats, device)
        steps = m["steps"]
        more = 1e3 * (m["lrkit_epoch"] - m["hand_epoch"])
        print(f"| {n} | {steps:.0f} | {1e3 * m['hand_epoch']:.1f} | {1e3 * m['lrkit_epoch']:.1f} "
              f"| {m['lrkit_ratio']:.2f} ({m['lrkit_q1']:.2f}–{m['lrkit_q3']:.2f}) | {more:.1f} "
              f"| {1e3 * m['lrkit_nomon_epoch']:.1f} | {m['lrkit_nomon_ratio']:.2f} "
              f"({m['lrkit_nomon_q1']:.2f}–{m['lrkit_nomon_q3']:.2f}) "
              f"| {1e3 * m['hand_start']:.0f} / {1e3 * m['lrkit_start']:.0f} / {1e3 * m['lrkit_nomon_start']:.0f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
