"""The built-in demo task for ``lrkit find``: scikit-learn's digits with a small MLP and SGD + momentum.

Also the loader for a user's task file (``lrkit find my_task.py``).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lrkit._utils import optional_import

__all__ = ["FinderTask", "demo_task", "load_task_file"]


@dataclass
class FinderTask:
    """What ``find_lr`` needs: a model, its optimizer, a loader, and how to compute the loss."""

    name: str
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    train_loader: Any
    loss_fn: Any = None
    step_fn: Any = None


def demo_task(seed: int = 0, batch_size: int = 64) -> FinderTask:
    """Digits (1797 8x8 images, 10 classes, bundled with scikit-learn) with a 64-128-10 MLP and SGD(momentum=0.9).

    >>> task = demo_task()
    >>> task.name, sum(p.numel() for p in task.model.parameters())
    ('digits-mlp', 9610)
    """
    datasets = optional_import("sklearn.datasets", "cli")
    x, y = datasets.load_digits(return_X_y=True)
    x = torch.tensor(x, dtype=torch.float32) / 16.0
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    y = torch.tensor(y, dtype=torch.long)
    g = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=batch_size, shuffle=True, generator=g
    )
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    return FinderTask("digits-mlp", model, optimizer, loader, torch.nn.functional.cross_entropy)


_REQUIRED = ("model", "optimizer", "train_loader")


def load_task_file(path: str | os.PathLike[str]) -> FinderTask:
    """Build a task from a Python file that defines ``model()``, ``optimizer(params)``, ``train_loader()`` and
    ``loss_fn()`` (returning the loss function) or ``step_fn(model, batch)``.

    The file is executed as a module; errors name the file and the missing or broken function.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"task file {str(path)!r} does not exist")
    spec = importlib.util.spec_from_file_location(f"lrkit_task_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"task file {str(path)!r} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    missing = [name for name in _REQUIRED if not callable(getattr(module, name, None))]
    if missing:
        raise ValueError(
            f"task file {str(path)!r} must define {', '.join(f'{m}()' for m in missing)}; "
            "see `lrkit find --help` for the expected functions"
        )
    has_loss = callable(getattr(module, "loss_fn", None))
    has_step = callable(getattr(module, "step_fn", None))
    if not has_loss and not has_step:
        raise ValueError(
            f"task file {str(path)!r} must define loss_fn() (returning a loss function) or step_fn(model, batch)"
        )
    model = module.model()
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model() in {str(path)!r} returned {type(model).__name__}, expected a torch.nn.Module")
    optimizer = module.optimizer(model.parameters())
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ValueError(
            f"optimizer(params) in {str(path)!r} returned {type(optimizer).__name__}, expected a torch.optim.Optimizer"
        )
    return FinderTask(
        path.stem, model, optimizer, module.train_loader(),
        loss_fn=module.loss_fn() if has_loss and not has_step else None,
        step_fn=module.step_fn if has_step else None,
    )
