"""``lr0="auto"``'s opt-in prefix search (session 29): ``choose_lr0(search="prefix")``, ``lrkit.train(auto_search=
"prefix")``, ``lrkit train auto_search=prefix`` and ``benchmarks/auto_lr.py --search prefix``.

The design was pre-registered and tested on a fresh set before it was built (docs/benchmarks/auto_lr.md, session 28):
the range test as lr0="auto" runs it (a quarter of the run) suggests ``s``; five trials at ``s * 10^(k/2)``,
``k = -2..2``, each the run's *real* schedule (built over the whole run) for its first ``round(0.2 T)`` steps, then a
linear anneal to zero over ``round(0.05 T)``; the best trial's LR, moved to the parabola's vertex (a quarter decade at
most); ``s / 10^1.5`` when all diverge. These tests hold the library to that design.
"""

from __future__ import annotations

import math
import random
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import lrkit
from lrkit._config import TrainConfig
from lrkit.train import auto as auto_mod
from lrkit.train.auto import AutoLR, Trial, choose_lr0

QUIET = {"verbose": False, "plots": False}


def _problem(seed: int = 0) -> tuple[torch.nn.Module, torch.optim.Optimizer, DataLoader, DataLoader]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(320, 6, generator=g)
    y = x @ torch.randn(6, 1, generator=g) + 0.1 * torch.randn(320, 1, generator=g)
    train = DataLoader(TensorDataset(x[:256], y[:256]), batch_size=32, shuffle=True,
                       generator=torch.Generator().manual_seed(seed))  # fmt: skip
    val = DataLoader(TensorDataset(x[256:], y[256:]), batch_size=64)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    return model, torch.optim.SGD(model.parameters(), lr=0.123, momentum=0.9), train, val


def _warmup_cosine(optimizer: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    warm = max(1, round(0.1 * steps))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda t: (t + 1) / warm if t < warm else 0.5 * (1 + math.cos(math.pi * (t - warm) / (steps - warm)))
    )


# ------------------------------------------------------------------------------------------------ choose_lr0
@pytest.fixture(scope="module")
def chosen() -> tuple[AutoLR, list[tuple[int, list[float]]], dict[str, Any]]:
    """choose_lr0(search="prefix") on a 200-step run, with every optimizer step's LR recorded per trial."""
    model, opt, train, val = _problem()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    built: list[tuple[int, list[float]]] = []  # (steps the schedule was built over, the LR of each step it drove)

    hooked: set[int] = set()

    def make_scheduler(optimizer: torch.optim.Optimizer, steps: int) -> Any:
        built.append((steps, []))
        if id(optimizer) not in hooked:  # one hook per optimizer, recording into the latest build's list
            hooked.add(id(optimizer))
            optimizer.register_step_pre_hook(lambda o, *_: built[-1][1].append(float(o.param_groups[0]["lr"])))
        return _warmup_cosine(optimizer, steps)

    auto = choose_lr0(model, opt, train, val, total_steps=200, make_scheduler=make_scheduler, search="prefix")
    after = {k: v for k, v in model.state_dict().items()}
    restored = {"params": all(torch.equal(before[k], after[k]) for k in before),
                "lr": opt.param_groups[0]["lr"], "state": len(opt.state)}  # fmt: skip
    return auto, built, restored


def test_five_trials_half_a_decade_apart_around_the_suggestion(chosen: Any) -> None:
    auto, _, _ = chosen
    s = auto.to_dict()["suggestion"]
    assert [t.lr for t in auto.trials] == pytest.approx([s * 10 ** (k / 2) for k in (-2, -1, 0, 1, 2)])
    assert auto.trial_steps == 40 + 10  # round(0.2 * 200) + round(0.05 * 200)
    assert auto.extra_steps == auto.finder.num_steps_run + sum(t.steps for t in auto.trials)
    assert auto.finder.num_steps_run <= 50  # the range test: a quarter of the run
    assert auto.to_dict()["settings"]["search"] == "prefix"
    assert "5 trials of 50 steps (the run's schedule for its first 40 steps, then a linear anneal" in auto.reason


def test_each_trial_follows_the_runs_real_schedule_then_anneals_to_zero(chosen: Any) -> None:
    auto, built, _ = chosen
    probes, trials = built[:2], built[2:]  # first: the schedule-scale check's two builds on a stand-in (LRs 1, 10)
    assert [lrs[0] for _, lrs in probes] == pytest.approx([1 / 20, 10 / 20])
    finished = [t for t in auto.trials if math.isfinite(t.val_loss) and t.steps == 50]
    assert len(trials) == len(auto.trials) and finished
    for (steps, lrs), trial in zip(trials, auto.trials):
        assert steps == 200  # built over the whole run, not compressed to the trial
        probe = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=trial.lr)
        real = _warmup_cosine(probe, 200)
        want = []
        for _ in range(41):
            want.append(probe.param_groups[0]["lr"])
            probe.step()
            real.step()
        at_prefix = want[40]
        want = want[:40] + [at_prefix * (1 - (k + 1) / 10) for k in range(10)]
        assert lrs == pytest.approx(want[: len(lrs)], rel=1e-9, abs=1e-15)
    assert len(trials[0][1]) == 50 and trials[0][1][-1] == 0.0  # the last step of a finished trial at LR 0


def test_the_pick_is_the_registered_rule(chosen: Any) -> None:
    auto, _, _ = chosen
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import prefix_search

    s = auto.to_dict()["suggestion"]
    registered = prefix_search.pick(prefix_search.candidates(s), [t.val_loss for t in auto.trials], s)
    assert auto.lr == pytest.approx(registered, rel=1e-9)


def test_everything_is_restored(chosen: Any) -> None:
    _, _, restored = chosen
    assert restored == {"params": True, "lr": 0.123, "state": 0}


def test_the_library_pick_equals_the_registered_one_on_any_scores() -> None:
    """``_pick`` at the prefix spacing and the registration's own code agree (diverged trials, ties, edges)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import prefix_search

    rng = random.Random(0)
    for _ in range(500):
        s = 10 ** rng.uniform(-4, 0)
        cands = prefix_search.candidates(s)
        scores = [rng.choice([math.inf, 1.0, 1.0 + rng.random(), 2.0 * rng.random()]) for _ in cands]
        mine, _ = auto_mod._pick([Trial(c, v, 1) for c, v in zip(cands, scores)], spacing=auto_mod.PREFIX_SPACING)
        assert mine == pytest.approx(prefix_search.pick(cands, scores, s), rel=1e-9), (scores, s)


def test_every_trial_diverging_falls_back_a_decade_and_a_half_below_the_suggestion() -> None:
    trials = [Trial(0.01 * 10 ** (k / 2), math.inf, 3) for k in (-2, -1, 0, 1, 2)]
    lr, how = auto_mod._pick(trials, spacing=auto_mod.PREFIX_SPACING)
    assert lr == pytest.approx(0.01 / 10**1.5) and "every candidate diverged" in how


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"search": "prefx"}, r"unknown search 'prefx'\. Did you mean 'prefix'\? Valid: guard, prefix"),
        ({"search": 1}, r"search=1 must be one of: guard, prefix"),
        ({"search": "prefix", "budget": 0.5}, r"budget=0\.5 does not apply to search='prefix': its cost is fixed .* "
                                              r"about 1\.5 runs of extra compute\); leave budget out"),
        ({"search": "prefix", "num_candidates": 3}, r"num_candidates=3 does not apply to search='prefix'"),
        ({"search": "prefix", "total_steps": 39}, r"choose_lr0\(search='prefix'\) needs at least 10 optimizer steps "
                                                  r"for its range test \(0\.25 of the run\), but total_steps=39 allows "
                                                  r"9: it needs a run of at least 40 steps; .*use search='guard' \(its "
                                                  r"default budget=0\.3 holds a range test of 11 steps\)"),
        ({"search": "prefix", "total_steps": 30}, r"needs a run of at least 40 steps; .* or use search='guard' with "
                                                  r"budget=0\.34 or more"),
        ({"search": "prefix", "finder_kwargs": {"num_steps": 60}}, r"num_steps=60 exceeds the range test's share of "
                                                                   r"search='prefix': 0\.25 x total_steps=200 = 50"),
    ],
)
def test_bad_settings_are_named_before_any_compute(kwargs: dict[str, Any], match: str) -> None:
    model, opt, train, val = _problem()
    before = [p.clone() for p in model.parameters()]
    kwargs = {"total_steps": 200, **kwargs}
    with pytest.raises(ValueError, match=match):
        choose_lr0(model, opt, train, val, make_scheduler=_warmup_cosine, **kwargs)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_the_search_is_matched_in_any_case_and_guard_is_the_default() -> None:
    model, opt, train, val = _problem()
    auto = choose_lr0(model, opt, train, val, total_steps=120, make_scheduler=_warmup_cosine, search="Prefix")
    assert len(auto.trials) == 5 and auto.to_dict()["settings"]["search"] == "prefix"
    guard = choose_lr0(model, opt, train, val, total_steps=120, make_scheduler=_warmup_cosine)
    assert guard.to_dict()["settings"]["search"] == "guard" and guard.extra_fraction <= 0.3


# ------------------------------------------------------------------------------------------------ lrkit.train
def test_lrkit_train_runs_the_prefix_search_and_says_its_cost(tmp_path: Path, capsys: Any) -> None:
    r = lrkit.train(data="synthetic-regression", model="linear", epochs=4, batch=64, lr0="auto", optimizer="SGD",
                    auto_search="prefix", warmup_epochs=0, project=tmp_path, plots=False)  # fmt: skip
    assert r.lr0_source == "auto" and r.lr0 == pytest.approx(r.auto.lr)
    assert len(r.auto.trials) == 5 and r.auto.to_dict()["settings"]["search"] == "prefix"
    assert 1.2 <= r.auto.extra_fraction <= 1.6
    text = " ".join(capsys.readouterr().out.split())  # (a terminal's wrapping undone)
    assert ("lr0=auto — range test + five prefix trials of the run's own schedule (auto_search=prefix), about 150% "
            "extra compute") in text


def test_lrkit_train_refuses_an_auto_budget_with_the_prefix_search(tmp_path: Path, capsys: Any) -> None:
    with pytest.raises(ValueError, match=r"auto_budget=0\.5 does not apply to auto_search='prefix'.*use "
                                         r"auto_search='guard' to cap the cost"):
        lrkit.train(data="synthetic-regression", model="linear", epochs=4, batch=64, lr0="auto", auto_budget=0.5,
                    auto_search="prefix", project=tmp_path, plots=False)  # fmt: skip
    assert capsys.readouterr().out == ""  # before any data is read: no plan, no plan line
    assert not any(tmp_path.iterdir())  # and no run folder


def test_lrkit_train_names_a_run_too_short_for_the_prefix_search(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"lr0='auto' with auto_search='prefix' needs at least 10 optimizer steps .*"
                                         r"use auto_search='guard' with auto_budget=0\.\d+ or more, or pass an "
                                         r"explicit lr0"):
        lrkit.train(data="synthetic-regression", model="linear", epochs=1, batch=64, lr0="auto",
                    auto_search="prefix", project=tmp_path, **QUIET)  # fmt: skip


def test_auto_search_without_lr0_auto_is_a_note(tmp_path: Path, capsys: Any) -> None:
    lrkit.train(data="synthetic-regression", model="linear", epochs=1, batch=64, lr0=0.01, auto_search="prefix",
                project=tmp_path, plots=False)  # fmt: skip
    text = " ".join(capsys.readouterr().out.split())
    assert ("note — auto_search=prefix changes nothing: it is how lr0='auto' chooses the LR, and lr0 is 0.01 (user)"
            in text)


def test_the_config_key_checks_its_value() -> None:
    assert TrainConfig.from_tokens(["auto_search=PREFIX"]).auto_search == "prefix"
    assert TrainConfig.from_tokens([]).auto_search == "guard"
    with pytest.raises(ValueError, match=r"unknown auto_search 'prefx'\. Did you mean 'prefix'\?"):
        TrainConfig.from_tokens(["auto_search=prefx"])


# ------------------------------------------------------------------------------------------------ the benchmark
def test_the_benchmark_refuses_a_budget_with_the_prefix_search(capsys: Any) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import auto_lr

    with pytest.raises(SystemExit) as info:
        auto_lr.main(["--search", "prefix", "--budget", "0.5", "--tasks", "wine_mlp"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--budget 0.5 does not apply to --search prefix (its cost is fixed: about 1.5 runs)" in err
    with pytest.raises(SystemExit):
        auto_lr.main(["--search", "prefx"])
    assert "argument --search: invalid choice: 'prefx'" in capsys.readouterr().err


def test_the_cli_takes_auto_search(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from lrkit.cli.app import build_app

    res = CliRunner().invoke(build_app(), ["train", "data=synthetic-regression", "model=linear", "epochs=4", "batch=64",
                                           "lr0=auto", "auto_search=prefix", "optimizer=sgd", "warmup_epochs=0",
                                           "plots=false", f"project={tmp_path}"])  # fmt: skip
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "(auto_search=prefix), about 150% extra compute" in text and "lr0=auto: chose" in text
    res = CliRunner().invoke(build_app(), ["train", "data=synthetic-regression", "auto_search=prefx",
                                           f"project={tmp_path}"])  # fmt: skip
    assert res.exit_code != 0 and "Did you mean 'prefix'?" in res.output
