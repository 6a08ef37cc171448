"""README claims of the finder and schedules sections (lines 73-1075) that no other test checked (session 15, s15d).

Each test asserts what the README promises; the first ones failed before their fix.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import lrkit
import lrkit.cli._common as cli_common
import lrkit.cli.find as cli_find
from _helpers import MSE_LOSS_FN, write_task
from lrkit.cli.app import build_app
from lrkit.cli.find import run_find
from lrkit.schedules import from_spec

runner = CliRunner()


class _TestRan(ValueError):
    """Raised by a stand-in find_lr: the range test started although the output check should have stopped it."""


@pytest.fixture
def no_test(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """``lrkit find`` with a find_lr that records that it ran: the README says --out is checked before the test."""
    calls: list[int] = []

    def fake_find_lr(*args: object, **kwargs: object) -> None:
        calls.append(1)
        raise _TestRan

    monkeypatch.setattr(cli_find, "find_lr", fake_find_lr)
    return calls


# --- `lrkit find --out`: "checked before the test starts" -------------------------------------------------------


def test_find_out_broken_symlink_fails_before_the_test(tmp_path: Path, no_test: list[int]) -> None:
    # README (find CLI): "an --out that is a broken symlink, or lies under one, is a clear error", and --out is
    # "checked before the test starts". Bug: the test ran to its end first, then claim_dir refused the folder.
    task = write_task(tmp_path, MSE_LOSS_FN)
    link = tmp_path / "gone"
    link.symlink_to(tmp_path / "nowhere")
    for out in (link, link / "sub"):
        with pytest.raises(ValueError, match="broken symlink"):
            run_find(task, num_steps=10, out=out)
    assert no_test == []


def test_find_out_existing_folder_in_read_only_parent_fails_before_the_test(
        tmp_path: Path, no_test: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    # README (find CLI): "a read-only folder ... fails at once". An existing --out gets the next free name beside
    # it (runs/find2), so the folder it is made in must be writable. Bug: only a --out that did not exist yet was
    # checked, so the test ran and then failed on the mkdir.
    task = write_task(tmp_path, MSE_LOSS_FN)
    parent = tmp_path / "ro"
    (parent / "find").mkdir(parents=True)
    real_access = os.access
    monkeypatch.setattr(cli_common.os, "access",
                        lambda p, mode: False if Path(p) == parent else real_access(p, mode))  # root ignores chmod
    with pytest.raises(ValueError, match="is not writable"):
        run_find(task, num_steps=10, out=parent / "find")
    assert no_test == []


def test_find_out_existing_folder_is_numbered_not_refused(tmp_path: Path, no_test: list[int]) -> None:
    # The check above must not refuse the documented case: an existing --out in a writable folder is numbered.
    task = write_task(tmp_path, MSE_LOSS_FN)
    (tmp_path / "find").mkdir()
    with pytest.raises(_TestRan):
        run_find(task, num_steps=10, out=tmp_path / "find")
    assert no_test == [1]


# --- `lrkit schedule --out` --------------------------------------------------------------------------------------


def test_schedule_out_under_a_broken_symlink_is_refused_before_anything_is_printed(tmp_path: Path) -> None:
    # README (schedule CLI): "an --out that is a folder, or one under a file is refused before anything is
    # printed". Bug: under a broken symlink the table was printed, then a traceback (exit code 1) said the
    # symlink "is a file".
    link = tmp_path / "gone"
    link.symlink_to(tmp_path / "nowhere")
    res = runner.invoke(build_app(), ["schedule", "cosine lr0=0.1", "-t", "100", "--out", str(link / "lr.png")])
    assert res.exit_code == 2, res.output
    assert "broken symlink" in res.output, res.output
    assert "Traceback" not in res.output and "max 0.1" not in res.output, res.output
    assert isinstance(res.exception, SystemExit)


def test_plot_under_a_broken_symlink_names_the_symlink(tmp_path: Path) -> None:
    # README: "a bad picture suffix or folder fails before anything is drawn". Bug: a broken symlink on the
    # picture's path was called "a file, not a folder".
    link = tmp_path / "gone"
    link.symlink_to(tmp_path / "nowhere")
    result = lrkit.FinderResult(list(np.geomspace(1e-4, 1.0, 30)), list(np.linspace(2.0, 1.0, 30)))
    with pytest.raises(ValueError, match="is a broken symlink"):
        result.plot(link / "lr.png")


_HF_TASK = '''
import torch


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(10, 2)

    def forward(self, input_ids, attention_mask=None, labels=None):
        return self.emb(input_ids).mean(1)


def model():
    return Model()


def optimizer(params):
    return torch.optim.SGD(params, lr=0.01)


def train_loader():
    g = torch.Generator().manual_seed(0)
    return [{"input_ids": torch.randint(0, 10, (4, 5), generator=g), "attention_mask": torch.ones(4, 5),
             "labels": torch.randint(0, 2, (4,), generator=g)} for _ in range(4)]


loss_fn = torch.nn.functional.cross_entropy
'''


def test_find_hugging_face_batch_with_a_task_loss_fn_says_to_define_step_fn(tmp_path: Path) -> None:
    # README (find CLI): with a Hugging Face dict batch and a task file's loss_fn, "the error says to define
    # step_fn(model, batch) in the task file — for a Hugging Face model return model(**batch).loss". Bug: the
    # message also carried the Python API's "(with no loss_fn, ... goes to the model whole)", advice in the API's
    # words (since session 16 a task file may define neither, and the note says so in a task file's words).
    task = tmp_path / "hf_task.py"
    task.write_text(_HF_TASK)
    res = runner.invoke(build_app(), ["find", str(task), "--num-steps", "10", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert "define step_fn(model, batch) in the task file" in text, text
    assert "return model(**batch).loss" in text, text
    assert "with no loss_fn" not in text and "step_fn=lambda" not in text, text


# --- claims no other test checked (they held; each asserts the README's words) ---------------------------------


def _loader() -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=g)
    y = (x[:, 0] > 0).long()
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16, shuffle=True,
                                       generator=g)


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))


def test_parameters_passed_as_the_optimizer_gives_the_readme_message() -> None:
    # README quotes this message word for word (users search for it).
    model = _model()
    with pytest.raises(ValueError) as info:
        lrkit.find_lr(model, model.parameters(), _loader(), num_steps=10)
    assert str(info.value) == (
        "optimizer is a generator, not an optimizer (model.parameters()?): pass an optimizer built over the model's "
        "parameters, e.g. torch.optim.SGD(model.parameters(), lr=0.1)")


def test_accumulation_steps_too_long_to_print_is_named_in_short_form() -> None:
    # README: "a larger value is a ValueError naming it, 1.00e+400 for one too long to print".
    model = _model()
    with pytest.raises(ValueError, match=r"^accumulation_steps=1\.00e\+400 must be at most 1,000,000"):
        lrkit.find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), _loader(), accumulation_steps=10**400)


def test_noise_and_backoff_are_the_default_rules_reading_whatever_rule_asks() -> None:
    # README: "Both are the **default** rule's reading, whatever rule= or suggest(**options) asks for."
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    robust = lrkit.find_lr(model, opt, _loader(), num_steps=60)
    steepest = lrkit.find_lr(model, opt, _loader(), num_steps=60, rule="steepest")
    assert steepest.suggestion == robust.suggest("steepest") != robust.suggestion
    assert (steepest.noise, steepest.backoff, steepest.regime) == (robust.noise, robust.backoff, robust.regime)
    assert not math.isnan(robust.noise)
    unscaled = robust.suggest(noise_band=None)  # options change the answer, not the reading
    assert robust.noise == steepest.noise and isinstance(unscaled, float)


def test_an_ended_schedule_cannot_be_replanned_and_nothing_moves() -> None:
    # README: "(an ended schedule cannot be stretched: build a new one for the extra steps)".
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = from_spec("cosine lr0=0.1", total_steps=10).to_torch(opt)
    for _ in range(12):
        opt.step()
        sched.step()
    state, lr = sched.state_dict(), opt.param_groups[0]["lr"]
    with pytest.raises(ValueError, match="build a new schedule for the extra steps"):
        sched.replan(total_steps=20)
    assert sched.state_dict() == state and opt.param_groups[0]["lr"] == lr


def test_schedule_unused_base_lr_warns_on_stderr_and_keeps_the_json_clean() -> None:
    # README: "a --base-lr that no spec uses (every spec has its own peak) is named in a warning on stderr (the
    # JSON on stdout stays clean)".
    res = CliRunner().invoke(build_app(), ["schedule", "cosine lr0=0.1", "-t", "20", "--base-lr", "0.5", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["lr"][0] == 0.1
    assert "--base-lr 0.5 is not used" in res.stderr


def test_find_cli_ctrl_c_exits_130_and_writes_nothing(tmp_path: Path) -> None:
    # README: "Ctrl-C exits with code 130 and `error: interrupted — the range test stopped before it finished;
    # nothing was written`".
    task = write_task(tmp_path, '''
        calls = [0]


        def step_fn(model, batch):
            calls[0] += 1
            if calls[0] == 3:
                raise KeyboardInterrupt
            x, y = batch
            return torch.nn.functional.mse_loss(model(x), y)
        ''')
    out = tmp_path / "o"
    res = runner.invoke(build_app(), ["find", str(task), "--num-steps", "10", "--out", str(out)])
    assert res.exit_code == 130, res.output
    assert ("error: interrupted — the range test stopped before it finished; nothing was written"
            in " ".join(res.output.split())), res.output
    assert not out.exists()


class _Angle(torch.nn.Module):
    """One angle ``w`` at its optimum 0; batches are small offsets around it: ``loss = 1 + (1 - cos(w - t)) / 2``,
    bounded (so the test never trips its divergence stop), lowest at ``w = 0`` where the test starts."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.w - t


def _angle_test(start_lr: float, end_lr: float) -> tuple[lrkit.FinderResult, list[str]]:
    torch.manual_seed(0)
    model = _Angle()
    batches = [(torch.randn(1) * 0.05, torch.zeros(1)) for _ in range(50)]
    with pytest.warns(UserWarning) as caught:
        result = lrkit.find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), batches, start_lr=start_lr,
                               end_lr=end_lr, num_steps=100,
                               loss_fn=lambda out, y: (1.0 + 0.5 * (1 - torch.cos(out))).sum())
    assert result.stop_reason == "completed"
    losses = result.losses
    assert np.mean(losses[-12:]) > 1.2 * np.mean(losses[:12])  # it rose within the range, never diverging
    notes = [str(w.message) for w in caught]
    assert notes == result.warnings
    return result, notes


def test_a_curve_rising_from_its_start_warns_to_lower_start_lr_not_to_raise_end_lr() -> None:
    # README: "a curve lowest at its start suggests its first LR, with a warning to lower start_lr". Bug: a curve
    # that rose from its first LRs (every LR too high) without tripping the divergence stop was called "barely
    # moved ... too flat to judge; raise end_lr" — the wrong way: higher LRs only raise the loss further.
    result, notes = _angle_test(3.0, 3000.0)
    smoothed = result.smoothed_losses
    assert int(np.argmin(smoothed)) < 3 and result.flat  # lowest at its start, then it blew up
    assert result.suggestion == result.lrs[0]  # the first LR, as the README says
    assert len(notes) == 1 and "lowest at the very start" in notes[0] and "lower start_lr (now 3)" in notes[0], notes


def test_a_flat_curve_that_rose_within_the_range_is_not_told_to_raise_end_lr() -> None:
    # README: a flat curve's warning says what to change — "not a higher end_lr when the flat curve diverged
    # before reaching it". Bug: a flat curve that rose by half within the range, short of the divergence stop, was
    # told it "barely moved" and to "raise end_lr", which only shows more of the rise.
    result, notes = _angle_test(0.3, 300.0)
    assert int(np.argmin(result.smoothed_losses)) >= 3
    assert result.flat and f"then rose past lr={result.edge:.3g} before the range test ended" in notes[0], notes
    assert "lower start_lr (now 0.3)" in notes[0] and "raise end_lr" not in notes[0], notes


def test_a_flat_completed_curve_still_says_to_raise_end_lr() -> None:
    # The README's advice for a curve that barely moved over the whole range stays: a higher end_lr (or more steps).
    lrs = list(np.geomspace(1e-7, 10.0, 100))
    losses = list(1.0 + 0.001 * np.random.default_rng(0).normal(size=100))
    from lrkit.finder.range_test import _quality_warnings
    notes = _quality_warnings(lrkit.FinderResult(lrs, losses, num_steps=100))
    assert len(notes) == 1 and "barely moved over the range test" in notes[0] and "raise end_lr" in notes[0], notes
