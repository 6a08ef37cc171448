"""Session 25b's user walk of the README's migration guides ("Coming from torch-lr-finder, fastai, Lightning or
Ultralytics"), as a user coming from Lightning's ``Tuner.lr_find`` / ``LearningRateFinder`` writes the callbacks.

``find_lr`` names a peer's keyword back (``PEER_KEYWORDS``); ``FindLRCallback``/``ChooseLRCallback`` answered the
same habit with a did-you-mean that pointed the wrong way (``min_lr`` -> "Did you mean 'end_lr'?", ``max_lr`` ->
"Did you mean 'start_lr'?") and said nothing of ``update_attr``/``datamodule``. Now every peer keyword is named, in
the callback's terms.
"""
from __future__ import annotations

import warnings

import pytest
import torch

pytest.importorskip("lightning")
import lightning.pytorch as pl

from lrkit.finder.range_test import PEER_KEYWORDS
from lrkit.integrations.lightning import ChooseLRCallback, FindLRCallback

CALLBACKS = [FindLRCallback, ChooseLRCallback]


def _error(cls: type, **kwargs: object) -> str:
    with pytest.raises(ValueError) as info:
        cls(**kwargs)
    return str(info.value)


@pytest.mark.parametrize("cls", CALLBACKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("peer, value, lrkit_name", [
    ("min_lr", 1e-8, "start_lr=1e-08"), ("max_lr", 1, "end_lr=1"), ("num_training", 100, "num_steps=100"),
    ("early_stop_threshold", 4.0, "diverge_factor=4.0"),
])
def test_lightning_names_point_to_lrkits_not_a_misleading_did_you_mean(cls: type, peer: str, value: object,
                                                                      lrkit_name: str) -> None:
    text = _error(cls, **{peer: value})
    assert repr(peer) in text and "Lightning" in text and lrkit_name in text
    assert "Did you mean" not in text  # before: min_lr -> 'end_lr', max_lr -> 'start_lr'


@pytest.mark.parametrize("cls", CALLBACKS, ids=lambda c: c.__name__)
def test_update_attr_says_the_callback_sets_the_lr_and_names_attr_name(cls: type) -> None:
    text = _error(cls, update_attr=True)
    assert "update_attr" in text and "attr_name=" in text and "attr_name=False" in text
    assert "set it yourself" not in text  # find_lr's advice; the callback does set it


@pytest.mark.parametrize("cls", CALLBACKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("peer", ["train_dataloaders", "dataloaders", "datamodule"])
def test_data_arguments_say_the_data_comes_from_the_fit(cls: type, peer: str) -> None:
    text = _error(cls, **{peer: None})
    assert repr(peer) in text and "trainer.fit(" in text and "datamodule=" in text


def test_validation_data_for_each_callback() -> None:
    text = _error(ChooseLRCallback, val_dataloaders=None)
    assert "validation loader" in text and "trainer.fit(model, train_loader, val_loader)" in text
    text = _error(FindLRCallback, val_loader=None)
    assert "training loss" in text and "ChooseLRCallback" in text


@pytest.mark.parametrize("cls", CALLBACKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("peer", sorted(PEER_KEYWORDS))
def test_every_peer_keyword_is_named_with_its_owner(cls: type, peer: str) -> None:
    if peer == "attr_name":  # the callbacks' own keyword: taken, not refused
        return
    owner = PEER_KEYWORDS[peer][0]
    text = _error(cls, **{peer: 1})
    assert repr(peer) in text and f"{owner}'s name" in text, text


@pytest.mark.parametrize("cls", CALLBACKS, ids=lambda c: c.__name__)
def test_precision_and_loss_of_torch_lr_finder_come_from_the_trainer(cls: type) -> None:
    assert "precision=" in _error(cls, grad_scaler=None)
    assert "precision=" in _error(cls, amp_backend="torch")
    assert "training_step" in _error(cls, criterion=torch.nn.MSELoss())


def test_fastai_plot_and_suggest_funcs_in_the_callbacks_terms() -> None:
    assert "rule='valley'" in _error(FindLRCallback, suggest_funcs=("valley",))
    assert "out=" in _error(FindLRCallback, show_plot=True)


@pytest.mark.parametrize("cls", CALLBACKS, ids=lambda c: c.__name__)
def test_other_unknown_keywords_still_get_a_did_you_mean(cls: type) -> None:
    text = _error(cls, num_step=50)
    assert "Did you mean 'num_steps'?" in text
    assert "loss_fn" in _error(cls, loss_fn=None)  # supplied by the fit: still refused naming where


class _Net(pl.LightningModule):
    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        if how == "hparams":
            self.save_hyperparameters({"lr": 1e-3})
        else:
            setattr(self, how, 1e-3)
        self.net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return torch.nn.functional.mse_loss(self.net(batch[0]), batch[1])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        lr = self.hparams.lr if self.how == "hparams" else getattr(self, self.how)
        return torch.optim.SGD(self.parameters(), lr=lr, momentum=0.9)


@pytest.mark.parametrize("how", ["lr", "learning_rate", "hparams", "base_lr"])
def test_the_lr_attribute_a_lightning_user_has_is_found_or_the_optimizer_scaled(how: str) -> None:
    """``self.lr``, ``self.learning_rate`` and ``hparams.lr`` are set (as Lightning's ``update_attr`` looks); another
    name without ``attr_name=`` leaves it alone and trains at the suggestion through the scaled optimizer."""
    torch.manual_seed(0)
    x = torch.randn(256, 6)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=16)
    module, finder = _Net(how), FindLRCallback(num_steps=20)
    trainer = pl.Trainer(max_steps=1, callbacks=[finder], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, loader)
    assert finder.lr == finder.result.suggestion
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(finder.lr)
    if how == "hparams":
        assert module.hparams.lr == finder.lr
    elif how == "base_lr":
        assert module.base_lr == 1e-3
    else:
        assert getattr(module, how) == finder.lr


@pytest.mark.parametrize("kwargs, says", [
    ({"rule": "steep"}, "Did you mean 'steepest'?"), ({"num_steps": 5}, "num_steps=5 must be an integer >= 10"),
    ({"mode": "exponential"}, "lrkit's is mode='exp'"), ({"start_lr": None}, "torch-lr-finder's start_lr=None"),
    ({"start_lr": 1.0, "end_lr": 0.1}, "end_lr=0.1 must be greater than start_lr=1"),
    ({"end_lr": 1e-7}, "must be greater than start_lr=1e-06"),  # choose_lr0's range test starts at 1e-6
])
def test_choose_callback_checks_the_range_tests_values_when_built(kwargs: dict[str, object], says: str) -> None:
    """The README: "Keywords are checked when the callback is built" — ChooseLRCallback checked the names only, and
    a bad value of the range test's (a fastai-style ``rule='steep'``, Lightning's ``mode='exponential'``) was refused
    at the fit's start, after the data and the model were set up."""
    assert says in _error(ChooseLRCallback, **kwargs)


def test_find_callback_start_lr_none_names_torch_lr_finders_meaning() -> None:
    assert "torch-lr-finder's start_lr=None" in _error(FindLRCallback, start_lr=None)


def test_choose_callback_keeps_valid_range_test_settings() -> None:
    chooser = ChooseLRCallback(start_lr=1e-8, end_lr=1.0, num_steps=40, mode="linear", rule="valley")
    assert chooser.find_lr_kwargs == {"start_lr": 1e-8, "end_lr": 1.0, "num_steps": 40, "mode": "linear",
                                      "rule": "valley"}
