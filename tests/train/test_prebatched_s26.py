"""A pre-batched DataLoader (batch_size=None) is read by its first batch's first row (session 26).

Its dataset's items are whole batches. lrkit used to read the first batch as one sample, so it could neither tell the
task (an integer target of shape (16,) is not a class index) nor size a built-in model; it now reads the task, the
input shape and the number of outputs from the first row of the first batch.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import lrkit


class _Batches(Dataset):
    """``n`` ready-made batches of 16 samples; ``kind`` picks the target."""

    def __init__(self, kind: str, n: int = 6) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 16, 4, generator=g)
        if kind == "classification":
            self.y = torch.randint(0, 3, (n, 16), generator=g)
        elif kind == "regression":
            self.y = torch.randn(n, 16, 2, generator=g)
        elif kind == "lm":
            self.x = torch.randint(0, 7, (n, 16, 8), generator=g)
            self.y = torch.randint(0, 7, (n, 16, 8), generator=g)
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]


def _pair(kind: str) -> tuple[DataLoader, DataLoader]:
    return DataLoader(_Batches(kind), batch_size=None), DataLoader(_Batches(kind, 2), batch_size=None)


@pytest.mark.parametrize(("kind", "outputs"), [("classification", 3), ("regression", 2)])
def test_prebatched_pairs_tell_their_task_and_size_a_builtin_model(tmp_path: Path, kind: str, outputs: int) -> None:
    r = lrkit.train("mlp", data=_pair(kind), epochs=1, verbose=False, plots=False, project=tmp_path)
    assert r.task == kind
    linears = [m for m in r.model.modules() if isinstance(m, torch.nn.Linear)]
    assert linears[0].in_features == 4  # one sample's features, not a batch's 16 x 4
    assert linears[-1].out_features == outputs
    assert r.epochs_run == 1


def test_prebatched_token_batches_read_as_lm(tmp_path: Path) -> None:
    r = lrkit.train("charlm", data=_pair("lm"), epochs=1, verbose=False, plots=False, project=tmp_path)
    assert r.task == "lm"
    emb = [m for m in r.model.modules() if isinstance(m, torch.nn.Embedding)]
    vocab = 1 + int(max(_Batches("lm").x.max(), _Batches("lm").y.max(), _Batches("lm", 2).x.max()))
    assert emb[0].num_embeddings == vocab
    assert r.epochs_run == 1


def test_prebatched_regression_on_integer_targets_counts_one_row(tmp_path: Path) -> None:
    r = lrkit.train("mlp", data=_pair("classification"), task="regression", epochs=1, verbose=False, plots=False,
                    project=tmp_path)
    assert r.task == "regression"
    last = [m for m in r.model.modules() if isinstance(m, torch.nn.Linear)][-1]
    assert last.out_features == 1  # one value per sample, not 16 (a whole batch's targets)
