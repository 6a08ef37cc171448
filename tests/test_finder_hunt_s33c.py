"""Session 33c's bug hunt of ``lrkit.find_lr`` / ``FinderResult`` (and the ``lrkit find`` CLI)."""

from __future__ import annotations

import json
import os
import stat
import threading
import warnings
from pathlib import Path

import torch

import lrkit
from lrkit.schedules import from_spec


def _task(seed: int = 0) -> tuple[torch.nn.Module, torch.optim.Optimizer, torch.utils.data.DataLoader]:
    torch.manual_seed(seed)
    x = torch.randn(64, 4)
    y = (x[:, 0] > 0).long()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    model = torch.nn.Linear(4, 2)
    return model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), loader


def _train_epoch(model: torch.nn.Module, opt: torch.optim.Optimizer, loader, sched) -> None:
    for x, y in loader:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        sched.step()


def test_find_lr_steps_are_not_counted_as_training_steps_by_an_attached_lrkit_scheduler() -> None:
    # An lrkit scheduler counts optimizer steps per scheduler.step() to catch a loop that steps it once per epoch.
    # The range test's own optimizer steps are not the loop's: a scheduler stepped after every optimizer step must
    # stay quiet after find_lr (it said "scheduler.step() was called once per 31 optimizer steps").
    model, opt, loader = _task()
    sched = from_spec("cosine lr0=0.1 warmup_steps=3", epochs=5, steps_per_epoch=8).to_torch(opt)
    _train_epoch(model, opt, loader, sched)  # the count has started, as mid-run
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the range test's own notes about its short curve
        lrkit.find_lr(model, opt, loader, num_steps=30)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _train_epoch(model, opt, loader, sched)
    assert [str(w.message) for w in caught] == []


def test_find_lr_before_the_first_training_step_leaves_the_scheduler_quiet_and_still_counting() -> None:
    # find_lr right after building the scheduler (the usual place), then a loop that does step per epoch: the
    # check still fires for the loop's own mistake, counting the loop's steps only (8, not 8 + the test's 20)
    model, opt, loader = _task(1)
    sched = from_spec("cosine lr0=0.1", epochs=5, steps_per_epoch=8).to_torch(opt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lrkit.find_lr(model, opt, loader, num_steps=20)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for x, y in loader:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        sched.step()  # once per epoch: the loop's mistake, 8 optimizer steps per call
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "called once per 8 optimizer steps" in messages[0], messages


def test_to_json_and_plot_through_a_symlink_write_the_linked_files_and_keep_the_links(tmp_path: Path) -> None:
    # the record and the picture go where a link points (as open() would); the links were replaced by new files
    result = lrkit.FinderResult(lrs=[1e-4, 1e-3, 1e-2, 1e-1, 1.0], losses=[2.0, 1.9, 1.2, 0.9, 5.0])
    store = tmp_path / "store"
    store.mkdir()
    (store / "rec.json").write_text("{}")
    (store / "rec.png").write_bytes(b"old")
    for name in ("rec.json", "rec.png"):
        (tmp_path / name).symlink_to(store / name)
    assert result.to_json(tmp_path / "rec.json") == tmp_path / "rec.json"
    result.plot(tmp_path / "rec.png")
    for name in ("rec.json", "rec.png"):
        assert (tmp_path / name).is_symlink()
    assert lrkit.FinderResult.from_json(store / "rec.json").losses == result.losses
    assert (store / "rec.png").read_bytes()[1:4] == b"PNG"
    assert sorted(p.name for p in store.iterdir()) == ["rec.json", "rec.png"]


def test_to_json_into_a_fifo_streams_the_record_and_keeps_the_fifo(tmp_path: Path) -> None:
    result = lrkit.FinderResult(lrs=[1e-4, 1e-3, 1e-2, 1e-1, 1.0], losses=[2.0, 1.9, 1.2, 0.9, 5.0])
    fifo = tmp_path / "rec.json"
    os.mkfifo(fifo)
    got: list[str] = []

    def read() -> None:
        with open(fifo, encoding="utf-8") as f:
            got.append(f.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    result.to_json(fifo)
    reader.join(timeout=20)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert got and json.loads(got[0])["losses"] == result.losses
