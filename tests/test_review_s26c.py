"""Review of session 26's changes (data reading, lr0='auto''s schedule probe, Lightning's ddp_spawn hand-back).

Each test states the input, what happened before the fix, and what happens now.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lrkit.train.data import load_data


# ---------------------------------------------------------------------------------------------- pandas' index column
def _series_csv(path: Path, n: int = 30) -> Path:
    """``pd.Series(y, index=x).to_csv(path)``: a nameless first column of distinct whole numbers, and the values."""
    path.write_text(",y\n" + "".join(f"{i},{0.5 * i + 1}\n" for i in range(n)))
    return path


def test_index_as_the_only_other_column_is_named_in_the_error(tmp_path: Path) -> None:
    """A two-column file whose first column looks like pandas' index: before, "no feature columns besides the target
    'y'" about a file with two columns, not a word about the one left out nor how to keep it; now the error names it
    and how to train on it (give it a name)."""
    with pytest.raises(ValueError) as e:
        load_data(str(_series_csv(tmp_path / "s.csv")))
    msg = str(e.value)
    assert "column 1" in msg and "pandas" in msg and "index" in msg
    assert "name" in msg.split("index")[-1]  # how to keep it: give the column a name


def test_index_note_says_how_to_keep_the_column(tmp_path: Path) -> None:
    """The note that pandas' index is left out: before, no way to keep a meaningful nameless integer column was said
    (drop= only leaves columns out); now the note says to give it a name."""
    p = tmp_path / "t.csv"
    p.write_text(",a,y\n" + "".join(f"{i},{(i * 7) % 5},{i % 2}\n" for i in range(30)))
    notes = [n for n in load_data(str(p)).info.notes if "pandas" in n]
    assert len(notes) == 1 and "name" in notes[0].split("left out")[-1]
    named = tmp_path / "named.csv"
    named.write_text("x" + p.read_text())  # the same column with a name: a feature
    assert load_data(str(named)).info.features == ["x", "a"]


# ---------------------------------------------------------------------------------- the ID-column check's cost
def test_id_check_reads_only_columns_that_could_be_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A table of counts and measurements: before, every feature column's cells were read again as whole numbers
    (a second pass over each integer column of a large file, ~10-25% of reading a 1e6-row CSV); now a column is
    ruled out on its values already read (repeats, a span too small, fractions), and only a candidate is read again.
    The notes are the same: an ID column is still named."""
    import lrkit.train.data as data

    rows = [f"{i % 7},{(i * 3) % 11},{i * 0.25},{(i * 7919) % 1000},{i % 2}" for i in range(200)]
    p = tmp_path / "t.csv"
    p.write_text("count,size,w,customer_id,y\n" + "\n".join(rows) + "\n")
    read: list[int] = []
    whole = data._whole_numbers
    monkeypatch.setattr(data, "_whole_numbers", lambda col: read.append(len(col)) or whole(col))
    notes = load_data(str(p)).info.notes
    assert len(read) == 1  # customer_id only: count and size repeat, w has fractions
    assert [n for n in notes if "as an ID does" in n] == [
        "t.csv: column 'customer_id' holds a distinct whole number on every row, as an ID does: it is trained on as "
        "a feature, which can only memorise rows; if it is an ID, leave it out with drop='customer_id'"]


# ---------------------------------------------------------------------------------------------- a YAML train/val pair
def _indexed(path: Path, labels: list[int]) -> Path:
    """``df.to_csv(path)`` of a frame whose index labels are ``labels`` (repeated after ``pd.concat`` of frames)."""
    path.write_text(",a,b,y\n" + "".join(f"{i},{(k * 7) % 5},{(k * 3) % 11},{k % 2}\n"
                                         for k, i in enumerate(labels)))
    return path


@pytest.mark.parametrize("repeated", ["train", "val"])
def test_pair_whose_index_repeats_in_one_file_reads_both_alike(tmp_path: Path, repeated: str) -> None:
    """A YAML pair, both written with pandas' index, one of them a ``pd.concat`` of frames (index labels repeat):
    before, one file's nameless first column was left out as the index and the other's kept, and the pair was
    refused with "val has columns ['a', 'b'] but train has ['', 'a', 'b']: give both files the same feature
    columns" — which they have; now the column is left out of both, the log saying so."""
    tr = _indexed(tmp_path / "tr.csv", [i % 20 for i in range(40)] if repeated == "train" else list(range(40)))
    va = _indexed(tmp_path / "va.csv", [i % 5 for i in range(10)] if repeated == "val" else list(range(10)))
    (tmp_path / "d.yaml").write_text(f"train: {tr.name}\nval: {va.name}\n")
    data = load_data(str(tmp_path / "d.yaml"))
    assert data.info.features == ["a", "b"]
    assert data.info.input_shape == (2,)
    left_out = [n for n in data.info.notes if "index" in n and "left out" in n]
    assert {n.split(":")[0] for n in left_out} == {"tr.csv", "va.csv"}


def test_pair_with_a_nameless_feature_in_both_keeps_it(tmp_path: Path) -> None:
    """The pairing does not invent an index: a nameless first column of fractions in both files stays a feature."""
    for name in ("tr.csv", "va.csv"):
        (tmp_path / name).write_text(",a,y\n" + "".join(f"{k * 0.5},{(k * 7) % 5},{k % 2}\n" for k in range(30)))
    (tmp_path / "d.yaml").write_text("train: tr.csv\nval: va.csv\n")
    assert load_data(str(tmp_path / "d.yaml")).info.features == ["", "a"]


# ---------------------------------------------------------------------------------- drop= with pandas' name for it
def test_drop_takes_pandas_name_for_a_nameless_column(tmp_path: Path) -> None:
    """``drop='Unnamed: 0'`` — the name pandas shows for the file's nameless first column (``pd.read_csv``), which a
    pandas user copies: before, "drop='Unnamed: 0' is not a column. Columns: , a, b, y"; now it names that column
    (here pandas' index, which is left out anyway), and ``Unnamed: 2`` a nameless third column."""
    p = tmp_path / "t.csv"
    p.write_text(",a,,b,y\n" + "".join(f"{i},{(i * 7) % 5},{i % 3 + 0.5},{(i * 3) % 11},{i % 2}\n" for i in range(30)))
    assert load_data(str(p), drop=("Unnamed: 0",)).info.features == ["a", "", "b"]
    assert load_data(str(p), drop=("Unnamed: 2",)).info.features == ["a", "b"]
    with pytest.raises(ValueError, match="drop='Unnamed: 3' is not a column"):
        load_data(str(p), drop=("Unnamed: 3",))  # column 3 has a name ('b')
