"""Session 16 (batchplot): four user-facing gaps in the batch plumbing and the run pictures.

1. ``batch_size`` counted a PyTorch Geometric ``Batch`` (no leading "samples" dim in a list or dict) as 1 sample, so
   ``lrkit.train``'s validation mean and ``choose_lr0``'s validation score weighted a batch of 1 graph like one of
   40; an object with an integer ``num_graphs`` now counts as that many samples.
2. ``move_to`` read any ``TypeError`` from a batch's own ``.to(device)`` as "a .to() of another meaning" and passed
   the batch on unmoved: a bug inside the user's ``.to()`` was swallowed and the batch stayed on the wrong device.
3. ``plot_results(events="events.json")`` — the record's path, not the loaded record — was an error.
4. ``mark_events``'s warning about events without the x key pointed at lrkit's ``results.py``, not the caller.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any

import matplotlib
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

matplotlib.use("Agg")

import matplotlib.pyplot as plt

import lrkit
import lrkit.plots.results as results_mod
from lrkit._step import batch_size, move_to
from lrkit.plots.monitor import mark_events
from lrkit.plots.results import plot_results
from lrkit.train.auto import _val_loss
from lrkit.train.run import write_events

# --- 1. a graph batch counts its graphs --------------------------------------------------------------------------


class GraphBatch:
    """A stand-in for PyTorch Geometric's ``Batch``: node features of all graphs stacked, a node -> graph index, one
    target per graph, ``num_graphs`` and a ``.to(device)`` (PyG itself is not installed here)."""

    def __init__(self, x: torch.Tensor, batch: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.batch, self.y = x, batch, y
        self.num_graphs = int(y.shape[0])

    def to(self, device: torch.device) -> GraphBatch:
        return GraphBatch(self.x.to(device), self.batch.to(device), self.y.to(device))


def _graphs(nodes: list[int], g: torch.Generator) -> GraphBatch:
    xs = [torch.randn(n, 4, generator=g) for n in nodes]
    index = torch.cat([torch.full((n,), i) for i, n in enumerate(nodes)])
    return GraphBatch(torch.cat(xs), index, torch.randn(len(nodes), generator=g))


class SumPool(nn.Module):
    """A per-graph readout: a linear score per node, summed per graph."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(4, 1)

    def forward(self, b: GraphBatch) -> torch.Tensor:
        h = self.fc(b.x).squeeze(-1)
        return torch.zeros(b.num_graphs, dtype=h.dtype).index_add(0, b.batch, h)


def _graph_loss(model: nn.Module, b: GraphBatch) -> torch.Tensor:
    return nn.functional.mse_loss(model(b), b.y)


def _per_graph_mean(model: nn.Module, batches: list[GraphBatch]) -> float:
    with torch.no_grad():
        total = sum(float(nn.functional.mse_loss(model(b), b.y, reduction="sum")) for b in batches)
    return total / sum(b.num_graphs for b in batches)


def test_batch_size_of_a_graph_batch_is_its_number_of_graphs() -> None:
    g = torch.Generator().manual_seed(0)
    b = _graphs([3, 5, 2], g)  # 10 nodes, 3 graphs
    assert b.x.shape[0] == 10
    assert batch_size(b) == 3
    assert batch_size((b, b.y)) == 3 and batch_size({"graph": b, "id": 7}) == 3  # found depth first, as tensors are


def test_num_graphs_must_be_an_integer_to_count() -> None:
    class Odd:
        num_graphs = "three"  # not a count: passed over, as before

    class Flag:
        num_graphs = True  # a bool is not a count either

    class Unknown:
        @property
        def num_graphs(self) -> int:  # PyG raises this when it cannot infer the number of graphs
            raise ValueError("Can not infer the number of graphs")

    assert batch_size(Odd()) == 1 and batch_size(Flag()) == 1 and batch_size(Unknown()) == 1
    assert batch_size((Odd(), torch.zeros(4, 2))) == 4  # the next value with a size counts


def test_train_validation_mean_is_per_graph(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    train = [_graphs([3, 2, 4], g) for _ in range(6)]
    val = [_graphs([5], g), _graphs([2, 3, 4, 2], g)]  # 1 graph, then 4: weighted equally before
    r = lrkit.train(SumPool(), data=(DataLoader(train, batch_size=None), DataLoader(val, batch_size=None)),
                    epochs=1, lr0=0.01, step_fn=_graph_loss, project=tmp_path, verbose=False, plots=False)
    model = r.model.eval()
    expected = _per_graph_mean(model, val)
    with torch.no_grad():
        per_batch = sum(float(_graph_loss(model, b)) for b in val) / len(val)
    assert abs(expected - per_batch) > 1e-3  # the two readings differ on these batches
    assert r.final_val_loss == pytest.approx(expected, rel=1e-5)


def test_choose_lr0_validation_score_is_per_graph() -> None:
    g = torch.Generator().manual_seed(1)
    val = [_graphs([5], g), _graphs([2, 3, 4, 2], g)]
    model = SumPool()
    score = _val_loss(model, val, None, _graph_loss, torch.device("cpu"))
    assert score == pytest.approx(_per_graph_mean(model, val), rel=1e-6)


def test_find_lr_one_sample_hint_not_given_for_a_batch_of_many_graphs() -> None:
    # a model that pools the whole batch into one row (forgot the per-graph index) before a BatchNorm: torch's
    # "Expected more than 1 value per channel" is the model's doing, not a loader's batch of 1 sample; with 4
    # graphs a batch was read as 1 sample and the hint said to use drop_last=True
    class WholeBatchPool(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 3)
            self.bn = nn.BatchNorm1d(3)

        def forward(self, b: GraphBatch) -> torch.Tensor:
            return self.bn(self.fc(b.x).sum(0, keepdim=True)).sum()

    g = torch.Generator().manual_seed(0)
    data = [_graphs([2, 3, 4, 2], g) for _ in range(4)]
    model = WholeBatchPool()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError) as info:
        lrkit.find_lr(model, opt, data, step_fn=lambda m, b: m(b), num_steps=10)
    assert "Expected more than 1 value per channel" in str(info.value)
    assert "holds 1 sample" not in str(info.value)


def test_find_lr_one_sample_hint_kept_for_a_batch_of_one_graph() -> None:
    class GraphNorm(nn.Module):  # per-graph readout, then BatchNorm over the graphs: 1 graph cannot train
        def __init__(self) -> None:
            super().__init__()
            self.pool = SumPool()
            self.bn = nn.BatchNorm1d(1)

        def forward(self, b: GraphBatch) -> torch.Tensor:
            return self.bn(self.pool(b).unsqueeze(1)).squeeze(1)

    g = torch.Generator().manual_seed(0)
    data = [_graphs([4], g) for _ in range(4)]
    model = GraphNorm()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="holds 1 sample"):
        lrkit.find_lr(model, opt, data, step_fn=lambda m, b: nn.functional.mse_loss(m(b), b.y), num_steps=10)


# --- 2. a TypeError inside a batch's own .to() is not swallowed ----------------------------------------------------


class BuggyTo:
    """A batch class whose ``.to(device)`` has a bug of its own (a TypeError raised inside it)."""

    def __init__(self) -> None:
        self.x = torch.zeros(2)

    def to(self, device: torch.device) -> BuggyTo:
        self.x = self.x.to(device, "not a dtype")  # type: ignore[call-overload]  # torch raises TypeError
        return self


class NoDevice:
    """A ``to`` of another meaning: takes no device."""

    def to(self) -> str:
        return "elsewhere"


class Keyword:
    """A ``to`` that takes the device as a keyword-only argument: not a ``.to(device)``."""

    def to(self, *, where: str) -> str:
        return where


class AnyArgs:
    """A ``to(*args, **kwargs)`` (PyG's ``Data.to(device, *args, non_blocking=False)`` style): called."""

    def __init__(self) -> None:
        self.calls: list[Any] = []

    def to(self, *args: Any, **kwargs: Any) -> AnyArgs:
        self.calls.append(args)
        return self


def test_move_to_lets_a_type_error_inside_to_propagate() -> None:
    b = BuggyTo()
    with pytest.raises(TypeError) as info:
        move_to(b, torch.device("meta"))
    assert "invalid combination of arguments" in str(info.value)  # the TypeError raised inside BuggyTo.to
    if sys.version_info >= (3, 11):  # exceptions take notes from 3.11 on: the note names the class
        assert any("BuggyTo" in n for n in getattr(info.value, "__notes__", []))
    with pytest.raises(TypeError):  # the second call (the cached signature) raises it too
        move_to((b, torch.zeros(1)), torch.device("meta"))


def test_move_to_passes_a_to_of_another_meaning_unmoved() -> None:
    for obj in (NoDevice(), Keyword()):
        assert move_to(obj, torch.device("meta")) is obj
        assert move_to(obj, torch.device("meta")) is obj  # cached
    a = AnyArgs()
    assert move_to(a, torch.device("meta")) is a and a.calls == [(torch.device("meta"),)]


def test_move_to_with_a_builtin_to_whose_signature_cannot_be_read() -> None:
    import inspect

    class Builtin:
        to = staticmethod(min)  # a builtin: min(device) raises TypeError (not iterable), read as "another .to()"

    with pytest.raises(ValueError):
        inspect.signature(min)  # really unreadable
    obj = Builtin()
    assert move_to(obj, torch.device("meta")) is obj


def test_find_lr_raises_the_user_to_bug() -> None:
    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError):
        lrkit.find_lr(model, opt, [BuggyTo()] * 4, step_fn=lambda m, b: m(b.x).sum(), num_steps=10)


# --- 3. plot_results(events=<path to events.json>) -----------------------------------------------------------------

from test_plots_events_s10c import _EVENTS, _csv  # noqa: E402 (the same record and events as the s10c tests)


def _capture_marks(monkeypatch: pytest.MonkeyPatch) -> list[list[float]]:
    """Record the x positions of the event lines drawn on each panel by plot_results (which closes its figure)."""
    marks: list[list[float]] = []
    real = results_mod._draw

    def draw(axes: Any, *args: Any, **kwargs: Any) -> None:
        real(axes, *args, **kwargs)
        for ax in axes.ravel():
            xs = [float(line.get_xdata()[0]) for line in ax.get_lines()
                  if len(line.get_xdata()) == 2 and line.get_xdata()[0] == line.get_xdata()[1]]
            marks.append(sorted(xs))

    monkeypatch.setattr(results_mod, "_draw", draw)
    return marks


@pytest.mark.parametrize("as_str", [True, False], ids=["str", "Path"])
def test_plot_results_reads_events_json_from_its_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      as_str: bool) -> None:
    events_path = write_events(tmp_path / "events.json", {"lr0": {"value": 0.01, "source": "given"},
                                                          "optimizer": {"name": "SGD"}, "events": _EVENTS})
    marks = _capture_marks(monkeypatch)
    out = plot_results(_csv(tmp_path), events=str(events_path) if as_str else events_path)
    assert out.exists()
    assert marks == [[1.5, 2.5]] * 4


def test_plot_results_reads_a_json_list_of_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(_EVENTS))
    marks = _capture_marks(monkeypatch)
    plot_results(_csv(tmp_path), tmp_path / "p.png", events=path)
    assert marks == [[1.5, 2.5]] * 4


def test_plot_results_events_path_missing_or_malformed(tmp_path: Path) -> None:
    csv = _csv(tmp_path)
    missing = tmp_path / "nope" / "events.json"
    with pytest.raises(FileNotFoundError, match="events.json") as info:
        plot_results(csv, events=missing)
    assert str(missing) in str(info.value)
    bad = tmp_path / "events.json"
    bad.write_text('{"events": [')
    with pytest.raises(ValueError, match="not valid JSON") as info2:
        plot_results(csv, events=bad)
    assert str(bad) in str(info2.value)
    bad.write_text('"just a string"')
    with pytest.raises(ValueError, match="events") as info3:
        plot_results(csv, events=bad)
    assert str(bad) in str(info3.value)
    assert not (tmp_path / "results.png").exists()  # nothing drawn


# --- 4. mark_events' warning points at the caller --------------------------------------------------------------


def test_plot_results_keyless_warning_points_at_the_caller(tmp_path: Path) -> None:
    events = [{"step": 3, "check": "loss_spike", "action": "warn", "values": {}, "reason": "a"}]  # no epoch
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        plot_results(_csv(tmp_path), events=events)
    ours = [x for x in w if "mark_events" in str(x.message)]
    assert len(ours) == 1
    assert ours[0].filename == __file__


def test_mark_events_keyless_warning_points_at_the_caller() -> None:
    fig, ax = plt.subplots()
    try:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            mark_events(ax, [{"step": 3, "check": "c", "action": "warn"}], x="epoch")
    finally:
        plt.close(fig)
    ours = [x for x in w if "mark_events" in str(x.message)]
    assert len(ours) == 1 and ours[0].filename == __file__


def test_plot_results_redraws_a_train_run_from_its_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    ds = torch.utils.data.TensorDataset(x, (x[:, 0] > 0).long())
    r = lrkit.train(nn.Linear(4, 2), data=ds, epochs=2, lr0=0.01, project=tmp_path, verbose=False, plots=False)
    events = r.run_dir / "events.json"
    assert isinstance(json.loads(events.read_text())["events"], list)
    marks = _capture_marks(monkeypatch)
    out = plot_results(r.run_dir / "results.csv", tmp_path / "again.png", events=str(events))
    assert out.exists() and len(marks) == 4
