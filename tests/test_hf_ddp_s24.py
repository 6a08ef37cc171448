"""find_trainer_lr / choose_trainer_lr on a Trainer launched in several processes (session 24): the tests run under
DistributedDataParallel as train() wraps the model, every rank gets the same LR, and train() afterwards is the run
it would have been with that LR set by hand (2 CPU ranks on gloo, as torchrun would start them)."""

from __future__ import annotations

import gc
import json
import os
import sys
import weakref
from pathlib import Path
from typing import Any

import pytest
import torch

from _helpers import transformers_or_skip

transformers = transformers_or_skip()

sys.path.insert(0, str(Path(__file__).parent))
from _helpers import free_port, leave_rank, spawn_ranks  # noqa: E402
from test_hf_monitor_s20h import SummedReg, _data  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*pin_memory.*", "ignore::FutureWarning")


def _trainer(out: str, lr: float, *, rank: int, perturb: bool = False, eval_data: bool = False,
             **kw: Any) -> Any:
    from transformers import Trainer, TrainingArguments

    settings: dict[str, Any] = dict(max_steps=24, per_device_train_batch_size=8, learning_rate=lr,
                                    lr_scheduler_type="cosine", warmup_steps=2)
    settings.update(kw)
    args = TrainingArguments(output_dir=str(Path(out) / "run"), report_to=[], use_cpu=True, disable_tqdm=True,
                             save_strategy="no", logging_strategy="no", seed=0, ddp_backend="gloo", **settings)
    model = SummedReg()
    if perturb:  # each rank's own weights: the test must hand them back as they were, rank by rank
        with torch.no_grad():
            model.net[0].bias.add_(0.01 * (rank + 1))
    return Trainer(model=model, args=args, train_dataset=_data(256),
                   eval_dataset=_data(64, seed=1) if eval_data else None)


def _weights(model: torch.nn.Module) -> list[list[float]]:
    return [p.detach().flatten().tolist() for p in model.parameters()]


def _worker(rank: int, world: int, port: int, out: str, which: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    import lrkit.integrations.transformers as hf

    wrappers: list[Any] = []
    made = hf._data_parallel

    def spy(trainer: Any, model: torch.nn.Module) -> torch.nn.Module:
        wrapped = made(trainer, model)
        wrappers.append((type(wrapped).__name__, weakref.ref(wrapped)))
        return wrapped

    hf._data_parallel = spy
    record: dict[str, Any] = {}
    perturb = which == "find_perturbed"
    choose: dict[str, Any] = dict(eval_data=True, max_steps=320) if which == "choose" else {}
    if perturb:
        choose["gradient_accumulation_steps"] = 2
    trainer = _trainer(out, 0.01, rank=rank, perturb=perturb, **choose)
    before = _weights(trainer.model)
    rng = torch.get_rng_state()
    if which == "choose":
        auto = hf.choose_trainer_lr(trainer)
        lr = auto.lr
        record["trials"] = [t.lr for t in auto.trials]
    else:
        result = hf.find_trainer_lr(trainer, num_steps=30)
        lr = result.suggestion
        record["curve"] = [float(x) for x in result.losses]
    gc.collect()
    record.update(lr=lr, set=trainer.args.learning_rate, world=trainer.args.world_size,
                  restored=_weights(trainer.model) == before, rng=bool(torch.equal(torch.get_rng_state(), rng)),
                  optimizer_dropped=trainer.optimizer is None,
                  wrappers=[(name, ref() is None) for name, ref in wrappers])
    if not perturb:
        trainer.train()
        record["after"] = _weights(trainer.model)
        by_hand = _trainer(out, lr, rank=rank, **choose)
        by_hand.train()
        record["by_hand"] = _weights(by_hand.model)
    leave_rank(out, rank, record)


def _run(tmp: Path, which: str) -> list[dict[str, Any]]:
    return spawn_ranks(_worker, tmp, which)


def test_find_trainer_lr_under_two_ddp_processes_sets_one_lr_and_train_is_the_run_at_it(tmp_path: Path) -> None:
    ranks = _run(tmp_path, "find")
    for got in ranks:
        assert got["world"] == 2
        assert got["wrappers"] == [["DistributedDataParallel", True]]  # tested under DDP, wrapper gone afterwards
        assert got["set"] == got["lr"] and got["restored"] and got["rng"] and got["optimizer_dropped"]
        assert got["after"] == got["by_hand"]  # bit for bit: nothing of the test is left in the run
    assert ranks[0]["lr"] == ranks[1]["lr"]
    assert ranks[0]["curve"] == ranks[1]["curve"]  # the ranks' mean loss: one curve
    assert ranks[0]["after"] == ranks[1]["after"]  # the gradients were averaged over the ranks in train() too


def test_each_rank_gets_its_own_weights_back(tmp_path: Path) -> None:
    # no broadcast of rank 0's weights at the wrapper's construction: rank 1's differ and come back as they were
    # (with gradient accumulation: every micro-batch's backward averaged over the ranks)
    ranks = _run(tmp_path, "find_perturbed")
    assert all(got["restored"] and got["wrappers"] == [["DistributedDataParallel", True]] for got in ranks)
    assert ranks[0]["lr"] == ranks[1]["lr"]


def test_choose_trainer_lr_under_two_ddp_processes_agrees_on_every_rank(tmp_path: Path) -> None:
    ranks = _run(tmp_path, "choose")
    for got in ranks:
        assert got["world"] == 2 and got["wrappers"] == [["DistributedDataParallel", True]]
        assert got["set"] == got["lr"] and got["restored"] and got["rng"] and got["optimizer_dropped"]
        assert got["trials"]  # the confirmation trials ran (scored on the eval loss, averaged over the ranks)
        assert got["after"] == got["by_hand"]
    assert ranks[0]["lr"] == ranks[1]["lr"] and ranks[0]["trials"] == ranks[1]["trials"]


_SCRIPT = '''
import json, os, sys, warnings
from pathlib import Path
import torch
sys.path.insert(0, {tests!r})
from test_hf_ddp_s24 import _trainer, _weights
from lrkit.integrations.transformers import choose_trainer_lr, find_trainer_lr

out = Path({out!r})
rank = int(os.environ["RANK"])
trainer = _trainer(str(out), 0.01, rank=rank, eval_data=True, max_steps=320)
result = find_trainer_lr(trainer, num_steps=30, start_lr=1.0, end_lr=1e4)  # blows up at once: find_lr warns
lines = []
auto = choose_trainer_lr(trainer, log=lines.append)
trainer.train()
(out / f"rank{{rank}}.json").write_text(json.dumps({{"lr": result.suggestion, "auto": auto.lr, "log": lines,
                                                    "world": trainer.args.world_size}}))
torch.distributed.barrier()
os._exit(0)
'''


def test_a_script_launched_with_torchrun_finds_and_chooses_on_every_rank(tmp_path: Path) -> None:
    # as a user runs it: `torchrun --nproc_per_node 2 train.py`, the Trainer making the process group itself
    import subprocess

    script = tmp_path / "train.py"
    script.write_text(_SCRIPT.format(tests=str(Path(__file__).parent), out=str(tmp_path)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "default"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", str(free_port()), str(script)],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    assert ranks[0]["lr"] == ranks[1]["lr"] and ranks[0]["auto"] == ranks[1]["auto"]
    # rank 0 alone reports (the Trainer's convention, args.should_log): the range test's warning once, not per rank
    assert done.stderr.count("too flat to judge") == 1, done.stderr[-3000:]
    assert ranks[0]["log"] and not ranks[1]["log"]
