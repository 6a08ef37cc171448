"""The flat reading made visible: ``FinderResult.flat`` (in ``to_dict``), the CLI's curve row and the plot legend say
the curve was too flat to judge, ``range`` is ``(suggestion, edge)`` on it and ``noise_scaled`` is off there."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from _helpers import flat_band_exit
from lrkit.cli.find import _curve_reading
from lrkit.finder import FinderResult
from lrkit.finder import suggest as S

LRS = np.logspace(-7, 1, 100)
NOISE = np.random.default_rng(0).normal(0, 0.01, 100)
FLAT = 1.39 + NOISE + (LRS / 0.3) ** 4  # learns nothing, blows up near 0.3
LEARNS = 1 / (1 + LRS / 1e-3) + (LRS / 0.3) ** 4 + NOISE  # falls, then blows up: an ordinary curve
#: a flat curve that leaves its band early: a decade below that edge is below the first LR tested
CLIP_LRS = np.logspace(-3, 1, 100)
CLIPPED = 1.0 + 0.001 * np.random.default_rng(1).normal(size=100) + (CLIP_LRS / 1e-2) ** 4


def _band_exit_lr(lrs: np.ndarray, curve: np.ndarray) -> float:
    return float(lrs[flat_band_exit(curve)])


def _legend(result: FinderResult | dict) -> list[str]:
    from lrkit.plots.finder import plot_finder

    fig = plot_finder(result)
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    import matplotlib.pyplot as plt

    plt.close(fig)
    return texts


# -- FinderResult.flat, noise_scaled, range ------------------------------------------------------------------------
def test_flat_is_the_default_rules_flat_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    flat, learns = FinderResult(lrs=list(LRS), losses=list(FLAT)), FinderResult(lrs=list(LRS), losses=list(LEARNS))
    assert flat.flat is True and learns.flat is False
    assert flat.edge == pytest.approx(_band_exit_lr(LRS, FLAT))
    monkeypatch.setattr(S, "ROBUST_FLAT", None)  # off: no curve is read flat
    assert flat.flat is False


def test_range_on_a_flat_reading_is_suggestion_to_edge() -> None:
    r = FinderResult(lrs=list(LRS), losses=list(FLAT))
    edge = _band_exit_lr(LRS, FLAT)
    low, high = r.range
    assert (low, high) == (r.suggestion, r.edge)
    assert high == pytest.approx(edge) and low == pytest.approx(edge / 10)  # a decade below: no descent to start from
    # clipped at the first LR tested: low is that LR, still below high
    c = FinderResult(lrs=list(CLIP_LRS), losses=list(CLIPPED), start_lr=1e-3)
    assert c.flat and c.range == (CLIP_LRS[0], pytest.approx(_band_exit_lr(CLIP_LRS, CLIPPED)))
    # every other curve: Smith's range as before
    learns = FinderResult(lrs=list(LRS), losses=list(LEARNS))
    assert learns.range == S.lr_range(LRS, LEARNS)


def test_range_on_a_flat_reading_with_another_rule_still_brackets_the_edge() -> None:
    r = FinderResult(lrs=list(LRS), losses=list(FLAT), rule="minimum")
    low, high = r.range
    assert low == pytest.approx(r.suggest("robust")) and high == pytest.approx(r.edge) and low < high


def test_noise_scaled_is_off_on_a_flat_reading() -> None:
    assert FinderResult(lrs=list(LRS), losses=list(FLAT)).noise_scaled is False
    assert FinderResult(lrs=list(LRS), losses=list(FLAT), passes=2.0).noise_scaled is False
    assert FinderResult(lrs=list(LRS), losses=list(LEARNS)).noise_scaled is True
    assert FinderResult(lrs=list(LRS), losses=list(LEARNS), passes=12.0).noise_scaled is False  # the passes gate
    short = FinderResult(lrs=[1e-3, 1e-2], losses=[1.0, 0.9])  # too short to read: still answers, no error
    assert short.noise_scaled is True


# -- to_dict / to_json / from_json -----------------------------------------------------------------------------------
def test_to_dict_records_flat_and_an_old_record_without_it_loads(tmp_path: Path) -> None:
    r = FinderResult(lrs=list(LRS), losses=list(FLAT))
    d = r.to_dict()
    assert d["flat"] is True and d["noise_scaled"] is False and d["range"] == [r.suggestion, r.edge]
    assert FinderResult(lrs=list(LRS), losses=list(LEARNS)).to_dict()["flat"] is False
    assert FinderResult(lrs=[1e-3, 1e-2], losses=[1.0, 0.9]).to_dict()["flat"] is None  # too short to read
    old = json.loads((r.to_json(tmp_path / "new.json")).read_text())
    del old["flat"]  # a record written before the flat reading was recorded
    (tmp_path / "old.json").write_text(json.dumps(old))
    back = FinderResult.from_json(tmp_path / "old.json")
    assert back.flat is True and back.suggestion == r.suggestion and back.range == r.range
    assert back.to_dict()["flat"] is True


# -- the CLI's curve row ---------------------------------------------------------------------------------------------
def test_cli_row_says_too_flat_and_where_it_blew_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(S, "ROBUST_FLAT_SIGMAS", None)  # the 2% rule alone (the sigma guard's words: below)
    r = FinderResult(lrs=list(LRS), losses=list(FLAT), passes=2.0)
    edge = _band_exit_lr(LRS, FLAT)
    assert _curve_reading(r) == f"too flat to judge (the loss never fell 2%); it blew up past {edge:.3g}: back off 1 " \
                                "decade"
    # no noise reading, no descent, no minimum
    row = _curve_reading(r)
    assert "noise" not in row and "descent" not in row and "exploded" not in row


def test_cli_row_says_when_the_first_lr_clipped_a_flat_suggestion(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(S, "ROBUST_FLAT_SIGMAS", None)
    r = FinderResult(lrs=list(CLIP_LRS), losses=list(CLIPPED), start_lr=1e-3)
    edge = _band_exit_lr(CLIP_LRS, CLIPPED)
    below = math.log10(edge / CLIP_LRS[0])
    assert 0 < below < 0.95
    assert _curve_reading(r) == (f"too flat to judge (the loss never fell 2%); it blew up past {edge:.3g}: back off "
                                 f"1 decade (only {below:.2g} below it: the lowest LR tested)")


def test_cli_row_names_the_sigma_guard_when_it_is_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(S, "ROBUST_FLAT_SIGMAS", 2.5)
    r = FinderResult(lrs=list(LRS), losses=list(FLAT))
    assert r.flat and _curve_reading(r).startswith("too flat to judge (the loss never fell more than max(2%, 2.5 sigma "
                                                   "of its scatter)); it blew up past")


def test_cli_row_of_an_ordinary_curve_is_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    learns = FinderResult(lrs=list(LRS), losses=list(LEARNS))
    row = _curve_reading(learns)
    assert row.startswith(f"exploded (noise {learns.noise:.2f}") and "flat" not in row
    # the flat curve with the flat reading off reads as before (its old words)
    monkeypatch.setattr(S, "ROBUST_FLAT", None)
    assert _curve_reading(FinderResult(lrs=list(LRS), losses=list(FLAT))).startswith("exploded")


def test_lrkit_find_prints_the_flat_row(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    import lrkit.cli.find as find_mod
    from lrkit.cli.app import build_app

    r = FinderResult(lrs=list(LRS), losses=list(FLAT))
    monkeypatch.setattr(find_mod, "run_find", lambda *a, **k: (r, tmp_path))  # no range test: a known curve
    monkeypatch.setenv("COLUMNS", "240")
    out = CliRunner().invoke(build_app(), ["find"])
    assert out.exit_code == 0, out.output
    assert "too flat to judge" in out.output and "exploded" not in out.output
    assert f"{r.suggestion:.3g} – {r.edge:.3g}" in out.output  # the range row: suggestion to edge


# -- the plot legend -------------------------------------------------------------------------------------------------
def test_legend_says_a_decade_below_where_the_flat_loss_blew_up() -> None:
    r = FinderResult(lrs=list(LRS), losses=list(FLAT))
    texts = _legend(r)
    assert f"suggestion (robust, a decade below where the flat loss blew up): {r.suggestion:.3g}" in texts
    assert f"range {r.suggestion:.2g} – {r.edge:.2g}" in texts  # the shaded range is suggestion to edge
    assert not any("minimum" in t and t.startswith("suggestion") for t in texts)


def test_legend_on_a_clipped_flat_suggestion() -> None:
    r = FinderResult(lrs=list(CLIP_LRS), losses=list(CLIPPED), start_lr=1e-3)
    taken = math.log10(r.edge / r.suggestion)
    label = f"suggestion (robust, {taken:.2g} decades below where the flat loss blew up (the lowest LR tested)): " \
            f"{r.suggestion:.3g}"
    assert label in _legend(r)


def test_legend_of_an_old_record_or_another_rule_keeps_its_words() -> None:
    d = FinderResult(lrs=list(LRS), losses=list(FLAT)).to_dict()
    del d["flat"]  # written before the flat reading was recorded: the words it always had
    assert f"suggestion (robust, a decade below the edge): {d['suggestion']:.3g}" in _legend(d)
    m = FinderResult(lrs=list(LRS), losses=list(FLAT), rule="minimum")
    assert f"suggestion (minimum): {m.suggestion:.3g}" in _legend(m)
    learns = FinderResult(lrs=list(LRS), losses=list(LEARNS))
    assert not any("flat" in t for t in _legend(learns))
