"""The step size an optimizer that adapts its own (Prodigy, D-Adaptation) applies: one meaning for every ``d_lr``.

Private helper shared by :class:`lrkit.Monitor` (an event's ``values["d_lr"]``) and ``lrkit.train`` (results.csv's
``d_lr/<group>`` columns), so that both report the same number for the same step.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch

__all__ = ["group_step_sizes"]


def _number(v: Any) -> float | None:
    """``v`` as a float when it is a real number (a one-element tensor included), else ``None``."""
    if isinstance(v, bool):
        return None
    if isinstance(v, numbers.Real):
        return float(v)
    if isinstance(v, torch.Tensor) and v.numel() == 1 and not (v.dtype.is_complex or v.dtype == torch.bool):
        return float(v)
    return None


def group_step_sizes(optimizer: Any) -> list[float | None]:
    """Per param group, the step size the optimizer's *next* ``step()`` applies, read from its current state; ``None``
    for a group without an adapted estimate ``d``.

    Prodigy (prodigyopt) and DAdaptAdam step by

        dlr = d * lr * sqrt(1 - beta2^(k+1)) / (1 - beta1^(k+1))     with use_bias_correction=True
        dlr = d * lr                                                  otherwise

    with ``d`` the estimate the step starts from (it stores the grown one after the update) and ``k`` the steps the
    group has taken (``group["k"]``, counted before the step). The values are plain floats, read now: an optimizer
    that grows a tensor ``d`` in place cannot change them afterwards. Read them before ``optimizer.step()`` to get
    that step's size. (Prodigy keeps one ``d`` in every group and allows a group ``lr`` of either the largest one
    or 0, so the per-group value is its single ``dlr``, or 0 for a frozen group.)

    >>> import torch
    >>> p = torch.zeros(1, requires_grad=True)
    >>> opt = torch.optim.SGD([p], lr=1.0)
    >>> opt.param_groups[0].update(d=1e-3, k=0, betas=(0.9, 0.999), use_bias_correction=True)
    >>> round(group_step_sizes(opt)[0], 9)  # 1e-3 * sqrt(1 - 0.999) / (1 - 0.9)
    0.000316228
    """
    out: list[float | None] = []
    for group in optimizer.param_groups:
        d, lr = _number(group.get("d")), _number(group.get("lr"))
        if d is None or lr is None:
            out.append(None)
            continue
        step = d * lr
        betas, k = group.get("betas"), _number(group.get("k"))
        if group.get("use_bias_correction") and isinstance(betas, (tuple, list)) and len(betas) >= 2 \
                and k is not None and k >= 0:
            b1, b2 = _number(betas[0]), _number(betas[1])
            if b1 is not None and b2 is not None:
                n = k + 1  # the step about to be taken
                denom = 1.0 - b1**n
                if denom > 0 and 1.0 - b2**n >= 0:
                    step *= math.sqrt(1.0 - b2**n) / denom
        out.append(step)
    return out
