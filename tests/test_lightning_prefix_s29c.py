"""ChooseLRCallback(search="prefix"): choose_lr0's opt-in prefix search inside a Lightning fit (session 29, helper c).

The guard stays the default (budget 0.3, up to 3 trials); ``search="prefix"`` (any case) runs the range test and five
trials of the fit's own schedule (its first 20% + a 5% anneal), about 1.5 fits of extra compute. A budget or
num_candidates given with it is refused when the callback is built, as is a misspelt search; a fit too short for it,
a num_steps over its range test's share, and Lightning's default length are said in the prefix search's terms (never
as a budget).
"""

from __future__ import annotations

import itertools
import json
import math
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

pl = pytest.importorskip("lightning.pytorch")

from _lightning_helpers import LIGHTNING_WARNINGS, quiet_lightning_logs, quiet_trainer, regression_loader  # noqa: E402
from lrkit.integrations.lightning import ChooseLRCallback  # noqa: E402

quiet_lightning_logs()
pytestmark = pytest.mark.filterwarnings(*LIGHTNING_WARNINGS, "ignore:.*lr_scheduler.step.*")


def _loader(n: int = 96, seed: int = 0) -> torch.utils.data.DataLoader:
    return regression_loader(n, seed)


class _Net(pl.LightningModule):
    """A tiny MLP (AdamW: no trial diverges, so each runs in full) under a per-step cosine schedule."""

    def __init__(self, lr: float = 0.01) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.lr = lr
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self) -> Any:
        opt = torch.optim.AdamW(self.parameters(), lr=self.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=int(self.trainer.estimated_stepping_batches))
        return [opt], [{"scheduler": sched, "interval": "step"}]


def _trainer(callbacks: list[Any], **kwargs: Any) -> Any:
    return quiet_trainer(callbacks, **{"max_epochs": 5, **kwargs})  # 12 batches an epoch: 60 optimizer steps


def test_a_prefix_fit_runs_five_trials_of_its_schedule_and_trains_at_the_choice(tmp_path: Path) -> None:
    lines: list[str] = []
    chooser = ChooseLRCallback(search="Prefix", log=lines.append, out=tmp_path)
    assert chooser.search == "prefix"
    model = _Net()
    trainer = _trainer([chooser])
    trainer.fit(model, _loader(), _loader(32, seed=1))
    auto = chooser.auto
    assert auto is not None and trainer.global_step == 60
    assert len(auto.trials) == 5
    lrs = sorted(t.lr for t in auto.trials)  # s * 10^(k/2), k = -2..2: half a decade apart
    for low, high in itertools.pairwise(lrs):
        assert math.isclose(high / low, 10**0.5, rel_tol=1e-9)
    assert all(t.steps == 12 + 3 for t in auto.trials)  # round(0.2 x 60) + round(0.05 x 60), none diverged
    assert auto.extra_steps == 15 + 5 * 15  # the range test's quarter of the fit, and the trials
    record = auto.to_dict()
    assert record["settings"]["search"] == "prefix"
    assert auto.extra_fraction == pytest.approx(1.5, abs=0.1)
    assert json.loads((tmp_path / "lr_auto.json").read_text())["settings"]["search"] == "prefix"
    assert model.lr == chooser.lr == auto.lr
    assert any("5 trials of 15 steps" in line and "anneal" in line for line in lines)


def test_the_guard_stays_the_default() -> None:
    chooser = ChooseLRCallback(log=False)
    assert (chooser.search, chooser.budget, chooser.num_candidates) == ("guard", 0.3, 3)
    assert (ChooseLRCallback(budget=None, num_candidates=None).budget, ChooseLRCallback(search="GUARD").search) == (
        0.3, "guard")
    model = _Net()
    _trainer([chooser], max_epochs=10).fit(model, _loader(), _loader(32, seed=1))
    auto = chooser.auto
    assert auto is not None and auto.to_dict()["settings"]["search"] == "guard"
    assert auto.extra_fraction <= 0.3 and len(auto.trials) <= 3  # (120 steps: room for the range test alone)
    assert model.lr == auto.lr


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"budget": 0.5}, r"budget=0\.5 does not apply to search='prefix'.*about 1\.5 runs.*leave budget out"),
    ({"num_candidates": 4}, r"num_candidates=4 does not apply to search='prefix'"),
    ({"budget": 0.3}, r"budget=0\.3 does not apply"),  # given, even at the guard's default
])
def test_a_budget_or_num_candidates_with_prefix_is_refused_at_construction(kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        ChooseLRCallback(search="prefix", **kwargs)


@pytest.mark.parametrize(("search", "words"), [
    ("prefx", r"prefx.*Did you mean 'prefix'\?"),
    ("bracket", r"bracket.*guard, prefix"),
    (3, r"search=3 must be one of: guard, prefix"),
])
def test_an_unknown_search_is_refused_naming_it(search: Any, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        ChooseLRCallback(search=search)


def test_a_misspelt_search_keyword_is_answered_with_search() -> None:
    with pytest.raises(ValueError, match=r"serch.*Did you mean 'search'\?"):
        ChooseLRCallback(serch="prefix")


def test_a_fit_too_short_for_the_prefix_search_is_refused_in_the_fits_terms_not_as_a_budget() -> None:
    chooser = ChooseLRCallback(search="prefix", log=False)
    with pytest.raises(ValueError) as err:
        _trainer([chooser], max_steps=30).fit(_Net(), _loader(), _loader(32, seed=1))
    message = str(err.value)
    assert message.startswith("ChooseLRCallback(search='prefix') needs at least 10 optimizer steps for its range test")
    for words in ("the fit's 30 optimizer steps", "at least 40 optimizer steps", "max_epochs / max_steps",
                  "use search='guard' with budget=0.34 or more", "FindLRCallback"):  # the guard's budget that fits
        assert words in message, words
    for wrong in ("raise budget", "extra budget", "total_steps", "choose_lr0"):
        assert wrong not in message, wrong
    assert chooser.auto is None


def test_num_steps_over_the_prefix_range_tests_share_is_refused_in_the_callbacks_words() -> None:
    with pytest.raises(ValueError) as err:
        _trainer([ChooseLRCallback(search="prefix", num_steps=20, log=False)]).fit(_Net(), _loader(),
                                                                                   _loader(32, seed=1))
    message = str(err.value)
    assert message.startswith("ChooseLRCallback(num_steps=20, search='prefix'): the range test's steps exceed its "
                              "share of the prefix search, 15 optimizer steps")
    assert "the fit's 60 optimizer steps" in message and "lower num_steps=" in message
    for wrong in ("raise budget", "budget=", "finder_kwargs", "total_steps"):
        assert wrong not in message, wrong


def test_lightnings_default_length_is_warned_about_in_the_prefix_searchs_cost() -> None:
    chooser = ChooseLRCallback(search="prefix", log=False)
    trainer = pl.Trainer(callbacks=[chooser], logger=False, enable_progress_bar=False, enable_checkpointing=False,
                         enable_model_summary=False, num_sanity_val_steps=0, accelerator="cpu", limit_train_batches=2)
    with warnings.catch_warnings():  # the warning raised ends the fit before its range test
        warnings.filterwarnings("error", message=".*Lightning's default.*", category=UserWarning)
        with pytest.raises(UserWarning) as err:
            trainer.fit(_Net(), _loader())
    message = str(err.value)
    assert "max_epochs=1000 (Lightning's default" in message and "2000 optimizer steps" in message
    assert "about 3000 extra optimizer steps (1500 epochs' worth)" in message
    assert "search='prefix': about 1.5 runs of extra compute" in message
    assert "budget=" not in message
    assert chooser.auto is None
