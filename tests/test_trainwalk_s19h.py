"""``lrkit.train`` with a practitioner's own model and torch data: findings of a walkthrough (session 19, s19h).

* ``val=<a Dataset>`` (the validation set passed as ``val=``) was refused as ``val=<TupleDS object at 0x...> must be
  a finite number``, with no word of where a validation set goes (``data=(train, val)``);
* ``schedule="onecycle max_lr=0.01"`` logged ``lr0=0.01 (yours, honoured as given)`` although no ``lr0`` was given:
  the peak came from the spec;
* ``amp="bf16"`` was not mentioned anywhere in the log, and a model with parameters frozen by the user
  (``requires_grad=False``) was logged with its total count only, as if every parameter trained;
* float 0/1 multi-hot targets with ``loss_fn=nn.BCEWithLogitsLoss()`` were read as regression (documented) and
  scored as the RMSE of logits against 0/1 labels, without a word; the log now says to pass ``task=``;
* a run whose warmup spans exactly its length (``epochs=3`` and the default ``warmup_epochs=3``) never reaches
  ``lr0`` (the LR peaks near a quarter of it), with no note, while one epoch fewer got one;
* the checkpoint records how a classifier's scores are read (one logit / one probability / multi-label), so a
  finished run can predict what training scored.

Each test failed before its fix.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

import lrkit

QUIET = {"plots": False, "verbose": False}


class _Pairs(Dataset):
    """A plain map-style Dataset of ``(x, y)`` tuples, as a user writes one."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]


class _Net(nn.Module):
    def __init__(self, k: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 16), nn.ReLU())
        self.head = nn.Linear(16, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def _data(y: torch.Tensor | None = None) -> tuple[_Pairs, _Pairs]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 6, generator=g)
    if y is None:
        y = (x @ torch.randn(6, 3, generator=g)).argmax(1)
    return _Pairs(x[:64], y[:64]), _Pairs(x[64:], y[64:])


def _log(capsys: pytest.CaptureFixture[str], tmp_path: Path, **kwargs: object) -> tuple[lrkit.TrainResults, str]:
    capsys.readouterr()
    r = lrkit.train(project=str(tmp_path), plots=False, verbose=True, **kwargs)  # type: ignore[arg-type]
    return r, capsys.readouterr().out


def test_val_given_a_dataset_says_where_a_validation_set_goes(tmp_path: Path) -> None:
    # Bug: "val=<...TupleDS object at 0x7f...> must be a finite number".
    train_ds, val_ds = _data()
    with pytest.raises(ValueError) as e:
        lrkit.train(_Net(), data=train_ds, val=val_ds, epochs=1, project=str(tmp_path), **QUIET)
    msg = str(e.value)
    assert "val=" in msg and "_Pairs" in msg and "data=(train, val)" in msg and " at 0x" not in msg
    assert not any(tmp_path.iterdir())  # refused before anything is written


def test_val_given_a_dataloader_or_list_is_named_too(tmp_path: Path) -> None:
    train_ds, val_ds = _data()
    for bad in (torch.utils.data.DataLoader(val_ds, batch_size=8), [val_ds[0], val_ds[1]]):
        with pytest.raises(ValueError, match=r"data=\(train, val\)"):
            lrkit.train(_Net(), data=train_ds, val=bad, epochs=1, project=str(tmp_path), **QUIET)


def test_lr0_from_a_schedule_spec_is_logged_as_the_specs(capsys: pytest.CaptureFixture[str],
                                                          tmp_path: Path) -> None:
    # Bug: "lrkit.train: lr0=0.01 (yours, honoured as given)" with no lr0 given.
    r, out = _log(capsys, tmp_path, model=_Net(), data=_data(), epochs=2, schedule="onecycle max_lr=0.01")
    assert r.lr0 == pytest.approx(0.01)
    line = next(x for x in out.splitlines() if x.startswith("lrkit.train: lr0="))
    assert "yours" not in line and "schedule='onecycle max_lr=0.01'" in line, line


def test_lr0_given_and_matching_the_spec_is_still_yours(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    _, out = _log(capsys, tmp_path, model=_Net(), data=_data(), epochs=2, schedule="onecycle max_lr=0.01", lr0=0.01)
    assert "lrkit.train: lr0=0.01 (yours, honoured as given)" in out


def test_amp_is_named_in_the_plan(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # Bug: amp="bf16" trained under bfloat16 autocast without a word in the log.
    _, out = _log(capsys, tmp_path, model=_Net(), data=_data(), epochs=1, amp="bf16", device="cpu")
    first = next(x for x in out.splitlines() if x.startswith("lrkit.train: _Pairs"))
    assert first.endswith("on cpu, amp bf16 (bfloat16 autocast)"), first
    _, out = _log(capsys, tmp_path, model=_Net(), data=_data(), epochs=1, device="cpu")
    first = next(x for x in out.splitlines() if x.startswith("lrkit.train: _Pairs"))
    assert first.endswith("on cpu") and "amp" not in first, first


def test_a_model_with_frozen_parameters_is_logged_with_its_trainable_count(capsys: pytest.CaptureFixture[str],
                                                                           tmp_path: Path) -> None:
    # Bug: "model _Net (163 parameters)" for a model whose body (112 parameters) the user had frozen.
    model = _Net()
    for p in model.body.parameters():
        p.requires_grad_(False)
    _, out = _log(capsys, tmp_path, model=model, data=_data(), epochs=1)
    assert "model _Net (163 parameters, 51 trainable)" in out
    _, out = _log(capsys, tmp_path, model=_Net(), data=_data(), epochs=1)
    assert "model _Net (163 parameters) on" in out  # all trainable: the count alone, as before
    _, out = _log(capsys, tmp_path, model=_Net(), data=_data(), epochs=1, freeze="body")
    assert "model _Net (163 parameters, 51 trainable)" in out  # freeze= counts too


def test_float_multi_hot_targets_with_a_bce_loss_read_as_regression_say_so(capsys: pytest.CaptureFixture[str],
                                                                           tmp_path: Path) -> None:
    # Bug: RMSE of logits against 0/1 labels, silently.
    g = torch.Generator().manual_seed(1)
    x = torch.randn(96, 6, generator=g)
    y = (x @ torch.randn(6, 3, generator=g) > 0).float()
    data = (_Pairs(x[:64], y[:64]), _Pairs(x[64:], y[64:]))
    r, out = _log(capsys, tmp_path, model=_Net(), data=data, epochs=1, loss_fn=nn.BCEWithLogitsLoss())
    assert r.task == "regression"  # the documented inference is unchanged
    note = next(x for x in out.splitlines() if "BCEWithLogitsLoss" in x)
    assert "task='classification'" in note and "rmse" in note
    r, out = _log(capsys, tmp_path, model=_Net(), data=data, epochs=1, loss_fn=nn.BCEWithLogitsLoss(),
                  task="classification")
    assert r.metric_name == "accuracy" and "BCEWithLogitsLoss" not in out
    r, out = _log(capsys, tmp_path, model=_Net(), data=data, epochs=1, loss_fn=nn.MSELoss())
    assert "task='classification'" not in out  # a regression loss: no note


def test_a_warmup_as_long_as_the_run_is_noted(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # Bug: epochs=2 got "warmup_epochs=3 is longer than the run", epochs=3 (the LR never reaches lr0) got nothing.
    r, out = _log(capsys, tmp_path, model=_Net(), data=_data(), epochs=3, lr0=0.01)
    note = next(x for x in out.splitlines() if "warmup_epochs=3" in x)
    assert "spans the whole run (3 epochs)" in note and "never reaches lr0=0.01" in note, note
    top = max(float(v) for row in r.history for k, v in row.items() if k.startswith("lr/"))
    assert top < 0.01
    _, out = _log(capsys, tmp_path, model=_Net(), data=_data(), epochs=4, lr0=0.01)
    assert "warmup_epochs=3" not in out  # a run longer than its warmup: no note


@pytest.mark.parametrize(("loss", "k", "scores"), [
    (None, 3, None),
    (nn.BCEWithLogitsLoss(), 1, "logit"),
    (nn.BCELoss(), 1, "probability"),
    (nn.BCEWithLogitsLoss(), 3, "multi_label"),
])
def test_the_checkpoint_records_how_class_scores_are_read(tmp_path: Path, loss: nn.Module | None, k: int,
                                                          scores: str | None) -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(96, 6, generator=g)
    if loss is None:
        y = (x @ torch.randn(6, 3, generator=g)).argmax(1)
    else:
        y = (x @ torch.randn(6, k, generator=g) > 0).float()
    model: nn.Module = _Net(k)
    if isinstance(loss, nn.BCELoss):
        model = nn.Sequential(model, nn.Sigmoid())
    r = lrkit.train(model, data=(_Pairs(x[:64], y[:64]), _Pairs(x[64:], y[64:])), epochs=1, loss_fn=loss,
                    task="classification", project=str(tmp_path), **QUIET)
    for ck in (r.last_checkpoint, r.best_checkpoint):
        state = torch.load(ck, weights_only=True)
        assert state["outputs"] == {"scores": scores}


@pytest.mark.parametrize("kind", ["loss_fn", "step_fn"])
def test_a_loss_cut_from_the_graph_is_named_not_torchs_autograd_error(tmp_path: Path, kind: str) -> None:
    # Bug: RuntimeError "element 0 of tensors does not require grad and does not have a grad_fn" from inside
    # torch's autograd, for a loss_fn that detached the output.
    def detached_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(out.detach(), y)

    def detached_step(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            return nn.functional.cross_entropy(model(batch[0]), batch[1])

    fn = {"loss_fn": detached_loss, "step_fn": detached_step}[kind]
    with pytest.raises(ValueError) as e:
        lrkit.train(_Net(), data=_data(), epochs=1, project=str(tmp_path), **{kind: fn}, **QUIET)
    msg = str(e.value)
    assert f"{kind} {fn.__name__}" in msg and "does not require grad" in msg and "detach" in msg, msg
    assert not any(tmp_path.iterdir())  # the first epoch failed: no trace
