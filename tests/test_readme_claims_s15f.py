"""README claims of the training and scaling sections (``lrkit.train``, run directory, resume, scaling) that no other
test checked (session 15, s15f).

Each test asserts what the README promises; the first one failed before its fix.
"""

from __future__ import annotations

import csv
import os
import stat
from pathlib import Path

import pytest
import torch

import lrkit

QUIET = {"plots": False, "verbose": False}


def _lrs(run_dir: Path) -> list[float]:
    with (run_dir / "results.csv").open(newline="") as f:
        return [float(row["lr/all/decay"]) for row in csv.DictReader(f)]


# --- scale_lr: "for an optimizer outside both families (LBFGS, Rprop, Lion, ...) it ... asks for an explicit rule=
# instead of guessing" --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Rprop", "rprop", "torch.optim.Rprop", "LBFGS"])
def test_scale_lr_names_a_real_optimizer_outside_both_families_without_a_did_you_mean(name: str) -> None:
    # Bug: optimizer="Rprop" (torch.optim.Rprop by name) got "Did you mean 'rmsprop'?": a guess at another optimizer
    # (RMSprop scales by sqrt), where the README promises it asks for rule= instead of guessing. The class object
    # already got no did-you-mean; a mistyped name ('rmsprp') still does (tests/test_scaling_wrappers.py).
    with pytest.raises(ValueError, match=r"Pass rule='linear' or rule='sqrt' explicitly") as e:
        lrkit.scale_lr(1e-3, 64, 256, optimizer=name)
    assert "Did you mean" not in str(e.value)


# --- the run directory ---------------------------------------------------------------------------------------------


def test_resume_removes_the_run_files_half_written_temporaries_and_logs_it(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    # README: "a resume removes the `.<file>.<hex>.tmp` leftovers a killed write left beside the run's files".
    r = lrkit.train(data="iris", model="linear", epochs=1, lr0=0.01, project=str(tmp_path), **QUIET)
    ours = r.run_dir / ".last.pt.0123456789ab.tmp"
    ours.write_bytes(b"half a checkpoint")
    theirs = r.run_dir / ".notes.txt.0123456789ab.tmp"  # not a run file: not lrkit's to remove
    theirs.write_bytes(b"someone else's")
    capsys.readouterr()
    lrkit.train(resume=str(r.run_dir), epochs=2, plots=False, verbose=True)
    assert not ours.exists() and theirs.exists()
    assert ".last.pt.0123456789ab.tmp" in capsys.readouterr().out


def test_a_replaced_run_file_keeps_its_permission_bits(tmp_path: Path) -> None:
    # README: "a file that is replaced keeps its permission bits" (results.csv, last.pt rewritten by a resume).
    r = lrkit.train(data="iris", model="linear", epochs=1, lr0=0.01, project=str(tmp_path), **QUIET)
    for name in ("results.csv", "last.pt"):
        os.chmod(r.run_dir / name, 0o600)
    lrkit.train(resume=str(r.run_dir), epochs=2, **QUIET)
    assert len(_lrs(r.run_dir)) == 2  # the files were rewritten
    for name in ("results.csv", "last.pt"):
        assert stat.S_IMODE(os.stat(r.run_dir / name).st_mode) == 0o600


def test_resume_from_best_pt_is_an_error_pointing_to_last_pt(tmp_path: Path) -> None:
    # README: "`best.pt` holds only the best epoch's weights: resuming from it is an error pointing to the run's
    # `last.pt`"; and best.pt loads with weights_only=True, without the training state.
    r = lrkit.train(data="iris", model="linear", epochs=1, lr0=0.01, project=str(tmp_path), **QUIET)
    best = torch.load(r.run_dir / "best.pt", weights_only=True)
    assert "model" in best and "optimizer" not in best
    with pytest.raises(ValueError, match="best.pt") as e:
        lrkit.train(resume=str(r.run_dir / "best.pt"), epochs=2, **QUIET)
    assert str(r.run_dir / "last.pt") in str(e.value)


# --- resume ---------------------------------------------------------------------------------------------------------


def test_a_finished_run_extended_trains_its_extra_epochs_at_the_final_lr(tmp_path: Path) -> None:
    # README: "A finished run can be extended with a larger `epochs`; its schedule has ended, so the extra epochs run
    # at its final LR" (lr0 * lrf), with no jump back up.
    r = lrkit.train(data="iris", model="linear", epochs=2, lr0=0.01, lrf=0.1, optimizer="SGD", warmup_epochs=0,
                    project=str(tmp_path), **QUIET)
    lrkit.train(resume=str(r.run_dir), epochs=4, **QUIET)
    lrs = _lrs(r.run_dir)
    assert len(lrs) == 4
    assert lrs[2] == pytest.approx(0.01 * 0.1) and lrs[3] == pytest.approx(0.01 * 0.1)


def test_resume_elsewhere_reads_a_relative_data_file_from_the_runs_folder_and_says_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # README: "A relative `data=` file is found from the run's own working directory (saved in `last.pt`) when a
    # resume starts elsewhere, and the log says so."
    home = tmp_path / "work"
    home.mkdir()
    rows = ["a,b,label"] + [f"{i % 7 / 7:.3f},{i % 5 / 5:.3f},{i % 2}" for i in range(40)]
    (home / "data.csv").write_text("\n".join(rows) + "\n")
    monkeypatch.chdir(home)
    r = lrkit.train(data="data.csv", model="linear", epochs=1, lr0=0.01, project=str(tmp_path / "runs"), **QUIET)
    monkeypatch.chdir(tmp_path)  # no data.csv here
    capsys.readouterr()
    r2 = lrkit.train(resume=str(r.run_dir), epochs=2, plots=False, verbose=True)
    assert r2.epochs_run == 2
    assert str(home / "data.csv") in capsys.readouterr().out


# --- hyperparameters ------------------------------------------------------------------------------------------------


def test_a_batch_larger_than_the_training_split_counts_as_the_splits_size(tmp_path: Path) -> None:
    # README (Models): "A `batch` larger than the training split counts as the split's size (each step sees only
    # those samples), for `accumulate` and the weight-decay scaling alike." iris: 120 training samples.
    big = lrkit.train(data="iris", model="linear", epochs=1, lr0=0.01, batch=1000, project=str(tmp_path), **QUIET)
    exact = lrkit.train(data="iris", model="linear", epochs=1, lr0=0.01, batch=120, project=str(tmp_path), **QUIET)
    assert (big.accumulate, big.weight_decay) == (exact.accumulate, exact.weight_decay)
    assert big.accumulate == max(round(64 / 120), 1)
    assert big.weight_decay == pytest.approx(5e-4 * 120 * big.accumulate / 64)


def test_a_schedule_free_optimizer_gets_the_lrf_1_suggestion_in_the_log(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    # README (Any optimizer class): schedule-free optimizers "are designed for a flat LR after warmup: `lrf=1` keeps
    # `lr0` (the log suggests it)"; lr0=None takes the class's default lr, logged as such.
    schedulefree = pytest.importorskip("schedulefree")  # installed here (as tests/train/test_custom_optimizer.py)
    r = lrkit.train(data="iris", model="linear", epochs=1, optimizer=schedulefree.AdamWScheduleFree,
                    project=str(tmp_path), plots=False, verbose=True)
    out = capsys.readouterr().out
    assert "lrf=1 keeps lr0" in out
    assert (r.lr0, r.lr0_source) == (0.0025, "default") and "default lr, from its signature" in out


# --- "Every key is validated before anything runs ... one line that names it and what would be valid" --------------


@pytest.mark.parametrize("seed", [2**64, 10**30])
def test_a_seed_outside_torchs_range_is_refused_up_front_naming_seed(tmp_path: Path, seed: int) -> None:
    # Bug: seed=2**64 (or 1e30 on the command line) passed the check, the run started, and its first epoch failed
    # with torch's bare "Overflow when unpacking long long" — naming neither the key nor its valid range.
    project = tmp_path / "runs"
    with pytest.raises(ValueError, match=r"seed=.* must be an integer in \[0, 2\*\*64\)"):
        lrkit.train(data="iris", model="linear", epochs=1, lr0=0.01, seed=seed, project=str(project), **QUIET)
    assert not project.exists()


def test_the_cli_names_a_seed_too_large(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from lrkit.cli.app import build_app

    result = CliRunner().invoke(build_app(), ["train", "data=iris", "model=linear", "seed=1e30", "plots=false",
                                              f"project={tmp_path / 'runs'}"])
    assert result.exit_code == 2
    assert "seed=" in result.output and "2**64" in result.output and "Overflow" not in result.output


def test_a_batch_too_large_for_a_dataloader_is_refused_up_front_naming_batch(tmp_path: Path) -> None:
    # Bug: batch=1e30 (or 2**63) passed the check and the run failed with torch's "Stop argument for islice() must
    # be None or an integer: 0 <= x <= sys.maxsize." — naming neither batch nor what would be valid.
    project = tmp_path / "runs"
    for batch in (2**63, 10**30):
        with pytest.raises(ValueError, match=r"batch=\d+ .*at most 2\*\*63 - 1"):
            lrkit.train(data="iris", model="linear", epochs=1, lr0=0.01, batch=batch, project=str(project), **QUIET)
    assert not project.exists()
    r = lrkit.train(data="iris", model="linear", epochs=1, lr0=0.01, batch=2**63 - 1, project=str(project), **QUIET)
    assert r.accumulate == 1  # the largest DataLoader batch still counts as the whole training split


# --- head=: "A name the model lacks is an error listing its layers" ------------------------------------------------


def test_a_head_name_the_model_lacks_is_an_error_also_beside_one_that_matches(tmp_path: Path) -> None:
    # Bug: head="head,haed" (a typo beside a real name) trained silently, the misspelt module at the backbone's LR;
    # only a head= of which *no* name matched was refused.
    project = tmp_path / "runs"
    with pytest.raises(ValueError, match=r"'haed'.*Did you mean 'head'\?.*body, head"):
        lrkit.train(data="iris", model="mlp", epochs=1, lr0=0.01, backbone_lr_scale=0.1, head="head,haed",
                    project=str(project), **QUIET)
    assert not project.exists()
    model = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    with pytest.raises(ValueError, match=r"'3'.*layers: 0, 2"):
        lrkit.param_groups(model, 1e-3, backbone_lr_scale=0.1, head=("2", "3"))
    # the default head is a list of candidates (head, fc, classifier, ...): any of them may be absent
    groups = lrkit.param_groups(torch.nn.ModuleDict({"body": torch.nn.Linear(2, 2), "fc": torch.nn.Linear(2, 1)}),
                                1e-3, backbone_lr_scale=0.1)
    assert {g["name"].split("/")[0] for g in groups} == {"backbone", "head"}


def test_the_seeded_sampler_takes_any_seed_in_torchs_range() -> None:
    # Bug: SeededSampler(seed=2**63) overflowed torch's generator ("Overflow when unpacking long long"); its per-epoch
    # seed is now taken modulo 2**64, which leaves every smaller derivation (every seed that worked) as it was.
    from lrkit.train.data import SeededSampler

    big = SeededSampler(7, seed=2**63)
    big.set_epoch(2)
    assert sorted(big) == list(range(7))
    small = SeededSampler(7, seed=5)
    small.set_epoch(2)
    expected = torch.randperm(7, generator=torch.Generator().manual_seed(5 * 1_000_003 + 2)).tolist()
    assert list(small) == expected
