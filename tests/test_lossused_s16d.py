"""The range test says which loss it used (session 16): ``FinderResult.loss``, decided at the first step, saved in
the record and shown by ``lrkit find``.

Each path of the loss choice (``_step.first_batch_loss``) has its own test: the caller's ``loss_fn`` or ``step_fn``,
the default loss (cross-entropy for integer or boolean targets, per position for token logits; MSE for float
targets; over a dict output's ``logits``), and a Hugging Face batch's own loss.
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from typer.testing import CliRunner

import lrkit
from _helpers import free_port
from lrkit import _step
from lrkit.cli.app import build_app
from lrkit.finder import FinderResult
from lrkit.train.auto import choose_lr0


def _find(model: nn.Module, data: list[Any], **kw: Any) -> FinderResult:
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (notes about a short or flat curve: not what these tests read)
        return lrkit.find_lr(model, opt, data, num_steps=kw.pop("num_steps", 12), end_lr=1.0, **kw)


def _class_data(dtype: torch.dtype = torch.int64, classes: int = 3) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(8, 4, generator=g), torch.randint(0, classes, (8,), generator=g).to(dtype))
            for _ in range(4)]


def _float_data() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(4):
        x = torch.randn(8, 4, generator=g)
        out.append((x, x.sum(1, keepdim=True)))
    return out


# -- the caller's loss --------------------------------------------------------------------------------------------
def test_loss_fn_is_named_by_its_function_name() -> None:
    r = _find(nn.Linear(4, 3), _class_data(), loss_fn=nn.functional.cross_entropy)
    assert r.loss == "loss_fn (cross_entropy)"


def test_loss_fn_module_is_named_by_its_class() -> None:
    r = _find(nn.Linear(4, 1), _float_data(), loss_fn=nn.MSELoss())
    assert r.loss == "loss_fn (MSELoss)"


def test_loss_fn_lambda_and_partial() -> None:
    assert _find(nn.Linear(4, 1), _float_data(), loss_fn=lambda o, y: ((o - y) ** 2).mean()).loss == \
        "loss_fn (<lambda>)"
    partial = functools.partial(nn.functional.smooth_l1_loss, beta=0.5)  # a partial has no __name__: its function's
    assert _find(nn.Linear(4, 1), _float_data(), loss_fn=partial).loss == "loss_fn (smooth_l1_loss)"


def test_loss_fn_is_the_callers_even_with_int_targets_and_a_dict_output() -> None:
    # the caller's loss_fn wins over every default reading (it gets the model's output as it is)
    class DictOut(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"logits": self.lin(x)}

    def my_loss(out: dict[str, torch.Tensor], y: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(out["logits"], y)

    assert _find(DictOut(), _class_data(), loss_fn=my_loss).loss == "loss_fn (my_loss)"


def test_step_fn_is_named() -> None:
    def my_step(model: nn.Module, batch: Any) -> torch.Tensor:
        x, y = batch
        return nn.functional.mse_loss(model(x), y)

    assert _find(nn.Linear(4, 1), _float_data(), step_fn=my_step).loss == "step_fn (my_step)"


def test_step_fn_module_instance_is_named_by_its_class() -> None:
    class Step:
        def __call__(self, model: nn.Module, batch: Any) -> torch.Tensor:
            return nn.functional.mse_loss(model(batch[0]), batch[1])

    assert _find(nn.Linear(4, 1), _float_data(), step_fn=Step()).loss == "step_fn (Step)"


# -- the default loss ----------------------------------------------------------------------------------------------
def test_default_integer_targets_are_cross_entropy() -> None:
    assert _find(nn.Linear(4, 3), _class_data()).loss == "default: cross-entropy (integer targets)"


def test_default_int32_targets_are_cross_entropy() -> None:
    assert _find(nn.Linear(4, 3), _class_data(torch.int32)).loss == "default: cross-entropy (integer targets)"


def test_default_boolean_targets_are_cross_entropy() -> None:
    r = _find(nn.Linear(4, 2), _class_data(torch.bool, classes=2))
    assert r.loss == "default: cross-entropy (boolean targets)"


def test_default_float_targets_are_mse() -> None:
    assert _find(nn.Linear(4, 1), _float_data()).loss == "default: MSE (float targets)"


def test_default_dict_batch_with_x_and_y_keys() -> None:
    data = [{"x": x, "y": y} for x, y in _class_data()]
    assert _find(nn.Linear(4, 3), data).loss == "default: cross-entropy (integer targets)"


class _LogitsOut(nn.Module):
    """A Hugging Face style output: a dict with ``logits`` (and another entry the default loss does not read)."""

    def __init__(self, n_out: int) -> None:
        super().__init__()
        self.lin = nn.Linear(4, n_out)

    def forward(self, x: torch.Tensor) -> dict[str, Any]:
        return {"logits": self.lin(x), "hidden_states": None}


def test_default_over_a_dict_outputs_logits_integer_targets() -> None:
    r = _find(_LogitsOut(3), _class_data())
    assert r.loss == "default: cross-entropy over the output's logits (integer targets)"


def test_default_over_a_dict_outputs_logits_float_targets() -> None:
    r = _find(_LogitsOut(1), _float_data())
    assert r.loss == "default: MSE over the output's logits (float targets)"


class _TinyLM(nn.Module):
    def __init__(self, vocab: int = 7) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, 8)
        self.head = nn.Linear(8, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.emb(ids))


def test_default_token_targets_are_cross_entropy_per_position() -> None:
    g = torch.Generator().manual_seed(0)
    ids = [torch.randint(0, 7, (4, 5), generator=g) for _ in range(4)]
    data = [(t, t.roll(-1, dims=1)) for t in ids]  # next-token targets: (B, T) against logits (B, T, V)
    assert _find(_TinyLM(), data).loss == "default: cross-entropy per position (integer targets)"


def test_default_token_targets_when_T_equals_V_as_the_loss_reads_them() -> None:
    # T == V: both readings fit the shapes; token-id inputs of the target's shape settle it (per position), and a
    # float input of another shape (an image (B, C, H, W) model's) reads classes in dim 1, as torch does
    g = torch.Generator().manual_seed(0)
    ids = [torch.randint(0, 7, (4, 7), generator=g) for _ in range(4)]
    assert _find(_TinyLM(), [(t, t.roll(-1, dims=1)) for t in ids]).loss == \
        "default: cross-entropy per position (integer targets)"

    class Seg(nn.Module):  # (B, 3, 3, 3) logits of 3 classes over 3x3 pixels against (B, 3, 3) targets
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(2, 3, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x)

    data = [(torch.randn(4, 2, 3, 3, generator=g), torch.randint(0, 3, (4, 3, 3), generator=g)) for _ in range(4)]
    assert _find(Seg(), data).loss == "default: cross-entropy (integer targets)"


def test_default_under_amp_and_with_accumulation() -> None:
    r = _find(nn.Linear(4, 1), _float_data(), amp="bf16", accumulation_steps=2)
    assert r.loss == "default: MSE (float targets)"


# -- a Hugging Face batch: the model's own loss ---------------------------------------------------------------------
class _HFLike(nn.Module):
    def __init__(self, as_tuple: bool = False) -> None:
        super().__init__()
        self.emb = nn.Embedding(7, 3)
        self.as_tuple = as_tuple

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None) -> Any:
        logits = self.emb(input_ids).mean(1)
        loss = nn.functional.cross_entropy(logits, labels)
        return (loss, logits) if self.as_tuple else {"loss": loss, "logits": logits}


def _hf_data() -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [{"input_ids": torch.randint(0, 7, (8, 5), generator=g), "labels": torch.randint(0, 3, (8,), generator=g)}
            for _ in range(4)]


def test_hugging_face_batch_uses_the_models_own_loss() -> None:
    assert _find(_HFLike(), _hf_data()).loss == "the model's own loss, from model(**batch)"


def test_hugging_face_tuple_output_is_the_models_own_loss_too() -> None:
    # return_dict=False: (loss, logits, ...), whose first item own_loss reads as the loss
    assert _find(_HFLike(as_tuple=True), _hf_data()).loss == "the model's own loss, from model(**batch)"


def test_hugging_face_batch_with_a_step_fn_is_the_step_fn() -> None:
    def hf_step(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return model(**batch)["loss"]

    assert _find(_HFLike(), _hf_data(), step_fn=hf_step).loss == "step_fn (hf_step)"


# -- decided once, at the first step ------------------------------------------------------------------------------
def test_the_choice_is_described_at_the_first_step_only(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = _step._loss_text

    def counting(*args: Any, **kwargs: Any) -> str:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(_step, "_loss_text", counting)
    r = _find(nn.Linear(4, 1), _float_data(), num_steps=20)
    assert len(r.lrs) > 2 and len(calls) == 1 and r.loss == "default: MSE (float targets)"


def test_the_per_step_batch_loss_is_unchanged() -> None:
    # the later steps run batch_loss bare: it still returns the loss tensor alone
    x, y = _float_data()[0]
    loss = _step.batch_loss(nn.Linear(4, 1), (x, y), None, None)
    assert isinstance(loss, torch.Tensor) and loss.numel() == 1


# -- the record ---------------------------------------------------------------------------------------------------
_LRS = [10 ** (-4 + 4 * i / 29) for i in range(30)]
_LOSSES = [2.0 - 1.5 * i / 20 if i < 20 else 0.5 + (i - 19) ** 2 for i in range(30)]


def test_record_round_trip_keeps_the_loss(tmp_path: Path) -> None:
    r = FinderResult(lrs=_LRS, losses=_LOSSES, loss="default: cross-entropy (integer targets)")
    assert r.to_dict()["loss"] == "default: cross-entropy (integer targets)"
    back = FinderResult.from_json(r.to_json(tmp_path / "lr_find.json"))
    assert back.loss == r.loss


def test_a_record_without_the_loss_loads_with_none(tmp_path: Path) -> None:
    d = FinderResult(lrs=_LRS, losses=_LOSSES, loss="loss_fn (mse_loss)").to_dict()
    del d["loss"]  # written before the field existed
    path = tmp_path / "old.json"
    path.write_text(json.dumps(d))
    assert FinderResult.from_json(path).loss is None
    assert FinderResult(lrs=_LRS, losses=_LOSSES).to_dict()["loss"] is None


@pytest.mark.parametrize("bad", [3, ["mse"], {"name": "mse"}, True])
def test_a_bad_loss_is_named(tmp_path: Path, bad: Any) -> None:
    with pytest.raises(ValueError, match=r"^loss=.*a string"):
        FinderResult(lrs=_LRS, losses=_LOSSES, loss=bad)
    d = FinderResult(lrs=_LRS, losses=_LOSSES).to_dict()
    d["loss"] = bad
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(d))
    with pytest.raises(ValueError, match=r"^loss="):
        FinderResult.from_json(path)


def test_find_lr_writes_the_loss_into_its_record(tmp_path: Path) -> None:
    r = _find(nn.Linear(4, 3), _class_data())
    record = json.loads(r.to_json(tmp_path / "lr_find.json").read_text())
    assert record["loss"] == "default: cross-entropy (integer targets)"


# -- lr0="auto" ----------------------------------------------------------------------------------------------------
def _constant(opt: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)


@pytest.mark.parametrize("loss_fn, expected", [(None, "default: MSE (float targets)"),
                                               (nn.functional.mse_loss, "loss_fn (mse_loss)")])
def test_lr0_auto_keeps_the_finders_loss(loss_fn: Any, expected: str) -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = _float_data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        auto = choose_lr0(model, opt, data, data[:1], total_steps=100, make_scheduler=_constant, loss_fn=loss_fn,
                          log=lambda line: None)
    assert auto.finder is not None and auto.finder.loss == expected


# -- lrkit find ----------------------------------------------------------------------------------------------------
_TASK = """import torch
torch.manual_seed(0)
X = torch.randn(64, 4)
y = torch.randint(0, 3, (64,))
def model():
    torch.manual_seed(0)
    return torch.nn.Linear(4, 3)
def optimizer(params):
    return torch.optim.SGD(params, lr=0.1)
def train_loader():
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=16)
"""


@pytest.mark.parametrize("extra, expected", [
    ("", "default: cross-entropy (integer targets)"),  # a task file with neither loss_fn nor step_fn
    ("loss_fn = torch.nn.functional.cross_entropy\n", "loss_fn (cross_entropy)"),
    ("def step_fn(model, batch):\n    return torch.nn.functional.cross_entropy(model(batch[0]), batch[1])\n",
     "step_fn (step_fn)"),
])
def test_lrkit_find_shows_the_loss_and_records_it(tmp_path: Path, extra: str, expected: str) -> None:
    task = tmp_path / "my_task.py"
    task.write_text(_TASK + extra)
    res = CliRunner().invoke(build_app(), ["find", str(task), "--num-steps", "30", "--end-lr", "1", "--out",
                                           str(tmp_path / "o")], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    record = json.loads((tmp_path / "o" / "lr_find.json").read_text())
    assert record["loss"] == expected
    rows = [" ".join(re.sub(r"[│┃|]", " ", line).split()) for line in res.output.splitlines()]
    assert f"loss {expected}" in rows, res.output


# -- torch.distributed -------------------------------------------------------------------------------------------
def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=60))
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(rank)
    data = [(torch.randn(8, 4, generator=g), torch.randint(0, 3, (8,), generator=g)) for _ in range(4)]
    r = lrkit.find_lr(model, opt, data, num_steps=12, end_lr=1.0)
    Path(out, f"rank{rank}.txt").write_text(str(r.loss))
    # Leave without the process group's teardown: under load, on torch 2.4.1, a rank of this test hung for minutes
    # (tools/compat.sh, session 16; not reproduced in 7 runs alone), and the teardown is where the one-rank test's
    # rank 0 aborted (tests/finder/test_dist_one_rank_s10.py). find_lr's last collective is over on both ranks here.
    os._exit(0)


@pytest.mark.skipif(not dist.is_available() or sys.platform == "win32", reason="needs torch.distributed with gloo")
def test_distributed_ranks_each_say_which_loss(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        assert (tmp_path / f"rank{rank}.txt").read_text() == "default: cross-entropy (integer targets)"
