"""`lrkit.train`'s log: in an 80-column terminal every line fits (wrapped with a hanging indent, nothing dropped);
piped output keeps one line per message; a DataLoader whose items are whole batches is counted in batches."""

from __future__ import annotations

import io
import re
import sys

import pytest
import torch
from torch.utils.data import BatchSampler, DataLoader, SequentialSampler, TensorDataset

import lrkit
from lrkit.train.trainer import _wrap_log


class _Terminal(io.StringIO):
    """stdout as a terminal: wrapped to its width."""

    def isatty(self) -> bool:
        return True


def _words(text: str) -> list[str]:
    """The words of a log, without the epochs' times (``(0.1s)``: they differ between two runs)."""
    return [w for w in text.replace("tty/", "pipe/").split() if not re.fullmatch(r"\(\d+\.\ds\)", w)]


def _train_in(stream: io.StringIO, monkeypatch: pytest.MonkeyPatch, **kwargs) -> str:
    """The log of a run printed to ``stream`` in an 80-column terminal (the working directory: the test's own, so that
    the paths logged are as short as a user's ``runs/train/last.pt``)."""
    monkeypatch.setenv("COLUMNS", "80")
    with monkeypatch.context() as m:
        m.setattr(sys, "stdout", stream)
        lrkit.train(plots=False, **kwargs)
    return stream.getvalue()


@pytest.mark.parametrize("extra", [{}, {"lr0": "auto"}])
def test_every_line_fits_80_columns_in_a_terminal(monkeypatch, tmp_path, extra) -> None:
    monkeypatch.chdir(tmp_path)
    run = {"data": "digits", "model": "mlp", "epochs": 2, **extra}
    tty = _train_in(_Terminal(), monkeypatch, project="tty", **run)
    piped = _train_in(io.StringIO(), monkeypatch, project="pipe", **run)
    long = [line for line in tty.splitlines() if len(line) > 80]
    assert not long, "\n".join(long)
    assert any(len(line) > 80 for line in piped.splitlines())  # there was something to wrap
    # the same words, in the same order: wrapping drops nothing (the run folders' names differ: tty/ and pipe/)
    assert _words(tty) == _words(piped)
    # continuation lines are indented under the message, so each message still starts at column 1
    starts = [line for line in tty.splitlines() if line and not line.startswith(" ")]
    assert all(re.match(r"(lrkit\.train|data|lr0=auto|epoch)\b", line) for line in starts), starts


def test_resume_lines_fit_too(monkeypatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    _train_in(io.StringIO(), monkeypatch, data="digits", model="mlp", epochs=2)
    text = _train_in(_Terminal(), monkeypatch, resume="runs/train/last.pt", epochs=3)
    assert "the schedule had already ended" in " ".join(text.split())
    assert "resuming runs/train/last.pt at epoch 3/3" in " ".join(text.split())
    assert all(len(line) <= 80 for line in text.splitlines()), text


def test_wrap_log_keeps_fields_whole_and_indents() -> None:
    line = "epoch 1/2  train_loss 2.281  val_loss 2.202  accuracy 0.3677  lr 0.000252  (0.0s) *"
    lines = _wrap_log(line, 60)
    assert all(len(x) <= 60 for x in lines) and len(lines) == 2
    assert lines[0] == "epoch 1/2  train_loss 2.281  val_loss 2.202  accuracy 0.3677"
    assert lines[1].lstrip() == "lr 0.000252  (0.0s) *" and lines[1].startswith("  ")
    prose = "lrkit.train: note — warmup_epochs=3 is longer than the run; the warmup spans the whole run (2 epochs)"
    wrapped = _wrap_log(prose, 60)
    assert [x[:13] for x in wrapped[1:]] == [" " * 13] * (len(wrapped) - 1)
    assert " ".join(" ".join(wrapped).split()) == prose
    assert _wrap_log("short", 80) == ["short"]
    assert _wrap_log(prose, None) == [prose]


def _batches(n: int, size: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, 8, generator=g), torch.randint(0, 3, (size,), generator=g)) for _ in range(n)]


def _plan_line(capsys) -> str:
    out = capsys.readouterr().out
    return next(line for line in out.splitlines() if "parameters) on" in line)


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))


def test_loader_of_whole_batches_is_counted_in_batches(capsys, tmp_path) -> None:
    train = DataLoader(_batches(5, 64, 0), batch_size=None)
    val = DataLoader(_batches(2, 64, 1), batch_size=None)
    lrkit.train(model=_model(), data=(train, val), task="classification", epochs=1, lr0=0.01, plots=False,
                project=str(tmp_path))
    line = _plan_line(capsys)
    assert "5 train batches (the first of 64 samples) / 2 val batches" in line, line
    assert "5 train /" not in line


def test_whole_batches_of_unknown_size_are_said_to_be_batches(capsys, tmp_path) -> None:
    train = DataLoader(_batches(4, 32, 0), batch_size=None)
    val = DataLoader(TensorDataset(torch.randn(40, 8), torch.randint(0, 3, (40,))), batch_size=16)
    lrkit.train(model=_model(), data=(train, val), task="classification", epochs=1, lr0=0.01, plots=False,
                project=str(tmp_path))
    line = _plan_line(capsys)
    assert "4 train batches (the first of 32 samples) / 40 val" in line, line


def test_loaders_of_samples_still_count_samples(capsys, tmp_path) -> None:
    ds = TensorDataset(torch.randn(100, 8), torch.randint(0, 3, (100,)))
    train = DataLoader(ds, batch_sampler=BatchSampler(SequentialSampler(ds), 25, False))
    val = DataLoader(TensorDataset(torch.randn(30, 8), torch.randint(0, 3, (30,))), batch_size=10)
    lrkit.train(model=_model(), data=(train, val), epochs=1, lr0=0.01, plots=False, project=str(tmp_path))
    line = _plan_line(capsys)
    assert "(classification, 100 train / 30 val)" in line, line


def _last_frame(info: str, total: int, done: int) -> list[str]:
    from rich.console import Console

    from lrkit.cli._common import progress_bar

    out = io.StringIO()
    with progress_bar("train", total, console_=Console(file=out, width=80, force_terminal=True,
                                                        color_system=None)) as update:
        update(advance=done, info=info)
    frame = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", out.getvalue()).split("\r")[-1]
    return [line for line in frame.split("\n") if line.strip()]


def test_progress_bar_gives_its_width_to_the_fields_and_never_cuts_the_count() -> None:
    info = "epoch 100: val_loss 2.056  perplexity 123.4  accuracy 0.7437"
    lines = _last_frame(info, 12345, 6172)
    assert all(len(line) <= 80 for line in lines), lines
    assert "6172/12345" in lines[0] and "…" not in "".join(lines), lines
    assert " ".join(" ".join(lines).split()).endswith(" ".join(info.split()))
    # a shorter field fits on the bar's line: the bar is narrower, not the field wrapped
    short = _last_frame("epoch 2: val_loss 2.056  accuracy 0.7437", 46, 46)
    assert len(short) == 1 and short[0].endswith("epoch 2: val_loss 2.056  accuracy 0.7437"), short
    assert len(short[0]) <= 80
