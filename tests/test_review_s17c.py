"""Review of session 17's library changes (helper s17c): the bugs found, each pinned by a test.

* ``lrkit find``: ``find_lr`` names ``end_lr``/``start_lr`` as ``:g`` prints them (six significant digits), and
  ``cli_message`` compared that text with the option's value exactly, so a value typed with more digits
  (``--end-lr 1.23456789``) was left as the Python keyword (``end_lr=1.23457``), where before the session it read
  ``--end-lr ...``.
* ``lrkit schedule``: ``cli_message`` rewrote the library's keywords everywhere in a message, also inside what it
  quotes (the user's own spec and token: ``bad token '--steps-per-epoch' in spec 'cosine --steps-per-epoch'``, so the
  spec was named twice, once misquoted) and in a did-you-mean's list of valid spec keys (``Did you mean
  '--total-steps'? Valid: ..., --steps-per-epoch, --total-steps, ...``: a flag is no spec key). Quoted text and a
  ``Valid:`` list are now left as the library wrote them.
* ``cli_message`` compared a value with ``float(value)``, which raises ``OverflowError`` for an integer option past
  a float's range (``lrkit find --seed 1000...0``, 401 digits): a traceback instead of the error.
* ``lrkit find``: likewise a count the library prints as ``{n:,}`` (``num_steps=2,000,000 must be at most
  1,000,000``) was left as the keyword. ``lrkit find`` has no spec keys, so each ``key=VALUE`` of its options is now
  written as the flag whatever the value's spelling (``cli_message(..., any_value=True)``), as before the session;
  a ``{n:,}`` count is matched with the option's value too, and shown as typed.
* ``TypedFloat`` (the CLI's float that remembers its text) could not be copied, deep-copied or pickled: its
  ``__new__`` takes the text too, and a float subclass reduces to ``(value,)`` only.
* ``AutoLR`` read back from a record without ``finder_loss`` marks that with a module sentinel (``object()``); a copy
  or a pickle of it made a new object, which ``to_dict()`` then wrote as the record's ``finder_loss`` (not JSON).

Tests marked "Bug:" failed before the fix (src/lrkit/cli/_common.py, src/lrkit/cli/find.py, src/lrkit/train/auto.py).
"""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Callable
from typing import Any

import pytest
from typer.testing import CliRunner

from lrkit.cli._common import TypedFloat, cli_message, shown, typed_float
from lrkit.cli.app import build_app
from lrkit.train.auto import AutoLR

_COPIES: list[Callable[[Any], Any]] = [copy.copy, copy.deepcopy, lambda v: pickle.loads(pickle.dumps(v))]


# ------------------------------------------------------------------------------ cli_message: ``:g`` values
def test_a_value_printed_to_six_digits_is_still_named_by_its_flag() -> None:
    """Bug: ``end_lr=1.23457`` (``{end_lr:g}``) was not matched with the option's ``1.23456789``."""
    flags = {"end_lr": ("--end-lr", typed_float("1.23456789")), "start_lr": ("--start-lr", typed_float("10"))}
    assert cli_message("end_lr=1.23457 must be greater than start_lr=10", flags) == \
        "--end-lr 1.23456789 must be greater than --start-lr 10"


def test_a_value_that_only_rounds_alike_is_not_taken_for_the_options() -> None:
    """A spec's own value close to, but not the ``:g`` form of, the option's stays as the spec wrote it."""
    flags = {"total_steps": ("--total-steps", typed_float("1000.4"))}
    assert cli_message("total_steps=1000 in the spec disagrees with --total-steps", flags) == \
        "total_steps=1000 in the spec disagrees with --total-steps"


def test_lrkit_find_names_an_end_lr_typed_with_many_digits_by_its_flag(tmp_path) -> None:
    """Bug: ``error: end_lr=1.23457 must be greater than --start-lr 10``."""
    res = CliRunner().invoke(build_app(), ["find", "--start-lr", "10", "--end-lr", "1.23456789", "--out",
                                           str(tmp_path / "f")])
    assert res.exit_code == 2
    assert "--end-lr 1.23456789 must be greater than --start-lr 10" in res.output, res.output
    assert "end_lr=" not in res.output and "start_lr=" not in res.output


# ------------------------------------------------------------------------------ cli_message: huge integers
_HUGE = "1" + "0" * 400


def test_an_integer_past_a_floats_range_is_named_by_its_flag() -> None:
    """Bug: ``OverflowError: int too large to convert to float``."""
    flags = {"seed": ("--seed", int(_HUGE)), "num_steps": ("--num-steps", 100)}
    assert cli_message(f"seed={_HUGE} must be an integer in [-2**63, 2**64)", flags) == \
        f"--seed {_HUGE} must be an integer in [-2**63, 2**64)"
    assert cli_message("seed=5 and num_steps=100", flags) == "seed=5 and --num-steps 100"


@pytest.mark.parametrize("flag", ["--seed", "--num-steps"])
def test_lrkit_find_with_a_huge_integer_is_a_clear_error(tmp_path, flag: str) -> None:
    res = CliRunner().invoke(build_app(), ["find", flag, _HUGE, "--out", str(tmp_path / "f")])
    assert res.exit_code == 2, res.output
    assert not isinstance(res.exception, OverflowError)
    squashed = "".join(res.output.split())  # (rich wraps a 401-digit number anywhere)
    assert "OverflowError" not in squashed and flag in squashed, res.output
    assert f"{flag[2:].replace('-', '_')}=" not in squashed, res.output


@pytest.mark.parametrize(("args", "expected"), [
    (["--num-steps", "2000000"], "--num-steps 2000000 must be at most 1,000,000"),
    (["--start-lr", "10", "--end-lr", "1.23456789"], "--end-lr 1.23456789 must be greater than --start-lr 10"),
])
def test_lrkit_find_names_the_flag_however_the_library_prints_the_value(tmp_path, args: list[str],
                                                                        expected: str) -> None:
    """Bug: ``error: num_steps=2,000,000 must be at most 1,000,000`` (the count as ``{n:,}`` prints it was not
    matched with the option's 2000000, so the Python keyword was left; before session 17 it read ``--num-steps``).
    ``lrkit find`` has no spec whose keys could be meant: every ``key=VALUE`` of its options is the option."""
    res = CliRunner().invoke(build_app(), ["find", *args, "--out", str(tmp_path / "f")])
    assert res.exit_code == 2
    assert expected in " ".join(res.output.split()), res.output
    assert "num_steps=" not in res.output and "end_lr=" not in res.output


# ------------------------------------------------------------------------------ cli_message: quoted text
_SCHEDULE_FLAGS = {"epochs": ("--epochs", None), "steps_per_epoch": ("--steps-per-epoch", None),
                   "total_steps": ("--total-steps", typed_float("100"))}


def test_quoted_text_and_a_list_of_valid_keys_are_left_as_the_library_wrote_them() -> None:
    """Bug: the spec keys in the quotes and in the ``Valid:`` list were written as flags."""
    bad_token = ("bad token 'steps_per_epoch' in spec 'cosine steps_per_epoch': expected key=value, e.g. "
                 "'steps_per_epoch=...' (no spaces inside a value)")
    assert cli_message(bad_token, _SCHEDULE_FLAGS) == bad_token
    unknown = ("unknown cosine parameter 'total_step'. Did you mean 'total_steps'? Valid: epochs, eta_min, lr0, "
               "steps_per_epoch, total_steps, unit")
    assert cli_message(unknown, _SCHEDULE_FLAGS) == unknown


def test_outside_the_quotes_keywords_are_still_flags() -> None:
    message = "'cosine warmup_epochs=3': total_steps=100 ends before the warmup: give steps_per_epoch (or epochs and " \
              "total_steps); the model's and the run's lengths"
    assert cli_message(message, _SCHEDULE_FLAGS) == (
        "'cosine warmup_epochs=3': --total-steps 100 ends before the warmup: give --steps-per-epoch (or --epochs and "
        "--total-steps); the model's and the run's lengths")


@pytest.mark.parametrize(("spec", "expected", "wrong"), [
    ("cosine lr0=0.1 total_step=5", "Did you mean 'total_steps'?", "--total-steps"),
    ("cosine lr0=0.1 total_step=5", "momentum, steps_per_epoch, total_steps, unit", "--steps-per-epoch"),
    ("cosine lr0=0.1 steps_per_epoch", "bad token 'steps_per_epoch' in spec 'cosine lr0=0.1 steps_per_epoch'",
     "--steps-per-epoch"),
    ("cosine lr0=0.1 steps_per_epoch", "e.g. 'steps_per_epoch=...'", "'cosine lr0=0.1 steps_per_epoch': bad"),
])
def test_lrkit_schedule_quotes_a_bad_spec_as_typed(spec: str, expected: str, wrong: str) -> None:
    """Bug: ``'cosine lr0=0.1 steps_per_epoch': bad token '--steps-per-epoch' in spec 'cosine lr0=0.1
    --steps-per-epoch': expected key=value, e.g. '--steps-per-epoch N'``."""
    res = CliRunner().invoke(build_app(), ["schedule", spec, "-t", "100", "--no-plot", "--json"])
    assert res.exit_code == 2
    text = " ".join(res.output.split())  # (rich may wrap the line)
    assert expected in text, res.output
    assert wrong not in text, res.output


# ------------------------------------------------------------------------------ TypedFloat copies
@pytest.mark.parametrize("copier", _COPIES, ids=["copy", "deepcopy", "pickle"])
def test_a_typed_float_copies_and_pickles_with_its_text(copier: Callable[[Any], Any]) -> None:
    """Bug: ``TypedFloat.__new__() missing 1 required positional argument: 'typed'``."""
    value = typed_float("1e7")
    again = copier(value)
    assert isinstance(again, TypedFloat)
    assert again == 1e7 and again.typed == "1e7" and shown(again) == "1e7"


def test_a_typed_float_is_still_a_plain_float_in_arithmetic() -> None:
    value = typed_float(" 2.5 ")
    assert value.typed == "2.5" and value * 2 == 5.0 and type(value * 2) is float


# ------------------------------------------------------------------------------ AutoLR's "not recorded"
@pytest.mark.parametrize("copier", _COPIES, ids=["copy", "deepcopy", "pickle"])
def test_an_older_autolr_record_stays_without_finder_loss_when_copied(copier: Callable[[Any], Any]) -> None:
    """Bug: the copy's ``to_dict()`` had ``finder_loss=<object object at ...>`` and ``json.dumps`` failed."""
    old = AutoLR.from_dict({"lr": 0.02, "trials": [{"lr": 0.02, "val_loss": 0.4, "steps": 16}]})
    again = copier(old)
    assert again.finder_loss is None
    record = again.to_dict()
    assert "finder_loss" not in record
    assert record == old.to_dict()
    json.dumps(record)


@pytest.mark.parametrize("copier", _COPIES, ids=["copy", "deepcopy", "pickle"])
def test_a_recorded_finder_loss_survives_a_copy(copier: Callable[[Any], Any]) -> None:
    rec = {"lr": 0.02, "finder_loss": "cross-entropy (the classification task's loss)"}
    again = copier(AutoLR.from_dict(rec))
    assert again.finder_loss == rec["finder_loss"]
    assert again.to_dict()["finder_loss"] == rec["finder_loss"]
