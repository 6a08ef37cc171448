"""Review s15e of session 15's changes: Hugging Face batches with the model's own loss, ``move_to`` on objects with
their own ``.to(device)``, the monitor's Rprop/ASGD back-off and its rebuilt-optimizer warning."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

import lrkit
from _helpers import SharedStateWrapper
from _helpers import tiny_loss as _loss
from _helpers import tiny_model as _model
from lrkit._step import batch_loss, move_to
from lrkit.monitor import backoff_lr

CPU = torch.device("cpu")


# ---------------------------------------------------------------------------------------------------------------
# move_to: a batch class whose .to(device) moves it in place and returns nothing


class _InPlaceBatch:
    """A user's batch class whose ``to()`` moves its tensors in place and returns ``None`` (as ``nn.Module.to`` is
    often imitated: ``def to(self, device): self.x = self.x.to(device)``)."""

    def __init__(self) -> None:
        self.x = torch.ones(4, 2)
        self.y = torch.zeros(4)
        self.moved_to: list[torch.device] = []

    def to(self, device: torch.device) -> None:
        self.x, self.y = self.x.to(device), self.y.to(device)
        self.moved_to.append(device)


def test_move_to_keeps_a_batch_whose_to_moves_it_in_place_and_returns_none() -> None:
    """Bug: ``move_to`` returned what ``batch.to(device)`` returned: for a batch class whose ``to()`` moves its
    tensors in place and returns ``None``, the batch became ``None`` and a ``step_fn`` was handed ``None`` (before
    session 15's change it got the batch, unmoved). The object itself is the moved batch."""
    batch = _InPlaceBatch()
    assert move_to(batch, CPU) is batch and batch.moved_to == [CPU]
    assert move_to((batch, torch.ones(1)), CPU)[0] is batch
    seen: list[Any] = []

    def step_fn(model: nn.Module, b: Any) -> torch.Tensor:
        seen.append(b)
        return nn.functional.mse_loss(model(b.x).squeeze(-1), b.y)

    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    lrkit.find_lr(model, opt, [_InPlaceBatch() for _ in range(12)], step_fn=step_fn, num_steps=10)
    assert seen and all(isinstance(b, _InPlaceBatch) for b in seen)


# ---------------------------------------------------------------------------------------------------------------
# own_loss: a Hugging Face model with return_dict=False returns a tuple (loss, logits, ...)


class _TupleHF(nn.Module):
    """A Hugging Face-like classifier built with ``return_dict=False`` (or ``torchscript=True``): with ``labels`` it
    returns the tuple ``(loss, logits)``, as ``transformers`` models do."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(30, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        logits = self.head(self.emb(input_ids).mean(1))
        if labels is None:
            return (logits,)
        return nn.functional.cross_entropy(logits, labels), logits


def _hf_batch(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 30, (8, 5), generator=g)
    return {"input_ids": ids, "labels": ids[:, 0] % 3}


def test_a_return_dict_false_tuple_gives_its_first_item_as_the_loss_as_the_hf_trainer_reads_it() -> None:
    """Bug: ``model(**batch)`` of a Hugging Face model with ``return_dict=False`` (``torchscript=True`` sets it)
    returns a tuple ``(loss, logits, ...)``; lrkit said "its output (a tuple) has no 'loss' tensor", though it
    documents reading the loss "as Hugging Face's Trainer does" — and the Trainer reads ``outputs[0]`` of a tuple.
    A tuple whose first item is a scalar tensor gives that loss now; one whose first item is not a scalar (a
    model's logits) is still the clear error."""
    model = _TupleHF()
    batch = _hf_batch()
    loss = batch_loss(model, batch, None, None)
    assert torch.equal(loss, model(**batch)[0])
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with warnings.catch_warnings():  # (the curve's shape on 20 random batches is not the point)
        warnings.simplefilter("ignore", UserWarning)
        r = lrkit.find_lr(model, opt, [_hf_batch(i) for i in range(20)], start_lr=1e-3, end_lr=10.0, num_steps=20)
    with torch.no_grad():
        first = float(model(**_hf_batch(0))[0])
    assert len(r.losses) >= 10 and r.losses[0] == first

    class LogitsOnly(_TupleHF):
        def forward(self, input_ids: torch.Tensor, labels: Any = None) -> tuple[torch.Tensor, ...]:
            return (self.head(self.emb(input_ids).mean(1)),)

    try:
        batch_loss(LogitsOnly(), batch, None, None)
    except ValueError as e:
        assert "has no 'loss' tensor" in str(e) and "a tuple" in str(e)
    else:  # pragma: no cover - the assertion's message
        raise AssertionError("a tuple of logits was read as a loss")


# ---------------------------------------------------------------------------------------------------------------
# backoff_lr: Rprop's step_size under an accelerate-style wrapper that shares its optimizer's state



def test_backoff_scales_rprop_step_sizes_and_asgd_eta_behind_a_shared_state_wrapper() -> None:
    """Bug: the back-off scales Rprop's per-parameter ``step_size`` (and ASGD's ``eta``) in the optimizers
    ``inner_optimizers`` lists — which leaves out a wrapper's optimizer that shares the wrapper's ``state``
    (accelerate's ``AcceleratedOptimizer``): the monitor given ``accelerator.prepare(Rprop(...))`` lowered the lr that
    Rprop never reads again, and its steps stayed as large. They are scaled once, as for a bare Rprop."""
    for make, key in ((lambda p: torch.optim.Rprop(p, lr=0.01), "step_size"),
                      (lambda p: torch.optim.ASGD(p, lr=0.01), "eta")):
        model = _model()
        inner = make(model.parameters())
        _loss(model).backward()
        inner.step()
        before = [inner.state[p][key].clone() for p in model.parameters()]
        backoff_lr(SharedStateWrapper(inner), None, 0.5)
        after = [inner.state[p][key] for p in model.parameters()]
        assert all(torch.allclose(a, b * 0.5) for a, b in zip(after, before)), (key, before, after)


# ---------------------------------------------------------------------------------------------------------------
# the rebuilt-optimizer warning: a step skipped by the loop, with a projection of the weights after it


# (the projection case, a sampled step skipped by the loop with w / ||w|| after each step, is tested in every floating
# dtype in tests/test_review_s15h.py: test_a_skipped_step_with_a_projection_is_still_not_another_optimizer_...)


# ---------------------------------------------------------------------------------------------------------------
# lrkit.train's plan line for Hugging Face batches


def test_train_log_names_the_models_own_loss_not_a_custom_step_fn_for_hf_batches(
        tmp_path: Any, capsys: Any) -> None:
    """Bug: ``lrkit.train`` on Hugging Face dict samples with no ``step_fn`` logged its plan as "(custom step_fn,
    ...)", though the user passed none: lrkit's own ``model(**batch).loss`` is meant. The line says so now."""

    class Samples(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 32

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            ids = torch.tensor([i % 30, (i * 7) % 30, 1, 2, 3])
            return {"input_ids": ids, "labels": ids[0] % 3}

    lrkit.train(_TupleHF(), data=(Samples(), Samples()), epochs=1, batch=8, lr0=0.05, optimizer="SGD", seed=0,
                project=tmp_path, name="hf", verbose=True, plots=False)
    out = capsys.readouterr().out
    assert "custom step_fn" not in out and "the model's own loss" in out
