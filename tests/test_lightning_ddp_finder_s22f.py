"""FindLRCallback under Lightning's DDP on CPU (strategy="ddp_spawn", 2 processes, gloo).

Every rank runs the range test on its own shard (the fit's DistributedSampler) through the DDP wrapper (gradients
all-reduced), gets the same suggestion, and trains at it; the fit afterwards is the fit at that LR set by hand. The
spawned ranks hand their results back through files under tmp_path.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

pl = pytest.importorskip("lightning.pytorch")

from _lightning_helpers import regression_data as _dataset  # noqa: E402
from lrkit import find_lr  # noqa: E402
from lrkit.integrations.lightning import FindLRCallback  # noqa: E402

STEPS = 20
FIT_STEPS = 6


@pytest.fixture(autouse=True)
def _environment(environment_as_it_was: None) -> None:
    """Every test here may spawn Lightning ranks: the environment is put back after each (conftest)."""


def _loader(**kwargs: Any) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(_dataset(), batch_size=8, **kwargs)


class Net(pl.LightningModule):
    def __init__(self, lr: float = 0.01) -> None:
        super().__init__()
        self.lr = lr
        torch.manual_seed(1)
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.mse_loss(self(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)


class Record(pl.Callback):
    """Each rank writes what it found and trained with to ``folder/rank{r}.pt``."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        finder = next((c for c in trainer.callbacks if isinstance(c, FindLRCallback)), None)
        record = {
            "world": trainer.world_size,
            "lr": None if finder is None else finder.lr,
            "suggestion": None if finder is None else finder.result.suggestion,
            "lrs": None if finder is None else list(finder.result.lrs),
            "losses": None if finder is None else list(finder.result.losses),
            "module_lr": pl_module.lr,
            "optimizer_lr": trainer.optimizers[0].param_groups[0]["lr"],
            "weights": {k: v.clone() for k, v in pl_module.state_dict().items()},
        }
        torch.save(record, os.path.join(self.folder, f"rank{trainer.global_rank}.pt"))


def _ddp_fit(tmp: Path, model: Net, callbacks: list[Any], **kwargs: Any) -> list[dict[str, Any]]:
    tmp.mkdir(parents=True, exist_ok=True)
    trainer = pl.Trainer(strategy="ddp_spawn", accelerator="cpu", devices=2, max_steps=FIT_STEPS,
                         callbacks=[*callbacks, Record(str(tmp))], logger=False, enable_progress_bar=False,
                         enable_checkpointing=False, enable_model_summary=False, **kwargs)
    trainer.fit(model, _loader())
    return [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(2)]


class Reference(pl.Callback):
    """Before FindLRCallback's test, on each rank: ``lrkit.find_lr`` by hand in the fit's 2-rank gloo group, on a copy
    of the module in a DDP wrapper of its own and a loader with the sampler Lightning gives the fit
    (DistributedSampler, shuffled, seed 0) — and two controls that must differ from it: the copy without its DDP
    wrapper (gradients not averaged) and every rank on the whole loader (not sharded)."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        import copy
        import warnings

        def step(m: Any, b: Any) -> torch.Tensor:
            return torch.nn.functional.mse_loss(m(b[0]), b[1])

        rank = trainer.global_rank
        out = {}
        sampler = torch.utils.data.DistributedSampler(_dataset(), num_replicas=2, rank=rank, shuffle=True, seed=0)
        for name, wrap, loader in (("ddp", True, _loader(sampler=sampler)),
                                   ("unwrapped", False, _loader(sampler=sampler)),
                                   ("unsharded", True, _loader())):
            net = copy.deepcopy(pl_module.net)
            model = torch.nn.parallel.DistributedDataParallel(net) if wrap else net
            opt = torch.optim.SGD(net.parameters(), lr=pl_module.lr, momentum=0.9)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = find_lr(model, opt, loader, step_fn=step, num_steps=STEPS)
            out[name] = {"lrs": list(result.lrs), "losses": list(result.losses), "suggestion": result.suggestion}
        (Path(self.folder) / f"ref{rank}.json").write_text(json.dumps(out))


def test_ddp_spawn_every_rank_finds_the_same_lr_as_find_lr_by_hand_and_trains_at_it(tmp_path: Path) -> None:
    folder = tmp_path / "fit"
    r0, r1 = _ddp_fit(folder, Net(), [Reference(str(folder)), FindLRCallback(num_steps=STEPS, out=tmp_path / "out")])
    assert r0["world"] == r1["world"] == 2
    # both ranks: the same curve and suggestion, set in the module's attribute and the rebuilt optimizer
    assert r0["lrs"] == r1["lrs"] and r0["losses"] == r1["losses"]
    assert r0["lr"] == r1["lr"] == r0["suggestion"] == r1["suggestion"]
    for r in (r0, r1):
        assert r["module_lr"] == r["optimizer_lr"] == r0["lr"] != 0.01
    # DDP kept the ranks' weights equal through the test and the fit
    assert all(torch.equal(r0["weights"][k], r1["weights"][k]) for k in r0["weights"])
    # rank 0 wrote the curve
    assert json.loads((tmp_path / "out" / "lr_find.json").read_text())["losses"] == r0["losses"]

    ref = [json.loads((folder / f"ref{r}.json").read_text()) for r in range(2)]
    assert ref[0] == ref[1]
    ddp, unwrapped, unsharded = ref[0]["ddp"], ref[0]["unwrapped"], ref[0]["unsharded"]
    # the callback's curve is find_lr's on the DDP-wrapped module over the ranks' shards (the rank-averaged loss)
    assert r0["lrs"] == ddp["lrs"]
    assert torch.allclose(torch.tensor(r0["losses"]), torch.tensor(ddp["losses"]), rtol=1e-6, atol=0)
    assert r0["suggestion"] == pytest.approx(ddp["suggestion"], rel=1e-9)
    # ... and the check could fail: without gradient averaging, or without sharding, the curve is another one
    for other in (unwrapped, unsharded):
        n = min(len(other["losses"]), len(ddp["losses"]))
        assert not torch.allclose(torch.tensor(other["losses"][:n]), torch.tensor(ddp["losses"][:n]), rtol=1e-4)


def test_ddp_spawn_fit_after_the_test_is_bit_identical_to_the_fit_at_the_suggestion_set_by_hand(
        tmp_path: Path) -> None:
    with_finder = _ddp_fit(tmp_path / "a", Net(), [FindLRCallback(num_steps=STEPS)])
    lr = with_finder[0]["lr"]
    by_hand = _ddp_fit(tmp_path / "b", Net(lr=lr), [])
    for k, v in by_hand[0]["weights"].items():
        assert torch.equal(with_finder[0]["weights"][k], v), k
    assert not torch.equal(with_finder[0]["weights"]["net.0.weight"], Net().net[0].weight.detach())  # it trained


def test_several_processes_without_a_ddp_wrapper_are_refused_naming_the_strategy() -> None:
    model = Net()
    strategy = SimpleNamespace(model=model)  # an FSDP/DeepSpeed-like strategy: the module is not in DDP
    trainer = SimpleNamespace(ckpt_path=None, fast_dev_run=False, optimizers=[torch.optim.SGD(model.parameters())],
                              world_size=2, strategy=strategy)
    with pytest.raises(ValueError, match=r"DDP only.*world_size=2 with SimpleNamespace, whose model is a Net"):
        FindLRCallback().on_fit_start(trainer, model)
