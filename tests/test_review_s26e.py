"""Review 26e: the late session-26 changes (spec separator messages, short completed range tests, the fast valley
search), each case a bug found or a promise checked."""

from __future__ import annotations

import re

import numpy as np
import pytest

from _helpers import fastai_valley_search
from lrkit.finder import FinderResult
from lrkit.finder.suggest import _longest_decrease
from lrkit.schedules.spec import from_spec, parse_spec


def _suggested(message: str) -> str:
    """The spec a separator message offers (its ``e.g. '...'``)."""
    found = re.search(r"e\.g\. '([^']*)'$", message)
    assert found, message
    return found[1]


@pytest.mark.parametrize("spec, expected", [
    ("cosine(lr0=0.1) lrf=0.1", {"lr0": 0.1, "lrf": 0.1}),  # keys after the ')': the ')' was kept, lr0='0.1)'
    ("cosine(lr0=0.1, lrf=0.1)", {"lr0": 0.1, "lrf": 0.1}),
    ("cosine(lr0=0.1)", {"lr0": 0.1}),
    ("cosine:lr0=0.1 lrf=0.1", {"lr0": 0.1, "lrf": 0.1}),
])
def test_separator_message_offers_a_spec_that_parses(spec: str, expected: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="separate the schedule name from its keys") as e:
        parse_spec(spec)
    offered = _suggested(str(e.value))
    assert parse_spec(offered) == ("cosine", expected)
    from_spec(offered, total_steps=10)  # and it builds


@pytest.mark.parametrize("token", ["http://example.com/a", "C:/runs/x"])
def test_a_url_or_path_token_is_not_rewritten_as_key_colon_value(token: str) -> None:
    # 'http://x' read as key 'http', value '//x': the message offered 'http=//x', which no one meant
    with pytest.raises(ValueError, match="bad token") as e:
        parse_spec(f"cosine lr0=0.1 {token}")
    assert "=//" not in str(e.value) and "=/" not in str(e.value) and "=\\" not in str(e.value)


@pytest.mark.parametrize("token, fixed", [("lr0:0.1", "lr0=0.1"), ("warmup_steps->10", "warmup_steps=10")])
def test_key_colon_value_still_gets_its_key_equals_value(token: str, fixed: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"'{fixed}'")):
        parse_spec(f"cosine {token}")


def test_a_completed_test_at_one_lr_is_not_told_to_raise_num_steps() -> None:
    # six steps all at lr=0.1: more steps at that one LR cannot give the rules 3 different LRs
    r = FinderResult(lrs=[0.1] * 6, losses=[1.0, 0.9, 0.8, 0.7, 0.6, 0.5])
    with pytest.raises(ValueError, match="cannot suggest an LR") as e:
        _ = r.suggestion
    assert "raise num_steps" not in str(e.value)
    assert "end_lr above start_lr" in str(e.value) and "lr=0.1" in str(e.value)


def test_a_completed_test_with_too_few_steps_says_raise_num_steps() -> None:
    r = FinderResult(lrs=[1e-3, 1e-2], losses=[1.0, 0.9])
    with pytest.raises(ValueError, match=r"raise num_steps \(now 2\)"):
        _ = r.suggestion



def test_fast_valley_search_equals_fastais_loop_on_ties_and_non_finite_values() -> None:
    rng = np.random.default_rng(26)
    pool = np.array([0.0, -0.0, 1.0, 2.0, 3.0, 5e-324, -1.0, np.inf, -np.inf, np.nan])
    for trial in range(3000):
        n = int(rng.integers(0, 12))
        if trial % 3 == 0:
            s = rng.choice(pool, size=n)
        elif trial % 3 == 1:
            s = rng.integers(0, 4, size=n).astype(float)  # many ties
        else:
            s = rng.normal(size=n)
        for arr in (s, s.astype(np.float32)):
            assert _longest_decrease(arr) == fastai_valley_search(arr), arr


def test_finder_plot_title_gives_the_advice_the_error_gives() -> None:
    # a completed test whose one NaN loss left 2 finite LRs: FinderResult says lower start_lr (it did not run all its
    # steps cleanly), the picture's title said "raise num_steps"
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from lrkit.plots.finder import plot_finder

    r = FinderResult(lrs=[1e-3, 1e-2, 1e-1], losses=[1.0, float("nan"), 0.5], start_lr=1e-3, end_lr=0.1, num_steps=3)
    with pytest.raises(ValueError, match="lower start_lr"):
        _ = r.suggestion
    rec = {"lrs": r.lrs, "losses": r.losses, "stop_reason": "completed", "suggestion": None}
    fig = plot_finder(rec)
    try:
        title = fig.axes[0].get_title()
        assert "lower start_lr" in title and "raise num_steps" not in title, title
    finally:
        plt.close(fig)
