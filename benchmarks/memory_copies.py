"""Memory of lrkit's range test and lr0="auto" on a ~25M-parameter MLP with Adam, one fresh process per case.

Live memory is malloc's count of bytes handed out (glibc's mallinfo2: mmapped blocks + heap in use), with
MALLOC_MMAP_THRESHOLD_=65536 so every tensor storage is its own mmapped block: exact, sampled at every step through
``progress=``. "Copies" are multiples of the parameters' size. Linux (glibc) only.

Run (prints a Markdown table; ~1 minute)::

    python benchmarks/memory_copies.py                                    # loop, find_lr, choose_lr0
    python benchmarks/memory_copies.py choose_lr0_own_snapshot choose_lr0  # lr0="auto" with a second snapshot vs one
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import resource
import subprocess
import sys
import warnings

import torch

W, DEPTH, BATCH = 2048, 6, 64
CASES = ("loop", "find_lr", "choose_lr0", "choose_lr0_own_snapshot")
DEFAULT_CASES = ("loop", "find_lr", "choose_lr0")


class _MI(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                                                 "uordblks", "fordblks", "keepcost")]


_libc = ctypes.CDLL("libc.so.6")
_libc.mallinfo2.restype = _MI
PEAK = [0.0]


def live() -> float:
    gc.collect()
    mi = _libc.mallinfo2()
    return (mi.hblkhd + mi.uordblks) / 2**20


def progress(*args: object) -> None:
    PEAK[0] = max(PEAK[0], live())


def build() -> tuple[torch.nn.Module, torch.optim.Optimizer, list[tuple[torch.Tensor, torch.Tensor]]]:
    torch.manual_seed(0)
    layers = []
    for _ in range(DEPTH):
        layers += [torch.nn.Linear(W, W), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers, torch.nn.Linear(W, 1), torch.nn.Flatten(0))
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(1)
    data = [(torch.randn(BATCH, W, generator=g), torch.randn(BATCH, generator=g)) for _ in range(8)]
    return model, opt, data


def step(model: torch.nn.Module, opt: torch.optim.Optimizer, data: list[tuple[torch.Tensor, torch.Tensor]],
         i: int) -> None:
    x, y = data[i % len(data)]
    opt.zero_grad(set_to_none=True)
    torch.nn.functional.mse_loss(model(x), y).backward()
    opt.step()


def case(name: str) -> None:
    warnings.simplefilter("ignore")
    model, opt, data = build()
    copy = sum(p.numel() for p in model.parameters()) * 4 / 2**20
    for i in range(2):
        step(model, opt, data, i)  # grads + Adam state exist, as mid-training
    before = live()
    if name == "loop":
        for i in range(5):
            step(model, opt, data, i)
            progress()
    elif name == "find_lr":
        import lrkit
        lrkit.find_lr(model, opt, data, num_steps=20, end_lr=1e-2, progress=progress)
    elif name.startswith("choose_lr0"):
        if name == "choose_lr0_own_snapshot":  # find_lr inside takes a snapshot of its own (before session 12)
            from lrkit.finder import range_test
            range_test._caller_snapshot = lambda model, optimizer: None
        from torch.optim.lr_scheduler import LambdaLR

        from lrkit.train.auto import choose_lr0
        choose_lr0(model, opt, data, None, total_steps=100, make_scheduler=lambda o, n: LambdaLR(o, lambda s: 1.0),
                   budget=0.4, num_candidates=2, finder_kwargs={"num_steps": 20, "progress": progress})
    after = live()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    extra = (PEAK[0] - before) / copy
    print(f"| {name} | {before:.0f} | {PEAK[0]:.0f} (+{extra:.2f} copies) | {after:.0f} | {rss:.0f} |")


if __name__ == "__main__":
    if os.environ.get("LRKIT_MEMORY_CHILD"):
        case(sys.argv[1])
    else:
        parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
        parser.add_argument("cases", nargs="*", metavar="CASE",
                            help=f"cases to measure, each in a fresh process, from: {', '.join(CASES)} "
                                 f"(default: {' '.join(DEFAULT_CASES)})")  # fmt: skip
        cases = parser.parse_args().cases or list(DEFAULT_CASES)
        for c in cases:  # not argparse's choices=: with nargs="*" it rejects the empty default before Python 3.12
            if c not in CASES:
                parser.error(f"unknown case {c!r}; valid: {', '.join(CASES)}")
        print(f"1 copy of the parameters = {sum(p.numel() for p in build()[0].parameters()) * 4 / 2**20:.0f} MiB")
        print("| case | live before (MiB) | live peak during (MiB) | live after (MiB) | peak RSS (MiB) |")
        print("|---|---|---|---|---|")
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "LRKIT_MEMORY_CHILD": "1"}
        for c in cases:
            subprocess.run([sys.executable, __file__, c], check=True, env=env)
