"""benchmarks/train_auto.py (session 32): the fresh set of lrkit.train tasks (``--tasks fresh-train1``, data drawn by
scikit-learn and saved as .npz), the task groups, the geometric-mean regret the rescue table now prints, and that
``--monitor-options '{"val_patience": 3}'`` reaches ``lrkit.Monitor``. Nothing here trains a fresh-set task."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from _helpers import cached_rescue, keep_torch_threads, spy_monitors, train_auto_script  # noqa: F401 (fixtures: usefixtures, ta)

pytestmark = pytest.mark.usefixtures("keep_torch_threads")


def test_the_fresh_sets_data_is_drawn_the_same_every_time_with_the_registered_shapes(ta: Any, tmp_path: Path) -> None:
    expected = {  # x's shape, classes (None: a float regression target), labels flipped
        "moons_mlp": ((1000, 2), 2), "circles_mlp_sgd": ((1000, 2), 2), "diabetes_mlp": ((442, 10), None),
        "friedman1_mlp_adam": ((1500, 10), None), "blobs_mlp_rmsprop": ((1200, 10), 5),
        "digits_noisy20_mlp": ((1797, 1, 8, 8), 10), "breast_cancer_noisy_mlp_sgd": ((569, 30), 2),
        "wine_noisy_linear_adam": ((178, 13), 3),
    }
    assert set(ta.GROUPS["fresh-train1"]) == set(expected) and not set(expected) & set(ta.GROUPS["all"])
    for name, (shape, classes) in expected.items():
        first, second = tmp_path / name / "a", tmp_path / name / "b"
        first.mkdir(parents=True)
        second.mkdir()
        a = np.load(ta.generated_npz(first, ta.TASKS[name].data))
        b = np.load(ta.generated_npz(second, ta.TASKS[name].data))
        assert a["x"].shape == shape and a["x"].dtype == np.float32
        assert np.array_equal(a["x"], b["x"]) and np.array_equal(a["y"], b["y"])
        if classes is None:
            assert a["y"].dtype == np.float32
        else:
            assert a["y"].dtype == np.int64 and sorted(set(a["y"].tolist())) == list(range(classes))


def test_the_noisy_fresh_tasks_flip_their_registered_share_of_labels(ta: Any, tmp_path: Path) -> None:
    import sklearn.datasets as ds

    for name, loader, share in (("digits_noisy20_mlp", ds.load_digits, 0.2),
                                ("breast_cancer_noisy_mlp_sgd", ds.load_breast_cancer, 0.1),
                                ("wine_noisy_linear_adam", ds.load_wine, 0.15)):  # fmt: skip
        y = np.load(ta.generated_npz(tmp_path, ta.TASKS[name].data))["y"]
        clean = loader().target
        assert int((y != clean).sum()) == round(share * len(clean))


def test_an_unknown_generated_name_is_refused_naming_the_valid_ones(ta: Any, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"data='gen:nope'; generated data: gen:moons, .*gen:wine_noisy15"):
        ta.generated_npz(tmp_path, "gen:nope")


def test_geometric_regret_weighs_a_halved_loss_as_a_doubled_one(ta: Any) -> None:
    assert ta.geometric_regret([1.0, -0.5]) == pytest.approx(0.0)
    assert ta.geometric_regret([0.21, 0.0]) == pytest.approx(0.1)
    assert ta.geometric_regret([0.1, math.inf]) == math.inf
    assert math.isnan(ta.geometric_regret([]))


def test_the_rescue_table_prints_the_geometric_means_of_the_monitor_on_side(ta: Any, monkeypatch: pytest.MonkeyPatch,
                                                                             capsys: Any) -> None:
    grid = ta.default_grid()
    best = grid[10]
    rec = lambda v: {"final_val_loss": v, "events": {}}
    off = {f"{ta.run_key(lr)}/{s}": rec(1.0 + abs(math.log10(lr / best))) for lr in grid for s in ta.SEEDS}
    # with the monitor: 1.1 at the best LR (+10%), 1.44 at 10x (+44%), 1.0 at 31.6x (+0%)
    on = {k: rec({ta.run_key(best): 1.1, ta.run_key(grid[14]): 1.44}.get(k.split("/")[0], 1.0)) for k in off}
    out = cached_rescue(ta, monkeypatch, capsys, "digits_mlp", on, off)
    assert "geometric-mean regret with the monitor: healthy runs +10.0% over 1 tasks, 10x/31.6x settings +20.0% " \
           "over 2" in out


def test_tasks_takes_a_group_name_and_an_unknown_name_lists_the_groups(ta: Any, monkeypatch: pytest.MonkeyPatch,
                                                                       capsys: Any) -> None:
    seen: list[list[str]] = []
    monkeypatch.setattr(ta, "print_rescue", lambda names, *a: seen.append(list(names)))
    assert ta.main(["--tasks", "fresh-train1", "--rescue"]) == 0
    assert seen == [list(ta.FRESH_TRAIN1)]
    with pytest.raises(SystemExit):
        ta.main(["--tasks", "fresh-train2"])
    assert "or a group: all, fresh-train1" in capsys.readouterr().err


def test_val_patience_in_the_monitor_options_reaches_the_monitor(ta: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    made = spy_monitors(monkeypatch)
    ta.train_once(ta.TASKS["wine_linear_adam"], 0.01, 0, True, ta.MONITOR_PREFIX + '{"val_patience": 3}')
    assert [c.patience for c in made[0].checks if c.name == "val_rising"] == [3]
