"""Compatibility hunt (session 8): user models and optimizers the public entry points must take, or refuse clearly.

Each test compares against a known answer: a dense twin of a sparse model (same weights, same maths, so the same
losses), torch's own clipping rule, or the state before the call, bit for bit.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import pytest
import torch
from torch import nn

import lrkit


class _Bag(nn.Module):
    """An embedding (sparse or dense gradients) and a linear head: the usual sparse-embedding classifier."""

    def __init__(self, sparse: bool) -> None:
        super().__init__()
        self.emb = nn.Embedding(30, 6, sparse=sparse)
        self.head = nn.Linear(6, 3)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.emb(tokens).mean(1))


def _twins() -> tuple[_Bag, _Bag]:
    torch.manual_seed(0)
    sparse = _Bag(sparse=True)
    dense = _Bag(sparse=False)
    dense.load_state_dict(sparse.state_dict())
    return sparse, dense


def _token_data() -> tuple[torch.utils.data.Dataset, torch.utils.data.Dataset]:
    batches = _token_batches(n=6)
    tokens = torch.cat([b[0] for b in batches])
    labels = torch.cat([b[1] for b in batches])
    ds = torch.utils.data.TensorDataset
    return ds(tokens[:64], labels[:64]), ds(tokens[64:], labels[64:])


def _token_batches(n: int = 4, size: int = 16) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(3)
    tokens = torch.randint(0, 30, (n * size, 5), generator=g)
    labels = (tokens[:, 0] % 3).long()
    return [(tokens[i:i + size], labels[i:i + size]) for i in range(0, n * size, size)]


def _quiet_find_lr(*args: Any, **kwargs: Any) -> lrkit.FinderResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lrkit.find_lr(*args, **kwargs)


# ---------------------------------------------------------------------------------------------- sparse gradients
def test_find_lr_clips_sparse_gradients_as_it_clips_a_dense_twin() -> None:
    """``max_grad_norm`` with an ``nn.Embedding(sparse=True)``: torch's ``clip_grad_norm_`` cannot norm a sparse
    gradient (NotImplementedError from ``linalg_vector_norm``); the range test clips it by the same rule, so its
    curve is the dense twin's, and differs from the unclipped curve (the clipping really acts)."""
    batches = _token_batches()
    curves = {}
    for clip in (0.05, None):
        for name, model in zip(("sparse", "dense"), _twins()):
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            before = copy.deepcopy(model.state_dict())
            r = _quiet_find_lr(model, opt, batches, start_lr=1e-2, end_lr=30.0, num_steps=15, max_grad_norm=clip)
            curves[name, clip] = r.losses
            for k, v in model.state_dict().items():
                assert torch.equal(v, before[k]), k
    assert len(curves["sparse", 0.05]) == len(curves["dense", 0.05]) >= 10
    torch.testing.assert_close(torch.tensor(curves["sparse", 0.05]), torch.tensor(curves["dense", 0.05]))
    torch.testing.assert_close(torch.tensor(curves["sparse", None]), torch.tensor(curves["dense", None]))
    n = min(len(curves["sparse", 0.05]), len(curves["sparse", None]))
    assert curves["sparse", 0.05][:n] != curves["sparse", None][:n]


def test_train_runs_a_model_with_a_sparse_embedding_as_its_dense_twin(tmp_path: Any) -> None:
    """``lrkit.train(model=<sparse-embedding model>, optimizer="SGD", weight_decay=0)``: the trainer's gradient-norm
    log used ``linalg_vector_norm``, which refuses sparse tensors; the run now matches the dense twin's losses."""
    data = _token_data()
    rows = {}
    for name, model in zip(("sparse", "dense"), _twins()):
        r = lrkit.train(model=model, data=data, epochs=2, batch=16, lr0=0.05, optimizer="SGD", weight_decay=0.0,
                        project=str(tmp_path), name=name, verbose=False, plots=False)
        rows[name] = [(h["train_loss"], h["val_loss"]) for h in r.history]
    assert len(rows["sparse"]) == 2
    torch.testing.assert_close(torch.tensor(rows["sparse"]), torch.tensor(rows["dense"]))


@pytest.mark.parametrize(("optimizer", "weight_decay", "torch_words"), [
    ("AdamW", 5e-4, "does not support sparse gradients"),  # optimizer="auto" picks AdamW for a run this short
    ("SGD", 5e-4, "add(sparse, dense)"),  # torch's SGD cannot add weight decay to a sparse gradient
])
def test_train_names_the_sparse_embedding_an_optimizer_cannot_step(tmp_path: Any, optimizer: str,
                                                                  weight_decay: float, torch_words: str) -> None:
    """A registry optimizer that refuses sparse gradients raised torch's bare RuntimeError (no parameter named, and
    a hint to SparseAdam, which lrkit.train refuses); now a ValueError naming the parameter and what works."""
    model, _ = _twins()
    with pytest.raises(ValueError, match=r"sparse gradients of \['emb.weight'\]") as info:
        lrkit.train(model=model, data=_token_data(), epochs=1, batch=16, lr0=0.05, optimizer=optimizer,
                    weight_decay=weight_decay, project=str(tmp_path), verbose=False, plots=False)
    assert torch_words in str(info.value) and "weight_decay=0" in str(info.value)


# ------------------------------------------------------------------------------------------- outputs and inputs
class _Outputs(nn.Module):
    """A linear model whose ``forward`` returns its logits wrapped as ``kind`` (a tuple with an extra, a dict, ...)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.lin = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> Any:
        out = self.lin(x)
        # (a dict WITH a "logits" tensor is read by the default loss since session 14a: tests/test_dict_outputs_s14a.py)
        return {"tuple": (out, out.mean()), "list": [out], "dict": {"hidden": out}}[self.kind]


@pytest.mark.parametrize("kind", ["tuple", "list", "dict"])
def test_find_lr_default_loss_names_a_model_output_that_is_not_a_tensor(kind: str) -> None:
    """The default loss on a model returning a tuple/list/dict raised ``AttributeError: 'tuple' object has no
    attribute 'ndim'`` from deep inside the default loss; now a ValueError naming the output's type and the way out
    (loss_fn=/step_fn=), with the model left as it was."""
    torch.manual_seed(0)
    model = _Outputs(kind)
    before = copy.deepcopy(model.state_dict())
    x = torch.randn(32, 4)
    batches = [(x[:16], torch.randint(0, 3, (16,))), (x[16:], torch.randint(0, 3, (16,)))]
    with pytest.raises(ValueError, match=rf"returned a {kind}.*step_fn="):
        lrkit.find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), batches, num_steps=10)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_find_lr_reads_a_maximize_optimizer_curve_as_the_minimize_one() -> None:
    """``SGD(maximize=True)`` ascending ``-CE`` is plain SGD descending ``CE``: the same steps, so the recorded curve
    (the quantity lowered, ``-(-CE)``) and the suggestion are exactly the minimising run's."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 6, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    batches = [(x[i:i + 32], y[i:i + 32]) for i in range(0, 128, 32)]
    results = []
    for maximize in (False, True):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 2))
        opt = torch.optim.SGD(model.parameters(), lr=0.1, maximize=maximize)
        sign = -1.0 if maximize else 1.0
        results.append(_quiet_find_lr(model, opt, batches, num_steps=30, step_fn=lambda m, b, s=sign: s * (
            nn.functional.cross_entropy(m(b[0]), b[1]))))
    assert results[0].losses == results[1].losses and results[0].suggestion == results[1].suggestion
