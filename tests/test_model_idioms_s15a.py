"""Hunt s15a: lrkit's entry points (``find_lr``, ``choose_lr0``, ``lrkit.train``, ``lrkit.Monitor``) on model idioms
practitioners write — lazy modules, parametrizations, tied weights, recurrent models, tuple outputs, models that
compute their own loss, complex and float64 parameters, sparse embeddings.

Tests marked "Bug:" failed before their fix.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lrkit
from _helpers import assert_same, finder_state
from lrkit.train.auto import choose_lr0


def _loader(n: int = 64) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    return DataLoader(TensorDataset(x, y), batch_size=8)


def _flat(optimizer: torch.optim.Optimizer, steps: int) -> Any:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: 1.0)


def _lazy_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.LazyLinear(8), nn.ReLU(), nn.LazyLinear(3))


def test_choose_lr0_on_uninitialized_lazy_modules_is_a_clear_error() -> None:
    # Bug: choose_lr0 snapshotted the model before anything checked it, and torch's UninitializedParameter raised
    # from deep inside the snapshot ("Attempted to use an uninitialized parameter in <method 'detach' ...>");
    # find_lr already named the fix
    model = _lazy_net()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with pytest.raises(ValueError, match=r"uninitialized lazy parameters.*run one forward pass.*choose_lr0"):
        choose_lr0(model, opt, _loader(), _loader(), total_steps=60, make_scheduler=_flat)
    # the advice works: one forward pass, and the optimizer built before it still holds the (now real) parameters
    model(torch.zeros(1, 4))
    before = finder_state(model, opt)
    auto = choose_lr0(model, opt, _loader(), _loader(), total_steps=60, make_scheduler=_flat)
    assert auto.lr > 0
    assert_same(before, finder_state(model, opt))


@pytest.mark.parametrize("swap", ["optimizer_first", "optimizer_class", "parameters"])
def test_choose_lr0_names_bad_positional_arguments(swap: str) -> None:
    # Bug: choose_lr0(optimizer, model, ...) and choose_lr0(model, torch.optim.Adam, ...) were AttributeErrors from
    # inside lrkit ("'Adam' object has no attribute 'parameters'"); find_lr names them, and so does choose_lr0 now
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    args: tuple[Any, ...] = {
        "optimizer_first": (opt, model),
        "optimizer_class": (model, torch.optim.Adam),
        "parameters": (model, list(model.parameters())),
    }[swap]
    words = {"optimizer_first": r"model is an Adam, not a torch.nn.Module.*choose_lr0\(model, optimizer",
             "optimizer_class": r"optimizer is the class torch.optim.adam.Adam, not an instance",
             "parameters": r"optimizer is a list, not an optimizer \(model.parameters\(\)\?\)"}[swap]
    with pytest.raises(ValueError, match=words):
        choose_lr0(*args, _loader(), _loader(), total_steps=60, make_scheduler=_flat)


# --- packed sequences and named-tuple inputs through lrkit.train ---------------------------------------------------


def _seqs(n: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(2, 9, (n,), generator=g)
    seqs = [torch.randn(int(k), 3, generator=g) for k in lengths]
    return seqs, torch.tensor([int(s.sum() > 0) for s in seqs])


class _SeqDataset(torch.utils.data.Dataset):
    def __init__(self, seqs: list[torch.Tensor], ys: torch.Tensor) -> None:
        self.seqs, self.ys = seqs, ys

    def __len__(self) -> int:
        return len(self.seqs)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.seqs[i], self.ys[i]


def _pack(items: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[Any, torch.Tensor]:
    """The usual variable-length collate: pad, then pack (``enforce_sorted=False``)."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_sequence

    xs, ys = zip(*items)
    lengths = torch.tensor([len(x) for x in xs])
    packed = pack_padded_sequence(pad_sequence(list(xs), batch_first=True), lengths, batch_first=True,
                                  enforce_sorted=False)
    return packed, torch.stack(ys)


class _PackedGRU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.rnn = nn.GRU(3, 8, batch_first=True)
        self.fc = nn.Linear(8, 2)

    def forward(self, packed: Any) -> torch.Tensor:
        _, h = self.rnn(packed)
        return self.fc(h[-1])


def _packed_loaders(dtype: torch.dtype = torch.float32) -> tuple[DataLoader, DataLoader]:
    seqs, ys = _seqs(80)
    seqs = [s.to(dtype) for s in seqs]
    return (DataLoader(_SeqDataset(seqs[:64], ys[:64]), batch_size=8, collate_fn=_pack),
            DataLoader(_SeqDataset(seqs[64:], ys[64:]), batch_size=5, collate_fn=_pack))


def test_train_on_packed_sequences_scores_the_per_sequence_mean(tmp_path: Any) -> None:
    # Bug: lrkit.train rebuilt the input PackedSequence (a named tuple) with type(x)(generator), torch's
    # "AssertionError: Expected data to be a list or tuple of length 2" before the first step; and a packed
    # batch's size was read as its number of time steps (packed.data's rows), not its number of sequences, so the
    # validation loss weighted each batch by its total length
    train_loader, val_loader = _packed_loaders()
    r = lrkit.train(_PackedGRU(), data=(train_loader, val_loader), epochs=2, lr0=0.01, nbs=8, project=tmp_path,
                    verbose=False, plots=False)
    assert r.steps_per_epoch == 8 and len(r.history) == 2
    # the known answer: the mean cross-entropy over the 16 validation sequences, with the trained model
    model = r.model.eval()
    with torch.no_grad():
        losses = [nn.functional.cross_entropy(model(x), y, reduction="sum") for x, y in val_loader]
    expected = float(sum(losses)) / 16
    assert r.final_val_loss == pytest.approx(expected, rel=1e-5)


def test_train_casts_packed_float64_sequences_for_a_float32_model(tmp_path: Any) -> None:
    # float64 sequences (numpy's default) reach a float32 GRU cast, as a plain float64 batch is, and train
    r = lrkit.train(_PackedGRU(), data=_packed_loaders(torch.float64), epochs=1, lr0=0.01, project=tmp_path,
                    verbose=False, plots=False)
    assert r.final_val_loss == r.final_val_loss  # finite, not NaN


def test_move_to_keeps_a_packed_sequence_s_batch_sizes_on_the_cpu() -> None:
    # Bug: moving a batch to the model's device rebuilt a PackedSequence field by field, batch_sizes included, and
    # torch refuses a PackedSequence whose batch_sizes left the CPU ("batch_sizes should always be on CPU"): every
    # packed batch on a GPU failed in find_lr, choose_lr0 and lrkit.train. PackedSequence.to() moves the data and
    # the indices and keeps batch_sizes where torch needs it. (The "meta" device stands in for "cuda" here.)
    from torch.nn.utils.rnn import PackedSequence

    from lrkit._step import batch_size, move_to

    packed, y = next(iter(_packed_loaders()[0]))
    moved, y_moved = move_to((packed, y), torch.device("meta"))
    assert isinstance(moved, PackedSequence)
    assert moved.data.device.type == "meta" and moved.unsorted_indices.device.type == "meta"
    assert moved.batch_sizes.device.type == "cpu" and torch.equal(moved.batch_sizes, packed.batch_sizes)
    assert y_moved.device.type == "meta"
    assert move_to((packed, y), torch.device("cpu"))[0] is packed  # already there: the same object
    assert batch_size((packed, y)) == 8  # sequences, not time steps (packed.data has more rows)
    assert packed.data.shape[0] > 8


def test_train_with_named_tuple_inputs(tmp_path: Any) -> None:
    # Bug: a collate_fn returning (Inputs(a=..., b=...), y) — a named tuple of inputs — failed in lrkit.train's
    # input cast with "Pair.__new__() missing 1 required positional argument: 'b'"
    from collections import namedtuple

    pair = namedtuple("pair", "a b")
    g = torch.Generator().manual_seed(0)
    xa, xb = torch.randn(80, 4, generator=g, dtype=torch.float64), torch.randn(80, 4, generator=g)
    y = (xa[:, 0] + xb[:, 1] > 0).long()

    def collate(items: list[tuple[torch.Tensor, ...]]) -> tuple[Any, torch.Tensor]:
        a, b, t = zip(*items)
        return pair(torch.stack(a), torch.stack(b)), torch.stack(t)

    class TwoInputs(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(8, 2)

        def forward(self, p: Any) -> torch.Tensor:
            assert type(p) is pair and p.a.dtype == torch.float32  # cast like any float64 input, type kept
            return self.fc(torch.cat([p.a, p.b], 1))

    ds = TensorDataset(xa, xb, y)
    loaders = (DataLoader(torch.utils.data.Subset(ds, range(64)), batch_size=8, collate_fn=collate),
               DataLoader(torch.utils.data.Subset(ds, range(64, 80)), batch_size=8, collate_fn=collate))
    r = lrkit.train(TwoInputs(), data=loaders, epochs=1, lr0=0.01, task="classification", project=tmp_path,
                    verbose=False, plots=False)
    assert len(r.history) == 1 and r.final_val_loss == r.final_val_loss


# --- a model with auxiliary logits in train mode only (torchvision's Inception v3 / GoogLeNet) ----------------------


class _AuxLogits(nn.Module):
    """torchvision's Inception v3 shape: ``InceptionOutputs(logits, aux_logits)`` (a named tuple) while training,
    the logits alone in eval mode."""

    def __init__(self) -> None:
        super().__init__()
        from collections import namedtuple

        torch.manual_seed(0)
        self.outputs = namedtuple("InceptionOutputs", ["logits", "aux_logits"])
        self.body, self.fc, self.aux = nn.Linear(4, 16), nn.Linear(16, 3), nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> Any:
        h = torch.relu(self.body(x))
        return self.outputs(self.fc(h), self.aux(h)) if self.training else self.fc(h)


def _cls_data(n: int) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    return TensorDataset(x, (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long())


@pytest.mark.parametrize("lr0", [0.01, "auto"])
def test_train_names_aux_logits_returned_only_in_train_mode(tmp_path: Any, lr0: Any) -> None:
    # Bug: lrkit.train checks the model's output on a validation batch in eval mode, where such a model returns a
    # tensor; the first training step then failed inside the default loss with "AttributeError: 'InceptionOutputs'
    # object has no attribute 'float'". It is now the error a tuple output gets, saying it came while training,
    # raised before any run directory is left behind
    with pytest.raises(ValueError, match=r"returned an InceptionOutputs while training.*loss_fn=") as e:
        lrkit.train(_AuxLogits(), data=_cls_data(640), epochs=3, lr0=lr0, batch=16, nbs=16, project=tmp_path,
                    name="run", verbose=False, plots=False)
    assert "out[0]" in str(e.value) and "aux_logits" in str(e.value)
    assert not (tmp_path / "run").exists()


def test_train_with_a_loss_fn_for_aux_logits_scores_accuracy_in_eval_mode(tmp_path: Any) -> None:
    # the way out the message gives: a loss_fn that reads both heads while training; validation (eval mode, a tensor
    # of logits) still scores the accuracy
    def loss_fn(out: Any, y: torch.Tensor) -> torch.Tensor:
        if isinstance(out, tuple):
            return nn.functional.cross_entropy(out[0], y) + 0.4 * nn.functional.cross_entropy(out[1], y)
        return nn.functional.cross_entropy(out, y)

    r = lrkit.train(_AuxLogits(), data=_cls_data(160), epochs=1, lr0=0.01, loss_fn=loss_fn, project=tmp_path,
                    verbose=False, plots=False)
    assert r.metric_name == "accuracy" and 0 <= r.final_metric <= 1


def test_freeze_layers_and_param_groups_freeze_on_a_lazy_model_before_its_first_forward() -> None:
    # Bug: freeze_layers (and param_groups(freeze=...)) on a lazy model built but not yet run failed inside torch,
    # "Attempted to use an uninitialized parameter in <method 'requires_grad_' ...>", while param_groups without
    # freeze worked there; the flag is now set as an attribute, which an UninitializedParameter keeps when the first
    # forward pass materializes it
    from lrkit.scaling import freeze_layers, param_groups

    model = _lazy_net()
    assert freeze_layers(model, 1) == ["0.weight", "0.bias"]
    model(torch.zeros(2, 4))
    assert [p.requires_grad for p in model.parameters()] == [False, False, True, True]
    assert model[0].weight.shape == (8, 4)

    model = _lazy_net()
    opt = torch.optim.SGD(param_groups(model, 0.1, freeze=1), lr=0.1)
    model(torch.zeros(2, 4))
    assert [p.requires_grad for p in model.parameters()] == [False, False, True, True]
    held = [p for g in opt.param_groups for p in g["params"]]
    assert [id(p) for p in held] == [id(model[2].weight), id(model[2].bias)]
