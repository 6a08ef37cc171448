"""Edge cases a demanding user hits: odd optimizers and schedulers, losses that cannot train, short curves, bad task
files. Each test failed before its fix."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset
from typer.testing import CliRunner

import lrkit
from _helpers import TASK_SOURCE, write_task
from lrkit.cli.app import build_app
from lrkit.finder import FinderResult


def batches(n: int = 6, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        x = torch.randn(16, 4, generator=g)
        out.append((x, x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])))
    return out


def mse_step(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return torch.nn.functional.mse_loss(model(batch[0]), batch[1])


def test_optimizer_params_outside_the_model_are_restored():
    # A learnable loss scale the optimizer trains but the model does not own (like CLIP's temperature).
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    scale = torch.nn.Parameter(torch.tensor([1.5]))
    scale.grad = torch.tensor([0.25])
    opt = torch.optim.SGD([*model.parameters(), scale], lr=0.1)
    r = lrkit.find_lr(model, opt, batches(), step_fn=lambda m, b: mse_step(m, b) * scale, num_steps=20,
                      start_lr=1e-3, end_lr=10.0)
    assert r.num_steps_run > 2  # the test did train `scale`
    assert torch.equal(scale.detach(), torch.tensor([1.5])) and torch.equal(scale.grad, torch.tensor([0.25]))


class CountingSGD(torch.optim.Optimizer):
    """An optimizer from outside torch.optim with a step counter attribute and a state entry keyed by name."""

    def __init__(self, params, lr: float = 0.1) -> None:
        super().__init__(params, {"lr": lr})
        self.global_step = 0

    @torch.no_grad()
    def step(self, closure=None):
        self.global_step += 1
        self.state["calls"] = self.state.get("calls", 0) + 1
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-group["lr"])


def test_custom_optimizer_counters_and_non_param_state_are_restored():
    model = torch.nn.Linear(4, 1)
    opt = CountingSGD(model.parameters())
    for x, y in batches(2):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    lrkit.find_lr(model, opt, batches(), num_steps=20, start_lr=1e-4, end_lr=1.0)
    assert opt.global_step == 2 and opt.state["calls"] == 2


def test_warmup_scheduler_at_zero_keeps_the_group_ratios_and_leaves_no_flag():
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 1))
    opt = torch.optim.SGD([{"params": model[0].parameters(), "lr": 1e-3},
                           {"params": model[1].parameters(), "lr": 1e-2}], lr=0.1)
    torch.optim.lr_scheduler.LambdaLR(opt, lambda step: step / 10)  # warmup: both groups start at lr 0
    assert [g["lr"] for g in opt.param_groups] == [0.0, 0.0]
    seen = []

    def step_fn(m, batch):
        seen.append([g["lr"] for g in opt.param_groups])
        return mse_step(m, batch)

    r = lrkit.find_lr(model, opt, batches(), step_fn=step_fn, num_steps=12, start_lr=1e-4, end_lr=1e-2)
    for (g0, g1), lr in zip(seen, r.lrs):
        assert g1 == pytest.approx(lr) and g0 == pytest.approx(lr / 10)  # the initial_lr ratio 1:10
    assert [g["lr"] for g in opt.param_groups] == [0.0, 0.0]
    assert [g["initial_lr"] for g in opt.param_groups] == [1e-3, 1e-2]
    # torch's "scheduler.step() before optimizer.step()" check must still see no optimizer step
    assert not hasattr(opt, "_opt_called")


def test_tensor_lr_keeps_its_identity():
    model = torch.nn.Linear(4, 1)
    lr = torch.tensor(0.01)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    lrkit.find_lr(model, opt, batches(), num_steps=12, start_lr=1e-4, end_lr=1.0)
    assert opt.param_groups[0]["lr"] is lr and lr.item() == pytest.approx(0.01)
    lr.fill_(0.5)  # the user's handle (e.g. for a compiled step) still drives the optimizer
    assert float(opt.param_groups[0]["lr"]) == 0.5


def test_lbfgs_matches_a_hand_written_closure_loop():
    data = batches(4)
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=3)
    before = [p.detach().clone() for p in model.parameters()]
    r = lrkit.find_lr(model, opt, data, num_steps=10, start_lr=1e-4, end_lr=1e-1, diverge_factor=1e9)
    assert r.num_steps_run == 10
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters())) and not opt.state
    # the known answer: the same schedule run by hand, with the closure LBFGS needs
    expected = []
    for i, lr in enumerate(r.lrs):
        opt.param_groups[0]["lr"] = lr
        x, y = data[i % len(data)]
        expected.append(torch.nn.functional.mse_loss(model(x), y).item())

        def closure(x=x, y=y):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            return loss

        opt.state.clear()  # find_lr starts LBFGS afresh at each step (no curvature pair spans two LRs/batches)
        opt.step(closure)
    np.testing.assert_allclose(r.losses, expected, rtol=1e-6)
    assert expected[-1] < 0.5 * expected[0]  # LBFGS did step


@pytest.mark.parametrize("case", ["no_grad", "frozen"])
@pytest.mark.parametrize("accumulation_steps", [1, 3])
def test_a_loss_that_cannot_train_is_a_clear_error(case, accumulation_steps):
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    if case == "frozen":
        model.requires_grad_(False)
        step_fn = mse_step
    else:
        def step_fn(m, b):
            with torch.no_grad():
                return mse_step(m, b)
    with pytest.raises(ValueError, match=r"does not require grad.*no_grad.*requires_grad=False"):
        lrkit.find_lr(model, opt, batches(), step_fn=step_fn, num_steps=10, accumulation_steps=accumulation_steps)
    assert opt.param_groups[0]["lr"] == 0.1


@pytest.mark.parametrize("dtype", [torch.complex64, torch.int64])
@pytest.mark.parametrize("accumulation_steps", [1, 2])
def test_complex_or_integer_loss_is_a_clear_error(dtype, accumulation_steps):
    # the loss is checked when backward fails (not on every step), also after the division for accumulation
    model = torch.nn.Linear(4, 1)
    name = str(dtype).removeprefix("torch.")
    with pytest.raises(ValueError, match=f"real floating-point scalar, got dtype {name}"):
        lrkit.find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), batches(),
                      step_fn=lambda m, b: mse_step(m, b).to(dtype), num_steps=10,
                      accumulation_steps=accumulation_steps)


def test_integer_like_and_bad_numeric_arguments():
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    r = lrkit.find_lr(model, opt, batches(), num_steps=np.int64(12), start_lr=1e-4, end_lr=1.0)
    assert r.num_steps == 12 and type(r.num_steps) is int
    with pytest.raises(ValueError, match="accumulation_steps=True"):
        lrkit.find_lr(model, opt, batches(), accumulation_steps=True)
    with pytest.raises(ValueError, match="diverge_factor=nan"):  # nan would never stop the test
        lrkit.find_lr(model, opt, batches(), diverge_factor=float("nan"))


def test_uninitialized_lazy_module_is_a_clear_error():
    model = torch.nn.Sequential(torch.nn.LazyLinear(1))
    with pytest.raises(ValueError, match="uninitialized lazy parameters.*run one forward pass"):
        lrkit.find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), batches(), num_steps=10)


def test_the_loaders_own_generator_is_restored():
    x, y = batches(1)[0]
    gen = torch.Generator().manual_seed(5)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4, shuffle=True,
                                         generator=gen)
    state = gen.get_state()
    model = torch.nn.Linear(4, 1)
    lrkit.find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), loader, num_steps=10, start_lr=1e-4,
                  end_lr=1.0)
    assert torch.equal(gen.get_state(), state)  # training sees the data order it would have seen


def short_result() -> FinderResult:
    return FinderResult(lrs=[100.0, 234.0], losses=[24.0, 1.5e6], start_lr=100.0, end_lr=1e9, num_steps=20,
                        stop_reason="diverged")


def test_a_short_curve_keeps_its_record_and_says_what_to_change(tmp_path):
    r = short_result()
    path = r.to_json(tmp_path / "lr.json")
    d = json.loads(path.read_text())
    assert d["suggestion"] is None and d["range"] is None and d["losses"] == [24.0, 1.5e6]
    back = FinderResult.from_json(path)
    assert back.lrs == r.lrs and back.stop_reason == "diverged"
    for call in (lambda: r.suggestion, lambda: r.range):
        with pytest.raises(ValueError, match=r"diverged at lr=234\) after 2 steps.*lower start_lr \(now 100\)"):
            call()
    fig = r.plot(tmp_path / "p.png")  # the curve worth a look is drawn, titled so
    assert (tmp_path / "p.png").stat().st_size > 0 and "no suggestion" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="Did you mean 'valley'"):  # a typo is still named first
        r.suggest("valey")


def test_result_checks_lengths_and_json_path():
    with pytest.raises(ValueError, match="3 LRs and 2 losses"):
        FinderResult(lrs=[1e-3, 1e-2, 1e-1], losses=[1.0, 0.5])


def test_to_json_into_a_directory_names_it(tmp_path):
    with pytest.raises(ValueError, match="is a directory; e.g. .*lr_find.json"):
        FinderResult(lrs=[1e-3, 1e-2, 1e-1], losses=[1.0, 0.5, 0.7]).to_json(tmp_path)


def run_cli(tmp_path, body: str, *args: str):
    task = write_task(tmp_path, body)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CliRunner().invoke(build_app(), ["find", str(task), "--num-steps", "20", *args])


def test_task_file_loss_fn_may_be_the_loss_itself(tmp_path):
    factory = run_cli(tmp_path, "def loss_fn():\n    return torch.nn.functional.mse_loss\n",
                      "--out", str(tmp_path / "a"))
    direct = run_cli(tmp_path, "def loss_fn(out, y):\n    return torch.nn.functional.mse_loss(out, y)\n",
                     "--out", str(tmp_path / "b"))
    alias = run_cli(tmp_path, "loss_fn = torch.nn.functional.mse_loss\n", "--out", str(tmp_path / "c"))
    assert factory.exit_code == direct.exit_code == alias.exit_code == 0, (direct.output, alias.output)
    curves = [json.loads((tmp_path / d / "lr_find.json").read_text())["losses"] for d in "abc"]
    assert curves[0] == curves[1] == curves[2]


def test_task_file_that_raises_names_the_function_and_line(tmp_path):
    res = run_cli(tmp_path, "def loss_fn():\n    return {}['missing']\n", "--out", str(tmp_path / "o"))
    assert res.exit_code == 2
    line = len(TASK_SOURCE.splitlines()) + 2  # the `return` line of the body
    assert "loss_fn() in task file" in res.output and f"(line {line})" in res.output and "KeyError" in res.output
    res = run_cli(tmp_path, "def loss_fn(:\n", "--out", str(tmp_path / "o"))
    assert res.exit_code == 2 and "SyntaxError" in res.output and "Traceback" not in res.output


def test_cli_output_under_a_file_and_short_curves_exit_cleanly(tmp_path):
    (tmp_path / "afile").write_text("")
    body = "def loss_fn():\n    return torch.nn.functional.mse_loss\n"
    res = run_cli(tmp_path, body, "--out", str(tmp_path / "afile" / "sub"))
    assert res.exit_code == 2 and "is a file, not a folder" in res.output
    res = run_cli(tmp_path, body, "--start-lr", "100", "--end-lr", "1e9", "--out", str(tmp_path / "s"))
    assert res.exit_code == 2 and "lower --start-lr (now 100)" in res.output  # the flag the user typed
    record = json.loads((tmp_path / "s" / "lr_find.json").read_text())
    assert record["suggestion"] is None and record["stop_reason"] in ("diverged", "non-finite")


def test_a_negative_loss_is_not_divergence_at_step_two():
    """Bug: the divergence check `smoothed > 4 * best` is always true once best < 0, so a loss that can be negative
    (an offset MSE, a log-likelihood) stopped the test at step 2 with "cannot suggest an LR"."""
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = x @ torch.randn(8, 1)
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
    model = torch.nn.Linear(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def offset_mse(out, target):
        return torch.nn.functional.mse_loss(out, target) - 100.0

    shifted = lrkit.find_lr(model, opt, loader, loss_fn=offset_mse, num_steps=60)
    plain = lrkit.find_lr(model, opt, loader, loss_fn=torch.nn.functional.mse_loss, num_steps=60)
    assert len(shifted.lrs) > 30 and shifted.stop_reason == plain.stop_reason
    assert 0.1 < shifted.suggestion / plain.suggestion < 10


def test_namedtuple_batches_train():
    # move_to rebuilt every (list, tuple) batch as type(obj)(generator), which a namedtuple rejects: find_lr crashed
    from collections import namedtuple

    Sample = namedtuple("Sample", "x y")

    class Pairs(torch.utils.data.Dataset):
        def __len__(self):
            return 64

        def __getitem__(self, i):
            g = torch.Generator().manual_seed(i)
            x = torch.randn(4, generator=g)
            return Sample(x, x.sum(0, keepdim=True))

    loader = torch.utils.data.DataLoader(Pairs(), batch_size=8)
    assert type(next(iter(loader))).__name__ == "Sample"
    model = torch.nn.Linear(4, 1)
    before = [p.detach().clone() for p in model.parameters()]
    r = lrkit.find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), loader, num_steps=20, start_lr=1e-4,
                      end_lr=1.0)
    assert r.num_steps_run == 20 and all(np.isfinite(r.losses))
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
