"""lrkit.find_lr inside a Lightning fit (lrkit.integrations.lightning.FindLRCallback), session 22a."""

from __future__ import annotations

import copy
import subprocess
import sys
import warnings
from types import SimpleNamespace
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
import torchmetrics
from lightning.pytorch.plugins.precision import MixedPrecision
from torch import nn

import lrkit
from _lightning_helpers import LIGHTNING_WARNINGS, ManualOptimizationMixin, quiet_lightning_logs
from lrkit.integrations.lightning import FindLRCallback, MonitorCallback

quiet_lightning_logs()
pytestmark = pytest.mark.filterwarnings(*LIGHTNING_WARNINGS)

STEPS = 30  # range-test steps: enough for a suggestion on this task, short enough for a fast test


def _loader(n: int = 256, batch_size: int = 16, shuffle: bool = False) -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 8, generator=g)
    y = x @ torch.randn(8, 1, generator=g) + 0.1 * torch.randn(n, 1, generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle)


class Net(pl.LightningModule):
    """A tiny regression MLP whose training_step logs (a step value and an epoch sum) and updates a torchmetric.

    ``scheduler``: None, "lambda" (per step, 1/(1 + 0.1 t): the first step trains at the base LR) or "onecycle";
    ``use_attr=False`` builds the optimizer from a constant instead of ``self.lr`` (and has no ``lr`` attribute);
    ``groups``: two param groups, the second at 0.1x the first.
    """

    def __init__(self, scheduler: str | None = None, *, use_attr: bool = True, groups: bool = False,
                 as_dict: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 1))
        if use_attr:
            self.lr = 0.01
        self.use_attr, self.scheduler, self.groups, self.as_dict = use_attr, scheduler, groups, as_dict
        self.seen = torchmetrics.SumMetric()  # counts the samples training_step sees
        self.steps: list[tuple[list[float], dict[str, torch.Tensor], list[torch.Tensor]]] = []  # (lrs, weights, grads)

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        x, y = batch
        loss = nn.functional.mse_loss(self.net(x), y)
        self.seen.update(torch.tensor(float(len(x))))
        self.log("train_loss", loss)
        self.log("ones", 1.0, on_step=False, on_epoch=True, reduce_fx="sum")
        self.log("seen", self.seen, on_step=False, on_epoch=True)
        return {"loss": loss} if self.as_dict else loss

    def on_before_optimizer_step(self, optimizer: Any) -> None:
        self.steps.append(([g["lr"] for g in optimizer.param_groups], copy.deepcopy(self.state_dict()),
                           [p.grad.clone() for p in self.parameters()]))

    def configure_optimizers(self) -> Any:
        lr = self.lr if self.use_attr else 0.01
        params: Any = self.parameters()
        if self.groups:
            params = [{"params": self.net[0].parameters(), "lr": lr},
                      {"params": self.net[2].parameters(), "lr": lr / 10}]
        opt = torch.optim.SGD(params, lr=lr, momentum=0.9)
        if self.scheduler == "lambda":
            sched: Any = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0 / (1.0 + 0.1 * t))
        elif self.scheduler == "onecycle":
            max_lr = [lr, lr / 10] if self.groups else lr
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=100)
        else:
            return opt
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def _fit(model: pl.LightningModule, callbacks: list[Any] | None = None, *, loader: Any = None,
         **kw: Any) -> pl.Trainer:
    kw.setdefault("max_steps", 5)
    ckpt_path = kw.pop("ckpt_path", None)
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                         enable_checkpointing=False, num_sanity_val_steps=0, callbacks=callbacks or [], **kw)
    trainer.fit(model, loader if loader is not None else _loader(), ckpt_path=ckpt_path)
    return trainer


def _quiet_fit(model: pl.LightningModule, callbacks: list[Any], **kw: Any) -> pl.Trainer:
    """``_fit``, asserting FindLRCallback warned about nothing (its fallbacks warn)."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        trainer = _fit(model, callbacks, **kw)
    assert not [str(w.message) for w in record if "FindLRCallback" in str(w.message)]
    return trainer


def _by_hand(model: Net, loader: Any = None, **kw: Any) -> lrkit.FinderResult:
    """lrkit.find_lr run by hand on the module, the optimizer its configure_optimizers builds, and the loader."""
    built = model.configure_optimizers()
    opt = built["optimizer"] if isinstance(built, dict) else built
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log outside a Trainer: Lightning warns and logs nothing
        return lrkit.find_lr(model, opt, loader if loader is not None else _loader(), num_steps=STEPS,
                             step_fn=lambda m, b: m.training_step(b, 0), **kw)


# ------------------------------------------------------------------ the key check: the same test as by hand
def test_the_result_equals_find_lr_run_by_hand_on_the_same_module_optimizer_and_loader() -> None:
    callback = FindLRCallback(num_steps=STEPS)
    _fit(Net(), [callback])
    by_hand = _by_hand(Net())
    assert callback.result is not None and callback.result.lrs == by_hand.lrs
    assert callback.result.losses == by_hand.losses  # bit for bit: same batches, same steps
    assert callback.result.suggestion == by_hand.suggestion == callback.lr


def test_accumulate_grad_batches_and_gradient_clip_val_are_the_tests_accumulation_and_clipping() -> None:
    callback = FindLRCallback(num_steps=STEPS)
    _fit(Net(), [callback], accumulate_grad_batches=2, gradient_clip_val=0.5)
    plain = _by_hand(Net())
    assert callback.result.losses != plain.losses  # the settings changed the test ...
    by_hand = _by_hand(Net(), accumulation_steps=2, max_grad_norm=0.5)
    assert callback.result.losses == by_hand.losses  # ... into exactly find_lr's with them
    assert callback.result.suggestion == by_hand.suggestion


def test_clipping_by_value_is_warned_about_and_the_test_runs_unclipped() -> None:
    callback = FindLRCallback(num_steps=STEPS)
    with pytest.warns(UserWarning, match=r"clips gradients by value.*runs without clipping"):
        _fit(Net(), [callback], max_steps=1, gradient_clip_val=0.5, gradient_clip_algorithm="value")
    assert callback.result.losses == _by_hand(Net()).losses


def test_bf16_mixed_precision_is_the_tests_amp() -> None:
    callback = FindLRCallback(num_steps=STEPS)
    _fit(Net(), [callback], precision="bf16-mixed", max_steps=1)
    by_hand = _by_hand(Net(), amp="bf16")
    assert callback.result.losses == by_hand.losses
    assert callback.result.losses != _by_hand(Net()).losses


def test_a_grad_scaler_of_16_mixed_is_the_tests_and_is_put_back() -> None:
    class CountingScaler(torch.amp.GradScaler):
        updates = 0

        def update(self, new_scale: Any = None) -> None:
            CountingScaler.updates += 1
            super().update(new_scale)

    scaler = CountingScaler("cpu", init_scale=2.0 ** 10)
    callback = FindLRCallback(num_steps=STEPS)
    seen: list[tuple[float, int]] = []

    class Spy(pl.Callback):
        def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            seen.append((scaler.get_scale(), CountingScaler.updates))

    _fit(Net(), [callback, Spy()], max_steps=1, plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)])
    steps = len(callback.result.losses)  # (the test may stop early on divergence)
    # the test stepped through Lightning's scaler (the diverged last step takes none), whose scale is put back
    assert len(seen) == 1 and seen[0][0] == 2.0 ** 10 and steps - 1 <= seen[0][1] <= steps


# ------------------------------------------------------------------ the LR the fit trains at
@pytest.mark.parametrize("groups", [False, True])
def test_attr_path_rebuilds_the_optimizer_from_self_lr_so_the_first_step_trains_at_the_suggestion(groups: bool) -> None:
    model = Net("lambda", groups=groups)
    callback = FindLRCallback(num_steps=STEPS)
    trainer = _quiet_fit(model, [callback], max_steps=2)
    lr = callback.result.suggestion
    assert callback.lr == lr == model.lr
    first_lrs = model.steps[0][0]
    assert first_lrs[0] == pytest.approx(lr, rel=1e-12)
    if groups:
        assert first_lrs[1] == pytest.approx(lr / 10, rel=1e-12)
    assert trainer.lr_scheduler_configs[0].scheduler.base_lrs[0] == pytest.approx(lr, rel=1e-12)


def test_attr_path_with_onecycle_built_from_self_lr_peaks_at_the_suggestion() -> None:
    model = Net("onecycle")
    callback = FindLRCallback(num_steps=STEPS)
    trainer = _quiet_fit(model, [callback], max_steps=2)
    lr = callback.lr
    assert lr == callback.result.suggestion and model.lr == lr
    assert trainer.optimizers[0].param_groups[0]["max_lr"] == pytest.approx(lr, rel=1e-12)
    assert model.steps[0][0][0] == pytest.approx(lr / 25, rel=1e-12)  # OneCycleLR starts at max_lr / div_factor


def test_attr_in_hparams_is_found_and_set() -> None:
    class HNet(Net):
        def __init__(self, learning_rate: float = 0.01) -> None:
            super().__init__(use_attr=False)
            self.save_hyperparameters()

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=self.hparams.learning_rate)

    model = HNet()
    callback = FindLRCallback(num_steps=STEPS)
    _quiet_fit(model, [callback], max_steps=1)
    assert model.hparams.learning_rate == callback.lr == callback.result.suggestion
    assert model.steps[0][0] == [callback.lr]


@pytest.mark.parametrize("scheduler", ["lambda", "onecycle"])
def test_without_an_attribute_the_built_optimizer_and_scheduler_are_scaled_keeping_the_groups_ratio(
        scheduler: str) -> None:
    model = Net(scheduler, use_attr=False, groups=True)
    callback = FindLRCallback(num_steps=STEPS)
    trainer = _quiet_fit(model, [callback], max_steps=3)
    lr = callback.lr
    assert lr == callback.result.suggestion and not hasattr(model, "lr")
    first = model.steps[0][0]
    start = lr if scheduler == "lambda" else lr / 25
    assert first == pytest.approx([start, start / 10], rel=1e-12)
    sched = trainer.lr_scheduler_configs[0].scheduler
    if scheduler == "onecycle":
        assert [g["max_lr"] for g in trainer.optimizers[0].param_groups] == pytest.approx([lr, lr / 10], rel=1e-12)
    else:  # the schedule goes on from the scaled base: step 2 trains at lr / (1 + 0.1 * 2)
        assert sched.base_lrs == pytest.approx([lr, lr / 10], rel=1e-12)
        assert model.steps[2][0][0] == pytest.approx(lr / 1.2, rel=1e-12)


def test_attr_name_false_scales_the_built_optimizer_and_leaves_the_attribute_alone() -> None:
    model = Net("lambda")
    callback = FindLRCallback(num_steps=STEPS, attr_name=False)
    _fit(model, [callback], max_steps=1)
    assert model.lr == 0.01 and model.steps[0][0] == pytest.approx([callback.lr], rel=1e-12)


def test_an_attribute_configure_optimizers_does_not_read_is_warned_about_and_the_optimizer_scaled() -> None:
    model = Net(use_attr=False)
    model.lr = 0.5  # present, but configure_optimizers builds from 0.01
    callback = FindLRCallback(num_steps=STEPS)
    with pytest.warns(UserWarning, match=r"Net.lr was set to .* does not read lr"):
        _fit(model, [callback], max_steps=1)
    assert model.steps[0][0] == pytest.approx([callback.lr], rel=1e-12)


# ------------------------------------------------------------------ nothing of the test is left in the fit
def test_the_fit_starts_from_exactly_the_weights_and_rng_it_would_have_without_the_callback() -> None:
    plain = Net(use_attr=False)
    _fit(plain, loader=_loader(shuffle=True), max_steps=1)
    model = Net(use_attr=False)
    callback = FindLRCallback(num_steps=STEPS)
    _fit(model, [callback], loader=_loader(shuffle=True), max_steps=1)
    (lrs_a, weights_a, grads_a), (lrs_b, weights_b, grads_b) = plain.steps[0], model.steps[0]
    assert lrs_a == [0.01] and lrs_b == [callback.lr] != lrs_a  # the LR differs ...
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)  # ... and nothing else: same weights,
    assert all(torch.equal(a, b) for a, b in zip(grads_a, grads_b, strict=True))  # same shuffled batch, same grads
    assert model.trainer.optimizers[0].state_dict()["state"] != {}  # (the fit's own step)


def test_self_log_in_training_step_works_and_the_logged_metrics_count_no_finder_step() -> None:
    model = Net()
    callback = FindLRCallback(num_steps=STEPS)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        trainer = _fit(model, [callback], max_steps=5)
    assert not [w for w in record if "self.log" in str(w.message)]
    metrics = trainer.logged_metrics
    assert float(metrics["ones"]) == 5.0  # the fit's 5 steps, not 5 + STEPS
    assert float(metrics["seen"]) == 5 * 16  # the torchmetric counted the fit's batches only
    assert set(metrics) == {"train_loss", "ones", "seen"}
    assert "log" not in model.__dict__ and "log_dict" not in model.__dict__  # the methods are back


def test_a_training_step_returning_a_dict_and_a_module_train_dataloader_are_used() -> None:
    class DNet(Net):
        def train_dataloader(self) -> Any:
            return _loader()

    callback = FindLRCallback(num_steps=STEPS)
    model = DNet(as_dict=True)
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                         enable_checkpointing=False, max_steps=1, callbacks=[callback])
    trainer.fit(model)
    assert callback.result.losses == _by_hand(Net()).losses


def test_together_with_monitor_callback_the_monitor_sees_only_the_fits_steps_on_the_new_optimizer() -> None:
    model = Net("lambda")
    monitor = MonitorCallback(monitor_metric=None)
    callback = FindLRCallback(num_steps=STEPS)
    trainer = _fit(model, [monitor, callback], max_steps=6)
    assert monitor.monitor.summary()["steps"] == 6 and monitor.monitor.events == []
    assert monitor.monitor.optimizer is trainer.optimizers[0]
    assert model.steps[0][0] == pytest.approx([callback.lr], rel=1e-12)


def test_out_writes_the_record_and_the_plot(tmp_path: Any) -> None:
    callback = FindLRCallback(num_steps=STEPS, out=tmp_path / "finder")
    _fit(Net(), [callback], max_steps=1)
    again = lrkit.FinderResult.from_json(tmp_path / "finder" / "lr_find.json")
    assert again.suggestion == callback.lr
    assert (tmp_path / "finder" / "lr_find.png").stat().st_size > 1000


def test_a_resumed_fit_runs_no_test_and_keeps_the_lr_of_the_checkpoint(tmp_path: Any) -> None:
    callback = FindLRCallback(num_steps=STEPS)
    model = Net()
    trainer = _fit(model, [callback], max_steps=2)
    ckpt = tmp_path / "a.ckpt"
    trainer.save_checkpoint(ckpt)
    resumed = FindLRCallback(num_steps=STEPS)
    model2 = Net()
    _fit(model2, [resumed], max_steps=3, ckpt_path=str(ckpt))
    assert resumed.result is None and resumed.lr == callback.lr
    assert model2.steps[0][0] == pytest.approx([callback.lr], rel=1e-12)  # the checkpoint's optimizer LR


# ------------------------------------------------------------------ clear errors
class Manual(ManualOptimizationMixin, Net):
    """``Net`` optimized by hand (``automatic_optimization = False``)."""


class TwoOptimizers(Net):
    def configure_optimizers(self) -> Any:
        return [torch.optim.SGD(self.net[0].parameters(), lr=0.01), torch.optim.Adam(self.net[2].parameters())]


def test_manual_optimization_is_refused_saying_to_run_find_lr_by_hand() -> None:
    with pytest.raises(ValueError, match=r"automatic_optimization is False.*lrkit.find_lr yourself"):
        _fit(Manual(), [FindLRCallback()], max_steps=1)


def test_two_optimizers_are_refused() -> None:
    model = TwoOptimizers()
    model.automatic_optimization = False
    with pytest.raises(ValueError, match=r"one optimizer.*gave 2 \(SGD, Adam\)"):
        _fit(model, [FindLRCallback()], max_steps=1)


def test_more_than_one_process_is_refused_naming_the_world_size() -> None:
    model = Net()
    trainer = SimpleNamespace(ckpt_path=None, fast_dev_run=False, optimizers=[torch.optim.SGD(model.parameters())],
                              world_size=2, strategy=SimpleNamespace())
    with pytest.raises(ValueError, match=r"world_size=2.*one-device fit first"):
        FindLRCallback().on_fit_start(trainer, model)


def test_a_missing_attr_name_is_refused_before_the_test_runs() -> None:
    callback = FindLRCallback(num_steps=STEPS, attr_name="learning_rate")
    with pytest.raises(ValueError, match=r"attr_name='learning_rate'.*Net has no attribute"):
        _fit(Net(), [callback], max_steps=1)
    assert callback.result is None


def test_a_training_step_returning_none_is_a_clear_error() -> None:
    class NoneNet(Net):
        def training_step(self, batch: Any, batch_idx: int) -> None:
            return None

    with pytest.raises(ValueError, match=r"NoneNet.training_step returned None.*needs the loss"):
        _fit(NoneNet(), [FindLRCallback(num_steps=STEPS)], max_steps=1)


def test_a_test_too_short_to_judge_stops_the_fit_saying_lower_start_lr_and_keeps_the_curve() -> None:
    model = Net()
    callback = FindLRCallback(num_steps=STEPS, start_lr=10.0, end_lr=1e6)
    with pytest.raises(ValueError, match="cannot suggest an LR.*lower start_lr"):
        _fit(model, [callback], max_steps=1)
    assert callback.result is not None and callback.result.stop_reason == "diverged"
    assert callback.lr is None and model.lr == 0.01


def test_bad_keywords_and_values_are_refused_when_the_callback_is_built() -> None:
    with pytest.raises(ValueError, match="diverge_factr.*Did you mean 'diverge_factor'"):
        FindLRCallback(diverge_factr=5.0)
    for name, where in (("model", "LightningModule"), ("optimizer", "trainer.optimizers"),
                        ("train_loader", "train dataloader"), ("step_fn", "training_step"),
                        ("loss_fn", "training_step"), ("accumulation_steps", "accumulate_grad_batches"),
                        ("scaler", "precision plugin"), ("amp", "precision="), ("max_grad_norm", "gradient_clip_val"),
                        ("device", "strategy's device")):
        with pytest.raises(ValueError, match=rf"FindLRCallback\({name}=...\): the callback takes it from .*{where}"):
            FindLRCallback(**{name: None})
    with pytest.raises(ValueError, match="mode='exp'"):
        FindLRCallback(mode="exponential")
    with pytest.raises(ValueError, match="valey.*Did you mean 'valley'"):
        FindLRCallback(rule="valey")
    with pytest.raises(ValueError, match="end_lr=0.001 must be greater than start_lr=0.01"):
        FindLRCallback(start_lr=0.01, end_lr=1e-3)
    with pytest.raises(ValueError, match="num_steps"):
        FindLRCallback(num_steps=5)
    with pytest.raises(ValueError, match="diverge_factor=1"):
        FindLRCallback(diverge_factor=1)
    with pytest.raises(ValueError, match="attr_name=True"):
        FindLRCallback(attr_name=True)


def test_import_is_lazy_and_a_missing_lightning_says_how_to_install_it() -> None:
    code = (
        "import sys, lrkit, lrkit.integrations.lightning as li\n"
        "assert 'FindLRCallback' in li.__all__ and 'MonitorCallback' in li.__all__\n"
        "assert not any(m == 'lightning' or m.startswith(('lightning.', 'pytorch_lightning')) for m in sys.modules)\n"
        "sys.modules['lightning'] = None; sys.modules['lightning.pytorch'] = None\n"
        "try:\n"
        "    from lrkit.integrations.lightning import FindLRCallback\n"
        "except ImportError as e:\n"
        "    print('ERR', e)\n"
        "try:\n"
        "    li.Nope\n"
        "except AttributeError as e:\n"
        "    print('ATTR', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ERR" in out.stdout and "FindLRCallback needs PyTorch Lightning" in out.stdout
    assert "pip install lightning" in out.stdout and "ATTR" in out.stdout and "'Nope'" in out.stdout


def test_the_docstring_example_runs() -> None:
    import doctest

    finder = doctest.DocTestFinder(recurse=False)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = finder.find(FindLRCallback, "FindLRCallback", globs={})
    assert tests and tests[0].examples
    for test in tests:
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
