"""Edge cases a demanding user hits: bad data files, odd loaders, factories that fail, keys equal to their defaults.

Each test pins one bug found in an adversarial pass over ``lrkit.train`` / ``lrkit train``: before the fix the input
gave a wrong result, a deep torch/numpy traceback, or silently ignored a setting.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset
from typer.testing import CliRunner

from lrkit.cli.app import build_app
from lrkit.train import train
from lrkit.train.data import load_data

QUIET = {"verbose": False, "plots": False}


def _csv(path, rows: list[str]):
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _table(n: int = 30) -> list[str]:
    return [f"{i},{(i * 7) % 5},{i % 2}" for i in range(n)]


# ------------------------------------------------------------------------------------------- data files
def test_csv_missing_or_nan_target_is_named_not_learned_as_a_class(tmp_path):
    # before: an empty target cell became a class "" (and "nan" a NaN regression target) and training went on
    empty = _csv(tmp_path / "empty.csv", ["a,b,label", *_table(6), "7,1,", "8,2,1"])
    with pytest.raises(ValueError, match=r"target column 'label' is empty on line 8"):
        load_data(empty)
    nan = _csv(tmp_path / "nan.csv", ["a,b,label", *_table(6), "7,1,nan", "8,2,1"])
    with pytest.raises(ValueError, match=r"target column 'label' holds 1 NaN/infinite value\(s\), first on line 8"):
        load_data(nan)


def test_non_finite_features_are_named(tmp_path):
    # before: "nan"/"inf" parsed as floats, the standardisation spread NaN and every val loss was nan
    bad = _csv(tmp_path / "inf.csv", ["a,b,label", *_table(4), "5,inf,1", *_table(4)])
    with pytest.raises(ValueError, match=r"column 'b' on line 6"):
        load_data(bad)
    missing = _csv(tmp_path / "gap.csv", ["a,b,label", "1,,0", *_table(5)])
    with pytest.raises(ValueError, match=r"feature column 'b' is empty on line 2"):
        load_data(missing)
    x = np.random.default_rng(0).standard_normal((12, 3))
    x[4, 2] = np.nan
    np.savez(tmp_path / "nan.npz", x=x, y=np.arange(12) % 2)
    with pytest.raises(ValueError, match=r"NaN/infinite value\(s\), first in row 4, column 2"):
        load_data(tmp_path / "nan.npz")


def test_csv_with_a_byte_order_mark_keeps_the_first_column_name(tmp_path):
    # spreadsheets save "UTF-8 with BOM": before, the first header was '\ufeffa' and target='a' was "unknown"
    path = tmp_path / "bom.csv"
    path.write_text("\ufeffa,b,c\n" + "\n".join(f"{i % 2},{i},{i * 0.5}" for i in range(20)) + "\n",
                    encoding="utf-8")
    d = load_data(path, target="a")
    assert d.info.task == "classification" and d.info.num_outputs == 2 and d.info.input_shape == (2,)


def test_npz_column_vector_of_labels_is_classification(tmp_path):
    # y of shape (N, 1) holding class ids used to be read as a 1-output regression
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 3))
    y = (x[:, 0] > 0).astype(np.int64)
    np.savez(tmp_path / "col.npz", x=x, y=y[:, None])
    np.savez(tmp_path / "vec.npz", x=x, y=y)
    col, vec = load_data(tmp_path / "col.npz"), load_data(tmp_path / "vec.npz")
    assert col.info.task == vec.info.task == "classification"
    assert torch.equal(col.train.tensors[1], vec.train.tensors[1])


def test_data_yaml_task_and_seq_len_are_validated(tmp_path):
    (tmp_path / "t.csv").write_text("a,b,c\n" + "\n".join(_table(20)) + "\n")
    (tmp_path / "book.txt").write_text("the quick brown fox jumps over the lazy dog. " * 20)
    typo = tmp_path / "typo.yaml"
    typo.write_text("train: t.csv\ntask: clasification\n")
    with pytest.raises(ValueError, match="Did you mean 'classification'"):
        load_data(typo)
    for bad in ("0", "abc", "1"):  # before: ZeroDivisionError / "invalid literal for int()" / a 1-char window
        y = tmp_path / f"s{bad}.yaml"
        y.write_text(f"train: book.txt\nseq_len: {bad}\n")
        with pytest.raises(ValueError, match=rf"seq_len='?{bad}'? must be an integer >= 2"):
            load_data(y)
    good = tmp_path / "good.yaml"
    good.write_text("train: book.txt\nseq_len: 8\n")
    assert load_data(good).info.seq_len == 8


# ------------------------------------------------------------------------------------------- torch sources
def _xy(n: int = 100, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g)
    return x, (x[:, 0] > 0).long()


def test_empty_train_or_val_part_is_named(tmp_path):
    x, y = _xy()
    full, empty = TensorDataset(x, y), TensorDataset(x[:0], y[:0])
    with pytest.raises(ValueError, match="the val TensorDataset is empty"):  # before: RuntimeError from max()
        train(model="mlp", data=(full, empty), epochs=1, project=tmp_path, **QUIET)
    with pytest.raises(ValueError, match="the train TensorDataset is empty"):  # before: "cannot tell the task"
        train(model="mlp", data=(empty, full), epochs=1, project=tmp_path, **QUIET)
    assert not any(tmp_path.iterdir())


def test_negative_class_labels_are_named(tmp_path):
    x, y = _xy()
    with pytest.raises(ValueError, match="has the label -1"):  # before: "could not find at least 2 classes"
        train(model="mlp", data=TensorDataset(x, y - 1), epochs=1, project=tmp_path, **QUIET)


def test_dataloader_keeps_drop_last_and_refuses_a_batch_sampler(tmp_path):
    x, y = _xy()
    # 80 training samples, batch 90, drop_last=True: the user asked for no partial batch, so there is none to train
    # on; before, drop_last was dropped and a partial batch of 80 trained silently
    loader = DataLoader(TensorDataset(x, y), batch_size=90, drop_last=True)
    with pytest.raises(ValueError, match="drop_last=True with batch_size=90 and 80 training samples"):
        train(model="mlp", data=loader, epochs=1, project=tmp_path, **QUIET)
    d = load_data(DataLoader(TensorDataset(x, y), batch_size=16, drop_last=True))
    assert d.train.drop_last and not d.val.drop_last
    assert len(d.train) == 80 // 16 and sum(len(b[1]) for b in d.val) == 20  # validation sees every sample
    sampler = DataLoader(TensorDataset(x, y), batch_sampler=[[i, i + 1] for i in range(0, 100, 2)])
    with pytest.raises(ValueError, match="without a batch_size"):  # before: a collate RuntimeError mid-setup
        train(model="mlp", data=sampler, epochs=1, project=tmp_path, **QUIET)


# ------------------------------------------------------------------------------------------- models and losses
class _TupleOut(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.lin(x), x


def test_model_and_loss_mismatches_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="returned a tuple, but the default classification loss needs a tensor"):
        train(_TupleOut(), data="iris", epochs=1, project=tmp_path, **QUIET)  # before: AttributeError in tasks.py
    with pytest.raises(ValueError, match=r"loss_fn cannot compare .* takes 1 positional argument"):
        train(model="mlp", data="iris", epochs=1, loss_fn=lambda out: out.sum(), project=tmp_path, **QUIET)
    with pytest.raises(ValueError, match=r"default classification loss cannot compare .*\(30, 2\).*"
                                         r"gives 2 scores per sample, but the data has 3 classes"):
        train(torch.nn.Linear(4, 2), data="iris", epochs=1, project=tmp_path, **QUIET)
    # a tuple output is fine when a loss_fn takes it apart (before: AttributeError in validation); the metric is
    # then the validation loss
    r = train(_TupleOut(), data="iris", epochs=1, lr0=0.01, project=tmp_path, **QUIET,
              loss_fn=lambda out, y: torch.nn.functional.cross_entropy(out[0], y))
    assert r.epochs_run == 1 and r.metric_name == "val_loss" and r.final_metric == r.final_val_loss
    assert math.isfinite(r.final_val_loss)


def test_factory_failures_name_the_spec(tmp_path):
    with pytest.raises(ValueError, match=r"model='math:sqrt': calling sqrt\(no arguments\) raised TypeError"):
        train(model="math:sqrt", data="iris", epochs=1, project=tmp_path, **QUIET)
    with pytest.raises(ValueError, match=r"model=':'.*package\.module:function"):  # before: "Empty module name"
        train(model=":", data="iris", epochs=1, project=tmp_path, **QUIET)
    assert not any(tmp_path.iterdir())


# ------------------------------------------------------------------------------------------- hyperparameters
def test_batch_larger_than_the_data_counts_the_samples_a_step_sees(tmp_path):
    # iris: 120 training samples. batch=1000 gives one batch of 120 per step, exactly like batch=120; before, the
    # weight decay was scaled by 1000/64 instead of 120/64 (nbs scaling counts the samples a step really sees)
    big = train(model="mlp", data="iris", epochs=2, batch=1000, lr0=0.01, project=tmp_path, name="big", **QUIET)
    exact = train(model="mlp", data="iris", epochs=2, batch=120, lr0=0.01, project=tmp_path, name="exact", **QUIET)
    assert big.weight_decay == pytest.approx(5e-4 * 120 / 64) == exact.weight_decay
    assert big.accumulate == exact.accumulate == 1
    for a, b in zip(big.model.state_dict().values(), exact.model.state_dict().values()):
        assert torch.equal(a, b)


def test_lr0_auto_on_a_run_too_short_does_not_suggest_an_invalid_budget(tmp_path):
    # before: "raise budget ... to at least 5" although auto_budget must be <= 1
    with pytest.raises(ValueError, match=r"train longer \(at least 34 optimizer steps at budget=0.3") as e:
        train(model="mlp", data="iris", epochs=1, batch=64, lr0="auto", project=tmp_path, **QUIET)
    assert "raise budget" not in str(e.value)


def test_project_that_is_a_file_is_a_clear_error(tmp_path):
    f = tmp_path / "runs"
    f.write_text("not a folder")
    with pytest.raises(ValueError, match="is a file, not a folder"):  # before: NotADirectoryError
        train(model="linear", data="iris", epochs=1, project=f, **QUIET)


# ------------------------------------------------------------------------------------------- keys equal to defaults
def test_resume_honours_an_override_equal_to_its_default(tmp_path):
    # epochs=10 is train()'s default; before, resume=..., epochs=10 was ignored ("already finished, pass epochs > 5")
    common = dict(model="linear", data="iris", lr0=0.05, optimizer="SGD", project=tmp_path, **QUIET)
    first = train(epochs=5, name="r", **common)
    longer = train(resume=first.run_dir, epochs=10, **QUIET)
    assert longer.epochs_run == 10 and longer.run_dir == first.run_dir


def test_resume_refuses_a_changed_key_equal_to_its_default(tmp_path):
    # batch=32 is the default; before, it was silently replaced by the run's batch=16
    first = train(model="linear", data="iris", epochs=2, batch=16, lr0=0.05, project=tmp_path, **QUIET)
    with pytest.raises(ValueError, match=r"resume: batch=32 differs from the run being resumed \(batch=16\)"):
        train(resume=first.run_dir, epochs=3, batch=32, **QUIET)


def test_cfg_file_is_overridden_by_a_keyword_equal_to_its_default(tmp_path):
    cfg = tmp_path / "train.yaml"
    cfg.write_text("data: iris\nmodel: linear\nepochs: 3\nlr0: 0.05\n")
    r = train(cfg=str(cfg), epochs=10, project=tmp_path, **QUIET)  # before: the file's 3 epochs won
    assert r.epochs_run == 10


def test_cli_resume_with_default_valued_epochs(tmp_path):
    runner = CliRunner()
    project = tmp_path / "runs"
    base = ["data=iris", "model=linear", "lr0=0.05", "optimizer=sgd", f"project={project}", "plots=false",
            "verbose=false"]
    res = runner.invoke(build_app(), ["train", *base, "epochs=4", "name=r"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(build_app(), ["train", f"resume={project / 'r'}", "epochs=10", "plots=false"])
    assert res.exit_code == 0, res.output
    assert len((project / "r" / "results.csv").read_text().strip().splitlines()) == 1 + 10


def test_numeric_column_name_as_target(tmp_path):
    # on the command line target=2024 arrives as the int 2024; before: "target=2024 is out of range"
    path = _csv(tmp_path / "years.csv", ["a,2024,b", *[f"{i},{i % 2},{i * 3 % 7}" for i in range(20)]])
    d = load_data(path, target=2024)
    assert d.info.task == "classification" and d.info.input_shape == (2,) and d.info.num_outputs == 2
    assert load_data(path, target=1).info.num_outputs == 2  # index 1 is the same column
    clash = _csv(tmp_path / "clash.csv", ["a,0,b", *[f"{i},{i % 2},{i * 3 % 7}" for i in range(20)]])
    with pytest.raises(ValueError, match=r"target=0 is ambiguous .* pass target=1"):
        load_data(clash, target=0)


def test_resume_after_the_data_or_model_changed_is_a_clear_error(tmp_path):
    # before: RuntimeError "size mismatch for head.weight" from load_state_dict
    path = tmp_path / "t.csv"
    _csv(path, ["a,b,c", *[f"{i},{i % 5},{i % 2}" for i in range(60)]])
    r = train(data=str(path), model="mlp", epochs=2, lr0=0.01, project=tmp_path / "runs", **QUIET)
    _csv(path, ["a,b,c", *[f"{i},{i % 5},{i % 3}" for i in range(60)]])  # a third class appears
    with pytest.raises(ValueError, match=r"the data changed since the run was saved \(num_outputs: 2 then, 3 now\)"):
        train(resume=r.run_dir, epochs=4, **QUIET)
    x, y = _xy()
    common = dict(data=(TensorDataset(x[:80], y[:80]), TensorDataset(x[80:], y[80:])), lr0=0.01, **QUIET)
    first = train(torch.nn.Linear(5, 2), epochs=2, project=tmp_path / "objs", **common)
    wider = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    with pytest.raises(ValueError, match="resume: the model or its parameter groups differ"):
        train(wider, resume=first.run_dir, epochs=3, **common)
