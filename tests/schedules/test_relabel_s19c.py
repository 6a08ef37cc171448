"""A schedule moved to another peak by ``with_peak`` is labelled with that peak (session 19c).

Before, the label kept the spec's ``lr0=``: ``lr0="auto"`` moving ``cosine lr0=0.001`` to 0.00113 produced warnings,
plots and resume messages naming ``lr0=0.001`` for a run at 0.00113.
"""

from __future__ import annotations

import pytest
import torch

from lrkit.schedules import from_spec
from lrkit.schedules.report import sampled_record


def test_with_peak_renames_the_spec_lr0() -> None:
    s = from_spec("cosine lr0=0.001 lrf=0.01", total_steps=100)
    moved = s.with_peak(0.00113)
    assert moved.label == "cosine lr0=0.00113 lrf=0.01"
    assert s.label == "cosine lr0=0.001 lrf=0.01"  # the original is untouched
    assert "0.00113" in repr(moved)


def test_a_token_already_at_the_peak_stays_as_typed() -> None:
    s = from_spec("cosine lr0=1e-3 lrf=0.01", total_steps=100)
    assert s.with_peak(0.001).label == s.label


def test_one_cycle_max_lr_and_wrappers_follow() -> None:
    one = from_spec("onecycle max_lr=0.1", total_steps=100)
    assert one.with_peak(0.2).label == "onecycle max_lr=0.2"
    warm = from_spec("cosine lr0=0.1 lrf=0.01 warmup_steps=5", total_steps=100)
    moved = warm.with_peak(0.3)
    assert "lr0=0.3" in moved.label and "lr0=0.1" not in moved.label
    assert "lr0=0.3" in moved.replan(at_step=10, total_steps=200).label


def test_a_label_without_a_peak_token_is_left_alone() -> None:
    s = from_spec("cosine lrf=0.01", total_steps=10)
    assert s.with_peak(0.2).label == "cosine lrf=0.01"
    s.label = "my_lr0=0.5 cosine"  # a user's own label: only a whole lr0=/max_lr= token is a peak
    assert s.with_peak(0.2).label == "my_lr0=0.5 cosine"


def test_records_drawn_at_a_base_lr_name_it() -> None:
    s = from_spec("cosine lr0=0.1 lrf=0.01", total_steps=50)
    assert s.record(base_lr=0.5)["label"] == "cosine lr0=0.5 lrf=0.01"
    assert sampled_record(s, base_lr=0.5)["label"] == "cosine lr0=0.5 lrf=0.01"
    assert s.record()["label"] == "cosine lr0=0.1 lrf=0.01"


def test_resume_mismatch_names_the_peaks_really_used() -> None:
    s = from_spec("cosine lr0=0.001 lrf=0.01", total_steps=100)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    state = s.with_peak(0.00113).to_torch(opt).state_dict()
    opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    other = s.to_torch(opt2)
    with pytest.raises(ValueError, match=r"lr0=0\.00113") as e:
        other.load_state_dict(state)
    assert "'cosine lr0=0.001 lrf=0.01'" in str(e.value)  # the current one, as its spec says
