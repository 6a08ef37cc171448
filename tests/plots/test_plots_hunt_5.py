"""Bug hunt 5 over the run and range-test pictures: each test failed before its fix.

Checks read the drawn Figure (its lines, legends, texts, limits) or pyplot's list of open figures, not pixels.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pytest

from lrkit.finder import FinderResult
from lrkit.plots.finder import plot_finder, save_figure
from lrkit.plots.monitor import mark_events
from lrkit.plots.results import plot_results

HEADER = "epoch,train_loss,val_loss,val_accuracy,lr/all/decay,grad_norm\n"
ROWS = "1,1.0,0.9,0.5,0.01,2.0\n2,0.5,0.6,0.8,0.005,1.0\n"


@pytest.fixture(autouse=True)
def _no_figures_left_open() -> Any:
    plt.close("all")
    yield
    plt.close("all")


def _csv(tmp_path: Path, text: str = HEADER + ROWS, name: str = "results.csv") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def _drawn(csv: Path, out: Path, **kw: Any) -> Any:
    """plot_results with every warning an error; returns the figure it drew (kept open for inspection)."""
    figs: list[Any] = []
    orig = plt.close
    try:
        plt.close = lambda fig=None: figs.append(fig)  # type: ignore[assignment]
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            plot_results(csv, out, **kw)
    finally:
        plt.close = orig  # type: ignore[assignment]
    return figs[0]


# ------------------------------------------------------------------------------------------- where it is written
def test_a_picture_path_that_is_a_folder_is_named_and_no_figure_is_left_open(tmp_path: Path) -> None:
    # Bug: "IsADirectoryError: ... '.r.3942ff3047b6.tmp' -> 'r'" (a temporary name the user never chose), and the
    # figure stayed open in pyplot after the error.
    csv = _csv(tmp_path)
    with pytest.raises(ValueError, match=rf"cannot write a picture to '{tmp_path}': it is a folder"):
        plot_results(csv, tmp_path)
    assert plt.get_fignums() == []


def test_a_picture_under_a_file_names_that_file(tmp_path: Path) -> None:
    # Bug: "FileExistsError: [Errno 17] File exists: '.../afile'", and the figure stayed open.
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ValueError, match=r"/afile' is a file, not a folder"):
        plot_results(_csv(tmp_path), tmp_path / "afile" / "sub" / "r.png")
    assert plt.get_fignums() == []
    with pytest.raises(ValueError, match=r"/afile' is a file, not a folder"):
        save_figure(plt.figure(), tmp_path / "afile" / "f.png")


def test_a_missing_folder_is_created(tmp_path: Path) -> None:
    # Not a bug (checked): a folder that does not exist yet is made, as for every other lrkit record.
    out = plot_results(_csv(tmp_path), tmp_path / "new" / "deeper" / "r.png")
    assert out.read_bytes()[:4] == b"\x89PNG" and plt.get_fignums() == []


def test_a_csv_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    # Bug: "UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff in position 19" without the file's name.
    p = tmp_path / "results.csv"
    p.write_bytes(b"epoch,train_loss\n1,\xff\n")
    with pytest.raises(ValueError, match=rf"{p}.* is not UTF-8 text"):
        plot_results(p)


def test_a_csv_with_a_byte_order_mark_keeps_its_epoch_axis(tmp_path: Path) -> None:
    # Bug: a CSV saved by a spreadsheet (UTF-8 with BOM) has the header '\ufeffepoch', so the epochs were ignored and
    # the rows drawn at 1, 2 (here they are epochs 3 and 4, as after a resume of a trimmed CSV).
    csv = _csv(tmp_path, "\ufeffepoch,train_loss,val_loss\n3,1.0,0.9\n4,0.5,0.6\n")
    fig = _drawn(csv, tmp_path / "r.png")
    assert list(fig.axes[0].get_lines()[0].get_xdata()) == [3.0, 4.0]
    plt.close(fig)


# ------------------------------------------------------------------------------------------- what is drawn
def test_no_loss_columns_draws_without_a_legend_warning(tmp_path: Path) -> None:
    # Bug: a CSV without train_loss/val_loss (or events that all lack an epoch) warned "No artists with labels found
    # to put in legend" and drew an empty legend box.
    csv = _csv(tmp_path, "epoch,val_accuracy\n1,0.5\n2,0.6\n")
    # (an event with no epoch key at all is named in lrkit's own warning since session 15: tests/monitor/
    # test_readme_claims_s15g.py; one whose epoch is unknown, None, is left out without a word, and matplotlib's
    # legend warning, the bug here, must not come either: _drawn turns every warning into an error)
    fig = _drawn(csv, tmp_path / "r.png", events=[{"step": 3, "epoch": None, "check": "loss_spike", "action": "warn"}])
    ax_loss = fig.axes[0]
    assert ax_loss.get_legend() is None
    assert any("not recorded" in t.get_text() for t in ax_loss.texts)
    plt.close(fig)


def test_the_whole_events_json_record_is_accepted(tmp_path: Path) -> None:
    # Bug: the docstring says "as in a run's events.json", but json.load(events.json) -- {"lr0": ..., "optimizer":
    # ..., "events": [...]} -- was refused ("events must be a list ..."), and the figure was left open.
    record = {"lr0": {"value": 0.01, "source": "user"}, "optimizer": {"name": "SGD", "reason": "as requested"},
              "events": [{"step": 0, "epoch": 0.0, "check": "loss_spike", "action": "rollback"},
                         {"step": 9, "epoch": 2.5, "check": "val_rising", "action": "stop"}]}
    events_json = tmp_path / "events.json"
    events_json.write_text(json.dumps(record))
    fig = _drawn(_csv(tmp_path), tmp_path / "r.png", events=json.loads(events_json.read_text()))
    for ax in fig.axes[:4]:
        xs = sorted(ln.get_xdata()[0] for ln in ax.get_lines() if ln.get_linestyle() in ("-",) and
                    len(ln.get_xdata()) == 2 and ln.get_xdata()[0] == ln.get_xdata()[1])
        assert xs == [0.0, 2.5]  # one vertical line per event, at its epoch
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "loss_spike → rollback" in labels and "val_rising → stop" in labels
    plt.close(fig)
    fig, ax = plt.subplots()
    assert len(mark_events(ax, record, x="epoch")) == 4  # two lines and the two top-edge markers


def test_a_mapping_without_events_is_still_an_error() -> None:
    _, ax = plt.subplots()
    with pytest.raises(ValueError, match=r"events must be a list"):
        mark_events(ax, {"step": 3, "check": "loss_spike"})


# ------------------------------------------------------------------------------------------- the range test
def _finder_record() -> dict[str, Any]:
    lrs = list(np.geomspace(1e-5, 1, 40))
    losses = [1.0 / (1 + 1e3 * lr) + (0 if lr < 0.2 else 10 * lr) for lr in lrs]
    return FinderResult(lrs=lrs, losses=losses).to_dict()


def test_a_bad_picture_suffix_fails_before_drawing(tmp_path: Path) -> None:
    # Bug: path='lr.txt' was checked only after the figure was drawn, and the figure stayed open.
    with pytest.raises(ValueError, match=r"'\.txt' is not an image format"):
        plot_finder(_finder_record(), path=tmp_path / "lr.txt")
    assert plt.get_fignums() == []
    with pytest.raises(ValueError, match=r"it is a folder"):
        plot_finder(_finder_record(), path=tmp_path)
    assert plt.get_fignums() == []


def test_plot_finder_takes_the_result_object_too(tmp_path: Path) -> None:
    # Bug: plot_finder(result) raised "TypeError: 'FinderResult' object is not subscriptable".
    rec = _finder_record()
    res = FinderResult(lrs=rec["lrs"], losses=rec["losses"])
    fig = plot_finder(res, path=tmp_path / "lr.png")
    sug = [ln for ln in fig.axes[0].get_lines() if ln.get_label().startswith("suggestion")]
    assert len(sug) == 1 and math.isclose(sug[0].get_xdata()[0], res.suggestion)
    assert plt.get_fignums() == []  # written to a path: closed


def test_a_record_whose_lists_disagree_is_named() -> None:
    # Bug: "x and y must have same first dimension, but have shapes (3,) and (2,)" from deep in matplotlib.
    with pytest.raises(ValueError, match=r"3 lrs but 2 losses"):
        plot_finder({"lrs": [1e-3, 1e-2, 1e-1], "losses": [1.0, 2.0]})
    assert plt.get_fignums() == []


def test_a_hand_made_record_without_a_rule_name() -> None:
    # Bug: {"lrs", "losses", "suggestion"} (no "rule") raised KeyError: 'rule'.
    fig = plot_finder({"lrs": [1e-4, 1e-3, 1e-2], "losses": [1.0, 0.5, 2.0], "suggestion": 1e-3})
    labels = [ln.get_label() for ln in fig.axes[0].get_lines()]
    assert any(lb.startswith("suggestion") and lb.endswith("0.001") for lb in labels)
