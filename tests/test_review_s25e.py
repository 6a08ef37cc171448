"""Session 25 review (helper e): a stray RANK without a launch, resuming a run named before session 25's name
checks, and lr0=auto's plan line when a range test that stops early leaves room for trials."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import lrkit
from lrkit.cli.find import _process_rank


@pytest.mark.parametrize(("env", "expected"), [
    ({"RANK": "1"}, (0, 1, False)),  # no WORLD_SIZE: no launch of several processes, one process alone
    ({"RANK": "3", "WORLD_SIZE": "2"}, (0, 1, False)),  # a rank past the world: not a launch's own values
    ({"RANK": "1", "WORLD_SIZE": "1"}, (0, 1, False)),
    ({"RANK": "1", "WORLD_SIZE": "2"}, (1, 2, False)),  # torchrun's rank 1 of 2
    ({"RANK": "0", "WORLD_SIZE": "4"}, (0, 4, False)),
    ({}, (0, 1, False)),
])
def test_lrkit_find_reads_a_rank_only_from_a_launch_it_belongs_to(monkeypatch, env, expected) -> None:
    # RANK=1 left in a shell's environment made `lrkit find` run its test, print nothing, write nothing, exit 0
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert _process_rank() == expected


def test_a_run_named_as_an_earlier_lrkit_allowed_still_resumes(tmp_path) -> None:
    # name='exp ' (an edge space) trained before session 25; its checkpoint's config records that name, and the
    # resume re-validated it under the new rule: "name='exp ' has a part that ... starts or ends with a space"
    lrkit.train(data="iris", epochs=1, project=str(tmp_path), name="exp", verbose=False, plots=False, monitor=False)
    last = Path(tmp_path) / "exp" / "last.pt"
    ck = torch.load(last, weights_only=True)
    ck["config"]["name"] = "exp "
    torch.save(ck, last)
    results = lrkit.train(data="iris", epochs=2, project=str(tmp_path), resume=str(last), verbose=False,
                          plots=False, monitor=False)
    assert results.epochs_run == 2
    # a name given now is still checked
    with pytest.raises(ValueError, match="starts or ends with a space"):
        lrkit.train(data="iris", epochs=3, project=str(tmp_path), resume=True, name="exp ", verbose=False,
                    plots=False, monitor=False)


class _Stop(Exception):
    pass


def test_lr0_auto_plan_line_says_trials_may_still_run_when_the_range_test_stops_early(tmp_path, monkeypatch,
                                                                                      capsys) -> None:
    # 300 steps at the default budget: 90 extra steps, a range test of 75, 15 left (< 2 trials of 8) — but a range
    # test that diverges by step 74 leaves 16, and choose_lr0 then runs trials (the usual case): the line said
    # "leaves no room for confirmation trials" and then two trials ran
    import lrkit.train.auto as auto

    def stop(*args, **kwargs):
        raise _Stop

    monkeypatch.setattr(auto, "choose_lr0", stop)
    with pytest.raises(_Stop):
        lrkit.train(data="synthetic-classification", model="linear", epochs=3, batch=8, nbs=8, lr0="auto",
                    project=str(tmp_path), plots=False, monitor=False)
    out = " ".join(capsys.readouterr().out.split())
    assert "range test, then confirmation trials only if it stops early, by step 74 of its 75" in out
    assert "a run of 300 steps leaves no room for them after a full test" in out


def test_lr0_auto_plan_line_with_no_room_at_all_says_range_test_only(tmp_path, monkeypatch, capsys) -> None:
    import lrkit.train.auto as auto

    def stop(*args, **kwargs):
        raise _Stop

    monkeypatch.setattr(auto, "choose_lr0", stop)
    with pytest.raises(_Stop):  # 50 steps: 15 extra, under two trials of 8 whatever the range test does
        lrkit.train(data="synthetic-classification", model="linear", epochs=1, batch=16, nbs=16, lr0="auto",
                    project=str(tmp_path), plots=False, monitor=False)
    out = " ".join(capsys.readouterr().out.split())
    assert "lr0=auto — range test only, within 30% extra compute (a run of 50 steps" in out
    assert "only if it stops early" not in out
