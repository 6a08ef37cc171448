"""Review of session 26: Lightning's ddp_spawn hand-back (FindLRCallback / ChooseLRCallback's temporary file).

An unread hand-back file from an earlier ddp_spawn fit must not overwrite what this process set later.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import torch

pl = pytest.importorskip("lightning.pytorch")

from test_autopredict_ddpspawn_s26a import Net as _Net  # noqa: E402  (the same module, importable by name)


def _loader() -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)


def _fit_here(cb: Any) -> _Net:
    net = _Net()
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=2, logger=False, enable_progress_bar=False,
                         enable_checkpointing=False, enable_model_summary=False, callbacks=[cb])
    trainer.fit(net, _loader())
    return net


def _unread_spawn_record(cb: Any, lr: float) -> None:
    """What an earlier ``ddp_spawn`` fit's local rank 0 left for the launching process (``_send``), never read."""
    with open(cb._outbox, "w", encoding="utf-8") as f:
        json.dump({"lr": lr, "attr_lr": None, "result": None}, f)


def test_a_later_fit_in_this_process_is_not_overwritten_by_an_unread_spawn_record() -> None:
    """A ddp_spawn fit whose results were not looked at, then a fit in this process: before, reading ``.lr`` took the
    earlier fit's file and said its LR (123.0), not the LR the later fit trains at; now the later fit's."""
    from lrkit.integrations.lightning import FindLRCallback

    cb = FindLRCallback(num_steps=20)
    _unread_spawn_record(cb, 123.0)
    net = _fit_here(cb)
    assert cb.lr is not None and cb.lr != 123.0
    assert cb.lr == pytest.approx(net.lr)  # the LR the fit trained at
    assert not os.path.exists(cb._outbox)


def test_a_resumed_state_is_not_overwritten_by_an_unread_spawn_record() -> None:
    """``load_state_dict`` (a resumed fit's callback state) after an unread spawn record: before, ``.lr`` said the
    stale record's LR; now the state's."""
    from lrkit.integrations.lightning import FindLRCallback

    cb = FindLRCallback(num_steps=20)
    _unread_spawn_record(cb, 123.0)
    cb.load_state_dict({"lr": 0.5})
    assert cb.lr == 0.5


def test_choose_lr_hand_back_keeps_the_auto_record_and_its_range_test_together() -> None:
    """What a spawned rank's ChooseLRCallback hands back (its ``_send`` record), read in the launching process:
    before, ``.auto.finder`` was ``None`` there while ``.result`` held the range test (in a fit in this process
    ``.auto.finder is .result``), so ``cb.auto.finder.plot()`` failed only under ddp_spawn; now it is ``.result``, and
    the record reads back the same."""
    import math

    from lrkit.finder.result import FinderResult
    from lrkit.integrations.lightning import ChooseLRCallback
    from lrkit.train.auto import AutoLR, Trial

    lrs = [10 ** (-5 + 4 * i / 59) for i in range(60)]
    curve = FinderResult(lrs=lrs, losses=[1.0 + (math.log10(lr) + 2) ** 2 for lr in lrs], num_steps=60)
    rank = ChooseLRCallback(log=False)  # the rank's copy, as the fit left it
    rank.auto = AutoLR(lr=0.02, finder=curve, trials=[Trial(0.01, 0.5, 16), Trial(0.02, 0.4, 16)], extra_steps=32,
                       extra_fraction=0.1, reason="stepped up", trial_steps=16)
    rank.result, rank.lr = curve, 0.02
    cb = ChooseLRCallback(log=False)
    with open(cb._outbox, "w", encoding="utf-8") as f:
        json.dump(rank._sent_record(), f)
    assert cb.auto is not None and cb.auto.lr == 0.02
    assert isinstance(cb.result, FinderResult) and cb.auto.finder is cb.result
    assert cb.auto.to_dict() == rank.auto.to_dict()
