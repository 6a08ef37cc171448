"""The range-test and run pictures on awkward records: each test failed before its fix (found by a bug hunt).

Checks read the drawn Figure (its lines, legend, texts and limits), not pixels.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest

from lrkit.finder import FinderResult
from lrkit.plots.finder import plot_finder
from lrkit.plots.results import plot_results

NAN = float("nan")


def _record(lrs: list[float], losses: list[float], **kw: object) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # too-short curves warn; that is the finder's business
        return FinderResult(lrs=lrs, losses=losses, **kw).to_dict()  # type: ignore[arg-type]


@pytest.mark.parametrize(("lrs", "losses"), [
    ([1e-5, 2e-5], [1.0, NAN]),  # diverged at step 2
    ([1e-5, 2e-5, 4e-5], [NAN, NAN, NAN]),  # all NaN
    ([1e-5], [1.0]),  # a single point
    ([], []),  # nothing at all
])
def test_a_record_without_suggestion_is_still_drawn(lrs: list[float], losses: list[float], tmp_path: Path) -> None:
    # Bug: plot_finder(record) raised "TypeError: cannot unpack non-iterable NoneType object" on the records that
    # lr_find.json holds when the test diverged early ("suggestion": null, "range": null).
    record = _record(lrs, losses, stop_reason="diverged")
    assert record["suggestion"] is None and record["range"] is None
    fig = plot_finder(record, path=tmp_path / "f.png")
    ax = fig.axes[0]
    assert "no suggestion" in ax.get_title()
    assert not [ln for ln in ax.get_lines() if ln.get_label().startswith("suggestion")]
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    plt.close(fig)


def test_rule_lines_never_share_the_suggestion_colour() -> None:
    # Bug: the 'minimum' rule's line was drawn in C3, the suggestion's own colour.
    lrs = list(np.geomspace(1e-5, 1, 50))
    losses = [2.0 - math.tanh(i / 10) + (0.0 if i < 40 else (i - 40) ** 2) for i in range(50)]
    fig = plot_finder(_record(lrs, losses))
    lines = {ln.get_label().split(":")[0]: ln.get_color() for ln in fig.axes[0].get_lines()}
    sug = next(c for k, c in lines.items() if k.startswith("suggestion"))
    rules = [c for k, c in lines.items() if k in ("minimum", "steepest", "valley")]
    assert len(rules) == 3 and sug not in rules and len(set(rules)) == 3
    plt.close(fig)


def _csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    path.write_text(",".join(header) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


def _draw(csv: Path, out: Path):
    """plot_results with every warning an error; returns the figure it drew (kept open for inspection)."""
    figs: list = []
    orig = plt.close
    try:
        plt.close = lambda fig=None: figs.append(fig)  # type: ignore[assignment]
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            plot_results(csv, out)
    finally:
        plt.close = orig  # type: ignore[assignment]
    return figs[0]


def test_many_param_groups_keep_the_lr_legend_short(tmp_path: Path) -> None:
    # Bug: 60 layer-decay groups gave a 60-entry legend taller than the figure, covering the other panels
    # (and a "Tight layout not applied" warning).
    names = [f"lr/layer{i}/{k}" for i in range(30) for k in ("decay", "bias")]
    rows = [[e, 1.0 / e, 0.9 / e, *[0.01 * 0.8 ** (29 - i) / e for i in range(30) for _ in (0, 1)], 1.0]
            for e in (1, 2, 3)]
    fig = _draw(_csv(tmp_path / "results.csv", ["epoch", "train_loss", "val_loss", *names, "grad_norm"], rows),
                tmp_path / "results.png")
    ax_lr = fig.axes[2]
    labels = [t.get_text() for t in ax_lr.get_legend().get_texts()]
    assert len(labels) <= 8
    assert any("more" in t for t in labels)  # says how many are not listed
    assert "layer0/decay, layer0/bias" in labels  # identical curves share one line and one entry
    assert len(ax_lr.get_lines()) == 30
    plt.close(fig)


def test_nan_validation_and_missing_grad_norm(tmp_path: Path) -> None:
    # Bug: an all-NaN val panel got a meaningless x axis around 0 (-0.04 .. 0.04), and a CSV without grad_norm
    # raised "No artists with labels found to put in legend".
    rows = [[1, 1.0, "nan", "nan", 0.01], [2, 0.5, "nan", "nan", 0.01]]
    fig = _draw(_csv(tmp_path / "results.csv", ["epoch", "train_loss", "val_loss", "val_accuracy", "lr/all/decay"],
                     rows), tmp_path / "results.png")
    ax_loss, ax_metric, _, ax_grad = fig.axes[:4]
    assert ax_metric.get_xlim() == ax_loss.get_xlim() and ax_loss.get_xlim()[0] > 0.5
    assert any("no finite values" in t.get_text() for t in ax_metric.texts)
    assert any("not recorded" in t.get_text() for t in ax_grad.texts)
    plt.close(fig)


def test_ragged_rows_and_picture_format_from_the_suffix(tmp_path: Path) -> None:
    # Bug: a row with an extra field raised "TypeError: float() argument must be ... not 'list'", and out=run.svg
    # got PNG bytes.
    csv = tmp_path / "results.csv"
    csv.write_text("epoch,train_loss,val_loss\n1,1.0,0.9,7\n2,0.5\n")
    out = plot_results(csv, tmp_path / "run.svg")
    assert out.read_bytes()[:5] == b"<?xml"
    with pytest.raises(ValueError, match=r"'\.txt' is not an image format"):
        plot_results(csv, tmp_path / "run.txt")
