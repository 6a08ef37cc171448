"""Benchmark scripts' ``--tasks`` takes a group's name or ``all`` besides task names (session 16): one parser,
``_suite.task_names``, in every script."""

from __future__ import annotations

import argparse

import pytest

from _helpers import bench_script, keep_torch_threads  # noqa: F401 (a fixture, used through pytestmark)

pytestmark = pytest.mark.usefixtures("keep_torch_threads")


def _parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog="bench")


def test_a_group_expands_to_its_tasks_in_the_suites_order(monkeypatch: pytest.MonkeyPatch) -> None:
    suite = bench_script("_suite", monkeypatch)
    assert suite.task_names(_parser(), "fresh11") == list(suite.FRESH11)
    assert suite.task_names(_parser(), "held_out,wine_mlp") == [*suite.HELD_OUT, "wine_mlp"]
    assert suite.task_names(_parser(), "all") == list(suite.TASKS)


def test_each_task_once_even_when_named_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    suite = bench_script("_suite", monkeypatch)
    rest = [n for n in suite.SUITE if n != "wine_mlp"]
    assert suite.task_names(_parser(), "wine_mlp,calibration") == ["wine_mlp", *rest]


@pytest.mark.parametrize("script", ["finder_quality", "monitor_recovery", "noise_floor", "auto_lr"])
def test_every_suite_script_names_an_unknown_task_with_the_groups(script: str, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    mod = bench_script(script, monkeypatch)
    with pytest.raises(SystemExit) as exc:
        mod.main(["--tasks", "fresh99"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unknown task 'fresh99'" in err and "fresh11" in err and "or all" in err
