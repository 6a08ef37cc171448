"""Review 22i of FindLRCallback under DDP (ddp_spawn, 2 CPU processes, gloo): the cases the first tests left out —
accumulation + clipping + a shuffled loader shorter than the test (cycling), a custom sampler with shards of different
lengths (use_distributed_sampler=False) on the no-attribute path, an unused parameter under
find_unused_parameters=True with bf16-mixed and a datamodule's dict of loaders — and the passes over a dict of
loaders (counted as the number of loaders, one, in a one-process fit). Ranks report through files under tmp_path.
"""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

pl = pytest.importorskip("lightning.pytorch")

from _lightning_helpers import regression_data as _dataset  # noqa: E402
from lrkit import find_lr  # noqa: E402
from lrkit.integrations.lightning import FindLRCallback  # noqa: E402

STEPS = 20


@pytest.fixture(autouse=True)
def _environment(environment_as_it_was: None) -> None:
    """Every test here may spawn Lightning ranks: the environment is put back after each (conftest)."""


def _mse(model: Any, batch: Any) -> torch.Tensor:
    return torch.nn.functional.mse_loss(model(batch[0]).float(), batch[1])


class Net(pl.LightningModule):
    def __init__(self, lr: float | None = 0.01, unused: bool = False) -> None:
        super().__init__()
        if lr is not None:
            self.lr = lr
        torch.manual_seed(1)
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
        if unused:
            self.extra = torch.nn.Linear(4, 1)  # never in the loss

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return _mse(self, batch["a"] if isinstance(batch, dict) else batch)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=getattr(self, "lr", 0.01), momentum=0.9)


class Uneven(torch.utils.data.Sampler):
    """Rank 0 draws 40 samples (5 batches of 8), rank 1 draws 24 (3 batches)."""

    def __init__(self, rank: int) -> None:
        self.indices = list(range(40)) if rank == 0 else list(range(40, 64))

    def __iter__(self) -> Any:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class UnevenData(pl.LightningDataModule):
    def train_dataloader(self) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(_dataset(), batch_size=8, sampler=Uneven(self.trainer.global_rank))


class DictData(pl.LightningDataModule):
    def train_dataloader(self) -> Any:
        return {"a": torch.utils.data.DataLoader(_dataset(), batch_size=8, shuffle=True)}


class Record(pl.Callback):
    """On each rank: ``lrkit.find_lr`` by hand first (``reference``: its keywords, and ``"sampler"``: ``"dist"`` for
    the DistributedSampler Lightning gives the fit, ``"uneven"`` for :class:`Uneven`) on a DDP-wrapped copy in the
    fit's process group; at the end, what the callback found and the fit trained with, to ``folder/rank{r}.pt``."""

    def __init__(self, folder: str, reference: dict[str, Any] | None = None) -> None:
        self.folder = folder
        self.reference = reference

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        if self.reference is None:
            return
        rank = trainer.global_rank
        kwargs = dict(self.reference)
        if kwargs.pop("sampler") == "dist":
            sampler: Any = torch.utils.data.DistributedSampler(_dataset(), num_replicas=2, rank=rank, shuffle=True,
                                                               seed=0)
        else:
            sampler = Uneven(rank)
        net = copy.deepcopy(pl_module.net)
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = find_lr(torch.nn.parallel.DistributedDataParallel(net), opt,
                             torch.utils.data.DataLoader(_dataset(), batch_size=8, sampler=sampler), step_fn=_mse,
                             num_steps=STEPS, **kwargs)
        torch.save({"lrs": result.lrs, "losses": result.losses, "suggestion": result.suggestion,
                    "passes": result.passes}, os.path.join(self.folder, f"ref{rank}.pt"))

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        finder = next(c for c in trainer.callbacks if isinstance(c, FindLRCallback))
        record = {"lr": finder.lr, "suggestion": finder.result.suggestion, "lrs": list(finder.result.lrs),
                  "losses": list(finder.result.losses), "passes": finder.result.passes,
                  "warnings": list(finder.result.warnings), "steps": trainer.global_step,
                  "optimizer_lr": trainer.optimizers[0].param_groups[0]["lr"],
                  "weights": {k: v.clone() for k, v in pl_module.state_dict().items()}}
        torch.save(record, os.path.join(self.folder, f"rank{trainer.global_rank}.pt"))


def _ddp_fit(tmp: Path, model: Net, data: Any, reference: dict[str, Any] | None = None,
             **kwargs: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    tmp.mkdir(parents=True, exist_ok=True)
    trainer = pl.Trainer(strategy=kwargs.pop("strategy", "ddp_spawn"), accelerator="cpu", devices=2, max_steps=6,
                         callbacks=[Record(str(tmp), reference), FindLRCallback(num_steps=STEPS)], logger=False,
                         enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False, **kwargs)
    if isinstance(data, pl.LightningDataModule):
        trainer.fit(model, datamodule=data)
    else:
        trainer.fit(model, data)
    load = [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(2)]
    refs = [torch.load(tmp / f"ref{r}.pt", weights_only=False) for r in range(2)] if reference else None
    return load, refs


def _same_weights(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(torch.equal(a["weights"][k], b["weights"][k]) for k in a["weights"])


def test_ddp_accumulation_clipping_and_a_shuffled_loader_shorter_than_the_test_match_find_lr_by_hand(
        tmp_path: Path) -> None:
    # 6 batches per rank, 20 steps x 2 micro-batches: each rank cycles its shard about 6.7 times
    loader = torch.utils.data.DataLoader(_dataset(), batch_size=8, shuffle=True)
    (r0, r1), refs = _ddp_fit(tmp_path, Net(), loader,
                              {"sampler": "dist", "accumulation_steps": 2, "max_grad_norm": 0.5},
                              accumulate_grad_batches=2, gradient_clip_val=0.5)
    assert refs is not None and refs[0] == refs[1]
    assert r0["losses"] == r1["losses"] and r0["lr"] == r1["lr"] == r0["optimizer_lr"] == r1["optimizer_lr"]
    assert r0["lrs"] == refs[0]["lrs"]
    assert torch.allclose(torch.tensor(r0["losses"]), torch.tensor(refs[0]["losses"]), rtol=1e-6, atol=0)
    assert r0["suggestion"] == pytest.approx(refs[0]["suggestion"], rel=1e-9)
    assert r0["passes"] == pytest.approx(len(r0["lrs"]) * 2 / 6) and r0["passes"] > 1
    assert _same_weights(r0, r1)


def test_ddp_custom_sampler_with_uneven_shards_no_lr_attribute_every_rank_steps_together(tmp_path: Path) -> None:
    # use_distributed_sampler=False: rank 0 has 5 batches, rank 1 has 3; the module has no LR attribute (backoff_lr)
    (r0, r1), refs = _ddp_fit(tmp_path, Net(lr=None), UnevenData(), {"sampler": "uneven"},
                              use_distributed_sampler=False)
    assert refs is not None
    assert r0["lrs"] == r1["lrs"] == refs[0]["lrs"] and r0["losses"] == r1["losses"]
    assert torch.allclose(torch.tensor(r0["losses"]), torch.tensor(refs[0]["losses"]), rtol=1e-6, atol=0)
    # the same LR scaled into the optimizer on both ranks; the passes are the larger (rank 1's: 3 batches)
    assert r0["lr"] == r1["lr"] == r0["optimizer_lr"] == r1["optimizer_lr"] != 0.01
    assert r0["passes"] == r1["passes"] == pytest.approx(len(r0["lrs"]) / 3)
    assert r0["steps"] == r1["steps"] == 6 and _same_weights(r0, r1)


def test_ddp_unused_parameter_bf16_mixed_and_a_datamodules_dict_of_loaders(tmp_path: Path) -> None:
    from lightning.pytorch.strategies import DDPStrategy

    strategy = DDPStrategy(find_unused_parameters=True, start_method="spawn")
    (r0, r1), _ = _ddp_fit(tmp_path, Net(unused=True), DictData(), strategy=strategy, precision="bf16-mixed")
    assert r0["losses"] == r1["losses"] and r0["lr"] == r1["lr"] == r0["optimizer_lr"] == r1["optimizer_lr"] != 0.01
    assert r0["warnings"] == []  # sharded (no "every rank got the same first batch"), gradients synced
    assert r0["passes"] == pytest.approx(len(r0["lrs"]) / 6)  # 6 batches per rank's shard of the dict's loader
    assert r0["steps"] == 6 and _same_weights(r0, r1)


@pytest.mark.parametrize("wrap", ["dict", "list", "combined"])
def test_one_process_passes_over_a_collection_of_loaders_count_its_batches_not_its_loaders(wrap: str) -> None:
    from lightning.pytorch.utilities import CombinedLoader

    def loader() -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(_dataset(), batch_size=8)  # 12 batches

    short = torch.utils.data.DataLoader(torch.utils.data.Subset(_dataset(), range(32)), batch_size=8)  # 4
    data: Any = {"a": loader(), "b": short} if wrap == "dict" else [loader(), short]
    if wrap == "combined":
        data = CombinedLoader(data, "max_size_cycle")

    class Two(Net):
        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            first = batch["a"] if isinstance(batch, dict) else batch[0]
            return _mse(self, first)

    finder = FindLRCallback(num_steps=STEPS)
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=0, callbacks=[finder], logger=False,
                         enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(Two(), data)
    # max_size_cycle: a pass is the longest loader's 12 batches (was len(dict) == 1: passes == steps, far over the
    # robust rule's max_passes gate)
    assert finder.result.passes == pytest.approx(len(finder.result.lrs) / 12)
    assert finder.result.passes < 6
