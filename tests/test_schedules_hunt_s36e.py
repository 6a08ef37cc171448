"""Session 36 (helper e): bugs found in lrkit.schedules and ``lrkit schedule``, each with its failing-first test."""

from __future__ import annotations

import torch

from lrkit.schedules import from_spec


def _sgd(lr: float = 0.1) -> torch.optim.Optimizer:
    return torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=lr, momentum=0.9)


def test_cyclic_exp_range_in_epochs_decays_per_epoch_like_torch_stepped_per_epoch() -> None:
    # unit=epoch interval=epoch: torch's CyclicLR stepped once an epoch scales the amplitude by gamma ** epoch;
    # lrkit scaled it by gamma ** step (0.9 ** 3 at epoch 1 of 3-step epochs instead of 0.9)
    spe, epochs = 3, 12
    s = from_spec("cyclic base_lr=0.01 max_lr=0.1 step_size_up=2 unit=epoch interval=epoch mode=exp_range gamma=0.9",
                  epochs=epochs, steps_per_epoch=spe)
    opt = _sgd()
    ref = torch.optim.lr_scheduler.CyclicLR(opt, 0.01, 0.1, 2, mode="exp_range", gamma=0.9)
    for e in range(epochs):
        want_lr, want_mom = opt.param_groups[0]["lr"], opt.param_groups[0]["momentum"]
        for t in range(e * spe, (e + 1) * spe):
            assert abs(s.lr(t) - want_lr) < 1e-12, (e, t, s.lr(t), want_lr)
            assert abs(s.momentum(t) - want_mom) < 1e-12, (e, t)
        opt.step()
        ref.step()


def test_cyclic_exp_range_gamma_is_per_epoch_with_unit_epoch() -> None:
    # unit=epoch makes every time-like parameter an epoch one, as `exponential unit=epoch` does for its gamma:
    # per step, the amplitude scales by gamma ** (t / steps_per_epoch)
    spe = 4
    s = from_spec("cyclic base_lr=0.0 max_lr=1.0 step_size_up=1 unit=epoch mode=exp_range gamma=0.5",
                  steps_per_epoch=spe, total_steps=40)
    opt = _sgd(1.0)
    ref = torch.optim.lr_scheduler.CyclicLR(opt, 0.0, 1.0, spe, mode="exp_range", gamma=0.5 ** (1 / spe),
                                            cycle_momentum=False)
    for t in range(40):
        assert abs(s.lr(t) - opt.param_groups[0]["lr"]) < 1e-12, (t, s.lr(t), opt.param_groups[0]["lr"])
        opt.step()
        ref.step()


def test_unicode_minus_in_a_number_reads_as_minus() -> None:
    # '1e−3' pasted from a paper or a web page (U+2212 MINUS SIGN) was "lr0='1e−3' must be a number"
    from lrkit.schedules import parse_spec

    assert parse_spec("cosine lr0=1e\u22123 lrf=1e\u22122")[1] == {"lr0": 1e-3, "lrf": 1e-2}
    assert parse_spec("multistep milestones=3,\u22125")[1] == {"milestones": [3, -5]}
    s = from_spec("exponential lr0=1e\u22121 gamma=0.5 unit=step")
    assert s.lr(0) == 0.1 and s.lr(1) == 0.05
    import pytest

    with pytest.raises(ValueError, match=r"lr0=-0\.1 must be a finite number > 0"):
        from_spec("cosine lr0=\u22120.1", total_steps=10)
    assert parse_spec("cosine name=a\u2212b")[1] == {"name": "a\u2212b"}  # a word keeps its character


def test_cli_option_value_that_is_another_flag_is_refused(tmp_path, monkeypatch) -> None:
    # `--out --json` wrote a PNG named '--json' (and printed the table, not the JSON); `--compare --no-plot` said
    # "unknown schedule '--no-plot'": the flag after them was taken as their value
    from typer.testing import CliRunner

    from lrkit.cli.app import build_app

    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(build_app(), ["schedule", "cosine lr0=0.1", "-t", "5", "--no-chart", "--out", "--json"])
    assert out.exit_code == 2, out.output
    assert "--out needs a file name" in out.output and "'--json'" in out.output
    assert list(tmp_path.iterdir()) == []
    out = CliRunner().invoke(build_app(), ["schedule", "cosine lr0=0.1", "-t", "5", "-c", "--no-plot"])
    assert out.exit_code == 2, out.output
    assert "--compare needs a spec" in out.output and "'--no-plot'" in out.output
    assert "unknown schedule" not in out.output
    assert list(tmp_path.iterdir()) == []
    # a real file name beginning with '-' that is no flag stays allowed
    out = CliRunner().invoke(build_app(), ["schedule", "cosine lr0=0.1", "-t", "5", "--no-chart", "--out", "-lr.png"])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "-lr.png").is_file()


def test_cli_warns_when_total_steps_overrides_epochs_times_steps_per_epoch(tmp_path, monkeypatch) -> None:
    # `-e 3 -n 5 -t 20` drew a 20-step (4-epoch) run and said nothing about the 3 epochs asked for
    from typer.testing import CliRunner

    from lrkit.cli.app import build_app

    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(build_app(), ["schedule", "cosine lr0=0.1", "-e", "3", "-n", "5", "-t", "20",
                                           "--no-plot", "--no-chart"])
    assert out.exit_code == 0, out.output
    text = " ".join(out.output.split())
    assert "warning: --total-steps 20 wins over --epochs 3 x --steps-per-epoch 5 = 15 steps" in text, text
    assert "20 steps (4 epochs)" in text
    # options that agree stay quiet, and so does --json's stdout
    out = CliRunner().invoke(build_app(), ["schedule", "cosine lr0=0.1", "-e", "3", "-n", "5", "-t", "15",
                                           "--no-plot", "--no-chart"])
    assert out.exit_code == 0 and "warning" not in out.output, out.output


def test_cli_base_lr_is_checked_as_the_peak_the_spec_would_give(tmp_path, monkeypatch) -> None:
    # `cosine eta_min=0.01 --base-lr 0.005` drew an LR climbing from 0.005 to 0.01 (`cosine lr0=0.005 eta_min=0.01` is
    # refused); `cyclic base_lr=0.01 --base-lr 0.005` named a max_lr=0.005 the user never wrote
    from typer.testing import CliRunner

    from lrkit.cli.app import build_app

    monkeypatch.chdir(tmp_path)
    for spec, why in (("cosine eta_min=0.01", "eta_min=0.01 must not exceed lr0=0.005"),
                      ("cyclic base_lr=0.01 step_size_up=2", "base_lr=0.01 must not exceed max_lr=0.005")):
        out = CliRunner().invoke(build_app(), ["schedule", spec, "-t", "10", "--base-lr", "0.005", "--no-plot"])
        text = " ".join(out.output.split())
        assert out.exit_code == 2, text
        assert "--base-lr 0.005" in text and why in text, text
    out = CliRunner().invoke(build_app(), ["schedule", "cosine eta_min=0.01", "-t", "10", "--base-lr", "0.05",
                                           "--no-plot", "--no-chart"])
    assert out.exit_code == 0, out.output
    assert "0.05" in out.output
