"""Bugs the data-path hunt found in the trainer: leftover folders, resume from best.pt / another directory."""

from __future__ import annotations

import pytest

import lrkit


def _boom_at_first_step(**kw):
    if kw.get("event") == "step":
        raise RuntimeError("stop")


def test_failed_first_run_leaves_no_project_folders_it_created(tmp_path):
    # README: "A run that fails before it finishes its first epoch leaves no trace: a directory it created is removed"
    with pytest.raises(RuntimeError):
        lrkit.train(data="iris", model="linear", epochs=1, project=str(tmp_path / "a" / "b" / "c"), verbose=False,
                    plots=False, progress=_boom_at_first_step)
    assert not (tmp_path / "a").exists()  # a/b/c was left behind, empty


def test_resume_from_best_pt_says_to_use_last_pt(tmp_path):
    r = lrkit.train(data="iris", model="linear", epochs=1, lr0=0.01, project=str(tmp_path), verbose=False, plots=False)
    with pytest.raises(ValueError, match=r"best.pt.*last.pt"):  # was: "the model or its parameter groups differ"
        lrkit.train(resume=str(r.best_checkpoint), epochs=2, verbose=False, plots=False)


@pytest.mark.parametrize("name", [".", ".."])
def test_name_dot_or_dotdot_is_an_error_not_a_folder_outside_project(tmp_path, name):
    project = tmp_path / "runs"
    with pytest.raises(ValueError, match=rf"name='{name}'"):  # was: '.' -> runs2 beside runs; '..' -> runs/..2
        lrkit.train(data="iris", model="linear", epochs=1, project=str(project), name=name, verbose=False,
                    plots=False)


def test_resume_from_another_working_directory_finds_a_relative_data_file(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "t.csv").write_text("x,y\n" + "".join(f"{i * 0.1},{i % 2}\n" for i in range(40)))
    monkeypatch.chdir(tmp_path / "a")
    r = lrkit.train(data="t.csv", model="linear", epochs=1, lr0=0.01, verbose=False, plots=False)
    monkeypatch.chdir(tmp_path / "b")
    r2 = lrkit.train(resume=str(tmp_path / "a" / r.run_dir / "last.pt"), epochs=2, verbose=False, plots=False)
    assert r2.epochs_run == 2  # was: ValueError data='t.csv': no such file


def test_args_yaml_records_the_run_directory_really_used(tmp_path):
    import yaml

    first = lrkit.train(data="iris", model="linear", epochs=1, lr0=0.01, project=str(tmp_path), verbose=False,
                        plots=False)
    second = lrkit.train(data="iris", model="linear", epochs=1, lr0=0.01, project=str(tmp_path), verbose=False,
                         plots=False)
    assert first.run_dir != second.run_dir
    args = yaml.safe_load((second.run_dir / "args.yaml").read_text())
    assert args["name"] is None and args["resolved"]["run_dir"] == str(second.run_dir)


def test_a_dataset_of_namedtuples_trains_with_lr0_auto(tmp_path):
    # the batch cast and move_to rebuilt (x, y) batches as type(batch)(pair), which a namedtuple rejects
    from collections import namedtuple

    import torch

    Sample = namedtuple("Sample", "x y")

    class Pairs(torch.utils.data.Dataset):
        def __len__(self):
            return 320

        def __getitem__(self, i):
            x = torch.randn(4, generator=torch.Generator().manual_seed(i))
            return Sample(x, x.sum(0, keepdim=True))

    r = lrkit.train(model=torch.nn.Linear(4, 1), data=Pairs(), epochs=3, batch=16, nbs=16, lr0="auto",
                    project=str(tmp_path), verbose=False, plots=False)
    assert r.epochs_run == 3 and r.history[-1]["val_loss"] < r.history[0]["val_loss"]
