"""Session 25 user walk of "Scaling the LR" (scale_lr, nominal_batch, param_groups, freeze_layers).

Bugs found on the walk, each with a failing-first test:

* ``torch.tensor(True)`` has ``__index__`` (1), so it passed as a batch size (``scale_lr(0.1, torch.tensor(True),
  256)`` returned 25.6), a layer count (``freeze_layers(model, torch.tensor(True))`` froze layer 0) and a
  ``layer_id_fn`` result, where ``True`` itself and ``np.True_`` are refused.
* A ``freeze=`` / ``head=`` string holding several names (``"body,norm"``, the command line's syntax; in Python one
  prefix) was answered "Did you mean 'norm'?" — following the advice drops ``body``. It now names the list to write.
* A name in the wrong case (``head="FC"``, ``freeze="FC"``) got no suggestion at all; it now names ``'fc'``.

Also checked (and pinned here): the README's numbers, and that discriminative ratios survive ``find_lr``.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

import lrkit
from lrkit.scaling import nominal_batch


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(4, 8)
        self.norm = nn.LayerNorm(8)
        self.fc = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.norm(self.body(x)))


# ------------------------------------------------------------------------------------------- the README's numbers


def test_readme_scale_lr_and_nominal_batch_numbers() -> None:
    opt = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)
    assert lrkit.scale_lr(0.1, 256, 1024) == pytest.approx(0.4)
    assert lrkit.scale_lr(3e-4, 64, 256, rule="sqrt") == pytest.approx(6e-4)
    assert lrkit.scale_lr(0.01, 64, 16, rule="auto", optimizer=opt) == pytest.approx(0.0025)
    assert lrkit.scale_lr(3e-4, 64, 256, optimizer="AdamW") == pytest.approx(6e-4)
    assert nominal_batch(16) == (4, 0.0005)
    assert nominal_batch(128) == (1, 0.001)


# ------------------------------------------------------------------------------- a boolean tensor is not a number


@pytest.mark.parametrize("call", [
    lambda: lrkit.scale_lr(0.1, torch.tensor(True), 256),
    lambda: lrkit.scale_lr(0.1, 64, torch.tensor(True)),
    lambda: nominal_batch(torch.tensor(True)),
    lambda: nominal_batch(16, torch.tensor(True)),
], ids=["from_batch", "to_batch", "batch", "nbs"])
def test_a_torch_bool_is_not_a_batch_size(call: object) -> None:
    with pytest.raises(ValueError, match=r"=tensor\(True\) must be a positive integer batch size"):
        call()  # type: ignore[operator]


def test_a_torch_bool_is_not_a_layer_count_nor_index() -> None:
    m = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    with pytest.raises(ValueError, match=r"freeze=tensor\(True\) must be a number of layers"):
        lrkit.freeze_layers(m, torch.tensor(True))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"freeze entry tensor\(True\) must be a layer index"):
        lrkit.freeze_layers(m, [torch.tensor(True)])  # type: ignore[list-item]
    assert all(p.requires_grad for p in m.parameters())  # a refused call froze nothing
    # a torch integer still counts, as numpy's do
    assert lrkit.freeze_layers(m, torch.tensor(1)) == ["0.weight", "0.bias"]  # type: ignore[arg-type]
    assert lrkit.scale_lr(0.1, torch.tensor(64), 256) == pytest.approx(0.4)


def test_layer_id_fn_returning_a_torch_bool_is_refused() -> None:
    m = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    with pytest.raises(ValueError, match=r"layer_id_fn\('0\.weight'\) returned tensor\(False\)"):
        lrkit.param_groups(m, 0.1, layer_decay=0.5, layer_id_fn=lambda n: torch.tensor(n.startswith("1")))


# ---------------------------------------------------------------- several names in one string, a name in another case


@pytest.mark.parametrize("given", ["body,norm", "body, norm", "body norm"])
def test_freeze_string_of_several_names_names_the_list(given: str) -> None:
    m = _Net()
    with pytest.raises(ValueError) as e:
        lrkit.freeze_layers(m, given)
    msg = str(e.value)
    assert "entries are separate strings, e.g. freeze=['body', 'norm']" in msg, msg
    assert "Did you mean" not in msg  # 'norm' alone would drop 'body'
    assert all(p.requires_grad for p in m.parameters())


def test_head_string_of_several_names_names_the_tuple() -> None:
    with pytest.raises(ValueError) as e:
        lrkit.param_groups(_Net(), 1e-3, backbone_lr_scale=0.1, head="fc,norm")
    msg = str(e.value)
    assert "head='fc,norm' matches no parameter" in msg
    assert "entries are separate strings, e.g. head=('fc', 'norm')" in msg, msg
    assert "Did you mean" not in msg


def test_several_names_with_a_typo_still_get_the_closest_name() -> None:
    # not every part is a name: the hint is the did-you-mean, as before
    with pytest.raises(ValueError, match=r"freeze entry 'body,nrm' matches no parameter name\. Did you mean"):
        lrkit.freeze_layers(_Net(), "body,nrm")


@pytest.mark.parametrize("given", ["FC", "Fc"])
def test_a_name_in_another_case_is_suggested(given: str) -> None:
    with pytest.raises(ValueError, match=r"freeze entry '(FC|Fc)' matches no parameter name\. Did you mean 'fc'\? "
                                         r"\(names are case-sensitive\)"):
        lrkit.freeze_layers(_Net(), given)
    with pytest.raises(ValueError, match=r"Did you mean 'fc'\? \(names are case-sensitive\) Pass head="):
        lrkit.param_groups(_Net(), 1e-3, backbone_lr_scale=0.1, head=given)
    with pytest.raises(ValueError, match=r"head entry 'NORM' .*Did you mean 'norm'\?"):
        lrkit.param_groups(_Net(), 1e-3, backbone_lr_scale=0.1, head=("fc", "NORM"))


def test_good_names_are_unchanged() -> None:
    m = _Net()
    assert lrkit.freeze_layers(m, ["body", "norm"]) == ["body.weight", "body.bias", "norm.weight", "norm.bias"]
    groups = lrkit.param_groups(_Net(), 1e-3, backbone_lr_scale=0.1, head="fc")
    assert [(g["name"], g["lr_scale"]) for g in groups] == [
        ("backbone/decay", 0.1), ("backbone/no_decay", 0.1), ("backbone/bias", 0.1), ("head/decay", 1.0),
        ("head/bias", 1.0)]


# ------------------------------------------------------------------- ratios through the finder, every tensor once


def test_param_groups_ratios_survive_find_lr_and_every_tensor_is_in_one_group() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.LayerNorm(16), nn.ReLU(), nn.Linear(16, 3))
    model[0].requires_grad_(False)  # frozen already: left out
    groups = lrkit.param_groups(model, 1e-3, weight_decay=0.01, layer_decay=0.5)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == sum(1 for p in model.parameters() if p.requires_grad)
    opt = torch.optim.AdamW(groups)
    seen: list[list[float]] = []
    step = opt.step

    def spy(*a: object, **k: object) -> object:
        seen.append([g["lr"] for g in opt.param_groups])
        return step(*a, **k)

    opt.step = spy  # type: ignore[method-assign]
    x = torch.randn(64, 8)
    y = (x[:, 0] > 0).long()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    lrkit.find_lr(model, opt, loader, loss_fn=nn.CrossEntropyLoss(), num_steps=10)
    scales = [g["lr_scale"] for g in opt.param_groups]
    assert seen
    for lrs in seen:
        assert [lr / lrs[-1] for lr in lrs] == pytest.approx(scales)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([1e-3 * s for s in scales])  # restored
