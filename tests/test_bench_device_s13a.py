"""``--device`` on the overhead benchmarks (benchmarks/finder_overhead.py, monitor_cost.py, train_overhead.py; s13a).

Each script takes ``--device cpu|cuda|cuda:N`` (default ``cpu``, the README's numbers). A device this machine cannot
use is a one-line argparse error naming the value, not a traceback; the table header names the device; the timed
spans wait for the device (``synchronize``) before each clock read.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from _helpers import BENCH, keep_torch_threads  # noqa: F401 (a fixture, used through pytestmark)
from _helpers import bench_script as _script

SCRIPTS = ("finder_overhead", "monitor_cost", "train_overhead")


pytestmark = pytest.mark.usefixtures("keep_torch_threads")


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("value", ["cuda", "cuda:0", "cuda:1"])
def test_unavailable_cuda_is_a_clear_error(script: str, value: str, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    mod = _script(script, monkeypatch)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exc:
        mod.main(["--device", value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"--device {value} but CUDA is not available here; use --device cpu" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("script", SCRIPTS)
def test_cuda_index_past_the_devices_and_non_devices_are_clear_errors(script: str, monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    mod = _script(script, monkeypatch)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(SystemExit):
        mod.main(["--device", "cuda:3"])
    assert "--device cuda:3 but this machine has 1 CUDA device(s) (cuda:0 to cuda:0)" in capsys.readouterr().err
    for bad, said in (("gpu", "--device 'gpu' is not a device; valid: cpu, cuda, cuda:N"),
                      ("meta", "--device meta is not supported by this benchmark; valid: cpu, cuda, cuda:N")):
        with pytest.raises(SystemExit):
            mod.main(["--device", bad])
        assert said in capsys.readouterr().err


def test_device_label_names_the_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    suite = _script("_suite", monkeypatch)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=None: f"Fake GPU {i}")
    assert suite.device_label(torch.device("cuda")) == "cuda:0 (Fake GPU 0)"
    assert suite.device_label(torch.device("cuda:1")) == "cuda:1 (Fake GPU 1)"
    assert suite.device_label(torch.device("cpu")) == "cpu"


@pytest.mark.parametrize(("script", "argv"), [
    ("finder_overhead", ["--tasks", "digits_mlp", "--steps", "10", "--repeats", "1"]),
    ("monitor_cost", ["--steps", "3", "--warmup", "0", "--repeats", "1"]),
    ("train_overhead", ["--tasks", "breast_cancer_logreg", "--epochs", "4", "--repeats", "1"]),
])
def test_default_device_is_cpu_and_named_in_the_header(script: str, argv: list[str], monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    mod = _script(script, monkeypatch)
    assert mod.main(argv) == 0
    out = capsys.readouterr().out
    assert "device cpu" in out and "--device" not in out.splitlines()[0]
    assert out.count("\n| ") >= 2  # header and at least one row


def test_finder_overhead_syncs_before_every_clock_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both timed spans (bare loop, find_lr) read the clock only right after waiting for the device."""
    mod = _script("finder_overhead", monkeypatch)
    calls: list[str] = []
    real = time.perf_counter
    monkeypatch.setattr(mod, "synchronize", lambda device: calls.append(f"sync {device}"))
    # the script's own clock only (lrkit reads time.perf_counter too)
    monkeypatch.setattr(mod, "time", SimpleNamespace(perf_counter=lambda: calls.append("clock") or real()))
    task = mod.TASKS["digits_mlp"]
    model = task.build_model(0)
    loader = mod.make_loaders(task, 0)[0]
    mod.bare_loop(task, model, loader, 10, 1e-2, torch.device("cpu"))
    mod.finder_run(task, model, loader, 10, 1e-2, torch.device("cpu"))
    clocks = [i for i, c in enumerate(calls) if c == "clock"]
    assert len(clocks) == 4
    assert all(i > 0 and calls[i - 1] == "sync cpu" for i in clocks), calls


def test_train_overhead_syncs_before_each_epoch_mark(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    mod = _script("train_overhead", monkeypatch)
    calls: list[str] = []
    real = time.perf_counter
    monkeypatch.setattr(mod, "synchronize", lambda device: calls.append("sync"))
    # the script's own clock only (lrkit reads time.perf_counter too)
    monkeypatch.setattr(mod, "time", SimpleNamespace(perf_counter=lambda: calls.append("clock") or real()))
    task = mod.TASKS["breast_cancer_logreg"]
    initial = task.build_model(0).state_dict()
    _, marks = mod.hand_loop(task, initial, 4, tmp_path / "hand", torch.device("cpu"))
    assert len(marks) == 4
    clocks = [i for i, c in enumerate(calls) if c == "clock"]
    assert len(clocks) == 2 + 4  # call start and end, one mark per epoch
    assert all(i > 0 and calls[i - 1] == "sync" for i in clocks), calls


def test_monitor_cost_widths_default_to_the_readme_models(monkeypatch: pytest.MonkeyPatch) -> None:
    mod = _script("monitor_cost", monkeypatch)
    assert list(mod._models()) == ["Linear(30,1)", "MLP 64-128-10", "8x(Linear+LayerNorm) 64"]
    wide = mod._models(width=32, batch=5)
    assert list(wide) == ["Linear(30,1)", "MLP 64-32-10", "8x(Linear+LayerNorm) 32"]
    net, x, y = wide["8x(Linear+LayerNorm) 32"]()
    assert net(x).shape == y.shape == (5, 1)
    torch.manual_seed(0)
    default_net = mod._models()["8x(Linear+LayerNorm) 64"]()[0]
    torch.manual_seed(0)
    old = torch.nn.Sequential(*[m for _ in range(8) for m in (torch.nn.Linear(64, 64), torch.nn.LayerNorm(64),
                                                               torch.nn.GELU())], torch.nn.Linear(64, 1))
    assert all(torch.equal(a, b) for a, b in zip(default_net.state_dict().values(), old.state_dict().values()))


def teardown_module() -> None:
    for name in (*SCRIPTS, "_suite"):
        sys.modules.pop(name, None)
