"""Session 35: items from earlier "noticed, left alone" lists, each fixed with a test that fails without it."""

from __future__ import annotations

import json
import random
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lrkit._config import TrainConfig, tokens_to_kwargs
from lrkit.cli.app import build_app
from lrkit.schedules import available, from_spec
from lrkit.train.data import load_data


# -- lrkit schedule --list --json ------------------------------------------------------------------------------
def test_schedule_list_json_prints_every_family_as_json() -> None:
    res = CliRunner().invoke(build_app(), ["schedule", "--list", "--json"])
    assert res.exit_code == 0, res.output
    families = json.loads(res.stdout)  # the table before the fix: not JSON at all
    assert [f["name"] for f in families] == [e.name for e in available()]
    cosine = next(f for f in families if f["name"] == "cosine")
    assert cosine["torch_equivalent"] == "CosineAnnealingLR"
    assert cosine["unit"] == "step" and cosine["required"] == []
    restarts = next(f for f in families if f["name"] == "cosine_restarts")
    assert restarts["required"] == ["T_0"] and "T_mult" in restarts["defaults"]
    constant = next(f for f in families if f["name"] == "constant")
    assert constant["unit"] is None  # no unit= parameter: no default unit to show


def test_schedule_list_with_a_spec_or_compare_is_refused() -> None:
    res = CliRunner().invoke(build_app(), ["schedule", "cosine lr0=0.1", "--list"])
    assert res.exit_code != 0
    assert "drop the spec 'cosine lr0=0.1'" in res.output
    res = CliRunner().invoke(build_app(), ["schedule", "--list", "--compare", "cosine"])
    assert res.exit_code != 0 and "drop --compare" in res.output


# -- key= with an empty value ------------------------------------------------------------------------------------
def test_empty_project_names_the_empty_token_and_the_default() -> None:
    with pytest.raises(ValueError, match=r"'project=' has no value: give one \(e\.g\. project=runs\), or leave the "
                                         r"key out for its default 'runs'"):
        tokens_to_kwargs(["data=iris", "project="])


def test_empty_bool_key_shows_the_example_as_typed() -> None:
    with pytest.raises(ValueError, match=r"cos_lr=false"):
        tokens_to_kwargs(["cos_lr="])


@pytest.mark.parametrize("key", ["name", "schedule", "lr0", "patience"])
def test_empty_value_still_means_none_where_none_is_valid(key: str) -> None:
    TrainConfig(**{key: None})  # None is a valid value of these keys (a fresh name, no schedule, off, ...)
    try:
        kwargs = tokens_to_kwargs([f"{key}="])
    except ValueError as e:  # only keys that refuse None may refuse an empty value
        pytest.fail(f"{key}= was refused: {e}")
    assert kwargs == {key: None}


def test_empty_project_through_the_cli_exits_with_the_message(tmp_path: Path) -> None:
    res = CliRunner().invoke(build_app(), ["train", "data=iris", "model=linear", "epochs=1", "project="])
    assert res.exit_code != 0
    assert "'project=' has no value" in res.output
    assert "project=None" not in res.output


# -- a text run's enlarged validation part is said ---------------------------------------------------------------
def _text(tmp_path: Path, n: int = 3000) -> Path:
    rng = random.Random(0)
    path = tmp_path / "t.txt"
    path.write_text("".join(rng.choice("abcdefgh \n") for _ in range(n)))
    return path


def test_text_val_enlarged_to_one_window_is_noted(tmp_path: Path) -> None:
    data = load_data(str(_text(tmp_path)), seed=0, val=0.01, seq_len=64)
    notes = [n for n in data.info.notes if "val=0.01" in n]
    assert len(notes) == 1
    assert "gives 30 characters" in notes[0] and "last 65 characters" in notes[0]
    assert data.info.n_val == 1  # (65 - 1) // 64 windows


def test_text_val_large_enough_gets_no_note(tmp_path: Path) -> None:
    data = load_data(str(_text(tmp_path)), seed=0, val=0.2, seq_len=64)
    assert not [n for n in data.info.notes if "val=" in n]


# -- a cooldown behind a schedule that already ends at 0 -------------------------------------------------------
@pytest.mark.parametrize("spec", ["linear_to_zero lr0=0.1 cooldown_steps=10",
                                  "polynomial lr0=0.1 power=2 cooldown_steps=10",
                                  "cosine lr0=0.1 lrf=0 cooldown_frac=0.2"])
def test_cooldown_after_a_schedule_ending_at_zero_warns(spec: str) -> None:
    with pytest.warns(UserWarning, match=r"already ends at LR 0, so its cooldown of \d+ steps trains at LR 0"):
        s = from_spec(spec, total_steps=100)
    assert s(95) == 0.0  # what the warning says: the cooldown runs at 0


@pytest.mark.parametrize("spec", ["cosine lr0=0.1 cooldown_frac=0.2", "constant lr0=0.1 cooldown_steps=10",
                                  "cosine lr0=0.1 lrf=0.1 cooldown_frac=0.1 cooldown_min_ratio=0.1"])
def test_cooldown_after_a_schedule_ending_above_zero_is_quiet(spec: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = from_spec(spec, total_steps=100)
    assert s(89) > s(99) >= 0.0


# -- a run on a built-in scikit-learn table reads scikit-learn's own DataFrame by name ---------------------------
@pytest.fixture(scope="module")
def iris_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import lrkit

    return lrkit.train(data="iris", epochs=2, project=str(tmp_path_factory.mktemp("runs")), verbose=False,
                       plots=False).run_dir


def test_builtin_table_run_predicts_from_sklearns_dataframe_by_name(iris_run: Path) -> None:
    pytest.importorskip("pandas")
    import torch
    from sklearn.datasets import load_iris

    import lrkit

    run = lrkit.load_run(iris_run)
    frame = load_iris(as_frame=True).frame  # the features and a 'target' column
    by_array = run.inputs(frame.drop(columns="target").to_numpy()[:7])
    by_name = run.inputs(frame.iloc[:7, ::-1])  # columns reversed, target included: matched by name
    assert torch.equal(by_array, by_name)
    assert torch.equal(run.inputs(frame.iloc[3]), by_array[3:4])  # one row, a Series


def test_builtin_table_run_names_a_missing_sklearn_column(iris_run: Path) -> None:
    pytest.importorskip("pandas")
    from sklearn.datasets import load_iris

    import lrkit

    frame = load_iris(as_frame=True).data.rename(columns={"petal width (cm)": "petal_width"})
    with pytest.raises(ValueError, match=r"x has no column 'petal width \(cm\)'.*rename 'petal_width' to "
                                         r"'petal width \(cm\)'"):
        lrkit.load_run(iris_run).predict(frame)


def test_generated_data_run_still_refuses_a_named_table(tmp_path: Path) -> None:
    import lrkit

    r = lrkit.train(data="synthetic-classification", epochs=1, project=str(tmp_path), verbose=False, plots=False)
    with pytest.raises(ValueError, match="not trained on a CSV file or a built-in scikit-learn table"):
        lrkit.load_run(r.run_dir).predict({"a": [1.0]})


# -- monitor=off switches the monitor off --------------------------------------------------------------------------
@pytest.mark.parametrize(("raw", "expected"), [("off", False), ("OFF", False), ("no", False), ("0", False),
                                               ("on", True), ("yes", True), ("1", True), ("false", False)])
def test_monitor_on_off_words_read_as_the_true_false_keys_do(raw: str, expected: bool) -> None:
    assert TrainConfig.from_tokens(["data=iris", f"monitor={raw}"]).monitor is expected  # off: {on_divergence: off}


def test_monitor_ignore_still_switches_only_the_divergence_checks_off() -> None:
    assert TrainConfig.from_tokens(["data=iris", "monitor=ignore"]).monitor == {"on_divergence": "ignore"}


# -- a sweep too wide for float64 says which end to move -------------------------------------------------------
@pytest.mark.parametrize(("start", "end", "advice"), [(1e-7, 1e308, "lower end_lr"), (1e-320, 10.0, "raise start_lr")])
def test_a_sweep_too_wide_for_float64_names_the_end_to_move(start: float, end: float, advice: str) -> None:
    import torch

    import lrkit

    model = torch.nn.Linear(2, 1)
    loader = [(torch.randn(4, 2), torch.randn(4, 1))] * 3
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=f"too far apart for a float64 sweep \\(exp\\): {advice}"):
        lrkit.find_lr(model, opt, loader, loss_fn=torch.nn.functional.mse_loss, start_lr=start, end_lr=end,
                      num_steps=10)


# -- a misspelt keyword of a public function or class names the closest valid one ------------------------------
@pytest.mark.parametrize(("call", "bad", "good"), [
    ("Monitor", "on_divergance", "on_divergence"), ("param_groups", "layer_decy", "layer_decay"),
    ("scale_lr", "rules", "rule"), ("from_spec", "total_step", "total_steps"), ("load_run", "devise", "device"),
    ("choose_lr0", "budjet", "budget"), ("nominal_batch", "nbz", "nbs"),
])
def test_a_misspelt_keyword_gets_a_did_you_mean(call: str, bad: str, good: str) -> None:
    import inspect

    import torch

    import lrkit

    fn = getattr(lrkit, call, None) or getattr(lrkit.schedules, call)
    with pytest.raises(TypeError, match=rf"got an unexpected keyword argument '{bad}'\. Did you mean '{good}'\?"):
        fn(**{bad: 1})  # (checked before anything else: the required arguments need not be there)
    assert good in inspect.signature(fn).parameters  # the signature users see is the function's own
    m = torch.nn.Linear(2, 1)
    if call == "Monitor":  # a valid call still works
        mon = lrkit.Monitor(m, torch.optim.SGD(m.parameters(), lr=0.1), on_divergence="stop")
        assert "stop" in mon.actions.values()


# -- plot_schedule refuses a record whose momentum or lr_bias does not match its steps -----------------------------
@pytest.mark.parametrize("key", ["momentum", "lr_bias"])
def test_plot_schedule_names_a_per_step_list_of_another_length(key: str, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from lrkit.plots.schedule import plot_schedule

    record = from_spec("ultralytics lr0=0.01 warmup_epochs=1", epochs=3, steps_per_epoch=5).record()
    assert len(record[key]) == len(record["lr"]) == 15
    plot_schedule(record, path=tmp_path / "ok.png")  # a record as made draws
    bad = {**record, key: record[key][:4]}
    with pytest.raises(ValueError, match=rf"has 4 '{key}' values for its 15 steps of 'lr'"):
        plot_schedule(bad, path=tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


# -- a Muon hybrid's refusal suggests no Adam-family name ------------------------------------------------------
@pytest.mark.parametrize("name", ["AdaMuon", "MuonWithAuxAdam"])
def test_a_muon_hybrid_is_refused_without_an_adam_did_you_mean(name: str) -> None:
    import lrkit

    with pytest.raises(ValueError, match=f"cannot tell whether optimizer '{name}'") as e:
        lrkit.scale_lr(0.1, 32, 64, optimizer=name)
    assert "Did you mean" not in str(e.value)  # 'adan' / 'nadam' before: the "taken for an Adam" it must not be
