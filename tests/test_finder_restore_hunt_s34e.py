"""Session 34e's hunt of ``lrkit.find_lr``'s in-memory restore with models and optimizers practitioners have."""

from __future__ import annotations

import warnings

import torch

import lrkit


def _loader(seed: int = 0) -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 8, generator=g)
    y = torch.randint(0, 3, (64,), generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)


def _find(model: torch.nn.Module, opt: torch.optim.Optimizer, **kwargs: object) -> lrkit.FinderResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lrkit.find_lr(model, opt, _loader(), num_steps=20, **kwargs)


class _RegistersOnFirstUse(torch.nn.Module):
    """A layer whose forward registers a statistics buffer the first time it runs (a hook-style activation tracker),
    followed by a BatchNorm: the new buffer comes *before* the BatchNorm's in ``model.buffers()``."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.lin(x)
        if "act_sum" not in self._buffers:
            self.register_buffer("act_sum", torch.zeros(8))
        self.act_sum += out.detach().sum(0)
        return out


def test_a_buffer_registered_during_the_test_does_not_shift_the_restore_of_the_others() -> None:
    # The snapshot restored buffers by position in model.buffers(): one registered during the test before the
    # BatchNorm's took the BatchNorm's running_mean, running_mean took running_var, running_var got the scalar
    # num_batches_tracked broadcast into it, silently, and the new buffer stayed with the test's values.
    torch.manual_seed(0)
    model = torch.nn.Sequential(_RegistersOnFirstUse(), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    model(torch.randn(16, 8))  # running stats that are not the defaults
    del model[0]._buffers["act_sum"]  # as a model whose tracker has not run yet
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    _find(model, opt)
    after = model.state_dict()
    for k, v in before.items():
        assert torch.equal(after[k], v), k
    assert set(after) == set(before)  # no buffer left behind by the test
    assert opt.param_groups[0]["lr"] == 0.1


class _GrowingCache(torch.nn.Module):
    """A RoPE-style non-persistent cache, replaced by a longer one when a longer sequence comes."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(8, 3)
        self.register_buffer("cache", torch.arange(4.0).unsqueeze(0), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.cache.shape[1] < 8:
            self.cache = torch.arange(8.0).unsqueeze(0)
        return self.lin(x + self.cache.mean())


def test_a_buffer_replaced_by_one_of_another_shape_is_restored_and_so_is_everything_after_it() -> None:
    # restore() copied each saved buffer into whatever tensor the module held then: a (1, 4) value into the (1, 8)
    # cache raised a RuntimeError from inside find_lr's `finally`, and everything restored after the buffers was
    # not: the optimizer was left at end_lr=10 with the test's state, and the RNGs where the test left them.
    torch.manual_seed(0)
    model = _GrowingCache()
    cache = model.cache
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    weight = model.lin.weight.detach().clone()
    rng = torch.get_rng_state()
    _find(model, opt)
    assert model.cache is cache and torch.equal(cache, torch.arange(4.0).unsqueeze(0))
    assert "cache" not in model.state_dict()  # still non-persistent
    assert opt.param_groups[0]["lr"] == 1e-3 and not opt.state
    assert torch.equal(model.lin.weight, weight)
    assert torch.equal(torch.get_rng_state(), rng)


class _LazyStat(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(8, 3)
        self.register_buffer("center", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.center is None:
            self.center = x.detach().mean(0)
        return self.lin(x - self.center)


def test_a_buffer_that_was_none_is_none_again() -> None:
    # A buffer registered as None and filled on first use kept the value the test's first batch gave it.
    torch.manual_seed(0)
    model = _LazyStat()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    _find(model, opt)
    assert model.center is None and "center" in model._buffers
    assert set(model.state_dict()) == {"lin.weight", "lin.bias"}


class _LazyGate(torch.nn.Module):
    """A gate parameter created on the first forward (lazy initialisation without a Lazy module)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if "gate" not in self._parameters:
            self.gate = torch.nn.Parameter(torch.ones(8))
        return self.lin(x) * self.gate


def test_a_parameter_registered_during_the_test_leaves_the_model_and_optimizer_restored() -> None:
    # Parameters were restored by position too: the new gate came first, took lin.weight's saved value and the
    # restore stopped on the shape error, leaving every weight as the test's last (diverging) step left it, the
    # optimizer at end_lr with the test's momentum, and the RNGs moved.
    torch.manual_seed(0)
    model = torch.nn.Sequential(_LazyGate(), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    rng = torch.get_rng_state()
    _find(model, opt)
    after = model.state_dict()
    assert set(after) == set(before)
    for k, v in before.items():
        assert torch.equal(after[k], v), k
    assert opt.param_groups[0]["lr"] == 0.1 and not opt.state
    assert torch.equal(torch.get_rng_state(), rng)


class _LazyProjection(torch.nn.Module):
    """A projection (with a BatchNorm) built on the first forward, once the input width is known."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if "proj" not in self._modules:
            self.proj = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 8), torch.nn.BatchNorm1d(8))
        return self.proj(self.lin(x))


def test_a_layer_built_during_the_test_leaves_the_rest_restored_and_modes_aligned() -> None:
    # A submodule built in a forward put its parameters, buffers and module ahead of the later ones: their values
    # and train/eval modes were restored one place off (here: a shape error part-way, nothing after it restored).
    torch.manual_seed(0)
    model = torch.nn.Sequential(_LazyProjection(), torch.nn.ReLU(), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 3))
    model(torch.randn(16, 8))
    del model[0].proj  # as a model that has not run yet
    model[2].eval()  # a frozen BatchNorm
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    _find(model, opt)
    after = model.state_dict()
    assert set(after) == set(before)
    for k, v in before.items():
        assert torch.equal(after[k], v), k
    assert [m.training for m in model.modules()] == [True, True, True, True, False, True]
    assert opt.param_groups[0]["lr"] == 0.1 and not opt.state


def test_a_buffer_re_registered_during_the_test_is_restored_in_its_own_place() -> None:
    # A buffer deleted and registered again comes last in model.buffers(): a restore by position swaps its value
    # with the one after it.
    class Reorders(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(8, 3)
            self.register_buffer("a", torch.zeros(3))
            self.register_buffer("b", torch.ones(3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            a = self._buffers.pop("a")
            self.register_buffer("a", a + 1)
            return self.lin(x) + self.a * 0

    torch.manual_seed(0)
    model = Reorders()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    _find(model, opt)
    assert list(model._buffers) == ["a", "b"]
    assert torch.equal(model.a, torch.zeros(3)) and torch.equal(model.b, torch.ones(3))
