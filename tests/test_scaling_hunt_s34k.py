"""Session 34k hunt: lrkit.scaling edge cases found by fine-tuning-shaped probes."""

from __future__ import annotations

import pytest
from torch import nn

from lrkit.scaling import freeze_layers, optimizer_family, param_groups, scale_lr


def test_freeze_on_a_model_without_parameters_says_so() -> None:
    # was: "freeze=1 must be between 0 and the number of layers (0: )" — an empty list, nothing to act on
    with pytest.raises(ValueError, match=r"freeze=1 .*no parameters") as e:
        freeze_layers(nn.Sequential(nn.ReLU(), nn.Flatten()), 1)
    assert "(0: )" not in str(e.value)
    with pytest.raises(ValueError, match=r"freeze index 0 .*no parameters") as e:
        freeze_layers(nn.ReLU(), [0])
    assert "()" not in str(e.value)


@pytest.mark.parametrize("layer_decay", [0.5, 1.0])
def test_layer_id_fn_beyond_a_float_is_a_value_error(layer_decay: float) -> None:
    # was: a bare OverflowError ("int too large to convert to float") from d ** (L - i)
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))

    def layer_id(name: str) -> int:
        return 10**400 if name.startswith("1.") else 0

    if layer_decay == 1.0:  # every layer at the peak, whatever the numbering
        groups = param_groups(model, 1e-3, layer_decay=layer_decay, layer_id_fn=layer_id)
        assert {g["lr_scale"] for g in groups} == {1.0}
        assert {g["lr"] for g in groups} == {1e-3}
        assert sum(len(g["params"]) for g in groups) == 4
    else:
        with pytest.raises(ValueError, match=r"layer0 group's LR.*underflows") as e:
            param_groups(model, 1e-3, layer_decay=layer_decay, layer_id_fn=layer_id)
        assert len(str(e.value)) < 1000  # the exponent is shown briefly, not as 400 digits


@pytest.mark.parametrize(
    ("name", "family"),
    [("FusedLAMB", "adaptive"), ("FusedLamb", "adaptive"), ("LAMB8bit", "adaptive"), ("PagedLAMB32bit", "adaptive"),
     ("LARS8bit", "sgd"), ("FusedLARS", "sgd")],
)
def test_third_party_lamb_and_lars_follow_their_family(name: str, family: str) -> None:
    # was: ValueError "cannot tell ... Did you mean 'lamb'?" though LAMB is sqrt and LARS linear in the README table
    assert optimizer_family(name) == family
    expected = 0.1 * (2.0 if family == "sgd" else 2.0**0.5)
    assert scale_lr(0.1, 32, 64, optimizer=name) == pytest.approx(expected)


def test_lambda_named_optimizer_is_not_taken_for_lamb() -> None:
    with pytest.raises(ValueError, match="cannot tell"):
        optimizer_family("LambdaOptimizer")


@pytest.mark.parametrize("name", ["MuonWithAuxAdam", "SingleDeviceMuonWithAuxAdam", "AdaMuon"])
def test_muon_variants_are_not_guessed_adaptive_from_a_substring(name: str) -> None:
    # was: 'adaptive' (the "adam" substring hint: AdaMuon -> "adamuon"), so rule="auto" silently scaled by sqrt,
    # while Muon itself is refused as outside both families
    with pytest.raises(ValueError, match=rf"cannot tell whether optimizer '{name}'"):
        optimizer_family(name)
    with pytest.raises(ValueError, match="rule='linear' or rule='sqrt'"):
        scale_lr(0.1, 32, 64, optimizer=name)
    assert scale_lr(0.1, 32, 64, rule="sqrt", optimizer=name) == pytest.approx(0.1 * 2**0.5)  # taken as given
