"""Bug hunt (s8b) of 8ac27ff..5d62419: the flat-curve reading and the double-dip guards of the robust rule, and the
sparse-gradient clipping of ``find_lr`` / ``lr0="auto"``.

Known answers: torch's own ``clip_grad_norm_`` rule on the dense equivalent of a sparse gradient, and the robust
rule's own validation of an option on a curve where its branch is taken (the same bad value must be refused
whichever branch the curve takes).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
import torch

import lrkit
from lrkit.finder import suggest as S
from lrkit.train.auto import _run_trial


class _SparseNet(torch.nn.Module):
    """An ``nn.Embedding(sparse=True)`` under a linear head: one sparse and two dense gradients."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(10, 4, sparse=True)
        self.head = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.emb(x))


def _data() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 10, (64,), generator=g)
    return [(x[i : i + 16], x[i : i + 16] % 2) for i in range(0, 64, 16)]


class _RecordingLBFGS(torch.optim.LBFGS):
    """LBFGS (which steps sparse gradients: it densifies them) recording the global gradient norm its closure
    leaves, i.e. after the clipping the loop applies inside the closure."""

    def __init__(self, params: Any, lr: float) -> None:
        super().__init__(params, lr=lr, max_iter=1)
        self.norms: list[float] = []

    def step(self, closure: Any) -> Any:  # type: ignore[override]
        def recording() -> Any:
            loss = closure()
            grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
            dense = [g.to_dense() if g.is_sparse else g for g in grads]
            self.norms.append(float(torch.linalg.vector_norm(torch.stack([d.norm() for d in dense]))))
            return loss

        return super().step(recording)


def test_find_lr_clips_sparse_gradients_under_a_closure_optimizer() -> None:
    # was: NotImplementedError from torch's clip_grad_norm_ (linalg_vector_norm on SparseCPU) — the closure path
    # clipped with torch's function, the plain path with lrkit's sparse-aware one
    torch.manual_seed(0)
    model = _SparseNet()
    opt = _RecordingLBFGS(model.parameters(), lr=1e-3)
    result = lrkit.find_lr(model, opt, _data(), num_steps=10, max_grad_norm=0.05)
    assert result.num_steps_run == 10
    assert opt.norms and max(opt.norms) <= 0.05 * (1 + 1e-4)  # torch's rule: scaled to max_norm (+1e-6 slack)
    torch.manual_seed(0)
    model = _SparseNet()
    free = _RecordingLBFGS(model.parameters(), lr=1e-3)
    lrkit.find_lr(model, free, _data(), num_steps=10)  # the same test unclipped: the clip had work to do
    assert min(free.norms) > 0.05


def test_lr0_auto_trial_clips_sparse_gradients_under_a_closure_optimizer() -> None:
    torch.manual_seed(0)
    model = _SparseNet()
    opt = _RecordingLBFGS(model.parameters(), lr=1e-3)
    batches = itertools.cycle(_data())
    steps, diverged, losses = _run_trial(
        model, opt, [1.0], 1e-3, 4, batches, lambda o, n: torch.optim.lr_scheduler.LambdaLR(o, lambda _: 1.0),
        None, None, 1, 0.05, torch.device("cpu"),
    )
    assert steps == 4 and not diverged and len(losses) == 4
    assert opt.norms and max(opt.norms) <= 0.05 * (1 + 1e-4)


# ---- the robust rule's options are checked whichever branch the curve takes --------------------------------------
LRS = np.logspace(-7, 1, 100)
FLAT = 1.39 + np.random.default_rng(0).normal(0, 0.01, 100) + (LRS / 0.3) ** 4  # too flat to judge, then blows up
LEARNS = 1 / (1 + LRS / 1e-3) + (LRS / 0.3) ** 4  # an ordinary curve


@pytest.mark.parametrize("curve", [FLAT, LEARNS], ids=["flat", "learns"])
@pytest.mark.parametrize(("option", "bad"), [("plateau_rise", -1.0), ("plateau_backoff_decades", math.nan),
                                             ("plateau_backoff_decades", -1.0)])
def test_suggest_robust_names_a_bad_option_on_a_flat_curve_too(curve: np.ndarray, option: str, bad: float) -> None:
    # was: refused on a curve that learns, silently ignored (a suggestion returned) on a flat one with flat=0.02
    assert S.flat_edge(LRS, FLAT) is not None and S.flat_edge(LRS, LEARNS) is None
    with pytest.raises(ValueError, match=option):
        S.suggest_robust(LRS, curve, flat=0.02, **{option: bad})
    with pytest.raises(ValueError, match=option):
        S.robust_backoff(LRS, curve, flat=0.02, **{option: bad})


@pytest.mark.parametrize(("option", "bad"), [("dip_noise", -1.0), ("dip_noise", math.nan), ("dip_passes", "six"),
                                             ("dip_passes", math.inf)])
def test_a_bad_dip_guard_is_named_with_the_cut_off_too(option: str, bad: object) -> None:
    # was: checked only while dip_rise is on; with dip_rise=None any value went through
    for fn in (S.suggest_robust, S.robust_backoff, S.robust_regime):
        with pytest.raises(ValueError, match=option):
            fn(LRS, LEARNS, **{option: bad})  # type: ignore[operator]
        with pytest.raises(ValueError, match=option):
            fn(LRS, LEARNS, dip_rise=None, **{option: bad})  # type: ignore[operator]


@pytest.mark.parametrize("curve", [np.r_[LEARNS[:-1], np.nan], LEARNS], ids=["non-finite", "finite"])
def test_robust_regime_names_a_bad_flat_on_an_explosion_too(curve: np.ndarray) -> None:
    # was: an explosion read off a non-finite loss (or stopped=True) returned before flat was looked at
    for stopped in (False, True):
        with pytest.raises(ValueError, match="flat"):
            S.robust_regime(LRS, curve, stopped=stopped, flat=-0.02)
        with pytest.raises(ValueError, match="passes"):
            S.robust_regime(LRS, curve, stopped=stopped, passes=-1.0)
    # and good values read as before
    assert S.robust_regime(LRS, curve, stopped=True, flat=0.02) == "explosion"
