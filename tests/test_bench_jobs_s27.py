"""finder_quality's ``--jobs`` is read like every other benchmark's (``_suite.positive_int``): a bad value is named
in the same words before anything trains (it said ``--jobs=0 must be >= 1``, and a non-integer got argparse's
``invalid int value``)."""

from __future__ import annotations

import pytest

from _helpers import bench_script, keep_torch_threads  # noqa: F401 (a fixture, used through usefixtures)
from test_bench_args_s26b import _forbid, _refused

pytestmark = pytest.mark.usefixtures("keep_torch_threads")


@pytest.mark.parametrize(("value", "said"), [("0", "--jobs: 0 must be an integer >= 1"),
                                             ("two", "--jobs: 'two' is not an integer")])
def test_finder_quality_names_a_bad_jobs_as_the_other_benchmarks_do(value: str, said: str,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    mod = bench_script("finder_quality", monkeypatch)
    _forbid(monkeypatch, mod, "oracle")
    assert said in _refused(lambda: mod.main(["--tasks", "wine_mlp", "--jobs", value]), capsys)
