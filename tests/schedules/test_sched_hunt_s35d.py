"""Session 35 (d): the torch adapter inside torch's SequentialLR, cyclic scale_fn values, warmup refusal wording."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch.optim.lr_scheduler import LinearLR, SequentialLR

from lrkit.schedules import Cyclic, from_spec


def _param() -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.zeros(2))


def _warmup_then_lrkit(spec: str, total: int) -> tuple[torch.optim.Optimizer, object, SequentialLR]:
    opt = torch.optim.SGD([_param()], lr=0.1)
    warm = LinearLR(opt, start_factor=0.1, total_iters=5)
    ours = from_spec(spec, total_steps=total).to_torch(opt)
    return opt, ours, SequentialLR(opt, [warm, ours], milestones=[5])


def _lrs(change_at: int | None, change: str, spec: str = "cosine lrf=0.1", steps: int = 14) -> list[float]:
    opt, ours, seq = _warmup_then_lrkit(spec, 25)
    out = []
    for t in range(steps):
        if t == change_at:
            if change == "multiplier":
                ours.lr_multiplier = 0.5
            elif change == "replan":
                ours.replan(total_steps=40)
            else:
                ours.observe(1.0)
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        seq.step()
    return out


def test_lr_multiplier_during_a_torch_warmup_of_sequentiallr_leaves_the_warmup_alone() -> None:
    plain = _lrs(None, "multiplier")
    backed = _lrs(2, "multiplier")
    # the torch warmup (steps 0-4) is untouched: the setter wrote the adapter's own LR into it (0.05 at step 2,
    # then LinearLR went on from there: 0.0696, 0.0891 instead of 0.064, 0.082)
    assert backed[:5] == plain[:5]
    # from the hand-over on, every LR is the multiplier times the uninterrupted one
    assert backed[5:] == pytest.approx([0.5 * v for v in plain[5:]], rel=1e-12)
    # once the adapter is in charge, the setter still writes the new LR at once
    opt, ours, seq = _warmup_then_lrkit("cosine lrf=0.1", 25)
    for _ in range(7):
        opt.step()
        seq.step()
    before = opt.param_groups[0]["lr"]
    ours.lr_multiplier = 0.5
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5 * before, rel=1e-12)
    assert ours.get_last_lr() == [opt.param_groups[0]["lr"]]


def test_replan_and_observe_during_a_torch_warmup_of_sequentiallr_leave_the_warmup_alone() -> None:
    plain = _lrs(None, "replan")
    assert _lrs(2, "replan")[:5] == plain[:5]
    plain = _lrs(None, "observe", spec="plateau patience=0")
    observed = _lrs(1, "observe", spec="plateau patience=0")
    assert observed[:5] == plain[:5]


def test_sequentiallr_backed_off_mid_warmup_resumes_exactly() -> None:
    def run(save_at: int | None) -> list[float]:
        opt, ours, seq = _warmup_then_lrkit("cosine lrf=0.1", 25)
        out = []
        for t in range(30):
            if t == 2:
                ours.lr_multiplier = 0.5
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            seq.step()
            if t == save_at:
                buf = io.BytesIO()
                torch.save({"opt": opt.state_dict(), "seq": seq.state_dict()}, buf)
                buf.seek(0)
                state = torch.load(buf, weights_only=True)
                opt, ours, seq = _warmup_then_lrkit("cosine lrf=0.1", 25)
                opt.load_state_dict(state["opt"])
                seq.load_state_dict(state["seq"])
        return out

    ref = run(None)
    for at in (2, 3, 4, 5, 9):
        assert run(at) == ref, at


@pytest.mark.parametrize(("fn", "shown"), [(lambda x: float("nan"), "nan"), (lambda x: 2.0, "2.0"),
                                           (lambda x: -0.5, "-0.5"), (lambda x: "a", "'a'")])
def test_cyclic_scale_fn_outside_0_1_is_a_clear_error_not_a_corrupt_lr(fn: object, shown: str) -> None:
    s = Cyclic(base_lr=0.001, max_lr=0.1, step_size_up=2, scale_fn=fn)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"scale_fn\(1\)") as e:
        s.lr(1)
    assert shown in str(e.value) and "[0, 1]" in str(e.value)
    opt = torch.optim.SGD([_param()], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match=r"scale_fn"):
        s.to_torch(opt)  # before: NaN / a negative LR / LRs above max_lr written into the optimizer, silently
    assert opt.param_groups[0]["lr"] == 0.1


def test_cyclic_scale_fn_in_range_still_matches_torch() -> None:
    fn = lambda x: 0.9**x
    for mode in ("cycle", "iterations"):
        opt = torch.optim.SGD([_param()], lr=0.1, momentum=0.9)
        ref = torch.optim.lr_scheduler.CyclicLR(opt, 0.001, 0.1, step_size_up=3, scale_fn=fn, scale_mode=mode)
        want = []
        for _ in range(20):
            want.append(opt.param_groups[0]["lr"])
            opt.step()
            ref.step()
        s = Cyclic(base_lr=0.001, max_lr=0.1, step_size_up=3, scale_fn=fn, scale_mode=mode)
        assert [s.lr(t) for t in range(20)] == pytest.approx(want, rel=1e-12, abs=1e-15)


def test_exponential_warmup_refusal_gives_advice_that_works() -> None:
    # an exponential warmup starts above 0: "use warmup_start_factor <= 0" could not be followed
    with pytest.raises(ValueError, match="would lower the LR") as e:
        from_spec("cyclic base_lr=0 max_lr=0.1 step_size_up=1 warmup_steps=1 warmup_type=exponential",
                  total_steps=20)
    assert "<= 0" not in str(e.value) and "warmup_type=linear" in str(e.value)
    with pytest.raises(ValueError, match=r"warmup_start_factor in \(0, 0\.04\]"):
        from_spec("onecycle max_lr=0.1 warmup_steps=3 warmup_type=exponential warmup_start_factor=0.5",
                  total_steps=20)
    with pytest.raises(ValueError, match=r"warmup_start_factor <= 0\.04 \(0 warms up from zero\)"):
        from_spec("onecycle max_lr=0.1 warmup_steps=3 warmup_start_factor=0.5", total_steps=20)
    s = from_spec("onecycle max_lr=0.1 warmup_steps=3 warmup_type=exponential warmup_start_factor=0.04",
                  total_steps=20)
    assert all(math.isfinite(s.lr(t)) for t in range(20))


def _saved_plateau(spec: str, **kw: object) -> tuple[dict, float]:
    opt = torch.optim.SGD([_param()], lr=0.1)
    sched = from_spec(spec, **kw).to_torch(opt)  # type: ignore[arg-type]
    for _ in range(6):
        opt.step()
        sched.step()
        sched.observe(1.0)
    buf = io.BytesIO()
    torch.save(sched.state_dict(), buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True), opt.param_groups[0]["lr"]


@pytest.mark.parametrize(("saved", "other", "kw", "named"), [
    ("plateau patience=0 factor=0.5", "plateau patience=0 factor=0.1", {}, "factor=0.1"),
    ("plateau patience=0 warmup_steps=3", "plateau patience=0 warmup_steps=8", {}, "plateau"),
    ("plateau patience=0 cooldown_steps=3", "plateau patience=0 cooldown_steps=8", {"total_steps": 40}, "plateau"),
    ("plateau lr0=0.1 patience=0 min_lr=0.05", "plateau lr0=0.1 patience=0 min_lr=0.01", {}, "plateau"),
    ("plateau patience=0", "plateau patience=5", {}, "plateau"),
    ("plateau patience=0", "plateau patience=0 mode=max", {}, "plateau"),
])
def test_a_plateau_state_only_loads_into_the_plateau_it_came_from(saved: str, other: str, kw: dict,
                                                                  named: str) -> None:
    state, lr = _saved_plateau(saved, **kw)
    opt = torch.optim.SGD([_param()], lr=0.1)
    sched = from_spec(other, **kw).to_torch(opt)
    # before: loaded silently, the LR jumping (factor 0.5 -> 0.1: 0.003125 -> 1e-06; warmup 3 -> 8: 1e-06 -> 0.075)
    with pytest.raises(ValueError, match="different schedule") as e:
        sched.load_state_dict(state)
    assert named in str(e.value)
    # the same spec still resumes, with the LR it was saved with
    opt = torch.optim.SGD([_param()], lr=0.1)
    sched = from_spec(saved, **kw).to_torch(opt)
    sched.load_state_dict(state)
    assert opt.param_groups[0]["lr"] == lr


def test_python_built_plateaus_that_differ_say_where() -> None:
    from lrkit.schedules import ReduceOnPlateau

    opt = torch.optim.SGD([_param()], lr=0.1)
    sched = ReduceOnPlateau(patience=0, factor=0.5).to_torch(opt)
    sched.observe(1.0)
    sched.observe(1.0)
    state = sched.state_dict()
    with pytest.raises(ValueError, match=r"after the same reductions"):
        ReduceOnPlateau(patience=0, factor=0.1).to_torch(torch.optim.SGD([_param()], lr=0.1)).load_state_dict(state)
    with pytest.raises(ValueError, match=r"patience=0 in the saved one, patience=3 in this one"):
        ReduceOnPlateau(patience=3, factor=0.5).to_torch(torch.optim.SGD([_param()], lr=0.1)).load_state_dict(state)
    # a state saved before lrkit probed plateau curves (no curve, no rules) still loads
    old = {**state, "fingerprint": {k: v for k, v in state["fingerprint"].items() if k != "rules"} | {"curve": []}}
    ReduceOnPlateau(patience=0, factor=0.5).to_torch(torch.optim.SGD([_param()], lr=0.1)).load_state_dict(old)


def test_get_last_lr_keeps_a_tensor_lr_a_tensor_after_seek_and_backoff() -> None:
    opt = torch.optim.Adam([_param()], lr=torch.tensor(0.1))
    sched = from_spec("cosine lr0=0.1", total_steps=10).to_torch(opt)
    opt.step()
    sched.step()
    assert isinstance(sched.get_last_lr()[0], torch.Tensor)  # torch's own step(): a copy of the tensor
    sched.seek(5)  # before: a float after seek / lr_multiplier / load, a tensor after step
    last = sched.get_last_lr()
    assert isinstance(last[0], torch.Tensor) and last[0] is not opt.param_groups[0]["lr"]
    assert float(last[0]) == float(opt.param_groups[0]["lr"])
    sched.lr_multiplier = 0.5
    kept = sched.get_last_lr()
    sched.seek(6)
    assert float(kept[0]) != float(opt.param_groups[0]["lr"])  # a copy, not the group's tensor
    assert sched.state_dict()["last_lr"] == [float(opt.param_groups[0]["lr"])]


def test_plot_schedule_refuses_an_empty_record_and_a_bad_steps_per_epoch() -> None:
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from lrkit.plots.schedule import plot_schedule

    before = set(plt.get_fignums())
    with pytest.raises(ValueError, match=r"'empty' has no steps"):
        plot_schedule({"lr": [], "momentum": [], "label": "empty"})  # before: an empty frame
    for bad in (float("nan"), -2.0, 0, True):
        with pytest.raises(ValueError, match=rf"steps_per_epoch={bad!r} in the record of 'x'"):
            plot_schedule({"lr": [0.1, 0.05], "momentum": [None, None], "label": "x", "steps_per_epoch": bad})
    assert set(plt.get_fignums()) == before
    import numpy as np

    fig = plot_schedule({"lr": [0.1, 0.05], "momentum": [None, None], "steps_per_epoch": np.int64(2)})
    plt.close(fig)


@pytest.mark.parametrize("bad", ["0", "0.5", "1.5", "-1", "nan", "inf"])
def test_t_mult_is_named_as_the_integer_factor_it_is(bad: str) -> None:
    # before: "T_mult=1.5 must be a whole number of steps" (it is a factor), and "-1 must be ... >= 0"
    with pytest.raises(ValueError, match=r"T_mult=.* must be an integer >= 1 \(each cycle lasts T_mult times"):
        from_spec(f"cosine_restarts lr0=0.1 T_0=10 unit=step T_mult={bad}")
    assert from_spec("cosine_restarts lr0=0.1 T_0=10 unit=step T_mult=2.0").T_mult == 2


@pytest.mark.parametrize("key", ["patience", "cooldown"])
def test_plateau_counts_are_named_in_observations(key: str) -> None:
    with pytest.raises(ValueError, match=rf"{key}=1.5 must be a whole number of observations"):
        from_spec(f"plateau {key}=1.5")


def test_a_tensor_beta1_stays_a_tensor_per_group_and_the_defaults_stay_put() -> None:
    a, b = _param(), _param()
    opt = torch.optim.Adam([{"params": [a]}, {"params": [b]}], lr=torch.tensor(0.01),
                           betas=(torch.tensor(0.9), torch.tensor(0.999)), foreach=False)
    sched = from_spec("onecycle max_lr=0.1", total_steps=10).to_torch(opt)
    for _ in range(3):
        a.grad, b.grad = torch.ones(2), torch.ones(2)
        opt.step()
        sched.step()
    want = sched.schedule.momentum(3)
    beta1 = [g["betas"][0] for g in opt.param_groups]
    # before: replaced by a float each step (a compiled step recompiles at every new value)
    assert all(isinstance(v, torch.Tensor) and float(v) == pytest.approx(want) for v in beta1)
    assert beta1[0] is not beta1[1] and float(opt.defaults["betas"][0]) == pytest.approx(0.9)
    sched.step()
    assert opt.param_groups[0]["betas"][0] is beta1[0]  # filled in place from then on
    # a float beta1 / momentum is still set as a float, as torch's OneCycleLR does
    sgd = torch.optim.SGD([_param()], lr=0.1, momentum=0.9)
    from_spec("onecycle max_lr=0.1", total_steps=10).to_torch(sgd)
    assert sgd.param_groups[0]["momentum"] == 0.95
