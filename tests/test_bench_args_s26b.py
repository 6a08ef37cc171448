"""What a user walking the README's benchmark commands gets wrong, and what the scripts say (session 26b).

Every bad value is a one-line argparse error (exit status 2) naming the flag, the value and what would be valid —
before any training runs (the heavy functions are replaced by ones that fail the test if called) — never a
traceback from deep inside statistics, numpy or torch, and never a silently empty or nonsensical table. An output
file that cannot be written is found before the run, not after it; results are written atomically.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from _helpers import BENCH, bench_script, keep_torch_threads  # noqa: F401 (a fixture, used through pytestmark)

pytestmark = pytest.mark.usefixtures("keep_torch_threads")

ROOT = BENCH.parent


@pytest.fixture(autouse=True)
def _results_elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a script under test would write goes to a temporary folder, never to benchmarks/results/ (a
    regression that let a refused run go on must not replace a recorded result)."""
    suite = bench_script("_suite", monkeypatch)
    monkeypatch.setattr(suite, "RESULTS_DIR", tmp_path / "results")
    monkeypatch.setattr(bench_script("monitor_recovery", monkeypatch), "RESULT_PATH",
                        tmp_path / "results" / "monitor_recovery.json")
    monkeypatch.setattr(bench_script("auto_lr", monkeypatch), "CACHE_DIR", tmp_path / "results" / "auto_lr")


def _forbid(monkeypatch: pytest.MonkeyPatch, mod: ModuleType, *names: str) -> None:
    """Make ``mod.<name>`` fail the test if the script gets as far as calling it (no benchmark runs in a test)."""
    for name in names:
        def ran(*args: Any, _name: str = name, **kwargs: Any) -> Any:
            raise AssertionError(f"the benchmark ran ({_name}) instead of refusing its arguments")

        monkeypatch.setattr(mod, name, ran)


def _refused(call: Any, capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``call()``, expect an argparse error (exit 2), return its stderr."""
    with pytest.raises(SystemExit) as exc:
        call()
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    assert "Traceback" not in err
    return err


def _main_with_argv(mod: ModuleType, argv: list[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """For scripts whose ``main()`` reads ``sys.argv``."""
    monkeypatch.setattr(sys, "argv", [f"{mod.__name__}.py", *argv])
    return mod.main


# ------------------------------------------------------------------------------------------------ --tasks, shared
@pytest.mark.parametrize(("script", "heavy"), [("finder_quality", "oracle"), ("monitor_recovery", "oracle"),
                                               ("noise_floor", "oracle"), ("trial_predictors", "oracle")])
@pytest.mark.parametrize("value", ["", ",", " , "])
def test_no_task_at_all_is_an_error_not_an_empty_table(script: str, heavy: str, value: str,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    mod = bench_script(script, monkeypatch)
    _forbid(monkeypatch, mod, heavy)
    err = _refused(lambda: mod.main(["--tasks", value]), capsys)
    assert "--tasks: no task named" in err and "fresh11" in err and "all" in err


def test_miss_features_and_rule_calibration_refuse_no_task(monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    mod = bench_script("miss_features", monkeypatch)
    _forbid(monkeypatch, mod, "oracle")
    assert "no task named" in _refused(_main_with_argv(mod, ["--tasks", ""], monkeypatch), capsys)
    mod = bench_script("rule_calibration", monkeypatch)
    _forbid(monkeypatch, mod, "oracle", "curves")
    assert "no task named" in _refused(_main_with_argv(mod, ["--tasks"], monkeypatch), capsys)


def test_auto_lr_tasks_flag_with_no_names_is_an_error_not_the_whole_suite(monkeypatch: pytest.MonkeyPatch,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    mod = bench_script("auto_lr", monkeypatch)
    _forbid(monkeypatch, mod, "oracle", "run_task", "horizon_bias")
    assert "--tasks: no task named" in _refused(lambda: mod.main(["--tasks"]), capsys)


# --------------------------------------------------------------------------------------------------- finder_quality
def test_finder_quality_refuses_no_method(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    mod = bench_script("finder_quality", monkeypatch)
    _forbid(monkeypatch, mod, "oracle")
    err = _refused(lambda: mod.main(["--tasks", "wine_mlp", "--methods", ","]), capsys)
    assert "--methods: no method named" in err and "torch-lr-finder" in err


@pytest.mark.parametrize("where", ["folder", "under_a_file"])
def test_finder_quality_json_that_cannot_be_written_is_refused_before_the_run(
        where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    mod = bench_script("finder_quality", monkeypatch)
    _forbid(monkeypatch, mod, "oracle")
    (tmp_path / "a_file").write_text("x")
    out = tmp_path if where == "folder" else tmp_path / "a_file" / "out.json"
    err = _refused(lambda: mod.main(["--tasks", "wine_mlp", "--quick", "--json", str(out)]), capsys)
    assert f"--json {out}" in err
    assert ("is a folder" in err) if where == "folder" else ("cannot write" in err)
    assert (tmp_path / "a_file").read_text() == "x"


def test_output_file_accepts_a_new_file_in_a_new_folder_and_leaves_nothing_behind(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    suite = bench_script("_suite", monkeypatch)
    out = suite.output_file(argparse.ArgumentParser(), tmp_path / "new" / "out.json", "--json")
    assert out == tmp_path / "new" / "out.json"
    assert list((tmp_path / "new").iterdir()) == []  # the probe is gone and the file is not written yet


def test_a_missing_peer_names_the_bench_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    mod = bench_script("finder_quality", monkeypatch)
    task = mod.TASKS["wine_mlp"]
    for module, run in (("torch_lr_finder", mod.run_torch_lr_finder), ("lightning", mod.run_lightning)):
        monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
        if module == "lightning":
            monkeypatch.setitem(sys.modules, "lightning.pytorch", None)
        with pytest.raises(mod.PeerMissing) as exc:
            run(task, 0)
        assert 'pip install -c benchmarks/constraints.txt -e ".[bench]"' in str(exc.value)
    monkeypatch.setitem(sys.modules, "fastai", None)
    monkeypatch.setitem(sys.modules, "fastai.callback.schedule", None)
    with pytest.raises(mod.PeerMissing) as exc:
        mod.run_fastai(task, 0)
    assert "--no-deps fastai" in str(exc.value) and "benchmarks/constraints.txt" in str(exc.value)


# ------------------------------------------------------------------------------------------------------- auto_lr
@pytest.mark.parametrize(("argv", "said"), [
    (["--seeds"], "--seeds: no seed given"),
    (["--seeds", "-1"], "--seeds: seed -1 must be an integer >= 0"),
    (["--seeds", "0", "0"], "--seeds: seed 0 given twice"),
    (["--jobs", "0"], "--jobs: 0 must be an integer >= 1"),
    (["--budget", "0"], "--budget: 0 must be a finite number > 0"),
    (["--budget", "nan"], "--budget: nan must be a finite number > 0"),
])
def test_auto_lr_bad_numbers_are_named(argv: list[str], said: str, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    mod = bench_script("auto_lr", monkeypatch)
    _forbid(monkeypatch, mod, "oracle", "run_task", "horizon_bias")
    assert said in _refused(lambda: mod.main(["--tasks", "wine_mlp", *argv]), capsys)


# ---------------------------------------------------------------------------------------------- monitor_recovery
@pytest.mark.parametrize(("argv", "said"), [
    (["--seeds", "x"], "--seeds: 'x' is not an integer"),
    (["--seeds", ""], "--seeds: no seed given"),
    (["--seeds", "-1"], "--seeds: seed -1 must be an integer >= 0"),
    (["--seeds", "0,1,0"], "--seeds: seed 0 given twice"),
    (["--mults", "x"], "--mults: 'x' is not a number"),
    (["--mults", "0"], "--mults: 0 must be a finite number > 0"),
    (["--mults", "1,-10"], "--mults: -10 must be a finite number > 0"),
    (["--mults", ""], "--mults: no value given"),
    (["--pairs", "-1"], "--pairs: -1 must be an integer >= 0"),
    (["--monitor", "{bad"], "--monitor: not JSON"),
    (["--monitor", "[1]"], "--monitor must be a JSON object"),
    (["--monitor", '{"spike_grac": 3}'], "--monitor: Monitor has no setting 'spike_grac' (did you mean "
                                         "'spike_grace'?)"),
    (["--monitor", '{"spike_grace": -3}'], "--monitor: spike_grace=-3 must be an integer >= 0"),
])
def test_monitor_recovery_bad_values_are_named(argv: list[str], said: str, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    mod = bench_script("monitor_recovery", monkeypatch)
    _forbid(monkeypatch, mod, "oracle", "one_run", "overhead")
    assert said in _refused(lambda: mod.main(["--tasks", "wine_mlp", "--no-save", *argv]), capsys)


def test_monitor_recovery_checks_its_record_can_be_written_unless_not_saving(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    mod = bench_script("monitor_recovery", monkeypatch)
    (tmp_path / "a_file").write_text("x")
    monkeypatch.setattr(mod, "RESULT_PATH", tmp_path / "a_file" / "monitor_recovery.json")
    _forbid(monkeypatch, mod, "oracle", "one_run", "overhead")
    err = _refused(lambda: mod.main(["--tasks", "wine_mlp"]), capsys)
    assert "cannot write" in err and "--no-save" in err
    with pytest.raises(AssertionError, match="the benchmark ran"):  # with --no-save it gets as far as the oracle
        mod.main(["--tasks", "wine_mlp", "--no-save"])


# --------------------------------------------------------------------------------------------- the other scripts
def test_noise_floor_refuses_zero_jobs(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    mod = bench_script("noise_floor", monkeypatch)
    _forbid(monkeypatch, mod, "oracle")
    assert "--jobs: 0 must be an integer >= 1" in _refused(lambda: mod.main(["--tasks", "wine_mlp", "--jobs", "0"]),
                                                           capsys)


@pytest.mark.parametrize(("argv", "said"), [
    (["--seeds", "0"], "--seeds: 0 must be an integer >= 1"),
    (["--tasks", "wine_mlp"], "needs at least 2 tasks"),
])
def test_rule_calibration_bad_values(argv: list[str], said: str, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    mod = bench_script("rule_calibration", monkeypatch)
    _forbid(monkeypatch, mod, "oracle", "curves")
    assert said in _refused(_main_with_argv(mod, argv, monkeypatch), capsys)


@pytest.mark.parametrize(("argv", "said"), [
    (["--prefix", "0"], "--prefix 0 must be > 0"),
    (["--cooldown", "-1"], "--cooldown -1 must be > 0"),
    (["--prefix", "2"], "--prefix 2 + --cooldown 0.05 must be <= 1"),
    (["--prefix", "0.9", "--cooldown", "0.2"], "--prefix 0.9 + --cooldown 0.2 must be <= 1"),
])
def test_trial_predictors_trial_must_fit_in_the_run(argv: list[str], said: str, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    mod = bench_script("trial_predictors", monkeypatch)
    _forbid(monkeypatch, mod, "oracle", "trial")
    assert said in _refused(lambda: mod.main(["--tasks", "wine_mlp", *argv]), capsys)


def test_finder_curves_checks_its_output_first_and_writes_atomically(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    mod = bench_script("finder_curves", monkeypatch)
    _forbid(monkeypatch, mod, "record")
    (tmp_path / "a_file").write_text("x")
    assert "cannot write" in _refused(lambda: mod.main([str(tmp_path / "a_file" / "new.json")]), capsys)
    assert "is a folder" in _refused(lambda: mod.main([str(tmp_path)]), capsys)
    assert "--seeds: seed -1 must be an integer >= 0" in _refused(lambda: mod.main([str(tmp_path / "n.json"),
                                                                                    "--seeds", "-1"]), capsys)
    assert "--seeds: no seed given" in _refused(lambda: mod.main([str(tmp_path / "n.json"), "--seeds"]), capsys)
    old = str(tmp_path / "old.json")
    assert "--compare" in _refused(lambda: mod.main([str(tmp_path / "n.json"), "--compare", old]), capsys)

    writes: list[Path] = []
    monkeypatch.setattr(mod, "record", lambda seeds: {"wine_mlp/0": [1, "completed", 0.1, [1.0]]})
    monkeypatch.setattr(mod, "atomic_write_text", lambda path, text: writes.append(Path(path)))
    assert mod.main([str(tmp_path / "n.json")]) == 0
    assert writes == [tmp_path / "n.json"]


def test_pooled_json_to_a_folder_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    mod = bench_script("pooled", monkeypatch)
    _forbid(monkeypatch, mod, "load")
    assert "is a folder" in _refused(lambda: mod.main(["--json", str(tmp_path)]), capsys)


@pytest.mark.parametrize(("script", "argv", "said"), [
    ("record_cost", ["--steps", "0"], "--steps: 0 must be an integer >= 1"),
    ("record_cost", ["--repeats", "0"], "--repeats: 0 must be an integer >= 1"),
    ("schedule_overhead", ["--steps", "0"], "--steps: 0 must be an integer >= 1"),
    ("schedule_overhead", ["--repeats", "0"], "--repeats: 0 must be an integer >= 1"),
    ("finder_overhead", ["--end-lr", "0"], "--end-lr 0 must be a finite number above the finder's start_lr 1e-07"),
    ("finder_overhead", ["--end-lr", "1e-9"], "--end-lr 1e-09 must be a finite number above"),
])
def test_timing_scripts_refuse_empty_or_impossible_runs(script: str, argv: list[str], said: str,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    mod = bench_script(script, monkeypatch)
    heavy = {"record_cost": ("seconds",), "schedule_overhead": ("us_per_step",), "finder_overhead": ("measure",)}
    _forbid(monkeypatch, mod, *heavy[script])
    assert said in _refused(_main_with_argv(mod, argv, monkeypatch) if script == "schedule_overhead"
                            else (lambda: mod.main(argv)), capsys)


def test_train_overhead_refuses_an_unsupported_task_before_its_table(monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    mod = bench_script("train_overhead", monkeypatch)
    _forbid(monkeypatch, mod, "measure")
    with pytest.raises(SystemExit) as exc:
        mod.main(["--tasks", "wine_mlp_adagrad"])
    out, err = capsys.readouterr()
    assert exc.value.code == 2
    assert "--tasks: wine_mlp_adagrad uses Adagrad; this script handles SGD, Adam and AdamW tasks" in err
    assert "|" not in out  # no half table


def test_optimizer_shift_names_the_families_there_are(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    mod = bench_script("optimizer_shift", monkeypatch)
    _forbid(monkeypatch, mod, "oracle", "suggestions")
    err = _refused(_main_with_argv(mod, ["--optimizer", "adagrad"], monkeypatch), capsys)
    assert "no task's optimizer is 'adagrad'" in err and "valid: " in err and "Adagrad" in err and "SGD" in err


# ------------------------------------------------------------------------------------------------ tools/gpu_checks
def test_gpu_checks_help_prints_usage_without_running_anything() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "gpu_checks.py"), "--help"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage" in done.stdout.lower() and "OK, FAIL" in done.stdout


def test_gpu_checks_exit_status_says_a_check_failed(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "tools"))
    import importlib

    gpu = importlib.import_module("gpu_checks")

    def fails() -> None:
        raise AssertionError("boom")

    assert gpu.run_checks([("c1", lambda: None), ("c2", fails), ("c3", lambda: "skip")]) == 1
    out = capsys.readouterr().out
    assert "OK   c1" in out and "FAIL c2" in out and "SKIP c3" in out and "1 of 3 checks failed" in out
    assert gpu.run_checks([("c1", lambda: None)]) == 0



def test_monitor_recovery_an_untimeable_task_keeps_the_table(monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """The timing refuses a healthy run that raised an event (the README: teacher_student on a fresh machine); that
    used to be a RuntimeError traceback after every training run, losing the whole table. Now that task's timing row
    says why and the rest is printed."""
    from types import SimpleNamespace

    mod = bench_script("monitor_recovery", monkeypatch)
    monkeypatch.setattr(mod, "oracle", lambda task, **kw: SimpleNamespace(best_lr=0.01, best_loss=0.5))
    monkeypatch.setattr(mod, "one_run", lambda task, lr, seed, options: {
        "seed": seed, "val_loss": 0.5, "diverged": False, "events": 1 if options is not None else 0,
        "rollbacks": 0})

    def overhead(task: Any, lr: float, options: Any, pairs: int) -> dict[str, float]:
        if task.name == "teacher_student":
            raise mod.NotHealthy(f"{task.name}: the timing run at lr={lr:g} was not healthy; overhead needs a "
                                 "healthy run")
        if task.name == "digits_cnn":
            raise RuntimeError("something else")
        return {"step_ms_plain": 1.0, "step_ms_monitor": 1.03, "overhead": 0.03}

    monkeypatch.setattr(mod, "overhead", overhead)
    assert mod.main(["--tasks", "wine_mlp,teacher_student", "--seeds", "0", "--mults", "1", "--pairs", "1",
                     "--no-save"]) == 0
    out = capsys.readouterr().out
    assert "| wine_mlp | 1.000 | 1.030 | +3.0% |" in out
    assert "| teacher_student | not timed: the timing run at lr=0.01 was not healthy" in out
    assert "step-time overhead: median over tasks +3.0%, worst +3.0% (target <= 3%); not timed: teacher_student" in out
    with pytest.raises(RuntimeError, match="something else"):  # any other error is not a refused timing
        mod.main(["--tasks", "digits_cnn", "--seeds", "0", "--mults", "1", "--pairs", "1", "--no-save"])


# ---------------------------------------------------------------------------------------------------------- Ctrl-C
SUITE_SCRIPTS = ("auto_lr", "finder_curves", "finder_quality", "miss_features", "monitor_recovery", "noise_floor",
                 "optimizer_shift", "rule_calibration", "trial_predictors")


def test_ctrl_c_ends_a_suite_script_with_one_line_not_a_torch_traceback(monkeypatch: pytest.MonkeyPatch,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    suite = bench_script("_suite", monkeypatch)

    def interrupted() -> int:
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as exc:
        suite.run_main(interrupted)
    assert exc.value.code == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "benchmarks/results" in err and "same command" in err
    assert "Traceback" not in err
    for result, code in ((0, 0), (None, 0), ({"rows": 1}, 0), (3, 3)):  # main's own status, or 0 for a non-int
        with pytest.raises(SystemExit) as exc:
            suite.run_main(lambda result=result: result)
        assert exc.value.code == code


@pytest.mark.parametrize("script", SUITE_SCRIPTS)
def test_every_suite_script_runs_its_main_through_run_main(script: str) -> None:
    text = (BENCH / f"{script}.py").read_text(encoding="utf-8")
    guard = text[text.index('if __name__ == "__main__":'):]
    assert "run_main(main)" in guard, guard


def test_pooled_json_gets_the_permissions_of_a_plain_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``mkstemp`` alone leaves the record 0600, unreadable to the group, unlike every other file lrkit writes."""
    import os

    mod = bench_script("pooled", monkeypatch)
    umask = os.umask(0o022)
    try:
        mod._write_json(tmp_path / "p.json", {"a": 1})
        assert (tmp_path / "p.json").stat().st_mode & 0o777 == 0o644
        os.umask(0o002)
        mod._write_json(tmp_path / "q.json", {"a": 1})
        assert (tmp_path / "q.json").stat().st_mode & 0o777 == 0o664
    finally:
        os.umask(umask)
    assert [p.name for p in tmp_path.iterdir()] in (["p.json", "q.json"], ["q.json", "p.json"])


def test_monitor_cost_short_run_says_it_saw_no_full_step_and_prints_its_whole_command(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """``--steps 50``: fewer steps than the monitor's full-step interval (64) and validation interval (100). The table
    said "nan" and "one full step every 50 steps" (a full step it never saw); the command line it printed left out
    ``--warmup``, so it did not reproduce the run."""
    import torch

    mod = bench_script("monitor_cost", monkeypatch)

    def tiny() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
        return torch.nn.Linear(3, 1), torch.randn(8, 3), torch.randn(8, 1)

    r = mod.measure(tiny, steps=10, warmup=5)
    assert r["full_every"] != r["full_every"]  # nan: no full step seen, so no interval to report
    monkeypatch.setattr(mod, "_models", lambda width, batch: {"tiny": tiny})
    assert mod.main(["--steps", "50", "--warmup", "5", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "`python benchmarks/monitor_cost.py --steps 50 --repeats 1 --warmup 5`" in out
    row = next(line for line in out.splitlines() if line.startswith("| tiny |"))
    assert "nan" not in row and "none in 50 steps" in row and row.count("—") == 2


def test_auto_lr_a_bad_set_value_is_named_without_a_traceback(monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """``--set SEARCH=brackt``: lrkit.train.auto names the value when choose_lr0 runs; the script passes that on as
    its own argument error instead of a traceback (and still lets any other ValueError through)."""
    from types import SimpleNamespace

    import lrkit.train.auto as auto_mod

    mod = bench_script("auto_lr", monkeypatch)
    monkeypatch.setattr(auto_mod, "SEARCH", auto_mod.SEARCH)  # put back after the test: --set writes the module
    monkeypatch.setattr(mod, "oracle", lambda task, **kw: SimpleNamespace(best_lr=0.01, best_loss=0.5))

    def run_task(*args: Any) -> Any:
        raise ValueError(f"lrkit.train.auto.SEARCH={auto_mod.SEARCH!r} must be 'guard' or 'bracket'")

    monkeypatch.setattr(mod, "run_task", run_task)
    err = _refused(lambda: mod.main(["--tasks", "wine_mlp", "--seeds", "0", "--set", "SEARCH=brackt"]), capsys)
    assert "--set SEARCH=brackt: lrkit.train.auto.SEARCH='brackt' must be 'guard' or 'bracket'" in err
    with pytest.raises(ValueError, match="must be 'guard'"):  # without --set it is not the user's setting
        mod.main(["--tasks", "wine_mlp", "--seeds", "0"])
