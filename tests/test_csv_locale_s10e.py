"""A ';'-separated CSV with decimal commas (a spreadsheet export in a decimal-comma locale) is refused with the cause
named — never a classification with one class per price — and a text feature column names its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from lrkit.train import train
from lrkit.train.data import load_data


def _write(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text(header + "\n" + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


def test_a_decimal_comma_target_is_an_error_not_one_class_per_price(tmp_path):
    rows = [f"{i % 5 + 1};{50 + i};{100 + i},{i % 10}5" for i in range(30)]
    f = _write(tmp_path / "houses.csv", "rooms;area;price", rows)
    with pytest.raises(ValueError, match=r"houses\.csv: the target column 'price' holds '100,05' on line 2, a number "
                                         r"with a decimal comma.*task=classification"):
        load_data(f, val=0.2, seed=0)
    with pytest.raises(ValueError, match="decimal comma"):
        train(data=f, epochs=1, project=tmp_path / "runs", verbose=False, plots=False)
    assert not (tmp_path / "runs").exists()  # refused before a run directory exists


def test_a_decimal_comma_target_may_still_be_labels_when_the_task_says_so(tmp_path):
    rows = [f"{i};{i * 2};{['1,3', '2,7'][i % 2]}" for i in range(20)]
    f = _write(tmp_path / "grades.csv", "hours;score;grade", rows)
    data = load_data(f, val=0.2, seed=0, task="classification")
    assert data.info.task == "classification" and data.info.classes == ["1,3", "2,7"]


def test_a_decimal_comma_feature_names_the_cause(tmp_path):
    f = _write(tmp_path / "m.csv", "a;b;y", [f"{i},5;{i};{i % 2}" for i in range(20)])
    with pytest.raises(ValueError, match=r"feature column 'a' holds '0,5' on line 2, a number with a decimal comma"):
        load_data(f, val=0.2, seed=0)


def test_commas_in_a_comma_separated_file_are_not_decimal_commas(tmp_path):
    # "1,5" quoted in a ','-separated file is a text label, as before
    f = _write(tmp_path / "q.csv", "a,b,y", [f'{i},{i * 2},"{["1,5", "2,5"][i % 2]}"' for i in range(20)])
    data = load_data(f, val=0.2, seed=0)
    assert data.info.task == "classification" and data.info.classes == ["1,5", "2,5"]


def test_a_text_feature_column_names_its_line(tmp_path):
    f = _write(tmp_path / "c.csv", "age,city,y", [f"{20 + i},{'paris' if i == 3 else i},{i % 2}" for i in range(20)])
    with pytest.raises(ValueError, match=r"feature column 'city' holds a non-numeric value 'paris' on line 5; encode "
                                         r"it as numbers \(a text category"):
        load_data(f, val=0.2, seed=0)
