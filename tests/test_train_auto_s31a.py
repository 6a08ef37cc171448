"""benchmarks/train_auto.py (session 31): lr0="auto" end to end through lrkit.train's own defaults against a grid of
explicit lr0 on the same path — the scoring on fakes, the cache, the refusal of unknown tasks, and one real (short)
lrkit.train run per side."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from _helpers import cached_rescue, keep_torch_threads, train_auto_script  # noqa: F401 (fixtures: usefixtures, ta)

pytestmark = pytest.mark.usefixtures("keep_torch_threads")


def _rec(loss: float | None, lr0: float = 0.01, extra: float | None = None, events: dict[str, int] | None = None,
         ) -> dict[str, Any]:  # fmt: skip
    return {"final_val_loss": loss, "best_val_loss": loss, "lr0": lr0, "optimizer": "AdamW", "extra_fraction": extra,
            "events": events or {}, "seconds": 1.0}  # fmt: skip


def test_score_picks_the_grid_lr_of_lowest_median_and_reads_a_diverged_auto_as_inf(ta: Any) -> None:
    runs = {}
    for s, (a, b) in zip(ta.SEEDS, [(1.0, 2.0), (5.0, 1.5), (1.2, 1.6)]):  # medians: 1.2 at 0.1, 1.6 at 0.01
        runs[f"0.1/{s}"], runs[f"0.01/{s}"] = _rec(a), _rec(b)
        runs[f"auto/{s}"] = _rec(1.32, lr0=0.09, extra=0.2 + 0.01 * s, events={"val_rising": 1})
    s = ta.score(runs, [0.1, 0.01])
    assert s["oracle_lr"] == 0.1 and s["oracle_loss"] == 1.2
    assert s["regret"] == pytest.approx(0.1) and s["extra"] == pytest.approx(0.21) and s["events"] == 3
    for seed in (0, 1):  # two of three seeds diverged: the median is not finite
        runs[f"auto/{seed}"] = _rec(None, extra=0.2)
    assert math.isinf(ta.score(runs, [0.1, 0.01])["regret"])


def test_text_file_is_the_same_corpus_for_a_seed_and_another_for_another_seed(ta: Any, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = ta.text_file(tmp_path / "a", n_chars=500).read_text(encoding="utf-8")
    assert first == ta.text_file(tmp_path / "b", n_chars=500).read_text(encoding="utf-8")
    assert len(first) >= 500 and set(first) <= set("".join(ta._WORDS) + "ABCDEFGHIJKLMNOPQRSTUVWXYZ .!?")
    assert ta.text_file(tmp_path / "b", n_chars=500, seed=1).read_text(encoding="utf-8") != first


def test_run_all_trains_only_what_is_not_cached_and_writes_each_run(ta: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[Any, ...]] = []

    def fake(job: tuple[str, Any, int, bool]) -> dict[str, Any]:
        asked.append(job)
        return _rec(0.5, extra=0.25 if job[1] == "auto" else None)

    monkeypatch.setattr(ta, "_worker", fake)
    runs = ta.run_all(["iris_mlp"], [0.01, "auto"], True, 1, progress=lambda _: None)
    assert sorted(runs["iris_mlp"]) == sorted(f"{k}/{s}" for k in ("0.01", "auto") for s in ta.SEEDS)
    assert len(asked) == 6 and all(job[3] is True for job in asked)
    on_disk = json.loads((ta.CACHE_DIR / "iris_mlp_monitor-on.json").read_text(encoding="utf-8"))
    assert on_disk == runs["iris_mlp"]
    asked.clear()
    ta.run_all(["iris_mlp"], [0.01, 0.1, "auto"], True, 1, progress=lambda _: None)
    assert [job[1] for job in asked] == [0.1, 0.1, 0.1]  # only the new LR trains
    asked.clear()
    ta.run_all(["iris_mlp"], [0.01], False, 1, progress=lambda _: None)  # the monitor-off cache is its own file
    assert len(asked) == 3 and (ta.CACHE_DIR / "iris_mlp_monitor-off.json").exists()


def test_main_refuses_an_unknown_task_naming_the_valid_ones(ta: Any, capsys: Any) -> None:
    with pytest.raises(SystemExit) as exc:
        ta.main(["--tasks", "iris_mlp,imagenet"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "'imagenet'" in err and "wine_linear_adam" in err


def test_main_prints_the_table_and_the_pooled_row_from_the_cache(ta: Any, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: Any, tmp_path: Path) -> None:  # fmt: skip
    grid = ta.default_grid()
    runs = {f"{ta.run_key(lr)}/{s}": _rec(1.0 + abs(math.log10(lr / 1e-3))) for lr in grid for s in ta.SEEDS}
    runs.update({f"auto/{s}": _rec(1.04, lr0=2e-3, extra=0.25) for s in ta.SEEDS})
    ta.CACHE_DIR.mkdir(parents=True)
    (ta.CACHE_DIR / "wine_mlp_monitor-on.json").write_text(json.dumps(runs), encoding="utf-8")
    monkeypatch.setattr(ta, "_worker", lambda job: pytest.fail(f"trained {job}, but everything was cached"))
    assert ta.main(["--tasks", "wine_mlp", "--json", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out
    assert "| wine_mlp | wine | mlp | auto (AdamW) | 0.001 | 0.002, 0.002, 0.002 | 0.30 |" in out
    assert "| lr0=auto, 1 tasks | +4.00% | +4.00% | 0/1 | 1/1 |" in out
    assert "extra compute: median 25%" in out
    assert json.loads((tmp_path / "s.json").read_text())["wine_mlp"]["oracle_lr"] == 0.001


def test_train_once_runs_lrkit_train_with_its_defaults_for_a_fixed_lr_and_for_auto(
        ta: Any, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setattr(ta, "EPOCHS", 12)  # 36 optimizer steps: the least lr0="auto" accepts at its budget
    task = ta.TASKS["wine_linear_adam"]
    fixed = ta.train_once(task, 0.01, 0, True)
    assert fixed["lr0"] == 0.01 and fixed["extra_fraction"] is None and fixed["optimizer"] == "Adam"
    assert fixed["final_val_loss"] is not None and fixed["final_val_loss"] > 0
    auto = ta.train_once(task, "auto", 0, False)
    assert auto["lr0"] > 0 and auto["lr0"] != 0.01 and 0 < auto["extra_fraction"] <= 0.3 + 1e-9
    assert auto["events"] == {}


def test_an_oracle_loss_of_zero_reads_undefined_and_the_pooled_rows_say_so(ta: Any, capsys: Any) -> None:
    grid = ta.default_grid()
    ta.CACHE_DIR.mkdir(parents=True)
    for name, best in (("wine_mlp", 0.0), ("iris_mlp", 1.0)):
        runs = {f"{ta.run_key(lr)}/{s}": _rec(best + abs(math.log10(lr / 1e-3))) for lr in grid for s in ta.SEEDS}
        runs.update({f"auto/{s}": _rec(best + 0.02, lr0=1e-3, extra=0.25) for s in ta.SEEDS})
        (ta.CACHE_DIR / f"{name}_monitor-on.json").write_text(json.dumps(runs), encoding="utf-8")
    assert ta.main(["--tasks", "wine_mlp,iris_mlp"]) == 0
    out = capsys.readouterr().out
    assert "| undefined (oracle loss at the float floor) |" in out
    assert "| lr0=auto, 2 tasks | +inf% | diverged | 0/2 | 1/2 |" in out  # strict: the undefined one as inf
    assert "| lr0=auto, the 1 tasks whose oracle loss is above the float floor | +2.00% | +2.00% | 0/1 | 1/1 |" in out


def test_rescue_reads_both_grids_and_counts_healthy_events_and_settings_within_10_percent(
        ta: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:  # fmt: skip
    grid = ta.default_grid()  # 25 LRs; the monitor-off oracle at index 10 (1e-3 * ...), 10x at 14, 31.6x at 16
    best = grid[10]
    off = {f"{ta.run_key(lr)}/{s}": _rec(1.0 + abs(math.log10(lr / best))) for lr in grid for s in ta.SEEDS}
    on = {k: _rec(v["final_val_loss"] if k.startswith(ta.run_key(best) + "/") else 1.05, events={"loss_spike": 2})
          for k, v in off.items()}  # fmt: skip
    on[f"{ta.run_key(best)}/1"] = _rec(1.0)  # one healthy seed raised nothing
    out = cached_rescue(ta, monkeypatch, capsys, "digits_mlp", on, off)
    assert f"| digits_mlp | {best:.3g} | 1 | 2, 0, 2 | +0.0% | +100.0% | +5.0% | +150.0% | +5.0% |" in out
    assert "healthy runs with an event: 2/3; 10x/31.6x settings within 10% of the oracle: 2/2 with the monitor, " \
           "0/2 without" in out


def _spy_train(ta: Any, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Replace ``lrkit.train`` (as train_auto calls it) by a fake that records each call's model and keyword arguments
    and returns what train_once reads off a result; the list of calls."""
    seen: list[dict[str, Any]] = []

    class _Results:
        final_val_loss = best_val_loss = 0.5
        metric_name, final_metric = "accuracy", 0.9
        lr0, optimizer, auto, events_by_check = 0.01, "Adam", None, {}

    def fake_train(model: str, **kwargs: Any) -> Any:
        seen.append({"model": model, **kwargs})
        return _Results()

    monkeypatch.setattr(ta.lrkit, "train", fake_train)
    return seen


def test_variants_change_one_thing_and_an_unknown_one_is_refused(ta: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _spy_train(ta, monkeypatch)
    task = ta.TASKS["wine_linear_adam"]
    ta.train_once(task, 0.01, 0, True)
    ta.train_once(task, 0.01, 0, True, "cosine")
    ta.train_once(task, 0.01, 0, True, "noisy")
    ta.train_once(task, ta.PREFIX, 0, False)
    default, cosine, noisy, prefix = seen
    assert default["data"] == "wine" and "schedule" not in default and "auto_search" not in default
    assert cosine["schedule"] == "cosine lrf=0 warmup_epochs=1" and cosine["data"] == "wine"
    assert noisy["data"].endswith("wine_noisy.npz") and "schedule" not in noisy
    assert prefix["lr0"] == "auto" and prefix["auto_search"] == "prefix" and prefix["monitor"] is False
    with pytest.raises(ValueError, match="variant='nois'; valid: default, cosine, noisy"):
        ta.train_once(task, 0.01, 0, True, "nois")
    with pytest.raises(ValueError, match="needs data from"):
        ta.noisy_npz(Path("."), "synthetic-regression")


def test_noisy_npz_flips_a_tenth_of_the_labels_to_another_class_the_same_way_every_time(ta: Any, tmp_path: Path,
                                                                                         ) -> None:  # fmt: skip
    import numpy as np
    from sklearn.datasets import load_digits

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = np.load(ta.noisy_npz(tmp_path / "a", "digits"))
    b = np.load(ta.noisy_npz(tmp_path / "b", "digits"))
    clean = load_digits().target
    assert a["x"].shape == (len(clean), 1, 8, 8) and np.array_equal(a["y"], b["y"])
    changed = a["y"] != clean
    assert changed.sum() == round(0.1 * len(clean)) and a["y"].min() >= 0 and a["y"].max() <= 9


def test_rescue_leaves_a_task_whose_oracle_loss_is_0_out_of_the_counts(ta: Any, monkeypatch: pytest.MonkeyPatch,
                                                                         capsys: Any) -> None:
    grid = ta.default_grid()
    runs = {f"{ta.run_key(lr)}/{s}": _rec(abs(math.log10(lr / grid[10]))) for lr in grid for s in ta.SEEDS}
    out = cached_rescue(ta, monkeypatch, capsys, "wine_mlp", runs, runs)
    assert out.count("undefined (oracle loss at the float floor)") == 5
    assert "within 10% of the oracle: 0/0 with the monitor, 0/0 without" in out


def test_overfit_warn_changes_the_monitors_val_rising_action_and_needs_the_monitor(
        ta: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:  # fmt: skip
    seen = _spy_train(ta, monkeypatch)
    ta.train_once(ta.TASKS["wine_linear_adam"], 0.01, 0, True, "overfit-warn")
    assert [call["monitor"] for call in seen] == [{"on_overfit": "warn"}]
    with pytest.raises(ValueError, match="needs monitor=True"):
        ta.train_once(ta.TASKS["wine_linear_adam"], 0.01, 0, False, "overfit-warn")
    for argv, message in ((["--variant", "overfit-warn", "--monitor", "off"], "needs --monitor on"),
                          (["--rescue", "--variant", "noisy"], "only --variant overfit-warn")):  # fmt: skip
        with pytest.raises(SystemExit) as exc:
            ta.main(argv)
        assert exc.value.code == 2 and message in capsys.readouterr().err


def test_rescue_with_a_variant_trains_the_monitor_side_at_the_three_lrs_it_reads_only(
        ta: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:  # fmt: skip
    grid = ta.default_grid()
    ta.CACHE_DIR.mkdir(parents=True)
    off = {f"{ta.run_key(lr)}/{s}": _rec(1.0 + abs(math.log10(lr / grid[10]))) for lr in grid for s in ta.SEEDS}
    (ta.CACHE_DIR / "digits_mlp_monitor-off.json").write_text(json.dumps(off), encoding="utf-8")
    asked: list[tuple[Any, ...]] = []
    monkeypatch.setattr(ta, "_worker", lambda job: asked.append(job) or _rec(1.0, events={"val_rising": 1}))
    assert ta.main(["--tasks", "digits_mlp", "--rescue", "--variant", "overfit-warn"]) == 0
    assert sorted({job[1] for job in asked}) == [grid[10], grid[14], grid[16]]
    assert {job[3:] for job in asked} == {(True, "overfit-warn")} and len(asked) == 9
    out = capsys.readouterr().out
    assert "monitor-on side: variant overfit-warn" in out
    assert f"| digits_mlp | {grid[10]:.3g} | 1 | 1, 1, 1 | +0.0% |" in out
    assert (ta.CACHE_DIR / "digits_mlp_monitor-on_overfit-warn.json").exists()


def test_monitor_options_reach_lrkit_train_and_get_their_own_cache_and_bad_ones_are_refused(
        ta: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:  # fmt: skip
    seen = _spy_train(ta, monkeypatch)
    variant = ta.MONITOR_PREFIX + '{"val_backoff": 0.5}'
    ta.train_once(ta.TASKS["wine_linear_adam"], 0.01, 0, True, variant)
    assert [call["monitor"] for call in seen] == [{"val_backoff": 0.5}]
    assert ta._cache_path("wine_mlp", True, variant).name == "wine_mlp_monitor-on_monitor___val_backoff___0.5_.json"
    for argv, message in ((["--rescue", "--monitor-options", "{bad"], "is not JSON"),
                          (["--rescue", "--monitor-options", "[1]"], "non-empty JSON object"),
                          (["--monitor-options", '{"val_backoff": 0.5}'], "with --rescue")):  # fmt: skip
        with pytest.raises(SystemExit) as exc:
            ta.main(argv)
        assert exc.value.code == 2 and message in capsys.readouterr().err


def test_main_adds_the_accuracy_table_when_every_record_carries_the_accuracy(ta: Any, capsys: Any) -> None:
    grid = ta.default_grid()
    runs = {}
    for lr in grid:
        for s in ta.SEEDS:
            distance = abs(math.log10(lr / 1e-3))
            runs[f"{ta.run_key(lr)}/{s}"] = {**_rec(1.0 + distance), "metric": "accuracy",
                                             "final_metric": max(0.0, 0.95 - 0.1 * distance)}  # fmt: skip
    runs.update({f"auto/{s}": {**_rec(1.1, extra=0.25), "metric": "accuracy", "final_metric": 0.93}
                 for s in ta.SEEDS})  # fmt: skip
    ta.CACHE_DIR.mkdir(parents=True)
    (ta.CACHE_DIR / "digits_mlp_monitor-on.json").write_text(json.dumps(runs), encoding="utf-8")
    (ta.CACHE_DIR / "regression_mlp_monitor-on.json").write_text(json.dumps(
        {k: {**v, "metric": "rmse"} for k, v in runs.items()}), encoding="utf-8")  # fmt: skip
    assert ta.main(["--tasks", "digits_mlp,regression_mlp"]) == 0
    out = capsys.readouterr().out
    assert "| digits_mlp | 0.001 | 0.9500 | 0.9300 | 2.00 |" in out
    assert "| regression_mlp | 0.001 | 0.9500" not in out  # not a classification task: no accuracy row
    assert "accuracy gap over 1 tasks: median 2.00 points, most 2.00" in out
