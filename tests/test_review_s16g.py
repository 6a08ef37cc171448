"""Review of session 16's library/CLI changes (s16g): ``FinderResult.loss``, the CLI walkthrough fixes, ``lrkit find``'s
did-you-mean and bar, and ``lrkit.train``'s batch wording.

* ``lrkit.train`` hands its own Hugging Face loss (``_step.own_loss``) to the range test as ``step_fn``: the record
  said ``"step_fn (own_loss)"`` — a step function the user never gave — for the model's own loss;
* a DataLoader passed with a ``batch_sampler`` (``batch_size`` is ``None`` then) was planned with ``batch=`` (32)
  instead of its sampler's batch size, silently (accumulate and weight decay for the wrong batch);
* a DataLoader with ``batch_size=None`` (each of its dataset's items is a whole batch) was logged as "batch=32 is
  larger than the 5 training samples; every batch is the whole training split" (the 5 are batches) and planned with
  batch 5: accumulate 13 where each step already sees 64 samples.

Each test failed before its fix, except the guards marked as such.
"""

from __future__ import annotations

import functools
import json
import re
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, SequentialSampler, TensorDataset
from typer.testing import CliRunner

import lrkit
from lrkit import _step
from lrkit.cli.app import build_app
from lrkit.finder import FinderResult
from test_lossused_s16d import _TASK as _LOSSUSED_TASK  # the same task file, with a loss class added


def _find(model: nn.Module, data: list[Any], **kw: Any) -> FinderResult:
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lrkit.find_lr(model, opt, data, num_steps=12, end_lr=1.0, **kw)


class _HFLike(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(7, 3)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None) -> Any:
        logits = self.emb(input_ids).mean(1)
        return {"loss": nn.functional.cross_entropy(logits, labels), "logits": logits}


def _hf_data() -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [{"input_ids": torch.randint(0, 7, (8, 5), generator=g), "labels": torch.randint(0, 3, (8,), generator=g)}
            for _ in range(4)]


# --- FinderResult.loss ---------------------------------------------------------------------------------------------
def test_lrkits_own_hf_loss_given_as_step_fn_is_the_models_own_loss() -> None:
    # lrkit.train passes step_fn=own_loss for Hugging Face batches (lr0="auto"): not a step_fn of the user's
    r = _find(_HFLike(), _hf_data(), step_fn=_step.own_loss)
    assert r.loss == "the model's own loss, from model(**batch)"


def test_lr0_auto_in_lrkit_train_on_hf_batches_records_the_models_own_loss(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    items = [{"input_ids": torch.randint(0, 7, (5,), generator=g), "labels": torch.randint(0, 3, (), generator=g)}
             for _ in range(64)]
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = lrkit.train(_HFLike(), data=(items[:48], items[48:]), epochs=3, lr0="auto", auto_budget=1.0, batch=2,
                        nbs=2, project=str(tmp_path), plots=False, verbose=False)
    assert r.auto is not None and r.auto.finder is not None
    assert r.auto.finder.loss == "the model's own loss, from model(**batch)"


@pytest.mark.parametrize("kw, expected", [
    # guards (passed before): each way of passing a callable is named by what it is
    ({"step_fn": functools.partial(lambda model, batch, k: nn.functional.cross_entropy(model(batch[0]), batch[1]),
                                   k=1)}, "step_fn (<lambda>)"),
    ({"loss_fn": functools.partial(nn.CrossEntropyLoss())}, "loss_fn (CrossEntropyLoss)"),
    ({"accumulation_steps": 2}, "default: cross-entropy (integer targets)"),
])
def test_the_loss_is_named_for_each_kind_of_callable(kw: dict[str, Any], expected: str) -> None:
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(8, 4, generator=g), torch.randint(0, 3, (8,), generator=g)) for _ in range(4)]
    assert _find(nn.Linear(4, 3), data, **kw).loss == expected


def test_the_loss_round_trips_set_and_unset(tmp_path: Path) -> None:
    # guard: set (with brackets and quotes) and unset, through to_json/from_json
    lrs = [10 ** (-4 + 4 * i / 29) for i in range(30)]
    losses = [2.0 - 1.5 * i / 20 if i < 20 else 0.5 + (i - 19) ** 2 for i in range(30)]
    for loss in ("loss_fn ([red]x \"q\")", None):
        r = FinderResult(lrs=lrs, losses=losses, loss=loss)
        assert FinderResult.from_json(r.to_json(tmp_path / "r.json")).loss == loss


_TASK = _LOSSUSED_TASK + """class _Loss:
    def __call__(self, out, target):
        return torch.nn.functional.cross_entropy(out, target)
loss_fn = type("[red]x", (_Loss,), {})()
"""


def test_lrkit_find_prints_a_loss_name_in_brackets_as_it_is(tmp_path: Path) -> None:
    # guard: a class named "[red]x" is text in the table, not rich markup
    task = tmp_path / "task.py"
    task.write_text(_TASK)
    res = CliRunner().invoke(build_app(), ["find", str(task), "--num-steps", "20", "--end-lr", "1", "--out",
                                           str(tmp_path / "o")], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "o" / "lr_find.json").read_text())["loss"] == "loss_fn ([red]x)"
    rows = [" ".join(re.sub(r"[│┃|]", " ", line).split()) for line in res.output.splitlines()]
    assert "loss loss_fn ([red]x)" in rows, res.output


# --- lrkit.train: the batch of a DataLoader the user passed --------------------------------------------------------
_X = torch.randn(320, 4, generator=torch.Generator().manual_seed(0))
_Y = (_X[:, 0] > 0).long()


class _WholeBatches(Dataset):
    """Five items, each a whole batch of 64 samples (a DataLoader over it takes batch_size=None)."""

    def __len__(self) -> int:
        return 5

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return _X[i * 64:(i + 1) * 64], _Y[i * 64:(i + 1) * 64]


def _train_log(capsys: pytest.CaptureFixture[str], tmp_path: Path, train: Any) -> str:
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lrkit.train(nn.Linear(4, 3), data=(train, TensorDataset(_X[:64], _Y[:64])), task="classification", epochs=1,
                    lr0=0.01, batch=32, project=str(tmp_path), plots=False, verbose=True)
    return capsys.readouterr().out


def _plan(out: str) -> tuple[int, int]:
    m = re.search(r"^lrkit\.train: \d+ epochs? x \d+ optimizer steps? \(batch (\d+), accumulate (\d+)", out, re.M)
    assert m is not None, out
    return int(m.group(1)), int(m.group(2))


def test_a_batch_sampler_sets_the_batch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    loader = DataLoader(TensorDataset(_X, _Y), batch_sampler=BatchSampler(SequentialSampler(range(320)), 64, False))
    out = _train_log(capsys, tmp_path, loader)
    assert _plan(out) == (64, 1)  # nbs=64: one batch of 64 per step
    assert "data: batch=64 comes from the batch_sampler of the DataLoader you passed (batch=32 ignored)" in out


def test_a_dataloader_of_whole_batches_reads_the_batch_from_its_first_item(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = _train_log(capsys, tmp_path, DataLoader(_WholeBatches(), batch_size=None))
    assert "larger than the 5 training samples" not in out  # the 5 are batches, not samples
    assert _plan(out) == (64, 1)
    assert "data: batch=64 comes from the DataLoader you passed" in out and "batch=32 ignored" in out


def test_a_batch_sampler_without_a_batch_size_keeps_batch_and_says_so(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    # a custom batch sampler: its batches' size cannot be read without drawing from it
    class Chunks:
        def __iter__(self) -> Any:
            return iter([list(range(i, i + 40)) for i in range(0, 320, 40)])

        def __len__(self) -> int:
            return 8

    out = _train_log(capsys, tmp_path, DataLoader(TensorDataset(_X, _Y), batch_sampler=Chunks()))
    assert _plan(out)[0] == 32
    assert "its batches' size is not known" in out and "batch=32" in out


def test_a_dataloader_with_a_batch_size_is_unchanged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # guard: the usual DataLoader, its batch above the split included
    out = _train_log(capsys, tmp_path, DataLoader(TensorDataset(_X[:10], _Y[:10]), batch_size=16))
    assert "data: batch=16 comes from the DataLoader you passed (batch=32 ignored)" in out
    assert "data: batch=16 is larger than the 10 training samples" in out
    assert _plan(out)[0] == 10
