"""Session 37 (helper j): FinderResult and the suggestion rules on bad input, round trips and comparisons."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from lrkit.finder import suggest as S
from lrkit.finder.result import FinderResult

LRS = np.logspace(-4, 0, 50)
LOSSES = 1 / (1 + LRS / 1e-2) + (LRS / 0.5) ** 2


# -- the rule functions: a curve that is not one is named, not a numpy traceback or a silent NaN ----------------------
@pytest.mark.parametrize("rule", sorted(S.RULES))
def test_rules_name_lrs_and_losses_of_different_lengths(rule: str) -> None:
    with pytest.raises(ValueError, match=r"lrs and losses .*same length.*50 LRs and 47 losses"):
        S.suggest(LRS, LOSSES[:-3], rule)


@pytest.mark.parametrize("fn", [S.lr_range, S.noise_ratio, S.suggest_robust, S.robust_backoff, S.dip_cut])
def test_curve_readings_name_lrs_and_losses_of_different_lengths(fn) -> None:
    with pytest.raises(ValueError, match=r"same length.*50 LRs and 48 losses"):
        fn(LRS, LOSSES[:-2])


def test_robust_regime_of_a_stopped_test_checks_the_lengths_too() -> None:
    with pytest.raises(ValueError, match=r"same length.*50 LRs and 48 losses"):
        S.robust_regime(LRS, LOSSES[:-2], stopped=True)


@pytest.mark.parametrize("rule", sorted(S.RULES))
@pytest.mark.parametrize("bad", [0.0, -1e-3, math.nan, math.inf])
def test_rules_refuse_an_lr_that_is_not_finite_and_positive(rule: str, bad: float) -> None:
    lrs = LRS.copy()
    lrs[0] = bad
    with pytest.raises(ValueError, match=r"lrs\[0\]=.*finite number > 0"):
        S.suggest(lrs, LOSSES, rule)


@pytest.mark.parametrize("rule", sorted(S.RULES))
def test_rules_refuse_lrs_that_do_not_increase(rule: str) -> None:
    # before: robust read a reversed sweep as 1.0, steepest as 9.5e-4: an LR off a curve that is no range test
    with pytest.raises(ValueError, match=r"lrs must increase.*lrs\[1\]=.* is below lrs\[0\]="):
        S.suggest(LRS[::-1], LOSSES, rule)


def test_rules_name_a_curve_that_is_not_numbers() -> None:
    with pytest.raises(ValueError, match=r"lrs=\['a', 'b', 'c'\].*numbers"):
        S.suggest(["a", "b", "c"], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"losses=None: .*losses are numbers"):  # not "lrs[0]=nan"
        S.suggest_steepest(LRS, None)


def test_suggest_names_a_rule_that_is_not_a_string() -> None:
    # was TypeError: unhashable type: 'list' (FinderResult.suggest named it; the module's suggest did not)
    with pytest.raises(ValueError, match=r"unknown suggestion rule .*\['robust'\].*Valid: minimum, robust"):
        S.suggest(LRS, LOSSES, ["robust"])  # type: ignore[arg-type]


def test_rule_functions_still_read_a_valid_curve_with_repeats_and_nan() -> None:
    lrs = np.r_[LRS[:10], LRS[9], LRS[10:]]
    losses = np.r_[LOSSES[:10], LOSSES[9], LOSSES[10:]]
    losses[20] = math.nan
    for rule in S.RULES:
        value = S.suggest(lrs, losses, rule)
        assert math.isfinite(value) and LRS[0] / 10 <= value <= LRS[-1]


@pytest.mark.parametrize("window", [-3, 0, 2.5, True, "7"])
def test_smooth_curve_names_a_bad_window(window) -> None:
    with pytest.raises(ValueError, match=r"window=.*whole number >= 1"):
        S.smooth_curve(LOSSES, window=window)


def test_smooth_curve_window_still_works() -> None:
    np.testing.assert_array_equal(S.smooth_curve(LOSSES, window=None), S.smooth_curve(LOSSES))
    np.testing.assert_array_equal(S.smooth_curve(LOSSES, window=1), LOSSES)
    np.testing.assert_array_equal(S.smooth_curve(LOSSES, window=np.int64(5)), S.smooth_curve(LOSSES, window=5))


# -- comparison and the JSON round trip ------------------------------------------------------------------------------
def _with_nonfinite() -> FinderResult:
    losses = list(LOSSES)
    losses[10], losses[20], losses[-1] = float("inf"), float("-inf"), float("nan")
    return FinderResult(lrs=list(LRS), losses=losses, stop_reason="non-finite", passes=1.5, start_lr=1e-4,
                        end_lr=1.0, num_steps=50, loss="loss_fn (mse_loss)")


def test_a_result_with_a_nan_loss_equals_its_saved_record(tmp_path) -> None:
    r = _with_nonfinite()
    loaded = FinderResult.from_json(r.to_json(tmp_path / "lr_find.json"))
    assert loaded == r  # was False: NaN != NaN, although every field round-trips
    assert not loaded != r


def test_results_that_differ_still_compare_unequal() -> None:
    r = _with_nonfinite()
    other = list(r.losses)
    other[-1] = float("inf")  # a NaN is not an inf
    assert FinderResult(**{**_fields(r), "losses": other}) != r
    other = list(r.losses)
    other[0] += 1e-9
    assert FinderResult(**{**_fields(r), "losses": other}) != r
    assert FinderResult(**{**_fields(r), "passes": None}) != r
    assert r != "not a result"


def _fields(r: FinderResult) -> dict:
    return {k: getattr(r, k) for k in r.__dataclass_fields__}


def test_a_record_saved_with_a_utf8_bom_loads(tmp_path) -> None:
    r = _with_nonfinite()
    path = tmp_path / "lr_find.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(r.to_dict()).encode("utf-8"))  # Windows Notepad's "UTF-8"
    assert FinderResult.from_json(path) == r


def _record(**extra) -> dict:
    return {"lrs": [1e-3, 1e-2, 1e-1, 1.0], "losses": [1.0, None, 0.5, None], **extra}


@pytest.mark.parametrize("marks", [{"nan": [1, 1], "inf": [3]}, {"nan": [1], "inf": [1, 3]}])
def test_a_loss_marked_twice_in_nonfinite_losses_is_named(tmp_path, marks) -> None:
    path = tmp_path / "lr_find.json"
    path.write_text(json.dumps(_record(nonfinite_losses=marks)))
    with pytest.raises(ValueError, match=r"nonfinite_losses\[.*\]=1: losses\[1\] is marked twice"):
        FinderResult.from_json(path)


def test_nonfinite_losses_still_load_each_kind(tmp_path) -> None:
    path = tmp_path / "lr_find.json"
    path.write_text(json.dumps(_record(nonfinite_losses={"-inf": [1], "inf": [3]})))
    losses = FinderResult.from_json(path).losses
    assert losses[1] == -math.inf and losses[3] == math.inf


# -- the robust rule's noise_band: refused by name like every other option -----------------------------------------
@pytest.mark.parametrize("band", [(False, True), (0.0, True), (np.bool_(False), 0.1), (0.07, 10**400),
                                  {0.07: "a", 0.1: "b"}, (0.07, 0.1, 0.2), "ab"])
def test_robust_rule_refuses_a_noise_band_that_is_not_two_numbers(band) -> None:
    # before: (False, True) read as the band (0, 1), 10**400 was an OverflowError, a dict's keys were the band
    with pytest.raises(ValueError, match=r"noise_band=.*pair \(low, high\)|noise_band=.*finite"):
        S.suggest_robust(LRS, LOSSES, noise_band=band)
    r = FinderResult(lrs=list(LRS), losses=list(LOSSES))
    with pytest.raises(ValueError, match=r"noise_band="):
        r.suggest(noise_band=band)


def test_robust_rule_still_takes_a_noise_band_of_numbers() -> None:
    base = S.suggest_robust(LRS, LOSSES)
    assert S.suggest_robust(LRS, LOSSES, noise_band=[0.07, 0.10]) == base
    assert S.suggest_robust(LRS, LOSSES, noise_band=np.array([0.07, 0.10])) == base
    assert S.suggest_robust(LRS, LOSSES, noise_band=(0, 1)) == S.suggest_robust(LRS, LOSSES, noise_band=(0.0, 1.0))


# -- hand-made records and option typos -----------------------------------------------------------------------------
def test_a_record_whose_num_steps_is_written_as_a_whole_float_loads(tmp_path) -> None:
    # another tool's JSON writer (or a hand edit) writes 100.0: before, "num_steps=100.0: ... a whole number >= 0"
    path = tmp_path / "lr_find.json"
    path.write_text(json.dumps({"lrs": list(LRS), "losses": list(LOSSES), "num_steps": 100.0}))
    r = FinderResult.from_json(path)
    assert r.num_steps == 100 and isinstance(r.num_steps, int)
    assert FinderResult(lrs=[], losses=[], num_steps=np.float64(7.0)).num_steps == 7


@pytest.mark.parametrize("bad", [100.5, math.inf, math.nan, -1.0, True])
def test_num_steps_that_is_not_a_whole_number_is_still_refused(bad) -> None:
    with pytest.raises(ValueError, match=rf"num_steps={bad!r}: .*whole number >= 0"):
        FinderResult(lrs=[], losses=[], num_steps=bad)


def test_a_typo_in_a_robust_option_is_named_also_on_a_curve_too_short_to_judge() -> None:
    r = FinderResult(lrs=[1e-3, 1e-2], losses=[1.0, 0.5])
    # before: "cannot suggest an LR: ... 2 steps": the typo surfaced only once the curve was long enough
    with pytest.raises(ValueError, match=r"unknown option of the robust rule 'backof'.*backoff_decades"):
        r.suggest(backof=1.0)


def test_a_deeply_nested_json_is_named_not_a_recursion_error(tmp_path) -> None:
    path = tmp_path / "lr_find.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match=r"is not a range-test record"):
        FinderResult.from_json(path)

