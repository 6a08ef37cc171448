"""Review of session 20's changes (3ec0241..12584fe): failing-first tests for the bugs found.

Each test names what a user saw before the fix.
"""

from __future__ import annotations

import tempfile

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lrkit
from lrkit._config import tokens_to_kwargs
from lrkit.plots.schedule import plot_schedule
from lrkit.schedules import from_spec


# ------------------------------------------------------------------------------------------- 1: `--lr 0.01` -> lrf
@pytest.mark.parametrize(("tokens", "key"), [
    (["data=iris", "--lr", "0.01"], "lr0"),
    (["data=iris", "lr", "0.01"], "lr0"),
    (["data=iris", "--max-lr", "0.1"], "lr0"),
    (["data=iris", "--min-lr", "1e-5"], "lrf"),
    (["data=iris", "--bs", "64"], "batch"),
    (["data=iris", "--output-dir", "out"], "project"),
])
def test_argparse_style_flag_is_named_by_its_lrkit_key(tokens: list[str], key: str) -> None:
    """Bug: ``lrkit train --lr 0.01`` (argparse style, no ``=``) said ``Did you mean 'lrf'?`` — the final-LR
    fraction, the very answer the SYNONYMS table was added to stop (``lr=0.01`` says ``lr0``); ``--max-lr`` was told
    ``cos_lr``, ``--min-lr`` ``warmup_bias_lr``, ``--bs`` ``nbs``, ``--output-dir`` ``optimizer``."""
    with pytest.raises(ValueError) as info:
        tokens_to_kwargs(tokens)
    msg = str(info.value)
    assert f"lrkit calls it {key}=" in msg
    assert "Did you mean" not in msg


def test_argparse_style_flag_without_a_synonym_keeps_its_did_you_mean() -> None:
    """The did-you-mean stays for a bare token that is no other library's name (``--epoch 5``)."""
    with pytest.raises(ValueError, match=r"Did you mean 'epochs'\?"):
        tokens_to_kwargs(["data=iris", "--epoch", "5"])


# ------------------------------------------------------------------------- 2: plot_schedule(records.values()) refused
def test_plot_schedule_takes_any_iterable_of_records_again() -> None:
    """Bug: ``plot_schedule(records.values())`` or a generator of records, drawn before this session
    (``list(records)``), raised ``TypeError: plot_schedule takes a schedule record ... not dict_values``."""
    recs = {"cos": from_spec("cosine lr0=0.1", total_steps=40).record(),
            "lin": from_spec("linear lr0=0.1", total_steps=40).record()}
    fig = plot_schedule(recs.values())
    assert len(fig.axes[0].get_lines()) == 2
    fig = plot_schedule(r for r in recs.values())
    assert len(fig.axes[0].get_lines()) == 2
    with pytest.raises(TypeError, match="not int"):  # what is no iterable at all is still refused by name
        plot_schedule(3)


# ----------------------------------------------------------------- 3: cfg=<run>/args.yaml says seq_len=64 ignored
def test_rerun_from_args_yaml_does_not_say_seq_len_is_ignored(tmp_path, capsys) -> None:
    """Bug: ``lrkit train cfg=runs/a/args.yaml`` (the README's way to train again with the same settings) on a
    non-text data set logged ``data: note — seq_len=64 ignored ...``: every key of a cfg= file counts as given, and
    a run's args.yaml lists seq_len at its default."""
    first = lrkit.train(data="iris", model="linear", epochs=1, project=str(tmp_path), name="a", plots=False,
                        verbose=False)
    capsys.readouterr()
    lrkit.train(cfg=str(first.run_dir / "args.yaml"), name="b", plots=False, verbose=True)
    out = capsys.readouterr().out
    assert "epoch 1/1" in out  # the run logged
    assert "seq_len=64 ignored" not in out


def test_a_seq_len_of_ones_own_is_still_said_to_be_ignored(tmp_path, capsys) -> None:
    """The note the session added stays for a seq_len the user set to something else."""
    lrkit.train(data="iris", model="linear", epochs=1, seq_len=8, project=str(tmp_path), plots=False, verbose=True)
    assert "seq_len=8 ignored" in capsys.readouterr().out


# ------------------------------------------------------- 4: a (T, K) one-hot target told to pass task=classification
class _Rows(Dataset):
    """Samples whose target is ``rows`` one-hot rows of 3 classes (``rows=None``: one row, shape ``(3,)``)."""

    def __init__(self, rows: int | None) -> None:
        g = torch.Generator().manual_seed(0)
        shape = (32, 4) if rows is None else (32, rows, 4)
        self.x = torch.randn(*shape, generator=g)
        self.y = nn.functional.one_hot((self.x[..., 0] > 0).long() + (self.x[..., 1] > 1).long(), 3).float()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]


def test_sequence_of_one_hot_rows_is_not_advised_task_classification(capsys) -> None:
    """Bug: a Dataset whose target is a (T, K) sequence of one-hot rows logged ``the first target is a one-hot row
    of 15 values ... pass task=classification``: T*K is no row, and following the advice ended in a torch size
    error (``The size of tensor a (5) must match the size of tensor b (3)``) in the first validation."""
    lrkit.train(model=nn.Linear(4, 3), data=_Rows(5), epochs=1, project=tempfile.mkdtemp(), plots=False,
                verbose=True)
    out = capsys.readouterr().out
    assert "epoch 1/1" in out
    assert "one-hot row of 15 values" not in out
    assert "pass task=classification" not in out


def test_one_hot_row_note_counts_the_row_not_the_batch(capsys) -> None:
    """A one-row target keeps its note; a DataLoader of whole batches (batch_size=None) names its rows' K values,
    not the batch's B*K (``a one-hot row of 32 values`` for 16 rows of 2)."""
    lrkit.train(model=nn.Linear(4, 3), data=_Rows(None), epochs=1, project=tempfile.mkdtemp(), plots=False,
                verbose=True)
    assert "the first target is a one-hot row of 3 values" in capsys.readouterr().out

    class Batches(Dataset):
        def __init__(self) -> None:
            g = torch.Generator().manual_seed(1)
            self.x = torch.randn(6, 16, 4, generator=g)
            self.y = nn.functional.one_hot((self.x[..., 0] > 0).long(), 2).float()

        def __len__(self) -> int:
            return len(self.x)

        def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
            return self.x[i], self.y[i]

    data = (DataLoader(Batches(), batch_size=None), DataLoader(Batches(), batch_size=None))
    lrkit.train(model=nn.Linear(4, 2), data=data, epochs=1, project=tempfile.mkdtemp(), plots=False, verbose=True)
    out = capsys.readouterr().out
    assert "the first target is a one-hot row of 2 values" in out
    assert "one-hot row of 32 values" not in out


# ------------------------------------------- 5: the one-hot notes name the default loss as the run's loss
def test_one_hot_note_does_not_claim_cross_entropy_under_a_loss_fn(capsys) -> None:
    """Bug: one-hot rows trained with ``loss_fn=nn.MSELoss()`` logged ``trained as classification (cross-entropy on
    them, ...)``: the run's loss is the user's MSE; the note only knows the default loss, and now says so."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    y = nn.functional.one_hot((x[:, 0] > 0).long(), 2).float()
    lrkit.train(model=nn.Linear(4, 2), data=torch.utils.data.TensorDataset(x, y), loss_fn=nn.MSELoss(), epochs=1,
                project=tempfile.mkdtemp(), plots=False, verbose=True)
    lines = [line for line in capsys.readouterr().out.splitlines() if "one-hot rows of 2 classes" in line]
    assert len(lines) == 1
    assert "the default loss: cross-entropy" in lines[0]


def test_one_hot_row_regression_note_names_mse_as_the_default(capsys) -> None:
    """The mirror note (a Dataset of one's own, read as regression) names MSE as the default loss, not as the loss
    of a run given ``loss_fn=``."""
    lrkit.train(model=nn.Linear(4, 3), data=_Rows(None), loss_fn=nn.BCEWithLogitsLoss(), epochs=1,
                project=tempfile.mkdtemp(), plots=False, verbose=True)
    lines = [line for line in capsys.readouterr().out.splitlines() if "one-hot row of 3 values" in line]
    assert len(lines) == 1
    assert "the default loss: mean squared error" in lines[0]


# ------------------------------------------- 6: an LM whose forward flattens its logits (logits.view(-1, V)) predicts
class _FlatLM(nn.Module):
    """A next-token model whose forward returns ``(N * T, V)`` logits, flattened for ``F.cross_entropy`` as many
    tutorials' models do; lrkit trains it on ``(N, T)`` token windows."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab = vocab
        self.emb = nn.Embedding(vocab, 16)
        self.out = nn.Linear(16, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.emb(x)).reshape(-1, self.vocab)


def test_token_window_run_with_flattened_logits_predicts_one_id_per_window(tmp_path) -> None:
    """Bug: such a run's ``predict(windows)`` returned N * T ids (the argmax of every position) where the docstring
    promises ``(N,)``, each window's most likely next token id."""
    vocab, steps = 11, 8
    seq = torch.arange(200) % vocab
    x = torch.stack([seq[i:i + steps] for i in range(120)])
    y = torch.stack([seq[i + 1:i + steps + 1] for i in range(120)])
    r = lrkit.train(model=_FlatLM(vocab), data=torch.utils.data.TensorDataset(x, y), epochs=1, project=str(tmp_path),
                    plots=False, verbose=False)
    run = lrkit.train.load_run(r.run_dir, model=_FlatLM(vocab))
    assert run.task == "lm"
    got = run.predict(x[:3])
    with torch.no_grad():
        expected = run.model(x[:3]).reshape(3, steps, vocab)[:, -1].argmax(-1)
    assert got.shape == (3,)
    assert torch.equal(got.cpu(), expected.cpu())


def test_text_run_with_flattened_logits_predicts_from_the_last_position(tmp_path) -> None:
    """Bug (older than the session, in the line it changed): a text run whose model flattens its logits to
    ``(T, V)`` always predicted ``vocab[0]`` (``out[0, -1]`` is one logit of the first position, whose argmax is
    0) — ``' '`` for every prompt."""
    text = "the quick brown fox jumps over the lazy dog. " * 40
    path = tmp_path / "fox.txt"
    path.write_text(text)
    vocab = len(set(text))
    r = lrkit.train(model=_FlatLM(vocab), data=str(path), seq_len=12, epochs=1, project=str(tmp_path), plots=False,
                    verbose=False)
    run = lrkit.train.load_run(r.run_dir, model=_FlatLM(vocab))
    assert len(run.vocab) == vocab
    for prompt in ("the quick bro", "jumps ov", "lazy d"):
        with torch.no_grad():
            logits = run.model(run.inputs(prompt[-12:]))
        assert run.predict(prompt) == run.vocab[int(logits[-1].argmax())]
    # the model's answers differ across prompts, not vocab[0] for every one
    assert len({run.predict(p) for p in ("the quick bro", "jumps ov", "lazy d", "brown f", "over th")}) > 1
