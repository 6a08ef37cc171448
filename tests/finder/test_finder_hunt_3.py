"""Third finder bug hunt: the robust rule's options, hand-built and loaded records, batches of every shape, and the
loss checks that now run only when backward fails. Each bug test failed before its fix."""

from __future__ import annotations

import json
import math
import re
import warnings
from collections import OrderedDict, defaultdict, namedtuple
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import lrkit
from lrkit._step import move_to
from lrkit.finder import FinderResult
from lrkit.finder.suggest import suggest_robust

LRS = list(np.logspace(-4, 0, 60))
PLATEAU = list(1.0 / (1.0 + np.asarray(LRS) / 1e-2))  # falls, then flattens out
EXPLODE = list(np.asarray(PLATEAU) + (np.asarray(LRS) / 0.1) ** 2)  # the same, then blows up


def plateau(**kw: Any) -> FinderResult:
    return FinderResult(lrs=LRS, losses=PLATEAU, start_lr=1e-4, end_lr=1.0, num_steps=60, **kw)


# -- the robust rule's options -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["backoff_decades", "plateau_backoff_decades", "plateau_rise"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -0.5, True, "one", [1.0]])
def test_a_bad_robust_option_is_named(name: str, value: Any) -> None:
    # Bug: plateau_backoff_decades=nan suggested nan, inf/-0.5 were clipped silently (to the descent's start or to
    # lr_min itself), True counted as 1, plateau_rise=nan silently meant "never a plateau", and a string raised
    # "TypeError: unsupported operand type(s) for ** or pow(): 'float' and 'str'".
    for curve in (PLATEAU, EXPLODE):
        r = FinderResult(lrs=LRS, losses=curve, start_lr=1e-4, end_lr=1.0, num_steps=60)
        with pytest.raises(ValueError, match=rf"{re.escape(f'{name}={value!r}')} must be a (finite )?number"):
            r.suggest(**{name: value})
        with pytest.raises(ValueError, match=rf"{re.escape(f'{name}={value!r}')} must be a (finite )?number"):
            suggest_robust(np.asarray(LRS), np.asarray(curve), **{name: value})


def test_backoff_decades_none_is_named() -> None:
    # Bug: backoff_decades=None (only plateau_backoff_decades takes None) was ignored on a plateau and raised
    # "TypeError: unsupported operand type(s) for ** or pow()" on an explosion.
    for curve in (PLATEAU, EXPLODE):
        r = FinderResult(lrs=LRS, losses=curve, start_lr=1e-4, end_lr=1.0, num_steps=60)
        with pytest.raises(ValueError, match="backoff_decades=None must be a number"):
            r.suggest(backoff_decades=None)


def test_valid_robust_options_still_work() -> None:
    r = plateau()
    assert r.suggest(plateau_backoff_decades=0) == pytest.approx(1.0)  # lr_min itself (the last LR)
    assert r.suggest(plateau_backoff_decades=np.float64(1.0)) == pytest.approx(0.1)
    assert r.suggest(plateau_rise=0) == pytest.approx(0.1)  # nothing is a plateau: a decade below
    assert r.suggest(plateau_backoff_decades=None, backoff_decades=2) == pytest.approx(0.01)


def test_an_empty_rule_name_is_not_the_default() -> None:
    # Bug: suggest("") silently answered with the default rule (`rule or self.rule`).
    with pytest.raises(ValueError, match="unknown suggestion rule ''"):
        plateau().suggest("")


# -- records built by hand or loaded -----------------------------------------------------------------------------
def test_a_misspelt_stop_reason_is_refused() -> None:
    # Bug: stop_reason="diverge" (for "diverged") was accepted, and any value but "completed" silently switched the
    # robust rule to the explosion regime: a decade below lr_min instead of half a decade.
    valid = "Valid: completed, diverged, non-finite"
    with pytest.raises(ValueError, match=rf"unknown stop_reason 'diverge'. Did you mean 'diverged'\? {valid}"):
        plateau(stop_reason="diverge")
    assert plateau(stop_reason="diverged").suggestion == pytest.approx(0.1)


@pytest.mark.parametrize(("lrs", "match"), [
    ([0.0, *LRS[1:]], r"lrs\[0\]=0.0"),
    ([-1.0, *LRS[1:]], r"lrs\[0\]=-1.0"),
    ([*LRS[:5], float("nan"), *LRS[6:]], r"lrs\[5\]=nan"),
    ([*LRS[:5], float("inf"), *LRS[6:]], r"lrs\[5\]=inf"),
    (LRS[::-1], r"lrs must increase.*lrs\[1\]="),
])
def test_lrs_that_no_range_test_gives_are_refused(lrs: list[float], match: str) -> None:
    # Bug: a hand-built or edited record with a zero, negative or NaN LR gave RuntimeWarnings from log10 and a NaN
    # suggestion ({'steepest': nan}); a reversed sweep gave a confident answer read off the wrong end.
    with pytest.raises(ValueError, match=match):
        FinderResult(lrs=lrs, losses=PLATEAU)


def test_a_bad_rule_is_refused_when_the_record_is_built() -> None:
    # Bug: FinderResult(rule="valey") was accepted; to_json() then failed with the rule error after the test.
    with pytest.raises(ValueError, match="unknown suggestion rule 'valey'. Did you mean 'valley'"):
        plateau(rule="valey")


@pytest.mark.parametrize("stop_reason", ["completed", "diverged", "non-finite"])
def test_suggest_gives_the_same_answer_after_a_json_round_trip(stop_reason: str, tmp_path: Path) -> None:
    losses = list(PLATEAU)
    if stop_reason == "non-finite":
        losses[-1] = float("inf")
    r = FinderResult(lrs=LRS, losses=losses, start_lr=1e-4, end_lr=1.0, num_steps=60, stop_reason=stop_reason)
    back = FinderResult.from_json(r.to_json(tmp_path / "lr_find.json"))
    assert back.stop_reason == stop_reason
    assert back.suggestions() == r.suggestions() and back.range == r.range
    assert back.suggest(plateau_backoff_decades=0.25) == r.suggest(plateau_backoff_decades=0.25)


@pytest.mark.parametrize("content", ['[1, 2]', '{"epochs": 3}', '{"lrs": [0.1, 0.2, 0.3]}'])
def test_a_json_that_is_not_a_range_test_record_is_named(content: str, tmp_path: Path) -> None:
    # Bug: FinderResult.from_json on another JSON (a training run's results.json) raised "TypeError:
    # FinderResult.__init__() missing 1 required positional argument: 'lrs'" (or "list indices must be integers").
    path = tmp_path / "results.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=r"results.json.* is not a range-test record .*'lrs' and 'losses'"):
        FinderResult.from_json(path)


# -- batches of every shape --------------------------------------------------------------------------------------
class AttrDict(dict):
    """The EasyDict/AttrDict pattern: keys readable as attributes."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def test_a_dict_subclass_batch_keeps_its_type_in_find_lr() -> None:
    # Bug: move_to rebuilt every Mapping as a plain dict on every step (even on the batch's own device), so a
    # step_fn reading batch.x failed with "AttributeError: 'dict' object has no attribute 'x'".
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    data = [AttrDict(x=x[i:i + 16], y=x[i:i + 16].sum(1)) for i in range(0, 64, 16)]
    model = torch.nn.Sequential(torch.nn.Linear(4, 1), torch.nn.Flatten(0))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = lrkit.find_lr(model, opt, data, step_fn=lambda m, b: ((m(b.x) - b.y) ** 2).mean(), num_steps=12)
    assert len(r.losses) == 12


def test_move_to_returns_a_mapping_on_its_device_unchanged() -> None:
    # Bug: the docstring's promise ("a batch already on device is returned as it is, nothing rebuilt") did not hold
    # for dicts, the most common batch layout after (x, y).
    t = torch.zeros(2)
    for batch in ({"x": t, "y": [t, 1, "a"]}, ({"a": t}, {"b": 3}), OrderedDict(x=t), AttrDict(x=t)):
        assert move_to(batch, torch.device("cpu")) is batch


P = namedtuple("P", "x y")


@pytest.mark.parametrize("batch", [
    OrderedDict(x=torch.zeros(2), y=torch.ones(2)),
    defaultdict(list, x=[torch.zeros(2)], n=[3]),
    AttrDict(x=torch.zeros(2), s="text"),
    {"b": P(torch.zeros(2), torch.ones(2)), "s": "str", "i": 3},
    ({"a": torch.zeros(2)}, {"b": 3}, ()),
    P(P(torch.zeros(2), 1), "z"),
])
def test_move_to_keeps_every_container_type_when_it_moves(batch: Any) -> None:
    # Bug: OrderedDict, defaultdict and dict subclasses came back as plain dicts (defaultdict lost its factory).
    out = move_to(batch, torch.device("meta"))

    def check(a: Any, b: Any) -> None:
        assert type(a) is type(b)
        if isinstance(a, torch.Tensor):
            assert b.device.type == "meta" and a.device.type == "cpu" and a.shape == b.shape
        elif isinstance(a, dict):
            assert list(a) == list(b)
            for k in a:
                check(a[k], b[k])
        elif isinstance(a, (list, tuple)):
            assert len(a) == len(b)
            for u, v in zip(a, b):
                check(u, v)
        else:
            assert a == b

    check(batch, out)
    if isinstance(batch, defaultdict):
        assert out.default_factory is list and out["new"] == [] and "new" not in batch  # a copy, not the original


# -- the loss checks that run only when backward fails -----------------------------------------------------------
def _mse(m: torch.nn.Module, b: Any) -> torch.Tensor:
    return ((m(b[0]) - b[1]) ** 2).mean()


def _no_grad(m: torch.nn.Module, b: Any) -> torch.Tensor:
    with torch.no_grad():
        return _mse(m, b)


BAD_LOSSES: dict[str, tuple[Callable[..., Any], str]] = {
    "int": (lambda m, b: _mse(m, b).long(), "real floating-point scalar, got dtype int64"),
    "bool": (lambda m, b: _mse(m, b) > 0, "real floating-point scalar, got dtype bool"),
    "complex": (lambda m, b: _mse(m, b).to(torch.complex64), "real floating-point scalar, got dtype complex64"),
    "detached": (lambda m, b: _mse(m, b).detach(), "does not require grad"),
    "no_grad": (_no_grad, "does not require grad"),
    "float": (lambda m, b: _mse(m, b).item(), "must be a scalar tensor, got float"),
    "vector": (lambda m, b: (m(b[0]) - b[1]) ** 2, r"must be a scalar tensor, got \(16,\)"),
}


@pytest.mark.parametrize("case", sorted(BAD_LOSSES))
@pytest.mark.parametrize(("optimizer", "accumulation_steps", "amp"), [
    ("SGD", 1, False), ("SGD", 3, "bf16"), ("LBFGS", 2, False), ("LBFGS", 1, "bf16"),
])
def test_every_bad_loss_is_named_on_every_path(case: str, optimizer: str, accumulation_steps: int,
                                               amp: bool | str) -> None:
    step_fn, match = BAD_LOSSES[case]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    data = [(x[i:i + 16], x[i:i + 16].sum(1)) for i in range(0, 64, 16)]
    model = torch.nn.Sequential(torch.nn.Linear(4, 1), torch.nn.Flatten(0))
    opt = getattr(torch.optim, optimizer)(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=match):
        lrkit.find_lr(model, opt, data, step_fn=step_fn, num_steps=10, accumulation_steps=accumulation_steps, amp=amp)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert opt.param_groups[0]["lr"] == 0.1 and all(p.grad is None for p in model.parameters())


def test_a_one_element_loss_of_shape_1_trains_like_a_scalar() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    data = [(x[i:i + 16], x[i:i + 16].sum(1)) for i in range(0, 64, 16)]
    curves = []
    for reshape in (False, True):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 1), torch.nn.Flatten(0))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = lrkit.find_lr(model, opt, data, num_steps=12, accumulation_steps=2,
                              step_fn=lambda m, b, flat=reshape: _mse(m, b).reshape(1) if flat else _mse(m, b))
        curves.append(r.losses)
    assert curves[0] == curves[1] and all(math.isfinite(v) for v in curves[0])


def test_records_stay_strict_json(tmp_path: Path) -> None:
    losses = [*PLATEAU[:-1], float("inf")]
    r = FinderResult(lrs=LRS, losses=losses, stop_reason="non-finite")
    text = r.to_json(tmp_path / "r.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))


# -- find_lr's own arguments -------------------------------------------------------------------------------------
def _linear_task() -> tuple[torch.nn.Module, torch.optim.Optimizer, list[tuple[torch.Tensor, torch.Tensor]]]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    model = torch.nn.Linear(4, 1)
    data = [(x[i:i + 16], x[i:i + 16, :1]) for i in range(0, 64, 16)]
    return model, torch.optim.SGD(model.parameters(), lr=0.1), data


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize(("device", "match"), [
    # torch's own reason after the name: "Torch not compiled with CUDA enabled" (CPU build), "Found no NVIDIA
    # driver ..." (CUDA build, no GPU)
    ("cuda", r"device='cuda' cannot be used: .*(CUDA|NVIDIA).*pass device=None"),
    ("cdua", r"device='cdua' cannot be used: .*cdua"),
])
def test_an_unusable_device_is_named_before_the_test(device: str, match: str) -> None:
    # Bug: device="cuda" on a CPU-only torch failed at the first batch with "AssertionError: Torch not compiled with
    # CUDA enabled" (an AssertionError, which callers catching ValueError miss); "cdua" with torch's RuntimeError.
    model, opt, data = _linear_task()
    calls: list[int] = []
    with pytest.raises(ValueError, match=match):
        lrkit.find_lr(model, opt, data, device=device, num_steps=10, progress=lambda *a: calls.append(1))
    assert calls == []


def test_a_progress_that_is_not_callable_is_named() -> None:
    # Bug: progress=True ran the first step, then failed with "TypeError: 'bool' object is not callable".
    model, opt, data = _linear_task()
    with pytest.raises(ValueError, match=r"progress=True must be a function progress\(step, total, lr, loss\)"):
        lrkit.find_lr(model, opt, data, num_steps=10, progress=True)  # type: ignore[arg-type]


def test_a_range_too_wide_for_float64_is_named_up_front() -> None:
    # Bug: start_lr=1e-320, end_lr=1 made end_lr / start_lr overflow to inf: the test ran at lr=inf until the loss
    # turned non-finite, and the record held infinite LRs.
    model, opt, data = _linear_task()
    calls: list[int] = []
    with pytest.raises(ValueError, match=r"start_lr=1e-320 and end_lr=1.0 are too far apart"):
        lrkit.find_lr(model, opt, data, start_lr=1e-320, end_lr=1.0, num_steps=10, progress=lambda *a: calls.append(1))
    assert calls == []
