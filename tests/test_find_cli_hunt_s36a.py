"""Session 36 (helper a): a bug hunt in ``lrkit find`` with user task files, and in the finder's picture.

- ``train_loader()`` written as a generator function (``yield`` batches: "an iterable of batches", as ``lrkit find
  --help`` says) failed once its one pass ran out, with the Python API's "pass a re-iterable loader"; a one-shot
  iterator from ``train_loader()`` is now called for again at each pass.
- A task file's own ``loss_fn`` that raised inside (a RuntimeError, torch's dtype complaint) lost the file's line, and
  was told to "define loss_fn(output, target) in the task file" — which it had done.
- ``optimizer(model)`` that returned no optimizer was named ``optimizer(params)``.
- ``plot_finder`` of a record whose LRs are strings ("0.001", a record read from CSV) failed with a bare TypeError
  from deep in the drawing; a loss that is not a number with numpy's "could not convert string to float".
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lrkit.cli.app import build_app
from lrkit.finder.demo import load_task_file

_HEAD = """
import torch
torch.manual_seed(0)
X = torch.randn(128, 4)
Y = (X[:, 0] > 0).long()
def model():
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
"""
_OPT = """
def optimizer(params):
    return torch.optim.SGD(params, lr=0.01)
"""
_LOADER = """
def train_loader():
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, Y), batch_size=32)
"""
_GEN_LOADER = """
CALLS = []
def train_loader():
    CALLS.append(1)
    for i in range(0, 128, 32):
        yield X[i:i + 32], Y[i:i + 32]
"""
_LOSS = "loss_fn = torch.nn.functional.cross_entropy\n"


def _task(tmp_path: Path, text: str, name: str = "task.py") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _find(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(build_app(), ["find", *args, "--no-chart"], env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_a_generator_train_loader_is_called_again_for_each_pass(tmp_path: Path) -> None:
    # 4 batches a pass, 12 steps: three passes; before, "train_loader ran out after 4 batches ... pass a re-iterable
    # loader" — the help promises "an iterable of (x, y) batches", and a generator function is the natural one
    path = _task(tmp_path, _HEAD + _OPT + _GEN_LOADER + _LOSS)
    code, output = _find(str(path), "--num-steps", "12", "--diverge-factor", "none", "--out", str(tmp_path / "out"))
    assert code == 0, output
    assert "12 steps" in output
    assert (tmp_path / "out" / "lr_find.json").is_file()


def test_a_generator_train_loader_is_iterated_afresh_by_load_task_file(tmp_path: Path) -> None:
    path = _task(tmp_path, _HEAD + _OPT + _GEN_LOADER + _LOSS, "task_gen.py")
    task = load_task_file(path)
    first = [x for x, _ in task.train_loader]
    second = [x for x, _ in task.train_loader]
    assert len(first) == len(second) == 4
    assert all(bool((a == b).all()) for a, b in zip(first, second))


def test_a_train_loader_that_returns_none_on_a_later_pass_is_named(tmp_path: Path) -> None:
    text = _HEAD + _OPT + """
DONE = []
def train_loader():
    if DONE:
        return None
    DONE.append(1)
    return iter([(X[:32], Y[:32])])
""" + _LOSS
    task = load_task_file(_task(tmp_path, text, "task_none.py"))
    assert len(list(task.train_loader)) == 1
    with pytest.raises(ValueError, match=r"train_loader\(\) in .*task_none\.py.* returned None"):
        iter(task.train_loader)


def test_a_task_files_own_loss_fn_that_raises_names_the_file_line_and_no_define_advice(tmp_path: Path) -> None:
    text = _HEAD + _OPT + _LOADER + """
def loss_fn(output, target):
    return torch.nn.functional.cross_entropy(output, target.float())
"""
    path = _task(tmp_path, text, "task_loss.py")
    code, output = _find(str(path), "--num-steps", "10", "--out", str(tmp_path / "out"))
    assert code == 2, output
    line = text.splitlines().index("    return torch.nn.functional.cross_entropy(output, target.float())") + 1
    assert f"(in loss_fn, line {line})" in output, output
    assert "task_loss.py" in output
    assert "define loss_fn(output, target) in the task file" not in output  # it is defined: change it
    assert "change loss_fn(output, target) in the task file" in output, output


def test_the_default_losss_failure_still_asks_for_a_loss_fn(tmp_path: Path) -> None:
    # no loss_fn in the file: the advice to define one stays
    text = _HEAD + _OPT + """
def train_loader():
    return [(X[:32], torch.randn(32, 3))] * 4
loss_fn = None
"""
    code, output = _find(str(_task(tmp_path, text, "task_default.py")), "--num-steps", "10",
                         "--out", str(tmp_path / "out"))
    assert code == 2, output
    assert "define loss_fn(output, target) in the task file" in output, output


def test_optimizer_of_the_model_that_returns_no_optimizer_is_named_so(tmp_path: Path) -> None:
    text = _HEAD + """
def optimizer(model):
    return [torch.optim.SGD(model.parameters(), lr=0.01)]
""" + _LOADER + _LOSS
    with pytest.raises(ValueError) as info:
        load_task_file(_task(tmp_path, text, "task_optm.py"))
    assert str(info.value).startswith("optimizer(model) in "), info.value
    assert "returned list" in str(info.value)


def test_plot_finder_takes_lrs_written_as_numbers_in_text(tmp_path: Path) -> None:
    from lrkit.plots.finder import plot_finder

    fig = plot_finder({"lrs": ["0.001", "0.01", "0.1"], "losses": ["1.0", 0.5, 0.3]}, path=tmp_path / "s.png")
    assert fig.axes[0].get_xscale() == "log"
    assert (tmp_path / "s.png").is_file()


def test_plot_finder_names_a_loss_that_is_not_a_number(tmp_path: Path) -> None:
    from lrkit.plots.finder import plot_finder

    with pytest.raises(ValueError, match=r"losses\[1\]='x'"):
        plot_finder({"lrs": [1e-3, 1e-2, 1e-1], "losses": [1.0, "x", 0.3]}, path=tmp_path / "x.png")


def test_a_dataset_from_train_loader_is_told_to_return_a_dataloader(tmp_path: Path) -> None:
    text = _HEAD + _OPT + """
def train_loader():
    return torch.utils.data.TensorDataset(X, Y)
""" + _LOSS
    _, output = _find(str(_task(tmp_path, text, "task_ds.py")), "--num-steps", "10", "--diverge-factor", "none",
                         "--out", str(tmp_path / "out"))
    flat = " ".join(output.split())
    assert "return DataLoader(dataset, batch_size=32, shuffle=True) from train_loader()" in flat, output
    assert "pass DataLoader(" not in flat


def test_an_optimizer_built_on_a_new_model_names_the_task_files_params(tmp_path: Path) -> None:
    text = _HEAD + """
def optimizer(params):
    return torch.optim.SGD(model().parameters(), lr=0.01)
""" + _LOADER + _LOSS
    code, output = _find(str(_task(tmp_path, text, "task_other.py")), "--num-steps", "10",
                         "--out", str(tmp_path / "out"))
    assert code == 2, output
    assert "holds none of the model's parameters" in output
    assert "build it on the params it is given" in output, output


def test_a_relative_import_in_a_task_file_is_told_to_import_the_neighbour_by_name(tmp_path: Path) -> None:
    (tmp_path / "helper_s36a.py").write_text("K = 3\n")
    text = "from .helper_s36a import K\n" + _HEAD + _OPT + _LOADER + _LOSS
    with pytest.raises(ValueError) as info:
        load_task_file(_task(tmp_path, text, "task_rel.py"))
    assert "attempted relative import" in str(info.value)
    assert "from helper_s36a import K" in str(info.value), info.value


def _record() -> dict:
    import numpy as np

    from lrkit.finder import FinderResult

    lrs = list(np.geomspace(1e-5, 1, 40))
    losses = [1.0 / (1 + 1e3 * lr) + (0 if lr < 0.2 else 10 * lr) for lr in lrs]
    return FinderResult(lrs=lrs, losses=losses).to_dict()


def test_plot_finder_leaves_out_a_rule_with_no_answer(tmp_path: Path) -> None:
    from lrkit.plots.finder import plot_finder

    record = _record()
    record["suggestions"] = {**record["suggestions"], "steepest": None}  # JSON null: before, a TypeError in format
    fig = plot_finder(record, path=tmp_path / "n.png")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert not any(label.startswith("steepest") for label in labels), labels
    assert any(label.startswith("minimum") for label in labels), labels


@pytest.mark.parametrize(("key", "value", "words"), [
    ("range", [None, None], "range="),
    ("range", [0.1], "range="),
    ("suggestion", "0.01x", "suggestion="),
    ("suggestions", [1, 2], "suggestions="),
])
def test_plot_finder_names_a_malformed_reading(tmp_path: Path, key: str, value: object, words: str) -> None:
    from lrkit.plots.finder import plot_finder

    record = {**_record(), key: value}
    with pytest.raises(ValueError, match=words):
        plot_finder(record, path=tmp_path / "m.png")
    assert not (tmp_path / "m.png").exists()


def test_the_curve_row_of_a_constant_loss_says_at_the_minimum_not_0_kept() -> None:
    import numpy as np

    from lrkit.cli.find import _curve_reading
    from lrkit.finder import FinderResult

    result = FinderResult(lrs=list(np.geomspace(1e-7, 10, 20)), losses=[1.0] * 20)
    row = _curve_reading(result)
    assert "(0 kept" not in row, row
    assert "(at the minimum: kept inside the descent)" in row, row


def test_a_tiny_noise_prints_in_a_few_digits_not_sixteen_decimals() -> None:
    import numpy as np

    from lrkit.cli.find import _curve_reading
    from lrkit.finder import FinderResult

    result = FinderResult(lrs=list(np.geomspace(1e-7, 10, 20)), losses=[1.0 - 1e-3 * i for i in range(20)])
    row = _curve_reading(result)
    assert "0.0000000000" not in row, row
    assert re.search(r"noise \d(\.\d)?e-\d+\)", row), row
