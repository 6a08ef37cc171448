"""Built-in models: each is sized from the data, has a head, and trains a step; factories; errors."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch

from lrkit.train.data import load_data
from lrkit.train.models import BUILTIN_MODELS, build_model, default_model_name
from lrkit.train.tasks import task_spec


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    f = tmp_path_factory.mktemp("txt") / "t.txt"
    f.write_text("the cat sat on the mat. the dog sat on the log. " * 30)
    return f


@pytest.mark.parametrize(("model", "data"), [("linear", "iris"), ("mlp", "wine"), ("cnn", "digits"),
                                             ("linear", "synthetic-regression"), ("charlm", "text"),
                                             ("linear", "text")])
def test_builtin_trains_a_step(model, data, text_file):
    torch.manual_seed(0)
    d = load_data(text_file if data == "text" else data, seq_len=16)
    net = build_model(model, d.info)
    assert hasattr(net, "head")  # so backbone_lr_scale has a head to spare
    spec = task_spec(d.info.task)
    x, y = d.train[:16]
    out = net(x)
    if d.info.task == "lm":
        assert out.shape == (16, 16, d.info.num_outputs)
    else:
        assert out.shape == (16, d.info.num_outputs)
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    before = [p.detach().clone() for p in net.parameters()]
    losses = []
    for _ in range(3):
        loss = spec.loss(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]  # three steps on one batch lower its loss
    assert any(not torch.equal(a, p) for a, p in zip(before, net.parameters()))


def test_charlm_is_causal():
    from lrkit.train.models import CharLM

    torch.manual_seed(0)
    net = CharLM(7, seq_len=10).eval()
    x = torch.randint(0, 7, (1, 10))
    y = x.clone()
    y[0, 6:] = (y[0, 6:] + 1) % 7  # change only the future of position 5
    assert torch.allclose(net(x)[0, :6], net(y)[0, :6], atol=1e-6)
    assert not torch.allclose(net(x)[0, 6:], net(y)[0, 6:])


def test_defaults_and_errors():
    iris, digits = load_data("iris").info, load_data("digits").info
    assert default_model_name(iris) == "mlp" and default_model_name(digits) == "cnn"
    with pytest.raises(ValueError, match="needs image-shaped inputs"):
        build_model("cnn", iris)
    with pytest.raises(ValueError, match="Did you mean 'mlp'"):
        build_model("mpl", iris)
    with pytest.raises(ValueError, match="does not fit classification"):
        build_model("charlm", iris)
    assert set(BUILTIN_MODELS) == {"linear", "mlp", "cnn", "charlm"}


def test_factory_string(tmp_path, monkeypatch):
    pkg = tmp_path / "mymodels.py"
    pkg.write_text(textwrap.dedent("""
        import torch
        def make(in_features, num_classes):
            return torch.nn.Sequential(torch.nn.Linear(in_features, 5), torch.nn.Linear(5, num_classes))
        def anything(**info):
            return torch.nn.Linear(info["in_features"], info["num_outputs"])
        def not_a_model():
            return 3
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    info = load_data("wine").info
    try:
        assert build_model("mymodels:make", info)(torch.zeros(2, 13)).shape == (2, 3)
        assert build_model("mymodels:anything", info).out_features == 3
        with pytest.raises(ValueError, match="not a torch nn.Module"):
            build_model("mymodels:not_a_model", info)
        with pytest.raises(ValueError, match="Did you mean 'make'"):
            build_model("mymodels:mak", info)
        with pytest.raises(ValueError, match="cannot import"):
            build_model("nosuchpackage_xyz:make", info)
    finally:
        sys.modules.pop("mymodels", None)
