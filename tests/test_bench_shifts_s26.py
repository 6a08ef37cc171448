"""``optimizer_shift.py --shifts nan`` is refused before anything trains (session 26; it filled a column with NaN)."""

from __future__ import annotations

import pytest

from test_bench_args_s26b import _forbid, _main_with_argv, _refused, bench_script


@pytest.mark.parametrize("bad", ["nan", "inf", "x"])
def test_a_shift_that_is_no_finite_number_is_refused(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str], bad: str) -> None:
    mod = bench_script("optimizer_shift", monkeypatch)
    _forbid(monkeypatch, mod, "oracle", "suggestions")
    err = _refused(_main_with_argv(mod, ["--shifts", "0", bad], monkeypatch), capsys)
    assert "--shifts" in err and bad in err
    assert "decades" in err
