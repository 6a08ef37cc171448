"""Monitor memory: peak resident memory of a monitored loop whose snapshots are refreshed in place vs afresh, and
of a fine-tuning loop with a frozen backbone whose snapshots copy it or leave it out.

The monitor holds two snapshots (the last healthy state and the best-validation state: parameters, buffers and
optimizer state). Refreshing one afresh allocates the new copy while the old one is still held, so for a moment
memory holds an extra copy of the model and its optimizer state; a refresh in place (the default for tensors of at
least ``lrkit.monitor.monitor._REUSE_NUMEL`` elements) writes into the old copy instead. Each measurement runs in a
fresh process (``ru_maxrss`` is a process-wide peak), with a 16.8M-parameter MLP and Adam, a healthy snapshot every 2
steps and a new best validation loss every step, 30 steps.

The second table fine-tunes a small head (2048 -> 16, Adam) on the same 16.8M-parameter MLP frozen
(``requires_grad=False``, not in the optimizer): without a monitor, with ``Monitor(snapshot_frozen=True)`` (every
parameter copied into both snapshots) and with the default ``snapshot_frozen=False`` (the frozen backbone left out).

Usage::

    python benchmarks/monitor_memory.py
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
from collections.abc import Sequence
from typing import Any


def _loop(model: Any, opt: Any, monitor: Any, y_dim: int) -> int:
    """30 steps of the loop on a fixed batch (a new best validation loss every step when monitored); return this
    process's peak RSS in MiB."""
    import torch

    x, y = torch.randn(8, 2048), torch.randn(8, y_dim)
    val = 1.0
    for _ in range(30):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        if monitor is not None:
            monitor.after_backward(loss)
        opt.step()
        if monitor is not None:
            monitor.after_step()
            val *= 0.99
            monitor.after_validation(val)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def _mlp() -> Any:
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(1)
    return torch.nn.Sequential(torch.nn.Linear(2048, 4096), torch.nn.ReLU(), torch.nn.Linear(4096, 2048))


def run_frozen(mode: str) -> int:
    """One fine-tuning loop over a frozen backbone in this process (``mode``: ``none``, ``copied`` or
    ``uncopied``); return its peak RSS in MiB."""
    import torch

    from lrkit.monitor import Monitor

    backbone = _mlp()
    backbone.requires_grad_(False)
    model = torch.nn.Sequential(backbone, torch.nn.ReLU(), torch.nn.Linear(2048, 16))
    opt = torch.optim.Adam(model[2].parameters(), lr=1e-3)
    monitor = None if mode == "none" else Monitor(model, opt, snapshot_every=2, grad_every=1,
                                                  snapshot_frozen=mode == "copied")
    return _loop(model, opt, monitor, 16)


def run(in_place: bool) -> int:
    """One monitored loop in this process; return its peak RSS in MiB."""
    import torch

    import lrkit.monitor.monitor as monitor_module
    from lrkit.monitor import Monitor

    if not in_place:
        monitor_module._REUSE_NUMEL = 2**62  # every tensor cloned afresh, as before the in-place refresh
    model = _mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-5)
    return _loop(model, opt, Monitor(model, opt, snapshot_every=2, grad_every=1), 2048)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table (each row measured in its own process)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", choices=["in-place", "fresh", "frozen-none", "frozen-copied", "frozen-uncopied"],
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child = args.child
        print(run_frozen(child.split("-")[1]) if child.startswith("frozen-") else run(child == "in-place"))
        return 0
    params = 2048 * 4096 + 4096 + 4096 * 2048 + 2048
    snapshot_mib = params * 4 * 3 / 2**20  # parameters + Adam's two moments, float32
    print(f"Monitor snapshots, {params / 1e6:.1f}M-parameter MLP + Adam (one snapshot ~{snapshot_mib:.0f} MiB), "
          "peak RSS per process\n")
    print("| snapshot refresh | peak RSS MiB |")
    print("|---|---|")
    peaks = {}
    for mode in ("fresh", "in-place"):
        peaks[mode] = _child(mode)
        print(f"| {mode} | {peaks[mode]} |", flush=True)
    print(f"\nin place saves {peaks['fresh'] - peaks['in-place']} MiB of peak memory")
    backbone_mib = params * 4 / 2**20
    print(f"\nFine-tuning a 2048->16 head (Adam) on that MLP frozen (the backbone ~{backbone_mib:.0f} MiB), "
          "peak RSS per process\n")
    print("| monitor | peak RSS MiB |")
    print("|---|---|")
    rows = (("frozen-none", "no monitor"), ("frozen-copied", "`Monitor(snapshot_frozen=True)`: backbone copied"),
            ("frozen-uncopied", "`Monitor()` (default): backbone left out"))
    for mode, label in rows:
        peaks[mode] = _child(mode)
        print(f"| {label} | {peaks[mode]} |", flush=True)
    print(f"\nleaving the frozen backbone out saves {peaks['frozen-copied'] - peaks['frozen-uncopied']} MiB")
    return 0


def _child(mode: str) -> int:
    """Peak RSS (MiB) of one ``--child`` run in a fresh process."""
    out = subprocess.run([sys.executable, __file__, "--child", mode], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    sys.exit(main())
