"""Session 34: one family's final-LR key given to another (``wsd lrf=0.01``, ``onecycle lrf=0.01``, ``cosine
min_lr_ratio=0.01``, ``step lrf=0.1``) got the closest spelling — "Did you mean 'lr0'?" (the peak) or
'cooldown_min_ratio' — or no hint at all (``wsd eta_min=``). Each now names the key that family sets its final LR
with, a fraction for a fraction where it has one; a family with none says so."""

from __future__ import annotations

import pytest

from lrkit.schedules import from_spec


@pytest.mark.parametrize(("spec", "hint"), [
    ("wsd lr0=0.1 decay_frac=0.2 lrf=0.01", "wsd sets its final LR with min_lr_ratio="),
    ("wsd lr0=0.1 decay_frac=0.2 eta_min=0.001", "wsd sets its final LR with min_lr_ratio="),
    ("onecycle max_lr=0.1 lrf=0.01", "onecycle sets its final LR with final_div_factor="),
    ("cosine lr0=0.1 min_lr_ratio=0.01", "cosine sets its final LR with lrf="),
    ("cosine lr0=0.1 final_div_factor=10", "cosine sets its final LR with eta_min="),
    ("step lr0=0.1 step_size=3 unit=step lrf=0.1", "step takes no final LR"),
])
def test_another_familys_final_lr_key_is_answered_with_this_ones(spec: str, hint: str) -> None:
    with pytest.raises(ValueError) as info:
        from_spec(spec, total_steps=100)
    message = str(info.value)
    assert hint in message, message
    assert "Did you mean" not in message
