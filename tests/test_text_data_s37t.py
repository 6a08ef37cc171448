"""Character-level LM path (text files, the lm task's metric): bugs found in session 37t."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from lrkit.train.data import load_data
from lrkit.train.tasks import task_spec


def test_perplexity_of_a_huge_loss_is_inf_not_a_finite_cap() -> None:
    # Bug: the perplexity of a mean token CE above 700 was capped at exp(700) = 1.01e304, a finite number that
    # exp(val_loss) is not: a diverged epoch (val_loss 800 or inf) read as a (huge) finite perplexity.
    finish = task_spec("lm").finish
    assert finish(800.0, 1.0) == math.inf
    assert finish(math.inf, 1.0) == math.inf
    assert finish(2.0, 1.0) == pytest.approx(math.exp(2.0))
    assert finish(709.0, 1.0) == pytest.approx(math.exp(709.0))
    assert math.isnan(finish(math.nan, 1.0))


def test_text_too_short_for_seq_len_names_the_largest_seq_len_that_fits(tmp_path: Path) -> None:
    # Bug: "300 characters are too few for one window of seq_len=1000 ... use a smaller seq_len" said neither how
    # small: the user had to guess. It now names the largest seq_len that fits the text with this val.
    f = tmp_path / "c.txt"
    f.write_text("the quick brown fox. " * 15, encoding="utf-8")  # 315 characters
    with pytest.raises(ValueError, match=r"315 characters are too few for one window of seq_len=1000") as e:
        load_data(f, seq_len=1000, val=0.2)
    assert "seq_len=156" in str(e.value), str(e.value)
    d = load_data(f, seq_len=156, val=0.2)  # it does fit
    assert d.info.n_train == 1 and d.info.n_val == 1
    with pytest.raises(ValueError, match="too few"):
        load_data(f, seq_len=157, val=0.2)


def test_empty_text_file_is_called_empty(tmp_path: Path) -> None:
    # Bug: an empty file was "0 characters are too few for one window of seq_len=64 ... use a smaller seq_len",
    # advice no seq_len could follow.
    f = tmp_path / "e.txt"
    f.write_bytes(b"")
    with pytest.raises(ValueError, match=r"e\.txt is empty") as e:
        load_data(f, seq_len=8)
    assert "smaller seq_len" not in str(e.value)
    g = tmp_path / "bom.txt"
    g.write_bytes(b"\xef\xbb\xbf")  # a byte-order mark only: no character of text either
    with pytest.raises(ValueError, match=r"bom\.txt is empty"):
        load_data(g, seq_len=8)


def test_short_val_file_of_a_data_yaml_names_the_largest_seq_len(tmp_path: Path) -> None:
    # Bug: a val text file shorter than one window said only "use a longer text or a smaller seq_len".
    (tmp_path / "tr.txt").write_text("abcdef " * 30, encoding="utf-8")
    (tmp_path / "va.txt").write_text("abc fed", encoding="utf-8")  # 7 characters: seq_len at most 6
    (tmp_path / "d.yaml").write_text("train: tr.txt\nval: va.txt\nseq_len: 16\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"validation text has 7 characters.*seq_len=16") as e:
        load_data(tmp_path / "d.yaml")
    assert "at most seq_len=6 fits" in str(e.value), str(e.value)
    (tmp_path / "d6.yaml").write_text("train: tr.txt\nval: va.txt\nseq_len: 6\n", encoding="utf-8")
    assert load_data(tmp_path / "d6.yaml").info.n_val == 1


def _reference_ids(text: str, vocab: list[str]) -> list[int]:
    index = {c: i for i, c in enumerate(vocab)}
    return [index.get(c, index.get("\ufffd", 0)) for c in text]


def test_text_windows_share_one_id_tensor_and_map_characters_exactly(tmp_path: Path) -> None:
    # Bug: each text was held three times over as int64 (the ids, then a copy for the inputs and another for the
    # targets: 24 bytes a character, 1 GB of RAM for a 30 MB text), built by a Python loop over every character.
    # The windows are now views of one id tensor, and the mapping is unchanged: emoji (non-BMP), combining marks,
    # tabs, U+FFFD in the training text, and validation characters the training text lacks.
    train = "ab\tc e\u0301 \U0001F600x\ufffd " * 20
    val = "ab \U0001F680q\u0301c e\u0301" * 3
    f = tmp_path / "t.txt"
    f.write_text(train + val, encoding="utf-8")
    d = load_data(f, seq_len=5, val=len(val) / len(train + val))
    vocab = d.info.vocab
    assert vocab is not None and vocab == sorted(set(train))  # U+FFFD already in train: no second one
    for ds, text in ((d.train, train), (d.val, val)):
        x, y = ds.tensors
        n = (len(text) - 1) // 5
        ids = _reference_ids(text, vocab)
        assert x.tolist() == [ids[i * 5:i * 5 + 5] for i in range(n)]
        assert y.tolist() == [ids[i * 5 + 1:i * 5 + 6] for i in range(n)]
        assert x.dtype == y.dtype == __import__("torch").long
        assert x.untyped_storage().data_ptr() == y.untyped_storage().data_ptr()  # one copy of the text's ids


def test_a_table_saved_as_txt_is_named_in_the_log(tmp_path: Path) -> None:
    # Bug: a table saved as .txt (np.savetxt's default name, a UCI download, a CSV renamed) trained a character-level
    # LM on its digits and commas without a word: the user meant a classification or a regression on its columns.
    f = tmp_path / "houses.txt"
    f.write_text("rooms,area,price\n" + "".join(f"{i % 5},{50 + i}.5,{1000 + 7 * i}\n" for i in range(60)),
                 encoding="utf-8")
    notes = load_data(f, seq_len=8).info.notes
    assert any("houses.txt" in n and "table" in n and ".csv" in n for n in notes), notes
    t = tmp_path / "tabbed.txt"
    t.write_text("".join(f"{i}\t{i * 0.5}\t{i % 3}\n" for i in range(80)), encoding="utf-8")
    assert any("table" in n and ".tsv" in n for n in load_data(t, seq_len=8).info.notes)
    prose = tmp_path / "prose.txt"
    prose.write_text("It was the best of times, it was the worst of times, it was the age of wisdom,\n" * 20,
                     encoding="utf-8")
    assert not any("table" in n for n in load_data(prose, seq_len=8).info.notes)


def test_whitespace_only_or_one_character_text_is_named(tmp_path: Path) -> None:
    # Bug: a text of blank lines and spaces (a failed export, a file of the wrong encoding blanked out) trained a
    # character-level LM of ' ' and '\n' without a word; a text of one character said "1 distinct character(s)"
    # without naming it.
    f = tmp_path / "blank.txt"
    f.write_text("   \n\t \n" * 40, encoding="utf-8")
    with pytest.raises(ValueError, match=r"blank\.txt.*only whitespace.*'\\n'"):
        load_data(f, seq_len=8)
    g = tmp_path / "one.txt"
    g.write_text("a" * 300, encoding="utf-8")
    with pytest.raises(ValueError, match=r"1 distinct character\(s\) \('a'\)"):
        load_data(g, seq_len=8)
