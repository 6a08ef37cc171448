"""Session 18: the README's migration guide ("Coming from torch-lr-finder, fastai, Lightning or Ultralytics").

Every lrkit snippet the section shows runs here as written, on small generated data with the names the README's
examples use (``model``, ``optimizer``, ``train_loader``, ``loss_fn``, ``train_ds``, ``val_ds``), and each claim the
section makes about lrkit's side of a mapping is checked: the state comes back without a ``reset()``, ``num_steps`` /
``end_lr`` / ``mode`` give the LR grid the text gives, ``accumulation_steps`` draws and averages micro-batches as
torch-lr-finder's does, the rule names, the divergence stop, what lrkit refuses and says instead. No peer is
imported (CI does not install them); what the section says about a peer was read from the peer's own code (the
versions are named in the section) and checked by hand against the installed packages.
"""

from __future__ import annotations

import copy
import math
import warnings
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

import lrkit
from _helpers import fastai_valley_search
from lrkit.finder.suggest import ema

N_FEATURES, N_CLASSES = 8, 3


def _datasets(n: int = 512) -> tuple[torch.utils.data.TensorDataset, torch.utils.data.TensorDataset]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, N_FEATURES, generator=g)
    y = (x @ torch.randn(N_FEATURES, N_CLASSES, generator=g)).argmax(1)
    cut = n * 4 // 5
    return (torch.utils.data.TensorDataset(x[:cut], y[:cut]), torch.utils.data.TensorDataset(x[cut:], y[cut:]))


def _model(seed: int = 1) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(N_FEATURES, 32), torch.nn.ReLU(), torch.nn.Linear(32, N_CLASSES))


@pytest.fixture
def ns() -> dict[str, Any]:
    """The user's objects under the names the README's snippets use (as tests/test_readme_examples.py's preludes)."""
    train_ds, val_ds = _datasets()
    model = _model()
    return dict(
        model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9),
        train_loader=torch.utils.data.DataLoader(train_ds, batch_size=32, shuffle=True,
                                                 generator=torch.Generator().manual_seed(0)),
        loss_fn=torch.nn.functional.cross_entropy, train_ds=train_ds, val_ds=val_ds,
    )


class _Counting:
    """An iterable over a loader that counts the batches drawn from it."""

    def __init__(self, loader: torch.utils.data.DataLoader) -> None:
        self.loader, self.drawn = loader, 0

    def __iter__(self) -> Any:
        for batch in self.loader:
            self.drawn += 1
            yield batch

    def __len__(self) -> int:
        return len(self.loader)


# ---------------------------------------------------------------------------------------------- torch-lr-finder
def test_torch_lr_finder_snippet_runs_and_needs_no_reset(ns: dict[str, Any], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    model, optimizer, train_loader = ns["model"], ns["optimizer"], ns["train_loader"]
    for x, y in list(train_loader)[:3]:  # a model mid-training: momentum buffers in the optimizer's state
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    weights = copy.deepcopy(model.state_dict())
    opt_state = copy.deepcopy(optimizer.state_dict())
    rng, gen = torch.get_rng_state(), train_loader.generator.get_state()

    # --- the README's block, as written
    criterion = torch.nn.CrossEntropyLoss()
    result = lrkit.find_lr(model, optimizer, train_loader, loss_fn=criterion,
                           end_lr=10, num_steps=100, mode="exp", diverge_factor=5, accumulation_steps=1)
    lr = result.suggest("steepest")      # torch-lr-finder's rule; result.suggestion is lrkit's default rule
    fig = result.plot("lr_find.png")     # the suggestion is marked; no reset(): the state is already back
    history = {"lr": result.lrs, "loss": result.losses}   # raw losses: torch-lr-finder's history["loss"] is smoothed
    # ---

    assert (tmp_path / "lr_find.png").stat().st_size > 0 and isinstance(lr, float) and lr > 0
    fig.axes[0].axvline(lr, color="red")   # plot(show_lr=...): draw the line on the returned figure's axes
    plt.close(fig)
    assert len(history["lr"]) == len(history["loss"]) == result.num_steps_run > 10
    assert result.loss == "loss_fn (CrossEntropyLoss)"   # criterion (an nn.Module) is a loss_fn as it is
    # no reset(): weights, optimizer state (momentum, LR), RNG and the loader's shuffling generator are back
    assert not hasattr(result, "reset")
    for key, value in model.state_dict().items():
        assert torch.equal(value, weights[key]), key
    after = optimizer.state_dict()
    assert after["param_groups"] == opt_state["param_groups"] and optimizer.param_groups[0]["lr"] == 0.01
    for pid, state in opt_state["state"].items():
        assert torch.equal(after["state"][pid]["momentum_buffer"], state["momentum_buffer"])
    assert torch.equal(torch.get_rng_state(), rng) and torch.equal(train_loader.generator.get_state(), gen)


@pytest.mark.filterwarnings("ignore:the loss barely moved")  # a short, low range on purpose
def test_history_losses_are_raw_per_step_losses(ns: dict[str, Any]) -> None:
    # torch-lr-finder's history["loss"] is its EMA; lrkit's result.losses are the losses as measured
    loader = torch.utils.data.DataLoader(ns["train_ds"], batch_size=32)   # unshuffled: the first batch is known
    model, loss_fn = ns["model"], ns["loss_fn"]
    result = lrkit.find_lr(model, ns["optimizer"], loader, loss_fn=loss_fn, num_steps=20, end_lr=1e-2)
    x, y = next(iter(loader))
    with torch.no_grad():  # the model is back at its starting weights: step 0's loss is this batch's
        first = loss_fn(model(x), y).item()
    assert result.losses[0] == pytest.approx(first, rel=1e-6)
    assert result.smoothed_losses != result.losses  # the smoothed curve the rules read is a separate list


@pytest.mark.filterwarnings("ignore:the loss barely moved")  # a short, low range on purpose
def test_num_steps_end_lr_and_mode_give_torch_lr_finders_grid(ns: dict[str, Any]) -> None:
    # num_iter -> num_steps, end_lr -> end_lr, step_mode -> mode: LR at step i of n is start*(end/start)**(i/(n-1))
    # ("exp") or start + (end-start)*i/(n-1) ("linear"); the last step is at end_lr, as in torch-lr-finder 0.2.2
    for mode, grid in (("exp", np.geomspace), ("linear", np.linspace)):
        r = lrkit.find_lr(ns["model"], ns["optimizer"], ns["train_loader"], start_lr=1e-6, end_lr=1e-2,
                          num_steps=30, mode=mode)
        assert r.stop_reason == "completed" and len(r.lrs) == 30
        np.testing.assert_allclose(r.lrs, grid(1e-6, 1e-2, 30), rtol=1e-12)
        assert r.lrs[-1] == pytest.approx(1e-2, rel=1e-12)


@pytest.mark.filterwarnings("ignore:the loss barely moved")  # a short, low range on purpose
def test_start_lr_is_never_read_from_the_optimizer(ns: dict[str, Any]) -> None:
    # torch-lr-finder's start_lr=None starts at the optimizer's LR; lrkit starts at start_lr (default 1e-7)
    optimizer = ns["optimizer"]
    r = lrkit.find_lr(ns["model"], optimizer, ns["train_loader"], num_steps=10, end_lr=1e-3)
    assert r.lrs[0] == pytest.approx(1e-7) and optimizer.param_groups[0]["lr"] == 0.01
    r = lrkit.find_lr(ns["model"], optimizer, ns["train_loader"], start_lr=optimizer.param_groups[0]["lr"],
                      num_steps=10, end_lr=1.0)
    assert r.lrs[0] == 0.01


@pytest.mark.filterwarnings("ignore:the loss barely moved")  # a short, low range on purpose
def test_accumulation_steps_draws_and_averages_micro_batches(ns: dict[str, Any]) -> None:
    # accumulation_steps=k: k micro-batches per optimizer step, the recorded loss their mean (torch-lr-finder divides
    # each micro-batch's loss by k and records the sum)
    loader = torch.utils.data.DataLoader(ns["train_ds"], batch_size=16)
    counting = _Counting(loader)
    model, loss_fn = ns["model"], ns["loss_fn"]
    r = lrkit.find_lr(model, ns["optimizer"], counting, loss_fn=loss_fn, start_lr=1e-6, end_lr=1e-3,
                      num_steps=12, accumulation_steps=4)
    assert r.stop_reason == "completed" and len(r.losses) == 12
    assert counting.drawn == 12 * 4
    with torch.no_grad():
        micro = [loss_fn(model(x), y).item() for x, y in list(loader)[:4]]
    assert r.losses[0] == pytest.approx(sum(micro) / 4, rel=1e-6)


def test_batches_with_extra_items_need_a_step_fn(ns: dict[str, Any]) -> None:
    # torch-lr-finder reads (inputs, labels, *rest); lrkit refuses a 3-item batch for the default loss and names
    # step_fn, which takes any layout (as a TrainDataLoaderIter subclass would)
    x, y = ns["train_ds"].tensors
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y, torch.ones(len(y))), batch_size=32)
    with pytest.raises(ValueError, match=r"\(inputs, targets\) pair.*got a list of length 3.*step_fn"):
        lrkit.find_lr(ns["model"], ns["optimizer"], loader, num_steps=10)
    criterion = torch.nn.CrossEntropyLoss()
    r = lrkit.find_lr(ns["model"], ns["optimizer"], loader, num_steps=20,
                      step_fn=lambda model, batch: criterion(model(batch[0]), batch[1]))
    assert len(r.losses) == 20


def test_device_is_where_batches_go_not_where_the_model_moves(ns: dict[str, Any]) -> None:
    # torch-lr-finder's device= moves the model (model.to(device)); lrkit's sends the batches there and refuses a
    # device the model is not on, saying to move the model first
    with pytest.raises(ValueError, match=r"move the model first \(model\.to\('meta'\)\)"):
        lrkit.find_lr(ns["model"], ns["optimizer"], ns["train_loader"], device="meta")
    assert next(ns["model"].parameters()).device.type == "cpu"


# ------------------------------------------------------------------------------------------------------ fastai
def test_fastai_snippet_runs(ns: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    model, optimizer, train_loader, loss_fn = ns["model"], ns["optimizer"], ns["train_loader"], ns["loss_fn"]

    # --- the README's block, as written
    result = lrkit.find_lr(model, optimizer, train_loader, loss_fn=loss_fn,
                           start_lr=1e-7, end_lr=10, num_steps=100, diverge_factor=4.0)
    result.suggest("valley")           # fastai's default rule
    suggestions = {name: result.suggest(name) for name in ("minimum", "steepest", "valley")}
    print(result.text_plot())          # show_plot=True: or result.plot("lr_find.png")
    # ---

    assert set(suggestions) <= set(result.suggestions()) and all(v > 0 for v in suggestions.values())
    assert suggestions["valley"] == result.suggest("valley") == result.suggestions()["valley"]
    assert len(capsys.readouterr().out.splitlines()) > 5   # a chart, not one line


def test_rule_names_and_no_slide(ns: dict[str, Any]) -> None:
    assert set(lrkit.SUGGESTION_RULES) == {"robust", "steepest", "minimum", "valley"}
    r = lrkit.find_lr(ns["model"], ns["optimizer"], ns["train_loader"], num_steps=40)
    assert set(r.suggestions()) == set(lrkit.SUGGESTION_RULES) and r.rule == "robust"
    with pytest.raises(ValueError, match=r"unknown suggestion rule 'slide'.*valley"):
        r.suggest("slide")
    with pytest.raises(ValueError, match=r"unknown suggestion rule 'steep'"):   # fastai's name: lrkit's is steepest
        r.suggest("steep")


def _fastai_valley(lrs: np.ndarray, losses: np.ndarray) -> float:
    """fastai 2.8.12's ``valley`` (fastai/callback/schedule.py), transcribed: the longest decreasing run."""
    max_start, max_end = fastai_valley_search(losses)
    sections = (max_end - max_start) / 3
    return float(lrs[max_start + int(sections) + int(sections / 2)])


def test_valley_and_minimum_are_fastais_over_the_whole_curve(ns: dict[str, Any]) -> None:
    # lrkit's valley/minimum: fastai's functions over fastai's EMA (beta 0.98, bias-corrected) of every step; fastai's
    # lr_find hands them its curve without the first num_it // 10 and the last 5 steps
    r = lrkit.find_lr(ns["model"], ns["optimizer"], ns["train_loader"], loss_fn=ns["loss_fn"])
    lrs, smooth = np.asarray(r.lrs), ema(np.asarray(r.losses), 0.98)
    assert r.suggest("valley") == pytest.approx(_fastai_valley(lrs, smooth), rel=1e-12)
    assert r.suggest("minimum") == pytest.approx(lrs[int(np.argmin(smooth))] / 10, rel=1e-12)


def test_steepest_reads_only_the_descent(ns: dict[str, Any]) -> None:
    # torch-lr-finder's and fastai's steepest points search the whole (trimmed) curve; lrkit's stops at the minimum
    r = lrkit.find_lr(ns["model"], ns["optimizer"], ns["train_loader"], loss_fn=ns["loss_fn"])
    finite = [lr for lr, v in zip(r.lrs, r.losses) if math.isfinite(v)]
    assert r.suggest("steepest") <= finite[int(np.argmin(r.smoothed_losses))]


def test_divergence_stop_switched_off_with_none(ns: dict[str, Any]) -> None:
    # fastai's stop_div=False / Lightning's early_stop_threshold=None: diverge_factor=None runs on past the blow-up
    # (a non-finite loss still stops the test); inf is refused, naming None as the off switch
    kw = dict(loss_fn=ns["loss_fn"], start_lr=1e-4, end_lr=100.0, num_steps=60)
    with pytest.raises(ValueError, match="diverge_factor=inf"):
        lrkit.find_lr(ns["model"], ns["optimizer"], ns["train_loader"], diverge_factor=float("inf"), **kw)
    stopped = lrkit.find_lr(ns["model"], ns["optimizer"], ns["train_loader"], **kw)
    assert stopped.stop_reason == "diverged"
    on = lrkit.find_lr(ns["model"], ns["optimizer"], ns["train_loader"], diverge_factor=None, **kw)
    assert on.stop_reason in ("completed", "non-finite") and len(on.lrs) > len(stopped.lrs)


def test_num_steps_below_ten_is_refused(ns: dict[str, Any]) -> None:
    # fastai raises num_it < 6 to 6 silently; lrkit names the value
    with pytest.raises(ValueError, match=r"num_steps=5 must be an integer >= 10"):
        lrkit.find_lr(ns["model"], ns["optimizer"], ns["train_loader"], num_steps=5)


# --------------------------------------------------------------------------------------------------- Lightning
def test_lightning_snippet_sets_the_lr_itself_and_keeps_group_ratios(ns: dict[str, Any]) -> None:
    model, train_loader, loss_fn = ns["model"], ns["train_loader"], ns["loss_fn"]
    optimizer = torch.optim.SGD([{"params": model[0].parameters(), "lr": 0.001},     # two groups, 1:10
                                 {"params": model[2].parameters(), "lr": 0.01}], lr=0.01, momentum=0.9)

    # --- the README's block, as written
    result = lrkit.find_lr(model, optimizer, train_loader, loss_fn=loss_fn,
                           start_lr=1e-8, end_lr=1.0, num_steps=100, mode="exp", diverge_factor=4.0)
    new_lr = result.suggestion
    peak = max(group["lr"] for group in optimizer.param_groups)
    for group in optimizer.param_groups:      # update_attr=True: lrkit changes no LR, set it yourself
        group["lr"] *= new_lr / peak          # (each group keeps its ratio to the peak)
    # ---

    assert result.lrs[0] == pytest.approx(1e-8) and result.lrs[-1] <= 1.0
    lrs = [g["lr"] for g in optimizer.param_groups]
    assert lrs[1] == pytest.approx(new_lr) and lrs[0] == pytest.approx(new_lr / 10)


class _BodyHead(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body, self.head = torch.nn.Linear(N_FEATURES, 16), torch.nn.Linear(16, N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.body(x)))


def test_setting_the_lr_on_groups_with_an_lr_scale(ns: dict[str, Any]) -> None:
    # groups from lrkit.param_groups carry lr_scale: result.lrs are the LRs of the lr_scale-1 groups, and the README's
    # group["lr"] = new_lr * group["lr_scale"] gives the head the suggestion and the backbone its tenth
    model = _BodyHead()
    optimizer = torch.optim.SGD(lrkit.param_groups(model, 1e-3, backbone_lr_scale=0.1), lr=1e-3)
    result = lrkit.find_lr(model, optimizer, ns["train_loader"], loss_fn=ns["loss_fn"], num_steps=60)
    new_lr = result.suggestion
    for group in optimizer.param_groups:
        group["lr"] = new_lr * group["lr_scale"]
    by_name = {g["name"]: g["lr"] for g in optimizer.param_groups}
    assert by_name["head/decay"] == by_name["head/bias"] == new_lr
    assert by_name["backbone/decay"] == pytest.approx(new_lr * 0.1)


@pytest.mark.filterwarnings("ignore:the loss barely moved")  # a short, low range on purpose
def test_groups_keep_their_ratio_during_the_test(ns: dict[str, Any]) -> None:
    # Lightning sets every group to min_lr and sweeps them together; lrkit sweeps the peak and keeps the ratios
    model = ns["model"]
    optimizer = torch.optim.SGD([{"params": model[0].parameters(), "lr": 0.001},
                                 {"params": model[2].parameters(), "lr": 0.01}], lr=0.01)
    seen: list[tuple[float, float]] = []

    def step_fn(m: torch.nn.Module, batch: Any) -> torch.Tensor:
        seen.append((optimizer.param_groups[0]["lr"], optimizer.param_groups[1]["lr"]))
        return torch.nn.functional.cross_entropy(m(batch[0]), batch[1])

    r = lrkit.find_lr(model, optimizer, ns["train_loader"], step_fn=step_fn, start_lr=1e-5, end_lr=1e-2,
                      num_steps=20)
    assert len(seen) == 20
    for (low, high), peak in zip(seen, r.lrs):
        assert high == pytest.approx(peak) and low == pytest.approx(peak / 10)
    assert [g["lr"] for g in optimizer.param_groups] == [0.001, 0.01]   # and put back afterwards


def test_mode_is_exp_not_exponential(ns: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"unknown mode 'exponential'\. Valid: exp, linear"):
        lrkit.find_lr(ns["model"], ns["optimizer"], ns["train_loader"], mode="exponential")


class _LitLike(torch.nn.Module):
    """The parts of a LightningModule the README's block uses: training_step, configure_optimizers, an lr attribute
    (checked by hand with lightning 2.6.6's LightningModule too: its self.log() outside a Trainer only warns)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = _model()
        self.lr = 0.1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def test_lightning_module_snippet_runs(ns: dict[str, Any]) -> None:
    module, train_loader = _LitLike(), ns["train_loader"]
    before = copy.deepcopy(module.state_dict())

    # --- the README's block, as written
    result = lrkit.find_lr(module, module.configure_optimizers(), train_loader,
                           step_fn=lambda m, batch: m.training_step(batch, 0))
    module.lr = result.suggestion             # what update_attr=True did; configure_optimizers() reads it
    # ---

    assert result.loss == "step_fn (<lambda>)" and module.lr == result.suggestion != 0.1
    assert all(torch.equal(v, before[k]) for k, v in module.state_dict().items())
    assert module.configure_optimizers().param_groups[0]["lr"] == result.suggestion


# ------------------------------------------------------------------------------------------------- Ultralytics
def test_ultralytics_snippet_runs(ns: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    model, train_ds, val_ds, loss_fn = ns["model"], ns["train_ds"], ns["val_ds"], ns["loss_fn"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")

        # --- the README's block, as written
        results = lrkit.train(model, data=(train_ds, val_ds), epochs=30, lr0="auto", lrf=0.01, cos_lr=True,
                              warmup_epochs=3.0, warmup_momentum=0.8, warmup_bias_lr=0.1, loss_fn=loss_fn)
        print(results.lr0_source, results.lr0)   # auto, and the peak LR it chose (results.auto.reason: why)
        # ---

    assert results.lr0_source == "auto" and results.lr0 > 0
    assert isinstance(results.auto.finder, lrkit.FinderResult)   # the range test it ran, with its curve
    assert (tmp_path / "runs" / "train" / "args.yaml").exists()
