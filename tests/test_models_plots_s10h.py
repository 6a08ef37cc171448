"""Hunt s10h: built-in models' refusals, ``package.module:factory`` edge cases, and the run/finder pictures."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn

from lrkit.plots.finder import plot_finder
from lrkit.plots.results import _draw, _read, plot_results
from lrkit.train.data import load_data
from lrkit.train.models import BUILTIN_MODELS, build_model, fitting_models


# ------------------------------------------------------------------------------------------------ models
@pytest.mark.parametrize("data", ["iris", "breast_cancer", "digits"])
def test_a_does_not_fit_error_offers_only_models_that_build(data: str) -> None:
    # Bug: `model=charlm` on tabular data said "use one of: linear, mlp, cnn", and cnn then failed on the same data
    info = load_data(data).info
    with pytest.raises(ValueError, match="does not fit classification") as e:
        build_model("charlm", info)
    offered = str(e.value).split("use one of: ")[1].split(", ")
    assert offered == fitting_models(info)
    assert ("cnn" in offered) == (len(info.input_shape or ()) in (2, 3))
    for name in offered:  # every name offered really builds and runs on a batch of the data
        x, _ = next(iter(torch.utils.data.DataLoader(load_data(data).train, batch_size=2)))
        assert build_model(name, info)(x).shape == (2, info.num_outputs)


def test_fitting_models_for_text_and_for_no_task() -> None:
    from lrkit.train.data import DataInfo

    lm = DataInfo(name="t", task="lm", input_shape=(8,), num_outputs=5, source="text", seq_len=8)
    assert fitting_models(lm) == [m.name for m in BUILTIN_MODELS.values() if "lm" in m.tasks]
    images = DataInfo(name="i", task=None, input_shape=(1, 8, 8), num_outputs=3, source="pair")
    assert fitting_models(images) == list(BUILTIN_MODELS)


def test_cnn_on_a_flattened_npz_says_how_to_keep_images(tmp_path: Path) -> None:
    # Bug: an .npz of (N, H, W) grayscale images is flattened (its documented contract), and cnn's refusal pointed to
    # data='digits' instead of saying the file needs x of shape (N, C, H, W)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "gray.npz", x=rng.normal(size=(40, 9, 9)).astype("float32"), y=rng.integers(0, 3, 40))
    info = load_data(str(tmp_path / "gray.npz")).info
    with pytest.raises(ValueError, match=r"\(N, C, H, W\).*x\[:, None\]"):
        build_model("cnn", info)
    np.savez(tmp_path / "img.npz", x=rng.normal(size=(40, 1, 9, 9)).astype("float32"), y=rng.integers(0, 3, 40))
    model = build_model("cnn", load_data(str(tmp_path / "img.npz")).info)  # the shape the hint asks for works
    assert model(torch.zeros(2, 1, 9, 9)).shape == (2, 3)


def _factory_file(tmp_path: Path, body: str) -> str:
    path = tmp_path / "facs_s10h.py"
    path.write_text("import torch\nfrom torch import nn\n\n" + body)
    return str(path)


def test_a_positional_only_factory_gets_its_arguments(tmp_path: Path) -> None:
    # Bug: `def make(in_features, num_outputs, /)` was called with keywords: TypeError "positional-only arguments
    # passed as keyword arguments"
    path = _factory_file(tmp_path, (
        "def make(in_features, num_outputs, /):\n    return nn.Linear(in_features, num_outputs)\n\n"
        "def make_kw(in_features, /, **kw):\n    return nn.Linear(in_features, kw['num_outputs'])\n\n"
        "def gap(in_features, depth, /, num_outputs=3):\n    return nn.Linear(in_features, num_outputs)\n"))
    info = load_data("iris").info
    for name in ("make", "make_kw"):
        model = build_model(f"{path}:{name}", info)
        assert isinstance(model, nn.Linear) and (model.in_features, model.out_features) == (4, 3)
    # a positional-only parameter lrkit does not offer is still the factory's own error, named as such
    with pytest.raises(ValueError, match=r"calling gap\(4, num_outputs=3\) raised TypeError: .*depth"):
        build_model(f"{path}:gap", info)


def test_a_factory_that_returns_its_class_is_told_to_instantiate_it(tmp_path: Path) -> None:
    # Rough edge: `return Net` (for `return Net(...)`) said "the factory returned a type, not a torch nn.Module"
    path = _factory_file(tmp_path, (
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.l = nn.Linear(4, 3)\n\n"
        "def make(in_features):\n    return Net\n\n"
        "def make_int(in_features):\n    return int\n"))
    info = load_data("iris").info
    with pytest.raises(ValueError, match=r"returned the class Net, not an instance of it; return Net\(\.\.\.\)"):
        build_model(f"{path}:make", info)
    with pytest.raises(ValueError, match="returned a type, not a torch nn.Module"):  # any other class as before
        build_model(f"{path}:make_int", info)


# ------------------------------------------------------------------------------------------------ results.png
def _csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    path.write_text(",".join(header) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


def _draw_csv(path: Path, events: Any = None) -> Any:
    missing: dict[str, set[int]] = {}
    cols = _read(path, missing)
    fig, axes = plt.subplots(2, 2, sharex=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _draw(axes, cols, events, missing)
    return fig


def _line(ax: Any, label: str) -> Any:
    found = [ln for ln in ax.get_lines() if ln.get_label() == label]
    return found[0] if found else None


_H = ["epoch", "train_loss", "val_loss", "val_accuracy", "lr/all", "grad_norm"]


def test_a_non_finite_loss_epoch_is_marked_not_just_a_gap(tmp_path: Path) -> None:
    # Bug: a run whose loss was NaN/inf at epoch 2 showed only a gap between the dots of epochs 1 and 3
    rows = [[1, 1.0, 0.9, 0.5, 0.01, 2.0], [2, "nan", "inf", 0.1, 0.01, "inf"], [3, 0.5, 0.6, 0.7, 0.001, 1.0],
            [4, 0.4, "-inf", 0.7, 0.001, 1.0]]
    fig = _draw_csv(_csv(tmp_path / "results.csv", _H, rows))
    marks = _line(fig.axes[0], "loss NaN/inf")
    assert marks is not None and list(marks.get_xdata()) == [2.0, 4.0]
    assert "loss NaN/inf" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    plt.close(fig)


def test_an_empty_cell_is_not_marked_as_a_diverged_epoch(tmp_path: Path) -> None:
    # an empty cell is a value the run did not record (a column added later), not a NaN it wrote
    rows = [[1, 1.0, "", 0.5, 0.01, 2.0], [2, 0.8, "", 0.6, 0.01, 1.0]]
    fig = _draw_csv(_csv(tmp_path / "results.csv", _H, rows))
    assert _line(fig.axes[0], "loss NaN/inf") is None
    plt.close(fig)
    fig = _draw_csv(_csv(tmp_path / "healthy.csv", _H, [[1, 1.0, 0.9, 0.5, 0.01, 2.0]]))
    assert _line(fig.axes[0], "loss NaN/inf") is None
    plt.close(fig)


@pytest.mark.parametrize("epochs", [1, 3, 7])
def test_the_epoch_axis_has_whole_number_ticks(tmp_path: Path, epochs: int) -> None:
    # Rough edge: a 1-epoch run's axis read 0.96 .. 1.04 and a 3-epoch run's 1.00, 1.25, 1.50, ...
    rows = [[e, 1.0 / e, 1.1 / e, 0.5, 0.01, 1.0] for e in range(1, epochs + 1)]
    fig = _draw_csv(_csv(tmp_path / "results.csv", _H, rows))
    lo, hi = fig.axes[0].get_xlim()
    ticks = [t for t in fig.axes[0].get_xticks() if lo <= t <= hi]
    assert ticks and all(float(t).is_integer() for t in ticks)
    assert 1.0 in ticks or epochs > 1
    plt.close(fig)


def test_a_long_run_draws_lines_without_a_dot_per_epoch(tmp_path: Path) -> None:
    # Rough edge: 1000 epochs drew 1000 dots on every curve, a thick smear hiding the line
    rows = [[e, 1.0 / e, 1.1 / e, 0.5, 0.01 * (1 - e / 1001), 1.0] for e in range(1, 1001)]
    fig = _draw_csv(_csv(tmp_path / "results.csv", _H, rows))
    for ax in fig.axes:
        for line in ax.get_lines():
            if len(line.get_xdata()) == 1000:
                assert line.get_marker() in ("", "None", None)
    plt.close(fig)
    fig = _draw_csv(_csv(tmp_path / "short.csv", _H, rows[:5]))
    assert _line(fig.axes[0], "train").get_marker() == "."  # a short run keeps its dots
    plt.close(fig)


def test_plot_results_with_nan_epochs_and_events_writes_and_closes(tmp_path: Path) -> None:
    rows = [[1, 1.0, 0.9, 0.5, 0.01, 2.0], [2, "nan", "nan", 0.0, 0.01, "nan"]]
    events = [{"epoch": 1.5, "step": 7, "check": "non_finite", "action": "rollback", "reason": "NaN", "values": {}}]
    before = set(plt.get_fignums())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = plot_results(_csv(tmp_path / "results.csv", _H, rows), tmp_path / "pics" / "r.svg", events=events)
    assert out.read_text().lstrip().startswith("<?xml") and set(plt.get_fignums()) == before
    assert not [p for p in (tmp_path / "pics").iterdir() if p.name != "r.svg"]  # no temp file left


# ------------------------------------------------------------------------------------------------ finder plot
def test_finder_title_without_a_stop_reason_has_no_dangling_comma() -> None:
    # Bug: a hand-made record with a suggestion and no stop_reason was titled "LR range test — , 3 steps"
    rec = {"lrs": [1e-5, 1e-4, 1e-3], "losses": [1.0, 0.8, 0.9], "suggestion": 1e-4, "rule": "robust"}
    fig = plot_finder(rec)
    assert fig.axes[0].get_title() == "LR range test — 3 steps"
    plt.close(fig)
    fig = plot_finder({**rec, "stop_reason": None, "lrs": [1e-5], "losses": [1.0], "suggestion": None})
    assert fig.axes[0].get_title() == "LR range test — no suggestion: lower start_lr, 1 step"
    plt.close(fig)


def test_finder_plot_shows_a_one_point_curve_and_where_the_loss_went_non_finite() -> None:
    # Bug: a 1-point curve was an invisible line; a diverged curve's NaN/inf steps were only a gap
    fig = plot_finder({"lrs": [1e-5], "losses": [1.0]})
    assert _line(fig.axes[0], "loss (raw)").get_marker() == "."
    plt.close(fig)
    lrs = list(np.geomspace(1e-5, 1e-1, 6))
    fig = plot_finder({"lrs": lrs, "losses": [1.0, 0.9, 0.8, 2.0, math.inf, None], "stop_reason": "diverged"})
    marks = _line(fig.axes[0], "loss NaN/inf")
    assert marks is not None and list(marks.get_xdata()) == lrs[4:]
    plt.close(fig)
    long = list(np.geomspace(1e-5, 1, 50))
    fig = plot_finder({"lrs": long, "losses": [1.0 / (1 + i) for i in range(50)]})
    assert _line(fig.axes[0], "loss (raw)").get_marker() in ("", "None")  # a full curve is a plain line
    assert _line(fig.axes[0], "loss NaN/inf") is None
    plt.close(fig)


def test_result_plot_draws_a_curve_too_short_to_judge(tmp_path: Path) -> None:
    """A range test that diverged in its first steps is drawn (titled "no suggestion"), not refused: that curve is
    the one worth a look; ``suggestion`` still raises, naming start_lr."""
    from lrkit.finder.result import FinderResult

    r = FinderResult(lrs=[1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2], losses=[1.0, 1.1, math.inf, math.nan, math.nan],
                     stop_reason="non-finite")
    with pytest.raises(ValueError, match="lower start_lr"):
        _ = r.suggestion
    fig = r.plot(tmp_path / "short.png")
    assert (tmp_path / "short.png").stat().st_size > 0
    assert "no suggestion" in fig.axes[0].get_title()
    plt.close(fig)
