"""Closed-form, composable, resumable LR schedules: ``lrkit.schedules``.

A schedule is a stateless function of the optimizer step: ``schedule(step)`` is the multiplier of the peak LR,
``schedule.lr(step)`` the absolute LR and ``schedule.momentum(step)`` the coupled momentum (or ``None``). Build one
from a spec — the same words in Python, YAML and on the command line — or from the family classes, and hand it
to torch with ``schedule.to_torch(optimizer)``.

>>> import torch
>>> from lrkit import schedules
>>> s = schedules.from_spec("cosine lr0=0.01 lrf=0.01 warmup_epochs=3", epochs=100, steps_per_epoch=50)
>>> round(s.lr(150), 6), round(s.lr(5000), 8)
(0.009978, 0.0001)
>>> opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.01, momentum=0.9)
>>> sched = s.to_torch(opt)   # step it after every optimizer.step()
>>> [e.name for e in schedules.available()][-3:]
['inverse_sqrt', 'plateau', 'ultralytics']
"""

from __future__ import annotations

from lrkit.schedules.base import Composed, Cooldown, Phase, Phases, Replanned, Schedule, Warmup, resolve_timeline
from lrkit.schedules.library import (
    WSD,
    Constant,
    Cosine,
    CosineRestarts,
    Cyclic,
    Exponential,
    InverseSqrt,
    Linear,
    LinearToZero,
    MultiStep,
    OneCycle,
    Polynomial,
    ReduceOnPlateau,
    StepDecay,
    ultralytics,
)
from lrkit.schedules.registry import ScheduleInfo, available, lookup, register
from lrkit.schedules.spec import from_spec, parse_spec
from lrkit.schedules.torch import LRSchedulerAdapter

__all__ = [
    "WSD",
    "Composed",
    "Constant",
    "Cooldown",
    "Cosine",
    "CosineRestarts",
    "Cyclic",
    "Exponential",
    "InverseSqrt",
    "LRSchedulerAdapter",
    "Linear",
    "LinearToZero",
    "MultiStep",
    "OneCycle",
    "Phase",
    "Phases",
    "Polynomial",
    "ReduceOnPlateau",
    "Replanned",
    "Schedule",
    "ScheduleInfo",
    "StepDecay",
    "Warmup",
    "available",
    "from_spec",
    "lookup",
    "parse_spec",
    "register",
    "resolve_timeline",
    "ultralytics",
]
