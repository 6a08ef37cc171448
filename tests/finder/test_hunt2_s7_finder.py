"""Hunt of baa8cec (the double-dip cut and the passes gate): numpy-scalar ``passes``, the ``dip_rise`` error's name,
``FinderResult.range`` on a double dip, and the cut read on curves with NaNs, repeated LRs or a linear sweep."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from lrkit.finder import FinderResult
from lrkit.finder import suggest as S

LRS = np.logspace(-4, 1, 100)
FIRST = 1 / (1 + LRS / 1e-2)  # learns from ~1e-2 ...
BUMP = 0.6 * np.exp(-np.log10(LRS / 0.1) ** 2 / 0.02)  # ... turns up hard near 0.1 ...
DIP = FIRST + BUMP - 0.3 * (LRS > 1)  # ... and falls lower again above 1: dips twice
NOISY = DIP + np.random.default_rng(0).normal(0, 0.1, 100)  # noise ratio ~0.085 on the cut: scaled about half
#: passes of a range test that cycled through a tiny training set: the regime the cut is for (ROBUST_DIP_PASSES)
MANY = 10.0


# -- numpy scalars for passes (bug: np.int64 / np.float32 were rejected as "not a number") ----------------------------
@pytest.mark.parametrize("make", [np.float32, np.int64, np.float64, int, float])
def test_passes_accepts_any_real_scalar(make: type) -> None:
    ref = FinderResult(lrs=list(LRS), losses=list(NOISY), passes=20.0)
    r = FinderResult(lrs=list(LRS), losses=list(NOISY), passes=make(20))
    assert type(r.passes) is float and r.passes == 20.0
    assert r.noise_scaled is False and r.suggestion == ref.suggestion and r.backoff == ref.backoff
    json.dumps(r.to_dict())  # a plain float in the record (a np.float32 is not JSON-serialisable)


def test_suggest_robust_accepts_numpy_passes() -> None:
    gated = S.suggest_robust(LRS, NOISY, passes=20.0)
    assert S.suggest_robust(LRS, NOISY, passes=np.int64(20)) == gated
    assert S.robust_backoff(LRS, NOISY, passes=np.float32(20), max_passes=np.int64(6)) == 1.0  # gated: full back-off
    assert S.robust_backoff(LRS, NOISY, passes=None) < 1.0  # ungated: the noise scaling takes some off


@pytest.mark.parametrize("bad", ["3", True, np.bool_(True), -1, math.nan, math.inf, [3]])
def test_bad_passes_still_rejected_with_its_value(bad: object) -> None:
    with pytest.raises(ValueError, match="passes="):
        FinderResult(lrs=list(LRS), losses=list(DIP), passes=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="passes="):
        S.suggest_robust(LRS, DIP, passes=bad)  # type: ignore[arg-type]


# -- dip_rise errors name dip_rise (bug: they named dip_cut's own keyword, "rise") -------------------------------------
@pytest.mark.parametrize("bad", [math.nan, -0.1, math.inf, "high"])
def test_bad_dip_rise_is_named_dip_rise(bad: object) -> None:
    r = FinderResult(lrs=list(LRS), losses=list(DIP))
    for call in (lambda: S.suggest_robust(LRS, DIP, dip_rise=bad), lambda: S.robust_backoff(LRS, DIP, dip_rise=bad),
                 lambda: S.robust_regime(LRS, DIP, dip_rise=bad), lambda: r.suggest(dip_rise=bad)):
        with pytest.raises(ValueError, match=r"^dip_rise="):
            call()


def test_dip_rise_zero_is_valid_and_cuts_at_the_first_turn_up() -> None:
    # rise 0: any turn up past the gate is the edge; on the clean curve it comes no later than the default's cut
    assert S.dip_cut(LRS, DIP, rise=0) <= S.dip_cut(LRS, DIP)
    assert S.dip_cut(LRS, FIRST + LRS**2, rise=0) is None  # one dip: nothing to cut whatever the rise
    assert 0 < S.suggest_robust(LRS, DIP, dip_rise=0, passes=MANY) <= S.suggest_robust(LRS, DIP, passes=MANY)


# -- range on a double dip (bug: its high was the deeper second minimum, past the edge the rule backs off from) -------
def test_range_on_a_double_dip_ends_at_the_edge() -> None:
    r = FinderResult(lrs=list(LRS), losses=list(DIP), passes=MANY)
    assert r.double_dip
    low, high = r.range
    assert high == r.edge < 0.1  # the first dip's minimum, not the second one at lr > 1
    assert low < r.suggestion < high
    # the known answer: lr_range over the curve cut where dip_cut says
    cut = S.dip_cut(LRS, DIP)
    assert (low, high) == S.lr_range(LRS[:cut], DIP[:cut])
    assert r.to_dict()["range"] == [low, high]


def test_range_without_a_double_dip_is_unchanged() -> None:
    one = FIRST + (LRS / 1.0) ** 2
    r = FinderResult(lrs=list(LRS), losses=list(one))
    assert not r.double_dip and r.range == S.lr_range(LRS, one)
    assert r.range[1] == r.edge


def test_plot_shades_the_range_up_to_the_first_dip() -> None:
    pytest.importorskip("matplotlib")
    from lrkit.plots.finder import plot_finder

    fig = plot_finder(FinderResult(lrs=list(LRS), losses=list(DIP), passes=MANY).to_dict())
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(t.startswith("range ") and t.endswith(f"{0.0475:.2g}") for t in labels), labels
    assert "suggestion (robust, a decade below the first dip): 0.00475" in labels


# -- the cut on the curve as every rule reads it (these held; pinned) --------------------------------------------------
def test_nan_before_the_cut_reads_as_the_point_left_out() -> None:
    with_nan = DIP.copy()
    with_nan[30] = math.nan
    kept = np.r_[0:30, 31:100]
    a = FinderResult(lrs=list(LRS), losses=list(with_nan), passes=MANY)
    b = FinderResult(lrs=list(LRS[kept]), losses=list(DIP[kept]), passes=MANY)
    assert a.double_dip and b.double_dip
    assert (a.edge, a.suggestion, a.range, a.backoff) == (b.edge, b.suggestion, b.range, b.backoff)
    assert a.edge in set(LRS)


def test_repeated_lrs_read_as_merged_points() -> None:
    a = FinderResult(lrs=list(np.repeat(LRS, 2)), losses=list(np.repeat(DIP, 2)), passes=MANY)
    b = FinderResult(lrs=list(LRS), losses=list(DIP), passes=MANY)
    assert a.double_dip and (a.edge, a.suggestion, a.range) == (b.edge, b.suggestion, b.range)
    assert a.edge in set(LRS)


def test_linear_sweep_double_dip() -> None:
    lrs = np.linspace(1e-3, 10, 100)
    curve = 1 / (1 + lrs / 0.3) + 0.5 * np.exp(-((lrs - 4) ** 2) / 0.3) - 0.1 * (lrs > 7)
    r = FinderResult(lrs=list(lrs), losses=list(curve), mode="linear", start_lr=1e-3, end_lr=10, passes=MANY)
    cut = S.dip_cut(lrs, curve)
    assert cut is not None and r.double_dip
    assert r.edge == float(lrs[int(np.argmin(S.smooth_curve(curve[:cut])))]) < 4  # before the bump
    assert r.regime == "explosion" and r.suggestion == pytest.approx(r.edge / 10)


def test_old_record_without_the_new_keys_loads_and_plots(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    d = FinderResult(lrs=list(LRS), losses=list(DIP), passes=MANY).to_dict()
    for key in ("passes", "noise_scaled", "double_dip", "edge"):
        d.pop(key)
    path = tmp_path / "old.json"
    path.write_text(json.dumps(d))
    r = FinderResult.from_json(path)
    # passes unknown: the scaling applies, and the cut (only after more than ROBUST_DIP_PASSES passes) does not
    assert r.passes is None and r.noise_scaled and not r.double_dip
    from lrkit.plots.finder import plot_finder

    fig = plot_finder(d)  # the old record itself: no edge key, the legend falls back to the smoothed minimum
    assert any(t.get_text().startswith("suggestion (robust") for t in fig.axes[0].get_legend().get_texts())


def test_cli_row_with_passes_gate_and_no_noise_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    from lrkit.cli.find import _curve_reading

    rising = list(1.0 + LRS)  # rises from the start: noise is nan
    r = FinderResult(lrs=list(LRS), losses=rising, passes=50.0)
    assert math.isnan(r.noise) and not r.noise_scaled
    # it never fell 2%: since ROBUST_FLAT is on by default the row reads it as too flat to judge (no noise part)
    row = _curve_reading(r)
    assert "passes" not in row and "noise" not in row and row.startswith("too flat to judge")
    monkeypatch.setattr(S, "ROBUST_FLAT", None)  # read as any other curve: it exploded
    row = _curve_reading(r)
    assert "passes" not in row and "noise" not in row and row.startswith("exploded")
    gated = FinderResult(lrs=list(LRS), losses=list(NOISY), passes=np.float32(12.5))
    assert "not scaled: 12.5 passes over the data" in _curve_reading(gated)
