"""What a bug hunt of the CLI and config with today's features found (optimizer classes, ``freeze=``, lr0=auto,
schedules): each test failed before its fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from lrkit._config import TrainConfig, load_yaml_mapping, tokens_to_kwargs
from lrkit.cli.app import build_app
from lrkit.schedules import from_spec


def train(*args: str) -> Any:
    return CliRunner().invoke(build_app(), ["train", *args])


def _clean_failure(res: Any, match: str) -> None:
    assert res.exit_code == 2, res.output
    assert match in res.output, res.output
    assert "Traceback" not in res.output
    assert isinstance(res.exception, SystemExit)


QUICK = ("data=iris", "model=mlp", "epochs=1", "plots=false", "verbose=false", "warmup_epochs=0")


# --------------------------------------------------------------------------------------------------------------
# 1. a run's own args.yaml is a cfg= file: `lrkit train cfg=runs/train/args.yaml` runs the same settings again
# --------------------------------------------------------------------------------------------------------------
def test_a_runs_args_yaml_is_read_back_as_a_cfg_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    first = train(*QUICK, "optimizer=torch.optim:Adagrad", "freeze=body", "lr0=0.05", "seed=3")
    assert first.exit_code == 0, first.output
    args = tmp_path / "runs" / "train" / "args.yaml"
    assert "resolved" in yaml.safe_load(args.read_text())  # lrkit's record of what the run resolved to
    kwargs = load_yaml_mapping(args)
    assert "resolved" not in kwargs  # a record, not a setting: left out, as every key of TrainConfig is read
    cfg = TrainConfig.from_kwargs(**kwargs)
    assert (cfg.optimizer, cfg.freeze, cfg.lr0, cfg.seed) == ("torch.optim:Adagrad", ["body"], 0.05, 3)
    again = train(f"cfg={args}")
    assert again.exit_code == 0, again.output
    rerun = yaml.safe_load((tmp_path / "runs" / "train2" / "args.yaml").read_text())
    assert rerun["resolved"]["optimizer"] == "torch.optim:Adagrad"
    assert (rerun["freeze"], rerun["lr0"], rerun["seed"]) == (["body"], 0.05, 3)


def test_a_resolved_key_that_is_not_a_runs_record_is_still_an_unknown_key(tmp_path: Path) -> None:
    f = tmp_path / "mine.yaml"
    f.write_text("data: iris\nresolved: 3\n")
    with pytest.raises(ValueError, match="unknown train key 'resolved'"):
        tokens_to_kwargs([f"cfg={f}"])


# --------------------------------------------------------------------------------------------------------------
# 2. optimizer=torch.optim.Adagrad (a dot where the colon goes) names the spelling that works
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("given", "fix"), [("torch.optim.Adagrad", "torch.optim:Adagrad"),
                                            ("schedulefree.AdamWScheduleFree", "schedulefree:AdamWScheduleFree")])
def test_a_dotted_class_path_without_a_colon_names_the_colon_form(given: str, fix: str) -> None:
    with pytest.raises(ValueError, match=f"optimizer={given!r}.*{fix!r}"):
        TrainConfig.from_tokens([f"optimizer={given}"])


def test_a_dotted_class_path_from_yaml_fails_in_one_line_before_any_run(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.yaml").write_text("data: iris\nmodel: mlp\nepochs: 1\noptimizer: torch.optim.Adagrad\n")
    res = train("cfg=t.yaml")
    _clean_failure(res, "'torch.optim:Adagrad'")
    assert not (tmp_path / "runs").exists()


def test_a_misspelt_registry_name_still_gets_its_did_you_mean() -> None:
    with pytest.raises(ValueError, match="Did you mean 'AdamW'"):
        TrainConfig.from_tokens(["optimizer=adamww"])


# --------------------------------------------------------------------------------------------------------------
# 3. resume with the same class from a .py file, spelt another way (a .py file is imported afresh each time)
# --------------------------------------------------------------------------------------------------------------
LION = """
import torch


class Lion(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99)):
        super().__init__(params, dict(lr=lr, betas=betas))

    @torch.no_grad()
    def step(self, closure=None):
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is not None:
                    p.add_(p.grad.sign(), alpha=-g["lr"])
"""


@pytest.mark.parametrize("again", ["./my_opt.py:Lion", "my_opt:Lion", "my_opt.py:Lion"])
def test_resume_takes_the_same_file_class_spelt_another_way(again: str, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_opt.py").write_text(LION)
    quick = ("plots=false", "verbose=false")
    first = train("data=iris", "model=mlp", "epochs=1", "optimizer=my_opt.py:Lion", *quick)
    assert first.exit_code == 0, first.output
    res = train("resume=true", "epochs=2", f"optimizer={again}", *quick)
    assert res.exit_code == 0, res.output
    assert "my_opt.py:Lion" in (tmp_path / "runs" / "train" / "args.yaml").read_text()


def test_resume_refuses_another_class_in_the_same_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_opt.py").write_text(LION + "\n\nclass Lion2(Lion):\n    pass\n")
    quick = ("plots=false", "verbose=false")
    assert train("data=iris", "model=mlp", "epochs=1", "optimizer=my_opt.py:Lion", *quick).exit_code == 0
    res = train("resume=true", "epochs=2", "optimizer=./my_opt.py:Lion2", *quick)
    assert res.exit_code == 2 and "differs from the run being resumed" in res.output, res.output


# --------------------------------------------------------------------------------------------------------------
# 4. a comma after the schedule name: the suggestion is the spec with a space
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("spec", "fix"), [("cosine, lr0=0.01", "cosine lr0=0.01"),
                                           ("cosine ,lr0=0.01 lrf=0.1", "cosine lr0=0.01 lrf=0.1")])
def test_a_comma_after_the_name_suggests_the_spec_with_a_space(spec: str, fix: str) -> None:
    with pytest.raises(ValueError) as e:
        from_spec(spec, total_steps=100)
    assert repr(fix) in str(e.value) and "cosine cosine" not in str(e.value)
    assert from_spec(fix, total_steps=100).total_steps == 100  # the spelling offered works


# --------------------------------------------------------------------------------------------------------------
# 5. Prodigy with lr0=auto: a range test over its multiplier would train at lr=10; refused before anything is written
# --------------------------------------------------------------------------------------------------------------
def test_prodigy_refuses_lr0_auto(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("prodigyopt")
    monkeypatch.chdir(tmp_path)
    res = train(*QUICK, "optimizer=prodigyopt:Prodigy", "lr0=auto")
    _clean_failure(res, "lr0='auto' does not apply")
    assert not (tmp_path / "runs").exists()


# --------------------------------------------------------------------------------------------------------------
# 6. the table's curve row says how far below the minimum a suggestion kept inside the descent really is
# --------------------------------------------------------------------------------------------------------------
def test_the_curve_row_names_a_back_off_the_descent_cut_short() -> None:
    import math

    import numpy as np

    from lrkit.cli.find import _curve_reading
    from lrkit.finder import FinderResult

    lrs = np.logspace(-4, 1, 100)
    cliff = 2.0 - 1.5 / (1 + np.exp(-(np.log10(lrs) - np.log10(0.08)) * 40)) + (lrs / 0.3) ** 6
    r = FinderResult(lrs=list(lrs), losses=list(cliff))
    below = math.log10(r.range[1] / r.suggestion)
    assert r.backoff == 1.0 and below < 0.9  # the rule's back-off was a decade, the suggestion sits closer
    from lrkit.plots.finder import _number_apart  # (the noise's own digits: tests/test_small_noise_s28.py)

    expected = (f"exploded (noise {_number_apart(r.noise, fixed=True)}): back off 1 decade ({below:.2g} kept inside "
                "the descent)")
    assert _curve_reading(r) == expected
    clean = 1 / (1 + lrs / 1e-3) + (lrs / 0.1) ** 2
    assert "kept inside" not in _curve_reading(FinderResult(lrs=list(lrs), losses=list(clean)))


# --------------------------------------------------------------------------------------------------------------
# 7. resume from another folder: a class from a relative file.py is imported from the run's working folder
# --------------------------------------------------------------------------------------------------------------
def test_resume_from_another_folder_finds_the_optimizer_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_opt.py").write_text(LION)
    quick = ("plots=false", "verbose=false")
    assert train("data=iris", "model=mlp", "epochs=1", "optimizer=my_opt.py:Lion", *quick).exit_code == 0
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    res = train(f"resume={tmp_path / 'runs' / 'train'}", "epochs=2", *quick)
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "elsewhere" / "runs").exists()  # the run resumed in place, nothing new started here
