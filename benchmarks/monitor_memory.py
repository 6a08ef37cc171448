"""Monitor memory: peak resident memory of a monitored loop whose snapshots are refreshed in place vs afresh.

The monitor holds two snapshots (the last healthy state and the best-validation state: parameters, buffers and
optimizer state). Refreshing one afresh allocates the new copy while the old one is still held, so for a moment
memory holds an extra copy of the model and its optimizer state; a refresh in place (the default for tensors of at
least ``lrkit.monitor.monitor._REUSE_NUMEL`` elements) writes into the old copy instead. Each measurement runs in a
fresh process (``ru_maxrss`` is a process-wide peak), with a 16.8M-parameter MLP and Adam, a healthy snapshot every 2
steps and a new best validation loss every step, 30 steps.

Usage::

    python benchmarks/monitor_memory.py
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
from collections.abc import Sequence


def run(in_place: bool) -> int:
    """One monitored loop in this process; return its peak RSS in MiB."""
    import torch

    import lrkit.monitor.monitor as monitor_module
    from lrkit.monitor import Monitor

    if not in_place:
        monitor_module._REUSE_NUMEL = 2**62  # every tensor cloned afresh, as before the in-place refresh
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = torch.nn.Sequential(torch.nn.Linear(2048, 4096), torch.nn.ReLU(), torch.nn.Linear(4096, 2048))
    opt = torch.optim.Adam(model.parameters(), lr=1e-5)
    monitor = Monitor(model, opt, snapshot_every=2, grad_every=1)
    x, y = torch.randn(8, 2048), torch.randn(8, 2048)
    val = 1.0
    for _ in range(30):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        monitor.after_backward(loss)
        opt.step()
        monitor.after_step()
        val *= 0.99
        monitor.after_validation(val)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table (each row measured in its own process)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", choices=["in-place", "fresh"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(run(args.child == "in-place"))
        return 0
    params = 2048 * 4096 + 4096 + 4096 * 2048 + 2048
    snapshot_mib = params * 4 * 3 / 2**20  # parameters + Adam's two moments, float32
    print(f"Monitor snapshots, {params / 1e6:.1f}M-parameter MLP + Adam (one snapshot ~{snapshot_mib:.0f} MiB), "
          "peak RSS per process\n")
    print("| snapshot refresh | peak RSS MiB |")
    print("|---|---|")
    peaks = {}
    for mode in ("fresh", "in-place"):
        out = subprocess.run([sys.executable, __file__, "--child", mode], capture_output=True, text=True, check=True)
        peaks[mode] = int(out.stdout.strip().splitlines()[-1])
        print(f"| {mode} | {peaks[mode]} |", flush=True)
    print(f"\nin place saves {peaks['fresh'] - peaks['in-place']} MiB of peak memory")
    return 0


if __name__ == "__main__":
    sys.exit(main())
