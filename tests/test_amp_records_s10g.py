"""find_lr under AMP regions, and FinderResult's records (to_json/from_json): bugs found in the s10g hunt."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import lrkit
from lrkit import FinderResult


def _setup() -> tuple[torch.nn.Module, torch.optim.Optimizer, list]:
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = (x @ torch.tensor([1.0, -2.0, 0.5, 3.0])).unsqueeze(1)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    return model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), [(x, y)] * 2


def _find(model: torch.nn.Module, opt: torch.optim.Optimizer, loader: list, **kw) -> FinderResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return lrkit.find_lr(model, opt, loader, num_steps=20, start_lr=1e-4, end_lr=10.0, **kw)


# Bug: inside an outer autocast region that is *disabled* (torch.autocast("cpu", enabled=False), which libraries use
# to keep a block in float32), amp="bf16" cached the bf16 copy of each weight for the whole test: autocast only drops
# its cache when the outermost region exits, and the disabled region still counts as one. Every step ran on the
# starting weights, and the curve was flat (13.335 at every step) instead of the real one.
@pytest.mark.parametrize("outer", ["disabled", "other-device"])
def test_amp_inside_a_disabled_autocast_region_sees_each_steps_weights(outer: str) -> None:
    model, opt, loader = _setup()
    ref = _find(model, opt, loader, amp="bf16").losses
    region = torch.autocast("cpu", enabled=False) if outer == "disabled" else torch.autocast("cuda", enabled=False)
    with region:
        got = _find(model, opt, loader, amp="bf16").losses
    assert len(set(ref[:12])) > 3  # the reference curve moves
    assert got == ref


# Bug (same cause): a step_fn with its own bf16 autocast, called inside an outer (disabled) region
def test_step_fn_with_its_own_autocast_inside_a_disabled_region() -> None:
    model, opt, loader = _setup()

    def step_fn(m: torch.nn.Module, batch: tuple) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = m(batch[0])
        return torch.nn.functional.mse_loss(out.float(), batch[1])

    ref = _find(model, opt, loader, step_fn=step_fn).losses
    with torch.autocast("cpu", enabled=False):
        got = _find(model, opt, loader, step_fn=step_fn).losses
    assert got == ref


# Rough edge: amp="BF16" was refused with "Did you mean 'fp16'?"; a torch dtype was refused too
@pytest.mark.parametrize("amp", ["BF16", "Bf16", torch.bfloat16])
def test_amp_spellings(amp: object) -> None:
    model, opt, loader = _setup()
    assert _find(model, opt, loader, amp=amp).losses == _find(model, opt, loader, amp="bf16").losses


def test_amp_unknown_names_the_value() -> None:
    model, opt, loader = _setup()
    with pytest.raises(ValueError, match=r"'fp8'.*bf16.*fp16"):
        _find(model, opt, loader, amp="fp8")


_LRS = [float(v) for v in np.geomspace(1e-5, 1, 40)]
_LOSSES = [1.0 / (1 + 1e3 * lr) + (0 if lr < 0.2 else 10 * lr) for lr in _LRS]


# Bug: numpy integers in a hand-built record (num_steps=np.int64(40), as len() of a numpy array gives) made
# to_json fail with "Object of type int64 is not JSON serializable" — after the range test had run.
def test_numpy_numbers_in_a_record_round_trip(tmp_path: Path) -> None:
    r = FinderResult(lrs=np.asarray(_LRS), losses=np.asarray(_LOSSES, dtype=np.float32), num_steps=np.int64(40),
                     seconds=np.float32(1.5), start_lr=np.float32(1e-5), end_lr=np.int64(1))
    back = FinderResult.from_json(r.to_json(tmp_path / "lr.json"))
    assert back.num_steps == 40 and type(back.num_steps) is int
    assert back.seconds == 1.5 and back.end_lr == 1.0
    assert back.suggestion == r.suggestion


# Bug: from_json loaded a record whose fields had the wrong type or value without a word ("num_steps": "100" stayed
# a string, "mode": "cosine", "start_lr": null — which then broke the error messages that format it —, "warnings":
# "oops" iterated letter by letter, a boolean loss read as 1.0), and "lrs": null was a bare TypeError.
@pytest.mark.parametrize(("field", "value", "named"), [
    ("num_steps", "100", "num_steps='100'"),
    ("num_steps", -3, "num_steps=-3"),
    ("mode", "cosine", "'cosine'"),
    ("start_lr", None, "start_lr=None"),
    ("end_lr", 0, "end_lr=0"),
    ("seconds", "fast", "seconds='fast'"),
    ("warnings", "oops", "warnings='oops'"),
    ("lrs", None, "lrs=None"),
    ("losses", [1.0, 2.0, True], "losses\\[2\\]=True"),
    ("lrs", [1e-3, "x", 1e-1], "lrs\\[1\\]='x'"),
])
def test_from_json_names_a_bad_field(tmp_path: Path, field: str, value: object, named: str) -> None:
    record = {"lrs": [1e-3, 1e-2, 1e-1], "losses": [1.0, 0.5, 2.0], field: value}
    path = tmp_path / "lr.json"
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match=named):
        FinderResult.from_json(path)


# Bug: a truncated or non-JSON file gave json's bare "Expecting value: line 1 column 1 (char 0)", not its path
@pytest.mark.parametrize("text", ["", '{"lrs": [0.001, 0.01', "lrs,losses\n0.1,1\n"])
def test_from_json_on_a_file_that_is_not_json_names_it(tmp_path: Path, text: str) -> None:
    path = tmp_path / "lr_find.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"lr_find\.json.*not a range-test record.*not JSON"):
        FinderResult.from_json(path)


# Bug: to_json under a path whose parent is a file gave "FileExistsError: [Errno 17] File exists: '.../run.png'"
def test_to_json_under_a_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "run.png").write_bytes(b"png")
    r = FinderResult(lrs=_LRS, losses=_LOSSES)
    with pytest.raises(ValueError, match=r"run\.png' is a file, not a folder"):
        r.to_json(tmp_path / "run.png" / "lr.json")
    assert (tmp_path / "run.png").read_bytes() == b"png"


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    losses = [*_LOSSES[:-3], math.nan, math.inf, -math.inf]
    r = FinderResult(lrs=_LRS, losses=losses, start_lr=1e-5, end_lr=1.0, num_steps=40, mode="linear",
                     stop_reason="non-finite", seconds=2.25, rule="valley", warnings=["short", "ünïcode"], passes=2.5)
    path = r.to_json(tmp_path / "ünï" / "лр.json")
    text = path.read_text(encoding="utf-8")
    assert "NaN" not in text and "Infinity" not in text  # strict JSON
    back = FinderResult.from_json(path)
    for name in FinderResult.__dataclass_fields__:
        if name != "losses":
            assert getattr(back, name) == getattr(r, name), name
    assert back.losses[:-3] == r.losses[:-3] and math.isnan(back.losses[-3])
    assert back.losses[-2:] == [math.inf, -math.inf]  # NaN and each infinity come back as themselves
    assert back.suggestions() == r.suggestions()
