"""`lrkit find --device/--amp/--max-grad-norm`: the range test as the user's training loop runs it."""

from __future__ import annotations

import json
import textwrap

import pytest
from typer.testing import CliRunner

from lrkit.cli.app import build_app as app
from lrkit.cli.find import run_find

runner = CliRunner()

# A task whose model records, at every forward, whether autocast is on and with which dtype, and on which device its
# input arrived (into the file named by the module-level OBSERVED path the test writes in).
_TASK = """
import json
import torch

OBSERVED = {observed!r}
seen = []


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 2)

    def forward(self, x):
        on = torch.is_autocast_enabled("cpu")
        seen.append([on, str(torch.get_autocast_dtype("cpu")) if on else None, str(x.device)])
        with open(OBSERVED, "w") as f:
            json.dump(seen, f)
        return self.lin(x)


def model():
    return Net()


def optimizer(params):
    return torch.optim.SGD(params, lr=0.01)


def train_loader():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    y = (x[:, 0] > 0).long()
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)


loss_fn = torch.nn.functional.cross_entropy
"""


def _task(tmp_path):
    observed = tmp_path / "observed.json"
    path = tmp_path / "task.py"
    path.write_text(textwrap.dedent(_TASK.format(observed=str(observed))))
    return path, observed


def test_amp_bf16_runs_every_forward_under_autocast(tmp_path):
    task, observed = _task(tmp_path)
    res = runner.invoke(app(), ["find", str(task), "--amp", "bf16", "--num-steps", "20", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    seen = json.loads(observed.read_text())
    assert len(seen) >= 10 and all(on and dtype == "torch.bfloat16" for on, dtype, _ in seen)


def test_amp_off_is_the_default(tmp_path):
    task, observed = _task(tmp_path)
    res = runner.invoke(app(), ["find", str(task), "--num-steps", "20", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert not any(on for on, _, _ in json.loads(observed.read_text()))


def test_device_moves_the_model_and_the_batches(tmp_path):
    task, observed = _task(tmp_path)
    result, _ = run_find(str(task), num_steps=20, out=tmp_path / "o", device="cpu")
    assert result.num_steps_run >= 10
    assert {device for _, _, device in json.loads(observed.read_text())} == {"cpu"}


def test_bad_device_and_amp_are_named_before_any_step(tmp_path):
    task, observed = _task(tmp_path)
    res = runner.invoke(app(), ["find", str(task), "--device", "bogus", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "device='bogus' cannot be used" in res.output and "--device" in res.output
    res = runner.invoke(app(), ["find", str(task), "--amp", "fp32", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "'fp32'" in res.output and "bf16, fp16, off, on" in res.output
    assert not observed.exists() and not (tmp_path / "o").exists()  # no step ran, nothing written


def test_max_grad_norm_clips_the_updates(tmp_path):
    task, _ = _task(tmp_path)
    free, _ = run_find(str(task), num_steps=30, out=tmp_path / "a")
    with pytest.warns(UserWarning, match="lowest at the very start"):  # a curve that never falls is flagged
        clipped, _ = run_find(str(task), num_steps=30, out=tmp_path / "b", max_grad_norm=1e-9)
    # with every gradient clipped to a norm of 1e-9 the weights barely move, so each of the loader's 4 batches
    # (no shuffling) gives the same loss every time round; without clipping they do not
    def drift(losses: list[float]) -> float:
        return max(abs(a - b) for a, b in zip(losses, losses[4:]))

    assert len(clipped.losses) == 30 and drift(clipped.losses) < 1e-5 < drift(free.losses)
    res = runner.invoke(app(), ["find", str(task), "--max-grad-norm", "-1", "--out", str(tmp_path / "c")])
    assert res.exit_code == 2 and "--max-grad-norm -1 " in res.output
