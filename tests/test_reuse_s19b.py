"""Session 19b: reusing a finished run — ``lrkit.train.load_run`` rebuilds the model of a run (built-in or factory)
with its ``best.pt``/``last.pt`` weights and the preprocessing raw inputs need (the train split's feature
standardisation, the inverse of a standardised regression target, the class labels, the text vocabulary).

Known answers: predictions on the *raw* validation rows reproduce the metric the run recorded for that epoch."""
from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import lrkit
from lrkit.train.data import BUILTIN_DATASETS, _split_indices

QUIET = {"verbose": False, "plots": False}


def _houses(path: Path, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """A CSV whose features and target are far from standardised (means ~1000, scales 0.01..100)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3)) * [1.0, 100.0, 0.01] + [5.0, 1000.0, 0.0]
    y = x @ [2.0, 0.03, 100.0] + 50.0 + 0.1 * rng.normal(size=n)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["a", "b", "c", "price"])
        for row, t in zip(x, y):
            w.writerow([*(f"{v:.6f}" for v in row), f"{t:.6f}"])
    data = np.loadtxt(path, delimiter=",", skiprows=1)  # the values as written (rounded to 6 decimals)
    return data[:, :3], data[:, 3]


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory: pytest.TempPathFactory) -> lrkit.TrainResults:
    project = tmp_path_factory.mktemp("iris")
    return lrkit.train(data="iris", model="mlp", epochs=3, lr0=0.01, project=str(project), **QUIET)


def test_load_run_is_public_with_an_example() -> None:
    import lrkit.train as lt

    assert "load_run" in lt.__all__ and "LoadedRun" in lt.__all__
    assert lrkit.load_run is lt.load_run
    assert ">>>" in (lt.load_run.__doc__ or "")


def test_classifier_on_raw_features_reproduces_the_recorded_accuracy(iris_run: lrkit.TrainResults) -> None:
    run = lrkit.train.load_run(iris_run.run_dir)
    assert not run.model.training and run.task == "classification"
    x, y = BUILTIN_DATASETS["iris"].load()
    _, va = _split_indices(len(x), seed=0, val=0.2)
    labels = run.predict(x[va])  # raw, unstandardised features
    assert run.classes == [0, 1, 2] and all(isinstance(v, int) for v in labels)  # plain labels, not tensors
    accuracy = float(np.mean(np.asarray(labels) == y[va]))
    assert accuracy == pytest.approx(iris_run.best_metric)


def test_raw_inputs_become_the_training_tensors(iris_run: lrkit.TrainResults) -> None:
    from lrkit.train.data import load_data

    run = lrkit.train.load_run(iris_run.run_dir / "last.pt")
    x, _ = BUILTIN_DATASETS["iris"].load()
    tr, _ = _split_indices(len(x), seed=0, val=0.2)
    expected = load_data("iris", seed=0, val=0.2).train.tensors[0]
    torch.testing.assert_close(run.inputs(x[tr]), expected)
    torch.testing.assert_close(run.inputs(x[tr][0]), expected[:1])  # one sample is a batch of one


def test_best_and_last_are_the_checkpoints_weights(iris_run: lrkit.TrainResults) -> None:
    for which in ("best", "last"):
        run = lrkit.train.load_run(iris_run.run_dir, which=which)
        saved = torch.load(iris_run.run_dir / f"{which}.pt", weights_only=True)["model"]
        assert run.checkpoint == iris_run.run_dir / f"{which}.pt"
        for k, v in run.model.state_dict().items():
            torch.testing.assert_close(v, saved[k])


def test_regression_csv_predictions_are_in_the_targets_units(tmp_path: Path) -> None:
    x, y = _houses(tmp_path / "houses.csv")
    r = lrkit.train(data=str(tmp_path / "houses.csv"), target="price", epochs=3, lr0=0.01,
                    project=str(tmp_path / "runs"), **QUIET)
    run = lrkit.train.load_run(r.run_dir)
    _, va = _split_indices(len(x), seed=0, val=0.2)
    pred = run.predict(x[va])
    assert pred.shape == (len(va),)
    rmse = math.sqrt(float(np.mean((pred.double().numpy() - y[va]) ** 2)))
    assert rmse == pytest.approx(r.best_metric, rel=1e-4)
    assert run.features == ["a", "b", "c"]
    # columns by name, in any order
    table = {"c": x[va][:, 2], "a": x[va][:, 0], "b": x[va][:, 1]}
    torch.testing.assert_close(run.predict(table), pred)


def test_wrong_feature_count_is_a_clear_error(iris_run: lrkit.TrainResults) -> None:
    run = lrkit.train.load_run(iris_run.run_dir)
    with pytest.raises(ValueError, match=r"5 values per sample.*4"):
        run.predict(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="lm"):
        run.encode("abc")


def test_missing_column_is_named(tmp_path: Path) -> None:
    _houses(tmp_path / "houses.csv", n=60)
    r = lrkit.train(data=str(tmp_path / "houses.csv"), epochs=1, project=str(tmp_path / "runs"), **QUIET)
    run = lrkit.train.load_run(r.run_dir)
    with pytest.raises(ValueError, match=r"'b'.*\['a', 'b', 'c'\]"):
        run.predict({"a": [1.0], "c": [2.0]})


def test_digits_images_from_flat_rows(tmp_path: Path) -> None:
    r = lrkit.train(data="digits", model="mlp", epochs=1, lr0=0.01, project=str(tmp_path), **QUIET)
    run = lrkit.train.load_run(r.run_dir)
    x, y = BUILTIN_DATASETS["digits"].load()
    _, va = _split_indices(len(x), seed=0, val=0.2)
    assert run.inputs(x[va]).shape == (len(va), 1, 8, 8)
    accuracy = float(np.mean(np.asarray(run.predict(x[va])) == y[va]))
    assert accuracy == pytest.approx(r.best_metric)


def test_charlm_text(tmp_path: Path) -> None:
    text = "the quick brown fox jumps over the lazy dog. " * 40
    (tmp_path / "book.txt").write_text(text)
    r = lrkit.train(data=str(tmp_path / "book.txt"), model="charlm", seq_len=16, epochs=1,
                    project=str(tmp_path / "runs"), **QUIET)
    run = lrkit.train.load_run(r.run_dir)
    assert run.task == "lm" and run.vocab is not None
    ids = run.encode("the fox")
    assert ids.dtype == torch.long and run.decode(ids) == "the fox"
    nxt = run.predict("the quick brown fox jumps over the lazy do")  # longer than seq_len: the last 16 characters
    assert isinstance(nxt, str) and len(nxt) == 1 and nxt in run.vocab
    with pytest.raises(ValueError, match="'Z'"):
        run.encode("Zebra")


def test_factory_model_from_file(tmp_path: Path) -> None:
    (tmp_path / "nets.py").write_text(
        "import torch.nn as nn\n"
        "def make(in_features, num_outputs):\n"
        "    return nn.Sequential(nn.Linear(in_features, 8), nn.ReLU(), nn.Linear(8, num_outputs))\n")
    r = lrkit.train(data="iris", model=f"{tmp_path / 'nets.py'}:make", epochs=2, project=str(tmp_path / "runs"),
                    **QUIET)
    run = lrkit.train.load_run(r.run_dir)
    assert isinstance(run.model, torch.nn.Sequential)
    (tmp_path / "nets.py").unlink()
    with pytest.raises(ValueError, match=r"nets\.py.*load_run\(.*model="):
        lrkit.train.load_run(r.run_dir)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    assert lrkit.train.load_run(r.run_dir, model=net).model is net


def test_relative_factory_found_from_the_runs_working_directory(tmp_path: Path, monkeypatch) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "mynets.py").write_text(
        "import torch.nn as nn\n"
        "def make(in_features, num_outputs):\n"
        "    return nn.Linear(in_features, num_outputs)\n")
    monkeypatch.chdir(work)
    r = lrkit.train(data="iris", model="mynets.py:make", epochs=1, project="runs", **QUIET)
    monkeypatch.chdir(tmp_path)  # a new session elsewhere
    run = lrkit.train.load_run(work / r.run_dir)
    assert isinstance(run.model, torch.nn.Linear)


def test_python_object_model_needs_model_argument(tmp_path: Path) -> None:
    net = torch.nn.Linear(4, 3)
    r = lrkit.train(net, data="iris", epochs=1, project=str(tmp_path), **QUIET)
    with pytest.raises(ValueError, match=r"Python.*model="):
        lrkit.train.load_run(r.run_dir)
    run = lrkit.train.load_run(r.run_dir, model=torch.nn.Linear(4, 3))
    torch.testing.assert_close(run.model.weight, net.weight)
    with pytest.raises(ValueError, match="does not match"):
        lrkit.train.load_run(r.run_dir, model=torch.nn.Linear(4, 2))


def test_bad_arguments(iris_run: lrkit.TrainResults, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"which='final'.*'best'.*'last'"):
        lrkit.train.load_run(iris_run.run_dir, which="final")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        lrkit.train.load_run(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"no best\.pt"):
        lrkit.train.load_run(tmp_path)
    with pytest.raises(ValueError, match="which="):
        lrkit.train.load_run(iris_run.run_dir / "best.pt", which="last")
    (tmp_path / "other.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"other\.pt"):
        lrkit.train.load_run(tmp_path / "other.pt")


def test_checkpoints_still_load_with_weights_only(iris_run: lrkit.TrainResults) -> None:
    for name in ("best.pt", "last.pt"):
        ck = torch.load(iris_run.run_dir / name, weights_only=True)
        assert "preprocess" in ck and ck["preprocess"]["x_mean"].shape == (4,)


def _as_old_run(path: Path) -> None:
    """Rewrite a checkpoint as lrkit wrote it before load_run (no preprocessing record)."""
    ck = torch.load(path, weights_only=True)
    ck.pop("preprocess")
    torch.save(ck, path)


def test_old_run_is_a_clear_error_and_still_resumes(tmp_path: Path) -> None:
    r = lrkit.train(data="iris", epochs=2, project=str(tmp_path), **QUIET)
    for name in ("best.pt", "last.pt"):
        _as_old_run(r.run_dir / name)
    with pytest.raises(ValueError, match=r"before load_run.*mean.*cfg=.*args\.yaml resume=false"):
        lrkit.train.load_run(r.run_dir)
    resumed = lrkit.train(resume=str(r.run_dir / "last.pt"), epochs=3, **QUIET)
    assert resumed.epochs_run == 3
    assert lrkit.train.load_run(r.run_dir, which="last").predict(np.zeros((1, 4)))  # the resume saved it anew


def test_fine_tune_from_a_run(iris_run: lrkit.TrainResults, tmp_path: Path) -> None:
    start = lrkit.train.load_run(iris_run.run_dir)
    before = {k: v.clone() for k, v in start.model.state_dict().items()}
    r = lrkit.train(start.model, data="iris", epochs=1, lr0=1e-3, project=str(tmp_path), **QUIET)
    assert r.model is start.model
    assert any(not torch.equal(before[k], v) for k, v in r.model.state_dict().items())


def test_fresh_process_round_trip(iris_run: lrkit.TrainResults) -> None:
    code = ("import lrkit, sys; r = lrkit.load_run(sys.argv[1]); "
            "print(r.predict([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]))")
    out = subprocess.run([sys.executable, "-c", code, str(iris_run.run_dir)], capture_output=True, text=True,
                         env={**os.environ, "PYTHONWARNINGS": "error::UserWarning"}, timeout=120)
    assert out.returncode == 0, out.stderr
    labels = eval(out.stdout.strip())  # a list of Python ints
    assert len(labels) == 2 and all(v in (0, 1, 2) for v in labels)


def test_a_missing_weights_file_as_model_points_to_fine_tuning() -> None:
    from lrkit._config import TrainConfig

    with pytest.raises(ValueError) as e:
        TrainConfig.from_kwargs(data="iris", model="runs/no_such_run/best.pt")
    msg = str(e.value)
    assert "no file 'runs/no_such_run/best.pt'" in msg and "fine-tunes from an lrkit run's checkpoint" in msg
    assert "model=file.py:make" in msg and "resume=<run>/last.pt" in msg


def test_factory_returning_a_loaded_run_fine_tunes(iris_run: lrkit.TrainResults, tmp_path: Path) -> None:
    """The README's fine-tuning recipe: model=file.py:make where make() returns load_run(run).model."""
    (tmp_path / "ft.py").write_text(
        f"import lrkit\ndef make():\n    return lrkit.load_run({str(iris_run.run_dir)!r}).model\n")
    r = lrkit.train(data="iris", model=f"{tmp_path / 'ft.py'}:make", epochs=1, lr0=1e-4, project=str(tmp_path / "r"),
                    **QUIET)
    start = torch.load(iris_run.run_dir / "best.pt", weights_only=True)["model"]
    # one small step from the run's weights, not from a fresh initialisation
    drift = max(float((r.model.state_dict()[k] - v).abs().max()) for k, v in start.items())
    assert drift < 0.01


def test_cli_summary_says_how_to_reuse_the_run(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from lrkit.cli.app import build_app

    out = CliRunner().invoke(build_app(), ["train", "data=iris", "epochs=1", "plots=false", f"project={tmp_path}",
                                           "name=exp"], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert f"lrkit.load_run('{tmp_path / 'exp'}')" in out.output


def test_results_object_and_model_class_mistakes(iris_run: lrkit.TrainResults) -> None:
    run = lrkit.train.load_run(iris_run)  # the TrainResults itself, as lrkit.train returned it
    assert run.checkpoint == iris_run.run_dir / "best.pt"
    with pytest.raises(ValueError, match=r"the class Sequential.*instance"):
        lrkit.train.load_run(iris_run.run_dir, model=torch.nn.Sequential)


def test_datainfo_with_scaling_still_compares() -> None:
    from lrkit.train.data import load_data

    assert load_data("iris").info == load_data("iris").info


# ------------------------------------------------------------------------------------------------------------------
# session 19 (lead): the target column recorded, a non-checkpoint file and a project folder named
def test_target_column_recorded_and_named_by_predict(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from lrkit.cli.app import build_app

    rng = np.random.default_rng(0)
    rows = "".join(f"{a:.3f},{b:.3f},{a + 2 * b:.3f}\n" for a, b in rng.normal(size=(80, 2)))
    data = tmp_path / "d.csv"
    data.write_text("u,v,score\n" + rows)
    r = lrkit.train(data=str(data), model="linear", epochs=2, lr0=0.01, project=str(tmp_path), verbose=False,
                    plots=False)
    run = lrkit.load_run(r.run_dir)
    assert run.target == "score" and run.features == ["u", "v"]
    data.unlink()  # the header is no longer read from the training file
    src = tmp_path / "new.csv"
    src.write_text("v,u\n1,2\n")
    res = CliRunner().invoke(build_app(), ["predict", str(r.run_dir), str(src)])
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[0] == "score"


def test_a_file_that_is_no_checkpoint_and_a_project_folder(tmp_path: Path) -> None:
    r = lrkit.train(data="iris", model="linear", epochs=1, lr0=0.01, project=str(tmp_path / "runs"), verbose=False,
                    plots=False)
    with pytest.raises(ValueError, match=r"not a torch \.pt file\): give the run directory") as e:
        lrkit.load_run(r.run_dir / "args.yaml")
    assert "weights_only" not in str(e.value)
    with pytest.raises(FileNotFoundError, match=r"is a project folder; its runs: .*runs/train"):
        lrkit.load_run(tmp_path / "runs")
