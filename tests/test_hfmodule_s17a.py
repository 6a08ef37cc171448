"""The Hugging Face batch code lives in ``lrkit._hf`` (session 17a refactor of ``lrkit._step``).

``_step`` imports from ``_hf`` and never the other way (no import cycle), and the names other modules import from
``_step`` are the same objects (``lrkit.train``'s step_fn is ``own_loss``, and the range test's record recognises it by
identity).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import lrkit._hf as hf
import lrkit._step as step


def test_hf_imports_nothing_of_lrkit() -> None:
    tree = ast.parse(Path(hf.__file__).read_text())
    imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in imported if m and m.split(".")[0] == "lrkit"]


def test_step_reexports_the_same_objects() -> None:
    for name in ("takes_whole_batch", "own_loss", "first_line", "stacklevel_outside_lrkit", "_INPUT_KEYS",
                 "_TARGET_KEYS"):
        assert getattr(step, name) is getattr(hf, name), name
    assert step._loss_text(None, None, step.own_loss, None) == "the model's own loss, from model(**batch)"


def test_hf_and_step_import_on_their_own_in_either_order() -> None:
    for first, second in (("lrkit._hf", "lrkit._step"), ("lrkit._step", "lrkit._hf")):
        code = f"import {first}, {second}; print({second}.__name__)"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
