"""Session 20 (lead): fixes found by walking through lrkit.train / load_run with one's own data and model."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

import lrkit

_G = torch.Generator().manual_seed(0)
_X = torch.randn(120, 5, generator=_G)
_Y = torch.randint(0, 3, (120,), generator=_G)
_ONE_HOT = nn.functional.one_hot(_Y, 3).float()


def _train(capsys: pytest.CaptureFixture[str], tmp_path: Path, model: nn.Module, **kw: Any) -> tuple[Any, str]:
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = lrkit.train(model, epochs=1, lr0=0.01, warmup_epochs=0, project=str(tmp_path), plots=False, **kw)
    return r, capsys.readouterr().out


# --- 1. a DataLoader's batch size: the default batch=32 is not said to be "ignored" ------------------------------
def test_a_dataloader_without_batch_given_does_not_name_the_default(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    # Bug: "data: batch=16 comes from the DataLoader you passed (batch=32 ignored)" although no batch= was passed
    loader = DataLoader(TensorDataset(_X, _Y), batch_size=16)
    _, out = _train(capsys, tmp_path, nn.Linear(5, 3), data=(loader, TensorDataset(_X[:20], _Y[:20])))
    assert "data: batch=16 comes from the DataLoader you passed" in out
    assert "ignored" not in out and "batch=32" not in out


def test_a_batch_given_by_the_user_is_still_said_to_be_ignored(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    loader = DataLoader(TensorDataset(_X, _Y), batch_size=16)
    _, out = _train(capsys, tmp_path, nn.Linear(5, 3), data=(loader, TensorDataset(_X[:20], _Y[:20])), batch=8)
    assert "data: batch=16 comes from the DataLoader you passed (batch=8 ignored)" in out


# --- 2. one-hot float targets in a torch dataset -----------------------------------------------------------------
def test_one_hot_targets_of_a_tensor_dataset_train_as_classification(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    # Bug: F.one_hot(y).float() targets were read as a 3-value regression (MSE, rmse), with no word said; an NPZ
    # file's one-hot target is read as classes
    r, out = _train(capsys, tmp_path, nn.Linear(5, 3), data=TensorDataset(_X, _ONE_HOT))
    assert "TensorDataset (classification," in out
    assert "the targets are one-hot rows of 3 classes" in out and "task=regression" in out
    assert "accuracy" in out and 0.0 <= r.best_metric <= 1.0


def test_one_hot_targets_with_task_classification_are_scored_by_their_argmax(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Bug: task="classification" with one-hot float targets and the default loss ended in torch's "The size of
    # tensor a (40) must match the size of tensor b (3)" from the accuracy, after the first epoch's training
    class Own(Dataset):
        def __len__(self) -> int:
            return len(_X)

        def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
            return _X[i], _ONE_HOT[i]

    torch.manual_seed(0)
    r, out = _train(capsys, tmp_path, nn.Linear(5, 3), data=(Own(), TensorDataset(_X[:40], _ONE_HOT[:40])),
                    task="classification")
    assert "accuracy" in out
    with torch.no_grad():  # the accuracy is the share of validation rows whose argmax matches the one-hot row's
        right = (r.model.eval()(_X[:40]).argmax(1) == _Y[:40]).float().mean().item()
    assert r.history[-1]["val_accuracy"] == pytest.approx(right)


def test_one_hot_first_target_of_an_own_dataset_gets_a_note(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    # a Dataset of its own: only the first target is read, so the task stays regression, and the log says how to
    # train the one-hot rows as classes
    class Own(Dataset):
        def __len__(self) -> int:
            return len(_X)

        def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
            return _X[i], _ONE_HOT[i]

    _, out = _train(capsys, tmp_path, nn.Linear(5, 3), data=Own())
    assert "Own (regression," in out
    assert "the first target is a one-hot row of 3 values" in out and "task=classification" in out


def test_multi_hot_and_real_valued_targets_stay_regression(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    # guard: rows that are not all one-hot (a multi-hot row, a real value) keep the regression reading, no note
    multi = _ONE_HOT.clone()
    multi[5] = torch.tensor([1.0, 1.0, 0.0])
    for y in (multi, torch.randn(len(_X), 3, generator=_G)):
        _, out = _train(capsys, tmp_path, nn.Linear(5, 3), data=TensorDataset(_X, y))
        assert "TensorDataset (regression," in out and "one-hot" not in out


# --- 3. a text run whose model returns {"logits": ...} (a Hugging Face ModelOutput) -------------------------------
class _DictLM(nn.Module):
    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.emb, self.head = nn.Embedding(vocab, 8), nn.Linear(8, vocab)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.head(self.emb(x))}


def test_load_run_predicts_the_next_character_of_a_logits_dict_model(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    # Bug: predict("hello") raised KeyError: (0, -1) (the dict indexed as a tensor)
    text = tmp_path / "t.txt"
    text.write_text("abcabcabcabc " * 40)
    torch.manual_seed(0)
    r, _ = _train(capsys, tmp_path, _DictLM(4), data=str(text), seq_len=8)
    run = lrkit.load_run(r.run_dir, model=_DictLM(4))
    nxt = run.predict("abcab")
    assert nxt in run.vocab
    with torch.no_grad():  # the same as the logits' argmax at the last position
        logits = run.model(run.inputs("abcab"))["logits"]
    assert nxt == run.vocab[int(logits[0, -1].argmax())]


# --- 4. seq_len= given for data that is not a text file --------------------------------------------------------------
def test_seq_len_for_tabular_data_is_said_to_be_ignored(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Bug: seq_len=8 with data=(tensors) or a built-in was dropped without a word
    _, out = _train(capsys, tmp_path, nn.Linear(5, 3), data=TensorDataset(_X, _Y), seq_len=8)
    assert "seq_len=8 ignored" in out and "'TensorDataset' is not a text file" in out
    tokens = torch.randint(0, 7, (40, 11), generator=_G)  # a token dataset: its own windows of 10
    lm = nn.Sequential(nn.Embedding(7, 4), nn.Linear(4, 7))
    _, out = _train(capsys, tmp_path, lm, data=TensorDataset(tokens[:, :-1], tokens[:, 1:]), seq_len=8)
    assert "seq_len=8 ignored" in out and "(its samples' shape sets the length: 10)" in out


def test_seq_len_for_a_text_file_is_used_without_a_note(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = tmp_path / "t.txt"
    text.write_text("abcabcabcabc " * 40)
    r, out = _train(capsys, tmp_path, _DictLM(4), data=str(text), seq_len=8)
    assert "ignored" not in out and lrkit.load_run(r.run_dir, model=_DictLM(4)).seq_len == 8


# --- 5. other libraries' names for a train key ---------------------------------------------------------------------
@pytest.mark.parametrize(("key", "ours"), [("lr", "lr0"), ("learning_rate", "lr0"), ("max_lr", "lr0"),
                                           ("min_lr", "lrf"), ("batch_size", "batch"), ("wd", "weight_decay"),
                                           ("output_dir", "project"), ("gpus", "device"), ("fp16", "amp"),
                                           ("warmup_steps", "warmup_epochs"), ("early_stopping", "patience"),
                                           ("LR", "lr0")])
def test_a_peer_name_for_a_train_key_names_lrkits_key(key: str, ours: str) -> None:
    # Bug: lr=0.1 was answered "Did you mean 'lrf'?" (the closest spelling: the final LR factor, a different
    # meaning); learning_rate, wd, gpus, fp16 and early_stopping got no suggestion at all
    with pytest.raises(ValueError, match=rf"unknown train key '{key}': lrkit calls it {ours}= — ") as e:
        lrkit.train(data="digits", **{key: 1})
    assert "Valid: " in str(e.value)


def test_a_peer_name_in_the_cli_and_a_cfg_file_is_answered_alike(tmp_path: Path) -> None:
    from lrkit._config import TrainConfig

    with pytest.raises(ValueError, match="'lr': lrkit calls it lr0="):
        TrainConfig.from_tokens(["data=digits", "lr=0.1"])
    cfg = tmp_path / "c.yaml"
    cfg.write_text("batch_size: 16\n")
    with pytest.raises(ValueError, match="'batch_size': lrkit calls it batch="):
        lrkit.train(data="digits", cfg=str(cfg))


def test_a_cut_short_key_is_matched_by_its_start() -> None:
    # 'ep' was answered with no suggestion among the train keys (and with a one-letter choice elsewhere)
    from lrkit._utils import did_you_mean

    assert did_you_mean("ep", ["e", "epochs"]) == " Did you mean 'epochs'?"
    with pytest.raises(ValueError, match="Did you mean 'epochs'"):
        lrkit.train(data="digits", ep=3)
    assert did_you_mean("z", ["x", "y"]) == ""  # guard: nothing close, nothing said


# --- 6. a run on token windows without a vocabulary predicts next token ids -------------------------------------------
def test_a_token_dataset_run_predicts_the_next_token_ids(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Bug: predict returned the raw (N, T, V) logits, unlike every other task's labels/values
    tokens = torch.randint(0, 7, (40, 11), generator=_G)
    lm = nn.Sequential(nn.Embedding(7, 4), nn.Linear(4, 7))
    r, _ = _train(capsys, tmp_path, lm, data=TensorDataset(tokens[:, :-1], tokens[:, 1:]))
    run = lrkit.load_run(r.run_dir, model=nn.Sequential(nn.Embedding(7, 4), nn.Linear(4, 7)))
    ids = run.predict(tokens[:3, :-1])
    assert ids.shape == (3,) and ids.dtype == torch.long
    with torch.no_grad():
        assert ids.tolist() == run.model(tokens[:3, :-1])[:, -1].argmax(-1).tolist()


# --- 7. gradual unfreezing: param_groups(..., exclude=optimizer) -----------------------------------------------------
def _backbone_and_head() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential()
    net.add_module("backbone", nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8)))
    net.add_module("head", nn.Linear(8, 2))
    return net


def test_exclude_adds_only_the_unfrozen_backbone_with_the_whole_models_scales() -> None:
    net = _backbone_and_head()
    whole = {g["name"]: (g["lr_scale"], g["weight_decay"], len(g["params"]))
             for g in lrkit.param_groups(net, 1e-3, weight_decay=0.05, backbone_lr_scale=0.1)}
    net.backbone.requires_grad_(False)
    opt = torch.optim.AdamW(lrkit.param_groups(net, 1e-3, weight_decay=0.05, backbone_lr_scale=0.1))
    assert [g["name"] for g in opt.param_groups] == ["head/decay", "head/bias"]
    net.backbone.requires_grad_(True)
    for g in lrkit.param_groups(net, 1e-3, weight_decay=0.05, backbone_lr_scale=0.1, exclude=opt):
        opt.add_param_group(g)
    got = {g["name"]: (g["lr_scale"], g["weight_decay"], len(g["params"])) for g in opt.param_groups}
    assert got == whole  # the same groups as one call over the unfrozen model would give
    ids = [id(p) for g in opt.param_groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(net.parameters()))


def test_groups_added_mid_run_follow_an_lrkit_schedule_at_their_scale() -> None:
    net = _backbone_and_head()
    net.backbone.requires_grad_(False)
    opt = torch.optim.SGD(lrkit.param_groups(net, 0.1, backbone_lr_scale=0.1), lr=0.1)
    sched = lrkit.schedules.from_spec("cosine lr0=0.1 lrf=0.01", total_steps=20).to_torch(opt)
    for _ in range(5):
        opt.step()
        sched.step()
    net.backbone.requires_grad_(True)
    for g in lrkit.param_groups(net, 0.1, backbone_lr_scale=0.1, exclude=opt):
        opt.add_param_group(g)
    opt.step()
    sched.step()
    head_lr = opt.param_groups[0]["lr"]
    backbone = [g["lr"] for g in opt.param_groups if g["name"].startswith("backbone")]
    assert backbone and all(lr == pytest.approx(head_lr * 0.1) for lr in backbone)


def test_exclude_with_nothing_left_or_a_wrong_type_is_a_clear_error() -> None:
    net = _backbone_and_head()
    opt = torch.optim.SGD(lrkit.param_groups(net, 0.1), lr=0.1)
    with pytest.raises(ValueError, match="exclude= holds every trainable parameter"):
        lrkit.param_groups(net, 0.1, exclude=opt)
    with pytest.raises(ValueError, match="exclude= holds a dict, not a tensor"):
        lrkit.param_groups(net, 0.1, exclude=opt.param_groups)
    with pytest.raises(ValueError, match="exclude=int must be an optimizer"):
        lrkit.param_groups(net, 0.1, exclude=3)  # type: ignore[arg-type]
    assert len(lrkit.param_groups(net, 0.1, exclude=net.head.parameters())) == 3  # the backbone: decay, norm, bias


def _backbone_and_head_5() -> nn.Module:
    net = _backbone_and_head()
    net.backbone[0] = nn.Linear(5, 8)  # for _X's 5 features and 3 classes
    net.head = nn.Linear(8, 3)
    return net


def test_train_with_the_whole_backbone_frozen_says_backbone_lr_scale_changes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # param_groups no longer refuses backbone_lr_scale over a backbone frozen for now (gradual unfreezing);
    # lrkit.train cannot unfreeze mid-run, so the log says the scale does nothing
    _, out = _train(capsys, tmp_path, _backbone_and_head_5(), data=TensorDataset(_X, _Y), freeze=["backbone"],
                    backbone_lr_scale=0.1)
    assert "note — backbone_lr_scale=0.1 changes nothing: every backbone parameter is frozen" in out
    _, out = _train(capsys, tmp_path, _backbone_and_head_5(), data=TensorDataset(_X, _Y), backbone_lr_scale=0.1)
    assert "changes nothing" not in out  # guard: a trainable backbone


# --- 8. other libraries' names in a schedule spec ------------------------------------------------------------------
@pytest.mark.parametrize(("spec", "ours"), [("cosine lr=0.1", "lr0"), ("onecycle learning_rate=0.1", "lr0"),
                                            ("cosine min_lr=0.001", "eta_min"), ("linear final_lr=0.1", "lrf")])
def test_a_peer_name_in_a_schedule_spec_names_lrkits_key(spec: str, ours: str) -> None:
    # Bug: 'cosine lr=0.1' was answered "Did you mean 'lrf'?" (the final LR factor) and min_lr with warmup_bias_lr
    with pytest.raises(ValueError, match=rf"parameter '\w+': lrkit calls it {ours}= \("):
        lrkit.schedules.from_spec(spec, total_steps=100)


def test_a_misspelt_schedule_key_keeps_its_did_you_mean() -> None:
    with pytest.raises(ValueError, match="Did you mean 'lrf'"):
        lrkit.schedules.from_spec("cosine lfr=0.1", total_steps=100)


def test_warmup_ratio_and_argparse_flags_name_lrkits_key() -> None:
    from lrkit._config import TrainConfig

    with pytest.raises(ValueError, match="warmup_ratio x epochs"):
        lrkit.train(data="digits", warmup_ratio=0.1)
    with pytest.raises(ValueError, match="got '--lr': lrkit calls it lr0="):
        TrainConfig.from_tokens(["data=digits", "--lr", "0.1"])


# --- 9. the schedule adapter's group warnings point at the user's line -----------------------------------------------
def test_the_lost_ratio_warning_points_at_the_users_call() -> None:
    # the fixed stacklevel pointed into torch's lr_scheduler.py for a group added after the scheduler was built
    net = nn.Linear(2, 2)
    opt = torch.optim.SGD([{"params": [net.weight], "lr": 1e-3}], lr=1e-3)
    sched = lrkit.schedules.from_spec("cosine lr0=0.001", total_steps=10).to_torch(opt)
    opt.add_param_group({"params": [net.bias], "lr": 1e-4})
    with pytest.warns(UserWarning, match="different LRs") as record:
        opt.step()
        sched.step()
    assert {Path(w.filename).name for w in record if "different LRs" in str(w.message)} == {Path(__file__).name}
