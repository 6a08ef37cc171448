"""Record every suite task's range test (lrkit's defaults, as ``finder_quality.py`` runs it) and compare two records.

A change to the range test's loop (its divergence stop, its steps) must say which curves it moved. This script runs
``lrkit.find_lr`` on every task of ``benchmarks/_suite.py`` (all 71: calibration and held-out sets) for seeds 0-2 and
writes ``{task/seed: [steps run, stop reason, default suggestion, losses]}``; ``--compare OLD.json`` prints the runs
whose record differs. Takes minutes (about 2 per seed on a shared 2-core machine: the recurrent tasks are slow);
``--seeds 0`` for one seed. The record is written atomically, and only at the end.

Run::

    python benchmarks/finder_curves.py /tmp/new.json                          # record
    PYTHONPATH=/path/to/old/src python benchmarks/finder_curves.py /tmp/old.json   # the same with another lrkit
    python benchmarks/finder_curves.py /tmp/new.json --compare /tmp/old.json  # record, then list what moved
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import finder_quality as fq
from _suite import TASKS, output_file, run_main, seed_list
from lrkit._utils import atomic_write_text


def record(seeds: Sequence[int]) -> dict[str, list[object]]:
    """Every task's range test with lrkit's defaults: steps run, stop reason, default suggestion (None if it has
    none) and the raw losses."""
    import lrkit

    out: dict[str, list[object]] = {}
    for name, task in TASKS.items():
        for seed in seeds:
            model, loader = fq._fresh(task, seed)
            opt = task.build_optimizer(model.parameters(), task.default_lr)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = lrkit.find_lr(model, opt, loader, loss_fn=task.loss_fn, start_lr=fq.START_LR)
            try:
                suggestion: float | None = float(r.suggestion)
            except ValueError:
                suggestion = None
            out[f"{name}/{seed}"] = [r.num_steps_run, r.stop_reason, suggestion, r.losses]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Write the record; with ``--compare``, print the runs whose stop or suggestion differs from the old record."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="where to write this lrkit's record (JSON)")
    parser.add_argument("--compare", type=Path, default=None, help="an older record to compare with")
    parser.add_argument("--seeds", nargs="*", default=["0", "1", "2"], help="seeds (default: 0 1 2)")
    args = parser.parse_args(argv)
    seeds = seed_list(parser, args.seeds)
    output_file(parser, args.out, "out")  # found now, not after every range test has run
    if args.compare is not None and not args.compare.is_file():
        parser.error(f"--compare {args.compare}: no such file; give a record this script wrote")
    new = record(seeds)
    atomic_write_text(args.out, json.dumps(new))  # a complete record or none, even when interrupted
    print(f"{len(new)} range tests recorded in {args.out}")
    if args.compare is not None:
        old = json.loads(args.compare.read_text())
        moved = [k for k in new if k in old and new[k] != old[k]]
        suggestion = [k for k in moved if new[k][2] != old[k][2]]
        print(f"{len(moved)} of {len(new)} curves differ, {len(suggestion)} default suggestions differ\n")
        print("| task/seed | steps (old → new) | stop (old → new) | suggestion (old → new) |")
        print("|---|---|---|---|")
        for k in moved:
            o, n = old[k], new[k]
            print(f"| {k} | {o[0]} → {n[0]} | {o[1]} → {n[1]} | {o[2]} → {n[2]} |")
    return 0


if __name__ == "__main__":
    run_main(main)  # Ctrl-C: one line, status 130; finished runs stay cached
