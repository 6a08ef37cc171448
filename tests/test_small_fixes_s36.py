"""Session 36: fixes from earlier sessions' "noticed, left alone" lists, each with a test that fails without it."""

from __future__ import annotations

import functools
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist

import lrkit
from _dist_s36 import bad_loss_worker
from _helpers import killed_run, spawn_ranks

needs_dist = pytest.mark.skipif(not dist.is_available() or sys.platform == "win32", reason="needs torch.distributed")


@needs_dist
@pytest.mark.parametrize("call", ["after_backward", "after_validation"])
def test_sync_loss_bad_loss_on_one_rank_stops_every_rank(tmp_path: Path, call: str) -> None:
    # before: rank 1 raised its TypeError before the loss all-reduce, and rank 0 waited in it for the timeout
    errors = [r["error"] for r in spawn_ranks(bad_loss_worker, tmp_path, call)]
    assert errors[1][0] in ("TypeError", "ValueError") and "stopped on every rank" not in errors[1][1]
    assert errors[1][1].startswith(f"{call}(")  # the call that was given the bad loss
    assert errors[0][0] == "ValueError"
    assert f"Monitor.{call}" in errors[0][1] and "stopped on every rank" in errors[0][1]
    assert "the loss given on rank 1" in errors[0][1]


@pytest.mark.parametrize(("out_shape", "y_shape", "fix"), [((8, 1), (8,), "y.view_as(out)"),
                                                         ((8,), (8, 1), "y.squeeze(-1)")])
def test_find_lr_loss_failure_on_a_trailing_one_says_how_to_line_up_the_shapes(
        out_shape: tuple[int, ...], y_shape: tuple[int, ...], fix: str) -> None:
    # before: only "pass a loss_fn that fits them (cross_entropy takes class-index targets, ...)"
    torch.manual_seed(0)
    last = torch.nn.Flatten(0) if out_shape == (8,) else torch.nn.Identity()
    model = torch.nn.Sequential(torch.nn.Linear(4, 1), last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = [(torch.randn(8, 4), torch.randint(0, 2, y_shape).float()) for _ in range(3)]
    with pytest.raises(ValueError, match="differ only by a trailing 1") as info:
        lrkit.find_lr(model, opt, data, loss_fn=torch.nn.BCEWithLogitsLoss(), num_steps=10)
    assert f"loss_fn=lambda out, y: BCEWithLogitsLoss()(out, {fix})" in str(info.value)
    assert model[0].weight.grad is None  # nothing was trained


def dot_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (out.flatten() @ y.flatten()) ** 2


def test_dtype_fix_still_names_a_function_loss_by_its_name() -> None:
    model = torch.nn.Linear(4, 2)
    data = [(torch.randn(8, 4), torch.randn(8, 2, dtype=torch.float64)) for _ in range(3)]
    with pytest.raises(ValueError, match="give them one dtype") as info:
        lrkit.find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), data, loss_fn=dot_loss, num_steps=10)
    assert "loss_fn=lambda out, y: dot_loss(out, y.to(out.dtype))" in str(info.value)


@pytest.mark.parametrize(("first", "again"), [(True, {}), ({}, True), (True, "rollback"), ("rollback", True),
                                              ({"on_divergence": "rollback"}, True), (True, "true"),
                                              ({"backoff": 0.3}, True), ({"max_rollbacks": 8}, "rollback")])
def test_resume_takes_a_monitor_setting_that_means_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            first: Any, again: Any) -> None:
    # before: monitor={} or "rollback" against a run trained with monitor=True was refused as a changed setting
    kw = {"data": "iris", "model": "linear", "epochs": 3, "lr0": 0.1, "project": str(tmp_path), "name": "r",
          "verbose": False, "plots": False}
    killed_run(monkeypatch, lambda: lrkit.train(**kw, monitor=first), nth=2)
    resumed = lrkit.train(**{**kw, "monitor": again}, resume=True)
    assert len(resumed.history) == 3


def test_resume_still_refuses_a_monitor_setting_that_differs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kw = {"data": "iris", "model": "linear", "epochs": 3, "lr0": 0.1, "project": str(tmp_path), "name": "r",
          "verbose": False, "plots": False}
    killed_run(monkeypatch, lambda: lrkit.train(**kw, monitor=True), nth=2)
    with pytest.raises(ValueError, match=r"resume: monitor=\{'on_divergence': 'stop'\} differs from the run being "
                                         r"resumed \(monitor=True\)"):
        lrkit.train(**{**kw, "monitor": "stop"}, resume=True)
    with pytest.raises(ValueError, match=r"resume: monitor=\{'backoff': 0.5\} differs"):
        lrkit.train(**{**kw, "monitor": {"backoff": 0.5}}, resume=True)
    with pytest.raises(ValueError, match=r"resume: monitor=False differs"):
        lrkit.train(**{**kw, "monitor": False}, resume=True)


def test_find_lr_warns_of_the_users_own_optimizer_step_hooks() -> None:
    # before: an EMA updated from a step hook silently took the range test's weights (find_lr cannot put it back)
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    ema = torch.optim.swa_utils.AveragedModel(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = [(torch.randn(8, 4), torch.randn(8, 1)) for _ in range(4)]
    # lrkit's own hooks (a schedule's step counter, the monitor's order check) are not the user's
    sched = lrkit.schedules.from_spec("onecycle max_lr=0.1", total_steps=100).to_torch(opt)
    lrkit.Monitor(model, opt, scheduler=sched)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*step hooks")
        lrkit.find_lr(model, opt, data, num_steps=20)

    def ema_update(optimizer: Any, args: Any, kwargs: Any) -> None:
        ema.update_parameters(model)

    handles = [opt.register_step_post_hook(ema_update),
               register_optimizer_step_pre_hook(functools.partial(lambda *a: None))]
    try:
        with pytest.warns(UserWarning, match=r"step hooks of your own \(<lambda>, ema_update\)") as rec:
            lrkit.find_lr(model, opt, data, num_steps=20)
    finally:
        for h in handles:
            h.remove()
    assert any(Path(w.filename).name == "test_small_fixes_s36.py" for w in rec)  # points at the find_lr call
    assert int(ema.n_averaged) > 0  # what the warning is about


def test_train_says_an_optimizer_class_without_weight_decay_does_not_use_it(tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    # before: Rprop was built with weight_decay in its groups, which it never reads, and nothing said so
    kw = {"data": "iris", "model": "linear", "epochs": 1, "lr0": 0.01, "project": str(tmp_path), "plots": False}
    lrkit.train(**kw, optimizer=torch.optim.Rprop)
    assert "Rprop takes no weight_decay: weight_decay=0.0005 is not used" in capsys.readouterr().out
    lrkit.train(**kw, optimizer=torch.optim.Rprop, weight_decay=0.0)
    lrkit.train(**kw, optimizer=torch.optim.SGD)
    assert "takes no weight_decay" not in capsys.readouterr().out


def test_npz_of_many_channels_of_small_images_is_not_taken_for_channels_last(tmp_path: Path) -> None:
    # before: x of shape (N, 8, 4, 4) — 8 channels of 4x4 — was refused as channels-last (N, H, W, C)
    import numpy as np

    from lrkit.train.data import load_data

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "a.npz", x=rng.normal(size=(20, 8, 4, 4)), y=np.arange(20) % 2)
    data = load_data(str(tmp_path / "a.npz"))
    assert tuple(data.train[0][0].shape) == (8, 4, 4)
    np.savez(tmp_path / "b.npz", x=rng.normal(size=(20, 16, 16, 3)), y=np.arange(20) % 2)
    with pytest.raises(ValueError, match=r"looks channels-last \(N, H, W, C\), with 3 channel\(s\) of 16x16"):
        load_data(str(tmp_path / "b.npz"))


def test_a_builtin_name_that_is_also_a_file_here_says_which_it_read(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # before: a file named "iris" in the working directory was passed over for the built-in without a word
    from lrkit.train.data import load_data

    monkeypatch.chdir(tmp_path)
    assert not any("is not read" in n for n in load_data("iris").info.notes)
    (tmp_path / "iris").write_text("a,b,y\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n1,2,0\n3,4,1\n")
    notes = load_data("iris").info.notes
    assert any("data='iris' is the built-in dataset; the file of that name in this folder is not read: to train "
               "on it, give it its format's suffix" in n for n in notes)
    (tmp_path / "iris").rename(tmp_path / "iris.csv")
    assert load_data("iris.csv").info.input_shape == (2,)  # the way to the file


@pytest.mark.parametrize(("finder_kwargs", "run", "said"), [
    ({"accumulation_steps": 4}, {"accumulate": 2},
     "finder_kwargs accumulation_steps=4 differs from the run's accumulate=2"),
    ({"accumulation_steps": 2}, {}, "finder_kwargs accumulation_steps=2 differs from the run's accumulate=1"),
    ({"max_grad_norm": 5.0}, {"max_grad_norm": 1.0}, "finder_kwargs max_grad_norm=5.0 differs from the run's "
                                                       "max_grad_norm=1.0"),
    ({"accumulation_steps": 2}, {"accumulate": 2}, None),
    ({"accumulation_steps": 1}, {}, None),
])
def test_choose_lr0_says_when_finder_kwargs_step_otherwise_than_the_run(
        finder_kwargs: dict[str, Any], run: dict[str, Any], said: str | None) -> None:
    # before: the range test ran with the finder_kwargs' accumulation/clipping and the trials with the run's, silently
    from lrkit.train.auto import choose_lr0

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(192, 6, generator=g)
    y = x @ torch.randn(6, 1, generator=g)
    data = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 192, 16)]
    model = torch.nn.Linear(6, 1)
    lines: list[str] = []
    choose_lr0(model, torch.optim.SGD(model.parameters(), lr=0.01), data, data[:4], total_steps=200,
               make_scheduler=lambda o, n: torch.optim.lr_scheduler.CosineAnnealingLR(o, n),
               finder_kwargs=dict(finder_kwargs), log=lines.append, **run)
    notes = [line for line in lines if "differs from the run's" in line]
    assert ([said] if said else []) == [n[n.index("finder_kwargs"):n.index(": the range test")] for n in notes]


def test_train_moves_a_loss_modules_tensors_to_the_run_device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    # before: CrossEntropyLoss(weight=...) stayed on the CPU while the model and batches went to the GPU, and the
    # first loss failed with torch's device mismatch. No GPU here: the placement is checked where it is decided.
    import lrkit.train.trainer as trainer

    seen: list[tuple[Any, torch.device]] = []
    place = trainer._place_loss_module
    monkeypatch.setattr(trainer, "_place_loss_module",
                        lambda fn, device: seen.append((fn, device)) or place(fn, device))
    loss = torch.nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0, 1.0]))
    lrkit.train(data="iris", model="linear", epochs=1, lr0=0.1, loss_fn=loss, project=str(tmp_path), plots=False)
    assert (loss, torch.device("cpu")) in seen
    assert "moved its" not in capsys.readouterr().out  # already where the run is: nothing to say
    assert trainer._place_loss_module(loss, torch.device("meta")) == "1 buffer" and loss.weight.is_meta


def test_plot_results_of_a_missing_file_names_it(tmp_path: Path) -> None:
    # before: open()'s bare FileNotFoundError
    from lrkit.plots.results import plot_results

    with pytest.raises(ValueError, match=r"'.*nope.results\.csv' does not exist; pass a run folder"):
        plot_results(tmp_path / "nope" / "results.csv")
    assert not (tmp_path / "nope").exists()


def test_cooldown_after_a_schedule_ending_nearly_at_zero_warns() -> None:
    # before: only an end of exactly 0 was warned about; onecycle ends at 1/(25 * 1e4) = 4e-6 of its peak
    from lrkit.schedules import from_spec

    with pytest.warns(UserWarning, match=r"'onecycle' schedule already ends at 4e-06 of its peak LR, nearly 0, so "
                                         r"its cooldown of 3 steps trains at almost nothing"):
        s = from_spec("onecycle max_lr=0.1 cooldown_steps=3", total_steps=10)
    assert max(s(t) for t in range(7, 10)) <= 4e-6 * (1 + 1e-9)  # the cooldown: at most the end multiplier
    with warnings.catch_warnings():  # 0.01 of the peak (lrf=0.01) is left to decay from
        warnings.simplefilter("error")
        from_spec("cosine lr0=0.1 lrf=0.01 cooldown_frac=0.2", total_steps=100)


def test_to_torch_names_the_param_group_whose_lr_a_schedule_refuses_as_its_peak() -> None:
    # before: "cyclic: max_lr=0.005 (the peak LR) must not be below base_lr=0.01" — a max_lr nobody wrote
    from lrkit.schedules import from_spec

    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD([{"params": [model.weight], "lr": 0.1}, {"params": [model.bias], "lr": 0.005}], lr=0.1)
    before = [dict((k, v) for k, v in g.items() if k != "params") for g in opt.param_groups]
    with pytest.raises(ValueError, match=r"param group 1's lr=0.005 is the peak LR of 'cyclic' for that group .*"
                                         r"must not be below base_lr=0.01; give the spec its own peak"):
        from_spec("cyclic base_lr=0.01 step_size_up=2", total_steps=10).to_torch(opt)
    assert [dict((k, v) for k, v in g.items() if k != "params") for g in opt.param_groups] == before


def test_a_spec_value_with_a_stray_trailing_comma_is_the_value() -> None:
    # before: "lr0=0.1," read as a list of one, and the error said "lr0=[0.1] must be a number"
    from lrkit.schedules import from_spec

    assert from_spec("cosine lr0=0.1,", total_steps=10).peak_lr == 0.1
    assert from_spec("multistep lr0=0.1 unit=step milestones=3,", total_steps=10)(5) == \
        from_spec("multistep lr0=0.1 milestones=[3] unit=step", total_steps=10)(5)
    assert from_spec("multistep lr0=0.1 milestones=3,6 unit=step", total_steps=10)(7) < \
        from_spec("multistep lr0=0.1 milestones=3 unit=step", total_steps=10)(7)


class _Net(torch.nn.Module):
    def __init__(self, in_features: int = 4, num_outputs: int = 3) -> None:
        super().__init__()
        self.head = torch.nn.Linear(in_features, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)


def _make(in_features: int, num_outputs: int) -> torch.nn.Module:
    return _Net(in_features, num_outputs)


@pytest.mark.parametrize(("model", "said"), [
    (_Net, r"model=_Net is an nn.Module class, not a model: pass an instance, model=_Net\(...\), or the class by "
           r"name, model='test_small_fixes_s36:_Net'"),
    (_make, r"model=_make is a function: call it, model=_make\(...\), or give it by name, "
            r"model='test_small_fixes_s36:_make'"),
])
def test_train_given_a_model_class_or_factory_function_says_how_to_pass_it(tmp_path: Path, model: Any,
                                                                           said: str) -> None:
    # before: "model=<class '...'> must be a built-in model name, 'package.module:factory', or a torch nn.Module"
    with pytest.raises(ValueError, match=said):
        lrkit.train(model, data="iris", epochs=1, project=str(tmp_path), verbose=False)
    assert not any(tmp_path.iterdir())
    by_name = lrkit.train(said.split("model='")[1].split("'")[0], data="iris", epochs=1, lr0=0.1,
                          project=str(tmp_path), verbose=False, plots=False)  # the named form works
    assert len(by_name.history) == 1
