"""Session 19: a practitioner's walk through ``lrkit.find_lr`` and ``lrkit find`` with their own code.

Each test is a mistake or a setup a newcomer met on the walk whose message was wrong or came from deep inside
torch: a loss module passed as a class, a progress callback of the wrong arity, a task file whose ``loss_fn`` is a
loss module instance (``loss_fn = torch.nn.CrossEntropyLoss()``, or ``loss_fn = criterion`` as the refusal of a
``criterion`` advises).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

import lrkit
from lrkit.finder.demo import load_task_file
from test_findwalk_s19a import _setup


def test_a_loss_module_class_is_named_with_the_instance_to_pass() -> None:
    """``loss_fn=torch.nn.CrossEntropyLoss`` (no parentheses) failed at the first step with torch's "Boolean value of
    Tensor with more than one value is ambiguous" (the output and target went to the constructor)."""
    model, opt, loader = _setup()
    with pytest.raises(ValueError) as info:
        lrkit.find_lr(model, opt, loader, loss_fn=torch.nn.CrossEntropyLoss)
    msg = str(info.value)
    assert "loss_fn" in msg and "torch.nn.modules.loss.CrossEntropyLoss" in msg
    assert "loss_fn=CrossEntropyLoss()" in msg
    assert "ambiguous" not in msg


def test_a_step_fn_module_class_is_refused_too() -> None:
    model, opt, loader = _setup()
    with pytest.raises(ValueError, match=r"step_fn is the class .*MSELoss, not an instance"):
        lrkit.find_lr(model, opt, loader, step_fn=torch.nn.MSELoss)


def test_a_loss_module_instance_still_runs() -> None:
    model, opt, loader = _setup()
    result = lrkit.find_lr(model, opt, loader, loss_fn=torch.nn.CrossEntropyLoss(), num_steps=20, end_lr=1.0)
    assert result.loss == "loss_fn (CrossEntropyLoss)"


@pytest.mark.parametrize("progress", [lambda step: None, lambda a, b, c, d, e: None])
def test_a_progress_callback_that_cannot_take_four_arguments_is_refused_before_the_test(progress: object) -> None:
    """It failed after the first step with a bare ``TypeError: <lambda>() takes 1 positional argument but 4 were
    given`` raised from inside the loop."""
    model, opt, loader = _setup()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError) as info:
        lrkit.find_lr(model, opt, loader, progress=progress)
    msg = str(info.value)
    assert "progress cannot be called as progress(step, total, lr, loss)" in msg
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_a_progress_callback_with_extra_defaults_or_varargs_runs() -> None:
    model, opt, loader = _setup()
    calls: list[tuple] = []
    lrkit.find_lr(model, opt, loader, progress=lambda *a, **k: calls.append(a), num_steps=10, end_lr=1e-3)
    assert len(calls) == 10 and len(calls[0]) == 4
    lrkit.find_lr(model, opt, loader, progress=lambda s, t, lr, loss, extra=None: None, num_steps=10, end_lr=1e-3)


def _task(tmp_path: Path, loss_part: str) -> Path:
    path = tmp_path / "my_task.py"
    path.write_text(textwrap.dedent("""
        import torch
        g = torch.Generator().manual_seed(0)
        X = torch.randn(64, 4, generator=g)
        Y = (X @ torch.randn(4, 3, generator=g)).argmax(1)

        def model():
            return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))

        def optimizer(params):
            return torch.optim.SGD(params, lr=0.1)

        def train_loader():
            return [(X[i:i + 16], Y[i:i + 16]) for i in range(0, 64, 16)]
        """) + textwrap.dedent(loss_part))
    return path


@pytest.mark.parametrize("loss_part", [
    "loss_fn = torch.nn.CrossEntropyLoss()\n",
    # the advice of the refusal of a file that names its loss criterion: "rename it, or add loss_fn = criterion"
    "criterion = torch.nn.CrossEntropyLoss()\nloss_fn = criterion\n",
    "loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)\n",
])
def test_a_task_file_loss_module_instance_is_the_loss_itself(tmp_path: Path, loss_part: str) -> None:
    """A loss module's signature reads ``(*args, **kwargs)``, so the loader took it for a factory and called it with
    no arguments: ``loss_fn() in task file ... failed: TypeError: CrossEntropyLoss.forward() missing 2 required
    positional arguments: 'input' and 'target'``."""
    task = load_task_file(_task(tmp_path, loss_part))
    assert isinstance(task.loss_fn, torch.nn.CrossEntropyLoss)
    result = lrkit.find_lr(task.model, task.optimizer, task.train_loader, loss_fn=task.loss_fn, num_steps=30,
                           end_lr=10.0)
    assert result.loss == "loss_fn (CrossEntropyLoss)"


@pytest.mark.parametrize("loss_part", [
    "def loss_fn():\n    return torch.nn.CrossEntropyLoss()\n",  # a factory: called
    "loss_fn = torch.nn.CrossEntropyLoss\n",  # a class: called to build the loss
    "loss_fn = torch.nn.functional.cross_entropy\n",
])
def test_task_file_factories_and_functions_still_work(tmp_path: Path, loss_part: str) -> None:
    task = load_task_file(_task(tmp_path, loss_part))
    out = task.loss_fn(torch.randn(5, 3), torch.tensor([0, 1, 2, 0, 1]))
    assert out.ndim == 0


def test_a_task_file_module_loss_factory_that_fails_is_still_named(tmp_path: Path) -> None:
    """A module whose forward takes no argument is a factory (rare, but callable with none): it is still called."""
    part = """
        class Factory(torch.nn.Module):
            def forward(self):
                return torch.nn.functional.cross_entropy
        loss_fn = Factory()
        """
    task = load_task_file(_task(tmp_path, part))
    assert task.loss_fn is torch.nn.functional.cross_entropy


def _groups_task(tmp_path: Path, optimizer_part: str) -> Path:
    path = _task(tmp_path, "loss_fn = torch.nn.functional.cross_entropy\n")
    text = path.read_text().replace("def optimizer(params):\n    return torch.optim.SGD(params, lr=0.1)\n",
                                    textwrap.dedent(optimizer_part))
    path.write_text(text)
    return path


def test_a_task_files_optimizer_model_builds_param_groups_from_the_model(tmp_path: Path) -> None:
    """``optimizer(params)`` gets ``model.parameters()``, a generator: discriminative LRs per module cannot be built
    from it. ``def optimizer(model)`` gets the model."""
    path = _groups_task(tmp_path, """
        def optimizer(model):
            return torch.optim.SGD([{"params": model[0].parameters(), "lr": 0.01},
                                    {"params": model[2].parameters()}], lr=0.1)
        """)
    task = load_task_file(path)
    assert [g["lr"] for g in task.optimizer.param_groups] == [0.01, 0.1]
    assert task.optimizer.param_groups[0]["params"][0] is task.model[0].weight
    seen: list[float] = []
    lrkit.find_lr(task.model, task.optimizer, task.train_loader, loss_fn=task.loss_fn, num_steps=20,
                  progress=lambda s, t, lr, loss: seen.append(
                      task.optimizer.param_groups[1]["lr"] / task.optimizer.param_groups[0]["lr"]))
    assert all(abs(r - 10.0) < 1e-9 for r in seen)


def test_optimizer_params_still_gets_the_parameters(tmp_path: Path) -> None:
    path = _groups_task(tmp_path, """
        def optimizer(params):
            params = list(params)
            assert all(isinstance(p, torch.nn.Parameter) for p in params)
            return torch.optim.SGD(params, lr=0.1)
        """)
    assert len(load_task_file(path).optimizer.param_groups[0]["params"]) == 4


def test_optimizer_params_indexed_like_a_model_says_define_optimizer_model(tmp_path: Path) -> None:
    path = _groups_task(tmp_path, """
        def optimizer(params):
            return torch.optim.SGD([{"params": params[0].parameters(), "lr": 0.01}], lr=0.1)
        """)
    with pytest.raises(ValueError) as info:
        load_task_file(path)
    msg = str(info.value)
    assert "optimizer(params)" in msg and "line" in msg and "not subscriptable" in msg
    assert "define optimizer(model)" in msg and "model.parameters()" in msg


def test_find_help_names_optimizer_model_and_wraps_its_paragraphs_at_80_columns() -> None:
    """The closing paragraph of ``lrkit find --help`` kept the docstring's 110-column line breaks, so an 80-column
    terminal showed it ragged (a full line, then a 30-character one, then a full one)."""
    from typer.testing import CliRunner

    from lrkit.cli.app import build_app

    out = CliRunner().invoke(build_app(), ["find", "--help"], env={"COLUMNS": "80"}).output
    assert "optimizer(model)" in " ".join(out.split())
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("Draws the curve"))
    paragraph = []
    for line in lines[start:]:
        if not line.strip():
            break
        paragraph.append(line.rstrip())
    assert len(paragraph) >= 3
    assert all(len(line) >= 60 for line in paragraph[:-1]), paragraph  # each line but the last is full


@pytest.mark.parametrize(("optimizer_line", "said"), [
    ("import prodigyopt\n    return prodigyopt.Prodigy(params, lr=1.0)",
     "return a non-adaptive optimizer (SGD, AdamW) from optimizer(params)"),
    ("return torch.optim.LBFGS(params, lr=1, line_search_fn='strong_wolfe')",
     "line_search_fn=None in optimizer(params)"),
])
def test_lrkit_finds_warnings_about_the_optimizer_speak_of_the_task_file(tmp_path: Path, optimizer_line: str,
                                                                         said: str) -> None:
    """The warnings for Prodigy and LBFGS with a line search said "run find_lr with ...": a task file's user changes
    its ``optimizer(params)`` instead."""
    from typer.testing import CliRunner

    from lrkit.cli.app import build_app

    path = _groups_task(tmp_path, f"def optimizer(params):\n    {optimizer_line}\n")
    out = CliRunner().invoke(build_app(), ["find", str(path), "--num-steps", "20", "--no-chart",
                                           "--out", str(tmp_path / "out")], env={"COLUMNS": "300"}).output
    text = " ".join(out.split())
    assert "warning:" in text
    assert said in text, text
    assert "run find_lr with" not in text
