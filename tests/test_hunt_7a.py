"""Hunt 7a: today's finder rule (noise scaling), records/plots, batch plumbing and schedules, on odd inputs."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lrkit._step import batch_loss, default_loss, split_batch
from lrkit.finder import FinderResult, find_lr
from lrkit.finder import suggest as S

# -- the noise ratio on curves whose minimum comes early ---------------------------------------------------------


def _full_backoff(lrs: np.ndarray, curve: np.ndarray) -> float:
    return S.robust_backoff(lrs, curve, noise_band=None)


def test_a_noiseless_curve_with_an_early_minimum_keeps_its_full_back_off() -> None:
    # 100 steps from 1e-3: the loss falls from the start and explodes past ~0.01, its minimum at step 12. There is
    # no noise at all, yet the smoother's bias at the sharp minimum read as scatter (0.107 > 0.10): no back-off,
    # the suggestion at the edge itself.
    lrs = np.logspace(-3, 1, 100)
    clean = 1 / (1 + lrs / 1e-3) + (lrs / 0.01) ** 2
    assert int(np.argmin(S.smooth_curve(clean))) < 2 * 12  # the minimum within twice the head (100 // 8)
    assert math.isnan(S.noise_ratio(lrs, clean))
    assert S.robust_backoff(lrs, clean) == _full_backoff(lrs, clean) == 1.0
    assert S.suggest_robust(lrs, clean) == S.suggest_robust(lrs, clean, noise_band=None)


@pytest.mark.parametrize("n", [4, 5, 6, 7, 8, 9])
@pytest.mark.parametrize("shape", ["explode", "plateau"])
def test_a_short_noiseless_curve_is_not_read_as_noise(n: int, shape: str) -> None:
    lrs = np.logspace(-5, 0, n)
    curve = 1 / (1 + lrs / 1e-3) + ((lrs / 0.1) ** 2 if shape == "explode" else 0.0)
    ratio = S.noise_ratio(lrs, curve)
    assert math.isnan(ratio) or ratio < S.ROBUST_NOISE_BAND[0]
    assert S.robust_backoff(lrs, curve) == _full_backoff(lrs, curve)


def test_a_curve_that_rises_from_the_start_has_no_noise_reading() -> None:
    # the docstring's contract: nan when the loss did not drop (it read 0.0: "noise 0.00" in the CLI)
    lrs = np.logspace(-4, 0, 50)
    for curve in (1 + lrs, -6 + lrs, 1e6 * (1 + lrs)):
        assert math.isnan(S.noise_ratio(lrs, curve))


def test_the_early_minimum_guard_leaves_noisy_curves_with_a_late_minimum_alone() -> None:
    lrs = np.logspace(-6, 0, 100)
    clean = 1 / (1 + lrs / 1e-3) + (lrs / 0.1) ** 2
    noisy = clean + np.random.default_rng(0).normal(0, 0.2, 100)
    assert int(np.argmin(S.smooth_curve(noisy))) >= 24
    assert S.noise_ratio(lrs, noisy) > S.ROBUST_NOISE_BAND[1] and S.robust_backoff(lrs, noisy) == 0.0


def test_a_record_of_an_early_minimum_curve_carries_no_noise_and_the_full_back_off(tmp_path) -> None:
    lrs = np.logspace(-3, 1, 100)
    clean = 1 / (1 + lrs / 1e-3) + (lrs / 0.01) ** 2
    r = FinderResult(lrs=list(lrs), losses=list(clean), start_lr=1e-3, end_lr=10.0)
    d = r.to_dict()
    assert d["noise"] is None and d["backoff_decades"] == 1.0 and d["regime"] == "explosion"
    back = FinderResult.from_json(r.to_json(tmp_path / "lr_find.json"))
    assert back.suggestion == r.suggestion and back.backoff == 1.0


# -- split_batch: keys that are not strings ----------------------------------------------------------------------


@pytest.mark.parametrize("batch", [{"x": 1, 0: 2}, {0: 1, "y": 2}, {("a",): 1, "b": 2}])
def test_a_dict_batch_with_keys_of_mixed_types_is_named_not_a_type_error(batch: dict) -> None:
    with pytest.raises(ValueError, match="cannot split a dict batch with keys") as e:
        split_batch(batch)
    for key in batch:
        assert repr(key) in str(e.value)


def test_two_input_keys_beside_an_integer_key_are_named_as_themselves() -> None:
    with pytest.raises(ValueError, match=r"keys \[3, 'input', 'x'\] has 2 input keys"):
        split_batch({"x": torch.zeros(1), "input": torch.zeros(1), 3: torch.zeros(1)})


# -- the default loss on LM-shaped logits ------------------------------------------------------------------------


class _TinyLM(torch.nn.Module):
    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, 8)
        self.head = torch.nn.Linear(8, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.emb(x))  # (B, T, V)


def _token_ce(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1).long())


@pytest.mark.parametrize("seq_len", [5, 7])  # T != V, and T == V, where torch's reading (classes in dim 1) fits too
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32])
def test_the_default_loss_reads_lm_logits_per_token(seq_len: int, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    model = _TinyLM(7)
    x = torch.randint(0, 7, (3, seq_len), dtype=dtype)
    y = torch.randint(0, 7, (3, seq_len), dtype=dtype)
    out = model(x.long())
    expected = _token_ce(out, y)
    assert batch_loss(lambda t: model(t.long()), (x, y), None, None).item() == pytest.approx(expected.item())


def test_default_loss_alone_reads_unambiguous_lm_logits_per_token() -> None:
    torch.manual_seed(0)
    out, y = torch.randn(2, 5, 7), torch.randint(0, 7, (2, 5))
    assert default_loss(out, y).item() == pytest.approx(_token_ce(out, y).item())
    # a column of labels against (N, 1, C) logits: one position, C classes
    out, y = torch.randn(4, 1, 3), torch.tensor([[0], [2], [1], [0]])
    assert default_loss(out, y).item() == pytest.approx(_token_ce(out, y).item())


@pytest.mark.parametrize("shape", [(2, 4, 4), (2, 3, 4, 4), (2, 3, 5)])
def test_torchs_reading_stays_for_float_inputs_and_spatial_targets(shape: tuple[int, ...]) -> None:
    # (B, C, L) or (B, C, H, W) logits against (B, L) / (B, H, W) class maps: classes in dim 1, as F.cross_entropy
    torch.manual_seed(0)
    out = torch.randn(*shape)
    y = torch.randint(0, shape[1], (shape[0], *shape[2:]))
    x = torch.randn(shape[0], 2)
    assert batch_loss(lambda _: out, (x, y), None, None).item() == pytest.approx(F.cross_entropy(out, y).item())


def test_find_lr_runs_on_a_token_lm_with_the_default_loss() -> None:
    torch.manual_seed(0)
    model = _TinyLM(11)
    data = torch.randint(0, 11, (64, 9))
    loader = [(data[i:i + 16, :-1], data[i:i + 16, 1:]) for i in range(0, 64, 16)]  # T = 8 != V = 11
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (a short curve may be warned about: not what this test checks)
        r = find_lr(model, opt, loader, num_steps=30, start_lr=1e-4, end_lr=10.0)
    first = _token_ce(model(loader[0][0]), loader[0][1]).item()
    assert r.losses[0] == pytest.approx(first, rel=1e-5)  # the weights were restored: step 0's loss again
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


# -- the plot's label for hand-made records ----------------------------------------------------------------------


def _label(record: dict) -> str:
    from lrkit.plots.finder import plot_finder

    fig = plot_finder(record)
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts() if t.get_text().startswith("suggestion")]
    import matplotlib.pyplot as plt

    plt.close(fig)
    return texts[0]


def _record(**extra: object) -> dict:
    lrs = list(np.geomspace(1e-5, 1, 40))
    losses = [1.0 / (1 + 1e3 * lr) + (0 if lr < 0.2 else 10 * lr) for lr in lrs]
    d = FinderResult(lrs=lrs, losses=losses).to_dict()
    d.update(extra)
    return d


@pytest.mark.parametrize("back", [float("nan"), float("inf")])
def test_a_non_finite_back_off_in_a_hand_made_record_keeps_the_regime_label(back: float) -> None:
    label = _label(_record(backoff_decades=back))
    assert "a decade below the edge" in label and "nan" not in label and "inf" not in label


def test_the_plot_says_decades_for_a_scaled_back_off_as_the_cli_does() -> None:
    assert ", 0.5 decades below the minimum (noisy curve)" in _label(_record(backoff_decades=0.5))
    assert "a decade below the edge" in _label(_record(backoff_decades=1.0))
