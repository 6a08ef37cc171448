"""A spec whose name is joined to its keys by a colon, a semicolon or parentheses, and a key written ``lr0:0.1``, get
the spec that works (session 26: they were told e.g. 'cosine cosine:lr0=0.1' and 'lr0:0.1=...')."""

from __future__ import annotations

import re

import pytest

import lrkit
from lrkit.schedules import from_spec


@pytest.mark.parametrize(("spec", "what", "fixed"), [
    ("cosine:lr0=0.1", "a colon", "cosine lr0=0.1"),
    ("cosine:lr0=0.1,lrf=0.01", "a colon", "cosine lr0=0.1 lrf=0.01"),
    ("cosine;lr0=0.1", "a semicolon", "cosine lr0=0.1"),
    ("cosine(lr0=0.1, lrf=0.01)", "parentheses", "cosine lr0=0.1 lrf=0.01"),
    ("cosine,lr0=0.1", "a comma", "cosine lr0=0.1"),
    ("multistep:lr0=0.1 milestones=[3,6] unit=step", "a colon", "multistep lr0=0.1 milestones=[3,6] unit=step"),
])  # fmt: skip
def test_a_joined_name_gets_the_spec_that_works(spec: str, what: str, fixed: str) -> None:
    with pytest.raises(ValueError, match=f"not {what}, e.g. {re.escape(repr(fixed))}"):
        from_spec(spec, total_steps=10)
    assert from_spec(fixed, total_steps=10).total_steps == 10  # the proposal itself is a valid spec


def test_a_colon_between_key_and_value_gets_the_key_value_form() -> None:
    with pytest.raises(ValueError, match=r"bad token 'lr0:0.1'.*'=' between the key and its value: 'lr0=0.1'"):
        from_spec("cosine lr0:0.1", total_steps=10)
    assert from_spec("cosine lr0=0.1", total_steps=10).total_steps == 10


def test_lrkit_train_names_the_fix_too(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"not a colon, e.g. 'cosine lr0=0.1'"):
        lrkit.train("mlp", data="iris", epochs=1, schedule="cosine:lr0=0.1", verbose=False, plots=False,
                    project=tmp_path)
