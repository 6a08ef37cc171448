"""Bug hunt 6: find_lr with the optimizers and training set-ups users really have.

Every torch.optim class, the schedule-free and Prodigy peers (optional: skipped when not installed), maximize=True,
frozen or duplicated parameters, an autocast region around the call, and torch.distributed ranks that disagree.
The strongest check of "restored bit for bit" used here: training on after find_lr gives exactly the parameters of
the same training without it (any state the finder left behind, in the optimizer's state, its groups or its own
attributes, would change the later steps).
"""

from __future__ import annotations

import copy
import datetime
import gc
import json
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import lrkit
from _helpers import free_port

Batch = tuple[torch.Tensor, torch.Tensor]
MakeOpt = Callable[[Any], torch.optim.Optimizer]


def batches(n: int = 192, seed: int = 0) -> list[Batch]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    return [(x[i:i + 16], y[i:i + 16]) for i in range(0, n, 16)]


def mlp(bn: bool = True) -> torch.nn.Module:
    torch.manual_seed(0)
    mid: list[torch.nn.Module] = [torch.nn.BatchNorm1d(16)] if bn else []
    return torch.nn.Sequential(torch.nn.Linear(6, 16), *mid, torch.nn.ReLU(), torch.nn.Linear(16, 3))


def train(model: torch.nn.Module, opt: torch.optim.Optimizer, data: list[Batch], closure: bool = False) -> None:
    for x, y in data:
        def step(x: torch.Tensor = x, y: torch.Tensor = y) -> torch.Tensor:
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            return loss

        if closure:
            opt.step(step)
        else:
            step()
            opt.step()


def run_finder(model: torch.nn.Module, opt: torch.optim.Optimizer, data: list[Batch], **kw: Any) -> lrkit.FinderResult:
    kw = {"num_steps": 20, "start_lr": 1e-5, "end_lr": 10.0, **kw}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lrkit.find_lr(model, opt, data, loss_fn=torch.nn.functional.cross_entropy, **kw)


def assert_same_tree(a: Any, b: Any, where: str = "state") -> None:
    """``a`` and ``b`` hold the same values, tensors bit for bit (an optimizer's state: dicts, lists, numbers)."""
    if isinstance(b, torch.Tensor):
        assert isinstance(a, torch.Tensor) and a.dtype == b.dtype and a.layout == b.layout, where
        assert torch.equal(a.to_dense() if a.is_sparse else a, b.to_dense() if b.is_sparse else b), where
    elif isinstance(b, dict):
        assert isinstance(a, dict) and a.keys() == b.keys(), where
        for k in b:
            assert_same_tree(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(b, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tree(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def assert_find_lr_leaves_no_trace(make: MakeOpt, *, closure: bool = False, prep: Callable[[Any], Any] | None = None,
                                   before: Callable[[Any], Any] | None = None,
                                   after: Callable[[Any], Any] | None = None) -> lrkit.FinderResult:
    """Train 3 steps, run find_lr, train 4 more: bit for bit the 7 steps without find_lr in between."""
    data = batches()
    model = mlp()
    opt = make(model.parameters())
    if prep:
        prep(opt)
    train(model, opt, data[:3], closure)
    if before:
        before(opt)
    sd = copy.deepcopy(opt.state_dict())
    result = run_finder(model, opt, data)
    assert result.num_steps_run >= 10
    new = opt.state_dict()
    assert [{k: v for k, v in g.items() if k != "params"} for g in new["param_groups"]] == [
        {k: v for k, v in g.items() if k != "params"} for g in sd["param_groups"]
    ]
    assert_same_tree(new["state"], sd["state"])
    if after:
        after(opt)
    train(model, opt, data[3:7], closure)
    ref = mlp()
    ref_opt = make(ref.parameters())
    if prep:
        prep(ref_opt)
    train(ref, ref_opt, data[:7], closure)
    for (name, p), q in zip(model.named_parameters(), ref.parameters()):
        assert torch.equal(p, q), name
    for (name, b), c in zip(model.named_buffers(), ref.buffers()):
        assert torch.equal(b, c), name
    return result


O = torch.optim
TORCH_OPTIMIZERS: dict[str, MakeOpt] = {
    "Adagrad": lambda p: O.Adagrad(p, lr=0.01, lr_decay=0.01),
    "Adagrad-foreach": lambda p: O.Adagrad(p, lr=0.01, foreach=True),
    "Adadelta": lambda p: O.Adadelta(p, lr=1.0, weight_decay=0.01),
    "Adamax": lambda p: O.Adamax(p, lr=2e-3),
    "ASGD": lambda p: O.ASGD(p, lr=0.01, t0=2),
    "ASGD-foreach": lambda p: O.ASGD(p, lr=0.01, t0=2, foreach=True),
    "NAdam-decoupled": lambda p: O.NAdam(p, lr=2e-3, weight_decay=0.01, decoupled_weight_decay=True),
    "RAdam": lambda p: O.RAdam(p, lr=1e-3, decoupled_weight_decay=True, weight_decay=0.1),
    # (Rprop is refused since session 15, before anything is touched: tests/finder/test_state_lr_optimizers_s15.py)
    "Adafactor": lambda p: O.Adafactor(p, lr=1e-2),
    "Adam-fused": lambda p: O.Adam(p, lr=1e-3, fused=True),
    "AdamW-amsgrad-foreach": lambda p: O.AdamW(p, lr=1e-3, amsgrad=True, foreach=True),
    "SGD-fused": lambda p: O.SGD(p, lr=0.05, momentum=0.9, fused=True),
    "SGD-maximize": lambda p: O.SGD(p, lr=0.05, momentum=0.9, maximize=True),
    "Muon-2d": lambda p: O.Muon([q for q in p if q.dim() == 2], lr=0.02),  # Muon takes 2-D parameters only
}


def _in_this_torch(name: str) -> Any:
    """The test's parameter, skipped on a torch release without that optimizer (Adafactor: 2.5; Muon: later)."""
    cls = name.split("-")[0]
    return pytest.param(name, marks=pytest.mark.skipif(not hasattr(O, cls), reason=f"torch.optim.{cls} is not in "
                                                       f"torch {torch.__version__}"))


@pytest.mark.parametrize("name", [_in_this_torch(n) for n in sorted(TORCH_OPTIMIZERS)])
def test_every_torch_optimizer_leaves_no_trace(name: str) -> None:
    assert_find_lr_leaves_no_trace(TORCH_OPTIMIZERS[name])


@pytest.mark.parametrize("line_search", [None, "strong_wolfe"])
def test_lbfgs_leaves_no_trace(line_search: str | None) -> None:
    assert_find_lr_leaves_no_trace(
        lambda p: O.LBFGS(p, lr=0.5, max_iter=3, history_size=5, line_search_fn=line_search), closure=True
    )


def test_sparse_adam_on_a_sparse_embedding_leaves_no_trace() -> None:
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 40, (160, 5), generator=g)
    data = [(tokens[i:i + 16], tokens[i:i + 16, 0] % 3) for i in range(0, 160, 16)]

    class Bag(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = torch.nn.Embedding(40, 8, sparse=True)
            self.head = torch.nn.Linear(8, 3)
            self.head.requires_grad_(False)  # only the embedding trains: the optimizer is SparseAdam's

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.emb(x).mean(1))

    def make() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        torch.manual_seed(0)
        m = Bag()
        return m, torch.optim.SparseAdam(list(m.emb.parameters()), lr=1e-2)

    model, opt = make()
    train(model, opt, data[:3])
    result = run_finder(model, opt, data)
    assert result.num_steps_run >= 10
    assert model.emb.weight.grad is not None and model.emb.weight.grad.is_sparse  # its gradient stays sparse
    train(model, opt, data[3:6])
    ref, ref_opt = make()
    train(ref, ref_opt, data[:6])
    assert torch.equal(model.emb.weight, ref.emb.weight)


# -- maximize=True ----------------------------------------------------------------------------------------------
# Bug: with maximize=True the optimizer ascends what step_fn returns, but the finder judged it as a loss to lower:
# the curve "diverged" within a few steps at a tiny LR, and the suggestion was meaningless (1.6e-06 for Adam).
def test_maximize_judges_the_objective_it_ascends() -> None:
    data = batches()

    def minimize(m: torch.nn.Module, b: Batch) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(m(b[0]), b[1])

    def maximize(m: torch.nn.Module, b: Batch) -> torch.Tensor:
        return -torch.nn.functional.cross_entropy(m(b[0]), b[1])

    kw: dict[str, Any] = {"num_steps": 40, "start_lr": 1e-5, "end_lr": 10.0}
    m1 = mlp()
    low = lrkit.find_lr(m1, torch.optim.Adam(m1.parameters(), lr=1e-3), data, step_fn=minimize, **kw)
    m2 = mlp()
    high = lrkit.find_lr(m2, torch.optim.Adam(m2.parameters(), lr=1e-3, maximize=True), data, step_fn=maximize, **kw)
    # same updates, so the same curve: the objective's negative is the loss being lowered
    assert high.losses == low.losses and high.stop_reason == low.stop_reason
    assert high.suggestion == low.suggestion and high.suggestion > 1e-3


def test_groups_that_disagree_on_maximize_are_refused() -> None:
    m = mlp(bn=False)
    opt = torch.optim.SGD([{"params": m[0].parameters(), "maximize": True}, {"params": m[2].parameters()}], lr=0.1)
    with pytest.raises(ValueError, match=r"maximize.*group 0.*group 1"):
        run_finder(m, opt, batches())
    opt.param_groups.insert(0, {**opt.param_groups[1], "params": [], "maximize": False})  # an empty group is no vote
    with pytest.raises(ValueError, match=r"group 1 has maximize=True, group 2 maximize=False"):
        run_finder(m, opt, batches())


# -- frozen and duplicated parameters --------------------------------------------------------------------------
# Bug: an optimizer whose parameters are all frozen (built before requires_grad_(False), e.g. for a backbone) ran
# the whole test without changing anything and suggested 3e-08 with a "too flat" warning that blamed the range.
def test_an_optimizer_with_only_frozen_parameters_is_refused() -> None:
    m = mlp(bn=False)
    opt = torch.optim.SGD(m[0].parameters(), lr=0.1)
    m[0].requires_grad_(False)
    with pytest.raises(ValueError, match=r"requires_grad=False.*0\.weight"):
        run_finder(m, opt, batches())


def test_a_frozen_group_beside_a_trainable_one_is_fine() -> None:
    m = mlp(bn=False)
    opt = torch.optim.Adam([{"params": m[0].parameters()}, {"params": m[2].parameters(), "lr": 1e-2}], lr=1e-3)
    m[0].requires_grad_(False)
    w = m[0].weight.detach().clone()
    result = run_finder(m, opt, batches())
    assert result.num_steps_run >= 10 and torch.equal(m[0].weight, w)


# Bug: a parameter appended to a second group after the optimizer was built (torch checks only in its constructor
# and add_param_group) was stepped twice per step, at two LRs, without a word.
def test_a_parameter_in_two_groups_is_named() -> None:
    m = mlp(bn=False)
    opt = torch.optim.SGD([{"params": m[0].parameters()}, {"params": m[2].parameters(), "lr": 0.01}], lr=0.1)
    opt.param_groups[1]["params"].append(m[0].weight)
    with pytest.raises(ValueError, match=r"'0\.weight'.*groups 0 and 1"):
        run_finder(m, opt, batches())


# -- an autocast region around the call ------------------------------------------------------------------------
# Bug: inside the user's `with torch.autocast(...)`, autocast's cache kept the bf16 copies of the weights from the
# first forward, so the whole test ran on the starting weights: a flat curve, a "too flat" warning and a 3e-08
# suggestion. (Each step must see the weights the last step wrote.)
def test_an_autocast_region_around_the_call_sees_every_update() -> None:
    data = batches()
    m1 = mlp(bn=False)
    inside_amp = run_finder(m1, torch.optim.SGD(m1.parameters(), lr=0.1), data, amp="bf16")
    m2 = mlp(bn=False)
    x = data[0][0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out_before = m2(x)
        around = run_finder(m2, torch.optim.SGD(m2.parameters(), lr=0.1), data)
        out_after = m2(x)
    assert around.losses == inside_amp.losses  # the same bf16 steps, whichever way autocast was asked for
    assert torch.equal(out_before, out_after)  # and no stale cast of the finder's last weights is left behind


def test_amp_inside_an_autocast_region_also_sees_every_update() -> None:
    data = batches()
    m1 = mlp(bn=False)
    plain = run_finder(m1, torch.optim.SGD(m1.parameters(), lr=0.1), data, amp="bf16")
    m2 = mlp(bn=False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        m2(data[0][0])  # fills the cache with the starting weights
        nested = run_finder(m2, torch.optim.SGD(m2.parameters(), lr=0.1), data, amp="bf16")
    assert nested.losses == plain.losses


# -- schedule-free (optional peer) -----------------------------------------------------------------------------
def test_schedule_free_in_train_mode_leaves_no_trace() -> None:
    sf = pytest.importorskip("schedulefree")
    assert_find_lr_leaves_no_trace(lambda p: sf.AdamWScheduleFree(p, lr=1e-3), prep=lambda o: o.train())


# Bug: with the optimizer in eval mode (where it is after evaluation or a checkpoint), find_lr died in the
# optimizer's step with a bare `Exception: Optimizer was not in train mode`.
@pytest.mark.parametrize("kind", ["AdamWScheduleFree", "SGDScheduleFree", "ScheduleFreeWrapper"])
def test_schedule_free_in_eval_mode_is_trained_and_put_back(kind: str) -> None:
    sf = pytest.importorskip("schedulefree")
    make: MakeOpt = {
        "AdamWScheduleFree": lambda p: sf.AdamWScheduleFree(p, lr=1e-3),
        "SGDScheduleFree": lambda p: sf.SGDScheduleFree(p, lr=0.1),
        "ScheduleFreeWrapper": lambda p: sf.ScheduleFreeWrapper(torch.optim.SGD(p, lr=0.1)),
    }[kind]

    def in_train(opt: Any) -> bool:
        return bool(getattr(opt, "train_mode", False) or opt.param_groups[0].get("train_mode", False))

    held: list[torch.Tensor] = []

    def to_eval(opt: Any) -> None:
        opt.eval()  # the parameters now hold the averaged x sequence
        held.extend(p.detach().clone() for g in opt.param_groups for p in g["params"])

    def check_eval_mode_kept(opt: Any) -> None:
        assert not in_train(opt)  # still in eval mode, with the very same x-sequence weights
        assert all(torch.equal(p, h) for p, h in zip([p for g in opt.param_groups for p in g["params"]], held))
        opt.train()

    assert_find_lr_leaves_no_trace(make, prep=lambda o: o.train(), before=to_eval, after=check_eval_mode_kept)


# Bug: schedule-free's warmup_steps scales the LR by (k+1)/warmup_steps inside step(), so a range test on a young
# optimizer swept a fraction of the LRs it recorded, and suggested LRs too high by that factor.
def test_schedule_free_warmup_does_not_shrink_the_sweep() -> None:
    sf = pytest.importorskip("schedulefree")
    data = batches()
    curves = []
    for warmup in (0, 1000):
        m = mlp()
        opt = sf.AdamWScheduleFree(m.parameters(), lr=1e-3, warmup_steps=warmup)
        opt.train()
        curves.append(run_finder(m, opt, data, num_steps=30).losses)
        assert opt.param_groups[0]["warmup_steps"] == warmup and opt.param_groups[0]["k"] == 0
    assert curves[0] == curves[1]


# -- Prodigy (optional peer) -----------------------------------------------------------------------------------
# Bug: Prodigy's lr is a multiplier of its own step-size estimate d; find_lr swept it like an LR and suggested
# 3.16 without a word.
def test_prodigy_is_restored_and_warned_about() -> None:
    prodigyopt = pytest.importorskip("prodigyopt")
    result = assert_find_lr_leaves_no_trace(lambda p: prodigyopt.Prodigy(p, lr=1.0))
    assert any("Prodigy" in w and "multiplier" in w and "lr=1.0" in w for w in result.warnings), result.warnings
    m = mlp()
    with pytest.warns(UserWarning, match="adapts its own step size"):
        lrkit.find_lr(m, prodigyopt.Prodigy(m.parameters()), batches(), num_steps=20, start_lr=1e-3)


# -- torch.distributed -----------------------------------------------------------------------------------------
def _rank_loader(rank: int, n: int) -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(rank)
    x = torch.randn(n, 4, generator=g)
    y = (x @ torch.tensor([1.0, -2.0, 0.5, 3.0])).unsqueeze(1)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    # a short timeout: a rank left waiting fails the test in seconds rather than hanging it for 30 minutes
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=20))
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    record: dict[str, Any] = {}
    torch.manual_seed(0)
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(4, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    before = [p.detach().clone() for p in model.parameters()]
    calls = [0]

    def nan_on_rank1(m: torch.nn.Module, b: Batch) -> torch.Tensor:
        calls[0] += 1
        loss = torch.nn.functional.mse_loss(m(b[0]), b[1])
        return loss * float("nan") if rank == 1 and calls[0] >= 12 else loss

    # ranks whose loaders have different lengths (4 and 7 batches), with accumulation that is a multiple of neither
    r = lrkit.find_lr(model, opt, _rank_loader(rank, 64 if rank == 0 else 112), num_steps=25, start_lr=1e-4,
                      end_lr=1.0, accumulation_steps=3)
    record["uneven"] = {"losses": r.losses, "suggestion": r.suggestion}
    # a rank whose loss goes non-finite first: every rank stops at the same step
    r = lrkit.find_lr(model, opt, _rank_loader(rank, 128), num_steps=25, start_lr=1e-4, end_lr=1.0,
                      step_fn=nan_on_rank1)
    record["nan"] = {"steps": r.num_steps_run, "stop": r.stop_reason, "suggestion": r.suggestion}
    record["restored"] = all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    # Bug: a rank whose loader is empty raised at once while the other waited in DDP's gradient all-reduce until
    # the process group timed out (30 minutes by default), then died with a gloo "Timed out waiting" error.
    try:
        lrkit.find_lr(model, opt, _rank_loader(rank, 0 if rank == 1 else 64), num_steps=20)
        record["empty"] = "no error"
    except ValueError as e:
        record["empty"] = str(e)
    except RuntimeError as e:
        record["empty"] = f"RuntimeError: {e}"
    Path(out, f"rank{rank}.json").write_text(json.dumps(record))
    del model, opt
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def ddp_ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("ddp6")
    mp.spawn(_ddp_worker, args=(2, free_port(), str(out)), nprocs=2, join=True)
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


needs_gloo = pytest.mark.skipif(not dist.is_available() or sys.platform == "win32",
                                reason="needs torch.distributed with gloo")


@needs_gloo
def test_ranks_with_loaders_of_different_lengths_agree(ddp_ranks: list[dict[str, Any]]) -> None:
    r0, r1 = ddp_ranks
    assert r0["uneven"] == r1["uneven"] and len(r0["uneven"]["losses"]) >= 10


@needs_gloo
def test_a_rank_whose_loss_goes_non_finite_first_stops_every_rank(ddp_ranks: list[dict[str, Any]]) -> None:
    r0, r1 = ddp_ranks
    assert r0["nan"] == r1["nan"]
    assert r0["nan"]["stop"] == "non-finite" and r0["nan"]["steps"] == 12
    assert r0["restored"] and r1["restored"]


@needs_gloo
def test_an_empty_loader_on_one_rank_is_named_on_every_rank(ddp_ranks: list[dict[str, Any]]) -> None:
    for r in ddp_ranks:
        assert "rank 1" in r["empty"] and "no batches" in r["empty"], r["empty"]


# -- a GradScaler passed in ------------------------------------------------------------------------------------
# Bug: find_lr(..., scaler=my_scaler) was a TypeError, so fp16 users could not run the test at the loss scale their
# training had reached (a fresh scaler at 2**16 skips its first steps on overflow).
def test_a_scaler_passed_in_is_used_and_put_back() -> None:
    data = batches()
    m1 = mlp(bn=False)
    plain = run_finder(m1, torch.optim.SGD(m1.parameters(), lr=0.1, momentum=0.9), data)
    m2 = mlp(bn=False)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8, growth_interval=1)
    before = scaler.state_dict()
    seen: list[float] = []
    scaled = run_finder(m2, torch.optim.SGD(m2.parameters(), lr=0.1, momentum=0.9), data, scaler=scaler,
                        progress=lambda *_: seen.append(scaler.get_scale()))
    assert seen[0] == 2.0**8 and seen[-1] == 2.0**27  # the test ran with this scaler, growing it at every step ...
    assert scaler.state_dict() == before and scaler.get_scale() == 2.0**8  # ... and gave it back as it was
    assert scaled.losses == plain.losses  # power-of-two scaling, unscaled before the step: the same updates


def test_a_scaler_that_is_not_one_is_named() -> None:
    m = mlp(bn=False)
    with pytest.raises(ValueError, match=r"scaler=dict is not a GradScaler"):
        run_finder(m, torch.optim.SGD(m.parameters(), lr=0.1), batches(), scaler={})


def test_lbfgs_with_a_scaler_passed_in_is_refused() -> None:
    m = mlp(bn=False)
    with pytest.raises(ValueError, match=r"LBFGS needs a closure.*scaler="):
        run_finder(m, torch.optim.LBFGS(m.parameters()), batches(), scaler=torch.amp.GradScaler("cpu"))


# -- accumulation across the loader's end, and parameters only the model holds --------------------------------
def test_accumulation_that_does_not_divide_the_loader_matches_a_hand_written_loop() -> None:
    data = batches(80)  # 5 batches, 3 micro-batches per step: steps straddle the loader's end
    m = mlp(bn=False)
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    result = run_finder(m, opt, data, accumulation_steps=3, num_steps=12, start_lr=1e-3, end_lr=1.0)
    ref = mlp(bn=False)
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    stream = iter(data * 8)
    expected = []
    for lr in result.lrs:
        ref_opt.param_groups[0]["lr"] = lr
        ref_opt.zero_grad()
        total = 0.0
        for _ in range(3):
            x, y = next(stream)
            loss = torch.nn.functional.cross_entropy(ref(x), y)
            (loss / 3).backward()
            total += loss.item()
        expected.append(total / 3)
        ref_opt.step()
    assert result.losses == expected[:len(result.losses)] and len(result.losses) == 12


def test_parameters_the_optimizer_does_not_hold_stay_as_they_were() -> None:
    m = mlp(bn=False)
    opt = torch.optim.SGD(m[2].parameters(), lr=0.1, momentum=0.9)  # the first layer is trained elsewhere
    m[0].weight.grad = torch.full_like(m[0].weight, 0.5)
    held, w = m[0].weight.grad, m[0].weight.detach().clone()
    result = run_finder(m, opt, batches())
    assert result.num_steps_run >= 10
    assert torch.equal(m[0].weight, w) and m[0].weight.grad is held
    assert torch.equal(held, torch.full_like(w, 0.5)) and m[0].bias.grad is None
