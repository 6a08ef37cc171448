"""Session 35b: the range test with many optimizer shapes — tensor LRs and betas, groups, state identity, step_fn."""

from __future__ import annotations

import warnings

import pytest
import torch

import lrkit


def _data(n: int = 64, d: int = 6) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=g)
    y = x @ torch.randn(d, generator=g)
    return [(x[i:i + 8], y[i:i + 8]) for i in range(0, n, 8)]


def _model() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1), torch.nn.Flatten(0))


def _train_once(model: torch.nn.Module, opt: torch.optim.Optimizer) -> None:
    x, y = _data()[0]
    opt.zero_grad()
    torch.nn.functional.mse_loss(model(x), y).backward()
    opt.step()


def _find(model: torch.nn.Module, opt: torch.optim.Optimizer, **kw: object) -> lrkit.FinderResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lrkit.find_lr(model, opt, _data(), num_steps=kw.pop("num_steps", 20), **kw)  # type: ignore[arg-type]


def test_a_tensor_lr_shared_by_groups_keeps_each_groups_scale() -> None:
    # Adam(groups, lr=tensor) gives every group the same tensor: filled group by group, every group ran at the last
    # group's LR (the backbone at lr_scale=0.1 swept at the head's LR)
    model = _model()
    lr = torch.tensor(1e-3)
    opt = torch.optim.Adam([{"params": model[0].parameters(), "lr_scale": 0.1},
                            {"params": model[2].parameters(), "lr_scale": 1.0}], lr=lr)
    assert opt.param_groups[0]["lr"] is opt.param_groups[1]["lr"]
    seen: list[tuple[float, float, float]] = []

    def progress(step: int, total: int, peak: float, loss: float) -> None:
        seen.append((peak, float(opt.param_groups[0]["lr"]), float(opt.param_groups[1]["lr"])))

    _find(model, opt, progress=progress)
    for peak, backbone, head in seen:
        assert backbone == pytest.approx(0.1 * peak, rel=1e-5)
        assert head == pytest.approx(peak, rel=1e-5)
    # put back: both groups share the user's tensor again, at its value
    assert opt.param_groups[0]["lr"] is lr and opt.param_groups[1]["lr"] is lr
    assert lr.item() == pytest.approx(1e-3)


def test_a_tensor_lr_shared_by_groups_of_one_scale_stays_shared_during_the_test() -> None:
    model = _model()
    lr = torch.tensor(1e-3)
    opt = torch.optim.Adam([{"params": model[0].parameters()}, {"params": model[2].parameters()}], lr=lr)
    held: list[bool] = []
    _find(model, opt, progress=lambda *a: held.append(all(g["lr"] is lr for g in opt.param_groups)))
    assert held and all(held)


def test_tensor_betas_are_put_back_into_the_same_tensors() -> None:
    model = _model()
    betas = (torch.tensor(0.9), torch.tensor(0.999))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=betas)
    _train_once(model, opt)
    group_betas = opt.param_groups[0]["betas"]  # (torch rebuilds the tuple around the user's tensors)

    def cycle(step: int, total: int, lr: float, loss: float) -> None:  # a momentum cycle replaces the tuple
        opt.param_groups[0]["betas"] = (torch.tensor(0.85), betas[1])
        betas[1].fill_(0.5)

    _find(model, opt, progress=cycle)
    now = opt.param_groups[0]["betas"]
    assert now is group_betas and now[0] is betas[0] and now[1] is betas[1]
    assert betas[0].item() == pytest.approx(0.9) and betas[1].item() == pytest.approx(0.999)


def test_optimizer_state_goes_back_into_its_own_tensors() -> None:
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    _train_once(model, opt)
    held = {(id(p), k): (t, t.clone()) for p, s in opt.state.items() for k, t in s.items()}
    _find(model, opt)
    now = {(id(p), k): t for p, s in opt.state.items() for k, t in s.items()}
    assert now.keys() == held.keys()
    for key, (tensor, value) in held.items():
        assert now[key] is tensor
        assert torch.equal(tensor, value)


def test_optimizer_state_goes_back_into_its_own_tensors_after_an_interrupt() -> None:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    _train_once(model, opt)
    held = {id(p): (s["momentum_buffer"], s["momentum_buffer"].clone()) for p, s in opt.state.items()}
    calls = [0]

    def step_fn(m: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        calls[0] += 1
        if calls[0] == 6:
            raise KeyboardInterrupt
        return torch.nn.functional.mse_loss(m(batch[0]), batch[1])

    with pytest.raises(KeyboardInterrupt):
        _find(model, opt, step_fn=step_fn)
    for p, s in opt.state.items():
        tensor, value = held[id(p)]
        assert s["momentum_buffer"] is tensor and torch.equal(tensor, value)


def test_a_compiled_step_does_not_recompile_after_the_test() -> None:
    # Dynamo guards on Adam's state tensors by identity: fresh copies at the restore recompiled the user's step
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=torch.tensor(1e-3))
    step = torch.compile(opt.step, backend="eager")
    x, y = _data()[0]

    def train() -> None:
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        step()

    for _ in range(2):
        train()
    graphs = counters["stats"]["unique_graphs"]
    _find(model, opt)
    train()
    assert counters["stats"]["unique_graphs"] == graphs
    torch._dynamo.reset()


class _StepSize(torch.optim.Optimizer):
    """An optimizer whose groups keep their step size under another key than ``lr``."""

    def __init__(self, params: object) -> None:
        super().__init__(params, {"step_size": 0.1})  # type: ignore[arg-type]

    @torch.no_grad()
    def step(self, closure: object = None) -> None:
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-g["step_size"])


def test_a_group_without_lr_is_named() -> None:
    model = _model()
    with pytest.raises(ValueError, match=r"param group 0 of _StepSize has no 'lr' \(its settings: 'step_size'\)"):
        _find(model, _StepSize(model.parameters()))
    # with lr_scale set the LRs written would be new keys nothing reads: refused too, not a flat curve
    opt = _StepSize(model.parameters())
    opt.param_groups[0]["lr_scale"] = 1.0
    with pytest.raises(ValueError, match="has no 'lr'"):
        _find(model, opt)


@pytest.mark.parametrize("retain", [False, True])
def test_a_step_fn_that_calls_backward_itself_is_named(retain: bool) -> None:
    # without retain_graph torch said "Trying to backward through the graph a second time"; with it every gradient
    # was silently doubled
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]

    def step_fn(m: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        loss = torch.nn.functional.mse_loss(m(batch[0]), batch[1])
        loss.backward(retain_graph=retain)
        return loss

    with pytest.raises(ValueError, match=r"step_fn called backward\(\) itself: 4 of the optimizer's 4 parameters"):
        _find(model, opt, step_fn=step_fn)
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before))
    assert all(p.grad is None for p in model.parameters())


def test_a_step_fn_using_autograd_grad_is_fine() -> None:
    # a gradient penalty (torch.autograd.grad) writes no .grad: not a backward of its own
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def step_fn(m: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x = batch[0].requires_grad_(True)
        loss = torch.nn.functional.mse_loss(m(x), batch[1])
        (gx,) = torch.autograd.grad(loss, x, create_graph=True)
        return loss + 0.01 * gx.pow(2).sum()

    assert _find(model, opt, step_fn=step_fn, accumulation_steps=2).num_steps_run > 1


@pytest.mark.parametrize("context", [torch.no_grad, torch.inference_mode])
def test_called_with_gradients_off_is_refused_before_anything_runs(context: type) -> None:
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    _train_once(model, opt)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with context(), pytest.raises(ValueError, match=r"find_lr was called inside torch\.(no_grad|inference_mode)"):
        lrkit.find_lr(model, opt, _data(), num_steps=20)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert not any(p.is_inference() for p in model.parameters())


def test_float_betas_replaced_during_the_test_come_back() -> None:
    # (a tuple without tensors is put back by value: the group's tuple at the end is not the capture's)
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999))
    _train_once(model, opt)

    def cycle(step: int, total: int, lr: float, loss: float) -> None:
        opt.param_groups[0]["betas"] = (0.95, 0.999)

    _find(model, opt, progress=cycle)
    assert opt.param_groups[0]["betas"] == (0.9, 0.999)


def test_a_scaler_that_skips_the_steps_is_warned_about() -> None:
    # at a scale where every scaled gradient overflows, every step was skipped: a suggestion from the batches' noise
    # alone, with no word
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 127, backoff_factor=0.999)
    with pytest.warns(UserWarning, match=r"the GradScaler skipped \d+ of the range test.s \d+ optimizer steps"):
        lrkit.find_lr(model, opt, _data(), scaler=scaler, num_steps=20)
    assert scaler.get_scale() == 2.0 ** 127  # put back
    # a scaler whose steps go through (or a fresh one calibrating over its first few) is not worth a word
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lrkit.find_lr(model, opt, _data(), scaler=torch.amp.GradScaler("cpu"), num_steps=20)
    assert not any("GradScaler skipped" in str(w.message) for w in caught)
