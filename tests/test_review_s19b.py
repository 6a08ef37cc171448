"""Review of session 19 (19b): the own-model walkthrough's new checks and ``load_run.predict``'s score reading.

- a multi-label run of probabilities (a model ending in ``nn.Sigmoid`` trained with ``BCELoss``) was scored at 0.5
  per label in training, but ``predict`` read its labels above 0: every label of every sample came out 1;
- a binary classifier whose forward ends in ``.squeeze()`` gives a 0-dim score for one sample: ``predict`` of one
  sample raised torch's ``TypeError: len() of a 0-d tensor``;
- ``val=`` given as a 0-dim array or tensor (a fraction, as before) was refused as "a validation set";
- the nn.Flatten hint told a CNN that already flattens (its head's ``nn.Linear`` has the wrong size) to add
  ``nn.Flatten()``;
- the warmup-equals-run note named ``lr0=None`` when lr0 was the optimizer's default;
- ``lrkit predict`` read a headerless first row ``0,1`` (two 0/1 features) as pandas' column numbers and dropped it;
- a CSV/built-in run whose model is float64 could not ``predict``: its standardised inputs were always float32.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import lrkit
from lrkit.cli.predict import predict_file


def _train(project: Path, **kw: Any) -> Path:
    kw = {"epochs": 1, "verbose": False, "plots": False, "seed": 0, **kw}
    return lrkit.train(project=str(project), **kw).run_dir


def _x(n: int = 200) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 4, generator=g)


def test_multi_label_probabilities_predict_at_one_half(tmp_path: Path) -> None:
    x = _x()
    y = torch.stack([x[:, 0] > 0, x[:, 1] > 0, x[:, 2] > 0], 1).float()

    def net() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(4, 3), nn.Sigmoid())

    run_dir = _train(tmp_path, data=(TensorDataset(x[:160], y[:160]), TensorDataset(x[160:], y[160:])), model=net(),
                     loss_fn=nn.BCELoss(), task="classification", epochs=30, lr0=0.5, optimizer="SGD")
    run = lrkit.load_run(run_dir, model=net())
    assert run.scores == "multi_label_probability"
    with torch.no_grad():
        expected = (run.model(x[160:]) > 0.5).long()  # as training scored each label
    got = run.predict(x[160:])
    assert torch.equal(got, expected)
    assert 0 < float(got.float().mean()) < 1  # not every label 1


class _Squeezed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x).squeeze()  # (B,) logits; one sample: a 0-dim score


def test_one_sample_of_a_squeezing_binary_model(tmp_path: Path) -> None:
    x = _x()
    y = (x[:, 0] > 0).float()
    run_dir = _train(tmp_path, data=(TensorDataset(x[:160], y[:160]), TensorDataset(x[160:], y[160:])),
                     model=_Squeezed(), loss_fn=nn.BCEWithLogitsLoss(), task="classification", epochs=3, lr0=0.1,
                     optimizer="SGD")
    run = lrkit.load_run(run_dir, model=_Squeezed())
    assert run.scores == "logit"
    batch = run.predict(x[160:166])
    assert [run.predict(x[i])[0] for i in range(160, 166)] == batch


@pytest.mark.parametrize("val", [np.array(0.25), torch.tensor(0.25)], ids=["ndarray", "tensor"])
def test_val_as_a_0dim_number_is_a_fraction(tmp_path: Path, val: Any) -> None:
    r = lrkit.train(data="iris", epochs=1, val=val, project=str(tmp_path), verbose=False, plots=False, seed=0)
    assert r.run_dir.is_dir()


def test_val_as_a_dataset_is_still_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"val= got a TensorDataset"):
        lrkit.train(data="iris", epochs=1, val=TensorDataset(torch.zeros(3, 4)), project=str(tmp_path),
                    verbose=False, plots=False)


def test_flatten_hint_only_for_an_unflattened_linear(tmp_path: Path) -> None:
    cnn = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(64, 10))  # needs 256
    with pytest.raises(ValueError, match=r"shapes cannot be multiplied") as caught:
        _train(tmp_path, data="digits", model=cnn)
    assert "nn.Flatten()" not in str(caught.value)
    mlp = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))  # the case the hint is for
    with pytest.raises(ValueError, match=r"needs nn.Flatten\(\) in front of it"):
        _train(tmp_path, data="digits", model=mlp)


def test_warmup_note_names_the_default_lr0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lrkit.train(data="iris", epochs=3, project=str(tmp_path), plots=False, seed=0)  # lr0: AdamW's default
    out = capsys.readouterr()
    note = next(line for line in (out.out + out.err).splitlines() if "spans the whole run" in line)
    assert "lr0=None" not in note
    assert re.search(r"never reaches lr0=0\.001 ", note), note


def test_headerless_rows_of_bits_are_all_predicted(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, (200, 2)).astype(np.float32)
    np.savez(tmp_path / "bits.npz", x=x, y=(x[:, 0] + x[:, 1]).astype(np.int64))
    run = lrkit.load_run(_train(tmp_path, data=str(tmp_path / "bits.npz")))
    rows = np.array([[0, 1], [1, 0], [1, 1]], dtype=np.float64)
    got = predict_file(run, "-", stdin="0,1\n1,0\n1,1\n")
    assert [r[0] for r in got.rows] == [str(v) for v in run.predict(rows)]  # 3 rows: the first is a sample


def test_pandas_numbered_header_still_a_header_for_four_columns(tmp_path: Path) -> None:
    run = lrkit.load_run(_train(tmp_path, data="iris"))
    rows = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])
    got = predict_file(run, "-", stdin="0,1,2,3\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    assert [r[0] for r in got.rows] == [str(v) for v in run.predict(rows)]


def test_csv_run_with_a_float64_model_predicts(tmp_path: Path) -> None:
    def net() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3)).double()

    run = lrkit.load_run(_train(tmp_path, data="iris", model=net()), model=net())
    x = run.inputs([[5.1, 3.5, 1.4, 0.2]])
    assert x.dtype == torch.float64
    assert run.predict([[5.1, 3.5, 1.4, 0.2]])[0] in (0, 1, 2)


def test_two_numbered_columns_of_a_csv_run_are_its_header(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 2))
    path = tmp_path / "num2.csv"
    path.write_text("0,1,2\n" + "".join(f"{a:.4f},{b:.4f},{int(a > 0)}\n" for a, b in x))
    run = lrkit.load_run(_train(tmp_path, data=str(path)))
    assert run.features == ["0", "1"]
    got = predict_file(run, "-", stdin="0,1\n" + "".join(f"{a:.4f},{b:.4f}\n" for a, b in x[:5]))
    assert [r[0] for r in got.rows] == [str(v) for v in run.predict(x[:5].round(4))]


def test_predict_takes_an_iterable_dataset_with_a_length(tmp_path: Path) -> None:
    from torch.utils.data import IterableDataset

    x = _x(100)
    y = (x[:, 0] > 0).long()

    def net() -> nn.Module:
        torch.manual_seed(0)
        return nn.Linear(4, 2)

    class Stream(IterableDataset):  # a __len__ as lrkit.train asks of an IterableDataset
        def __len__(self) -> int:
            return 5

        def __iter__(self) -> Any:
            return iter([(x[i], y[i]) for i in range(5)])

    run = lrkit.load_run(_train(tmp_path, data=(TensorDataset(x[:80], y[:80]), TensorDataset(x[80:], y[80:])),
                                model=net()), model=net())
    assert run.predict(Stream()) == run.predict(TensorDataset(x[:5], y[:5]))


# ------------------------------------------------------------------------------------------------------------------
# lead, from the review's unconfirmed list: a Hugging Face model's own loss cut from the graph is named as the
# model's own loss, not as lrkit's internal step function
def test_a_detached_model_own_loss_is_named_as_the_models(tmp_path: Path) -> None:
    from types import SimpleNamespace

    class _HF(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed, self.head = nn.Embedding(16, 8), nn.Linear(8, 3)

        def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None) -> Any:
            logits = self.head(self.embed(input_ids).mean(1))
            loss = None if labels is None else nn.functional.cross_entropy(logits, labels).detach()
            return SimpleNamespace(loss=loss, logits=logits)

    g = torch.Generator().manual_seed(0)
    samples = [{"input_ids": torch.randint(0, 16, (5,), generator=g), "labels": torch.tensor(i % 3)}
               for i in range(40)]
    with pytest.raises(ValueError) as e:
        lrkit.train(_HF(), data=(samples[:32], samples[32:]), epochs=1, lr0=0.01, project=str(tmp_path),
                    verbose=False, plots=False)
    assert "the model's own loss (model(**batch).loss of" in str(e.value) and "own_loss" not in str(e.value)
