"""Helpers shared by test files in several folders: a task file for ``lrkit find``, and bit-for-bit tree equality.

Imported as ``from _helpers import ...`` (``tests/`` is on ``sys.path`` because ``tests/conftest.py`` lives there).
"""

from __future__ import annotations

import datetime
import importlib
import json
import os
import random
import socket
import subprocess
import sys
import textwrap
import traceback
import warnings
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch

__all__ = [
    "MSE_LOSS_FN",
    "TASK_SOURCE",
    "TINY_X",
    "TINY_Y",
    "Killed",
    "SharedStateWrapper",
    "assert_same",
    "assert_same_run",
    "fastai_valley_search",
    "finder_state",
    "flat_band_exit",
    "free_port",
    "init_gloo",
    "killed_run",
    "outcome",
    "tiny_loss",
    "tiny_model",
    "write_task",
]

#: A task file's set-up: a seeded model, an optimizer factory and a seeded loader (``loss_fn`` is left to the body).
TASK_SOURCE = textwrap.dedent("""
    import torch
    def model():
        torch.manual_seed(0)
        return torch.nn.Linear(3, 1)
    def optimizer(params):
        return torch.optim.Adam(params, lr=1e-3)
    def train_loader():
        g = torch.Generator().manual_seed(0)
        x = torch.randn(64, 3, generator=g); y = x.sum(1, keepdim=True)
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
""")

def fastai_valley_search(s: Any) -> tuple[int, int]:
    """fastai 2.8's ``valley`` double loop (fastai/callback/schedule.py), verbatim in its comparisons:
    ``(max_start, max_end)`` of the longest decreasing run — the reference lrkit's O(n log n) search is tested
    against."""
    n = len(s)
    lds = [1] * n
    max_start = max_end = 0
    for i in range(1, n):
        for j in range(i):
            if s[i] < s[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    return int(max_start), int(max_end)


def flat_band_exit(curve: np.ndarray) -> int:
    """The known answer for a flat curve's edge (``flat_edge``), written out independently of it: the index of the
    first smoothed point above ``start + max(2% |start|, 3 sigma)``, with ``start`` the median of the curve's head
    and ``sigma`` the robust scatter around the smoothed curve over its flat part."""
    from lrkit.finder import suggest as S

    s = S.smooth_curve(curve)
    head = max(5, len(curve) // 8)
    start = float(np.median(curve[:head]))
    flat_part = max(int(np.nonzero(s > 1.02 * start)[0][0]), head)
    resid = (curve - s)[:flat_part]
    sigma = 1.4826 * float(np.median(np.abs(resid - np.median(resid))))
    return int(np.nonzero(s > start + max(0.02 * abs(start), 3 * sigma))[0][0])


def transformers_or_skip() -> ModuleType:
    """The ``transformers`` package, or a skip of the calling test module where it is not installed (a test dependency
    from Python 3.11, its floor; its Trainer needs accelerate too) or does not use this torch (transformers 5 ignores a
    torch older than 2.6). Call it at module level, before ``from transformers import ...``."""
    transformers = pytest.importorskip("transformers")
    if not transformers.utils.is_torch_available():
        pytest.skip(f"transformers {transformers.__version__} does not use torch {torch.__version__}",
                    allow_module_level=True)
    return transformers


def regression_batches(n: int, features: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``n`` batches of 16 ``(x, x @ w + noise)`` pairs, ``features`` inputs, drawn from a generator seeded ``seed``."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(features, 1, generator=g)
    out = []
    for _ in range(n):
        x = torch.randn(16, features, generator=g)
        out.append((x, x @ w + 0.1 * torch.randn(16, 1, generator=g)))
    return out


def free_port() -> int:
    """A free TCP port on loopback, for a ``torch.distributed`` test's ``MASTER_PORT``."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def init_gloo(rank: int, world: int, port: int, *, seconds: float = 15) -> None:
    """In a spawned worker: join a ``gloo`` process group on loopback (a short timeout, so that a rank left waiting
    fails the test instead of hanging it) and use one thread per rank (the machine has two cores)."""
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=seconds))
    torch.set_num_threads(1)


def outcome(fn: Callable[[], Any], category: type[Warning] = Warning) -> dict[str, Any]:
    """``fn()``'s value, or the error it raised (and the end of its traceback), with the warnings of ``category`` it
    gave: a JSON-ready record a spawned worker writes for the test to read.

    >>> outcome(lambda: 1 / 0)["error"]
    'ZeroDivisionError: division by zero'
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out: dict[str, Any] = {"value": fn(), "error": None}
        except Exception as e:  # recorded for the test to read
            out = {"value": None, "error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()[-600:]}
    out["warnings"] = [str(w.message) for w in caught if issubclass(w.category, category)]
    return out


#: The usual ``loss_fn`` body: a factory returning the loss.
MSE_LOSS_FN = "def loss_fn():\n    return torch.nn.functional.mse_loss\n"


def write_task(directory: Path, body: str = "") -> Path:
    """Write ``directory/my_task.py``: :data:`TASK_SOURCE` followed by ``body`` (dedented); return its path.

    >>> import tempfile
    >>> write_task(Path(tempfile.mkdtemp()), MSE_LOSS_FN).read_text().count("def ")
    4
    """
    task = Path(directory) / "my_task.py"
    task.write_text(TASK_SOURCE + textwrap.dedent(body))
    return task


def assert_same(a: Any, b: Any, path: str = "") -> None:
    """Bit-for-bit equality of two nested trees (tensors compared with dtype, shape and requires_grad; dicts with
    their key order; NaN equals NaN); ``path`` names where the first difference is.

    >>> assert_same({"w": torch.ones(2), "n": [1, float("nan")]}, {"w": torch.ones(2), "n": [1, float("nan")]})
    """
    assert type(a) is type(b), f"{path}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and a.requires_grad == b.requires_grad, path
        assert torch.equal(a, b), path
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and np.array_equal(a, b), path
    elif isinstance(a, dict):
        assert list(a) == list(b), path
        for k in a:
            assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (u, v) in enumerate(zip(a, b)):
            assert_same(u, v, f"{path}[{i}]")
    else:
        assert a == b or (a != a and b != b), f"{path}: {a!r} != {b!r}"


def finder_state(model: torch.nn.Module, opt: torch.optim.Optimizer) -> dict[str, Any]:
    """Every tensor and setting ``find_lr`` could touch, copied — compare two with :func:`assert_same`: parameters,
    gradients, buffers, train/eval modes, the optimizer's state and group settings, and the torch/numpy/python RNGs."""
    state: dict[str, Any] = {f"param:{k}": v.detach().clone() for k, v in model.named_parameters()}
    state.update({f"grad:{k}": None if v.grad is None else v.grad.clone() for k, v in model.named_parameters()})
    state.update({f"buffer:{k}": v.clone() for k, v in model.named_buffers()})
    state["modes"] = [m.training for m in model.modules()]
    sd = opt.state_dict()
    state["opt_state"] = {k: {n: t.clone() if torch.is_tensor(t) else t for n, t in s.items()}
                          for k, s in sd["state"].items()}
    state["opt_groups"] = [{k: v for k, v in g.items() if k != "params"} for g in sd["param_groups"]]
    state["rng_torch"] = torch.get_rng_state().clone()
    state["rng_numpy"] = np.random.get_state()[1].copy()
    state["rng_python"] = random.getstate()
    return state


def noisy_label_pairs() -> tuple[Any, Any]:
    """(train, val) TensorDatasets with 30% flipped labels: a wide MLP at a high LR memorises them and its
    validation loss rises (the validation-loss monitor's test bed)."""
    from torch.utils.data import TensorDataset

    g = torch.Generator().manual_seed(0)
    x = torch.randn(240, 10, generator=g)
    y = (x[:, 0] > 0).long()
    y = torch.where(torch.rand(240, generator=g) < 0.3, 1 - y, y)
    return TensorDataset(x[:160], y[:160]), TensorDataset(x[160:], y[160:])


def wide_mlp() -> Any:
    """A seeded 10-128-2 ReLU MLP, wide enough to memorise :func:`noisy_label_pairs`."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(10, 128), torch.nn.ReLU(), torch.nn.Linear(128, 2))


def three_class_split(n: int = 200) -> tuple[Any, Any]:
    """(train, val) TensorDatasets, 80/20, of a seeded 6-feature, 3-class problem (labels from two linear rules):
    small enough for one-epoch ``lrkit.train`` runs."""
    from torch.utils.data import TensorDataset

    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 6, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] - x[:, 2] > 0).long() + (x[:, 3] > 0.8).long()
    cut = int(0.8 * n)
    return TensorDataset(x[:cut], y[:cut]), TensorDataset(x[cut:], y[cut:])


#: A 24-sample regression the monitor's hand-loop tests step on (full batch, every step the same data).
TINY_X = torch.linspace(-1, 1, 96).reshape(24, 4)
TINY_Y = TINY_X.sum(dim=1, keepdim=True).sin()


def tiny_model() -> torch.nn.Module:
    """A seeded 4-8-1 tanh MLP for :data:`TINY_X`."""
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))


def tiny_loss(model: torch.nn.Module) -> torch.Tensor:
    """The full-batch MSE of ``model`` on :data:`TINY_X`."""
    return torch.nn.functional.mse_loss(model(TINY_X), TINY_Y)


class SAMStyle(torch.optim.Optimizer):
    """A wrapper in the shape of SAM / Lookahead: the base optimizer (with its own ``state``) does the step; the
    wrapper keeps state of its own too, and shares its param groups with the base."""

    def __init__(self, params: Any, base: type[torch.optim.Optimizer], **kwargs: Any) -> None:
        super().__init__(params, {"rho": 0.05, **kwargs})
        self.base_optimizer = base(self.param_groups, **kwargs)
        self.param_groups = self.base_optimizer.param_groups

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self.state[p]["old_p"] = p.detach().clone()
        self.base_optimizer.step()


class SharedStateWrapper(torch.optim.Optimizer):
    """accelerate's ``AcceleratedOptimizer`` in shape: ``state`` and ``param_groups`` are its optimizer's (no
    ``super().__init__``: nothing of its own), and ``step`` forwards to it."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        self.defaults = optimizer.defaults
        self._optimizer_step_pre_hooks: dict[int, Any] = OrderedDict()  # as Optimizer.__init__ (weakly referenced)
        self._optimizer_step_post_hooks: dict[int, Any] = OrderedDict()

    @property  # type: ignore[override]
    def state(self) -> Any:
        return self.optimizer.state

    @property  # type: ignore[override]
    def param_groups(self) -> Any:
        return self.optimizer.param_groups

    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        return self.optimizer.step(closure)


#: The benchmark scripts' folder (its modules import each other by bare name: ``from _suite import ...``).
BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def bench_script(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Import ``benchmarks/<name>.py`` as a module, with the benchmarks folder on ``sys.path`` for this test only."""
    monkeypatch.syspath_prepend(str(BENCH))
    return importlib.import_module(name)


@pytest.fixture(name="ta")
def train_auto_script(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ModuleType:
    """``benchmarks/train_auto.py`` as a module (fixture ``ta``), its run cache in this test's ``tmp_path``."""
    module = bench_script("train_auto", monkeypatch)
    monkeypatch.setattr(module, "CACHE_DIR", tmp_path / "cache")
    return module


def cached_rescue(ta: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: Any, name: str,
                  on: dict[str, Any], off: dict[str, Any]) -> str:
    """Write ``on``/``off`` as train_auto's cached monitor-on/off grids of task ``name``, run ``--rescue`` on them (a
    test failure if anything would be trained) and return what it printed."""
    ta.CACHE_DIR.mkdir(parents=True, exist_ok=True)
    for monitor, runs in (("on", on), ("off", off)):
        (ta.CACHE_DIR / f"{name}_monitor-{monitor}.json").write_text(json.dumps(runs), encoding="utf-8")
    monkeypatch.setattr(ta, "_worker", lambda job: pytest.fail(f"trained {job}, but everything was cached"))
    assert ta.main(["--tasks", name, "--rescue"]) == 0
    return capsys.readouterr().out


def spy_monitors(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Make ``lrkit.monitor.Monitor`` (where ``lrkit.train`` builds its monitor) a subclass that records every
    instance; the list of them. It keeps ``Monitor``'s signature, which ``lrkit.train`` checks options against."""
    import inspect

    import lrkit.monitor

    made: list[Any] = []
    real = lrkit.monitor.Monitor

    class Spy(real):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    Spy.__signature__ = inspect.signature(real)  # type: ignore[attr-defined]
    monkeypatch.setattr(lrkit.monitor, "Monitor", Spy)
    return made


@pytest.fixture
def keep_torch_threads() -> Any:
    """The benchmark scripts set one torch thread; give the suite its own count back (``usefixtures`` it)."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def spy_results(monkeypatch: Any, owner: Any, name: str) -> list[Any]:
    """Replace ``owner.name`` (a module's function) by a wrapper that calls it and appends each result to the list
    returned, for a test to read what the code under test computed."""
    out: list[Any] = []
    real = getattr(owner, name)

    def spy(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        out.append(result)
        return result

    monkeypatch.setattr(owner, name, spy)
    return out


def fresh_python(code: str) -> str:
    """Run ``code`` in a fresh interpreter (nothing imported yet) and return its stdout (the test fails on an error,
    showing its stderr)."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def leave_rank(out: str | Path, rank: int, record: dict[str, Any]) -> None:
    """In a spawned worker: write ``record`` to ``out/rank{rank}.json`` (:func:`spawn_ranks` reads it), wait for every
    rank, and leave without the process group's teardown (torch 2.13's gloo aborts at interpreter exit about half the
    time: "terminate called without an active exception")."""
    import json

    (Path(out) / f"rank{rank}.json").write_text(json.dumps(record))
    torch.distributed.barrier()
    os._exit(0)


def spawn_ranks(worker: Callable[..., None], out: Path, *args: Any, world: int = 2) -> list[dict[str, Any]]:
    """Run ``worker(rank, world, port, str(out), *args)`` on ``world`` spawned processes (a free loopback port for the
    process group); return what each rank left with :func:`leave_rank`, rank by rank."""
    import json

    import torch.multiprocessing as mp

    mp.spawn(worker, args=(world, free_port(), str(out), *args), nprocs=world, join=True)
    return [json.loads((out / f"rank{rank}.json").read_text()) for rank in range(world)]


class Killed(BaseException):
    """Stands for SIGKILL in a test: not an Exception, so nothing in the trainer catches it as an error."""


def killed_run(monkeypatch: pytest.MonkeyPatch, train_call: Callable[[], Any], *, nth: int,
               file: str = "last.pt") -> None:
    """Run ``train_call`` (an ``lrkit.train`` call), killed just before its ``nth`` write of ``file`` (a checkpoint)."""
    import lrkit.train.run as run

    original, seen = run.save_checkpoint, {"n": 0}

    def save(path: Any, *args: Any, **kwargs: Any) -> Any:
        if Path(path).name == file:
            seen["n"] += 1
            if seen["n"] == nth:
                raise Killed(f"killed before {file} #{nth}")
        return original(path, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(run, "save_checkpoint", save)
        with pytest.raises(Killed):
            train_call()


def assert_same_run(full: Any, resumed: Any, epochs: int) -> None:
    """A resumed run's record equals the uninterrupted run's: each epoch's losses, the final weights, bit for bit."""
    assert len(resumed.history) == epochs
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in full.history]
    assert [r["val_loss"] for r in resumed.history] == [r["val_loss"] for r in full.history]
    a = torch.load(full.run_dir / "last.pt", weights_only=True)["model"]
    b = torch.load(resumed.run_dir / "last.pt", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
