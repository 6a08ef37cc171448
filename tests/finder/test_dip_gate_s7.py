"""The robust rule's double-dip cut and its passes gate on the noise scaling (the fifth fresh set's adopted rule)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import lrkit
from lrkit.finder import suggest as S
from lrkit.finder.result import FinderResult

LRS = np.logspace(-4, 1, 100)
FIRST = 1 / (1 + LRS / 1e-2)  # learns from ~1e-2
BUMP = 0.6 * np.exp(-np.log10(LRS / 0.1) ** 2 / 0.02)  # turns up hard near 0.1
DOUBLE = FIRST + BUMP - 0.3 * (LRS > 1)  # and falls lower again above 1
SINGLE = FIRST + (LRS / 1.0) ** 2  # one dip, then the explosion
#: passes of a range test that cycled through a tiny training set: the regime the cut is for (ROBUST_DIP_PASSES)
MANY = 10.0


def _noisy(seed: int = 0, scale: float = 0.3) -> np.ndarray:
    return SINGLE + np.random.default_rng(seed).normal(0, scale, len(LRS))


# --------------------------------------------------------------------------------------------------- dip_cut
def test_dip_cut_finds_the_first_rise_of_a_double_dip_and_nothing_on_one_dip() -> None:
    cut = S.dip_cut(LRS, DOUBLE)
    assert cut is not None
    smooth = S.smooth_curve(DOUBLE)
    first_min = int(np.argmin(smooth[:cut]))
    # the cut ends on the way up from the first minimum, well before the deeper second one
    assert LRS[first_min] < LRS[cut - 1] < 0.1 < 1.0 < LRS[int(np.argmin(smooth))]
    assert S.dip_cut(LRS, SINGLE) is None and S.dip_cut(LRS, FIRST) is None


def test_dip_cut_needs_the_rise_to_exceed_its_share_of_the_drop() -> None:
    # a smaller bump: the smoothed loss turns up by ~0.15 of the drop made so far (0.6: by more than 0.2)
    small = FIRST + 0.4 * BUMP / 0.6 - 0.3 * (LRS > 1)
    assert S.dip_cut(LRS, small) is None
    assert S.dip_cut(LRS, small, rise=0.05) is not None


def test_dip_cut_ignores_a_rise_inside_the_curve_head() -> None:
    # a bump in the first 2 x 12 points is scatter the head cannot be told from
    early = 1 / (1 + LRS / 1e-4) + 0.6 * np.exp(-np.log10(LRS / 2e-4) ** 2 / 0.002) - 0.3 * (LRS > 1)
    assert S.dip_cut(LRS, early) is None


@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf])
def test_dip_cut_rejects_a_bad_rise(bad: float) -> None:
    with pytest.raises(ValueError, match="rise"):
        S.dip_cut(LRS, DOUBLE, rise=bad)


# ------------------------------------------------------------------------------------------- suggest_robust
def test_the_robust_rule_backs_off_from_the_first_dip() -> None:
    cut = S.dip_cut(LRS, DOUBLE)
    t_lrs, t_losses = S._trim(LRS, DOUBLE)
    expected = S.suggest_robust(t_lrs[:cut], t_losses[:cut], stopped=True, dip_rise=None, passes=MANY)
    assert S.suggest_robust(LRS, DOUBLE, passes=MANY) == expected
    assert expected < 0.1 < S.suggest_robust(LRS, DOUBLE, dip_rise=None)  # without the cut: from the second dip
    assert S.robust_regime(LRS, DOUBLE, passes=MANY) == "explosion"
    assert S.suggest_robust(LRS, SINGLE) == S.suggest_robust(LRS, SINGLE, dip_rise=None)  # one dip: unchanged


def test_dip_rise_none_is_the_rule_before_the_cut_in_every_reading() -> None:
    # DOUBLE ends low, as a plateau: without the cut the rule reads it so (half a decade below its lowest point)
    assert S.robust_regime(LRS, DOUBLE, dip_rise=None) == "plateau"
    assert S.robust_backoff(LRS, DOUBLE, dip_rise=None) == S.ROBUST_PLATEAU_BACKOFF_DECADES
    lr_min = float(LRS[int(np.argmin(S.smooth_curve(DOUBLE)))])
    assert S.suggest_robust(LRS, DOUBLE, dip_rise=None) == pytest.approx(lr_min / 10**0.5)
    assert S.robust_regime(LRS, DOUBLE, passes=MANY) == "explosion"  # with it
    assert S.robust_backoff(LRS, DOUBLE, passes=MANY) == 1.0


def test_the_passes_gate_keeps_the_full_back_off_on_a_tiny_dataset() -> None:
    noisy = _noisy()
    assert S.noise_ratio(LRS, noisy) > S.ROBUST_NOISE_BAND[1]  # noise-dominated: scaled to no back-off
    assert S.robust_backoff(LRS, noisy) == 0.0
    assert S.robust_backoff(LRS, noisy, passes=3.0) == 0.0  # few passes: scaled as before
    assert S.robust_backoff(LRS, noisy, passes=S.ROBUST_MAX_PASSES) == 0.0  # at the gate: still scaled
    assert S.robust_backoff(LRS, noisy, passes=10.0) == S.REGIME_BACKOFF[S.robust_regime(LRS, noisy)]
    assert S.robust_backoff(LRS, noisy, passes=10.0, max_passes=None) == 0.0  # no gate
    assert S.suggest_robust(LRS, noisy, passes=10.0) == S.suggest_robust(LRS, noisy, noise_band=None)


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf, True, "3"])
def test_a_bad_passes_value_is_named(bad: Any) -> None:
    with pytest.raises(ValueError, match=r"passes=.* must be a finite number >= 0, or None"):
        S.suggest_robust(LRS, SINGLE, passes=bad)
    with pytest.raises(ValueError, match="max_passes"):
        S.robust_backoff(LRS, SINGLE, max_passes=bad)


# -------------------------------------------------------------------------------------------- FinderResult
def test_finder_result_reads_the_double_dip_consistently() -> None:
    r = FinderResult(lrs=list(LRS), losses=list(DOUBLE), start_lr=1e-4, end_lr=10.0, passes=MANY)
    assert r.double_dip and r.regime == "explosion"
    assert 1e-2 < r.edge < 0.1  # the first dip's minimum, not the second one's (above 1)
    assert r.suggestion == pytest.approx(r.edge / 10**r.backoff, rel=1e-9) or r.suggestion > r.edge / 10**r.backoff
    d = r.to_dict()
    assert d["double_dip"] is True and d["edge"] == r.edge and d["noise_scaled"] is False
    single = FinderResult(lrs=list(LRS), losses=list(SINGLE), start_lr=1e-4, end_lr=10.0)
    assert not single.double_dip
    assert single.edge == float(LRS[int(np.argmin(S.smooth_curve(SINGLE)))])


def test_finder_result_gates_the_noise_scaling_by_its_passes(tmp_path: Any) -> None:
    noisy = list(_noisy())
    few = FinderResult(lrs=list(LRS), losses=noisy, start_lr=1e-4, end_lr=10.0, passes=2.0)
    many = FinderResult(lrs=list(LRS), losses=noisy, start_lr=1e-4, end_lr=10.0, passes=12.5)
    assert few.noise_scaled and not many.noise_scaled
    assert few.backoff == 0.0 and many.backoff == 1.0
    assert many.suggestion < few.suggestion
    assert many.suggest(passes=2.0) == few.suggestion  # an explicit option wins over the recorded passes
    back = FinderResult.from_json(many.to_json(tmp_path / "r.json"))
    assert back.passes == 12.5 and back.suggestion == many.suggestion
    old = many.to_dict()
    del old["passes"]  # a record written before passes existed: unknown, the scaling applies
    assert FinderResult(**{k: old[k] for k in ("lrs", "losses", "start_lr", "end_lr")}).passes is None


@pytest.mark.parametrize("bad", [-2.0, math.nan, True])
def test_finder_result_rejects_bad_passes(bad: Any) -> None:
    with pytest.raises(ValueError, match="passes="):
        FinderResult(lrs=list(LRS), losses=list(SINGLE), passes=bad)


# ----------------------------------------------------------------------------------------------- find_lr
def _setup(n: int = 40, batch: int = 4) -> tuple[torch.nn.Module, torch.optim.Optimizer, DataLoader[Any]]:
    torch.manual_seed(0)
    x = torch.randn(n, 3)
    y = x.sum(1, keepdim=True)
    model = torch.nn.Linear(3, 1)
    return model, torch.optim.SGD(model.parameters(), lr=0.1), DataLoader(TensorDataset(x, y), batch_size=batch)


@pytest.mark.filterwarnings("ignore::UserWarning")  # the curve-quality notes of a tiny problem are not the point
def test_find_lr_records_its_passes_over_the_loader() -> None:
    model, opt, loader = _setup()  # 10 batches
    r = lrkit.find_lr(model, opt, loader, num_steps=30, end_lr=1.0)
    assert r.num_steps_run > 0 and r.passes == pytest.approx(r.num_steps_run / 10)
    r2 = lrkit.find_lr(model, opt, loader, num_steps=30, end_lr=1.0, accumulation_steps=2)
    assert r2.passes == pytest.approx(2 * r2.num_steps_run / 10)
    r3 = lrkit.find_lr(model, opt, iter(list(loader) * 10), num_steps=30, end_lr=1.0)  # no len(): unknown
    assert r3.passes is None and r3.noise_scaled


def test_lr0_auto_reads_its_range_test_with_the_cut_and_the_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    from lrkit.train import auto

    r = FinderResult(lrs=list(LRS), losses=list(DOUBLE), start_lr=1e-4, end_lr=10.0, passes=50.0)
    with_both = r.suggest(plateau_backoff_decades=auto.PLATEAU_BACKOFF_DECADES)
    without = r.suggest(plateau_backoff_decades=auto.PLATEAU_BACKOFF_DECADES, dip_rise=None, max_passes=None)
    assert auto.DIP_AND_PASSES is True and auto._suggestion(r) == with_both != without
    monkeypatch.setattr(auto, "DIP_AND_PASSES", False)  # the reading before the sixth fresh set's test
    assert auto._suggestion(r) == without


def test_the_cli_row_and_the_plot_say_how_the_curve_was_read(tmp_path: Any) -> None:
    pytest.importorskip("matplotlib")
    from lrkit.cli.find import _curve_reading

    r = FinderResult(lrs=list(LRS), losses=list(DOUBLE), start_lr=1e-4, end_lr=10.0, passes=MANY)
    row = _curve_reading(r)
    assert row.startswith(f"dipped twice, edge at the first dip ({r.edge:.3g})") and "back off" in row
    many = FinderResult(lrs=list(LRS), losses=list(_noisy()), start_lr=1e-4, end_lr=10.0, passes=12.5)
    assert "not scaled: 12.5 passes over the data" in _curve_reading(many)
    fig = r.plot(tmp_path / "dip.png")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(t.startswith("suggestion (robust") and "first dip" in t for t in labels), labels
