"""A missing optional dependency is one line naming the extra to install, not a traceback (``lrkit`` console script)."""

from __future__ import annotations

import sys

import pytest

from lrkit._utils import MissingExtraError, optional_import
from lrkit.cli.app import main


def test_optional_import_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)  # None in sys.modules makes `import yaml` raise ImportError
    with pytest.raises(MissingExtraError, match=r'pip install "lrkit\[cli\]"') as info:
        optional_import("yaml", "cli")
    assert isinstance(info.value, ImportError)  # callers that catch ImportError keep working


@pytest.mark.parametrize(
    ("missing", "argv", "extra"),
    [
        ("typer", ["lrkit", "find"], "cli"),  # the CLI's own framework
        ("matplotlib.pyplot", ["lrkit", "schedule", "cosine", "--total-steps", "10", "--out", "{tmp}/s.png"], "plot"),
    ],
)
def test_console_script_reports_a_missing_extra_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path, missing: str, argv: list[str],
    extra: str,
) -> None:
    monkeypatch.setitem(sys.modules, missing, None)
    monkeypatch.setattr(sys, "argv", [a.replace("{tmp}", str(tmp_path)) for a in argv])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert f'pip install "lrkit[{extra}]"' in err
    assert repr(missing) in err
    assert "Traceback" not in err


def test_an_error_naming_a_bracketed_column_prints_it_whole(tmp_path) -> None:
    # Bug: errors were printed as rich markup, so "[sqm]" in a column name vanished: "Valid: area , price"
    from typer.testing import CliRunner

    from lrkit.cli.app import build_app

    data = tmp_path / "br.csv"
    data.write_text("area [sqm],price\n1,2\n3,4\n5,6\n")
    res = CliRunner().invoke(build_app(), ["train", f"data={data}", "target=prise", f"project={tmp_path}"])
    assert res.exit_code != 0
    assert "area [sqm]" in res.output
