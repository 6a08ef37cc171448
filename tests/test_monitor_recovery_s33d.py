"""benchmarks/monitor_recovery.py (session 33): the geometric-mean regret line that the sixteenth held-out set's
pre-registered rule reads, and the group of that set. Nothing is trained: the oracle and the runs are stubbed."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import pytest

from _helpers import bench_script


def _stubbed(monkeypatch: pytest.MonkeyPatch, losses: dict[tuple[float, bool], float]) -> Any:
    """monitor_recovery with an oracle of loss 1.0 at LR 0.01 and runs whose val loss is ``losses[(mult, monitored)]``
    (every seed the same)."""
    mod = bench_script("monitor_recovery", monkeypatch)
    monkeypatch.setattr(mod, "oracle", lambda task, progress=None: SimpleNamespace(best_lr=0.01, best_loss=1.0))

    def one_run(task: Any, lr: float, seed: int, options: Any) -> dict[str, Any]:
        loss = losses[(round(lr / 0.01, 6), options is not None)]
        return {"seed": seed, "val_loss": loss, "diverged": not math.isfinite(loss), "steps": 1,
                "events": 0, "event_list": [], "rollbacks": 0, "lr_scale": 1.0, "stopped": False}

    monkeypatch.setattr(mod, "one_run", one_run)
    return mod


def test_the_geometric_means_of_the_monitored_settings_are_printed(monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    losses = {(1, False): 1.0, (1, True): 1.21, (10, False): 3.0, (10, True): 2.0, (30, False): 9.0, (30, True): 0.5}
    mod = _stubbed(monkeypatch, losses)
    assert mod.main(["--tasks", "wine_mlp", "--no-save", "--pairs", "0", "--seeds", "0"]) == 0
    out = capsys.readouterr().out
    # oracle LR: 1.21 -> +21.00%; high LR: sqrt(2.0 * 0.5) - 1 = 0
    assert "- geometric-mean regret with the monitor (settings, median of seeds): oracle LR +21.00% over 1, high LR " \
           "+0.00% over 2" in out


def test_a_diverged_monitored_setting_makes_the_high_lr_mean_diverged(monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    losses = {(1, False): 1.0, (1, True): 1.0, (10, False): 3.0, (10, True): math.inf, (30, False): 9.0,
              (30, True): 1.1}
    mod = _stubbed(monkeypatch, losses)
    assert mod.main(["--tasks", "wine_mlp", "--no-save", "--pairs", "0", "--seeds", "0"]) == 0
    assert "oracle LR +0.00% over 1, high LR diverged over 2" in capsys.readouterr().out


def test_only_healthy_runs_print_none_for_the_high_lr_mean(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    mod = _stubbed(monkeypatch, {(1, False): 1.0, (1, True): 1.0})
    assert mod.main(["--tasks", "wine_mlp", "--no-save", "--pairs", "0", "--seeds", "0", "--mults", "1"]) == 0
    assert "high LR none over 0" in capsys.readouterr().out


def test_the_sixteenth_held_out_set_is_a_group_left_out_of_the_pooled_finder_tables(
        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    _suite, pooled = bench_script("_suite", monkeypatch), bench_script("pooled", monkeypatch)

    assert _suite.FRESH15 == ("digits_noisy15_mlp_sgd", "breast_cancer_mlp_adam", "wine_noisy_mlp_rmsprop",
                              "moons_deep_adamw", "diabetes_mlp_sgd", "quantiles3_mlp_adam")
    assert all(_suite.TASKS[n].held_out for n in _suite.FRESH15) and "fresh15" in pooled.NOT_POOLED
