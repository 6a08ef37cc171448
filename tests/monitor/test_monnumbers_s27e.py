"""Session 27e: the numbers ``lrkit.Monitor`` reports, recomputed independently in a hand-written loop.

Each event's quoted loss, running median and threshold against a median of the previous losses computed here (with
the record a rollback restores), the rollback's model / optimizer / scheduler against copies taken before each step
(bit for bit), every later LR against the schedule's closed form times ``monitor.lr_scale``, ``summary()`` against
the events, and the event markers ``plot_results`` draws against each event's epoch (matplotlib artists, not pixels).
"""

from __future__ import annotations

import copy
import json
import math
import statistics

import matplotlib
import pytest
import torch

import lrkit
from lrkit.plots.monitor import ACTION_STYLES, CHECK_COLORS

matplotlib.use("Agg")


def _equal(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b


def _spike_threshold(previous: list[float], start: float) -> tuple[float, float]:
    """README *Checks*: ``median + max(6 sigma, (ratio - 1) median, floor L0)`` over the previous 50 losses."""
    ref = previous[-50:]
    m = statistics.median(ref)
    sigma = 1.4826 * statistics.median([abs(v - m) for v in ref])
    return m, m + max(6 * sigma, abs(m), 1.5 * abs(start))


@pytest.mark.parametrize("kind", ["sgd_steplr", "adam_lrkit"])
def test_events_rollbacks_and_lrs_recomputed(kind: str) -> None:
    torch.manual_seed(0)
    x, w = torch.randn(512, 20), torch.randn(20, 5)
    y = (x @ w).argmax(1)
    model = torch.nn.Sequential(torch.nn.Linear(20, 64), torch.nn.ReLU(), torch.nn.Linear(64, 5))
    if kind == "sgd_steplr":
        lr0 = 3.0
        opt: torch.optim.Optimizer = torch.optim.SGD(model.parameters(), lr=lr0, momentum=0.9, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.StepLR(opt, 30, 0.9)

        def schedule(t: int) -> float:
            return lr0 * 0.9 ** (t // 30)
    else:
        lr0 = 0.5
        opt = torch.optim.Adam(model.parameters(), lr=lr0)
        cosine = lrkit.schedules.from_spec("cosine", total_steps=200)
        sched = cosine.to_torch(opt)

        def schedule(t: int) -> float:
            return lr0 * cosine(t)
    monitor = lrkit.Monitor(model, opt, sched, grad_every=1, spike_grace=0)
    saved: dict[int, tuple[dict, dict, int, list[float]]] = {}
    record: list[float] = []  # the finite losses the monitor's record holds (as a rollback restores it)
    record_at: dict[int, list[float]] = {}
    seen = 0
    for step in range(200):
        i = (step * 32) % 512
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x[i:i + 32]), y[i:i + 32])
        loss.backward()
        value = loss.item()
        saved[step] = (copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict()),
                       sched.last_epoch, [g["lr"] for g in opt.param_groups])
        previous = list(record)
        record.append(value)
        record_at[step] = list(record)
        monitor.after_backward(loss)
        opt.step()
        sched.step()
        monitor.after_step()
        new, seen = monitor.events[seen:], len(monitor.events)
        filling = 0 < len(previous) < 50
        if previous:
            median, threshold = _spike_threshold(previous, record_at[0][0])
        if filling:  # while the window fills, the reference follows every loss: exactly the documented threshold
            assert any(e.check == "loss_spike" for e in new) == (value > threshold), (step, value, threshold)
        for event in new:
            assert event.step == step
            assert event.values["lr"] == pytest.approx(max(saved[step][3]), rel=1e-12)
            if event.check == "loss_spike":
                assert event.values["loss"] == pytest.approx(value, rel=1e-12)
                if filling:
                    assert event.values["median"] == pytest.approx(median, rel=1e-12)
                    assert event.values["threshold"] == pytest.approx(threshold, rel=1e-12)
                else:  # a full window's statistics are reused for up to 24 steps (RollingRecord.reference)
                    lagged = [_spike_threshold(previous[:len(previous) - j], record_at[0][0]) for j in range(25)]
                    assert any(event.values["median"] == pytest.approx(m, rel=1e-12)
                               and event.values["threshold"] == pytest.approx(t, rel=1e-12) for m, t in lagged)
                assert f"threshold {event.values['threshold']:.3g}" in event.reason
        if monitor.last_action == "rollback":
            state = model.state_dict()
            # the snapshot is from before a step whose checks passed: the model, optimizer and scheduler as they were
            # then; the latest such step is the one the monitor restored
            matches = [k for k in sorted(saved) if k < step and _equal(state, saved[k][0])
                       and _equal(opt.state_dict()["state"], saved[k][1]["state"])]
            assert matches, f"the rollback at step {step} restored no state the loop saw"
            k = matches[-1]
            assert sched.last_epoch == saved[k][2]  # the scheduler's clock went back with them
            record = list(record_at[k])
        lrs = [g["lr"] for g in opt.param_groups]
        assert lrs == pytest.approx([schedule(sched.last_epoch) * monitor.lr_scale] * len(lrs), rel=1e-9)
    events = monitor.events
    rollbacks = [e for e in events if e.action == "rollback"]
    assert rollbacks, "the test's LR must be high enough for a rollback"
    summary = monitor.summary()
    assert summary["rollbacks"] == monitor.rollbacks == len(rollbacks)
    assert summary["lr_scale"] == monitor.lr_scale == pytest.approx(0.3 ** len(rollbacks), rel=1e-12)
    assert summary["events"] == len(events)
    assert sum(summary["by_check"].values()) == sum(summary["by_action"].values()) == len(events)


def test_results_png_markers_at_event_epochs(tmp_path, monkeypatch) -> None:
    """plot_results puts each event's line (colour = check, style = action) and its rollback/stop triangle at the
    event's epoch, on all four panels."""
    import lrkit.plots.finder as finder
    from lrkit.plots.results import plot_results

    (tmp_path / "results.csv").write_text(
        "epoch,train_loss,val_loss,lr/all/decay,grad_norm\n1,2.0,1.9,0.1,3.0\n2,1.0,1.1,0.03,2.0\n3,0.5,0.6,0.01,1.0\n")
    spe = 23
    events = [
        {"step": 6, "check": "loss_spike", "action": "rollback", "values": {"loss": 45.0}, "reason": "r"},
        {"step": 47, "check": "exploding_gradients", "action": "clip", "values": {"grad_norm": "inf"}, "reason": "c"},
        {"step": 68, "check": "val_rising", "action": "stop", "values": {}, "reason": "s"},
    ]
    for e in events:
        e["epoch"] = (e["step"] + 1) / spe  # as lrkit.train writes them
    (tmp_path / "events.json").write_text(json.dumps({"events": events}))
    figures = []
    write = finder.write_figure

    def keep(fig, out, **kwargs):  # type: ignore[no-untyped-def]
        figures.append(fig)
        return write(fig, out, **kwargs)

    monkeypatch.setattr(finder, "write_figure", keep)
    plot_results(tmp_path / "results.csv", events=tmp_path / "events.json")
    (fig,) = figures
    to_hex = matplotlib.colors.to_hex
    want_lines = sorted((e["epoch"], to_hex(CHECK_COLORS[e["check"]]), ACTION_STYLES[e["action"]]) for e in events)
    want_marks = sorted((e["epoch"], "v" if e["action"] == "rollback" else "X") for e in events
                        if e["action"] in ("rollback", "stop"))
    for ax in fig.axes[:4]:
        lines, marks = [], []
        for line in ax.get_lines():
            xs, ys = list(line.get_xdata()), list(line.get_ydata())
            if len(xs) == 2 and xs[0] == xs[1] and ys == [0, 1]:
                lines.append((float(xs[0]), to_hex(line.get_color()), line.get_linestyle()))
            elif line.get_marker() in ("v", "X"):
                marks.append((float(xs[0]), line.get_marker()))
        assert sorted(lines) == want_lines, ax.get_title()
        assert sorted(marks) == want_marks, ax.get_title()
        assert all(math.isclose(a[0], b[0]) for a, b in zip(sorted(lines), want_lines))
