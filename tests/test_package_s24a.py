"""Session 24: ``lrkit.choose_lr0`` and ``lrkit.AutoLR`` are package-level names (lazily imported from
``lrkit.train.auto``), reachable before and after ``import lrkit.train.auto``, with ``lrkit.train(...)`` still
callable and ``import lrkit`` still cheap."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

import lrkit

sys.path.insert(0, str(Path(__file__).parent))
from _helpers import fresh_python


def test_bare_import_does_not_load_auto_or_a_framework() -> None:
    got = fresh_python(
        "import sys, lrkit\n"
        "heavy = ('lrkit.train', 'lrkit.train.auto', 'transformers', 'lightning', 'matplotlib')\n"
        "print([m for m in heavy if m in sys.modules], 'choose_lr0' in dir(lrkit), 'AutoLR' in dir(lrkit),\n"
        "      'choose_lr0' in lrkit.__all__)\n"
    )
    assert got == "[] True True True"


def test_exports_before_importing_auto_and_train_stays_callable() -> None:
    got = fresh_python(
        "import sys, types, lrkit\n"
        "f, cls = lrkit.choose_lr0, lrkit.AutoLR\n"
        "import lrkit.train.auto as auto\n"
        "print(f is auto.choose_lr0, cls is auto.AutoLR, lrkit.choose_lr0 is f,\n"
        "      isinstance(lrkit.train, types.ModuleType), callable(lrkit.train),\n"
        "      lrkit.train is sys.modules['lrkit.train'],\n"
        "      [m for m in ('transformers', 'lightning', 'matplotlib') if m in sys.modules])\n"
    )
    assert got == "True True True True True True []"


def test_exports_after_importing_auto_first() -> None:
    got = fresh_python(
        "import lrkit.train.auto as auto\n"
        "import lrkit\n"
        "from lrkit import AutoLR, choose_lr0\n"
        "print(choose_lr0 is auto.choose_lr0, AutoLR is auto.AutoLR, lrkit.choose_lr0 is auto.choose_lr0,\n"
        "      callable(lrkit.train), lrkit.train.auto is auto)\n"
    )
    assert got == "True True True True True"


def test_star_import_includes_choose_lr0() -> None:
    got = fresh_python("from lrkit import *\nprint(choose_lr0.__module__, callable(train))\n")
    assert got == "lrkit.train.auto True"


def test_choose_lr0_runs_as_a_package_name() -> None:
    # choose_lr0's own docstring example, called as lrkit.choose_lr0; the caller's optimizer is restored
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    data = [(torch.randn(16, 4), torch.randn(16, 1)) for _ in range(8)]
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def sched(o: torch.optim.Optimizer, n: int) -> torch.optim.lr_scheduler.LambdaLR:
        return torch.optim.lr_scheduler.LambdaLR(o, lambda t: 1 - t / n)

    auto = lrkit.choose_lr0(model, opt, data, data[:2], total_steps=400, make_scheduler=sched)
    assert isinstance(auto, lrkit.AutoLR)
    assert auto.lr > 0 and auto.extra_steps <= 120
    assert opt.param_groups[0]["lr"] == 1e-3


def test_lrkit_train_still_trains_after_auto_is_imported(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import lrkit.train.auto  # binds lrkit.train to the package, which must still be callable)

    _ = lrkit.choose_lr0
    results = lrkit.train(data="iris", model="linear", epochs=1, project=str(tmp_path), verbose=False, plots=False)
    assert isinstance(results, lrkit.TrainResults) and results.epochs_run == 1
