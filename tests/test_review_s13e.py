"""Review s13e: cases the session-13 changes mishandle (each test failed before its fix)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import lrkit
from lrkit.monitor import Monitor
from lrkit.train.data import _batch_indexed


def _classifier() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))


def test_a_negative_class_target_in_the_train_split_is_refused_before_training(tmp_path: Path) -> None:
    # the check reads only the first validation batch for negatives; on CUDA a -1 target met later in training is
    # a device-side assert that leaves the process unable to use the GPU (what the check exists to prevent)
    g = torch.Generator().manual_seed(0)
    x_tr, x_va = torch.randn(64, 4, generator=g), torch.randn(32, 4, generator=g)
    y_tr, y_va = torch.randint(0, 3, (64,), generator=g), torch.randint(0, 3, (32,), generator=g)
    y_tr[40] = -1
    # (on the CPU the loss fails mid-run with "Target -1 is out of bounds"; the check's own error comes first)
    with pytest.raises(ValueError, match="the targets hold -1, but class targets must be 0"):
        lrkit.train(data=(TensorDataset(x_tr, y_tr), TensorDataset(x_va, y_va)), model=_classifier(), epochs=1,
                    lr0=0.01, optimizer="SGD", project=str(tmp_path), verbose=False, plots=False, monitor=False)


def test_batch_indexed_loader_keeps_the_default_collations_layout() -> None:
    # _IndexedTensors promises the same values "in the same order and layout as the default collation"; advanced
    # indexing keeps a channels-last tensor's strides, torch.stack of its samples does not
    x = torch.randn(8, 3, 4, 4).to(memory_format=torch.channels_last)
    ds = TensorDataset(x, torch.arange(8))
    fast, collate = _batch_indexed(ds)
    a = next(iter(DataLoader(fast, batch_size=4, collate_fn=collate)))
    b = next(iter(DataLoader(ds, batch_size=4)))
    assert torch.equal(a[0], b[0])
    assert a[0].stride() == b[0].stride(), (a[0].stride(), b[0].stride())


def test_snapshot_device_cpu_0_refreshes_the_same_host_buffers_as_cpu() -> None:
    # torch.device("cpu:0") != torch.device("cpu") (what a CPU tensor reports), so with snapshot_device="cpu:0"
    # every refresh allocates new copies instead of writing into the held ones ("a refresh writes into the same
    # host buffers", Monitor's docstring), and every copy is noted as going "home" to the CPU
    held: dict[str, set[int]] = {}
    for dev in ("cpu", "cpu:0"):
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 1)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        mon = Monitor(model, opt, grad_every=1, snapshot_every=3, snapshot_device=dev)
        ids = set()
        for _ in range(20):
            opt.zero_grad()
            loss = model(torch.randn(8, 4)).pow(2).mean()
            loss.backward()
            mon.after_backward(loss)
            opt.step()
            mon.after_step()
            assert mon._healthy is not None
            ids.add(id(mon._healthy.snapshot.params[0]))
        held[dev] = ids
    assert len(held["cpu"]) == 1
    assert len(held["cpu:0"]) == 1, f"{len(held['cpu:0'])} different copies held over 20 steps"


def test_head_without_backbone_lr_scale_is_not_silently_ignored(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    # head= only names the head for backbone_lr_scale; given alone (here misspelt) it changes nothing, silently,
    # where other keys that go unused are noted (schedule= with lrf/warmup keys)
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(64, 4, generator=g), torch.randint(0, 3, (64,), generator=g))
    try:
        lrkit.train(data=data, model=_classifier(), head="clasifier", epochs=1, lr0=0.01, optimizer="SGD",
                    project=str(tmp_path), plots=False, monitor=False)
    except ValueError as e:
        assert "head=clasifier names the head for backbone_lr_scale, which is not set" in str(e)
    else:
        raise AssertionError(f"head= without backbone_lr_scale was taken silently: {capsys.readouterr().out}")


def test_data_frames_and_ranges_are_not_read_as_lists_of_samples() -> None:
    from lrkit.train.data import _map_style

    class DataFrame:  # stands for pandas': sized and indexable, but by column
        columns = ("a", "y")

        def __len__(self) -> int:
            return 4

        def __getitem__(self, key: str) -> list[int]:
            return [0, 1, 2, 3]

    assert not _map_style(DataFrame()) and not _map_style(range(5))
    assert _map_style([{"x": 1}]) and _map_style(TensorDataset(torch.zeros(2)))
