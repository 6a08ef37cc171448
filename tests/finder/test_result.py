from __future__ import annotations

import json

import numpy as np
import pytest

import lrkit
from lrkit.finder import FinderResult


def sample() -> FinderResult:
    lrs = np.logspace(-6, 0, 50)
    losses = 2 - 1.5 / (1 + np.exp(-(np.log10(lrs) + 3) * 3)) + np.where(lrs > 0.1, 20 * (lrs - 0.1), 0)
    losses[-1] = float("inf")
    return FinderResult(lrs=lrs, losses=losses, stop_reason="non-finite", num_steps=60)


def test_json_round_trip(tmp_path):
    r = sample()
    path = r.to_json(tmp_path / "sub" / "lr.json")
    d = json.loads(path.read_text())
    assert d["losses"][-1] is None  # inf is not valid JSON; stored as null
    assert d["suggestion"] == r.suggestion and d["range"] == list(r.range)
    assert set(d["suggestions"]) == set(lrkit.SUGGESTION_RULES)
    back = FinderResult.from_json(path)
    assert back.lrs == r.lrs and back.suggestion == r.suggestion and back.stop_reason == "non-finite"
    assert [f for f in (tmp_path / "sub").iterdir()] == [path]  # no temp file left behind


def test_plot_writes_a_png(tmp_path):
    fig = sample().plot(tmp_path / "lr.png")
    assert (tmp_path / "lr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    reading = {"explosion": "a decade below the edge", "plateau": "half a decade below a plateau"}[sample().regime]
    assert any(lbl.startswith(f"suggestion (robust, {reading})") for lbl in labels)  # the rule's reading of the curve
    assert any(lbl.startswith("range") for lbl in labels)


def test_rules_are_exposed_and_default_first():
    assert lrkit.SUGGESTION_RULES[0] == "robust"
    assert {"steepest", "minimum", "valley"} <= set(lrkit.SUGGESTION_RULES)
    r = sample()
    assert r.suggest() == r.suggestion == r.suggest("robust")
    with pytest.raises(ValueError, match="Did you mean 'minimum'"):
        r.suggest("minimun")


@pytest.mark.parametrize("stop_reason, last, decades", [
    ("completed", None, 0.5),          # ran to end_lr and the loss only flattened: a plateau, half a decade
    ("diverged", None, 1.0),           # stopped on divergence: the edge was reached, a decade
    ("non-finite", float("nan"), 1.0),  # stopped on a NaN, which the rule must see (not a curve with it dropped)
])
def test_default_suggestion_reads_the_regime_from_how_the_test_ended(stop_reason, last, decades):
    lrs = list(np.logspace(-4, 0, 60))
    losses = list(1.0 / (1.0 + np.asarray(lrs) / 1e-2))  # falls, then flattens: no rise at all
    if last is not None:
        losses[-1] = last
    r = FinderResult(lrs=lrs, losses=losses, start_lr=1e-4, end_lr=1.0, num_steps=60, mode="exp",
                     stop_reason=stop_reason)
    finite = [v for v in losses if np.isfinite(v)]
    lr_min = lrs[int(np.argmin(lrkit.finder.suggest.smooth_curve(np.asarray(finite))))]
    assert r.suggestion == pytest.approx(lr_min / 10**decades, rel=1e-9)
    assert r.suggest("robust") == r.suggestion


def test_rule_options_are_checked():
    lrs = list(np.logspace(-4, 0, 60))
    r = FinderResult(lrs=lrs, losses=list(1 / (1 + np.asarray(lrs) / 1e-2)), start_lr=1e-4, end_lr=1.0, num_steps=60)
    assert r.suggest(backoff_decades=2.0, plateau_backoff_decades=None) == pytest.approx(r.suggest() / 10**1.5)
    with pytest.raises(ValueError, match="rule 'valley' takes no options"):
        r.suggest("valley", plateau_rise=1.0)
    with pytest.raises(ValueError, match="plateau_backof.*plateau_backoff_decades"):
        r.suggest(plateau_backoff=0.5)


@pytest.mark.parametrize("stop_reason, rise, regime", [
    ("completed", 0.0, "plateau"), ("completed", 50.0, "explosion"), ("diverged", 0.0, "explosion"),
])
def test_regime_says_which_back_off_the_default_rule_took(tmp_path, stop_reason, rise, regime):
    lrs = np.logspace(-4, 0, 60)
    losses = 1 / (1 + lrs / 1e-2) + rise * (lrs > 0.3) * np.log10(lrs / 0.3) ** 2
    r = FinderResult(lrs=list(lrs), losses=list(losses), start_lr=1e-4, end_lr=1.0, num_steps=60,
                     stop_reason=stop_reason)
    assert r.regime == regime
    expected = r.suggest(plateau_backoff_decades=0.5 if regime == "plateau" else None)
    assert r.suggestion == expected  # the regime is the one the suggestion used
    path = r.to_json(tmp_path / "lr_find.json")
    assert json.loads(path.read_text())["regime"] == regime
    assert FinderResult.from_json(path).regime == regime


def test_a_plot_written_to_a_file_is_not_left_open(tmp_path):
    import matplotlib.pyplot as plt

    open_before = set(plt.get_fignums())
    figs = [sample().plot(tmp_path / f"lr{i}.png") for i in range(3)]
    assert set(plt.get_fignums()) == open_before  # none of the three stays on pyplot's list
    figs[0].savefig(tmp_path / "again.png")  # the returned figure is still usable
    assert (tmp_path / "again.png").stat().st_size > 1000
    shown = sample().plot()  # no path: left open, for plt.show()
    assert shown.number in plt.get_fignums()
    plt.close(shown)
