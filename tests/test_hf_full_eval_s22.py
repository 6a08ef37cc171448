"""``fp16_full_eval`` / ``bf16_full_eval``: the Trainer's ``__init__`` leaves the model where it is and ``train()``
moves it to ``args.device`` before its first step. ``find_trainer_lr`` / ``choose_trainer_lr`` train, so they move it
first, as ``train()`` does — on a GPU a model left on the CPU met batches ``_prepare_inputs`` had put on the GPU, an
error from inside torch. (On this CPU-only machine ``args.device`` is the CPU: the tests check that the move is made,
and made before the range test's first forward.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("transformers")

from lrkit.integrations.transformers import choose_trainer_lr, find_trainer_lr
from test_hf_finder_s22b import Reg, _trainer


class _Watched(Reg):
    """Records whether the Trainer had moved it when its first forward ran."""

    def __init__(self) -> None:
        super().__init__()
        self.moved_at_first_forward: bool | None = None
        self.moved = False

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if self.moved_at_first_forward is None:
            self.moved_at_first_forward = self.moved
        return super().forward(x, labels)


@pytest.mark.parametrize("call", [find_trainer_lr, choose_trainer_lr])
@pytest.mark.parametrize("full_eval", ["bf16_full_eval", None])
def test_a_full_eval_trainers_model_is_placed_before_the_range_test(tmp_path: Path, call: Any,
                                                                    full_eval: str | None) -> None:
    model = _Watched()
    kw = {full_eval: True} if full_eval else {}
    trainer = _trainer(tmp_path, model=model, max_steps=60, **kw)
    moves: list[torch.device] = []

    def move(m: torch.nn.Module, device: torch.device) -> None:
        moves.append(device)
        model.moved = True
        m.to(device)

    trainer._move_model_to_device = move  # type: ignore[method-assign]
    if call is choose_trainer_lr:
        call(trainer, budget=0.5, set_lr=False)
    else:
        call(trainer, num_steps=20, set_lr=False)
    if full_eval:
        assert moves == [trainer.args.device] and model.moved_at_first_forward is True
    else:  # the Trainer placed it in __init__: nothing to move
        assert moves == [] and model.moved_at_first_forward is False
