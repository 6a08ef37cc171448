"""Session 20b: a practitioner's walkthrough of schedules, LR scaling and fine-tuning groups in their own loop.

Each test pins a behaviour a user met while attaching lrkit schedules to their own optimizer, resuming, plotting and
building fine-tuning groups by hand (not through ``lrkit.train``).
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import lrkit
from lrkit.schedules import from_spec


def _two_groups(lrs: tuple[float, float], **extra: dict[str, float]) -> torch.optim.Optimizer:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    groups = [{"params": m[0].parameters(), "lr": lrs[0], **extra.get("g0", {})},
              {"params": m[1].parameters(), "lr": lrs[1], **extra.get("g1", {})}]
    return torch.optim.AdamW(groups, lr=lrs[1])


# --- hand-made groups with different LRs under a spec that names lr0 ----------------------------------------------

def test_groups_with_different_lrs_and_no_lr_scale_under_lr0_warn() -> None:
    """Bug: an optimizer with a backbone group at 1e-4 and a head group at 1e-3 (set by hand, no ``lr_scale``),
    scheduled by ``"cosine lr0=1e-3 ..."``, trained both groups at the same LR, silently: the spec's ``lr0`` is the
    peak of every group without ``lr_scale``, so the backbone's 10x lower LR was lost. Now a ``UserWarning`` says
    so and names the two ways to keep the ratios."""
    opt = _two_groups((1e-4, 1e-3))
    with pytest.warns(UserWarning, match=r"param_groups\[0\] and \[1\] have different LRs \(0\.0001, 0\.001\) but no "
                                         r"'lr_scale'.*lr0=0\.001.*lr_scale.*leave lr0 out"):
        from_spec("cosine lr0=1e-3 warmup_steps=2", total_steps=10).to_torch(opt)
    # the documented behaviour itself is unchanged: lr0 * lr_scale (default 1) for every group
    assert [g["lr"] for g in opt.param_groups] == [0.0, 0.0]


@pytest.mark.parametrize("case", ["lr_scale", "no_lr0", "same_lr", "one_group", "param_groups"])
def test_no_warning_where_the_ratios_are_kept_or_there_are_none(case: str) -> None:
    """The warning is only for groups whose ratio is really lost: none with ``lr_scale`` on every group, with a spec
    without ``lr0`` (each group's own LR is its peak), with groups at one LR, or with ``lrkit.param_groups``."""
    if case == "lr_scale":
        opt = _two_groups((1e-4, 1e-3), g0={"lr_scale": 0.1}, g1={"lr_scale": 1.0})
        spec = "cosine lr0=1e-3"
    elif case == "no_lr0":
        opt, spec = _two_groups((1e-4, 1e-3)), "cosine lrf=0.01"
    elif case == "same_lr":
        opt, spec = _two_groups((5e-3, 5e-3)), "cosine lr0=1e-3"
    elif case == "one_group":
        opt, spec = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.5), "cosine lr0=1e-3"
    else:
        model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 2))
        opt = torch.optim.AdamW(lrkit.param_groups(model, 1e-3, weight_decay=0.05, layer_decay=0.5))
        spec = "cosine lr0=1e-3 warmup_steps=2"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched = from_spec(spec, total_steps=10).to_torch(opt)
        for _ in range(3):
            opt.step()
            sched.step()


def test_a_group_added_later_with_its_own_lr_and_no_lr_scale_warns() -> None:
    """The same loss for a group added mid-run (a backbone unfrozen with ``lr=1e-5``): it follows ``lr0``, so the
    warning names it when the scheduler adopts it."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    opt = torch.optim.SGD(m[1].parameters(), lr=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched = from_spec("cosine lr0=1e-3", total_steps=10).to_torch(opt)
        opt.step()
        sched.step()
    opt.add_param_group({"params": m[0].parameters(), "lr": 1e-5})
    with pytest.warns(UserWarning, match=r"param_groups\[0\] and \[1\] have different LRs \(0\.001, 1e-05\)"):
        opt.step()
        sched.step()


def test_resume_of_a_bias_warmup_mid_warmup_does_not_warn() -> None:
    """Resuming mid-warmup with ``last_step=`` reads each group's ``initial_lr``, not its current LR (a bias group
    warming down sits above the others then): no false warning."""
    opt = _two_groups((1e-3, 1e-3), g0={"is_bias": True})
    spec = "cosine lr0=1e-3 warmup_steps=5 warmup_bias_lr=0.1"
    sched = from_spec(spec, total_steps=20).to_torch(opt)
    for _ in range(2):
        opt.step()
        sched.step()
    state = opt.state_dict()
    assert state["param_groups"][0]["lr"] != state["param_groups"][1]["lr"]
    opt2 = _two_groups((1e-3, 1e-3), g0={"is_bias": True})
    opt2.load_state_dict(state)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from_spec(spec, total_steps=20).to_torch(opt2, last_step=1)


# --- param_groups: head= without backbone_lr_scale -------------------------------------------------------------------

def test_param_groups_head_without_backbone_lr_scale_is_refused() -> None:
    """Bug: ``param_groups(model, lr, head="fcc")`` (a typo, and no ``backbone_lr_scale``) returned groups that
    ignored ``head=`` entirely, silently — where ``layer_id_fn=`` without ``layer_decay=`` is refused, and
    ``lrkit.train(head=...)`` without ``backbone_lr_scale`` is too. Now the same kind of error."""
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    with pytest.raises(ValueError, match=r"head='fcc' names the head for backbone_lr_scale, which is not set: pass "
                                         r"backbone_lr_scale="):
        lrkit.param_groups(model, 1e-3, head="fcc")
    with pytest.raises(ValueError, match=r"head=\('1',\) names the head for backbone_lr_scale"):
        lrkit.param_groups(model, 1e-3, layer_decay=0.5, head=("1",))


def test_param_groups_default_head_alone_is_fine() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    groups = lrkit.param_groups(model, 1e-3)
    assert [g["name"] for g in groups] == ["all/decay", "all/bias"]
    groups = lrkit.param_groups(model, 1e-3, backbone_lr_scale=0.1, head="1")
    assert [(g["name"], g["lr"]) for g in groups] == [
        ("backbone/decay", pytest.approx(1e-4)), ("backbone/bias", pytest.approx(1e-4)),
        ("head/decay", 1e-3), ("head/bias", 1e-3)]


def test_the_lost_ratio_warning_names_the_peak_as_the_spec_does() -> None:
    """A cyclic/one-cycle spec names its peak ``max_lr``: the warning says ``max_lr``, not ``lr0``."""
    opt = _two_groups((0.1, 0.2))
    with pytest.warns(UserWarning, match=r"gives its peak LR, max_lr=0\.1.*leave max_lr out of the spec"):
        from_spec("onecycle max_lr=0.1", total_steps=20).to_torch(opt)


# --- plot_schedule takes the schedule itself -----------------------------------------------------------------------

def test_plot_schedule_takes_a_schedule_object(tmp_path) -> None:
    """Bug: ``plot_schedule(schedule, path=...)`` — the schedule one just built — raised ``TypeError: 'OneCycle'
    object is not iterable``. A Schedule (alone or in a list) is now drawn from its bounded ``sampled_record``, the
    record ``lrkit schedule`` draws."""
    from lrkit.plots.schedule import plot_schedule

    s = from_spec("onecycle max_lr=0.1", epochs=3, steps_per_epoch=10)
    fig = plot_schedule(s, path=tmp_path / "oc.png")
    assert (tmp_path / "oc.png").read_bytes()[1:4] == b"PNG"
    (line,) = fig.axes[0].get_lines()
    assert list(line.get_ydata()) == pytest.approx(s.record()["lr"], rel=1e-12)
    fig2 = plot_schedule([s, from_spec("cosine lr0=0.1", total_steps=30).record()])
    assert len(fig2.axes[0].get_lines()) == 2


def test_plot_schedule_names_what_it_takes() -> None:
    from lrkit.plots.schedule import plot_schedule

    with pytest.raises(TypeError, match=r"plot_schedule takes a schedule record .* or a Schedule, not int"):
        plot_schedule(3)  # type: ignore[arg-type]
    open_ended = from_spec("step lr0=0.1 step_size=2 unit=step")
    with pytest.raises(ValueError, match=r"no fixed length.*record\(steps=N\)"):
        plot_schedule(open_ended)


# --- a refused state between two schedules that print alike -----------------------------------------------------------

def test_refused_state_from_a_lookalike_schedule_says_where_the_curves_part() -> None:
    """Confusing: two Python-built schedules of one family, length and peak (a warmup + cooldown vs a longer
    cooldown) both print as ``('cosine', total_steps=65, peak_lr=0.1)``, so the refusal read "saved from a different
    schedule (X) than this scheduler's (X)". It now says where the two curves part, step and LR."""
    from lrkit.schedules import Composed, Cooldown, Cosine, Warmup

    def opt() -> torch.optim.Optimizer:
        return torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)

    saved = Composed(Cosine(lr0=0.1, total_steps=50), warmup=Warmup(5), cooldown=Cooldown(10)).to_torch(opt())
    other = Composed(Cosine(lr0=0.1, total_steps=50), cooldown=Cooldown(15)).to_torch(opt())
    with pytest.raises(ValueError, match=r"\('cosine', total_steps=65, peak_lr=0\.1\) than this scheduler's "
                                         r"\('cosine', total_steps=65, peak_lr=0\.1\).*the two curves part at step 0: "
                                         r"LR 0 in the saved one, 0\.1 in this one"):
        other.load_state_dict(saved.state_dict())


# --- lr_scale on hand-made groups under a spec without lr0 ----------------------------------------------------------

def test_lr_scale_that_a_spec_without_lr0_cannot_apply_warns() -> None:
    """The mirror case: groups given ``lr_scale=0.1`` by hand but left at the optimizer's LR, under a spec without
    ``lr0`` (``"cosine lrf=0.1"``), trained every group at that one LR, silently — without a peak each group's own LR
    is its peak and ``lr_scale`` is taken as already in it (as ``lrkit.param_groups`` builds groups). Now a
    ``UserWarning`` names the group and the two ways to apply the scale."""
    opt = torch.optim.SGD([{"params": [torch.zeros(1)], "lr_scale": 0.1}, {"params": [torch.zeros(1)]}], lr=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from_spec("cosine lr0=1.0 lrf=0.1", total_steps=10).to_torch(opt)  # with a peak lr_scale applies: quiet
    assert [g["lr"] for g in opt.param_groups] == [pytest.approx(0.1), 1.0]
    opt = torch.optim.SGD([{"params": [torch.zeros(1)], "lr_scale": 0.1},
                           {"params": [torch.zeros(1)], "lr_scale": 1.0}], lr=1.0)
    with pytest.warns(UserWarning, match=r"param_groups\[0\] has lr_scale=0\.1 and param_groups\[1\] lr_scale=1, but "
                                         r"both start at LR 1.*'cosine lrf=0\.1' gives no peak LR.*lr0=\.\.\."):
        from_spec("cosine lrf=0.1", total_steps=10).to_torch(opt)
    assert [g["lr"] for g in opt.param_groups] == [1.0, 1.0]  # the documented behaviour is unchanged


def test_param_groups_under_a_spec_without_lr0_stay_quiet() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    opt = torch.optim.SGD(lrkit.param_groups(model, 0.1, layer_decay=0.5), lr=0.1, momentum=0.9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched = from_spec("onecycle", total_steps=20).to_torch(opt)
        opt.step()
        sched.step()
