"""README claims of the "Benchmarks" section and the finder benchmark's prose about the scripts (session 15, s15i).

The README lists every script under ``benchmarks/`` with the command that runs it and says the suite scripts take
``--tasks``. A script's ``--help`` must print its usage (not run the benchmark), and an unknown task name must be a
one-line argparse error naming it and the valid names (not a ``KeyError`` traceback). Nothing here trains.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from _helpers import BENCH, keep_torch_threads  # noqa: F401 (a fixture, used through pytestmark)
from _helpers import bench_script as _script

pytestmark = pytest.mark.usefixtures("keep_torch_threads")


def test_memory_copies_help_prints_usage_without_running() -> None:
    out = subprocess.run([sys.executable, str(BENCH / "memory_copies.py"), "--help"], capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "usage" in out.stdout.lower()
    for name in ("loop", "find_lr", "choose_lr0", "choose_lr0_own_snapshot"):
        assert name in out.stdout
    assert "| case |" not in out.stdout  # no table: nothing was measured


def test_memory_copies_unknown_case_is_an_error_naming_it() -> None:
    out = subprocess.run([sys.executable, str(BENCH / "memory_copies.py"), "find-lr"], capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert out.returncode == 2
    assert "'find-lr'" in out.stderr and "find_lr" in out.stderr and "choose_lr0" in out.stderr
    assert "Traceback" not in out.stderr
    assert "| case |" not in out.stdout


@pytest.mark.parametrize("script", ["miss_features", "trial_predictors", "rule_calibration"])
def test_unknown_task_is_an_argparse_error_not_a_keyerror(script: str, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    mod = _script(script, monkeypatch)
    monkeypatch.setattr(sys, "argv", [f"{script}.py", "--tasks", "bogus_task"])
    with pytest.raises(SystemExit) as info:
        mod.main()
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "'bogus_task'" in err and "digits_mlp" in err


def test_rule_calibration_takes_task_names_space_separated(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """The README: ``auto_lr.py`` and ``rule_calibration.py`` take the names space-separated."""
    mod = _script("rule_calibration", monkeypatch)
    monkeypatch.setattr(sys, "argv", ["rule_calibration.py", "--tasks", "digits_mlp", "no_such_task"])
    with pytest.raises(SystemExit):
        mod.main()
    assert "'no_such_task'" in capsys.readouterr().err


def test_compat_script_names_the_oldest_torch_pyproject_allows() -> None:
    """``tools/compat.sh``'s usage names "the oldest torch allowed"; it must be the floor of ``pyproject.toml``'s
    ``torch>=`` (the README: torch ≥ 2.4), not an older release that ``pip install -e .`` would refuse."""
    import re  # not tomllib: the suite runs on Python 3.10 too

    root = Path(__file__).resolve().parents[1]
    floor = re.search(r'^\s*"torch>=(\d+)\.(\d+)",?$', (root / "pyproject.toml").read_text(encoding="utf-8"), re.M)
    assert floor is not None
    usage = [line for line in (root / "tools" / "compat.sh").read_text(encoding="utf-8").splitlines()
             if "oldest torch allowed" in line]
    assert len(usage) == 1
    named = re.search(r"torch==(\d+)\.(\d+)", usage[0])
    assert named is not None and named.groups() == floor.groups(), usage[0]


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before:UserWarning")  # steps skipped
def test_train_run_monitor_factory_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    """"Reusing the suite": ``after_backward`` returning ``False`` skips that optimizer step, ``after_step`` returning
    ``True`` stops training, and the monitor's ``events`` list is copied into ``RunOutcome.events``."""
    suite = _script("_suite", monkeypatch)
    task = suite.TASKS["wine_mlp"]
    seen: dict[str, Any] = {}

    class Skipper:
        def __init__(self, model: torch.nn.Module, opt: torch.optim.Optimizer, sched: Any) -> None:
            self.model, self.calls, self.events = model, 0, [{"kind": "mine"}]
            seen["args"] = (type(opt).__name__, type(sched).__name__)
            seen["start"] = [p.detach().clone() for p in model.parameters()]

        def after_backward(self, loss: torch.Tensor) -> bool:
            assert all(p.grad is not None for p in self.model.parameters())  # called after loss.backward()
            return False  # skip every optimizer step

        def after_step(self) -> bool:
            self.calls += 1
            seen["unchanged"] = all(torch.equal(p, q) for p, q in zip(self.model.parameters(), seen["start"]))
            return self.calls == 4

    out = suite.train_run(task, 1e-2, seed=0, total_steps=20, monitor_factory=Skipper)
    assert out.steps == 4
    assert {"kind": "mine"} in out.events and any(e["kind"] == "stopped_by_monitor" for e in out.events)
    assert seen["args"] == (type(task.build_optimizer([torch.nn.Parameter(torch.zeros(1))], 1.0)).__name__, "LambdaLR")
    assert set(vars(out)) == {"val_loss", "final_train_loss", "diverged", "steps", "seconds", "events"}
    assert seen["unchanged"]  # every optimizer step was skipped: the weights are still the initial ones
