"""Optimizers for :func:`lrkit.train` by Ultralytics' names, and what ``optimizer="auto"`` picks and why.

``optimizer="auto"`` picks only the *family* — it never touches an explicit ``lr0`` (unlike Ultralytics, where
"auto" silently replaces it: ultralytics#8400):

* ``AdamW`` for language models (Transformers train with adaptive methods);
* ``SGD`` (momentum, Nesterov) for runs longer than 10,000 optimizer steps — the threshold Ultralytics uses;
* ``AdamW`` for shorter runs, where an adaptive method gets further in the few steps there are.

>>> choose_optimizer("auto", total_steps=500, task="classification")[0]
'AdamW'
>>> choose_optimizer("auto", total_steps=50_000, task="classification")[0]
'SGD'
>>> OPTIMIZERS["SGD"].default_lr, OPTIMIZERS["AdamW"].default_lr
(0.01, 0.001)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from lrkit._utils import canonical_name

__all__ = ["AUTO_SGD_MIN_STEPS", "OPTIMIZERS", "OptimInfo", "build_optimizer", "choose_optimizer"]

#: optimizer="auto" picks SGD for runs longer than this many optimizer steps (Ultralytics' threshold).
AUTO_SGD_MIN_STEPS = 10_000


@dataclass(frozen=True)
class OptimInfo:
    """A registry entry: the torch class, how ``momentum`` maps onto it, its default ``lr0``, a description."""

    name: str
    make: Callable[[list[dict[str, Any]], float, float], torch.optim.Optimizer]
    default_lr: float
    description: str


def _betas(cls: type[torch.optim.Optimizer]) -> Callable[[list[dict[str, Any]], float, float], torch.optim.Optimizer]:
    # Ultralytics uses momentum as Adam's beta1 (and warmup_momentum warms it up)
    return lambda groups, lr, momentum: cls(groups, lr=lr, betas=(momentum, 0.999))


OPTIMIZERS: dict[str, OptimInfo] = {
    o.name: o
    for o in (
        OptimInfo("SGD", lambda g, lr, m: torch.optim.SGD(g, lr=lr, momentum=m, nesterov=m > 0), 0.01,
                  "SGD with Nesterov momentum (momentum=momentum)"),
        OptimInfo("Adam", _betas(torch.optim.Adam), 0.001, "Adam, betas=(momentum, 0.999), L2 weight decay"),
        OptimInfo("AdamW", _betas(torch.optim.AdamW), 0.001, "AdamW, betas=(momentum, 0.999), decoupled decay"),
        OptimInfo("NAdam", _betas(torch.optim.NAdam), 0.001, "NAdam, betas=(momentum, 0.999)"),
        OptimInfo("RAdam", _betas(torch.optim.RAdam), 0.001, "RAdam, betas=(momentum, 0.999)"),
        OptimInfo("Adamax", _betas(torch.optim.Adamax), 0.001, "Adamax, betas=(momentum, 0.999)"),
        OptimInfo("RMSProp", lambda g, lr, m: torch.optim.RMSprop(g, lr=lr, momentum=m), 0.01,
                  "RMSprop with momentum=momentum"),
    )
}


def choose_optimizer(name: str, *, total_steps: int, task: str | None) -> tuple[str, str]:
    """``(optimizer name, why)``: ``name`` itself (in its registry spelling, matched in any case) unless it is
    ``"auto"`` (see the module docstring).

    >>> choose_optimizer("adamw", total_steps=100, task=None)
    ('AdamW', 'as requested')
    """
    name = canonical_name("optimizer", name, ["auto", *OPTIMIZERS])
    if name != "auto":
        return name, "as requested"
    if task == "lm":
        return "AdamW", "optimizer=auto: AdamW for a language model (Transformers train with adaptive methods)"
    if total_steps > AUTO_SGD_MIN_STEPS:
        return "SGD", (f"optimizer=auto: SGD for a long run ({total_steps:,} optimizer steps > "
                       f"{AUTO_SGD_MIN_STEPS:,}; momentum SGD generalises as well as adaptive methods given the time)")
    return "AdamW", (f"optimizer=auto: AdamW for a short run ({total_steps:,} optimizer steps <= "
                     f"{AUTO_SGD_MIN_STEPS:,}; an adaptive method gets further in few steps)")


def build_optimizer(name: str, groups: list[dict[str, Any]], *, lr: float, momentum: float) -> torch.optim.Optimizer:
    """The torch optimizer ``name`` (any case) over ``groups`` (each group keeps its own ``lr``/``weight_decay``/extra
    keys). ``momentum`` is SGD's and RMSprop's momentum and the Adam family's ``beta1``; no optimizer drops it.

    >>> p = torch.nn.Parameter(torch.zeros(2))
    >>> build_optimizer("adam", [{"params": [p]}], lr=0.1, momentum=0.9).param_groups[0]["betas"]
    (0.9, 0.999)
    """
    return OPTIMIZERS[canonical_name("optimizer", name, OPTIMIZERS)].make(groups, lr, momentum)
