"""Session 34b hunt: schedule composition, parsing and resumability edge cases (each test failed before its fix)."""

from __future__ import annotations

import pytest

from lrkit.schedules import from_spec


# ==============================================================================================================
# A cooldown behind warm restarts starts where the last cycle ends, not at a restart the run never has
# ==============================================================================================================
@pytest.mark.parametrize("spec", [
    "cosine_restarts lr0=0.1 T_0=10 unit=step cooldown_steps=5",  # 40 main steps: four whole cycles
    "cosine_restarts lr0=0.1 T_0=10 T_mult=2 unit=step cooldown_steps=15",  # 30 main steps: cycles of 10 and 20
    "cosine_restarts lr0=0.1 T_0=10 unit=step warmup_steps=5 warmup_prefix=true cooldown_steps=10",
])
def test_cooldown_after_whole_restart_cycles_never_jumps_back_to_the_peak(spec: str) -> None:
    s = from_spec(spec, total_steps=45)
    cool = next(p for p in s.phases if p.name == "cooldown")
    last_main = s(cool.start - 1)
    # before: the cooldown started from the restart at the main schedule's end, i.e. at the peak (1.0)
    assert all(s(t) <= last_main + 1e-12 for t in range(cool.start, 46))
    assert cool.start_value is not None and cool.start_value < 0.5


def test_cooldown_min_ratio_above_the_end_of_the_last_restart_cycle_is_refused() -> None:
    # the cycle ends at its floor (0), so a cooldown to 0.5 would raise the LR; before it passed, checked against 1.0
    with pytest.raises(ValueError, match=r"cooldown_min_ratio=0\.5 .*would raise the LR"):
        from_spec("cosine_restarts lr0=0.1 T_0=10 unit=step cooldown_steps=5 cooldown_min_ratio=0.5", total_steps=45)


def test_cooldown_inside_a_restart_cycle_is_unchanged() -> None:
    # 41 main steps: the run ends one step into cycle 4, where the cooldown starts from the live value
    s = from_spec("cosine_restarts lr0=0.1 T_0=10 unit=step cooldown_steps=4", total_steps=45)
    assert s(41) == pytest.approx(0.9755282581, rel=1e-9)
    assert s(45) == 0.0


# ==============================================================================================================
# warmup_prefix is read like every other on/off key
# ==============================================================================================================
def test_warmup_prefix_takes_a_numpy_bool_and_one_or_zero() -> None:
    import numpy as np
    blended = from_spec("cosine lr0=0.1 warmup_steps=3", total_steps=10)
    prefixed = from_spec("cosine lr0=0.1 warmup_steps=3 warmup_prefix=true", total_steps=10)
    # before: "warmup_prefix=np.True_ must be true or false" (and the same for 1), though three_phase takes both
    from_dict = from_spec({"name": "cosine", "lr0": 0.1, "warmup_steps": 3, "warmup_prefix": np.bool_(True)},
                          total_steps=10)
    from_one = from_spec("cosine lr0=0.1 warmup_steps=3 warmup_prefix=1", total_steps=10)
    from_zero = from_spec("cosine lr0=0.1 warmup_steps=3 warmup_prefix=0", total_steps=10)
    steps = range(11)
    assert [from_dict(t) for t in steps] == [prefixed(t) for t in steps] == [from_one(t) for t in steps]
    assert [from_zero(t) for t in steps] == [blended(t) for t in steps]
    with pytest.raises(ValueError, match=r"warmup_prefix=2 must be true or false"):
        from_spec("cosine lr0=0.1 warmup_steps=3 warmup_prefix=2", total_steps=10)


# ==============================================================================================================
# The range a fraction error names is the valid one
# ==============================================================================================================
@pytest.mark.parametrize(("spec", "key"), [
    ("cosine lr0=0.1 cooldown_frac=1.5", "cooldown_frac"),
    ("wsd lr0=0.1 decay_frac=1.5", "decay_frac"),
])
def test_a_fraction_above_one_is_told_the_range_that_excludes_zero(spec: str, key: str) -> None:
    # before: "must be a fraction of the run in [0, 1]", though 0 is refused ("must be a finite number > 0")
    with pytest.raises(ValueError, match=rf"{key}=1\.5 must be a fraction of the run in \(0, 1\]"):
        from_spec(spec, total_steps=100)
    with pytest.raises(ValueError, match=rf"{key}=0 must be"):
        from_spec(spec.replace("1.5", "0"), total_steps=100)


# ==============================================================================================================
# A family's name written with spaces is told its real name, not to make its second word a key
# ==============================================================================================================
@pytest.mark.parametrize(("spec", "meant"), [
    ("cosine restarts lr0=0.1 T_0=10 unit=step", "cosine_restarts lr0=0.1 T_0=10 unit=step"),
    ("one cycle max_lr=0.1", "onecycle max_lr=0.1"),
    ("linear to zero lr0=0.1", "linear_to_zero lr0=0.1"),
])
def test_a_schedule_name_written_with_spaces_gets_a_did_you_mean(spec: str, meant: str) -> None:
    # before: "bad token 'restarts' ...: expected key=value, e.g. 'restarts=...'"
    with pytest.raises(ValueError, match="did you mean") as info:
        from_spec(spec, total_steps=100)
    msg = str(info.value)
    assert f"e.g. {meant!r}" in msg and "=...'" not in msg
    from_spec(meant, total_steps=100)  # the offered spec builds


def test_a_stray_word_that_is_no_schedule_name_keeps_its_key_value_hint() -> None:
    with pytest.raises(ValueError, match=r"bad token 'foo' .*e\.g\. 'foo=\.\.\.'"):
        from_spec("cosine foo lr0=0.1", total_steps=100)


def test_cooldown_behind_a_replanned_restart_schedule_starts_at_the_end_of_its_last_cycle() -> None:
    from lrkit.schedules import Composed, Cooldown, CosineRestarts

    # three whole cycles stretched from 30 to 40 steps: the run still ends at a cycle's end, not at its restart
    inner = CosineRestarts(lr0=0.1, T_0=10, unit="step", total_steps=30).replan(at_step=5, total_steps=40)
    s = Composed(inner, cooldown=Cooldown(5))
    assert s(40) <= s(39) and max(s(t) for t in range(40, 46)) < 0.05  # before: 1.0 at step 40
