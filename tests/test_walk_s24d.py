"""Session 24's user walk (helper d) of find_trainer_lr / choose_trainer_lr launched in several processes: a bad
``progress=`` / ``log=`` is the same error on every rank. The integration drops ``progress``/``log`` on the ranks
other than 0 (rank 0 alone reports); before the walk it dropped a bad value too, so rank 1 passed the checks and
said only that "the arguments of rank 0 failed ... the same settings on every rank", blaming settings the user had
given alike (2 CPU ranks on gloo, as torchrun would start them)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from _helpers import transformers_or_skip

transformers = transformers_or_skip()

sys.path.insert(0, str(Path(__file__).parent))
from _helpers import leave_rank, spawn_ranks  # noqa: E402
from test_hf_ddp_s24 import _trainer, _weights  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*pin_memory.*", "ignore::FutureWarning")


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    from lrkit.integrations.transformers import choose_trainer_lr, find_trainer_lr

    record: dict[str, Any] = {}
    trainer = _trainer(out, 0.01, rank=rank, eval_data=True, max_steps=320)
    before, lr = _weights(trainer.model), trainer.args.learning_rate
    calls = {
        "find_progress": lambda: find_trainer_lr(trainer, num_steps=20, progress=True),
        "choose_log": lambda: choose_trainer_lr(trainer, log=True),
        "choose_progress": lambda: choose_trainer_lr(trainer, finder_kwargs={"progress": "yes"}),
    }
    for name, call in calls.items():
        try:
            call()
            record[name] = None
        except ValueError as e:
            record[name] = str(e)
    record["untouched"] = _weights(trainer.model) == before and trainer.args.learning_rate == lr
    # a callable progress/log: still rank 0's alone, and the process group still works after the errors
    lines: list[str] = []
    result = find_trainer_lr(trainer, num_steps=20, set_lr=False, progress=lambda *a: lines.append("p"))
    record["progress_calls"] = len(lines)
    record["suggestion"] = result.suggestion
    leave_rank(out, rank, record)


def test_a_bad_progress_or_log_is_the_same_clear_error_on_every_rank(tmp_path: Path) -> None:
    ranks = spawn_ranks(_worker, tmp_path)
    for got in ranks:
        assert got["find_progress"] is not None and got["find_progress"].startswith(
            "progress=True must be a function progress(step, total, lr, loss)"), got["find_progress"]
        assert got["choose_log"] is not None and got["choose_log"].startswith(
            "log=True must be a callable"), got["choose_log"]
        assert got["choose_progress"] is not None and got["choose_progress"].startswith(
            "progress='yes' must be a function"), got["choose_progress"]
        assert got["untouched"]
    assert ranks[0]["progress_calls"] > 0 and ranks[1]["progress_calls"] == 0
    assert ranks[0]["suggestion"] == ranks[1]["suggestion"]
