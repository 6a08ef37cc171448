"""Session 19: ``find_lr`` with a peer's argument names (torch-lr-finder, fastai, Lightning).

A user migrating from a peer passes its names (``num_iter=``, ``num_it=``, ``min_lr=``, ...). Python's own
``TypeError: find_lr() got an unexpected keyword argument 'num_iter'`` says nothing about what to write instead:
the error names the bad keyword, whose name it is, and lrkit's name for it (or, with no equivalent, what lrkit does
instead), as the README's migration section maps them. Other unknown names get a did-you-mean and the valid list.
The signature users see (``inspect.signature``, ``help()``, an IDE) stays the real one.
"""

from __future__ import annotations

import inspect
import typing
import warnings

import pytest
import torch

import lrkit
from lrkit.finder import range_test

REAL = ["model", "optimizer", "train_loader", "loss_fn", "step_fn", "start_lr", "end_lr", "num_steps", "mode", "rule",
        "diverge_factor", "accumulation_steps", "amp", "max_grad_norm", "scaler", "device", "progress",
        "snapshot_device"]


def _setup(n: int = 64) -> tuple[torch.nn.Module, torch.optim.Optimizer, list]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    y = (x @ torch.randn(4, 3, generator=g)).argmax(1)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    loader = [(x[i:i + 16], y[i:i + 16]) for i in range(0, n, 16)]
    return model, torch.optim.SGD(model.parameters(), lr=0.1), loader


def _error(**kwargs: object) -> str:
    model, opt, loader = _setup()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(TypeError) as info:
        lrkit.find_lr(model, opt, loader, **kwargs)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # refused before anything ran
    assert opt.param_groups[0]["lr"] == 0.1
    return str(info.value)


# name, value, peer, what the message must say lrkit calls it (as the README's migration tables map it)
MAPPED = [
    ("num_iter", 200, "torch-lr-finder", "num_steps=200"),
    ("step_mode", "linear", "torch-lr-finder", "mode='linear'"),
    ("diverge_th", 5, "torch-lr-finder", "diverge_factor=5"),
    ("criterion", torch.nn.CrossEntropyLoss(), "torch-lr-finder", "loss_fn="),
    ("grad_scaler", None, "torch-lr-finder", "scaler="),
    ("memory_cache", False, "torch-lr-finder", "snapshot_device='cpu'"),
    ("cache_dir", "/tmp/x", "torch-lr-finder", "snapshot_device='cpu'"),
    ("amp_backend", "torch", "torch-lr-finder", "amp='fp16'"),
    ("num_it", 50, "fastai", "num_steps=50"),
    ("stop_div", False, "fastai", "diverge_factor=None"),
    ("stop_div", True, "fastai", "diverge_factor=4.0"),
    ("min_lr", 1e-8, "Lightning", "start_lr=1e-08"),
    ("max_lr", 1.0, "Lightning", "end_lr=1.0"),
    ("num_training", 100, "Lightning", "num_steps=100"),
    ("early_stop_threshold", None, "Lightning", "diverge_factor=None"),
    ("early_stop_threshold", 4.0, "Lightning", "diverge_factor=4.0"),
]


@pytest.mark.parametrize(("name", "value", "peer", "lrkit_name"), MAPPED, ids=[f"{m[0]}={m[1]!r}" for m in MAPPED])
def test_a_peers_name_is_named_with_lrkits(name: str, value: object, peer: str, lrkit_name: str) -> None:
    msg = _error(**{name: value})
    assert f"unexpected keyword argument {name!r}" in msg  # Python's own words first (what users search for)
    assert peer in msg
    assert lrkit_name in msg


# names with no lrkit equivalent: the message says what lrkit does instead (the README's "what differs" column)
NO_EQUIVALENT = [
    ("smooth_f", 0.05, "torch-lr-finder", ["no smoothing option", "fastai's EMA", "result.losses", "raw"]),
    ("val_loader", [], "torch-lr-finder", ["choose_lr0", "lr0='auto'"]),
    ("non_blocking_transfer", True, "torch-lr-finder", ["without blocking"]),
    ("suggest_funcs", (), "fastai", ["result.suggest('valley')", "result.suggestions()"]),
    ("show_plot", True, "fastai", ["result.text_plot()", "result.plot("]),
    ("update_attr", True, "Lightning", ["result.suggestion", "changes no LR"]),
    ("attr_name", "lr", "Lightning", ["result.suggestion", "changes no LR"]),
    ("train_dataloaders", [], "Lightning", ["find_lr(model, optimizer, train_loader"]),
]


@pytest.mark.parametrize(("name", "value", "peer", "says"), NO_EQUIVALENT, ids=[m[0] for m in NO_EQUIVALENT])
def test_a_peers_name_without_equivalent_says_what_lrkit_does(name: str, value: object, peer: str,
                                                              says: list[str]) -> None:
    msg = _error(**{name: value})
    assert f"unexpected keyword argument {name!r}" in msg
    assert peer in msg
    for text in says:
        assert text in msg, (text, msg)


def test_every_bad_keyword_of_one_call_is_named() -> None:
    msg = _error(num_iter=100, step_mode="exp", smooth_f=0.05)
    for name in ("num_iter", "step_mode", "smooth_f", "num_steps", "mode='exp'"):
        assert name in msg


def test_accumulation_steps_is_the_same_name_and_runs() -> None:
    model, opt, loader = _setup()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = lrkit.find_lr(model, opt, loader, accumulation_steps=2, num_steps=10, end_lr=1.0)
    assert len(result.lrs) == 10


@pytest.mark.parametrize(("name", "close"), [("num_step", "num_steps"), ("lossfn", "loss_fn"),
                                              ("end_Lr", "end_lr"), ("diverge_fact", "diverge_factor")])
def test_a_misspelt_keyword_gets_did_you_mean_and_the_valid_list(name: str, close: str) -> None:
    msg = _error(**{name: 1})
    assert f"unexpected keyword argument {name!r}" in msg
    assert f"Did you mean {close!r}?" in msg
    valid = msg.split("Valid keywords: ", 1)[1]
    assert [k.strip() for k in valid.split(",")] == sorted(REAL[3:])


def test_a_keyword_close_to_nothing_gets_the_valid_list_only() -> None:
    msg = _error(zzzzqqq=1)
    assert "unexpected keyword argument 'zzzzqqq'" in msg
    assert "Did you mean" not in msg
    assert "Valid keywords: accumulation_steps, amp," in msg


def test_too_many_positional_arguments_say_the_rest_are_keywords() -> None:
    model, opt, loader = _setup()
    criterion = torch.nn.CrossEntropyLoss()
    with pytest.raises(TypeError) as info:
        lrkit.find_lr(model, opt, loader, criterion)  # type: ignore[misc]
    msg = str(info.value)
    assert "3 positional arguments" in msg and "4 were given" in msg
    assert "loss_fn=" in msg and "keyword" in msg


def test_the_signature_users_see_is_the_real_one() -> None:
    sig = inspect.signature(lrkit.find_lr)
    assert list(sig.parameters) == REAL
    assert not any(p.kind is p.VAR_KEYWORD or p.kind is p.VAR_POSITIONAL for p in sig.parameters.values())
    assert all(sig.parameters[k].kind is inspect.Parameter.KEYWORD_ONLY for k in REAL[3:])
    assert sig.parameters["num_steps"].default == 100
    hints = typing.get_type_hints(lrkit.find_lr)
    assert hints["num_steps"] is int and hints["return"] is lrkit.FinderResult
    assert lrkit.find_lr.__name__ == "find_lr" and "LR range test" in (lrkit.find_lr.__doc__ or "")
    assert lrkit.find_lr.__module__ == "lrkit.finder.range_test"


def test_warnings_still_point_at_the_callers_line() -> None:
    """The keyword check adds no frame that a warning would point at instead of the user's ``find_lr`` line."""
    model, opt, loader = _setup()
    ds = torch.utils.data.TensorDataset(torch.randn(64, 4), torch.randint(0, 3, (64,)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lrkit.find_lr(model, opt, ds, num_steps=10, end_lr=1e-6)  # a Dataset: warned before the test
        lrkit.find_lr(model, opt, loader[:1], num_steps=10, end_lr=1e-6)  # one batch, tiny LRs: "too flat", after
    messages = [str(w.message) for w in caught]
    assert any("a Dataset, not a DataLoader" in m for m in messages), messages
    assert any("too flat to judge" in m for m in messages), messages
    for w in caught:
        assert w.filename == __file__, (w.filename, str(w.message)[:80])


def test_the_check_is_not_a_catch_of_typeerrors_raised_inside() -> None:
    """A ``TypeError`` from the user's own code inside the test propagates as it is, not as a keyword error."""
    model, opt, loader = _setup()

    def step_fn(model: torch.nn.Module, batch: object) -> torch.Tensor:
        raise TypeError("my own bug")

    with pytest.raises(TypeError, match="^my own bug$"):
        lrkit.find_lr(model, opt, loader, step_fn=step_fn)
    assert range_test.find_lr is lrkit.find_lr


def _value_error(**kwargs: object) -> str:
    model, opt, loader = _setup()
    with pytest.raises(ValueError) as info:
        lrkit.find_lr(model, opt, loader, **kwargs)
    return str(info.value)


def test_lightnings_mode_exponential_says_exp() -> None:
    msg = _value_error(mode="exponential")
    assert "'exponential'" in msg and "Lightning" in msg and "mode='exp'" in msg
    assert "Valid: exp, linear" in msg  # as the README's Lightning table says: an error listing exp, linear


def test_torch_lr_finders_start_lr_none_says_how_to_start_at_the_optimizers_lr() -> None:
    msg = _value_error(start_lr=None)
    assert "start_lr=None" in msg and "torch-lr-finder" in msg
    assert "start_lr=optimizer.param_groups[0]['lr']" in msg


def test_fastais_list_of_lrs_per_group_says_the_groups_keep_their_ratios() -> None:
    msg = _value_error(start_lr=[1e-7, 1e-6])
    assert "start_lr=[1e-07, 1e-06]" in msg and "fastai" in msg and "ratio" in msg
    msg = _value_error(end_lr=(1.0, 10.0))
    assert "end_lr=(1.0, 10.0)" in msg and "ratio" in msg


# the peers' signatures, as read from the installed packages (not imported here: CI does not install them)
PEER_SIGNATURES = {
    "torch-lr-finder 0.2.2 LRFinder": ["model", "optimizer", "criterion", "device", "memory_cache", "cache_dir",
                                       "amp_backend", "amp_config", "grad_scaler"],
    "torch-lr-finder 0.2.2 range_test": ["train_loader", "val_loader", "start_lr", "end_lr", "num_iter", "step_mode",
                                         "smooth_f", "diverge_th", "accumulation_steps", "non_blocking_transfer"],
    "fastai 2.8.12 lr_find": ["start_lr", "end_lr", "num_it", "stop_div", "show_plot", "suggest_funcs"],
    "Lightning 2.6.6 Tuner.lr_find": ["model", "train_dataloaders", "val_dataloaders", "dataloaders", "datamodule",
                                      "method", "min_lr", "max_lr", "num_training", "mode", "early_stop_threshold",
                                      "update_attr", "attr_name"],
}


@pytest.mark.parametrize("peer", list(PEER_SIGNATURES))
def test_every_peer_keyword_is_either_lrkits_or_mapped(peer: str) -> None:
    for name in PEER_SIGNATURES[peer]:
        if name in REAL:
            continue
        msg = _error(**{name: None})
        assert peer.split()[0] in msg, (name, msg)
        assert "Valid keywords" not in msg, (name, msg)  # mapped, not a did-you-mean
