"""The schedule picture is drawn from the record; the key-points summary reads the same record."""

from __future__ import annotations

from pathlib import Path

import pytest

from lrkit.plots.schedule import plot_schedule
from lrkit.schedules import from_spec
from lrkit.schedules.report import key_points


def test_plot_draws_lr_and_momentum_from_records(tmp_path: Path) -> None:
    a = from_spec("onecycle max_lr=0.1", epochs=5, steps_per_epoch=20).record()
    b = from_spec("cosine lr0=0.1 warmup_steps=10 warmup_bias_lr=0.2", epochs=5, steps_per_epoch=20).record()
    out = tmp_path / "sub" / "lr.png"
    fig = plot_schedule([a, b], path=out, log_y=True)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lr_ax, mom_ax = fig.axes[0], fig.axes[1]
    lines = lr_ax.get_lines()
    assert list(lines[0].get_ydata()) == a["lr"]  # the curve is the record, not recomputed
    assert list(lines[2].get_ydata()) == b["lr_bias"]  # the bias groups' warmup, dashed
    assert list(mom_ax.get_lines()[0].get_ydata()) == a["momentum"]
    assert lr_ax.get_yscale() == "log"


def test_plot_without_momentum_has_one_panel_and_long_runs_are_thinned() -> None:
    rec = from_spec("linear lr0=0.1", total_steps=50_000).record()
    fig = plot_schedule(rec)
    axes = [ax for ax in fig.axes if ax.get_ylabel()]
    assert [ax.get_ylabel() for ax in axes] == ["learning rate"]
    ys = axes[0].get_lines()[0].get_ydata()
    assert len(ys) <= 20_001 and ys[0] == rec["lr"][0] and ys[-1] == rec["lr"][-1]
    with pytest.raises(ValueError, match="'lr' and 'momentum'"):
        plot_schedule({"lr": [1.0]})


def test_key_points_of_a_record() -> None:
    rec = from_spec("step lr0=0.1 step_size=2 gamma=0.5", epochs=6, steps_per_epoch=10).record()
    kp = key_points(rec)
    assert [(r["phase"], r["start"], r["end"], r["lr_start"]) for r in kp["phases"]] == [
        ("level 0", 0, 19, 0.1), ("level 1", 20, 39, 0.05), ("level 2", 40, 59, 0.025)]
    assert kp["max"] == {"step": 0, "lr": 0.1} and kp["min"] == {"step": 40, "lr": 0.025}
    assert kp["last"]["momentum"] is None


def test_record_without_peak_is_a_multiplier_and_base_lr_makes_it_absolute() -> None:
    s = from_spec("cosine lrf=0.5", total_steps=10)
    rel = s.record()
    assert rel["absolute"] is False and rel["lr"][0] == 1.0
    ab = s.record(base_lr=0.2)
    assert ab["absolute"] is True and ab["lr"] == pytest.approx([0.2 * v for v in rel["lr"]])
    with pytest.raises(ValueError, match="no fixed length"):
        from_spec("step step_size=3 unit=step").record()
