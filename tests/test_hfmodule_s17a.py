"""The Hugging Face batch code lives in ``lrkit._hf`` (session 17a refactor of ``lrkit._step``).

``_step`` imports from ``_hf`` and never the other way (no import cycle; ``_hf`` imports only ``lrkit._utils``, which
imports nothing of lrkit's, for the message helpers moved there in session 18), and the names other modules import from
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
import lrkit._utils as utils


def _lrkit_imports(module: object) -> list[str]:
    tree = ast.parse(Path(module.__file__).read_text())  # type: ignore[attr-defined]
    imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    return [m for m in imported if m and m.split(".")[0] == "lrkit"]


def test_hf_imports_only_utils_which_imports_nothing_of_lrkit() -> None:
    assert set(_lrkit_imports(hf)) == {"lrkit._utils"}
    assert _lrkit_imports(utils) == []


def test_step_reexports_the_same_objects() -> None:
    for name in ("takes_whole_batch", "own_loss", "_INPUT_KEYS", "_TARGET_KEYS"):
        assert getattr(step, name) is getattr(hf, name), name
    for name in ("first_line", "stacklevel_outside_lrkit", "_a", "_keys"):
        assert getattr(step, name) is getattr(utils, name) is getattr(hf, name), name
    assert step._loss_text(None, None, step.own_loss, None) == "the model's own loss, from model(**batch)"


def test_hf_and_step_import_on_their_own_in_either_order() -> None:
    for first, second in (("lrkit._hf", "lrkit._step"), ("lrkit._step", "lrkit._hf")):
        code = f"import {first}, {second}; print({second}.__name__)"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
