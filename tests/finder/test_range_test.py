from __future__ import annotations

import random
import warnings

import numpy as np
import pytest
import torch

import lrkit
from _helpers import assert_same
from _helpers import finder_state as everything
from lrkit.finder.range_test import group_scales


def bn_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(6, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(), torch.nn.Dropout(0.1), torch.nn.Linear(16, 3)
    )


@pytest.mark.parametrize("opt_name", ["sgd", "adam", "adamw", "rmsprop"])
def test_restores_every_bit(classification_loader, opt_name):
    model = bn_model()
    make = {
        "sgd": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
        "adam": lambda p: torch.optim.Adam(p, lr=1e-3),
        "adamw": lambda p: torch.optim.AdamW(p, lr=1e-3, weight_decay=0.1),
        "rmsprop": lambda p: torch.optim.RMSprop(p, lr=1e-3, momentum=0.5),
    }[opt_name]
    opt = make(model.parameters())
    # Give the optimizer real state and the model real grads / running stats before the test.
    loss_fn = torch.nn.functional.cross_entropy
    for x, y in list(classification_loader)[:3]:
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    model.eval()
    model[3].train()  # mixed modes must survive too
    torch.manual_seed(123); np.random.seed(7); random.seed(9)
    before = everything(model, opt)
    result = lrkit.find_lr(model, opt, classification_loader, loss_fn=loss_fn, num_steps=40, end_lr=100.0)
    assert result.num_steps_run > 10
    after = everything(model, opt)
    assert_same(before, after)


# Bug: the grads' values were restored but into new tensors, so anything holding the old .grad (DDP's
# gradient_as_bucket_view buckets, an optimizer or hook that cached it) was cut off from the live gradient.
@pytest.mark.parametrize("fail", [False, True], ids=["completed", "raised"])
def test_grads_are_restored_into_the_same_tensors(regression_loader, fail):
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    temperature = torch.nn.Parameter(torch.tensor(1.5))  # an optimizer parameter the model does not hold
    opt = torch.optim.SGD([*model.parameters(), temperature], lr=0.05, momentum=0.9)
    x, y = next(iter(regression_loader))
    (torch.nn.functional.mse_loss(model(x), y) * temperature).backward()
    model[2].bias.grad = None  # a parameter with no gradient keeps none
    held = [p.grad for p in model.parameters()]
    values = [None if g is None else g.clone() for g in held]
    ptrs = [None if g is None else g.data_ptr() for g in held]
    t_grad, t_value = temperature.grad, temperature.grad.clone()
    calls = {"n": 0}

    def step_fn(m, batch):
        calls["n"] += 1
        if fail and calls["n"] == 7:
            raise RuntimeError("boom")
        return torch.nn.functional.mse_loss(m(batch[0]), batch[1]) * temperature

    try:
        lrkit.find_lr(model, opt, regression_loader, step_fn=step_fn, num_steps=20)
    except RuntimeError:
        assert fail
    for p, g, v, ptr in zip(model.parameters(), held, values, ptrs):
        if g is None:
            assert p.grad is None
        else:
            assert p.grad is g and p.grad.data_ptr() == ptr  # the very same tensor, on the same memory
            assert torch.equal(p.grad, v) and p.grad.dtype == v.dtype  # bit for bit
    assert temperature.grad is t_grad and torch.equal(temperature.grad, t_value)


def test_restores_after_an_exception(regression_loader):
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = model.weight.detach().clone()
    calls = {"n": 0}

    def step_fn(m, batch):
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("boom")
        x, y = batch
        return torch.nn.functional.mse_loss(m(x), y)

    with pytest.raises(RuntimeError, match="boom"):
        lrkit.find_lr(model, opt, regression_loader, step_fn=step_fn, num_steps=20)
    assert torch.equal(model.weight, before)
    assert opt.param_groups[0]["lr"] == 0.1


def test_writes_no_file(tmp_path, monkeypatch, regression_loader):
    monkeypatch.chdir(tmp_path)
    model = torch.nn.Linear(4, 1)
    lrkit.find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), regression_loader, num_steps=20)
    assert list(tmp_path.iterdir()) == []


def test_lr_schedule_and_group_ratios(regression_loader):
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(
        [{"params": model[0].parameters(), "lr": 0.01}, {"params": model[1].parameters(), "lr": 0.1}], lr=0.1
    )
    seen = []

    def step_fn(m, batch):
        seen.append([g["lr"] for g in opt.param_groups])
        x, y = batch
        return torch.nn.functional.mse_loss(m(x), y)

    r = lrkit.find_lr(model, opt, regression_loader, step_fn=step_fn, start_lr=1e-4, end_lr=1.0, num_steps=20,
                      diverge_factor=1e9)
    expected = np.logspace(-4, 0, 20)
    np.testing.assert_allclose(r.lrs, expected[: r.num_steps_run], rtol=1e-12)
    for (g0, g1), lr in zip(seen, r.lrs):
        assert g1 == pytest.approx(lr) and g0 == pytest.approx(lr / 10)  # the 1:10 ratio survives
    assert [g["lr"] for g in opt.param_groups] == [0.01, 0.1]


def test_lr_scale_key_wins():
    opt = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 5.0, "lr_scale": 0.25},
                           {"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 5.0}], lr=1.0)
    assert group_scales(opt) == [0.25, 1.0]


def test_linear_mode(regression_loader):
    model = torch.nn.Linear(4, 1)
    r = lrkit.find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), regression_loader, start_lr=0.001,
                      end_lr=0.1, num_steps=11, mode="linear")
    np.testing.assert_allclose(r.lrs, np.linspace(0.001, 0.1, 11)[: r.num_steps_run])


def test_gradient_accumulation_matches_a_big_batch():
    torch.manual_seed(0)
    x = torch.randn(64, 4); y = torch.randn(64, 1)
    small = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    big = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=64)
    curves = []
    for loader, acc in ((small, 4), (big, 1)):
        torch.manual_seed(1)
        model = torch.nn.Linear(4, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        r = lrkit.find_lr(model, opt, loader, start_lr=1e-3, end_lr=1.0, num_steps=12, accumulation_steps=acc,
                          diverge_factor=1e9)
        curves.append(r.losses)
    np.testing.assert_allclose(curves[0], curves[1], rtol=1e-5)


def test_dict_batches_and_step_fn():
    torch.manual_seed(0)
    xs = [torch.randn(8, 3) for _ in range(4)]
    data = [{"x": x, "y": x.sum(1, keepdim=True)} for x in xs]  # learnable, so the curve is not flat
    model = torch.nn.Linear(3, 1)
    r1 = lrkit.find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), data, num_steps=12,
                      start_lr=1e-3, end_lr=1.0)

    class DictModel(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(3, 1)

        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.mse_loss(self.lin(x), y)

    m2 = DictModel()
    m2.lin.load_state_dict(model.state_dict())
    r2 = lrkit.find_lr(m2, torch.optim.SGD(m2.parameters(), lr=0.1), data, step_fn=lambda m, b: m(**b),
                      num_steps=12, start_lr=1e-3, end_lr=1.0)
    np.testing.assert_allclose(r1.losses, r2.losses, rtol=1e-6)


def test_stops_early_on_divergence_and_restores(regression_loader):
    model = torch.nn.Linear(4, 1)
    before = model.weight.detach().clone()
    r = lrkit.find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), regression_loader, start_lr=1e-3,
                      end_lr=1e4, num_steps=100)
    assert r.stop_reason in ("diverged", "non-finite")
    assert r.num_steps_run < 100
    assert r.lrs[-1] < 1e4
    assert torch.equal(model.weight, before)


def test_bf16_autocast_on_cpu(classification_loader):
    model = bn_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = model[0].weight.detach().clone()
    r = lrkit.find_lr(model, opt, classification_loader, num_steps=30, amp="bf16", start_lr=1e-5, end_lr=1.0)
    assert all(np.isfinite(r.losses[:10]))
    assert torch.equal(model[0].weight, before) and model[0].weight.dtype == torch.float32


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"start_lr": 1e-3, "end_lr": 1e-4}, "end_lr=0.0001 must be greater than start_lr=0.001"),
        ({"start_lr": 0.0}, "start_lr=0.0 must be a finite number > 0"),
        ({"end_lr": -1.0}, "end_lr=-1.0"),
        ({"num_steps": 3}, "num_steps=3"),
        ({"mode": "expo"}, "Did you mean 'exp'"),
        ({"rule": "valey"}, "Did you mean 'valley'"),
        ({"accumulation_steps": 0}, "accumulation_steps=0"),
        ({"amp": "fp8"}, "amp setting 'fp8'"),
    ],
)
def test_bad_arguments_name_the_value(regression_loader, kwargs, match):
    model = torch.nn.Linear(4, 1)
    with pytest.raises(ValueError, match=match):
        lrkit.find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), regression_loader, **kwargs)


def test_empty_loader():
    model = torch.nn.Linear(4, 1)
    with pytest.raises(ValueError, match="no batches"):
        lrkit.find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), [], num_steps=10)


def test_non_scalar_loss(regression_loader):
    model = torch.nn.Linear(4, 1)
    with pytest.raises(ValueError, match=r"scalar tensor, got \(32, 1\)"):
        lrkit.find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), regression_loader,
                      loss_fn=lambda out, y: (out - y) ** 2, num_steps=10)


def test_nan_at_first_step_is_a_data_problem():
    model = torch.nn.Linear(2, 1)
    before = model.weight.detach().clone()
    data = [(torch.tensor([[float("nan"), 1.0]]), torch.tensor([[1.0]]))]
    with pytest.raises(ValueError, match="very first step.*data or model problem"):
        lrkit.find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), data, num_steps=10)
    assert torch.equal(model.weight, before)


def test_one_shot_iterator_that_runs_out_is_a_clear_error_and_restores(regression_loader):
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    before = [p.detach().clone() for p in model.parameters()]
    batches = (b for b in regression_loader)  # 8 batches, once
    with pytest.raises(ValueError, match="ran out after 8 batches.*re-iterable loader"):
        lrkit.find_lr(model, opt, batches, num_steps=20)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert opt.param_groups[0]["lr"] == 0.1 and not opt.state
    endless = (b for _ in range(10) for b in regression_loader)  # a long enough stream is fine
    assert len(lrkit.find_lr(model, opt, endless, num_steps=20).lrs) > 0


def test_loss_that_does_not_fit_the_output_names_both_shapes(classification_loader):
    x, _ = next(iter(classification_loader))
    model = torch.nn.Linear(x.shape[1], 3)
    with pytest.raises(ValueError, match=r"mse_loss\(model\(x\), y\) failed: .*output is a tensor of shape "
                                         r"\(\d+, 3\) and dtype float32 and the target a tensor of shape \(\d+,\)"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's own broadcasting warning comes first
        lrkit.find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), classification_loader,
                      loss_fn=torch.nn.functional.mse_loss, num_steps=10)


def test_a_loss_error_ending_in_a_full_stop_is_not_doubled(classification_loader):
    x, _ = next(iter(classification_loader))  # classes 0..2: a 2-class output puts target 2 out of bounds
    model = torch.nn.Linear(x.shape[1], 2)
    with pytest.raises(ValueError) as info:
        lrkit.find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), classification_loader,
                      loss_fn=torch.nn.functional.cross_entropy, num_steps=10)
    msg = str(info.value)
    assert "cross_entropy(model(x), y) failed: Target 2 is out of bounds. The model's output" in msg, msg
    assert ".." not in msg, msg


def test_optimizer_of_another_model_is_refused(regression_loader):
    model, other = torch.nn.Linear(4, 1), torch.nn.Linear(4, 1)
    with pytest.raises(ValueError, match="holds none of the model's parameters"):
        lrkit.find_lr(model, torch.optim.SGD(other.parameters(), lr=0.1), regression_loader, num_steps=10)
    frozen = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 1))
    frozen[0].requires_grad_(False)  # an optimizer over part of the model is fine
    opt = torch.optim.SGD(frozen[1].parameters(), lr=0.1)
    assert lrkit.find_lr(frozen, opt, regression_loader, num_steps=20, start_lr=1e-3, end_lr=1.0).lrs


def test_bad_batch_layout_says_use_step_fn():
    model = torch.nn.Linear(2, 1)
    with pytest.raises(ValueError, match="step_fn"):
        lrkit.find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), [(torch.ones(1, 2),)], num_steps=10)


def test_flat_curve_warns_what_to_change():
    model = torch.nn.Linear(2, 1)
    data = [(torch.zeros(4, 2), torch.zeros(4, 1))]
    with torch.no_grad():
        model.weight.zero_(); model.bias.zero_()
    with pytest.warns(UserWarning, match="too flat to judge; raise end_lr"):
        lrkit.find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), data, num_steps=20, end_lr=1e-3)


def test_short_curve_warns(regression_loader):
    model = torch.nn.Linear(4, 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = lrkit.find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), regression_loader, start_lr=10.0,
                          end_lr=1e8, num_steps=50)
    assert r.num_steps_run < 10
    assert any("too short" in str(w.message) and "lower start_lr" in str(w.message) for w in caught)
