"""Review of session 19 (19a): ``lrkit predict`` and ``lrkit.load_run`` edge cases a user hits.

- a CSV saved by pandas (``DataFrame(array).to_csv(index=False)``) has the column numbers as its header: training
  reads it as the header, so predicting on the same kind of file must too (not "the first line is all numbers", and
  not the header line predicted as a sample);
- a CSV piped on stdin from a spreadsheet starts with a byte-order mark: its first column keeps its name, as it does
  when the file is given by path;
- ``load_run(device=...)`` with a device this machine cannot use is a ``ValueError`` naming it, not torch's
  ``AssertionError: Torch not compiled with CUDA enabled``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import lrkit
from test_predict_cli_s19d import _invoke, _train


@pytest.fixture(scope="module")
def numbered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, np.ndarray]:
    """A run trained on a CSV whose header is pandas' column numbers 0,1,2 (target: the last, '3')."""
    d = tmp_path_factory.mktemp("numbered")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    y = (x[:, 0] > 0).astype(int)
    path = d / "num.csv"
    path.write_text("0,1,2,3\n" + "".join(f"{a:.4f},{b:.4f},{c:.4f},{t}\n" for (a, b, c), t in zip(x, y)))
    return _train(d, data=str(path)), path, x


def test_numbered_header_csv_run_predicts_its_own_file(numbered: tuple[Path, Path, np.ndarray]) -> None:
    run_dir, path, x = numbered
    run = lrkit.load_run(run_dir)
    assert run.features == ["0", "1", "2"]
    result = _invoke(str(run_dir), str(path))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "3"
    assert lines[1:] == [str(v) for v in run.predict(x.round(4))]


def test_numbered_header_is_not_a_sample_for_a_builtin_run(tmp_path: Path) -> None:
    run_dir = _train(tmp_path, data="iris")
    rows = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]])
    path = tmp_path / "new.csv"
    path.write_text("0,1,2,3\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    result = _invoke(str(run_dir), str(path))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[1:] == [str(v) for v in lrkit.load_run(run_dir).predict(rows)]  # 3 rows: the header is no sample


def test_stdin_csv_with_a_byte_order_mark(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 2))
    path = tmp_path / "t.csv"
    body = "a,b,label\n" + "".join(f"{p:.4f},{q:.4f},{int(p > 0)}\n" for p, q in x)
    path.write_text(body, encoding="utf-8-sig")
    run_dir = _train(tmp_path, data=str(path))
    by_path = _invoke(str(run_dir), str(path))
    assert by_path.exit_code == 0, by_path.output
    piped = _invoke(str(run_dir), "-", stdin="\ufeff" + body)
    assert piped.exit_code == 0, piped.output
    assert piped.stdout == by_path.stdout


@pytest.mark.parametrize("device", ["gpu", "cuda:99"])
def test_load_run_bad_device_is_a_clear_error(tmp_path: Path, device: str) -> None:
    run_dir = _train(tmp_path, data="iris")
    with pytest.raises(ValueError, match=rf"device='{device}' cannot be used"):
        lrkit.load_run(run_dir, device=device)


def test_a_failed_first_forward_is_freed_with_its_error() -> None:
    """find_lr's first step keeps what model(x) raised to tell it from a loss's error; held on, it made a reference
    cycle (error -> traceback -> frame -> recorder -> error) that kept the failed forward's frames, and the tensors
    they hold (a GPU batch and activations, after a CUDA OOM), alive until the cyclic garbage collector ran: a retry
    with a smaller batch would run out of memory again."""
    import gc
    import weakref

    import torch

    refs: list[weakref.ref[torch.Tensor]] = []

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            held = torch.zeros(256, 256)  # an activation of the forward that fails
            refs.append(weakref.ref(held))
            raise RuntimeError("out of memory (simulated)")

    model = Net()
    loader = [(torch.randn(8, 4), torch.randint(0, 2, (8,)))] * 12
    enabled = gc.isenabled()
    gc.disable()
    try:
        with pytest.raises(RuntimeError, match="simulated"):
            lrkit.find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), loader, num_steps=10)
        assert refs and refs[0]() is None  # freed with the error, without waiting for gc.collect()
    finally:
        if enabled:
            gc.enable()


# ------------------------------------------------------------------------------------------------------------------
# lead, from the review's unconfirmed list: every bad diverge_factor gets the one message with the real range
@pytest.mark.parametrize("bad", [-1.0, 0.0, 0.5, 1.0, float("nan"), float("inf"), "four", True])
def test_diverge_factor_range_is_said_once(bad: object) -> None:
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = [(torch.randn(4, 2), torch.randint(0, 2, (4,)))] * 12
    with pytest.raises(ValueError, match=r"must be a finite number > 1 \(4 is typical\), or None for no stop"):
        lrkit.find_lr(model, opt, loader, diverge_factor=bad, num_steps=10)


def test_diverge_factor_numpy_and_int_accepted() -> None:
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = [(torch.randn(4, 2), torch.randint(0, 2, (4,)))] * 12
    for good in (np.float32(3.0), 5, torch.tensor(4.0), "4"):  # as start_lr/end_lr take them
        assert len(lrkit.find_lr(model, opt, loader, diverge_factor=good, num_steps=10, end_lr=1e-3).lrs) == 10
