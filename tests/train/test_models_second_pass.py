"""Second bug-hunt pass over lrkit.train.models: factories from the working directory (the `lrkit` console script
does not put it on sys.path), from a file path, as a dotted attribute; the CNN on (H, W) grayscale images; LM data
whose vocabulary is unknown."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from torch.utils.data import TensorDataset

from lrkit.train.data import DataInfo, load_data
from lrkit.train.models import ConvNet, build_model

FACTORY = textwrap.dedent("""
    import torch

    def make(in_features, num_outputs):
        return torch.nn.Linear(in_features, num_outputs)

    class Zoo:
        @staticmethod
        def small(in_features, num_classes):
            return torch.nn.Linear(in_features, num_classes)
""")


def test_factory_module_in_the_working_directory_without_it_on_sys_path(tmp_path, monkeypatch):
    name = "lrkit_cwd_factory_mod"
    (tmp_path / f"{name}.py").write_text(FACTORY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(tmp_path), os.getcwd())])
    monkeypatch.delitem(sys.modules, name, raising=False)
    m = build_model(f"{name}:make", load_data("iris").info)
    assert isinstance(m, torch.nn.Linear) and (m.in_features, m.out_features) == (4, 3)
    assert str(tmp_path) not in sys.path  # found without leaving the directory on the path


def test_factory_module_in_the_working_directory_from_the_cli(tmp_path):
    (tmp_path / "mymodels_cli.py").write_text(FACTORY)
    code = ("import sys; sys.path[:] = [p for p in sys.path if p not in ('', '.')]; sys.argv = ['lrkit', 'train', "
            "'data=iris', 'model=mymodels_cli:make', 'epochs=1', 'verbose=false', 'plots=false', 'monitor=false', "
            "'lr0=0.01', 'project=runs']; from lrkit.cli.app import main; main()")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env,
                       timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert (tmp_path / "runs" / "train" / "best.pt").is_file()


def test_factory_from_a_file_path_and_a_dotted_attribute(tmp_path):
    f = tmp_path / "sub" / "nets.py"
    f.parent.mkdir()
    f.write_text(FACTORY)
    info = load_data("iris").info
    m = build_model(f"{f}:make", info)
    assert isinstance(m, torch.nn.Linear) and m.out_features == 3
    z = build_model(f"{f}:Zoo.small", info)
    assert isinstance(z, torch.nn.Linear) and z.out_features == 3
    with pytest.raises(ValueError, match=r"no such file"):
        build_model(f"{tmp_path / 'missing.py'}:make", info)
    with pytest.raises(ValueError, match=r"unknown factory in .*nets.py.*'Zoo.big'"):
        build_model(f"{f}:Zoo.big", info)


def test_factory_spec_with_spaces_is_stripped():
    m = build_model(" torch.nn : Identity ", load_data("iris").info)
    assert isinstance(m, torch.nn.Identity)


def test_cnn_on_grayscale_images_without_a_channel_axis():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 6, 6, generator=g)
    d = load_data(TensorDataset(x, torch.arange(30) % 3))
    d.info.num_outputs = 3
    m = build_model("cnn", d.info)
    assert isinstance(m, ConvNet)
    torch.manual_seed(0)
    ref = ConvNet((1, 6, 6), 3)
    ref.load_state_dict(m.state_dict())
    m.eval(), ref.eval()
    assert torch.equal(m(x[:4]), ref(x[:4, None]))  # (N, H, W) is read as (N, 1, H, W)
    with pytest.raises(ValueError, match=r"\(C, H, W\) or \(H, W\)"):
        build_model("cnn", DataInfo("t", "classification", (5,), 3, "test"))


def test_lm_model_without_a_vocabulary_size_names_it():
    info = DataInfo("tokens", "lm", (8,), None, "dataset", seq_len=8)
    with pytest.raises(ValueError, match="vocabulary size"):
        build_model("charlm", info)
