"""Character-level LM path (text files): bugs found in session 34i."""

from __future__ import annotations

from pathlib import Path

import pytest

from lrkit.train.data import load_data


def test_val_characters_unseen_in_train_are_said_in_the_notes(tmp_path: Path) -> None:
    # Bug: the validation text's characters the training text lacks were read as U+FFFD without a word: here the
    # whole validation text is unseen, and its perplexity measured nothing the model could learn.
    f = tmp_path / "u.txt"
    f.write_text("abc" * 40 + "xyz" * 10, encoding="utf-8")
    notes = load_data(f, seq_len=4).info.notes
    assert any("'x', 'y', 'z'" in n and "30 of its 30" in n and "\ufffd" in n for n in notes), notes


def test_no_unseen_note_when_val_characters_are_all_in_train(tmp_path: Path) -> None:
    f = tmp_path / "s.txt"
    f.write_text("abc" * 50, encoding="utf-8")
    assert not any("\ufffd" in n for n in load_data(f, seq_len=4).info.notes)


def test_val_fraction_too_large_for_the_text_names_val(tmp_path: Path) -> None:
    # Bug: val=0.99 left 2 characters for training, and the error said the text was too short for seq_len —
    # which it was not (it trains with val=0.2): it named neither val nor how many characters each part got.
    f = tmp_path / "b.txt"
    f.write_text("To be, or not to be, that is the question. " * 5, encoding="utf-8")
    with pytest.raises(ValueError, match=r"val=0\.99.*2 characters.*train") as e:
        load_data(f, seq_len=8, val=0.99)
    assert "use a longer text" not in str(e.value)
    load_data(f, seq_len=8, val=0.2)  # the same text trains with a smaller val


def test_text_too_short_for_any_val_still_blames_the_text(tmp_path: Path) -> None:
    f = tmp_path / "t.txt"
    f.write_text("ab" * 5, encoding="utf-8")
    with pytest.raises(ValueError, match=r"10 characters are too few for one window of seq_len=8"):
        load_data(f, seq_len=8)


def test_predict_reads_crlf_as_training_read_it(tmp_path: Path) -> None:
    # Bug: training reads "\r\n" and a lone "\r" as "\n" (so no vocabulary holds "\r"), but predict did not: the
    # same text with Windows line ends was refused for its "\r" — or, where the vocabulary has U+FFFD, "\r" was
    # silently read as an unknown character and the prediction changed.
    import lrkit

    f = tmp_path / "w.txt"
    f.write_bytes(b"ab\r\nc" * 40 + b"xyz" * 10)  # unseen x/y/z in val: the vocabulary has U+FFFD
    r = lrkit.train(data=str(f), model="charlm", seq_len=4, epochs=1, warmup_epochs=0, plots=False, verbose=False,
                    project=tmp_path)
    run = lrkit.train.load_run(r.run_dir)
    assert "\r" not in run.vocab and "\ufffd" in run.vocab
    for text in ("ab\nc\nab\n", "c\nab\nca", "b\n"):
        assert run.predict(text.replace("\n", "\r\n")) == run.predict(text)
        assert run.predict(text.replace("\n", "\r")) == run.predict(text)
