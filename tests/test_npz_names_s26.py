"""An .npz whose arrays are not called x/y but features/labels, data/target, inputs/targets (session 26).

lrkit read only x/y (in either case), so np.savez(f, features=X, labels=y) was an error; it now reads the names the
default loss reads in a dict batch (and scikit-learn's data/target), says in the log which array it took for which,
and refuses a file with two candidates for one role.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import lrkit
from lrkit.train.data import load_data


def _arrays(n: int = 120) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.int64)


@pytest.mark.parametrize(("fx", "fy"), [("features", "labels"), ("data", "target"), ("inputs", "targets"),
                                        ("Features", "Labels"), ("x", "labels"), ("images", "y")])
def test_other_array_names_are_read_and_named_in_the_log(tmp_path: Path, fx: str, fy: str) -> None:
    x, y = _arrays()
    path = tmp_path / "d.npz"
    np.savez(path, **{fx: x, fy: y})
    ref = tmp_path / "ref.npz"
    np.savez(ref, x=x, y=y)
    data, base = load_data(str(path), val=0.25, seed=0), load_data(str(ref), val=0.25, seed=0)
    assert data.info.task == base.info.task == "classification"
    assert data.info.input_shape == base.info.input_shape == (5,)
    for a, b in ((data.train, base.train), (data.val, base.val)):
        assert len(a) == len(b)
        assert all((p == q).all() for p, q in zip(a[:], b[:], strict=True))
    renamed = [f"{k!r} as the {role}" for k, role, plain in ((fx, "features", "x"), (fy, "target", "y"))
               if k.lower() != plain]
    assert any(all(r in note for r in renamed) for note in data.info.notes), data.info.notes


def test_plain_x_y_get_no_naming_note(tmp_path: Path) -> None:
    x, y = _arrays()
    np.savez(tmp_path / "d.npz", x=x, y=y)
    assert not any("as the" in note for note in load_data(str(tmp_path / "d.npz"), val=0.25, seed=0).info.notes)


def test_two_candidates_for_one_role_are_an_error_naming_both(tmp_path: Path) -> None:
    x, y = _arrays()
    np.savez(tmp_path / "d.npz", features=x, inputs=x, labels=y)
    with pytest.raises(ValueError, match=r"arrays 'features' and 'inputs' could each be the features.*name it x"):
        load_data(str(tmp_path / "d.npz"), val=0.25, seed=0)


def test_x_and_y_win_over_the_other_names_which_are_left_unused(tmp_path: Path) -> None:
    x, y = _arrays()
    np.savez(tmp_path / "d.npz", x=x, y=y, labels=1 - y)
    data = load_data(str(tmp_path / "d.npz"), val=0.25, seed=0)
    assert any("['labels'] are not used" in note for note in data.info.notes), data.info.notes


def test_unknown_names_list_the_names_that_are_read(tmp_path: Path) -> None:
    x, y = _arrays()
    np.savez(tmp_path / "d.npz", feats=x, classes=y)
    with pytest.raises(ValueError, match=r"found \['classes', 'feats'\] \(other names read: .*features.*labels"):
        load_data(str(tmp_path / "d.npz"), val=0.25, seed=0)


def test_a_features_labels_file_trains(tmp_path: Path) -> None:
    x, y = _arrays()
    np.savez(tmp_path / "d.npz", features=x, labels=y)
    r = lrkit.train("mlp", data=str(tmp_path / "d.npz"), epochs=1, verbose=False, plots=False, project=tmp_path)
    assert r.task == "classification" and r.epochs_run == 1


def test_lrkit_predict_reads_the_features_array_of_such_a_file(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from lrkit.cli.app import build_app

    x, y = _arrays()
    np.savez(tmp_path / "d.npz", features=x, labels=y)
    r = lrkit.train("mlp", data=str(tmp_path / "d.npz"), epochs=1, verbose=False, plots=False, project=tmp_path)
    np.savez(tmp_path / "rows.npz", features=x[:5], labels=y[:5])
    out = CliRunner().invoke(build_app(), ["predict", str(r.run_dir), str(tmp_path / "rows.npz")])
    assert out.exit_code == 0, out.output
    expected = lrkit.load_run(r.run_dir).predict(x[:5])
    assert out.stdout.split()[1:] == [str(v) for v in expected]
    np.savez(tmp_path / "bad.npz", feats=x[:5], more=x[:5])
    out = CliRunner().invoke(build_app(), ["predict", str(r.run_dir), str(tmp_path / "bad.npz")])
    assert out.exit_code != 0 and "other names read" in out.output
