"""Edge cases of lr0="auto" (lrkit.train.auto.choose_lr0): bad make_scheduler results, argument checks before any work,
loaders whose sampler holds the generator, one-shot iterators, tensor LRs, closure optimizers, AMP in the trials,
budgets above one run, negative losses, and the optimizer left exactly as it was."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from test_auto import warmup_cosine
from torch import nn
from torch.utils.data import DataLoader, RandomSampler, TensorDataset

from lrkit.train.auto import AutoLR, Trial, _guard, _run_trial, choose_lr0, plan_budget

# the guard's step-down machinery and its trials, as it was before the sixth fresh set's test made
# STEP_DOWN_MARGIN = inf (and DIP_AND_PASSES) the default; the defaults have their own tests (test_auto_guard_s7.py)
pytestmark = pytest.mark.usefixtures("step_down_guard")


def _data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(384, 8, generator=g)
    y = x @ torch.randn(8, 1, generator=g) + 0.1 * torch.randn(384, 1, generator=g)
    xv = torch.randn(128, 8, generator=g)
    return x, y, [(xv, xv @ torch.ones(8, 1))]


def _loaders() -> tuple[DataLoader, list[tuple[torch.Tensor, torch.Tensor]]]:
    x, y, val = _data()
    train = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(1))
    return train, val


def _quiet(fn: Callable[[], Any]) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn()


def _call(model: nn.Module, opt: torch.optim.Optimizer, train: Any, val: Any, **kw: Any) -> AutoLR:
    args: dict[str, Any] = {"total_steps": 400, "make_scheduler": warmup_cosine, **kw}
    return _quiet(lambda: choose_lr0(model, opt, train, val, **args))


def _fresh(seed: int = 0, **opt_kw: Any) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = nn.Linear(8, 1)
    return model, torch.optim.SGD(model.parameters(), **{"lr": 0.1, "momentum": 0.9, **opt_kw})


# ------------------------------------------------------------------------------------------ make_scheduler
def _other_optimizer_scheduler(o: torch.optim.Optimizer, n: int) -> Any:
    other = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    return torch.optim.lr_scheduler.LambdaLR(other, lambda t: 1.0)


def _raises(o: torch.optim.Optimizer, n: int) -> Any:
    raise RuntimeError("no schedule today")


def _raises_with_full_stop(o: torch.optim.Optimizer, n: int) -> Any:
    raise RuntimeError("no schedule today.")


@pytest.mark.parametrize(
    ("make_scheduler", "match"),
    [
        (_raises, r"make_scheduler=_raises\(optimizer, \d+\) failed: RuntimeError: no schedule today"),
        (_raises_with_full_stop, r"failed: RuntimeError: no schedule today\. lr0='auto' calls it as"),  # not '..'

        (lambda o: None, r"make_scheduler=<lambda> cannot be called as make_scheduler\(optimizer, steps\) \(too many"),
        (lambda o, n: None, r"make_scheduler=<lambda> returned NoneType, not an LR scheduler"),
        (lambda o, n: 0.1, r"returned float, not an LR scheduler"),
        (lambda o, n: torch.optim.lr_scheduler.ReduceLROnPlateau(o), r"returned a ReduceLROnPlateau, which follows a"),
        (_other_optimizer_scheduler, r"returned a scheduler of another optimizer"),
        # one step short of the trial: torch raises on the trial's last step
        (lambda o, n: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=n - 1),
         r"the scheduler from make_scheduler=<lambda>\(optimizer, \d+\) failed at step \d+ of \d+"),
    ],
)  # fmt: skip
def test_a_bad_make_scheduler_is_named_and_nothing_changes(make_scheduler: Any, match: str) -> None:
    train, val = _loaders()
    model, opt = _fresh()
    weight = model.weight.detach().clone()
    gen_state = train.generator.get_state()
    rng = torch.get_rng_state()
    with pytest.raises(ValueError, match=match):
        _call(model, opt, train, val, make_scheduler=make_scheduler)
    assert torch.equal(model.weight, weight) and torch.equal(train.generator.get_state(), gen_state)
    assert torch.equal(torch.get_rng_state(), rng)
    assert opt.param_groups[0]["lr"] == 0.1 and "initial_lr" not in opt.param_groups[0]
    assert "step" not in vars(opt)  # the scheduler's step wrapper is gone too


def test_the_optimizer_is_left_without_the_trial_schedulers_step_wrapper() -> None:
    """torch's LRScheduler wraps ``optimizer.step`` in an instance attribute; the trials' schedulers must not leave
    theirs behind, and a wrapper the caller's own scheduler installed stays the very same object."""
    train, val = _loaders()
    model, opt = _fresh()
    assert "step" not in vars(opt)
    auto = _call(model, opt, train, val)
    assert auto.trials and "step" not in vars(opt)

    model, opt = _fresh()
    torch.optim.lr_scheduler.StepLR(opt, 10)  # the caller's own scheduler wraps step first
    wrapper = vars(opt)["step"]
    _call(model, opt, train, val)
    assert vars(opt)["step"] is wrapper


# ------------------------------------------------------------------------------------------ argument checks
def _counting_model() -> tuple[nn.Module, torch.optim.Optimizer, list[int]]:
    model, opt = _fresh()
    passes: list[int] = []
    model.register_forward_hook(lambda *_: passes.append(1))
    return model, opt, passes


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"seed": 2**70}, r"seed=1180591620717411303424 must be an integer in \[-2\*\*63, 2\*\*64\)"),
        ({"seed": "0"}, r"seed='0' must be an integer"),
        ({"seed": 1.5}, r"seed=1.5 must be an integer"),
        ({"log": "print"}, r"log='print' must be a callable"),
        ({"finder_kwargs": {"num_step": 50}}, r"unknown finder_kwargs key .*'num_step'. Did you mean 'num_steps'\?"),
        ({"finder_kwargs": {"loss_fn": None}}, r"finder_kwargs\['loss_fn'\]: pass loss_fn to choose_lr0 itself"),
        ({"finder_kwargs": [("num_steps", 50)]}, r"finder_kwargs must be a dict .* got list"),
        ({"finder_kwargs": {"num_steps": "50"}}, r"num_steps='50' must be an integer >= 10"),
        ({"finder_kwargs": {"amp": "fp8"}}, r"amp setting 'fp8'"),
    ],
)
def test_bad_arguments_fail_before_any_work(kw: dict[str, Any], match: str) -> None:
    train, val = _loaders()
    model, opt, passes = _counting_model()
    with pytest.raises(ValueError, match=match):
        _call(model, opt, train, val, **kw)
    assert passes == []  # not after a range test's worth of compute


def test_numpy_integers_are_integers() -> None:
    """total_steps/num_candidates/accumulate/seed from numpy arithmetic (``epochs * np.int64(len)``) are accepted
    and choose exactly as the python ints do."""
    train, val = _loaders()
    got = []
    for cast in (int, np.int64):
        model, opt = _fresh()
        auto = _call(model, opt, train, val, total_steps=cast(400), num_candidates=cast(3), accumulate=cast(1),
                     seed=cast(5))  # fmt: skip
        got.append((auto.lr, auto.trials, auto.extra_steps))
    assert got[0] == got[1] and got[0][1]
    with pytest.raises(ValueError, match=r"total_steps=400.0 must be a positive integer"):
        _call(*_fresh(), train, val, total_steps=400.0)


# ------------------------------------------------------------------------------------------ loaders
def _first_inputs_per_trial(train: Any, val: Any, **kw: Any) -> tuple[AutoLR, list[float]]:
    """The first training input each trial sees (the range test's passes come first)."""
    seen: list[float] = []
    model, opt = _fresh()
    model.register_forward_hook(lambda m, inp, out: seen.append(float(inp[0][0, 0])) if m.training else None)
    auto = _call(model, opt, train, val, **kw)
    n = auto.finder.num_steps_run
    return auto, [seen[n + i * auto.trial_steps] for i in range(len(auto.trials))]


def test_a_generator_held_by_the_sampler_is_seeded_for_every_trial_and_restored() -> None:
    """``DataLoader(sampler=RandomSampler(ds, generator=g))``: ``loader.generator`` is None, the order is ``g``'s.
    Every trial must see the same batches, and ``g`` must come back as it was."""
    x, y, val = _data()
    g = torch.Generator().manual_seed(7)
    ds = TensorDataset(x, y)
    train = DataLoader(ds, batch_size=32, sampler=RandomSampler(ds, generator=g))
    before = g.get_state()
    auto, firsts = _first_inputs_per_trial(train, val)
    assert len(firsts) >= 2 and len(set(firsts)) == 1, firsts  # same batches for every candidate
    assert torch.equal(g.get_state(), before)
    again, _ = _first_inputs_per_trial(train, val)
    assert (again.lr, again.trials) == (auto.lr, auto.trials)


def test_a_one_shot_val_iterator_scores_every_trial_on_its_batches() -> None:
    train, val = _loaders()
    model, opt = _fresh()
    listed = _call(model, opt, train, val)
    model, opt = _fresh()
    lines: list[str] = []
    once = _call(model, opt, train, iter(val), log=lines.append)
    assert (once.lr, once.trials) == (listed.lr, listed.trials) and len(once.trials) >= 2
    assert any("val_loader is a one-shot iterator" in ln for ln in lines)


def test_a_one_shot_train_iterator_is_said_to_compare_on_different_batches() -> None:
    x, y, val = _data()

    def stream() -> Any:
        g = torch.Generator().manual_seed(0)
        while True:
            i = torch.randint(0, len(x), (32,), generator=g)
            yield x[i], y[i]

    lines: list[str] = []
    auto = _call(*_fresh(), stream(), val, log=lines.append)
    assert auto.trials and any("one-shot iterator" in ln and "different batches" in ln for ln in lines)
    lines.clear()
    _call(*_fresh(), list(DataLoader(TensorDataset(x, y), batch_size=32)), val, log=lines.append)
    assert not any("one-shot" in ln for ln in lines)


# ------------------------------------------------------------------------------------------ optimizers
def test_a_tensor_lr_stays_the_groups_tensor() -> None:
    """Adam(lr=tensor) (capturable/compiled steps hold that tensor): the trials must set it in place, and the
    group must hold the very same tensor afterwards, with its value."""
    train, val = _loaders()
    torch.manual_seed(0)
    model = nn.Linear(8, 1)
    lr = torch.tensor(0.01)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    types: set[type] = set()
    opt.register_step_pre_hook(lambda o, *_: types.add(type(o.param_groups[0]["lr"])))
    auto = _call(model, opt, train, val)
    assert auto.trials and types == {torch.Tensor}
    assert opt.param_groups[0]["lr"] is lr and float(lr) == pytest.approx(0.01)


def test_a_closure_optimizer_runs_its_trials() -> None:
    """LBFGS needs a closure; the range test gives it one, so must the trials (it used to fail after the range test,
    on ``step() missing 'closure'``)."""
    train, val = _loaders()
    torch.manual_seed(0)
    model = nn.Linear(8, 1)
    opt = torch.optim.LBFGS(model.parameters(), lr=0.1, max_iter=2)
    weight = model.weight.detach().clone()
    auto = _call(model, opt, train, val, max_grad_norm=5.0)
    assert len(auto.trials) >= 2 and all(t.steps > 0 for t in auto.trials)
    assert any(math.isfinite(t.val_loss) for t in auto.trials)
    assert torch.equal(model.weight, weight) and not opt.state


def test_amp_from_finder_kwargs_runs_the_trials_and_their_scoring_in_bf16() -> None:
    train, val = _loaders()
    model, opt = _fresh()
    dtypes: list[tuple[bool, torch.dtype]] = []
    model.register_forward_hook(lambda m, i, out: dtypes.append((m.training, out.dtype)))
    auto = _call(model, opt, train, val, finder_kwargs={"amp": "bf16"})
    n = auto.finder.num_steps_run
    assert auto.trials and len(dtypes) > n
    assert {d for _, d in dtypes} == {torch.bfloat16}  # range test, trials and validation passes alike
    assert any(not training for training, _ in dtypes[n:])  # the validation passes are among them
    assert model.weight.dtype == torch.float32


# ------------------------------------------------------------------------------------------ budget
def test_a_trial_is_never_longer_than_the_run() -> None:
    """budget > 1 (more than one extra run): the trials get longer, but a trial longer than the run would score a
    schedule stretched past the run's own length."""
    assert plan_budget(400, 10, 3).trial_steps == 400
    assert plan_budget(400, 0.6, 3) == plan_budget(400, 0.6, 3)._replace(trial_steps=(240 - 100) // 3)
    train, val = _loaders()
    auto = _call(*_fresh(), train, val, budget=10.0)
    assert auto.trial_steps == 400 and all(t.steps <= 400 for t in auto.trials)
    assert auto.extra_steps <= 10 * 400


@pytest.mark.parametrize(
    ("args", "match"),
    [((0, 0.3, 3), r"total_steps=0"), ((100, -1.0, 3), r"budget=-1"), ((100, 0.3, 1), r"num_candidates=1"),
     ((100, 0.3, 3, -5), r"finder_steps_run=-5")],
)  # fmt: skip
def test_plan_budget_checks_its_arguments(args: tuple[Any, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        plan_budget(*args)


# ------------------------------------------------------------------------------------------ negative losses
def test_a_negative_loss_that_rises_a_little_is_not_divergence() -> None:
    """A loss below zero (a likelihood with a learned scale, a loss with an offset) that rises slightly above zero is
    not a 10x blow-up; the trial must run to the end."""
    w = nn.Parameter(torch.zeros(1))
    script = iter([-1.0, 0.5, 0.25] + [-1.5] * 20)

    def step_fn(model: nn.Module, batch: Any) -> torch.Tensor:
        return (w * 0).sum() + next(script)

    opt = torch.optim.SGD([w], lr=0.1)
    batches = iter([(torch.zeros(1, 1), torch.zeros(1, 1))] * 100)
    n, diverged, losses = _run_trial(
        nn.Module(), opt, [1.0], 0.1, 10, batches, warmup_cosine, None, step_fn, 1, None, torch.device("cpu"),
    )  # fmt: skip
    assert (n, diverged) == (10, False) and losses[:3] == [-1.0, 0.5, 0.25]
    script = iter([-1.0, 9.0])  # risen by 10x |first|: that is a blow-up
    n, diverged, _ = _run_trial(
        nn.Module(), opt, [1.0], 0.1, 10, batches, warmup_cosine, None, step_fn, 1, None, torch.device("cpu"),
    )  # fmt: skip
    assert (n, diverged) == (2, True)


def test_a_negative_loss_that_got_worse_did_not_learn() -> None:
    """With a starting loss of -10, a trial that ends at -9.97 got *worse*; the guard must read that as "did not
    learn" (step up), not as progress."""
    tried: list[float] = []

    def run(c: float) -> Trial:
        tried.append(c)
        return Trial(c, -9.97 if c < 1e-3 else -12.0, 10)

    lr, how = _guard(1e-4, run, 3, [-10.0])
    assert "did not learn" in how and tried == pytest.approx([1e-4, 4e-4, 1.6e-3]) and lr == pytest.approx(1.6e-3)
    tried.clear()
    lr, how = _guard(1e-2, run, 3, [-10.0])  # -12 is 20% below -10: it learned; the guard checks lower LRs
    assert "did not learn" not in how and tried[:2] == pytest.approx([1e-2, 5e-3])


def test_when_no_candidate_learns_the_reason_says_so() -> None:
    """A model whose loss cannot move (its output ignores its parameter): the choice is the lowest candidate, and
    the reason says that nothing learned, rather than reading like an ordinary pick."""

    class Flat(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.zeros(x.shape[0], 1) + 0 * self.w

    train, val = _loaders()
    model = Flat()
    auto = _call(model, torch.optim.SGD(model.parameters(), lr=0.1), train, val)
    assert len(auto.trials) >= 2 and len({t.val_loss for t in auto.trials}) == 1
    assert auto.lr == min(t.lr for t in auto.trials)
    assert "no candidate up to" in auto.reason and "can learn from this data" in auto.reason


def test_an_error_in_a_later_trial_restores_everything_including_grad_tensors() -> None:
    """The second trial's step_fn raises: parameters, the very .grad tensors, optimizer state and groups (extra keys
    too), the sampler's generator and every RNG come back as they were."""
    x, y, val = _data()
    g = torch.Generator().manual_seed(3)
    ds = TensorDataset(x, y)
    train = DataLoader(ds, batch_size=32, sampler=RandomSampler(ds, generator=g))
    model, opt = _fresh()
    opt.param_groups[0]["name"] = "all"
    for xb, yb in list(train)[:2]:
        opt.zero_grad()
        nn.functional.mse_loss(model(xb), yb).backward()
        opt.step()
    nn.functional.mse_loss(model(x[:8]), y[:8]).backward()
    grads = [p.grad for p in model.parameters()]
    values = [gr.clone() for gr in grads]
    params = [p.detach().clone() for p in model.parameters()]
    momentum = [opt.state[p]["momentum_buffer"].clone() for p in model.parameters()]
    group = {k: v for k, v in opt.param_groups[0].items() if k != "params"}
    states = (g.get_state(), torch.get_rng_state(), np.random.get_state()[1].copy())
    schedulers: list[int] = []
    steps_in_trial = [0]

    def make_scheduler(o: torch.optim.Optimizer, n: int) -> Any:
        schedulers.append(n)
        steps_in_trial[0] = 0
        return warmup_cosine(o, n)

    def step_fn(m: nn.Module, batch: Any) -> torch.Tensor:
        if m.training and len(schedulers) == 2:
            steps_in_trial[0] += 1
            if steps_in_trial[0] == 4:  # the 4th step of the second trial
                raise RuntimeError("out of data")
        return nn.functional.mse_loss(m(batch[0]), batch[1])

    with pytest.raises(RuntimeError, match="out of data"):
        _call(model, opt, train, val, step_fn=step_fn, make_scheduler=make_scheduler)
    assert len(schedulers) == 2
    assert [p.grad for p in model.parameters()] == grads  # the same tensor objects
    assert all(torch.equal(a, b) for a, b in zip(grads, values))
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), params))
    assert all(torch.equal(opt.state[p]["momentum_buffer"], m) for p, m in zip(model.parameters(), momentum))
    assert {k: v for k, v in opt.param_groups[0].items() if k != "params"} == group
    assert torch.equal(g.get_state(), states[0]) and torch.equal(torch.get_rng_state(), states[1])
    assert np.array_equal(np.random.get_state()[1], states[2]) and "step" not in vars(opt)


def test_lrkit_train_chooses_lr0_under_the_runs_amp(tmp_path: Any) -> None:
    """lrkit.train(amp=True, lr0="auto") runs the range test and the trials in the run's precision (bf16 on the CPU,
    fp16 on CUDA, where the run trains by default when there is one)."""
    from lrkit.train import train

    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    dtypes: list[torch.dtype] = []
    model.register_forward_hook(lambda m, i, out: dtypes.append(out.dtype) if m.training else None)
    r = train(model, data="iris", epochs=40, batch=8, nbs=8, lr0="auto", auto_budget=0.5, amp=True,
              project=tmp_path, verbose=False, plots=False)
    half = torch.float16 if torch.cuda.is_available() else torch.bfloat16
    assert half in dtypes[: len(r.auto.finder.lrs)]  # the range test's forward passes
