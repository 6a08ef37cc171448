"""``lrkit predict --out`` writes a path the user named as ``open(path, "w")`` would (session 33): through a symlink
into the file it points to, the link kept (before, the atomic rename replaced the link and left its target stale),
and its pre-check looks at the folder the write goes to, not the link's."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import lrkit
from lrkit.cli.app import build_app

runner = CliRunner()


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("predict_out")
    res = lrkit.train("mlp", data="iris", epochs=1, lr0=0.01, project=str(d), name="iris", plots=False, verbose=False)
    return Path(res.run_dir)


def _rows(tmp_path: Path) -> Path:
    src = tmp_path / "x.csv"
    src.write_text("5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n")
    return src


def test_out_through_a_symlink_writes_its_target_and_keeps_the_link(iris_run: Path, tmp_path: Path) -> None:
    target = tmp_path / "v1.csv"
    target.write_text("old\n")
    link = tmp_path / "latest.csv"
    link.symlink_to(target)
    res = runner.invoke(build_app(), ["predict", str(iris_run), str(_rows(tmp_path)), "--out", str(link)])
    assert res.exit_code == 0, res.output
    plain = runner.invoke(build_app(), ["predict", str(iris_run), str(_rows(tmp_path))])
    assert link.is_symlink() and target.read_text() == plain.stdout != "old\n"


def test_out_link_in_a_read_only_folder_into_a_writable_one_is_not_refused(
        iris_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    shared, mine = tmp_path / "shared", tmp_path / "mine"
    shared.mkdir()
    mine.mkdir()
    link = shared / "latest.csv"
    link.symlink_to(mine / "p.csv")
    real = os.access

    def access(path: Any, mode: int, *args: Any, **kwargs: Any) -> bool:  # as a user who may not write into shared/
        if Path(path).resolve() == shared.resolve() and mode & os.W_OK:
            return False
        return real(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)
    res = runner.invoke(build_app(), ["predict", str(iris_run), str(_rows(tmp_path)), "--out", str(link)])
    assert res.exit_code == 0, res.output
    assert link.is_symlink() and (mine / "p.csv").read_text().count("\n") == 3  # header + 2 rows
    res = runner.invoke(build_app(), ["predict", str(iris_run), str(_rows(tmp_path)), "--out", str(shared / "n.csv")])
    assert res.exit_code != 0 and "not writable" in res.output
