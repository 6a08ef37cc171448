"""Under DDP every rank records the same curve; FindLRCallback lets rank 0 alone report on it (Lightning's
convention): on the other ranks ``progress=`` is not called and the range test's warnings are not repeated (N copies
of "the range test stopped after 6 steps ..." before). Tested in one process with the strategy's rank patched."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

pl = pytest.importorskip("lightning.pytorch")

from lrkit.integrations.lightning import FindLRCallback  # noqa: E402
from test_lightning_finder_s22a import Net, _fit  # noqa: E402


@pytest.mark.parametrize("rank", [0, 1])
def test_only_rank_zero_reports_on_the_range_test(monkeypatch: pytest.MonkeyPatch, rank: int) -> None:
    monkeypatch.setattr(pl.Trainer, "global_rank", property(lambda self: rank))
    calls: list[Any] = []
    finder = FindLRCallback(num_steps=30, start_lr=10.0, end_lr=1e4,  # blows up at once: find_lr warns
                            progress=lambda *a: calls.append(a))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            _fit(Net(), [finder])
        except ValueError:
            pass  # a curve too short to judge may end the fit: what matters is who reported it
    said = [str(w.message) for w in caught if "range test" in str(w.message)]
    if rank == 0:
        assert calls and said
    else:
        assert not calls and not said
