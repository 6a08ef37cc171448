"""Session 25 (the run-directory walk's findings in _config and reuse): run names a shell user can type, and a run
trained on a CSV header that names a column twice, given new rows by name."""

from __future__ import annotations

from pathlib import Path

import pytest

import lrkit


@pytest.mark.parametrize(("name", "says"), [
    (" ", "blank or starts or ends with a space: give e.g. name=exp"),
    ("exp ", "give name='exp'"),
    ("sweep/ lr3", "give name='sweep/lr3'"),
    ("a\nb", "holds a control character"),
    ("a\tb", "holds a control character"),
])
def test_a_run_name_a_shell_cannot_type_is_refused_before_anything_is_written(tmp_path: Path, name: str,
                                                                              says: str) -> None:
    with pytest.raises(ValueError, match=says):
        lrkit.train(data="iris", epochs=1, verbose=False, plots=False, project=str(tmp_path / "p"), name=name)
    assert not (tmp_path / "p").exists()


def test_a_name_with_an_inner_space_is_a_folder_name(tmp_path: Path) -> None:
    r = lrkit.train(data="iris", epochs=1, verbose=False, plots=False, project=str(tmp_path), name="my run")
    assert Path(r.run_dir) == tmp_path / "my run"


def test_a_csv_header_naming_a_column_twice_trains_but_predict_by_name_is_refused(tmp_path: Path) -> None:
    # training on it is allowed (tests/train/test_data_second_pass.py); matching a table by name is not possible
    csv = tmp_path / "dup.csv"
    csv.write_text("sqft,sqft,rooms,price\n" + "".join(f"{i},{2 * i % 7},{i % 3},{3 * i}\n" for i in range(40)))
    r = lrkit.train(data=str(csv), epochs=1, verbose=False, plots=False, project=str(tmp_path / "p"))
    run = lrkit.load_run(r.run_dir)
    assert run.features == ["sqft", "sqft", "rooms"]
    with pytest.raises(ValueError, match=r"names 'sqft' for 2 feature columns .* give the rows as an array"):
        run.predict({"sqft": [1.0], "rooms": [2.0]})
    with pytest.raises(ValueError, match="cannot be matched by name"):
        run.predict([{"sqft": "1", "rooms": "2"}])
    assert run.predict([[1.0, 2.0, 2.0]]).shape == (1,)  # an array in the training order is fine


def test_a_built_in_model_name_is_recorded_as_built(tmp_path: Path) -> None:
    import yaml

    r = lrkit.train(data="iris", model="mlp ", epochs=1, verbose=False, plots=False, project=str(tmp_path))
    assert yaml.safe_load((Path(r.run_dir) / "args.yaml").read_text())["resolved"]["model"] == "mlp"
