"""benchmarks/pooled.py: per-task regrets parsed from the lab records, pooled over the 65 held-out tasks (s14c).

The parser on small inline tables (infinite regrets, bold markers, ``-0.0%``, a row whose own median disagrees with
its tasks), and the real records: every set's median and worst, recomputed from the per-task rows the script maps by
hand, must reproduce the README's set tables, so a docs edit that breaks the mapping fails here.
"""

from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def pooled() -> ModuleType:
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module("pooled")
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture(scope="module")
def records(pooled: ModuleType) -> object:
    return pooled.load()


SAMPLE_SETS = {"tiny": ("tiny", ("task_a", "task_b", "task_c"))}
SAMPLE = """\
Some prose.

| method | median regret | worst regret | task_a (Adam) | task_b (SGD) | task_c |
|---|---|---|---|---|---|
| **lrkit (the default then)** | **+1.3%** | **diverged** | +1.3% | -0.0% | diverged |
| fastai (valley) | +2.0% | ∞ | −6.7% | no LR | +2.0% |
| plain default | -0.0% | +0.5% | -0.0% | +0.5% | -1.0% |

| task | oracle LR |
|---|---|
| task_a | 0.01 |
"""


def test_parse_regret_reads_signs_bold_and_infinity(pooled: ModuleType) -> None:
    r = pooled.parse_regret
    assert (r("+1.3%").lo, r("+1.3%").ulp) == (1.3, pytest.approx(0.1))
    assert r("**-0.0%**").lo == 0.0 and r("-6.7%").lo == -6.7 and r("−6.7%").lo == -6.7
    assert r("+1379%").ulp == 1.0 and r("+0.93%").ulp == pytest.approx(0.01)
    for word in ("diverged", "∞", "no LR", "**diverged**"):
        assert math.isinf(r(word).lo), word
    with pytest.raises(ValueError, match=r"'skipped \(pip install x\)' is not a regret.*diverged"):
        r("skipped (pip install x)")


def test_parse_finder_table_on_a_sample(pooled: ModuleType) -> None:
    rows = pooled.parse_finder(SAMPLE, SAMPLE_SETS)["tiny"]
    assert list(rows) == ["lrkit (the default then)", "fastai (valley)", "plain default"]
    lrkit = rows["lrkit (the default then)"]
    assert [lrkit[t].lo for t in ("task_a", "task_b")] == [1.3, 0.0] and math.isinf(lrkit["task_c"].lo)
    assert rows["fastai (valley)"]["task_a"].lo == -6.7 and math.isinf(rows["fastai (valley)"]["task_b"].lo)
    # a row is found by its exact label or as the one row it starts
    assert pooled.pick_row(rows, "lrkit (the default", "x")["task_a"].lo == 1.3
    with pytest.raises(ValueError, match="matches 0 rows"):
        pooled.pick_row(rows, "torch-lr-finder", "x")


def test_a_row_whose_median_disagrees_with_its_tasks_is_an_error(pooled: ModuleType) -> None:
    bad = SAMPLE.replace("| plain default | -0.0% |", "| plain default | +4.0% |")
    with pytest.raises(ValueError, match=r"plain default.*median: the per-task values give -0.0%, the table says "
                                         r"\+4.0%"):
        pooled.parse_finder(bad, SAMPLE_SETS)


def test_a_table_of_an_unknown_set_is_an_error(pooled: ModuleType) -> None:
    with pytest.raises(ValueError, match="matches no held-out set"):
        pooled.parse_finder(SAMPLE.replace("task_c |", "task_z |", 1), SAMPLE_SETS)


def test_patches_check_their_quote_and_the_value_they_replace(pooled: ModuleType) -> None:
    base = pooled.parse_finder(SAMPLE, SAMPLE_SETS)["tiny"]["plain default"]
    doc = "re-run: task_b +0.5% → +3.2%\n(the gate)"
    patched = pooled.apply_patches(base, base, [pooled.Patch("task_b +0.5% → +3.2% (the gate)",
                                                             {"task_b": "+0.5% → +3.2%"})], doc, "x")
    assert patched["task_b"].lo == 3.2 and patched["task_a"].lo == 0.0
    with pytest.raises(ValueError, match="no longer says"):
        pooled.apply_patches(base, base, [pooled.Patch("task_b +0.5% → +9.9%", {"task_b": "+9.9%"})], doc, "x")
    elsewhere = {**base, "task_b": pooled.parse_regret("+1.0%")}  # a row where task_b does not read +0.5%
    with pytest.raises(ValueError, match="applied to the wrong row"):
        pooled.apply_patches(elsewhere, base, [pooled.Patch("task_b +0.5% → +3.2%", {"task_b": "+0.5% → +3.2%"})],
                             doc, "x")


def test_pool_and_head_to_head(pooled: ModuleType) -> None:
    r = pooled.parse_regret
    values = [r("+1.0%"), r("+2.0%"), r("+20.0%"), r("diverged"), r("-0.0%")]
    p = pooled.pool(values)
    assert (p.n, p.median, p.worst) == (5, 2.0, math.inf)
    assert p.within == {3.0: (3, 3), 15.0: (3, 3)}
    ours = {"a": r("+1.0%"), "b": r("+5.0%"), "c": r("diverged"), "d": r("+2.0%")}
    theirs = {"a": r("+1.4%"), "b": r("+3.0%"), "c": r("diverged"), "d": r("diverged")}
    assert pooled.head_to_head(ours, theirs) == (1, 2, 1)  # d won; a within 0.5 and c both diverged tie; b lost
    # a bound that straddles a threshold widens that count only; one that would move the median is an error
    bounded = pooled.Regret(-3.0, 4.0, 0.0)
    assert pooled.pool([*values, bounded, r("+50.0%"), r("+60.0%"), r("+70.0%")]).within[3.0] == (3, 4)
    with pytest.raises(ValueError, match="depends on a regret known only as a bound"):
        pooled.pool([r("+1.0%"), bounded, r("+2.0%")])


def test_set_tasks_are_the_suites_held_out_groups(pooled: ModuleType) -> None:
    sys.path.insert(0, str(BENCH))
    try:
        suite = importlib.import_module("_suite")
    finally:
        sys.path.remove(str(BENCH))
    for key, (_, tasks) in pooled.SETS.items():
        assert tasks == tuple(n for n, t in suite.TASKS.items() if t.group == key), key
    assert set(pooled.SETS) == set(suite.GROUPS) - {"calibration"} - set(pooled.NOT_POOLED)
    assert set(pooled.NOT_POOLED) <= set(suite.GROUPS)  # (each one a group of the suite, with its reason)
    assert sum(len(t) for _, t in pooled.SETS.values()) == 65


def test_real_records_reproduce_the_readme_set_tables(pooled: ModuleType, records: object) -> None:
    """Every set's median and worst, for the rule of its day, today's default and lr0="auto", from the per-task
    records, match the README's finder and lr0="auto" set tables (the known difference aside, checked as written)."""
    lines = pooled.check_against_readme(records)
    assert len(lines) == 3 * 2 * 12 + 2  # + the pooled row of the lr0="auto" table (median, worst)
    assert sum("(known: " in line for line in lines) == len(pooled.KNOWN_MISMATCHES)
    for method in (pooled.OF_ITS_DAY_NAME, pooled.TODAY_NAME, *pooled.PEERS):
        assert len(records.finder[method]) == 65, method
    assert len(records.auto) == 65


def test_a_wrong_mapping_fails_loudly(pooled: ModuleType, records: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """Map the third set's rule of its day to the noise-aware row (adopted after that set): its worst becomes
    +189.7% where the README says +235.3%, and the check names the set."""
    monkeypatch.setitem(pooled.OF_ITS_DAY, "fresh3", "lrkit:noise-aware")
    with pytest.raises(AssertionError, match=r"rule of its day, third set, worst: .*\+189.7%.*\+235.3%"):
        pooled.check_against_readme(pooled.load())


def test_a_changed_readme_figure_fails_even_where_a_mismatch_is_known(pooled: ModuleType, records: object) -> None:
    readme = pooled.README.read_text(encoding="utf-8")
    row = next(line for line in readme.splitlines() if line.startswith("| fourth (6) |"))
    assert "+8.4% / +15.5%" in row
    with pytest.raises(AssertionError, match="KNOWN_MISMATCHES expects"):
        pooled.check_against_readme(records, readme.replace(row, row.replace("+8.4% / +15.5%", "+8.6% / +15.5%")))
    row = next(line for line in readme.splitlines() if line.startswith("| tenth (6) | +5.41%"))
    with pytest.raises(AssertionError, match="lr0='auto', tenth set, median"):
        pooled.check_against_readme(records, readme.replace(row, row.replace("+5.41%", "+6.41%")))


def test_second_set_rule_of_its_day_rows_agree(pooled: ModuleType, records: object) -> None:
    """OF_ITS_DAY picks lrkit:one-regime on the second set; the row named for the two-regime default is the same."""
    rows = records.finder_sets["fresh2"]
    assert rows["lrkit:one-regime"] == rows["lrkit (robust, two regimes)"]


def test_main_prints_the_tables_and_writes_json(pooled: ModuleType, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pooled.json"
    assert pooled.main(["--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "calibration tasks are in sample and excluded" in text
    assert "| **lrkit, rule of its day** | 65 |" in text and "| fastai (valley) | 65 |" in text
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["tasks"] == 65 and data["calibration_excluded"] is True
    assert data["finder"]["torch-lr-finder"]["worst"] == "inf"
    assert {r["method"] for r in data["records"]} >= {"lrkit, rule of its day", "lr0='auto'", "plain default"}
    assert not list(tmp_path.glob(".*.tmp"))
    with pytest.raises(SystemExit):
        pooled.main(["--json", str(tmp_path / "no" / "such" / "dir.json")])
    assert "does not exist" in capsys.readouterr().err


def test_a_pooled_readme_row_is_checked_too(pooled: ModuleType, records: object) -> None:
    """The row starting "pooled" in the README's lr0="auto" set table must match the pooled figures."""
    readme = pooled.README.read_text(encoding="utf-8")
    row = next(line for line in readme.splitlines() if line.startswith("| pooled: all 65 held-out tasks |"))
    assert "lr0='auto', all sets pooled, median: +6.65% reproduced" in pooled.check_against_readme(records, readme)
    with pytest.raises(AssertionError, match="all sets pooled, median"):
        pooled.check_against_readme(records, readme.replace(row, row.replace("+6.65%", "+5.41%")))
