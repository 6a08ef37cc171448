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
    assert any(lbl.startswith("suggestion (robust)") for lbl in labels)
    assert any(lbl.startswith("range") for lbl in labels)


def test_rules_are_exposed_and_default_first():
    assert lrkit.SUGGESTION_RULES[0] == "robust"
    assert {"steepest", "minimum", "valley"} <= set(lrkit.SUGGESTION_RULES)
    r = sample()
    assert r.suggest() == r.suggestion == r.suggest("robust")
    with pytest.raises(ValueError, match="Did you mean 'minimum'"):
        r.suggest("minimun")
