from __future__ import annotations

import pytest

from lrkit._utils import check_positive, increment_dir, unknown_name_error
from lrkit.schedules import from_spec


@pytest.mark.parametrize("bad", [True, False])
def test_booleans_are_not_numbers(bad):
    with pytest.raises(ValueError, match="not a boolean"):
        check_positive("lrf", bad)


def test_a_boolean_in_a_spec_is_refused():
    with pytest.raises(ValueError, match="lrf"):
        from_spec("linear lr0=0.1 lrf=true", total_steps=10)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "x", None])
def test_non_positive_or_non_numbers_name_the_value(bad):
    with pytest.raises(ValueError, match="start_lr="):
        check_positive("start_lr", bad)


def test_unknown_name_suggests_and_lists():
    msg = str(unknown_name_error("rule", "stepest", ["steepest", "valley"]))
    assert "Did you mean 'steepest'" in msg and "Valid: steepest, valley" in msg


def test_increment_dir_never_reuses(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run2").mkdir()
    assert increment_dir(tmp_path / "run").name == "run3"
    assert increment_dir(tmp_path / "run", exist_ok=True).name == "run"
