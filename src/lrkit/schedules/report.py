"""Key points of a schedule record: each phase's first and last LR, the minimum and the maximum (for the CLI table).

>>> from lrkit.schedules import from_spec
>>> kp = key_points(from_spec("wsd lr0=1e-3 warmup_steps=10 decay_frac=0.2", total_steps=100).record())
>>> [(r["phase"], r["start"], r["end"]) for r in kp["phases"]]
[('warmup', 0, 9), ('stable', 10, 79), ('decay', 80, 99)]
>>> kp["max"]["lr"], kp["max"]["step"]
(0.001, 10)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["key_points"]


def key_points(record: Mapping[str, Any]) -> dict[str, Any]:
    """Summarize a ``Schedule.record()``: per phase the first/last step and LR (and momentum), plus min/max/final.

    ``end`` in a row is the last step *inside* the phase (inclusive), so the row reads "from step s to step e".
    """
    lr = list(record["lr"])
    mom = list(record["momentum"])
    n = len(lr)
    if n == 0:
        raise ValueError("the record has no steps")
    rows = []
    for ph in record.get("phases", []):
        s = int(ph["start"])
        e = n if ph["end"] is None else min(int(ph["end"]), n)
        if s >= n or e <= s:
            continue
        rows.append({
            "phase": ph["name"], "kind": ph.get("kind", ""), "start": s, "end": e - 1,
            "lr_start": lr[s], "lr_end": lr[e - 1], "momentum_start": mom[s], "momentum_end": mom[e - 1],
        })
    imin = min(range(n), key=lambda i: (lr[i], i))
    imax = min(range(n), key=lambda i: (-lr[i], i))
    return {
        "steps": n,
        "phases": rows,
        "min": {"step": imin, "lr": lr[imin]},
        "max": {"step": imax, "lr": lr[imax]},
        "first": {"step": 0, "lr": lr[0], "momentum": mom[0]},
        "last": {"step": n - 1, "lr": lr[-1], "momentum": mom[-1]},
    }
