"""Session 36d: using a finished run (load_run, LoadedRun.predict, ``lrkit predict``, results.png) — bug hunt."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import lrkit
from lrkit.cli.app import build_app


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("iris")
    return Path(lrkit.train(data="iris", epochs=1, project=str(project), verbose=False, plots=False).run_dir)


def _predict_cli(*args: str) -> object:
    return CliRunner().invoke(build_app(), ["predict", *args])


IRIS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


# -- lrkit predict on a built-in scikit-learn table's run reads a named header by name -----------------------------
def test_cli_reads_a_builtin_runs_reordered_named_columns_by_name(iris_run: Path, tmp_path: Path) -> None:
    from sklearn.datasets import load_iris

    x = load_iris().data[::15]
    expected = lrkit.load_run(iris_run).predict(x)
    order = [3, 0, 2, 1]  # the columns of load_iris(as_frame=True) in another order: positions would mix them
    lines = [",".join(IRIS[j] for j in order)] + [",".join(repr(float(row[j])) for j in order) for row in x]
    (tmp_path / "new.csv").write_text("\n".join(lines) + "\n")
    res = _predict_cli(str(iris_run), str(tmp_path / "new.csv"))
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[1:] == [str(v) for v in expected]


def test_cli_reads_a_builtin_runs_frame_to_csv_with_its_target(iris_run: Path, tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame.iloc[::15]  # the four features and 'target': 5 columns
    frame.to_csv(tmp_path / "new.csv", index=False)
    expected = lrkit.load_run(iris_run).predict(frame)
    res = _predict_cli(str(iris_run), str(tmp_path / "new.csv"))
    assert res.exit_code == 0, res.output  # "x has 5 values per sample" before
    assert res.stdout.splitlines()[1:] == [str(v) for v in expected]
    assert "against column 'target'" in res.stderr  # scikit-learn's target column is compared, as a CSV run's


def test_cli_names_a_builtin_runs_missing_named_column(iris_run: Path, tmp_path: Path) -> None:
    header = ",".join([*IRIS[:3], "petal_width"])
    (tmp_path / "new.csv").write_text(f"{header}\n5.1,3.5,1.4,0.2\n")
    res = _predict_cli(str(iris_run), str(tmp_path / "new.csv"))
    assert res.exit_code == 2
    assert "no column 'petal width (cm)'" in res.stderr and "rename 'petal_width'" in res.stderr


def test_cli_still_reads_a_builtin_runs_other_header_or_no_header_by_position(iris_run: Path, tmp_path: Path) -> None:
    expected = lrkit.load_run(iris_run).predict([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])
    for text in ("a,b,c,d\n5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n", "5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n"):
        (tmp_path / "new.csv").write_text(text)
        res = _predict_cli(str(iris_run), str(tmp_path / "new.csv"))
        assert res.exit_code == 0, res.output
        assert res.stdout.splitlines()[1:] == [str(v) for v in expected]


# -- inputs numpy cannot read as plain numbers are named, not predicted or passed through as numpy's error ----------
def test_an_integer_too_large_for_a_float_is_named(iris_run: Path) -> None:
    run = lrkit.load_run(iris_run)
    with pytest.raises(ValueError, match=r"row 0 .*column 'sepal width \(cm\)'.*not a number a float64 can hold"):
        run.predict([[5.1, 10**400, 1.4, 0.2]])  # OverflowError: int too large to convert to float


def test_complex_inputs_are_refused_not_cut_to_their_real_part(iris_run: Path) -> None:
    import torch

    run = lrkit.load_run(iris_run)
    with pytest.raises(ValueError, match="complex128"):
        run.predict(np.array([[5.1, 3.5, 1.4, 0.2 + 1j]]))
    with pytest.raises(ValueError, match="complex64"):
        run.predict(torch.tensor([[5.1, 3.5, 1.4, 0.2 + 1j]], dtype=torch.complex64))


def test_a_masked_value_is_a_missing_value(iris_run: Path) -> None:
    run = lrkit.load_run(iris_run)
    x = np.ma.masked_array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], mask=[[0, 0, 0, 0], [0, 1, 0, 0]])
    with pytest.raises(ValueError, match=r"row 1 \(counting from 0\) holds nan in column 'sepal width \(cm\)'"):
        run.predict(x)  # the mask was dropped: the hidden value under it was predicted
    assert run.predict(x[:1]) == run.predict([[5.1, 3.5, 1.4, 0.2]])  # nothing masked: read as it is


def test_none_is_named_as_no_input(iris_run: Path) -> None:
    with pytest.raises(ValueError, match=r"predict\(x=None\)"):  # "x has 1 values per sample (x of shape ())"
        lrkit.load_run(iris_run).predict(None)


# -- plot_results takes a run folder ----------------------------------------------------------------------------
def test_plot_results_of_a_run_folder_redraws_its_results_png_with_its_events(tmp_path: Path) -> None:
    import json

    from lrkit.plots import results as plots

    run = tmp_path / "train"
    run.mkdir()
    (run / "results.csv").write_text("epoch,train_loss,val_loss\n1,1.0,0.9\n2,0.5,0.6\n")
    events = [{"epoch": 1.5, "check": "loss_spike", "action": "rollback", "values": {}, "reason": "spike"}]
    (run / "events.json").write_text(json.dumps({"events": events}))
    seen: list[object] = []
    draw = plots._draw
    plots._draw = lambda axes, cols, ev, missing=None: (seen.append(ev), draw(axes, cols, ev, missing))[1]
    try:
        assert plots.plot_results(run) == run / "results.png"  # IsADirectoryError before
    finally:
        plots._draw = draw
    assert (run / "results.png").stat().st_size > 0
    assert seen and seen[0] == {"events": events}


def test_plot_results_of_a_folder_without_results_csv_names_it(tmp_path: Path) -> None:
    from lrkit.plots.results import plot_results

    with pytest.raises(ValueError, match=r"no results\.csv"):
        plot_results(tmp_path)


# -- a project moved with its factory file -----------------------------------------------------------------------
def test_a_moved_project_rebuilds_its_relative_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    home = tmp_path / "proj"
    home.mkdir()
    (home / "nets_s36d.py").write_text(
        "import torch.nn as nn\n"
        "def make(in_features, num_outputs):\n"
        "    return nn.Sequential(nn.Linear(in_features, 8), nn.ReLU(), nn.Linear(8, num_outputs))\n")
    monkeypatch.chdir(home)
    lrkit.train(data="iris", model="nets_s36d.py:make", epochs=1, project="runs", verbose=False, plots=False)
    moved = tmp_path / "elsewhere" / "proj"
    shutil.move(str(home), str(moved))  # the project folder copied to another place (or machine)
    monkeypatch.chdir(tmp_path)
    run = lrkit.load_run(moved / "runs" / "train")  # "'nets_s36d.py': no such file" before
    assert run.predict([[5.1, 3.5, 1.4, 0.2]])[0] in (0, 1, 2)


def test_cli_on_a_run_of_a_python_model_says_to_predict_in_python(tmp_path: Path) -> None:
    from torch import nn

    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    r = lrkit.train(net, data="iris", epochs=1, project=str(tmp_path), verbose=False, plots=False)
    (tmp_path / "new.csv").write_text("5.1,3.5,1.4,0.2\n")
    res = _predict_cli(str(r.run_dir), str(tmp_path / "new.csv"))
    assert res.exit_code == 2
    # load_run's advice, load_run(run, model=Net(...)), is no flag of the command: it says how, from Python
    assert "lrkit predict cannot rebuild it" in res.stderr
    assert f"lrkit.load_run({str(r.run_dir)!r}, model=" in res.stderr and ".predict(rows)" in res.stderr


def test_cli_names_a_checkpoint_given_as_input(iris_run: Path) -> None:
    res = _predict_cli(str(iris_run), str(iris_run / "last.pt"))
    assert res.exit_code == 2
    # "a zip archive ('.last.pt.../data.pkl', ...): unzip it and give the .csv inside" before
    assert "torch checkpoint" in res.stderr and "unzip" not in res.stderr
    assert "INPUT" in res.stderr and "rows" in res.stderr


# -- a model whose forward ends in .squeeze(): one row loses its batch dimension ---------------------------------
_SQUEEZE_NET = """
import torch.nn as nn


class Squeezed(nn.Module):
    def __init__(self, n, k):
        super().__init__()
        self.lin = nn.Linear(n, k)

    def forward(self, x):
        return self.lin(x).squeeze()


def make(in_features, num_outputs):
    return Squeezed(in_features, num_outputs)
"""


def _squeeze_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **kw: object) -> Path:
    (tmp_path / "sqz_s36d.py").write_text(_SQUEEZE_NET)
    monkeypatch.chdir(tmp_path)
    r = lrkit.train(model="sqz_s36d.py:make", epochs=1, project=str(tmp_path / "runs"), verbose=False, plots=False,
                    **kw)
    return Path(r.run_dir)


def test_one_row_through_a_squeezing_classifier_is_one_label(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = lrkit.load_run(_squeeze_run(tmp_path, monkeypatch, data="iris"))
    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
    both = run.predict(rows)
    assert len(both) == 2
    assert run.predict(rows[:1]) == both[:1]  # three labels, one per class score, before
    assert run.predict(rows[1]) == both[1:]


def test_one_row_through_a_squeezing_regressor_is_one_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    np.savez(tmp_path / "r.npz", x=x, y=x @ [1.0, 2.0, 3.0] * 10 + 50)
    run_dir = _squeeze_run(tmp_path, monkeypatch, data=str(tmp_path / "r.npz"))
    run = lrkit.load_run(run_dir)
    both = run.predict(x[:2])
    one = run.predict(x[:1])  # TypeError: len() of a 0-d tensor, before
    assert one.shape == (1,) and float(one[0]) == pytest.approx(float(both[0]), rel=1e-5)
    np.save(tmp_path / "one.npy", x[:1])
    res = _predict_cli(str(run_dir), str(tmp_path / "one.npy"))  # the CLI: a traceback
    assert res.exit_code == 0, res.output
    assert float(res.stdout.splitlines()[1]) == pytest.approx(float(both[0]), rel=1e-5)


# -- a DataFrame of numbered columns, pd.DataFrame(array), for a run without CSV columns: read by position ----------
def test_a_numbered_dataframe_reads_by_position_for_a_run_without_csv_columns(iris_run: Path, tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    run = lrkit.load_run(iris_run)
    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
    assert run.predict(pd.DataFrame(rows)) == run.predict(rows)  # "x has no column 'sepal length (cm)'" before
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 3))
    np.savez(tmp_path / "r.npz", x=x, y=x.sum(1))
    npz = lrkit.load_run(lrkit.train(data=str(tmp_path / "r.npz"), epochs=1, project=str(tmp_path), verbose=False,
                                     plots=False).run_dir)
    assert npz.predict(pd.DataFrame(x[:4])).tolist() == npz.predict(x[:4]).tolist()  # "not trained on a CSV file"
    with pytest.raises(ValueError, match="not trained on a CSV file"):  # named columns still say so
        npz.predict(pd.DataFrame(x[:4], columns=["a", "b", "c"]))


def test_cli_writes_integer_predictions_as_integers(tmp_path: Path) -> None:
    import torch

    from lrkit.cli.predict import predict_file

    class Run:  # a run whose predict gives a tensor of integers: 0/1 per label (multi-label), or token ids
        task, vocab, features, target, input_shape, config = "classification", None, None, None, (2,), {}

        def predict(self, x: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(x > 0).long()

    np.save(tmp_path / "x.npy", np.array([[1.0, -1.0], [-2.0, 3.0]]))
    result = predict_file(Run(), str(tmp_path / "x.npy"))
    assert result.rows == [["1", "0"], ["0", "1"]]  # "1.0", "0.0" before
