"""lr0="auto" inside a Lightning fit (lrkit.integrations.lightning.ChooseLRCallback), session 23.

The callback records the fit's own schedule (its schedulers stepped as the fit loop steps them), replays it compressed
in choose_lr0's trials, scores them on the fit's validation loader, and trains at the chosen peak LR; the fit
afterwards is the fit at that LR set by hand.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from _helpers import spy_results

pl = pytest.importorskip("lightning.pytorch")

import lrkit.integrations.lightning as lightning_mod  # noqa: E402
from _lightning_helpers import (  # noqa: E402
    LIGHTNING_WARNINGS,
    quiet_lightning_logs,
    quiet_trainer,
    regression_data,
    regression_loader,
)
from _lightning_helpers import Stream as _Stream  # noqa: E402
from lrkit.integrations._common import Replay  # noqa: E402
from lrkit.integrations.lightning import ChooseLRCallback, FindLRCallback  # noqa: E402

quiet_lightning_logs()
pytestmark = pytest.mark.filterwarnings(*LIGHTNING_WARNINGS, "ignore:.*lr_scheduler.step.*")


def _loader(n: int = 96, shuffle: bool = False, seed: int = 0, batch_size: int = 8) -> torch.utils.data.DataLoader:
    return regression_loader(n, seed, shuffle=shuffle, batch_size=batch_size)


class Net(pl.LightningModule):
    """A tiny MLP; ``sched`` picks configure_optimizers' schedulers; it records the LR (and momentum) of every group
    at each optimizer step of the fit, and the batches its training_step sees in eval mode (scoring passes)."""

    def __init__(self, sched: str | None = "cosine", lr: float = 0.01, *, use_attr: bool = True,
                 groups: bool = False, validate: bool = True) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
        if use_attr:
            self.lr = lr
        self.base = lr
        self.sched, self.groups, self.use_attr = sched, groups, use_attr
        self.lrs: list[list[float]] = []
        self.momenta: list[list[float]] = []
        self.eval_batches = 0
        if not validate:
            self.validation_step = None  # type: ignore[assignment,method-assign]

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        if not self.training:
            self.eval_batches += 1
        return torch.nn.functional.mse_loss(self.net(x), y)

    def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

    def on_before_optimizer_step(self, optimizer: Any) -> None:
        self.lrs.append([float(g["lr"]) for g in optimizer.param_groups])
        self.momenta.append([float(g.get("momentum", 0.0)) for g in optimizer.param_groups])

    def configure_optimizers(self) -> Any:
        lr = self.lr if self.use_attr else self.base
        if self.groups:
            params: Any = [{"params": self.net[0].parameters(), "lr": lr},
                           {"params": self.net[2].parameters(), "lr": lr * 0.1}]
        else:
            params = self.parameters()
        opt = torch.optim.SGD(params, lr=lr, momentum=0.9)
        sched = torch.optim.lr_scheduler
        if self.sched is None:
            return opt
        total = int(self.trainer.estimated_stepping_batches)
        if self.sched == "cosine":
            return [opt], [{"scheduler": sched.CosineAnnealingLR(opt, T_max=total), "interval": "step"}]
        if self.sched == "onecycle":
            return [opt], [{"scheduler": sched.OneCycleLR(opt, max_lr=lr, total_steps=total), "interval": "step"}]
        if self.sched == "onecycle2x":  # the attribute is half the schedule's peak
            return [opt], [{"scheduler": sched.OneCycleLR(opt, max_lr=2 * lr, total_steps=total), "interval": "step"}]
        if self.sched == "step_epoch":
            return [opt], [{"scheduler": sched.StepLR(opt, step_size=1, gamma=0.5), "interval": "epoch",
                            "frequency": 2}]
        if self.sched == "warmup_cosine":
            warm = sched.LinearLR(opt, start_factor=0.1, total_iters=5)
            cos = sched.CosineAnnealingLR(opt, T_max=total - 5, eta_min=lr * 0.01)
            return [opt], [{"scheduler": sched.SequentialLR(opt, [warm, cos], milestones=[5]), "interval": "step"}]
        if self.sched == "two":  # a per-step decay every 2 batches and a per-epoch halving
            return [opt], [{"scheduler": sched.LambdaLR(opt, lambda t: 1 / (1 + 0.2 * t)), "interval": "step",
                            "frequency": 2},
                           {"scheduler": sched.StepLR(opt, step_size=1, gamma=0.5), "interval": "epoch"}]
        if self.sched == "groups_lambda":  # each group its own shape
            return [opt], [{"scheduler": sched.LambdaLR(opt, [lambda t: 1 / (1 + 0.1 * t),
                                                              lambda t: min(1.0, (t + 1) / 6)]), "interval": "step"}]
        if self.sched == "long_warmup":  # a warmup twice the fit's length: the fit never reaches self.lr
            return [opt], [{"scheduler": sched.LinearLR(opt, start_factor=0.1, total_iters=2 * total),
                            "interval": "step"}]
        if self.sched == "plateau":
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched.ReduceLROnPlateau(opt),
                                                       "monitor": "val_loss"}}
        raise AssertionError(self.sched)


def _trainer(callbacks: list[Any], **kwargs: Any) -> Any:
    return quiet_trainer(callbacks, **{"max_epochs": 5, **kwargs})


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """The schedule records the callback makes (spied on)."""
    return spy_results(monkeypatch, lightning_mod, "_record_schedule")


SCENARIOS = {
    "cosine": ({}, {}),
    "onecycle": ({}, {}),
    "step_epoch": ({}, {}),
    "warmup_cosine": ({}, {}),
    "two": ({}, {}),
    "groups_lambda": ({"groups": True}, {}),
    "accumulate": ({"sched": "two"}, {"accumulate_grad_batches": 5, "max_epochs": 10}),
    "limit_and_max_steps": ({"sched": "step_epoch"}, {"limit_train_batches": 5, "max_steps": 22}),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_the_recorded_schedule_is_the_one_the_fit_runs_at_the_chosen_peak(
        name: str, recorded: list[Any]) -> None:
    """Step for step, every group's LR (and OneCycleLR's cycled momentum) the fit trains at is the recorded schedule
    scaled by chosen / peak; the run length the choice budgets for is the fit's optimizer steps."""
    net_kwargs, trainer_kwargs = SCENARIOS[name]
    net_kwargs = {"sched": name, **net_kwargs}
    chooser = ChooseLRCallback(budget=0.5, log=False)
    trainer = _trainer([chooser], **trainer_kwargs)
    model = Net(**net_kwargs)
    trainer.fit(model, _loader(), _loader(32, seed=1))
    assert len(recorded) == 1
    lrs, momenta = recorded[0]
    actual = np.array(model.lrs)
    assert lrs.shape == actual.shape == (trainer.global_step, 2 if model.groups else 1)
    auto = chooser.auto
    assert auto is not None and chooser.lr == auto.lr == model.lr
    assert round(auto.extra_steps / auto.extra_fraction) == trainer.global_step
    peak = lrs.max()
    np.testing.assert_allclose(actual, lrs * auto.lr / peak, rtol=1e-9)
    if name == "onecycle":
        assert "momentum" in momenta and np.ptp(momenta["momentum"]) > 0.05
        np.testing.assert_allclose(np.array(model.momenta), momenta["momentum"], rtol=1e-12)
    else:
        assert momenta == {}


def test_a_trial_replays_the_fit_schedule_compressed_at_its_own_peak() -> None:
    """_Replay over n steps plays the fit's step k * total // n, scaled to the trial's peak; momentum too."""
    total = 40
    lrs = np.stack([np.linspace(1.0, 0.1, total), np.linspace(0.5, 0.05, total)], axis=1)
    momenta = {"momentum": np.stack([np.linspace(0.85, 0.95, total)] * 2, axis=1)}
    opt = torch.optim.SGD([{"params": [torch.zeros(1)], "lr": 0.2}, {"params": [torch.zeros(1)], "lr": 0.1}],
                          lr=0.2, momentum=0.9)
    replay = Replay(opt, lrs, momenta, 1.0, 10)  # the trial's peak is 0.2: 0.2 x the fit's LRs
    seen = []
    for _ in range(10):
        seen.append(([g["lr"] for g in opt.param_groups], [g["momentum"] for g in opt.param_groups]))
        opt.step()
        replay.step()
    for k, (lr, mom) in enumerate(seen):
        t = k * total // 10
        np.testing.assert_allclose(lr, 0.2 * lrs[t], rtol=1e-12)
        np.testing.assert_allclose(mom, momenta["momentum"][t], rtol=1e-12)


@pytest.mark.parametrize("attr", [True, False])
def test_the_fit_after_the_choice_is_the_fit_at_the_chosen_lr_set_by_hand(attr: bool) -> None:
    chooser = ChooseLRCallback(budget=0.5, log=False, attr_name=None if attr else False)
    model = Net("warmup_cosine", use_attr=attr)
    _trainer([chooser]).fit(model, _loader(shuffle=True), _loader(32, seed=1))
    chosen = chooser.lr
    assert chosen is not None and chosen != 0.01
    torch.manual_seed(123)  # each fit from the same RNG state (Net() seeds its own init)
    again = Net("warmup_cosine", use_attr=attr)
    chooser2 = ChooseLRCallback(budget=0.5, log=False, attr_name=None if attr else False)
    _trainer([chooser2]).fit(again, _loader(shuffle=True), _loader(32, seed=1))
    torch.manual_seed(123)
    reference = Net("warmup_cosine", lr=chosen)
    _trainer([]).fit(reference, _loader(shuffle=True), _loader(32, seed=1))
    assert chooser2.lr == chosen  # the choice is reproducible from the same seed
    if attr:
        assert again.lrs == reference.lrs
        for a, b in zip(again.parameters(), reference.parameters()):
            assert torch.equal(a, b)
    else:  # the built optimizer scaled by chosen / peak: equal to the last bits
        np.testing.assert_allclose(again.lrs, reference.lrs, rtol=1e-12)
        for a, b in zip(again.parameters(), reference.parameters()):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_trials_are_scored_on_the_first_val_loader_cut_at_limit_val_batches() -> None:
    lines: list[str] = []
    chooser = ChooseLRCallback(budget=0.5, log=lines.append)
    model = Net("cosine")
    _trainer([chooser], limit_val_batches=2).fit(model, _loader(), [_loader(64, seed=1), _loader(64, seed=2)])
    auto = chooser.auto
    assert auto is not None and auto.trials
    assert any("scored on validation loss" in line for line in lines)
    # one scoring pass before training and one per trial, of 2 batches each, before the fit's own validation
    # (whose validation_step does not call training_step)
    assert model.eval_batches == 2 * (1 + len(auto.trials))


@pytest.mark.parametrize("how", ["no_validation_step", "limit_zero", "no_val_data"])
def test_without_validation_the_trials_are_scored_on_training_loss(how: str) -> None:
    lines: list[str] = []
    chooser = ChooseLRCallback(budget=0.5, log=lines.append)
    model = Net("cosine", validate=how != "no_validation_step")
    trainer = _trainer([chooser], limit_val_batches=0 if how == "limit_zero" else 1.0)
    if how == "no_val_data":
        trainer.fit(model, _loader())
    else:
        trainer.fit(model, _loader(), _loader(32, seed=1))
    assert any("scored on training loss" in line for line in lines)
    assert model.eval_batches == 0


def test_an_attribute_that_is_not_the_peak_is_set_so_the_fit_peaks_at_the_chosen_lr() -> None:
    chooser = ChooseLRCallback(budget=0.5, log=False)
    model = Net("onecycle2x")
    _trainer([chooser]).fit(model, _loader(), _loader(32, seed=1))
    assert chooser.lr is not None
    assert model.lr == pytest.approx(chooser.lr / 2, rel=1e-12)
    assert max(lr[0] for lr in model.lrs) == pytest.approx(chooser.lr, rel=1e-6)


def test_a_plateau_scheduler_is_refused_naming_make_scheduler_which_then_works() -> None:
    with pytest.raises(ValueError, match=r"ReduceLROnPlateau follows a metric.*make_scheduler=") as err:
        _trainer([ChooseLRCallback(budget=0.5, log=False)]).fit(Net("plateau"), _loader(), _loader(32, seed=1))
    assert "ChooseLRCallback" in str(err.value)

    def constant(optimizer: torch.optim.Optimizer, steps: int) -> Any:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: 1.0)

    chooser = ChooseLRCallback(budget=0.5, log=False, make_scheduler=constant)
    model = Net("plateau")
    _trainer([chooser]).fit(model, _loader(), _loader(32, seed=1))
    assert chooser.lr is not None and model.lr == chooser.lr


def test_a_fit_without_an_end_is_refused_and_max_steps_gives_it_one() -> None:
    stream = torch.utils.data.DataLoader(_Stream(), batch_size=None)
    with pytest.raises(ValueError, match=r"has no end \(its train loader has no length, max_steps=-1\).*max_steps"):
        _trainer([ChooseLRCallback(log=False)], max_epochs=-1).fit(Net(None), stream)
    chooser = ChooseLRCallback(budget=0.5, log=False)
    trainer = _trainer([chooser], max_epochs=-1, max_steps=60)
    trainer.fit(Net(None), stream)
    assert chooser.auto is not None and round(chooser.auto.extra_steps / chooser.auto.extra_fraction) == 60


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"budget": 0}, r"budget=0"),
    ({"num_candidates": 0}, r"num_candidates=0"),
    ({"make_scheduler": 3}, r"make_scheduler=3 must be a callable"),
    ({"seed": "0"}, r"seed='0' must be an int"),
    ({"log": 3}, r"log=3 must be a callable"),
    ({"accumulation_steps": 2}, r"ChooseLRCallback\(accumulation_steps=...\): the callback takes it from "
                                r"Trainer\(accumulate_grad_batches"),
    ({"num_step": 20}, r"ChooseLRCallback keyword.*'num_step'.*num_steps"),
    ({"attr_name": True}, r"attr_name=True"),
])
def test_bad_arguments_are_refused_when_the_callback_is_built(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ChooseLRCallback(**kwargs)


def test_out_gets_the_curve_and_the_choice(tmp_path: Path) -> None:
    chooser = ChooseLRCallback(budget=0.5, log=False, out=tmp_path / "lr")
    _trainer([chooser]).fit(Net("cosine"), _loader(), _loader(32, seed=1))
    record = json.loads((tmp_path / "lr" / "lr_auto.json").read_text())
    assert chooser.auto is not None and record["lr"] == chooser.auto.lr
    assert len(record["trials"]) == len(chooser.auto.trials)
    assert (tmp_path / "lr" / "lr_find.json").exists() and (tmp_path / "lr" / "lr_find.png").exists()


def test_a_resumed_fit_chooses_nothing_and_keeps_the_checkpoint_lr(tmp_path: Path) -> None:
    chooser = ChooseLRCallback(budget=0.5, log=False)
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_last=True)
    pl.Trainer(max_epochs=2, callbacks=[chooser, ckpt], logger=False, enable_progress_bar=False,
               enable_model_summary=False, num_sanity_val_steps=0).fit(Net("cosine"), _loader(), _loader(32, seed=1))
    assert chooser.lr is not None
    again = ChooseLRCallback(budget=0.5, log=False)
    model = Net("cosine")
    pl.Trainer(max_epochs=3, callbacks=[again], logger=False, enable_progress_bar=False, enable_model_summary=False,
               enable_checkpointing=False, num_sanity_val_steps=0).fit(
        model, _loader(), _loader(32, seed=1), ckpt_path=str(tmp_path / "last.ckpt"))
    assert again.auto is None and again.lr == chooser.lr and model.lr == chooser.lr


def test_the_docstring_example_runs() -> None:
    import doctest

    finder = doctest.DocTestFinder(recurse=False)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = finder.find(ChooseLRCallback, "ChooseLRCallback", globs={})
    assert tests and tests[0].examples
    for test in tests:
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


class _Seen(pl.LightningModule):
    """Records the first input value of every batch training_step sees."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.lr = 0.01
        self.net = torch.nn.Linear(4, 1)
        self.seen: list[float] = []

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        self.seen.append(float(x[0, 0]))
        return torch.nn.functional.mse_loss(self.net(x), y)

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=self.lr)


@pytest.mark.parametrize("limit", [3, 0.25])
def test_find_lr_callback_tests_on_the_batches_limit_train_batches_leaves_the_fit(limit: float) -> None:
    """The fit trains on the first 3 of 12 batches each epoch: so does the range test (before: all 12)."""
    loader = _loader()
    first = [float(x[0, 0]) for x, _ in loader]
    model = _Seen()
    finder = FindLRCallback(num_steps=20)
    _trainer([finder], max_steps=1, limit_train_batches=limit).fit(model, loader)
    test_batches = model.seen[:20]
    assert set(test_batches) == set(first[:3])


class _Record(pl.Callback):
    def __init__(self, folder: str) -> None:
        self.folder = folder

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        chooser = next(c for c in trainer.callbacks if isinstance(c, ChooseLRCallback))
        torch.save({"lr": chooser.lr, "trials": [tuple(t) for t in chooser.auto.trials],
                    "weights": {k: v.detach().clone() for k, v in pl_module.state_dict().items()}},
                   Path(self.folder) / f"rank{trainer.global_rank}.pt")


@pytest.mark.usefixtures("environment_as_it_was")
def test_ddp_spawn_every_rank_chooses_the_same_lr_and_trains_alike(tmp_path: Path) -> None:
    chooser = ChooseLRCallback(budget=0.5, log=False, out=tmp_path / "out")
    trainer = pl.Trainer(max_epochs=4, accelerator="cpu", devices=2, strategy="ddp_spawn", logger=False,
                         enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False,
                         num_sanity_val_steps=0, callbacks=[chooser, _Record(str(tmp_path))])
    trainer.fit(Net("cosine"), _loader(), _loader(32, seed=1))
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert ranks[0]["lr"] == ranks[1]["lr"] and ranks[0]["trials"] == ranks[1]["trials"]
    for key, value in ranks[0]["weights"].items():
        assert torch.equal(value, ranks[1]["weights"][key])
    record = json.loads((tmp_path / "out" / "lr_auto.json").read_text())
    assert record["lr"] == ranks[0]["lr"]


def test_the_choice_is_choose_lr0_by_hand_on_the_same_module_schedule_and_loaders() -> None:
    """With the same make_scheduler, the callback's range test, trials and choice are those of choose_lr0 called by
    hand on the module (training_step as step_fn), its optimizer and the fit's loaders: the plumbing adds nothing."""
    from lrkit.train.auto import choose_lr0

    def cosine(optimizer: torch.optim.Optimizer, steps: int) -> Any:
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)

    chooser = ChooseLRCallback(budget=0.5, log=False, make_scheduler=cosine, seed=3)
    model = Net("cosine")
    _trainer([chooser]).fit(model, _loader(), _loader(32, seed=1))
    assert chooser.auto is not None

    by_hand = Net("cosine")
    opt = torch.optim.SGD(by_hand.parameters(), lr=0.01, momentum=0.9)
    auto = choose_lr0(by_hand, opt, _loader(), _loader(32, seed=1), total_steps=60, make_scheduler=cosine,
                      step_fn=lambda m, b: m.training_step(b, 0), budget=0.5, seed=3)
    assert chooser.auto.finder.losses == auto.finder.losses
    assert chooser.auto.trials == auto.trials and chooser.auto.trials
    assert chooser.auto.lr == auto.lr == model.lr


@pytest.mark.parametrize("attr", [True, False])
def test_the_chosen_lr_is_the_highest_the_fit_trains_at_also_when_it_never_reaches_its_schedules_peak(
        attr: bool) -> None:
    """A warmup longer than the fit: the schedule's peak (self.lr) is never reached. The range test sweeps the LRs
    themselves, so the chosen LR is the highest the fit trains at (before: the unreached schedule peak, so the fit
    topped out at about half of it)."""
    chooser = ChooseLRCallback(budget=0.5, log=False, attr_name=None if attr else False)
    model = Net("long_warmup", use_attr=attr)
    _trainer([chooser]).fit(model, _loader(), _loader(32, seed=1))
    assert chooser.lr is not None
    assert max(lr[0] for lr in model.lrs) == pytest.approx(chooser.lr, rel=1e-9)
    if attr:  # the attribute is the schedule's peak: above the chosen LR, by the share of the warmup the fit runs
        assert model.lr > 1.5 * chooser.lr


def test_trials_over_a_dict_of_loaders_each_shuffling_with_its_own_generator_see_the_same_batches() -> None:
    """A dict of train loaders, each with its own generator: every trial is reseeded to the same order (before, only a
    single DataLoader's generator was found, and each trial of a collection drew another shuffle)."""
    from lrkit.finder.range_test import _loader_generators

    def shuffled(seed: int) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(regression_data(96, seed), batch_size=8, shuffle=True,
                                           generator=torch.Generator().manual_seed(seed))

    data = {"a": shuffled(0), "b": shuffled(1)}
    batches = lightning_mod._Batches(data, pl.Trainer(logger=False, enable_progress_bar=False), Net(None))
    found = _loader_generators(batches)
    assert {id(g) for g in found} == {id(data["a"].generator), id(data["b"].generator)}


class _OwnClipping(Net):
    def configure_gradient_clipping(self, optimizer: Any, gradient_clip_val: Any = None,
                                    gradient_clip_algorithm: Any = None) -> None:
        self.clip_gradients(optimizer, gradient_clip_val=0.1, gradient_clip_algorithm="norm")


@pytest.mark.parametrize("callback", [FindLRCallback, ChooseLRCallback])
def test_a_module_with_its_own_gradient_clipping_is_warned_about(callback: type) -> None:
    made = callback(num_steps=20) if callback is FindLRCallback else callback(budget=0.5, log=False)
    with pytest.warns(UserWarning, match=r"_OwnClipping overrides configure_gradient_clipping, which the range test "
                                         r"does not call"):
        _trainer([made], max_steps=40).fit(_OwnClipping("cosine"), _loader(), _loader(32, seed=1))


def test_a_onecycle_peak_between_two_steps_still_sets_the_attribute_to_the_chosen_lr() -> None:
    """OneCycleLR over 36 steps peaks between steps 9 and 10: the fit tops out at 0.99984 x max_lr. That is reaching
    the peak (within 1%): self.lr is set to the chosen LR itself, not a hair above it."""
    chooser = ChooseLRCallback(budget=0.5, log=False)
    model = Net("onecycle")
    _trainer([chooser], max_epochs=3).fit(model, _loader(), _loader(32, seed=1))
    assert chooser.lr is not None and model.lr == chooser.lr
    assert max(lr[0] for lr in model.lrs) == pytest.approx(chooser.lr, rel=1e-2)


def test_two_lr_setting_callbacks_in_one_fit_are_warned_about_and_the_finder_says_what_it_set(
        caplog: pytest.LogCaptureFixture) -> None:
    finder = FindLRCallback(num_steps=20)
    chooser = ChooseLRCallback(budget=0.5, log=False)
    model = Net("cosine")
    with pytest.warns(UserWarning, match=r"FindLRCallback: the fit has 2 callbacks that set its LR \(FindLRCallback, "
                                         r"ChooseLRCallback\).*ChooseLRCallback\) is the one the fit trains at"):
        with caplog.at_level(logging.INFO, logger="lightning.pytorch"):
            _trainer([finder, chooser]).fit(model, _loader(), _loader(32, seed=1))
    assert model.lr == chooser.lr != finder.lr
    said = [r.getMessage() for r in caplog.records if "FindLRCallback: the range test" in r.getMessage()]
    assert said and f"suggests {finder.lr:.4g}" in said[0]


def test_with_monitor_callback_the_monitor_sees_only_the_fits_steps_on_the_rebuilt_optimizer_and_scheduler() -> None:
    """The choice rebuilds the optimizer and scheduler from self.lr at on_fit_start; the monitor, built at
    on_train_start, watches those and counts the fit's steps only (none of the range test's or the trials')."""
    from lrkit.integrations.lightning import MonitorCallback

    monitor = MonitorCallback(monitor_metric=None)
    chooser = ChooseLRCallback(budget=0.5, log=False)
    model = Net("cosine")
    trainer = _trainer([monitor, chooser])
    trainer.fit(model, _loader(), _loader(32, seed=1))
    assert monitor.monitor.summary()["steps"] == trainer.global_step == 60
    assert monitor.monitor.optimizer is trainer.optimizers[0]
    assert monitor.monitor.scheduler is trainer.lr_scheduler_configs[0].scheduler
    assert model.lrs[0][0] == pytest.approx(chooser.lr, rel=1e-12)
