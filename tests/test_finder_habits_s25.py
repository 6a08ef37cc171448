"""Session 25 (the migration walk's findings in the finder): what configure_optimizers() returns passed as the
optimizer, a curve still falling at end_lr, and fastai's rule names."""

from __future__ import annotations

import pytest
import torch

import lrkit
from lrkit.finder.result import FinderResult


def _task(seed: int = 0) -> tuple[torch.nn.Module, torch.optim.Optimizer, torch.utils.data.DataLoader]:
    torch.manual_seed(seed)
    x = torch.randn(256, 4)
    y = (x @ torch.randn(4, 3)).argmax(1)
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16, shuffle=True)
    return model, torch.optim.SGD(model.parameters(), lr=0.01), loader


@pytest.mark.parametrize(("wrap", "says"), [
    (lambda o: {"optimizer": o, "lr_scheduler": torch.optim.lr_scheduler.StepLR(o, 10)},
     "pass that entry, configure_optimizers()['optimizer']"),
    (lambda o: ([o], [torch.optim.lr_scheduler.StepLR(o, 10)]), "configure_optimizers()[0][0]"),
    (lambda o: [o], "a list holding an optimizer"),
    (lambda o: (o, torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)),
     "a tuple of 2 optimizers: find_lr tests one"),
    (lambda o: [{"optimizer": o}], "configure_optimizers()[0]['optimizer']"),
])
def test_what_configure_optimizers_returns_is_named_with_what_to_pass(wrap, says) -> None:
    model, optimizer, loader = _task()
    with pytest.raises(ValueError) as e:
        lrkit.find_lr(model, wrap(optimizer), loader, num_steps=10)
    assert says in str(e.value) and "model.parameters()?" not in str(e.value)


def test_model_parameters_passed_as_the_optimizer_still_gets_its_own_hint() -> None:
    model, _, loader = _task()
    with pytest.raises(ValueError, match=r"model\.parameters\(\)\?"):
        lrkit.find_lr(model, list(model.parameters()), loader, num_steps=10)


def test_a_curve_still_falling_at_end_lr_is_warned_about() -> None:
    # Lightning's max_lr=1 on plain SGD: the loss is lowest at the last LRs tested
    model, optimizer, loader = _task()
    with pytest.warns(UserWarning, match=r"still falling at the end of the range .* raise end_lr \(now 1\)"):
        result = lrkit.find_lr(model, optimizer, loader, start_lr=1e-8, end_lr=1.0, num_steps=100)
    assert any("still falling" in w for w in result.warnings)
    # with lrkit's default end_lr the test sees the turn, and says nothing of the kind
    model, optimizer, loader = _task()
    result = lrkit.find_lr(model, optimizer, loader, num_steps=100)
    assert not any("still falling" in w for w in result.warnings), result.warnings


def test_the_note_reads_the_curve_not_the_end_lr() -> None:
    from lrkit.finder.range_test import _quality_warnings

    lrs = [10 ** (-6 + 6 * i / 59) for i in range(60)]
    falling = [2.0 - i / 60 for i in range(60)]
    turned = [2.0 - i / 60 if i < 45 else 2.0 - 45 / 60 + (i - 45) / 5 for i in range(60)]
    kw = {"lrs": lrs, "start_lr": 1e-6, "end_lr": 1.0, "num_steps": 60}
    assert any("still falling" in w for w in _quality_warnings(FinderResult(losses=falling, **kw)))
    assert not any("still falling" in w for w in _quality_warnings(FinderResult(losses=turned, **kw)))
    # a test that stopped early (diverged) saw the turn by definition
    stopped = FinderResult(losses=falling[:40], **{**kw, "lrs": lrs[:40]}, stop_reason="diverged")
    assert not any("still falling" in w for w in _quality_warnings(stopped))


@pytest.mark.parametrize(("name", "says"), [("slide", "'valley' is fastai's default reading"),
                                            ("lr_min", "lrkit's 'minimum'"), ("lr_steep", "lrkit's 'steepest'")])
def test_fastai_rule_names_are_named_back(name: str, says: str) -> None:
    model, optimizer, loader = _task()
    with pytest.raises(ValueError, match=says):
        lrkit.find_lr(model, optimizer, loader, num_steps=10, rule=name)
    result = lrkit.find_lr(model, optimizer, loader, num_steps=30)
    with pytest.raises(ValueError, match=says):
        result.suggest(name)


def test_the_cli_names_fastai_s_slide_back() -> None:
    from typer.testing import CliRunner

    from lrkit.cli.app import build_app

    out = CliRunner().invoke(build_app(), ["find", "--rule", "slide"])
    assert out.exit_code == 2
    assert "fastai's slide is not in lrkit" in " ".join(out.output.split())


def test_a_short_test_still_falling_at_its_end_also_names_num_steps() -> None:
    from lrkit.finder.range_test import _quality_warnings

    lrs = [10 ** (-6 + 7 * i / 11) for i in range(12)]
    falling = [2.0 - i / 12 for i in range(12)]
    note = [w for w in _quality_warnings(FinderResult(lrs=lrs, losses=falling, start_lr=1e-6, end_lr=10.0,
                                                      num_steps=12)) if "still falling" in w]
    assert note and note[0].endswith("raise end_lr (now 10) so the test sees where the loss turns up, and num_steps "
                                      "(now 12): 12 steps are too few to see the turn")
    long = [10 ** (-6 + 7 * i / 59) for i in range(60)]
    note = [w for w in _quality_warnings(FinderResult(lrs=long, losses=[2.0 - i / 60 for i in range(60)],
                                                      start_lr=1e-6, end_lr=10.0, num_steps=60))
            if "still falling" in w]
    assert note and "num_steps" not in note[0]


def test_lrkit_train_says_when_lr0_auto_has_no_room_for_trials(tmp_path, capsys) -> None:
    lrkit.train(data="digits", model="linear", epochs=3, lr0="auto", project=str(tmp_path), plots=False)
    out = " ".join(capsys.readouterr().out.split())
    # 69 steps: trials fit only after a range test that stops by its 4th step
    assert "lr0=auto — range test, then confirmation trials only if it stops early, by step 4 of its 17" in out
    assert "confirmation trials within" not in out
