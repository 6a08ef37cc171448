"""The range test's "too flat / too short to judge" warnings name the settings to change as the caller takes them
(session 24): ``find_lr``'s own keywords; ``choose_lr0``'s ``finder_kwargs['num_steps']`` (the budget set it, the
user never passed ``num_steps``); ``lrkit.train``, which takes none of them, says so and what to do instead;
``ChooseLRCallback``'s own keywords (``num_steps=``)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import lrkit


class Damped(nn.Module):
    """A linear classifier whose outputs are scaled by 1e-9: within the range test's LRs the loss cannot move."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1e-9 * self.lin(x)


def _split() -> tuple[Any, Any]:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(256, 4, generator=g), torch.randint(0, 3, (256,), generator=g)
    return torch.utils.data.TensorDataset(x[:192], y[:192]), torch.utils.data.TensorDataset(x[192:], y[192:])


def _judged(fn: Any) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
    return [str(w.message) for w in caught if "to judge" in str(w.message)]


def test_find_lr_names_its_own_keywords() -> None:
    train, _ = _split()
    model = Damped()
    said = _judged(lambda: lrkit.find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1),
                                         torch.utils.data.DataLoader(train, batch_size=16), num_steps=20))
    assert len(said) == 1
    assert "raise end_lr (now 10) or num_steps (now 20)" in said[0] and "finder_kwargs" not in said[0]


def test_choose_lr0_names_finder_kwargs_which_is_where_its_caller_sets_them() -> None:
    train, val = _split()
    model = Damped()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    said = _judged(lambda: lrkit.choose_lr0(
        model, opt, torch.utils.data.DataLoader(train, batch_size=16), torch.utils.data.DataLoader(val, batch_size=64),
        total_steps=120, make_scheduler=lambda o, n: torch.optim.lr_scheduler.LambdaLR(o, lambda s: 1.0)))
    assert len(said) == 1
    assert "raise finder_kwargs['end_lr'] (now 10) or finder_kwargs['num_steps'] (now 30)" in said[0]
    # and find_lr called afterwards words its own again (the setting does not leak out of choose_lr0)
    test_find_lr_names_its_own_keywords()


def test_lrkit_train_says_its_range_test_is_not_set_there_and_what_to_do(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    said = _judged(lambda: lrkit.train(Damped(), data=_split(), epochs=12, lr0="auto", batch=16, verbose=False))
    assert len(said) == 1
    assert "lrkit.train runs the range test of lr0='auto' with settings of its own" in said[0]
    assert "pass the LR you choose as lr0" in said[0] and "finder_kwargs" not in said[0]


def test_choose_lr_callback_names_its_own_keywords() -> None:
    pl = pytest.importorskip("lightning.pytorch")
    from lrkit.integrations.lightning import ChooseLRCallback

    class Net(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.lr = 0.1
            self.model = Damped()

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            x, y = batch
            return nn.functional.cross_entropy(self.model(x), y)

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=self.lr)

    train, _ = _split()
    trainer = pl.Trainer(max_epochs=10, callbacks=[ChooseLRCallback(log=False)], logger=False,
                         enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False,
                         accelerator="cpu")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        said = _judged(lambda: trainer.fit(Net(), torch.utils.data.DataLoader(train, batch_size=16)))
    assert len(said) == 1
    assert "raise end_lr (now 10) or num_steps (now" in said[0] and "finder_kwargs" not in said[0]


class Hot(nn.Module):
    """Outputs scaled by 1e5: the loss blows up from the range test's first LRs (a curve too short to read)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1e5 * self.lin(x).squeeze(-1)


def _regression() -> tuple[Any, Any]:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(256, 4, generator=g), torch.randn(256, generator=g)
    return torch.utils.data.TensorDataset(x[:192], y[:192]), torch.utils.data.TensorDataset(x[192:], y[192:])


def test_a_curve_too_short_to_read_is_an_error_in_the_callers_words_too(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    train, val = _regression()
    model = Hot()
    with warnings.catch_warnings(), pytest.raises(ValueError, match="cannot suggest an LR") as direct:
        warnings.simplefilter("ignore")
        lrkit.choose_lr0(model, torch.optim.SGD(model.parameters(), lr=0.1),
                         torch.utils.data.DataLoader(train, batch_size=16),
                         torch.utils.data.DataLoader(val, batch_size=64), total_steps=120,
                         make_scheduler=lambda o, n: torch.optim.lr_scheduler.LambdaLR(o, lambda s: 1.0),
                         loss_fn=nn.functional.mse_loss)
    assert "lower finder_kwargs['start_lr'] (now 1e-06)" in str(direct.value)
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings(), pytest.raises(ValueError, match="cannot suggest an LR") as trained:
        warnings.simplefilter("ignore")
        lrkit.train(Hot(), data=(train, val), epochs=12, lr0="auto", batch=16, verbose=False,
                    loss_fn=nn.functional.mse_loss, optimizer="SGD")
    assert "lrkit.train runs the range test of lr0='auto' with settings of its own" in str(trained.value)
    # a FinderResult read outside lr0="auto" says find_lr's own name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = lrkit.find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1),
                               torch.utils.data.DataLoader(train, batch_size=16), loss_fn=nn.functional.mse_loss,
                               num_steps=20)
    with pytest.raises(ValueError, match=r"lower start_lr \(now 1e-07\) so the test sees the loss fall"):
        _ = result.suggestion
