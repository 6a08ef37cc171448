"""Hugging Face models through the user paths of the CLI and the monitor: ``lrkit find my_task.py`` on a task file that
builds a tiny BERT/GPT-2 from a config and yields dict batches (``step_fn``, ``--accumulation-steps``, ``--amp bf16``);
``lrkit.Monitor`` in a hand-written loop (dropout on, gradient accumulation, bf16 autocast, a forced NaN -> rollback
bit for bit, GPT-2's tied ``lm_head`` kept tied, ``state_dict(snapshot=True)`` through ``torch.save``/``torch.load
(weights_only=True)``); ``lrkit train`` with ``head=``, ``amp=bf16``, ``snapshot_device=cpu`` from a ``cfg=`` YAML, cut
by Ctrl-C and resumed as the CLI says.

Nothing is downloaded: every model is ``XxxConfig(...)`` + ``XxxForYyy(config)`` (2 layers, hidden 32), and
``HF_HUB_OFFLINE=1``. Tests marked "Bug:" failed before their fix (src/lrkit/cli/train.py, src/lrkit/cli/find.py,
src/lrkit/train/trainer.py).
"""

from __future__ import annotations

import copy
import io
import json
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

import lrkit
from lrkit.cli.app import build_app

runner = CliRunner()

_TINY_GPT2 = ("GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=64, n_positions=16, bos_token_id=0, "
              "eos_token_id=0)")
_TINY_BERT = ("BertConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64, "
              "vocab_size=64, max_position_embeddings=16, num_labels=3)")

_BERT_TASK = f"""
import torch
import transformers


def model():
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(transformers.{_TINY_BERT})


def optimizer(params):
    return torch.optim.AdamW(params, lr=1e-3)


def train_loader():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 64, (64, 8), generator=g)
    labels = ids[:, 0] % 3
    return [{{"input_ids": ids[i:i + 8], "attention_mask": torch.ones(8, 8, dtype=torch.long),
             "labels": labels[i:i + 8]}} for i in range(0, 64, 8)]
"""

_STEP_FN = """

def step_fn(model, batch):
    return model(**batch).loss
"""

_LOSS_FN = """

def loss_fn():
    return torch.nn.functional.cross_entropy
"""


def _find(tmp_path: Path, source: str, *args: str) -> Any:
    task = tmp_path / "my_task.py"
    task.write_text(source)
    return runner.invoke(build_app(), ["find", str(task), "--num-steps", "30", "--out", str(tmp_path / "find"),
                                       *args])


def test_hf_find_cli_with_step_fn_accumulation_and_bf16(hf: ModuleType, tmp_path: Path) -> None:
    """``lrkit find my_task.py`` on a BERT task file with dict batches and ``step_fn``: the table's rows agree with
    the record it writes, with ``--accumulation-steps 2 --amp bf16``."""
    res = _find(tmp_path, _BERT_TASK + _STEP_FN, "--accumulation-steps", "2", "--amp", "bf16")
    assert res.exit_code == 0, res.output
    record = json.loads((tmp_path / "find" / "lr_find.json").read_text())
    result = lrkit.FinderResult.from_json(tmp_path / "find" / "lr_find.json")
    assert len(record["lrs"]) == result.num_steps_run == 30
    assert f"{result.suggestion:.3g}" in res.output and "suggestion (robust)" in res.output
    low, high = result.range
    assert f"{low:.3g} – {high:.3g}" in res.output
    assert result.passes == pytest.approx(30 * 2 / 8)  # two micro-batches a step over 8 batches
    assert "Traceback" not in res.output


@pytest.mark.filterwarnings("ignore:the loss barely moved")  # a tiny random GPT-2: a flat-ish curve
def test_hf_gpt2_task_file_runs_under_bf16(hf: ModuleType, tmp_path: Path) -> None:
    """The range test on GPT-2 (tied ``lm_head``/``wte``, dropout on) runs from a task file under ``amp="bf16"``."""
    from lrkit.cli.find import run_find

    source = f"""
import torch
import transformers


def model():
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(transformers.{_TINY_GPT2})


def optimizer(params):
    return torch.optim.AdamW(params, lr=1e-3)


def train_loader():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 64, (32, 8), generator=g)
    return [{{"input_ids": ids[i:i + 4], "labels": ids[i:i + 4]}} for i in range(0, 32, 4)]
""" + _STEP_FN
    task = tmp_path / "gpt_task.py"
    task.write_text(source)
    result, out_dir = run_find(str(task), num_steps=20, out=tmp_path / "find", amp="bf16")
    assert (out_dir / "lr_find.json").exists() and result.num_steps_run >= 10


def test_hf_find_cli_without_loss_fn_or_step_fn_uses_the_models_own_loss(hf: ModuleType, tmp_path: Path) -> None:
    """A task file defining neither ``loss_fn`` nor ``step_fn`` runs as the Python API does (session 16; it was
    refused before): its Hugging Face batches go to the model whole and its own loss is used."""
    res = _find(tmp_path, _BERT_TASK)
    assert res.exit_code == 0, res.output
    record = json.loads((tmp_path / "find" / "lr_find.json").read_text())
    assert record["suggestion"] > 0


def test_hf_find_cli_loss_fn_on_dict_batches_says_to_define_step_fn_in_the_task_file(hf: ModuleType,
                                                                                    tmp_path: Path) -> None:
    """Bug: a task file with ``loss_fn()`` whose loader yields Hugging Face dicts (``input_ids``, ``labels``) failed
    with "pass step_fn=lambda model, batch: loss instead" — advice for the Python API: on the command line nothing is
    passed, the task file defines ``step_fn``, and a Hugging Face model returns its own loss."""
    res = _find(tmp_path, _BERT_TASK + _LOSS_FN)
    assert res.exit_code == 2
    out = " ".join(res.output.split())
    assert "cannot split a dict batch with keys ['attention_mask', 'input_ids', 'labels']" in out
    assert "lambda" not in out
    assert "define step_fn(model, batch) in the task file" in out
    assert "return model(**batch).loss" in out


# ------------------------------------------------------------------------------------------------ Monitor


def _gpt2(hf: ModuleType) -> torch.nn.Module:
    torch.manual_seed(0)
    return hf.GPT2LMHeadModel(eval(f"hf.{_TINY_GPT2}")).train()  # dropout on (GPT-2's default 0.1)


_IDS = torch.randint(1, 64, (64, 8), generator=torch.Generator().manual_seed(0))
_BATCHES = [{"input_ids": _IDS[i:i + 4], "labels": _IDS[i:i + 4]} for i in range(0, 64, 4)]


def _loop(model: torch.nn.Module, opt: torch.optim.Optimizer, sched: Any, monitor: lrkit.Monitor,
          steps: range, *, nan_at: int, save_at: int | None = None,
          after: Any = None) -> bytes | None:
    """Two micro-batches per optimizer step under bf16 autocast; step ``nan_at``'s loss is NaN. Returns a checkpoint
    (model, optimizer, scheduler, monitor with snapshots, RNG) saved after step ``save_at``."""
    saved = None
    for step in steps:
        opt.zero_grad()
        for micro in range(2):
            batch = _BATCHES[(2 * step + micro) % len(_BATCHES)]
            with torch.autocast("cpu", torch.bfloat16):
                loss = model(**batch).loss / 2
            if step == nan_at and micro == 1:
                loss = loss * float("nan")
            loss.backward()
        monitor.after_backward(loss)
        opt.step()
        sched.step()
        monitor.after_step()
        if after is not None:
            after(step)
        if step == save_at:
            buf = io.BytesIO()
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                        "monitor": monitor.state_dict(snapshot=True), "rng": torch.get_rng_state()}, buf)
            saved = buf.getvalue()
    return saved


def _build(hf: ModuleType) -> tuple[torch.nn.Module, torch.optim.Optimizer, Any, lrkit.Monitor]:
    model = _gpt2(hf)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + 0.1 * s))
    return model, opt, sched, lrkit.Monitor(model, opt, scheduler=sched, snapshot_every=3)


def test_hf_monitor_nan_rollback_is_bit_for_bit_and_keeps_gpt2_tied(hf: ModuleType) -> None:
    """A NaN loss in an accumulated, bf16-autocast step of GPT-2 with dropout on rolls back to an earlier step's
    model and optimizer state exactly; ``lm_head.weight`` is still ``transformer.wte.weight`` afterwards."""
    model, opt, sched, monitor = _build(hf)
    ends: dict[int, tuple[dict[str, torch.Tensor], dict[str, Any]]] = {}

    def keep(step: int) -> None:
        ends[step] = (copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict()["state"]))

    _loop(model, opt, sched, monitor, range(10), nan_at=9, after=keep)
    assert [(e.step, e.check, e.action) for e in monitor.events] == [(9, "non_finite", "rollback")]
    now = model.state_dict()
    matches = [s for s in range(9) if all(torch.equal(ends[s][0][k], v) for k, v in now.items())]
    assert len(matches) == 1  # exactly one earlier step's weights, bit for bit
    state = opt.state_dict()["state"]
    assert all(torch.equal(a, b) for i in state for a, b in zip(state[i].values(), ends[matches[0]][1][i].values()))
    assert model.lm_head.weight is model.transformer.wte.weight
    assert torch.isfinite(model.lm_head.weight).all()


def test_hf_monitor_snapshot_state_round_trip_resumes_the_same_rollback(hf: ModuleType) -> None:
    """``monitor.state_dict(snapshot=True)`` saved with ``torch.save`` and loaded with ``weights_only=True`` into a
    fresh GPT-2: the resumed loop hits the same NaN, rolls back to the same snapshot and ends bit for bit as the
    uninterrupted one, its head still tied."""
    model, opt, sched, monitor = _build(hf)
    saved = _loop(model, opt, sched, monitor, range(14), nan_at=9, save_at=6)
    assert saved is not None and monitor.summary()["rollbacks"] == 1
    model2, opt2, sched2, monitor2 = _build(hf)
    ckpt = torch.load(io.BytesIO(saved), weights_only=True)
    model2.load_state_dict(ckpt["model"])
    opt2.load_state_dict(ckpt["opt"])
    sched2.load_state_dict(ckpt["sched"])
    monitor2.load_state_dict(ckpt["monitor"])
    torch.set_rng_state(ckpt["rng"])
    _loop(model2, opt2, sched2, monitor2, range(7, 14), nan_at=9)
    assert [e.to_dict() for e in monitor2.events] == [e.to_dict() for e in monitor.events]
    a, b = model.state_dict(), model2.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert model2.lm_head.weight is model2.transformer.wte.weight
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]


# ------------------------------------------------------------------------------------------------ lrkit train


_FACTORY = f"""
import os

import torch
import transformers


def gpt2(vocab_size, seq_len):
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(transformers.{_TINY_GPT2.replace("vocab_size=64", "vocab_size=vocab_size")})
    kill = int(os.environ.get("LRKIT_S13F_KILL_AT", "0"))
    if kill:  # Ctrl-C at the kill-th training forward
        calls = [0]

        def hook(module, args):
            if module.training:
                calls[0] += 1
                if calls[0] == kill:
                    raise KeyboardInterrupt

        model.register_forward_pre_hook(hook)
    return model
"""


def _train_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder with a text file, a GPT-2 factory and a cfg YAML using the new keys; the project is elsewhere,
    so ``resume=true`` from this folder does not find its runs."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hfmodels.py").write_text(_FACTORY)
    words = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran"]
    g = torch.Generator().manual_seed(0)
    (tmp_path / "book.txt").write_text(" ".join(words[int(i)] for i in torch.randint(0, 8, (1500,), generator=g)))
    (tmp_path / "runs" / "train").mkdir(parents=True)  # an older run in the default project: not this one
    (tmp_path / "ft.yaml").write_text(
        "data: book.txt\nmodel: hfmodels.py:gpt2\nseq_len: 16\nepochs: 4\nbatch: 16\nhead: lm_head\n"
        "backbone_lr_scale: 0.1\namp: bf16\nsnapshot_device: cpu\nlr0: 0.003\noptimizer: AdamW\nplots: false\n"
        "project: experiments\n"
    )
    return tmp_path


def test_hf_train_cli_cfg_with_head_amp_and_snapshot_device(hf: ModuleType, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """``lrkit train cfg=ft.yaml`` with ``head=``, ``amp=bf16`` and ``snapshot_device=cpu``: the run trains, its
    args.yaml keeps the keys, and the head's group trains at lr0 while the backbone's is scaled by 0.1."""
    import yaml

    _train_project(tmp_path, monkeypatch)
    res = runner.invoke(build_app(), ["train", "cfg=ft.yaml", "name=full", "epochs=2"])
    assert res.exit_code == 0, res.output
    run = tmp_path / "experiments" / "full"
    args = yaml.safe_load((run / "args.yaml").read_text())
    assert (args["head"], args["amp"], args["snapshot_device"], args["epochs"]) == (["lm_head"], "bf16", "cpu", 2)
    ckpt = torch.load(run / "last.pt", weights_only=True)
    lrs = sorted({g["initial_lr"] for g in ckpt["optimizer"]["param_groups"]})
    assert lrs[-1] == pytest.approx(0.003) and lrs[0] == pytest.approx(0.0003)


def test_hf_train_cli_interrupt_names_the_runs_last_pt_and_resume_is_bit_for_bit(
        hf: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bug: Ctrl-C in ``lrkit train cfg=ft.yaml name=cut`` (project ``experiments``) said "resume with: lrkit train
    resume=true (or resume=<run>/last.pt)" — but ``resume=true`` searches the default project ``runs/``, where it
    found another run ("already finished") or nothing. The line now names the run's own last.pt, and resuming with
    it ends bit for bit as the uninterrupted run (amp=bf16, head=, snapshot_device=cpu, the monitor on)."""
    _train_project(tmp_path, monkeypatch)
    full = runner.invoke(build_app(), ["train", "cfg=ft.yaml", "name=full"])
    assert full.exit_code == 0, full.output
    monkeypatch.setenv("LRKIT_S13F_KILL_AT", "55")  # in epoch 3 (5 steps x 4 micro-batches an epoch)
    cut = runner.invoke(build_app(), ["train", "cfg=ft.yaml", "name=cut"])
    monkeypatch.delenv("LRKIT_S13F_KILL_AT")
    assert cut.exit_code == 130, cut.output
    last = Path("experiments") / "cut" / "last.pt"
    assert f"resume with: lrkit train resume={last}" in " ".join(cut.output.split())
    assert "resume=true" not in cut.output
    resumed = runner.invoke(build_app(), ["train", f"resume={last}"])
    assert resumed.exit_code == 0, resumed.output
    a = torch.load(tmp_path / "experiments" / "full" / "last.pt", weights_only=True)
    b = torch.load(last, weights_only=True)
    assert a["epoch"] == b["epoch"] == 4
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert a["history"][-1]["val_loss"] == b["history"][-1]["val_loss"]


def test_hf_train_cli_interrupting_a_resumed_run_names_its_last_pt(hf: ModuleType, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Bug (as above, for a resumed run): Ctrl-C again after ``resume=<run>/last.pt`` said ``resume=true``."""
    _train_project(tmp_path, monkeypatch)
    monkeypatch.setenv("LRKIT_S13F_KILL_AT", "25")  # in epoch 2
    assert runner.invoke(build_app(), ["train", "cfg=ft.yaml", "name=cut"]).exit_code == 130
    monkeypatch.setenv("LRKIT_S13F_KILL_AT", "25")  # in epoch 3 of the resumed run (epoch 2 restarts)
    last = Path("experiments") / "cut" / "last.pt"
    again = runner.invoke(build_app(), ["train", f"resume={last}"])
    assert again.exit_code == 130, again.output
    assert f"resume with: lrkit train resume={last}" in " ".join(again.output.split())
    assert os.path.exists(last)


def test_train_amp_takes_the_on_off_of_lrkit_find(tmp_path: Path) -> None:
    """Bug: ``lrkit find --amp on|off`` and then ``lrkit train amp=on`` (the same switch, the same words) failed with
    "amp='on' must be true, false, bf16 or fp16", though ``amp: on`` in a ``cfg=`` YAML (YAML reads it as true)
    worked. ``on``/``off`` are true/false there too."""
    from lrkit._config import TrainConfig, tokens_to_kwargs

    assert TrainConfig.from_kwargs(**tokens_to_kwargs(["data=iris", "amp=on"])).amp is True
    assert TrainConfig.from_kwargs(**tokens_to_kwargs(["data=iris", "amp=OFF"])).amp is False
    res = runner.invoke(build_app(), ["train", "data=iris", "model=linear", "epochs=1", "amp=off", "plots=false",
                                      f"project={tmp_path}"])
    assert res.exit_code == 0, res.output
    with pytest.raises(ValueError, match=r"amp='onn' must be true, false, bf16 or fp16"):
        TrainConfig.from_kwargs(**tokens_to_kwargs(["data=iris", "amp=onn"]))
